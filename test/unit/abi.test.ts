/**
 * The ABI of bpf/busted.h as the C compiler lays it out must equal src/bpf/abi.ts: a change on
 * one side without the other fails here. Also checks decoding and address formatting.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIPv6 } from 'node:net';
import { TCP_STATES, TCP_STATE_NAMES, CENSUS_CFG, CENSUS_MISSES, CENSUS_NETNS_MAX, CENSUS_SLOT, END_UNSEEN, CGROUP_REF, CONFIG, EVENT, EXEC, EXEC_EVENT, EXEC_SLOTS, EXE_ID, LPM4, LPM6, MAX_RULES, PATH_MAX, POLICY, POLICY_EVENT, PROC_KEY, RULE, RULE_ITEMS, RULE_DEFAULT, RULE_TOGGLE, Action, RuleField, HELLO_MAX, CONNECT_MAX, Kind, OWNER, PAYLOAD, PAYLOAD_CHUNKS, PAYLOAD_MAX, PayloadWhat, MODEL_PORTS, Announced, DnsSync, QuietMode, SLOT, SLOTS, SLOT_BUSY, SLOT_PROBES, OVERFLOW_MAX, SOCK, Stat, TRAFFIC, decodeEvent, decodeRecord, flowId, formatEndpoint, formatIpv6 } from '../../src/bpf/abi.js';
import { ROOT } from '../helpers/busted.js';

const LAYOUTS: Record<string, Record<string, number>> = {
  busted_config: CONFIG,
  busted_owner: OWNER,
  busted_sock: SOCK,
  busted_traffic: TRAFFIC,
  busted_slot: SLOT,
  busted_event: EVENT,
  busted_exec: EXEC,
  busted_exe_id: EXE_ID,
  busted_cgroup_ref: CGROUP_REF,
  busted_rule: RULE,
  busted_policy: POLICY,
  busted_proc_key: PROC_KEY,
  busted_lpm4: LPM4,
  busted_lpm6: LPM6,
  busted_policy_event: POLICY_EVENT,
  busted_exec_event: EXEC_EVENT,
  busted_payload: PAYLOAD,
  busted_census_slot: CENSUS_SLOT,
  busted_census_cfg: CENSUS_CFG,
};

function compilerLayout(): Record<string, Record<string, number>> & { consts: Record<string, number> } {
  const dir = mkdtempSync(join(tmpdir(), 'busted-abi-'));
  const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/types.h>', '#include "busted.h"', 'int main(void) {', 'printf("{");'];
  for (const [struct, fields] of Object.entries(LAYOUTS)) {
    lines.push(`printf("\\"${struct}\\": {\\"size\\": %zu", sizeof(struct ${struct}));`);
    for (const field of Object.keys(fields)) {
      if (field !== 'size') lines.push(`printf(", \\"${field}\\": %zu", offsetof(struct ${struct}, ${field}));`);
    }
    lines.push('printf("}, ");');
  }
  lines.push(
    'printf("\\"consts\\": {\\"CONNECT\\": %d, \\"FAIL\\": %d, \\"CLOSE\\": %d, \\"PAYLOAD\\": %d, \\"POLICY\\": %d, \\"EXEC\\": %d, \\"BRIEF\\": %d, \\"LOST\\": %d, \\"UNTRACKED\\": %d, \\"OVERFLOW\\": %d, \\"QUIET\\": %d, \\"QUIET_FAILED\\": %d, \\"UNSEEN\\": %d, \\"UNSEEN_LAST\\": %d, \\"MAX\\": %d, \\"TCP_STATES\\": %d, \\"COMM\\": %d, ",',
    '  BUSTED_EV_CONNECT, BUSTED_EV_FAIL, BUSTED_EV_CLOSE, BUSTED_EV_PAYLOAD, BUSTED_EV_POLICY, BUSTED_EV_EXEC, BUSTED_EV_BRIEF, BUSTED_STAT_LOST, BUSTED_STAT_UNTRACKED, BUSTED_STAT_OVERFLOW, BUSTED_STAT_QUIET, BUSTED_STAT_QUIET_FAILED, BUSTED_STAT_UNSEEN, BUSTED_STAT_UNSEEN_LAST, BUSTED_STAT_MAX, BUSTED_TCP_STATES, BUSTED_COMM_LEN);',
    'printf("\\"CENSUS_MISSES\\": %d, \\"CENSUS_NETNS_MAX\\": %d, \\"END_UNSEEN\\": %d, ", BUSTED_CENSUS_MISSES, BUSTED_CENSUS_NETNS_MAX, BUSTED_END_UNSEEN);',
    'printf("\\"MODEL_PORTS\\": %d, \\"DNS_SEEN\\": %d, \\"DNS_APPLIED\\": %d, ", BUSTED_MODEL_PORTS, BUSTED_DNS_SEEN, BUSTED_DNS_APPLIED);',
    'printf("\\"Q_OFF\\": %d, \\"Q_COUNT\\": %d, \\"Q_LATE\\": %d, ", BUSTED_QUIET_OFF, BUSTED_QUIET_COUNT, BUSTED_QUIET_LATE);',
    'printf("\\"A_NO\\": %d, \\"A_YES\\": %d, \\"A_QUIET\\": %d, \\"A_KEPT\\": %d, \\"A_DONE\\": %d, ", BUSTED_ANNOUNCED_NO, BUSTED_ANNOUNCED_YES, BUSTED_ANNOUNCED_QUIET, BUSTED_ANNOUNCED_KEPT, BUSTED_ANNOUNCED_DONE);',
    'printf("\\"SLOTS\\": %d, \\"SLOT_PROBES\\": %d, \\"OVERFLOW_MAX\\": %d, \\"SLOT_BUSY\\": \\"%llu\\", \\"EXEC_SLOTS\\": %d, ",',
    '  BUSTED_SLOTS, BUSTED_SLOT_PROBES, BUSTED_OVERFLOW_MAX, BUSTED_SLOT_BUSY, BUSTED_EXEC_SLOTS);',
    'printf("\\"TLS\\": %d, \\"DNS\\": %d, \\"PAYLOAD_MAX\\": %d, \\"CHUNKS\\": %d, \\"HELLO_MAX\\": %d, \\"CONNECT_MAX\\": %d, \\"PATH_MAX\\": %d, ",',
    '  BUSTED_PL_TLS, BUSTED_PL_DNS, BUSTED_PAYLOAD_MAX, BUSTED_PAYLOAD_CHUNKS, BUSTED_HELLO_MAX, BUSTED_CONNECT_MAX, BUSTED_PATH_MAX);',
    'printf("\\"MAX_RULES\\": %d, \\"RULE_ITEMS\\": %d, \\"NONE\\": %d, \\"ALLOW\\": %d, \\"AUDIT\\": %d, \\"BLOCK\\": %d, ",',
    '  BUSTED_MAX_RULES, BUSTED_RULE_ITEMS, BUSTED_ACT_NONE, BUSTED_ACT_ALLOW, BUSTED_ACT_AUDIT, BUSTED_ACT_BLOCK);',
    'printf("\\"RF_EXE\\": %d, \\"RF_UID\\": %d, \\"RF_COMM\\": %d, \\"RF_CGROUP\\": %d, \\"RF_HASH\\": %d, \\"RF_NEVER\\": %d, \\"RULE_DEFAULT\\": %d, \\"RULE_TOGGLE\\": %d}}",',
    '  BUSTED_RF_EXE, BUSTED_RF_UID, BUSTED_RF_COMM, BUSTED_RF_CGROUP, BUSTED_RF_HASH, BUSTED_RF_NEVER, BUSTED_RULE_DEFAULT, BUSTED_RULE_TOGGLE);',
    'return 0; }',
  );
  writeFileSync(join(dir, 'abi.c'), lines.join('\n'));
  const cc = process.env.CC ?? 'cc';
  try {
    execFileSync(cc, ['-I', join(ROOT, 'bpf'), '-o', join(dir, 'abi'), join(dir, 'abi.c')]);
    return JSON.parse(execFileSync(join(dir, 'abi'), { encoding: 'utf8' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('every size and offset in abi.ts matches bpf/busted.h as compiled', (t) => {
  const c = compilerLayout();
  for (const [struct, fields] of Object.entries(LAYOUTS)) t.deepEqual({ ...fields }, c[struct], struct);
  t.deepEqual(c.consts, {
    ...Kind, LOST: Stat.LOST, UNTRACKED: Stat.UNTRACKED, OVERFLOW: Stat.OVERFLOW, QUIET: Stat.QUIET, QUIET_FAILED: Stat.QUIET_FAILED, UNSEEN: Stat.UNSEEN, UNSEEN_LAST: Stat.UNSEEN_LAST, MAX: Stat.MAX, TCP_STATES, COMM: 16,
    CENSUS_MISSES, CENSUS_NETNS_MAX, END_UNSEEN,
    MODEL_PORTS, DNS_SEEN: DnsSync.SEEN, DNS_APPLIED: DnsSync.APPLIED, Q_OFF: QuietMode.OFF, Q_COUNT: QuietMode.COUNT, Q_LATE: QuietMode.LATE,
    A_NO: Announced.NO, A_YES: Announced.YES, A_QUIET: Announced.QUIET, A_KEPT: Announced.KEPT, A_DONE: Announced.DONE,
    SLOTS, SLOT_PROBES, OVERFLOW_MAX, SLOT_BUSY: SLOT_BUSY.toString(), EXEC_SLOTS,
    ...PayloadWhat, PAYLOAD_MAX, CHUNKS: PAYLOAD_CHUNKS, HELLO_MAX, CONNECT_MAX, PATH_MAX,
    MAX_RULES, RULE_ITEMS, ...Action,
    RF_EXE: RuleField.EXE, RF_UID: RuleField.UID, RF_COMM: RuleField.COMM, RF_CGROUP: RuleField.CGROUP,
    RF_HASH: RuleField.HASH, RF_NEVER: RuleField.NEVER, RULE_DEFAULT, RULE_TOGGLE,
  });
});

test('TCP_STATE_NAMES numbers the states as the C library does (the census counts unseen ends by them)', (t) => {
  const names = TCP_STATE_NAMES.slice(1, 12); // ESTABLISHED .. CLOSING: the ones <netinet/tcp.h> names
  const dir = mkdtempSync(join(tmpdir(), 'busted-tcp-'));
  try {
    writeFileSync(join(dir, 'tcp.c'), ['#include <stdio.h>', '#include <netinet/tcp.h>', 'int main(void) {',
      ...names.map((n) => `printf("%d\\n", TCP_${n});`), 'return 0; }'].join('\n'));
    execFileSync(process.env.CC ?? 'cc', ['-o', join(dir, 'tcp'), join(dir, 'tcp.c')]);
    const numbers = execFileSync(join(dir, 'tcp'), { encoding: 'utf8' }).trim().split('\n').map(Number);
    t.deepEqual(numbers, names.map((_, i) => i + 1));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.is(TCP_STATE_NAMES[0], 'none');
  t.true(TCP_STATE_NAMES.length <= TCP_STATES);
});

test('the compiled object keeps busted_config as its only .rodata variable, at offset 0', (t) => {
  const dump = execFileSync('bpftool', ['btf', 'dump', 'file', join(ROOT, 'bpf/busted.bpf.o')], { encoding: 'utf8' });
  const m = /DATASEC '\.rodata' size=\d+ vlen=(\d+)\n\s+type_id=\d+ offset=(\d+) size=(\d+) \(VAR 'cfg'\)/.exec(dump);
  t.truthy(m, 'no .rodata datasec with cfg');
  t.deepEqual(m!.slice(1).map(Number), [1, 0, CONFIG.size]);
});

test('decodeEvent reads a record laid out as the kernel writes it', (t) => {
  const buf = new ArrayBuffer(EVENT.size);
  const v = new DataView(buf);
  const bytes = new Uint8Array(buf);
  v.setUint32(EVENT.kind, Kind.CONNECT, true);
  v.setUint16(EVENT.family, 2, true);
  v.setUint16(EVENT.proto, 6, true);
  v.setBigUint64(EVENT.cookie, 0x1234_5678_9abcn, true);
  v.setBigUint64(EVENT.ts_ns, 99n, true);
  v.setUint32(EVENT.owner + OWNER.tgid, 4242, true);
  v.setUint32(EVENT.owner + OWNER.uid, 1000, true);
  v.setBigUint64(EVENT.owner + OWNER.start_ns, 12_340_000_000n, true);
  bytes.set(new TextEncoder().encode('python3'), EVENT.owner + OWNER.comm);
  bytes.set([10, 1, 2, 3], EVENT.saddr);
  bytes.set([127, 0, 0, 1], EVENT.daddr);
  v.setUint16(EVENT.sport, 50_000, true);
  v.setUint16(EVENT.dport, 443, true);
  v.setBigUint64(EVENT.tx, 5n, true);
  v.setBigUint64(EVENT.rx, 7n, true);
  const ev = decodeEvent(v, 0, v.byteLength)!;
  if (ev.kind === Kind.CLOSE) return t.fail();
  t.is(ev.kind, Kind.CONNECT);
  t.is(ev.cookie, 0x1234_5678_9abc);
  t.is(ev.owner.tgid, 4242);
  t.is(ev.owner.uid, 1000);
  t.is(ev.owner.comm, 'python3');
  t.is(ev.owner.startNs, 12_340_000_000n);
  t.is(ev.src, '10.1.2.3:50000');
  t.is(ev.dst, '127.0.0.1:443');
  // the same bytes as a close: its totals and pid, nothing of the connect's
  v.setUint32(EVENT.kind, Kind.CLOSE, true);
  v.setBigUint64(EVENT.connect_ns, 42n, true);
  t.deepEqual(decodeEvent(v, 0, v.byteLength), { kind: Kind.CLOSE, cookie: 0x1234_5678_9abc, tsNs: 99, pid: 4242, connectNs: 42, tx: 5, rx: 7, unseen: false });
  // one the census ended (no hook saw its end)
  v.setInt32(EVENT.error, END_UNSEEN, true);
  t.like(decodeEvent(v, 0, v.byteLength), { kind: Kind.CLOSE, unseen: true });
  v.setInt32(EVENT.error, 0, true);
  // as a brief (a connection reported whole at its close): the connect's fields and the close's totals
  v.setUint32(EVENT.kind, Kind.BRIEF, true);
  t.like(decodeEvent(v, 0, v.byteLength), {
    kind: Kind.BRIEF, cookie: 0x1234_5678_9abc, tsNs: 99, connectNs: 42, owner: { tgid: 4242, comm: 'python3' },
    src: '10.1.2.3:50000', dst: '127.0.0.1:443', tx: 5, rx: 7,
  });
});

test('a cookie is a number while it is exact (below 2^53), a bigint from there on; the flow id is its decimal either way', (t) => {
  const v = new DataView(new ArrayBuffer(EVENT.size));
  v.setUint32(EVENT.kind, Kind.CLOSE, true);
  for (const [cookie, as] of [
    [1n, 1], [0xffff_ffffn, 0xffff_ffff], [0x1_0000_0000n, 0x1_0000_0000], [2n ** 53n - 1n, Number.MAX_SAFE_INTEGER],
    [2n ** 53n, 2n ** 53n], [2n ** 64n - 1n, 2n ** 64n - 1n],
  ] as const) {
    v.setBigUint64(EVENT.cookie, cookie, true);
    const ev = decodeEvent(v, 0, v.byteLength)!;
    t.is(ev.cookie, as);
    t.is(flowId(ev.cookie), cookie.toString());
  }
  // byte counts and times: numbers, exact below 2^53
  v.setBigUint64(EVENT.tx, 2n ** 53n - 1n, true);
  v.setBigUint64(EVENT.rx, 0x1_0000_0001n, true);
  const ev = decodeEvent(v, 0, v.byteLength);
  t.like(ev, { tx: Number.MAX_SAFE_INTEGER, rx: 0x1_0000_0001 });
});

test('decodeEvent writes endpoints as formatEndpoint does: IPv4, IPv6, v4-mapped IPv6', (t) => {
  const v = new DataView(new ArrayBuffer(EVENT.size));
  const bytes = new Uint8Array(v.buffer);
  v.setUint32(EVENT.kind, Kind.FAIL, true);
  const cases: [number, number[], number, string][] = [
    [2, [192, 0, 2, 200], 1, '192.0.2.200:1'],
    [2, [255, 255, 255, 255], 65535, '255.255.255.255:65535'],
    [10, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 443, '[2001:db8::1]:443'],
    [10, [...new Array(15).fill(0), 1], 11434, '[::1]:11434'],
    [10, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 9], 8080, '10.0.0.9:8080'],
    // not v4-mapped: a v4-compatible form stays IPv6
    [10, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 9], 8080, '[::a00:9]:8080'],
  ];
  for (const [family, addr, port, text] of cases) {
    bytes.fill(0, EVENT.daddr, EVENT.daddr + 16);
    bytes.set(addr, EVENT.daddr);
    v.setUint16(EVENT.family, family, true);
    v.setUint16(EVENT.dport, port, true);
    const ev = decodeEvent(v, 0, EVENT.size)!;
    if (ev.kind === Kind.CLOSE) return t.fail();
    t.is(ev.dst, text);
    t.is(ev.dst, formatEndpoint(family, Uint8Array.from({ length: 16 }, (_, i) => addr[i] ?? 0), port));
  }
});

test('decodeRecord tells payload samples from lifecycle events and bounds len', (t) => {
  const v = new DataView(new ArrayBuffer(PAYLOAD.size));
  v.setUint32(PAYLOAD.kind, Kind.PAYLOAD, true);
  v.setUint8(PAYLOAD.what, PayloadWhat.DNS);
  v.setUint32(PAYLOAD.len, 3, true);
  new Uint8Array(v.buffer).set([9, 8, 7], PAYLOAD.data);
  const s = decodeRecord(v, 0, v.byteLength);
  t.is(s?.kind, Kind.PAYLOAD);
  t.deepEqual(s?.kind === Kind.PAYLOAD ? [...s.data] : null, [9, 8, 7]);
  v.setUint32(PAYLOAD.len, 99_999, true); // hostile length: capped at the buffer
  const big = decodeRecord(v, 0, v.byteLength);
  t.is(big?.kind === Kind.PAYLOAD ? big.data.length : -1, PAYLOAD_MAX);
  v.setUint8(PAYLOAD.what, 77);
  t.is(decodeRecord(v, 0, v.byteLength), null);
});

test('decodeEvent refuses short records and unknown kinds instead of misreading them', (t) => {
  t.is(decodeEvent(new DataView(new ArrayBuffer(EVENT.size - 1)), 0, EVENT.size - 1), null);
  const v = new DataView(new ArrayBuffer(EVENT.size));
  v.setUint32(0, 99, true);
  t.is(decodeEvent(v, 0, v.byteLength), null);
});

test('decodeEvent: IPv4 endpoints stay right while sources and destinations of a few addresses take turns (the text kept for the last two)', (t) => {
  const v = new DataView(new ArrayBuffer(EVENT.size));
  const bytes = new Uint8Array(v.buffer);
  v.setUint32(EVENT.kind, Kind.CONNECT, true);
  v.setUint16(EVENT.family, 2, true);
  const addrs = [[127, 0, 0, 1], [127, 0, 0, 2], [10, 1, 2, 3], [192, 168, 0, 1], [255, 255, 255, 255], [0, 0, 0, 0]];
  let seed = 7;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  for (let i = 0; i < 5000; i++) {
    const src = addrs[rand(addrs.length)]!;
    const dst = addrs[rand(3)]!; // a few destinations, more sources
    const sport = rand(65536);
    const dport = [443, 11434, 0, 65535][rand(4)]!;
    bytes.set(src, EVENT.saddr);
    bytes.set(dst, EVENT.daddr);
    v.setUint16(EVENT.sport, sport, true);
    v.setUint16(EVENT.dport, dport, true);
    const ev = decodeEvent(v, 0, EVENT.size)!;
    if (ev.kind === Kind.CLOSE) return t.fail();
    const want = [`${src.join('.')}:${sport}`, `${dst.join('.')}:${dport}`];
    if (ev.src !== want[0] || ev.dst !== want[1]) return t.deepEqual([ev.src, ev.dst], want);
  }
  t.pass();
});

test('IPv6 endpoints are bracketed and compressed like the canonical form; v4-mapped show as v4', (t) => {
  t.is(formatEndpoint(10, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 80), '[::1]:80');
  t.is(formatEndpoint(10, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]), 443), '10.1.2.3:443');
  // property: random addresses (with runs of zeros) match the WHATWG URL serializer (RFC 5952)
  for (let i = 0; i < 2000; i++) {
    const a = new Uint8Array(16).map(() => (Math.random() < 0.5 ? 0 : Math.floor(Math.random() * 256)));
    if (a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff) continue;
    const s = formatIpv6(a);
    t.true(isIPv6(s), s);
    const canonical = new URL(`http://[${s}]/`).hostname.slice(1, -1);
    if (canonical !== s) t.fail(`${s} != ${canonical}`);
  }
  t.pass();
});

test('decodeEvent: connects from one process share their owner, whichever of its threads made them; a renamed thread or another process gets its own, and earlier owners stay as they were', (t) => {
  const v = new DataView(new ArrayBuffer(EVENT.size));
  const bytes = new Uint8Array(v.buffer);
  v.setUint32(EVENT.kind, Kind.CONNECT, true);
  v.setUint16(EVENT.family, 2, true);
  const set = (tgid: number, tid: number, comm: string) => {
    bytes.fill(0, EVENT.owner, EVENT.owner + OWNER.size);
    v.setUint32(EVENT.owner + OWNER.tgid, tgid, true);
    v.setUint32(EVENT.owner + OWNER.tid, tid, true);
    bytes.set(new TextEncoder().encode(comm), EVENT.owner + OWNER.comm);
    const ev = decodeEvent(v, 0, EVENT.size)!;
    if (ev.kind === Kind.CLOSE) throw new Error('not a connect');
    return ev;
  };
  const a = set(100, 100, 'python3');
  const b = set(100, 100, 'python3');
  t.is(b.owner, a.owner);
  const c = set(100, 101, 'python3'); // another thread
  t.is(c.owner, a.owner);
  t.deepEqual([a.tid, c.tid], [100, 101]);
  const d = set(100, 101, 'python3.12'); // renamed (prctl)
  const e = set(200, 100, 'python3'); // another process
  t.deepEqual([d.owner.comm, e.owner.tgid, d.tid, e.tid], ['python3.12', 200, 101, 100]);
  t.deepEqual([a.owner.tgid, a.owner.comm, c.owner.comm], [100, 'python3', 'python3']);
  t.not(d.owner, c.owner);
  t.not(e.owner, d.owner);
  t.false('tid' in a.owner);
});
