/** Timers past setTimeout's 24.8 days (busted --duration, the replay player's waits). */
import test from 'ava';
import { afterLong, MAX_TIMER_MS } from '../../src/core/long-timer.js';

test('a delay past 2^31-1 ms does not fire at once', async (t) => {
  let fired = false;
  afterLong(30 * 86_400_000, () => (fired = true)); // busted --duration 2592000 (30 days)
  await new Promise((r) => setTimeout(r, 50));
  t.false(fired, 'a plain setTimeout of 30 days fires after 1 ms');
});

test('it waits in steps of at most 2^31-1 ms until the time has come, then calls once', (t) => {
  let clock = 0;
  const steps: number[] = [];
  const real = globalThis.setTimeout;
  const queue: (() => void)[] = [];
  globalThis.setTimeout = ((fn: () => void, ms: number) => {
    steps.push(ms);
    queue.push(() => ((clock += ms), fn()));
    return { unref: () => undefined };
  }) as unknown as typeof setTimeout;
  let calls = 0;
  try {
    afterLong(2.5 * MAX_TIMER_MS, () => calls++, () => clock);
    while (queue.length) queue.shift()!();
  } finally {
    globalThis.setTimeout = real;
  }
  t.deepEqual(steps, [MAX_TIMER_MS, MAX_TIMER_MS, 0.5 * MAX_TIMER_MS]);
  t.is(calls, 1);
  t.is(clock, 2.5 * MAX_TIMER_MS);
});

test('a short delay is one timer', async (t) => {
  let fired = 0;
  afterLong(20, () => fired++);
  await new Promise((r) => setTimeout(r, 80));
  t.is(fired, 1);
});
