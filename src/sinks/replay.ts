/**
 * `--replay FILE [--speed N]`: publishes a recording's records to a store with their original
 * timing, N times faster, on timers (never blocking, cancellable). The ReplayClock follows the
 * recording's time, so the store timestamps and rates exactly as it did live; it stops at the
 * last record, so the final state stays on screen once the replay has ended.
 */
import type { EventRecord } from '../core/records.js';
import { MAX_TIMER_MS } from '../core/long-timer.js';
import type { Clock } from '../core/store.js';

export { describeProblems, parseRecording, readRecording, ReplayError, type Recording, type RecordingProblem } from './recording.js';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Milliseconds, monotonic. */
  now(): number;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => performance.now(),
};

/** Recording time: pinned to a record's time while it is published, else interpolated. */
export class ReplayClock implements Clock {
  private anchorReal = 0;
  private anchorRec: number;
  private pinned: number | null = null;
  private running = false;
  private floor: number;

  constructor(
    private readonly startRec: number,
    private readonly endRec: number,
    private readonly speed: number,
    private readonly real: () => number,
  ) {
    this.anchorRec = startRec;
    this.floor = startRec;
  }

  now(): number {
    if (this.pinned !== null) return this.pinned;
    if (!this.running) return this.floor;
    const t = this.anchorRec + (this.real() - this.anchorReal) * this.speed;
    return Math.min(this.endRec, Math.max(this.floor, t));
  }

  start(): void {
    this.anchorReal = this.real();
    this.anchorRec = this.startRec;
    this.running = true;
  }

  /** Stops time where it is now. */
  freeze(): void {
    this.floor = this.now();
    this.running = false;
  }

  pin(at: number): void {
    this.pinned = at;
    this.floor = Math.max(this.floor, at);
  }

  unpin(): void {
    this.pinned = null;
  }
}

export interface Publisher {
  publish(rec: EventRecord): void;
}

export interface PlayerOptions {
  speed: number;
  timers?: Timers;
  /** Records published per timer callback at most, so a burst never blocks the UI. */
  batch?: number;
}

/** Record times in ms, never going backwards (out-of-order lines play at once). */
function recordTimes(records: readonly EventRecord[]): number[] {
  const times: number[] = [];
  let last = -Infinity;
  for (const r of records) {
    last = Math.max(last, Date.parse(r.ts));
    times.push(last);
  }
  return times;
}

export class ReplayPlayer {
  readonly clock: ReplayClock;
  readonly done: Promise<void>;
  /** Recording time of the first and last record. */
  readonly startsAt: number;
  readonly endsAt: number;
  private readonly speed: number;
  private readonly times: number[];
  private readonly timers: Timers;
  private readonly batch: number;
  private next = 0;
  private handle: unknown = null;
  private finished = false;
  private resolveDone: () => void = () => {};

  constructor(private readonly target: Publisher, private readonly records: readonly EventRecord[], opts: PlayerOptions) {
    if (!(opts.speed > 0) || !Number.isFinite(opts.speed)) throw new RangeError('speed must be a positive number');
    this.timers = opts.timers ?? realTimers;
    this.batch = opts.batch ?? 5000;
    this.times = recordTimes(records);
    this.startsAt = this.times[0] ?? 0;
    this.endsAt = this.times[this.times.length - 1] ?? 0;
    this.clock = new ReplayClock(this.startsAt, this.endsAt, opts.speed, () => this.timers.now());
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.speed = opts.speed;
  }

  /** Records published so far. */
  get published(): number {
    return this.next;
  }

  get ended(): boolean {
    return this.finished;
  }

  start(): void {
    if (this.handle !== null || this.finished) return;
    this.clock.start();
    this.step();
  }

  /** Cancels pending timers; time stops where it is. */
  stop(): void {
    if (this.handle !== null) this.timers.clearTimeout(this.handle);
    this.handle = null;
    this.finish();
  }

  private readonly step = (): void => {
    this.handle = null;
    const now = this.clock.now();
    let sent = 0;
    while (this.next < this.records.length && this.times[this.next]! <= now && sent < this.batch) {
      this.publishOne(this.next++);
      sent++;
    }
    if (this.next >= this.records.length) {
      this.finish();
      return;
    }
    const wait = sent >= this.batch ? 0 : (this.times[this.next]! - now) / this.speed;
    // a timer fires at once past 2^31-1 ms (24.8 days: a far-off ts, or a slow --speed); waking
    // earlier is harmless, the step looks at the clock again
    this.handle = this.timers.setTimeout(this.step, Math.min(Math.max(0, wait), MAX_TIMER_MS));
  };

  private publishOne(i: number): void {
    const rec = this.records[i]!;
    this.clock.pin(this.times[i]!);
    try {
      this.target.publish(rec.type === 'session' ? { ...rec, source: 'replay' } : rec);
    } finally {
      this.clock.unpin();
    }
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clock.freeze();
    this.resolveDone();
  }
}
