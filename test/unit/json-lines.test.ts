import test from 'ava';
import fc from 'fast-check';
import type { CloseRecord, ConnectRecord, EventRecord } from '../../src/core/records.js';
import { JsonLines } from '../../src/sinks/json-lines.js';

/** A connect record as the live engine makes it (its keys in its order). */
const connect = (over: Partial<ConnectRecord> = {}): ConnectRecord => ({
  type: 'connect', ts: '2026-11-27T14:00:00.123Z', flow: '4097', pid: 4242, tid: 4243, comm: 'python3', uid: 1000, gid: 1000,
  exe: '/usr/bin/python3.11', cgroup: '/user.slice/user-1000.slice', sha256: null, exeReplaced: false, user: 'alice', group: 'alice',
  ppid: 1, container: null, pod: null, agent: null, cgroupId: 77, startTime: 123_456, proto: 'tcp',
  src: '127.0.0.1:40000', dst: '127.0.0.1:443', provider: null, host: null, via: null, error: null, ...over,
});

// any text, the characters JSON escapes and lone surrogates included
const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u2028', '\ud800', 'a\udc00b', '😀'));
const num = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-0, 0.05, 1e21, Number.NaN, Number.POSITIVE_INFINITY));
const nullable = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });
const obj = nullable(fc.record({ id: text, runtime: text }));

const connectArb = fc.record({
  ts: text, flow: text, pid: num, tid: num, comm: text, uid: num, gid: num, exe: nullable(text), cgroup: nullable(text),
  sha256: nullable(text), exeReplaced: fc.boolean(), user: nullable(text), group: nullable(text), ppid: nullable(num),
  container: obj, pod: obj, agent: obj, cgroupId: num, startTime: num, proto: text, src: text, dst: text,
  provider: nullable(text), host: nullable(text), via: nullable(text), error: nullable(text),
});

test('a connect line is JSON.stringify of the record, whatever its values, in any sequence (the process part kept between them)', (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(connectArb, fc.boolean()), { minLength: 1, maxLength: 8 }), (items) => {
      const j = new JsonLines();
      let prev: ConnectRecord | null = null;
      for (const [over, repeat] of items) {
        // half the time the same process as the last connect, with new connection fields
        const rec: ConnectRecord = repeat && prev ? connect({ ...prev, ts: over.ts, flow: over.flow, src: over.src, provider: over.provider }) : connect(over as Partial<ConnectRecord>);
        if (j.line(rec) !== JSON.stringify(rec)) return false;
        prev = rec;
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('close lines, records in another key order, with other keys or undefined values, and other types are JSON.stringify too', (t) => {
  const j = new JsonLines();
  const close: CloseRecord = { type: 'close', ts: '2026-11-27T14:00:00.123Z', flow: '4097', pid: 4242, tx: 64, rx: 1e21, durationMs: 0.051 };
  const odd: EventRecord[] = [
    close,
    { ...close, durationMs: -0 },
    { ...close, ts: 'a"b' },
    { ...close, tx: Number.NaN },
    { flow: '1', type: 'close', ts: close.ts, pid: 1, tx: 1, rx: 1, durationMs: 1 } as EventRecord,
    { ...close, extra: 1 } as EventRecord,
    connect(),
    connect({ comm: 'a"b\\c\u0001', exe: '\ud800', container: { id: 'x', runtime: 'docker' } }),
    connect({ provider: 'openai', host: 'api.openai.com', via: 'sni' }),
    connect({ error: 'ECONNREFUSED' }),
    connect({ ppid: undefined, sha256: undefined }),
    connect({ provider: undefined, host: undefined, via: undefined, error: undefined } as unknown as Partial<ConnectRecord>),
    { ...connect(), extra: [1] } as EventRecord,
    (() => {
      const { tid: _tid, ...rest } = connect();
      return { ...rest, tid: 1 } as EventRecord; // tid last
    })(),
    { type: 'traffic', ts: close.ts, flow: '1', pid: 1, tx: 1, rx: 2 },
    { type: 'lost', ts: close.ts, count: 3 },
  ];
  for (const rec of odd) t.is(j.line(rec), JSON.stringify(rec), JSON.stringify(rec));
  fc.assert(
    fc.property(fc.record({ ts: text, flow: text, pid: num, tx: num, rx: num, durationMs: num }), (v) => {
      const rec: CloseRecord = { type: 'close', ...v };
      return j.line(rec) === JSON.stringify(rec);
    }),
    { numRuns: 2000 },
  );
});

test('a process part with a new identity object is written anew, not from the kept text (objects are compared by reference)', (t) => {
  const j = new JsonLines();
  const a = connect({ container: { id: 'abc', runtime: 'docker' } });
  t.is(j.line(a), JSON.stringify(a));
  const b = connect({ container: { id: 'def', runtime: 'docker' }, flow: '4098' });
  t.is(j.line(b), JSON.stringify(b));
  t.true(j.line(b).includes('"id":"def"'));
});

test('lines of records that share their time, pid, process, protocol or destination with the last are JSON.stringify too (kept parts)', (t) => {
  // few distinct values, so consecutive records often share them, and sometimes a value that must not be written directly
  const few = <T>(...v: T[]) => fc.constantFrom(...v);
  const ts = few('2026-11-27T14:00:00.123Z', '2026-11-27T14:00:00.124Z', 'a"b');
  const pid = few(1, 4242, -0, 0, 2 ** 32, 1.5, Number.NaN);
  const str = few('127.0.0.1:443', '[::1]:443', 'tcp', 'udp', 'é', '\n');
  const rec = fc.oneof(
    fc.record({ ts, flow: few('1', '22'), pid, tid: pid, comm: few('a', 'b'), proto: str, src: str, dst: str, provider: few(null, 'openai'), error: few(null, 'EPERM') })
      .map((v) => connect(v as Partial<ConnectRecord>) as EventRecord),
    fc.record({ ts, flow: few('1', '22'), pid, tx: pid, rx: few(0, 64, 1e21), durationMs: few(0.051, 12, -0, Number.POSITIVE_INFINITY) })
      .map((v) => ({ type: 'close', ...v }) as EventRecord),
  );
  fc.assert(
    fc.property(fc.array(rec, { minLength: 1, maxLength: 30 }), (recs) => {
      const j = new JsonLines();
      return recs.every((r) => j.line(r) === JSON.stringify(r));
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
