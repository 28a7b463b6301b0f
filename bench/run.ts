/**
 * busted's benchmark: what it costs to have busted attached, as a ratio against the same load
 * without it. Not a test: it prints numbers (and writes bench/results.json); the targets are
 * printed next to them.
 *
 *   sudo npm run bench               full: 5 alternating pairs per figure, 10 s runs (~40 min)
 *   sudo npm run bench -- --quick    short: 2 alternating pairs per figure, 3 s runs (~4 min)
 *
 * Options: --runs N, --seconds S (override the mode), --only iperf-128k,iperf-1k,churn,churn-default,churn-shared,exec,
 * --busted PATH (the busted.js to run; default bin/busted.js of this checkout), --bpf-object PATH
 * (the eBPF object it loads, through BUSTED_BPF_OBJECT: an experimental build against the committed one),
 * --out FILE (default bench/results.json), --bpf-stats (turn on kernel.bpf_stats_enabled while the
 * bench runs and report the kernel time of each busted program; this adds a little cost to every
 * BPF program on the machine, so the headline ratios should come from a run without it),
 * --settle S (seconds a monitored load waits after busted attached: 30 in full mode, 0 with --quick),
 * --reference FILE (an earlier results file, default bench/results.json as it was before this run:
 *   the machine's speed is told against it, below).
 *
 * The machine's speed: the figures' baselines run without busted, so the end of the output compares
 * them with the reference run's. This VM's host has had days when some loads ran at two thirds of
 * the speed or less (iperf3 14.8 against 23.4 Gbit/s, while the churn ran faster: bench/README.md,
 * sessions 23 and 24): the absolute figures (ns per hook run, CPU %, frame ms) can slow with it,
 * which says nothing about busted.
 *
 * Figures (all over loopback only):
 *   iperf-128k / iperf-1k: iperf3 throughput, 128 KiB and 1 KiB writes, one TCP stream.
 *   churn: connections per second of bench/churn.c (connect, send 64 B, receive 64 B, close),
 *     the load pinned to CPU 0 in both runs, busted free to run on any CPU.
 *   churn-default: the same churn with busted as it runs by default (LLM flows only: the load,
 *     which is not LLM traffic, is kept back and only counted). Every connection must be counted
 *     in busted_connections_total{provider="none"} (its growth from the load's start, scraped from --metrics before busted stops,
 *     read again until it holds them, for up to 3.25 s after the load: busted reads the kernel's
 *     count every second; the wait is printed) and none printed.
 *   churn-shared (information, no target): the same with busted pinned to the load's CPU too, so
 *     all of busted's user-space work comes out of the load's CPU time (the worst case).
 *   exec (information, no target): fork + exec of /bin/true per second (bench/execs.c) on CPU 0,
 *     busted as by default: with --bpf-stats, the exec hook's time over thousands of runs.
 * With --bpf-stats, a program that ran fewer than 100 times in a figure (a load's own setup, cold
 * caches) is shown but not judged against its target.
 * After those, the figures of issue 8 that are not ratios (--only picks them too):
 *   hooks: kernel time per hook run: three churn pairs in each mode (one with --quick; each
 *     program's median over them) and one iperf3 128 KiB pair with kernel.bpf_stats_enabled on
 *     (only for this figure; with --bpf-stats the figures above give it), and the floor (empty
 *     programs under the churn, and under one iperf3 128 KiB stream for the iperf3 rows); for
 *     iperf3, the programs' kernel time per second of the load.
 *   kernel: bench/attach-cost.ts (the churn with busted's kernel programs alone, configured as by
 *     default, in 1 s windows interleaved with windows where nothing is attached: 20 rounds, 8
 *     with --quick); judged on the median of the per-round ratios, which the VM's drift over
 *     minutes does not move as it moves the churn figures above. For information, in the same
 *     windows: empty programs on the same hooks (bench/floor.bpf.c: the kernel's dispatch alone,
 *     which no change to busted's programs can remove); then a second run with the programs
 *     configured as by --all (one BRIEF record per churn connection, at its close, drained unread).
 *   cpu: bench/cpu.ts (busted's own CPU at 10k connections/s and idle, both modes).
 *   counters: bench/counters.ts (reading 16k flows' counters in one tick).
 *   census: bench/census.ts (one census with 8,000 open connections; information, no target).
 *   tui: bench/tui-frame.tsx (busted-top's frame with 1,000 processes and 10,000 flows).
 * Each prints its own lines as it runs, and a row in a last table.
 * Each figure: one discarded warm-up run, then N pairs of runs, baseline and monitored alternating:
 * the baseline first in odd pairs and second in even ones (B M M B B M …), so that a steady drift of
 * the VM's speed over a figure favours neither side.
 * A monitored run starts `node bin/busted.js --format json --all` (churn-default: without --all,
 * with --metrics on a free loopback port), waits for its first line (the
 * `session` record: everything attached) and then --settle seconds (Node's one-time work after
 * start, V8's memory reducer among it, falls before the load, as for a busted running as a
 * daemon), runs the load, then stops busted with SIGINT. busted's
 * output goes to a temporary file (nothing reads it while the load runs) and is counted afterwards:
 * records, `lost`, and the `connect`/`close` records of the load's pid, which must match the
 * connections the load made.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createReadStream, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BpfObject } from '../src/bpf/object.js';
import { findCgroup2Mount } from '../src/bpf/preflight.js';
import { isCgroupSection } from '../src/bpf/probe.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CHURN_SRC = join(ROOT, 'bench', 'churn.c');
const EXECS_SRC = join(ROOT, 'bench', 'execs.c');
const FLOOR_SRC = join(ROOT, 'bench', 'floor.bpf.c');

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  quick: boolean;
  runs: number;
  seconds: number;
  only: Set<string> | null;
  busted: string;
  out: string;
  bpfStats: boolean;
  /** --bpf-object PATH: the eBPF object busted loads (BUSTED_BPF_OBJECT), e.g. an experimental build */
  bpfObject: string | null;
  /** --settle S: seconds busted runs after its session line before a monitored load starts */
  settle: number;
  /** --reference FILE: an earlier results file to tell the machine's speed against */
  reference: string;
}

const FIGURE_IDS = ['iperf-128k', 'iperf-1k', 'churn', 'churn-default', 'churn-shared', 'exec'] as const;
type FigureId = (typeof FIGURE_IDS)[number];
/**
 * The figures of issue 8 that are not a load's ratio, run after those: the kernel time per hook
 * run (three churn pairs in each mode with kernel.bpf_stats_enabled, one with --quick, and the floor; from the figures
 * themselves with --bpf-stats), and the separate scripts bench/cpu.ts, bench/counters.ts,
 * bench/census.ts and bench/tui-frame.tsx (quick modes with --quick).
 */
const EXTRA_IDS = ['hooks', 'kernel', 'cpu', 'counters', 'census', 'tui'] as const;
type ExtraId = (typeof EXTRA_IDS)[number];

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\nusage: npm run bench -- [--quick] [--runs N] [--seconds S] [--only ${[...FIGURE_IDS, ...EXTRA_IDS].join(',')}] [--busted PATH] [--bpf-object PATH] [--out FILE] [--bpf-stats] [--settle S] [--reference FILE]\n`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const opts: Options = {
    quick,
    runs: quick ? 2 : 5,
    seconds: quick ? 3 : 10,
    only: null,
    busted: join(ROOT, 'bin', 'busted.js'),
    out: join(ROOT, 'bench', 'results.json'),
    bpfStats: false,
    bpfObject: null,
    settle: quick ? 0 : SETTLE_S,
    reference: join(ROOT, 'bench', 'results.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') continue;
    else if (a === '--bpf-stats') opts.bpfStats = true;
    else if (a === '--bpf-object') opts.bpfObject = resolve(value());
    else if (a === '--runs') opts.runs = Number(value());
    else if (a === '--seconds') opts.seconds = Number(value());
    else if (a === '--settle') {
      const v = value();
      opts.settle = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
    }
    else if (a === '--busted') opts.busted = value();
    else if (a === '--out') opts.out = value();
    else if (a === '--reference') {
      opts.reference = value();
      if (!existsSync(opts.reference)) usage(`no results file at ${opts.reference}`);
    }
    else if (a === '--only') {
      opts.only = new Set(value().split(','));
      for (const id of opts.only) if (![...FIGURE_IDS, ...EXTRA_IDS].includes(id as FigureId & ExtraId)) usage(`unknown figure ${id}`);
    } else usage(`unknown option ${a}`);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1 || opts.runs > 50) usage('--runs must be an integer in 1..50');
  if (!Number.isFinite(opts.seconds) || opts.seconds < 1 || opts.seconds > 120) usage('--seconds must be in 1..120');
  if (!Number.isFinite(opts.settle) || opts.settle < 0 || opts.settle > 120) usage('--settle must be in 0..120');
  if (!existsSync(opts.busted)) usage(`no busted at ${opts.busted}`);
  if (opts.bpfObject !== null && !existsSync(opts.bpfObject)) usage(`no eBPF object at ${opts.bpfObject}`);
  return opts;
}

// ---------------------------------------------------------------------------------------------
// processes: every child is tracked, bounded in time, and killed if the bench is interrupted

const children = new Set<ChildProcess>();
let tmp = '';

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function cleanupAndExit(code: number): Promise<never> {
  for (const c of children) c.kill('SIGKILL');
  restoreBpfStats();
  if (tmp) await rm(tmp, { recursive: true, force: true });
  process.exit(code);
}
process.once('SIGINT', () => void cleanupAndExit(130));
process.once('SIGTERM', () => void cleanupAndExit(143));

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killing it after `timeoutMs`. */
async function run(cmd: string, args: string[], timeoutMs: number): Promise<Done & { pid: number }> {
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  if (signal === 'SIGKILL') throw new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms`);
  return { code, signal, stdout, stderr, pid: child.pid ?? 0 };
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await once(child, 'exit');
  clearTimeout(timer);
  return child.signalCode !== 'SIGKILL';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** By default busted reads the kernel's kept-back count every second: the bench waits for the
 * load's connections in busted_connections_total{provider="none"} this long after the load. */
const QUIET_WAIT_MS = 3_250;

/**
 * Seconds a monitored run lets busted run after its session line before the load starts (full
 * mode; --settle S). Node's one-time work after start (V8's memory reducer: 0.1-0.17 s of CPU
 * 6-10 s after the session line on the project's machine on session 19's day, 16-17.5 s on the
 * slow days of sessions 24-25) then falls before the load, as it does for a busted that runs as
 * a daemon; the load meets busted as it runs from then on. 10 s until session 25, when busted's
 * CPU during an iperf3 run read 0.16-0.35 s (settled: 0.05-0.08 s). The attach time (startupMs)
 * is measured as before, and busted's CPU is counted from the load's start.
 */
const SETTLE_S = 30;

/** utime+stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat). */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// --bpf-stats: kernel run time of busted's programs, read from /proc/PID/fdinfo of its prog fds

const BPF_STATS = '/proc/sys/kernel/bpf_stats_enabled';
let bpfStatsBefore: string | null = null;

function enableBpfStats(): void {
  bpfStatsBefore = readFileSync(BPF_STATS, 'utf8').trim();
  writeFileSync(BPF_STATS, '1');
}

function restoreBpfStats(): void {
  if (bpfStatsBefore === null) return;
  try {
    writeFileSync(BPF_STATS, bpfStatsBefore);
  } catch {
    // best effort on the way out
  }
  bpfStatsBefore = null;
}

interface ProgStat {
  id: number;
  name: string;
  runs: number;
  ns: number;
}

/** Names of programs by id, from bpftool when it is there (the fdinfo has no name). */
function progNames(): Map<number, string> {
  const names = new Map<number, string>();
  const r = spawnSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return names;
  try {
    for (const p of JSON.parse(r.stdout) as { id: number; name?: string }[]) if (p.name) names.set(p.id, p.name);
  } catch {
    // no names then
  }
  return names;
}

/** Each program's runs and time since `before` (an earlier progStats of the same process). */
function since(after: ProgStat[], before: ProgStat[]): ProgStat[] {
  return after.map((p) => {
    const b = before.find((q) => q.id === p.id);
    return b ? { ...p, runs: p.runs - b.runs, ns: p.ns - b.ns } : p;
  });
}

function progStats(pid: number): ProgStat[] {
  const byId = new Map<number, ProgStat>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    let info = '';
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    const field = (k: string) => new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(info)?.[1];
    const id = field('prog_id');
    const runs = field('run_cnt');
    const ns = field('run_time_ns');
    if (id === undefined || runs === undefined || ns === undefined) continue; // links carry prog_id only
    byId.set(Number(id), { id: Number(id), name: `prog ${id}`, runs: Number(runs), ns: Number(ns) });
  }
  const names = byId.size ? progNames() : new Map<number, string>();
  for (const p of byId.values()) p.name = names.get(p.id) ?? p.name;
  return [...byId.values()].sort((a, b) => b.ns - a.ns);
}

// ---------------------------------------------------------------------------------------------
// busted as a child whose output is counted after the run

interface Monitor {
  pid: number;
  startupMs: number;
  /** Stops busted (SIGINT) and counts what it printed; `loadPid` selects the load's records. */
  /** expected: the connections the load made (by default busted_connections_total{provider="none"} must reach it; with --all, fewer connect records keep busted's output) */
  stop(loadPid: number, expected?: number): Promise<MonitorReport>;
}

interface MonitorReport {
  exitCode: number | null;
  records: number;
  byType: Record<string, number>;
  lost: number;
  /** connect records of the load's pid without / with an error, and its close records */
  loadConnects: number;
  /** default mode: busted_connections_total{provider="none"} counted while busted ran (null: --all) */
  quietCounted: number | null;
  /** default mode: ms from the load's end until the metrics held every connection (or gave up) */
  quietAfterMs: number | null;
  /** --all: busted's output, kept when it misses a connection of the load */
  keptOutput: string | null;
  loadFailedConnects: number;
  loadCloses: number;
  /** of those closes, the ones a census made (no hook saw the end; bpf/busted.h) */
  loadUnseen: number;
  /** CPU time busted used between its session record and SIGINT */
  cpuSeconds: number | null;
  /** with --bpf-stats: run count and kernel time of each of busted's programs */
  progs: ProgStat[] | null;
  /** ms from the session record to the first `lost` record, when there is one */
  firstLostAfterMs: number | null;
  stderr: string;
}

let monitorSeq = 0;

/** Starts busted and resolves once it printed its session record; `cpu` pins it (via taskset). */
async function startBusted(bustedPath: string, cpu: number | null, bpfStats: boolean, all: boolean, bpfObject: string | null, settleS = 0): Promise<Monitor> {
  const file = join(tmp, `busted-${++monitorSeq}.jsonl`);
  const fh = await open(file, 'w');
  const t0 = performance.now();
  const metricsPort = all ? 0 : await freePort();
  const argv = [process.execPath, bustedPath, '--format', 'json', ...(all ? ['--all'] : ['--metrics', `127.0.0.1:${metricsPort}`])];
  if (cpu !== null) argv.unshift('taskset', '-c', String(cpu)); // taskset execs node: same pid
  const env = bpfObject ? { ...process.env, BUSTED_BPF_OBJECT: bpfObject } : process.env;
  const child = track(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fh.fd, 'pipe'], env }));
  await fh.close(); // the child holds its own copy of the descriptor
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await readFile(file, 'utf8');
    const nl = text.indexOf('\n');
    if (nl >= 0) {
      const first = JSON.parse(text.slice(0, nl)) as { type?: string };
      if (first.type !== 'session') throw new Error(`busted's first line is not a session record: ${text.slice(0, nl)}`);
      break;
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`busted exited (code ${child.exitCode}) before attaching: ${stderr.trim()}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`busted printed no session record within 30 s: ${stderr.trim()}`);
    }
    await sleep(20);
  }
  const startupMs = performance.now() - t0;
  const pid = child.pid ?? 0;
  for (const until = performance.now() + settleS * 1000; performance.now() < until; ) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`busted exited (code ${child.exitCode}, signal ${child.signalCode}) while settling before the load: ${stderr.trim()}`);
    }
    await sleep(Math.min(100, until - performance.now()));
  }
  // from here on is the load's: busted's CPU, its programs' run counts and times, and the
  // connections it counted as not LLM traffic (what busted did before is subtracted)
  const cpu0 = cpuSeconds(pid);
  const progs0 = bpfStats ? progStats(pid) : null;
  const quiet0 = all ? null : await noneConnections(metricsPort);
  return {
    pid,
    startupMs,
    async stop(loadPid: number, expected = 0) {
      const t1 = performance.now();
      const diedEarly = child.exitCode !== null || child.signalCode !== null;
      // busted drains the ring buffer every 100 ms and to its end when it stops; give it a moment
      if (!diedEarly) await sleep(250);
      const cpu1 = cpuSeconds(pid);
      // what the kernel kept back reaches the metrics with the next counter read (every 1 s): the
      // count is read until it holds the load's connections, for at most three such reads
      let quietCounted: number | null = null;
      let quietAfterMs: number | null = null;
      if (!all && !diedEarly) {
        const deadline = t1 + QUIET_WAIT_MS;
        for (;;) {
          const now = await noneConnections(metricsPort);
          quietCounted = now === null || quiet0 === null ? null : now - quiet0;
          if ((quietCounted !== null && quietCounted >= expected) || performance.now() >= deadline) break;
          await sleep(100);
        }
        quietAfterMs = performance.now() - t1;
      }
      const progs = bpfStats && !diedEarly ? since(progStats(pid), progs0 ?? []) : null;
      if (!diedEarly) child.kill('SIGINT');
      const clean = await waitExit(child, 30_000);
      if (!clean) stderr += '\n(bench: busted did not exit within 30 s of SIGINT and was killed)';
      if (diedEarly) stderr += `\n(bench: busted exited during the load, code ${child.exitCode} signal ${child.signalCode})`;
      const report = await countRecords(file, loadPid);
      // --all: a run that misses a connection of the load keeps busted's output for a look at
      // which one (outside the bench's temporary folder, which goes when the bench ends)
      let keptOutput: string | null = null;
      if (all && expected > 0 && report.loadConnects + report.loadFailedConnects < expected) {
        keptOutput = join(tmpdir(), `busted-bench-mismatch-${process.pid}-${monitorSeq}.jsonl`);
        await copyFile(file, keptOutput);
      }
      await rm(file, { force: true });
      return {
        ...report,
        quietCounted,
        quietAfterMs,
        keptOutput,
        exitCode: child.exitCode,
        cpuSeconds: cpu0 !== null && cpu1 !== null ? Math.round((cpu1 - cpu0) * 100) / 100 : null,
        progs,
        stderr: stderr.trim(),
      };
    },
  };
}

/** A free TCP port on 127.0.0.1 (for busted's --metrics). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  return port;
}

/** busted_connections_total{provider="none"} summed over protocols, from busted's /metrics. */
async function noneConnections(port: number): Promise<number | null> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    let n = 0;
    for (const m of text.matchAll(/^busted_connections_total\{([^}]*)\} (\S+)$/gm)) if (m[1]!.includes('provider="none"')) n += Number(m[2]);
    return n;
  } catch {
    return null;
  }
}

async function countRecords(file: string, loadPid: number) {
  const byType: Record<string, number> = {};
  let records = 0;
  let lost = 0;
  let loadConnects = 0;
  let loadFailedConnects = 0;
  let loadCloses = 0;
  let loadUnseen = 0;
  let sessionMs = 0;
  let firstLostAfterMs: number | null = null;
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    const rec = JSON.parse(line) as { type: string; ts: string; pid?: number; count?: number; error?: string | null; endUnseen?: boolean };
    records++;
    byType[rec.type] = (byType[rec.type] ?? 0) + 1;
    if (rec.type === 'session') sessionMs = Date.parse(rec.ts);
    else if (rec.type === 'lost') {
      lost += rec.count ?? 0;
      firstLostAfterMs ??= Date.parse(rec.ts) - sessionMs;
    }
    else if (rec.pid === loadPid) {
      if (rec.type === 'connect') rec.error ? loadFailedConnects++ : loadConnects++;
      else if (rec.type === 'close') {
        loadCloses++;
        if (rec.endUnseen) loadUnseen++; // closed by a census (at busted's stop, in a 10 s run)
      }
    }
  }
  return { records, byType, lost, firstLostAfterMs, loadConnects, loadFailedConnects, loadCloses, loadUnseen };
}

// ---------------------------------------------------------------------------------------------
// loads

interface LoadResult {
  /** the figure's value: bits/s for iperf, connections/s for churn */
  value: number;
  pid: number;
  /** connections the load made (successful connects) and failed connects, when known */
  connections: number;
  failed: number;
  detail: Record<string, unknown>;
}

let portSeq = 0;

/** True once something listens on 127.0.0.1:port (from /proc/net/tcp; state 0A is LISTEN). */
function listening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const table = readFileSync('/proc/net/tcp', 'utf8');
  return table.split('\n').some((l) => {
    const f = l.trim().split(/\s+/);
    return f[1] === `0100007F:${hex}` && f[3] === '0A';
  });
}

const IPERF_AFFINITY = availableParallelism() >= 2 ? '0,1' : '0,0';

async function iperf(seconds: number, len: string): Promise<LoadResult> {
  let port = 0;
  for (let i = 0; i < 100 && !port; i++) {
    const p = 5300 + (portSeq++ % 600);
    if (!listening(p)) port = p;
  }
  if (!port) throw new Error('no free port in 5300..5899 for the iperf3 server');
  const server = track(spawn('iperf3', ['-s', '-1', '-p', String(port), '-B', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let serverErr = '';
  server.stderr!.setEncoding('utf8').on('data', (d: string) => (serverErr += d));
  try {
    const deadline = Date.now() + 5000;
    while (!listening(port)) {
      if (server.exitCode !== null) throw new Error(`iperf3 server exited: ${serverErr.trim()}`);
      if (Date.now() > deadline) throw new Error(`iperf3 server not listening on 127.0.0.1:${port} within 5 s`);
      await sleep(20);
    }
    // -A 0,1: the sender on CPU 0, the receiver on CPU 1. Unpinned, where the scheduler puts the
    // two ends moved single runs by +-20 % on this 2-vCPU VM, which drowned what is measured.
    const client = await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-l', len, '-A', IPERF_AFFINITY, '--json'], (seconds + 20) * 1000);
    const out = JSON.parse(client.stdout) as {
      error?: string;
      end?: { sum_received?: { bits_per_second: number; bytes: number }; sum_sent?: { bits_per_second: number; retransmits?: number } };
    };
    if (out.error || !out.end?.sum_received) throw new Error(`iperf3 client failed: ${out.error ?? client.stderr.trim()}`);
    return {
      value: out.end.sum_received.bits_per_second,
      pid: client.pid,
      connections: 2, // iperf3 opens a control connection and one data stream
      failed: 0,
      detail: { bytes: out.end.sum_received.bytes, sentBps: out.end.sum_sent?.bits_per_second },
    };
  } finally {
    await waitExit(server, 5000);
  }
}

let churnBin = '';
let execsBin = '';

function compile(src: string, out: string, flags: string[]): void {
  const cc = spawnSync('cc', ['-O2', '-Wall', ...flags, '-o', out, src], { encoding: 'utf8' });
  if (cc.error && (cc.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('no C compiler (cc) found: install one with `sudo apt-get install -y gcc` and run the bench again.');
  }
  if (cc.status !== 0) throw new Error(`cc failed to build ${src}:\n${cc.stderr}`);
}

async function buildChurn(): Promise<void> {
  churnBin = join(tmp, 'churn');
  compile(CHURN_SRC, churnBin, ['-pthread']);
}

async function buildExecs(): Promise<void> {
  execsBin = join(tmp, 'execs');
  compile(EXECS_SRC, execsBin, []);
}

/** fork + exec of /bin/true in a loop on the churn's CPU: runs busted's exec hook once per exec. */
async function execs(seconds: number): Promise<LoadResult> {
  const res = await run(execsBin, [String(seconds), String(CHURN_CPU)], (seconds + 30) * 1000);
  const line = res.stdout.trim().split('\n').pop() ?? '';
  if (!line.startsWith('{')) throw new Error(`execs failed (code ${res.code}): ${res.stderr.trim()}`);
  const out = JSON.parse(line) as { pid: number; execs: number; failed: number; seconds: number; rate: number };
  if (res.code !== 0) throw new Error(`execs: ${out.failed} of ${out.execs + out.failed} execs of /bin/true failed`);
  return { value: out.rate, pid: out.pid, connections: 0, failed: 0, detail: out };
}

/** The load's CPU for the churn figures (both threads of churn are pinned to it). */
const CHURN_CPU = 0;

async function churn(seconds: number): Promise<LoadResult> {
  const res = await run(churnBin, [String(seconds), '10000000', '4', String(CHURN_CPU)], (seconds + 30) * 1000);
  const line = res.stdout.trim().split('\n').pop() ?? '';
  if (!line.startsWith('{')) throw new Error(`churn failed (code ${res.code}): ${res.stderr.trim()}`);
  const out = JSON.parse(line) as { pid: number; connections: number; failed: number; incomplete: number; firstError: string; seconds: number; cps: number };
  if (res.code !== 0) throw new Error(`churn gave up after ${out.failed} failed connects (first error: ${out.firstError})`);
  return { value: out.cps, pid: out.pid, connections: out.connections, failed: out.failed, detail: out };
}

// ---------------------------------------------------------------------------------------------
// figures

interface Figure {
  id: FigureId;
  label: string;
  unit: string;
  /** minimum ratio, or null for a figure given for information */
  target: number | null;
  load: (seconds: number) => Promise<LoadResult>;
  show: (v: number) => string;
  /** pin busted to this CPU (null: let the scheduler place it) */
  bustedCpu: number | null;
  /** run busted with --all (every flow printed) rather than as by default (LLM flows only) */
  all: boolean;
}

const gbps = (bps: number) => `${(bps / 1e9).toFixed(2)} Gbit/s`;
const cps = (v: number) => `${Math.round(v).toLocaleString('en-US')} conn/s`;
const eps = (v: number) => `${Math.round(v).toLocaleString('en-US')} exec/s`;

const FIGURES: Figure[] = [
  { id: 'iperf-128k', label: 'iperf3 loopback, 128 KiB writes', unit: 'bit/s', target: 0.98, load: (s) => iperf(s, '128K'), show: gbps, bustedCpu: null, all: true },
  { id: 'iperf-1k', label: 'iperf3 loopback, 1 KiB writes', unit: 'bit/s', target: 0.94, load: (s) => iperf(s, '1K'), show: gbps, bustedCpu: null, all: true },
  { id: 'churn', label: 'connect/send/recv/close churn, busted --all', unit: 'conn/s', target: 0.95, load: churn, show: cps, bustedCpu: null, all: true },
  { id: 'churn-default', label: 'churn, busted by default (LLM flows only)', unit: 'conn/s', target: 0.95, load: churn, show: cps, bustedCpu: null, all: false },
  { id: 'churn-shared', label: 'churn, busted --all on the same CPU', unit: 'conn/s', target: null, load: churn, show: cps, bustedCpu: CHURN_CPU, all: true },
  { id: 'exec', label: 'fork+exec of /bin/true (the exec hook; with --bpf-stats its time per run)', unit: 'exec/s', target: null, load: execs, show: eps, bustedCpu: null, all: false },
];

interface MonitoredRun {
  value: number;
  connections: number;
  failed: number;
  startupMs: number;
  busted: MonitorReport;
  /** every connection the load made appears as a connect record, and nothing was lost */
  complete: boolean;
}

interface FigureResult {
  id: FigureId;
  label: string;
  unit: string;
  target: number | null;
  baseline: { runs: number[]; median: number };
  monitored: { runs: number[]; median: number; details: MonitoredRun[] };
  ratio: number;
  pairRatios: number[];
  meetsTarget: boolean | null;
  allReported: boolean;
  /** median CPU time busted used per connection of the load, in microseconds */
  bustedCpuUsPerConnection: number | null;
  /** with --bpf-stats: per program, median kernel ns per run and runs per second of load */
  bpf: { name: string; nsPerRun: number; runsPerSecond: number; runs: number; nsPerConnection: number | null }[] | null;
  loadavg: string;
}

/**
 * Per-hook targets of issue 8 for --bpf-stats: the hooks that run per send, per receive or per
 * packet (sock_send_length, sock_recv_length, the two cgroup_skb programs) <= 150 ns a run; the
 * lifecycle hooks (state changes, connect, sendmsg, release, exec) <= 1 µs a run.
 */
const PER_DATA_HOOKS = new Set(['busted_send', 'busted_recv', 'busted_egress', 'busted_ingress']);
/** Fewer runs than this in a figure are cold-cache one-offs (a load's own setup), not judged. */
const MIN_JUDGED_RUNS = 100;
/**
 * busted's iterators are not hooks: no kernel event runs them, user space walks the TCP sockets
 * with them now and then (the idle iterator, the census every 30 s), one run per socket met plus
 * one at the walk's end, which for the census judges all 65,536 counter slots (about 1.7 ms). A
 * mean per run then says how many sockets the walk met more than what it costs; a census's cost
 * is the census figure (bench/census.ts). Shown, not judged.
 */
const ITERATORS = new Set(['busted_idle', 'busted_census']);
function hookTarget(name: string): { kind: string; ns: number } | null {
  if (ITERATORS.has(name)) return null;
  return PER_DATA_HOOKS.has(name) ? { kind: 'per send/recv/packet', ns: 150 } : { kind: 'lifecycle', ns: 1000 };
}

/** The hook of busted's program `name`, as the floor names it (bench/floor.bpf.c: busted_X's empty twin is floor_X). */
const floorHook = (name: string): string | undefined => FLOOR_PROGRAM_HOOK[name.replace(/^busted_/, 'floor_')];

/** The kernel time of all of busted's programs per second of a figure's load (--bpf-stats), in ms. */
function kernelMsPerSecond(r: FigureResult): number {
  return (r.bpf ?? []).reduce((sum, p) => sum + p.nsPerRun * p.runsPerSecond, 0) / 1e6;
}

/** The floors measured: under the churn, and under one iperf3 128 KiB stream. */
interface Floors {
  churn: Floor | null;
  iperf: Floor | null;
}

function bpfTable(results: FigureResult[], floors: Floors): string | null {
  // the verdict is on ns/run as measured; "above floor" (ns/run less an empty program's on the
  // same tracepoint) is the program's own share, shown beside it
  const rows = [['figure', 'program', 'runs/s', 'ns/run', 'above floor', 'target', 'verdict']];
  for (const r of results) {
    for (const p of r.bpf ?? []) {
      if (p.runsPerSecond === 0 || p.runs < MIN_JUDGED_RUNS) continue;
      const target = hookTarget(p.name);
      // the 128 KiB stream's floor is its own (its writes evict the caches); 1 KiB writes do not
      const floor = r.id === 'iperf-128k' ? floors.iperf : floors.churn;
      const empty = floor?.programs.find((f) => f.tracepoint === floorHook(p.name));
      rows.push([
        r.id, p.name, p.runsPerSecond.toLocaleString('en-US'), String(p.nsPerRun), empty ? String(p.nsPerRun - empty.nsPerRun) : '-',
        target ? `<= ${target.ns} ns (${target.kind})` : '- (an iterator: per walk)', target ? (p.nsPerRun <= target.ns ? 'meets' : 'MISSES') : 'info',
      ]);
    }
  }
  if (rows.length === 1) return null;
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const fmt = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ');
  return [fmt(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(fmt)].join('\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const log = (s: string) => process.stdout.write(`${s}\n`);

function bpfSummary(mon: MonitoredRun[], seconds: number): FigureResult['bpf'] {
  const withStats = mon.filter((r) => r.busted.progs);
  if (!withStats.length) return null;
  const names = [...new Set(withStats.flatMap((r) => r.busted.progs!.map((p) => p.name)))];
  return names.map((name) => {
    const per = withStats.map((r) => ({ p: r.busted.progs!.find((x) => x.name === name), conns: r.connections }));
    const ok = per.filter((x): x is { p: ProgStat; conns: number } => !!x.p && x.p.runs > 0);
    return {
      name,
      nsPerRun: ok.length ? Math.round(median(ok.map((x) => x.p.ns / x.p.runs))) : 0,
      runsPerSecond: ok.length ? Math.round(median(ok.map((x) => x.p.runs / seconds))) : 0,
      runs: ok.length ? Math.round(median(ok.map((x) => x.p.runs))) : 0,
      nsPerConnection: ok.length && ok[0]!.conns > 2 ? Math.round(median(ok.map((x) => x.p.ns / x.conns))) : null,
    };
  });
}

async function measure(fig: Figure, opts: Options): Promise<FigureResult> {
  const where = fig.id.startsWith('churn') ? `; load on CPU ${CHURN_CPU}, busted ${fig.bustedCpu === null ? 'on any CPU' : `pinned to CPU ${fig.bustedCpu}`}` : '';
  const target = fig.target === null ? 'for information' : `target ratio >= ${fig.target}`;
  const loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
  const others = otherBusted();
  if (others.length) log(`note: another busted is running (pid ${others.join(', ')}): its programs see these loads too, baseline included.`);
  const settle = opts.settle > 0 ? `, the load ${opts.settle} s after busted attached` : '';
  log(`\n== ${fig.label} (${opts.runs} pairs of ${opts.seconds} s runs${settle}, ${target}${where}; load average ${loadavg.split(' ').slice(0, 3).join(' ')})`);
  await fig.load(Math.max(1, Math.round(opts.seconds / 2))); // warm-up, discarded
  const base: number[] = [];
  const mon: MonitoredRun[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const baselineFirst = i % 2 === 0;
    const baseline = async () => {
      const b = await fig.load(opts.seconds);
      base.push(b.value);
      log(`  run ${i + 1} baseline : ${fig.show(b.value)}${baselineFirst ? '' : ' (run after the monitored one below)'}`);
      return b;
    };
    const b = baselineFirst ? await baseline() : null;

    const busted = await startBusted(opts.busted, fig.bustedCpu, opts.bpfStats, fig.all, opts.bpfObject, opts.settle);
    let m: LoadResult;
    try {
      m = await fig.load(opts.seconds);
    } catch (err) {
      await busted.stop(0);
      throw err;
    }
    const rep = await busted.stop(m.pid, m.connections + m.failed);
    const bv = (b ?? (await baseline())).value;
    // --all: every connection printed; by default: none printed, every one counted as provider none
    const complete = fig.all
      ? rep.loadConnects === m.connections && rep.loadFailedConnects === m.failed && rep.lost === 0
      : rep.loadConnects + rep.loadFailedConnects + rep.loadCloses === 0 && rep.lost === 0 && (rep.quietCounted ?? 0) >= m.connections + m.failed;
    mon.push({ value: m.value, connections: m.connections, failed: m.failed, startupMs: busted.startupMs, busted: rep, complete });
    const perConn = rep.cpuSeconds !== null && m.connections > 2 ? `, ${Math.round((rep.cpuSeconds * 1e6) / m.connections)} µs/connection` : '';
    const cpu = rep.cpuSeconds === null ? '?' : `${rep.cpuSeconds.toFixed(2)} s${perConn}`;
    log(
      `  run ${i + 1} monitored: ${fig.show(m.value)}  (ratio ${(m.value / bv).toFixed(3)}; busted: ${rep.records.toLocaleString('en-US')} records, ` +
        `lost ${rep.lost}, cpu ${cpu}, attach ${Math.round(busted.startupMs)} ms)`,
    );
    log(fig.all
      ? `      reported: ${rep.loadConnects.toLocaleString('en-US')}/${m.connections.toLocaleString('en-US')} connects of pid ${m.pid}` +
        `, ${rep.loadCloses.toLocaleString('en-US')} closes${rep.loadUnseen ? ` (${rep.loadUnseen} found gone by the census: end unseen)` : ''}, ${rep.loadFailedConnects}/${m.failed} failed connects, lost ${rep.lost}` +
        ` -> ${complete ? 'all reported' : 'MISMATCH'}${rep.keptOutput ? ` (busted's output kept: ${rep.keptOutput})` : ''}`
      : `      not LLM traffic: ${rep.loadConnects + rep.loadCloses} records of pid ${m.pid} printed; counted as provider none: ` +
        `${rep.quietCounted?.toLocaleString('en-US') ?? '?'} (load: ${(m.connections + m.failed).toLocaleString('en-US')}) ` +
        `${rep.quietAfterMs === null ? '' : `${(rep.quietAfterMs / 1000).toFixed(1)} s after the load, `}lost ${rep.lost}` +
        ` -> ${complete ? 'all counted' : 'MISMATCH'}`);
    if (rep.firstLostAfterMs !== null) log(`      first lost record ${(rep.firstLostAfterMs / 1000).toFixed(1)} s after busted attached`);
    if (rep.progs) {
      log(`      kernel: ${rep.progs.filter((p) => p.runs > 0).map((p) => {
        const ns = Math.round(p.ns / p.runs);
        const target = hookTarget(p.name);
        const judged = !target ? '' : p.runs >= MIN_JUDGED_RUNS ? (ns > target.ns ? ' (over target)' : '') : ' (too few runs to judge: cold)';
        return `${p.name} ${p.runs.toLocaleString('en-US')} runs x ${ns} ns${judged}`;
      }).join(', ')}`);
    }
    if (rep.exitCode !== 0 || rep.stderr) log(`      busted exit ${rep.exitCode}; stderr: ${rep.stderr || '-'}`);
  }
  const bm = median(base);
  const mm = median(mon.map((r) => r.value));
  const ratio = mm / bm;
  const perConn = mon.filter((r) => r.busted.cpuSeconds !== null && r.connections > 2).map((r) => (r.busted.cpuSeconds! * 1e6) / r.connections);
  return {
    id: fig.id,
    label: fig.label,
    unit: fig.unit,
    target: fig.target,
    baseline: { runs: base, median: bm },
    monitored: { runs: mon.map((r) => r.value), median: mm, details: mon },
    ratio,
    pairRatios: mon.map((r, i) => r.value / base[i]!),
    meetsTarget: fig.target === null ? null : ratio >= fig.target,
    allReported: mon.every((r) => r.complete),
    bustedCpuUsPerConnection: perConn.length ? Math.round(median(perConn) * 10) / 10 : null,
    bpf: bpfSummary(mon, opts.seconds),
    loadavg,
  };
}

// ---------------------------------------------------------------------------------------------
// machine and preflight

/** How the kernel answers Meltdown: "Mitigation: PTI" when it isolates page tables. */
const MELTDOWN = '/sys/devices/system/cpu/vulnerabilities/meltdown';

function machine(bustedPath: string) {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const iperfVersion = spawnSync('iperf3', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim() ?? null;
  // the commit of the busted that is measured (its checkout: the folder above bin/busted.js)
  const bustedRoot = dirname(dirname(resolve(bustedPath)));
  const git = spawnSync('git', ['-C', bustedRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['-C', bustedRoot, 'status', '--porcelain', '--', 'src', 'bpf', 'bin'], { encoding: 'utf8' });
  return {
    nproc: availableParallelism(),
    kernel: release(),
    // a guest that isolates page tables on a CPU without PCID starts every kernel entry with an
    // empty TLB: each page a program touches costs a walk (bench/README.md, session 31)
    isolation: existsSync(MELTDOWN) ? readFileSync(MELTDOWN, 'utf8').trim() : null,
    pcid: /^flags\s*:.*\bpcid\b/m.test(cpuinfo),
    cpu: model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    iperf3: iperfVersion,
    loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
    commit: git.status === 0 ? git.stdout.trim() + (dirty.stdout.trim() ? ' (+ uncommitted changes in src/bpf/bin)' : '') : null,
  };
}

/** Other busted processes (process title `busted`) whose programs would also see the load. */
function otherBusted(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || children.size && [...children].some((c) => c.pid === Number(d))) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'busted') pids.push(Number(d));
    } catch {
      // gone
    }
  }
  return pids;
}

function preflight(opts: Options, ids: Set<FigureId>): void {
  if (process.geteuid?.() !== 0) {
    throw new Error('busted needs root to attach its programs: run the bench as root (sudo npm run bench).');
  }
  if ((ids.has('iperf-128k') || ids.has('iperf-1k')) && spawnSync('iperf3', ['--version']).error) {
    throw new Error(
      'iperf3 is not installed: install it with `sudo apt-get install -y iperf3` (Debian/Ubuntu) or `sudo dnf install -y iperf3` ' +
        '(Fedora), or run only the churn figure with `npm run bench -- --only churn`.',
    );
  }
  void opts;
}

// ---------------------------------------------------------------------------------------------

function table(results: FigureResult[]): string {
  const rows = [
    ['figure', 'baseline (median)', 'monitored (median)', 'ratio', 'target', 'verdict', 'median pair ratio', 'all reported, lost 0'],
    ...results.map((r) => {
      const f = FIGURES.find((x) => x.id === r.id)!;
      const verdict = r.meetsTarget === null ? 'info' : r.meetsTarget ? 'meets' : 'MISSES';
      // the verdict is on the ratio of the medians; the median of the pairs' own ratios is shown
      // beside it (each pair ran back to back, so it is less moved by the VM's slower minutes)
      return [r.label, f.show(r.baseline.median), f.show(r.monitored.median), r.ratio.toFixed(3), r.target === null ? '-' : `>= ${r.target}`, verdict,
        median(r.pairRatios).toFixed(3), r.allReported ? 'yes' : 'NO'];
    }),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const fmt = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ');
  return [fmt(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(fmt)].join('\n');
}

/** Empty programs' ns/run under a load: what --bpf-stats adds to every hook's figure there. */
interface Floor {
  /** per hook (sock_send_length, …, cgroup/sock_release) that ran: runs and ns per run */
  programs: { tracepoint: string; runs: number; nsPerRun: number }[];
  /** why it was not measured */
  skipped?: string;
}

/** bench/floor.bpf.c built with clang into the bench's folder (once): its path, or why not. */
let floorObject: { path: string } | { error: string } | null = null;
function buildFloor(): { path: string } | { error: string } {
  if (floorObject) return floorObject;
  const path = join(tmp, 'floor.bpf.o');
  const cc = spawnSync('clang', ['-O2', '-g', '-Wall', '-target', 'bpf', '-c', FLOOR_SRC, '-o', path], { encoding: 'utf8' });
  floorObject = cc.error || cc.status !== 0 ? { error: `clang could not build ${FLOOR_SRC}: ${cc.error?.message ?? cc.stderr.trim()}` } : { path };
  return floorObject;
}

/** The hook of each empty program in bench/floor.bpf.c. */
const FLOOR_PROGRAM_HOOK: Record<string, string> = {
  floor_send: 'sock_send_length', floor_recv: 'sock_recv_length', floor_set_state: 'inet_sock_set_state', floor_sk_error: 'inet_sk_error_report', floor_exec: 'sched_process_exec',
  floor_connect4: 'cgroup/connect4', floor_connect6: 'cgroup/connect6', floor_sendmsg4: 'cgroup/sendmsg4', floor_sendmsg6: 'cgroup/sendmsg6',
  floor_release: 'cgroup/sock_release',
};

/**
 * --bpf-stats: bench/floor.bpf.c (empty programs on every hook busted attaches at start), built
 * with clang, attached by this process (the cgroup ones to the cgroup v2 root), timed over a churn
 * run (or an iperf3 128 KiB one) without busted. An empty program's ns/run is the statistics' own
 * clock reads and the call, with the caches as that load leaves them: a 128 KiB write between two
 * sends evicts what a program reads, which the churn's small writes do not.
 */
async function measureFloor(seconds: number, load: 'churn' | 'iperf-128k' = 'churn'): Promise<Floor> {
  const built = buildFloor();
  if ('error' in built) return { programs: [], skipped: built.error };
  const root = findCgroup2Mount();
  if (root === null) return { programs: [], skipped: 'cgroup v2 is not mounted' };
  const bpf = BpfObject.open(built.path);
  const cg = openSync(root, 'r');
  try {
    bpf.load();
    for (const prog of bpf.programs()) {
      if (isCgroupSection(prog.section)) bpf.attachCgroup(prog, cg);
      else bpf.attach(prog);
    }
    const before = progStats(process.pid);
    if (load === 'churn') await churn(seconds);
    else await iperf(seconds, '128K');
    const after = progStats(process.pid);
    return {
      programs: after.filter((p) => p.name.startsWith('floor_')).map((p) => {
        const b = before.find((q) => q.id === p.id);
        const runs = p.runs - (b?.runs ?? 0);
        return { tracepoint: FLOOR_PROGRAM_HOOK[p.name] ?? p.name, runs, nsPerRun: runs > 0 ? Math.round((p.ns - (b?.ns ?? 0)) / runs) : 0 };
      }).filter((p) => p.runs > 0),
    };
  } catch (err) {
    return { programs: [], skipped: (err as Error).message };
  } finally {
    bpf.close();
    closeSync(cg);
  }
}

/** Runs one of the separate bench scripts (its lines shown as they come) and reads its --json file. */
async function runScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<unknown> {
  const json = join(tmp, `${script.replace(/\W/g, '-')}.json`);
  const child = track(spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args, '--json', json], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  }));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (l) => log(`  ${l}`));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`bench/${script} failed (exit ${code}): ${stderr.trim() || 'no message'}`);
  return JSON.parse(await readFile(json, 'utf8')) as unknown;
}

interface CpuFigure {
  mode: 'json' | 'default';
  what: string;
  pct: number;
  target: number;
  extra: string;
  /** Loaded: the whole load's share, V8's warm-up for it included (bench/cpu.ts). */
  wholePct?: number;
  /** Loaded: each run's share (the figure is their median) */
  runsPct?: number[];
}
interface KernelFigure {
  rounds: number;
  seconds: number;
  all: boolean;
  none: number;
  subjects: { label: string; median: number; ratio: number; roundRatio: number }[];
}
interface Extras {
  /** Figures that could not be measured, and why (the others are still printed and written). */
  failed?: { id: ExtraId; error: string }[];
  hooks?: FigureResult[];
  /** bench/attach-cost.ts as busted configures its programs by default (and the empty programs) */
  kernel?: KernelFigure;
  /** the same as `busted --all` configures them */
  kernelAll?: KernelFigure;

  cpu?: { figures: CpuFigure[] };
  counters?: { flows: number; targetMs: number; medianMs: { steady: number; batch: number; single: number } };
  census?: { conns: number; periodMs: number; medianMs: { open: number; empty: number }; cpuPercent: number; closedByCensus: number };
  tui?: { processes: number; flows: number; targetMs: number; screens: { columns: number; rows: number; frameMs: { median: number; p95: number; max: number } }[] };
}

/** The figures of `extras` that are not ratios, one row each. */
function extraTable(x: Extras): string | null {
  const rows = [['figure', 'value', 'target', 'verdict']];
  const value = (k: KernelFigure['subjects'][number]) => `${k.roundRatio.toFixed(3)} (ratio of the medians ${k.ratio.toFixed(3)})`;
  for (const k of x.kernel?.subjects ?? []) {
    if (k.label === 'empty') continue;
    rows.push([
      `churn with busted's kernel programs alone, as by default (${x.kernel!.rounds} interleaved rounds of ${x.kernel!.seconds} s windows)`,
      value(k), '>= 0.95', k.roundRatio >= 0.95 ? 'meets' : 'MISSES',
    ]);
  }
  for (const k of x.kernelAll?.subjects ?? []) rows.push(['  the same, configured as by --all (one BRIEF record per connection)', value(k), '-', 'info']);
  for (const k of x.kernel?.subjects ?? []) {
    if (k.label === 'empty') rows.push(['  empty programs on the same hooks (the kernel\'s dispatch alone: bench/floor.bpf.c)', value(k), '-', 'info']);
  }

  for (const f of x.cpu?.figures ?? []) {
    const who = f.mode === 'json' ? 'busted --format json --all' : 'busted (default)';
    const runs = f.runsPct && f.runsPct.length > 1 ? ` (median of ${f.runsPct.map((x) => x.toFixed(2)).join(', ')})` : '';
    rows.push([`busted's CPU, ${who}, ${f.what}${f.wholePct === undefined ? '' : ', steady'}`, `${f.pct.toFixed(2)} % of a core${runs}`, `<= ${f.target} %`, f.pct <= f.target ? 'meets' : 'MISSES']);
    if (f.wholePct !== undefined) rows.push(['  the same, the whole load (V8 compiling for it in its first seconds included)', `${f.wholePct.toFixed(2)} % of a core`, '-', 'info']);
  }
  if (x.counters) {
    const m = x.counters.medianMs;
    rows.push([`reading ${x.counters.flows.toLocaleString('en-US')} flows' counters, batch (mmap scan)`, `${m.steady.toFixed(2)} ms`, `<= ${x.counters.targetMs} ms`, m.steady <= x.counters.targetMs ? 'meets' : 'MISSES']);
    rows.push(['  the same one by one (the former hash: get_next_key + lookup)', `${m.single.toFixed(2)} ms`, '-', 'info']);
  }
  if (x.census) {
    const c = x.census;
    rows.push([`one census, ${c.conns.toLocaleString('en-US')} open connections (every ${c.periodMs / 1000} s: ${c.cpuPercent.toFixed(3)} % of a core)`, `${c.medianMs.open.toFixed(2)} ms`, '-', c.closedByCensus === 0 ? 'info' : `CLOSED ${c.closedByCensus}`]);
    rows.push(['  the same with no socket open (judging the 65,536 slots)', `${c.medianMs.empty.toFixed(2)} ms`, '-', 'info']);
  }
  for (const sc of x.tui?.screens ?? []) {
    const judged = sc.columns === 80 && sc.rows === 24;
    rows.push([
      `busted-top frame, ${x.tui!.processes.toLocaleString('en-US')} processes / ${x.tui!.flows.toLocaleString('en-US')} flows, ${sc.columns}x${sc.rows} (median)`,
      `${sc.frameMs.median.toFixed(1)} ms`, judged ? `<= ${x.tui!.targetMs} ms` : '-', judged ? (sc.frameMs.median <= x.tui!.targetMs ? 'meets' : 'MISSES') : 'info',
    ]);
  }
  if (rows.length === 1) return null;
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const fmt = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ');
  return [fmt(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(fmt)].join('\n');
}

/** An earlier run's baselines (no busted in them), read before this run may overwrite the file. */
interface Reference {
  file: string;
  date: string;
  commit: string | null;
  kernel: string | null;
  mode: string;
  baselines: Map<string, { label: string; median: number }>;
}

function readReference(file: string): Reference | string {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as {
      date?: unknown; mode?: unknown; machine?: { commit?: unknown; kernel?: unknown }; figures?: { id?: unknown; label?: unknown; baseline?: { median?: unknown } }[];
    };
    const baselines = new Map<string, { label: string; median: number }>();
    for (const f of Array.isArray(r.figures) ? r.figures : []) {
      const m = f?.baseline?.median;
      if (typeof f?.id === 'string' && typeof m === 'number' && m > 0) baselines.set(f.id, { label: String(f.label ?? f.id), median: m });
    }
    if (typeof r.date !== 'string' || baselines.size === 0) return `${file} has no baselines to compare with`;
    const commit = typeof r.machine?.commit === 'string' ? r.machine.commit : null;
    const kernel = typeof r.machine?.kernel === 'string' ? r.machine.kernel : null;
    return { file, date: r.date, commit, kernel, mode: String(r.mode ?? '?'), baselines };
  } catch (err) {
    return `${file} could not be read: ${(err as Error).message}`;
  }
}

/** A baseline below this factor of the reference's: the machine ran slower on that kind of load. */
const SLOW_FACTOR = 0.9;

/** This run's baselines against the reference's: how fast the machine ran, without busted. */
function speedAgainst(ref: Reference, results: FigureResult[]) {
  const rows = results.flatMap((r) => {
    const was = ref.baselines.get(r.id);
    if (!was) return [];
    const fig = FIGURES.find((f) => f.id === r.id)!;
    return [{ id: r.id, label: r.label, median: r.baseline.median, reference: was.median, factor: r.baseline.median / was.median, show: fig.show }];
  });
  if (rows.length === 0) return null;
  const slow = rows.filter((x) => x.factor < SLOW_FACTOR);
  const lines = [
    `the machine against the reference run (${ref.file}: ${ref.mode}, ${ref.date}, commit ${ref.commit ?? '?'}): the baselines, which run without busted`,
    ...rows.map((x) => `  ${x.label}: ${x.show(x.median)} against ${x.show(x.reference)} (x${x.factor.toFixed(2)})`),
    slow.length > 0
      ? `  below x${SLOW_FACTOR.toFixed(2)}: ${slow.map((x) => x.id).join(', ')}. The machine ran slower than in the reference run on such loads; the absolute figures (ns per hook run, CPU %, frame ms) can slow with it, and are then not comparable with that run's`
      : `  none below x${SLOW_FACTOR.toFixed(2)}: the machine ran about as fast as in the reference run, or faster`,
  ];
  if (ref.kernel !== null && ref.kernel !== release()) {
    lines.push(`  the reference run's kernel was ${ref.kernel}, this one is ${release()}: the hooks' costs may differ with the build`);
  }
  return { lines, json: { file: ref.file, date: ref.date, commit: ref.commit, kernel: ref.kernel, slow: slow.map((x) => x.id), baselines: rows.map(({ show: _, ...x }) => x) } };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const reference = existsSync(opts.reference) ? readReference(opts.reference) : null;
  const figures = FIGURES.filter((f) => !opts.only || opts.only.has(f.id));
  const extraIds = EXTRA_IDS.filter((id) => !opts.only || opts.only.has(id));
  const extras: Extras = {};
  preflight(opts, new Set(figures.map((f) => f.id)));
  const m = machine(opts.busted);
  log(`busted benchmark (${opts.quick ? 'quick' : 'full'}: ${opts.runs} alternating pairs of ${opts.seconds} s runs per figure` +
    `${opts.settle > 0 ? `; each monitored load starts ${opts.settle} s after busted attached (--settle)` : ''})`);
  log(`machine: ${m.nproc} CPUs, ${m.cpu}, kernel ${m.kernel}, ${m.memGiB} GiB, node ${m.node}, ${m.iperf3 ?? 'no iperf3'}` +
    (m.isolation?.includes('PTI') ? `; page-table isolation on (${m.pcid ? 'with' : 'without'} PCID)` : ''));
  log(`busted: ${opts.busted} (commit ${m.commit ?? '?'})${opts.bpfObject ? `, eBPF object ${opts.bpfObject}` : ''}; load average at start: ${m.loadavg}`);
  const others = otherBusted();
  if (others.length) log(`note: another busted is running (pid ${others.join(', ')}): its programs also see the loads, baseline included.`);
  const load1 = Number(m.loadavg.split(' ')[0]);
  if (load1 > m.nproc / 4) {
    log(`note: the machine is busy (1-minute load average ${load1} on ${m.nproc} CPUs): other work competes with the runs and the ratios will be noisy.`);
  }

  tmp = await mkdtemp(join(tmpdir(), 'busted-bench-'));
  const started = new Date();
  const results: FigureResult[] = [];
  const floors: Floors = { churn: null, iperf: null };
  const hookPairs = opts.quick ? 1 : 3;
  if (opts.bpfStats) {
    enableBpfStats();
    log(`kernel.bpf_stats_enabled set to 1 for the bench (was ${bpfStatsBefore}); ratios from this run include its cost.`);
  }
  try {
    if (figures.some((f) => f.id.startsWith('churn')) || opts.bpfStats || extraIds.includes('hooks')) await buildChurn();
    if (figures.some((f) => f.id === 'exec')) await buildExecs();
    for (const fig of figures) results.push(await measure(fig, opts));
    if (opts.bpfStats) {
      floors.churn = await measureFloor(Math.min(opts.seconds, 5));
      if (figures.some((f) => f.id === 'iperf-128k')) floors.iperf = await measureFloor(Math.min(opts.seconds, 5), 'iperf-128k');
    }
    if (extraIds.includes('hooks') && !opts.bpfStats) {
      // the ratios above ran without the statistics (they add to every run): the kernel time
      // per hook run comes from more pairs in each churn mode with them on, each program's
      // median over their monitored runs (one run's mean moved by ±10 ns between runs here)
      enableBpfStats();
      log(`\n== kernel time per hook run: ${hookPairs === 1 ? 'one churn pair' : `${hookPairs} churn pairs`} in each mode and one iperf3 128 KiB pair with kernel.bpf_stats_enabled (was ${bpfStatsBefore}), and the floor`);
      try {
        extras.hooks = [];
        for (const id of ['churn-default', 'churn'] as const) extras.hooks.push(await measure(FIGURES.find((f) => f.id === id)!, { ...opts, runs: hookPairs, bpfStats: true }));
        // and one iperf3 128 KiB pair: busted's kernel time per second of it, which its whole
        // runs' ratio (pairs spread ±20 % here) cannot resolve
        const withIperf = !spawnSync('iperf3', ['--version']).error;
        if (withIperf) extras.hooks.push(await measure(FIGURES.find((f) => f.id === 'iperf-128k')!, { ...opts, runs: 1, bpfStats: true }));
        floors.churn = await measureFloor(Math.min(opts.seconds, 5));
        if (withIperf) floors.iperf = await measureFloor(Math.min(opts.seconds, 5), 'iperf-128k');
      } finally {
        restoreBpfStats();
      }
    }
    const quick = opts.quick ? ['--quick'] : [];
    // a script that fails (a missing compiler, a busy port) costs its own figure, not the run's
    const script = async (id: ExtraId, go: () => Promise<unknown>): Promise<unknown> => {
      try {
        return await go();
      } catch (err) {
        (extras.failed ??= []).push({ id, error: (err as Error).message });
        log(`  not measured: ${(err as Error).message}`);
        return undefined;
      }
    };
    if (extraIds.includes('kernel')) {
      const rounds = opts.quick ? 8 : 20;
      const object = opts.bpfObject ? [`busted=${opts.bpfObject}`] : [];
      const built = buildFloor();
      const floorArgs = 'path' in built ? ['--floor', built.path] : [];
      if ('error' in built) log(`note: no empty programs to compare with: ${built.error}`);
      log(`\n== the churn with busted's kernel programs alone, interleaved 1 s windows (bench/attach-cost.ts --rounds ${rounds}${floorArgs.length ? ' --floor' : ''})`);
      extras.kernel = (await script('kernel', () => runScript('attach-cost.ts', ['--rounds', String(rounds), ...floorArgs, ...object]))) as Extras['kernel'];
      log(`\n== the same, configured as busted --all configures them (bench/attach-cost.ts --rounds ${rounds} --all)`);
      extras.kernelAll = (await script('kernel', () => runScript('attach-cost.ts', ['--rounds', String(rounds), '--all', ...object]))) as Extras['kernelAll'];
    }
    if (extraIds.includes('cpu')) {
      log(`\n== busted's own CPU at 10,000 connections/s and idle (bench/cpu.ts${opts.quick ? ' --quick' : ''})`);
      extras.cpu = (await script('cpu', () => runScript('cpu.ts', quick))) as Extras['cpu'];
    }
    if (extraIds.includes('counters')) {
      log(`\n== reading 16,384 flows' counters in one tick (bench/counters.ts${opts.quick ? ' --quick' : ''})`);
      extras.counters = (await script('counters', () => runScript('counters.ts', quick))) as Extras['counters'];
    }
    if (extraIds.includes('census')) {
      log(`\n== one census: the second witness of connection ends (bench/census.ts${opts.quick ? ' --quick' : ''})`);
      extras.census = (await script('census', () => runScript('census.ts', quick))) as Extras['census'];
    }
    if (extraIds.includes('tui')) {
      log(`\n== busted-top frame time (bench/tui-frame.tsx, React's production build${opts.quick ? ', 20 frames' : ''})`);
      extras.tui = (await script('tui', () => runScript('tui-frame.tsx', opts.quick ? ['--frames', '20'] : [], { NODE_ENV: 'production' }))) as Extras['tui'];
    }
  } finally {
    restoreBpfStats();
    await rm(tmp, { recursive: true, force: true });
    tmp = '';
    floorObject = null;
  }

  if (results.length) log(`\n${table(results)}`);
  const kernelTable = bpfTable([...results, ...(extras.hooks ?? [])], floors);
  if (kernelTable) log(`\nkernel time per program run (${opts.bpfStats ? '--bpf-stats; medians over the monitored runs' : `${hookPairs === 1 ? 'one churn pair per mode' : `${hookPairs} churn pairs per mode (medians)`} and one iperf3 128 KiB pair with the statistics on`}, statistics overhead included):\n${kernelTable}`);
  const floorLine = (f: Floor) => f.programs.filter((p) => p.runs >= MIN_JUDGED_RUNS).map((p) => `${p.nsPerRun} ns (${p.tracepoint}, ${p.runs.toLocaleString('en-US')} runs)`).join(', ');
  if (floors.churn?.skipped) log(`\nthe statistics' floor was not measured: ${floors.churn.skipped}`);
  else if (floors.churn) {
    log(`\nthe statistics' floor: an empty program on the same hooks during the churn (without busted) took ${floorLine(floors.churn)}.`);
    if (floors.iperf?.skipped) log(`the floor under iperf3 was not measured: ${floors.iperf.skipped}`);
    else if (floors.iperf) log(`during one iperf3 128 KiB stream: ${floorLine(floors.iperf)} (the iperf3 128 KiB rows' floor).`);
    log('that much of every ns/run above is the clock reads kernel.bpf_stats_enabled adds around each run, which no program can remove.');
  }
  for (const r of [...results, ...(extras.hooks ?? [])].filter((f) => f.id.startsWith('iperf') && f.bpf)) {
    const ms = kernelMsPerSecond(r);
    log(`\n${r.label}: busted's programs ran ${ms.toFixed(1)} ms per second of the load (statistics' clock reads included), ${(ms / 10 / availableParallelism()).toFixed(2)} % of the ${availableParallelism()} CPUs it keeps busy.`);
  }
  const otherFigures = extraTable(extras);
  if (otherFigures) log(`\n${otherFigures}`);
  for (const f of extras.failed ?? []) log(`not measured: ${f.id} (${f.error})`);
  if (results.length) log(`\nratio = median(monitored) / median(baseline) over ${opts.runs} alternating runs; busted ran as \`busted --format json --all\` (churn-default and exec: \`busted --format json --metrics PORT\`).`);
  const speed = reference && typeof reference !== 'string' ? speedAgainst(reference, results) : null;
  if (typeof reference === 'string') log(`\nthe machine's speed is not told: ${reference}`);
  else if (speed) log(`\n${speed.lines.join('\n')}`);
  const json = {
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    mode: opts.quick ? 'quick' : 'full',
    bpfStats: opts.bpfStats,
    bpfObject: opts.bpfObject,
    ...(floors.churn ? { bpfFloor: floors.churn } : {}),
    ...(floors.iperf ? { bpfFloorIperf: floors.iperf } : {}),
    runs: opts.runs,
    seconds: opts.seconds,
    settleS: opts.settle,
    machine: { ...m, loadavgEnd: readFileSync('/proc/loadavg', 'utf8').trim() },
    figures: results,
    ...(speed ? { speedAgainstReference: speed.json } : {}),
    ...extras,
  };
  await writeFile(opts.out, `${JSON.stringify(json, null, 2)}\n`);
  log(`results written to ${opts.out}`);
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    await cleanupAndExit(1);
  },
);
