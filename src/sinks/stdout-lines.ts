/**
 * busted's standard output: lines (the text format) and records' JSON lines, gathered as bytes
 * and written once per turn of the event loop, so under load one write(2) carries hundreds of
 * records instead of one each (their order and content unchanged). It waits for a pipe to drain
 * on exit and ends quietly on EPIPE.
 *
 * stdout that is a regular file or a device other than a terminal (/dev/null) is written with
 * write(2) directly, as Node's own stream for it would (synchronously), without a copy of each
 * chunk; short writes (a disk filling up) are continued. A failed write there (ENOSPC, EIO) is
 * said once on stderr and ends the printing, not busted: --record, --metrics, --otlp and
 * enforcement go on.
 */
import { fstatSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import type { EventRecord } from '../core/records.js';
import { JsonLines } from './json-lines.js';
import { LineBytes } from './line-bytes.js';

/**
 * Bytes of output waiting for a slow reader before busted stops reading the kernel's records
 * (default 32 MiB; BUSTED_OUTPUT_BACKLOG changes it, e.g. for a test).
 */
const OUTPUT_BACKLOG = Number(process.env.BUSTED_OUTPUT_BACKLOG) > 0 ? Number(process.env.BUSTED_OUTPUT_BACKLOG) : 32 << 20;

/** Whether `fd` takes write(2) directly: a regular file, or a device that is not a terminal. */
function takesWrites(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFile() || (st.isCharacterDevice() && !isatty(fd));
  } catch {
    return false;
  }
}

export class StdoutLines {
  private broken = false;
  private onBroken: () => void = () => {};
  private readonly pending = new LineBytes();
  private readonly json = new JsonLines();
  private scheduled = false;
  private readonly direct: boolean;
  /** Bytes written so far. */
  written = 0;

  /**
   * `fd`: 1, or (benches) another file or device's descriptor, which is then always written with
   * write(2).
   */
  constructor(private readonly warn: (message: string) => void, private readonly fd = 1) {
    this.direct = fd !== 1 || takesWrites(fd);
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') {
        this.broken = true;
        this.pending.clear();
        this.onBroken();
      }
    });
  }

  /** More than OUTPUT_BACKLOG bytes wait for a reader that does not keep up. */
  backedUp(): boolean {
    return !this.broken && process.stdout.writableLength > OUTPUT_BACKLOG;
  }

  onBrokenPipe(fn: () => void): void {
    this.onBroken = fn;
  }

  /** A line of text (the newline is added). */
  write(line: string): void {
    if (this.broken) return;
    this.pending.text(line);
    this.pending.newline();
    this.schedule();
  }

  /** A record's JSON line. */
  record(rec: EventRecord): void {
    if (this.broken) return;
    this.json.append(rec, this.pending);
    this.schedule();
  }

  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    if (this.broken || this.pending.length === 0) return;
    const chunk = this.pending.view();
    this.written += chunk.length;
    if (!this.direct) {
      process.stdout.write(Buffer.from(chunk)); // a copy: the stream may keep it past this turn
      this.pending.clear();
      return;
    }
    try {
      for (let off = 0; off < chunk.length; ) off += writeSync(this.fd, chunk, off, chunk.length - off);
    } catch (err) {
      this.failed(err as NodeJS.ErrnoException);
    }
    this.pending.clear();
  };

  private failed(err: NodeJS.ErrnoException): void {
    // the file cannot take more (a full disk, an I/O error): said once; the other outputs
    // (--record, --metrics) and enforcement go on
    this.broken = true;
    this.warn(`writing to standard output failed (${err.code ?? err.message}); no more records are printed there.`);
  }

  flush(): Promise<void> {
    this.drain();
    if (this.broken || process.stdout.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => process.stdout.write('', () => resolve()));
  }
}
