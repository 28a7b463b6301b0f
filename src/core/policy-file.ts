/** Kept for the engine's current import; the policy file is read in policy-parse.ts (or use policy.ts). */
export {
  loadPolicy, parsePolicy, PolicyError, MATCH_KEYS, MAX_POLICY_RULES, MAX_VALUES,
  type MatchKey, type Policy, type PolicyAction, type PolicyRule,
} from './policy-parse.js';
