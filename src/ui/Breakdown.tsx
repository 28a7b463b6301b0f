/**
 * Provider breakdown: per provider, its share of bytes and of connections as bars and its
 * rate over the last minute as a sparkline. Flows without a known provider are "unclassified".
 */
import React from 'react';
import { Box, Text } from 'ink';
import { bar, sparkline } from './charts.js';
import { fit, formatPercent, formatRate } from './format.js';
import { rateSeries, UNCLASSIFIED, type ProviderLedger, type RateSample } from './ledger.js';

export interface BreakdownProps {
  ledger: ProviderLedger;
  history: readonly RateSample[];
  at: number;
  width: number;
  /** Lines available, title included. */
  height: number;
  showAll: boolean;
}

const NAME_W = 12;
const BYTES_BAR_W = 10;
const CONNS_BAR_W = 8;
const PCT_W = 4;
const RATE_W = 11;
const MIN_SPARK_W = 8;

function BreakdownView(props: BreakdownProps): React.JSX.Element | null {
  const { ledger, width, height } = props;
  const entries = [...ledger.providers.entries()]
    .filter(([name]) => props.showAll || name !== UNCLASSIFIED)
    .sort((a, b) => b[1].bytes - a[1].bytes || a[0].localeCompare(b[0]));
  if (height < 2) return null;
  const bytes = entries.reduce((s, [, t]) => s + t.bytes, 0);
  const conns = entries.reduce((s, [, t]) => s + t.connections, 0);
  const fixed = NAME_W + 1 + BYTES_BAR_W + 1 + PCT_W + 1 + CONNS_BAR_W + 1 + PCT_W + 1 + RATE_W + 1;
  const sparkW = width - fixed >= MIN_SPARK_W ? width - fixed : 0;
  const slots = height - 1;
  const shown = entries.length > slots ? entries.slice(0, slots - 1) : entries;
  const hidden = entries.length - shown.length;
  const title = [
    fit('PROVIDER', NAME_W), fit('BYTES', BYTES_BAR_W + 1 + PCT_W), fit('CONNS', CONNS_BAR_W + 1 + PCT_W),
    fit('RATE', RATE_W, 'right'), sparkW ? 'LAST MINUTE' : '',
  ].join(' ');
  return (
    <Box flexDirection="column" width={width}>
      <Text bold color="cyan" wrap="truncate">{title}</Text>
      {entries.length === 0 ? <Text dimColor wrap="truncate">no provider traffic yet</Text> : null}
      {shown.map(([name, t]) => (
        <Text key={name} wrap="truncate">
          <Text dimColor={name === UNCLASSIFIED}>{fit(name, NAME_W)}</Text>{' '}
          <Text color="green">{bar(t.bytes, bytes, BYTES_BAR_W)}</Text> {fit(formatPercent(t.bytes, bytes), PCT_W, 'right')}{' '}
          <Text color="blue">{bar(t.connections, conns, CONNS_BAR_W)}</Text> {fit(formatPercent(t.connections, conns), PCT_W, 'right')}{' '}
          {fit(formatRate(t.rate), RATE_W, 'right')}{' '}
          <Text color="yellow">{sparkW ? sparkline(rateSeries(props.history, name, sparkW, props.at)) : ''}</Text>
        </Text>
      ))}
      {hidden > 0 ? <Text dimColor wrap="truncate">+{hidden} more provider{hidden === 1 ? '' : 's'}</Text> : null}
    </Box>
  );
}

export const Breakdown = React.memo(BreakdownView);
