/**
 * Ring-buffer consumer that reads the BPF ring's memory itself (the protocol of the kernel's
 * kernel/bpf/ringbuf.c, as libbpf's ring_buffer__consume() follows it), with no C→JS callback and
 * no allocation per record: libbpf's callback per record cost more than decoding the record.
 *
 * The map is mmap'd twice: its consumer page (offset 0, one page) read-write, so the consumer
 * position can be published; its producer page and data (offset pagesize) read-only, the data
 * mapped twice back to back by the kernel so a record that wraps is contiguous. Each record is an
 * 8-byte header (u32 length with BUSY and DISCARD bits, u32 page offset) and its sample, rounded
 * up to 8 bytes. The engine calls consume() on a timer; it never blocks.
 */
import koffi from 'koffi';
import { libc, mmapReadOnly, mmapReadWrite, munmap, type Ptr } from './libbpf.js';
import type { BpfMap, Closable } from './object.js';

/**
 * Gets each record as `length` bytes at `offset` of `view`, one DataView over the whole ring.
 * The bytes are the ring's own: valid only during the call (copy what is kept).
 */
export type RecordHandler = (view: DataView, offset: number, length: number) => void;

const HEADER_SIZE = 8;
/** The header's length word, read as an Int32: BUSY is its sign bit. */
const DISCARD_BIT = 0x4000_0000;
const LENGTH_MASK = 0x3fff_ffff;
/** Records between looks at the clock (and publications of the consumer position). */
const CHECK_EVERY = 64;

interface Mapped {
  consumerPage: Ptr;
  dataArea: Ptr;
  /** consumer_pos, the only thing busted writes */
  consumerPos: BigUint64Array;
  producerPos: BigUint64Array;
  /** the data area as 32-bit words, for the record headers */
  words: Int32Array;
  /** the data area (both copies), handed to the record handler */
  view: DataView;
}

export class RingBuffer implements Closable {
  private mapped: Mapped | null;
  private readonly pageSize: number;
  private readonly dataLength: number;
  /** ring size - 1 (the kernel makes the size a power of 2) */
  private readonly mask: number;
  private readonly maskBig: bigint;

  constructor(map: BpfMap, private readonly onRecord: RecordHandler) {
    const size = map.maxEntries;
    this.size = size;
    const fd = map.fd;
    this.pageSize = libc().getpagesize() as number;
    this.dataLength = this.pageSize + 2 * size;
    this.mask = size - 1;
    this.maskBig = BigInt(size - 1);
    const consumerPage = mmapReadWrite(`mmap(${map.name} consumer page)`, fd, this.pageSize, 0);
    let dataArea: Ptr;
    try {
      dataArea = mmapReadOnly(`mmap(${map.name} data)`, fd, this.dataLength, this.pageSize);
    } catch (err) {
      munmap(`munmap(${map.name} consumer page)`, consumerPage, this.pageSize);
      throw err;
    }
    const data = koffi.view(dataArea, this.dataLength);
    this.mapped = {
      consumerPage,
      dataArea,
      consumerPos: new BigUint64Array(koffi.view(consumerPage, this.pageSize), 0, 1),
      producerPos: new BigUint64Array(data, 0, 1),
      words: new Int32Array(data, this.pageSize, (2 * size) / 4),
      view: new DataView(data, this.pageSize, 2 * size),
    };
  }

  /** The ring's data size in bytes. */
  readonly size: number;

  /**
   * Consumes available records without waiting, at most `budget` of them and for about `maxMs`
   * (the clock is read every 64 records); returns how many were handled, whether it stopped
   * with records left, and the ring bytes it gave back (headers and discarded records included).
   * A handler's exception ends the call: the records up to and including the failing one count
   * as consumed, and the exception is rethrown.
   */
  consume(budget = Infinity, maxMs = Infinity): { handled: number; more: boolean; bytes: number } {
    const m = this.mapped;
    if (m === null) return { handled: 0, more: false, bytes: 0 };
    const { consumerPos, producerPos, words, view } = m;
    const mask = this.mask;
    const deadline = maxMs === Infinity ? Infinity : performance.now() + maxMs;
    // positions are u64: kept as one bigint base and a number of bytes past it, so a record
    // costs no bigint arithmetic (a number counts bytes exactly up to 2^53)
    const base = Atomics.load(consumerPos, 0);
    const start = Number(base & this.maskBig);
    let available = Number(BigInt.asUintN(64, Atomics.load(producerPos, 0) - base));
    let done = 0;
    let published = 0;
    let handled = 0;
    let timeUp = false;
    let more = false;
    try {
      for (;;) {
        if (done >= available) {
          available = Number(BigInt.asUintN(64, Atomics.load(producerPos, 0) - base));
          if (done >= available) break;
        }
        if (handled >= budget || timeUp) {
          more = true;
          break;
        }
        const at = (start + done) & mask;
        const header = Atomics.load(words, at >> 2);
        if (header < 0) break; // BUSY: reserved, not yet committed; later records wait behind it
        const length = header & LENGTH_MASK;
        done += (length + HEADER_SIZE + 7) & ~7;
        if ((header & DISCARD_BIT) !== 0) continue;
        handled++;
        this.onRecord(view, at + HEADER_SIZE, length);
        if (handled % CHECK_EVERY === 0) {
          // give the kernel the space back as we go, and let the event loop have its turn
          Atomics.store(consumerPos, 0, base + BigInt(done));
          published = done;
          timeUp = performance.now() >= deadline;
        }
      }
    } finally {
      if (done !== published) Atomics.store(consumerPos, 0, base + BigInt(done));
    }
    return { handled, more, bytes: done };
  }

  close(): void {
    const m = this.mapped;
    if (m === null) return;
    this.mapped = null; // never read unmapped memory
    try {
      munmap('munmap(ring buffer data)', m.dataArea, this.dataLength);
    } finally {
      munmap('munmap(ring buffer consumer page)', m.consumerPage, this.pageSize);
    }
  }
}
