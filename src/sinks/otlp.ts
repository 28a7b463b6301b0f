/**
 * `--otlp URL`: every event record as an OpenTelemetry log record, sent over OTLP/HTTP (JSON)
 * with the official SDK: batched (BatchLogRecordProcessor), retried with backoff within a
 * bounded time by the exporter, and never blocking busted. Records the collector never got
 * (export failed after its retries, or the queue was full while the collector was down) are
 * counted in `dropped`, and said in a warning at most once a minute.
 *
 * Attributes are the record's fields, flattened under `busted.` (`busted.provider`,
 * `busted.container.id`, …); nulls are left out, arrays of objects become JSON text.
 * The resource carries service.name=busted, service.version and host.name; OTEL_RESOURCE_ATTRIBUTES
 * and OTEL_SERVICE_NAME add to or override them, OTEL_EXPORTER_OTLP_HEADERS adds headers.
 */
import os from 'node:os';
import { SeverityNumber, type AnyValue, type AnyValueMap, type Logger } from '@opentelemetry/api-logs';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, type LogRecordExporter, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { EventRecord } from '../core/records.js';
import { settled } from '../core/settled.js';

export interface OtlpOptions {
  /** Collector URL; a URL without a path gets the standard `/v1/logs`. */
  url: string;
  version: string;
  onWarning: (message: string) => void;
  /** Records waiting to be sent at most; beyond that new records are dropped (default 8192). */
  maxQueue?: number;
  /** Records per request at most (default 512). */
  batchSize?: number;
  /** How long records wait to be batched (default 1000 ms). */
  delayMs?: number;
  /** One export's deadline, retries included (default 10 s). */
  exportTimeoutMs?: number;
  /** Time between two drop warnings at least (default 60 s). */
  warnEveryMs?: number;
  now?: () => number;
}

/** The logs endpoint for a `--otlp` URL: the standard path is added when the URL has none. */
export function logsEndpoint(url: string): string {
  const u = new URL(url);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/logs';
  return u.toString();
}

/** Flattens a record into OTLP attributes under `prefix`. */
export function recordAttributes(rec: EventRecord, prefix = 'busted.'): AnyValueMap {
  const out: AnyValueMap = {};
  const walk = (obj: object, path: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      if (v === null || v === undefined || k === 'ts') continue;
      const key = `${path}${k}`;
      if (Array.isArray(v)) {
        out[key] = v.every((x) => typeof x !== 'object' || x === null) ? (v as AnyValue[]) : JSON.stringify(v);
      } else if (typeof v === 'object') {
        walk(v as object, `${key}.`);
      } else {
        out[key] = v as AnyValue;
      }
    }
  };
  walk(rec, prefix);
  return out;
}

export function severityOf(rec: EventRecord): { number: SeverityNumber; text: string } {
  switch (rec.type) {
    case 'policy':
      return rec.result === 'denied' ? { number: SeverityNumber.WARN, text: 'WARN' } : { number: SeverityNumber.INFO2, text: 'INFO' };
    case 'kill':
    case 'lost':
      return { number: SeverityNumber.WARN, text: 'WARN' };
    case 'traffic':
    case 'process':
      return { number: SeverityNumber.DEBUG, text: 'DEBUG' };
    case 'connect':
      return rec.error ? { number: SeverityNumber.INFO2, text: 'INFO' } : { number: SeverityNumber.INFO, text: 'INFO' };
    default:
      return { number: SeverityNumber.INFO, text: 'INFO' };
  }
}

/** A one-line human summary, the log record's body. */
export function summaryOf(rec: EventRecord): string {
  switch (rec.type) {
    case 'session':
      return `busted ${rec.version} watching ${rec.host} (kernel ${rec.kernel})${rec.enforce ? ', enforcing' : ''}`;
    case 'connect':
      return `${rec.comm} (pid ${rec.pid}) ${rec.proto} ${rec.src} -> ${rec.dst}${rec.provider ? ` ${rec.provider}` : ''}${rec.host ? ` ${rec.host}` : ''}${rec.error ? ` failed: ${rec.error}` : ''}`;
    case 'classify':
      return `flow ${rec.flow} (pid ${rec.pid}) is ${rec.provider ?? 'unknown'}${rec.host ? ` ${rec.host}` : ''} via ${rec.via}`;
    case 'traffic':
      return `flow ${rec.flow} (pid ${rec.pid}) sent ${rec.tx} B, received ${rec.rx} B`;
    case 'close':
      return `flow ${rec.flow} (pid ${rec.pid}) closed after ${rec.durationMs} ms: ${rec.tx} B sent, ${rec.rx} B received`;
    case 'policy':
      return `${rec.result} ${rec.action} of pid ${rec.pid} to ${rec.dst}${rec.provider ? ` (${rec.provider})` : ''} by rule ${rec.rule}`;
    case 'process':
      return `process ${rec.pid}: ${rec.exe ?? 'unknown executable'}`;
    case 'kill':
      return `sent ${rec.signal} to pid ${rec.pid}`;
    case 'lost':
      return `the kernel lost ${rec.count} events`;
    default: {
      // a record type added after this sink was written
      const r = rec as { type: string; pid?: number };
      return r.pid !== undefined ? `${r.type} for pid ${r.pid}` : `${r.type} record`;
    }
  }
}

/** Counts what the exporter settled, so drops can be reported; once abandoned, sends nothing more. */
class CountingExporter implements LogRecordExporter {
  abandoned = false;

  constructor(
    private readonly inner: LogRecordExporter,
    private readonly settled: (count: number, result: ExportResult) => void,
  ) {}

  export(records: ReadableLogRecord[], done: (result: ExportResult) => void): void {
    if (this.abandoned) {
      done({ code: ExportResultCode.FAILED, error: new Error('busted stopped') });
      return;
    }
    this.inner.export(records, (result) => {
      this.settled(records.length, result);
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

export class OtlpSink {
  readonly url: string;
  /** Records handed to the SDK, sent successfully, and lost (export failed, or queue full). */
  emitted = 0;
  sent = 0;
  dropped = 0;
  private pending = 0;
  private readonly maxQueue: number;
  private readonly provider: LoggerProvider;
  private readonly exporter: CountingExporter;
  private readonly logger: Logger;
  private readonly warnEveryMs: number;
  private readonly now: () => number;
  private lastWarnAt = -Infinity;
  private droppedAtWarn = 0;
  private lastError = '';
  private closed = false;
  /** Set once close() has counted what was left: later export results change nothing. */
  private final = false;

  constructor(private readonly opts: OtlpOptions) {
    this.url = logsEndpoint(opts.url);
    this.maxQueue = opts.maxQueue ?? 8192;
    this.warnEveryMs = opts.warnEveryMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    const exportTimeoutMs = opts.exportTimeoutMs ?? 10_000;
    const exporter = new CountingExporter(
      new OTLPLogExporter({ url: this.url, timeoutMillis: exportTimeoutMs, concurrencyLimit: 4 }),
      (count, result) => this.settle(count, result),
    );
    this.exporter = exporter;
    const resource = resourceFromAttributes({
      'service.name': 'busted',
      'service.version': opts.version,
      'host.name': os.hostname(),
    }).merge(detectResources({ detectors: [envDetector] }));
    const batchSize = opts.batchSize ?? 512;
    this.provider = new LoggerProvider({
      resource,
      processors: [new BatchLogRecordProcessor({
        exporter,
        maxExportBatchSize: batchSize,
        // The SDK's own queue never fills first: `pending` (queued + in flight) is capped below it.
        maxQueueSize: this.maxQueue + batchSize,
        scheduledDelayMillis: opts.delayMs ?? 1000,
        exportTimeoutMillis: exportTimeoutMs + 1000,
      })],
    });
    this.logger = this.provider.getLogger('busted', opts.version);
  }

  handle(rec: EventRecord): void {
    if (this.closed) return;
    if (this.pending >= this.maxQueue) {
      this.drop(1, 'the queue is full');
      return;
    }
    const sev = severityOf(rec);
    const ts = Date.parse(rec.ts);
    this.pending++;
    this.emitted++;
    this.logger.emit({
      eventName: `busted.${rec.type}`,
      timestamp: Number.isFinite(ts) ? ts : this.now(),
      severityNumber: sev.number,
      severityText: sev.text,
      body: summaryOf(rec),
      attributes: recordAttributes(rec),
    });
  }

  /** Sends what is queued, waiting at most `timeoutMs`; what is still unsent then counts as dropped. */
  async close(timeoutMs = 3000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await settled(this.provider.shutdown(), timeoutMs, { unref: true });
    // What the SDK still holds after the deadline is not sent (busted is stopping): the
    // remaining batches fail at once instead of each retrying for the full export timeout.
    this.exporter.abandoned = true;
    void this.exporter.shutdown().catch(() => {});
    if (this.pending > 0) this.drop(this.pending, 'busted stopped before the collector took them', true);
    this.pending = 0;
    this.final = true;
    const unsaid = this.dropped - this.droppedAtWarn;
    if (unsaid > 0) this.warn(unsaid);
  }

  private settle(count: number, result: ExportResult): void {
    if (this.final) return;
    this.pending = Math.max(0, this.pending - count);
    if (result.code === ExportResultCode.SUCCESS) {
      this.sent += count;
      return;
    }
    this.drop(count, result.error?.message || 'the export failed');
  }

  private drop(count: number, why: string, quiet = false): void {
    this.dropped += count;
    this.lastError = why;
    if (quiet) return;
    const now = this.now();
    if (now - this.lastWarnAt >= this.warnEveryMs) this.warn(this.dropped - this.droppedAtWarn);
  }

  private warn(count: number): void {
    this.lastWarnAt = this.now();
    this.droppedAtWarn = this.dropped;
    this.opts.onWarning(
      `OTLP: ${count === 1 ? '1 record was' : `${count} records were`} not delivered to ${this.url} (${this.lastError}); busted goes on and keeps counting them in busted_otlp_dropped_records_total.`,
    );
  }
}
