/**
 * The engine between a stand-in for the kernel probe and the store: what bench/pipeline.ts
 * measures must be the pipeline busted runs (records in, the same event records out).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { realpathSync, statSync } from 'node:fs';
import { Kind, type KernelEvent } from '../../src/bpf/abi.js';
import type { ProbeOptions } from '../../src/bpf/probe.js';
import { WallClock, nextBusyPoll, startEngine, type Probe } from '../../src/core/engine.js';
import { CLOCK_TICKS } from '../../src/core/identity.js';
import { readStartTime, userDevToKernel } from '../../src/core/identity-proc.js';
import type { EventRecord } from '../../src/core/records.js';
import { Store, systemClock } from '../../src/core/store.js';
import { standInProbe } from '../helpers/standin-probe.js';

/** A probe that hands the engine `queued` on its next poll. */
function standIn(queued: KernelEvent[]): { start: (opts: ProbeOptions) => Probe; polls: () => number } {
  let polls = 0;
  const start = standInProbe((opts) => {
    polls++;
    const n = queued.length;
    for (const ev of queued.splice(0)) opts.onEvent(ev);
    return { handled: n, more: false };
  });
  return { start, polls: () => polls };
}

type Owner = Extract<KernelEvent, { owner: unknown }>['owner'];

/**
 * Runs the engine over `events` (made for a live `sleep` as the owner) until a close and a
 * process record with its exe came; returns the flow's connect and close records.
 */
async function throughEngine(events: (owner: Owner, pid: number) => KernelEvent[]) {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 100));
    const pid = child.pid!;
    const startTicks = BigInt(readStartTime(pid)!);
    const exe = statSync(`/proc/${pid}/exe`, { bigint: true }); // what the kernel's owner record carries
    const owner = {
      tgid: pid, uid: process.getuid!(), gid: process.getgid!(), cgroupId: 1n, startNs: startTicks * BigInt(1e9 / CLOCK_TICKS),
      exeIno: exe.ino, exeDev: userDevToKernel(Number(exe.dev)), ppid: process.pid, comm: 'sleep',
    };
    const probe = standIn(events(owner, pid));
    const store = new Store(systemClock, { closedMax: 0 });
    const seen: EventRecord[] = [];
    store.onRecord((r) => seen.push(r));
    const engine = await startEngine(store, { all: true, intervalMs: 1000, verbose: false, cgroupPath: null, startProbe: probe.start });
    const deadline = Date.now() + 3000;
    const done = () => seen.some((r) => r.type === 'close') && seen.some((r) => r.type === 'process' && r.exe !== null);
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await engine.stop();
    const exePath = realpathSync(`/proc/${pid}/exe`);
    return { pid, startTicks, exePath, polls: probe.polls(), seen, flow: seen.filter((r) => r.type === 'connect' || r.type === 'close') };
  } finally {
    child.kill();
  }
}

test('a connect and a close from the probe become connect and close records, in order, and a process record follows', async (t) => {
  const { pid, startTicks, exePath, polls, seen, flow } = await throughEngine((owner, pid) => [
    { kind: Kind.CONNECT, proto: 6, cookie: 77, tsNs: 1_000_000_000, connectNs: 1_000_000_000, owner, tid: pid, src: '127.0.0.1:40000', dst: '127.0.0.2:8443', error: 0, tx: 0, rx: 0 },
    { kind: Kind.CLOSE, cookie: 77, tsNs: 1_002_500_000, pid, connectNs: 1_000_000_000, tx: 100, rx: 200, unseen: false },
  ]);
  t.true(polls > 0);
  t.deepEqual(flow.map((r) => r.type), ['connect', 'close']);
  const [c, cl] = flow;
  if (c?.type !== 'connect' || cl?.type !== 'close') return t.fail();
  t.like(c, { flow: '77', pid, tid: pid, comm: 'sleep', proto: 'tcp', src: '127.0.0.1:40000', dst: '127.0.0.2:8443', provider: null, error: null });
  t.is(c.startTime, Number(startTicks));
  t.like(cl, { flow: '77', pid, tx: 100, rx: 200, durationMs: 2.5 });
  // the details read from /proc (after the connect went out) follow in process records
  const proc = seen.find((r) => r.type === 'process' && r.exe !== null);
  t.like(proc, { pid, startTime: Number(startTicks), exe: exePath });
});

test('a brief record (busted --all: a connection kept back until its close) becomes a connect record at its connect time and its close', async (t) => {
  const now = Number(process.hrtime.bigint());
  const { pid, flow } = await throughEngine((owner, pid) => [
    { kind: Kind.BRIEF, proto: 6, cookie: 78, tsNs: now, connectNs: now - 1_500_000_000, owner, tid: pid, src: '127.0.0.1:40001', dst: '127.0.0.2:8080', error: 0, tx: 300, rx: 4000 },
  ]);
  t.deepEqual(flow.map((r) => r.type), ['connect', 'close']);
  const [c, cl] = flow;
  if (c?.type !== 'connect' || cl?.type !== 'close') return t.fail();
  t.like(c, { flow: '78', pid, comm: 'sleep', proto: 'tcp', src: '127.0.0.1:40001', dst: '127.0.0.2:8080', error: null });
  t.like(cl, { flow: '78', pid, tx: 300, rx: 4000, durationMs: 1500 });
  t.is(Date.parse(cl.ts) - Date.parse(c.ts), 1500, 'the connect record carries the connect time, the close its own');
});

test('a failure record of a flow already connected ends it with a close, not a second connect (a connection announced on another CPU while its end judged it unused)', async (t) => {
  const { pid, flow } = await throughEngine((owner, pid) => [
    { kind: Kind.CONNECT, proto: 6, cookie: 79, tsNs: 1_000_000_000, connectNs: 1_000_000_000, owner, tid: pid, src: '127.0.0.1:40002', dst: '127.0.0.2:8443', error: 0, tx: 0, rx: 0 },
    { kind: Kind.FAIL, proto: 6, cookie: 79, tsNs: 1_004_000_000, connectNs: 1_000_000_000, owner, tid: pid, src: '127.0.0.1:40002', dst: '127.0.0.2:8443', error: 104, tx: 5, rx: 7 },
  ]);
  t.deepEqual(flow.map((r) => r.type), ['connect', 'close']);
  const [c, cl] = flow;
  if (c?.type !== 'connect' || cl?.type !== 'close') return t.fail();
  t.like(c, { flow: '79', pid, error: null });
  t.like(cl, { flow: '79', pid, tx: 5, rx: 7, durationMs: 4 });
});

test('WallClock writes kernel times as wall-clock ISO times, to the millisecond, in any order', (t) => {
  const clock = new WallClock();
  const nowNs = process.hrtime.bigint();
  const at = (ns: bigint) => Date.parse(clock.iso(ns));
  const base = at(nowNs);
  t.true(Math.abs(base - Date.now()) < 50, 'now is now');
  // the same millisecond gives the same string; its last nanosecond too; the next one moves on
  const ms0 = clock.iso(nowNs);
  let edge = nowNs;
  while (clock.iso(edge + 1n) === ms0) edge += 1n; // the last nanosecond of ms0's millisecond (at most 1e6 steps)
  t.is(at(edge + 1n), base + 1);
  t.is(clock.iso(edge), ms0);
  // backwards and far away: exact milliseconds, not the cached string
  t.is(at(nowNs - 5_000_000n), base - 5);
  t.is(at(nowNs + 86_400_000_000_000n), base + 86_400_000);
  t.is(clock.iso(nowNs), ms0);
});

test('WallClock: every millisecond is exactly 1,000,000 ns of the kernel clock wide, now, 50 days and 104 days (2^53 ns) after boot', (t) => {
  const clock = new WallClock();
  /** The first ns after `from` whose string differs from from's (times are numbers, as the ring's). */
  const nextEdge = (from: number) => {
    const s = clock.iso(from);
    let lo = from;
    let hi = from + 2_000_000;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (clock.iso(mid) === s) lo = mid;
      else hi = mid;
    }
    return hi;
  };
  // now, 50 days, and just under 2^53 ns (104 days) after boot
  for (const start of [Number(process.hrtime.bigint()), 50 * 86_400e9, 2 ** 53 - 20_000_000]) {
    let e = nextEdge(start);
    for (let k = 0; k < 8; k++) {
      const next = nextEdge(e);
      if (next - e !== 1_000_000) return t.fail(`a millisecond of ${next - e} ns at ${e}`);
      if (Date.parse(clock.iso(next)) - Date.parse(clock.iso(e)) !== 1) return t.fail(`not the next millisecond at ${next}`);
      if (clock.iso(next - 1) !== clock.iso(e)) return t.fail(`the millisecond's last ns is not in it at ${next - 1}`);
      e = next;
    }
  }
  t.pass();
});

test('nextBusyPoll: 100 ms between ring reads while little comes; shorter, down to 10 ms, while the ring fills fast', (t) => {
  t.is(nextBusyPoll(100, 0), 100);
  t.is(nextBusyPoll(100, 0.07), 100, "--all at 10k connections/s: 7 % of the ring per 100 ms");
  t.is(nextBusyPoll(100, 0.3), 50);
  t.is(nextBusyPoll(12.5, 0.9), 10, 'never below 10 ms');
  t.is(nextBusyPoll(25, 0.1), 25, 'between the marks the wait stays');
  t.is(nextBusyPoll(25, 0.01), 50, 'and grows back when little comes');
  // records at a steady rate into a ring of 27k: the wait settles where at most a quarter of it
  // fills between two reads, for any rate up to ~670k records a second
  for (const perSecond of [1_000, 20_000, 100_000, 270_000, 400_000, 670_000]) {
    let wait = 100;
    const fill = (ms: number) => (perSecond * ms) / 1000 / 27_000;
    for (let i = 0; i < 20; i++) wait = nextBusyPoll(wait, fill(wait));
    t.true(fill(wait) <= 0.25, `${perSecond}/s: ${wait} ms fills ${(fill(wait) * 100).toFixed(0)} %`);
    if (perSecond <= 20_000) t.is(wait, 100, `${perSecond}/s: every 100 ms`);
  }
});

test('the engine reads the ring more often while it fills fast', async (t) => {
  const pollsPerSecond = async (fill: number) => {
    let polls = 0;
    const start = standInProbe(() => {
      polls++;
      return { handled: 100, more: false, fill };
    });
    const engine = await startEngine(new Store(systemClock, { closedMax: 0 }), { all: true, intervalMs: 1000, verbose: false, cgroupPath: null, startProbe: start });
    await new Promise((r) => setTimeout(r, 300)); // the wait settles
    const before = polls;
    await new Promise((r) => setTimeout(r, 1000));
    const n = polls - before;
    await engine.stop();
    return n;
  };
  const slow = await pollsPerSecond(0.01);
  const fast = await pollsPerSecond(0.5);
  t.log(`reads in 1 s: ${slow} (ring 1 % full), ${fast} (50 %)`);
  t.true(slow <= 15, `little in the ring: ${slow} reads in 1 s (every 100 ms, and the counters' read)`);
  t.true(fast >= 3 * slow, `the ring half full at each read: ${fast} reads in 1 s, against ${slow}`);
});
