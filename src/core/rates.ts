/**
 * Byte rates over a short sliding window. Samples are (time, bytes) deltas; the rate is the
 * sum of deltas inside the window divided by the window length (or by the time covered so far,
 * when the window is not yet full, so a new flow does not show a diluted rate).
 */

export const DEFAULT_RATE_WINDOW_MS = 3000;

export class RateWindow {
  private readonly times: number[] = [];
  private readonly bytes: number[] = [];
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
    let drop = 0;
    while (drop < this.times.length && this.times[drop]! <= cutoff) {
      this.sum -= this.bytes[drop]!;
      drop++;
    }
    if (drop > 0) {
      this.times.splice(0, drop);
      this.bytes.splice(0, drop);
    }
  }
}
