/**
 * A generic table driven by column definitions: one line per row, a highlighted selection that
 * stays visible while scrolling, dimmed rows, and a sort marker in the header.
 */
import React, { useRef } from 'react';
import { Box, Text } from 'ink';
import { fit } from './format.js';
import { COLUMN_GAP, layoutColumns, type Column, type PlacedColumn } from './columns.js';

export interface TableProps<T> {
  columns: readonly Column<T>[];
  rows: readonly T[];
  rowKey: (row: T) => string;
  width: number;
  /** Lines available, header included. */
  height: number;
  selectedKey?: string | null;
  sortColumn?: string;
  sortDescending?: boolean;
  isDim?: (row: T) => boolean;
  emptyText?: string;
}

const GAP = ' '.repeat(COLUMN_GAP);

function line<T>(placed: readonly PlacedColumn<T>[], text: (p: PlacedColumn<T>) => string): string {
  return placed.map((p) => fit(text(p), p.width, p.column.align ?? 'left')).join(GAP);
}

/** First visible row: moves only as far as needed to keep the selection in view. */
function scrollOffset(previous: number, selected: number, visible: number, count: number): number {
  if (visible <= 0) return 0;
  let top = Math.min(previous, Math.max(0, count - visible));
  if (selected >= 0 && selected < top) top = selected;
  if (selected >= top + visible) top = selected - visible + 1;
  return Math.max(0, top);
}

export function Table<T>(props: TableProps<T>): React.JSX.Element {
  const { columns, rows, rowKey, width, height, selectedKey, sortColumn, sortDescending, isDim } = props;
  const placed = layoutColumns(columns, width);
  const visible = Math.max(0, height - 1);
  const selected = selectedKey == null ? -1 : rows.findIndex((r) => rowKey(r) === selectedKey);
  const offsetRef = useRef(0);
  const top = scrollOffset(offsetRef.current, selected, visible, rows.length);
  offsetRef.current = top;
  const header = line(placed, (p) => {
    const marker = p.column.id === sortColumn ? (sortDescending ? '▼' : '▲') : '';
    return p.column.align === 'right' ? `${marker}${p.column.title}` : `${p.column.title}${marker}`;
  });
  const shown = rows.slice(top, top + visible);
  return (
    <Box flexDirection="column" width={width} height={height}>
      <Text bold color="cyan" wrap="truncate">{header}</Text>
      {rows.length === 0 && props.emptyText ? <Text dimColor wrap="truncate">{props.emptyText}</Text> : null}
      {shown.map((row) => {
        const key = rowKey(row);
        const text = line(placed, (p) => p.column.cell(row));
        return (
          <Text key={key} inverse={key === selectedKey} dimColor={isDim?.(row) ?? false} wrap="truncate">
            {text}
          </Text>
        );
      })}
    </Box>
  );
}
