/** The UI reducer: one test per action (the table below must name every action type). */
import test, { type ExecutionContext } from 'ava';
import { initialState, reducer, rowsOf, selectedRow, type Action, type UiState } from '../../src/ui/state.js';
import {
  AGENT, agentRecords, close, config, connect, CURL, NODE, PY, session, snapshotOf, threeProcesses, traffic,
} from '../helpers/ui-fixtures.js';

const start = (over: Parameters<typeof config>[0] = {}, showAll = false): UiState =>
  initialState(config(over), { showAll, snapshot: snapshotOf(threeProcesses(), 2000) });

const pids = (s: UiState): number[] => rowsOf(s).map((r) => r.pid);
const run = (s: UiState, ...actions: Action[]): UiState => actions.reduce(reducer, s);

const ACTION_TESTS: Record<Action['type'], (t: ExecutionContext) => void> = {
  tick(t) {
    const s0 = initialState(config());
    t.deepEqual(pids(s0), []);
    const s1 = reducer(s0, { type: 'tick', snapshot: snapshotOf(threeProcesses(), 2000) });
    // default sort: RX/s descending; the first row gets selected
    t.deepEqual(pids(s1), [PY.pid, NODE.pid, CURL.pid]);
    t.is(s1.selected, `${PY.pid}:${PY.startTime}`);
    t.is(s1.live.ledger.providers.get('openai')?.bytes, 51_000);
  },
  move(t) {
    const s = start();
    t.is(selectedRow(run(s, { type: 'move', to: 'down', page: 10 }))?.pid, NODE.pid);
    t.is(selectedRow(run(s, { type: 'move', to: 'bottom', page: 10 }))?.pid, CURL.pid);
    t.is(selectedRow(run(s, { type: 'move', to: 'up', page: 10 }))?.pid, PY.pid, 'clamped at the top');
    t.is(selectedRow(run(s, { type: 'move', to: 'pageDown', page: 2 }))?.pid, CURL.pid);
    t.is(selectedRow(run(s, { type: 'move', to: 'bottom', page: 2 }, { type: 'move', to: 'pageUp', page: 1 }))?.pid, NODE.pid);
    t.is(run(s, { type: 'move', to: 'bottom', page: 2 }, { type: 'move', to: 'top', page: 2 }).selectedIndex, 0);
  },
  select(t) {
    const s = reducer(start(), { type: 'select', key: `${CURL.pid}:${CURL.startTime}` });
    t.is(selectedRow(s)?.pid, CURL.pid);
    t.is(s.selectedIndex, 2);
    t.is(reducer(s, { type: 'select', key: 'nope' }), s, 'an unknown key changes nothing');
  },
  sort(t) {
    const s = start();
    const byTx = reducer(s, { type: 'sort', change: 'next' }); // rxRate → tx
    t.deepEqual(byTx.sort, { column: 'tx', descending: true });
    t.deepEqual(pids(byTx), [CURL.pid, NODE.pid, PY.pid]);
    const back = reducer(byTx, { type: 'sort', change: 'prev' });
    t.deepEqual(back.sort, { column: 'rxRate', descending: true });
    const reversed = reducer(s, { type: 'sort', change: 'reverse' });
    t.deepEqual(pids(reversed), [CURL.pid, NODE.pid, PY.pid]);
    t.is(selectedRow(reversed)?.pid, PY.pid, 'the selection stays on the same process');
    t.is(reversed.selectedIndex, 2);
  },
  filterOpen(t) {
    const s = reducer({ ...start(), screen: 'detail', filterText: 'pid:1' }, { type: 'filterOpen' });
    t.is(s.draft, 'pid:1', 'editing starts from the current filter');
    t.is(s.screen, 'table');
  },
  filterEdit(t) {
    t.is(reducer(start(), { type: 'filterEdit', draft: 'x' }).draft, null, 'ignored when not editing');
    t.is(run(start(), { type: 'filterOpen' }, { type: 'filterEdit', draft: 'node' }).draft, 'node');
  },
  filterApply(t) {
    const s = run(start(), { type: 'filterOpen' }, { type: 'filterEdit', draft: 'provider:anthropic' }, { type: 'filterApply' });
    t.is(s.draft, null);
    t.is(s.filterText, 'provider:anthropic');
    t.deepEqual(pids(s), [NODE.pid]);
    t.is(selectedRow(s)?.pid, NODE.pid, 'the selection moves onto a visible row');
    const bad = run(start(), { type: 'filterOpen' }, { type: 'filterEdit', draft: 'pid:abc' }, { type: 'filterApply' });
    t.is(bad.status?.level, 'error');
    t.regex(bad.status?.text ?? '', /pid:abc/);
  },
  filterClear(t) {
    const s = run(start(), { type: 'filterOpen' }, { type: 'filterEdit', draft: 'curl' }, { type: 'filterApply' });
    t.deepEqual(pids(s), [CURL.pid]);
    const cleared = reducer(s, { type: 'filterClear' });
    t.is(cleared.filterText, '');
    t.is(pids(cleared).length, 3);
  },
  screen(t) {
    t.is(reducer(start(), { type: 'screen', screen: 'detail' }).screen, 'detail');
    t.is(reducer(start(), { type: 'screen', screen: 'help' }).screen, 'help');
    const empty = initialState(config());
    t.is(reducer(empty, { type: 'screen', screen: 'detail' }).screen, 'table', 'no detail without a selection');
  },
  scrollDetail(t) {
    const s = reducer(start(), { type: 'scrollDetail', delta: 3 });
    t.is(s.detailScroll, 3);
    t.is(reducer(s, { type: 'scrollDetail', delta: -10 }).detailScroll, 0);
    const far = reducer(start(), { type: 'scrollDetail', delta: 50, max: 4 });
    t.is(far.detailScroll, 4, 'no farther than the last connection');
    t.is(reducer(far, { type: 'scrollDetail', delta: -1, max: 4 }).detailScroll, 3, 'and one up moves at once');
    t.is(reducer(far, { type: 'scrollDetail', delta: -1, max: 2 }).detailScroll, 1, 'from where the view is, when connections left');
  },
  togglePause(t) {
    const paused = reducer(start(), { type: 'togglePause' });
    t.true(paused.paused);
    const more = snapshotOf([...threeProcesses(), traffic(2500, '3', CURL.pid, 0, 500_000)], 3000);
    const ticked = reducer(paused, { type: 'tick', snapshot: more });
    t.is(ticked.shown, paused.shown, 'numbers freeze while paused');
    t.is(ticked.live.snapshot, more, 'but the live view keeps up');
    const resumed = reducer(ticked, { type: 'togglePause' });
    t.false(resumed.paused);
    t.is(resumed.shown.snapshot, more);
  },
  toggleAll(t) {
    const recs = [...threeProcesses(), connect(400, '9', { pid: 7000, comm: 'git' }, { provider: null, host: null, via: null })];
    const s = initialState(config(), { snapshot: snapshotOf(recs, 2000) });
    t.false(pids(s).includes(7000), 'LLM traffic only by default');
    t.true(pids(reducer(s, { type: 'toggleAll' })).includes(7000));
  },
  killAsk(t) {
    const s = reducer(start(), { type: 'killAsk' });
    t.deepEqual(s.prompt, { key: `${PY.pid}:${PY.startTime}`, pid: PY.pid, startTime: PY.startTime, comm: 'python3' });
    const self = reducer(start({ selfPid: PY.pid }), { type: 'killAsk' });
    t.is(self.prompt, null);
    t.regex(self.status?.text ?? '', /will not kill itself/);
    const init = initialState(config(), { snapshot: snapshotOf([session(0), connect(100, '1', { pid: 1, comm: 'systemd' }), traffic(900, '1', 1, 1, 1)], 1000) });
    const one = reducer(init, { type: 'killAsk' });
    t.is(one.prompt, null);
    t.regex(one.status?.text ?? '', /pid 1/);
    const replay = reducer(start({ killUnavailable: 'Not in a replay.' }), { type: 'killAsk' });
    t.is(replay.prompt, null);
    t.is(replay.status?.text, 'Not in a replay.');
  },
  killCancel(t) {
    const s = run(start(), { type: 'killAsk' }, { type: 'killCancel' });
    t.is(s.prompt, null);
    t.is(s.status?.text, 'Kill cancelled.');
  },
  killSend(t) {
    const s = run(start(), { type: 'killAsk' }, { type: 'killSend', signal: 'SIGKILL' });
    t.is(s.prompt, null);
    t.regex(s.status?.text ?? '', /SIGKILL to 4211 \(python3\)/);
    t.is(reducer(start(), { type: 'killSend', signal: 'SIGTERM' }).status, null, 'nothing without a prompt');
  },
  killDone(t) {
    t.deepEqual(reducer(start(), { type: 'killDone', ok: false, message: 'No.' }).status?.level, 'error');
    t.deepEqual(reducer(start(), { type: 'killDone', ok: true, message: 'Sent.' }).status?.text, 'Sent.');
  },
  status(t) {
    let s = reducer(start(), { type: 'status', text: 'hello', level: 'info' });
    t.is(s.status?.text, 'hello');
    for (let i = 0; i < 5; i++) s = reducer(s, { type: 'tick', snapshot: snapshotOf(threeProcesses(), 2000 + i) });
    t.is(s.status, null, 'info messages go away after a few ticks');
  },
};

for (const [type, fn] of Object.entries(ACTION_TESTS)) test(`action ${type}`, fn);

test('identity: filter and sort by the agent label and the recorded user name, as the table shows them', (t) => {
  const aider = connect(500, '8', { pid: 7400, comm: 'python3' }, { agent: { id: 'aider', label: 'Aider' } });
  const s = initialState(config(), { snapshot: snapshotOf([...threeProcesses(), ...agentRecords(), aider], 2000) });
  const filtered = (draft: string) => pids(run(s, { type: 'filterOpen' }, { type: 'filterEdit', draft }, { type: 'filterApply' }));
  t.deepEqual(filtered('process:"Claude Code"'), [AGENT.pid]);
  t.deepEqual(filtered('user:carol'), [AGENT.pid], 'carol is known only from the records');
  t.deepEqual(filtered('user:carol user:root'), [AGENT.pid, CURL.pid]);
  t.deepEqual(filtered('process:aider'), [7400]);
  // PROCESS A→Z: the python3 labelled Aider comes first, the other python3 last
  const byProcess = run(s, ...Array.from({ length: 4 }, () => ({ type: 'sort', change: 'prev' }) as const));
  t.deepEqual(byProcess.sort, { column: 'process', descending: false });
  t.deepEqual(pids(byProcess), [7400, AGENT.pid, CURL.pid, NODE.pid, PY.pid], 'Aider, Claude Code, curl, node, python3');
  const byUser = reducer(byProcess, { type: 'sort', change: 'prev' });
  t.deepEqual(byUser.sort, { column: 'user', descending: false });
  // uid 1002 has no local name: "carol" from the records, not "1002" (which would sort first)
  t.deepEqual(pids(byUser), [PY.pid, 7400, NODE.pid, AGENT.pid, CURL.pid], 'alice, alice, bob, carol, root');
});

test('tombstones: a process that leaves the table stays dimmed for tombstoneMs, then goes', (t) => {
  const s0 = start();
  const without = snapshotOf([session(0), connect(100, '2', NODE, { provider: 'anthropic' }), traffic(1000, '2', NODE.pid, 5, 5)], 3000);
  const s1 = reducer(s0, { type: 'tick', snapshot: without });
  const py = rowsOf(s1).find((r) => r.pid === PY.pid);
  t.truthy(py, 'kept as a tombstone');
  t.not(py?.exitedAt, null);
  t.is(py?.rxRate, 0);
  const later = snapshotOf([session(0), connect(100, '2', NODE, { provider: 'anthropic' }), traffic(1000, '2', NODE.pid, 5, 5)], 8000);
  const s2 = reducer(s1, { type: 'tick', snapshot: later });
  t.false(pids(s2).includes(PY.pid));
});

test('selection stays on the same process when rows reorder, and moves to a neighbour when it disappears', (t) => {
  const s0 = reducer(start(), { type: 'move', to: 'down', page: 1 }); // node selected, index 1
  // curl now receives the most: it moves to the top; node stays selected
  const snap = snapshotOf([...threeProcesses(), traffic(1500, '3', CURL.pid, 0, 900_000)], 2000);
  const s1 = reducer(s0, { type: 'tick', snapshot: snap });
  t.is(pids(s1)[0], CURL.pid);
  t.is(selectedRow(s1)?.pid, NODE.pid);
  t.is(s1.selectedIndex, pids(s1).indexOf(NODE.pid));
  // node is filtered away: the selection lands on the row now at its position
  const s2 = run(s1, { type: 'filterOpen' }, { type: 'filterEdit', draft: 'process:py process:curl' }, { type: 'filterApply' });
  t.true([PY.pid, CURL.pid].includes(selectedRow(s2)?.pid ?? -1));
});

test('the detail screen of a process that leaves the table goes back to the list, not to its neighbour', (t) => {
  const s0 = reducer(start(), { type: 'screen', screen: 'detail' });
  t.is(selectedRow(s0)?.pid, PY.pid);
  const without = snapshotOf([session(0), connect(100, '2', NODE, { provider: 'anthropic' }), traffic(1000, '2', NODE.pid, 5, 5)], 3000);
  const s1 = reducer(s0, { type: 'tick', snapshot: without });
  t.is(s1.screen, 'detail', 'while its tombstone lasts it is still shown');
  t.is(selectedRow(s1)?.pid, PY.pid);
  const later = snapshotOf([session(0), connect(100, '2', NODE, { provider: 'anthropic' }), traffic(1000, '2', NODE.pid, 5, 5)], 8000);
  const s2 = reducer(s1, { type: 'tick', snapshot: later });
  t.is(s2.screen, 'table');
  t.regex(s2.status?.text ?? '', new RegExp(`Process ${PY.pid} left the table`));
  t.not(selectedRow(s2)?.pid, PY.pid);
  // in the table the selection just moves to a neighbour, without a word
  const s3 = reducer(reducer(start(), { type: 'tick', snapshot: without }), { type: 'tick', snapshot: later });
  t.is(s3.screen, 'table');
  t.is(s3.status, null);
});

test('closed flows and reclassified flows keep the provider ledger right', (t) => {
  const recs = [session(0), connect(100, '1', PY, { provider: null, host: null, via: null }), traffic(1000, '1', PY.pid, 10, 100)];
  let s = initialState(config(), { showAll: true, snapshot: snapshotOf(recs, 1000) });
  t.is(s.live.ledger.providers.get('unclassified')?.bytes, 110);
  const classified = [...recs, { type: 'classify', ts: recs[2]!.ts, flow: '1', pid: PY.pid, provider: 'openai', host: 'api.openai.com', via: 'sni' } as const, close(1500, '1', PY.pid, 10, 200)];
  s = reducer(s, { type: 'tick', snapshot: snapshotOf(classified, 2000) });
  t.is(s.live.ledger.providers.get('openai')?.bytes, 210);
  t.is(s.live.ledger.providers.get('openai')?.connections, 1);
  t.false(s.live.ledger.providers.has('unclassified'));
});
