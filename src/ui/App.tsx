/**
 * The busted-top screen. Snapshots enter through useSyncExternalStore; every tick becomes a
 * reducer action; everything the user can do goes through KeyInput and the injected actions.
 */
import React, { useEffect, useMemo, useReducer, useSyncExternalStore } from 'react';
import { Box, useApp } from 'ink';
import type { StoreSnapshot } from '../core/store.js';
import type { UiActions } from './actions.js';
import { detailScrollMax } from './Detail.js';
import { Header } from './Header.js';
import { KeyInput } from './KeyInput.js';
import { layoutScreen } from './layout.js';
import { UNCLASSIFIED } from './ledger.js';
import { MainArea } from './MainArea.js';
import type { UiOptions } from './source.js';
import { initialState, reducer, selectedRow, type UiConfig, type UiState } from './state.js';
import { StatusLine } from './StatusLine.js';
import { useTerminalSize, type TerminalSize } from './useTerminalSize.js';

export interface SnapshotSource {
  subscribe(listener: () => void): () => void;
  getSnapshot(): StoreSnapshot;
}

export interface AppProps {
  store: SnapshotSource;
  actions: UiActions;
  options: UiOptions;
  config: UiConfig;
  showAll: boolean;
  /** Shown on the status line at start (e.g. problems found in a recording). */
  notice?: { text: string; level: 'info' | 'error' };
  /** Later news for the status line (the engine's warnings, a policy reload); returns an unsubscribe. */
  notices?: (listener: (n: { text: string; level: 'info' | 'error' }) => void) => () => void;
  /** Fixed size instead of the terminal's (tests, benchmarks). */
  size?: TerminalSize;
}

function providerCount(state: UiState): number {
  let n = 0;
  for (const name of state.shown.ledger.providers.keys()) if (state.showAll || name !== UNCLASSIFIED) n++;
  return n;
}

/** How far the detail screen can scroll (only asked on that screen). */
function detailMax(state: UiState, height: number): number | undefined {
  const row = state.screen === 'detail' ? selectedRow(state) : undefined;
  if (!row) return undefined;
  let flows = 0;
  for (const f of state.shown.snapshot.flows) if (f.proc === row.key) flows++;
  return detailScrollMax(row, flows, state.config.userName, height);
}

export function App(props: AppProps): React.JSX.Element {
  const { store, options, config } = props;
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const [state, dispatch] = useReducer(reducer, undefined, () => initialState(config, { showAll: props.showAll, snapshot, notice: props.notice }));
  // A new snapshot becomes a tick during this render (React re-runs the render at once, before
  // committing), so each refresh draws one frame, never a stale one followed by the real one.
  if (snapshot !== state.live.snapshot) dispatch({ type: 'tick', snapshot });
  const { notices } = props;
  useEffect(() => notices?.((n) => dispatch({ type: 'status', text: n.text, level: n.level })), [notices]);
  const { exit } = useApp();
  const actions = useMemo<UiActions>(
    () => ({ ...props.actions, quit: () => { props.actions.quit(); exit(); } }),
    [props.actions, exit],
  );
  const { columns, rows } = useTerminalSize(props.size);
  const layout = layoutScreen(rows, providerCount(state));
  const view = state.shown;
  return (
    <Box flexDirection="column" width={columns} height={rows}>
      <Header
        session={view.snapshot.session} at={view.snapshot.at} totals={view.snapshot.totals} lost={view.snapshot.lost}
        intervalMs={options.intervalMs} source={options.source} recording={options.recording}
        paused={state.paused} showAll={state.showAll} width={columns}
      />
      <MainArea state={state} layout={layout} width={columns} />
      <StatusLine draft={state.draft} prompt={state.prompt} status={state.status} filterText={state.filterText} screen={state.screen} width={columns} />
      <KeyInput
        state={state} dispatch={dispatch} actions={actions} page={Math.max(1, layout.table - 1)}
        detailMax={detailMax(state, layout.main)}
      />
    </Box>
  );
}
