import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProcCgroup, readCmdlineArgs, readStartTime, redactCmdline } from '../../src/core/identity-proc.js';

test('redactCmdline: credential values are replaced, other arguments kept', (t) => {
  const rows: Array<[string[], string]> = [
    [['agent', '--api-key', 'abc123', '-p', 'hi'], 'agent --api-key *** -p hi'],
    [['tool', '--token=xyz', '--model=gpt'], 'tool --token=*** --model=gpt'],
    [['env', 'OPENAI_API_KEY=sk-proj-aaaaaaaaaaaaaaaaaaaa', 'python3', 'a.py'], 'env OPENAI_API_KEY=*** python3 a.py'],
    [['curl', '-H', 'Authorization: Bearer sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaa'], 'curl -H Authorization: Bearer ***'],
    [['git', 'clone', 'https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/x'], 'git clone https://***@github.com/x'],
    [['x', '--password'], 'x --password'],
    [['x', '--auth-file', '-v'], 'x --auth-file -v'],
    [['node', 'cli.js', '--resume'], 'node cli.js --resume'],
  ];
  for (const [args, want] of rows) t.is(redactCmdline(args), want, args.join(' '));
});

test('/proc readers: cmdline reads are bounded, stat and cgroup parse', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'busted-proc-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, '7'));
  writeFileSync(join(root, '7/cmdline'), `python3\0${'x'.repeat(10_000)}\0`);
  writeFileSync(join(root, '7/stat'), '7 (a b) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4321 0 0\n');
  const c = await readCmdlineArgs(7, root, 100);
  t.true(c!.truncated);
  t.is(c!.args[0], 'python3');
  t.is(c!.args.join('\0').length, 100);
  const d = await readCmdlineArgs(7, root); // default: 4096 bytes
  t.true(d!.truncated);
  t.is(d!.args[1]!.length, 4096 - 'python3\0'.length);
  t.deepEqual(await readCmdlineArgs(7, root, 20_000), { args: ['python3', 'x'.repeat(10_000)], truncated: false });
  t.is(await readCmdlineArgs(8, root), null);
  t.is(readStartTime(7, root), 4321);
  t.is(readStartTime(8, root), null);
  t.is(parseProcCgroup('12:pids:/x\n0::/user.slice/session-1.scope\n'), '/user.slice/session-1.scope');
  t.is(parseProcCgroup('0::\n'), '/');
  t.is(parseProcCgroup('1:name=systemd:/\n'), null);
});
