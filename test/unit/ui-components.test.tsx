/** Frames of each component from fixed snapshots (ink-testing-library, ANSI stripped). */
import test from 'ava';
import React from 'react';
import { render } from 'ink-testing-library';
import { stripVTControlCharacters } from 'node:util';
import { Breakdown } from '../../src/ui/Breakdown.js';
import { Detail } from '../../src/ui/Detail.js';
import { Header } from '../../src/ui/Header.js';
import { Help } from '../../src/ui/Help.js';
import { KEY_BINDINGS } from '../../src/ui/keys.js';
import { ProcessTable } from '../../src/ui/ProcessTable.js';
import { DEFAULT_SORT } from '../../src/ui/rows.js';
import { initialState, rowsOf } from '../../src/ui/state.js';
import { StatusLine } from '../../src/ui/StatusLine.js';
import {
  AGENT, AGENT_POD, agentRecords, close, config, connect, NODE, PY, session, snapshotOf, T0, threeProcesses, traffic, userName,
} from '../helpers/ui-fixtures.js';

const frame = (el: React.ReactElement): string[] => {
  const r = render(el);
  const out = stripVTControlCharacters(r.lastFrame() ?? '');
  r.unmount();
  return out.split('\n');
};

const state = () => initialState(config(), { snapshot: snapshotOf(threeProcesses(), 2000) });

test('process table: header with sort marker, one line per process in order, exact cells', (t) => {
  const s = state();
  const lines = frame(
    <ProcessTable rows={rowsOf(s)} now={s.shown.snapshot.at} userName={userName} sort={DEFAULT_SORT} selectedKey={s.selected} width={80} height={10} emptyText="none" />,
  );
  t.is(lines[0], '    PID USER    PROCESS     PROVIDERS  CONNS  TX/s ▼RX/s    TX    RX LAST POLICY');
  // rates: bytes over the time since each flow opened (1.9 s, 1.8 s, 1.7 s), as the store computes them
  t.is(lines[1], '   4211 alice   python3     openai       1/1   526   26K  1.0K   49K   1s -');
  t.is(lines[2], '   5120 bob     node        anthropic    1/1  1.1K   11K  2.0K   20K   1s -');
  t.is(lines[3], '   6001 root    curl        ollama       1/1   52K   588   88K  1.0K   1s -');
  t.is(lines.length, 10, 'the table takes the height it is given');
  t.true(lines.slice(4).every((l) => l.trim() === ''));
  for (const l of lines) t.true(l.length <= 80);
});

test('process table: the agent label instead of comm, the recorded user name before the local one', (t) => {
  // carol (uid 1002) is not in the local names; bob's record says "robert", which wins over the lookup
  const recs = [...threeProcesses(), ...agentRecords(), connect(500, '8', { pid: 5121, comm: 'node', uid: 1001 }, { user: 'robert' })];
  const s = initialState(config(), { snapshot: snapshotOf(recs, 2000) });
  const lines = frame(
    <ProcessTable rows={rowsOf(s)} now={s.shown.snapshot.at} userName={userName} sort={DEFAULT_SORT} selectedKey={s.selected} width={80} height={10} emptyText="none" />,
  );
  const row = (pid: number) => lines.find((l) => l.startsWith(String(pid).padStart(7)))!;
  t.is(row(AGENT.pid), '   7300 carol   Claude Code anthropic    1/1  1.8K  5.5K  2.9K  8.8K   1s -');
  t.regex(row(5121), /^ {3}5121 robert  node /);
  t.regex(row(NODE.pid), /^ {3}5120 bob {5}node /, 'no recorded name: the local lookup');
  const narrow = frame(
    <ProcessTable rows={rowsOf(s)} now={s.shown.snapshot.at} userName={userName} sort={DEFAULT_SORT} selectedKey={null} width={60} height={10} emptyText="none" />,
  );
  t.true(narrow.some((l) => /^ {3}7300 .*Claude Code/.test(l)), 'the label is kept when columns are dropped');
});

test('process table: scrolls to keep the selection visible and shows the empty text', (t) => {
  const recs = [session(0), ...Array.from({ length: 30 }, (_, i) => connect(10, String(i), { pid: 100 + i, comm: `p${i}` })), ...Array.from({ length: 30 }, (_, i) => traffic(1000, String(i), 100 + i, 1, 1000 * (i + 1)))];
  const s = initialState(config(), { snapshot: snapshotOf(recs, 2000) });
  const rows = rowsOf(s);
  const last = rows[rows.length - 1]!;
  const lines = frame(<ProcessTable rows={rows} now={0} userName={userName} sort={DEFAULT_SORT} selectedKey={last.key} width={80} height={6} emptyText="none" />);
  t.is(lines.length, 6);
  t.regex(lines[5]!, /^\s+100 /, 'the selected (last) row is on screen');
  const empty = frame(<ProcessTable rows={[]} now={0} userName={userName} sort={DEFAULT_SORT} selectedKey={null} width={80} height={6} emptyText="no LLM traffic yet" />);
  t.is(empty[1], 'no LLM traffic yet');
});

test('header: mode, replay marker, totals and the lost count', (t) => {
  const snap = snapshotOf([...threeProcesses(), { type: 'lost', ts: new Date(T0 + 1500).toISOString(), count: 7 }], 65_000);
  const lines = frame(
    <Header session={snap.session} at={snap.at} totals={snap.totals} lost={snap.lost} intervalMs={1000}
      source={{ mode: 'replay', file: 'x.jsonl', speed: 10, endsAt: T0 + 65_000 }} recording="out.jsonl" paused showAll={false} width={120} />,
  );
  t.is(lines[0], 'busted-top  AUDIT  REPLAY ×10 ended  ● REC out.jsonl  PAUSED  LLM only  up 1m05s  every 1s  test-host 6.8.0-test');
  t.is(lines[1], 'procs 3  conns 3/3  tx 0 B/s  rx 0 B/s  total 91 KiB / 69 KiB  lost 7');
  const live = frame(
    <Header session={{ ...snap.session!, enforce: true }} at={snap.at} totals={snap.totals} lost={0} intervalMs={500}
      source={{ mode: 'live' }} recording={null} paused={false} showAll width={100} />,
  );
  t.regex(live[0]!, /^busted-top {2}ENFORCE {2}all traffic {2}up 1m05s {2}every 500ms/);
  t.notRegex(live[0]!, /REPLAY|REC|PAUSED/);
});

test('breakdown: providers by bytes with share bars, percentages, rate and sparkline', (t) => {
  const s = state();
  const lines = frame(<Breakdown ledger={s.shown.ledger} history={s.shown.history} at={s.shown.snapshot.at} width={80} height={6} showAll={false} />);
  t.regex(lines[0]!, /^PROVIDER {5}BYTES {11}CONNS {10}\s+RATE LAST MINUTE$/);
  t.deepEqual(lines.slice(1).map((l) => l.slice(0, 12).trim()), ['ollama', 'openai', 'anthropic']);
  t.regex(lines[1]!, /^ollama {7}█████▌░░░░ {2}55% ██▋░░░░░ {2}33% +52 KiB\/s/);
  t.regex(lines[2]!, /31%/);
  t.regex(lines[3]!, /13%/);
  t.true(lines.every((l) => l.length <= 80));
  t.regex(lines[1]!, /[▁▂▃▄▅▆▇█]\s*$/, 'the sparkline ends with the current rate');
  const few = frame(<Breakdown ledger={s.shown.ledger} history={[]} at={0} width={80} height={3} showAll={false} />);
  t.is(few.length, 3);
  t.is(few[2], '+2 more providers');
});

test('detail: identity and connections of the selected process', (t) => {
  const recs = [...threeProcesses(), connect(1200, '4', PY, { dst: '192.0.2.11:443', error: 'ECONNREFUSED' }), close(1500, '1', PY.pid, 1000, 60_000)];
  const snap = snapshotOf(recs, 2000);
  const row = snap.processes.find((p) => p.pid === PY.pid)!;
  const lines = frame(<Detail row={row} flows={snap.flows.filter((f) => f.proc === row.key)} userName={userName} at={snap.at} width={90} height={14} scroll={0} />);
  t.is(lines[0], 'process   python3  pid 4211  start 500  running');
  t.is(lines[1], 'user      alice (uid 1000), gid 1000');
  t.is(lines[2], 'exe       /usr/bin/python3');
  t.is(lines[3], 'cgroup    /user.slice');
  // the closed flow's bytes are still inside the 3 s rate window: 1000 B and 60000 B over 1.9 s
  t.is(lines[4], 'traffic   tx 1000 B (526 B/s)  rx 59 KiB (31 KiB/s)');
  t.regex(lines[5]!, /^conns {5}0 open, 2 total, 1 failed; providers openai$/);
  t.regex(lines[7]!, /^REMOTE\s+HOST\s+PROVIDER\s+VIA\s+STATE\s+DUR\s+TX\s+RX$/);
  t.regex(lines[8]!, /^192\.0\.2\.11:443\s+api\.openai\.com\s+openai\s+sni\s+refused\s+0s\s+0\s+0$/);
  t.regex(lines[9]!, /^192\.0\.2\.10:443\s+api\.openai\.com\s+openai\s+sni\s+closed\s+1s\s+1\.0K\s+59K$/);
  t.false(lines.some((l) => /^(agent|sha256|cmdline|parents|container|pod) /.test(l)), 'nothing unknown is shown');
});

test('detail: the identity of an agent in a pod at 80x24 (21 lines between header and status line)', (t) => {
  const snap = snapshotOf([...threeProcesses(), ...agentRecords()], 2000);
  const row = snap.processes.find((p) => p.pid === AGENT.pid)!;
  const lines = frame(<Detail row={row} flows={snap.flows.filter((f) => f.proc === row.key)} userName={userName} at={snap.at} width={80} height={21} scroll={0} />);
  t.deepEqual(lines.slice(0, 13), [
    'process   claude  pid 7300  start 800  running',
    'agent     Claude Code (claude)',
    'user      carol (uid 1002), group devs (gid 1002)',
    'exe       /opt/claude/versions/2.0.14 (replaced on disk)',
    'sha256    9f2c4e1a7b3d5f60…',
    'cmdline   claude --model opus --permission-mode acceptEdits -p "fix the failing…',
    'parents   bash(7290) ← containerd-shim(7201) ← systemd(1)',
    `cgroup    /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c2e9a…`,
    'container containerd c0ffee000000',
    `pod       ${AGENT_POD} (burstable)`,
    'traffic   tx 2.9 KiB (1.8 KiB/s)  rx 8.8 KiB (5.5 KiB/s)',
    'conns     1 open, 1 total, 0 failed; providers anthropic',
    '',
  ]);
  t.regex(lines[13]!, /^REMOTE\s+HOST\s+PROVIDER\s+VIA\s+STATE\s+DUR\s+TX\s+RX$/);
  t.regex(lines[14]!, /^192\.0\.2\.30:443\s+api\.anthropic\.com\s+anthropic\s+sni\s+open\s+1s\s+2\.9K\s+8\.8K$/);
  t.is(lines.length, 21);
  t.true(lines.every((l) => l.length <= 80));
});

test('detail: before the process record, what the connect carried (no hash, only the parent pid)', (t) => {
  const recs = [...threeProcesses(), ...agentRecords()].filter((r) => Date.parse(r.ts) - T0 < 900);
  const snap = snapshotOf(recs, 800);
  const row = snap.processes.find((p) => p.pid === AGENT.pid)!;
  const lines = frame(<Detail row={row} flows={snap.flows.filter((f) => f.proc === row.key)} userName={userName} at={snap.at} width={80} height={21} scroll={0} />);
  t.deepEqual(lines.slice(0, 9).map((l) => l.split(' ')[0]), ['process', 'agent', 'user', 'exe', 'parents', 'cgroup', 'container', 'pod', 'traffic']);
  t.is(lines[3], 'exe       /opt/claude/versions/2.0.14', 'not known to be replaced yet');
  t.is(lines[4], 'parents   ppid 7290');
});

test('detail: when lines are short the least useful identity lines go first', (t) => {
  const snap = snapshotOf([...threeProcesses(), ...agentRecords()], 2000);
  const row = snap.processes.find((p) => p.pid === AGENT.pid)!;
  const lines = frame(<Detail row={row} flows={snap.flows.filter((f) => f.proc === row.key)} userName={userName} at={snap.at} width={80} height={10} scroll={0} />);
  t.deepEqual(lines.slice(0, 7).map((l) => l.split(' ')[0]), ['process', 'agent', 'user', 'exe', 'cmdline', 'traffic', 'conns']);
  t.regex(lines[9]!, /^192\.0\.2\.30:443/, 'one connection is still shown');
  t.is(lines.length, 10);
});

test('help: lists every key binding and the filter syntax', (t) => {
  const text = frame(<Help width={100} height={30} />).join('\n');
  for (const b of KEY_BINDINGS) t.true(text.includes(b.label) && text.includes(b.help), b.command);
  t.regex(text, /provider:NAME user:NAME\|UID pid:N process:NAME/);
  const small = frame(<Help width={80} height={21} />);
  t.true(small.length <= 21);
  t.true(small.join('\n').includes('q ^C'), 'two columns at 80x24 still show every key');
});

test('status line: filter being typed, kill prompt, status, then hints', (t) => {
  const base = { draft: null, prompt: null, status: null, filterText: '', screen: 'table' as const, width: 80 };
  t.regex(frame(<StatusLine {...base} draft="provider:op" />)[0]!, /^\/ provider:op {3}Enter applies, Esc clears/);
  t.is(frame(<StatusLine {...base} prompt={{ key: 'k', pid: 42, startTime: 1, comm: 'curl' }} />)[0], 'Kill 42 (curl)? y: SIGTERM  K: SIGKILL  any other key: cancel');
  t.is(frame(<StatusLine {...base} status={{ text: 'Sent SIGTERM to 42 (curl).', level: 'info', ticksLeft: 3 }} />)[0], 'Sent SIGTERM to 42 (curl).');
  t.regex(frame(<StatusLine {...base} filterText="user:bob" />)[0]!, /^filter: user:bob \(Esc clears\) {2}\? help/);
  t.regex(frame(<StatusLine {...base} screen="detail" />)[0]!, /^Esc back/);
});
