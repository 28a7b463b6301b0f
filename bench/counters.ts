/**
 * Reading 16k flows' byte counters in one tick: busted's batched read (bpf_map_lookup_batch,
 * TrafficCounters.readBatch, 16,384 entries per call) against one key at a time
 * (bpf_map_get_next_key + bpf_map_lookup_elem per entry, TrafficCounters.readOneByOne).
 * busted's object is loaded (nothing attached) and its `traffic` map filled from user space with
 * 16,384 synthetic entries; each way is timed over R rounds, alternating, median reported.
 *
 *   sudo npx tsx bench/counters.ts [--quick] [--flows N]
 *
 * Target (issue 8): the batched read of 16k flows <= 5 ms.
 */
import { readFileSync } from 'node:fs';
import { TRAFFIC } from '../src/bpf/abi.js';
import { TrafficCounters } from '../src/bpf/counters.js';
import { BpfObject } from '../src/bpf/object.js';
import { OBJECT_PATH } from '../src/bpf/probe.js';

const quick = process.argv.includes('--quick');
const flowsArg = process.argv.indexOf('--flows');
const FLOWS = flowsArg > 0 ? Number(process.argv[flowsArg + 1]) : 16_384;
const ROUNDS = quick ? 5 : 25;
const TARGET_MS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function main(): void {
  if (process.geteuid?.() !== 0) throw new Error('loading busted\'s BPF object needs root: run this bench as root.');
  const obj = BpfObject.open(OBJECT_PATH);
  try {
    obj.setAutoload(() => false); // maps only: no program is loaded or attached
    obj.load();
    const map = obj.map('traffic');
    if (FLOWS > map.maxEntries) throw new Error(`--flows ${FLOWS} is more than the traffic map holds (${map.maxEntries})`);
    const key = Buffer.alloc(8);
    const value = Buffer.alloc(TRAFFIC.size);
    for (let i = 0; i < FLOWS; i++) {
      key.writeBigUInt64LE(BigInt(0x1000_0000 + i * 7919), 0); // cookie-like, spread over the hash
      value.writeBigUInt64LE(BigInt(i * 1000), TRAFFIC.tx);
      value.writeBigUInt64LE(BigInt(i * 3000), TRAFFIC.rx);
      map.update(key, value);
    }
    const counters = new TrafficCounters(map);
    let sink = 0n;
    const visit = (_c: bigint, tx: bigint, rx: bigint) => {
      sink += tx + rx;
    };
    const batch: number[] = [];
    const single: number[] = [];
    for (let r = 0; r < ROUNDS + 1; r++) {
      let t = performance.now();
      const nb = counters.readBatch(visit);
      const tb = performance.now() - t;
      t = performance.now();
      const ns = counters.readOneByOne(visit);
      const ts = performance.now() - t;
      if (nb !== FLOWS || ns !== FLOWS) throw new Error(`read ${nb} (batch) and ${ns} (one by one) of ${FLOWS} entries`);
      if (r === 0) continue; // warm-up
      batch.push(tb);
      single.push(ts);
    }
    const mb = median(batch);
    const ms = median(single);
    process.stdout.write(
      `counter read of ${FLOWS.toLocaleString('en-US')} flows, median of ${ROUNDS} rounds (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}):\n` +
        `  one by one (get_next_key + lookup): ${ms.toFixed(2)} ms\n` +
        `  batch (bpf_map_lookup_batch, 16384/call): ${mb.toFixed(2)} ms (target <= ${TARGET_MS} ms: ${mb <= TARGET_MS ? 'meets' : 'MISSES'})\n` +
        `  ratio one-by-one / batch: ${(ms / mb).toFixed(1)}x   (checksum ${sink % 1000n})\n`,
    );
  } finally {
    obj.close();
  }
}


try {
  main();
} catch (err) {
  process.stderr.write(`bench/counters: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
