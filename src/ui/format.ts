/**
 * Number and text formatting for the terminal UI. Pure functions: every width-sensitive
 * caller gets a string it can pad, never one longer than the documented maximum.
 */

// Prose forms (`1.2 KiB`, `3.4 MiB/s`) are shared with the text printer.
export { formatBytes, formatRate } from '../sinks/format.js';

const UNITS = ['K', 'M', 'G', 'T', 'P'] as const;

/** Bytes in at most 4 characters: `0`, `999`, `1.2K`, `123K`, `1.0M`, … (powers of 1024). */
export function formatBytesCompact(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes <= 0) return '0';
  if (bytes < 1000) return String(Math.round(bytes));
  let value = bytes;
  for (const unit of UNITS) {
    value /= 1024;
    if (value < 9.95) return `${value.toFixed(1)}${unit}`;
    if (value < 999.5) return `${Math.round(value)}${unit}`;
  }
  return '>1E';
}

/** A duration for prose: `0s`, `59s`, `1m05s`, `1h00m`, `2d03h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  const d = Math.floor(h / 24);
  return `${d}d${String(h % 24).padStart(2, '0')}h`;
}

/** Time since something, in at most 4 characters: `0s`, `59s`, `12m`, `3h`, `41d`. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h`;
  const d = Math.floor(h / 24);
  return d < 1000 ? `${d}d` : '>999d';
}

/** A share as a percentage of at most 4 characters: `0%`, `7%`, `100%`. */
export function formatPercent(part: number, whole: number): string {
  if (whole <= 0 || part <= 0) return '0%';
  return `${Math.round((part / whole) * 100)}%`;
}

/** Cuts `text` to `width` columns, marking the cut with `…`. */
export function truncate(text: string, width: number): string {
  if (width <= 0) return '';
  if (text.length <= width) return text;
  if (width === 1) return '…';
  return `${text.slice(0, width - 1)}…`;
}

/** Truncates, then pads to exactly `width` columns. */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  const cut = truncate(text, width);
  return align === 'left' ? cut.padEnd(width) : cut.padStart(width);
}

/** A refresh interval: `500ms`, `1s`, `2m00s`. */
export function formatInterval(ms: number): string {
  return ms < 1000 ? `${Math.max(0, Math.round(ms))}ms` : formatDuration(ms);
}
