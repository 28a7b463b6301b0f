/**
 * The live pipeline against the real kernel: real busted process, real client process,
 * real loopback server in this (ava worker) process. Asserts the real pid, comm, uid, bytes.
 */
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CloseRecord, ConnectRecord, EventRecord, TrafficRecord } from '../../src/core/records.js';
import { kernelTest } from '../helpers/kernel.js';
import { exchangeServer } from '../helpers/servers.js';
import { BUSTED_BIN, readyClient, runClient, startBusted } from '../helpers/busted.js';
import { holdingServer, portOf } from '../helpers/servers.js';

const isConnect = (pid: number) => (r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.pid === pid;
const isClose = (flow: string) => (r: EventRecord): r is CloseRecord => r.type === 'close' && r.flow === flow;

for (const host of ['127.0.0.1', '::1']) {
  kernelTest(`exchange over ${host}: connect and close records carry the client's pid, comm, uid and exact bytes`, async (t) => {
    const N = 12_345;
    const M = 54_321;
    const server = await exchangeServer(host, N, M);
    const port = (server.address() as AddressInfo).port;
    const busted = await startBusted();
    try {
      const client = await runClient(['exchange', host, port, N, M]);
      t.is(client.received, M);
      const conn = await busted.waitFor(isConnect(client.pid));
      t.is(conn.comm, client.comm);
      t.is(conn.uid, client.uid);
      t.is(conn.tid, client.pid);
      t.is(conn.proto, 'tcp');
      t.is(conn.error, null);
      const fmt = host.includes(':') ? `[${host}]` : host;
      t.is(conn.dst, `${fmt}:${port}`);
      t.is(conn.src, `${fmt}:${client.sport as number}`);
      t.true(conn.startTime > 0);
      const close = await busted.waitFor(isClose(conn.flow));
      t.is(close.pid, client.pid);
      t.is(close.tx, N);
      t.is(close.rx, M);
      t.true(close.durationMs > 0 && close.durationMs < 10_000, `durationMs ${close.durationMs}`);
      // the server's accepted socket is not an outbound connection
      const serverSide = busted.records.filter((r) => r.type === 'connect' && r.src === `${fmt}:${port}`);
      t.deepEqual(serverSide, []);
      t.false(busted.records.some((r) => r.type === 'lost'));
    } finally {
      t.is(await busted.stop(), 0);
      server.close();
    }
  });
}

kernelTest('a connect to a port nobody listens on is reported as failed by the right pid', async (t) => {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as AddressInfo).port;
  probe.close();
  await once(probe, 'close');
  const busted = await startBusted();
  try {
    const client = await runClient(['refused', '127.0.0.1', port]);
    t.is(client.error, 111);
    const conn = await busted.waitFor(isConnect(client.pid));
    t.is(conn.error, 'ECONNREFUSED');
    t.is(conn.dst, `127.0.0.1:${port}`);
    t.is(conn.comm, client.comm);
    t.false(busted.records.some((r) => r.type === 'close' && r.flow === conn.flow));
  } finally {
    await busted.stop();
  }
});

// an idle connection, and (busted --all: one that cannot be LLM traffic is kept back from its first
// send) one that keeps sending: both reported while open, by the idle iterator
for (const c of [
  { mode: 'idle', seconds: 6, what: 'moves no byte' },
  { mode: 'stream', seconds: 4, what: 'keeps sending (not LLM traffic: kept back from its first send under --all)' },
] as const) {
  kernelTest(`a connection that ${c.what} is reported while it is open, within 3 s of its connect, with its pid, addresses and connect time`, async (t) => {
    const server = await holdingServer('127.0.0.1');
    const busted = await startBusted();
    try {
      const client = await readyClient([c.mode, '127.0.0.1', portOf(server), c.seconds]);
      const connectedAt = Date.now();
      const conn = await busted.waitFor(isConnect(client.pid), 5000);
      const after = Date.now() - connectedAt;
      t.true(after < 3000, `reported ${after} ms after the connect`);
      t.is(conn.src, `127.0.0.1:${client.sport}`);
      t.is(conn.dst, `127.0.0.1:${portOf(server)}`);
      t.is(conn.error, null);
      t.true(Math.abs(Date.parse(conn.ts) - connectedAt) < 500, `its time is its connect's (${conn.ts})`);
      t.false(busted.records.some((r) => r.type === 'close' && r.flow === conn.flow), 'not by its close: it is still open');
      const done = await client.done;
      const close = await busted.waitFor(isClose(conn.flow));
      t.true(close.durationMs >= (c.seconds - 1) * 1000, `durationMs ${close.durationMs}`);
      t.is(busted.records.filter((r) => r.type === 'connect' && r.flow === conn.flow).length, 1, 'reported once');
      if (c.mode === 'idle') {
        t.is(close.tx, 0);
        t.is(close.rx, 0);
      } else {
        const sent = done.sent as number;
        t.is(close.tx, sent, 'every byte in its close');
        const traffic = busted.records.filter((r): r is TrafficRecord => r.type === 'traffic' && r.flow === conn.flow);
        t.true(traffic.length >= 1, 'traffic records while it was open');
        t.true(traffic.reduce((n, r) => n + r.tx, 0) <= sent);
      }
    } finally {
      await busted.stop();
      server.shut();
    }
  });
}

kernelTest('an idle connection in a network namespace of its own (a container\'s) is reported while it is open, by its pid', async (t) => {
  const busted = await startBusted();
  try {
    // a new network namespace with only its loopback up; the client listens and connects inside it
    const inNetns = ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"'];
    const client = await readyClient(['idle-self', '127.0.0.1', 6], inNetns);
    const connectedAt = Date.now();
    const conn = await busted.waitFor(isConnect(client.pid), 5000);
    const after = Date.now() - connectedAt;
    t.true(after < 3000, `reported ${after} ms after the connect`);
    t.is(conn.src, `127.0.0.1:${client.sport}`);
    t.is(conn.dst, `127.0.0.1:${client.port}`);
    t.false(busted.records.some((r) => r.type === 'close' && r.flow === conn.flow), 'not by its close: it is still open');
    await client.done;
    const close = await busted.waitFor(isClose(conn.flow));
    t.is(close.tx, 0);
  } finally {
    await busted.stop();
  }
});

kernelTest('a connection whose server speaks first is reported at its first receive, with the exact bytes', async (t) => {
  const M = 7_777;
  const server = createServer((s) => s.on('error', () => {}).end(Buffer.alloc(M, 0x62)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const busted = await startBusted();
  try {
    const client = await runClient(['listen-first', '127.0.0.1', portOf(server), M]);
    t.is(client.received, M);
    const conn = await busted.waitFor(isConnect(client.pid));
    t.is(conn.src, `127.0.0.1:${client.sport as number}`);
    const close = await busted.waitFor(isClose(conn.flow));
    t.is(close.tx, 0);
    t.is(close.rx, M);
  } finally {
    await busted.stop();
    server.close();
  }
});

kernelTest('500 short connections from one client all appear exactly once and nothing is lost', async (t) => {
  const COUNT = 500;
  const server = createServer((s) => s.on('error', () => {}).end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const busted = await startBusted(['--interval', '200']);
  try {
    const client = await runClient(['churn', '127.0.0.1', port, COUNT]);
    const sports = client.sports as number[];
    t.is(sports.length, COUNT);
    // every close arrives after its connect: wait for the last one
    const deadline = Date.now() + 10_000;
    const mine = () => busted.records.filter((r): r is ConnectRecord => r.type === 'connect' && r.pid === client.pid);
    const closes = () => busted.records.filter((r) => r.type === 'close' && r.pid === client.pid);
    while ((mine().length < COUNT || closes().length < COUNT) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const conns = mine();
    t.is(conns.length, COUNT);
    t.is(new Set(conns.map((c) => c.flow)).size, COUNT, 'each flow once');
    t.deepEqual(conns.map((c) => Number(c.src.split(':').pop())).sort(), [...sports].sort());
    t.is(closes().length, COUNT);
    t.deepEqual(busted.records.filter((r) => r.type === 'lost'), []);
  } finally {
    await busted.stop();
    server.close();
  }
});

kernelTest('stdout on a file system that fills up: said once on stderr, whole lines up to there, and busted goes on (its recording has every record)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-full-'));
  const small = path.join(dir, 'small');
  fs.mkdirSync(small);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', small], { encoding: 'utf8' });
  if (mount.status !== 0) return t.fail(`cannot mount a tmpfs: ${mount.stderr}`);
  const server = createServer((s) => s.on('error', () => {}).end());
  try {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const out = path.join(small, 'out.jsonl');
    const rec = path.join(dir, 'rec.jsonl');
    const fd = fs.openSync(out, 'w');
    const child = spawn(process.execPath, [BUSTED_BIN, '--format', 'json', '--all', '--record', rec, '--duration', '8'], { stdio: ['ignore', fd, 'pipe'] });
    fs.closeSync(fd);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = once(child, 'exit');
    const deadline = Date.now() + 20_000;
    while (!(fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('"type":"session"')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const client = await runClient(['churn', '127.0.0.1', port, 300]); // ~150 KB of lines: far more than 16 KiB
    const [code] = (await exited) as [number | null];
    t.is(code, 0, err);
    t.is(err.match(/writing to standard output failed \(ENOSPC\)/g)?.length, 1, err);
    // what reached the file is lines as busted wrote them, then nothing: at most one cut line
    const lines = fs.readFileSync(out, 'utf8').split('\n');
    t.true(lines.length > 5);
    for (const l of lines.slice(0, -1)) t.notThrows(() => JSON.parse(l));
    // the recording is another output: every connection is there
    const records = fs.readFileSync(rec, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as EventRecord);
    t.is(records.filter((r) => r.type === 'connect' && r.pid === client.pid).length, 300);
    t.is(records.filter((r) => r.type === 'close' && r.pid === client.pid).length, 300);
  } finally {
    server.close();
    spawnSync('umount', [small]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
