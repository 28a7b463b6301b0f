/**
 * bpf/ringbuf.ts against a ring laid out as the kernel lays out a BPF_MAP_TYPE_RINGBUF mapping,
 * with no kernel: a file holding the consumer page, the producer page and the data area twice
 * (the kernel maps the same pages twice; here every write goes to both copies). The test writes
 * records as the kernel does (8-byte header, BUSY until committed, DISCARD, 8-byte rounding) and
 * reads the consumer position the RingBuffer publishes from the file.
 */
import test, { type ExecutionContext } from 'ava';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libc } from '../../src/bpf/libbpf.js';
import type { BpfMap } from '../../src/bpf/object.js';
import { RingBuffer, type RecordHandler } from '../../src/bpf/ringbuf.js';

const SIZE = 16 * 1024;
const MASK = SIZE - 1;
const BUSY = 0x8000_0000;
const DISCARD = 0x4000_0000;
const PAGE = libc().getpagesize() as number;

const recordSize = (len: number) => (len + 8 + 7) & ~7;

/** The kernel's side: writes records and the producer position into the file. */
class FakeKernel {
  private readonly ring = Buffer.alloc(SIZE);
  producer = 0;
  readonly fd: number;
  private readonly dir = mkdtempSync(join(tmpdir(), 'busted-ring-'));

  constructor() {
    this.fd = openSync(join(this.dir, 'ring'), 'w+');
    ftruncateSync(this.fd, 2 * PAGE + 2 * SIZE);
    this.flush();
  }

  get map(): BpfMap {
    return { name: 'fake', fd: this.fd, maxEntries: SIZE } as unknown as BpfMap;
  }

  /** The consumer position the RingBuffer published. */
  consumer(): number {
    const b = Buffer.alloc(8);
    readSync(this.fd, b, 0, 8, 0);
    return Number(b.readBigUInt64LE());
  }

  /** Reserves `len` bytes (the header says BUSY); returns the record's position, or null when full. */
  reserve(len: number): number | null {
    if (this.producer + recordSize(len) - this.consumer() > SIZE) return null;
    const pos = this.producer;
    this.ring.writeUInt32LE((len | BUSY) >>> 0, pos & MASK);
    this.ring.writeUInt32LE(0, (pos + 4) & MASK);
    this.producer += recordSize(len);
    this.flush();
    return pos;
  }

  commit(pos: number, bytes: Uint8Array, discard = false): void {
    for (let i = 0; i < bytes.length; i++) this.ring[(pos + 8 + i) & MASK] = bytes[i]!;
    this.ring.writeUInt32LE((bytes.length | (discard ? DISCARD : 0)) >>> 0, pos & MASK);
    this.flush();
  }

  /** Reserves and commits; false when the ring is full. */
  push(bytes: Uint8Array, discard = false): boolean {
    const pos = this.reserve(bytes.length);
    if (pos === null) return false;
    this.commit(pos, bytes, discard);
    return true;
  }

  private flush(): void {
    const pos = Buffer.alloc(8);
    pos.writeBigUInt64LE(BigInt(this.producer));
    writeSync(this.fd, pos, 0, 8, PAGE);
    writeSync(this.fd, this.ring, 0, SIZE, 2 * PAGE);
    writeSync(this.fd, this.ring, 0, SIZE, 2 * PAGE + SIZE);
  }

  close(): void {
    closeSync(this.fd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Record `seq`: its number, then bytes that depend on it; lengths from 4 to 703. */
function recordOf(seq: number): Uint8Array {
  const len = 4 + ((seq * 53) % 700);
  const bytes = new Uint8Array(len);
  new DataView(bytes.buffer).setUint32(0, seq, true);
  for (let i = 4; i < len; i++) bytes[i] = (seq * 31 + i) & 0xff;
  return bytes;
}

interface Seen {
  seq: number;
  /** the record's bytes were those written, read through the handler's view */
  intact: boolean;
  /** the record runs past the end of the first copy of the data (read from the second) */
  wrapped: boolean;
}

function collector(t: ExecutionContext, seen: Seen[]): RecordHandler {
  return (view, offset, length) => {
    t.is(view.byteLength, 2 * SIZE, 'one view over both copies of the data');
    const seq = view.getUint32(offset, true);
    const want = recordOf(seq);
    let intact = length === want.length;
    for (let i = 0; intact && i < length; i++) intact = view.getUint8(offset + i) === want[i];
    seen.push({ seq, intact, wrapped: offset + length > SIZE });
  };
}

function withRing(fn: (k: FakeKernel) => void): void {
  const k = new FakeKernel();
  try {
    fn(k);
  } finally {
    k.close();
  }
}

test('every record is delivered once, in order and intact, over many laps of the ring', (t) => {
  withRing((k) => {
    const seen: Seen[] = [];
    const ring = new RingBuffer(k.map, collector(t, seen));
    const budgets = [1, 7, 64, 65, 2048, Infinity];
    const N = 3000;
    let next = 0;
    for (let round = 0; next < N || k.consumer() < k.producer; round++) {
      // fill a random part of the free space, then read with one of the budgets
      const want = 1 + ((round * 7919) % 60);
      for (let i = 0; i < want && next < N && k.push(recordOf(next)); i++) next++;
      const budget = budgets[round % budgets.length]!;
      const before = seen.length;
      const from = k.consumer();
      const { handled, more, bytes } = ring.consume(budget);
      t.is(handled, seen.length - before, 'handled counts the records handed over');
      t.is(bytes, k.consumer() - from, 'bytes: how far the consumer position moved');
      t.true(handled <= budget);
      if (more) t.is(handled, budget, 'more only when the budget stopped it');
      else t.is(k.consumer(), k.producer, 'without more, the ring is empty');
      if (round > 100_000) throw new Error("no progress");
    }
    ring.close();
    t.deepEqual(seen.map((s) => s.seq), [...Array(N).keys()]);
    t.true(seen.every((s) => s.intact), 'every record read back as written');
    t.true(k.producer > 10 * SIZE, `many laps (${(k.producer / SIZE).toFixed(1)})`);
    t.true(seen.filter((s) => s.wrapped).length >= 10, 'records that wrap are read whole from the second copy');
  });
});

test('budget: consume stops after `budget` records and the next call resumes right after', (t) => {
  withRing((k) => {
    const seen: Seen[] = [];
    const ring = new RingBuffer(k.map, collector(t, seen));
    /** the ring bytes of records from..to-1 */
    const bytes = (from: number, to: number) => [...Array(to - from).keys()].reduce((n, i) => n + recordSize(recordOf(from + i).length), 0);
    for (let i = 0; i < 10; i++) k.push(recordOf(i));
    t.deepEqual(ring.consume(3), { handled: 3, more: true, bytes: bytes(0, 3) });
    t.is(k.consumer(), bytes(0, 3), 'position published on return');
    t.deepEqual(ring.consume(3), { handled: 3, more: true, bytes: bytes(3, 6) });
    t.deepEqual(ring.consume(3), { handled: 3, more: true, bytes: bytes(6, 9) });
    t.deepEqual(ring.consume(3), { handled: 1, more: false, bytes: bytes(9, 10) });
    t.deepEqual(ring.consume(3), { handled: 0, more: false, bytes: 0 });
    for (let i = 10; i < 13; i++) k.push(recordOf(i));
    t.deepEqual(ring.consume(3), { handled: 3, more: false, bytes: bytes(10, 13) }, 'exactly the budget left: nothing more');
    t.deepEqual(seen.map((s) => s.seq), [...Array(13).keys()]);
    t.is(k.consumer(), k.producer);
    ring.close();
  });
});

test('maxMs: the clock is read every 64 records; the position is published as it goes', (t) => {
  withRing((k) => {
    const positions: number[] = [];
    let n = 0;
    const ring = new RingBuffer(k.map, () => {
      if (n++ % 64 === 0) positions.push(k.consumer());
    });
    const len = 8; // 16-byte records: 200 of them fit the ring
    for (let i = 0; i < 200; i++) k.push(recordOf(0).subarray(0, len));
    t.deepEqual(ring.consume(Infinity, 0), { handled: 64, more: true, bytes: 64 * 16 }, 'a deadline already past stops at the first check');
    t.deepEqual(ring.consume(Infinity, 60_000), { handled: 136, more: false, bytes: 136 * 16 });
    // seen by records 0, 64 | 128, 192: the kernel got its space back every 64 records
    t.deepEqual(positions, [0, 64 * 16, 128 * 16, 192 * 16]);
    ring.close();
  });
});

test('a record still being written (BUSY) holds back the committed ones behind it', (t) => {
  withRing((k) => {
    const seen: Seen[] = [];
    const ring = new RingBuffer(k.map, collector(t, seen));
    k.push(recordOf(0));
    const slow = k.reserve(recordOf(1).length)!;
    k.push(recordOf(2));
    t.deepEqual(ring.consume(), { handled: 1, more: false, bytes: recordSize(recordOf(0).length) });
    t.is(k.consumer(), recordSize(recordOf(0).length), 'stopped at the busy record');
    k.commit(slow, recordOf(1));
    t.deepEqual(ring.consume(), { handled: 2, more: false, bytes: recordSize(recordOf(1).length) + recordSize(recordOf(2).length) });
    t.deepEqual(seen.map((s) => s.seq), [0, 1, 2]);
    t.is(k.consumer(), k.producer);
    ring.close();
  });
});

test('discarded records are stepped over and not counted', (t) => {
  withRing((k) => {
    const seen: Seen[] = [];
    const ring = new RingBuffer(k.map, collector(t, seen));
    k.push(recordOf(0));
    k.push(recordOf(1), true);
    k.push(recordOf(2), true);
    k.push(recordOf(3));
    t.deepEqual(ring.consume(1), { handled: 1, more: true, bytes: recordSize(recordOf(0).length) });
    const rest = [1, 2, 3].reduce((n, i) => n + recordSize(recordOf(i).length), 0);
    t.deepEqual(ring.consume(1), { handled: 1, more: false, bytes: rest }, "the discarded records' bytes count as given back");
    t.deepEqual(seen.map((s) => s.seq), [0, 3]);
    t.is(k.consumer(), k.producer);
    ring.close();
  });
});

test('a handler exception: the failing record and those before it stay consumed, the error is rethrown', (t) => {
  withRing((k) => {
    const seqs: number[] = [];
    const ring = new RingBuffer(k.map, (view, offset) => {
      const seq = view.getUint32(offset, true);
      seqs.push(seq);
      if (seq === 2) throw new Error('handler failed on 2');
    });
    for (let i = 0; i < 5; i++) k.push(recordOf(i));
    t.throws(() => ring.consume(), { message: 'handler failed on 2' });
    t.is(k.consumer(), [0, 1, 2].reduce((n, i) => n + recordSize(recordOf(i).length), 0));
    t.deepEqual(ring.consume(), { handled: 2, more: false, bytes: recordSize(recordOf(3).length) + recordSize(recordOf(4).length) });
    t.deepEqual(seqs, [0, 1, 2, 3, 4], 'nothing handled twice, nothing skipped');
    ring.close();
  });
});

test('close unmaps once; a closed ring reads nothing', (t) => {
  withRing((k) => {
    let n = 0;
    const ring = new RingBuffer(k.map, () => n++);
    k.push(recordOf(0));
    ring.close();
    ring.close();
    t.deepEqual(ring.consume(), { handled: 0, more: false, bytes: 0 });
    t.is(n, 0);
    t.is(k.consumer(), 0);
  });
});
