/**
 * Reads the kernel's per-socket byte counters (`traffic`) in batches with bpf_map_lookup_batch,
 * and the per-CPU `stats` array. Counters only grow in the kernel; deltas are computed by callers.
 */
import { BpfError, checkInt, libbpf, strerror } from './libbpf.js';
import { TRAFFIC } from './abi.js';
import type { BpfMap } from './object.js';

const ENOENT = 2;
const BATCH_OPTS_SIZE = 24; // struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; }

export type CounterVisitor = (cookie: bigint, tx: bigint, rx: bigint) => void;

export class TrafficCounters {
  private readonly keys: Buffer;
  private readonly values: Buffer;
  private readonly inBatch = Buffer.alloc(8);
  private readonly outBatch = Buffer.alloc(8);
  private readonly count = Buffer.alloc(4);
  private readonly opts = Buffer.alloc(BATCH_OPTS_SIZE);

  constructor(
    private readonly map: BpfMap,
    private readonly batchSize = 16384,
  ) {
    this.keys = Buffer.alloc(8 * batchSize);
    this.values = Buffer.alloc(TRAFFIC.size * batchSize);
    this.opts.writeBigUInt64LE(BigInt(BATCH_OPTS_SIZE), 0);
  }

  /** Visits every counter with batched lookups; returns how many entries were read. */
  readBatch(visit: CounterVisitor): number {
    const lib = libbpf();
    const fd = this.map.fd;
    let total = 0;
    let first = true;
    for (;;) {
      this.count.writeUInt32LE(this.batchSize, 0);
      const ret = lib.bpf_map_lookup_batch(fd, first ? null : this.inBatch, this.outBatch, this.keys, this.values, this.count, this.opts) as number;
      if (ret < 0 && ret !== -ENOENT) throw new BpfError(`bpf_map_lookup_batch(${this.map.name})`, -ret, strerror(ret));
      const n = this.count.readUInt32LE(0);
      for (let i = 0; i < n; i++) {
        const v = i * TRAFFIC.size;
        visit(this.keys.readBigUInt64LE(i * 8), this.values.readBigUInt64LE(v + TRAFFIC.tx), this.values.readBigUInt64LE(v + TRAFFIC.rx));
      }
      total += n;
      if (ret === -ENOENT) return total;
      this.outBatch.copy(this.inBatch);
      first = false;
    }
  }

  /** The same, one key at a time (bpf_map_get_next_key + lookup): for benchmarks and as a fallback. */
  readOneByOne(visit: CounterVisitor): number {
    const lib = libbpf();
    const fd = this.map.fd;
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
