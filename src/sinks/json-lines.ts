/**
 * A record's JSON line: always exactly `JSON.stringify(rec)`, made faster for the two records
 * every connection of `--all` produces.
 *
 * `JSON.stringify` of a connect record (27 fields) was a third of busted's CPU with `--all` at
 * 10k connections/s. Most of that record is the process's part (comm to startTime), the same for
 * every connection of a process, so its text is kept and only the connection's fields are written
 * around it. Records whose keys are not the live engine's, in its order (a recording from another
 * version, a record made by hand), or whose values could need escaping where the text is written
 * directly, go through `JSON.stringify`; the process part and anything that may hold arbitrary
 * text always do. bench/README.md (session 8) has the measurements.
 */
import type { CloseRecord, ConnectRecord, EventRecord } from '../core/records.js';

/** The live engine's connect record keys, in order (src/core/engine.ts makes it as one literal). */
const CONNECT_KEYS = [
  'type', 'ts', 'flow', 'pid', 'tid', 'comm', 'uid', 'gid', 'exe', 'cgroup', 'sha256', 'exeReplaced', 'user', 'group',
  'ppid', 'container', 'pod', 'agent', 'cgroupId', 'startTime', 'proto', 'src', 'dst', 'provider', 'host', 'via', 'error',
] as const;
/** The process part: from comm to startTime. */
const PROCESS_KEYS = CONNECT_KEYS.slice(5, 20) as readonly (keyof ConnectRecord)[];
const CLOSE_KEYS = ['type', 'ts', 'flow', 'pid', 'tx', 'rx', 'durationMs'] as const;

/** Characters JSON.stringify writes other than as themselves (and lone surrogates). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

const plain = (s: unknown): s is string => typeof s === 'string' && !NEEDS_ESCAPE.test(s);
const finite = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);

/** Whether `rec`'s own enumerable keys are exactly `keys`, in order. */
function hasKeys(rec: object, keys: readonly string[]): boolean {
  let i = 0;
  for (const k in rec) {
    if (k !== keys[i]) return false;
    i++;
  }
  return i === keys.length;
}

export class JsonLines {
  /** The last connect's process part: its values (compared by ===) and its JSON text. */
  private processValues: unknown[] = [];
  private processText = '';

  line(rec: EventRecord): string {
    if (rec.type === 'connect') return this.connect(rec);
    if (rec.type === 'close') return close(rec);
    return JSON.stringify(rec);
  }

  private connect(r: ConnectRecord): string {
    if (!hasKeys(r, CONNECT_KEYS) || !plain(r.ts) || !plain(r.flow) || !finite(r.pid) || !finite(r.tid)
      || !plain(r.proto) || !plain(r.src) || !plain(r.dst)) {
      return JSON.stringify(r);
    }
    const last = this.processValues;
    let same = last.length === PROCESS_KEYS.length;
    for (let i = 0; same && i < PROCESS_KEYS.length; i++) same = last[i] === r[PROCESS_KEYS[i]!];
    if (!same) {
      // objects (container, pod, agent) are compared by reference: identities are replaced, never
      // changed in place (IdentityResolver)
      const part: Record<string, unknown> = {};
      for (const k of PROCESS_KEYS) part[k] = r[k];
      this.processValues = PROCESS_KEYS.map((k) => r[k]);
      this.processText = JSON.stringify(part).slice(1, -1);
    }
    // undefined values are left out, as JSON.stringify leaves them out: nothing may be left of a part
    const tail = r.provider === null && r.host === null && r.via === null && r.error === null
      ? '"provider":null,"host":null,"via":null,"error":null'
      : JSON.stringify({ provider: r.provider, host: r.host, via: r.via, error: r.error }).slice(1, -1);
    const processText = this.processText;
    if (processText === '') return JSON.stringify(r);
    return `{"type":"connect","ts":"${r.ts}","flow":"${r.flow}","pid":${r.pid},"tid":${r.tid},${processText},"proto":"${r.proto}","src":"${r.src}","dst":"${r.dst}"${tail === '' ? '' : `,${tail}`}}`;
  }
}

function close(r: CloseRecord): string {
  if (!hasKeys(r, CLOSE_KEYS) || !plain(r.ts) || !plain(r.flow) || !finite(r.pid) || !finite(r.tx) || !finite(r.rx) || !finite(r.durationMs)) {
    return JSON.stringify(r);
  }
  return `{"type":"close","ts":"${r.ts}","flow":"${r.flow}","pid":${r.pid},"tx":${r.tx},"rx":${r.rx},"durationMs":${r.durationMs}}`;
}
