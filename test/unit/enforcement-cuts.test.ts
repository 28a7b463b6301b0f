/**
 * Enforcement's cut flows (--enforce): a reload's rule cuts and busted-top's verdicts on the same
 * process, through a stand-in for the kernel's cut_socks map (which cookies are cut now).
 */
import test from 'ava';
import { Action, Kind, type PolicyDecision } from '../../src/bpf/abi.js';
import type { Enforcer } from '../../src/bpf/enforcer.js';
import { loadCatalog } from '../../src/core/catalog.js';
import { Enforcement } from '../../src/core/enforcement.js';
import type { EventRecord, PolicyRecord } from '../../src/core/records.js';

function setup(open: bigint[] = []) {
  const cutNow = new Set<bigint>();
  let bank = 0; // as the kernel's: each policy goes to the idle bank, which becomes live
  const enforcer = {
    setPolicy: () => (bank ^= 1), setToggle: () => {}, setHashedExe: () => {},
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

test('a decision names its rule from the policy it was made by, though a reload came before it was read', (t) => {
  const { e } = setup();
  e.applyPolicy(['old-first', 'old-second'], { rules: [], defaultAction: Action.ALLOW });
  const decision = (bank: number, rule: number): PolicyDecision => ({
    kind: Kind.POLICY, family: 2, proto: 6, tsNs: 0n, tgid: 42, tid: 42, uid: 0, gid: 0, startNs: 0n, cgroupId: 1n,
    daddr: new Uint8Array([127, 0, 0, 1, ...new Array<number>(12).fill(0)]), dport: 443, action: Action.AUDIT, denied: false,
    rule, bank, provider: 0, comm: 'curl',
  });
  const oldBank = 0; // the constructor's empty policy took bank 1, this one bank 0
  t.is(e.decision(decision(oldBank, 1)).rule, 'old-second');
  e.applyPolicy(['new-first'], { rules: [], defaultAction: Action.ALLOW });
  t.is(e.decision(decision(oldBank, 1)).rule, 'old-second', 'made before the reload, read after it');
  t.is(e.decision(decision(oldBank ^ 1, 0)).rule, 'new-first');
  t.is(e.decision(decision(oldBank ^ 1, 1)).rule, '#1', 'an index the policy of its bank does not have');
});
