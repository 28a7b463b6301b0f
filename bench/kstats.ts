/**
 * What a metrics scrape costs in the kernel-stats part: counting busted's maps (bpf/kstats.ts)
 * with 16,384 entries in a hash map (`cut_socks`, filled to its max), 16,384 in another
 * (`traffic`, a quarter of its max) and 16,384 prefixes in an LPM trie (`llm_v4`). The entries are
 * written from user space into a probe loaded without the cgroup programs; nothing is attached
 * to a cgroup and the fake keys are socket cookies no socket has.
 *
 *   sudo npx tsx bench/kstats.ts [ROUNDS]
 *
 * Measured on the 2-vCPU test VM (kernel 6.18): a full recount median 32 ms (the LPM trie about
 * 28 ms of it, ~1.7 µs per entry; the hash maps 3.6 ms and 6.7 ms); a cached read 2.4 µs.
 */
import { BpfObject } from '../src/bpf/object.js';
import { OBJECT_PATH } from '../src/bpf/probe.js';
import { COUNTED_MAPS, KernelStatsReader } from '../src/bpf/kstats.js';

const N = 16_384;
const rounds = Number(process.argv[2] ?? 20);

const obj = BpfObject.open(OBJECT_PATH);
obj.load(); // maps only: no program is attached
try {
  const fill = (name: string, key: (i: number) => Buffer) => {
    const map = obj.map(name);
    const value = Buffer.alloc(map.valueSize);
    for (let i = 0; i < N; i++) map.update(key(i), value);
  };
  const cookie = (i: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(0xb0b0_0000_0000n + BigInt(i));
    return b;
  };
  fill('cut_socks', cookie);
  fill('traffic', cookie);
  fill('llm_v4', (i) => {
    const b = Buffer.alloc(8); // struct busted_lpm4 { __u32 prefixlen; __u8 addr[4]; }
    b.writeUInt32LE(32, 0);
    b.writeUInt32BE((10 << 24) + i, 4);
    return b;
  });
  const reader = new KernelStatsReader(COUNTED_MAPS.map((n) => obj.map(n)), obj.map('events'), { minIntervalMs: 0 });
  const times: number[] = [];
  let last = reader.read();
  for (let i = 0; i < rounds; i++) {
    last = reader.read();
    times.push(reader.lastCountMs);
  }
  const cached = new KernelStatsReader(COUNTED_MAPS.map((n) => obj.map(n)), obj.map('events'));
  cached.read();
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) cached.read();
  const cachedUs = ((performance.now() - t0) / 1000) * 1000;
  reader.close();
  cached.close();
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(2);
  for (const m of last.maps) console.log(`${m.name.padEnd(14)} ${String(m.entries).padStart(6)} / ${m.max}`);
  console.log(`ring buffer     ${last.ringbufUsedBytes} / ${last.ringbufSizeBytes} bytes used`);
  console.log(`full recount of ${COUNTED_MAPS.length} maps (${3 * N} entries): median ${at(0.5)} ms, max ${at(1)} ms over ${rounds} rounds`);
  console.log(`cached read (within the 1 s window): ${cachedUs.toFixed(1)} µs`);
} finally {
  obj.close();
}
