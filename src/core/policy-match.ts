/**
 * The policy's decision in user space, the same one the kernel makes in cgroup/connect: for audit
 * displays, for predicting what a rule will do, and for rules the kernel cannot judge (agent).
 */
import type { PolicyAction } from './policy-parse.js';
import type { CompiledPolicy, CompiledRule } from './policy-resolve.js';

/** One process, as both the kernel and the identity resolver see it. */
export interface PolicySubject {
  uid: number;
  /** At most 15 characters, as the kernel keeps it. */
  comm: string;
  /** The executable's device in the kernel's dev_t encoding (as the BPF programs report it). */
  exeDev: number;
  exeIno: bigint;
  /** Id of the process's ancestor cgroup at `level` (0 is the root), or null above its own level. */
  cgroupAncestors: (level: number) => bigint | null;
  /** Of the executable; null while not known yet. */
  sha256: string | null;
  /** Agent id (catalog/agents.yaml), or null. */
  agent: string | null;
}

export interface PolicyDecisionResult {
  action: PolicyAction;
  /** The rule's name, or 'default'. */
  rule: string;
}

export interface DecideOptions {
  /** Decide as the kernel does: rules only user space can judge (agent) never match. */
  kernelOnly?: boolean;
}

/** Whether every field `rule` names matches this process talking to provider `providerIndex`. */
export function matchIdentity(rule: CompiledRule, who: PolicySubject, providerIndex: number): boolean {
  const k = rule.kernel;
  if (rule.providers !== null && !rule.providers.includes(providerIndex)) return false;
  if (k.exeInodes !== null && !k.exeInodes.some((e) => e.dev === who.exeDev && e.ino === who.exeIno)) return false;
  if (k.uids !== null && !k.uids.includes(who.uid)) return false;
  if (k.comms !== null && !k.comms.includes(who.comm)) return false;
  if (k.cgroups !== null && !k.cgroups.some((c) => who.cgroupAncestors(c.level) === c.id)) return false;
  if (rule.sha256 !== null && (who.sha256 === null || !ruleMatchesHash(rule, who.sha256))) return false;
  if (rule.agents !== null && (who.agent === null || !rule.agents.includes(who.agent))) return false;
  return true;
}

/** First match wins; no match gives the policy's default. */
export function decide(policy: CompiledPolicy, who: PolicySubject, providerIndex: number, opts: DecideOptions = {}): PolicyDecisionResult {
  for (const rule of policy.rules) {
    if (opts.kernelOnly && rule.userSpaceOnly) continue;
    if (matchIdentity(rule, who, providerIndex)) return { action: rule.action, rule: rule.name };
  }
  return { action: policy.default, rule: 'default' };
}

/** Whether `rule` names this executable content (hex, any case). */
export function ruleMatchesHash(rule: CompiledRule, sha256: string): boolean {
  return rule.sha256 !== null && rule.sha256.includes(sha256.toLowerCase());
}

/** The rules naming this content, as the kernel's per-executable bit mask (bit i = rules[i]). */
export function hashRuleMask(policy: CompiledPolicy, sha256: string): bigint {
  let mask = 0n;
  for (const rule of policy.rules) if (ruleMatchesHash(rule, sha256)) mask |= 1n << BigInt(rule.index);
  return mask;
}

/** Ancestor lookup from a cgroup path's chain of ids, root first (`ids[level]`). */
export function ancestorsFromIds(ids: readonly bigint[]): (level: number) => bigint | null {
  return (level) => ids[level] ?? null;
}
