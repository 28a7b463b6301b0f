/** The process table: one row per process identity, sorted, with the selection highlighted. */
import React from 'react';
import type { ProcessRow } from '../core/flows.js';
import type { UserName } from './filter.js';
import { processColumns } from './processColumns.js';
import type { SortOrder } from './rows.js';
import { Table } from './Table.js';

export interface ProcessTableProps {
  rows: readonly ProcessRow[];
  now: number;
  userName: UserName;
  sort: SortOrder;
  selectedKey: string | null;
  width: number;
  height: number;
  /** Shown instead of rows when there are none. */
  emptyText: string;
}

const rowKey = (r: ProcessRow): string => r.key;
const isDim = (r: ProcessRow): boolean => r.exitedAt !== null;

function ProcessTableView(props: ProcessTableProps): React.JSX.Element {
  const columns = processColumns({ now: props.now, userName: props.userName });
  return (
    <Table
      columns={columns}
      rows={props.rows}
      rowKey={rowKey}
      width={props.width}
      height={props.height}
      selectedKey={props.selectedKey}
      sortColumn={props.sort.column}
      sortDescending={props.sort.descending}
      isDim={isDim}
      emptyText={props.emptyText}
    />
  );
}

export const ProcessTable = React.memo(ProcessTableView);
