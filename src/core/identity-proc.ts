/**
 * Reading one process from /proc, asynchronously and with bounded reads, plus the device-number
 * conversion between the kernel's internal dev_t (what the BPF program reads from
 * `inode->i_sb->s_dev`) and the userspace encoding that stat() returns.
 */
import { lstatSync, readFileSync, readlinkSync, type BigIntStats } from 'node:fs';
import { open, readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';

/** Kernel-internal dev_t: 12-bit major, 20-bit minor (include/linux/kdev_t.h, MINORBITS = 20). */
export function kernelDevParts(kdev: number): { major: number; minor: number } {
  return { major: Math.floor(kdev / 2 ** 20) & 0xfff, minor: kdev & 0xfffff };
}

/**
 * glibc's makedev(), which is how stat() (and Node's fs.Stats.dev, via statx major/minor) encodes
 * a device: minor bits 0-7, major bits 8-19, minor bits 8-19 at 20-31, major bits 12+ at 32+.
 */
export function makeUserDev(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 2 ** 32;
}

/** The kernel's `s_dev` as the userspace st_dev that fs.statSync(...).dev reports. */
export function kernelDevToUser(kdev: number): number {
  const { major, minor } = kernelDevParts(kdev);
  return makeUserDev(major, minor);
}

/** The inverse: st_dev (from stat) as the kernel's internal dev_t. */
export function userDevToKernel(udev: number): number {
  const lo = udev % 2 ** 32;
  const hi = Math.floor(udev / 2 ** 32);
  const major = ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
  const minor = (lo & 0xff) | ((lo >>> 12) & 0xfff00);
  return (major & 0xfff) * 2 ** 20 + (minor & 0xfffff);
}

export interface ProcStat {
  comm: string;
  state: string;
  ppid: number;
  /** Field 22, clock ticks since boot. */
  startTime: number;
}

/** Parses /proc/PID/stat; comm may hold spaces and parentheses, so split after the last ')'. */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).split(' ');
  const ppid = Number(rest[1]);
  const startTime = Number(rest[19]);
  if (!Number.isFinite(ppid) || !Number.isFinite(startTime) || rest[0] === undefined) return null;
  return { comm: text.slice(open + 1, close), state: rest[0], ppid, startTime };
}

/** Field 22 (starttime) of /proc/PID/stat, or null when the process is gone. Synchronous. */
export function readStartTime(pid: number, procRoot = '/proc'): number | null {
  try {
    return parseStat(readFileSync(`${procRoot}/${pid}/stat`, 'utf8'))?.startTime ?? null;
  } catch {
    return null;
  }
}

/** The "0::" line of /proc/PID/cgroup. Synchronous. */
export function readCgroupPath(pid: number, procRoot = '/proc'): string | null {
  try {
    return parseProcCgroup(readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8'));
  } catch {
    return null;
  }
}

/** The target of /proc/PID/exe as the kernel shows it (with " (deleted)" when so). Synchronous. */
export function readExe(pid: number, procRoot = '/proc'): string | null {
  try {
    return readlinkSync(`${procRoot}/${pid}/exe`);
  } catch {
    return null;
  }
}

export async function readStatAsync(pid: number, procRoot = '/proc'): Promise<ProcStat | null> {
  try {
    return parseStat(await readFile(`${procRoot}/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** Whether pid still is the process that started at startTime. */
export async function isSameProcess(pid: number, startTime: number, procRoot = '/proc'): Promise<boolean> {
  return (await readStatAsync(pid, procRoot))?.startTime === startTime;
}

export const DELETED_SUFFIX = ' (deleted)';

/** The target of /proc/PID/exe, and whether the kernel marks it deleted (unlinked or replaced). */
export async function readExeLink(pid: number, procRoot = '/proc'): Promise<{ path: string; deleted: boolean } | null> {
  try {
    const target = await readlink(`${procRoot}/${pid}/exe`);
    const deleted = target.endsWith(DELETED_SUFFIX);
    return { path: deleted ? target.slice(0, -DELETED_SUFFIX.length) : target, deleted };
  } catch {
    return null;
  }
}

/** The arguments, reading at most maxBytes (a command line may be megabytes long). */
export async function readCmdlineArgs(pid: number, procRoot = '/proc', maxBytes = 4096): Promise<{ args: string[]; truncated: boolean } | null> {
  let fh;
  try {
    fh = await open(`${procRoot}/${pid}/cmdline`, 'r');
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    const truncated = n > maxBytes;
    const text = buf.subarray(0, Math.min(n, maxBytes)).toString('utf8');
    const args = text.split('\0');
    if (args.at(-1) === '') args.pop();
    return { args, truncated };
  } catch {
    return null;
  } finally {
    await fh?.close().catch(() => {});
  }
}

/** The "0::" (cgroup v2) line of /proc/PID/cgroup. */
export function parseProcCgroup(text: string): string | null {
  for (const line of text.split('\n')) if (line.startsWith('0::')) return line.slice(3) || '/';
  return null;
}

export async function readCgroupAsync(pid: number, procRoot = '/proc'): Promise<string | null> {
  try {
    return parseProcCgroup(await readFile(`${procRoot}/${pid}/cgroup`, 'utf8'));
  } catch {
    return null;
  }
}

/** Device (userspace encoding) and inode of a path, following symlinks; null if it cannot be stat'ed. */
export async function statInode(path: string): Promise<{ dev: number; ino: bigint } | null> {
  try {
    const st = await stat(path, { bigint: true });
    return { dev: Number(st.dev), ino: st.ino };
  } catch {
    return null;
  }
}

export interface ExecutableFile {
  path: string;
  /** stat() device (userspace encoding) and inode. */
  dev: number;
  ino: bigint;
}

/** Files lstat'ed between two turns of the event loop by scanExecutables. */
const SCAN_BATCH = 256;

/**
 * Executable regular files directly in `dirs` (directories resolved first, so that /bin/ls on a
 * merged-/usr system is reported as /usr/bin/ls, as /proc/PID/exe shows it); at most `limit`.
 * Each file's lstat is synchronous, in batches with a turn of the event loop between them: the
 * promise API took 4 times the CPU (86 against 20 ms for this machine's 1,000 files), and a
 * directory listed by readdir answers its lstats at once.
 */
export async function scanExecutables(dirs: readonly string[], limit = 20_000): Promise<ExecutableFile[]> {
  const out: ExecutableFile[] = [];
  const seen = new Set<string>();
  for (const d of dirs) {
    const dir = d && (await realpath(d).catch(() => null));
    if (!dir || seen.has(dir)) continue;
    seen.add(dir);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (let i = 0; i < names.length; i++) {
      if (out.length >= limit) return out;
      if (i > 0 && i % SCAN_BATCH === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const path = `${dir === '/' ? '' : dir}/${names[i]}`;
      let st: BigIntStats | undefined;
      try {
        st = lstatSync(path, { bigint: true, throwIfNoEntry: false });
      } catch {
        continue; // unreadable: not one to name
      }
      if (st && st.isFile() && (st.mode & 0o111n) !== 0n) out.push({ path, dev: Number(st.dev), ino: st.ino });
    }
  }
  return out;
}

export interface ParentInfo {
  pid: number;
  comm: string;
  exe: string | null;
}

/** Ancestors from `ppid` up to pid 1 (included), at most `max`; exe is null where it cannot be read. */
export async function readParentChain(ppid: number, procRoot = '/proc', max = 16): Promise<ParentInfo[]> {
  const out: ParentInfo[] = [];
  for (let pid = ppid; pid > 0 && out.length < max; ) {
    const st = await readStatAsync(pid, procRoot);
    if (!st) break;
    const link = await readExeLink(pid, procRoot);
    out.push({ pid, comm: st.comm, exe: link?.path ?? null });
    if (pid === 1) break;
    pid = st.ppid;
  }
  return out;
}

/** Like statInode, but tells a path that does not exist ('missing') from one that cannot be checked (null). */
export async function statPath(path: string): Promise<{ dev: number; ino: bigint } | 'missing' | null> {
  try {
    const st = await stat(path, { bigint: true });
    return { dev: Number(st.dev), ino: st.ino };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : null;
  }
}

const SECRET_OPTION = /^--?[\w.-]*(key|token|secret|passw(or)?d|credential|auth)[\w.-]*$/i;
const SECRET_VALUE = /\b(sk-[\w-]{16,}|sk-ant-[\w-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|xox[abprs]-[\w-]{10,}|AKIA[0-9A-Z]{16}|AIza[\w-]{30,}|hf_[A-Za-z0-9]{20,})\b/g;

/**
 * The command line as one string, with values that look like credentials replaced by `***`:
 * the value of options named like keys, tokens, secrets or passwords (`--api-key X`,
 * `--token=X`), `NAME_KEY=X` assignments, and well-known token shapes (`sk-…`, `ghp_…`).
 * LLM clients are often given their API key on the command line, and these strings end up in
 * JSON records and recordings.
 */
export function redactCmdline(args: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    let a = args[i]!;
    const eq = a.indexOf('=');
    if (eq > 0 && SECRET_OPTION.test(a.slice(0, eq))) a = `${a.slice(0, eq)}=***`;
    else if (eq > 0 && /^[A-Z0-9_]*(KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*$/.test(a.slice(0, eq))) a = `${a.slice(0, eq)}=***`;
    else if (SECRET_OPTION.test(a) && i + 1 < args.length && !args[i + 1]!.startsWith('-')) {
      out.push(a.replace(SECRET_VALUE, '***'), '***');
      i++;
      continue;
    }
    out.push(a.replace(SECRET_VALUE, '***'));
  }
  return out.join(' ');
}
