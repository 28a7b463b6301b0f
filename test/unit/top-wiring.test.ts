/** The CLI's pieces around the UI: kill checks, terminal restore, user names. */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KillRecord } from '../../src/core/records.js';
import { liveKill, refuseInReplay } from '../../src/cli/kill.js';
import { FullScreen } from '../../src/cli/terminal.js';
import { localUserNames, recordedUserNames } from '../../src/cli/users.js';
import { NameDirectory } from '../../src/core/users.js';

const target = { key: '4242:77', pid: 4242, startTime: 77, comm: 'python3' };

function killWith(opts: { start?: number | null; error?: string } = {}) {
  const sent: [number, string][] = [];
  const published: KillRecord[] = [];
  const kill = liveKill({
    selfPid: 999,
    readStartTime: () => (opts.start === undefined ? 77 : opts.start),
    signal: (pid, sig) => {
      if (opts.error) throw Object.assign(new Error(opts.error), { code: opts.error });
      sent.push([pid, sig]);
    },
    publish: (r) => published.push(r),
    now: () => new Date('2026-01-15T09:30:00.000Z'),
  });
  return { kill, sent, published };
}

test('kill: sends the signal to the same process and records a kill record', async (t) => {
  const k = killWith();
  t.deepEqual(await k.kill(target, 'SIGTERM'), { ok: true, message: 'Sent SIGTERM to 4242 (python3).' });
  t.deepEqual(k.sent, [[4242, 'SIGTERM']]);
  t.deepEqual(k.published, [{ type: 'kill', ts: '2026-01-15T09:30:00.000Z', pid: 4242, signal: 'SIGTERM' }]);
});

test('kill: refuses pid 1, itself, a reused pid and a replay; reports exited and forbidden', async (t) => {
  const cases: [ReturnType<typeof killWith>, typeof target, RegExp][] = [
    [killWith(), { ...target, pid: 1 }, /Refusing to signal pid 1/],
    [killWith(), { ...target, pid: 999 }, /busted-top itself/],
    [killWith({ start: 78 }), target, /now belongs to another process; nothing was sent/],
    [killWith({ start: null }), target, /has already exited/],
    [killWith({ error: 'ESRCH' }), target, /has already exited/],
    [killWith({ error: 'EPERM' }), target, /Not allowed to signal 4242 \(python3\): run busted-top as root/],
  ];
  for (const [k, tgt, message] of cases) {
    const r = await k.kill(tgt, 'SIGKILL');
    t.false(r.ok);
    t.regex(r.message, message);
    t.deepEqual(k.sent, []);
    t.deepEqual(k.published, [], 'nothing is recorded when nothing was sent');
  }
  t.regex((await refuseInReplay(target, 'SIGTERM')).message, /not available in a replay/);
});

test('FullScreen: enters the alternate screen, restores once, leaves raw mode', (t) => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'busted-term-')), 'tty');
  const fd = fs.openSync(file, 'w');
  const raw: boolean[] = [];
  const screen = new FullScreen({ stdout: { fd, isTTY: true }, stdin: { isTTY: true, setRawMode: (on) => raw.push(on) } });
  const order: string[] = [];
  screen.restore(); // nothing to restore yet
  screen.enter();
  screen.beforeRestore(() => {
    order.push(`teardown at ${fs.readFileSync(file, 'utf8').length} bytes`);
    throw new Error('a broken UI does not stop the restore');
  });
  t.true(screen.entered);
  screen.restore();
  screen.restore();
  fs.closeSync(fd);
  t.is(fs.readFileSync(file, 'utf8'), '\x1b[?1049h\x1b[H\x1b[2J\x1b[?25h\x1b[?1049l');
  t.deepEqual(raw, [false]);
  t.deepEqual(order, ['teardown at 15 bytes'], 'the UI is torn down once, before leaving the alternate screen');
  const notTty = new FullScreen({ stdout: { fd: 1, isTTY: false }, stdin: {} });
  notTty.enter();
  t.false(notTty.entered, 'a pipe is never switched to the alternate screen');
});

test('user names: the core directory live, and only root named in a replay', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-users-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const passwd = path.join(dir, 'passwd');
  fs.writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n# comment\nbad\n');
  const local = localUserNames(new NameDirectory({ passwd, group: path.join(dir, 'group') }));
  t.deepEqual([0, 1000, 1001].map(local), ['root', 'alice', '1001']);
  t.is(recordedUserNames(0), 'root');
  t.is(recordedUserNames(1000), '1000');
});
