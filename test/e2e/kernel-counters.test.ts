/**
 * The counters' overflow path against the real kernel: with every free slot of busted's
 * `traffic_slots` taken from outside (a fake cookie put in by compare-and-swap, as the kernel
 * claims them), a new connection finds none of its candidate slots free and must keep exact
 * counters in the `traffic` hash: looked up there by its cookie, read by busted's user space
 * (traffic records), reported in its close record, and gone from the hash once closed.
 */
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import { OWNER, SOCK, Stat, TRAFFIC } from '../../src/bpf/abi.js';
import { libbpf } from '../../src/bpf/libbpf.js';
import type { CloseRecord, ConnectRecord, EventRecord, TrafficRecord } from '../../src/core/records.js';
import { mapsOf, perCpuSum, SlotsView, type MapInfo } from '../helpers/bpfmaps.js';
import { startBusted } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { until } from '../helpers/until.js';

const FAKE = 0xffff_ffff_ffff_fffen; // never a socket's cookie, nor BUSTED_SLOT_BUSY
const N = 23_456; // bytes the client sends
const M = 65_432; // bytes the server answers

/** The value for `cookie` in a hash keyed by cookie, through its own descriptor; null when absent. */
function lookupCookie(map: MapInfo, cookie: bigint, size: number): Buffer | null {
  const lib = libbpf();
  const fd = lib.bpf_map_get_fd_by_id(map.id) as number;
  if (fd < 0) throw new Error(`bpf_map_get_fd_by_id(${map.id}) failed: ${-fd}`);
  try {
    const key = Buffer.alloc(8);
    key.writeBigUInt64LE(cookie, 0);
    const value = Buffer.alloc(size);
    const ret = lib.bpf_map_lookup_elem(fd, key, value) as number;
    if (ret === -2) return null;
    if (ret < 0) throw new Error(`bpf_map_lookup_elem(${map.name}) failed: ${-ret}`);
    return value;
  } finally {
    fs.closeSync(fd);
  }
}

/** The overflow hash's counters for `cookie`; null when absent. */
function overflowEntry(map: MapInfo, cookie: bigint): { tx: bigint; rx: bigint } | null {
  const value = lookupCookie(map, cookie, TRAFFIC.size);
  return value && { tx: value.readBigUInt64LE(TRAFFIC.tx), rx: value.readBigUInt64LE(TRAFFIC.rx) };
}

/** The tgid of the owner the overflow `sockets` hash holds for `cookie`; null when absent. */
function overflowOwner(map: MapInfo, cookie: bigint): number | null {
  const value = lookupCookie(map, cookie, SOCK.size);
  return value && value.readUInt32LE(SOCK.owner + OWNER.tgid);
}

kernelTest('with every counter slot taken, a connection keeps exact counters in the overflow hash, read by busted and freed on close', async (t) => {
  // the server answers M bytes once it has N, and keeps the connection open until the client ends it
  const server = createServer((s) => {
    let got = 0;
    s.on('data', (d) => {
      got += d.length;
      if (got >= N && got - d.length < N) s.write(Buffer.alloc(M, 0x62));
    }).on('error', () => {}).on('end', () => s.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const busted = await startBusted(['--interval', '200']);
  const maps = await mapsOf(busted.child.pid!);
  const slotsMap = maps.get('traffic_slots');
  const overflow = maps.get('traffic');
  const owners = maps.get('sockets');
  const stats = maps.get('stats');
  if (!slotsMap || !overflow || !owners || !stats) throw new Error(`busted holds no traffic_slots, traffic, sockets or stats map: ${[...maps.keys()].join(', ')}`);
  const slots = SlotsView.open(slotsMap);
  let taken = 0;
  let client: Socket | null = null;
  try {
    const overflowBefore = await perCpuSum(stats.id, Stat.OVERFLOW);
    taken = slots.takeFree(FAKE);
    t.true(taken > slotsMap.maxEntries / 2, `only ${taken} free slots to take`);
    taken += slots.takeFree(FAKE); // any a closing socket gave back meanwhile

    client = createConnection({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    await once(client, 'connect');
    const sport = client.localPort!;
    const isOurs = (r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.src === `127.0.0.1:${sport}`;
    const conn = await busted.waitFor(isOurs);
    const cookie = BigInt(conn.flow);
    t.deepEqual(overflowEntry(overflow, cookie), { tx: 0n, rx: 0n }, 'the new socket\'s counters are not in the overflow hash');
    t.is(overflowOwner(owners, cookie), process.pid, 'the new socket\'s owner is not in the overflow `sockets` hash');
    t.is(conn.pid, process.pid);
    t.true((await perCpuSum(stats.id, Stat.OVERFLOW)) > overflowBefore, 'BUSTED_STAT_OVERFLOW did not move');

    let received = 0;
    client.on('data', (d: Buffer) => (received += d.length));
    client.write(Buffer.alloc(N, 0x61));
    await until(`the ${M} reply bytes`, 10_000, () => received >= M);
    await until('the kernel counters', 5_000, () => {
      const e = overflowEntry(overflow, cookie);
      return e !== null && e.tx === BigInt(N) && e.rx === BigInt(M);
    });
    // busted's own read (the overflow hash, after the overflow count moved) turns them into traffic records
    const traffic = () => busted.records.filter((r): r is TrafficRecord => r.type === 'traffic' && r.flow === conn.flow);
    await until('traffic records adding up to the exact bytes', 5_000, () => {
      const sum = traffic().reduce((s, r) => ({ tx: s.tx + r.tx, rx: s.rx + r.rx }), { tx: 0, rx: 0 });
      return sum.tx === N && sum.rx === M;
    });

    client.end();
    await once(client, 'close');
    const close = await busted.waitFor((r): r is CloseRecord => r.type === 'close' && r.flow === conn.flow);
    t.is(close.tx, N);
    t.is(close.rx, M);
    t.is(overflowEntry(overflow, cookie), null, 'the closed socket\'s counters are still in the overflow hash');
    t.is(overflowOwner(owners, cookie), null, 'the closed socket\'s owner is still in the overflow `sockets` hash');
    t.false(busted.records.some((r) => r.type === 'lost'));
  } finally {
    client?.destroy();
    const back = slots.giveBack(FAKE);
    slots.close();
    t.is(back, taken, 'slots taken and given back differ: the kernel wrote a slot it did not own');
    t.is(await busted.stop(), 0);
    server.close();
  }
});

kernelTest('a UDP socket in the overflow hashes that connects again is not tracked twice (getaddrinfo does this): one close, its overflow entries freed', async (t) => {
  const busted = await startBusted(['--interval', '200']);
  const maps = await mapsOf(busted.child.pid!);
  const slotsMap = maps.get('traffic_slots');
  const overflow = maps.get('traffic');
  const owners = maps.get('sockets');
  if (!slotsMap || !overflow || !owners) throw new Error(`busted holds no traffic_slots, traffic or sockets map: ${[...maps.keys()].join(', ')}`);
  const slots = SlotsView.open(slotsMap);
  const sock = createSocket('udp4');
  sock.on('error', () => {}); // nobody listens: the port unreachable comes back as ECONNREFUSED
  let taken = 0;
  try {
    taken = slots.takeFree(FAKE);
    taken += slots.takeFree(FAKE);
    // QUIC's port: a connected UDP socket to it is a flow (nothing needs to listen)
    sock.connect(443, '127.0.0.1');
    await once(sock, 'connect');
    sock.send(Buffer.alloc(10));
    const sport = sock.address().port;
    const conn = await busted.waitFor((r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.src === `127.0.0.1:${sport}`);
    const cookie = BigInt(conn.flow);
    t.is(overflowOwner(owners, cookie), process.pid, 'the socket is in the overflow hashes');
    // its candidate slots are free again when it connects again
    t.is(slots.giveBack(FAKE), taken);
    taken = 0;
    sock.disconnect();
    sock.connect(443, '127.0.0.1');
    await once(sock, 'connect');
    await new Promise<void>((res, rej) => sock.send(Buffer.alloc(20), (err) => (err ? rej(err) : res())));
    t.is(slots.holding(cookie), 0, 'the socket took a slot too: tracked twice');
    t.is(overflowOwner(owners, cookie), process.pid);
    sock.close();
    const close = await busted.waitFor((r): r is CloseRecord => r.type === 'close' && r.flow === conn.flow);
    t.is(close.tx, 30);
    t.is(overflowEntry(overflow, cookie), null, 'the closed socket\'s counters are still in the overflow hash');
    t.is(overflowOwner(owners, cookie), null, 'the closed socket\'s owner is still in the overflow `sockets` hash');
    t.is(slots.holding(cookie), 0);
    t.is(busted.records.filter((r) => r.type === 'close' && r.flow === conn.flow).length, 1);
  } finally {
    if (taken) slots.giveBack(FAKE);
    slots.close();
    t.is(await busted.stop(), 0);
  }
});
