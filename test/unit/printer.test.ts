import test from 'ava';
import { Printer } from '../../src/sinks/printer.js';
import { formatBytes, formatDurationMs, formatRate } from '../../src/sinks/format.js';
import type { ConnectRecord, EventRecord } from '../../src/core/records.js';

const connect: ConnectRecord = {
  type: 'connect', ts: '2026-01-01T00:00:00.000Z', flow: '77', pid: 42315, tid: 42316, comm: 'python3', uid: 1000, gid: 100,
  exe: '/usr/bin/python3.11', cgroup: '/user.slice', cgroupId: 9, startTime: 1234, proto: 'tcp',
  src: '10.0.1.5:54321', dst: '20.42.73.21:443', provider: null, host: null, via: null, error: null,
};

function lines(opts: Partial<ConstructorParameters<typeof Printer>[0]>, recs: EventRecord[]): string[] {
  const out: string[] = [];
  const p = new Printer({ format: 'text', verbose: false, all: true, write: (l) => out.push(l), ...opts });
  for (const r of recs) p.handle(r);
  return out;
}

test('text connect line keeps the documented shape', (t) => {
  t.deepEqual(lines({}, [connect]), [
    '[TCP_CONNECT] PID: 42315 (python3) | UID: 1000 | 10.0.1.5:54321 -> 20.42.73.21:443 | Provider: -',
  ]);
});

test('text lines name the provider and host when known', (t) => {
  const c = { ...connect, provider: 'openai', host: 'api.openai.com', via: 'sni' as const };
  t.regex(lines({ providerName: () => 'OpenAI' }, [c])[0]!, /\| Provider: OpenAI \(api\.openai\.com\)$/);
});

test('failed connects, closes, lost and verbose fields in text', (t) => {
  const out = lines({ verbose: true }, [
    { ...connect, flow: '1', error: 'ECONNREFUSED' },
    connect,
    { type: 'traffic', ts: connect.ts, flow: '77', pid: 42315, tx: 10, rx: 2048 },
    { type: 'close', ts: connect.ts, flow: '77', pid: 42315, tx: 10, rx: 2048, durationMs: 1500 },
    { type: 'lost', ts: connect.ts, count: 3 },
  ]);
  t.regex(out[0]!, /^\[TCP_FAIL\] PID: 42315 \(python3\) .*\| Error: ECONNREFUSED \|/);
  t.regex(out[1]!, /USER: - \| PPID: - \| EXE: \/usr\/bin\/python3\.11 \| SHA256: - \| CGROUP: \/user\.slice \| FLOW: 77$/);
  t.is(out[2], '[TRAFFIC] PID: 42315 (python3) | 10.0.1.5:54321 -> 20.42.73.21:443 | TX: +10 B | RX: +2.0 KiB');
  t.is(out[3], '[TCP_CLOSE] PID: 42315 (python3) | UID: 1000 | 10.0.1.5:54321 -> 20.42.73.21:443 | TX: 10 B | RX: 2.0 KiB | 1.50 s | Provider: -');
  t.regex(out[4]!, /^\[LOST\] 3 events/);
  // a close the census made (no hook saw the end) says so
  const unseen = lines({}, [connect, { type: 'close', ts: connect.ts, flow: '77', pid: 42315, tx: 10, rx: 0, durationMs: 61000, endUnseen: true }]);
  t.regex(unseen[1]!, /^\[TCP_CLOSE\] PID: 42315 .*\| end unseen \(found gone\)$/);
});

test('traffic lines only with --verbose in text; every record in JSON, one parseable object per line', (t) => {
  const recs: EventRecord[] = [connect, { type: 'traffic', ts: connect.ts, flow: '77', pid: 42315, tx: 1, rx: 2 }];
  t.is(lines({}, recs).length, 1);
  const json = lines({ format: 'json' }, recs);
  t.is(json.length, 2);
  t.deepEqual(json.map((l) => JSON.parse(l)), recs);
});

test('without --all, flows with no provider are hidden and LLM flows are shown', (t) => {
  const llm = { ...connect, flow: '5', provider: 'anthropic' };
  const out = lines({ all: false, format: 'json' }, [
    connect,
    { type: 'close', ts: connect.ts, flow: '77', pid: 1, tx: 0, rx: 0, durationMs: 1 },
    llm,
    { type: 'close', ts: connect.ts, flow: '5', pid: 1, tx: 0, rx: 0, durationMs: 1 },
  ]);
  t.deepEqual(out.map((l) => JSON.parse(l).flow), ['5', '5']);
});

test('bytes, rates and durations format for people', (t) => {
  t.is(formatBytes(0), '0 B');
  t.is(formatBytes(1023), '1023 B');
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(50 * 1024 * 1024), '50 MiB');
  t.is(formatBytes(-1), '-');
  t.is(formatRate(2048.4), '2.0 KiB/s');
  t.is(formatDurationMs(0.5), '0.50 ms');
  t.is(formatDurationMs(12.34), '12 ms');
  t.is(formatDurationMs(1500), '1.50 s');
  t.is(formatDurationMs(125_000), '2m05s');
  t.is(formatDurationMs(3_725_000), '1h02m');
});

test('without --all, process records are shown only for processes with a shown LLM flow', (t) => {
  const proc = (pid: number) => ({
    type: 'process' as const, ts: connect.ts, pid, startTime: 1234, exe: null, cgroup: null, cmdline: null, parents: [],
    sha256: 'ab', exeReplaced: false, user: null, group: null, ppid: null, container: null, pod: null, agent: null,
  });
  const out = lines({ all: false, format: 'json' }, [
    connect, proc(42315), { ...connect, pid: 7, flow: '8', provider: 'openai' }, proc(7),
  ]);
  t.deepEqual(out.map((l) => JSON.parse(l).type + ':' + JSON.parse(l).pid), ['connect:7', 'process:7']);
});

test('JSON records go to writeRecord when given (the output writes their lines), filtered as lines are', (t) => {
  const llm = { ...connect, flow: '5', provider: 'anthropic' };
  const recs: EventRecord[] = [
    connect,
    { type: 'close', ts: connect.ts, flow: '77', pid: 1, tx: 0, rx: 0, durationMs: 1 },
    llm,
    { type: 'close', ts: connect.ts, flow: '5', pid: 1, tx: 0, rx: 0, durationMs: 1 },
  ];
  const run = (all: boolean) => {
    const got: EventRecord[] = [];
    const lines: string[] = [];
    const p = new Printer({ format: 'json', verbose: false, all, write: (l) => lines.push(l), writeRecord: (r) => got.push(r) });
    for (const r of recs) p.handle(r);
    t.deepEqual(lines, []);
    return got;
  };
  t.deepEqual(run(false), [recs[2], recs[3]]);
  t.deepEqual(run(true), recs);
});
