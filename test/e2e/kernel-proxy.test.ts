/**
 * Flows through an HTTP proxy (HTTPS_PROXY), loopback only: a stand-in proxy on 127.0.0.1 that
 * answers a CONNECT request with 200 and then counts what comes through the tunnel. busted names
 * the flow by the CONNECT target (via proxy), keeps a non-LLM tunnel out by default, and judges
 * the flow by the policy in user space: a block under --enforce cuts it, an audit records it.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectRecord, EventRecord, PolicyRecord } from '../../src/core/records.js';
import { kernelTest } from '../helpers/kernel.js';
import { CLIENT, startBusted, type BustedRun } from '../helpers/busted.js';

interface Proxy {
  server: Server;
  port: number;
  /** Bytes received through tunnels after their CONNECT request, by the client's source port. */
  received: Map<number, number>;
  close(): void;
}

async function proxy(): Promise<Proxy> {
  const received = new Map<number, number>();
  const conns = new Set<Socket>();
  const server = createServer((s) => {
    conns.add(s);
    let head = '';
    let open = false;
    s.on('data', (d) => {
      if (open) {
        received.set(s.remotePort!, (received.get(s.remotePort!) ?? 0) + d.length);
        return;
      }
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      open = true;
      received.set(s.remotePort!, 0);
      s.write('HTTP/1.1 200 Connection established\r\n\r\n');
    }).on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server, port: (server.address() as AddressInfo).port, received,
    close: () => {
      for (const c of conns) c.destroy();
      server.close();
    },
  };
}

/** A client tunnelling to `target` through the proxy for `seconds` (asking `delay` s after its connect); resolves once the tunnel is up. */
async function tunnel(p: Proxy, target: string, seconds: number, delay = 0) {
  const child = spawn('python3', [CLIENT, 'tunnel', '127.0.0.1', String(p.port), target, String(seconds), String(delay)]);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = JSON.parse((await lines.next()).value as string) as { pid: number; sport: number; answer: string };
  const done = (async () => JSON.parse((await lines.next()).value as string) as { sent: number })();
  return { ...first, done };
}

/** A --policy file holding `text`, in a directory of its own. */
function policyFile(text: string): { policy: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'busted-proxy-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, text);
  return { policy, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const connectOf = (b: BustedRun, pid: number) =>
  b.waitFor((r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.pid === pid);
const policyOf = (b: BustedRun, pid: number) =>
  b.waitFor((r: EventRecord): r is PolicyRecord => r.type === 'policy' && r.pid === pid, 5000);

kernelTest('a flow through an HTTP proxy is named by its CONNECT target (via proxy); a non-LLM tunnel is hidden by default and shown with --all', async (t) => {
  const p = await proxy();
  try {
    const busted = await startBusted([], {}, { all: false });
    try {
      const llm = await tunnel(p, 'api.openai.com:443', 0.3);
      t.is(llm.answer, 'HTTP/1.1 200 Connection established');
      t.like(await connectOf(busted, llm.pid), { provider: 'openai', host: 'api.openai.com', via: 'proxy', dst: `127.0.0.1:${p.port}`, proto: 'tcp' });
      const other = await tunnel(p, 'www.example.org:443', 0.3);
      const marker = await tunnel(p, 'api.anthropic.com:443', 0.3);
      t.like(await connectOf(busted, marker.pid), { provider: 'anthropic', via: 'proxy' });
      t.false(busted.records.some((r) => 'pid' in r && r.pid === other.pid), 'a tunnel to a non-LLM host is not shown by default');
      await Promise.all([llm.done, other.done, marker.done]);
      const close = await busted.waitFor((r) => r.type === 'close' && r.pid === llm.pid);
      t.true((close as { tx: number }).tx > 40, 'its bytes are counted (the CONNECT request and the tunnel)');
      t.false(busted.records.some((r) => r.type === 'policy'), 'no policy: no decision');
    } finally {
      await busted.stop();
    }
    const all = await startBusted([]);
    try {
      const other = await tunnel(p, 'www.example.org:443', 0.2);
      t.like(await connectOf(all, other.pid), { provider: null, host: 'www.example.org', via: 'proxy' });
      const byAddress = await tunnel(p, '[::1]:8443', 0.2);
      t.like(await connectOf(all, byAddress.pid), { provider: null, host: '::1', via: 'proxy' });
      await Promise.all([other.done, byAddress.done]);
    } finally {
      await all.stop();
    }
  } finally {
    p.close();
  }
});

kernelTest('a proxied LLM flow is judged by the policy: a block under --enforce cuts it (nothing more reaches the proxy); an audit is a would-deny record', async (t) => {
  const { policy, cleanup } = policyFile('rules:\n  - name: no-openai-via-proxy\n    match: {provider: openai}\n    action: block\n  - name: watch-anthropic\n    match: {provider: anthropic}\n    action: audit\n');
  const p = await proxy();
  try {
    const enforce = await startBusted(['--policy', policy, '--enforce'], {}, { all: false });
    try {
      const blocked = await tunnel(p, 'api.openai.com:443', 4);
      const rec = await policyOf(enforce, blocked.pid);
      t.like(rec, { action: 'block', result: 'denied', cut: 1, dst: `127.0.0.1:${p.port}`, provider: 'openai', rule: 'no-openai-via-proxy', comm: 'python3' });
      const order = enforce.records.filter((r) => 'pid' in r && r.pid === blocked.pid).map((r) => r.type);
      t.true(order.indexOf('connect') === 0 && order.indexOf('policy') > 0, `its connect record first, then the decision: ${order.join(', ')}`);
      await new Promise((r) => setTimeout(r, 500));
      const atCut = p.received.get(blocked.sport) ?? 0;
      await new Promise((r) => setTimeout(r, 1500));
      t.is(p.received.get(blocked.sport) ?? 0, atCut, 'nothing reaches the proxy after the cut');
      t.true(atCut <= 2000, `at most what was sent before the cut: ${atCut} bytes`);
      const other = await tunnel(p, 'www.example.org:443', 1);
      await new Promise((r) => setTimeout(r, 800));
      t.true((p.received.get(other.sport) ?? 0) >= 500, 'a non-LLM tunnel of the same kind passes');
      await Promise.all([blocked.done, other.done]);
    } finally {
      await enforce.stop();
    }
    const audit = await startBusted(['--policy', policy], {}, { all: false });
    try {
      const watched = await tunnel(p, 'api.anthropic.com:443', 0.3);
      t.like(await policyOf(audit, watched.pid), { action: 'audit', result: 'would-deny', dst: `127.0.0.1:${p.port}`, provider: 'anthropic', rule: 'watch-anthropic' });
      const unenforced = await tunnel(p, 'api.openai.com:443', 0.3);
      const r = await policyOf(audit, unenforced.pid);
      t.like(r, { action: 'block', result: 'would-deny', provider: 'openai', rule: 'no-openai-via-proxy' });
      t.is(r.cut, undefined);
      await Promise.all([watched.done, unenforced.done]);
    } finally {
      await audit.stop();
    }
  } finally {
    p.close();
    cleanup();
  }
});

kernelTest('with --all, a proxy connection that asks for its tunnel only after it was reported is judged when the CONNECT names the provider (a classify record), and cut under --enforce', async (t) => {
  const { policy, cleanup } = policyFile('rules:\n  - name: no-openai-via-proxy\n    match: {provider: openai}\n    action: block\n');
  const p = await proxy();
  const busted = await startBusted(['--policy', policy, '--enforce']);
  try {
    const late = await tunnel(p, 'api.openai.com:443', 3, 2); // idle 2 s: reported by the idle iterator first
    const conn = await connectOf(busted, late.pid);
    t.like(conn, { provider: null, via: null }, 'reported before its CONNECT request');
    const cls = await busted.waitFor((r) => r.type === 'classify' && r.pid === late.pid);
    t.like(cls, { provider: 'openai', host: 'api.openai.com', via: 'proxy' });
    t.like(await policyOf(busted, late.pid), { action: 'block', result: 'denied', cut: 1, provider: 'openai', rule: 'no-openai-via-proxy' });
    await new Promise((r) => setTimeout(r, 500));
    const atCut = p.received.get(late.sport) ?? 0;
    await new Promise((r) => setTimeout(r, 1500));
    t.is(p.received.get(late.sport) ?? 0, atCut, 'nothing reaches the proxy after the cut');
    await late.done;
  } finally {
    await busted.stop();
    p.close();
    cleanup();
  }
});

kernelTest("the kernel's sample of a CONNECT request holds its request line only: the header lines after it (Proxy-Authorization) never leave the kernel", async (t) => {
  const { KernelProbe } = await import('../../src/bpf/probe.js');
  const { PayloadWhat } = await import('../../src/bpf/abi.js');
  const { connect } = await import('node:net');
  const samples: { sport: number; offset: number; total: number; data: Uint8Array }[] = [];
  // without the cgroup programs: this process's own socket is tracked from its SYN (selfTgid 0)
  const probe = KernelProbe.start({
    cgroupPath: null,
    onEvent: () => {},
    onPayload: (e) => {
      if (e.what === PayloadWhat.TLS) samples.push({ sport: e.sport, offset: e.offset, total: e.total, data: Uint8Array.from(e.data) });
    },
  });
  const p = await proxy();
  try {
    const c = connect(p.port, '127.0.0.1');
    await once(c, 'connect');
    const line = 'CONNECT api.openai.com:443 HTTP/1.1\r\n';
    const request = `${line}Host: api.openai.com:443\r\nProxy-Authorization: Basic c2VjcmV0OnBhc3N3b3Jk\r\n\r\n`;
    c.write(request);
    await once(c, 'data'); // the proxy's answer: the request went out
    c.write('tunnelled bytes after the answer');
    await new Promise((r) => setTimeout(r, 100));
    const deadline = Date.now() + 3000;
    const port = c.localPort;
    while (!samples.some((s) => s.sport === port) && Date.now() < deadline) {
      probe.poll();
      await new Promise((r) => setTimeout(r, 20));
    }
    probe.poll();
    c.destroy();
    const mine = samples.filter((s) => s.sport === port);
    t.is(mine.length, 1, `one sample: the request; nothing after it (port ${port}; samples: ${JSON.stringify(samples.map((s) => [s.sport, s.offset, s.total, Buffer.from(s.data).toString('latin1').slice(0, 40)]))})`);
    t.is(Buffer.from(mine[0]!.data).toString('latin1'), line);
    t.is(mine[0]!.offset, 0);
    t.is(mine[0]!.total, request.length, 'the send it came from');
  } finally {
    probe.close();
    p.close();
  }
});
