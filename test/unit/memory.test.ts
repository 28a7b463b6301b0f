import test from 'ava';
import { QuietCollector } from '../../src/core/memory.js';

test('a full collection runs once a burst is over, not during it and not after a trickle', (t) => {
  const q = new QuietCollector({ minRecords: 100, quietMs: 1000 });
  q.record(50, 1000);
  t.false(q.check(5000), 'a trickle of 50 records is not a burst');
  q.record(60, 2000);
  q.record(40, 2099);
  t.false(q.check(2500), 'records stopped only 400 ms ago');
  t.true(q.check(3200), 'quiet for 1.1 s after 150 records');
  t.is(q.collections, 1);
  t.false(q.check(9000), 'nothing new since');
});
