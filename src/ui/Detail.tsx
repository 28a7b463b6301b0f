/**
 * Detail view of one process: what the core knows of its identity, then its connections
 * (remote address, host, provider, via, state, duration, bytes), scrollable.
 */
import React from 'react';
import { Box, Text } from 'ink';
import type { Flow, ProcessRow } from '../core/flows.js';
import type { UserName } from './filter.js';
import { flowColumns, orderFlows } from './flowColumns.js';
import { formatAge, formatBytes, formatRate } from './format.js';
import { Table } from './Table.js';

export interface DetailProps {
  row: ProcessRow;
  /** Flows of this process (any order). */
  flows: readonly Flow[];
  userName: UserName;
  at: number;
  width: number;
  height: number;
  scroll: number;
}

const flowKey = (f: Flow): string => f.id;
const isClosed = (f: Flow): boolean => f.state !== 'open';

function userLine(name: string, uid: number, gid: number): string {
  return name === String(uid) ? `uid ${uid}, gid ${gid}` : `${name} (uid ${uid}, gid ${gid})`;
}

/** One labelled line of the identity block. */
function field(name: string, children: React.ReactNode): React.JSX.Element {
  return (
    <Text key={name} wrap="truncate">
      <Text bold color="cyan">{name.padEnd(9)}</Text>
      {children}
    </Text>
  );
}

function DetailView(props: DetailProps): React.JSX.Element {
  const { row, at } = props;
  const flows = orderFlows(props.flows);
  const state = row.exitedAt === null ? 'running' : `exited ${formatAge(at - row.exitedAt)} ago`;
  const identityLines = 6;
  const tableHeight = Math.max(2, props.height - identityLines - 1);
  const scroll = Math.min(props.scroll, Math.max(0, flows.length - (tableHeight - 1)));
  const hiddenBelow = Math.max(0, flows.length - scroll - (tableHeight - 1));
  return (
    <Box flexDirection="column" width={props.width} height={props.height}>
      {field('process', <><Text bold>{row.comm}</Text>  pid {row.pid}  start {row.startTime}  {state}</>)}
      {field('user', <>{userLine(props.userName(row.uid), row.uid, row.gid)}</>)}
      {field('exe', <>{row.exe ?? 'unknown'}</>)}
      {field('cgroup', <>{row.cgroup ?? 'unknown'}</>)}
      {field('traffic', <>tx {formatBytes(row.tx)} ({formatRate(row.txRate)})  rx {formatBytes(row.rx)} ({formatRate(row.rxRate)})</>)}
      {field('conns', <>{row.open} open, {row.total} total, {row.failed} failed; providers {row.providers.join(', ') || 'none'}</>)}
      <Text> </Text>
      <Table
        columns={flowColumns(at)}
        rows={flows.slice(scroll)}
        rowKey={flowKey}
        width={props.width}
        height={tableHeight - (hiddenBelow > 0 ? 1 : 0)}
        isDim={isClosed}
        emptyText="no connections left in the table (closed flows are kept a few seconds)"
      />
      {hiddenBelow > 0 ? <Text dimColor>… {hiddenBelow} more (j/k to scroll)</Text> : null}
    </Box>
  );
}

export const Detail = React.memo(DetailView);
