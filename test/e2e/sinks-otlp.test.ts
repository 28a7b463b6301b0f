/**
 * --otlp against an OTLP/HTTP receiver this test runs on 127.0.0.1: the records arrive as log
 * records with the right attributes; with the receiver down busted goes on and counts the drops.
 */
import test from 'ava';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { EventRecord } from '../../src/core/records.js';
import { Store } from '../../src/core/store.js';
import { VERSION } from '../../src/core/version.js';
import { OtlpSink } from '../../src/sinks/otlp.js';
import { attachSinks } from '../../src/sinks/wire.js';
import { close, connect, iso, PY, session, threeProcesses } from '../helpers/ui-fixtures.js';

type Value = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number; arrayValue?: unknown };
interface KeyValue { key: string; value: Value }
interface LogRecordJson {
  timeUnixNano: string; severityNumber: number; severityText: string; eventName?: string;
  body: Value; attributes: KeyValue[];
}
interface Received { resource: Record<string, unknown>; log: LogRecordJson; attrs: Record<string, unknown> }

const plain = (v: Value): unknown => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue ?? v.doubleValue ?? v.arrayValue);
const toMap = (kvs: KeyValue[] = []): Record<string, unknown> => Object.fromEntries(kvs.map((kv) => [kv.key, plain(kv.value)]));

/** An OTLP/HTTP (JSON) logs receiver; `reply` picks each request's status. */
async function receiver(reply: (n: number) => number = () => 200, port = 0) {
  const logs: Received[] = [];
  const requests: { path: string; type: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', type: String(req.headers['content-type']) });
      const status = reply(requests.length);
      if (status === 200) {
        const payload = JSON.parse(body) as { resourceLogs: { resource: { attributes: KeyValue[] }; scopeLogs: { logRecords: LogRecordJson[] }[] }[] };
        for (const rl of payload.resourceLogs) {
          for (const sl of rl.scopeLogs) for (const log of sl.logRecords) logs.push({ resource: toMap(rl.resource.attributes), log, attrs: toMap(log.attributes) });
        }
      }
      res.writeHead(status, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { logs, requests, url, close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }) };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function scrapeValue(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : Number.NaN;
}

const stream = (): EventRecord[] => [
  ...threeProcesses(),
  connect(1100, '9', PY, { container: { id: 'c0ffee', runtime: 'containerd' }, user: 'alice' }),
  { type: 'policy', ts: iso(1200), pid: PY.pid, action: 'block', result: 'denied', dst: '192.0.2.10:443', provider: 'openai', rule: 'no-openai' },
  close(1300, '9', PY.pid, 10, 20),
];

test('every record arrives as an OTLP log record: flattened busted.* attributes, severity, event name, resource', async (t) => {
  const rx = await receiver();
  const store = new Store();
  const warnings: string[] = [];
  const sinks = await attachSinks(store, { otlp: rx.url, metrics: '127.0.0.1:0', onWarning: (m) => warnings.push(m) });
  try {
    const recs = stream();
    for (const r of recs) store.publish(r);
    await until('all records at the receiver', () => rx.logs.length >= recs.length);
    t.is(rx.logs.length, recs.length);
    t.true(rx.requests.every((r) => r.path === '/v1/logs' && r.type === 'application/json'));
    t.true(rx.requests.length <= 2, `batched: ${rx.requests.length} requests for ${recs.length} records`);
    t.deepEqual(rx.logs.map((l) => l.log.eventName), recs.map((r) => `busted.${r.type}`));
    t.like(rx.logs[0]!.resource, { 'service.name': 'busted', 'service.version': VERSION, 'host.name': os.hostname() });
    const conn = rx.logs.find((l) => l.attrs['busted.flow'] === '9')!;
    t.like(conn.attrs, {
      'busted.type': 'connect', 'busted.pid': PY.pid, 'busted.comm': 'python3', 'busted.provider': 'openai',
      'busted.host': 'api.openai.com', 'busted.via': 'sni', 'busted.dst': '192.0.2.10:443', 'busted.proto': 'tcp',
      'busted.container.id': 'c0ffee', 'busted.container.runtime': 'containerd', 'busted.user': 'alice',
    });
    t.is(conn.log.severityText, 'INFO');
    t.is(conn.log.timeUnixNano, `${Date.parse(iso(1100))}000000`);
    t.regex(String(plain(conn.log.body)), /^python3 \(pid 4211\) tcp .* -> 192\.0\.2\.10:443 openai api\.openai\.com$/);
    const denied = rx.logs.find((l) => l.attrs['busted.type'] === 'policy')!;
    t.is(denied.log.severityText, 'WARN');
    t.like(denied.attrs, { 'busted.action': 'block', 'busted.result': 'denied', 'busted.rule': 'no-openai' });
    t.is(await scrapeValue(sinks.metricsUrl!, 'busted_otlp_sent_records_total'), recs.length);
    t.is(await scrapeValue(sinks.metricsUrl!, 'busted_otlp_dropped_records_total'), 0);
    t.deepEqual(warnings, []);
  } finally {
    await sinks.close();
    await rx.close();
  }
});

test('a collector answering 503 is retried (bounded) and then gets every record once', async (t) => {
  const rx = await receiver((n) => (n === 1 ? 503 : 200));
  const sink = new OtlpSink({ url: rx.url, version: VERSION, onWarning: (m) => t.fail(m), delayMs: 50 });
  for (const r of stream()) sink.handle(r);
  await until('the retry delivered', () => rx.logs.length >= stream().length);
  await sink.close();
  t.is(rx.requests.length, 2);
  t.is(rx.logs.length, stream().length);
  t.is(sink.sent, stream().length);
  t.is(sink.dropped, 0);
  await rx.close();
});

test('with the collector down busted goes on: drops are counted in the metrics and warned about once; records flow again when it is back', async (t) => {
  const probe = await receiver();
  const url = probe.url;
  await probe.close();
  const store = new Store();
  const warnings: string[] = [];
  const sinks = await attachSinks(store, { otlp: url, metrics: '127.0.0.1:0', onWarning: (m) => warnings.push(m) });
  try {
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) store.publish(session(i));
    t.true(performance.now() - t0 < 500, 'publishing does not wait for the collector');
    // the exporter retries with backoff within its 10 s deadline, then gives the batch up
    await until('the drops to be counted', async () => (await scrapeValue(sinks.metricsUrl!, 'busted_otlp_dropped_records_total')) === 20, 30_000);
    t.is(warnings.length, 1);
    t.regex(warnings[0]!, /^OTLP: 20 records were not delivered to http:\/\/127\.0\.0\.1:\d+\/v1\/logs \(.*ECONNREFUSED.*\); busted goes on/);
    const rx = await receiver(() => 200, Number(new URL(url).port));
    try {
      for (let i = 0; i < 5; i++) store.publish(session(100 + i));
      await until('records after the collector came back', () => rx.logs.length >= 5);
      t.is(await scrapeValue(sinks.metricsUrl!, 'busted_otlp_sent_records_total'), 5);
      t.is(await scrapeValue(sinks.metricsUrl!, 'busted_otlp_dropped_records_total'), 20);
    } finally {
      await sinks.close();
      await rx.close();
    }
    t.is(warnings.length, 1, 'nothing more to say at close');
  } finally {
    await sinks.close();
  }
});

test('a full queue drops new records at once (counted) instead of growing; close() counts what is left and says it', async (t) => {
  const probe = await receiver();
  await probe.close();
  const warnings: string[] = [];
  const sink = new OtlpSink({ url: probe.url, version: VERSION, onWarning: (m) => warnings.push(m), maxQueue: 10, batchSize: 5, exportTimeoutMs: 60_000 });
  for (let i = 0; i < 30; i++) sink.handle(session(i));
  t.is(sink.dropped, 20, 'beyond the queue: dropped at once');
  t.is(warnings.length, 1, 'one warning (at the first drop), not one per record');
  t.regex(warnings[0]!, /^OTLP: 1 record was not delivered to .* \(the queue is full\)/);
  await sink.close(300);
  t.is(sink.dropped, 30, 'what never reached the collector by close counts too');
  t.is(sink.sent, 0);
  t.is(warnings.length, 2);
  t.regex(warnings[1]!, /^OTLP: 29 records were not delivered .*busted stopped before the collector took them/, 'the rest, said at close');
});
