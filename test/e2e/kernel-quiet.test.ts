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
import { Stat } from '../../src/bpf/abi.js';
import { mapsOf, perCpuSum, programRuns, withBpfStats } from '../helpers/bpfmaps.js';
import { runClient, startBusted } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { sample, scrape } from '../helpers/prom.js';
import { exchangeServer, freePort, holdingServer, portOf } from '../helpers/servers.js';

const PROVIDERS = 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.88.0.0/16]\n    source: https://example.test/acme\n';

/** Alone on the machine: another test's DNS answers would make the kernel report every connection
 * until this busted has applied them (dns_sync), so "kept back" could not be asserted. */
const EXCLUSIVE = { exclusive: true };

/**
 * busted_connections_total{provider="none",proto="tcp"} (and the failures counter) once they reach
 * `atLeast`: what the kernel kept back is read with the counters (every --interval, 1 s here).
 */
async function noneCounts(url: string, atLeast: { connections: number; failures: number }, timeoutMs = 3000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = await scrape(url);
    const got = {
      connections: sample(text, 'busted_connections_total', { provider: 'none', proto: 'tcp' }) ?? 0,
      failures: sample(text, 'busted_connection_failures_total', { provider: 'none', proto: 'tcp' }) ?? 0,
      text,
    };
    if ((got.connections >= atLeast.connections && got.failures >= atLeast.failures) || Date.now() > end) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What busted (`pid`, metrics at `url`) has counted as kept back so far: in its kernel stats and its metrics. */
async function quietCounts(pid: number, url: string) {
  const stats = (await mapsOf(pid)).get('stats');
  if (!stats) throw new Error('busted holds no map named stats');
  const kernelQuiet0 = await perCpuSum(stats.id, Stat.QUIET);
  const kernelFailed0 = await perCpuSum(stats.id, Stat.QUIET_FAILED);
  const before = await noneCounts(url, { connections: 0, failures: 0 });
  return { stats, kernelQuiet0, kernelFailed0, before };
}

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
    const { stats, kernelQuiet0, kernelFailed0, before } = await quietCounts(busted.child.pid!, url);
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
    const after = await noneCounts(url, { connections: before.connections + 2, failures: before.failures + 1 });
    t.true(after.connections >= before.connections + 2, 'both counted as provider none');
    t.true(after.failures >= before.failures + 1, 'the refused one counted as a failure');
    t.is(sample(after.text, 'busted_bytes_total', { provider: 'acme-llm', direction: 'tx' }), 300);
    // kept back in the kernel: plain TCP to an address and port no LLM is known at, no TLS
    t.true(await perCpuSum(stats.id, Stat.QUIET) >= kernelQuiet0 + 1, 'the plain flow was kept back by the kernel');
    t.true(await perCpuSum(stats.id, Stat.QUIET_FAILED) >= kernelFailed0 + 1, 'so was the refused connect');
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
}, EXCLUSIVE);

kernelTest('without --all, a non-LLM connection that moves no byte is judged at its connect: no idle sweep runs for it, no record, its close counted as a connection, not a failure', async (t) => {
  const port = await freePort();
  const server = await holdingServer('127.0.0.1');
  const busted = await startBusted(['--metrics', `127.0.0.1:${port}`], {}, { all: false });
  const url = `http://127.0.0.1:${port}/metrics`;
  try {
    const { stats, kernelQuiet0, kernelFailed0, before } = await quietCounts(busted.child.pid!, url);
    // open 3 s without a byte: an LLM-worthy one would have made busted run its idle iterator by then
    const { idleRuns, pid } = await withBpfStats(async () => {
      const runs0 = await programRuns(busted.child.pid!, 'busted_idle');
      const client = await runClient(['idle', '127.0.0.1', portOf(server), 3]);
      return { idleRuns: (await programRuns(busted.child.pid!, 'busted_idle')) - runs0, pid: client.pid };
    });
    t.is(idleRuns, 0, 'the idle iterator never ran');
    const after = await noneCounts(url, { connections: before.connections + 1, failures: before.failures });
    // (the scrapes' own connections to busted are counted too: at least one more)
    t.true(after.connections >= before.connections + 1, 'counted as a connection of provider none');
    t.is(after.failures, before.failures, 'not as a failure');
    t.true(await perCpuSum(stats.id, Stat.QUIET) >= kernelQuiet0 + 1, 'kept back by the kernel as a closed connection');
    t.is(await perCpuSum(stats.id, Stat.QUIET_FAILED), kernelFailed0, 'not as a failed one');
    t.false(busted.records.some(ofPid(pid)), 'no record of it');
  } finally {
    t.is(await busted.stop(), 0, busted.stderr());
    server.shut();
  }
}, EXCLUSIVE);

/** A plain listener that ends each connection once it gets its first bytes (a ClientHello). */
async function helloSink(): Promise<Server> {
  const server = createServer((s) => s.once('data', () => s.end()).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

kernelTest('without --all, a flow whose ClientHello comes after the connect hold (600 ms) goes out late, named by its SNI; a non-LLM one stays back (the kernel reports both when their TLS starts)', async (t) => {
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
}, EXCLUSIVE);

kernelTest('without --all, 2,000 short non-LLM connections reach user space as counts only; an LLM flow right after is reported in full', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-quiet-'));
  const providers = join(dir, 'providers.yaml');
  writeFileSync(providers, PROVIDERS);
  const port = await freePort();
  const plainServer = await exchangeServer('127.0.0.1', 1, 0);
  const llmServer = await exchangeServer('127.88.4.2', 50, 60);
  const busted = await startBusted(['--providers', providers, '--metrics', `127.0.0.1:${port}`], {}, { all: false });
  try {
    const stats = (await mapsOf(busted.child.pid!)).get('stats')!;
    const quiet0 = await perCpuSum(stats.id, Stat.QUIET);
    const url = `http://127.0.0.1:${port}/metrics`;
    const none0 = (await noneCounts(url, { connections: 0, failures: 0 })).connections;
    const churn = await runClient(['churn', '127.0.0.1', portOf(plainServer), 2000]);
    const llm = await runClient(['exchange', '127.88.4.2', portOf(llmServer), 50, 60]);
    t.like(await busted.waitFor(closeOf(llm.pid)), { tx: 50, rx: 60 });
    t.true(await perCpuSum(stats.id, Stat.QUIET) >= quiet0 + 2000, 'all 2,000 kept back in the kernel');
    t.false(busted.records.some(ofPid(churn.pid)));
    const none = (await noneCounts(url, { connections: none0 + 2000, failures: 0 })).connections;
    t.true(none >= none0 + 2000, `counted as provider none: ${none - none0}`);
  } finally {
    t.is(await busted.stop(), 0, busted.stderr());
    plainServer.close();
    llmServer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}, EXCLUSIVE);
