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
 * Only the Map methods busted's tables use are offered; iteration, `size` and `first()` skip the
 * placeholders (inserted first and never deleted, so always the first PAD entries in order).
 */
const PAD = 32;
const PADS: readonly symbol[] = Array.from({ length: PAD }, () => Symbol('churn-map placeholder'));

export class ChurnMap<K, V> {
  private readonly m = new Map<K | symbol, V>();

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

  private pad(): void {
    // never read: `undefined as V` keeps the table's entries; the keys are unreachable from outside
    for (const s of PADS) this.m.set(s, undefined as V);
  }
}
