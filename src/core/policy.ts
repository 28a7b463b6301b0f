/**
 * Policies (`--policy FILE`): parsing and validation (policy-parse.ts), compilation into what the
 * kernel matches (policy-resolve.ts), and the same first-match decision in user space
 * (policy-match.ts). The kernel's rule encoding is in policy-compile.ts.
 */
export {
  loadPolicy, parsePolicy, PolicyError, MATCH_KEYS, MAX_POLICY_RULES, MAX_VALUES, POLICY_ACTIONS, RESERVED_RULE_NAMES,
  type MatchKey, type Policy, type PolicyAction, type PolicyMatch, type PolicyRule, type ProviderIds,
} from './policy-parse.js';
export {
  compilePolicy, nodePolicyFs, parsePasswdNames, walkCgroups,
  type CgroupRef, type CompileEnv, type CompiledPolicy, type CompiledRule, type ExeInode, type KernelSubject, type PolicyFs,
} from './policy-resolve.js';
export {
  ancestorsFromIds, decide, hashRuleMask, matchIdentity, ruleMatchesHash,
  type DecideOptions, type PolicyDecisionResult, type PolicySubject,
} from './policy-match.js';
