/**
 * Which process rows the table shows, in which order: the snapshot's rows plus tombstones,
 * narrowed to LLM traffic unless "all" is on, then by the filter, then sorted.
 */
import type { ProcessRow } from '../core/flows.js';
import { matchesFilter, type Filter, type UserName } from './filter.js';
import { processName, userOf } from './identity.js';

export type SortColumn =
  | 'pid' | 'user' | 'process' | 'providers' | 'conns' | 'txRate' | 'rxRate' | 'tx' | 'rx' | 'last';

/** Sortable columns in the order the table shows them (and `s` / `<` cycle through). */
export const SORT_COLUMNS: readonly SortColumn[] = [
  'pid', 'user', 'process', 'providers', 'conns', 'txRate', 'rxRate', 'tx', 'rx', 'last',
];

export interface SortOrder {
  column: SortColumn;
  descending: boolean;
}

export const DEFAULT_SORT: SortOrder = { column: 'rxRate', descending: true };

type Compare = (a: ProcessRow, b: ProcessRow, userName: UserName) => number;

const num = (f: (r: ProcessRow) => number): Compare => (a, b) => f(a) - f(b);
const text = (f: (r: ProcessRow, u: UserName) => string): Compare => (a, b, u) => f(a, u).localeCompare(f(b, u));

const COMPARE: Record<SortColumn, Compare> = {
  pid: num((r) => r.pid),
  // by what the table shows: the recorded user name, the agent label
  user: text(userOf),
  process: text(processName),
  providers: text((r) => r.providers.join(',')),
  conns: (a, b) => a.open - b.open || a.total - b.total,
  txRate: num((r) => r.txRate),
  rxRate: num((r) => r.rxRate),
  tx: num((r) => r.tx),
  rx: num((r) => r.rx),
  // "Most recent first" is the natural descending order of LAST.
  last: num((r) => r.lastActivity),
};

export function sortRows(rows: ProcessRow[], order: SortOrder, userName: UserName): ProcessRow[] {
  const cmp = COMPARE[order.column];
  const sign = order.descending ? -1 : 1;
  // Ties keep a stable order (pid, then identity) so rows do not jump between frames.
  return rows.sort((a, b) => sign * cmp(a, b, userName) || a.pid - b.pid || a.key.localeCompare(b.key));
}

/** LLM traffic only: rows that have at least one flow with a known provider. */
export const isLlmRow = (row: ProcessRow): boolean => row.providers.length > 0;

export interface RowQuery {
  processes: readonly ProcessRow[];
  tombstones: ReadonlyMap<string, { row: ProcessRow }>;
  showAll: boolean;
  filter: Filter;
  sort: SortOrder;
  userName: UserName;
}

let cacheKey: unknown[] = [];
let cacheValue: ProcessRow[] = [];

/** The rows to show, sorted. Memoized on the identity of every input (one entry). */
export function visibleRows(q: RowQuery): ProcessRow[] {
  const key = [q.processes, q.tombstones, q.showAll, q.filter, q.sort, q.userName];
  if (key.length === cacheKey.length && key.every((k, i) => k === cacheKey[i])) return cacheValue;
  const rows: ProcessRow[] = [];
  for (const r of q.processes) if (keep(r, q)) rows.push(r);
  for (const { row } of q.tombstones.values()) if (keep(row, q)) rows.push(row);
  cacheKey = key;
  cacheValue = sortRows(rows, q.sort, q.userName);
  return cacheValue;
}

function keep(row: ProcessRow, q: RowQuery): boolean {
  return (q.showAll || isLlmRow(row)) && matchesFilter(row, q.filter, q.userName);
}
