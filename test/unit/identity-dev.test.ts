import test from 'ava';
import { readFileSync, realpathSync, statSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelDevParts, kernelDevToUser, makeUserDev, userDevToKernel } from '../../src/core/identity-proc.js';

const kdev = (major: number, minor: number) => major * 2 ** 20 + minor;

test('kernel dev_t (major<<20|minor) converts to the st_dev encoding of glibc makedev', (t) => {
  const rows: Array<[number, number, number]> = [
    // major, minor, st_dev as `stat -c %d` prints it (glibc makedev)
    [254, 0, 65024], // virtio disk /dev/vda
    [8, 1, 2049], // /dev/sda1
    [0, 27, 27], // tmpfs, anonymous device
    [259, 3, 66307], // nvme0n1p3
    [0, 300, 0x100000 * 1 + 44], // anonymous minor > 255 (many overlay mounts)
    [253, 0xfffff, 0xff + 253 * 0x100 + 0xfff * 0x100000], // largest minor
  ];
  for (const [major, minor, st] of rows) {
    t.is(makeUserDev(major, minor), st, `makedev(${major}, ${minor})`);
    t.is(kernelDevToUser(kdev(major, minor)), st, `kernel ${major}:${minor}`);
    t.is(userDevToKernel(st), kdev(major, minor), `back to kernel ${major}:${minor}`);
    t.deepEqual(kernelDevParts(kdev(major, minor)), { major, minor });
  }
});

/** The mount containing `path` (longest mount point prefix) from /proc/self/mountinfo: its major:minor. */
function mountDevOf(path: string): { major: number; minor: number } {
  let best: { mp: string; major: number; minor: number } | null = null;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4]!.replace(/\\040/g, ' ');
    const [major, minor] = f[2]!.split(':').map(Number) as [number, number];
    const inside = path === mp || path.startsWith(mp === '/' ? '/' : `${mp}/`);
    if (inside && (!best || mp.length >= best.mp.length)) best = { mp, major, minor };
  }
  if (!best) throw new Error(`no mount holds ${path}`);
  return best;
}

test('a real file: the kernel s_dev of its mount (mountinfo) converts to what stat() says', (t) => {
  const dirs = [mkdtempSync(join(tmpdir(), 'busted-dev-'))];
  try {
    dirs.push(mkdtempSync('/dev/shm/busted-dev-'));
  } catch {
    // no /dev/shm: the temp directory alone
  }
  try {
    for (const dir of dirs) {
      const file = join(dir, 'f');
      writeFileSync(file, 'x');
      const real = realpathSync(file);
      const { major, minor } = mountDevOf(real);
      const st = statSync(real);
      t.is(kernelDevToUser(kdev(major, minor)), st.dev, `${real} on ${major}:${minor}`);
      t.is(userDevToKernel(st.dev), kdev(major, minor));
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test('the running executable: its inode device in /proc/self/maps (the kernel view) matches stat()', (t) => {
  const exe = realpathSync('/proc/self/exe');
  const st = statSync(exe);
  const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.endsWith(` ${exe}`));
  t.truthy(line, `${exe} is mapped`);
  const [, , , devHex, ino] = line!.split(/\s+/) as [string, string, string, string, string];
  const [major, minor] = devHex.split(':').map((h) => parseInt(h, 16)) as [number, number];
  t.is(BigInt(ino), BigInt(st.ino));
  t.is(kernelDevToUser(kdev(major, minor)), st.dev);
});
