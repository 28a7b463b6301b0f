/**
 * `--record FILE`: event records as JSON lines, the first a `session` record.
 *
 * The file is created with mode 0600 and is never opened through a symbolic link (O_NOFOLLOW);
 * an existing regular file with a single link is truncated, anything else is refused. Lines are
 * buffered and written whole, at least once a second and synchronously on close, so after a
 * crash every complete line still parses and at most the last second is lost.
 * Call `closeAllRecorders()` on every exit path (exit, SIGINT, SIGTERM, uncaughtException).
 */
import fs from 'node:fs';
import os from 'node:os';
import { SCHEMA_VERSION, type EventRecord, type SessionRecord } from '../core/records.js';

export class RecordError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'RecordError';
  }
}

export interface RecorderOptions {
  /** How often buffered lines are written, at most. Default 1000 ms. */
  flushMs?: number;
  /** Buffered bytes that trigger an immediate write. Default 64 KiB. */
  maxBuffer?: number;
  /** Written first if a non-session record arrives before any session record. */
  fallbackSession?: () => SessionRecord;
}

export interface RecordSource {
  onRecord(listener: (rec: EventRecord) => void): () => void;
}

const open = new Set<Recorder>();

/**
 * Flushes and closes every open recorder, synchronously; never throws (exit paths call it).
 * Returns one sentence per recorder that could not be closed cleanly.
 */
export function closeAllRecorders(): string[] {
  const problems: string[] = [];
  for (const r of [...open]) {
    try {
      r.close();
    } catch (e) {
      problems.push(`Recording to ${r.path} may be incomplete: ${(e as Error).message}.`);
    }
  }
  return problems;
}

function openExclusive(path: string): number {
  // Node opens every file close-on-exec. O_NONBLOCK keeps a FIFO at the path from blocking the open.
  const { O_WRONLY, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (code === 'ELOOP') {
      throw new RecordError(`Refusing to record to ${path}: it is a symbolic link; give the path of a regular file.`, code);
    }
    if (code === 'ENXIO') {
      throw new RecordError(`Refusing to record to ${path}: it is not a regular file; give the path of a regular file.`, code);
    }
    throw new RecordError(`Cannot record to ${path}: ${(e as Error).message}; check the path and its permissions.`, code);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.nlink > 1) {
    fs.closeSync(fd);
    const what = st.isFile() ? 'it has other hard links' : 'it is not a regular file';
    throw new RecordError(`Refusing to record to ${path}: ${what}; give the path of a new or regular file.`, 'EINVAL');
  }
  // Checked first, truncated second: never truncate something that is not ours to overwrite.
  fs.ftruncateSync(fd, 0);
  fs.fchmodSync(fd, 0o600);
  return fd;
}

export function defaultSession(version = '0.0.0'): SessionRecord {
  return {
    type: 'session', ts: new Date().toISOString(), v: SCHEMA_VERSION, host: os.hostname(),
    kernel: os.release(), version, enforce: false,
  };
}

export class Recorder {
  readonly path: string;
  private fd: number | null;
  private buffer: string[] = [];
  private buffered = 0;
  private held: EventRecord[] = [];
  private sessionWritten = false;
  private readonly timer: NodeJS.Timeout;
  private readonly maxBuffer: number;
  private readonly fallbackSession: () => SessionRecord;
  private detach: (() => void) | null = null;
  /** Records written (including the session record). */
  count = 0;

  constructor(path: string, opts: RecorderOptions = {}) {
    this.path = path;
    this.fd = openExclusive(path);
    this.maxBuffer = opts.maxBuffer ?? 64 * 1024;
    this.fallbackSession = opts.fallbackSession ?? (() => defaultSession());
    this.timer = setInterval(() => this.flush(), opts.flushMs ?? 1000);
    this.timer.unref();
    open.add(this);
  }

  /** Records everything `source` publishes from now on. */
  attach(source: RecordSource): this {
    this.detach?.();
    this.detach = source.onRecord((rec) => this.write(rec));
    return this;
  }

  get closed(): boolean {
    return this.fd === null;
  }

  write(rec: EventRecord): void {
    if (this.fd === null) return;
    if (!this.sessionWritten) {
      if (rec.type !== 'session') {
        // Hold records until the session record arrives, so it is always the first line.
        if (this.held.length < 10_000) this.held.push(rec);
        return;
      }
      this.sessionWritten = true;
      this.append(rec);
      for (const h of this.held) this.append(h);
      this.held = [];
      return;
    }
    this.append(rec);
  }

  /** Writes buffered lines now (whole lines only). */
  flush(): void {
    if (this.fd === null || this.buffer.length === 0) return;
    const data = Buffer.from(this.buffer.join(''), 'utf8');
    this.buffer = [];
    this.buffered = 0;
    let off = 0;
    while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off);
  }

  /** Flushes, syncs and closes. Safe to call more than once. */
  close(): void {
    if (this.fd === null) return;
    clearInterval(this.timer);
    this.detach?.();
    this.detach = null;
    if (!this.sessionWritten && this.held.length > 0) this.write(this.fallbackSession());
    try {
      this.flush();
      fs.fsyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
      this.fd = null;
      open.delete(this);
    }
  }

  private append(rec: EventRecord): void {
    const line = `${JSON.stringify(rec)}\n`;
    this.buffer.push(line);
    this.buffered += line.length;
    this.count++;
    if (this.buffered >= this.maxBuffer) this.flush();
  }
}
