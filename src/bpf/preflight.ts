/**
 * Checks made before touching the kernel, each turned into one sentence that names the cause
 * and the fix. Shared by the engine (fail fast) and `busted doctor` (report all).
 */
import { existsSync, readFileSync } from 'node:fs';

export const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;

export class PreflightError extends Error {
  constructor(message: string, readonly check: string) {
    super(message);
    this.name = 'PreflightError';
  }
}

/** Effective capability bits of this process (from /proc/self/status CapEff). */
export function effectiveCaps(statusText = readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasCap(caps: bigint, cap: number): boolean {
  return ((caps >> BigInt(cap)) & 1n) === 1n;
}

export interface PrivilegeStatus {
  ok: boolean;
  root: boolean;
  missing: string[];
}

/** busted needs CAP_BPF + CAP_PERFMON (+ CAP_NET_ADMIN for cgroup programs), or CAP_SYS_ADMIN. */
export function privilegeStatus(caps = effectiveCaps(), euid = process.geteuid?.() ?? -1): PrivilegeStatus {
  const root = euid === 0;
  if (hasCap(caps, CAP.SYS_ADMIN)) return { ok: true, root, missing: [] };
  const missing: string[] = [];
  if (!hasCap(caps, CAP.BPF)) missing.push('CAP_BPF');
  if (!hasCap(caps, CAP.PERFMON)) missing.push('CAP_PERFMON');
  if (!hasCap(caps, CAP.NET_ADMIN)) missing.push('CAP_NET_ADMIN');
  return { ok: missing.length === 0, root, missing };
}

export const BTF_PATH = '/sys/kernel/btf/vmlinux';

export function checkPrivileges(): void {
  const st = privilegeStatus();
  if (!st.ok) {
    throw new PreflightError(
      `busted needs root or ${st.missing.join('+')} to load its eBPF programs: run it with sudo, or use --replay FILE to view a recording.`,
      'privileges',
    );
  }
}

export function checkBtf(path = BTF_PATH): void {
  if (!existsSync(path)) {
    throw new PreflightError(
      `This kernel exposes no BTF at ${path}: busted needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4 have it).`,
      'btf',
    );
  }
}

/** The cgroup v2 mount point, found in /proc/mounts (null when cgroup v2 is not mounted). */
export function findCgroup2Mount(mounts = readFileSync('/proc/mounts', 'utf8')): string | null {
  for (const line of mounts.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (fsType === 'cgroup2' && mountPoint) return mountPoint.replace(/\\040/g, ' ');
  }
  return null;
}
