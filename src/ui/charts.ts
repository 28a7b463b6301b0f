/** Text charts: share bars and sparklines, as plain strings of a given width. */

const BAR_FULL = '█';
const BAR_EMPTY = '░';
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const SPARKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/** A bar `width` columns wide, filled to `part / whole` with eighth-column precision. */
export function bar(part: number, whole: number, width: number): string {
  if (width <= 0) return '';
  const ratio = whole > 0 ? Math.min(1, Math.max(0, part / whole)) : 0;
  const eighths = Math.round(ratio * width * 8);
  const full = Math.floor(eighths / 8);
  const rest = eighths % 8;
  const partial = full < width ? (EIGHTHS[rest] ?? '') : '';
  const filled = BAR_FULL.repeat(full) + partial;
  return filled + BAR_EMPTY.repeat(width - full - (partial ? 1 : 0));
}

/** One character per value, scaled to the largest value; zero is a blank. */
export function sparkline(values: readonly number[]): string {
  const max = Math.max(0, ...values);
  if (max <= 0) return ' '.repeat(values.length);
  return values
    .map((v) => {
      if (v <= 0) return ' ';
      const level = Math.ceil((v / max) * SPARKS.length); // 1..8: the smallest non-zero value still shows
      return SPARKS[Math.min(SPARKS.length, Math.max(1, level)) - 1]!;
    })
    .join('');
}
