/**
 * The `/` filter: free text plus `provider:` `user:` `pid:` `process:` terms. `user:` takes a uid
 * or a name (recorded or local); `process:` searches comm, executable path and agent label or id.
 * Terms of the same kind are alternatives (OR); different kinds and free words must all match
 * (AND). Matching is case-insensitive; values may be double-quoted to hold spaces.
 */
import type { ProcessRow } from '../core/flows.js';
import { userOf } from './identity.js';

export type TermKind = 'provider' | 'user' | 'pid' | 'process' | 'text';

export interface FilterTerm {
  kind: TermKind;
  value: string;
}

export interface Filter {
  terms: FilterTerm[];
  /** One sentence per term that could not be used (it is left out of `terms`). */
  errors: string[];
}

const KEYED: ReadonlySet<TermKind> = new Set(['provider', 'user', 'pid', 'process']);

export const EMPTY_FILTER: Filter = { terms: [], errors: [] };

/** Splits on spaces, keeping double-quoted parts together (`process:"my app"`). */
function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') {
      quoted = !quoted;
    } else if (/\s/.test(ch) && !quoted) {
      if (current) tokens.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current) tokens.push(current);
  return tokens;
}

export function parseFilter(text: string): Filter {
  const terms: FilterTerm[] = [];
  const errors: string[] = [];
  for (const token of tokenize(text)) {
    const colon = token.indexOf(':');
    const key = colon > 0 ? token.slice(0, colon).toLowerCase() : '';
    if (!KEYED.has(key as TermKind)) {
      terms.push({ kind: 'text', value: token.toLowerCase() });
      continue;
    }
    const value = token.slice(colon + 1).toLowerCase();
    if (value === '') {
      errors.push(`"${token}" needs a value after the colon, e.g. ${key}:${example(key as TermKind)}.`);
      continue;
    }
    if (key === 'pid' && !/^\d+$/.test(value)) {
      errors.push(`"${token}" is not a pid: use digits only, e.g. pid:4242.`);
      continue;
    }
    terms.push({ kind: key as TermKind, value });
  }
  return { terms, errors };
}

function example(kind: TermKind): string {
  switch (kind) {
    case 'provider': return 'openai';
    case 'user': return 'root';
    case 'pid': return '4242';
    case 'process': return 'python';
    case 'text': return 'text';
  }
}

export type UserName = (uid: number) => string;

function termMatches(term: FilterTerm, row: ProcessRow, userName: UserName): boolean {
  switch (term.kind) {
    case 'provider':
      return row.providers.some((p) => p.toLowerCase().includes(term.value));
    case 'user':
      return String(row.uid) === term.value || userOf(row, userName).toLowerCase() === term.value
        || userName(row.uid).toLowerCase() === term.value;
    case 'pid':
      return String(row.pid) === term.value;
    case 'process':
      return [row.comm, row.exe ?? '', row.agent?.label ?? '', row.agent?.id ?? '']
        .some((s) => s.toLowerCase().includes(term.value));
    case 'text':
      return haystack(row, userName).includes(term.value);
  }
}

/** Everything free text searches, lower case. */
function haystack(row: ProcessRow, userName: UserName): string {
  return [
    row.comm, row.exe ?? '', row.cgroup ?? '', String(row.pid), userOf(row, userName), row.group ?? '',
    row.agent?.label ?? '', row.agent?.id ?? '', row.cmdline ?? '', row.container?.id ?? '', row.pod?.uid ?? '', row.pod?.namespace ?? '', row.pod?.name ?? '',
    ...row.providers,
  ].join('\n').toLowerCase();
}

/** True when `row` passes every kind of term in `filter`. */
export function matchesFilter(row: ProcessRow, filter: Filter, userName: UserName): boolean {
  if (filter.terms.length === 0) return true;
  const byKind = new Map<TermKind, FilterTerm[]>();
  for (const t of filter.terms) {
    if (t.kind === 'text') {
      if (!termMatches(t, row, userName)) return false;
      continue;
    }
    byKind.set(t.kind, [...(byKind.get(t.kind) ?? []), t]);
  }
  for (const alternatives of byKind.values()) {
    if (!alternatives.some((t) => termMatches(t, row, userName))) return false;
  }
  return true;
}
