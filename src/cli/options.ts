/** Flag validation and error → (sentence, exit code) mapping shared by the CLI entry points. */
import { BpfError, LibbpfMissingError } from '../bpf/libbpf.js';
import { PreflightError } from '../bpf/preflight.js';
import type { OutputFormat } from '../sinks/printer.js';
import { samePath } from '../sinks/recorder-files.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const usageError = (message: string) => new UsageError(`${message}; see busted --help.`);

export interface Flags {
  format: OutputFormat;
  all: boolean;
  interval: number;
  duration: number | undefined;
  verbose: boolean;
  record: string | undefined;
  replay: string | undefined;
  providers: string | undefined;
  agents: string | undefined;
  policy: string | undefined;
  enforce: boolean;
  /** Replay speed; 0 means as fast as possible. */
  speed: number;
}

export interface RawFlags {
  format?: string;
  all?: boolean;
  interval?: number;
  duration?: number;
  verbose?: boolean;
  record?: string;
  replay?: string;
  providers?: string;
  agents?: string;
  policy?: string;
  enforce?: boolean;
  speed?: number;
}

export function validateFlags(raw: RawFlags): Flags {
  const format = raw.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw usageError(`--format must be text or json, not "${format}"`);
  const interval = raw.interval ?? 1000;
  if (!Number.isFinite(interval) || interval < 50 || interval > 60_000) {
    throw usageError(`--interval must be a number of milliseconds between 50 and 60000, not "${raw.interval}"`);
  }
  const duration = raw.duration;
  if (duration !== undefined && (!Number.isFinite(duration) || duration <= 0)) {
    throw usageError(`--duration must be a positive number of seconds, not "${duration}"`);
  }
  if (raw.record !== undefined && raw.record.trim() === '') throw usageError('--record needs a file path');
  if (raw.replay !== undefined && raw.replay.trim() === '') throw usageError('--replay needs a file path');
  if (raw.providers !== undefined && raw.providers.trim() === '') throw usageError('--providers needs a file path');
  if (raw.agents !== undefined && raw.agents.trim() === '') throw usageError('--agents needs a file path');
  if (raw.policy !== undefined && raw.policy.trim() === '') throw usageError('--policy needs a file path');
  if (raw.replay !== undefined && raw.record !== undefined && samePath(raw.replay, raw.record)) {
    throw usageError('--record and --replay cannot be the same file: recording would overwrite the recording being replayed');
  }
  if (raw.replay !== undefined && (raw.policy !== undefined || raw.enforce)) throw usageError('--policy and --enforce act on live traffic, not on --replay');
  const speed = raw.speed ?? 1;
  if (!Number.isFinite(speed) || speed < 0) throw usageError(`--speed must be a number ≥ 0, not "${raw.speed}"`);
  if (raw.speed !== undefined && raw.replay === undefined) throw usageError('--speed only applies with --replay FILE');
  return { format, all: raw.all ?? false, interval, duration, verbose: raw.verbose ?? false, record: raw.record, replay: raw.replay, providers: raw.providers, agents: raw.agents, policy: raw.policy, enforce: raw.enforce ?? false, speed };
}

/** One sentence for a person, and the exit code. */
export function describeError(err: unknown): { message: string; code: number } {
  if (err instanceof UsageError) return { message: err.message, code: 2 };
  if (err instanceof PreflightError || err instanceof LibbpfMissingError) return { message: err.message, code: 1 };
  if (err instanceof Error && (err.name === 'ReplayError' || err.name === 'RecordError')) return { message: err.message, code: 1 };
  if (err instanceof Error && (err.name === 'CatalogError' || err.name === 'AgentsError' || err.name === 'PolicyError')) return { message: `${err.message}; nothing was started.`, code: 2 };
  if (err instanceof BpfError) {
    const hint =
      err.code === 'EPERM' || err.code === 'EACCES'
        ? ' busted needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN: run it with sudo.'
        : ' Run `busted doctor` to see which kernel feature is missing.';
    const log = err.log.length > 0 ? `\nlibbpf said:\n  ${err.log.slice(-15).join('\n  ')}` : '';
    return { message: `${err.message}.${hint}${log}`, code: 1 };
  }
  const e = err as Error;
  return { message: e?.message ?? String(err), code: 1 };
}
