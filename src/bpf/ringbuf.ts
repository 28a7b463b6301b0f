/**
 * Ring-buffer consumer. libbpf calls a koffi-registered callback for each record during
 * ring_buffer__consume(), which never blocks; the engine calls consume() on a timer so the
 * event loop is never held. Records are decoded in the callback with a DataView over the
 * ring's memory (valid only during the callback), so nothing is copied twice.
 * The callback is unregistered only after the ring buffer is freed.
 */
import koffi from 'koffi';
import { checkInt, checkPtr, libbpf, RingBufferSampleFn, type Ptr } from './libbpf.js';
import type { BpfMap, Closable } from './object.js';

export type RecordHandler = (view: DataView) => void;

/** What the callback returns to make libbpf stop after this record (it counts as consumed). */
const BUDGET_SPENT = -125; // -ECANCELED

export class RingBuffer implements Closable {
  private rb: Ptr | null;
  private callback: bigint | null;
  private handlerError: unknown = null;
  private budget = Infinity;
  private deadline = Infinity;
  private handled = 0;

  constructor(map: BpfMap, onRecord: RecordHandler) {
    const sample = (_ctx: Ptr, data: Ptr, size: number | bigint): number => {
      try {
        const len = Number(size);
        onRecord(new DataView(koffi.view(data, len)));
      } catch (err) {
        this.handlerError ??= err; // rethrown from consume(); never unwinds through C
      }
      // libbpf keeps consuming while producers keep producing: stop after `budget` records, or
      // once the time is up (checked every 64 records), so the event loop gets its turn even
      // when busted gets little CPU (the rest stays in the ring for the next call)
      if (++this.handled >= this.budget) return BUDGET_SPENT;
      if ((this.handled & 63) === 0 && performance.now() >= this.deadline) return BUDGET_SPENT;
      return 0;
    };
    this.callback = koffi.register(sample, koffi.pointer(RingBufferSampleFn));
    try {
      this.rb = checkPtr(`ring_buffer__new(${map.name})`, libbpf().ring_buffer__new(map.fd, this.callback, null, null));
    } catch (err) {
      koffi.unregister(this.callback);
      this.callback = null;
      throw err;
    }
  }

  /**
   * Consumes available records without waiting, at most `budget` of them and for about `maxMs`;
   * returns how many were handled and whether the budget ran out (so more may be waiting).
   */
  consume(budget = Infinity, maxMs = Infinity): { handled: number; more: boolean } {
    if (this.rb === null) return { handled: 0, more: false };
    this.budget = budget;
    this.deadline = performance.now() + maxMs;
    this.handled = 0;
    const ret = libbpf().ring_buffer__consume(this.rb) as number;
    const more = ret === BUDGET_SPENT;
    if (!more) checkInt('ring_buffer__consume', ret);
    if (this.handlerError !== null) {
      const err = this.handlerError;
      this.handlerError = null;
      throw err;
    }
    return { handled: this.handled, more };
  }

  close(): void {
    if (this.rb !== null) {
      libbpf().ring_buffer__free(this.rb);
      this.rb = null;
    }
    if (this.callback !== null) {
      koffi.unregister(this.callback);
      this.callback = null;
    }
  }
}
