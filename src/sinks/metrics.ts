/**
 * `--metrics [HOST:]PORT`: Prometheus metrics (prom-client, a registry of our own), fed only by
 * event records and by a kernel-stats callback; no /proc or kernel access here.
 *
 * Per-process series are bounded: at most `topN` process identities have their own
 * `busted_process_bytes_total` series, everything else is summed into `comm="other"`. Counters
 * never go backwards: a process that leaves the top N (it went idle, exited, or was displaced)
 * has its exported totals folded into "other" and never gets its own series again; a process
 * promoted into the top N starts its series from the bytes it moves after promotion (what it
 * moved before already sits in "other").
 */
import os from 'node:os';
import { Counter, Gauge, Registry } from 'prom-client';
import type { KernelStats } from '../core/kernel-stats.js';
import type { EventRecord } from '../core/records.js';
import { ProcessTop } from './metrics-top.js';

export type { KernelStats } from '../core/kernel-stats.js';

export interface MetricsOptions {
  /** Processes with their own series (default 20). */
  topN?: number;
  /** A process with no open flow and no bytes for this long leaves the top N (default 60 s). */
  idleMs?: number;
  stats?: () => KernelStats;
  version: string;
  now?: () => number;
}

/** A value read at scrape time that only grows (e.g. a sink's drop count). */
export type CounterSource = () => number;

const NONE = 'none';
const MAX_FLOWS = 1 << 18;

interface FlowInfo {
  provider: string;
  proto: string;
  proc: string;
  tx: number;
  rx: number;
}

export class BustedMetrics {
  readonly registry = new Registry();
  private readonly flows = new Map<string, FlowInfo>();
  private readonly providersSeen = new Set<string>();
  private readonly top: ProcessTop;
  private readonly now: () => number;
  private readonly stats?: () => KernelStats;
  private lostFromRecords = 0;
  private lostExported = 0;
  private kernel = os.release();
  private readonly version: string;

  private readonly connections: Counter<'provider' | 'proto'>;
  private readonly failures: Counter<'provider' | 'proto'>;
  private readonly bytes: Counter<'provider' | 'direction'>;
  private readonly policy: Counter<'action' | 'result'>;
  private readonly records: Counter<'type'>;
  private readonly lost: Counter;

  constructor(opts: MetricsOptions) {
    this.now = opts.now ?? Date.now;
    this.stats = opts.stats;
    this.version = opts.version;
    this.top = new ProcessTop(opts.topN ?? 20, opts.idleMs ?? 60_000);
    const registers = [this.registry];
    const self = this;
    this.connections = new Counter({
      name: 'busted_connections_total', help: 'Connections reported, by the provider known at connect time ("none": not LLM traffic or not yet classified) and protocol.',
      labelNames: ['provider', 'proto'], registers,
    });
    this.failures = new Counter({
      name: 'busted_connection_failures_total', help: 'Connections that failed to establish (refused, timed out, denied), by provider and protocol.',
      labelNames: ['provider', 'proto'], registers,
    });
    new Gauge({
      name: 'busted_connections_open', help: 'Connections open now, by provider.', labelNames: ['provider'], registers,
      collect() {
        const open = new Map<string, number>([...self.providersSeen].map((p) => [p, 0]));
        for (const f of self.flows.values()) open.set(f.provider, (open.get(f.provider) ?? 0) + 1);
        this.reset();
        for (const [provider, n] of open) this.set({ provider }, n);
      },
    });
    this.bytes = new Counter({
      name: 'busted_bytes_total', help: 'Bytes sent (tx) and received (rx) by watched flows, by provider.',
      labelNames: ['provider', 'direction'], registers,
    });
    new Counter({
      name: 'busted_process_bytes_total',
      help: `Bytes by process for the top ${opts.topN ?? 20} processes by traffic; the others (and processes that left the top) are summed in comm="other".`,
      labelNames: ['pid', 'comm', 'user', 'agent', 'provider', 'direction'], registers,
      collect() {
        self.top.rebalance(self.now());
        this.reset();
        for (const s of self.top.series()) this.inc(s.labels, s.value);
      },
    });
    this.policy = new Counter({
      name: 'busted_policy_decisions_total', help: 'Policy decisions: action (block, audit) and result (denied, would-deny).',
      labelNames: ['action', 'result'], registers,
    });
    this.records = new Counter({ name: 'busted_records_total', help: 'Event records seen, by type.', labelNames: ['type'], registers });
    this.lost = new Counter({
      name: 'busted_kernel_lost_events_total', help: 'Events the kernel could not deliver (ring buffer full).', registers,
      collect() {
        self.collectLost();
      },
    });
    if (this.stats) this.registerKernelGauges(registers);
    new Gauge({
      name: 'busted_build_info', help: 'Always 1; the labels say which busted and which kernel.', labelNames: ['version', 'kernel'], registers,
      collect() {
        this.reset();
        this.set({ version: self.version, kernel: self.kernel }, 1);
      },
    });
  }

  /** Adds a counter whose value is read at scrape time from `read` (which must only grow). */
  addCounter(name: string, help: string, read: CounterSource): void {
    let exported = 0;
    new Counter({
      name, help, registers: [this.registry],
      collect() {
        const v = read();
        if (v > exported) {
          this.inc(v - exported);
          exported = v;
        }
      },
    });
  }

  /** A connection the engine kept back (busted without --all: not LLM traffic): counted, nothing more. */
  quiet(proto: 'tcp' | 'udp', failed: boolean, n = 1): void {
    this.providersSeen.add(NONE);
    this.connections.inc({ provider: NONE, proto }, n);
    if (failed) this.failures.inc({ provider: NONE, proto }, n);
  }

  handle(rec: EventRecord): void {
    this.records.inc({ type: rec.type });
    const now = this.now();
    switch (rec.type) {
      case 'session':
        this.kernel = rec.kernel;
        return;
      case 'connect': {
        const provider = rec.provider ?? NONE;
        this.providersSeen.add(provider);
        this.connections.inc({ provider, proto: rec.proto });
        const proc = `${rec.pid}:${rec.startTime}`;
        this.top.seen(proc, { pid: rec.pid, comm: rec.comm, user: rec.user ?? String(rec.uid), agent: rec.agent?.id ?? '' }, now);
        if (rec.error !== null) {
          this.failures.inc({ provider, proto: rec.proto });
          return;
        }
        if (this.flows.has(rec.flow)) return;
        if (this.flows.size >= MAX_FLOWS) this.dropOldestFlow(now);
        this.flows.set(rec.flow, { provider, proto: rec.proto, proc, tx: 0, rx: 0 });
        this.top.opened(proc);
        return;
      }
      case 'process':
        this.top.identity(`${rec.pid}:${rec.startTime}`, { user: rec.user, agent: rec.agent?.id ?? null });
        return;
      case 'classify': {
        const f = this.flows.get(rec.flow);
        if (f && rec.provider !== null) {
          f.provider = rec.provider;
          this.providersSeen.add(rec.provider);
        }
        return;
      }
      case 'traffic': {
        const f = this.flows.get(rec.flow);
        if (f) this.addBytes(f, rec.tx, rec.rx, now);
        return;
      }
      case 'close': {
        const f = this.flows.get(rec.flow);
        if (!f) return;
        this.addBytes(f, Math.max(0, rec.tx - f.tx), Math.max(0, rec.rx - f.rx), now);
        this.flows.delete(rec.flow);
        this.top.closed(f.proc, now);
        return;
      }
      case 'policy':
        this.policy.inc({ action: rec.action, result: rec.result });
        return;
      case 'lost':
        this.lostFromRecords += rec.count;
        return;
      case 'kill':
        return;
    }
  }

  /** The exposition text (what /metrics serves). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  private addBytes(f: FlowInfo, tx: number, rx: number, now: number): void {
    if (tx <= 0 && rx <= 0) return;
    f.tx += tx;
    f.rx += rx;
    if (tx > 0) this.bytes.inc({ provider: f.provider, direction: 'tx' }, tx);
    if (rx > 0) this.bytes.inc({ provider: f.provider, direction: 'rx' }, rx);
    this.top.bytes(f.proc, f.provider, tx, rx, now);
  }

  private dropOldestFlow(now: number): void {
    const [id, f] = this.flows.entries().next().value as [string, FlowInfo];
    this.flows.delete(id);
    this.top.closed(f.proc, now);
  }

  private collectLost(): void {
    let stats: number = 0;
    try {
      stats = this.stats?.().lost ?? 0;
    } catch {
      // a failing stats callback must not break the scrape
    }
    // Lost records and the stats callback may report the same events: the larger is the truth.
    const total = Math.max(this.lostFromRecords, stats);
    if (total > this.lostExported) {
      this.lost.inc(total - this.lostExported);
      this.lostExported = total;
    }
  }

  private registerKernelGauges(registers: Registry[]): void {
    const read = (): KernelStats | null => {
      try {
        return this.stats?.() ?? null;
      } catch {
        return null;
      }
    };
    new Gauge({
      name: 'busted_map_entries', help: 'Entries in each kernel map now.', labelNames: ['map'], registers,
      collect() {
        this.reset();
        for (const m of read()?.maps ?? []) this.set({ map: m.name }, m.entries);
      },
    });
    new Gauge({
      name: 'busted_map_max_entries', help: 'Capacity of each kernel map.', labelNames: ['map'], registers,
      collect() {
        this.reset();
        for (const m of read()?.maps ?? []) this.set({ map: m.name }, m.max);
      },
    });
    // the kernel's monotonic counts, exported as counters that follow them (never back); a count
    // by label is picked as { label value: count }
    const kernelCount = (name: string, help: string, pick: (k: KernelStats) => number | Record<string, number> | undefined, labelName?: string) => {
      const exported = new Map<string, number>();
      new Counter({
        name, help, registers, labelNames: labelName ? [labelName] : [],
        collect() {
          const k = read();
          const got = k ? pick(k) : undefined;
          const counts = typeof got === 'object' ? got : { '': got ?? 0 };
          for (const [value, n] of Object.entries(counts)) {
            const before = exported.get(value) ?? 0;
            if (n <= before) continue;
            if (labelName) this.inc({ [labelName]: value }, n - before);
            else this.inc(n - before);
            exported.set(value, n);
          }
        },
      });
    };
    kernelCount('busted_kernel_untracked_connections_total',
      'Connections the kernel could not track (no free counter slot among its candidates and the overflow hashes full).', (k) => k.untracked);
    kernelCount('busted_kernel_unseen_ends_total',
      'Tracked TCP connections whose end no hook saw, found gone and finished by the census (a reported one gets a close record with endUnseen; a kept-back one is counted as closed).', (k) => k.unseen);
    kernelCount('busted_kernel_unseen_ends_by_state_total',
      'busted_kernel_unseen_ends_total by the TCP state the census last met each connection in (none: it never met it).', (k) => k.unseenByState ?? {}, 'last_state');
    kernelCount('busted_payload_samples_skipped_total',
      'Payload samples skipped because they did not parse, by reason: dns-malformed, http-connect-malformed (a proxy tunnel\'s request line), or a TLS handshake start that gave no ClientHello (tls-not-client-hello, tls-malformed, tls-too-large, tls-too-many-samples); the connection is classified without it.',
      (k) => k.skippedSamples ?? {}, 'reason');
    new Gauge({
      name: 'busted_census_unreachable_namespaces',
      help: 'Network namespaces of processes with open flows that the last census could not enter (entering one needs CAP_SYS_ADMIN): idle connections there are reported only at their close, and ends the kernel did not show there are not found.',
      registers,
      collect() {
        const s = read();
        if (s?.unreachableNamespaces !== undefined) this.set(s.unreachableNamespaces);
      },
    });
    new Gauge({
      name: 'busted_ringbuf_used_bytes', help: 'Bytes waiting in the kernel ring buffer at scrape time.', registers,
      collect() {
        const s = read();
        if (s?.ringbufUsedBytes !== undefined) this.set(s.ringbufUsedBytes);
      },
    });
    new Gauge({
      name: 'busted_ringbuf_size_bytes', help: 'Size of the kernel ring buffer.', registers,
      collect() {
        const s = read();
        if (s?.ringbufSizeBytes !== undefined) this.set(s.ringbufSizeBytes);
      },
    });
  }
}
