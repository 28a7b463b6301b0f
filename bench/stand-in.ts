/**
 * Does busted's process cost a load anything beyond its kernel programs? Whole churn runs
 * (bench/churn.c, both threads on CPU 0, S seconds each), rotated round by round among four
 * subjects, each started before its run and stopped after it, as `npm run bench` starts busted:
 *
 *   none      nothing attached;
 *   programs  busted's programs loaded, configured and attached as busted does by default, by a
 *             stand-in process that then does nothing (this script with --hold programs);
 *   empty     empty programs on the same hooks (bench/floor.bpf.c; --hold empty): the kernel's
 *             dispatch alone;
 *   busted    busted by default (`busted --format json --metrics`), as the churn-default figure
 *             runs it;
 *   settled   with --settle S: the same, its run started S seconds after busted is ready (past
 *             the work busted does in its first seconds: V8 compiling, the identity scans).
 *
 * Prints each round, then per subject its median against none's median and the median of the
 * per-round ratios. busted against programs is what busted's process adds (its ring reads, its
 * timers, its memory); programs against none is bench/attach-cost.ts's figure, here measured as
 * whole runs instead of interleaved windows. Root; loopback only.
 *
 *   sudo npx tsx bench/stand-in.ts [--rounds N] [--seconds S] [--settle S] [--json FILE]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BpfObject } from '../src/bpf/object.js';
import { findCgroup2Mount } from '../src/bpf/preflight.js';
import { OBJECT_PATH } from '../src/bpf/probe.js';
import { runChurn } from '../test/helpers/churn.js';
import { atStart, attachPrograms, floorAtStart, loadAsBusted } from './programs.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = join(dirname(HERE), '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '12' }, seconds: { type: 'string', default: '4' },
    json: { type: 'string' }, // FILE: the figures also as JSON
    settle: { type: 'string' }, // S: also busted with its run started S seconds after it is ready
    hold: { type: 'string' }, // programs|empty OBJECT (internal: the stand-in process)
    object: { type: 'string' },
  },
  strict: true,
});

if (process.getuid?.() !== 0) {
  console.error('stand-in: run as root (it loads and attaches eBPF programs)');
  process.exit(1);
}
const cgroup = findCgroup2Mount();
if (cgroup === null) {
  console.error('stand-in: cgroup v2 is not mounted');
  process.exit(1);
}

if (values.hold !== undefined) {
  // the stand-in: attach, say so, and do nothing until told to stop
  const empty = values.hold === 'empty';
  const obj = empty ? BpfObject.open(values.object!) : loadAsBusted(OBJECT_PATH, false);
  if (empty) obj.load();
  const cg = openSync(cgroup, 'r');
  attachPrograms(obj, empty ? floorAtStart : atStart, cg);
  const stop = () => {
    obj.close();
    closeSync(cg);
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.write('ready\n');
  setInterval(() => {}, 1 << 30);
} else {
  await main();
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as { port: number }).port;
  await new Promise((res) => srv.close(res));
  return port;
}

async function main(): Promise<void> {
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  if (!(rounds > 0) || !(seconds > 0)) {
    console.error('stand-in: --rounds and --seconds take positive numbers');
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'busted-stand-in-'));
  const floorObj = join(dir, 'floor.bpf.o');
  execFileSync('clang', ['-O2', '-g', '-Wall', '-target', 'bpf', '-c', join(ROOT, 'bench', 'floor.bpf.c'), '-o', floorObj]);
  const churn = async () => (await runChurn({ seconds, cpu: 0 })).cps;
  const children = new Set<ChildProcess>();
  /** A churn run while a process started with argv runs: started until `ready` says so, stopped (SIGINT) after. */
  const during = async (argv: string[], ready: (out: string) => boolean, settleMs = 0): Promise<number> => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    try {
      await new Promise<void>((res, rej) => {
        child.stdout!.setEncoding('utf8').on('data', (d: string) => {
          if (out.length < 65536) out += d; // busted by default prints nothing of the churn
          if (ready(out)) res();
        });
        void exited.then(() => rej(new Error(`${argv.slice(0, 4).join(' ')} exited before it was ready: ${err.trim()}`)));
      });
      if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
      return await churn();
    } finally {
      child.kill('SIGINT');
      await exited;
      children.delete(child);
    }
  };
  const self = [process.execPath, '--import', 'tsx', HERE];
  const subjects: Record<string, () => Promise<number>> = {
    none: churn,
    programs: () => during([...self, '--hold', 'programs'], (o) => o.includes('ready\n')),
    empty: () => during([...self, '--hold', 'empty', '--object', floorObj], (o) => o.includes('ready\n')),
    busted: async () => {
      const argv = [process.execPath, join(ROOT, 'bin', 'busted.js'), '--format', 'json', '--metrics', `127.0.0.1:${await freePort()}`];
      return during(argv, (o) => o.includes('"type":"session"'));
    },
  };
  const settle = values.settle === undefined ? 0 : Number(values.settle);
  if (!(settle >= 0)) {
    console.error('stand-in: --settle takes a number of seconds');
    process.exit(2);
  }
  if (settle > 0) {
    subjects.settled = async () => {
      const argv = [process.execPath, join(ROOT, 'bin', 'busted.js'), '--format', 'json', '--metrics', `127.0.0.1:${await freePort()}`];
      return during(argv, (o) => o.includes('"type":"session"'), settle * 1000);
    };
  }
  const names = Object.keys(subjects);
  const rates: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const onSignal = () => {
    for (const c of children) c.kill('SIGINT');
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  try {
    console.log(`stand-in: ${rounds} rounds of ${names.join(', ')} (rotated), ${seconds} s churn runs on CPU 0`);
    await churn(); // warm-up
    for (let r = 0; r < rounds; r++) {
      const line: string[] = [];
      for (let i = 0; i < names.length; i++) {
        const n = names[(i + r) % names.length]!;
        const cps = await subjects[n]!();
        rates[n]!.push(cps);
        line.push(`${n} ${cps.toFixed(0)}`);
      }
      console.log(`round ${r + 1}: ${line.join('  ')}`);
    }
    const base = median(rates.none!);
    console.log(`\nnone: median ${base.toFixed(0)} conn/s`);
    const out = names.filter((n) => n !== 'none').map((n) => {
      const ratio = median(rates[n]!) / base;
      const roundRatio = median(rates[n]!.map((x, i) => x / rates.none![i]!));
      console.log(`${n}: median ${median(rates[n]!).toFixed(0)} conn/s, ratio ${ratio.toFixed(3)}, median of per-round ratios ${roundRatio.toFixed(3)}`);
      return { label: n, median: median(rates[n]!), ratio, roundRatio };
    });
    const vs = median(rates.busted!.map((x, i) => x / rates.programs![i]!));
    console.log(`busted against its programs alone: median of per-round ratios ${vs.toFixed(3)}`);
    if (rates.settled) {
      const settledVs = median(rates.settled.map((x, i) => x / rates.programs![i]!));
      console.log(`busted ${settle} s after it is ready, against its programs alone: median of per-round ratios ${settledVs.toFixed(3)}`);
    }
    if (values.json) writeFileSync(values.json, `${JSON.stringify({ rounds, seconds, none: base, subjects: out, bustedVsPrograms: vs, rates }, null, 2)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
