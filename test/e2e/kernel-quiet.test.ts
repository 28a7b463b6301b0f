/**
 * busted without --all keeps whole flows back when they are not LLM traffic: no record of them
 * reaches the stream, the recording or the flow table; the metrics still count them. Real
 * kernel, real clients, loopback only (a --providers file maps 127.88.0.0/16 to a provider).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloseRecord, ConnectRecord, EventRecord } from '../../src/core/records.js';
import { parseRecording } from '../../src/sinks/replay.js';
import { runClient, startBusted } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { sample, scrape } from '../helpers/prom.js';
import { exchangeServer, freePort, portOf } from '../helpers/servers.js';

const PROVIDERS = 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.88.0.0/16]\n    source: https://example.test/acme\n';

const ofPid = (pid: number) => (r: EventRecord) => 'pid' in r && r.pid === pid;
const closeOf = (pid: number) => (r: EventRecord): r is CloseRecord => r.type === 'close' && r.pid === pid;
const connectOf = (pid: number) => (r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.pid === pid;

kernelTest('without --all, a non-LLM flow and a failed non-LLM connect reach no sink and are counted in the metrics; an LLM flow goes everywhere', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-quiet-'));
  const providers = join(dir, 'providers.yaml');
  writeFileSync(providers, PROVIDERS);
  const rec = join(dir, 'rec.jsonl');
  const port = await freePort();
  const plainServer = await exchangeServer('127.0.0.1', 100, 200);
  const llmServer = await exchangeServer('127.88.4.1', 300, 400);
  const busted = await startBusted(['--providers', providers, '--metrics', `127.0.0.1:${port}`, '--record', rec, '--record-flush', '50'], {}, { all: false });
  const url = `http://127.0.0.1:${port}/metrics`;
  let plainPid = 0;
  let refusedPid = 0;
  try {
    const before = await scrape(url);
    const none0 = sample(before, 'busted_connections_total', { provider: 'none', proto: 'tcp' }) ?? 0;
    const failed0 = sample(before, 'busted_connection_failures_total', { provider: 'none', proto: 'tcp' }) ?? 0;
    const plain = await runClient(['exchange', '127.0.0.1', portOf(plainServer), 100, 200]);
    t.is(plain.received, 200);
    plainPid = plain.pid;
    refusedPid = (await runClient(['refused', '127.0.0.1', await freePort()])).pid;
    const llm = await runClient(['exchange', '127.88.4.1', portOf(llmServer), 300, 400]);
    // the ring is read in order: by the LLM flow's close, the two before it have been judged
    const close = (await busted.waitFor(closeOf(llm.pid))) as CloseRecord;
    t.like(close, { tx: 300, rx: 400 });
    t.like(busted.records.find(connectOf(llm.pid)), { provider: 'acme-llm', via: 'cidr' });
    t.false(busted.records.some(ofPid(plainPid)), 'no record of the non-LLM flow in the stream');
    t.false(busted.records.some(ofPid(refusedPid)), 'no record of the failed non-LLM connect in the stream');
    const after = await scrape(url);
    t.true(sample(after, 'busted_connections_total', { provider: 'none', proto: 'tcp' })! >= none0 + 2, 'both counted as provider none');
    t.true(sample(after, 'busted_connection_failures_total', { provider: 'none', proto: 'tcp' })! >= failed0 + 1, 'the refused one counted as a failure');
    t.is(sample(after, 'busted_bytes_total', { provider: 'acme-llm', direction: 'tx' }), 300);
  } finally {
    t.is(await busted.stop(), 0, busted.stderr());
    plainServer.close();
    llmServer.close();
  }
  const recorded = parseRecording(readFileSync(rec, 'utf8'));
  t.deepEqual(recorded.problems, []);
  t.false(recorded.records.some((r) => ofPid(plainPid)(r) || ofPid(refusedPid)(r)), 'nothing of them in the recording');
  t.true(recorded.records.some((r) => r.type === 'close' && r.tx === 300), 'the LLM flow is recorded');
  rmSync(dir, { recursive: true, force: true });
});

/** A plain listener that ends each connection once it gets its first bytes (a ClientHello). */
async function helloSink(): Promise<Server> {
  const server = createServer((s) => s.once('data', () => s.end()).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

kernelTest('without --all, a flow whose ClientHello comes after the connect hold (600 ms) goes out late, named by its SNI; a non-LLM one stays back', async (t) => {
  const server = await helloSink();
  const busted = await startBusted([], {}, { all: false });
  try {
    const other = await runClient(['tls', '127.0.0.1', portOf(server), 'www.example.org', 600]);
    const late = await runClient(['tls', '127.0.0.1', portOf(server), 'api.openai.com', 600]);
    const conn = (await busted.waitFor(connectOf(late.pid))) as ConnectRecord;
    t.like(conn, { provider: 'openai', host: 'api.openai.com', via: 'sni', dst: `127.0.0.1:${portOf(server)}` });
    const close = (await busted.waitFor(closeOf(late.pid))) as CloseRecord;
    t.is(close.flow, conn.flow);
    t.true(close.tx > 100, `the ClientHello's bytes are counted (${close.tx})`);
    const ofLate = busted.records.filter(ofPid(late.pid)).map((r) => r.type);
    t.is(ofLate.indexOf('connect'), 0, `its connect comes first: ${ofLate.join(' ')}`);
    t.false(busted.records.some(ofPid(other.pid)), 'the non-LLM TLS flow is not shown');
  } finally {
    await busted.stop();
    server.close();
  }
});
