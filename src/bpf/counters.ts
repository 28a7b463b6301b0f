/**
 * Reads the kernel's per-socket byte counters: the `traffic_slots` array, mapped read-only and
 * scanned without a syscall, and the small `traffic` overflow hash (bpf_map_lookup_batch), read
 * only while the kernel's overflow count says it may hold entries. Also the per-CPU `stats`
 * array. Counters only grow in the kernel; deltas are computed by callers.
 */
import koffi from 'koffi';
import { BpfError, checkInt, libbpf, mmapReadOnly, munmap, strerror, type Ptr } from './libbpf.js';
import { Announced, SLOT, SLOT_BUSY, Stat, TRAFFIC } from './abi.js';
import type { BpfMap, BpfObject, Closable } from './object.js';

const ENOENT = 2;
const BATCH_OPTS_SIZE = 24; // struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; }

export type CounterVisitor = (cookie: bigint, tx: bigint, rx: bigint) => void;

/** 64-bit words of one slot, and where its cookie and counters are among them. */
const SLOT_WORDS = SLOT.size / 8;
const COOKIE_WORD = SLOT.cookie / 8;
const TX_WORD = (SLOT.counters + TRAFFIC.tx) / 8;
const RX_WORD = (SLOT.counters + TRAFFIC.rx) / 8;
const ANNOUNCED_WORD = (SLOT.counters + TRAFFIC.announced) / 8;

export interface TrafficMaps {
  /** `traffic_slots`: BPF_F_MMAPABLE array of struct busted_slot */
  slots: BpfMap;
  /** `traffic`: hash of struct busted_traffic by cookie, for sockets that found no free slot */
  overflow: BpfMap;
  /** `stats`: per-CPU array; Stat.OVERFLOW counts inserts into `overflow` */
  stats: BpfMap;
}

export class TrafficCounters implements Closable {
  private addr: Ptr | null;
  private readonly length: number;
  readonly slotCount: number;
  /** The mapping as 32-bit words (free slots are skipped without making a BigInt) and as 64-bit ones. */
  private words: Uint32Array;
  private quads: BigUint64Array;
  private readonly stats: PerCpuStats;
  /** Slots holding a socket's counters at the last scan (the kernel's tracked sockets, bar overflow). */
  slotsInUse = 0;
  /**
   * The tracked sockets not announced yet at the last read (no byte moved, or connecting; with
   * `late`, also kept back): slots, then overflow entries.
   */
  readonly unannounced: bigint[] = [];
  /** Beside each of `unannounced`: its slot index, or -1 for an overflow entry. */
  readonly unannouncedAt: number[] = [];
  /** Stat.OVERFLOW as read before a batch found the overflow hash empty: unchanged, it still is. */
  private overflowEmptyAt = 0n;
  private readonly keys: Buffer;
  private readonly values: Buffer;
  private readonly inBatch = Buffer.alloc(8);
  private readonly outBatch = Buffer.alloc(8);
  private readonly count = Buffer.alloc(4);
  private readonly opts = Buffer.alloc(BATCH_OPTS_SIZE);

  /**
   * The counters of a loaded object, unmapped when it closes. `late`: the object reports kept-back
   * connections late (QuietMode.LATE): those are unannounced too, for the idle iterator.
   */
  static of(obj: BpfObject, late = false): TrafficCounters {
    const counters = new TrafficCounters({ slots: obj.map('traffic_slots'), overflow: obj.map('traffic'), stats: obj.map('stats') }, late);
    obj.own(counters);
    return counters;
  }

  constructor(private readonly maps: TrafficMaps, private readonly late = false) {
    if (maps.slots.valueSize !== SLOT.size) {
      throw new Error(`The BPF object's traffic_slots hold ${maps.slots.valueSize}-byte values, not ${SLOT.size}: rebuild it with \`npm run build:bpf\`.`);
    }
    this.slotCount = maps.slots.maxEntries;
    this.length = this.slotCount * SLOT.size;
    this.addr = mmapReadOnly(`mmap(${maps.slots.name})`, maps.slots.fd, this.length);
    const buf = koffi.view(this.addr, this.length);
    this.words = new Uint32Array(buf);
    this.quads = new BigUint64Array(buf);
    this.stats = new PerCpuStats(maps.stats);
    const batch = maps.overflow.maxEntries;
    this.keys = Buffer.alloc(8 * batch);
    this.values = Buffer.alloc(TRAFFIC.size * batch);
    this.opts.writeBigUInt64LE(BigInt(BATCH_OPTS_SIZE), 0);
  }

  /** Visits the counters of every tracked socket once; returns how many. */
  readBatch(visit: CounterVisitor): number {
    let n = this.scanSlots(visit);
    // read before the hash: an insert it does not count was not done when the batch began
    const inserted = this.stats.read(Stat.OVERFLOW);
    if (inserted !== this.overflowEmptyAt) {
      const m = this.readOverflow(visit);
      if (m === 0) this.overflowEmptyAt = inserted;
      n += m;
    }
    return n;
  }

  /**
   * The slots in use, read without a syscall: cookie, tx, rx, then the cookie again; a slot whose
   * cookie changed meanwhile (freed, or freed and claimed again) is left for the next read.
   */
  scanSlots(visit: CounterVisitor): number {
    const w = this.words;
    const q = this.quads;
    const quiet = this.unannounced;
    const quietAt = this.unannouncedAt;
    quiet.length = 0;
    quietAt.length = 0;
    let n = 0;
    for (let s = 0, end = this.slotCount * SLOT_WORDS; s < end; s += SLOT_WORDS) {
      if ((w[2 * s + 2 * COOKIE_WORD]! | w[2 * s + 2 * COOKIE_WORD + 1]!) === 0) continue; // free
      const cookie = Atomics.load(q, s + COOKIE_WORD);
      if (cookie === 0n || cookie === SLOT_BUSY) continue;
      const tx = q[s + TX_WORD]!;
      const rx = q[s + RX_WORD]!;
      const announced = w[2 * (s + ANNOUNCED_WORD)]! | w[2 * (s + ANNOUNCED_WORD) + 1]!;
      if (Atomics.load(q, s + COOKIE_WORD) !== cookie) continue;
      if (announced === Announced.NO || (this.late && announced !== Announced.YES)) {
        quiet.push(cookie);
        quietAt.push(s / SLOT_WORDS);
      }
      visit(cookie, tx, rx);
      n++;
    }
    this.slotsInUse = n;
    return n;
  }

  /** The overflow hash with bpf_map_lookup_batch (one call while it holds at most max_entries). */
  readOverflow(visit: CounterVisitor): number {
    const lib = libbpf();
    const map = this.maps.overflow;
    const fd = map.fd;
    const size = this.keys.length / 8;
    let total = 0;
    let first = true;
    for (;;) {
      this.count.writeUInt32LE(size, 0);
      const ret = lib.bpf_map_lookup_batch(fd, first ? null : this.inBatch, this.outBatch, this.keys, this.values, this.count, this.opts) as number;
      if (ret < 0 && ret !== -ENOENT) throw new BpfError(`bpf_map_lookup_batch(${map.name})`, -ret, strerror(ret));
      const n = this.count.readUInt32LE(0);
      for (let i = 0; i < n; i++) {
        const v = i * TRAFFIC.size;
        const cookie = this.keys.readBigUInt64LE(i * 8);
        const announced = this.values.readUInt32LE(v + TRAFFIC.announced); // Announced.*: the low word holds it
        if (announced === Announced.NO || (this.late && announced !== Announced.YES)) {
          this.unannounced.push(cookie);
          this.unannouncedAt.push(-1);
        }
        visit(cookie, this.values.readBigUInt64LE(v + TRAFFIC.tx), this.values.readBigUInt64LE(v + TRAFFIC.rx));
      }
      total += n;
      if (ret === -ENOENT) return total;
      this.outBatch.copy(this.inBatch);
      first = false;
    }
  }

  /** The overflow hash one key at a time (bpf_map_get_next_key + lookup): for the benchmark. */
  readOverflowOneByOne(visit: CounterVisitor): number {
    const lib = libbpf();
    const fd = this.maps.overflow.fd;
    const key = Buffer.alloc(8);
    const next = Buffer.alloc(8);
    const value = Buffer.alloc(TRAFFIC.size);
    let total = 0;
    let prev: Buffer | null = null;
    while ((lib.bpf_map_get_next_key(fd, prev, next) as number) === 0) {
      next.copy(key);
      prev = key;
      if ((lib.bpf_map_lookup_elem(fd, key, value) as number) !== 0) continue; // deleted meanwhile
      visit(key.readBigUInt64LE(0), value.readBigUInt64LE(TRAFFIC.tx), value.readBigUInt64LE(TRAFFIC.rx));
      total++;
    }
    return total;
  }

  close(): void {
    if (this.addr === null) return;
    this.words = new Uint32Array(0); // never read unmapped memory
    this.quads = new BigUint64Array(0);
    const addr = this.addr;
    this.addr = null;
    munmap(`munmap(${this.maps.slots.name})`, addr, this.length);
  }
}

/** Sums a per-CPU array of __u64 counters. */
export class PerCpuStats {
  private readonly ncpu: number;
  private readonly value: Buffer;
  private readonly key = Buffer.alloc(4);

  constructor(private readonly map: BpfMap) {
    this.ncpu = checkInt('libbpf_num_possible_cpus', libbpf().libbpf_num_possible_cpus() as number);
    this.value = Buffer.alloc(8 * this.ncpu);
  }

  read(index: number): bigint {
    this.key.writeUInt32LE(index, 0);
    if (!this.map.lookup(this.key, this.value)) return 0n;
    let sum = 0n;
    for (let cpu = 0; cpu < this.ncpu; cpu++) sum += this.value.readBigUInt64LE(cpu * 8);
    return sum;
  }
}
