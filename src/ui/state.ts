/**
 * UI state: one pure reducer over an exhaustive action union. Side effects (signals, quitting)
 * live in the input layer; the reducer only decides what the screen shows.
 */
import type { ProcessRow } from '../core/flows.js';
import type { StoreSnapshot } from '../core/store.js';
import { EMPTY_FILTER, parseFilter, type Filter, type UserName } from './filter.js';
import { addSample, EMPTY_LEDGER, ledgerOf, type ProviderLedger, type RateSample } from './ledger.js';
import { DEFAULT_SORT, SORT_COLUMNS, visibleRows, type SortOrder } from './rows.js';

export type Screen = 'table' | 'detail' | 'help';
export type KillSignal = 'SIGTERM' | 'SIGKILL';
export type MoveTo = 'up' | 'down' | 'pageUp' | 'pageDown' | 'top' | 'bottom';

export interface Tombstone {
  row: ProcessRow;
  goneAt: number;
}

/** What one tick makes of the store's snapshots; frozen as `shown` while paused. */
export interface View {
  snapshot: StoreSnapshot;
  tombstones: ReadonlyMap<string, Tombstone>;
  ledger: ProviderLedger;
  history: readonly RateSample[];
}

export interface UiConfig {
  /** busted-top's own pid: it refuses to kill itself. */
  selfPid: number;
  /** How long a process row stays (dimmed) after it left the table. */
  tombstoneMs: number;
  userName: UserName;
  /** Why kill is not available here (e.g. in a replay), or null when it is. */
  killUnavailable?: string | null;
}

export interface KillTarget {
  key: string;
  pid: number;
  startTime: number;
  comm: string;
}

export interface Status {
  text: string;
  level: 'info' | 'error';
  /** Ticks left before an info message goes away. */
  ticksLeft: number;
}

export interface UiState {
  config: UiConfig;
  live: View;
  shown: View;
  paused: boolean;
  showAll: boolean;
  sort: SortOrder;
  filterText: string;
  filter: Filter;
  /** The filter being typed; null when not editing. */
  draft: string | null;
  selected: string | null;
  selectedIndex: number;
  screen: Screen;
  detailScroll: number;
  prompt: KillTarget | null;
  status: Status | null;
}

export type Action =
  | { type: 'tick'; snapshot: StoreSnapshot }
  | { type: 'move'; to: MoveTo; page: number }
  | { type: 'select'; key: string }
  | { type: 'sort'; change: 'next' | 'prev' | 'reverse' }
  | { type: 'filterOpen' }
  | { type: 'filterEdit'; draft: string }
  | { type: 'filterApply' }
  | { type: 'filterClear' }
  | { type: 'screen'; screen: Screen }
  /** `max`: the farthest the detail's connections can scroll (detailScrollMax), so keys past the end are not stored up. */
  | { type: 'scrollDetail'; delta: number; max?: number }
  | { type: 'togglePause' }
  | { type: 'toggleAll' }
  | { type: 'killAsk' }
  | { type: 'killCancel' }
  | { type: 'killSend'; signal: KillSignal }
  | { type: 'killDone'; ok: boolean; message: string }
  | { type: 'status'; text: string; level: Status['level'] };

export const STATUS_TICKS = { info: 5, error: 10 } as const;

const status = (text: string, level: Status['level']): Status => ({ text, level, ticksLeft: STATUS_TICKS[level] });

const emptySnapshot = (at: number): StoreSnapshot => ({
  at, flows: [], processes: [], providers: [],
  totals: { processes: 0, open: 0, connections: 0, tx: 0, rx: 0, txRate: 0, rxRate: 0 },
  lost: 0, session: null,
});

export function initialState(
  config: UiConfig,
  opts: { showAll?: boolean; snapshot?: StoreSnapshot; notice?: Pick<Status, 'text' | 'level'> } = {},
): UiState {
  const view: View = {
    snapshot: opts.snapshot ?? emptySnapshot(0), tombstones: new Map(), ledger: EMPTY_LEDGER, history: [],
  };
  const state: UiState = {
    config, live: view, shown: view, paused: false, showAll: opts.showAll ?? false, sort: DEFAULT_SORT,
    filterText: '', filter: EMPTY_FILTER, draft: null, selected: null, selectedIndex: 0, screen: 'table',
    detailScroll: 0, prompt: null, status: opts.notice ? status(opts.notice.text, opts.notice.level) : null,
  };
  return opts.snapshot ? reducer(state, { type: 'tick', snapshot: opts.snapshot }) : state;
}

/** The rows the table shows for this state, sorted and filtered. */
export function rowsOf(state: UiState): ProcessRow[] {
  return visibleRows({
    processes: state.shown.snapshot.processes, tombstones: state.shown.tombstones, showAll: state.showAll,
    filter: state.filter, sort: state.sort, userName: state.config.userName,
  });
}

export function selectedRow(state: UiState): ProcessRow | undefined {
  return rowsOf(state).find((r) => r.key === state.selected);
}

export function advanceView(view: View, snapshot: StoreSnapshot, tombstoneMs: number): View {
  const present = new Set(snapshot.processes.map((p) => p.key));
  const tombstones = new Map<string, Tombstone>();
  for (const [key, t] of view.tombstones) {
    if (!present.has(key) && snapshot.at - t.goneAt < tombstoneMs) tombstones.set(key, t);
  }
  for (const row of view.snapshot.processes) {
    if (present.has(row.key) || tombstones.has(row.key)) continue;
    tombstones.set(row.key, {
      goneAt: snapshot.at,
      row: { ...row, exitedAt: row.exitedAt ?? snapshot.at, open: 0, txRate: 0, rxRate: 0 },
    });
  }
  const ledger = ledgerOf(snapshot.providers);
  return { snapshot, tombstones, ledger, history: addSample(view.history, ledger, snapshot.at) };
}

/**
 * Keeps the selection on the same process; if it is gone, on the row at the same position. The
 * detail screen of a process that is gone goes back to the table (it would otherwise show the
 * neighbour, and b or a would act on a process nobody chose).
 */
function reselect(state: UiState): UiState {
  const rows = rowsOf(state);
  const index = rows.findIndex((r) => r.key === state.selected);
  if (index >= 0) return index === state.selectedIndex ? state : { ...state, selectedIndex: index };
  const left: Partial<UiState> = state.screen === 'detail' && state.selected !== null
    ? { screen: 'table', detailScroll: 0, status: status(`Process ${state.selected.split(':')[0]} left the table; back to the list.`, 'info') }
    : {};
  if (rows.length === 0) return { ...state, ...left, selected: null, selectedIndex: 0 };
  const i = Math.min(Math.max(0, state.selectedIndex), rows.length - 1);
  return { ...state, ...left, selected: rows[i]!.key, selectedIndex: i };
}

function moveTo(state: UiState, to: MoveTo, page: number): UiState {
  const rows = rowsOf(state);
  if (rows.length === 0) return state;
  const last = rows.length - 1;
  const step = Math.max(1, page);
  const target = {
    up: state.selectedIndex - 1, down: state.selectedIndex + 1,
    pageUp: state.selectedIndex - step, pageDown: state.selectedIndex + step,
    top: 0, bottom: last,
  }[to];
  const i = Math.min(Math.max(0, target), last);
  return { ...state, selected: rows[i]!.key, selectedIndex: i };
}

function nextSort(sort: SortOrder, change: 'next' | 'prev' | 'reverse'): SortOrder {
  if (change === 'reverse') return { ...sort, descending: !sort.descending };
  const i = SORT_COLUMNS.indexOf(sort.column);
  const n = SORT_COLUMNS.length;
  const column = SORT_COLUMNS[(i + (change === 'next' ? 1 : n - 1)) % n]!;
  // Numbers are most useful largest-first, names A→Z.
  const descending = !['user', 'process', 'providers'].includes(column);
  return { column, descending };
}

function askKill(state: UiState): UiState {
  if (state.config.killUnavailable) return { ...state, status: status(state.config.killUnavailable, 'error') };
  const row = selectedRow(state);
  if (!row) return { ...state, status: status('No process is selected.', 'error') };
  if (row.pid === 1) return { ...state, status: status('busted-top will not kill pid 1 (init).', 'error') };
  if (row.pid === state.config.selfPid) {
    return { ...state, status: status('busted-top will not kill itself; press q to quit.', 'error') };
  }
  if (row.exitedAt !== null) return { ...state, status: status(`Process ${row.pid} has already exited.`, 'error') };
  return { ...state, prompt: { key: row.key, pid: row.pid, startTime: row.startTime, comm: row.comm } };
}

function tick(state: UiState, snapshot: StoreSnapshot): UiState {
  const live = advanceView(state.live, snapshot, state.config.tombstoneMs);
  let next: UiState = { ...state, live, shown: state.paused ? state.shown : live };
  if (next.status) {
    const ticksLeft = next.status.ticksLeft - 1;
    next = { ...next, status: ticksLeft > 0 ? { ...next.status, ticksLeft } : null };
  }
  if (next.selected === null && rowsOf(next).length > 0) next = { ...next, selectedIndex: 0, selected: rowsOf(next)[0]!.key };
  return reselect(next);
}

export function reducer(state: UiState, action: Action): UiState {
  switch (action.type) {
    case 'tick':
      return tick(state, action.snapshot);
    case 'move':
      return moveTo(state, action.to, action.page);
    case 'select': {
      const index = rowsOf(state).findIndex((r) => r.key === action.key);
      return index < 0 ? state : { ...state, selected: action.key, selectedIndex: index };
    }
    case 'sort':
      return reselect({ ...state, sort: nextSort(state.sort, action.change) });
    case 'filterOpen':
      return { ...state, draft: state.filterText, screen: 'table' };
    case 'filterEdit':
      return state.draft === null ? state : { ...state, draft: action.draft };
    case 'filterApply': {
      if (state.draft === null) return state;
      const filter = parseFilter(state.draft);
      const err = filter.errors[0];
      return reselect({
        ...state, draft: null, filterText: state.draft.trim(), filter,
        status: err ? status(err, 'error') : state.status,
      });
    }
    case 'filterClear':
      return reselect({ ...state, draft: null, filterText: '', filter: EMPTY_FILTER });
    case 'screen':
      if (action.screen === 'detail' && !selectedRow(state)) return state;
      return { ...state, screen: action.screen, detailScroll: 0 };
    case 'scrollDetail':
    {
      const max = action.max ?? Number.MAX_SAFE_INTEGER;
      return { ...state, detailScroll: Math.max(0, Math.min(max, Math.min(state.detailScroll, max) + action.delta)) };
    }
    case 'togglePause':
      return { ...state, paused: !state.paused, shown: state.live };
    case 'toggleAll':
      return reselect({ ...state, showAll: !state.showAll });
    case 'killAsk':
      return askKill(state);
    case 'killCancel':
      return { ...state, prompt: null, status: status('Kill cancelled.', 'info') };
    case 'killSend': {
      const p = state.prompt;
      if (!p) return state;
      return { ...state, prompt: null, status: status(`Sending ${action.signal} to ${p.pid} (${p.comm})…`, 'info') };
    }
    case 'killDone':
      return { ...state, status: status(action.message, action.ok ? 'info' : 'error') };
    case 'status':
      return { ...state, status: status(action.text, action.level) };
  }
}
