/**
 * Compiles a policy into the kernel's rules: executables become (device, inode), users become
 * uids, cgroup/container/pod become cgroup ids at their level (a rule on a cgroup covers its
 * descendants), providers become catalog indices, sha256 becomes a per-rule bit the engine sets
 * on executables whose content matched. `agent` can only be judged in user space: such rules
 * never match in the kernel (a warning says so).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Action, type ActionValue } from '../bpf/abi.js';
import type { ExeId, KernelRule } from '../bpf/enforcer.js';
import type { Catalog } from './catalog.js';
import { parseCgroupPath } from './containers.js';
import { userDevToKernel } from './identity-proc.js';
import type { Policy, PolicyAction, PolicyRule } from './policy-file.js';
import { PolicyError } from './policy-file.js';
import { parsePasswd } from './users.js';

export interface CompileEnv {
  catalog: Catalog;
  /** cgroup v2 mount point, or null when there is none. */
  cgroupRoot: string | null;
  passwdPath?: string;
}

export interface CompiledPolicy {
  names: string[];
  rules: KernelRule[];
  defaultAction: ActionValue;
  /** sha256 (lower-case hex) → bit mask of the rules naming it. */
  hashRules: Map<string, bigint>;
  warnings: string[];
  source: Policy;
}

const ACTION: Record<PolicyAction, ActionValue> = { allow: Action.ALLOW, audit: Action.AUDIT, block: Action.BLOCK };
const MAX_WALK = 100_000;

/** Every cgroup directory below the mount (bounded), as paths relative to it ("/a/b"). */
function walkCgroups(root: string): string[] {
  const out: string[] = [];
  const stack = ['/'];
  while (stack.length > 0 && out.length < MAX_WALK) {
    const rel = stack.pop()!;
    out.push(rel);
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(join(root, rel), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) if (e.isDirectory() && rel.split('/').length < 14) stack.push(rel === '/' ? `/${e.name}` : `${rel}/${e.name}`);
  }
  return out;
}

const levelOf = (rel: string) => rel.split('/').filter(Boolean).length;

export function compilePolicy(policy: Policy, env: CompileEnv): CompiledPolicy {
  const warnings: string[] = [];
  const hashRules = new Map<string, bigint>();
  let cgroupDirs: string[] | null = null;
  const dirs = () => (cgroupDirs ??= env.cgroupRoot ? walkCgroups(env.cgroupRoot) : []);
  let users: Map<string, number> | null = null;
  const uidOf = (name: string): number | null => {
    users ??= new Map([...parsePasswd(readFileSync(env.passwdPath ?? '/etc/passwd', 'utf8'))].map(([uid, n]) => [n, uid]));
    return users.get(name) ?? null;
  };
  const providerIndex = new Map(env.catalog.providers().map((p) => [p.id, p.index]));

  const rules = policy.rules.map((rule, i): KernelRule => {
    const fail = (problem: string, key: string) => {
      throw new PolicyError(policy.file, problem, rule.line, i, rule.name, key);
    };
    const m = rule.match;
    const warn = (what: string) => warnings.push(`rule "${rule.name}": ${what}`);
    let exes: ExeId[] | null = null;
    if (m.exe) {
      exes = [];
      for (const path of m.exe as string[]) {
        try {
          const st = statSync(path, { bigint: true });
          exes.push({ dev: userDevToKernel(Number(st.dev)), ino: st.ino });
        } catch {
          warn(`${path} does not exist: the rule matches no executable until the policy is reloaded (SIGHUP)`);
        }
      }
    }
    let uids: number[] | null = null;
    if (m.uid || m.user) {
      uids = (m.uid ?? []).map(Number);
      for (const name of (m.user ?? []) as string[]) {
        const uid = uidOf(name);
        if (uid === null) fail(`names user "${name}", who is not in ${env.passwdPath ?? '/etc/passwd'}`, 'match.user');
        uids.push(uid!);
      }
    }
    const cgroups: { id: bigint; level: number }[] | null = m.cgroup || m.container || m.pod ? [] : null;
    for (const rel of (m.cgroup ?? []) as string[]) {
      if (!env.cgroupRoot) {
        warn('there is no cgroup v2 mount: cgroup rules match nothing');
        break;
      }
      try {
        cgroups!.push({ id: statSync(join(env.cgroupRoot, rel), { bigint: true }).ino, level: levelOf(rel) });
      } catch {
        warn(`cgroup ${rel} does not exist: the rule matches it once it does and the policy is reloaded`);
      }
    }
    for (const id of (m.container ?? []) as string[]) {
      const found = dirs().filter((d) => parseCgroupPath(d).container?.id.startsWith(id) && !parseCgroupPath(d.slice(0, d.lastIndexOf('/'))).container);
      if (found.length === 0) warn(`no cgroup of container ${id} exists now`);
      for (const d of found) cgroups!.push({ id: statSync(join(env.cgroupRoot!, d), { bigint: true }).ino, level: levelOf(d) });
    }
    for (const uid of (m.pod ?? []) as string[]) {
      const found = dirs().filter((d) => parseCgroupPath(d).pod?.uid === uid && parseCgroupPath(d.slice(0, d.lastIndexOf('/'))).pod?.uid !== uid);
      if (found.length === 0) warn(`no cgroup of pod ${uid} exists now`);
      for (const d of found) cgroups!.push({ id: statSync(join(env.cgroupRoot!, d), { bigint: true }).ino, level: levelOf(d) });
    }
    if (cgroups && cgroups.length > 8) fail(`resolves to ${cgroups.length} cgroups; at most 8 fit one rule: split it`, 'match');
    for (const h of (m.sha256 ?? []) as string[]) hashRules.set(h, (hashRules.get(h) ?? 0n) | (1n << BigInt(i)));
    if (m.agent) warn('agent is judged in user space only: the kernel cannot enforce this rule; it is shown but never blocks');
    return {
      action: ACTION[rule.action],
      providers: m.provider ? (m.provider as string[]).map((id) => providerIndex.get(id)!) : null,
      exes, uids, comms: (m.comm as string[] | undefined) ?? null, cgroups,
      hash: Boolean(m.sha256),
      never: Boolean(m.agent),
    };
  });
  return { names: policy.rules.map((r: PolicyRule) => r.name), rules, defaultAction: ACTION[policy.default], hashRules, warnings, source: policy };
}
