/**
 * Key bindings as data: each command lists its keys and a line of help. The help overlay is
 * drawn from this table, and input handling only asks "which command is this key?".
 * `b` and `a` set a per-process verdict: block or audit its LLM traffic while busted runs.
 */
import type { Key } from 'ink';

export type Command =
  | 'up' | 'down' | 'pageUp' | 'pageDown' | 'top' | 'bottom'
  | 'sortNext' | 'sortPrev' | 'sortReverse'
  | 'filter' | 'detail' | 'back'
  | 'kill' | 'killTerm' | 'killKill'
  | 'pause' | 'toggleAll' | 'help' | 'quit'
  | 'block' | 'audit';

export interface Binding {
  command: Command;
  /** Normalized key names, as produced by `keyNames`. */
  keys: readonly string[];
  /** What the help overlay shows for the keys. */
  label: string;
  help: string;
}

export const KEY_BINDINGS: readonly Binding[] = [
  { command: 'up', keys: ['up', 'k'], label: '↑ k', help: 'move up' },
  { command: 'down', keys: ['down', 'j'], label: '↓ j', help: 'move down' },
  { command: 'pageUp', keys: ['pageup', 'ctrl+u'], label: 'PgUp ^U', help: 'page up' },
  { command: 'pageDown', keys: ['pagedown', 'ctrl+d'], label: 'PgDn ^D', help: 'page down' },
  { command: 'top', keys: ['g', 'home'], label: 'g Home', help: 'first row' },
  { command: 'bottom', keys: ['G', 'end'], label: 'G End', help: 'last row' },
  { command: 'sortNext', keys: ['s', '>'], label: 's >', help: 'sort by the next column' },
  { command: 'sortPrev', keys: ['<'], label: '<', help: 'sort by the previous column' },
  { command: 'sortReverse', keys: ['r', 'I'], label: 'r I', help: 'reverse the sort order' },
  { command: 'filter', keys: ['/'], label: '/', help: 'filter rows (terms below)' },
  { command: 'detail', keys: ['return'], label: 'Enter', help: 'details of the selected row' },
  { command: 'back', keys: ['escape', 'left'], label: 'Esc ←', help: 'back; clears the filter' },
  { command: 'kill', keys: ['x'], label: 'x', help: 'kill selected (asks first)' },
  { command: 'killTerm', keys: ['y'], label: 'y', help: 'when asked: send SIGTERM' },
  { command: 'killKill', keys: ['K', '9'], label: 'K 9', help: 'when asked: send SIGKILL' },
  { command: 'block', keys: ['b'], label: 'b', help: 'block selected process\'s LLM traffic (again: unblock)' },
  { command: 'audit', keys: ['a'], label: 'a', help: 'audit selected process\'s LLM traffic (again: stop)' },
  { command: 'pause', keys: [' '], label: 'Space', help: 'pause numbers (keys work)' },
  { command: 'toggleAll', keys: ['t'], label: 't', help: 'all traffic / LLM only' },
  { command: 'help', keys: ['?', 'h'], label: '? h', help: 'this help' },
  { command: 'quit', keys: ['q', 'ctrl+c'], label: 'q ^C', help: 'quit' },
];

const BY_KEY = new Map<string, Command>();
for (const b of KEY_BINDINGS) for (const k of b.keys) BY_KEY.set(k, b.command);

/** The names of one key press, e.g. `['down']`, `['j']`, `['ctrl+c']`. */
export function keyName(input: string, key: Key): string {
  if (key.upArrow) return 'up';
  if (key.downArrow) return 'down';
  if (key.leftArrow) return 'left';
  if (key.rightArrow) return 'right';
  if (key.pageUp) return 'pageup';
  if (key.pageDown) return 'pagedown';
  if (key.home) return 'home';
  if (key.end) return 'end';
  if (key.return) return 'return';
  if (key.escape) return 'escape';
  if (key.tab) return 'tab';
  if (key.backspace || key.delete) return 'backspace';
  if (key.ctrl && input) return `ctrl+${input.toLowerCase()}`;
  return input;
}

/** Which command a key name is bound to, if any. */
export function commandFor(name: string): Command | undefined {
  return BY_KEY.get(name);
}

/** True when the key name is bound to `command` ("is this the SORT key?"). */
export function isKey(name: string, command: Command): boolean {
  return BY_KEY.get(name) === command;
}

export function bindingOf(command: Command): Binding {
  const b = KEY_BINDINGS.find((x) => x.command === command);
  if (!b) throw new Error(`no key binding for ${command}`);
  return b;
}
