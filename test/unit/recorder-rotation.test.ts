/** Recorder rotation, keep, reopen (logrotate), flush interval, fsync and write failures (disk full). */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EventRecord } from '../../src/core/records.js';
import { closeAllRecorders, Recorder, type RecorderIo } from '../../src/sinks/recorder.js';
import { parseRecording } from '../../src/sinks/replay.js';
import { PY, session, traffic } from '../helpers/ui-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-rot-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => fs.mkdtempSync(path.join(tmp, `d${++n}-`));
const read = (p: string): EventRecord[] => {
  const rec = parseRecording(fs.readFileSync(p, 'utf8'));
  if (rec.problems.length > 0 || rec.truncatedLastLine) throw new Error(`${p}: ${JSON.stringify(rec.problems)}`);
  return rec.records;
};
const filesOf = (dir: string): string[] => fs.readdirSync(dir).sort();
const tr = (i: number): EventRecord => traffic(i, String(i), PY.pid, i, 2 * i);

test('rotates before a file would pass maxBytes, keeps N files, each starts with the session record, nothing is lost in between', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'rec.jsonl');
  const r = new Recorder(file, { maxBytes: 4096, keep: 3 });
  r.write(session(0));
  const total = 400;
  for (let i = 1; i <= total; i++) r.write(tr(i));
  r.close();
  t.deepEqual(filesOf(dir), ['rec.jsonl', 'rec.jsonl.1', 'rec.jsonl.2']);
  t.true(r.rotations > 3, `${r.rotations} rotations`);
  const seen: number[] = [];
  for (const f of ['rec.jsonl.2', 'rec.jsonl.1', 'rec.jsonl']) {
    const p = path.join(dir, f);
    t.true(fs.statSync(p).size <= 4096, `${f} is ${fs.statSync(p).size} bytes`);
    t.is(fs.statSync(p).mode & 0o777, 0o600);
    const recs = read(p);
    t.is(recs[0]!.type, 'session', `${f} starts with the session record`);
    t.is(recs.filter((x) => x.type === 'session').length, 1);
    for (const x of recs) if (x.type === 'traffic') seen.push(x.tx);
  }
  // the kept files hold the newest records, in order and without a gap
  t.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => total - seen.length + 1 + i));
  t.is(seen[seen.length - 1], total);
});

test('keep 1 keeps only the current file; a record larger than maxBytes still gets written whole', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'one.jsonl');
  const r = new Recorder(file, { maxBytes: 4096, keep: 1 });
  r.write(session(0));
  for (let i = 1; i <= 200; i++) r.write(tr(i));
  const big = { ...session(5, { host: 'x'.repeat(6000) }) };
  r.write(big);
  r.write(tr(201));
  r.close();
  t.deepEqual(filesOf(dir), ['one.jsonl']);
  const recs = read(file);
  t.is(recs[0]!.type, 'session');
  t.is((recs.at(-1) as { tx: number }).tx, 201);
});

test('with rotation, a previous recording at the path is kept as FILE.1 instead of truncated', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'rec.jsonl');
  const first = new Recorder(file, { maxBytes: 1 << 20, keep: 3 });
  first.write(session(0));
  first.write(tr(1));
  first.close();
  const second = new Recorder(file, { maxBytes: 1 << 20, keep: 3 });
  second.write(session(10));
  second.write(tr(2));
  second.close();
  t.deepEqual(filesOf(dir), ['rec.jsonl', 'rec.jsonl.1']);
  t.is((read(`${file}.1`)[1] as { tx: number }).tx, 1);
  t.is((read(file)[1] as { tx: number }).tx, 2);
});

test('reopen() after the file was moved away (logrotate) starts a new 0600 file with the session record', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'rec.jsonl');
  const old = process.umask(0o022);
  const r = new Recorder(file, { fsync: true });
  process.umask(old);
  r.write(session(0));
  r.write(tr(1));
  r.reopen(); // nothing moved: same file goes on
  r.write(tr(2));
  fs.renameSync(file, `${file}.moved`);
  r.write(tr(3)); // buffered: still belongs to the moved file
  r.reopen();
  r.write(tr(4));
  r.close();
  t.is(r.reopens, 1);
  t.deepEqual(read(`${file}.moved`).map((x) => x.type === 'traffic' ? x.tx : x.type), ['session', 1, 2, 3]);
  t.deepEqual(read(file).map((x) => x.type === 'traffic' ? x.tx : x.type), ['session', 4]);
  t.is(fs.statSync(file).mode & 0o777, 0o600);
});

test('reopen() appends to a file logrotate created, and refuses a symbolic link put at the path (writing goes on)', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'rec.jsonl');
  const warnings: string[] = [];
  const r = new Recorder(file, { onWarning: (m) => warnings.push(m) });
  r.write(session(0));
  r.write(tr(1));
  r.flush();
  fs.renameSync(file, `${file}.1`);
  fs.writeFileSync(file, '', { mode: 0o640 }); // logrotate's "create"
  r.reopen();
  r.write(tr(2));
  r.flush();
  t.deepEqual(read(file).map((x) => x.type), ['session', 'traffic']);
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  fs.renameSync(file, `${file}.2`);
  const target = path.join(dir, 'target');
  fs.writeFileSync(target, 'precious\n');
  fs.symlinkSync(target, file);
  r.reopen();
  r.write(tr(3));
  r.close();
  t.is(fs.readFileSync(target, 'utf8'), 'precious\n', 'the link target is untouched');
  t.regex(warnings.join(' '), /could not reopen .*symbolic link.*still writing to the file it was/);
  t.deepEqual(read(`${file}.2`).map((x) => x.type === 'traffic' ? x.tx : x.type), ['session', 2, 3]);
});

test('flushMs 0 writes each record at once; fsync syncs every write', (t) => {
  const dir = freshDir();
  let syncs = 0;
  const io: Partial<RecorderIo> = { fsyncSync: (fd) => { syncs++; fs.fsyncSync(fd); } };
  const file = path.join(dir, 'now.jsonl');
  const r = new Recorder(file, { flushMs: 0, fsync: true, io });
  r.write(session(0));
  t.is(read(file).length, 1);
  r.write(tr(1));
  t.is(read(file).length, 2);
  t.is(syncs, 2);
  r.close();
});

/** A disk that takes `budget` more bytes (a write is cut where it runs out), then fails with ENOSPC. */
function smallDisk(budget: number) {
  const disk = {
    budget,
    io: {
      writeSync: (fd: number, data: Uint8Array, off: number, len: number) => {
        if (disk.budget <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        const n = Math.min(len, disk.budget);
        disk.budget -= n;
        return fs.writeSync(fd, data, off, n);
      },
    } as Partial<RecorderIo>,
  };
  return disk;
}

test('disk full: a failed write keeps the whole lines that reached the file and takes back the cut one, counted and warned about once a minute; recording goes on after', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'full.jsonl');
  const disk = smallDisk(Infinity);
  const warnings: string[] = [];
  const r = new Recorder(file, { io: disk.io, onWarning: (m) => warnings.push(m) });
  r.write(session(0));
  for (let i = 1; i <= 10; i++) r.write(tr(i));
  r.flush();
  disk.budget = 100; // the next write stops in the middle of a line
  for (let i = 11; i <= 20; i++) r.write(tr(i));
  t.notThrows(() => r.flush());
  for (let i = 21; i <= 30; i++) r.write(tr(i));
  r.flush();
  // 100 bytes took record 11 whole (under 100 bytes) and part of 12
  t.true(JSON.stringify(tr(11)).length < 100 && 2 * (JSON.stringify(tr(11)).length + 1) > 100);
  t.deepEqual(read(file).map((x) => x.type === 'traffic' ? x.tx : x.type), ['session', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  t.is(r.dropped, 19);
  t.is(r.writeErrors, 2);
  t.is(warnings.length, 1, 'one warning for both failures');
  t.regex(warnings[0]!, /cannot write to .*full\.jsonl: the disk is full \(ENOSPC\); 9 records lost so far/);
  disk.budget = Infinity; // space was freed
  r.write(tr(31));
  const problems = closeAllRecorders();
  t.deepEqual(read(file).map((x) => x.type === 'traffic' ? x.tx : x.type), ['session', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 31]);
  t.is(problems.length, 1);
  t.regex(problems[0]!, /missing 19 records .*ENOSPC/);
});

test('disk full from the first write: the session record comes first once writing works again', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'empty.jsonl');
  let full = true;
  const io: Partial<RecorderIo> = {
    writeSync: (fd, data, off, len) => {
      if (full) throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
      return fs.writeSync(fd, data, off, len);
    },
  };
  const r = new Recorder(file, { io });
  r.write(session(0));
  r.write(tr(1));
  r.flush();
  full = false;
  r.write(tr(2));
  r.close();
  t.deepEqual(read(file).map((x) => x.type === 'traffic' ? x.tx : x.type), ['session', 2]);
  t.is(r.dropped, 2);
});

test('a write cut short after the session copy keeps that copy, counts no record for it, and does not write it twice', (t) => {
  const dir = freshDir();
  const file = path.join(dir, 'copy.jsonl');
  const disk = smallDisk(0);
  const r = new Recorder(file, { io: disk.io });
  r.write(session(0));
  r.write(tr(1));
  r.flush(); // nothing fits: the next write starts with a copy of the session record
  disk.budget = JSON.stringify(session(0)).length + 1 + 10;
  r.write(tr(2));
  r.flush(); // the copy fits, record 2 is cut
  t.is(r.dropped, 3);
  disk.budget = Infinity;
  r.write(tr(3));
  r.close();
  t.deepEqual(read(file).map((x) => x.type === 'traffic' ? x.tx : x.type), ['session', 3]);
  t.is(r.dropped, 3);
});
