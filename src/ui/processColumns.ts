/** The process table's columns (issue 3): what each shows, how wide, what goes first when narrow. */
import type { ProcessRow } from '../core/flows.js';
import type { Column } from './columns.js';
import type { UserName } from './filter.js';
import { formatAge, formatBytesCompact } from './format.js';
import { processName, userOf } from './identity.js';
import type { SortColumn } from './rows.js';

export interface ProcessColumnContext {
  /** Time of the snapshot, for LAST. */
  now: number;
  userName: UserName;
}

/** BLOCK/AUDIT for a verdict set here; else the latest decision of a policy rule (DENIED/WOULD); else -. */
export function policyCell(r: ProcessRow): string {
  if (r.verdict === 'block') return 'BLOCK';
  if (r.verdict === 'audit') return 'AUDIT';
  if (r.lastPolicy) return r.lastPolicy.result === 'denied' ? 'DENIED' : 'WOULD';
  return '-';
}

export type ProcessColumn = Column<ProcessRow> & { id: SortColumn | 'policy' };

/**
 * Column widths fit 80 columns with every column shown (PROCESS and PROVIDERS share the rest);
 * at 80 PROCESS is 11 wide, enough for an agent label such as `Claude Code`.
 */
export function processColumns(ctx: ProcessColumnContext): ProcessColumn[] {
  return [
    { id: 'pid', title: 'PID', width: 7, align: 'right', priority: 10, cell: (r) => String(r.pid) },
    { id: 'user', title: 'USER', width: 7, priority: 5, cell: (r) => userOf(r, ctx.userName) },
    { id: 'process', title: 'PROCESS', minWidth: 11, flex: 1, priority: 10, cell: processName },
    { id: 'providers', title: 'PROVIDERS', minWidth: 9, flex: 1, priority: 9, cell: (r) => r.providers.join(',') || '-' },
    { id: 'conns', title: 'CONNS', width: 5, align: 'right', priority: 6, cell: (r) => `${r.open}/${r.total}` },
    { id: 'txRate', title: 'TX/s', width: 5, align: 'right', priority: 8, cell: (r) => formatBytesCompact(r.txRate) },
    { id: 'rxRate', title: 'RX/s', width: 5, align: 'right', priority: 8, cell: (r) => formatBytesCompact(r.rxRate) },
    { id: 'tx', title: 'TX', width: 5, align: 'right', priority: 7, cell: (r) => formatBytesCompact(r.tx) },
    { id: 'rx', title: 'RX', width: 5, align: 'right', priority: 7, cell: (r) => formatBytesCompact(r.rx) },
    { id: 'last', title: 'LAST', width: 4, align: 'right', priority: 4, cell: (r) => formatAge(ctx.now - r.lastActivity) },
    { id: 'policy', title: 'POLICY', width: 6, priority: 3, cell: policyCell },
  ];
}
