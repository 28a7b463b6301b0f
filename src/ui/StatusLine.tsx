/**
 * The bottom line: the filter being typed, a kill confirmation, the last result or error,
 * or else a reminder of the main keys and the active filter.
 */
import React from 'react';
import { Text } from 'ink';
import type { KillTarget, Screen, Status } from './state.js';

export interface StatusLineProps {
  draft: string | null;
  prompt: KillTarget | null;
  status: Status | null;
  filterText: string;
  screen: Screen;
  width: number;
}

const HINTS: Record<Screen, string> = {
  table: '? help  q quit  / filter  s sort  Enter detail  x kill  Space pause  t all/LLM',
  detail: 'Esc back  j/k scroll  x kill  Space pause  ? help  q quit',
  help: 'any key closes the help  ^C quit',
};

function StatusLineView(props: StatusLineProps): React.JSX.Element {
  const { draft, prompt, status, filterText } = props;
  if (draft !== null) {
    return (
      <Text wrap="truncate-start">
        <Text color="cyan" bold>/ </Text>{draft}<Text inverse> </Text>
        <Text dimColor>  Enter applies, Esc clears</Text>
      </Text>
    );
  }
  if (prompt) {
    return (
      <Text wrap="truncate" color="yellow" bold>
        Kill {prompt.pid} ({prompt.comm})? y: SIGTERM  K: SIGKILL  any other key: cancel
      </Text>
    );
  }
  if (status) {
    return <Text wrap="truncate" color={status.level === 'error' ? 'red' : 'green'}>{status.text}</Text>;
  }
  return (
    <Text wrap="truncate" dimColor>
      {filterText ? <Text color="cyan">filter: {filterText} (Esc clears)  </Text> : null}
      {HINTS[props.screen]}
    </Text>
  );
}

export const StatusLine = React.memo(StatusLineView);
