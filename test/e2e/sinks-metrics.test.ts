/**
 * --metrics over HTTP on loopback: a Store fed with records in-process, then the real kernel
 * pipeline with a real client; each scrape is checked value by value and by `promtool check metrics`.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloseRecord, ConnectRecord, EventRecord } from '../../src/core/records.js';
import { Store } from '../../src/core/store.js';
import { attachSinks } from '../../src/sinks/wire.js';
import { runClient, startBusted } from '../helpers/busted.js';
import { parseRecording } from '../../src/sinks/replay.js';
import { kernelTest } from '../helpers/kernel.js';
import { sample } from '../helpers/prom.js';
import { exchangeServer, freePort } from '../helpers/servers.js';
import { close, CURL, NODE, PY, threeProcesses } from '../helpers/ui-fixtures.js';

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

/** promtool's lint of the exposition text; in CI (which installs it) a missing promtool fails. */
function promtoolCheck(t: ExecutionContext, text: string): void {
  if (!hasPromtool) {
    if (process.env.CI) t.fail('promtool is missing: install the Debian package prometheus (.ci/run does)');
    else t.log('promtool not installed (apt-get install prometheus): exposition not linted');
    return;
  }
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  t.is(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
  t.is(`${r.stdout}${r.stderr}`.trim(), '', 'no lint findings');
}

interface Reply { status: number; type: string; body: string }

function get(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample in the text exposition (labels in any order), or undefined. */
test('a scrape on 127.0.0.1 shows each provider and process with the bytes fed in, and passes promtool', async (t) => {
  const store = new Store();
  const warnings: string[] = [];
  const sinks = await attachSinks(store, {
    metrics: '127.0.0.1:0', onWarning: (m) => warnings.push(m),
    stats: () => ({ lost: 0, ringbufUsedBytes: 0, ringbufSizeBytes: 262_144, maps: [{ name: 'sockets', entries: 3, max: 65_536 }] }),
  });
  try {
    t.regex(sinks.metricsUrl!, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    for (const r of threeProcesses()) store.publish(r);
    store.publish(close(2000, '1', PY.pid, 1500, 60_000));
    const r = await get(sinks.metricsUrl!);
    t.is(r.status, 200);
    t.is(r.type, 'text/plain; version=0.0.4; charset=utf-8');
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'openai', direction: 'tx' }), 1500);
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'openai', direction: 'rx' }), 60_000);
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'anthropic', direction: 'rx' }), 20_000);
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'ollama', direction: 'tx' }), 90_000);
    t.is(sample(r.body, 'busted_connections_total', { provider: 'openai', proto: 'tcp' }), 1);
    t.is(sample(r.body, 'busted_connections_open', { provider: 'openai' }), 0);
    t.is(sample(r.body, 'busted_connections_open', { provider: 'anthropic' }), 1);
    const proc = (p: { pid: number; comm: string; uid: number }, provider: string, direction: string) =>
      sample(r.body, 'busted_process_bytes_total', { pid: String(p.pid), comm: p.comm, user: String(p.uid), agent: '', provider, direction });
    t.is(proc(PY, 'openai', 'rx'), 60_000);
    t.is(proc(NODE, 'anthropic', 'tx'), 2000);
    t.is(proc(CURL, 'ollama', 'tx'), 90_000);
    t.is(sample(r.body, 'busted_map_max_entries', { map: 'sockets' }), 65_536);
    promtoolCheck(t, r.body);
    t.deepEqual(warnings, []);
  } finally {
    await sinks.close();
  }
});

test('the metrics server: HEAD, 404 and 405; a port in use is one clear sentence; IPv6 loopback works', async (t) => {
  const store = new Store();
  const sinks = await attachSinks(store, { metrics: '[::1]:0', onWarning: () => {} });
  try {
    t.regex(sinks.metricsUrl!, /^http:\/\/\[::1\]:\d+\/metrics$/);
    const head = await get(sinks.metricsUrl!, 'HEAD');
    t.is(head.status, 200);
    t.is(head.body, '');
    t.is((await get(sinks.metricsUrl!.replace('/metrics', '/nope'))).status, 404);
    t.is((await get(sinks.metricsUrl!, 'POST')).status, 405);
    t.is((await get(sinks.metricsUrl!.replace('/metrics', '/'))).status, 200);
    const port = new URL(sinks.metricsUrl!).port;
    const err = await t.throwsAsync(attachSinks(new Store(), { metrics: `[::1]:${port}`, onWarning: () => {} }));
    t.is(err!.message, `Cannot serve metrics on [::1]:${port}: the port is already in use; choose another address with --metrics [HOST:]PORT.`);
  } finally {
    await sinks.close();
  }
  // closed: the port is free again
  const again = await attachSinks(store, { metrics: sinks.metricsUrl!.split('/')[2]!, onWarning: () => {} });
  await again.close();
  t.pass();
});

kernelTest('live: after a real client talks to a --providers range, the scrape shows its provider, process and exact bytes', async (t) => {
  const { startEngine } = await import('../../src/core/engine.js');
  const { loadCatalog } = await import('../../src/core/catalog.js');
  const dir = mkdtempSync(join(tmpdir(), 'busted-metrics-'));
  const file = join(dir, 'providers.yaml');
  writeFileSync(file, 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.88.0.0/16]\n    source: https://example.test/acme\n');
  const N = 23_456;
  const M = 65_432;
  const server = await exchangeServer('127.88.3.4', N, M);
  const store = new Store();
  const records: EventRecord[] = [];
  store.onRecord((r) => records.push(r));
  const engine = await startEngine(store, { catalog: loadCatalog(file), all: false, intervalMs: 200, verbose: false });
  const sinks = await attachSinks(store, { metrics: '127.0.0.1:0', onWarning: (m) => t.log(m) });
  try {
    const client = await runClient(['exchange', '127.88.3.4', (server.address() as AddressInfo).port, N, M]);
    const deadline = Date.now() + 10_000;
    let conn: ConnectRecord | undefined;
    let closed: CloseRecord | undefined;
    while (Date.now() < deadline && !closed) {
      conn ??= records.find((r): r is ConnectRecord => r.type === 'connect' && r.pid === client.pid);
      closed = conn && records.find((r): r is CloseRecord => r.type === 'close' && r.flow === conn!.flow);
      await new Promise((res) => setTimeout(res, 50));
    }
    t.truthy(closed, 'the client flow closed');
    const r = await get(sinks.metricsUrl!);
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'acme-llm', direction: 'tx' }), N);
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'acme-llm', direction: 'rx' }), M);
    t.is(sample(r.body, 'busted_connections_total', { provider: 'acme-llm', proto: 'tcp' }), 1);
    t.is(sample(r.body, 'busted_connections_open', { provider: 'acme-llm' }), 0);
    const procLabels = { pid: String(client.pid), comm: client.comm, user: conn!.user ?? String(client.uid), agent: conn!.agent?.id ?? '', provider: 'acme-llm' };
    t.is(sample(r.body, 'busted_process_bytes_total', { ...procLabels, direction: 'tx' }), N);
    t.is(sample(r.body, 'busted_process_bytes_total', { ...procLabels, direction: 'rx' }), M);
    t.truthy(sample(r.body, 'busted_build_info', { version: engine.session.version, kernel: engine.session.kernel }));
    promtoolCheck(t, r.body);
  } finally {
    await sinks.close();
    await engine.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The kernel's map sizes (bpf/busted.bpf.c). */
const MAP_MAX = {
  traffic_slots: 65536, sockets: 16384, traffic: 16384, proc_verdicts: 16384, hashed_exes: 16384,
  cut_socks: 16384, llm_v4: 65536, llm_v6: 65536,
};

/** A python process holding `k` loopback connections open until its stdin closes. */
async function holdConnections(port: number, k: number): Promise<{ pid: number; release: () => Promise<void> }> {
  const script = 'import json,os,socket,sys\n' +
    `s=[socket.create_connection(("127.0.0.1",${port})) for _ in range(${k})]\n` +
    'print(json.dumps({"pid":os.getpid()}),flush=True)\nsys.stdin.read()\n';
  const child = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await Promise.race([once(child.stdout, 'data'), once(child, 'exit')])) as [Buffer | number | null];
  if (!Buffer.isBuffer(line)) throw new Error(`the connection holder exited (${line}) before connecting`);
  const { pid } = JSON.parse(line.toString()) as { pid: number };
  return {
    pid,
    release: async () => {
      child.stdin.end();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

kernelTest('live: with K loopback connections held open, the scrape shows the kernel maps (counter slots in use >= K), their sizes and the 4 MiB ring buffer', async (t) => {
  const { startEngine } = await import('../../src/core/engine.js');
  const K = 40;
  const held: Socket[] = [];
  const server = createServer((sock) => {
    held.push(sock);
    sock.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const store = new Store();
  const records: EventRecord[] = [];
  store.onRecord((r) => records.push(r));
  const engine = await startEngine(store, { all: true, intervalMs: 200, verbose: false });
  const sinks = await attachSinks(store, {
    metrics: '127.0.0.1:0', onWarning: (m) => t.log(m),
    stats: () => {
      const k = engine.kernelStats();
      return { ...k, lost: Math.max(store.table.lost, k.lost) };
    },
  });
  const holder = await holdConnections((server.address() as AddressInfo).port, K);
  try {
    const deadline = Date.now() + 10_000;
    const connects = () => records.filter((r) => r.type === 'connect' && r.pid === holder.pid).length;
    while (connects() < K && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    t.is(connects(), K, 'busted saw every connection');
    // the slots in use are counted by the scan of each tick: the next one sees the K sockets
    let r = await get(sinks.metricsUrl!);
    for (let i = 0; i < 40 && sample(r.body, 'busted_map_entries', { map: 'traffic_slots' })! < K; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await get(sinks.metricsUrl!);
    }
    const slots = sample(r.body, 'busted_map_entries', { map: 'traffic_slots' })!;
    t.true(slots >= K && slots <= MAP_MAX.traffic_slots, `traffic_slots: ${slots}`);
    for (const [map, max] of Object.entries(MAP_MAX)) {
      t.is(sample(r.body, 'busted_map_max_entries', { map }), max, map);
      const n = sample(r.body, 'busted_map_entries', { map });
      t.true(n !== undefined && n >= 0 && n <= max, `${map}: ${n}`);
    }
    t.is(sample(r.body, 'busted_ringbuf_size_bytes'), 4_194_304);
    const used = sample(r.body, 'busted_ringbuf_used_bytes')!;
    t.true(used >= 0 && used <= 4_194_304, `ring buffer used: ${used}`);
    t.true(sample(r.body, 'busted_kernel_lost_events_total')! >= 0);
    promtoolCheck(t, r.body);
  } finally {
    await holder.release();
    await sinks.close();
    await engine.stop();
    for (const s of held) s.destroy();
    server.close();
  }
});

kernelTest('the busted CLI: --metrics scrape after real traffic, --record rotating at 4K with --record-keep 3, SIGHUP reopens', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-cli-sinks-'));
  const providers = join(dir, 'providers.yaml');
  writeFileSync(providers, 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.88.0.0/16]\n    source: https://example.test/acme\n');
  const rec = join(dir, 'rec.jsonl');
  const port = await freePort();
  const server = await exchangeServer('127.88.3.5', 4321, 8765);
  const small = await exchangeServer('127.88.3.5', 10, 10);
  const busted = await startBusted(['--providers', providers, '--metrics', `127.0.0.1:${port}`, '--record', rec,
    '--record-max-size', '4K', '--record-keep', '3', '--record-flush', '50'], {}, { all: false });
  try {
    const sport = (server.address() as AddressInfo).port;
    const smallPort = (small.address() as AddressInfo).port;
    let last = await runClient(['exchange', '127.88.3.5', sport, 4321, 8765]);
    const isClose = (pid: number) => (r: EventRecord) => r.type === 'close' && (r as CloseRecord).pid === pid;
    await busted.waitFor(isClose(last.pid));
    const r = await get(`http://127.0.0.1:${port}/metrics`);
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'acme-llm', direction: 'tx' }), 4321);
    t.is(sample(r.body, 'busted_bytes_total', { provider: 'acme-llm', direction: 'rx' }), 8765);
    t.is(sample(r.body, 'busted_ringbuf_size_bytes'), 4_194_304, 'the CLI passes the kernel stats');
    t.is(sample(r.body, 'busted_map_max_entries', { map: 'sockets' }), MAP_MAX.sockets);
    t.true(sample(r.body, 'busted_map_entries', { map: 'traffic' })! >= 0);
    promtoolCheck(t, r.body);
    for (let i = 0; i < 12; i++) last = await runClient(['exchange', '127.88.3.5', smallPort, 10, 10]);
    await busted.waitFor(isClose(last.pid));
    await new Promise((res) => setTimeout(res, 200)); // one flush interval
    renameSync(rec, `${rec}.moved`);
    busted.child.kill('SIGHUP');
    last = await runClient(['exchange', '127.88.3.5', smallPort, 10, 10]);
    await busted.waitFor(isClose(last.pid));
    const deadline = Date.now() + 5000;
    while (!existsSync(rec) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  } finally {
    t.is(await busted.stop(), 0, busted.stderr());
    server.close();
    small.close();
  }
  const files = readdirSync(dir).filter((f) => f.startsWith('rec.jsonl')).sort();
  t.true(files.includes('rec.jsonl') && files.includes('rec.jsonl.moved'), files.join(' '));
  t.true(files.includes('rec.jsonl.1'), `it rotated at 4K: ${files.join(' ')}`);
  t.true(files.filter((f) => /^rec\.jsonl(\.\d+)?$/.test(f)).length <= 3, files.join(' '));
  for (const f of files) {
    const p = join(dir, f);
    const parsed = parseRecording(readFileSync(p, 'utf8'));
    t.deepEqual(parsed.problems, [], f);
    t.false(parsed.truncatedLastLine, f);
    t.is(parsed.records[0]?.type, 'session', `${f} starts with the session record`);
    t.is(statSync(p).mode & 0o777, 0o600);
  }
  const fresh = parseRecording(readFileSync(rec, 'utf8')).records;
  t.true(fresh.some((x) => x.type === 'close'), 'records after SIGHUP went to the new file');
  rmSync(dir, { recursive: true, force: true });
});
