/**
 * A Map for keys that come and go all the time (one per connection) while few are present at
 * once: the flows of a connection churn.
 *
 * V8 shrinks a Map's hash table as entries are deleted, and re-makes it when deleted entries fill
 * it; once the Map lives in the old generation, every new table is made there too. With a handful
 * of entries present, nearly every insert made a new table that only a full collection frees:
 * about 60 ns per insert and delete on the machine of the README's performance table, plus the
 * collections (bench/pipeline.ts: the four per-flow maps of the pipeline made most of what V8's
 * full collections had to free). Placeholder entries, which are never deleted, keep the table from
 * shrinking below a size where that happens.
 *
 * That keeps the table from shrinking, but not from being re-made: V8 re-makes it, at the same
 * size, whenever deleted entries fill its free slots, and makes the new one in the old generation
 * when the old one was there. So the Map is also copied into a new one (in the young generation,
 * where its tables then stay and die young while inserts keep coming) every so many inserts: at
 * 10k connections/s that halved what V8's full collections had to free (bench/README.md, session 9).
 *
 * An insert while iterating may be the one that copies: the iteration then goes on over the old
 * Map (busted's tables do not insert while iterating).
 *
 * Only the Map methods busted's tables use are offered; iteration, `size` and `first()` skip the
 * placeholders (inserted first and never deleted, so always the first PAD entries in order).
 */
const PAD = 32;
const PADS: readonly symbol[] = Array.from({ length: PAD }, () => Symbol('churn-map placeholder'));

/** Inserts between two copies, at least, and at least this many times the entries copied. */
const COPY_EVERY = 4096;
const COPY_RATIO = 8;

export class ChurnMap<K, V> {
  private m = new Map<K | symbol, V>();
  private inserts = 0;

  constructor() {
    this.pad();
  }

  get size(): number {
    return this.m.size - PAD;
  }

  get(key: K): V | undefined {
    return this.m.get(key);
  }

  has(key: K): boolean {
    return this.m.has(key);
  }

  set(key: K, value: V): this {
    if (++this.inserts >= COPY_EVERY && this.inserts >= COPY_RATIO * this.m.size) this.renew();
    this.m.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.m.delete(key);
  }

  clear(): void {
    this.m.clear();
    this.pad();
  }

  /** The first key in insertion order (the oldest), if any. */
  first(): K | undefined {
    const it = this.m.keys();
    for (let i = 0; i < PAD; i++) it.next();
    return it.next().value as K | undefined;
  }

  *values(): IterableIterator<V> {
    const it = this.m.values();
    for (let i = 0; i < PAD; i++) it.next();
    yield* it;
  }

  *keys(): IterableIterator<K> {
    const it = this.m.keys();
    for (let i = 0; i < PAD; i++) it.next();
    yield* it as IterableIterator<K>;
  }

  *entries(): IterableIterator<[K, V]> {
    const it = this.m.entries();
    for (let i = 0; i < PAD; i++) it.next();
    yield* it as IterableIterator<[K, V]>;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  /** A new Map with the same entries, in the same order (the placeholders first). */
  private renew(): void {
    this.inserts = 0;
    this.m = new Map(this.m);
  }

  private pad(): void {
    // never read: `undefined as V` keeps the table's entries; the keys are unreachable from outside
    for (const s of PADS) this.m.set(s, undefined as V);
  }
}
