/** Prometheus metrics from a fixed record stream: names, labels, values, and the bounded per-process series. */
import test from 'ava';
import fc from 'fast-check';
import type { EventRecord, PolicyRecord } from '../../src/core/records.js';
import { BustedMetrics, type KernelStats } from '../../src/sinks/metrics.js';
import { close, connect, CURL, iso, NODE, PY, session, threeProcesses, traffic } from '../helpers/ui-fixtures.js';

type Samples = Map<string, number>;

/** Parses the text exposition into `name{a="x",b="y"}` (labels sorted) → value; checks HELP/TYPE. */
function parseExposition(text: string): { samples: Samples; types: Map<string, string> } {
  const samples: Samples = new Map();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') types.set(meta[2]!, meta[3]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad exposition line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    samples.set(labels.length > 0 ? `${m[1]}{${labels.join(',')}}` : m[1]!, Number(m[3]));
  }
  return { samples, types };
}

const key = (name: string, labels: Record<string, string> = {}): string => {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort();
  return l.length > 0 ? `${name}{${l.join(',')}}` : name;
};

async function scrape(m: BustedMetrics): Promise<Samples> {
  return parseExposition(await m.metrics()).samples;
}

const policy = (result: PolicyRecord['result'], action: PolicyRecord['action'] = 'block'): PolicyRecord => ({
  type: 'policy', ts: iso(1500), pid: PY.pid, action, result, dst: '192.0.2.10:443', provider: 'openai', rule: 'r1',
});

function fixedStream(): EventRecord[] {
  return [
    ...threeProcesses(),
    connect(1100, '4', PY, { proto: 'udp', provider: null, host: null, via: null, dst: '192.0.2.99:53' }),
    connect(1200, '5', NODE, { error: 'ECONNREFUSED' }),
    { type: 'classify', ts: iso(1300), flow: '4', pid: PY.pid, provider: 'openai', host: 'api.openai.com', via: 'dns' },
    traffic(1400, '4', PY.pid, 10, 20),
    close(2000, '1', PY.pid, 1500, 50_500),
    policy('denied'),
    policy('would-deny', 'audit'),
    policy('would-deny', 'audit'),
    { type: 'lost', ts: iso(2100), count: 7 },
    { type: 'kill', ts: iso(2200), pid: CURL.pid, signal: 'SIGTERM' },
  ];
}

test('a fixed record stream gives the exact counters and gauges', async (t) => {
  const m = new BustedMetrics({ version: '9.9.9' });
  for (const r of fixedStream()) m.handle(r);
  const s = await scrape(m);
  t.is(s.get(key('busted_connections_total', { provider: 'openai', proto: 'tcp' })), 2, 'flow 1 and the failed flow 5');
  t.is(s.get(key('busted_connections_total', { provider: 'none', proto: 'udp' })), 1, 'counted under the provider known at connect');
  t.is(s.get(key('busted_connections_total', { provider: 'anthropic', proto: 'tcp' })), 1);
  t.is(s.get(key('busted_connection_failures_total', { provider: 'openai', proto: 'tcp' })), 1);
  // flow 1 closed; flow 4 (classified to openai) open; 2 (anthropic) and 3 (ollama) open
  t.is(s.get(key('busted_connections_open', { provider: 'openai' })), 1);
  t.is(s.get(key('busted_connections_open', { provider: 'anthropic' })), 1);
  t.is(s.get(key('busted_connections_open', { provider: 'ollama' })), 1);
  t.is(s.get(key('busted_connections_open', { provider: 'none' })), 0);
  // openai: flow 1 (1000 + 500 more at close / 50000 + 500) and flow 4 after classify (10 / 20)
  t.is(s.get(key('busted_bytes_total', { provider: 'openai', direction: 'tx' })), 1510);
  t.is(s.get(key('busted_bytes_total', { provider: 'openai', direction: 'rx' })), 50_520);
  t.is(s.get(key('busted_bytes_total', { provider: 'anthropic', direction: 'tx' })), 2000);
  t.is(s.get(key('busted_bytes_total', { provider: 'ollama', direction: 'tx' })), 90_000);
  t.is(s.get(key('busted_bytes_total', { provider: 'ollama', direction: 'rx' })), 1000);
  const py = { pid: String(PY.pid), comm: 'python3', user: '1000', agent: '' };
  t.is(s.get(key('busted_process_bytes_total', { ...py, provider: 'openai', direction: 'rx' })), 50_520);
  t.is(s.get(key('busted_process_bytes_total', { pid: String(CURL.pid), comm: 'curl', user: '0', agent: '', provider: 'ollama', direction: 'tx' })), 90_000);
  t.is(s.get(key('busted_policy_decisions_total', { action: 'block', result: 'denied' })), 1);
  t.is(s.get(key('busted_policy_decisions_total', { action: 'audit', result: 'would-deny' })), 2);
  t.is(s.get(key('busted_kernel_lost_events_total')), 7);
  t.is(s.get(key('busted_records_total', { type: 'connect' })), 5);
  t.is(s.get(key('busted_build_info', { version: '9.9.9', kernel: '6.8.0-test' })), 1);
});

test('names follow the Prometheus conventions: busted_ prefix, counters end in _total, units in the name', async (t) => {
  const m = new BustedMetrics({ version: '1', stats: () => ({ lost: 0, ringbufUsedBytes: 0, ringbufSizeBytes: 4096, maps: [{ name: 'sockets', entries: 1, max: 2 }] }) });
  m.addCounter('busted_otlp_dropped_records_total', 'x', () => 0);
  for (const r of fixedStream()) m.handle(r);
  const { types } = parseExposition(await m.metrics());
  t.true(types.size >= 14);
  for (const [name, type] of types) {
    t.regex(name, /^busted_[a-z_]+$/);
    if (type === 'counter') t.regex(name, /_total$/, name);
    else t.notRegex(name, /_total$/, name);
    if (name.includes('bytes')) t.regex(name, /_bytes(_total)?$/, name);
  }
});

test('kernel stats: map and ring-buffer gauges; lost events take the larger of records and stats; the kernel\'s counts never go back', async (t) => {
  let stats: KernelStats = { lost: 2, ringbufUsedBytes: 128, ringbufSizeBytes: 1 << 20, maps: [{ name: 'sockets', entries: 10, max: 65536 }, { name: 'events_meta', entries: 0, max: 512 }] };
  const m = new BustedMetrics({ version: '1', stats: () => stats });
  m.handle(session(0));
  let s = await scrape(m);
  t.is(s.get(key('busted_map_entries', { map: 'sockets' })), 10);
  t.is(s.get(key('busted_map_max_entries', { map: 'events_meta' })), 512);
  t.is(s.get('busted_ringbuf_used_bytes'), 128);
  t.is(s.get('busted_ringbuf_size_bytes'), 1 << 20);
  t.is(s.get('busted_kernel_lost_events_total'), 2);
  m.handle({ type: 'lost', ts: iso(10), count: 5 }); // the same events as the stats, and 3 more
  s = await scrape(m);
  t.is(s.get('busted_kernel_lost_events_total'), 5);
  stats = { ...stats, lost: 9, maps: [{ name: 'sockets', entries: 3, max: 65536 }] };
  s = await scrape(m);
  t.is(s.get('busted_kernel_lost_events_total'), 9);
  t.is(s.get(key('busted_map_entries', { map: 'sockets' })), 3);
  t.is(s.get('busted_kernel_untracked_connections_total'), 0);
  t.is(s.get('busted_kernel_unseen_ends_total'), 0);
  t.is(s.get(key('busted_kernel_unseen_ends_by_state_total', { last_state: 'CLOSE_WAIT' })), undefined);
  stats = { ...stats, untracked: 4, unseen: 2, unseenByState: { CLOSE_WAIT: 1, none: 1 } };
  s = await scrape(m);
  t.is(s.get('busted_kernel_untracked_connections_total'), 4);
  t.is(s.get('busted_kernel_unseen_ends_total'), 2);
  t.is(s.get(key('busted_kernel_unseen_ends_by_state_total', { last_state: 'CLOSE_WAIT' })), 1);
  t.is(s.get(key('busted_kernel_unseen_ends_by_state_total', { last_state: 'none' })), 1);
  stats = { ...stats, unseen: 4, unseenByState: { CLOSE_WAIT: 3, none: 1 } };
  s = await scrape(m);
  t.is(s.get(key('busted_kernel_unseen_ends_by_state_total', { last_state: 'CLOSE_WAIT' })), 3);
  stats = { ...stats, lost: 1, unseen: 1, unseenByState: { CLOSE_WAIT: 1 } }; // a confused source never makes a counter go back
  s = await scrape(m);
  t.is(s.get('busted_kernel_lost_events_total'), 9);
  t.is(s.get('busted_kernel_unseen_ends_total'), 4);
  t.is(s.get(key('busted_kernel_unseen_ends_by_state_total', { last_state: 'CLOSE_WAIT' })), 3);
  t.is(s.get(key('busted_kernel_unseen_ends_by_state_total', { last_state: 'none' })), 1);
  stats = { ...stats, skippedSamples: { 'dns-malformed': 2, 'tls-malformed': 1 } };
  s = await scrape(m);
  t.is(s.get(key('busted_payload_samples_skipped_total', { reason: 'dns-malformed' })), 2);
  t.is(s.get(key('busted_payload_samples_skipped_total', { reason: 'tls-malformed' })), 1);
  const broken = new BustedMetrics({ version: '1', stats: () => { throw new Error('probe closed'); } });
  t.notThrows(() => void broken.metrics());
  t.true((await broken.metrics()).includes('busted_build_info'));
});

test('counters read from other sinks only grow', async (t) => {
  const m = new BustedMetrics({ version: '1' });
  let dropped = 0;
  m.addCounter('busted_otlp_dropped_records_total', 'dropped', () => dropped);
  t.is((await scrape(m)).get('busted_otlp_dropped_records_total'), 0);
  dropped = 12;
  t.is((await scrape(m)).get('busted_otlp_dropped_records_total'), 12);
  dropped = 15;
  t.is((await scrape(m)).get('busted_otlp_dropped_records_total'), 15);
});

test('top N: processes beyond N are summed in comm="other"; an idle process leaves the top and its totals move to other', async (t) => {
  let now = 0;
  const m = new BustedMetrics({ version: '1', topN: 2, idleMs: 10_000, now: () => now });
  const procs = [PY, NODE, CURL];
  procs.forEach((p, i) => m.handle(connect(0, String(i + 1), p)));
  m.handle(traffic(0, '1', PY.pid, 100, 0));
  m.handle(traffic(0, '2', NODE.pid, 200, 0));
  m.handle(traffic(0, '3', CURL.pid, 150, 0));
  let s = await scrape(m);
  const procKey = (p: { pid: number; comm: string; uid: number }, provider = 'openai', direction = 'tx') =>
    key('busted_process_bytes_total', { pid: String(p.pid), comm: p.comm, user: String(p.uid), agent: '', provider, direction });
  const other = key('busted_process_bytes_total', { pid: '', comm: 'other', user: '', agent: '', provider: 'openai', direction: 'tx' });
  const series = (comm: string) => [...s.keys()].filter((k) => k.startsWith('busted_process_bytes_total') && k.includes(`comm="${comm}"`));
  t.is(s.get(procKey(PY)), 100);
  t.is(s.get(procKey(NODE)), 200);
  t.deepEqual(series('curl'), [], 'the third process has no series of its own (150 is not twice 100)');
  t.is(s.get(other), 150);
  // python3 closes its flow and stays idle; curl keeps sending
  m.handle(close(1000, '1', PY.pid, 100, 0));
  now = 20_000;
  m.handle(traffic(20_000, '3', CURL.pid, 50, 0));
  m.handle(traffic(20_000, '2', NODE.pid, 1, 0));
  s = await scrape(m);
  t.deepEqual(series('python3'), [], 'python3 left the top');
  t.is(s.get(other), 300, "curl's 150 + 50, and python3's 100 folded in");
  m.handle(traffic(20_500, '3', CURL.pid, 1000, 0));
  s = await scrape(m);
  t.is(s.get(procKey(CURL)), 1000, 'curl got the free slot and counts from there; what it sent before stays in other');
  t.is(s.get(other), 300);
  t.is(s.get(key('busted_bytes_total', { provider: 'openai', direction: 'tx' })), 100 + 201 + 1200);
});

test('top N: a much busier newcomer displaces the quietest tracked process, which folds into other for good', async (t) => {
  const m = new BustedMetrics({ version: '1', topN: 1, idleMs: 60_000, now: () => 0 });
  m.handle(connect(0, '1', PY));
  m.handle(connect(0, '2', NODE));
  m.handle(traffic(0, '1', PY.pid, 10, 0));
  m.handle(traffic(0, '2', NODE.pid, 10, 0));
  const pyTx = key('busted_process_bytes_total', { pid: '4211', comm: 'python3', user: '1000', agent: '', provider: 'openai', direction: 'tx' });
  const nodeTx = key('busted_process_bytes_total', { pid: '5120', comm: 'node', user: '1001', agent: '', provider: 'openai', direction: 'tx' });
  const other = key('busted_process_bytes_total', { pid: '', comm: 'other', user: '', agent: '', provider: 'openai', direction: 'tx' });
  let s = await scrape(m);
  t.is(s.get(pyTx), 10);
  t.is(s.get(other), 10);
  m.handle(traffic(0, '2', NODE.pid, 5000, 0));
  s = await scrape(m);
  t.is(s.get(pyTx), undefined, 'python3 was displaced');
  t.is(s.get(nodeTx), 0, 'node counts from its promotion');
  t.is(s.get(other), 5020);
  m.handle(traffic(0, '1', PY.pid, 100_000, 0));
  m.handle(traffic(0, '2', NODE.pid, 1, 0));
  s = await scrape(m);
  t.is(s.get(pyTx), undefined, 'a displaced process never comes back');
  t.is(s.get(nodeTx), 1);
  t.is(s.get(other), 105_020);
});

test('a pid reused with the same comm never reuses the label set of an ended series (no counter reset)', async (t) => {
  let now = 0;
  const m = new BustedMetrics({ version: '1', topN: 5, idleMs: 1000, now: () => now });
  m.handle(connect(0, '1', PY));
  m.handle(close(10, '1', PY.pid, 500, 0));
  const pyTx = key('busted_process_bytes_total', { pid: '4211', comm: 'python3', user: '1000', agent: '', provider: 'openai', direction: 'tx' });
  t.is((await scrape(m)).get(pyTx), 500);
  now = 5000;
  t.is((await scrape(m)).get(pyTx), undefined, 'idle: ended');
  m.handle(connect(5000, '2', { ...PY, startTime: 999 }));
  m.handle(traffic(5100, '2', PY.pid, 7, 0));
  const s = await scrape(m);
  t.is(s.get(pyTx), undefined, 'the new process with the same labels stays in other');
  t.is(s.get(key('busted_process_bytes_total', { pid: '', comm: 'other', user: '', agent: '', provider: 'openai', direction: 'tx' })), 507);
});

test('property: with process churn every exported counter only grows, series stay bounded, and sums match bytes_total', async (t) => {
  const event = fc.record({
    proc: fc.integer({ min: 0, max: 40 }),
    provider: fc.constantFrom('openai', 'anthropic', null),
    kind: fc.constantFrom('traffic', 'traffic', 'traffic', 'close', 'scrape', 'tick'),
    tx: fc.integer({ min: 0, max: 5000 }),
    rx: fc.integer({ min: 0, max: 5000 }),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 6 }), async (events, topN) => {
      let now = 0;
      const m = new BustedMetrics({ version: '1', topN, idleMs: 5000, now: () => now });
      const open = new Map<number, { flow: string; tx: number; rx: number }>();
      let flowSeq = 0;
      const seen = new Map<string, number>();
      const check = async () => {
        const s = await scrape(m);
        const sums = new Map<string, number>();
        let procSeries = 0;
        for (const [k, v] of s) {
          if (!k.startsWith('busted_process_bytes_total') && !k.startsWith('busted_bytes_total') && !k.startsWith('busted_connections_total')) continue;
          const before = seen.get(k);
          if (before !== undefined && v < before) throw new Error(`${k} went from ${before} to ${v}`);
          seen.set(k, v);
          if (k.startsWith('busted_process_bytes_total')) {
            procSeries++;
            const provider = /provider="(\w+)"/.exec(k)![1]!;
            const direction = /direction="(\w+)"/.exec(k)![1]!;
            sums.set(`${provider}/${direction}`, (sums.get(`${provider}/${direction}`) ?? 0) + v);
          }
        }
        for (const [k, v] of s) {
          if (!k.startsWith('busted_bytes_total')) continue;
          const provider = /provider="(\w+)"/.exec(k)![1]!;
          const direction = /direction="(\w+)"/.exec(k)![1]!;
          if ((sums.get(`${provider}/${direction}`) ?? 0) !== v) throw new Error(`process series sum to ${sums.get(`${provider}/${direction}`)} for ${k} = ${v}`);
        }
        // tracked processes × providers × 2 directions, plus other × providers × 2
        if (procSeries > (topN + 1) * 3 * 2) throw new Error(`${procSeries} process series with topN ${topN}`);
      };
      for (const e of events) {
        now += 700;
        const pid = 1000 + (e.proc % 25); // pids are reused by later processes
        const p = { pid, comm: e.proc % 3 === 0 ? 'python3' : `worker${e.proc % 5}`, startTime: e.proc, uid: 1000 };
        if (e.kind === 'scrape') await check();
        else if (e.kind === 'tick') now += 6000;
        else {
          let f = open.get(e.proc);
          if (!f) {
            f = { flow: String(++flowSeq), tx: 0, rx: 0 };
            open.set(e.proc, f);
            m.handle(connect(now, f.flow, p, { provider: e.provider }));
          }
          f.tx += e.tx;
          f.rx += e.rx;
          if (e.kind === 'traffic') m.handle(traffic(now, f.flow, pid, e.tx, e.rx));
          else {
            m.handle(close(now, f.flow, pid, f.tx, f.rx));
            open.delete(e.proc);
          }
        }
      }
      await check();
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('deploy/README.md lists every metric busted serves', async (t) => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const root = new URL('../../', import.meta.url);
  const doc = readFileSync(new URL('deploy/README.md', root), 'utf8');
  const named = new Set<string>();
  for (const f of readdirSync(new URL('src/sinks/', root))) {
    for (const m of readFileSync(new URL(`src/sinks/${f}`, root), 'utf8').matchAll(/'(busted_[a-z_]+)'/g)) named.add(m[1]!);
  }
  const m = new BustedMetrics({ version: '1', stats: () => ({ lost: 0, maps: [] }) });
  const registered = (await m.registry.getMetricsAsJSON()).map((x) => x.name);
  for (const name of registered) t.true(named.has(name), `${name} is registered under a name the sources spell out`);
  t.true(named.size >= registered.length);
  for (const name of named) t.true(doc.includes(`\`${name}\``), `${name} is in deploy/README.md's metrics table`);
});
