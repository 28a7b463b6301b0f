/** Every usage error: exit 2 and one sentence on stderr, nothing on stdout. No root needed. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { BUSTED_BIN, ROOT } from '../helpers/busted.js';
import { validateFlags, describeError, UsageError } from '../../src/cli/options.js';
import { PreflightError } from '../../src/bpf/preflight.js';
import { BpfError } from '../../src/bpf/libbpf.js';

const run = (...args: string[]) => spawnSync(process.execPath, [BUSTED_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });

const USAGE_CASES: [string[], RegExp][] = [
  [['--format', 'xml'], /--format must be text or json, not "xml"/],
  [['--interval', 'abc'], /--interval must be a number of milliseconds/],
  [['--interval', '5'], /--interval must be a number of milliseconds between 50 and 60000/],
  [['--duration', '0'], /--duration must be a positive number of seconds/],
  [['--duration', '-3'], /--duration must be a positive number of seconds/],
  [['--replay', `${ROOT}examples/demo.jsonl`, '--record', './examples/demo.jsonl'], /--record and --replay cannot be the same file/],
  [['--bogus-flag'], /unknown option --bogus-flag/],
  [['frobnicate'], /unknown command frobnicate/],
  [['doctor', 'extra'], /unexpected argument extra/],
];

for (const [args, message] of USAGE_CASES) {
  test(`busted ${args.join(' ')} is a usage error`, (t) => {
    const r = run(...args);
    t.is(r.status, 2);
    t.regex(r.stderr, message);
    t.regex(r.stderr, /see busted --help\.\n$/);
    t.is(r.stderr.trim().split('\n').length, 1);
    t.is(r.stdout, '');
  });
}

test('--help and --version print and exit 0', (t) => {
  const help = run('--help');
  t.is(help.status, 0);
  for (const flag of ['--format', '--all', '--interval', '--duration', '--verbose', 'doctor']) t.true(help.stdout.includes(flag), flag);
  const version = run('--version');
  t.is(version.status, 0);
  t.regex(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
});

test('validateFlags fills defaults', (t) => {
  t.deepEqual(validateFlags({}), { format: 'text', all: false, interval: 1000, duration: undefined, verbose: false, record: undefined, replay: undefined, providers: undefined, agents: undefined, policy: undefined, enforce: false, speed: 1 });
});

test('describeError maps errors to one sentence and an exit code', (t) => {
  t.is(describeError(new UsageError('bad')).code, 2);
  t.deepEqual(describeError(new PreflightError('needs root', 'privileges')), { message: 'needs root', code: 1 });
  const eperm = describeError(new BpfError('bpf_object__load(x)', 1, 'Operation not permitted'));
  t.is(eperm.code, 1);
  t.regex(eperm.message, /^bpf_object__load\(x\) failed: EPERM \(Operation not permitted\)\. busted needs root/);
  t.regex(describeError(new BpfError('attach', 95, 'Operation not supported')).message, /busted doctor/);
});
