/**
 * A compiled policy in the kernel's form (src/bpf/enforcer.ts): action codes, rules as
 * KernelRule, and per-content rule bits for sha256 rules (the engine marks an executable with
 * the bits of the rules naming its hash; the kernel matches the rule on that bit). A rule only
 * user space can judge (agent) never matches in the kernel.
 *
 * `compilePolicy` here (what the engine loads into the kernel) is policy-resolve.ts's
 * compilation followed by `toKernelPolicy`.
 */
import { Action, MAX_RULES, RULE_ITEMS, type ActionValue } from '../bpf/abi.js';
import type { KernelRule } from '../bpf/enforcer.js';
import { PolicyError, type MatchKey, type Policy, type PolicyAction } from './policy-parse.js';
import { compilePolicy as resolvePolicy, type CompileEnv, type CompiledPolicy as ResolvedPolicy, type CompiledRule } from './policy-resolve.js';

export interface KernelPolicyForm {
  names: string[];
  rules: KernelRule[];
  defaultAction: ActionValue;
  /** sha256 (lower-case hex) → bit mask of the rules naming it. */
  hashRules: Map<string, bigint>;
  warnings: string[];
  resolved: ResolvedPolicy;
  source: Policy;
}

/** A policy compiled for this machine, in the kernel's form (what the engine holds). */
export type CompiledPolicy = KernelPolicyForm;

export const ACTION_CODE: Record<PolicyAction, ActionValue> = { allow: Action.ALLOW, audit: Action.AUDIT, block: Action.BLOCK };
/** The kernel keeps providers as a 64-bit mask per rule. */
const MAX_PROVIDER_INDEX = 63;

/** Resolves `policy` on this machine and encodes it for the kernel. Throws PolicyError. */
export function compilePolicy(policy: Policy, env: CompileEnv): KernelPolicyForm {
  return toKernelPolicy(resolvePolicy(policy, env), policy);
}

/** The kernel's form of a compiled policy; throws PolicyError when a rule exceeds what the kernel holds. */
export function toKernelPolicy(c: ResolvedPolicy, source: Policy): KernelPolicyForm {
  if (c.rules.length > MAX_RULES) throw new PolicyError(c.file, `has ${c.rules.length} rules; the kernel holds at most ${MAX_RULES}`, null, null, null, 'rules');
  const hashRules = new Map<string, bigint>();
  for (const r of c.rules) for (const h of r.sha256 ?? []) hashRules.set(h, (hashRules.get(h) ?? 0n) | (1n << BigInt(r.index)));
  return {
    names: c.rules.map((r) => r.name),
    rules: c.rules.map((r) => kernelRule(c.file, r)),
    defaultAction: ACTION_CODE[c.default],
    hashRules,
    warnings: c.warnings,
    resolved: c,
    source,
  };
}

function kernelRule(file: string, r: CompiledRule): KernelRule {
  const k = r.kernel;
  const fail = (key: MatchKey | 'match', problem: string): never => {
    throw new PolicyError(file, problem, (key === 'match' ? null : r.source.lines[key]) ?? r.source.line, r.index, r.name, key === 'match' ? key : `match.${key}`);
  };
  const limit = (key: MatchKey, what: string, list: unknown[] | null) => {
    if (list && list.length > RULE_ITEMS) fail(key, `resolves to ${list.length} ${what}; at most ${RULE_ITEMS} fit one rule: split it`);
  };
  limit('exe', 'executables', k.exeInodes);
  limit('user', 'uids', k.uids);
  limit('comm', 'comms', k.comms);
  limit(r.source.match.cgroup ? 'cgroup' : r.source.match.container ? 'container' : 'pod', 'cgroups', k.cgroups);
  for (const p of r.providers ?? []) {
    if (p > MAX_PROVIDER_INDEX) fail('provider', `names provider #${p} of the catalog; the kernel distinguishes the first ${MAX_PROVIDER_INDEX + 1} only`);
  }
  return {
    action: ACTION_CODE[r.action],
    providers: r.providers,
    exes: k.exeInodes,
    uids: k.uids,
    comms: k.comms,
    cgroups: k.cgroups?.map(({ id, level }) => ({ id, level })) ?? null,
    hash: r.sha256 !== null,
    never: r.userSpaceOnly,
  };
}
