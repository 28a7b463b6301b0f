/** Record → replay: the replayed store ends with the same totals per process as the recorded one. */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeDemo } from '../../examples/make-demo.js';
import type { ProcessRow } from '../../src/core/flows.js';
import { Store } from '../../src/core/store.js';
import { Recorder } from '../../src/sinks/recorder.js';
import { readRecording, ReplayPlayer, type Timers } from '../../src/sinks/replay.js';
import { ManualClock } from '../helpers/ui-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-rt-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

const perProcess = (rows: readonly ProcessRow[]) =>
  Object.fromEntries(
    [...rows].sort((a, b) => a.key.localeCompare(b.key))
      .map((r) => [r.key, { comm: r.comm, tx: r.tx, rx: r.rx, total: r.total, failed: r.failed, open: r.open, providers: r.providers }]),
  );

/** Timers driven by hand: the replay runs in simulated time. */
function manualTimers() {
  let now = 0;
  let pending: { at: number; fn: () => void } | null = null;
  const timers: Timers = {
    setTimeout: (fn, ms) => (pending = { at: now + ms, fn }),
    clearTimeout: () => (pending = null),
    now: () => now,
  };
  const runAll = () => {
    while (pending) {
      const p: { at: number; fn: () => void } = pending;
      pending = null;
      now = Math.max(now, p.at);
      p.fn();
    }
  };
  return { timers, runAll };
}

test('the demo recorded and replayed gives the same totals per process', (t) => {
  const records = makeDemo(90);
  const file = path.join(tmp, 'rt.jsonl');

  // "Live": records published at their own time, with a recorder attached.
  const clock = new ManualClock();
  const live = new Store(clock);
  const recorder = new Recorder(file).attach(live);
  const totals = new Map<number, number>();
  live.onRecord((r) => {
    if (r.type === 'traffic') totals.set(r.pid, (totals.get(r.pid) ?? 0) + r.tx + r.rx);
  });
  for (const r of records) {
    clock.t = Date.parse(r.ts);
    live.publish(r);
  }
  recorder.close();
  const expected = live.tick();

  // Replay at 50x in simulated time.
  const recording = readRecording(file);
  t.deepEqual(recording.problems, []);
  t.is(recording.records.length, records.length);
  const { timers, runAll } = manualTimers();
  let replayed: Store | null = null;
  const replayTotals = new Map<number, number>();
  const player = new ReplayPlayer({ publish: (r) => replayed!.publish(r) }, recording.records, { speed: 50, timers });
  replayed = new Store(player.clock);
  replayed.onRecord((r) => {
    if (r.type === 'traffic') replayTotals.set(r.pid, (replayTotals.get(r.pid) ?? 0) + r.tx + r.rx);
  });
  player.start();
  runAll();
  t.true(player.ended);
  const got = replayed.tick();

  t.true(expected.processes.length >= 4, 'the comparison covers several processes');
  t.deepEqual(perProcess(got.processes), perProcess(expected.processes));
  t.deepEqual(got.totals, expected.totals);
  t.is(got.at, expected.at, 'the replay clock ends at the last record');
  t.deepEqual([...replayTotals].sort(), [...totals].sort());
  t.is(got.session?.source, 'replay');
});
