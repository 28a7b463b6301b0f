/**
 * Process identity from /proc, cached per identity (pid + start time). The kernel records the
 * owner at connect time; this adds what only /proc can tell (executable path, cgroup path)
 * while the process still exists. A PID is only the same process while its start time matches.
 */
import { readFileSync, readlinkSync } from 'node:fs';

/** USER_HZ: /proc/PID/stat reports times in these ticks; 100 on every mainstream Linux ABI. */
export const CLOCK_TICKS = 100;

export function nsToTicks(ns: bigint): number {
  return Number(ns / BigInt(1_000_000_000 / CLOCK_TICKS));
}

export interface ProcDetails {
  exe: string | null;
  cgroup: string | null;
}

/** Field 22 (starttime) of /proc/PID/stat, or null when the process is gone. */
export function readStartTime(pid: number, procRoot = '/proc'): number | null {
  try {
    const stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]); // field 22 is the 20th after comm and state
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

export function readCgroupPath(pid: number, procRoot = '/proc'): string | null {
  try {
    const text = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
    for (const line of text.split('\n')) if (line.startsWith('0::')) return line.slice(3) || '/';
    return null;
  } catch {
    return null;
  }
}

export function readExe(pid: number, procRoot = '/proc'): string | null {
  try {
    return readlinkSync(`${procRoot}/${pid}/exe`);
  } catch {
    return null;
  }
}

export class IdentityCache {
  private readonly cache = new Map<string, ProcDetails>();

  constructor(
    private readonly procRoot = '/proc',
    private readonly max = 4096,
  ) {}

  /** Details of pid at startTime; /proc is read only while the pid still has that start time. */
  lookup(pid: number, startTime: number): ProcDetails {
    const key = `${pid}:${startTime}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let details: ProcDetails = { exe: null, cgroup: null };
    if (readStartTime(pid, this.procRoot) === startTime) {
      details = { exe: readExe(pid, this.procRoot), cgroup: readCgroupPath(pid, this.procRoot) };
      // the pid could have been reused between the reads: check once more
      if (readStartTime(pid, this.procRoot) !== startTime) details = { exe: null, cgroup: null };
    }
    if (this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, details);
    return details;
  }

  /** Whether the identity is still running. */
  alive(pid: number, startTime: number): boolean {
    return readStartTime(pid, this.procRoot) === startTime;
  }

  forget(key: string): void {
    this.cache.delete(key);
  }
}
