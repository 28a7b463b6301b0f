/** The recorder: mode 0600, no symlinks or foreign files, session first, flushed every second and on close. */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/core/store.js';
import { closeAllRecorders, RecordError, Recorder } from '../../src/sinks/recorder.js';
import { parseRecording } from '../../src/sinks/replay.js';
import { connect, PY, session, traffic } from '../helpers/ui-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-rec-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => path.join(tmp, `rec-${++n}.jsonl`);
const lines = (p: string): unknown[] => fs.readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('creates the file with mode 0600 whatever the umask, session record first', (t) => {
  const p = fresh();
  const old = process.umask(0);
  let r: Recorder;
  try {
    r = new Recorder(p);
  } finally {
    process.umask(old);
  }
  r.write(connect(100, '1', PY));
  r.write(session(0));
  r.write(traffic(1000, '1', PY.pid, 1, 2));
  r.close();
  t.is(fs.statSync(p).mode & 0o777, 0o600);
  t.deepEqual(lines(p).map((l) => (l as { type: string }).type), ['session', 'connect', 'traffic']);
  t.is(r.count, 3);
});

test('refuses a symbolic link at the path, and leaves its target alone', (t) => {
  const target = fresh();
  fs.writeFileSync(target, 'precious\n');
  const link = fresh();
  fs.symlinkSync(target, link);
  const err = t.throws(() => new Recorder(link), { instanceOf: RecordError });
  t.is((err as RecordError).code, 'ELOOP');
  t.regex(err!.message, /is a symbolic link/);
  t.is(fs.readFileSync(target, 'utf8'), 'precious\n');
  const dangling = fresh();
  fs.symlinkSync(path.join(tmp, 'does-not-exist'), dangling);
  t.throws(() => new Recorder(dangling), { instanceOf: RecordError });
  t.false(fs.existsSync(path.join(tmp, 'does-not-exist')), 'a dangling link does not create its target');
});

test('refuses hard-linked files and non-regular files without truncating them', (t) => {
  const orig = fresh();
  fs.writeFileSync(orig, 'keep me\n');
  const hard = fresh();
  fs.linkSync(orig, hard);
  t.throws(() => new Recorder(hard), { message: /other hard links/ });
  t.is(fs.readFileSync(orig, 'utf8'), 'keep me\n');
  t.throws(() => new Recorder(tmp), { instanceOf: RecordError });
});

test('an existing regular file is truncated and made 0600', (t) => {
  const p = fresh();
  fs.writeFileSync(p, 'old content that is longer than the new one\n'.repeat(10), { mode: 0o644 });
  const r = new Recorder(p);
  r.write(session(0));
  r.close();
  t.is(fs.statSync(p).mode & 0o777, 0o600);
  t.is(lines(p).length, 1);
});

test('buffered lines reach the file within a second, without close', async (t) => {
  const p = fresh();
  const r = new Recorder(p);
  r.write(session(0));
  t.is(fs.readFileSync(p, 'utf8'), '', 'buffered at first');
  await new Promise((res) => setTimeout(res, 1300));
  t.is(lines(p).length, 1);
  r.close();
});

test('a full buffer is written at once; close() and closeAllRecorders() are idempotent', (t) => {
  const p = fresh();
  const r = new Recorder(p, { maxBuffer: 200 });
  r.write(session(0));
  r.write(connect(100, '1', PY));
  t.true(lines(p).length >= 1);
  const p2 = fresh();
  const r2 = new Recorder(p2);
  r2.write(session(0));
  t.deepEqual(closeAllRecorders(), []);
  t.true(r.closed && r2.closed);
  t.is(lines(p2).length, 1);
  r.close();
  r.write(session(5)); // ignored after close
  t.is(lines(p).length, 2);
});

test('attach() records what a store publishes; a missing session is made up on close', (t) => {
  const p = fresh();
  const store = new Store();
  const r = new Recorder(p, { fallbackSession: () => session(0, { host: 'fallback' }) }).attach(store);
  store.publish(connect(100, '1', PY));
  r.close();
  store.publish(traffic(200, '1', PY.pid, 1, 1)); // after close: not recorded
  const got = lines(p) as { type: string; host?: string }[];
  t.deepEqual(got.map((l) => l.type), ['session', 'connect']);
  t.is(got[0]!.host, 'fallback');
});

test('after a crash (SIGKILL) every complete line still parses', async (t) => {
  const p = fresh();
  const script = `
    import { Recorder } from ${JSON.stringify(fileURLToPath(new URL('../../src/sinks/recorder.ts', import.meta.url)))};
    const r = new Recorder(${JSON.stringify(p)}, { flushMs: 50, maxBuffer: 512 });
    r.write({ type: 'session', ts: new Date().toISOString(), v: 1, host: 'h', kernel: 'k', version: 'v', enforce: false });
    let i = 0;
    setInterval(() => { for (let k = 0; k < 50; k++) r.write({ type: 'traffic', ts: new Date().toISOString(), flow: String(i++), pid: 1, tx: i, rx: i }); }, 1);
    setTimeout(() => process.stdout.write('go\\n'), 300);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
  const rec = parseRecording(fs.readFileSync(p, 'utf8'));
  t.deepEqual(rec.problems, []);
  t.true(rec.records.length > 100, `${rec.records.length} records survived`);
  t.is(rec.records[0]!.type, 'session');
});

test('records held for a session record that never comes are counted once the hold is full', (t) => {
  const p = fresh();
  const r = new Recorder(p);
  for (let i = 0; i < 10_005; i++) r.write(traffic(i, '1', PY.pid, 1, 1));
  t.is(r.dropped, 5);
  r.write(session(0));
  r.close();
  t.is(lines(p).length, 1 + 10_000);
  t.is(r.dropped, 5);
});
