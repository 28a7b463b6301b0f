/** busted-top's command line: usage errors (exit 2), the non-root hint, replay errors (exit 1). */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { validateTopFlags } from '../../src/cli/top-options.js';
import { UsageError } from '../../src/cli/options.js';

const BIN = `${ROOT}bin/busted-top.js`;
const DEMO = `${ROOT}examples/demo.jsonl`;
/** A symbolic link to the demo recording: another name for the same file. */
const DEMO_LINK = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'busted-top-cli-')), 'link.jsonl');
fs.symlinkSync(DEMO, DEMO_LINK);
test.after.always(() => fs.rmSync(path.dirname(DEMO_LINK), { recursive: true, force: true }));
/** Runs busted-top (as nobody when asked and we are root); resolves with exit code and output. */
async function run(args: string[], opts: { asNobody?: boolean; caps?: string } = {}) {
  const asNobody = opts.asNobody && process.geteuid?.() === 0;
  const cmd = asNobody ? 'setpriv' : process.execPath;
  const caps = opts.caps ? [`--inh-caps=-all,${opts.caps}`, `--ambient-caps=-all,${opts.caps}`] : [];
  const argv = asNobody ? ['--reuid=65534', '--regid=65534', '--clear-groups', ...caps, process.execPath, BIN, ...args] : [BIN, ...args];
  const child = spawn(cmd, argv, { cwd: os.tmpdir(), env: { ...process.env, HOME: os.tmpdir() }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, stdout, stderr };
}

const USAGE: [string[], RegExp][] = [
  [['--speed', '0', '--replay', DEMO], /--speed must be a number above 0/],
  [['--speed', 'fast', '--replay', DEMO], /--speed must be a number/],
  [['--speed', '2'], /--speed only applies with --replay FILE/],
  [['--interval', '5', '--replay', DEMO], /--interval must be a number of milliseconds between 50 and 60000/],
  [['--bogus'], /unknown option --bogus/],
  [['--replay', DEMO, 'extra'], /unexpected argument extra/],
  [['--replay', DEMO, '--record', DEMO], /cannot be the same file/],
  [['--replay', DEMO, '--record', path.relative(os.tmpdir(), DEMO)], /cannot be the same file/], // busted-top runs in os.tmpdir()
  [['--replay', DEMO, '--record', DEMO_LINK], /cannot be the same file: recording would overwrite the recording being replayed/],
];

for (const [args, message] of USAGE) {
  test(`busted-top ${args.map((a) => path.basename(a)).join(' ')} is a usage error${args.includes(DEMO_LINK) ? ' (a link to it)' : args.some((a) => a.startsWith('..') || (a.includes('/') && !path.isAbsolute(a))) ? ' (relative)' : ''}`, async (t) => {
    const r = await run(args);
    t.is(r.status, 2, r.stderr);
    t.regex(r.stderr, message);
    t.regex(r.stderr, /^busted-top: .*; see busted-top --help\.\n$/);
    t.is(r.stdout, '');
  });
}

test('--help and --version', async (t) => {
  const help = await run(['--help']);
  t.is(help.status, 0);
  for (const flag of ['--replay', '--speed', '--interval', '--record', '--all', '--version']) t.true(help.stdout.includes(flag), flag);
  const version = await run(['--version']);
  t.is(version.status, 0);
  t.regex(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
});

test('without root and without --replay it says how to use a recording, exit 1', async (t) => {
  const r = await run([], { asNobody: true });
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /^busted-top: busted-top needs root .*: run it with sudo, or try it without privileges on a recording: busted-top --replay examples\/demo\.jsonl\n$/);
});

// root: setpriv gives the capabilities (skipped elsewhere, a failure under BUSTED_REQUIRE_KERNEL=1)
kernelTest('with the capabilities instead of root it goes on to start (here it stops at the missing terminal)', async (t) => {
  const r = await run([], { asNobody: true, caps: '+bpf,+perfmon,+net_admin' });
  t.notRegex(r.stderr, /needs root/);
  t.regex(r.stderr, /busted-top needs a terminal on stdin and stdout/);
  const short = await run([], { asNobody: true, caps: '+bpf,+perfmon' });
  t.regex(short.stderr, /needs root or CAP_BPF\+CAP_PERFMON\+CAP_NET_ADMIN/, 'one missing is not enough');
});

test('a missing or empty recording is one clear sentence, exit 1', async (t) => {
  const missing = await run(['--replay', '/nonexistent/rec.jsonl'], { asNobody: true });
  t.is(missing.status, 1);
  t.is(missing.stderr, 'busted-top: The recording /nonexistent/rec.jsonl does not exist; check the path (try examples/demo.jsonl).\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-cli-'));
  fs.chmodSync(dir, 0o755);
  const empty = path.join(dir, 'empty.jsonl');
  fs.writeFileSync(empty, '', { mode: 0o644 });
  const r = await run(['--replay', empty], { asNobody: true });
  fs.rmSync(dir, { recursive: true });
  t.is(r.status, 1);
  t.regex(r.stderr, /is empty; record one with --record FILE first\.\n$/);
});

test('without a terminal it is a usage error pointing to busted', async (t) => {
  const r = await run(['--replay', DEMO]);
  t.is(r.status, 2);
  t.regex(r.stderr, /needs a terminal on stdin and stdout; for pipes use busted --format json/);
});

test('validateTopFlags defaults', (t) => {
  t.deepEqual(validateTopFlags({}), { replay: null, speed: 1, intervalMs: 1000, record: null, all: false, providers: null, policy: null, enforce: false });
  t.throws(() => validateTopFlags({ replay: ' ' }), { instanceOf: UsageError });
});
