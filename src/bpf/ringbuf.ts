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

export class RingBuffer implements Closable {
  private rb: Ptr | null;
  private callback: bigint | null;
  private handlerError: unknown = null;

  constructor(map: BpfMap, onRecord: RecordHandler) {
    const sample = (_ctx: Ptr, data: Ptr, size: number | bigint): number => {
      try {
        const len = Number(size);
        onRecord(new DataView(koffi.view(data, len)));
      } catch (err) {
        this.handlerError ??= err; // rethrown from consume(); never unwinds through C
      }
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

  /** Consumes every available record without waiting; returns how many were handled. */
  consume(): number {
    if (this.rb === null) return 0;
    const n = checkInt('ring_buffer__consume', libbpf().ring_buffer__consume(this.rb) as number);
    if (this.handlerError !== null) {
      const err = this.handlerError;
      this.handlerError = null;
      throw err;
    }
    return n;
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
