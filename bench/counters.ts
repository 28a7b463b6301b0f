/**
 * Reading 16k flows' byte counters in one tick. busted's object is loaded (nothing attached) and
 * its `traffic_slots` array filled from user space with 16,384 synthetic sockets, each in the slot
 * the kernel would pick first; then, alternating over R rounds (median reported):
 * - mmap scan: TrafficCounters.readBatch, the read of every tick (the overflow hash is skipped
 *   while the kernel's overflow count is unchanged since it was last found empty);
 * - mmap scan + overflow batch: the same while the overflow count says the hash may hold entries
 *   (one bpf_map_lookup_batch over the 16,384-entry `traffic` hash besides the scan), with the
 *   hash empty and holding OVERFLOWED entries (as many as a run of that many long-lived
 *   neighbouring sockets sends there while the cookies pass it: busted.h);
 * - the previous design, for comparison: bpf_map_lookup_batch over a 65,536-entry hash holding
 *   the 16,384 counters (a second copy of the object whose `traffic` is resized before load),
 *   and the same hash one key at a time (bpf_map_get_next_key + lookup per key).
 *
 *   sudo npx tsx bench/counters.ts [--quick] [--flows N]
 *
 * Target (issue 8): reading 16k flows' counters per tick <= 5 ms.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { SLOT, SLOT_PROBES, SLOTS, Stat, TRAFFIC } from '../src/bpf/abi.js';
import { TrafficCounters } from '../src/bpf/counters.js';
import { libbpf } from '../src/bpf/libbpf.js';
import { BpfObject } from '../src/bpf/object.js';
import { OBJECT_PATH } from '../src/bpf/probe.js';

const quick = process.argv.includes('--quick');
/** --json FILE: the figures also as JSON (npm run bench reads them). */
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
const flowsArg = process.argv.indexOf('--flows');
const FLOWS = flowsArg > 0 ? Number(process.argv[flowsArg + 1]) : 16_384;
const ROUNDS = quick ? 5 : 25;
const TARGET_MS = 5;
const OLD_HASH_ENTRIES = 65_536; // `traffic` before the slots
const OVERFLOWED = 1_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** slot_index() of busted.bpf.c: the cookie modulo BUSTED_SLOTS. */
const slotIndex = (cookie: bigint) => Number(cookie % BigInt(SLOTS));

const cookieOf = (i: number) => BigInt(0x1000_0000 + i * 7919); // cookie-like, spread
/** BUSTED_ANNOUNCED_YES: a flow whose CONNECT went out (an unannounced one is also noted for the idle sweep). */
const ANNOUNCED_YES = 1n;

function loadMapsOnly(resizeTraffic?: number): BpfObject {
  const obj = BpfObject.open(OBJECT_PATH);
  try {
    obj.setAutoload(() => false); // maps only: no program is loaded or attached
    if (resizeTraffic !== undefined) obj.map('traffic').setMaxEntries(resizeTraffic);
    obj.load();
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

function main(): void {
  if (process.geteuid?.() !== 0) throw new Error('loading busted\'s BPF object needs root: run this bench as root.');
  if (FLOWS > SLOTS / 2) throw new Error(`--flows ${FLOWS}: at most ${SLOTS / 2} (half the slots, so each finds one of its ${SLOT_PROBES} candidates)`);
  const obj = loadMapsOnly();
  const old = loadMapsOnly(OLD_HASH_ENTRIES);
  try {
    // the slots, each socket in the first free one of its candidates, as claim_slot() does
    const slots = obj.map('traffic_slots');
    const taken = new Set<number>();
    const key = Buffer.alloc(4);
    const value = Buffer.alloc(SLOT.size);
    for (let i = 0; i < FLOWS; i++) {
      const cookie = cookieOf(i);
      let idx = slotIndex(cookie);
      while (taken.has(idx)) idx = (idx + 1) % SLOTS;
      taken.add(idx);
      key.writeUInt32LE(idx, 0);
      value.writeBigUInt64LE(cookie, SLOT.cookie);
      value.writeBigUInt64LE(BigInt(i * 1000), SLOT.counters + TRAFFIC.tx);
      value.writeBigUInt64LE(BigInt(i * 3000), SLOT.counters + TRAFFIC.rx);
      value.writeBigUInt64LE(ANNOUNCED_YES, SLOT.counters + TRAFFIC.announced); // open flows, reported
      slots.update(key, value);
    }
    // the previous design's 65,536-entry hash holding every counter
    const oldHash = old.map('traffic');
    const hkey = Buffer.alloc(8);
    const hvalue = Buffer.alloc(TRAFFIC.size);
    for (let i = 0; i < FLOWS; i++) {
      hkey.writeBigUInt64LE(cookieOf(i), 0);
      hvalue.writeBigUInt64LE(BigInt(i * 1000), TRAFFIC.tx);
      hvalue.writeBigUInt64LE(BigInt(i * 3000), TRAFFIC.rx);
      hvalue.writeBigUInt64LE(ANNOUNCED_YES, TRAFFIC.announced);
      oldHash.update(hkey, hvalue);
    }
    const counters = TrafficCounters.of(obj);
    // a second reader over the same slots that believes the overflow hash may hold entries
    const flagged = TrafficCounters.of(obj);
    const stats = obj.map('stats');
    const ncpu = libbpf().libbpf_num_possible_cpus() as number;
    const statKey = Buffer.alloc(4);
    statKey.writeUInt32LE(Stat.OVERFLOW, 0);
    const oldWay = TrafficCounters.of(old);

    let sink = 0n;
    const visit = (_c: bigint, tx: bigint, rx: bigint) => {
      sink += tx + rx;
    };
    const times = { scan: [] as number[], flagged: [] as number[], batch: [] as number[], single: [] as number[] };
    for (let r = 0; r < ROUNDS + 1; r++) {
      // a fresh overflow count each round: `flagged` has never seen the hash empty at it
      const statValue = Buffer.alloc(8 * ncpu);
      statValue.writeBigUInt64LE(BigInt(r + 1), 0);
      stats.update(statKey, statValue);
      const got: Record<keyof typeof times, number> = { scan: 0, flagged: 0, batch: 0, single: 0 };
      const timed = (what: keyof typeof times, read: () => number) => {
        const t = performance.now();
        got[what] = read();
        if (r > 0) times[what].push(performance.now() - t); // round 0 warms up
      };
      timed('scan', () => counters.scanSlots(visit)); // what readBatch does while the count is unchanged
      timed('flagged', () => flagged.readBatch(visit));
      timed('batch', () => oldWay.readOverflow(visit));
      timed('single', () => oldWay.readOverflowOneByOne(visit));
      for (const [what, n] of Object.entries(got)) if (n !== FLOWS) throw new Error(`${what}: read ${n} of ${FLOWS} entries`);
    }
    // readBatch itself, with the count unchanged: the scan plus one stats lookup
    const steady: number[] = [];
    counters.readBatch(visit); // learns that the overflow hash is empty at the current count
    for (let r = 0; r < ROUNDS; r++) {
      const t = performance.now();
      const n = counters.readBatch(visit);
      steady.push(performance.now() - t);
      if (n !== FLOWS) throw new Error(`readBatch: read ${n} of ${FLOWS} entries`);
    }
    // a socket in 16 overflowed: the hash holds entries, and every read batches them
    const overflowHash = obj.map('traffic');
    for (let i = 0; i < OVERFLOWED; i++) {
      hkey.writeBigUInt64LE(cookieOf(FLOWS + i), 0);
      overflowHash.update(hkey, hvalue);
    }
    const bumped = Buffer.alloc(8 * ncpu); // as the kernel counts its inserts
    bumped.writeBigUInt64LE(BigInt(ROUNDS + 1 + OVERFLOWED), 0);
    stats.update(statKey, bumped);
    const holding: number[] = [];
    for (let r = 0; r < ROUNDS + 1; r++) {
      const t = performance.now();
      const n = flagged.readBatch(visit);
      if (r > 0) holding.push(performance.now() - t);
      if (n !== FLOWS + OVERFLOWED) throw new Error(`readBatch with overflow: read ${n} of ${FLOWS + OVERFLOWED} entries`);
    }
    const m = {
      steady: median(steady), flagged: median(times.flagged), batch: median(times.batch), single: median(times.single),
      scan: median(times.scan), holding: median(holding),
    };
    const f = (ms: number) => `${ms.toFixed(2)} ms`;
    process.stdout.write(
      `counter read of ${FLOWS.toLocaleString('en-US')} flows, median of ${ROUNDS} rounds (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}):\n` +
        `  mmap scan of ${SLOTS.toLocaleString('en-US')} slots, readBatch (overflow hash empty): ${f(m.steady)} (target <= ${TARGET_MS} ms: ${m.steady <= TARGET_MS ? 'meets' : 'MISSES'})\n` +
        `    of which the scan alone: ${f(m.scan)}\n` +
        `  mmap scan + batch over the ${overflowHash.maxEntries.toLocaleString('en-US')}-entry overflow hash while it may hold entries: ${f(m.flagged)} (empty), ` +
        `${f(m.holding)} (holding ${OVERFLOWED.toLocaleString('en-US')} more flows)\n` +
        `  before, for comparison: bpf_map_lookup_batch over a ${OLD_HASH_ENTRIES.toLocaleString('en-US')}-entry hash: ${f(m.batch)}; one by one (get_next_key + lookup): ${f(m.single)}\n` +
        `  ratio old batch / mmap scan: ${(m.batch / m.steady).toFixed(1)}x   (checksum ${sink % 1000n})\n`,
    );
    if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ flows: FLOWS, rounds: ROUNDS, targetMs: TARGET_MS, medianMs: m }, null, 2)}\n`);
  } finally {
    obj.close();
    old.close();
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`bench/counters: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
