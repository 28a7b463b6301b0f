/**
 * Detail view of one process: what the core knows of its identity (only what is known), then
 * its connections (remote address, host, provider, via, state, duration, bytes), scrollable.
 */
import React from 'react';
import { Box, Text } from 'ink';
import type { Flow, ProcessRow } from '../core/flows.js';
import type { UserName } from './filter.js';
import { flowColumns, orderFlows } from './flowColumns.js';
import { formatAge, formatBytes, formatRate } from './format.js';
import { containerText, parentChain, podText, shortSha, userAndGroup } from './identity.js';
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

/** One labelled line of the identity block; when lines are short, the lowest priority goes first. */
interface Field {
  name: string;
  priority: number;
  value: React.ReactNode;
}

const LABEL_WIDTH = 10;

function identityFields(row: ProcessRow, userName: UserName, at: number): Field[] {
  const state = row.exitedAt === null ? 'running' : `exited ${formatAge(at - row.exitedAt)} ago`;
  const fields: (Field | null)[] = [
    { name: 'process', priority: 10, value: <><Text bold>{row.comm}</Text>  pid {row.pid}  start {row.startTime}  {state}</> },
    row.agent ? { name: 'agent', priority: 9, value: <><Text bold>{row.agent.label}</Text> ({row.agent.id})</> } : null,
    { name: 'user', priority: 8, value: userAndGroup(row, userName) },
    row.exe ? { name: 'exe', priority: 8, value: <>{row.exe}{row.exeReplaced ? <Text color="red"> (replaced on disk)</Text> : null}</> } : null,
    row.sha256 ? { name: 'sha256', priority: 5, value: shortSha(row.sha256) } : null,
    row.cmdline ? { name: 'cmdline', priority: 6, value: row.cmdline } : null,
    row.parents.length > 0 ? { name: 'parents', priority: 4, value: parentChain(row.parents) }
      : row.ppid !== null ? { name: 'parents', priority: 4, value: `ppid ${row.ppid}` } : null,
    row.cgroup ? { name: 'cgroup', priority: 3, value: row.cgroup } : null,
    row.container ? { name: 'container', priority: 5, value: containerText(row.container) } : null,
    row.pod ? { name: 'pod', priority: 4, value: podText(row.pod) } : null,
    { name: 'traffic', priority: 7, value: <>tx {formatBytes(row.tx)} ({formatRate(row.txRate)})  rx {formatBytes(row.rx)} ({formatRate(row.rxRate)})</> },
    { name: 'conns', priority: 7, value: <>{row.open} open, {row.total} total, {row.failed} failed; providers {row.providers.join(', ') || 'none'}</> },
  ];
  return fields.filter((f): f is Field => f !== null);
}

/** At most `max` fields, dropping the lowest priority (the last of equals) first, in their order. */
function fitFields(fields: Field[], max: number): Field[] {
  const kept = [...fields];
  while (kept.length > max) {
    let lowest = kept.length - 1;
    for (let i = kept.length - 1; i >= 0; i--) if (kept[i]!.priority < kept[lowest]!.priority) lowest = i;
    kept.splice(lowest, 1);
  }
  return kept;
}

/** Rows of the connections table (its header included) under `fieldCount` identity lines. */
const flowTableHeight = (height: number, fieldCount: number): number => Math.max(2, height - fieldCount - 1);
/** Identity lines that fit: a blank line, the table's header and one connection stay on screen. */
const fieldRoom = (height: number): number => Math.max(1, height - 3);

/** The farthest `flowCount` connections scroll in a table of `tableHeight` rows: the last one at the bottom. */
const lastScroll = (flowCount: number, tableHeight: number): number => Math.max(0, flowCount - (tableHeight - 1));

/** The farthest the connections can scroll: the keys stop there. */
export function detailScrollMax(row: ProcessRow, flowCount: number, userName: UserName, height: number): number {
  const fieldCount = Math.min(identityFields(row, userName, 0).length, fieldRoom(height));
  return lastScroll(flowCount, flowTableHeight(height, fieldCount));
}

function DetailView(props: DetailProps): React.JSX.Element {
  const { row, at } = props;
  const flows = orderFlows(props.flows);
  const fields = fitFields(identityFields(row, props.userName, at), fieldRoom(props.height));
  const tableHeight = flowTableHeight(props.height, fields.length);
  const scroll = Math.min(props.scroll, lastScroll(flows.length, tableHeight));
  const hiddenBelow = Math.max(0, flows.length - scroll - (tableHeight - 1));
  return (
    <Box flexDirection="column" width={props.width} height={props.height}>
      {fields.map((f) => (
        <Text key={f.name} wrap="truncate">
          <Text bold color="cyan">{f.name.padEnd(LABEL_WIDTH)}</Text>
          {f.value}
        </Text>
      ))}
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
