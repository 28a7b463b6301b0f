/**
 * busted's user space alone: CPU per connection of the whole headless pipeline (ring record
 * decoding, identity, classification, the flow table, the printer and the output), fed by a
 * stand-in for the kernel probe that hands the engine the records of a churn (one client process
 * keeping 4 connections open, 64 bytes each way, to a loopback port, as bench/churn.c makes
 * them): one BRIEF record per connection, as the kernel reports such short non-LLM connections
 * to busted --all (--two-records: a CONNECT and a CLOSE each, as it reports LLM ones). No eBPF program is loaded, so this measures what bench/cpu.ts
 * measures minus the kernel's side (ring reads, write(2) of the output), without its noise, and
 * is what to profile (`node --cpu-prof --import tsx bench/pipeline.ts`).
 *
 *   npx tsx bench/pipeline.ts [--connections N] [--rate R] [--default] [--two-records] [--threads T]
 *
 * --rate R (default 10,000/s): records are handed over as the kernel would at R connections/s,
 * in the engine's own polls (every 100 ms: the stand-in tells it the ring is nearly empty); --rate 0: as fast as the engine takes them. Output:
 * busted --format json --all through busted's StdoutLines into /dev/null (--default: LLM flows
 * only, so nothing of the churn is printed; the stand-in has no kernel quiet mode, so every
 * connection still goes through the engine, as it does by default where the cgroup programs
 * cannot be attached). --threads T: the client's connects come from T threads taking turns (a
 * thread pool's; default 1, as bench/churn.c's). Printed: µs of CPU per connection and, at R/s,
 * the share of one core it means, and the CPU of each thread. Needs no root.
 */
import { spawn } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { EVENT, Kind, OWNER, type KernelEvent, decodeEvent } from '../src/bpf/abi.js';
import { startEngine } from '../src/core/engine.js';
import { CLOCK_TICKS } from '../src/core/identity.js';
import { parseStat } from '../src/core/identity-proc.js';
import { Store, turnClock } from '../src/core/store.js';
import type { EventRecord } from '../src/core/records.js';
import { Printer } from '../src/sinks/printer.js';
import { StdoutLines } from '../src/sinks/stdout-lines.js';
import { standInProbe } from '../test/helpers/standin-probe.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} takes a number, not ${process.argv[i + 1]}`);
  return v;
}
const CONNECTIONS = arg('--connections', 200_000);
const RATE = arg('--rate', 10_000);
const ALL = !process.argv.includes('--default');
/** One BRIEF record per connection (else a CONNECT and a CLOSE; the kernel sends no BRIEF without --all). */
const BRIEF = ALL && !process.argv.includes('--two-records');
/** Records per connection. */
const PER_CONNECTION = BRIEF ? 1 : 2;
const OPEN = 4;
/** Threads of the client process whose connections' thread ids take turns (bench/churn.c connects from one). */
const THREADS = arg('--threads', 1) || 1;

/** The kernel's view of a live process (a child `sleep`), as busted's owner records carry it. */
function owner(pid: number) {
  const stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (!stat) throw new Error(`cannot read /proc/${pid}/stat`);
  // our own child: our uid and gid
  return { pid, ppid: stat.ppid, uid: process.getuid!(), gid: process.getgid!(), startNs: BigInt(stat.startTime) * BigInt(1e9 / CLOCK_TICKS) };
}

/** Ring-buffer records of `n` connections (connect, then the close of the one OPEN before it). */
class Records {
  private readonly view = new DataView(new ArrayBuffer(EVENT.size));
  private readonly bytes = new Uint8Array(this.view.buffer);
  private made = 0;
  private closed = 0;
  private readonly t0 = process.hrtime.bigint();

  constructor(private readonly who: ReturnType<typeof owner>, private readonly n: number) {
    const v = this.view;
    v.setUint16(EVENT.family, 2, true);
    v.setUint16(EVENT.proto, 6, true);
    const o = EVENT.owner;
    v.setUint32(o + OWNER.tgid, who.pid, true);
    v.setUint32(o + OWNER.uid, who.uid, true);
    v.setUint32(o + OWNER.gid, who.gid, true);
    v.setBigUint64(o + OWNER.cgroup_id, 1n, true);
    v.setBigUint64(o + OWNER.start_ns, who.startNs, true);
    v.setUint32(o + OWNER.ppid, who.ppid, true);
    this.bytes.set(new TextEncoder().encode('churn'), o + OWNER.comm);
    this.bytes.set([127, 0, 0, 1], EVENT.saddr);
    this.bytes.set([127, 0, 0, 1], EVENT.daddr);
    v.setUint16(EVENT.dport, 38863, true);
  }

  get done(): boolean {
    return this.closed >= this.n;
  }

  get connections(): number {
    return this.closed;
  }

  /** Records handed over so far. */
  get handed(): number {
    return BRIEF ? this.closed : this.made + this.closed;
  }

  /** The next record, decoded as the probe decodes the ring's. */
  next(): KernelEvent {
    const v = this.view;
    const now = process.hrtime.bigint() - this.t0 + 1_000_000_000n;
    const connect = !BRIEF && this.made < this.n && (this.made - this.closed < OPEN || this.closed >= this.n);
    const i = connect ? this.made++ : this.closed++;
    v.setUint32(EVENT.kind, BRIEF ? Kind.BRIEF : connect ? Kind.CONNECT : Kind.CLOSE, true);
    v.setUint32(EVENT.owner + OWNER.tid, this.who.pid + (i % THREADS), true);
    v.setBigUint64(EVENT.cookie, 4096n + BigInt(i), true);
    v.setBigUint64(EVENT.ts_ns, now, true);
    v.setUint16(EVENT.sport, 32768 + (i % 28000), true);
    v.setBigUint64(EVENT.connect_ns, now - 50_000n, true);
    v.setBigUint64(EVENT.tx, connect ? 0n : 64n, true);
    v.setBigUint64(EVENT.rx, connect ? 0n : 64n, true);
    return decodeEvent(v, 0, EVENT.size)!;
  }
}

/** CPU seconds so far of each of this process's threads, by thread name (main, V8's workers, libuv's). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = tid === String(process.pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // the thread ended
    }
  }
  return out;
}

async function main(): Promise<void> {
  const child = spawn('sleep', ['3600'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 100));
  const records = new Records(owner(child.pid!), CONNECTIONS);
  /** Set once the engine has settled: records flow from then on. */
  let start = 0n;
  let finished: () => void = () => {};
  const done = new Promise<void>((r) => (finished = r));

  const stand = standInProbe((opts, budget) => {
    if (start === 0n) return { handled: 0, more: false };
    // at RATE, what the kernel would have written by now
    const due = RATE > 0 ? Math.min(CONNECTIONS * PER_CONNECTION, Number(process.hrtime.bigint() - start) / 1e9 * RATE * PER_CONNECTION) : Infinity;
    let handled = 0;
    while (handled < budget && !records.done && records.handed < due) {
      opts.onEvent(records.next());
      handled++;
    }
    if (records.done) finished();
    return { handled, more: !records.done && handled >= budget };
  });
  // busted's own output (stdout as a device: written with write(2)), into /dev/null
  const out = new StdoutLines((m) => process.stderr.write(`pipeline: ${m}\n`), openSync('/dev/null', 'w'));
  let lines = 0;
  const writeRecord = (rec: EventRecord) => {
    lines++;
    out.record(rec);
  };
  const store = new Store(turnClock, { closedMax: 0 });
  const printer = new Printer({ format: 'json', verbose: false, all: ALL, write: (l) => out.write(l), writeRecord });
  store.onRecord((rec) => printer.handle(rec));
  const engine = await startEngine(store, {
    all: ALL, quiet: !ALL, intervalMs: 1000, verbose: false, cgroupPath: null, startProbe: stand,
    onWarning: (m) => {
      if (!m.startsWith('cgroup v2 is not mounted')) process.stderr.write(`pipeline: ${m}\n`);
    },
  });
  // its start-up work (the catalog, $PATH's executables) is not the pipeline's
  await new Promise((r) => setTimeout(r, 1500));
  const cpu0 = process.cpuUsage();
  const threads0 = threadCpu();
  const t0 = performance.now();
  start = process.hrtime.bigint();
  await done;
  await engine.stop();
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const threads = [...threadCpu()].map(([name, s]) => [name, s - (threads0.get(name) ?? 0)] as const).filter(([, s]) => s > 0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  child.kill();
  const us = (cpuS / records.connections) * 1e6;
  console.log(
    `${ALL ? 'busted --format json --all' : 'busted (default)'} (${PER_CONNECTION} record${BRIEF ? '' : 's'} per connection): ${records.connections.toLocaleString('en-US')} connections in ${wall.toFixed(2)} s, ` +
      `${lines.toLocaleString('en-US')} lines (${(out.written / 1e6).toFixed(1)} MB); CPU ${cpuS.toFixed(2)} s (user ${(cpu.user / 1e6).toFixed(2)}, system ${(cpu.system / 1e6).toFixed(2)}) = ` +
      `${us.toFixed(1)} µs per connection${RATE > 0 ? `, ${((us * RATE) / 1e4).toFixed(1)} % of a core at ${RATE.toLocaleString('en-US')}/s` : ''}`,
  );
  console.log(`  by thread (CPU s): ${threads.map(([name, s]) => `${name} ${s.toFixed(2)}`).join(', ')}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/pipeline: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
