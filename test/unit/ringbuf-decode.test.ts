/**
 * Records decoded in place, as bpf/ringbuf.ts hands them over: `length` bytes at `offset` of one
 * DataView over the whole ring (itself at an offset of its buffer, as the data area follows the
 * producer page). Every kind decodes from anywhere in the view, and what is kept is copied: the
 * ring's bytes change once the record is consumed.
 */
import test from 'ava';
import {
  EVENT, EXEC_EVENT, EXE_ID, Kind, OWNER, PAYLOAD, PAYLOAD_MAX, POLICY_EVENT, PayloadWhat,
  decodeCString, decodeCStringAt, decodeRecord,
} from '../../src/bpf/abi.js';

const PAGE = 4096;
const RING = 64 * 1024;

/** A view like the ring's: the data area after a page of the same buffer. */
function ringView(): { view: DataView; bytes: Uint8Array } {
  const buf = new ArrayBuffer(PAGE + RING);
  return { view: new DataView(buf, PAGE, RING), bytes: new Uint8Array(buf, PAGE, RING) };
}

const ascii = (s: string) => new TextEncoder().encode(s);

test('a connect/close event decodes at any offset; addresses and comm are copies', (t) => {
  const { view, bytes } = ringView();
  const o = 40_008;
  view.setUint32(o + EVENT.kind, Kind.FAIL, true);
  view.setUint16(o + EVENT.family, 2, true);
  view.setUint16(o + EVENT.proto, 6, true);
  view.setBigUint64(o + EVENT.cookie, 0xdead_beef_0042n, true);
  view.setBigUint64(o + EVENT.ts_ns, 123n, true);
  view.setUint32(o + EVENT.owner + OWNER.tgid, 4242, true);
  view.setUint32(o + EVENT.owner + OWNER.tid, 4243, true);
  view.setUint32(o + EVENT.owner + OWNER.uid, 1000, true);
  view.setUint32(o + EVENT.owner + OWNER.gid, 1001, true);
  view.setBigUint64(o + EVENT.owner + OWNER.cgroup_id, 77n, true);
  view.setBigUint64(o + EVENT.owner + OWNER.start_ns, 5_000n, true);
  view.setBigUint64(o + EVENT.owner + OWNER.exe_ino, 99n, true);
  view.setUint32(o + EVENT.owner + OWNER.exe_dev, 0x801, true);
  view.setUint32(o + EVENT.owner + OWNER.ppid, 1, true);
  bytes.set(ascii('python3'), o + EVENT.owner + OWNER.comm);
  bytes.set([10, 0, 0, 1], o + EVENT.saddr);
  bytes.set([127, 0, 0, 1], o + EVENT.daddr);
  view.setUint16(o + EVENT.sport, 40_000, true);
  view.setUint16(o + EVENT.dport, 443, true);
  view.setInt32(o + EVENT.error, -111, true);
  view.setBigUint64(o + EVENT.connect_ns, 100n, true);
  view.setBigUint64(o + EVENT.tx, 5n, true);
  view.setBigUint64(o + EVENT.rx, 7n, true);
  const ev = decodeRecord(view, o, EVENT.size);
  bytes.fill(0xee, o, o + EVENT.size); // the ring moves on
  t.deepEqual(ev, {
    kind: Kind.FAIL, proto: 6, cookie: 0xdead_beef_0042, tsNs: 123, connectNs: 100,
    owner: { tgid: 4242, uid: 1000, gid: 1001, cgroupId: 77n, startNs: 5_000n, exeIno: 99n, exeDev: 0x801, ppid: 1, comm: 'python3' },
    tid: 4243,
    src: '10.0.0.1:40000', dst: '127.0.0.1:443', error: -111, tx: 0, rx: 0,
  });
  view.setUint32(o + EVENT.kind, Kind.CLOSE, true);
  view.setUint32(o + EVENT.owner + OWNER.tgid, 4242, true);
  view.setBigUint64(o + EVENT.cookie, 0xdead_beef_0043n, true);
  view.setBigUint64(o + EVENT.connect_ns, 100n, true);
  view.setBigUint64(o + EVENT.tx, 5n, true);
  view.setBigUint64(o + EVENT.rx, 7n, true);
  const close = decodeRecord(view, o, EVENT.size);
  bytes.fill(0xee, o, o + EVENT.size);
  t.deepEqual(close, { kind: Kind.CLOSE, cookie: 0xdead_beef_0043, tsNs: Number(0xeeee_eeee_eeee_eeeen), pid: 4242, connectNs: 100, tx: 5, rx: 7, unseen: false });
});

test('payload samples decode at any offset, small and large, and their bytes are copies', (t) => {
  const { view, bytes } = ringView();
  for (const [o, len] of [[8, 20], [3_000, 64], [20_000, 65], [50_000, 1000], [30_000, 5000]] as const) {
    view.setUint32(o + PAYLOAD.kind, Kind.PAYLOAD, true);
    view.setUint16(o + PAYLOAD.family, 10, true);
    view.setUint8(o + PAYLOAD.what, PayloadWhat.TLS);
    view.setUint8(o + PAYLOAD.proto, 6);
    view.setBigUint64(o + PAYLOAD.cookie, BigInt(o), true);
    view.setUint32(o + PAYLOAD.offset, 7, true);
    view.setUint32(o + PAYLOAD.len, len, true);
    view.setUint32(o + PAYLOAD.total, len + 1, true);
    bytes.set([0xfe, 0x80], o + PAYLOAD.saddr);
    view.setUint16(o + PAYLOAD.dport, 8443, true);
    const kept = Math.min(len, PAYLOAD_MAX);
    const data = Uint8Array.from({ length: kept }, (_, i) => (o + i * 7) & 0xff);
    bytes.set(data, o + PAYLOAD.data);
    const s = decodeRecord(view, o, PAYLOAD.size);
    bytes.fill(0, o, o + PAYLOAD.size);
    if (s?.kind !== Kind.PAYLOAD) return t.fail(`no payload at ${o}`);
    t.is(s.cookie, BigInt(o));
    t.is(s.what, PayloadWhat.TLS);
    t.is(s.family, 10);
    t.is(s.offset, 7);
    t.is(s.total, len + 1);
    t.is(s.dport, 8443);
    t.deepEqual([...s.saddr.subarray(0, 3)], [0xfe, 0x80, 0]);
    t.deepEqual(s.data, data, `data of ${len} bytes at ${o}`);
  }
});

test('policy decisions and exec records decode at any offset; a non-ASCII comm is UTF-8', (t) => {
  const { view, bytes } = ringView();
  const o = 12_344;
  view.setUint32(o + POLICY_EVENT.kind, Kind.POLICY, true);
  view.setUint16(o + POLICY_EVENT.family, 2, true);
  view.setUint32(o + POLICY_EVENT.tgid, 31337, true);
  view.setBigUint64(o + POLICY_EVENT.cgroup_id, 9n, true);
  bytes.set([1, 2, 3, 4], o + POLICY_EVENT.daddr);
  view.setUint16(o + POLICY_EVENT.dport, 443, true);
  view.setUint8(o + POLICY_EVENT.action, 3);
  view.setUint8(o + POLICY_EVENT.denied, 1);
  view.setUint16(o + POLICY_EVENT.rule, 5, true);
  view.setUint16(o + POLICY_EVENT.bank, 1, true);
  view.setUint32(o + POLICY_EVENT.provider, 2, true);
  bytes.set(ascii('café-bot'), o + POLICY_EVENT.comm);
  const p = decodeRecord(view, o, POLICY_EVENT.size);
  if (p?.kind !== Kind.POLICY) return t.fail('no policy decision');
  t.is(p.tgid, 31337);
  t.is(p.cgroupId, 9n);
  t.deepEqual([...p.daddr.subarray(0, 4)], [1, 2, 3, 4]);
  t.is(p.dport, 443);
  t.is(p.action, 3);
  t.true(p.denied);
  t.is(p.rule, 5);
  t.is(p.bank, 1);
  t.is(p.provider, 2);
  t.is(p.comm, 'café-bot');

  const e = 60_000;
  view.setUint32(e + EXEC_EVENT.kind, Kind.EXEC, true);
  view.setUint32(e + EXEC_EVENT.tgid, 777, true);
  view.setBigUint64(e + EXEC_EVENT.start_ns, 888n, true);
  view.setUint32(e + EXEC_EVENT.exe + EXE_ID.dev, 0x803, true);
  view.setBigUint64(e + EXEC_EVENT.exe + EXE_ID.ino, 999n, true);
  t.deepEqual(decodeRecord(view, e, EXEC_EVENT.size), { kind: Kind.EXEC, tgid: 777, startNs: 888n, exeDev: 0x803, exeIno: 999n });
});

test('records too short for their kind, or reaching past the view, are refused', (t) => {
  const { view } = ringView();
  view.setUint32(100, Kind.CONNECT, true);
  t.is(decodeRecord(view, 100, EVENT.size - 1), null);
  view.setUint32(RING - 8, Kind.CONNECT, true);
  t.is(decodeRecord(view, RING - 8, EVENT.size), null, 'past the end of the view');
  view.setUint32(200, Kind.PAYLOAD, true);
  view.setUint8(200 + PAYLOAD.what, PayloadWhat.DNS);
  t.is(decodeRecord(view, 200, PAYLOAD.size - 1), null);
  t.not(decodeRecord(view, 200, PAYLOAD.size), null);
  view.setUint32(300, 99, true);
  t.is(decodeRecord(view, 300, EVENT.size), null, 'unknown kind');
  t.is(decodeRecord(view, 300, 3), null);
});

test('C strings: ASCII fast path, UTF-8 otherwise, a field without NUL taken whole', (t) => {
  t.is(decodeCString(ascii('curl\0junk')), 'curl');
  t.is(decodeCString(ascii('0123456789abcdef')), '0123456789abcdef');
  t.is(decodeCString(ascii('naïve\0x')), 'naïve');
  t.is(decodeCString(new Uint8Array(16)), '');
  const { view, bytes } = ringView();
  bytes.set(ascii('ab\tc\0'), 10);
  t.is(decodeCStringAt(view, 10, 16), 'ab\tc');
  bytes.set(ascii('xyz'), 500);
  t.is(decodeCStringAt(view, 500, 2), 'xy');
});
