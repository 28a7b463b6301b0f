/**
 * Giving memory back after a burst. A burst of connections leaves V8's heap grown and full of
 * garbage (measured: 120 MiB RSS before 1M connections, 226 MiB at their end, little of it live);
 * V8 collects it only when it next needs room, which on a quiet machine can be never. Once the
 * records have stopped and the burst's closed flows have left the flow table, a full collection,
 * a second one for what the first one's finalizers freed, and libc's malloc_trim return RSS to
 * its starting level (100 MiB 16 s after the load). The collector is reached through V8's
 * `--expose-gc`, set at run time; if that is refused, nothing happens.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let collector: (() => void) | null | undefined;

function fullGc(): (() => void) | null {
  if (collector !== undefined) return collector;
  try {
    const existing = (globalThis as { gc?: () => void }).gc;
    if (typeof existing === 'function') return (collector = existing);
    v8.setFlagsFromString('--expose-gc');
    const fn = vm.runInNewContext('gc') as unknown;
    collector = typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    collector = null;
  }
  return collector;
}

export interface QuietCollectorOptions {
  /** Also run after the collection (busted: libc's malloc_trim, for the C heap's free pages). */
  trim?: () => void;
  /** Records since the last collection that make one worth it. */
  minRecords?: number;
  /** How long the records must have stopped (default 12 s: after the flow table's 10 s
   * retention has let the burst's closed flows go). */
  quietMs?: number;
}

/** Counts records; `check(now)` runs one full collection when a burst is over. */
export class QuietCollector {
  private records = 0;
  private lastRecordAt = 0;
  private readonly minRecords: number;
  private readonly quietMs: number;
  private readonly trim: (() => void) | undefined;
  collections = 0;

  constructor(opts: QuietCollectorOptions = {}) {
    this.minRecords = opts.minRecords ?? 20_000;
    this.quietMs = opts.quietMs ?? 12_000;
    this.trim = opts.trim;
  }

  /** `n` records were read at `now`. */
  record(n: number, now: number): void {
    this.records += n;
    this.lastRecordAt = now;
  }

  /** Returns true when it collected. */
  check(now: number): boolean {
    if (this.records < this.minRecords || now - this.lastRecordAt < this.quietMs) return false;
    this.records = 0;
    const gc = fullGc();
    if (!gc) return false;
    gc();
    // buffers freed by the first collection's finalizers go with a second one, then the C heap
    setTimeout(() => {
      gc();
      try {
        this.trim?.();
      } catch {
        // giving memory back is a nicety
      }
    }, 1000).unref();
    this.collections++;
    return true;
  }
}
