/**
 * The one stream every sink subscribes to. A source (the live kernel engine or a replayed
 * recording) publishes event records; the store applies them to the flow table and hands
 * them on to record listeners (printer, recorder, metrics). Snapshots for the UI are made on
 * `tick()`, so drawing never walks the table more often than the refresh interval.
 */
import { FlowTable, type FlowTableOptions, type TableSnapshot } from './flows.js';
import type { EventRecord, SessionRecord } from './records.js';

export type RecordListener = (rec: EventRecord) => void;
export type SnapshotListener = () => void;

export interface StoreSnapshot extends TableSnapshot {
  session: SessionRecord | null;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export class Store {
  readonly table: FlowTable;
  private readonly recordListeners = new Set<RecordListener>();
  private readonly snapshotListeners = new Set<SnapshotListener>();
  private session: SessionRecord | null = null;
  private current: StoreSnapshot;

  constructor(private readonly clock: Clock = systemClock, opts: FlowTableOptions = {}) {
    this.table = new FlowTable(opts);
    this.current = { ...this.table.snapshot(clock.now()), session: null };
  }

  publish(rec: EventRecord): void {
    if (rec.type === 'session') this.session = rec;
    this.table.apply(rec, this.clock.now());
    for (const l of this.recordListeners) l(rec);
  }

  onRecord(listener: RecordListener): () => void {
    this.recordListeners.add(listener);
    return () => this.recordListeners.delete(listener);
  }

  /** Prunes, takes a new snapshot and tells snapshot subscribers. */
  tick(): StoreSnapshot {
    const now = this.clock.now();
    this.table.prune(now);
    this.current = { ...this.table.snapshot(now), session: this.session };
    for (const l of this.snapshotListeners) l();
    return this.current;
  }

  /** For React's useSyncExternalStore: stable until the next tick. */
  readonly getSnapshot = (): StoreSnapshot => this.current;

  readonly subscribe = (listener: SnapshotListener): (() => void) => {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  };
}
