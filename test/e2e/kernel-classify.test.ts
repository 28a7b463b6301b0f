/**
 * Classification against the real kernel, loopback only: SNI from real ClientHellos (python's
 * TLS client against a plain listener), DNS answers from a DNS server this test runs on a
 * loopback address, a --providers range mapping loopback, a local model server found by its
 * listener process, and connected UDP flows.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, realpathSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import type { CloseRecord, ConnectRecord, EventRecord } from '../../src/core/records.js';
import { kernelTest } from '../helpers/kernel.js';
import { runClient, startBusted, type BustedRun } from '../helpers/busted.js';

/** A plain TCP listener that ends each connection after its first bytes (a TLS client then gives up). */
async function sink(host: string, port = 0): Promise<Server> {
  const server = createServer((s) => s.once('data', () => s.end()).on('error', () => {}));
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}

const portOf = (s: Server) => (s.address() as AddressInfo).port;
const connectOf = (b: BustedRun, pid: number) =>
  b.waitFor((r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.pid === pid);

const SNI_CASES: [string, string][] = [
  ['api.openai.com', 'openai'],
  ['api.anthropic.com', 'anthropic'],
  ['generativelanguage.googleapis.com', 'gemini'],
  ['us-central1-aiplatform.googleapis.com', 'vertex-ai'],
  ['contoso.openai.azure.com', 'azure-openai'],
  ['bedrock-runtime.eu-west-3.amazonaws.com', 'aws-bedrock'],
  ['api.mistral.ai', 'mistral'],
  ['api.groq.com', 'groq'],
  ['openrouter.ai', 'openrouter'],
  ['api.deepseek.com', 'deepseek'],
];

for (const host of ['127.0.0.1', '::1']) {
  kernelTest(`SNI over ${host}: each flow names its provider and host, via sni; a non-LLM name is hidden by default`, async (t) => {
    const server = await sink(host);
    const busted = await startBusted([], {}, { all: false });
    try {
      for (const [sni, provider] of SNI_CASES) {
        const client = await runClient(['tls', host, portOf(server), sni]);
        const conn = await connectOf(busted, client.pid);
        t.like(conn, { provider, host: sni, via: 'sni', proto: 'tcp' }, sni);
      }
      const other = await runClient(['tls', host, portOf(server), 'www.example.org']);
      const marker = await runClient(['tls', host, portOf(server), 'api.openai.com']);
      await connectOf(busted, marker.pid); // everything before it has been printed
      t.false(busted.records.some((r) => 'pid' in r && r.pid === other.pid), 'non-LLM flow shown without --all');
    } finally {
      await busted.stop();
      server.close();
    }
  });
}

kernelTest('with --all a non-LLM TLS flow is shown with its SNI as host and no provider', async (t) => {
  const server = await sink('127.0.0.1');
  const busted = await startBusted();
  try {
    const client = await runClient(['tls', '127.0.0.1', portOf(server), 'www.example.org']);
    t.like(await connectOf(busted, client.pid), { provider: null, host: 'www.example.org', via: 'sni' });
  } finally {
    await busted.stop();
    server.close();
  }
});

/** A DNS server on `ip`:53 answering every A query from `answers` (name → CNAME chain + address). */
async function dnsServer(ip: string, answers: Record<string, { cname?: string; address: string }>) {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const name = q.questions?.[0]?.name ?? '';
    const a = answers[name];
    const records: dnsPacket.Answer[] = [];
    if (a?.cname) records.push({ type: 'CNAME', name, ttl: 300, data: a.cname });
    if (a) records.push({ type: 'A', name: a.cname ?? name, ttl: 300, data: a.address });
    const resp = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: records });
    sock.send(resp, rinfo.port, rinfo.address);
  });
  sock.bind(53, ip);
  await once(sock, 'listening');
  return sock;
}

kernelTest('a 1.6 KB ClientHello written in pieces (send, sendmsg with two buffers, write, writev) is followed across them: via sni, by default', async (t) => {
  const server = createServer((s) => s.on('data', () => {}).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const busted = await startBusted([], {}, { all: false });
  try {
    const client = await runClient(['hello-parts', '127.0.0.1', portOf(server), 'api.anthropic.com', 1500]);
    t.true((client.bytes as number) > 1400, 'the record spans more than one 1 KiB sample and every write');
    t.like(await connectOf(busted, client.pid), { provider: 'anthropic', host: 'api.anthropic.com', via: 'sni', proto: 'tcp' });
    const close = await busted.waitFor((r): r is CloseRecord => r.type === 'close' && r.pid === client.pid);
    t.is(close.tx, client.bytes as number);
  } finally {
    await busted.stop();
    server.close();
  }
});

kernelTest('a DNS answer from a local DNS server classifies a plain TCP flow to that address, via dns (also through a CNAME)', async (t) => {
  const dns = await dnsServer('127.0.0.153', {
    'api.openai.com': { address: '127.0.0.77' },
    'api.cohere.com': { cname: 'edge.cohere-cdn.test', address: '127.0.0.78' },
  });
  const s1 = await sink('127.0.0.77');
  const s2 = await sink('127.0.0.78', portOf(s1));
  const busted = await startBusted([], {}, { all: false });
  try {
    const a = await runClient(['dns', '127.0.0.153', `api.openai.com:${portOf(s1)}`, 100]);
    t.is(a.address, '127.0.0.77');
    t.like(await connectOf(busted, a.pid), { provider: 'openai', host: 'api.openai.com', via: 'dns', dst: `127.0.0.77:${portOf(s1)}` });
    const b = await runClient(['dns', '127.0.0.153', `api.cohere.com:${portOf(s1)}`, 100]);
    t.like(await connectOf(busted, b.pid), { provider: 'cohere', host: 'api.cohere.com', via: 'dns' });
    const close = await busted.waitFor((r): r is CloseRecord => r.type === 'close' && r.pid === b.pid);
    t.is(close.tx, 100);
  } finally {
    await busted.stop();
    dns.close();
    s1.close();
    s2.close();
  }
});

kernelTest('a --providers file mapping a loopback range classifies flows into it, via cidr', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-providers-'));
  const file = join(dir, 'providers.yaml');
  writeFileSync(file, [
    'providers:',
    '  - id: acme-llm',
    '    name: Acme LLM',
    '    hosts: [api.acme-llm.test]',
    '    cidrs: [127.88.0.0/16]',
    '    source: https://example.test/acme-ranges',
    '',
  ].join('\n'));
  const server = await sink('127.88.1.2');
  const busted = await startBusted(['--providers', file], {}, { all: false });
  try {
    const client = await runClient(['exchange', '127.88.1.2', portOf(server), 10, 0]);
    t.like(await connectOf(busted, client.pid), { provider: 'acme-llm', host: null, via: 'cidr' });
  } finally {
    await busted.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('a bad --providers file is refused naming file, line and field, and nothing is attached', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-providers-'));
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'providers:\n  - id: acme\n    name: Acme\n    hosts: [api.acme.test]\n    cidrs: [10.0.0.0/33]\n    source: https://example.test/x\n');
  const r = spawn(process.execPath, ['bin/busted.js', '--providers', file], { cwd: new URL('../../', import.meta.url).pathname });
  let err = '';
  r.stderr.on('data', (d) => (err += d));
  const [code] = await once(r, 'exit');
  t.is(code, 2);
  t.regex(err, /bad\.yaml, line 5, providers\[0\] \(id "acme"\), field cidrs\[0\]/);
  rmSync(dir, { recursive: true, force: true });
});

kernelTest('a listener process named like a local model server (ollama on 11434) classifies flows to it, via port', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-ollama-'));
  const python = realpathSync(execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim());
  const fake = join(dir, 'ollama');
  copyFileSync(python, fake);
  execFileSync('chmod', ['+x', fake]);
  const server = spawn(fake, ['-c', [
    'import socket, time',
    's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    "s.bind(('127.0.0.1', 11434)); s.listen(16); print('ready', flush=True)",
    'while True:',
    '    c, _ = s.accept(); c.recv(100); c.close()',
  ].join('\n')]);
  await once(server.stdout, 'data');
  const busted = await startBusted([], {}, { all: false });
  try {
    const client = await runClient(['exchange', '127.0.0.1', 11434, 10, 0]);
    t.like(await connectOf(busted, client.pid), { provider: 'ollama', via: 'port', dst: '127.0.0.1:11434' });
  } finally {
    await busted.stop();
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('a connected UDP socket to port 443 (QUIC) is a udp flow with its bytes', async (t) => {
  const busted = await startBusted();
  try {
    const client = await runClient(['udp', '127.0.0.1', 443, 1200]);
    const conn = await connectOf(busted, client.pid);
    t.like(conn, { proto: 'udp', dst: '127.0.0.1:443', src: `127.0.0.1:${client.sport as number}` });
    const close = await busted.waitFor((r): r is CloseRecord => r.type === 'close' && r.flow === conn.flow);
    t.is(close.tx, 1200);
  } finally {
    await busted.stop();
  }
});

