/** Formatting of bytes, rates and durations, text fitting, bars, sparklines and column layout. */
import test from 'ava';
import { bar, sparkline } from '../../src/ui/charts.js';
import { layoutColumns, type Column } from '../../src/ui/columns.js';
import {
  fit, formatAge, formatBytes, formatBytesCompact, formatDuration, formatInterval, formatPercent, formatRate, truncate,
} from '../../src/ui/format.js';
import { processColumns } from '../../src/ui/processColumns.js';

test('formatBytesCompact never exceeds 4 characters', (t) => {
  const cases: [number, string][] = [
    [0, '0'], [-5, '0'], [NaN, '0'], [1, '1'], [999, '999'], [1000, '1.0K'], [1024, '1.0K'], [1536, '1.5K'],
    [10 * 1024, '10K'], [999 * 1024, '999K'], [1023 * 1024, '1.0M'], [5 * 1024 ** 2, '5.0M'],
    [123 * 1024 ** 3, '123G'], [2 * 1024 ** 4, '2.0T'],
  ];
  for (const [n, s] of cases) t.is(formatBytesCompact(n), s, String(n));
  for (let n = 1; n < 1e15; n *= 1.37) t.true(formatBytesCompact(n).length <= 4, String(n));
});

test('formatBytes and formatRate (shared with the printer) are binary units', (t) => {
  t.is(formatBytes(0), '0 B');
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(3 * 1024 ** 2), '3.0 MiB');
  t.is(formatRate(2048), '2.0 KiB/s');
  t.is(formatRate(0.4), '0 B/s');
});

test('formatDuration, formatAge and formatInterval', (t) => {
  t.is(formatDuration(0), '0s');
  t.is(formatDuration(59_999), '59s');
  t.is(formatDuration(65_000), '1m05s');
  t.is(formatDuration(3_600_000), '1h00m');
  t.is(formatDuration(26 * 3_600_000 + 60_000), '1d02h');
  t.is(formatDuration(-5), '0s');
  t.is(formatAge(3000), '3s');
  t.is(formatAge(12 * 60_000), '12m');
  t.is(formatAge(5 * 3_600_000), '5h');
  t.is(formatAge(3 * 86_400_000), '3d');
  for (let ms = 0; ms < 1e12; ms = ms * 3 + 7) t.true(formatAge(ms).length <= 5, String(ms));
  t.is(formatInterval(250), '250ms');
  t.is(formatInterval(1000), '1s');
  t.is(formatPercent(1, 3), '33%');
  t.is(formatPercent(5, 0), '0%');
});

test('truncate and fit keep exact widths', (t) => {
  t.is(truncate('python3', 10), 'python3');
  t.is(truncate('generativelanguage', 8), 'generat…');
  t.is(truncate('abc', 0), '');
  t.is(fit('ab', 5), 'ab   ');
  t.is(fit('ab', 5, 'right'), '   ab');
  t.is(fit('abcdefgh', 4, 'right'), 'abc…');
});

test('bar fills in eighths and is always `width` wide', (t) => {
  t.is(bar(0, 10, 4), '░░░░');
  t.is(bar(10, 10, 4), '████');
  t.is(bar(5, 10, 4), '██░░');
  t.is(bar(1, 16, 2), '▏░');
  t.is(bar(3, 0, 3), '░░░');
  for (let p = 0; p <= 100; p += 7) t.is([...bar(p, 100, 9)].length, 9);
});

test('sparkline scales to its maximum; zero is blank', (t) => {
  t.is(sparkline([0, 1, 2, 4, 8]), ' ▁▂▄█');
  t.is(sparkline([0, 0]), '  ');
  t.is(sparkline([]), '');
});

test('layoutColumns shares spare width among flexible columns and drops low priority ones', (t) => {
  const cols: Column<string>[] = [
    { id: 'a', title: 'A', width: 5, priority: 9, cell: (r) => r },
    { id: 'b', title: 'B', minWidth: 4, flex: 1, priority: 8, cell: (r) => r },
    { id: 'c', title: 'C', width: 10, priority: 1, cell: (r) => r },
  ];
  t.deepEqual(layoutColumns(cols, 30).map((p) => [p.column.id, p.width]), [['a', 5], ['b', 13], ['c', 10]]);
  t.deepEqual(layoutColumns(cols, 12).map((p) => [p.column.id, p.width]), [['a', 5], ['b', 6]]);
});

test('every process table column fits in 80 columns', (t) => {
  const cols = processColumns({ now: 0, userName: String });
  const placed = layoutColumns(cols, 80);
  t.is(placed.length, cols.length);
  t.true(placed.reduce((s, p) => s + p.width, 0) + placed.length - 1 <= 80);
  t.true(layoutColumns(cols, 60).length < cols.length, 'narrower terminals drop columns');
});
