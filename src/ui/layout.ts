/** How the screen's lines are shared between header, table, breakdown and status line. */

export const HEADER_LINES = 2;
export const STATUS_LINES = 1;

export interface Layout {
  /** Lines for the table, or for the detail / help screen that replaces table and breakdown. */
  main: number;
  table: number;
  /** Lines for the provider breakdown (0 when the screen is too short). */
  breakdown: number;
  /** A blank line between table and breakdown. */
  gap: number;
}

/** `providers` is how many provider lines the breakdown would like to show. */
export function layoutScreen(rows: number, providers: number): Layout {
  const main = Math.max(1, rows - HEADER_LINES - STATUS_LINES);
  if (main < 10) return { main, table: main, breakdown: 0, gap: 0 };
  const wanted = Math.max(2, providers + 1);
  const breakdown = Math.min(wanted, Math.floor(main * 0.35));
  return { main, table: main - breakdown - 1, breakdown, gap: 1 };
}
