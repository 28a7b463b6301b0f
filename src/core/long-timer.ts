/**
 * Timers longer than Node's setTimeout keeps: past 2^31-1 ms (24.8 days) it warns
 * (TimeoutOverflowWarning) and fires after 1 ms, so `busted --duration 2592000` would stop at once.
 */

/** The longest delay setTimeout keeps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fn` once, `ms` from now, in steps of at most MAX_TIMER_MS; unref'd (it keeps no process alive). */
export function afterLong(ms: number, fn: () => void, now: () => number = () => performance.now()): void {
  const at = now() + ms;
  const wait = () => {
    const left = at - now();
    if (left <= 0) fn();
    else setTimeout(wait, Math.min(left, MAX_TIMER_MS)).unref();
  };
  wait();
}
