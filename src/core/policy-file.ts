/**
 * The policy file (`--policy FILE`, YAML; JSON is valid YAML), as in ../shared/DESIGN.md:
 *
 *   default: allow            # allow | audit | block — for LLM traffic no rule matches
 *   rules:                    # first match wins
 *     - name: build-bots-offline
 *       match: {exe: /opt/ci/bin/runner}   # exe, sha256, comm, uid, user, cgroup, container, pod, agent, provider
 *       action: block                      # block | audit | allow
 *
 * Each match value may be one value or a list (any of them). Every error names the file, the
 * line, the rule and the key; a policy with any error is refused whole.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type YAMLMap } from 'yaml';
import { readFileSync } from 'node:fs';

export type PolicyAction = 'allow' | 'audit' | 'block';
export const MATCH_KEYS = ['exe', 'sha256', 'comm', 'uid', 'user', 'cgroup', 'container', 'pod', 'agent', 'provider'] as const;
export type MatchKey = (typeof MATCH_KEYS)[number];
export const MAX_POLICY_RULES = 64;
export const MAX_VALUES = 8;

export interface PolicyRule {
  name: string;
  action: PolicyAction;
  /** Each key given: the values, any of which matches (uid values are numbers). */
  match: Partial<Record<MatchKey, (string | number)[]>>;
  line: number | null;
}

export interface Policy {
  file: string;
  default: PolicyAction;
  rules: PolicyRule[];
}

export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly line: number | null = null,
    readonly rule: number | null = null,
    readonly ruleName: string | null = null,
    readonly key: string | null = null,
  ) {
    const where = [
      line !== null ? `line ${line}` : null,
      rule !== null ? `rules[${rule}]${ruleName ? ` (name "${ruleName}")` : ''}` : null,
      key !== null ? `key ${key}` : null,
    ].filter(Boolean).join(', ');
    super(`policy file ${file}${where ? `, ${where}` : ''}: ${problem}`);
    this.name = 'PolicyError';
  }
}

const ACTIONS: readonly string[] = ['allow', 'audit', 'block'];

type Check = (v: unknown) => string | null;
const str: Check = (v) => (typeof v === 'string' && v.trim() !== '' ? null : 'must be a non-empty string');
const absPath: Check = (v) => str(v) ?? ((v as string).startsWith('/') ? null : `must be an absolute path, not "${v}"`);
const CHECKS: Record<MatchKey, Check> = {
  exe: absPath,
  cgroup: absPath,
  sha256: (v) => (typeof v === 'string' && /^[0-9a-fA-F]{64}$/.test(v) ? null : `must be 64 hexadecimal characters, not "${v}"`),
  comm: (v) => str(v) ?? ((v as string).length > 15 ? `is longer than 15 characters, which a kernel comm never is: "${v}"` : null),
  uid: (v) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32 ? null : `must be a non-negative integer, not ${JSON.stringify(v)}`),
  user: str,
  container: (v) => str(v) ?? (/^[0-9a-f]{12,64}$/.test(v as string) ? null : `must be a container id (12 to 64 lower-case hex characters), not "${v}"`),
  pod: (v) => str(v) ?? (/^[0-9a-f-]{36}$/.test(v as string) ? null : `must be a pod UID such as 0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234, not "${v}"`),
  agent: str,
  provider: str,
};

export function loadPolicy(file: string, providerIds: ReadonlySet<string>): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path`);
  }
  return parsePolicy(text, file, providerIds);
}

export function parsePolicy(text: string, file: string, providerIds: ReadonlySet<string>): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const lineOf = (node: unknown): number | null => {
    const range = (node as Node | null | undefined)?.range;
    return range ? lineCounter.linePos(range[0]).line : null;
  };
  const first = doc.errors[0];
  if (first) {
    const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new PolicyError(file, `is not valid YAML: ${what}`, first.linePos?.[0].line ?? null);
  }
  const root = doc.contents;
  if (root === null) throw new PolicyError(file, 'is empty; it needs "rules:" and/or "default:"');
  if (!isMap(root)) throw new PolicyError(file, 'must be a mapping with "default" and "rules"', lineOf(root));
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '?';
    if (key !== 'default' && key !== 'rules') throw new PolicyError(file, `unknown key "${key}"; the top level holds "default" and "rules"`, lineOf(pair.key), null, null, key);
  }
  const defNode = root.get('default', true);
  const def = defNode === undefined ? 'allow' : isScalar(defNode) ? defNode.value : undefined;
  if (typeof def !== 'string' || !ACTIONS.includes(def)) {
    throw new PolicyError(file, `must be allow, audit or block, not ${JSON.stringify(def ?? null)}`, lineOf(defNode), null, null, 'default');
  }
  const rulesNode = root.get('rules', true);
  if (rulesNode !== undefined && !isSeq(rulesNode)) throw new PolicyError(file, 'must be a list of rules', lineOf(rulesNode), null, null, 'rules');
  const items = rulesNode && isSeq(rulesNode) ? rulesNode.items : [];
  if (items.length > MAX_POLICY_RULES) {
    throw new PolicyError(file, `has ${items.length} rules; busted enforces at most ${MAX_POLICY_RULES}`, lineOf(rulesNode), null, null, 'rules');
  }
  const names = new Map<string, number>();
  const rules = items.map((item, index) => {
    const rule = readRule(item as Node, index, file, lineOf, providerIds);
    const prev = names.get(rule.name);
    if (prev !== undefined) throw new PolicyError(file, `name "${rule.name}" is already used by rules[${prev}]; rule names must be unique`, rule.line, index, rule.name, 'name');
    names.set(rule.name, index);
    return rule;
  });
  return { file, default: def as PolicyAction, rules };
}

function readRule(
  item: Node,
  index: number,
  file: string,
  lineOf: (n: unknown) => number | null,
  providerIds: ReadonlySet<string>,
): PolicyRule {
  const fail = (problem: string, node: unknown, key: string | null, name: string | null = null): never => {
    throw new PolicyError(file, problem, lineOf(node ?? item), index, name, key);
  };
  if (!isMap(item)) return fail('must be a mapping with name, match and action', item, null);
  const map = item as YAMLMap;
  const nameNode = map.get('name', true);
  const name = isScalar(nameNode) ? nameNode.value : undefined;
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '?';
    if (key !== 'name' && key !== 'match' && key !== 'action') {
      fail(`unknown key "${key}"; a rule holds name, match and action`, pair.key, key, typeof name === 'string' ? name : null);
    }
  }
  if (typeof name !== 'string' || name.trim() === '') fail('every rule needs a name (a non-empty string)', nameNode, 'name');
  const ruleName = name as string;
  const actionNode = map.get('action', true);
  const action = isScalar(actionNode) ? actionNode.value : undefined;
  if (typeof action !== 'string' || !ACTIONS.includes(action)) {
    fail(`must be allow, audit or block, not ${JSON.stringify(action ?? null)}`, actionNode, 'action', ruleName);
  }
  const matchNode = map.get('match', true);
  if (!isMap(matchNode) || matchNode.items.length === 0) {
    fail(`must be a mapping with at least one of ${MATCH_KEYS.join(', ')}`, matchNode, 'match', ruleName);
  }
  const match: PolicyRule['match'] = {};
  for (const pair of (matchNode as unknown as YAMLMap).items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '?';
    if (!(MATCH_KEYS as readonly string[]).includes(key)) {
      fail(`unknown match key "${key}"; use ${MATCH_KEYS.join(', ')}`, pair.key, `match.${key}`, ruleName);
    }
    const k = key as MatchKey;
    const valueNode = pair.value as Node | null;
    const raw: unknown[] = isSeq(valueNode) ? valueNode.items.map((n) => (isScalar(n) ? n.value : n)) : [isScalar(valueNode) ? valueNode.value : valueNode];
    if (raw.length === 0) fail('must give at least one value', valueNode ?? pair.key, `match.${k}`, ruleName);
    if (raw.length > MAX_VALUES) fail(`lists ${raw.length} values; at most ${MAX_VALUES} fit one rule: split it`, valueNode, `match.${k}`, ruleName);
    for (const v of raw) {
      const problem = CHECKS[k](v);
      if (problem) fail(problem, valueNode, `match.${k}`, ruleName);
      if (k === 'provider' && !providerIds.has(v as string)) {
        fail(`names no provider in the catalog: "${v}" (see catalog/providers.yaml, or add it with --providers)`, valueNode, `match.${k}`, ruleName);
      }
    }
    match[k] = raw.map((v) => (k === 'sha256' || k === 'container' ? String(v).toLowerCase() : (v as string | number)));
  }
  return { name: ruleName, action: action as PolicyAction, match, line: lineOf(item) };
}
