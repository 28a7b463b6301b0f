/**
 * Durable recordings with real writer processes (attachSinks with --record options, fed in a
 * loop): rotation and keep, SIGKILL mid-write, SIGTERM without loss, SIGHUP reopen after the file
 * was moved, and a real full disk (a tiny tmpfs in a private mount namespace, as root).
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EventRecord, TrafficRecord } from '../../src/core/records.js';
import { parseRecording } from '../../src/sinks/replay.js';
import type { RecordSinkOptions } from '../../src/sinks/wire.js';
import { kernelTest } from '../helpers/kernel.js';

const src = (p: string) => JSON.stringify(fileURLToPath(new URL(`../../src/${p}`, import.meta.url)));
const WRITER = `
  import fs from 'node:fs';
  import path from 'node:path';
  import { Store } from ${src('core/store.ts')};
  import { attachSinks } from ${src('sinks/wire.ts')};
  const o = JSON.parse(process.env.WRITER);
  const say = (x) => process.stdout.write(JSON.stringify(x) + '\\n');
  const store = new Store();
  const sinks = await attachSinks(store, { record: o.record, onWarning: (m) => process.stderr.write(m + '\\n') });
  store.publish({ type: 'session', ts: new Date().toISOString(), v: 1, host: 'writer', kernel: 'k', version: 'v', enforce: false });
  let i = 0, tx = 0;
  const timer = setInterval(() => {
    for (let k = 0; k < o.batch; k++) {
      if (o.limit && i >= o.limit) { clearInterval(timer); say({ done: i }); return; }
      i++; tx += i;
      store.publish({ type: 'traffic', ts: new Date().toISOString(), flow: String(i), pid: 7, tx: i, rx: 1 });
    }
  }, o.everyMs);
  process.on('SIGHUP', () => { sinks.reopen(); say({ hup: i }); });
  process.on('SIGTERM', async () => {
    clearInterval(timer);
    await sinks.close();
    const r = sinks.recorder;
    if (o.copyTo) for (const f of fs.readdirSync(path.dirname(o.record.path))) fs.copyFileSync(path.join(path.dirname(o.record.path), f), path.join(o.copyTo, f));
    say({ published: i, tx, dropped: r.dropped, writeErrors: r.writeErrors, rotations: r.rotations, reopens: r.reopens });
    process.exit(0);
  });
  setTimeout(() => say({ go: i }), o.goAfterMs ?? 300);
`;

interface WriterOpts { record: RecordSinkOptions; batch: number; everyMs: number; limit?: number; goAfterMs?: number; copyTo?: string }
interface Writer { child: ChildProcess; next(pred: (m: Record<string, number>) => boolean): Promise<Record<string, number>>; stderr: () => string }

function startWriter(o: WriterOpts, wrap: string[] = []): Writer {
  const args = ['--import', 'tsx', '--input-type=module', '-e', WRITER];
  const [cmd, ...rest] = wrap.length > 0 ? [...wrap, process.execPath, ...args] : [process.execPath, ...args];
  const child = spawn(cmd!, rest, { env: { ...process.env, WRITER: JSON.stringify(o) }, stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: Record<string, number>[] = [];
  const waiters = new Set<() => void>();
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  createInterface({ input: child.stdout! }).on('line', (l) => {
    messages.push(JSON.parse(l) as Record<string, number>);
    for (const w of waiters) w();
  });
  const next = (pred: (m: Record<string, number>) => boolean) =>
    new Promise<Record<string, number>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`writer said nothing matching in time; stderr: ${err}`)), 30_000);
      const check = () => {
        const m = messages.find(pred);
        if (!m) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(m);
      };
      waiters.add(check);
      check();
      child.once('exit', () => setTimeout(check, 10));
    });
  return { child, next, stderr: () => err };
}

interface Final { published: number; tx: number; dropped: number; writeErrors: number; rotations: number; reopens: number }

async function stopWriter(w: Writer): Promise<Final> {
  w.child.kill('SIGTERM');
  const final = await w.next((m) => 'published' in m);
  await once(w.child, 'exit').catch(() => {});
  return final as unknown as Final;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-rec-e2e-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => fs.mkdtempSync(path.join(tmp, `w${++n}-`));

/** Files of a rotated recording, oldest first. */
function rotated(dir: string, base: string): string[] {
  const files = fs.readdirSync(dir).filter((f) => f === base || f.startsWith(`${base}.`));
  const index = (f: string) => (f === base ? 0 : Number(f.slice(base.length + 1)));
  return files.sort((a, b) => index(b) - index(a)).map((f) => path.join(dir, f));
}

function readAll(t: ExecutionContext, files: string[], allowCutLast = false): TrafficRecord[] {
  const out: TrafficRecord[] = [];
  files.forEach((f, i) => {
    // killed between creating a rotated file and writing its first line (a few µs): empty is whole
    if (allowCutLast && i === files.length - 1 && fs.statSync(f).size === 0) return;
    const rec = parseRecording(fs.readFileSync(f, 'utf8'));
    t.deepEqual(rec.problems, [], `${path.basename(f)}: every line parses`);
    if (!(allowCutLast && i === files.length - 1)) t.false(rec.truncatedLastLine, `${path.basename(f)} ends with a whole line`);
    t.is(rec.records[0]?.type, 'session', `${path.basename(f)} starts with the session record`);
    t.is(fs.statSync(f).mode & 0o777, 0o600, `${path.basename(f)} is 0600`);
    out.push(...rec.records.filter((r: EventRecord): r is TrafficRecord => r.type === 'traffic'));
  });
  return out;
}

const contiguous = (recs: TrafficRecord[]): boolean => recs.every((r, i) => i === 0 || r.tx === recs[i - 1]!.tx + 1);

test('rotation at 16K: every file parses and starts with the session record, totals across files equal the totals written', async (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'busted.jsonl');
  const w = startWriter({ record: { path: file, maxBytes: 16 * 1024, keep: 1000, flushMs: 20 }, batch: 100, everyMs: 2, limit: 5000, goAfterMs: 60_000 });
  await w.next((m) => 'done' in m);
  const final = await stopWriter(w);
  const files = rotated(dir, 'busted.jsonl');
  t.true(files.length > 10, `${files.length} files`);
  t.is(final.rotations, files.length - 1);
  for (const f of files) t.true(fs.statSync(f).size <= 16 * 1024, `${path.basename(f)}: ${fs.statSync(f).size} bytes`);
  const recs = readAll(t, files);
  t.is(recs.length, final.published);
  t.is(recs.reduce((s, r) => s + r.tx, 0), final.tx);
  t.true(contiguous(recs));
  t.is(w.stderr(), '');
});

test('--record-keep 3: exactly three files are kept, holding the newest records without a gap', async (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'busted.jsonl');
  const w = startWriter({ record: { path: file, maxBytes: 8 * 1024, keep: 3, flushMs: 20 }, batch: 100, everyMs: 2, limit: 3000, goAfterMs: 60_000 });
  await w.next((m) => 'done' in m);
  const final = await stopWriter(w);
  t.deepEqual(fs.readdirSync(dir).sort(), ['busted.jsonl', 'busted.jsonl.1', 'busted.jsonl.2']);
  const recs = readAll(t, rotated(dir, 'busted.jsonl'));
  t.true(contiguous(recs));
  t.is(recs.at(-1)!.tx, final.published);
});

test('SIGKILL mid-write (rotating, a write per record) leaves only complete lines before the last one', async (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'busted.jsonl');
  const w = startWriter({ record: { path: file, maxBytes: 64 * 1024, keep: 4, flushMs: 0 }, batch: 50, everyMs: 1, goAfterMs: 700 });
  await w.next((m) => 'go' in m);
  w.child.kill('SIGKILL');
  await once(w.child, 'exit');
  const files = rotated(dir, 'busted.jsonl');
  t.true(files.length >= 2, `${files.length} files: it rotated before the kill`);
  const recs = readAll(t, files, true);
  t.true(recs.length > 1000, `${recs.length} records survived`);
  t.true(contiguous(recs));
});

test('SIGTERM loses no complete record, even with a long flush interval', async (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'busted.jsonl');
  const w = startWriter({ record: { path: file, flushMs: 60_000 }, batch: 20, everyMs: 1, goAfterMs: 500 });
  await w.next((m) => 'go' in m);
  const final = await stopWriter(w);
  const recs = readAll(t, [file]);
  t.true(final.published > 100);
  t.is(recs.length, final.published);
  t.true(contiguous(recs));
});

test('SIGHUP after the file was moved away (logrotate): a new 0600 file with the session record, nothing lost or doubled', async (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'busted.jsonl');
  const w = startWriter({ record: { path: file, flushMs: 50 }, batch: 10, everyMs: 2, goAfterMs: 400 });
  await w.next((m) => 'go' in m);
  fs.renameSync(file, `${file}.old`);
  w.child.kill('SIGHUP');
  const hup = await w.next((m) => 'hup' in m);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (!fs.existsSync(file) || fs.readFileSync(file, 'utf8').split('\n').length < 5)) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const final = await stopWriter(w);
  t.is(final.reopens, 1);
  const before = readAll(t, [`${file}.old`]);
  const after = readAll(t, [file]);
  t.true(before.length > 0 && after.length > 0, `${before.length} records before the reopen, ${after.length} after`);
  t.true(before.length >= hup.hup! - 50, 'the moved file holds what was written before the reopen');
  const all = [...before, ...after];
  t.is(all.length, final.published);
  t.true(contiguous(all));
});

kernelTest('a real full disk (64K tmpfs): warned once, counted, not fatal; the file holds whole lines only', async (t) => {
  const out = freshDir();
  const mnt = freshDir();
  const file = path.join(mnt, 'busted.jsonl');
  // unshare: the tmpfs exists only in the writer's own mount namespace
  const wrap = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=64k busted-test "${mnt}" && exec "$0" "$@"`];
  const w = startWriter({ record: { path: file, flushMs: 10 }, batch: 50, everyMs: 2, limit: 4000, goAfterMs: 60_000, copyTo: out }, wrap);
  await w.next((m) => 'done' in m);
  const final = await stopWriter(w);
  t.is(w.child.exitCode, 0);
  t.deepEqual(fs.readdirSync(mnt), [], 'the tmpfs was private to the writer');
  const recs = readAll(t, [path.join(out, 'busted.jsonl')]);
  t.true(final.dropped > 0, `${final.dropped} records dropped`);
  t.true(final.writeErrors > 0);
  t.is(recs.length + final.dropped, final.published, 'every record is either in the file or counted as dropped');
  const warnings = w.stderr().trim().split('\n');
  t.is(warnings.length, 2, w.stderr());
  t.regex(warnings[0]!, /^recording: cannot write to .*busted\.jsonl: the disk is full \(ENOSPC\); \d+ records lost so far, recording goes on when writing works again\.$/);
  t.is(warnings[1], `recording to ${file} is missing ${final.dropped} records that could not be written (ENOSPC).`, 'said again at close');
});
