/**
 * SHA-256 of executables, off the hot path: files are read with streaming reads, one file at a
 * time, and the queue of waiting files is bounded. Results are cached by what identifies the
 * content of a file: device, inode, size and modification time (ns). A file is opened when it is
 * asked for and kept open while it waits, so `/proc/PID/exe` is still readable after the
 * process exited; the identity checks (fstat) are done on that open file, never on a path that
 * could have been swapped in between.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** Inode (and device, userspace st_dev encoding, when given) a caller expects the file to be. */
export interface ExpectedFile {
  dev?: number;
  ino: bigint;
}

export interface FileStamp {
  dev: number;
  ino: bigint;
  size: number;
  mtimeNs: bigint;
}

export type HashResult =
  | ({ ok: true; sha256: string; cached: boolean } & FileStamp)
  | { ok: false; reason: HashFailure; message: string };

/** `gone`: cannot be opened; `mismatch`: not the expected inode; `busy`: queue full; `too-large`; `error`: read failed. */
export type HashFailure = 'gone' | 'mismatch' | 'busy' | 'too-large' | 'error';

export interface HasherOptions {
  /** Files waiting to be hashed (each holds an open descriptor). Default 64. */
  maxQueue?: number;
  /** Cached results. Default 4096. */
  maxCache?: number;
  /** Read size. Default 256 KiB: each chunk is hashed on the main thread in well under 1 ms. */
  chunkBytes?: number;
  /** Larger files are not hashed. Default 4 GiB. */
  maxBytes?: number;
}

export function stampKey(s: FileStamp): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
}

export function inodeKey(dev: number, ino: bigint): string {
  return `${dev}:${ino}`;
}

interface Job {
  handle: FileHandle;
  stamp: FileStamp;
  waiters: Array<(r: HashResult) => void>;
}

export class FileHasher {
  private readonly cache = new Map<string, string>();
  /** Last hash per (dev, ino), with the stamp it was computed for: a hint for synchronous callers. */
  private readonly byInode = new Map<string, { sha256: string; stamp: FileStamp }>();
  private readonly queue: Job[] = [];
  private readonly queued = new Map<string, Job>();
  private running: Promise<void> | null = null;
  private current = false;
  private readonly maxQueue: number;
  private readonly maxCache: number;
  private readonly chunkBytes: number;
  private readonly maxBytes: number;
  /** Files hashed (read in full) since creation; cache hits are not counted. */
  hashed = 0;

  constructor(opts: HasherOptions = {}) {
    this.maxQueue = opts.maxQueue ?? 64;
    this.maxCache = opts.maxCache ?? 4096;
    this.chunkBytes = opts.chunkBytes ?? 256 * 1024;
    this.maxBytes = opts.maxBytes ?? 4 * 1024 ** 3;
  }

  /**
   * The SHA-256 of the file at `path` (which may be `/proc/PID/exe`). With `expect`, a file that
   * is not that inode is refused (`mismatch`) without reading it.
   */
  async hash(path: string, expect?: ExpectedFile): Promise<HashResult> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      return { ok: false, reason: 'gone', message: `${path}: ${(err as Error).message}` };
    }
    let stamp: FileStamp;
    try {
      const st = await handle.stat({ bigint: true });
      stamp = { dev: Number(st.dev), ino: st.ino, size: Number(st.size), mtimeNs: st.mtimeNs };
    } catch (err) {
      await handle.close().catch(() => {});
      return { ok: false, reason: 'error', message: `${path}: ${(err as Error).message}` };
    }
    if (expect && ((expect.dev !== undefined && expect.dev !== stamp.dev) || expect.ino !== stamp.ino)) {
      await handle.close().catch(() => {});
      return { ok: false, reason: 'mismatch', message: `${path} is ${stamp.dev}:${stamp.ino}, not ${expect.dev ?? '*'}:${expect.ino}` };
    }
    const key = stampKey(stamp);
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      await handle.close().catch(() => {});
      this.touch(key, hit);
      return { ok: true, sha256: hit, cached: true, ...stamp };
    }
    if (stamp.size > this.maxBytes) {
      await handle.close().catch(() => {});
      return { ok: false, reason: 'too-large', message: `${path} has ${stamp.size} bytes, more than ${this.maxBytes}` };
    }
    const same = this.queued.get(key);
    if (same) {
      await handle.close().catch(() => {});
      return new Promise((resolve) => same.waiters.push(resolve));
    }
    if (this.queue.length >= this.maxQueue) {
      await handle.close().catch(() => {});
      return { ok: false, reason: 'busy', message: `${this.queue.length} files are already waiting to be hashed` };
    }
    return new Promise((resolve) => {
      const job: Job = { handle, stamp, waiters: [resolve] };
      this.queue.push(job);
      this.queued.set(key, job);
      this.running ??= this.drain();
    });
  }

  /** The hash last computed for (dev, ino), whatever its size and mtime were then; null if none. */
  peek(dev: number, ino: bigint): { sha256: string; stamp: FileStamp } | null {
    return this.byInode.get(inodeKey(dev, ino)) ?? null;
  }

  /** Whether a file is being read now. */
  get reading(): boolean {
    return this.current;
  }

  /** Files waiting, not counting the one being read. */
  get pending(): number {
    return this.queue.length;
  }

  /** Resolves when nothing is waiting or being read. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    for (let job = this.queue.shift(); job; job = this.queue.shift()) {
      const key = stampKey(job.stamp);
      let result: HashResult;
      this.current = true;
      try {
        const sha256 = await this.stream(job.handle);
        this.touch(key, sha256);
        this.hashed++;
        result = { ok: true, sha256, cached: false, ...job.stamp };
      } catch (err) {
        result = { ok: false, reason: 'error', message: (err as Error).message };
      } finally {
        this.current = false;
        this.queued.delete(key);
      }
      for (const w of job.waiters) w(result);
    }
    this.running = null;
  }

  private stream(handle: FileHandle): Promise<string> {
    return new Promise((resolve, reject) => {
      const h = createHash('sha256');
      // autoClose: the stream closes the handle when it ends or fails
      const rs = createReadStream('', { fd: handle, start: 0, highWaterMark: this.chunkBytes, autoClose: true });
      rs.on('data', (chunk) => h.update(chunk));
      rs.on('error', reject);
      rs.on('end', () => resolve(h.digest('hex')));
    });
  }

  private touch(key: string, sha256: string): void {
    this.cache.delete(key);
    this.cache.set(key, sha256);
    if (this.cache.size > this.maxCache) this.cache.delete(this.cache.keys().next().value!);
    const [dev, ino, size, mtimeNs] = key.split(':') as [string, string, string, string];
    const ik = `${dev}:${ino}`;
    this.byInode.delete(ik);
    this.byInode.set(ik, { sha256, stamp: { dev: Number(dev), ino: BigInt(ino), size: Number(size), mtimeNs: BigInt(mtimeNs) } });
    if (this.byInode.size > this.maxCache) this.byInode.delete(this.byInode.keys().next().value!);
  }
}
