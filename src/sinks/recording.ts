/**
 * Reading a recording (`--replay FILE`): JSON lines → event records. Lines that are not JSON,
 * have an unknown `type` or fields of the wrong type are skipped and reported with their line
 * numbers, never fatal. A truncated last line (a crash while writing) is expected and silent.
 * A missing, unreadable or empty file, or one without any valid record, is a ReplayError.
 */
import fs from 'node:fs';
import { RECORD_TYPES, SCHEMA_VERSION, type EventRecord, type RecordType, type SessionRecord } from '../core/records.js';

export type ReplayErrorCode = 'missing' | 'unreadable' | 'empty' | 'no-records';

export class ReplayError extends Error {
  constructor(message: string, readonly code: ReplayErrorCode) {
    super(message);
    this.name = 'ReplayError';
  }
}

export interface RecordingProblem {
  /** 1-based line number in the file. */
  line: number;
  reason: string;
}

export interface Recording {
  records: EventRecord[];
  problems: RecordingProblem[];
  /** The last line had no newline and did not parse: cut short by a crash, ignored. */
  truncatedLastLine: boolean;
}

/**
 * A field's type: JSON types (`?`: or null), the identity objects busted writes (`container?`,
 * `pod?`, `agent?`: the object or null; `parents`: a list of parent processes), and `action?` (a
 * verdict's action or null). Downstream code (the store, the printer, busted-top) reads into these,
 * so a hand-made or damaged line with the wrong shape is a problem here, not a crash there.
 */
type FieldType = 'string' | 'number' | 'boolean' | 'string?' | 'number?' | 'container?' | 'pod?' | 'agent?' | 'parents' | 'action?';
type Spec = Record<string, FieldType>;

/** Fields that must be present with this type. */
const REQUIRED: Record<RecordType, Spec> = {
  session: { v: 'number', host: 'string', kernel: 'string', version: 'string', enforce: 'boolean' },
  connect: { flow: 'string', pid: 'number', comm: 'string', uid: 'number', src: 'string', dst: 'string' },
  process: { pid: 'number', startTime: 'number' },
  classify: { flow: 'string', pid: 'number' },
  traffic: { flow: 'string', pid: 'number', tx: 'number', rx: 'number' },
  close: { flow: 'string', pid: 'number', tx: 'number', rx: 'number', durationMs: 'number' },
  policy: { pid: 'number', action: 'string', result: 'string', dst: 'string', rule: 'string' },
  verdict: { pid: 'number', startTime: 'number', source: 'string', action: 'action?' },
  kill: { pid: 'number', signal: 'string' },
  lost: { count: 'number' },
};

type Fallback = (r: Record<string, unknown>) => unknown;
const NULL: Fallback = () => null;
/** Absent stays absent (a connect's identity fields are optional in the format). */
const ABSENT: Fallback = () => undefined;

/** A process's identity (records.ts IdentityFields); `absent` for a connect, where they are optional. */
const identity = (absent: boolean): Record<string, [FieldType, Fallback]> => ({
  sha256: ['string?', absent ? ABSENT : NULL], exeReplaced: ['boolean', absent ? ABSENT : () => false],
  user: ['string?', absent ? ABSENT : NULL], group: ['string?', absent ? ABSENT : NULL], ppid: ['number?', absent ? ABSENT : NULL],
  container: ['container?', absent ? ABSENT : NULL], pod: ['pod?', absent ? ABSENT : NULL], agent: ['agent?', absent ? ABSENT : NULL],
});

/** Fields that may be missing (older writers); filled with these defaults, but type-checked when present. */
const OPTIONAL: Partial<Record<RecordType, Record<string, [FieldType, Fallback]>>> = {
  session: { source: ['string', ABSENT] },
  connect: {
    tid: ['number', (r) => r.pid], gid: ['number', () => 0], exe: ['string?', NULL],
    cgroup: ['string?', NULL], cgroupId: ['number', () => 0], startTime: ['number', () => 0],
    proto: ['string', () => 'tcp'], provider: ['string?', NULL], host: ['string?', NULL],
    via: ['string?', NULL], error: ['string?', NULL],
    ...identity(true),
  },
  process: {
    exe: ['string?', NULL], cgroup: ['string?', NULL], cmdline: ['string?', NULL], parents: ['parents', () => []],
    ...identity(false),
  },
  classify: { provider: ['string?', NULL], host: ['string?', NULL], via: ['string?', NULL] },
  policy: {
    provider: ['string?', NULL], startTime: ['number', ABSENT], comm: ['string', ABSENT], uid: ['number', ABSENT],
    proto: ['string', ABSENT], cut: ['number', ABSENT],
  },
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown, keys: readonly string[], optional: readonly string[] = []): boolean =>
  isObject(v) && keys.every((k) => typeof v[k] === 'string') && optional.every((k) => v[k] === undefined || typeof v[k] === 'string');

function hasType(value: unknown, type: FieldType): boolean {
  switch (type) {
    case 'string?':
      return value === null || typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'number?':
      return value === null || (typeof value === 'number' && Number.isFinite(value));
    case 'container?':
      return value === null || strings(value, ['id', 'runtime']);
    case 'pod?':
      return value === null || strings(value, ['uid', 'qos'], ['namespace', 'name']);
    case 'agent?':
      return value === null || strings(value, ['id', 'label']);
    case 'parents':
      return Array.isArray(value) && value.every((p) => isObject(p) && hasType(p.pid, 'number') && typeof p.comm === 'string' && hasType(p.exe, 'string?'));
    case 'action?':
      return value === null || value === 'block' || value === 'audit' || value === 'allow';
    default:
      return typeof value === type;
  }
}

/** What a field should have been, for a problem's reason. */
const DESCRIBED: Record<FieldType, string> = {
  string: 'a string', number: 'a number', boolean: 'a boolean', 'string?': 'a string or null', 'number?': 'a number or null',
  'container?': 'a container ({id, runtime}) or null', 'pod?': 'a pod ({uid, qos}) or null', 'agent?': 'an agent ({id, label}) or null',
  parents: 'a list of parents ({pid, comm, exe})', 'action?': 'block, audit, allow or null',
};

/** The record, normalized, or the reason it cannot be used. */
export function validateRecord(value: unknown): EventRecord | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const obj = value as Record<string, unknown>;
  const type = obj.type;
  if (typeof type !== 'string') return 'no "type" field';
  if (!RECORD_TYPES.includes(type as RecordType)) return `unknown type "${type}"`;
  if (typeof obj.ts !== 'string' || Number.isNaN(Date.parse(obj.ts))) return `${type}: "ts" is not an ISO 8601 time`;
  for (const [field, ft] of Object.entries(REQUIRED[type as RecordType])) {
    if (!hasType(obj[field], ft)) {
      return ft === 'string' || ft === 'number' || ft === 'boolean' ? `${type}: "${field}" is missing or not a ${ft}` : `${type}: "${field}" is not ${DESCRIBED[ft]}`;
    }
  }
  const out: Record<string, unknown> = { ...obj };
  for (const [field, [ft, fallback]] of Object.entries(OPTIONAL[type as RecordType] ?? {})) {
    if (obj[field] === undefined) {
      const v = fallback(obj);
      if (v !== undefined) out[field] = v;
    } else if (!hasType(obj[field], ft)) return `${type}: "${field}" is not ${DESCRIBED[ft]}`;
  }
  return out as unknown as EventRecord;
}

export function parseRecording(text: string): Recording {
  const records: EventRecord[] = [];
  const problems: RecordingProblem[] = [];
  let truncatedLastLine = false;
  const lines = text.split('\n');
  const endsWithNewline = text.endsWith('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const isLast = i === lines.length - 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      if (isLast && !endsWithNewline) truncatedLastLine = true;
      else problems.push({ line: i + 1, reason: 'not valid JSON' });
      continue;
    }
    const rec = validateRecord(value);
    if (typeof rec === 'string') problems.push({ line: i + 1, reason: rec });
    else records.push(rec);
  }
  return { records, problems, truncatedLastLine };
}

/** A session record for recordings that do not start with one (so the header has something). */
function assumedSession(ts: string): SessionRecord {
  return { type: 'session', ts, v: SCHEMA_VERSION, host: 'unknown', kernel: 'unknown', version: 'unknown', enforce: false };
}

export function readRecording(path: string): Recording {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ReplayError(`The recording ${path} does not exist; check the path (try examples/demo.jsonl).`, 'missing');
    throw new ReplayError(`Cannot read the recording ${path}: ${(e as Error).message}.`, 'unreadable');
  }
  if (text.trim() === '') throw new ReplayError(`The recording ${path} is empty; record one with --record FILE first.`, 'empty');
  const recording = parseRecording(text);
  if (recording.records.length === 0) {
    throw new ReplayError(
      `The recording ${path} has no valid record (${describeProblems(recording.problems)}); is it a busted JSONL recording?`,
      'no-records',
    );
  }
  const first = recording.records[0]!;
  if (first.type !== 'session') {
    recording.records.unshift(assumedSession(first.ts));
    recording.problems.unshift({ line: 1, reason: 'no session record first; one was assumed' });
  }
  return recording;
}

/** `3 problems: line 4 (not valid JSON), line 9 (unknown type "x"), …` */
export function describeProblems(problems: readonly RecordingProblem[], max = 5): string {
  if (problems.length === 0) return 'no problems';
  const listed = problems.slice(0, max).map((p) => `line ${p.line} (${p.reason})`).join(', ');
  const more = problems.length > max ? `, and ${problems.length - max} more` : '';
  return `${problems.length} problem${problems.length === 1 ? '' : 's'}: ${listed}${more}`;
}
