/** IdleSweep: when the kernel's idle-connection iterator runs, and Enforcement.lateFlow: what it cuts. */
import test from 'ava';
import { IdleSweep } from '../../src/core/idle.js';
import { Enforcement } from '../../src/core/enforcement.js';
import type { Enforcer } from '../../src/bpf/enforcer.js';
import { loadCatalog } from '../../src/core/catalog.js';
import type { EventRecord } from '../../src/core/records.js';

test('a socket unannounced for a second asks for one run; one seen once (between connect and first byte) never does', (t) => {
  const s = new IdleSweep(1000);
  t.is(s.due([1n, 2n], 0), null);
  t.is(s.due([1n], 500), null, 'half a second: not yet');
  t.is(s.due([3n], 1200), null, 'cookie 1 announced meanwhile; 3 is new');
  t.is(s.due([3n, 4n], 1900), null, 'cookie 3 is 0.7 s old');
  t.deepEqual(s.due([3n, 4n], 2000), [0], 'cookie 3 is 0.8 s old: a scan a second after the last, a little early; 4 has not asked');
  t.is(s.watched, 2);
});

test('runs are at least a second apart, and a socket the iterator cannot announce asks again after twice its age', (t) => {
  const s = new IdleSweep(1000);
  t.is(s.due([7n], 0), null);
  t.truthy(s.due([7n], 1000));
  t.is(s.due([7n], 1500), null, 'not within a second of the last run');
  t.is(s.due([7n], 1700), null, 'next ask at 2 s of age');
  t.truthy(s.due([7n], 1850));
  t.is(s.due([7n], 3000), null);
  t.truthy(s.due([7n], 3700), 'then at about 4 s');
  t.is(s.due([7n], 7000), null);
  t.truthy(s.due([7n], 7500), 'then at about 8 s');
  t.is(s.due([], 20_000), null);
  t.is(s.watched, 0, 'forgotten once announced or closed');
});

test('a new socket that turns idle while an old one waits for its next ask still gets its run after a second', (t) => {
  const s = new IdleSweep(1000);
  t.is(s.due([7n], 0), null);
  t.truthy(s.due([7n], 1000));
  t.is(s.due([7n, 8n], 1100), null);
  t.deepEqual(s.due([7n, 8n], 2100), [0, 1], 'cookie 8 is a second old, and 7 asks again at 2 s');
});

function fakeEnforcer() {
  const cuts: [bigint, boolean][] = [];
  const enforcer = {
    setPolicy: () => {}, setToggle: () => {}, setHashedExe: () => {},
    setCut: (c: bigint, on: boolean) => cuts.push([c, on]),
    addDestination: () => {}, removeDestination: () => {},
  } as unknown as Enforcer;
  return { enforcer, cuts };
}

test('lateFlow cuts a flow announced after its process was blocked (--enforce), once, and reports it', (t) => {
  const { enforcer, cuts } = fakeEnforcer();
  const records: EventRecord[] = [];
  const e = new Enforcement({ enforcer, catalog: loadCatalog(), publish: (r) => records.push(r), iso: () => '', enforce: true, openLlmFlows: () => [] });
  e.lateFlow('42:100', 5n);
  t.deepEqual(cuts, [], 'not blocked: nothing cut');
  e.setToggle(42, 100, 'block');
  e.lateFlow('42:100', 5n);
  e.lateFlow('42:100', 5n);
  e.lateFlow('43:100', 6n);
  t.deepEqual(cuts, [[5n, true]]);
  t.like(records.at(-1), { type: 'policy', pid: 42, startTime: 100, rule: 'busted-top', cut: 1 });
  e.setToggle(42, 100, null);
  t.deepEqual(cuts, [[5n, true], [5n, false]], 'clearing the verdict lets it through again');
});

test('lateFlow cuts nothing without --enforce, or for an audit verdict', (t) => {
  for (const [enforce, action] of [[false, 'block'], [true, 'audit']] as const) {
    const { enforcer, cuts } = fakeEnforcer();
    const e = new Enforcement({ enforcer, catalog: loadCatalog(), publish: () => {}, iso: () => '', enforce, openLlmFlows: () => [] });
    e.setToggle(42, 100, action);
    e.lateFlow('42:100', 5n);
    t.deepEqual(cuts, []);
  }
});
