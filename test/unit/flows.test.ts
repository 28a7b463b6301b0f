import test from 'ava';
import { FlowTable, processKey } from '../../src/core/flows.js';
import type { ConnectRecord } from '../../src/core/records.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();

function connect(flow: string, over: Partial<ConnectRecord> = {}): ConnectRecord {
  return {
    type: 'connect', ts: iso(0), flow, pid: 100, tid: 100, comm: 'python3', uid: 1000, gid: 1000, exe: '/usr/bin/python3',
    cgroup: '/user.slice', cgroupId: 7, startTime: 555, proto: 'tcp', src: '127.0.0.1:5000', dst: '127.0.0.1:443',
    provider: null, host: null, via: null, error: null, ...over,
  };
}

test('connect, traffic and close build one flow and one process row with exact totals', (t) => {
  const ft = new FlowTable();
  ft.apply(connect('1'), T0);
  ft.apply({ type: 'traffic', ts: iso(1000), flow: '1', pid: 100, tx: 100, rx: 1000 }, T0 + 1000);
  ft.apply({ type: 'traffic', ts: iso(2000), flow: '1', pid: 100, tx: 50, rx: 500 }, T0 + 2000);
  const open = ft.snapshot(T0 + 2000);
  t.is(open.flows.length, 1);
  t.is(open.flows[0]!.state, 'open');
  t.is(open.processes[0]!.open, 1);
  t.is(open.processes[0]!.rx, 1500);
  t.true(open.processes[0]!.rxRate > 0);
  ft.apply({ type: 'close', ts: iso(2500), flow: '1', pid: 100, tx: 200, rx: 1600, durationMs: 2500 }, T0 + 2500);
  const closed = ft.snapshot(T0 + 2500);
  t.is(closed.flows[0]!.state, 'closed');
  t.is(closed.flows[0]!.tx, 200); // close totals win over the summed deltas
  t.is(closed.processes[0]!.rx, 1600);
  t.is(closed.processes[0]!.open, 0);
  t.is(closed.totals.connections, 1);
});

test('a reused pid with another start time is a different process identity', (t) => {
  const ft = new FlowTable();
  ft.apply(connect('1', { startTime: 555 }), T0);
  ft.apply(connect('2', { startTime: 999, comm: 'curl' }), T0);
  const keys = ft.snapshot(T0).processes.map((p) => p.key).sort();
  t.deepEqual(keys, [processKey(100, 555), processKey(100, 999)]);
});

test('a failed connect counts as failed and leaves no open flow', (t) => {
  const ft = new FlowTable();
  ft.apply(connect('9', { error: 'ECONNREFUSED' }), T0);
  const s = ft.snapshot(T0);
  t.is(s.flows[0]!.state, 'failed');
  t.is(s.processes[0]!.failed, 1);
  t.is(s.totals.open, 0);
});

test('closed flows and idle processes are pruned after their retention, open flows never', (t) => {
  const ft = new FlowTable({ closedRetentionMs: 1000, processRetentionMs: 1000 });
  ft.apply(connect('1'), T0);
  ft.apply(connect('2', { pid: 200, startTime: 1 }), T0);
  ft.apply({ type: 'close', ts: iso(0), flow: '1', pid: 100, tx: 0, rx: 0, durationMs: 1 }, T0);
  ft.prune(T0 + 999);
  t.is(ft.size, 2);
  ft.prune(T0 + 1000);
  t.is(ft.size, 1);
  ft.prune(T0 + 2000);
  const s = ft.snapshot(T0 + 2000);
  t.deepEqual(s.processes.map((p) => p.pid), [200]);
});

test('the closed-flow cap drops the oldest closed flows first', (t) => {
  const ft = new FlowTable({ closedMax: 2, closedRetentionMs: 60_000 });
  for (const id of ['1', '2', '3']) {
    ft.apply(connect(id), T0);
    ft.apply({ type: 'close', ts: iso(0), flow: id, pid: 100, tx: 0, rx: 0, durationMs: 1 }, T0);
  }
  ft.prune(T0);
  t.deepEqual(ft.snapshot(T0).flows.map((f) => f.id), ['2', '3']);
});

test('closedMax 0 (headless busted): a flow leaves the table as it closes or fails; its process keeps the totals', (t) => {
  const ft = new FlowTable({ closedMax: 0 });
  ft.apply(connect('1'), T0);
  ft.apply(connect('2', { error: 'ECONNREFUSED' }), T0);
  t.is(ft.size, 1, 'a failed connect is gone at once');
  t.deepEqual(ft.openFlowsOf(processKey(100, 555), false), ['1']);
  ft.apply({ type: 'close', ts: iso(100), flow: '1', pid: 100, tx: 10, rx: 20, durationMs: 100 }, T0 + 100);
  t.is(ft.size, 0);
  t.deepEqual(ft.openFlowsOf(processKey(100, 555), false), []);
  const snap = ft.snapshot(T0 + 100);
  t.is(snap.flows.length, 0);
  t.like(snap.processes[0], { tx: 10, rx: 20, total: 2, failed: 1, open: 0 });
  // a late traffic record of the gone flow is ignored
  ft.apply({ type: 'traffic', ts: iso(200), flow: '1', pid: 100, tx: 5, rx: 5 }, T0 + 200);
  t.like(ft.snapshot(T0 + 200).processes[0], { tx: 10, rx: 20 });
});

test('lost records add up; duplicate connects and unknown flows are ignored', (t) => {
  const ft = new FlowTable();
  ft.apply({ type: 'lost', ts: iso(0), count: 3 }, T0);
  ft.apply({ type: 'lost', ts: iso(0), count: 4 }, T0);
  ft.apply(connect('1'), T0);
  ft.apply(connect('1'), T0);
  ft.apply({ type: 'traffic', ts: iso(0), flow: 'nope', pid: 1, tx: 5, rx: 5 }, T0);
  const s = ft.snapshot(T0);
  t.is(s.lost, 7);
  t.is(s.totals.connections, 1);
  t.is(s.totals.tx, 0);
});

test('classify sets provider, host and via and the process lists the provider', (t) => {
  const ft = new FlowTable();
  ft.apply(connect('1'), T0);
  ft.apply({ type: 'classify', ts: iso(0), flow: '1', pid: 100, provider: 'openai', host: 'api.openai.com', via: 'sni' }, T0);
  const s = ft.snapshot(T0);
  t.is(s.flows[0]!.provider, 'openai');
  t.is(s.flows[0]!.via, 'sni');
  t.deepEqual(s.processes[0]!.providers, ['openai']);
});

test('markExited makes a tombstone that is pruned after its retention', (t) => {
  const ft = new FlowTable({ processRetentionMs: 1000, closedRetentionMs: 0 });
  ft.apply(connect('1'), T0);
  ft.apply({ type: 'close', ts: iso(0), flow: '1', pid: 100, tx: 0, rx: 0, durationMs: 1 }, T0);
  ft.markExited(processKey(100, 555), T0 + 10);
  ft.prune(T0 + 10);
  t.is(ft.snapshot(T0 + 10).processes[0]!.exitedAt, T0 + 10);
  ft.prune(T0 + 1010);
  t.is(ft.snapshot(T0 + 1010).processes.length, 0);
});

test('verdict and policy records mark the process row; the POLICY column shows them', async (t) => {
  const { policyCell } = await import('../../src/ui/processColumns.js');
  const ft = new FlowTable();
  ft.apply(connect('1'), T0);
  const row = () => ft.snapshot(T0).processes[0]!;
  t.is(policyCell(row()), '-');
  ft.apply({ type: 'policy', ts: iso(0), pid: 100, startTime: 555, action: 'block', result: 'would-deny', dst: '1.2.3.4:443', provider: 'openai', rule: 'r1' }, T0);
  t.deepEqual(row().lastPolicy, { result: 'would-deny', rule: 'r1' });
  t.is(policyCell(row()), 'WOULD');
  ft.apply({ type: 'verdict', ts: iso(0), pid: 100, startTime: 555, action: 'block', source: 'busted-top' }, T0);
  t.is(policyCell(row()), 'BLOCK');
  ft.apply({ type: 'verdict', ts: iso(0), pid: 100, startTime: 555, action: null, source: 'busted-top' }, T0);
  t.is(policyCell(row()), 'WOULD');
});

test('provider totals keep every flow, closed and pruned ones included, and follow a reclassified flow', (t) => {
  const ft = new FlowTable({ closedRetentionMs: 1000, processRetentionMs: 1000 });
  ft.apply(connect('1', { provider: 'openai' }), T0);
  ft.apply(connect('2'), T0);
  ft.apply(connect('3', { pid: 200, startTime: 7, provider: 'openai' }), T0);
  ft.apply({ type: 'traffic', ts: iso(1000), flow: '1', pid: 100, tx: 100, rx: 1000 }, T0 + 1000);
  ft.apply({ type: 'traffic', ts: iso(1000), flow: '2', pid: 100, tx: 10, rx: 20 }, T0 + 1000);
  ft.apply({ type: 'traffic', ts: iso(1000), flow: '3', pid: 200, tx: 1, rx: 2 }, T0 + 1000);
  const s1 = ft.snapshot(T0 + 1000);
  t.deepEqual(s1.providers.map((p) => [p.provider, p.connections, p.bytes]), [['openai', 2, 1103], [null, 1, 30]]);
  // the rates are each provider's flows' rates, and the processes' rates their flows'
  const rate = (flows: typeof s1.flows) => flows.reduce((n, f) => n + f.txRate + f.rxRate, 0);
  t.is(s1.providers[0]!.rate, rate(s1.flows.filter((f) => f.provider === 'openai')));
  t.true(s1.providers[0]!.rate > 0);
  const p100 = s1.processes.find((p) => p.pid === 100)!;
  t.is(p100.open, 2);
  t.is(p100.txRate + p100.rxRate, rate(s1.flows.filter((f) => f.pid === 100)));
  t.is(s1.totals.open, 3);
  // flow 2 is classified: its connection and bytes move to anthropic
  ft.apply({ type: 'classify', ts: iso(1100), flow: '2', pid: 100, provider: 'anthropic', host: 'api.anthropic.com', via: 'sni' }, T0 + 1100);
  ft.apply({ type: 'close', ts: iso(1200), flow: '2', pid: 100, tx: 10, rx: 70, durationMs: 1200 }, T0 + 1200);
  ft.apply({ type: 'close', ts: iso(1200), flow: '1', pid: 100, tx: 100, rx: 1000, durationMs: 1200 }, T0 + 1200);
  const s2 = ft.snapshot(T0 + 1200);
  t.deepEqual(s2.providers.map((p) => [p.provider, p.connections, p.bytes]), [['openai', 2, 1103], ['anthropic', 1, 80]],
    'a provider left with nothing is not listed');
  t.is(s2.processes.find((p) => p.pid === 100)!.open, 0, 'a second snapshot starts its sums at zero');
  // the closed flows leave the table; the totals stay
  ft.prune(T0 + 5000);
  const s3 = ft.snapshot(T0 + 5000);
  t.deepEqual(s3.flows.map((f) => f.id), ['3']);
  t.deepEqual(s3.providers.map((p) => [p.provider, p.connections, p.bytes, p.rate]), [['openai', 2, 1103, 0], ['anthropic', 1, 80, 0]]);
});

test('a live process with a verdict keeps its row however long it is idle; cleared or exited, it is pruned as usual', (t) => {
  const ft = new FlowTable({ processRetentionMs: 1000, closedRetentionMs: 0 });
  ft.apply(connect('1'), T0);
  ft.apply({ type: 'close', ts: iso(0), flow: '1', pid: 100, tx: 0, rx: 0, durationMs: 1 }, T0);
  ft.apply({ type: 'verdict', ts: iso(0), pid: 100, startTime: 555, action: 'block', source: 'busted-top' }, T0);
  ft.prune(T0 + 60_000);
  t.deepEqual(ft.snapshot(T0 + 60_000).processes.map((p) => [p.pid, p.verdict]), [[100, 'block']], 'blocked: its connects make no flows, its row stays');
  ft.markExited(processKey(100, 555), T0 + 60_000);
  ft.prune(T0 + 60_500);
  t.is(ft.snapshot(T0 + 60_500).processes.length, 1, 'a tombstone for its retention');
  ft.prune(T0 + 61_000);
  t.is(ft.snapshot(T0 + 61_000).processes.length, 0);
  ft.apply(connect('2', { pid: 200, startTime: 9 }), T0);
  ft.apply({ type: 'close', ts: iso(0), flow: '2', pid: 200, tx: 0, rx: 0, durationMs: 1 }, T0);
  ft.apply({ type: 'verdict', ts: iso(0), pid: 200, startTime: 9, action: 'audit', source: 'busted-top' }, T0);
  ft.apply({ type: 'verdict', ts: iso(0), pid: 200, startTime: 9, action: null, source: 'busted-top' }, T0);
  ft.prune(T0 + 1000);
  t.is(ft.snapshot(T0 + 1000).processes.length, 0, 'its verdict cleared, an idle row goes');
});

test('a reclassified flow moves its process to the new provider; one classified twice the same counts once', (t) => {
  const ft = new FlowTable();
  ft.apply(connect('1', { provider: 'openai' }), T0);
  ft.apply(connect('2', { provider: 'openai' }), T0);
  const providers = () => ft.snapshot(T0).processes[0]!.providers;
  t.deepEqual(providers(), ['openai']);
  ft.apply({ type: 'classify', ts: iso(0), flow: '1', pid: 100, provider: 'anthropic', host: 'api.anthropic.com', via: 'sni' }, T0);
  t.deepEqual(providers(), ['anthropic', 'openai'], 'flow 2 is still openai');
  ft.apply({ type: 'classify', ts: iso(0), flow: '2', pid: 100, provider: null, host: 'cdn.example', via: 'sni' }, T0);
  t.deepEqual(providers(), ['anthropic'], 'no flow of it is openai any more');
  ft.apply({ type: 'classify', ts: iso(0), flow: '1', pid: 100, provider: 'anthropic', host: 'api.anthropic.com', via: 'sni' }, T0);
  ft.apply({ type: 'classify', ts: iso(0), flow: '1', pid: 100, provider: null, host: null, via: null }, T0);
  t.deepEqual(providers(), [], 'counted once, so gone with its one flow: not an LLM process now');
});

test('a traffic record with a negative delta (a hand-made recording) never lowers the totals', (t) => {
  const ft = new FlowTable();
  ft.apply(connect('1'), T0);
  ft.apply({ type: 'traffic', ts: iso(1000), flow: '1', pid: 100, tx: 100, rx: 100 }, T0 + 1000);
  ft.apply({ type: 'traffic', ts: iso(2000), flow: '1', pid: 100, tx: -50, rx: 10 }, T0 + 2000);
  const s = ft.snapshot(T0 + 2000);
  t.deepEqual([s.flows[0]!.tx, s.flows[0]!.rx, s.processes[0]!.tx, s.processes[0]!.rx], [100, 110, 100, 110]);
});
