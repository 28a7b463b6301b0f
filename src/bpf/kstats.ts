/**
 * How full busted's kernel maps and ring buffer are, for the metrics. Read at scrape time, so it
 * must be cheap and bounded: hash maps are counted with bpf_map_lookup_batch in chunks (one
 * syscall per chunk; LPM tries, which have no batch operation, key by key), at most once per
 * `minIntervalMs` (between recounts the last counts are given again); the ring buffer's
 * occupancy is producer_pos − consumer_pos, two 8-byte loads from its mmap'd position pages.
 */
import koffi from 'koffi';
import { BpfError, libbpf, libc, mmapReadOnly, munmap, strerror, type Ptr } from './libbpf.js';
import type { BpfMap, Closable } from './object.js';

/** The hash and LPM maps whose entries are counted here (arrays, per-CPU arrays and the ring buffer are not; the counter slots in use come from the counters' own scan, as `known`). */
export const COUNTED_MAPS = [
  'sockets', 'traffic', 'proc_verdicts', 'hashed_exes', 'cut_socks', 'llm_v4', 'llm_v6',
] as const;

export interface MapFill {
  name: string;
  entries: number;
  max: number;
}

/** KernelStats (sinks/metrics.ts) without `lost`. */
export interface KernelFill {
  ringbufUsedBytes: number;
  ringbufSizeBytes: number;
  maps: MapFill[];
}

/** enum bpf_map_type values counted here. */
export const MapType = { HASH: 1, LRU_HASH: 9, LPM_TRIE: 11, RINGBUF: 27 } as const;

const ENOENT = 2;
const ENOSPC = 28;
const BATCH_OPTS_SIZE = 24; // struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; }
/** Scratch for one batch: values are copied out by the kernel even though only the count is wanted. */
const SCRATCH_VALUES = 256 * 1024;
const SCRATCH_KEYS = 64 * 1024;
const MAX_CHUNK = 4096;

/** Counts the elements of hash and LPM-trie maps; one scratch area shared by every map. */
export class MapCounter {
  private readonly keys = Buffer.alloc(SCRATCH_KEYS);
  private readonly values = Buffer.alloc(SCRATCH_VALUES);
  private readonly inBatch = Buffer.alloc(8); // hash maps resume at a bucket index (__u32)
  private readonly outBatch = Buffer.alloc(8);
  private readonly count = Buffer.alloc(4);
  private readonly opts = Buffer.alloc(BATCH_OPTS_SIZE);

  constructor() {
    this.opts.writeBigUInt64LE(BigInt(BATCH_OPTS_SIZE), 0);
  }

  /** Entries in `map` now (at most its max_entries); null for map types that are not counted. */
  entries(map: BpfMap): number | null {
    const type = map.type;
    const max = map.maxEntries;
    if (type === MapType.HASH || type === MapType.LRU_HASH) {
      const n = this.batchCount(map, max);
      return Math.min(n ?? this.keyByKey(map, max), max);
    }
    if (type === MapType.LPM_TRIE) return this.keyByKey(map, max);
    return null;
  }

  /** bpf_map_lookup_batch in chunks; null when a bucket holds more than a chunk. */
  private batchCount(map: BpfMap, max: number): number | null {
    const lib = libbpf();
    const fd = map.fd;
    const chunk = Math.max(1, Math.min(MAX_CHUNK, Math.floor(SCRATCH_VALUES / map.valueSize), Math.floor(SCRATCH_KEYS / map.keySize)));
    let total = 0;
    let first = true;
    // bounded: a map that is refilled while it is read cannot keep the loop going
    for (let rounds = 0; rounds <= Math.ceil(max / chunk) + 1; rounds++) {
      this.count.writeUInt32LE(chunk, 0);
      const ret = lib.bpf_map_lookup_batch(fd, first ? null : this.inBatch, this.outBatch, this.keys, this.values, this.count, this.opts) as number;
      if (ret === -ENOSPC) return null; // one bucket holds more than `chunk` elements
      if (ret < 0 && ret !== -ENOENT) throw new BpfError(`bpf_map_lookup_batch(${map.name})`, -ret, strerror(ret));
      total += this.count.readUInt32LE(0);
      if (ret === -ENOENT) break;
      this.outBatch.copy(this.inBatch);
      first = false;
    }
    return total;
  }

  /** bpf_map_get_next_key over the whole map (LPM tries; hash maps when batches cannot be used). */
  private keyByKey(map: BpfMap, max: number): number {
    const lib = libbpf();
    const fd = map.fd;
    const size = map.keySize;
    let prev = Buffer.alloc(size);
    let next = Buffer.alloc(size);
    let n = 0;
    let ret = lib.bpf_map_get_next_key(fd, null, next) as number;
    while (ret === 0 && n < max) {
      n++;
      [prev, next] = [next, prev];
      ret = lib.bpf_map_get_next_key(fd, prev, next) as number;
    }
    if (ret < 0 && ret !== -ENOENT) throw new BpfError(`bpf_map_get_next_key(${map.name})`, -ret, strerror(ret));
    return n;
  }
}

/**
 * The ring buffer's consumer and producer positions, mapped read-only: the consumer page at
 * offset 0 and the producer page at offset pagesize, each starting with its 8-byte position.
 */
export class RingFill implements Closable {
  private addr: Ptr | null;
  private positions: BigUint64Array | null;
  private readonly length: number;
  private readonly producerIndex: number;
  readonly sizeBytes: number;

  constructor(map: BpfMap) {
    const page = libc().getpagesize() as number;
    this.length = 2 * page;
    this.producerIndex = page / 8;
    this.sizeBytes = map.maxEntries;
    this.addr = mmapReadOnly(`mmap(${map.name} positions)`, map.fd, this.length);
    this.positions = new BigUint64Array(koffi.view(this.addr, this.length));
  }

  /** Bytes written by the kernel and not yet consumed (reserved records included). */
  usedBytes(): number {
    const p = this.positions;
    if (p === null) return 0;
    const used = Number(Atomics.load(p, this.producerIndex) - Atomics.load(p, 0));
    return Math.max(0, Math.min(used, this.sizeBytes));
  }

  close(): void {
    if (this.addr === null) return;
    this.positions = null; // never read unmapped memory
    const addr = this.addr;
    this.addr = null;
    munmap('munmap(ring buffer positions)', addr, this.length);
  }
}

export interface KernelStatsOptions {
  /** Map counts are reused for this long (default 1000 ms); the ring buffer is read every time. */
  minIntervalMs?: number;
  /** Fill levels known without counting (the counter slots, from the last scan), added to every read. */
  known?: () => MapFill[];
  now?: () => number;
}

/** Map fill levels (cached) and ring-buffer occupancy (live) of one loaded object. */
export class KernelStatsReader implements Closable {
  private readonly counter = new MapCounter();
  private readonly ring: RingFill;
  private readonly maps: { map: BpfMap; max: number }[];
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private readonly known: () => MapFill[];
  private cached: MapFill[] | null = null;
  private countedAt = -Infinity;
  /** Time the last recount took, in ms (for diagnostics and the benchmark). */
  lastCountMs = 0;

  constructor(maps: BpfMap[], ring: BpfMap, opts: KernelStatsOptions = {}) {
    this.ring = new RingFill(ring);
    this.maps = maps.map((map) => ({ map, max: map.maxEntries }));
    this.minIntervalMs = opts.minIntervalMs ?? 1000;
    this.now = opts.now ?? Date.now;
    this.known = opts.known ?? (() => []);
  }

  read(): KernelFill {
    const now = this.now();
    if (this.cached === null || now - this.countedAt >= this.minIntervalMs) {
      this.cached = this.countAll();
      this.countedAt = now;
    }
    return { ringbufUsedBytes: this.ring.usedBytes(), ringbufSizeBytes: this.ring.sizeBytes, maps: [...this.cached, ...this.known()] };
  }

  private countAll(): MapFill[] {
    const start = performance.now();
    const out: MapFill[] = [];
    for (const { map, max } of this.maps) {
      let entries: number | null;
      try {
        entries = this.counter.entries(map);
      } catch {
        continue; // a map that cannot be read is left out of this scrape, not the others
      }
      if (entries !== null) out.push({ name: map.name, entries, max });
    }
    this.lastCountMs = performance.now() - start;
    return out;
  }

  close(): void {
    this.ring.close();
  }
}
