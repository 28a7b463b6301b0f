/**
 * From a key press to what should happen: reducer actions, a kill, or quitting. Pure: the
 * KeyInput component performs the effects, so this is tested with plain values.
 */
import { commandFor, type Command } from './keys.js';
import { selectedRow, type Action, type KillSignal, type KillTarget, type UiState } from './state.js';

export type Effect =
  | { kind: 'dispatch'; action: Action }
  | { kind: 'kill'; target: KillTarget; signal: KillSignal }
  | { kind: 'verdict'; target: KillTarget; action: 'block' | 'audit' }
  | { kind: 'quit' };

const act = (action: Action): Effect[] => [{ kind: 'dispatch', action }];

export interface KeyPress {
  /** Normalized name from `keyName` (`down`, `j`, `ctrl+c`, …). */
  name: string;
  /** The raw text typed, for the filter line. */
  input: string;
  ctrl: boolean;
  meta: boolean;
}

function onFilterKey(press: KeyPress, draft: string): Effect[] {
  switch (press.name) {
    case 'return': return act({ type: 'filterApply' });
    case 'escape': return act({ type: 'filterClear' });
    case 'backspace': return act({ type: 'filterEdit', draft: draft.slice(0, -1) });
    case 'ctrl+u': return act({ type: 'filterEdit', draft: '' });
    case 'ctrl+c': return [{ kind: 'quit' }];
  }
  if (press.ctrl || press.meta || press.input === '' || /[\u0000-\u001f\u007f]/.test(press.input)) return [];
  return act({ type: 'filterEdit', draft: draft + press.input });
}

function onPromptKey(command: Command | undefined, press: KeyPress, target: KillTarget): Effect[] {
  if (press.name === 'ctrl+c') return [{ kind: 'quit' }];
  if (command === 'killTerm' || command === 'killKill') {
    const signal: KillSignal = command === 'killTerm' ? 'SIGTERM' : 'SIGKILL';
    return [{ kind: 'dispatch', action: { type: 'killSend', signal } }, { kind: 'kill', target, signal }];
  }
  return act({ type: 'killCancel' });
}

/** b/a on the selected process (table or its detail). */
function verdictEffect(state: UiState, action: 'block' | 'audit'): Effect[] {
  const row = selectedRow(state);
  if (!row) return act({ type: 'status', text: 'Select a process first.', level: 'error' });
  // a verdict on a process that is gone would stay in the kernel with nobody to clear it
  if (row.exitedAt !== null) return act({ type: 'status', text: `Process ${row.pid} has already exited.`, level: 'error' });
  return [{ kind: 'verdict', target: { key: row.key, pid: row.pid, startTime: row.startTime, comm: row.comm }, action }];
}

/** Commands that mean the same on every screen. */
function onCommonCommand(command: Command | undefined, state?: UiState): Effect[] | null {
  switch (command) {
    case 'block': return state ? verdictEffect(state, 'block') : null;
    case 'audit': return state ? verdictEffect(state, 'audit') : null;
    case 'quit': return [{ kind: 'quit' }];
    case 'pause': return act({ type: 'togglePause' });
    case 'toggleAll': return act({ type: 'toggleAll' });
    case 'filter': return act({ type: 'filterOpen' });
    case 'kill': return act({ type: 'killAsk' });
    default: return null;
  }
}

function onDetailCommand(command: Command | undefined, page: number, state: UiState, max: number): Effect[] {
  const scroll = (delta: number) => act({ type: 'scrollDetail', delta, max });
  switch (command) {
    case 'up': return scroll(-1);
    case 'down': return scroll(1);
    case 'pageUp': return scroll(-page);
    case 'pageDown': return scroll(page);
    case 'top': return scroll(-Number.MAX_SAFE_INTEGER);
    case 'back': case 'detail': return act({ type: 'screen', screen: 'table' });
    case 'help': return act({ type: 'screen', screen: 'help' });
    default: return onCommonCommand(command, state) ?? [];
  }
}

function onTableCommand(command: Command | undefined, state: UiState, page: number): Effect[] {
  switch (command) {
    case 'up': case 'down': case 'pageUp': case 'pageDown': case 'top': case 'bottom':
      return act({ type: 'move', to: command, page });
    case 'sortNext': return act({ type: 'sort', change: 'next' });
    case 'sortPrev': return act({ type: 'sort', change: 'prev' });
    case 'sortReverse': return act({ type: 'sort', change: 'reverse' });
    case 'detail': return act({ type: 'screen', screen: 'detail' });
    case 'help': return act({ type: 'screen', screen: 'help' });
    case 'back': return state.filterText ? act({ type: 'filterClear' }) : [];
    default: return onCommonCommand(command, state) ?? [];
  }
}

/** What a key press does in the current state. `page` is the number of visible table rows. */
/** `detailMax`: the farthest the detail screen's connections can scroll (its view's detailScrollMax). */
export function interpretKey(press: KeyPress, state: UiState, page: number, detailMax = Number.MAX_SAFE_INTEGER): Effect[] {
  if (state.draft !== null) return onFilterKey(press, state.draft);
  const command = commandFor(press.name);
  if (state.prompt) return onPromptKey(command, press, state.prompt);
  switch (state.screen) {
    case 'help':
      // An overlay: any key closes it, q included; only Ctrl-C quits from here.
      return press.name === 'ctrl+c' ? [{ kind: 'quit' }] : act({ type: 'screen', screen: 'table' });
    case 'detail':
      return onDetailCommand(command, page, state, detailMax);
    case 'table':
      return onTableCommand(command, state, page);
  }
}
