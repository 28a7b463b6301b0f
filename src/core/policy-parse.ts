/**
 * The policy file (`--policy FILE`, YAML; JSON is valid YAML), as in ../shared/DESIGN.md:
 *
 *   default: allow            # allow | audit | block — LLM traffic no rule matches
 *   rules:                    # first match wins
 *     - name: build-bots-offline
 *       match: {exe: /opt/ci/bin/runner}   # exe, sha256, comm, uid, user, cgroup, container, pod, agent, provider
 *       action: block                      # block | audit | allow
 *
 * Each match value is one value or a list (any of them); every key given must match. Every error
 * names the file, the line, the rule and the key, and a policy with any error is refused whole.
 */
import { readFileSync } from 'node:fs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type YAMLMap } from 'yaml';
import type { Catalog } from './catalog.js';

export type PolicyAction = 'allow' | 'audit' | 'block';
export const POLICY_ACTIONS: readonly PolicyAction[] = ['allow', 'audit', 'block'];
export const MATCH_KEYS = ['exe', 'sha256', 'comm', 'uid', 'user', 'cgroup', 'container', 'pod', 'agent', 'provider'] as const;
export type MatchKey = (typeof MATCH_KEYS)[number];
/** The kernel's rule table holds 64 rules (MAX_RULES in src/bpf/abi.ts). */
export const MAX_POLICY_RULES = 64;
/** Values per match key: the kernel's rule holds 8 of each (RULE_ITEMS in src/bpf/abi.ts). */
export const MAX_VALUES = 8;
/** Names the records already use for decisions no rule made. */
export const RESERVED_RULE_NAMES: readonly string[] = ['default', 'busted-top'];

export interface PolicyMatch {
  exe?: string[];
  /** Lower-case hex. */
  sha256?: string[];
  comm?: string[];
  uid?: number[];
  user?: string[];
  /** Paths relative to the cgroup v2 mount, normalized (`/system.slice/foo.service`). */
  cgroup?: string[];
  /** Container ids or id prefixes (12 to 64 hex characters, lower-cased), or names (lxc, nspawn). */
  container?: string[];
  /** Pod UIDs, lower-case, with dashes. */
  pod?: string[];
  agent?: string[];
  /** Catalog provider ids. */
  provider?: string[];
}

export interface PolicyRule {
  /** Position in the file's rule list (first match wins). */
  index: number;
  name: string;
  action: PolicyAction;
  match: PolicyMatch;
  /** Line of the rule, for messages. */
  line: number | null;
  /** Line of each match key's value, for messages about it. */
  lines: Partial<Record<MatchKey, number | null>>;
}

export interface Policy {
  file: string;
  default: PolicyAction;
  rules: PolicyRule[];
}

/** A policy that cannot be used; the message names the file, line, rule and key. */
export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly line: number | null = null,
    readonly rule: number | null = null,
    readonly ruleName: string | null = null,
    readonly key: string | null = null,
  ) {
    super(`policy file ${file}${policyWhere(line, rule, ruleName, key)}: ${problem}`);
    this.name = 'PolicyError';
  }
}

/** `, line 7, rules[1] (name "x"), key match.exe` (the parts that are known). */
export function policyWhere(line: number | null, rule: number | null, ruleName: string | null, key: string | null): string {
  const where = [
    line !== null ? `line ${line}` : null,
    rule !== null ? `rules[${rule}]${ruleName !== null ? ` (name "${ruleName}")` : ''}` : null,
    key !== null ? `key ${key}` : null,
  ].filter((s) => s !== null);
  return where.length > 0 ? `, ${where.join(', ')}` : '';
}

/** Provider ids a policy may name: a catalog, or a set of ids. */
export type ProviderIds = Catalog | ReadonlySet<string>;

/** Reads and validates a policy file. `providers`, when given, is checked now (else at compile time). */
export function loadPolicy(file: string, providers?: ProviderIds | null): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path given to --policy`);
  }
  return parsePolicy(text, file, providers);
}

/** Parses and validates policy text; `file` is only used in messages. Throws PolicyError. */
export function parsePolicy(text: string, file: string, providers?: ProviderIds | null): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new PolicyError(file, `is not valid YAML: ${what}`, first.linePos?.[0].line ?? null);
  }
  const ids = providers ? ('providers' in providers ? new Set(providers.providers().map((p) => p.id)) : providers) : null;
  return new Reader(file, doc, lineCounter, ids).policy();
}

type Check = (v: unknown) => string | null;
const isString = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';
const str: Check = (v) => (isString(v) ? null : `must be a non-empty string, not ${show(v)}`);
const absPath: Check = (v) => str(v) ?? ((v as string).startsWith('/') ? null : `must be an absolute path, not "${v}"`);
const UUID = /^[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}$|^[0-9a-f]{32}$/;

const CHECKS: Record<MatchKey, Check> = {
  exe: absPath,
  cgroup: (v) => absPath(v) ?? ((v as string).split('/').some((s) => s === '.' || s === '..') ? `must not contain "." or ".." segments, not "${v}"` : null),
  sha256: (v) => (typeof v === 'string' && /^[0-9a-fA-F]{64}$/.test(v) ? null : `must be 64 hexadecimal characters, not ${show(v)}`),
  comm: (v) => str(v) ?? (Buffer.byteLength(v as string) > 15 ? `is longer than 15 bytes, which a kernel comm never is: "${v}"` : null),
  uid: (v) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32 - 1 ? null : `must be a non-negative integer, not ${show(v)}`),
  user: (v) => (typeof v === 'number' ? `must be a user name; for a numeric id write uid: ${v}` : str(v)),
  container: (v) => str(v) ?? (/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,252}$/.test(v as string)
    ? null : `must be a container id (at least 12 of its hex characters) or an lxc/nspawn container name, not "${v}"`),
  pod: (v) => str(v) ?? (UUID.test((v as string).toLowerCase()) ? null : `must be a pod UID such as 0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234, not "${v}"`),
  agent: str,
  provider: str,
};

function show(v: unknown): string {
  if (v instanceof Object) return isSeq(v) ? 'a list' : isMap(v) ? 'a mapping' : 'an unsupported value';
  return JSON.stringify(v ?? null);
}

class Reader {
  constructor(
    private readonly file: string,
    private readonly doc: Document,
    private readonly lc: LineCounter,
    private readonly providerIds: ReadonlySet<string> | null,
  ) {}

  private lineOf(node: unknown): number | null {
    const range = (node as Node | null | undefined)?.range;
    return range ? this.lc.linePos(range[0]).line : null;
  }

  /** The node, with an alias (`*name`) replaced by what it refers to. */
  private deref(node: unknown, rule: number | null = null, name: string | null = null, key: string | null = null): unknown {
    if (!isAlias(node)) return node;
    const target = node.resolve(this.doc);
    // an alias naming no anchor defined before it resolves to nothing: read as "key absent", a
    // misspelt `default: *blk` would quietly allow everything
    if (target === undefined) this.fail(`alias *${node.source} names no anchor (&${node.source}) defined before it`, node, rule, name, key);
    return target;
  }

  private fail(problem: string, node: unknown, rule: number | null = null, name: string | null = null, key: string | null = null): never {
    throw new PolicyError(this.file, problem, this.lineOf(node), rule, name, key);
  }

  policy(): Policy {
    const root = this.deref(this.doc.contents);
    if (root === null || (isScalar(root) && root.value === null)) this.fail('is empty; it needs "rules:" and/or "default:"', null);
    if (!isMap(root)) return this.fail('must be a mapping with "default" and "rules"', root);
    for (const pair of root.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      if (key !== 'default' && key !== 'rules') this.fail(`unknown key "${key}"; the top level holds "default" and "rules"`, pair.key, null, null, key);
    }
    const defNode = this.deref(root.get('default', true), null, null, 'default');
    const def = defNode === undefined ? 'allow' : isScalar(defNode) ? defNode.value : defNode;
    if (typeof def !== 'string' || !(POLICY_ACTIONS as readonly string[]).includes(def)) {
      this.fail(`must be allow, audit or block, not ${show(def)}`, defNode, null, null, 'default');
    }
    const rulesNode = this.deref(root.get('rules', true), null, null, 'rules');
    const empty = rulesNode === undefined || (isScalar(rulesNode) && rulesNode.value === null);
    if (!empty && !isSeq(rulesNode)) this.fail('must be a list of rules', rulesNode, null, null, 'rules');
    const items = isSeq(rulesNode) ? rulesNode.items : [];
    if (items.length > MAX_POLICY_RULES) {
      this.fail(`has ${items.length} rules; busted enforces at most ${MAX_POLICY_RULES}`, rulesNode, null, null, 'rules');
    }
    const names = new Map<string, number>();
    const rules = items.map((item, index) => {
      const rule = this.rule(this.deref(item, index), index);
      const prev = names.get(rule.name);
      if (prev !== undefined) this.fail(`name "${rule.name}" is already used by rules[${prev}]; rule names must be unique`, item, index, rule.name, 'name');
      names.set(rule.name, index);
      return rule;
    });
    return { file: this.file, default: def as PolicyAction, rules };
  }

  private rule(item: unknown, index: number): PolicyRule {
    if (!isMap(item)) return this.fail('must be a mapping with name, match and action', item, index);
    const nameNode = this.deref(item.get('name', true), index, null, 'name');
    const rawName = isScalar(nameNode) ? nameNode.value : undefined;
    const knownName = isString(rawName) ? rawName : null;
    for (const pair of item.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      if (key !== 'name' && key !== 'match' && key !== 'action') {
        this.fail(`unknown key "${key}"; a rule holds name, match and action`, pair.key, index, knownName, key);
      }
    }
    if (knownName === null) return this.fail(`every rule needs a name (a non-empty string), not ${show(rawName ?? nameNode)}`, nameNode ?? item, index, null, 'name');
    const name = knownName;
    if (name.length > 128) this.fail('is longer than 128 characters', nameNode, index, name.slice(0, 32) + '…', 'name');
    if (RESERVED_RULE_NAMES.includes(name)) {
      this.fail(`"${name}" is reserved (records use it for decisions no rule made); choose another name`, nameNode, index, name, 'name');
    }
    const actionNode = this.deref(item.get('action', true), index, name, 'action');
    const action = isScalar(actionNode) ? actionNode.value : actionNode;
    if (typeof action !== 'string' || !(POLICY_ACTIONS as readonly string[]).includes(action)) {
      this.fail(`must be allow, audit or block, not ${show(action)}`, actionNode ?? item, index, name, 'action');
    }
    const matchNode = this.deref(item.get('match', true), index, name, 'match');
    if (!isMap(matchNode) || matchNode.items.length === 0) {
      this.fail(`must be a mapping with at least one of ${MATCH_KEYS.join(', ')}`, matchNode ?? item, index, name, 'match');
    }
    const { match, lines } = this.match(matchNode as YAMLMap, index, name);
    return { index, name, action: action as PolicyAction, match, line: this.lineOf(item), lines };
  }

  private match(node: YAMLMap, index: number, name: string): { match: PolicyMatch; lines: PolicyRule['lines'] } {
    const match: Record<string, (string | number)[]> = {};
    const lines: PolicyRule['lines'] = {};
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      if (!(MATCH_KEYS as readonly string[]).includes(key)) {
        this.fail(`unknown match key "${key}"; use ${MATCH_KEYS.join(', ')}`, pair.key, index, name, `match.${key}`);
      }
      const k = key as MatchKey;
      const where = `match.${k}`;
      const valueNode = this.deref(pair.value, index, name, where);
      const nodes: unknown[] = isSeq(valueNode) ? valueNode.items.map((n) => this.deref(n, index, name, where)) : [valueNode];
      if (nodes.length === 0) this.fail('must give at least one value', valueNode ?? pair.key, index, name, where);
      if (nodes.length > MAX_VALUES) this.fail(`lists ${nodes.length} values; at most ${MAX_VALUES} fit one rule: split it`, valueNode, index, name, where);
      const values = nodes.map((n) => {
        const v = scalarValue(k, n);
        const problem = CHECKS[k](v);
        if (problem) this.fail(problem, n ?? pair.key, index, name, where);
        if (k === 'provider' && this.providerIds && !this.providerIds.has(v as string)) {
          this.fail(`names no provider in the catalog: "${v}" (see catalog/providers.yaml, or add it with --providers)`, n, index, name, where);
        }
        return normalize(k, v as string | number);
      });
      match[k] = [...new Set(values)];
      lines[k] = this.lineOf(valueNode ?? pair.key);
    }
    return { match: match as PolicyMatch, lines };
  }
}

/**
 * A scalar's value; for keys that take strings, a plain number is read as the text written, since
 * YAML turns container id prefixes such as 123456789012 or 1234e5678901 into numbers.
 */
function scalarValue(key: MatchKey, n: unknown): unknown {
  if (!isScalar(n)) return n;
  const textual = key !== 'uid' && key !== 'user';
  return textual && typeof n.value === 'number' && n.type === 'PLAIN' && typeof n.source === 'string' ? n.source : n.value;
}

function normalize(key: MatchKey, v: string | number): string | number {
  switch (key) {
    case 'sha256':
      return (v as string).toLowerCase();
    case 'container':
      return /^[0-9a-fA-F]{12,64}$/.test(v as string) ? (v as string).toLowerCase() : v;
    case 'pod':
      return (v as string).toLowerCase().replace(/_/g, '-');
    case 'cgroup': {
      const p = (v as string).split('/').filter((s) => s !== '').join('/');
      return `/${p}`;
    }
    default:
      return v;
  }
}
