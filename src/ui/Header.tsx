/** Two header lines: session, mode and markers; then totals and the kernel's lost count. */
import React from 'react';
import { Box, Text } from 'ink';
import type { Totals } from '../core/flows.js';
import type { SessionRecord } from '../core/records.js';
import { formatBytes, formatDuration, formatInterval, formatRate } from './format.js';
import type { SourceInfo } from './source.js';

export interface HeaderProps {
  session: SessionRecord | null;
  /** Time of the snapshot shown (recording time in a replay). */
  at: number;
  totals: Totals;
  lost: number;
  intervalMs: number;
  source: SourceInfo;
  recording: string | null;
  paused: boolean;
  showAll: boolean;
  width: number;
}

const SEP = '  ';

function replayMarker(source: SourceInfo, at: number): string | null {
  if (source.mode !== 'replay') return null;
  const ended = source.endsAt !== null && at >= source.endsAt;
  return `REPLAY ×${source.speed}${ended ? ' ended' : ''}`;
}

function HeaderView(props: HeaderProps): React.JSX.Element {
  const { session, at, totals, lost } = props;
  const started = session ? Date.parse(session.ts) : NaN;
  const uptime = Number.isFinite(started) ? formatDuration(at - started) : '-';
  const replay = replayMarker(props.source, at);
  const mode = session?.enforce ? 'ENFORCE' : 'AUDIT';
  return (
    <Box flexDirection="column" width={props.width}>
      <Text wrap="truncate">
        <Text bold>busted-top</Text>
        {SEP}
        <Text color={session?.enforce ? 'red' : 'yellow'} bold>{mode}</Text>
        {replay ? <Text color="magenta" bold>{SEP}{replay}</Text> : null}
        {props.recording ? <Text color="red">{SEP}● REC {props.recording}</Text> : null}
        {props.paused ? <Text color="yellow" inverse>{SEP}PAUSED</Text> : null}
        {SEP}
        <Text dimColor>{props.showAll ? 'all traffic' : 'LLM only'}</Text>
        {SEP}up {uptime}{SEP}every {formatInterval(props.intervalMs)}{SEP}
        {session ? `${session.host} ${session.kernel}` : 'waiting for the session record…'}
      </Text>
      <Text wrap="truncate">
        procs <Text bold>{totals.processes}</Text>
        {SEP}conns <Text bold>{totals.open}/{totals.connections}</Text>
        {SEP}tx <Text bold>{formatRate(totals.txRate)}</Text>
        {SEP}rx <Text bold>{formatRate(totals.rxRate)}</Text>
        {SEP}total {formatBytes(totals.tx)} / {formatBytes(totals.rx)}
        {SEP}lost <Text color={lost > 0 ? 'red' : undefined} bold={lost > 0}>{lost}</Text>
      </Text>
    </Box>
  );
}

export const Header = React.memo(HeaderView);
