/**
 * bpf/kstats.ts against the real object: map counts after user-space fills (hash, LPM trie),
 * the recount window, and the ring buffer's occupancy through its mmap'd positions.
 */
import type { ExecutionContext } from 'ava';
import { connect, createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { kernelTest } from '../helpers/kernel.js';

async function loaded() {
  const { BpfObject } = await import('../../src/bpf/object.js');
  const { OBJECT_PATH } = await import('../../src/bpf/probe.js');
  const kstats = await import('../../src/bpf/kstats.js');
  const obj = BpfObject.open(OBJECT_PATH);
  obj.load(); // maps only: nothing attached
  const reader = (now?: () => number) =>
    new kstats.KernelStatsReader(kstats.COUNTED_MAPS.map((n) => obj.map(n)), obj.map('events'), now ? { now } : {});
  return { obj, reader, kstats };
}

function u64(i: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(0xfeed_0000_0000n + BigInt(i));
  return b;
}

function lpm4(i: number): Buffer {
  const b = Buffer.alloc(8); // struct busted_lpm4 { __u32 prefixlen; __u8 addr[4]; }
  b.writeUInt32LE(24, 0);
  b.writeUInt32BE((10 << 24) + (i << 8), 4);
  return b;
}

function entriesOf(t: ExecutionContext, maps: { name: string; entries: number; max: number }[], name: string): number {
  const m = maps.find((x) => x.name === name);
  t.truthy(m, `${name} is reported`);
  return m?.entries ?? -1;
}

kernelTest('kstats: counts hash and LPM-trie entries exactly, reports the declared sizes, leaves arrays out', async (t) => {
  const { obj, reader, kstats } = await loaded();
  try {
    const fill = (name: string, n: number, key: (i: number) => Buffer) => {
      const map = obj.map(name);
      const value = Buffer.alloc(map.valueSize);
      for (let i = 0; i < n; i++) map.update(key(i), value);
    };
    fill('cut_socks', 5000, u64); // more than one batch chunk
    fill('traffic', 1234, u64);
    fill('llm_v4', 300, lpm4);
    const r = reader();
    try {
      const s = r.read();
      t.deepEqual(s.maps.map((m) => m.name), [...kstats.COUNTED_MAPS]);
      t.is(entriesOf(t, s.maps, 'cut_socks'), 5000);
      t.is(entriesOf(t, s.maps, 'traffic'), 1234);
      t.is(entriesOf(t, s.maps, 'llm_v4'), 300);
      t.is(entriesOf(t, s.maps, 'llm_v6'), 0);
      t.is(entriesOf(t, s.maps, 'sockets'), 0);
      const max = Object.fromEntries(s.maps.map((m) => [m.name, m.max]));
      t.deepEqual(max, {
        sockets: 16384, traffic: 16384, proc_verdicts: 16384, hashed_exes: 16384,
        cut_socks: 16384, llm_v4: 65536, llm_v6: 65536,
      });
      t.is(s.ringbufSizeBytes, 4_194_304);
      t.is(s.ringbufUsedBytes, 0);
      // a full hash map counts to its max
      fill('cut_socks', 16384, u64);
      const counter = new kstats.MapCounter();
      t.is(counter.entries(obj.map('cut_socks')), 16384);
      t.is(counter.entries(obj.map('stats')), null, 'per-CPU arrays are not counted');
      t.is(counter.entries(obj.map('policy')), null, 'arrays are not counted');
      t.is(counter.entries(obj.map('traffic_slots')), null, 'the counter slots (an array) are not counted');
    } finally {
      r.close();
    }
  } finally {
    obj.close();
  }
});

kernelTest('kstats: map counts are reused within the window and recounted after it', async (t) => {
  const { obj, reader } = await loaded();
  let now = 1_000_000;
  const r = reader(() => now);
  try {
    const map = obj.map('proc_verdicts');
    const value = Buffer.alloc(map.valueSize);
    const key = (i: number) => {
      const b = Buffer.alloc(map.keySize);
      b.writeUInt32LE(i + 1, 0);
      return b;
    };
    map.update(key(0), value);
    t.is(entriesOf(t, r.read().maps, 'proc_verdicts'), 1);
    map.update(key(1), value);
    now += 999;
    t.is(entriesOf(t, r.read().maps, 'proc_verdicts'), 1, 'cached for a second');
    now += 1;
    t.is(entriesOf(t, r.read().maps, 'proc_verdicts'), 2, 'recounted after a second');
  } finally {
    r.close();
    r.close(); // twice is harmless
    obj.close();
  }
});

kernelTest('kstats: the ring buffer fills while nobody consumes and empties when consumed', async (t) => {
  const { KernelProbe } = await import('../../src/bpf/probe.js');
  let events = 0;
  // selfTgid 0: this process's own connections are reported
  const probe = KernelProbe.start({ cgroupPath: null, onEvent: () => events++ });
  const server = createServer((s) => s.on('error', () => {}).end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    probe.poll();
    const port = (server.address() as AddressInfo).port;
    for (let i = 0; i < 5; i++) {
      const c = connect(port, '127.0.0.1');
      await once(c, 'connect');
      c.destroy();
    }
    await new Promise((res) => setTimeout(res, 50));
    const full = probe.kernelStats();
    t.is(full.ringbufSizeBytes, 4_194_304);
    t.true(full.ringbufUsedBytes > 0, `bytes waiting: ${full.ringbufUsedBytes}`);
    t.is(full.ringbufUsedBytes % 8, 0, 'records are 8-byte aligned');
    const deadline = Date.now() + 5000;
    let used = full.ringbufUsedBytes;
    while (used > 0 && Date.now() < deadline) {
      probe.poll(); // other tests' sockets may add records meanwhile: poll until it is seen empty
      used = probe.kernelStats().ringbufUsedBytes;
    }
    t.is(used, 0);
    t.true(events >= 5);
  } finally {
    server.close();
    probe.close();
  }
  t.is(probe.kernelStats().ringbufUsedBytes, 0, 'after close the unmapped positions are not read');
});
