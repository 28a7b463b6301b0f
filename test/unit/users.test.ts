import test from 'ava';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NameDirectory, parseGroup, parsePasswd } from '../../src/core/users.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/identity/${name}`, import.meta.url));

test('passwd: names by uid, the first entry for a uid wins, junk lines are skipped', (t) => {
  const users = parsePasswd(readFileSync(fixture('passwd'), 'utf8'));
  t.is(users.get(0), 'root');
  t.is(users.get(1000), 'alice');
  t.is(users.get(65534), 'nobody');
  t.is(users.get(4294967294), 'svc-agent');
  t.false([...users.values()].includes('bob'));
  t.false([...users.values()].includes('toor'));
  t.is(users.size, 5);
});

test('group: names by gid', (t) => {
  const groups = parseGroup(readFileSync(fixture('group'), 'utf8'));
  t.is(groups.get(0), 'root');
  t.is(groups.get(27), 'sudo');
  t.is(groups.get(65534), 'nogroup');
  t.is(groups.get(5), undefined);
});

test('the directory names users and groups from the files, null when unknown or missing', (t) => {
  const d = new NameDirectory({ passwd: fixture('passwd'), group: fixture('group') });
  t.is(d.user(1000), 'alice');
  t.is(d.group(27), 'sudo');
  t.is(d.user(4242), null);
  const none = new NameDirectory({ passwd: '/nonexistent/passwd', group: '/nonexistent/group' });
  t.is(none.user(0), null);
  t.is(none.group(0), null);
});

test('the directory reloads a file replaced on disk, at most every checkMs, without blocking lookups', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-users-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const passwd = join(dir, 'passwd');
  const group = join(dir, 'group');
  copyFileSync(fixture('passwd'), passwd);
  copyFileSync(fixture('group'), group);
  let now = 0;
  let changes = 0;
  const d = new NameDirectory({ passwd, group, checkMs: 1000, now: () => now, onChange: () => changes++ });
  t.is(d.user(1234), null);
  // vipw-style: write a new file and rename it over the old one
  writeFileSync(join(dir, 'passwd.new'), `${readFileSync(passwd, 'utf8')}carol:x:1234:1234::/home/carol:/bin/sh\n`);
  renameSync(join(dir, 'passwd.new'), passwd);
  now = 500;
  t.is(d.user(1234), null, 'not checked before checkMs');
  now = 1500;
  t.is(d.user(1234), null, 'the check is asynchronous: this lookup still answers from memory');
  await d.refresh();
  t.is(d.user(1234), 'carol');
  t.is(changes, 1);
  t.false(await d.refresh(), 'nothing changed since');
});
