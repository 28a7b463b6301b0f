/**
 * Process identity. A PID is only the same process while its start time matches, so an identity
 * is (pid, start time). The kernel records the owner at connect time; `IdentityResolver`
 * (identity-resolver.ts) adds what /proc, the cgroup tree, the passwd files and the executable's
 * content tell, without blocking the caller. `IdentityCache` is the small synchronous lookup of
 * executable and cgroup paths the engine used first; it stays for callers that want only that.
 */
import { readCgroupPath, readExe, readStartTime } from './identity-proc.js';

export { readCgroupPath, readExe, readStartTime } from './identity-proc.js';
export { kernelDevToUser, userDevToKernel } from './identity-proc.js';
export { IdentityResolver, identityKey } from './identity-resolver.js';
export type { ChangeListener, Identity, ParentInfo, ProcessFacts, ResolverOptions } from './identity-resolver.js';

/** USER_HZ: /proc/PID/stat reports times in these ticks; 100 on every mainstream Linux ABI. */
export const CLOCK_TICKS = 100;

export function nsToTicks(ns: bigint): number {
  return Number(ns / BigInt(1_000_000_000 / CLOCK_TICKS));
}

export interface ProcDetails {
  exe: string | null;
  cgroup: string | null;
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
