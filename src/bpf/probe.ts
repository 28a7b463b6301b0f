/**
 * busted's kernel side as one unit: finds bpf/busted.bpf.o, configures, loads and attaches it,
 * and exposes the ring buffer, the counters and the stats. Used by the engine and by doctor.
 */
import { fileURLToPath } from 'node:url';
import { decodeEvent, Stat, type KernelEvent } from './abi.js';
import { PerCpuStats, TrafficCounters } from './counters.js';
import { BpfObject } from './object.js';
import { RingBuffer } from './ringbuf.js';

export const OBJECT_PATH = process.env.BUSTED_BPF_OBJECT ?? fileURLToPath(new URL('../../bpf/busted.bpf.o', import.meta.url));

/** Offset of `self_tgid` in .rodata (the object's only `const volatile` global). */
const RODATA_SELF_TGID = 0;

/** Programs attached by default (section names give the hook). */
export const TRACING_PROGRAMS = ['busted_set_state', 'busted_send', 'busted_recv'] as const;

export interface ProbeOptions {
  /** Events of this process are not reported (busted's own sockets). */
  selfTgid?: number;
  onEvent: (ev: KernelEvent) => void;
  /** Records whose kind the decoder does not know (ABI mismatch): counted, not fatal. */
  onBadRecord?: () => void;
}

export class KernelProbe {
  readonly counters: TrafficCounters;
  private readonly stats: PerCpuStats;
  private readonly ring: RingBuffer;

  private constructor(private readonly obj: BpfObject, opts: ProbeOptions) {
    this.ring = new RingBuffer(obj.map('events'), (view) => {
      const ev = decodeEvent(view);
      if (ev) opts.onEvent(ev);
      else opts.onBadRecord?.();
    });
    obj.own(this.ring);
    this.counters = new TrafficCounters(obj.map('traffic'));
    this.stats = new PerCpuStats(obj.map('stats'));
  }

  /** Opens, loads and attaches everything; on any failure nothing stays loaded or attached. */
  static start(opts: ProbeOptions): KernelProbe {
    const obj = BpfObject.open(OBJECT_PATH);
    try {
      obj.setRodata((ro) => ro.setUint32(RODATA_SELF_TGID, opts.selfTgid ?? 0, true));
      obj.load();
      for (const prog of obj.programs()) obj.attach(prog);
      return new KernelProbe(obj, opts);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** Drains the ring buffer (non-blocking). */
  poll(): number {
    return this.ring.consume();
  }

  lost(): bigint {
    return this.stats.read(Stat.LOST);
  }

  untracked(): bigint {
    return this.stats.read(Stat.UNTRACKED);
  }

  get attached(): number {
    return this.obj.attachedCount;
  }

  close(): void {
    this.obj.close();
  }
}
