/**
 * Enforcement against the real kernel, loopback only: provider addresses are loopback ranges
 * mapped by a providers file. The engine runs in this test process; clients are separate
 * processes whose connects the kernel refuses (EPERM) or lets through.
 */
import type { AddressInfo } from 'node:net';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readStartTime } from '../../src/core/identity.js';
import { parseProviders, Catalog, loadCatalog, mergeProviders } from '../../src/core/catalog.js';
import { startEngine, type Engine } from '../../src/core/engine.js';
import { Store } from '../../src/core/store.js';
import type { EventRecord, PolicyRecord } from '../../src/core/records.js';
import { kernelTest } from '../helpers/kernel.js';
import { holdingServer } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { ROOT } from '../helpers/busted.js';

const EPERM = 1;
const CLIENT = `${ROOT}test/helpers/client.py`;

function testCatalog(): Catalog {
  const extra = parseProviders('providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.99.0.0/16]\n    source: https://example.test/acme\n', 'test');
  return new Catalog(mergeProviders(loadCatalog().entries, extra));
}


/** A client process that connects once per `go()`. */
async function waitingClient(host: string, port: number, count: number) {
  const child: ChildProcessWithoutNullStreams = spawn('python3', [CLIENT, 'wait-connect', host, String(port), String(count)]);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = JSON.parse((await lines.next()).value as string) as { pid: number };
  const startTime = readStartTime(first.pid)!;
  return {
    pid: first.pid,
    startTime,
    async go(): Promise<{ ok: boolean; error: number | null }> {
      child.stdin.write('\n');
      return JSON.parse((await lines.next()).value as string);
    },
    end: () => child.kill(),
  };
}

async function withEngine(enforce: boolean, fn: (e: Engine, records: EventRecord[]) => Promise<void>) {
  const store = new Store();
  const records: EventRecord[] = [];
  store.onRecord((r) => records.push(r));
  const engine = await startEngine(store, { catalog: testCatalog(), all: true, intervalMs: 200, verbose: false, enforce });
  try {
    await fn(engine, records);
  } finally {
    await engine.stop();
  }
}

/** A client that streams to `server` (`stream`), or connects and streams once told (`idle-then-send`): its pid, stdin and lines. */
async function streamingClient(mode: 'stream' | 'idle-then-send', host: string, server: AddressInfo, seconds: number) {
  const child = spawn('python3', [CLIENT, mode, host, String(server.port), String(seconds)]);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const { pid } = JSON.parse((await lines.next()).value as string) as { pid: number };
  return { pid, startTime: readStartTime(pid)!, child, next: async () => JSON.parse((await lines.next()).value as string) as Record<string, unknown> };
}

const policyOf = (records: EventRecord[], pid: number) => records.filter((r): r is PolicyRecord => r.type === 'policy' && r.pid === pid);
const settle = () => new Promise((r) => setTimeout(r, 300));

kernelTest('a busted-top block toggle refuses the process\'s next provider connect with EPERM, and clearing it restores it', async (t) => {
  const llm = await holdingServer('127.99.0.1');
  const other = await holdingServer('127.0.0.1');
  await withEngine(true, async (engine, records) => {
    const blocked = await waitingClient('127.99.0.1', (llm.address() as AddressInfo).port, 3);
    const bystander = await waitingClient('127.99.0.1', (llm.address() as AddressInfo).port, 1);
    const same = await waitingClient('127.0.0.1', (other.address() as AddressInfo).port, 1);
    t.deepEqual(await blocked.go(), { ok: true, error: null }, 'before the toggle');
    engine.setVerdict(blocked.pid, blocked.startTime, 'block');
    t.deepEqual(await blocked.go(), { ok: false, error: EPERM }, 'blocked');
    t.deepEqual(await bystander.go(), { ok: true, error: null }, 'another process still reaches the provider');
    t.deepEqual(await same.go(), { ok: true, error: null }, 'non-LLM traffic is never touched');
    await settle();
    const rec = policyOf(records, blocked.pid).find((r) => r.result === 'denied' && r.dst !== '*');
    t.like(rec, { action: 'block', result: 'denied', provider: 'acme-llm', rule: 'busted-top' });
    engine.setVerdict(blocked.pid, blocked.startTime, null);
    t.deepEqual(await blocked.go(), { ok: true, error: null }, 'cleared');
    for (const c of [blocked, bystander, same]) c.end();
  });
  llm.shut();
  other.shut();
});

kernelTest('without --enforce a block is an audit: the connect succeeds and a would-deny policy record says so', async (t) => {
  const llm = await holdingServer('127.99.0.2');
  await withEngine(false, async (engine, records) => {
    const c = await waitingClient('127.99.0.2', (llm.address() as AddressInfo).port, 1);
    engine.setVerdict(c.pid, c.startTime, 'block');
    t.deepEqual(await c.go(), { ok: true, error: null });
    await settle();
    t.like(policyOf(records, c.pid)[0], { action: 'block', result: 'would-deny', provider: 'acme-llm', dst: `127.99.0.2:${(llm.address() as AddressInfo).port}` });
    c.end();
  });
  llm.shut();
});

kernelTest('an open flow keeps carrying bytes until its process is blocked, then stops within 1 s', async (t) => {
  const llm = await holdingServer('127.99.0.3');
  await withEngine(true, async (engine, records) => {
    const { pid, startTime, child } = await streamingClient('stream', '127.99.0.3', llm.address() as AddressInfo, 4);
    // the flow must be in the table (its connect published) before the block can find it
    await new Promise((r) => setTimeout(r, 1200));
    const before = llm.received;
    t.true(before > 0, 'bytes arrive before the block');
    engine.setVerdict(pid, startTime, 'block');
    await new Promise((r) => setTimeout(r, 1000)); // "within 1 s"
    const afterCut = llm.received;
    await new Promise((r) => setTimeout(r, 1500));
    t.is(llm.received, afterCut, 'no bytes reach the server after the cut');
    t.true(afterCut - before <= 400, `at most what was in flight: ${afterCut - before} bytes`);
    t.true(policyOf(records, pid).some((r) => r.rule === 'busted-top' && r.cut === 1));
    child.kill();
  });
  llm.shut();
});

kernelTest('a connection that has moved no byte yet is cut when its process is blocked: nothing it sends afterwards arrives', async (t) => {
  const llm = await holdingServer('127.99.0.4');
  await withEngine(true, async (engine, records) => {
    const { pid, startTime, child, next } = await streamingClient('idle-then-send', '127.99.0.4', llm.address() as AddressInfo, 1.5);
    // at once: the connection is established but not announced (no byte, well under a second old)
    engine.setVerdict(pid, startTime, 'block');
    child.stdin.write('\n');
    const { sent } = await next();
    t.true((sent as number) > 0, 'the client wrote into its socket');
    await new Promise((r) => setTimeout(r, 300));
    t.is(llm.received, 0, 'no byte reached the server');
    t.true(policyOf(records, pid).some((r) => r.rule === 'busted-top' && r.cut === 1), 'the cut is reported');
  });
  llm.shut();
});

kernelTest('a flow reported before its ClientHello, of a process blocked meanwhile, is cut once its SNI names a provider (a classify record)', async (t) => {
  const server = await holdingServer('127.0.0.1'); // no provider's address: named by its SNI only
  await withEngine(true, async (engine, records) => {
    const child = spawn('python3', [CLIENT, 'wait-tls', '127.0.0.1', String((server.address() as AddressInfo).port), 'api.openai.com', '2']);
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    try {
      const { pid } = JSON.parse((await lines.next()).value as string) as { pid: number };
      const startTime = readStartTime(pid)!;
      const ofPid = (type: string) => records.find((r) => r.type === type && 'pid' in r && r.pid === pid);
      t.like(await until('its connect record', 6000, () => ofPid('connect')), { provider: null }, 'reported (idle) before its ClientHello');
      engine.setVerdict(pid, startTime, 'block');
      await settle();
      t.is(policyOf(records, pid).filter((r) => r.cut).length, 0, 'no LLM flow to cut yet');
      child.stdin.write('\n');
      const cut = await until('the cut', 3000, () => policyOf(records, pid).find((r) => r.cut));
      t.like(ofPid('classify'), { provider: 'openai', host: 'api.openai.com', via: 'sni' });
      t.like(cut, { action: 'block', result: 'denied', rule: 'busted-top', cut: 1 });
      await settle();
      const atCut = server.received;
      const { sent } = JSON.parse((await lines.next()).value as string) as { sent: number };
      t.is(server.received, atCut, `nothing reaches the server after the cut (the client wrote ${sent} bytes after its ClientHello)`);
      t.true(sent > atCut, `the client kept writing: ${sent} bytes, ${atCut} arrived`);
    } finally {
      child.kill();
    }
  });
  server.shut();
});
