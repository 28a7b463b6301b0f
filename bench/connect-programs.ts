/**
 * Issue 6's figure: connect churn to a non-LLM loopback address with only the enforcement
 * programs (cgroup/connect4,6 and sendmsg4,6) attached to the cgroup v2 root, a policy active
 * (so every connect takes the LLM-destination lookup), vs nothing attached. Alternating runs,
 * medians, ratio (target ≥ 0.95). Root; loopback only. npx tsx bench/connect-programs.ts [pairs] [seconds]
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Action } from '../src/bpf/abi.js';
import { Enforcer } from '../src/bpf/enforcer.js';
import { BpfObject } from '../src/bpf/object.js';
import { findCgroup2Mount } from '../src/bpf/preflight.js';
import { OBJECT_PATH, enforcerMaps } from '../src/bpf/probe.js';
import { loadCatalog } from '../src/core/catalog.js';

const pairs = Number(process.argv[2] ?? 5);
const seconds = Number(process.argv[3] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'busted-connbench-'));
const churn = join(dir, 'churn');
execFileSync('cc', ['-O2', '-pthread', '-o', churn, new URL('./churn.c', import.meta.url).pathname]);
const run = () => (JSON.parse(execFileSync(churn, [String(seconds), '100000000', '4', '0'], { encoding: 'utf8' }).trim().split('\n').pop()!) as { cps: number }).cps;

const PROGS = new Set(['busted_connect4', 'busted_connect6', 'busted_sendmsg4', 'busted_sendmsg6']);
function attach(): BpfObject {
  const obj = BpfObject.open(OBJECT_PATH);
  obj.setAutoload((n) => PROGS.has(n));
  obj.load();
  const fd = openSync(findCgroup2Mount()!, 'r');
  for (const p of obj.programs()) if (PROGS.has(p.name)) obj.attachCgroup(p, fd);
  closeSync(fd);
  const enforcer = new Enforcer(enforcerMaps(obj));
  for (const c of loadCatalog().cidrEntries({ v4Mapped: true })) enforcer.addDestination(c.prefix, c.prefixLen, c.providerIndex);
  // an active policy: one rule, so every connect is looked up in the LLM destinations
  enforcer.setPolicy({ rules: [{ action: Action.BLOCK, providers: null, exes: null, uids: [4242424], comms: null, cgroups: null, hash: false, never: false }], defaultAction: Action.ALLOW, enforce: true });
  return obj;
}

const base: number[] = [];
const mon: number[] = [];
run(); // warm-up
for (let i = 0; i < pairs; i++) {
  base.push(run());
  const obj = attach();
  try {
    mon.push(run());
  } finally {
    obj.close();
  }
  console.log(`pair ${i + 1}: baseline ${base[i]!.toFixed(0)} conn/s, with connect programs ${mon[i]!.toFixed(0)} conn/s (${(mon[i]! / base[i]!).toFixed(3)})`);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`connect churn to non-LLM loopback: baseline ${median(base).toFixed(0)}, monitored ${median(mon).toFixed(0)} conn/s, ratio ${(median(mon) / median(base)).toFixed(3)} (target >= 0.95)`);
rmSync(dir, { recursive: true, force: true });
