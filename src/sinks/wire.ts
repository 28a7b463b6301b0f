/**
 * The fleet sinks behind one call for the CLIs: `--metrics [HOST:]PORT` (Prometheus),
 * `--otlp URL` (OpenTelemetry logs) and `--record FILE` with rotation. `parseSinkFlags` turns
 * the raw flags into options (or a usage error, one sentence); `attachSinks` starts the sinks
 * on a store and gives back `close()` (exit paths) and `reopen()` (SIGHUP).
 */
import http from 'node:http';
import { isIP } from 'node:net';
import { UsageError } from '../cli/options.js';
import type { Store } from '../core/store.js';
import { VERSION } from '../core/version.js';
import { BustedMetrics, type KernelStats } from './metrics.js';
import type { OtlpSink } from './otlp.js';
import { defaultSession, Recorder } from './recorder.js';

export type { KernelStats } from './metrics.js';

export interface RecordSinkOptions {
  path: string;
  /** Rotate before a file grows past this many bytes (default: never). */
  maxBytes?: number;
  /** Files kept when rotating, the current one included (default 5). */
  keep?: number;
  /** Write interval in ms (default 1000; 0 writes every record at once). */
  flushMs?: number;
  /** fsync after every write. */
  fsync?: boolean;
}

export interface SinkOptions {
  /** `[HOST:]PORT` to serve /metrics on (default host 127.0.0.1; port 0 picks a free one). */
  metrics?: string;
  /** OTLP/HTTP collector URL. */
  otlp?: string;
  record?: RecordSinkOptions;
  /** Processes with their own metrics series (default 20). */
  topN?: number;
  onWarning(message: string): void;
  /** Kernel-side numbers for the metrics, read at each scrape. */
  stats?: () => KernelStats;
}

export interface Sinks {
  /** Where /metrics is served (e.g. `http://127.0.0.1:9464/metrics`), when it is. */
  metricsUrl: string | null;
  metrics: BustedMetrics | null;
  otlp: OtlpSink | null;
  recorder: Recorder | null;
  /** Flushes and closes the recording, stops serving, sends what OTLP still holds (at most ~3 s). */
  close(): Promise<void>;
  /** SIGHUP: the recording starts a new file if its file was moved away (logrotate). */
  reopen(): void;
}

export interface RawSinkFlags {
  metrics?: string | number;
  otlp?: string;
  record?: string;
  recordMaxSize?: string | number;
  recordKeep?: number;
  recordFlush?: number;
  recordFsync?: boolean;
  [other: string]: unknown;
}

export type SinkFlags = Pick<SinkOptions, 'metrics' | 'otlp' | 'record'>;

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** `100M`, `512K`, `1.5G`, `4096` → bytes (binary units), or null. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  return Number.isSafeInteger(n) ? n : null;
}

/** `[HOST:]PORT`, `[v6]:PORT` → host and port, or null. Host defaults to 127.0.0.1. */
export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):)?(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const host = m[1] ?? m[2] ?? '127.0.0.1';
  const port = Number(m[3]);
  if (port > 65535) return null;
  if (m[1] !== undefined && isIP(m[1]) !== 6) return null;
  if (m[2] !== undefined && isIP(m[2]) === 0 && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(m[2])) return null;
  return { host, port };
}

/** The sink flags both commands take, as meow declares them (parsed by parseSinkFlags). */
export const SINK_CLI_FLAGS = {
  recordMaxSize: { type: 'string' },
  recordKeep: { type: 'number' },
  recordFlush: { type: 'number' },
  recordFsync: { type: 'boolean' },
  metrics: { type: 'string' },
  otlp: { type: 'string' },
} as const;

/** Validates --metrics, --otlp and the --record-* flags; throws a UsageError (one sentence). */
export function parseSinkFlags(raw: RawSinkFlags, command = 'busted'): SinkFlags {
  const usage = (message: string) => new UsageError(`${message}; see ${command} --help.`);
  const out: SinkFlags = {};
  if (raw.metrics !== undefined) {
    const listen = parseListen(String(raw.metrics));
    if (!listen || listen.port === 0) {
      throw usage(`--metrics must be [HOST:]PORT with a port from 1 to 65535 (e.g. 9464 or 127.0.0.1:9464), not "${raw.metrics}"`);
    }
    out.metrics = `${isIP(listen.host) === 6 ? `[${listen.host}]` : listen.host}:${listen.port}`;
  }
  if (raw.otlp !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(String(raw.otlp));
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
      throw usage(`--otlp must be an http:// or https:// URL of an OTLP/HTTP collector (e.g. http://127.0.0.1:4318), not "${raw.otlp}"`);
    }
    out.otlp = url.toString();
  }
  const recordOnly = (flag: string) => usage(`${flag} only applies with --record FILE`);
  const rec: Partial<RecordSinkOptions> = {};
  if (raw.recordMaxSize !== undefined) {
    if (raw.record === undefined) throw recordOnly('--record-max-size');
    const size = parseSize(String(raw.recordMaxSize));
    if (size === null || size < 4096) {
      throw usage(`--record-max-size must be a size of at least 4K, such as 100M, 512K or 1G, not "${raw.recordMaxSize}"`);
    }
    rec.maxBytes = size;
  }
  if (raw.recordKeep !== undefined) {
    if (raw.record === undefined) throw recordOnly('--record-keep');
    if (rec.maxBytes === undefined) throw usage('--record-keep only applies with --record-max-size SIZE');
    const keep = raw.recordKeep;
    if (!Number.isInteger(keep) || keep < 1 || keep > 1000) {
      throw usage(`--record-keep must be a whole number of files from 1 to 1000 (the current file included), not "${raw.recordKeep}"`);
    }
    rec.keep = keep;
  }
  if (raw.recordFlush !== undefined) {
    if (raw.record === undefined) throw recordOnly('--record-flush');
    const ms = raw.recordFlush;
    if (!Number.isInteger(ms) || ms < 0 || ms > 60_000) {
      throw usage(`--record-flush must be a whole number of milliseconds from 0 (every record) to 60000, not "${raw.recordFlush}"`);
    }
    rec.flushMs = ms;
  }
  if (raw.recordFsync) {
    if (raw.record === undefined) throw recordOnly('--record-fsync');
    rec.fsync = true;
  }
  if (raw.record !== undefined && raw.record.trim() !== '') out.record = { path: raw.record, ...rec };
  return out;
}

/** Serves the registry at /metrics; resolves once listening, or rejects with one sentence. */
export function serveMetrics(metrics: BustedMetrics, listen: string): Promise<{ url: string; close(): Promise<void> }> {
  const where = parseListen(listen);
  if (!where) return Promise.reject(new Error(`--metrics ${listen} is not [HOST:]PORT.`));
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      metrics.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
        (err: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html><body><a href="/metrics">busted metrics</a></body></html>\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: busted serves /metrics\n');
    }
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the port is already in use'
        : err.code === 'EADDRNOTAVAIL' ? 'that address is not on this machine'
        : err.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
        : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? 'the host name does not resolve' : err.message;
      reject(new Error(`Cannot serve metrics on ${listen}: ${why}; choose another address with --metrics [HOST:]PORT.`));
    });
    server.listen(where.port, where.host, () => {
      server.unref();
      const addr = server.address() as { address: string; port: number };
      const host = isIP(addr.address) === 6 ? `[${addr.address}]` : addr.address;
      resolve({
        url: `http://${host}:${addr.port}/metrics`,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}

/**
 * Starts the sinks the options ask for on `store`. Rejects (with one sentence) when the metrics
 * address cannot be bound or the recording cannot be opened; nothing is left running then.
 */
export async function attachSinks(store: Store, opts: SinkOptions): Promise<Sinks> {
  const detach: (() => void)[] = [];
  let recorder: Recorder | null = null;
  let metrics: BustedMetrics | null = null;
  let otlp: OtlpSink | null = null;
  let server: { url: string; close(): Promise<void> } | null = null;
  try {
    if (opts.record) {
      const r = opts.record;
      recorder = new Recorder(r.path, {
        maxBytes: r.maxBytes, keep: r.keep, flushMs: r.flushMs, fsync: r.fsync,
        fallbackSession: () => defaultSession(VERSION),
        onWarning: (m) => opts.onWarning(`recording: ${m}.`),
      }).attach(store);
    }
    if (opts.otlp) {
      // OpenTelemetry's SDK is loaded only for --otlp: loaded always, it held 16 MB of every busted's RSS
      const { OtlpSink } = await import('./otlp.js');
      otlp = new OtlpSink({ url: opts.otlp, version: VERSION, onWarning: opts.onWarning });
      const sink = otlp;
      detach.push(store.onRecord((rec) => sink.handle(rec)));
    }
    if (opts.metrics) {
      const m = new BustedMetrics({ version: VERSION, topN: opts.topN, stats: opts.stats });
      metrics = m;
      detach.push(store.onRecord((rec) => m.handle(rec)));
      detach.push(store.onQuiet((proto, failed, n) => m.quiet(proto, failed, n)));
      if (otlp) {
        const sink = otlp;
        m.addCounter('busted_otlp_dropped_records_total', 'Records the OTLP collector did not get (down, refusing, or the queue was full).', () => sink.dropped);
        m.addCounter('busted_otlp_sent_records_total', 'Records the OTLP collector accepted.', () => sink.sent);
      }
      if (recorder) {
        const rec = recorder;
        m.addCounter('busted_recording_write_errors_total', 'Failed writes to the recording (e.g. disk full).', () => rec.writeErrors);
        m.addCounter('busted_recording_dropped_records_total', 'Records lost to failed writes to the recording.', () => rec.dropped);
        m.addCounter('busted_recording_rotations_total', 'Times the recording was rotated.', () => rec.rotations);
      }
      server = await serveMetrics(m, opts.metrics);
    }
  } catch (err) {
    for (const d of detach) d();
    recorder?.close();
    await otlp?.close(0);
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    metricsUrl: server?.url ?? null,
    metrics,
    otlp,
    recorder,
    reopen: () => recorder?.reopen(),
    close: () => {
      closing ??= (async () => {
        for (const d of detach) d();
        // the recording first: it has every record now, and it must not wait on a slow collector
        if (recorder && !recorder.closed) {
          try {
            recorder.close();
            if (recorder.dropped > 0) {
              opts.onWarning(`recording to ${recorder.path} is missing ${recorder.dropped} records that could not be written (${recorder.lastError}).`);
            }
          } catch (e) {
            opts.onWarning(`recording to ${recorder.path} may be incomplete: ${(e as Error).message}.`);
          }
        }
        await server?.close();
        await otlp?.close();
      })();
      return closing;
    },
  };
}
