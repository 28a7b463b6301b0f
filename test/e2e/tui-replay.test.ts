/**
 * busted-top in a real terminal (tmux): replay a fixture, press keys, read the screen, and check
 * that every way out (q, Ctrl-C, SIGTERM) gives the terminal back as it was. No root needed.
 */
import test from 'ava';
// one terminal at a time: busted-tops starting together on a small loaded machine took over 10 s
// to draw their replays in CI
import { execFileSync } from 'node:child_process';
import { ROOT } from '../helpers/busted.js';
import { Tmux } from '../helpers/tmux.js';

const FIXTURE = `${ROOT}test/fixtures/tui-replay.jsonl`;
const DEMO = `${ROOT}examples/demo.jsonl`;

/** Runs busted-top between two markers, then reports its exit code and the tty's mode. */
function command(args: string, nodeArgs = ''): string {
  // CI=true as in .ci/run: Ink would draw nothing interactive, unless busted-top sets that aside.
  const run = `env CI=true ${process.execPath} ${nodeArgs} ${ROOT}bin/busted-top.js ${args}`;
  return `sh -c 'printf "BEFORE-MARK\\n"; ${run}; echo "EXIT=$?"; stty -a | tr " ;" "\\n\\n" | grep -x -- "-\\{0,1\\}icanon"; sleep 60'`;
}

/** busted-top has exited and the shell after it has printed the tty's mode (a line after EXIT=). */
const exited = (s: string) => /EXIT=\d+\n-?icanon$/m.test(s);

/** The pid of busted-top: the child of the pane's shell. */
function bustedTopPid(tm: Tmux): number {
  const children = execFileSync('pgrep', ['-P', tm.format('pane_pid')], { encoding: 'utf8' }).trim().split('\n');
  if (children.length !== 1) throw new Error(`expected one child of the pane's shell, found ${children.join(', ')}`);
  return Number(children[0]);
}

const dataRows = (lines: string[]): string[] => lines.filter((l) => /^\s+\d+ \S/.test(l)).map((l) => l.trim().split(/\s+/)[0]!);

test.before(() => {
  execFileSync('tmux', ['-V']); // fails the run (not skips) when tmux is missing
});

test.serial('replay at 80x24: rows, sort, filter, detail, help, resize, and q restores the terminal', async (t) => {
  const tm = new Tmux('tui');
  t.teardown(() => tm.kill());
  tm.start(command(`--replay ${FIXTURE} --speed 10`), 80, 24);
  let lines = await tm.waitFor((s) => s.includes('REPLAY ×10 ended') && /\s4211 /.test(s), 'the replayed rows', 30_000);
  t.is(tm.format('alternate_on'), '1', 'on the alternate screen');
  t.regex(lines[0]!, /^busted-top {2}AUDIT {2}REPLAY ×10 ended/);
  t.regex(lines[1]!, /procs 3 {2}conns 3\/4 .*lost 3$/);
  t.regex(lines[2]!, /^\s+PID USER\s+PROCESS\s+PROVIDERS\s+CONNS\s+TX\/s ▼RX\/s\s+TX\s+RX LAST POLICY$/, 'every column at 80 wide');
  t.deepEqual(dataRows(lines), ['4211', '5120', '6001'], 'sorted by RX/s');
  t.true(lines.some((l) => /^openai\s+█/.test(l)), 'the provider breakdown is drawn');
  t.regex(lines[23]!, /line 9 \(not valid JSON\)/, 'the malformed line is reported on the status line');
  t.true(lines.every((l) => l.length <= 80));

  tm.keys('s');
  lines = await tm.waitFor((s) => s.includes('▼TX '), 'sort by TX');
  t.deepEqual(dataRows(lines), ['6001', '5120', '4211']);
  tm.keys('r');
  lines = await tm.waitFor((s) => s.includes('▲TX '), 'reversed sort');
  t.deepEqual(dataRows(lines), ['4211', '5120', '6001']);

  tm.keys('/');
  tm.keys('provider:anthropic', true);
  tm.keys('Enter');
  lines = await tm.waitFor((_, l) => dataRows(l).length === 1, 'the filter');
  t.deepEqual(dataRows(lines), ['5120']);
  // the status line shows the recording's problem for 10 refreshes, then the active filter
  await tm.waitFor((_, l) => /^filter: provider:anthropic \(Esc clears\)/.test(l[23] ?? ''), 'the filter on the status line', 15_000);

  tm.keys('Enter');
  lines = await tm.waitFor((s) => s.includes('exe       /usr/local/bin/node'), 'the detail view');
  t.regex(lines[2]!, /^process {3}node {2}pid 5120 {2}start 600 {2}running/);
  t.true(lines.some((l) => /^192\.0\.2\.20:443\s+api\.anthropic\.com\s+anthropic\s+sni\s+open/.test(l)));
  tm.keys('Escape');
  await tm.waitFor((s) => s.includes('PROVIDERS'), 'back to the table');
  tm.keys('Escape');
  lines = await tm.waitFor((_, l) => dataRows(l).length === 3, 'the filter cleared');

  tm.keys('?');
  lines = await tm.waitFor((s) => s.includes('Keys (Esc or ? closes this help)'), 'the help');
  t.true(lines.some((l) => l.includes('q ^C') && l.includes('quit')));
  tm.keys('Escape');
  await tm.waitFor((s) => s.includes('PROVIDERS'), 'help closed');

  tm.resize(120, 30);
  lines = await tm.waitFor((_, l) => l.length === 30 && l.some((x) => x.length > 100), 'a redraw at 120x30');
  t.regex(lines[29]!, /\? help/);

  tm.keys('q');
  lines = await tm.waitFor(exited, 'busted-top to exit and the shell to print the tty mode');
  t.is(tm.format('alternate_on'), '0', 'back on the normal screen');
  t.is(tm.format('cursor_flag'), '1', 'cursor visible');
  const text = lines.join('\n');
  t.regex(text, /BEFORE-MARK/, 'what was on the screen before is back');
  t.regex(text, /EXIT=0/);
  t.regex(text, /busted-top: .*tui-replay\.jsonl: 1 problem: line 9 \(not valid JSON\)\./);
  t.regex(text, /^icanon$/m, 'the tty is back in canonical mode');
  t.notRegex(text, /PROVIDERS/, 'no UI left on the normal screen');
});

test.serial('the demo at 80x24: agent label and recorded user names in the table, identity in the detail view', async (t) => {
  const tm = new Tmux('identity');
  t.teardown(() => tm.kill());
  tm.start(command(`--replay ${DEMO} --speed 50`), 80, 24);
  // 150 s of demo at ×50 is 3 s, but this file's other terminals start meanwhile on the same
  // CPUs (one CI run took over 10 s to get 50 s into it)
  let lines = await tm.waitFor((s) => s.includes('REPLAY ×50 ended'), 'the end of the demo', 30_000);
  t.true(lines.some((l) => /^\s+53390 alice\s+Claude Code\s+anthropic /.test(l)), 'the agent label in PROCESS');
  t.true(lines.some((l) => /^\s+22310 bob\s+python3 /.test(l)), 'a recorded user name (a replay names no one but root itself)');
  t.true(lines.some((l) => /^\s+51007 10001\s+node /.test(l)), 'a uid no name was recorded for');

  /** From the unfiltered table: the detail view of the one row `filter` leaves, then back. */
  const detailOf = async (filter: string, pid: number): Promise<string[]> => {
    tm.keys('/');
    tm.keys(filter, true);
    tm.keys('Enter');
    await tm.waitFor((_, l) => dataRows(l).join() === String(pid), `${filter} to leave ${pid}`);
    tm.keys('Enter');
    const shown = await tm.waitFor((s) => s.includes(`pid ${pid}  start`), `the detail of ${pid}`);
    tm.keys('Escape');
    await tm.waitFor((s) => s.includes('PROVIDERS'), 'back to the table');
    tm.keys('Escape');
    await tm.waitFor((_, l) => dataRows(l).length > 1, 'the filter cleared');
    return shown;
  };
  lines = await detailOf('process:"claude code"', 53390);
  t.deepEqual(lines.slice(2, 12), [
    'process   claude  pid 53390  start 955870  running',
    'agent     Claude Code (claude)',
    'user      alice (uid 1000), group alice (gid 1000)',
    'exe       /home/alice/.local/share/claude/versions/2.0.14',
    'sha256    39f11688118de437…',
    'cmdline   claude --model opus --add-dir /home/alice/src/notes',
    'parents   zsh(53101) ← sshd(53088) ← sshd(1187) ← systemd(1)',
    'cgroup    /user.slice/user-1000.slice/session-4.scope',
    lines[10]!,
    'conns     1 open, 2 total, 0 failed; providers anthropic',
  ]);
  t.regex(lines[10]!, /^traffic {3}tx 1\.3 MiB/);
  t.true(lines.some((l) => /^160\.79\.104\.10:443\s+api\.anthropic\.com\s+anthropic\s+sni\s+open/.test(l)));
  lines = await detailOf('pid:51007', 51007);
  t.true(lines.includes('container containerd 2e2fd82e04a4'));
  t.true(lines.includes('pod       7c2e9a41-5b3d-4f0e-9a61-2d8c4b7e1f35 (burstable)'));
  t.true(lines.includes('user      uid 10001, gid 10001'));
  t.true(lines.includes('parents   containerd-shim(3021) ← systemd(1)'));
  t.true(lines.every((l) => l.length <= 80));
  lines = await detailOf('user:bob', 22310);
  t.true(lines.includes('exe       /opt/conda/bin/python3.11 (replaced on disk)'));
  t.true(lines.every((l) => l.length <= 80));
  tm.keys('q');
  await tm.waitFor(exited, 'busted-top to exit and the shell to print the tty mode');
});

for (const [name, stop] of [
  ['Ctrl-C', (tm: Tmux) => tm.keys('C-c')],
  ['SIGTERM', (tm: Tmux) => process.kill(bustedTopPid(tm), 'SIGTERM')],
] as const) {
  test.serial(`${name} also restores the terminal`, async (t) => {
    const tm = new Tmux(`stop-${name}`);
    t.teardown(() => tm.kill());
    tm.start(command(`--replay ${FIXTURE} --speed 10`), 80, 24);
    await tm.waitFor((s) => /\s4211 /.test(s), 'the replayed rows');
    stop(tm);
    const lines = await tm.waitFor(exited, 'busted-top to exit and the shell to print the tty mode');
    const text = lines.join('\n');
    t.regex(text, /EXIT=0/);
    t.regex(text, /BEFORE-MARK/);
    t.regex(text, /^icanon$/m);
    t.is(tm.format('alternate_on'), '0');
    t.is(tm.format('cursor_flag'), '1');
  });
}

test.serial('an uncaught exception restores the terminal and says what happened, exit 1', async (t) => {
  const tm = new Tmux('boom');
  t.teardown(() => tm.kill());
  tm.start(command(`--replay ${FIXTURE} --speed 10`, `--import ${ROOT}test/fixtures/throw-later.mjs`), 80, 24);
  await tm.waitFor((s) => /\s4211 /.test(s), 'the replayed rows');
  t.is(tm.format('alternate_on'), '1');
  process.kill(bustedTopPid(tm), 'SIGUSR2');
  const lines = await tm.waitFor(exited, 'busted-top to exit and the shell to print the tty mode');
  const text = lines.join('\n');
  t.regex(text, /busted-top: boom from the test\nEXIT=1/);
  t.notRegex(text, /PROVIDER/, 'the last frame did not land on the normal screen');
  t.regex(text, /BEFORE-MARK/);
  t.regex(text, /^icanon$/m);
  t.is(tm.format('alternate_on'), '0');
  t.is(tm.format('cursor_flag'), '1');
});
