/**
 * Enforcement's cut flows (--enforce): a reload's rule cuts and busted-top's verdicts on the same
 * process, through a stand-in for the kernel's cut_socks map (which cookies are cut now).
 */
import test from 'ava';
import type { Enforcer } from '../../src/bpf/enforcer.js';
import { loadCatalog } from '../../src/core/catalog.js';
import { Enforcement } from '../../src/core/enforcement.js';
import type { EventRecord, PolicyRecord } from '../../src/core/records.js';

function setup(open: bigint[] = []) {
  const cutNow = new Set<bigint>();
  const enforcer = {
    setPolicy: () => {}, setToggle: () => {}, setHashedExe: () => {},
    setCut: (c: bigint, on: boolean) => (on ? cutNow.add(c) : cutNow.delete(c)),
    addDestination: () => {}, removeDestination: () => {},
  } as unknown as Enforcer;
  const records: EventRecord[] = [];
  const e = new Enforcement({ enforcer, catalog: loadCatalog(), publish: (r) => records.push(r), iso: () => '', enforce: true, openLlmFlows: () => open });
  const cuts = () => [...cutNow].sort();
  const policies = () => records.filter((r): r is PolicyRecord => r.type === 'policy');
  return { e, cuts, policies };
}

test('clearing a verdict puts the rules\' cuts back; allow and audit lift them while they last', (t) => {
  const { e, cuts } = setup([1n, 2n, 3n]);
  e.cutForRule(42, 100, [1n, 2n], 'no-llm');
  t.deepEqual(cuts(), [1n, 2n]);
  e.setToggle(42, 100, 'block');
  t.deepEqual(cuts(), [1n, 2n, 3n], 'busted-top blocks every open LLM flow');
  e.setToggle(42, 100, null);
  t.deepEqual(cuts(), [1n, 2n], 'cleared: the policy still blocks the two it blocked');
  e.setToggle(42, 100, 'allow');
  t.deepEqual(cuts(), [], 'allowed from busted-top: the verdict overrides the rules');
  e.setToggle(42, 100, 'audit');
  t.deepEqual(cuts(), []);
  e.setToggle(42, 100, null);
  t.deepEqual(cuts(), [1n, 2n]);
});

test('a reload judges again: cuts the policy no longer wants are lifted, new ones made and reported once', (t) => {
  const { e, cuts, policies } = setup();
  e.cutForRule(42, 100, [1n, 2n], 'old-rule', '', true);
  t.deepEqual(cuts(), [1n, 2n]);
  t.like(policies().at(-1), { rule: 'old-rule', cut: 2 });
  e.cutForRule(42, 100, [2n, 3n], 'new-rule', '', true);
  t.deepEqual(cuts(), [2n, 3n]);
  t.like(policies().at(-1), { rule: 'new-rule', cut: 1 }, 'only the newly cut flow is news');
  e.cutForRule(42, 100, [], '', '', true);
  t.deepEqual(cuts(), [], 'a permissive reload lets the flows through again');
  t.is(policies().length, 2);
  // a flow announced after the reload adds to the list (no replace)
  e.cutForRule(42, 100, [4n], 'new-rule');
  e.cutForRule(42, 100, [5n], 'new-rule');
  t.deepEqual(cuts(), [4n, 5n]);
});

test('under a verdict a reload only takes note: the verdict decides until it is cleared', (t) => {
  const { e, cuts, policies } = setup([7n]);
  e.setToggle(42, 100, 'allow');
  e.cutForRule(42, 100, [7n], 'rule', '', true);
  t.deepEqual(cuts(), [], 'allowed from busted-top');
  t.is(policies().length, 0, 'nothing was cut, nothing reported');
  e.setToggle(42, 100, null);
  t.deepEqual(cuts(), [7n]);
});

test('closed flows and gone processes leave nothing cut and no lists behind', (t) => {
  const { e, cuts } = setup([1n]);
  e.cutForRule(42, 100, [1n, 2n], 'rule');
  e.closed('42:100', 1n);
  t.deepEqual(cuts(), [2n]);
  e.closed('42:100', 2);
  t.deepEqual(cuts(), []);
  e.setToggle(42, 100, null);
  t.deepEqual(cuts(), [], 'no closed flow is cut again');
  e.cutForRule(43, 5, [9n], 'rule');
  e.forget('43:5');
  t.deepEqual(cuts(), []);
  e.setToggle(43, 5, null);
  t.deepEqual(cuts(), []);
});
