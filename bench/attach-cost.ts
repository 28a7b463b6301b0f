/**
 * What busted's kernel programs cost a connection churn, with no user space in the way: each
 * eBPF object given is loaded once, configured as busted configures it by default (quiet mode,
 * the catalog's model server ports: the churn's connections are kept back in the kernel, so
 * nothing crosses the ring), and the churn runs in short windows, 1 s each by default, with
 * that object's programs attached or with nothing attached, the windows interleaved. The VM's
 * speed drifts over seconds to minutes by more than what is measured here; adjacent short
 * windows cancel that drift, which separate runs of busted cannot.
 *
 *   sudo npx tsx bench/attach-cost.ts [--rounds N] [--seconds S] [--all] [--floor OBJECT] [--bpf-stats] [--load churn|iperf-128k|iperf-1k] [--json FILE] [LABEL=OBJECT[:prog,prog…][+MODE] …]
 *
 * --load iperf-128k (or iperf-1k) runs one iperf3 stream in each window instead of the churn, as
 * `npm run bench` runs it (128 KiB or 1 KiB writes, sender on CPU 0, receiver on CPU 1), against
 * one iperf3 server started here: the programs' cost to a bulk stream, in interleaved windows,
 * without busted's process (whose whole 10 s runs spread ±10 % there).
 *
 * The LLM address maps are filled with the catalog's ranges, as busted fills them.
 * --all configures the objects as `busted --all` does (each churn connection is one BRIEF record on
 * the ring, at its close), and this process drains each ring every 50 ms without looking at the
 * records: the kernel's share of --all, without busted's user space. `+MODE` after an object
 * configures it otherwise: `+off` as busted --all did before session 17 (every connection a
 * CONNECT at its first send and a CLOSE), `+count` as busted by default, `+late` as --all.
 *
 * --floor OBJECT adds a subject "empty": an object of programs that do nothing on the same hooks
 * (bench/floor.bpf.c, built by `npm run bench`), loaded as it is and attached where busted attaches at start. Its windows
 * show what the kernel's dispatch to a program on these hooks costs the churn by itself: the part
 * of the objects' share that no change to their programs can remove.
 *
 * --bpf-stats turns kernel.bpf_stats_enabled on for the run (set back after) and prints each
 * object's programs' mean kernel time per run over its windows: two objects' hooks compared in
 * the same interleaved windows, which separate bench runs minutes apart (the VM's speed moves
 * them by 30 %) cannot do. The rates then include the statistics' own cost.
 *
 * Default: one object, this checkout's bpf/busted.bpf.o with the programs busted attaches at
 * start (all but the packet programs). `:prog,…` names the programs to attach instead. Prints,
 * per object, the median churn rate of its windows against the median of the windows with
 * nothing attached, and the median of the per-round ratios. Root; loopback only.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { libbpf, type Ptr } from '../src/bpf/libbpf.js';
import { BpfObject } from '../src/bpf/object.js';
import { findCgroup2Mount } from '../src/bpf/preflight.js';
import { OBJECT_PATH } from '../src/bpf/probe.js';
import { RingBuffer } from '../src/bpf/ringbuf.js';
import { KERNEL_MODES, atStart, attachPrograms, floorAtStart, loadAsBusted, type KernelMode } from './programs.js';

const { values, positionals } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' }, seconds: { type: 'string', default: '1' }, all: { type: 'boolean', default: false },
    floor: { type: 'string' }, // OBJECT: empty programs on the same hooks (bench/floor.bpf.c)
    json: { type: 'string' }, // FILE: the medians also as JSON (npm run bench reads them)
    'bpf-stats': { type: 'boolean', default: false },
    load: { type: 'string', default: 'churn' }, // churn | iperf-128k | iperf-1k
  },
  allowPositionals: true,
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const IPERF_LEN: Record<string, string> = { 'iperf-128k': '128K', 'iperf-1k': '1K' };
const load = values.load;
if (load !== 'churn' && !(load in IPERF_LEN)) {
  console.error(`attach-cost: --load takes churn, iperf-128k or iperf-1k, not ${load}`);
  process.exit(2);
}
if (!(rounds > 0) || !(seconds > 0)) {
  console.error('attach-cost: --rounds and --seconds take positive numbers');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error('attach-cost: run as root (it loads and attaches eBPF programs)');
  process.exit(1);
}

interface Subject {
  label: string;
  obj: BpfObject;
  ring: RingBuffer | null;
  records: number;
  progs: (name: string, section: string) => boolean;
  rates: number[];
  /** --bpf-stats: per program, runs and kernel ns summed over the subject's windows */
  kernel: Map<string, { runs: number; ns: number }>;
}

/** A loaded program's run count and kernel time so far (counted while kernel.bpf_stats_enabled is on). */
function runStats(obj: BpfObject): Map<string, { runs: number; ns: number }> {
  const out = new Map<string, { runs: number; ns: number }>();
  for (const p of obj.programs()) {
    const fd = libbpf().bpf_program__fd(p.handle) as number;
    if (fd < 0) continue; // not loaded
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    const field = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(info)?.[1] ?? 0);
    out.set(p.name, { runs: field('run_cnt'), ns: field('run_time_ns') });
  }
  return out;
}

const cgroup = findCgroup2Mount();
if (cgroup === null) {
  console.error('attach-cost: cgroup v2 is not mounted');
  process.exit(1);
}
const specs = positionals.length > 0 ? positionals : [`busted=${OBJECT_PATH}`];
const subjects: Subject[] = specs.map((spec) => {
  const eq = spec.indexOf('=');
  if (eq <= 0) {
    console.error(`attach-cost: ${spec}: expected LABEL=OBJECT[:prog,prog…][+MODE]`);
    process.exit(2);
  }
  const plus = spec.lastIndexOf('+');
  const mode = plus > eq ? spec.slice(plus + 1) : null;
  if (mode !== null && !(KERNEL_MODES as readonly string[]).includes(mode)) {
    console.error(`attach-cost: ${spec}: MODE is one of ${KERNEL_MODES.join(', ')}, not ${mode}`);
    process.exit(2);
  }
  const [path, list] = spec.slice(eq + 1, plus > eq ? plus : undefined).split(':') as [string, string | undefined];
  const named = list ? new Set(list.split(',')) : null;
  const obj = loadAsBusted(path, values.all, (mode ?? undefined) as KernelMode | undefined);
  const subject: Subject = {
    label: spec.slice(0, eq),
    obj,
    ring: null,
    records: 0,
    progs: named ? (n) => named.has(n) : atStart,
    rates: [],
    kernel: new Map(),
  };
  if (values.all || mode === 'off' || mode === 'late') subject.ring = new RingBuffer(obj.map('events'), () => void subject.records++);
  return subject;
});
if (values.floor) {
  // nothing to configure and no maps: loaded as it is, attached on the hooks busted attaches at start
  const obj = BpfObject.open(values.floor);
  obj.load();
  subjects.push({ label: 'empty', obj, ring: null, records: 0, progs: floorAtStart, rates: [], kernel: new Map() });
}

const dir = mkdtempSync(join(tmpdir(), 'busted-attach-'));
const churn = join(dir, 'churn');
execFileSync('cc', ['-O2', '-pthread', '-o', churn, new URL('./churn.c', import.meta.url).pathname]);
const execFileAsync = promisify(execFile);
/** --load iperf-*: one iperf3 server for every window, on a fixed loopback port. */
const IPERF_PORT = 5900 + (process.pid % 90);
const iperfServer = load === 'churn' ? null : spawn('iperf3', ['-s', '-p', String(IPERF_PORT), '-B', '127.0.0.1'], { stdio: 'ignore' });
if (iperfServer) await new Promise((r) => setTimeout(r, 500));
/**
 * One window of the load; the event loop stays free meanwhile (--all drains the rings on a
 * timer). The churn: connections per second. iperf3 (one stream, the sender on CPU 0 and the
 * receiver on CPU 1, as `npm run bench` runs it): Gbit/s received.
 */
const run = async () => {
  if (load === 'churn') {
    const { stdout } = await execFileAsync(churn, [String(seconds), '100000000', '4', '0'], { encoding: 'utf8' });
    return (JSON.parse(stdout.trim().split('\n').pop()!) as { cps: number }).cps;
  }
  const { stdout } = await execFileAsync('iperf3', ['-c', '127.0.0.1', '-p', String(IPERF_PORT), '-t', String(seconds), '-l', IPERF_LEN[load]!, '-A', '0,1', '--json'], { encoding: 'utf8' });
  return (JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
};
const unit = load === 'churn' ? 'conn/s' : 'Gbit/s';
const fmt = (x: number) => (load === 'churn' ? x.toFixed(0) : x.toFixed(2));

const cg = openSync(cgroup, 'r');
async function attached(s: Subject): Promise<number> {
  let links: Ptr[] = [];
  const drain = s.ring && setInterval(() => s.ring!.consume(), 50);
  const before = values['bpf-stats'] ? runStats(s.obj) : null;
  try {
    links = attachPrograms(s.obj, s.progs, cg);
    return await run();
  } finally {
    for (const l of links) s.obj.detach(l);
    if (drain) clearInterval(drain);
    s.ring?.consume();
    if (before) {
      for (const [name, now] of runStats(s.obj)) {
        const was = before.get(name) ?? { runs: 0, ns: 0 };
        const sum = s.kernel.get(name) ?? { runs: 0, ns: 0 };
        s.kernel.set(name, { runs: sum.runs + now.runs - was.runs, ns: sum.ns + now.ns - was.ns });
      }
    }
  }
}

const BPF_STATS = '/proc/sys/kernel/bpf_stats_enabled';
const statsBefore = values['bpf-stats'] ? readFileSync(BPF_STATS, 'utf8').trim() : null;
if (statsBefore !== null) {
  writeFileSync(BPF_STATS, '1');
  console.log(`kernel.bpf_stats_enabled on for this run (was ${statsBefore}): the rates include its cost`);
}
const none: number[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  await run(); // warm-up
  const slots = [null, ...subjects];
  for (let r = 0; r < rounds; r++) {
    const line: string[] = [];
    for (let i = 0; i < slots.length; i++) {
      const s = slots[(i + r) % slots.length]!;
      const cps = s === null ? await run() : await attached(s);
      (s === null ? none : s.rates).push(cps);
      line.push(`${s === null ? 'none' : s.label} ${fmt(cps)}`);
    }
    console.log(`round ${r + 1}: ${line.join('  ')}`);
  }
  const base = median(none);
  console.log(`\nnothing attached: median ${fmt(base)} ${unit} over ${none.length} windows of ${seconds} s (${load})`);
  const out = subjects.map((s) => {
    const pairs = s.rates.map((x, i) => x / none[i]!);
    const recs = s.ring ? `; ${s.records} ring records drained` : '';
    console.log(`${s.label}: median ${fmt(median(s.rates))} ${unit}, ratio ${(median(s.rates) / base).toFixed(3)}, median of per-round ratios ${median(pairs).toFixed(3)}${recs}`);
    return { label: s.label, median: median(s.rates), ratio: median(s.rates) / base, roundRatio: median(pairs) };
  });
  if (values['bpf-stats']) {
    console.log('\nkernel time per program run over each subject\'s windows (statistics overhead included):');
    for (const s of subjects) {
      const ran = [...s.kernel].filter(([, k]) => k.runs > 0).sort((a, b) => b[1].ns - a[1].ns);
      console.log(`${s.label}: ${ran.map(([n, k]) => `${n} ${k.runs} x ${(k.ns / k.runs).toFixed(0)} ns`).join(', ')}`);
    }
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ load, rounds, seconds, all: values.all, none: base, subjects: out }, null, 2)}\n`);
} finally {
  iperfServer?.kill();
  if (statsBefore !== null) writeFileSync(BPF_STATS, statsBefore);
  closeSync(cg);
  for (const s of subjects) {
    s.ring?.close();
    s.obj.close();
  }
  rmSync(dir, { recursive: true, force: true });
}
