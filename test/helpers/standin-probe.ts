/**
 * A stand-in for the kernel probe (EngineOptions.startProbe): nothing is loaded or attached; the
 * records are whatever `poll` hands the engine's onEvent. For the engine's unit test and for
 * bench/pipeline.ts, which measures the user space alone.
 */
import type { ProbeOptions } from '../../src/bpf/probe.js';
import type { Probe } from '../../src/core/engine.js';

/** `poll`'s `fill` (the share of a ring its records took up) is 0 when left out. */
export function standInProbe(poll: (opts: ProbeOptions, budget: number) => { handled: number; more: boolean; fill?: number }) {
  return (opts: ProbeOptions): Probe => ({
    counters: { readBatch: () => 0 } as unknown as Probe['counters'],
    enforcer: null as unknown as Probe['enforcer'], // no cgroup programs (cgroupPath null): never used
    execPath: () => null,
    lost: () => 0n,
    untracked: () => 0n,
    quiet: () => ({ closed: 0n, failed: 0n }),
    dnsApplied: () => {},
    announcesIdle: false, // no cgroup programs: the state-change tracepoint announces connections
    announceIdle: () => {},
    ownerOf: () => null,
    census: () => null, // no cgroup programs: no census
    unseen: () => 0n,
    unseenByState: () => ({}),
    kernelStats: () => ({ maps: [], ringbufUsedBytes: 0, ringbufSizeBytes: 0 }),
    close: () => {},
    poll: (budget = Infinity) => ({ fill: 0, ...poll(opts, budget) }),
  });
}
