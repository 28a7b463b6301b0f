/** The area between header and status line: the table with the breakdown, or detail, or help. */
import React from 'react';
import { Box } from 'ink';
import { Breakdown } from './Breakdown.js';
import { Detail } from './Detail.js';
import { Help } from './Help.js';
import type { Layout } from './layout.js';
import { ProcessTable } from './ProcessTable.js';
import { rowsOf, selectedRow, type UiState } from './state.js';

export interface MainAreaProps {
  state: UiState;
  layout: Layout;
  width: number;
}

function emptyText(state: UiState): string {
  if (state.filterText) return `no process matches "${state.filterText}" (Esc clears the filter)`;
  if (state.shown.snapshot.session === null) return 'waiting for the first records…';
  return state.showAll ? 'no traffic yet' : 'no LLM traffic yet (t shows all traffic)';
}

export function MainArea({ state, layout, width }: MainAreaProps): React.JSX.Element {
  const view = state.shown;
  const at = view.snapshot.at;
  if (state.screen === 'help') return <Help width={width} height={layout.main} />;
  const row = state.screen === 'detail' ? selectedRow(state) : undefined;
  if (row) {
    const flows = view.snapshot.flows.filter((f) => f.proc === row.key);
    return (
      <Detail
        row={row} flows={flows} userName={state.config.userName} at={at}
        width={width} height={layout.main} scroll={state.detailScroll}
      />
    );
  }
  return (
    <Box flexDirection="column" height={layout.main}>
      <ProcessTable
        rows={rowsOf(state)} now={at} userName={state.config.userName} sort={state.sort}
        selectedKey={state.selected} width={width} height={layout.table} emptyText={emptyText(state)}
      />
      {layout.breakdown > 0 ? (
        <Box marginTop={layout.gap}>
          <Breakdown
            ledger={view.ledger} history={view.history} at={at} width={width}
            height={layout.breakdown} showAll={state.showAll}
          />
        </Box>
      ) : null}
    </Box>
  );
}
