import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CloseRecord, ConnectRecord, EventRecord } from '../../src/core/records.js';
import { StdoutLines } from '../../src/sinks/stdout-lines.js';

const connect: ConnectRecord = {
  type: 'connect', ts: '2026-11-27T14:00:00.123Z', flow: '4097', pid: 4242, tid: 4243, comm: 'python3', uid: 1000, gid: 1000,
  exe: '/usr/bin/python3.11', cgroup: '/user.slice/user-1000.slice', sha256: null, exeReplaced: false, user: 'alice', group: 'alice',
  ppid: 1, container: null, pod: null, agent: null, cgroupId: 77, startTime: 123_456, proto: 'tcp',
  src: '127.0.0.1:40000', dst: '127.0.0.1:443', provider: null, host: null, via: null, error: null,
};
const close: CloseRecord = { type: 'close', ts: connect.ts, flow: '4097', pid: 4242, tx: 64, rx: 2 ** 40, durationMs: 0.051 };

test('records and text lines reach a file in order, written once per turn, each record exactly its JSON.stringify line', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-stdout-'));
  const file = path.join(dir, 'out');
  const fd = fs.openSync(file, 'w');
  const warnings: string[] = [];
  const out = new StdoutLines((m) => warnings.push(m), fd);
  const recs: EventRecord[] = [
    connect,
    { ...connect, flow: '4098', comm: 'naïve "quoted" \u0001 😀', src: '[::1]:40001' },
    { ...connect, flow: '4099', provider: 'openai', host: 'api.openai.com', via: 'sni' },
    close,
    { type: 'lost', ts: connect.ts, count: 3 },
  ];
  out.write('a text line');
  for (const r of recs) out.record(r);
  t.is(fs.readFileSync(file, 'utf8'), '', 'nothing is written before the turn ends');
  await out.flush();
  const want = ['a text line', ...recs.map((r) => JSON.stringify(r))].join('\n') + '\n';
  t.is(fs.readFileSync(file, 'utf8'), want);
  t.is(out.written, Buffer.byteLength(want));
  t.deepEqual(warnings, []);
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true });
});

test('a device that takes no more (/dev/full) is said once, and nothing throws', async (t) => {
  const fd = fs.openSync('/dev/full', 'w');
  const warnings: string[] = [];
  const out = new StdoutLines((m) => warnings.push(m), fd);
  out.record(connect);
  await out.flush();
  out.record(close);
  out.write('more');
  await out.flush();
  t.deepEqual(warnings, ['writing to standard output failed (ENOSPC); no more records are printed there.']);
  fs.closeSync(fd);
});
