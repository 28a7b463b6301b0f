/**
 * The headless printer: event records as text lines (the shape users know) or as JSON lines.
 * It remembers each open flow's connect record (bounded) so close lines can name the process.
 */
import { ChurnMap } from '../core/churn-map.js';
import { JsonLines } from './json-lines.js';
import type { CloseRecord, ConnectRecord, EventRecord, ProcessRecord, TrafficRecord } from '../core/records.js';
import { formatBytes, formatDurationMs } from './format.js';

export type OutputFormat = 'text' | 'json';

export interface PrinterOptions {
  format: OutputFormat;
  verbose: boolean;
  /** Show flows whose provider is unknown (non-LLM traffic). */
  all: boolean;
  write: (line: string) => void;
  /**
   * JSON lines: records shown go here instead of through `write`, for an output that writes
   * their lines itself (StdoutLines, straight into its bytes). Default: `write` of each line.
   */
  writeRecord?: (rec: EventRecord) => void;
  /** Display name of a provider id; the id itself when unknown. */
  providerName?: (id: string) => string;
}

const MAX_REMEMBERED = 65536;

export class Printer {
  private readonly flows = new ChurnMap<string, ConnectRecord>();
  /** Process identities (pid:startTime) with a shown flow: their process records are shown too. */
  private readonly shownProcs = new Set<string>();
  private readonly providerName: (id: string) => string;
  private readonly json = new JsonLines();

  constructor(private readonly opts: PrinterOptions) {
    this.providerName = opts.providerName ?? ((id) => id);
  }

  /** Handles one record: writes its line when it is shown. */
  handle(rec: EventRecord): void {
    if (this.opts.format === 'json' && this.opts.writeRecord) {
      if (this.pass(rec)) this.opts.writeRecord(rec);
      return;
    }
    const line = this.render(rec);
    if (line !== null) this.opts.write(line);
  }

  /** The line of a record, or null when the record is not shown. */
  render(rec: EventRecord): string | null {
    if (!this.pass(rec)) return null;
    return this.opts.format === 'json' ? this.json.line(rec) : this.text(rec);
  }

  /** Whether a record is shown; keeps what later lines need of it. */
  private pass(rec: EventRecord): boolean {
    // JSON lines of every flow need nothing remembered: a close line is the close record alone
    if (rec.type === 'connect' && (this.opts.format === 'text' || !this.opts.all)) this.remember(rec);
    if (!this.shown(rec)) {
      if (rec.type === 'close') this.flows.delete(rec.flow);
      return false;
    }
    // a text close line still needs its connect (closeLine forgets it)
    if (this.opts.format === 'json' && rec.type === 'close') this.flows.delete(rec.flow);
    return true;
  }

  private shown(rec: EventRecord): boolean {
    if (this.opts.all) return true;
    switch (rec.type) {
      case 'connect':
        if (rec.provider === null) return false;
        if (this.shownProcs.size >= MAX_REMEMBERED) this.shownProcs.clear();
        this.shownProcs.add(`${rec.pid}:${rec.startTime}`);
        return true;
      case 'process':
        return this.shownProcs.has(`${rec.pid}:${rec.startTime}`);
      case 'traffic':
      case 'close':
      case 'classify': {
        const c = this.flows.get(rec.flow);
        return rec.type === 'classify' ? rec.provider !== null : c !== undefined && c.provider !== null;
      }
      default:
        return true;
    }
  }

  private remember(rec: ConnectRecord): void {
    if (rec.error !== null) return; // a failed connect has no close
    if (this.flows.size >= MAX_REMEMBERED) this.flows.delete(this.flows.first()!);
    this.flows.set(rec.flow, rec);
  }

  private provider(provider: string | null, host: string | null): string {
    if (!provider) return host ? `- (${host})` : '-';
    return host ? `${this.providerName(provider)} (${host})` : this.providerName(provider);
  }

  private text(rec: EventRecord): string | null {
    switch (rec.type) {
      case 'session':
        return rec.source === 'replay'
          ? `busted ${rec.version}: replaying a recording from ${rec.host} (kernel ${rec.kernel}, ${rec.enforce ? 'ENFORCE' : 'AUDIT'} mode)`
          : `busted ${rec.version}: watching outbound connections on ${rec.host} (kernel ${rec.kernel}, ${rec.enforce ? 'ENFORCE' : 'AUDIT'} mode)`;
      case 'connect':
        return this.connectLine(rec);
      case 'classify': {
        const c = this.flows.get(rec.flow);
        if (c) Object.assign(c, { provider: rec.provider, host: rec.host, via: rec.via });
        return `[CLASSIFY] PID: ${rec.pid}${c ? ` (${c.comm})` : ''} | ${c ? `${c.src} -> ${c.dst} | ` : ''}Provider: ${this.provider(rec.provider, rec.host)} | via ${rec.via ?? '-'}`;
      }
      case 'traffic':
        return this.opts.verbose ? this.trafficLine(rec) : null;
      case 'close':
        return this.closeLine(rec);
      case 'policy':
        return `[POLICY] PID: ${rec.pid} | ${rec.action} ${rec.result} | -> ${rec.dst} | Provider: ${this.provider(rec.provider, null)} | rule ${rec.rule}`;
      case 'kill':
        return `[KILL] PID: ${rec.pid} | ${rec.signal}`;
      case 'verdict':
        return `[VERDICT] PID: ${rec.pid} | ${rec.action ? rec.action.toUpperCase() : 'cleared'} | by ${rec.source}`;
      case 'process':
        return this.opts.verbose ? this.processLine(rec) : null;
      case 'lost':
        return `[LOST] ${rec.count} events the kernel could not deliver (ring buffer full)`;
    }
  }

  private connectLine(rec: ConnectRecord): string {
    const tag = rec.error ? 'TCP_FAIL' : 'TCP_CONNECT';
    let line = `[${tag}] PID: ${rec.pid} (${rec.comm}) | UID: ${rec.uid} | ${rec.src} -> ${rec.dst}`;
    if (rec.error) line += ` | Error: ${rec.error}`;
    line += ` | Provider: ${this.provider(rec.provider, rec.host)}`;
    if (rec.agent) line += ` | Agent: ${rec.agent.label}`;
    if (this.opts.verbose) {
      line += ` | TID: ${rec.tid} | GID: ${rec.gid} | USER: ${rec.user ?? '-'} | PPID: ${rec.ppid ?? '-'} | EXE: ${rec.exe ?? '-'}`;
      line += ` | SHA256: ${rec.sha256 ?? '-'} | CGROUP: ${rec.cgroup ?? rec.cgroupId}`;
      if (rec.container) line += ` | CONTAINER: ${rec.container.runtime}:${rec.container.id.slice(0, 12)}`;
      if (rec.pod) line += ` | POD: ${rec.pod.name !== undefined ? `${rec.pod.namespace}/${rec.pod.name} ` : ''}${rec.pod.uid}`;
      line += ` | FLOW: ${rec.flow}`;
    }
    return line;
  }

  private processLine(rec: ProcessRecord): string {
    const parts = [`[PROCESS] PID: ${rec.pid}`, `USER: ${rec.user ?? '-'}`, `EXE: ${rec.exe ?? '-'}${rec.exeReplaced ? ' (replaced)' : ''}`];
    parts.push(`SHA256: ${rec.sha256 ?? '-'}`, `PPID: ${rec.ppid ?? '-'}`, `CGROUP: ${rec.cgroup ?? '-'}`);
    if (rec.container) parts.push(`CONTAINER: ${rec.container.runtime}:${rec.container.id.slice(0, 12)}`);
    if (rec.pod) parts.push(`POD: ${rec.pod.name !== undefined ? `${rec.pod.namespace}/${rec.pod.name} ` : ''}${rec.pod.uid} (${rec.pod.qos})`);
    if (rec.agent) parts.push(`AGENT: ${rec.agent.label}`);
    if (rec.cmdline) parts.push(`CMD: ${rec.cmdline}`);
    return parts.join(' | ');
  }

  private trafficLine(rec: TrafficRecord): string {
    const c = this.flows.get(rec.flow);
    return `[TRAFFIC] PID: ${rec.pid}${c ? ` (${c.comm}) | ${c.src} -> ${c.dst}` : ''} | TX: +${formatBytes(rec.tx)} | RX: +${formatBytes(rec.rx)}`;
  }

  private closeLine(rec: CloseRecord): string {
    const c = this.flows.get(rec.flow);
    this.flows.delete(rec.flow);
    const who = c ? ` (${c.comm}) | UID: ${c.uid} | ${c.src} -> ${c.dst}` : '';
    const prov = c ? ` | Provider: ${this.provider(c.provider, c.host)}` : '';
    // the census found it gone: its duration runs to when it was found
    const unseen = rec.endUnseen ? ' | end unseen (found gone)' : '';
    return `[TCP_CLOSE] PID: ${rec.pid}${who} | TX: ${formatBytes(rec.tx)} | RX: ${formatBytes(rec.rx)} | ${formatDurationMs(rec.durationMs)}${prov}${unseen}`;
  }
}
