/** Key presses → actions, through the injected dispatch and UiActions (no real signals). */
import test from 'ava';
import React from 'react';
import { render } from 'ink-testing-library';
import { stripVTControlCharacters } from 'node:util';
import { Store } from '../../src/core/store.js';
import type { KillResult, UiActions } from '../../src/ui/actions.js';
import { App } from '../../src/ui/App.js';
import { interpretKey } from '../../src/ui/input.js';
import { KeyInput } from '../../src/ui/KeyInput.js';
import { initialState, reducer, selectedRow, type Action, type KillSignal, type KillTarget, type UiState } from '../../src/ui/state.js';
import { config, connect, CURL, ManualClock, PY, session, snapshotOf, T0, threeProcesses } from '../helpers/ui-fixtures.js';

const settle = (ms = 30) => new Promise((r) => setTimeout(r, ms));

interface Fake {
  actions: UiActions;
  kills: [KillTarget, KillSignal][];
  verdicts: [KillTarget, 'block' | 'audit'][];
  quits: number;
}

function fakeActions(result: KillResult = { ok: true, message: 'Sent.' }): Fake {
  const fake: Fake = {
    kills: [],
    verdicts: [],
    quits: 0,
    actions: {
      verdict: async (target, action) => {
        fake.verdicts.push([target, action]);
        return { ok: true, message: `${action} set.` };
      },
      kill: async (target, signal) => {
        fake.kills.push([target, signal]);
        return result;
      },
      quit: () => {
        fake.quits++;
      },
    },
  };
  return fake;
}

function mount(state: UiState, fake = fakeActions()) {
  const dispatched: Action[] = [];
  const r = render(<KeyInput state={state} dispatch={(a) => dispatched.push(a)} actions={fake.actions} page={7} />);
  return { ...r, dispatched, fake };
}

const tableState = () => initialState(config(), { snapshot: snapshotOf(threeProcesses(), 2000) });

const CASES: [string, string, Action[]][] = [
  ['j', 'j', [{ type: 'move', to: 'down', page: 7 }]],
  ['down arrow', '\x1b[B', [{ type: 'move', to: 'down', page: 7 }]],
  ['k', 'k', [{ type: 'move', to: 'up', page: 7 }]],
  ['page down', '\x1b[6~', [{ type: 'move', to: 'pageDown', page: 7 }]],
  ['G', 'G', [{ type: 'move', to: 'bottom', page: 7 }]],
  ['g', 'g', [{ type: 'move', to: 'top', page: 7 }]],
  ['s', 's', [{ type: 'sort', change: 'next' }]],
  ['<', '<', [{ type: 'sort', change: 'prev' }]],
  ['r', 'r', [{ type: 'sort', change: 'reverse' }]],
  ['Enter', '\r', [{ type: 'screen', screen: 'detail' }]],
  ['?', '?', [{ type: 'screen', screen: 'help' }]],
  ['space', ' ', [{ type: 'togglePause' }]],
  ['t', 't', [{ type: 'toggleAll' }]],
  ['x', 'x', [{ type: 'killAsk' }]],
  ['several keys in one chunk', 'jjs', [{ type: 'move', to: 'down', page: 7 }, { type: 'move', to: 'down', page: 7 }, { type: 'sort', change: 'next' }]],
];

for (const [name, keys, expected] of CASES) {
  test(`key ${name} dispatches ${expected.map((a) => a.type).join(', ') || 'nothing'}`, async (t) => {
    const m = mount(tableState());
    await settle();
    m.stdin.write(keys);
    await settle();
    t.deepEqual(m.dispatched, expected);
    t.is(m.fake.quits, 0);
    m.unmount();
  });
}

test('typing a filter: each character edits the draft, Enter applies, Esc clears', async (t) => {
  const m = mount(tableState());
  await settle();
  m.stdin.write('/');
  await settle();
  m.stdin.write('pid:6');
  await settle();
  m.stdin.write('\x7f');
  m.stdin.write('1\r');
  await settle();
  t.deepEqual(m.dispatched, [
    { type: 'filterOpen' },
    ...['p', 'pi', 'pid', 'pid:', 'pid:6'].map((draft) => ({ type: 'filterEdit', draft })),
    { type: 'filterEdit', draft: 'pid:' }, { type: 'filterEdit', draft: 'pid:1' }, { type: 'filterApply' },
  ]);
  m.unmount();
  const editing = mount({ ...tableState(), draft: 'node' });
  await settle();
  editing.stdin.write('\x1b');
  await settle(100);
  t.deepEqual(editing.dispatched, [{ type: 'filterClear' }]);
  editing.unmount();
});

test('x then y sends SIGTERM through actions.kill and reports the result', async (t) => {
  const m = mount(tableState(), fakeActions({ ok: true, message: 'Sent SIGTERM to 4211 (python3).' }));
  await settle();
  m.stdin.write('x');
  await settle();
  m.stdin.write('y');
  await settle();
  t.deepEqual(m.fake.kills, [[{ key: `${PY.pid}:${PY.startTime}`, pid: PY.pid, startTime: PY.startTime, comm: 'python3' }, 'SIGTERM']]);
  t.deepEqual(m.dispatched, [
    { type: 'killAsk' }, { type: 'killSend', signal: 'SIGTERM' },
    { type: 'killDone', ok: true, message: 'Sent SIGTERM to 4211 (python3).' },
  ]);
  m.unmount();
});

test('K at the prompt sends SIGKILL; any other key cancels; nothing for pid 1 or busted-top itself', (t) => {
  const asked = { ...tableState(), prompt: { key: 'k', pid: 42, startTime: 1, comm: 'curl' } };
  const press = (name: string) => ({ name, input: name, ctrl: false, meta: false });
  t.deepEqual(interpretKey(press('K'), asked, 5).map((e) => e.kind === 'kill' && e.signal), [false, 'SIGKILL']);
  t.deepEqual(interpretKey(press('n'), asked, 5), [{ kind: 'dispatch', action: { type: 'killCancel' } }]);
  t.deepEqual(interpretKey(press('q'), asked, 5), [{ kind: 'dispatch', action: { type: 'killCancel' } }], 'q at the prompt cancels, not quits');
});

test('q and Ctrl-C quit through actions.quit', async (t) => {
  for (const key of ['q', '\x03']) {
    const m = mount(tableState());
    await settle();
    m.stdin.write(key);
    await settle();
    t.is(m.fake.quits, 1, JSON.stringify(key));
    t.deepEqual(m.dispatched, []);
    m.unmount();
  }
});

test.serial('the whole App: keys change what is drawn', async (t) => {
  const clock = new ManualClock();
  const store = new Store(clock);
  snapshotOf(threeProcesses(), 2000, store, clock);
  const fake = fakeActions();
  const app = render(
    <App store={store} actions={fake.actions} showAll={false} size={{ columns: 80, rows: 24 }}
      config={config()} options={{ source: { mode: 'replay', file: 'f', speed: 1, endsAt: T0 + 2000 }, recording: null, intervalMs: 1000 }} />,
  );
  const screen = () => stripVTControlCharacters(app.lastFrame() ?? '').split('\n');
  await settle();
  t.is(screen().length, 24);
  t.regex(screen()[2]!, /▼RX\/s/);
  t.regex(screen()[3]!, /^\s+4211 /);
  app.stdin.write('s');
  await settle();
  t.regex(screen()[2]!, /▼TX /, 'sorted by TX');
  t.regex(screen()[3]!, new RegExp(`^\\s+${CURL.pid} `));
  app.stdin.write('/curl\r');
  await settle();
  t.deepEqual(screen().filter((l) => /^\s+\d+ /.test(l)).map((l) => l.trim().split(/\s+/)[0]), [String(CURL.pid)]);
  t.regex(screen()[23]!, /^filter: curl/);
  app.stdin.write('\r');
  await settle();
  t.regex(screen()[2]!, /^process {3}curl {2}pid 6001/);
  app.stdin.write('?');
  await settle();
  t.regex(screen()[2]!, /^Keys/);
  app.stdin.write('q');
  await settle();
  t.regex(screen()[2]!, /^\s+PID/, 'any key closes the help');
  app.stdin.write('q');
  await settle();
  t.is(fake.quits, 1);
  app.unmount();
});

for (const [key, action] of [['b', 'block'], ['a', 'audit']] as const) {
  test(`key ${key} asks for a ${action} verdict on the selected process and shows the result`, async (t) => {
    const state = tableState();
    const m = mount(state);
    await settle();
    m.stdin.write(key);
    await settle();
    t.is(m.fake.verdicts.length, 1);
    t.is(m.fake.verdicts[0]![1], action);
    t.is(m.fake.verdicts[0]![0].key, state.selected!);
    t.deepEqual(m.dispatched, [{ type: 'status', text: `${action} set.`, level: 'info' }]);
    m.unmount();
  });
}

test('b and a on a process that has exited say so instead of setting a verdict', async (t) => {
  const gone = snapshotOf(threeProcesses().filter((r) => !('pid' in r) || r.pid !== PY.pid), 3000);
  const state = reducer(tableState(), { type: 'tick', snapshot: gone }); // python3 selected: now a tombstone
  t.not(selectedRow(state)?.exitedAt ?? null, null);
  for (const key of ['b', 'a']) {
    const m = mount(state);
    await settle();
    m.stdin.write(key);
    await settle();
    t.deepEqual(m.fake.verdicts, []);
    t.deepEqual(m.dispatched, [{ type: 'status', text: `Process ${PY.pid} has already exited.`, level: 'error' }]);
    m.unmount();
  }
});

test('b without a verdict action (a replay) says so instead', async (t) => {
  const fake = fakeActions();
  delete (fake.actions as Partial<UiActions>).verdict;
  const m = mount(tableState(), fake);
  await settle();
  m.stdin.write('b');
  await settle();
  t.deepEqual(m.dispatched, [{ type: 'status', text: 'Verdicts act on live traffic: not in a replay.', level: 'error' }]);
  m.unmount();
});

test.serial('the detail screen stops scrolling at its last connection: keys pressed past the end are not stored up', async (t) => {
  const clock = new ManualClock();
  const store = new Store(clock);
  const flows = Array.from({ length: 30 }, (_, i) => connect(100 + i, `f${i}`, CURL, { dst: `192.0.2.10:${1000 + i}` }));
  snapshotOf([session(0), ...flows], 2000, store, clock);
  const app = render(
    <App store={store} actions={fakeActions().actions} showAll={false} size={{ columns: 100, rows: 24 }}
      config={config()} options={{ source: { mode: 'replay', file: 'f', speed: 1, endsAt: T0 + 2000 }, recording: null, intervalMs: 1000 }} />,
  );
  const screen = () => stripVTControlCharacters(app.lastFrame() ?? '');
  await settle();
  app.stdin.write('\r');
  await settle();
  t.regex(screen(), /… \d+ more \(j\/k to scroll\)/, 'the detail screen does not show all 30 at 24 rows');
  app.stdin.write('j'.repeat(60));
  await settle();
  t.notRegex(screen(), /more \(j\/k/, 'at the bottom');
  app.stdin.write('k');
  await settle();
  t.regex(screen(), /… 1 more \(j\/k to scroll\)/, 'one k after pressing past the end moves up one line');
  app.unmount();
});
