/**
 * The one stream every sink subscribes to. A source (the live kernel engine or a replayed
 * recording) publishes event records; the store applies them to the flow table and hands
 * them on to record listeners (printer, recorder, metrics). Snapshots for the UI are made on
 * `tick()`, so drawing never walks the table more often than the refresh interval.
 */
import { FlowTable, type FlowTableOptions, type TableSnapshot } from './flows.js';
import type { EventRecord, SessionRecord } from './records.js';

export type RecordListener = (rec: EventRecord) => void;
/** `n` connections that were not published (quiet mode: not LLM traffic); `failed`: they never connected. */
export type QuietListener = (proto: 'tcp' | 'udp', failed: boolean, n: number) => void;
export type SnapshotListener = () => void;

export interface StoreSnapshot extends TableSnapshot {
  session: SessionRecord | null;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * Date.now(), read once per turn of the event loop (the records of one ring read share it).
 * Reading the time took 3 % of busted's CPU at 10k connections/s when each record read it.
 */
export const turnClock: Clock = (() => {
  let time = -1;
  const expire = () => {
    time = -1;
  };
  return {
    now() {
      if (time < 0) {
        time = Date.now();
        queueMicrotask(expire);
      }
      return time;
    },
  };
})();

export class Store {
  readonly table: FlowTable;
  /** Replaced, never changed in place, so a listener may unsubscribe while records go out. */
  private recordListeners: readonly RecordListener[] = [];
  private readonly snapshotListeners = new Set<SnapshotListener>();
  private readonly quietListeners = new Set<QuietListener>();
  private session: SessionRecord | null = null;
  private current: StoreSnapshot;
  /** Set by tick(): the time the next snapshot is taken as of. */
  private staleAt: number | null = null;
  private soon: ReturnType<typeof setTimeout> | null = null;
  private lastSoon = 0;

  constructor(private readonly clock: Clock = systemClock, opts: FlowTableOptions = {}) {
    this.table = new FlowTable(opts);
    this.current = { ...this.table.snapshot(clock.now()), session: null };
  }

  publish(rec: EventRecord): void {
    if (rec.type === 'session') this.session = rec;
    this.table.apply(rec, this.clock.now());
    const ls = this.recordListeners;
    for (let i = 0; i < ls.length; i++) ls[i]!(rec);
    if (rec.type === 'lost') this.advanceSoon();
  }

  /**
   * Lost events are news that cannot wait for the next tick (a screen should show them within a
   * second even with a long refresh interval): a snapshot right away, at most every 250 ms.
   */
  private advanceSoon(): void {
    if (this.soon !== null || this.snapshotListeners.size === 0) return;
    const wait = Math.max(0, this.lastSoon + 250 - Date.now());
    this.soon = setTimeout(() => {
      this.soon = null;
      this.lastSoon = Date.now();
      this.advance();
    }, wait);
    this.soon.unref?.();
  }

  /** Counts a connection the source kept back (quiet mode) for those who count every connection. */
  noteQuiet(proto: 'tcp' | 'udp', failed: boolean, n = 1): void {
    for (const l of this.quietListeners) l(proto, failed, n);
  }

  onQuiet(listener: QuietListener): () => void {
    this.quietListeners.add(listener);
    return () => this.quietListeners.delete(listener);
  }

  onRecord(listener: RecordListener): () => void {
    this.recordListeners = [...this.recordListeners, listener];
    return () => {
      const had = this.recordListeners.includes(listener);
      this.recordListeners = this.recordListeners.filter((l) => l !== listener);
      return had;
    };
  }

  /**
   * Prunes, and makes the next getSnapshot() a new snapshot taken as of now; tells snapshot
   * subscribers. The snapshot itself (a walk of every flow) is only taken when someone reads
   * it: headless busted with no screen never pays for it.
   */
  advance(): void {
    const now = this.clock.now();
    this.table.prune(now);
    this.staleAt = now;
    for (const l of this.snapshotListeners) l();
  }

  /** advance(), then the new snapshot. */
  tick(): StoreSnapshot {
    this.advance();
    return this.getSnapshot();
  }

  /** For React's useSyncExternalStore: stable until the next tick. */
  readonly getSnapshot = (): StoreSnapshot => {
    if (this.staleAt !== null) {
      this.current = { ...this.table.snapshot(this.staleAt), session: this.session };
      this.staleAt = null;
    }
    return this.current;
  };

  readonly subscribe = (listener: SnapshotListener): (() => void) => {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  };
}
