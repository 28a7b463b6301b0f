/** The recorder's file operations: safe opening (no links, no foreign files) and rotation renames. */
import fs from 'node:fs';
import nodePath from 'node:path';

export class RecordError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'RecordError';
  }
}

/** Opens a regular file at `path` for appending: never through a link, never a foreign file. */
export function openRegular(path: string, truncate: boolean): { fd: number; size: number } {
  // Node opens every file close-on-exec. O_NONBLOCK keeps a FIFO at the path from blocking the open.
  const { O_WRONLY, O_CREAT, O_NOFOLLOW, O_NONBLOCK, O_APPEND } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK, 0o600);
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
  if (truncate) fs.ftruncateSync(fd, 0);
  fs.fchmodSync(fd, 0o600);
  return { fd, size: truncate ? 0 : st.size };
}

/** FILE → FILE.1 → … → FILE.(keep-1); the oldest is replaced. keep 1: FILE is removed. */
export function shiftFiles(path: string, keep: number): void {
  if (keep <= 1) {
    fs.rmSync(path, { force: true });
    return;
  }
  for (let i = keep - 1; i >= 1; i--) {
    const from = i === 1 ? path : `${path}.${i - 1}`;
    try {
      fs.renameSync(from, `${path}.${i}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

/** Whether two stat() results are one file (device and inode); false when either cannot be read. */
function oneFile(a: () => fs.Stats, b: () => fs.Stats): boolean {
  try {
    const x = a();
    const y = b();
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

export function sameFile(fd: number, path: string): boolean {
  return oneFile(() => fs.fstatSync(fd), () => fs.lstatSync(path));
}

/**
 * Whether two paths name one file: the same path once resolved, or (both existing) the same
 * device and inode, so `--replay a.jsonl --record ./a.jsonl` or a link to it is caught before the
 * recording truncates what is being replayed.
 */
export function samePath(a: string, b: string): boolean {
  return nodePath.resolve(a) === nodePath.resolve(b) || oneFile(() => fs.statSync(a), () => fs.statSync(b));
}
