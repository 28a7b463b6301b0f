/** Columns of the connection list in the detail view. */
import type { Flow } from '../core/flows.js';
import type { Column } from './columns.js';
import { formatAge, formatBytesCompact } from './format.js';

/** Short names for connect errors, so they fit the STATE column. */
const ERROR_LABELS: Record<string, string> = {
  ECONNREFUSED: 'refused',
  ETIMEDOUT: 'timeout',
  EHOSTUNREACH: 'unreach',
  ENETUNREACH: 'unreach',
  ECONNRESET: 'reset',
  EPERM: 'denied',
  EACCES: 'denied',
};

export function flowState(f: Flow): string {
  if (f.state !== 'failed') return f.state;
  if (!f.error) return 'failed';
  return ERROR_LABELS[f.error] ?? f.error.replace(/^E/, '').toLowerCase();
}

export function flowDuration(f: Flow, now: number): number {
  return (f.closedAt ?? now) - f.openedAt;
}

/** Open flows first, then the most recent. */
export function orderFlows(flows: readonly Flow[]): Flow[] {
  const rank = (f: Flow): number => (f.state === 'open' ? 0 : 1);
  return [...flows].sort((a, b) => rank(a) - rank(b) || b.openedAt - a.openedAt || a.id.localeCompare(b.id));
}

export function flowColumns(now: number): Column<Flow>[] {
  return [
    { id: 'dst', title: 'REMOTE', minWidth: 15, flex: 1, priority: 10, cell: (f) => `${f.proto === 'udp' ? 'udp ' : ''}${f.dst}` },
    { id: 'host', title: 'HOST', minWidth: 12, flex: 1, priority: 9, cell: (f) => f.host ?? '-' },
    { id: 'provider', title: 'PROVIDER', width: 10, priority: 8, cell: (f) => f.provider ?? 'unclassified' },
    { id: 'via', title: 'VIA', width: 5, priority: 4, cell: (f) => f.via ?? '-' },
    { id: 'state', title: 'STATE', width: 7, priority: 7, cell: flowState },
    { id: 'age', title: 'DUR', width: 4, align: 'right', priority: 5, cell: (f) => formatAge(flowDuration(f, now)) },
    { id: 'tx', title: 'TX', width: 5, align: 'right', priority: 6, cell: (f) => formatBytesCompact(f.tx) },
    { id: 'rx', title: 'RX', width: 5, align: 'right', priority: 6, cell: (f) => formatBytesCompact(f.rx) },
  ];
}
