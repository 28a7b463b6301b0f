/** The help overlay: every key binding, drawn from the bindings table, and the filter syntax. */
import React from 'react';
import { Box, Text } from 'ink';
import { fit } from './format.js';
import { KEY_BINDINGS } from './keys.js';

export interface HelpProps {
  width: number;
  height: number;
}

const LABEL_W = 9;
const FOOTER = [
  'Filter: provider:NAME user:NAME|UID pid:N process:NAME|AGENT and free text;',
  'same-kind terms are alternatives, the rest must all match.',
];

function HelpView({ width, height }: HelpProps): React.JSX.Element {
  const bodyLines = Math.max(1, height - 2 - FOOTER.length);
  const columns = KEY_BINDINGS.length > bodyLines && width >= 70 ? 2 : 1;
  const perColumn = Math.ceil(KEY_BINDINGS.length / columns);
  const colWidth = Math.floor((width - (columns - 1) * 2) / columns);
  const lines: string[] = [];
  for (let i = 0; i < perColumn; i++) {
    const cells: string[] = [];
    for (let c = 0; c < columns; c++) {
      const b = KEY_BINDINGS[c * perColumn + i];
      cells.push(b ? fit(`${fit(b.label, LABEL_W)} ${b.help}`, colWidth) : ' '.repeat(colWidth));
    }
    lines.push(cells.join('  ').trimEnd());
  }
  return (
    <Box flexDirection="column" width={width} height={height}>
      <Text bold color="cyan" wrap="truncate">Keys (Esc or ? closes this help)</Text>
      {lines.slice(0, bodyLines).map((l, i) => <Text key={i} wrap="truncate">{l}</Text>)}
      <Text> </Text>
      {FOOTER.map((l, i) => <Text key={`f${i}`} dimColor wrap="truncate">{l}</Text>)}
    </Box>
  );
}

export const Help = React.memo(HelpView);
