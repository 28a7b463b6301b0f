/**
 * `--record FILE`: event records as JSON lines, the first a `session` record.
 *
 * The file is created with mode 0600 and is never opened through a symbolic link (O_NOFOLLOW);
 * an existing regular file with a single link is truncated, anything else is refused. Lines are
 * buffered (as bytes, JSON lines written straight into them) and written whole, every `flushMs`
 * (default 1 s) and synchronously on close, so after a crash every complete line still parses and
 * at most the last interval is lost; with `fsync` every write is also synced to disk.
 *
 * Rotation (`maxBytes`): before a line would take the file past maxBytes, the file becomes
 * FILE.1 (FILE.1 becomes FILE.2, …, `keep` files in all, the current one included) and a new
 * FILE starts, again with the session record. An existing non-empty FILE is rotated away at
 * start instead of truncated. `reopen()` (SIGHUP, for logrotate) starts a new FILE when the old
 * one was moved away, again with the session record. A failed write (disk full) is warned about
 * at most once a minute and counted (`dropped`, `writeErrors`); what was partly written is cut
 * back, so the file holds whole lines only, and recording goes on when space is freed.
 * Call `closeAllRecorders()` on every exit path (exit, SIGINT, SIGTERM, uncaughtException).
 */
import fs from 'node:fs';
import os from 'node:os';
import { SCHEMA_VERSION, type EventRecord, type SessionRecord } from '../core/records.js';
import { JsonLines } from './json-lines.js';
import { LineBytes } from './line-bytes.js';
import { openRegular, sameFile, shiftFiles } from './recorder-files.js';

export { RecordError } from './recorder-files.js';

/** The calls that write; replaceable in tests (e.g. to simulate a full disk). */
export interface RecorderIo {
  writeSync(fd: number, data: Buffer, offset: number, length: number): number;
  fsyncSync(fd: number): void;
}

export interface RecorderOptions {
  /** How often buffered lines are written, at most. Default 1000 ms; 0 writes every record at once. */
  flushMs?: number;
  /** Buffered bytes that trigger an immediate write. Default 64 KiB. */
  maxBuffer?: number;
  /** Written first if a non-session record arrives before any session record. */
  fallbackSession?: () => SessionRecord;
  /** Rotate before the file would grow past this many bytes. Default: never. */
  maxBytes?: number;
  /** Files kept when rotating, the current one included (FILE, FILE.1, …). Default 5. */
  keep?: number;
  /** fsync after every write (default: only on rotation and close). */
  fsync?: boolean;
  /** Problems that do not stop recording (disk full, a failed reopen). */
  onWarning?: (message: string) => void;
  /** Time between two write-failure warnings at least. Default 60 s. */
  warnEveryMs?: number;
  io?: Partial<RecorderIo>;
}

export interface RecordSource {
  onRecord(listener: (rec: EventRecord) => void): () => void;
}

const open = new Set<Recorder>();

/**
 * Flushes and closes every open recorder, synchronously; never throws (exit paths call it).
 * Returns one sentence per recorder that could not be closed cleanly or lost records.
 */
export function closeAllRecorders(): string[] {
  const problems: string[] = [];
  for (const r of [...open]) {
    try {
      r.close();
      if (r.dropped > 0) problems.push(`Recording to ${r.path} is missing ${r.dropped} records that could not be written (${r.lastError}).`);
    } catch (e) {
      problems.push(`Recording to ${r.path} may be incomplete: ${(e as Error).message}.`);
    }
  }
  return problems;
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
  /** Lines waiting to be written, as bytes (JSON lines are written straight into it). */
  private readonly buffer = new LineBytes();
  private readonly json = new JsonLines();
  /** Counted records among the buffered lines (copies of the session record are not counted). */
  private bufferedRecords = 0;
  /** Session copies in the buffer (pushSession: not records of their own). */
  private bufferedCopies = 0;
  private held: EventRecord[] = [];
  /** The session record, repeated first in every new file. */
  private session: SessionRecord | null = null;
  /** The current file has no session line yet (it is new, or a failed write emptied it). */
  private needSession = false;
  /** Bytes of the current file, written and buffered; records in it besides the session. */
  private fileBytes = 0;
  private fileRecords = 0;
  private readonly timer: NodeJS.Timeout | null;
  private readonly flushMs: number;
  private readonly maxBuffer: number;
  private readonly maxBytes: number | null;
  private readonly keep: number;
  private readonly fsync: boolean;
  private readonly fallbackSession: () => SessionRecord;
  private readonly warnEveryMs: number;
  private readonly onWarning: (message: string) => void;
  private readonly io: RecorderIo;
  private lastWarnAt = -Infinity;
  private detach: (() => void) | null = null;
  /** Records accepted (including the session record). */
  count = 0;
  /** Records lost to failed writes; failed writes or syncs; rotations done; reopens that started a new file. */
  dropped = 0;
  writeErrors = 0;
  rotations = 0;
  reopens = 0;
  lastError = '';

  constructor(path: string, opts: RecorderOptions = {}) {
    this.path = path;
    this.flushMs = opts.flushMs ?? 1000;
    this.maxBuffer = opts.maxBuffer ?? 64 * 1024;
    this.maxBytes = opts.maxBytes ?? null;
    this.keep = Math.max(1, opts.keep ?? 5);
    this.fsync = opts.fsync ?? false;
    this.fallbackSession = opts.fallbackSession ?? (() => defaultSession());
    this.warnEveryMs = opts.warnEveryMs ?? 60_000;
    this.onWarning = opts.onWarning ?? (() => {});
    this.io = {
      writeSync: opts.io?.writeSync ?? ((fd, data, off, len) => fs.writeSync(fd, data, off, len)),
      fsyncSync: opts.io?.fsyncSync ?? ((fd) => fs.fsyncSync(fd)),
    };
    if (this.maxBytes !== null) this.keepPrevious();
    this.fd = openRegular(path, true).fd;
    this.timer = this.flushMs > 0 ? setInterval(() => this.flush(), this.flushMs) : null;
    this.timer?.unref();
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
    if (this.session === null) {
      if (rec.type !== 'session') {
        // Hold records until the session record arrives, so it is always the first line.
        if (this.held.length < 10_000) this.held.push(rec);
        else {
          this.dropped++; // counted, as every record the recording misses is
          this.lastError = 'no session record came to start the recording';
        }
        return;
      }
      this.session = rec;
      this.append(rec);
      for (const h of this.held) this.append(h);
      this.held = [];
    } else {
      if (rec.type === 'session') this.session = rec;
      this.append(rec);
    }
    if (this.flushMs === 0) this.flush();
  }

  /** Writes buffered lines now (whole lines only). A failed write is reported, never thrown. */
  flush(): void {
    if (this.fd === null || this.buffer.length === 0) return;
    const data = this.buffer.view();
    const records = this.bufferedRecords;
    const copies = this.bufferedCopies;
    this.bufferedRecords = 0;
    this.bufferedCopies = 0;
    let off = 0;
    try {
      while (off < data.length) off += this.io.writeSync(this.fd, data, off, data.length - off);
      if (this.fsync) this.io.fsyncSync(this.fd);
    } catch (e) {
      if (off === data.length) this.writeFailed(e as NodeJS.ErrnoException, 0, 0);
      else {
        // the whole lines that reached the file stay; only the cut one is taken back
        const whole = off > 0 ? data.lastIndexOf(0x0a, off - 1) + 1 : 0;
        let lines = 0;
        for (let i = data.indexOf(0x0a); i >= 0 && i < whole; i = data.indexOf(0x0a, i + 1)) lines++;
        // a session copy is the buffer's first line when there is one (pushSession)
        const kept = Math.max(0, lines - copies);
        this.writeFailed(e as NodeJS.ErrnoException, off - whole, records - kept);
      }
    } finally {
      this.buffer.clear();
    }
  }

  /**
   * For logrotate (SIGHUP): if FILE is no longer the file being written (it was moved away or
   * deleted), writing goes on in a new FILE, which starts with the session record. A FILE that
   * cannot be opened (e.g. a symbolic link was put there) is warned about and writing stays on
   * the old file.
   */
  reopen(): void {
    if (this.fd === null) return;
    this.flush();
    if (sameFile(this.fd, this.path)) return;
    let next: { fd: number; size: number };
    try {
      next = openRegular(this.path, false);
    } catch (e) {
      this.warn(`could not reopen ${this.path} (${(e as Error).message}); still writing to the file it was`, true);
      return;
    }
    this.switchTo(next.fd, next.size);
    this.reopens++;
  }

  /** Flushes, syncs and closes. Safe to call more than once. */
  close(): void {
    if (this.fd === null) return;
    if (this.timer) clearInterval(this.timer);
    this.detach?.();
    this.detach = null;
    if (this.session === null && this.held.length > 0) this.write(this.fallbackSession());
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
    const start = this.buffer.length;
    this.json.append(rec, this.buffer);
    const bytes = this.buffer.length - start;
    if (this.maxBytes !== null && this.fileRecords > 0 && this.fileBytes + bytes > this.maxBytes) {
      // the line goes to the next file: taken out, the file rotated, then put back
      const line = Buffer.from(this.buffer.view(start));
      this.buffer.cut(start);
      this.rotate();
      this.buffer.bytes(line);
    }
    if (rec.type === 'session') this.needSession = false;
    if (this.needSession) {
      // the session line goes before this line
      const line = Buffer.from(this.buffer.view(this.buffer.length - bytes));
      this.buffer.cut(this.buffer.length - bytes);
      this.pushSession();
      this.buffer.bytes(line);
    }
    this.bufferedRecords++;
    this.fileBytes += bytes;
    if (rec.type !== 'session') this.fileRecords++;
    this.count++;
    if (this.buffer.length >= this.maxBuffer) this.flush();
  }

  /** A copy of the session record at the top of a new file (not counted as a record). */
  private pushSession(): void {
    this.needSession = false;
    if (this.session === null) return;
    const start = this.buffer.length;
    this.buffer.text(JSON.stringify(this.session));
    this.buffer.newline();
    this.bufferedCopies++;
    this.fileBytes += this.buffer.length - start;
  }

  private rotate(): void {
    this.flush();
    const old = this.fd!;
    try {
      if (sameFile(old, this.path)) shiftFiles(this.path, this.keep);
      this.switchTo(openRegular(this.path, true).fd, 0);
      this.rotations++;
    } catch (e) {
      // Keep writing where we were; try again after another maxBytes.
      this.fileBytes = 0;
      this.fileRecords = 0;
      this.warn(`could not rotate ${this.path} (${(e as Error).message}); still writing to the file it was`, true);
    }
  }

  /**
   * Writing goes on in `fd` (holding `size` bytes): its session line is written at once (a kill
   * right after a rotation must not leave a file without one), then the old file is synced and
   * closed.
   */
  private switchTo(fd: number, size: number): void {
    const old = this.fd!;
    this.fd = fd;
    this.fileBytes = size;
    this.fileRecords = size > 0 ? 1 : 0;
    this.needSession = true;
    this.pushSession();
    this.flush();
    try {
      fs.fsyncSync(old);
    } catch {
      // the data is written; a failed sync of a file we leave is not worth stopping for
    }
    fs.closeSync(old);
  }

  /** Cuts back what a failed write left of its last line, counts the loss and warns. */
  private writeFailed(err: NodeJS.ErrnoException, partial: number, records: number): void {
    this.writeErrors++;
    this.dropped += records;
    this.lastError = err.code ?? err.message;
    const fd = this.fd!;
    try {
      const size = fs.fstatSync(fd).size;
      if (partial > 0) fs.ftruncateSync(fd, Math.max(0, size - partial));
      this.fileBytes = Math.max(0, size - partial);
      if (this.fileBytes === 0) {
        this.fileRecords = 0;
        this.needSession = true;
      }
    } catch {
      // nothing more can be done about this file now; the next write tries again
    }
    const what = err.code === 'ENOSPC' ? 'the disk is full (ENOSPC)' : err.message;
    this.warn(`cannot write to ${this.path}: ${what}; ${this.dropped} records lost so far, recording goes on when writing works again`);
  }

  private warn(message: string, always = false): void {
    const now = Date.now();
    if (!always && now - this.lastWarnAt < this.warnEveryMs) return;
    if (!always) this.lastWarnAt = now;
    this.onWarning(message);
  }

  /** With rotation, a previous recording at the path is kept as FILE.1 rather than truncated. */
  private keepPrevious(): void {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.path);
    } catch {
      return;
    }
    // Links and foreign files are refused by openRegular() just after, untouched.
    if (!st.isFile() || st.nlink > 1 || st.size === 0) return;
    shiftFiles(this.path, this.keep);
  }
}
