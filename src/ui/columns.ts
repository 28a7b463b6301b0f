/**
 * Column definitions for the generic Table and how they share the terminal width.
 * Pure, so layout is tested without rendering.
 */

export interface Column<T> {
  id: string;
  title: string;
  /** Fixed width; a column without one is flexible and takes a share of what is left. */
  width?: number;
  /** Smallest width of a flexible column. */
  minWidth?: number;
  /** Weight of a flexible column when sharing leftover width. */
  flex?: number;
  align?: 'left' | 'right';
  /** When the terminal is too narrow, columns with the lowest priority are dropped first. */
  priority?: number;
  cell: (row: T) => string;
}

export interface PlacedColumn<T> {
  column: Column<T>;
  width: number;
}

export const COLUMN_GAP = 1;

const baseWidth = <T>(c: Column<T>): number => c.width ?? c.minWidth ?? c.title.length;

/** Widths for the columns that fit in `total` columns, in their original order. */
export function layoutColumns<T>(columns: readonly Column<T>[], total: number): PlacedColumn<T>[] {
  let kept = [...columns];
  const need = (cols: Column<T>[]): number =>
    cols.reduce((sum, c) => sum + baseWidth(c), 0) + COLUMN_GAP * Math.max(0, cols.length - 1);
  while (kept.length > 1 && need(kept) > total) {
    const lowest = kept.reduce((lo, c) => ((c.priority ?? 0) < (lo.priority ?? 0) ? c : lo));
    kept = kept.filter((c) => c !== lowest);
  }
  const spare = Math.max(0, total - need(kept));
  const flexible = kept.filter((c) => c.width === undefined);
  const weight = flexible.reduce((sum, c) => sum + (c.flex ?? 1), 0);
  let given = 0;
  return kept.map((column) => {
    if (column.width !== undefined) return { column, width: column.width };
    const isLast = column === flexible[flexible.length - 1];
    const share = isLast ? spare - given : Math.floor((spare * (column.flex ?? 1)) / weight);
    given += share;
    return { column, width: baseWidth(column) + share };
  });
}
