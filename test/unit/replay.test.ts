/** Reading recordings (good, bad, truncated, missing, empty) and playing them on timers. */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EventRecord } from '../../src/core/records.js';
import { MAX_TIMER_MS } from '../../src/core/long-timer.js';
import { Store } from '../../src/core/store.js';
import {
  describeProblems, parseRecording, readRecording, ReplayError, ReplayPlayer, type Timers,
} from '../../src/sinks/replay.js';
import { connect, PY, session, T0, traffic } from '../helpers/ui-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-replay-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
};
const jsonl = (recs: readonly unknown[]): string => recs.map((r) => JSON.stringify(r)).join('\n') + '\n';

const GOOD = [session(0), connect(100, '1', PY), traffic(1000, '1', PY.pid, 10, 20), traffic(2000, '1', PY.pid, 5, 5)];

test('a good recording reads back record for record', (t) => {
  const r = readRecording(file('good.jsonl', jsonl(GOOD)));
  t.deepEqual(r.records, GOOD);
  t.deepEqual(r.problems, []);
  t.false(r.truncatedLastLine);
});

test('bad lines are counted with their line numbers, never fatal', (t) => {
  const lines = [
    JSON.stringify(GOOD[0]), 'not json', JSON.stringify({ type: 'bogus', ts: GOOD[0]!.ts }), JSON.stringify(GOOD[1]),
    '', JSON.stringify({ ...GOOD[2], tx: 'lots' }), JSON.stringify({ ...GOOD[3], ts: 'yesterday' }), '[1,2]',
    JSON.stringify({ ...GOOD[1], flow: '2', exe: 7 }),
  ];
  const r = readRecording(file('bad.jsonl', lines.join('\n') + '\n'));
  t.is(r.records.length, 2);
  t.deepEqual(r.problems.map((p) => p.line), [2, 3, 6, 7, 8, 9]);
  t.deepEqual(r.problems.map((p) => p.reason), [
    'not valid JSON', 'unknown type "bogus"', 'traffic: "tx" is missing or not a number',
    'traffic: "ts" is not an ISO 8601 time', 'not a JSON object', 'connect: "exe" is not a string or null',
  ]);
  t.regex(describeProblems(r.problems), /^6 problems: line 2 \(not valid JSON\), line 3 \(unknown type "bogus"\), .*, and 1 more$/);
});

test('records whose fields the store, the printer or busted-top read into have the right shape, or are problems', (t) => {
  const ts = GOOD[0]!.ts;
  const proc = { type: 'process', ts, pid: PY.pid, startTime: 7 };
  const lines = [
    GOOD[0], GOOD[1],
    proc, // an identity with none of its details: defaults, not a crash in the store
    { ...proc, parents: 'init' },
    { ...proc, parents: [{ pid: 1, comm: 'init' }] }, // a parent without exe
    { type: 'verdict', ts, pid: PY.pid, startTime: 7, source: 'busted-top', action: 1 },
    { type: 'verdict', ts, pid: PY.pid, startTime: 7, source: 'busted-top', action: null },
    { ...GOOD[1], flow: '3', container: { runtime: 'docker' } },
    { ...GOOD[1], flow: '4', pod: 'web' },
    { ...GOOD[1], flow: '5', agent: { id: 'claude' } },
    { ...GOOD[1], flow: '6', container: { id: 'abc', runtime: 'docker' }, pod: null, agent: { id: 'a', label: 'A' }, ppid: 1 },
    { ...GOOD[1], flow: '7', ppid: 'one' },
  ];
  const r = parseRecording(jsonl(lines));
  t.deepEqual(r.problems, [
    { line: 4, reason: 'process: "parents" is not a list of parents ({pid, comm, exe})' },
    { line: 5, reason: 'process: "parents" is not a list of parents ({pid, comm, exe})' },
    { line: 6, reason: 'verdict: "action" is not block, audit, allow or null' },
    { line: 8, reason: 'connect: "container" is not a container ({id, runtime}) or null' },
    { line: 9, reason: 'connect: "pod" is not a pod ({uid, qos}) or null' },
    { line: 10, reason: 'connect: "agent" is not an agent ({id, label}) or null' },
    { line: 12, reason: 'connect: "ppid" is not a number or null' },
  ]);
  t.deepEqual(r.records.map((x) => x.type), ['session', 'connect', 'process', 'verdict', 'connect']);
  t.like(r.records[2], { parents: [], cmdline: null, exe: null, cgroup: null, sha256: null, exeReplaced: false, container: null, pod: null, agent: null, ppid: null });
  t.false('container' in r.records[1]!, 'a connect without identity fields keeps them absent');
  // and the store takes what passed (the process record used to throw there)
  const store = new Store();
  t.notThrows(() => r.records.forEach((rec) => store.publish(rec)));
  t.is(store.tick().flows.length, 2);
});

test('a truncated last line is expected after a crash and is not a problem', (t) => {
  const text = jsonl(GOOD) + JSON.stringify(GOOD[2]).slice(0, 25);
  const r = parseRecording(text);
  t.is(r.records.length, GOOD.length);
  t.deepEqual(r.problems, []);
  t.true(r.truncatedLastLine);
  t.is(parseRecording(jsonl(GOOD).trimEnd()).records.length, GOOD.length, 'a complete last line without newline counts');
});

test('old-style connect records get defaults for fields they lack', (t) => {
  const { startTime: _s, cgroupId: _c, error: _e, tid: _t, ...old } = GOOD[1] as unknown as Record<string, unknown>;
  const r = parseRecording(jsonl([GOOD[0], old]));
  t.deepEqual(r.problems, []);
  t.like(r.records[1], { startTime: 0, cgroupId: 0, error: null, tid: PY.pid });
});

test('a recording that does not start with a session gets one, and says so', (t) => {
  const r = readRecording(file('nosession.jsonl', jsonl(GOOD.slice(1))));
  t.is(r.records[0]!.type, 'session');
  t.deepEqual(r.problems, [{ line: 1, reason: 'no session record first; one was assumed' }]);
});

test('missing, empty and useless files are clear ReplayErrors', (t) => {
  const missing = t.throws(() => readRecording(path.join(tmp, 'nope.jsonl')), { instanceOf: ReplayError });
  t.is((missing as ReplayError).code, 'missing');
  t.regex(missing!.message, /does not exist; check the path/);
  const empty = t.throws(() => readRecording(file('empty.jsonl', '\n\n')), { instanceOf: ReplayError });
  t.is((empty as ReplayError).code, 'empty');
  t.regex(empty!.message, /is empty/);
  const junk = t.throws(() => readRecording(file('junk.jsonl', 'hello\nworld\n')), { instanceOf: ReplayError });
  t.is((junk as ReplayError).code, 'no-records');
  t.regex(junk!.message, /has no valid record \(2 problems: line 1/);
  const dir = t.throws(() => readRecording(tmp), { instanceOf: ReplayError });
  t.is((dir as ReplayError).code, 'unreadable');
  for (const e of [missing, empty, junk, dir]) t.is(e!.message.split('\n').length, 1);
});

/** Timers that run only when the test advances them. */
class FakeTimers implements Timers {
  t = 0;
  private queue: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.ids;
    this.queue.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.queue = this.queue.filter((q) => q.id !== h);
  };
  now = (): number => this.t;
  get pending(): number {
    return this.queue.length;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const next = this.queue[0];
      if (!next || next.at > end) break;
      this.queue.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

const RECS: EventRecord[] = [
  session(0), connect(0, '1', PY),
  traffic(1000, '1', PY.pid, 100, 3000), traffic(2000, '1', PY.pid, 100, 3000), traffic(10_000, '1', PY.pid, 1, 1),
];

test('the player keeps the original timing, scaled by speed, and the clock follows the recording', (t) => {
  const timers = new FakeTimers();
  const seen: { type: string; at: number }[] = [];
  const store = { publish: (r: EventRecord) => seen.push({ type: r.type, at: player.clock.now() }) };
  const player = new ReplayPlayer(store, RECS, { speed: 2, timers });
  player.start();
  t.deepEqual(seen.map((s) => s.type), ['session', 'connect'], 'records due at once go at once');
  timers.advance(499);
  t.is(seen.length, 2);
  timers.advance(1);
  t.is(seen.length, 3, 'one second of recording = 500 ms at speed 2');
  t.deepEqual(seen.map((s) => s.at - T0), [0, 0, 1000]);
  timers.advance(250);
  t.is(player.clock.now() - T0, 1500, 'between records the clock interpolates');
  timers.advance(4250);
  t.is(seen.length, 5);
  t.true(player.ended);
  timers.advance(60_000);
  t.is(player.clock.now() - T0, 10_000, 'time stops at the last record');
  t.is(timers.pending, 0);
});

test('the session record is marked as a replay; stop() cancels what is pending', async (t) => {
  const timers = new FakeTimers();
  const seen: EventRecord[] = [];
  const player = new ReplayPlayer({ publish: (r) => seen.push(r) }, RECS, { speed: 1, timers });
  player.start();
  t.like(seen[0], { type: 'session', source: 'replay' });
  t.is(timers.pending, 1);
  player.stop();
  t.is(timers.pending, 0);
  timers.advance(20_000);
  t.is(seen.length, 2);
  await player.done;
  t.true(player.ended);
});

test('a burst is published in batches so timers never block for long', (t) => {
  const timers = new FakeTimers();
  const burst: EventRecord[] = [session(0), ...Array.from({ length: 25 }, (_, i) => traffic(0, String(i), 1, 1, 1))];
  let count = 0;
  const player = new ReplayPlayer({ publish: () => count++ }, burst, { speed: 1, timers, batch: 10 });
  player.start();
  t.is(count, 10);
  timers.advance(0);
  t.is(count, 26);
});

test('rates in the store come out right with the replay clock', (t) => {
  const timers = new FakeTimers();
  let store: Store | null = null;
  const player = new ReplayPlayer({ publish: (r) => store!.publish(r) }, RECS, { speed: 4, timers });
  store = new Store(player.clock);
  player.start();
  timers.advance(500); // recording time 2000 ms: 6000 bytes received in the first 2 s
  const snap = store.tick();
  t.is(snap.at - T0, 2000);
  t.is(snap.processes[0]?.rx, 6000);
  t.is(snap.processes[0]?.rxRate, 3000, '6000 bytes over 2 s of recording, whatever the speed');
});

test('a gap longer than a timer can wait (24.8 days) is waited in steps, not skipped', (t) => {
  const timers = new FakeTimers();
  const delays: number[] = [];
  const capped: Timers = { ...timers, setTimeout: (fn, ms) => (delays.push(ms), timers.setTimeout(fn, ms)) };
  const far: EventRecord[] = [session(0), connect(0, '1', PY), traffic(40 * 86_400_000, '1', PY.pid, 1, 1)];
  let count = 0;
  const player = new ReplayPlayer({ publish: () => count++ }, far, { speed: 1, timers: capped });
  player.start();
  t.is(count, 2);
  t.is(delays[0], MAX_TIMER_MS, 'no timer longer than setTimeout keeps');
  timers.advance(MAX_TIMER_MS);
  t.is(count, 2, 'woken early, the player waits again');
  t.true(delays[1]! > 0 && delays[1]! <= MAX_TIMER_MS);
  timers.advance(40 * 86_400_000 - MAX_TIMER_MS);
  t.is(count, 3);
  t.true(player.ended);
});

test('speed must be positive', (t) => {
  t.throws(() => new ReplayPlayer({ publish: () => {} }, RECS, { speed: 0 }), { instanceOf: RangeError });
});
