/**
 * The live pipeline against the real kernel: real busted process, real client process,
 * real loopback server in this (ava worker) process. Asserts the real pid, comm, uid, bytes.
 */
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { CloseRecord, ConnectRecord, EventRecord } from '../../src/core/records.js';
import { kernelTest } from '../helpers/kernel.js';
import { exchangeServer } from '../helpers/servers.js';
import { runClient, startBusted } from '../helpers/busted.js';

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
