import test from 'ava';
import { RateWindow } from '../../src/core/rates.js';

test('rate is the bytes inside the window over the window length', (t) => {
  const w = new RateWindow(3000);
  w.add(10_000, 3000);
  w.add(11_000, 3000);
  w.add(12_000, 3000);
  t.is(w.rate(12_000, 0), 3000); // 9000 B over 3 s
});

test('samples older than the window are forgotten', (t) => {
  const w = new RateWindow(3000);
  w.add(1000, 9000);
  w.add(4500, 300);
  t.is(w.rate(4500, 0), 100); // only the 300 B sample remains
  t.is(w.rate(8000, 0), 0);
});

test('a young flow is measured over the time it has existed, at least one second', (t) => {
  const w = new RateWindow(3000);
  w.add(10_500, 1000);
  t.is(w.rate(11_000, 10_000), 1000); // 1 s old: not diluted over 3 s
  t.is(w.rate(10_600, 10_500), 1000); // younger than 1 s counts as 1 s
});

test('zero and negative deltas are ignored', (t) => {
  const w = new RateWindow(3000);
  w.add(1000, 0);
  w.add(1000, -5);
  t.is(w.rate(1000, 0), 0);
});
