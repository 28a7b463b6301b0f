/** OTLP log records: flattened attributes, severity by record type, the endpoint, the body. */
import test from 'ava';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { RECORD_TYPES, type EventRecord, type ProcessRecord } from '../../src/core/records.js';
import { logsEndpoint, recordAttributes, severityOf, summaryOf } from '../../src/sinks/otlp.js';
import { close, connect, iso, PY, session, traffic } from '../helpers/ui-fixtures.js';

test('attributes are the record fields flattened under busted., without nulls or ts', (t) => {
  const rec = connect(100, '77', PY, {
    host: null, container: { id: 'abc123', runtime: 'containerd' }, pod: { uid: 'u-1', qos: 'burstable' },
    agent: { id: 'claude-code', label: 'Claude Code' }, user: 'alice', sha256: null,
  });
  const a = recordAttributes(rec);
  t.like(a, {
    'busted.type': 'connect', 'busted.flow': '77', 'busted.pid': PY.pid, 'busted.comm': 'python3', 'busted.uid': 1000,
    'busted.provider': 'openai', 'busted.proto': 'tcp', 'busted.dst': '192.0.2.10:443', 'busted.via': 'sni',
    'busted.container.id': 'abc123', 'busted.container.runtime': 'containerd', 'busted.pod.uid': 'u-1',
    'busted.agent.id': 'claude-code', 'busted.user': 'alice',
  });
  t.false('busted.host' in a, 'null left out');
  t.false('busted.sha256' in a);
  t.false('busted.error' in a);
  t.false('busted.ts' in a, 'the time is the log record timestamp');
  t.false('busted.container' in a, 'objects are flattened, not nested');
});

test('arrays of objects become JSON text; arrays of values stay arrays', (t) => {
  const rec: ProcessRecord = {
    type: 'process', ts: iso(0), pid: 5, startTime: 9, exe: '/usr/bin/python3', cgroup: null, cmdline: 'python3 x.py',
    parents: [{ pid: 1, comm: 'systemd', exe: null }], sha256: 'ab', exeReplaced: false, user: 'root', group: 'root',
    ppid: 1, container: null, pod: null, agent: null,
  };
  const a = recordAttributes(rec);
  t.is(a['busted.parents'], '[{"pid":1,"comm":"systemd","exe":null}]');
  t.is(a['busted.exeReplaced'], false);
  const withArray = recordAttributes({ ...session(0), tags: ['a', 'b'] } as unknown as EventRecord);
  t.deepEqual(withArray['busted.tags'], ['a', 'b']);
});

test('severity by type: a denied policy decision is WARN, traffic is DEBUG, connects INFO', (t) => {
  const policy = (result: 'denied' | 'would-deny'): EventRecord => ({
    type: 'policy', ts: iso(0), pid: 1, action: 'block', result, dst: '1.2.3.4:443', provider: 'openai', rule: 'r',
  });
  t.deepEqual(severityOf(policy('denied')), { number: SeverityNumber.WARN, text: 'WARN' });
  t.is(severityOf(policy('would-deny')).text, 'INFO');
  t.is(severityOf(traffic(0, '1', 1, 1, 1)).number, SeverityNumber.DEBUG);
  t.is(severityOf(connect(0, '1', PY)).number, SeverityNumber.INFO);
  t.is(severityOf({ type: 'lost', ts: iso(0), count: 3 }).text, 'WARN');
  t.is(severityOf({ type: 'kill', ts: iso(0), pid: 3, signal: 'SIGKILL' }).text, 'WARN');
});

test('every record type has a one-line summary for the body', (t) => {
  const samples: EventRecord[] = [
    session(0), connect(0, '1', PY, { error: 'ECONNREFUSED' }), traffic(0, '1', 1, 2, 3), close(0, '1', 1, 2, 3),
    { type: 'classify', ts: iso(0), flow: '1', pid: 1, provider: 'openai', host: 'api.openai.com', via: 'dns' },
    { type: 'policy', ts: iso(0), pid: 1, action: 'audit', result: 'would-deny', dst: '*', provider: null, rule: 'default' },
    { type: 'kill', ts: iso(0), pid: 3, signal: 'SIGTERM' }, { type: 'lost', ts: iso(0), count: 3 },
    { type: 'process', ts: iso(0), pid: 5, startTime: 9, exe: null, cgroup: null, cmdline: null, parents: [], sha256: null,
      exeReplaced: false, user: null, group: null, ppid: null, container: null, pod: null, agent: null },
  ];
  // types added later get a generic body
  for (const type of RECORD_TYPES.filter((ty) => !samples.some((s) => s.type === ty))) {
    samples.push({ type, ts: iso(0), pid: 42 } as unknown as EventRecord);
  }
  for (const s of samples) {
    const body = summaryOf(s);
    t.true(body.length > 5 && !body.includes('\n') && !body.includes('undefined'), `${s.type}: ${body}`);
  }
  t.regex(summaryOf(connect(0, '1', PY, { error: 'ECONNREFUSED' })), /python3 \(pid 4211\) tcp .* openai api\.openai\.com failed: ECONNREFUSED/);
});

test('the logs endpoint: /v1/logs is added to a bare collector URL, a given path is kept', (t) => {
  t.is(logsEndpoint('http://127.0.0.1:4318'), 'http://127.0.0.1:4318/v1/logs');
  t.is(logsEndpoint('http://127.0.0.1:4318/'), 'http://127.0.0.1:4318/v1/logs');
  t.is(logsEndpoint('https://collector.test:443/custom/logs'), 'https://collector.test/custom/logs');
  t.is(logsEndpoint('http://[::1]:4318'), 'http://[::1]:4318/v1/logs');
});
