/** busted-top's flags: validation into one shape, usage errors as one sentence (exit 2). */
import { samePath } from '../sinks/recorder-files.js';
import { UsageError } from './options.js';

export interface TopFlags {
  replay: string | null;
  speed: number;
  intervalMs: number;
  record: string | null;
  all: boolean;
  providers: string | null;
  policy: string | null;
  enforce: boolean;
}

export interface RawTopFlags {
  replay?: string;
  speed?: number;
  interval?: number;
  record?: string;
  all?: boolean;
  providers?: string;
  policy?: string;
  enforce?: boolean;
  [other: string]: unknown;
}

const KNOWN = new Set(['replay', 'speed', 'interval', 'record', 'all', 'providers', 'policy', 'enforce', 'help', 'version',
  'recordMaxSize', 'recordKeep', 'recordFlush', 'recordFsync', 'metrics', 'otlp']);

export const topUsageError = (message: string): UsageError => new UsageError(`${message}; see busted-top --help.`);

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function validateTopFlags(raw: RawTopFlags, input: readonly string[] = []): TopFlags {
  const unknown = Object.keys(raw).find((k) => !KNOWN.has(k));
  if (unknown) throw topUsageError(`unknown option --${kebab(unknown)}`);
  if (input.length > 0) throw topUsageError(`unexpected argument ${input[0]}`);
  if (raw.replay !== undefined && raw.replay.trim() === '') throw topUsageError('--replay needs a FILE');
  if (raw.record !== undefined && raw.record.trim() === '') throw topUsageError('--record needs a FILE');
  if (raw.providers !== undefined && raw.providers.trim() === '') throw topUsageError('--providers needs a FILE');
  if (raw.policy !== undefined && raw.policy.trim() === '') throw topUsageError('--policy needs a FILE');
  if (raw.replay !== undefined && (raw.policy !== undefined || raw.enforce)) throw topUsageError('--policy and --enforce act on live traffic, not on --replay');
  const speed = raw.speed ?? 1;
  if (!Number.isFinite(speed) || speed <= 0 || speed > 10_000) {
    throw topUsageError(`--speed must be a number above 0 and at most 10000, not "${raw.speed}"`);
  }
  if (raw.speed !== undefined && raw.replay === undefined) throw topUsageError('--speed only applies with --replay FILE');
  const interval = raw.interval ?? 1000;
  if (!Number.isFinite(interval) || interval < 50 || interval > 60_000) {
    throw topUsageError(`--interval must be a number of milliseconds between 50 and 60000, not "${raw.interval}"`);
  }
  if (raw.record !== undefined && raw.replay !== undefined && samePath(raw.record, raw.replay)) {
    throw topUsageError('--record and --replay cannot be the same file: recording would overwrite the recording being replayed');
  }
  return { replay: raw.replay ?? null, speed, intervalMs: interval, record: raw.record ?? null, all: raw.all ?? false,
    providers: raw.providers ?? null, policy: raw.policy ?? null, enforce: raw.enforce ?? false };
}

export const NEED_ROOT =
  'busted-top needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN to watch live traffic: run it with sudo, ' +
  'or try it without privileges on a recording: busted-top --replay examples/demo.jsonl';
