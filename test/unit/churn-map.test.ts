import test from 'ava';
import { ChurnMap } from '../../src/core/churn-map.js';

test('a ChurnMap behaves as a Map of its own entries: size, order, first, iteration, clear', (t) => {
  const m = new ChurnMap<string, number>();
  t.is(m.size, 0);
  t.is(m.first(), undefined);
  t.deepEqual([...m], []);
  for (let i = 0; i < 5; i++) m.set(`k${i}`, i);
  m.set('k1', 10); // an update keeps its place
  t.is(m.size, 5);
  t.is(m.get('k1'), 10);
  t.true(m.has('k4'));
  t.false(m.has('k5'));
  t.is(m.first(), 'k0');
  t.deepEqual([...m.keys()], ['k0', 'k1', 'k2', 'k3', 'k4']);
  t.deepEqual([...m.values()], [0, 10, 2, 3, 4]);
  t.deepEqual([...m.entries()][1], ['k1', 10]);
  t.true(m.delete('k0'));
  t.false(m.delete('k0'));
  t.is(m.first(), 'k1');
  // deleting while iterating, as the classification stage releases held flows
  const seen: number[] = [];
  for (const v of m.values()) {
    seen.push(v);
    if (v === 10) m.delete('k2');
  }
  t.deepEqual(seen, [10, 3, 4]);
  t.is(m.size, 3);
  m.clear();
  t.is(m.size, 0);
  t.deepEqual([...m], []);
  m.set('again', 1);
  t.deepEqual([...m], [['again', 1]]);
});

test('a ChurnMap keeps working through a long churn of few keys', (t) => {
  const m = new ChurnMap<bigint, number>();
  let missing = 0;
  for (let i = 0; i < 100_000; i++) {
    m.set(BigInt(i), i);
    if (i >= 4 && !m.delete(BigInt(i - 4))) missing++;
  }
  t.is(missing, 0);
  t.is(m.size, 4);
  t.deepEqual([...m.keys()], [99_996n, 99_997n, 99_998n, 99_999n]);
});

test('a churn of 100k inserts and deletes (the Map is renewed along the way) keeps the same entries, in the same order, as a Map', (t) => {
  const c = new ChurnMap<string, number>();
  const m = new Map<string, number>();
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 100_000; i++) {
    const k = String(Math.floor(rnd() * 300));
    if (rnd() < 0.55) {
      c.set(k, i);
      m.set(k, i);
    } else {
      t.is(c.delete(k), m.delete(k));
    }
    if (i % 9973 === 0) t.deepEqual([...c.entries()], [...m.entries()]);
  }
  t.deepEqual([...c.entries()], [...m.entries()]);
  t.is(c.size, m.size);
  t.is(c.first(), m.keys().next().value);
});
