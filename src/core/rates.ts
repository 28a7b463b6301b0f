/**
 * Byte rates over a short sliding window. Samples are (time, bytes) deltas; the rate is the
 * sum of deltas inside the window divided by the window length (or by the time covered so far,
 * when the window is not yet full, so a new flow does not show a diluted rate).
 */

export const DEFAULT_RATE_WINDOW_MS = 3000;

/** Expired samples are dropped from the arrays' front only once this many have gathered. */
const COMPACT_AT = 16;

export class RateWindow {
  // Samples from `head` on are in the window; those before it have expired. A snapshot asks
  // every flow's rate every tick (10,000 flows in busted-top's bench): expiring moves `head`
  // instead of splicing, which allocated the removed elements' array each time.
  private readonly times: number[] = [];
  private readonly bytes: number[] = [];
  private head = 0;
  private sum = 0;

  constructor(private readonly windowMs = DEFAULT_RATE_WINDOW_MS) {}

  add(atMs: number, deltaBytes: number): void {
    if (deltaBytes <= 0) return;
    this.times.push(atMs);
    this.bytes.push(deltaBytes);
    this.sum += deltaBytes;
  }

  /** Bytes per second at `nowMs`, given that counting started at `sinceMs`. */
  rate(nowMs: number, sinceMs: number): number {
    this.expire(nowMs);
    if (this.sum === 0) return 0;
    const covered = Math.min(this.windowMs, Math.max(nowMs - sinceMs, 1000));
    return (this.sum * 1000) / covered;
  }

  private expire(nowMs: number): void {
    const cutoff = nowMs - this.windowMs;
    const { times, bytes } = this;
    let head = this.head;
    while (head < times.length && times[head]! <= cutoff) {
      this.sum -= bytes[head]!;
      head++;
    }
    if (head === times.length) {
      // all expired: empty arrays keep their storage
      times.length = 0;
      bytes.length = 0;
      this.sum = 0; // no rounding left over from adding and subtracting
      head = 0;
    } else if (head >= COMPACT_AT) {
      times.copyWithin(0, head);
      bytes.copyWithin(0, head);
      times.length -= head;
      bytes.length -= head;
      head = 0;
    }
    this.head = head;
  }
}
