/**
 * Giving memory back after a burst. A burst of connections leaves V8's heap grown and full of
 * garbage (measured: 124 MiB RSS before 200k connections, 268 MiB after, with little of it live);
 * V8 collects it only when it next needs room, which on a quiet machine can be never. Once the
 * records have stopped and the burst's closed flows have left the flow table, a full collection
 * returns RSS near its starting level (142 MiB in the same run; the rest is V8's grown young
 * generation). The collector is reached through V8's `--expose-gc`, set at run time; if that is
 * refused, nothing happens.
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
  collections = 0;

  constructor(opts: QuietCollectorOptions = {}) {
    this.minRecords = opts.minRecords ?? 20_000;
    this.quietMs = opts.quietMs ?? 12_000;
  }

  record(now: number): void {
    this.records++;
    this.lastRecordAt = now;
  }

  /** Returns true when it collected. */
  check(now: number): boolean {
    if (this.records < this.minRecords || now - this.lastRecordAt < this.quietMs) return false;
    this.records = 0;
    const gc = fullGc();
    if (!gc) return false;
    gc();
    // buffers freed by the first collection's finalizers go with a second one
    setTimeout(gc, 1000).unref();
    this.collections++;
    return true;
  }
}
