import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupResolver, cgroup2MountFrom } from '../../src/core/identity-cgroups.js';

test('the cgroup2 mount is found in /proc/mounts text, escapes decoded', (t) => {
  const mounts = [
    'tmpfs /sys/fs/cgroup tmpfs rw 0 0',
    'cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0',
    'cgroup2 /sys/fs/cgroup/unified\\040v2 cgroup2 rw 0 0',
  ].join('\n');
  t.is(cgroup2MountFrom(mounts), '/sys/fs/cgroup/unified v2');
  t.is(cgroup2MountFrom('proc /proc proc rw 0 0\n'), null);
});

test('ids resolve to paths by directory inode, a hint is checked first, results are cached', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'busted-cg-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'system.slice/nginx.service'), { recursive: true });
  mkdirSync(join(root, 'user.slice/user-1000.slice'), { recursive: true });
  writeFileSync(join(root, 'cgroup.procs'), '');
  const ino = (p: string) => statSync(join(root, p), { bigint: true }).ino;
  const r = new CgroupResolver({ mount: root, minWalkIntervalMs: 0 });

  t.is(await r.resolve(ino('system.slice/nginx.service'), '/system.slice/nginx.service'), '/system.slice/nginx.service');
  t.is(r.walks, 0, 'the right hint needs no walk');
  t.is(await r.resolve(ino('user.slice/user-1000.slice'), '/wrong'), '/user.slice/user-1000.slice');
  t.is(r.walks, 1);
  t.is(r.peek(ino('user.slice')), '/user.slice', 'the walk learned every directory');
  t.is(await r.resolve(ino('.')), '/');
  const id = ino('system.slice');
  rmSync(join(root, 'system.slice'), { recursive: true });
  t.is(await r.resolve(id), '/system.slice', 'still known after the directory is gone');
  t.is(await r.resolve(123456789n), null);
});

test('walks are not more frequent than minWalkIntervalMs', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'busted-cg-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  let now = 0;
  const r = new CgroupResolver({ mount: root, minWalkIntervalMs: 50, now: () => now });
  await r.resolve(1n);
  const started = Date.now();
  now = 10;
  await r.resolve(2n); // waits for the next allowed walk rather than walking now
  t.is(r.walks, 2);
  t.true(Date.now() - started >= 30);
});

test('no cgroup2 mount: ids stay unresolved', async (t) => {
  const r = new CgroupResolver({ mount: null });
  t.is(await r.resolve(5n, '/x'), null);
});

test('the real cgroup v2 mount: a child cgroup created here resolves by its id (root)', async (t) => {
  const mount = cgroup2MountFrom(readFileSync('/proc/mounts', 'utf8'));
  if (mount === null || process.getuid?.() !== 0) {
    t.fail(`needs root and a cgroup v2 mount (mount: ${mount}, uid ${process.getuid?.()})`);
    return;
  }
  const name = `busted-test-${process.pid}`;
  const dir = join(mount, name);
  mkdirSync(dir);
  t.teardown(() => rmdirSync(dir));
  mkdirSync(join(dir, 'leaf'));
  t.teardown(() => rmdirSync(join(dir, 'leaf')));
  const id = statSync(join(dir, 'leaf'), { bigint: true }).ino;
  const r = new CgroupResolver(); // finds the mount in /proc/mounts itself
  t.is(await r.mountPoint(), mount);
  t.is(await r.resolve(id), `/${name}/leaf`);
  t.is(r.walks, 1);
  // this process's own cgroup, as the kernel would report it, through the /proc hint
  const own = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3);
  const ownId = statSync(own === '/' ? mount : mount + own, { bigint: true }).ino;
  t.is(await new CgroupResolver({ mount }).resolve(ownId, own), own);
});
