import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileHasher } from '../../src/core/hash.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'busted-hash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('hashing a real file gives what crypto gives for its bytes, across many chunks', async (t) => {
  const file = join(tempDir(t), 'big');
  const data = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  writeFileSync(file, data);
  const h = new FileHasher({ chunkBytes: 64 * 1024 });
  const r = await h.hash(file);
  t.true(r.ok);
  if (!r.ok) return;
  t.is(r.sha256, sha(readFileSync(file)));
  t.false(r.cached);
  t.is(r.size, data.length);
  t.is(r.ino, statSync(file, { bigint: true }).ino);
});

test('same dev, inode, size and mtime: the cached hash; a modified file: a new hash', async (t) => {
  const file = join(tempDir(t), 'bin');
  writeFileSync(file, 'version 1');
  const h = new FileHasher();
  const a = await h.hash(file);
  const b = await h.hash(file);
  t.true(a.ok && !a.cached && b.ok && b.cached);
  t.is(h.hashed, 1);
  if (!a.ok || !b.ok) return;
  t.is(b.sha256, a.sha256);

  writeFileSync(file, 'version 2!'); // same inode, new size and mtime
  const c = await h.hash(file);
  t.true(c.ok && !c.cached);
  if (!c.ok) return;
  t.is(c.sha256, sha('version 2!'));
  t.is(c.ino, a.ino);
  t.is(h.hashed, 2);

  // same size, only the mtime differs: hashed again
  const before = statSync(file);
  writeFileSync(file, 'version 3!');
  utimesSync(file, before.atime, new Date(before.mtimeMs + 5000));
  const d = await h.hash(file);
  t.true(d.ok && !d.cached);
  if (d.ok) t.is(d.sha256, sha('version 3!'));
});

test('the cache key is (dev, inode, size, mtime): the same stamp is trusted, a new inode is not', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'bin');
  writeFileSync(file, 'aaaa');
  utimesSync(file, 1_000_000, 1_000_000); // whole seconds: restorable exactly
  const h = new FileHasher();
  const a = await h.hash(file);
  // same size, same mtime restored: by design the key matches and the cache answers
  writeFileSync(file, 'bbbb');
  utimesSync(file, 1_000_000, 1_000_000);
  const b = await h.hash(file);
  t.true(b.ok && b.cached);
  if (a.ok && b.ok) t.is(b.sha256, a.sha256);
  // replaced by rename (new inode, same size and mtime): hashed anew
  const tmp = join(dir, 'bin.new');
  writeFileSync(tmp, 'cccc');
  utimesSync(tmp, 1_000_000, 1_000_000);
  renameSync(tmp, file);
  const c = await h.hash(file);
  t.true(c.ok && !c.cached);
  if (c.ok) t.is(c.sha256, sha('cccc'));
});

test('an unexpected inode is refused without reading; a missing file is gone', async (t) => {
  const file = join(tempDir(t), 'bin');
  writeFileSync(file, 'x');
  const h = new FileHasher();
  const ino = statSync(file, { bigint: true }).ino;
  const wrong = await h.hash(file, { ino: ino + 1n });
  t.deepEqual(wrong.ok ? null : wrong.reason, 'mismatch');
  const right = await h.hash(file, { ino, dev: statSync(file).dev });
  t.true(right.ok);
  const wrongDev = await h.hash(file, { ino, dev: statSync(file).dev + 1 });
  t.deepEqual(wrongDev.ok ? null : wrongDev.reason, 'mismatch');
  const gone = await h.hash(join(tempDir(t), 'nope'));
  t.deepEqual(gone.ok ? null : gone.reason, 'gone');
  t.is(h.hashed, 1);
});

test('one file at a time, a bounded queue, and the same file asked twice is read once', async (t) => {
  const dir = tempDir(t);
  const files = [0, 1, 2, 3].map((i) => {
    const f = join(dir, `f${i}`);
    writeFileSync(f, Buffer.alloc(i === 0 ? 64 * 1024 * 1024 : 1024, i));
    return f;
  });
  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise((r) => setTimeout(r, 1));
  };
  const h = new FileHasher({ maxQueue: 2, chunkBytes: 16 * 1024 });
  const first = h.hash(files[0]!);
  await until(() => h.reading); // the big file is being read: it has left the queue
  const twice = [h.hash(files[1]!), h.hash(files[1]!)];
  const third = h.hash(files[2]!);
  await until(() => h.pending === 2);
  const overflow = await h.hash(files[3]!);
  t.deepEqual(overflow.ok ? 'ok' : overflow.reason, 'busy');
  t.true(h.reading, 'still reading the first file: one at a time');
  const [r0, r1a, r1b, r2] = await Promise.all([first, ...twice, third]);
  t.true(r0!.ok && r1a!.ok && r1b!.ok && r2!.ok);
  if (r1a!.ok && r1b!.ok) t.is(r1a!.sha256, r1b!.sha256);
  t.is(h.hashed, 3);
  // with the queue drained it is accepted
  t.true((await h.hash(files[3]!)).ok);
});

test('too large files are not hashed', async (t) => {
  const file = join(tempDir(t), 'big');
  writeFileSync(file, Buffer.alloc(1000));
  const r = await new FileHasher({ maxBytes: 999 }).hash(file);
  t.deepEqual(r.ok ? 'ok' : r.reason, 'too-large');
});
