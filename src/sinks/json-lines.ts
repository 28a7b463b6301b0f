/**
 * A record's JSON line: always exactly `JSON.stringify(rec)`, written faster for the two records
 * every connection of `--all` produces.
 *
 * `JSON.stringify` of a connect record (27 fields) was a third of busted's CPU with `--all` at
 * 10k connections/s. Most of that record is the process's part (comm to startTime), the same for
 * every connection of a process, so its bytes are kept and only the connection's fields are
 * written around them, straight into the output's bytes (LineBytes). Records whose keys are not
 * the live engine's, in its order (a recording from another version, a record made by hand), or
 * whose values are not plain ASCII where they are written directly, go through `JSON.stringify`;
 * the process part and anything that may hold arbitrary text always do. bench/README.md
 * (sessions 8 and 9) has the measurements.
 */
import type { CloseRecord, ConnectRecord, EventRecord } from '../core/records.js';
import { isPlain, LineBytes } from './line-bytes.js';

/** The live engine's connect record keys, in order (src/core/engine.ts makes it as one literal). */
const CONNECT_KEYS = [
  'type', 'ts', 'flow', 'pid', 'tid', 'comm', 'uid', 'gid', 'exe', 'cgroup', 'sha256', 'exeReplaced', 'user', 'group',
  'ppid', 'container', 'pod', 'agent', 'cgroupId', 'startTime', 'proto', 'src', 'dst', 'provider', 'host', 'via', 'error',
] as const;
const CLOSE_KEYS = ['type', 'ts', 'flow', 'pid', 'tx', 'rx', 'durationMs'] as const;

/** The process part of a connect record: from comm to startTime. */
type ProcessPart = Pick<ConnectRecord, 'comm' | 'uid' | 'gid' | 'exe' | 'cgroup' | 'sha256' | 'exeReplaced' | 'user' | 'group'
  | 'ppid' | 'container' | 'pod' | 'agent' | 'cgroupId' | 'startTime'>;

const processPart = (r: ConnectRecord): ProcessPart => ({
  comm: r.comm, uid: r.uid, gid: r.gid, exe: r.exe, cgroup: r.cgroup, sha256: r.sha256, exeReplaced: r.exeReplaced,
  user: r.user, group: r.group, ppid: r.ppid, container: r.container, pod: r.pod, agent: r.agent, cgroupId: r.cgroupId,
  startTime: r.startTime,
});

/**
 * Whether `r` has the process part `p`. Objects (container, pod, agent) are compared by
 * reference: identities are replaced, never changed in place (IdentityResolver).
 */
const sameProcess = (r: ConnectRecord, p: ProcessPart): boolean =>
  r.comm === p.comm && r.uid === p.uid && r.gid === p.gid && r.exe === p.exe && r.cgroup === p.cgroup && r.sha256 === p.sha256
  && r.exeReplaced === p.exeReplaced && r.user === p.user && r.group === p.group && r.ppid === p.ppid && r.container === p.container
  && r.pod === p.pod && r.agent === p.agent && r.cgroupId === p.cgroupId && r.startTime === p.startTime;

/** Whether `rec`'s own enumerable keys are exactly `keys`, in order. */
function hasKeys(rec: object, keys: readonly string[]): boolean {
  let i = 0;
  for (const k in rec) {
    if (k !== keys[i]) return false;
    i++;
  }
  return i === keys.length;
}

const NO_CLASS = ',"provider":null,"host":null,"via":null,"error":null}';

/**
 * Bytes of a line part made from a few values, kept while the values stay the same: a
 * millisecond's records share their time, a process's connects their pid and process part, a
 * destination's connects their end.
 */
class Kept {
  private set_ = false;
  private k0: unknown;
  private k1: unknown;
  private k2: unknown;
  private k3: unknown;
  bytes: Uint8Array = new Uint8Array(0);
  /** Where the bytes are written: reused, not a new Buffer each time (Buffer.from takes 8 KiB pools, which the collector then frees). */
  private room = Buffer.allocUnsafeSlow(256);

  /** Whether the kept bytes are those of these values (compared by ===; up to four). */
  has(k0: unknown, k1?: unknown, k2?: unknown, k3?: unknown): boolean {
    return this.set_ && k0 === this.k0 && k1 === this.k1 && k2 === this.k2 && k3 === this.k3;
  }

  keep(text: string, k0: unknown, k1?: unknown, k2?: unknown, k3?: unknown): void {
    this.set_ = true;
    this.k0 = k0;
    this.k1 = k1;
    this.k2 = k2;
    this.k3 = k3;
    if (text.length * 3 > this.room.length) this.room = Buffer.allocUnsafeSlow(text.length * 3);
    this.bytes = this.room.subarray(0, this.room.write(text, 0, 'utf8'));
  }
}

const numberText = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);

/** A line's start up to its flow id, and the flow id: `{"type":"…","ts":"…","flow":"…` */
function head(kept: Kept, type: 'connect' | 'close', r: ConnectRecord | CloseRecord, out: LineBytes): boolean {
  const ts = r.ts;
  if (!kept.has(ts)) {
    if (!isPlain(ts)) return false;
    kept.keep(`{"type":"${type}","ts":"${ts}","flow":"`, ts);
  }
  out.bytes(kept.bytes);
  return out.plain(r.flow);
}

/** After the flow id, the pid and the next key: `","pid":…,"<next>":` */
function pidPart(kept: Kept, pid: unknown, next: 'tid' | 'tx', out: LineBytes): boolean {
  if (!kept.has(pid)) {
    if (!numberText(pid)) return false;
    kept.keep(`","pid":${JSON.stringify(pid)},"${next}":`, pid);
  }
  out.bytes(kept.bytes);
  return true;
}

export class JsonLines {
  /** The last connect's process part and its JSON text (without the braces). */
  private process: ProcessPart | null = null;
  private processText = '';
  /** `{"type":"connect","ts":"…","flow":"` */
  private readonly connectHead = new Kept();
  /** `","pid":…,"tid":` */
  private readonly connectPid = new Kept();
  /** `,` the process part `,"proto":"…","src":"` */
  private readonly connectMid = new Kept();
  /** `","dst":"…"` and the null classification `}` */
  private readonly connectTail = new Kept();
  /** `{"type":"close","ts":"…","flow":"` */
  private readonly closeHead = new Kept();
  /** `","pid":…,"tx":` */
  private readonly closeMid = new Kept();
  private scratch: LineBytes | null = null;

  /** Appends `rec`'s JSON line and a newline to `out`. */
  append(rec: EventRecord, out: LineBytes): void {
    const start = out.length;
    const done = rec.type === 'connect' ? this.connect(rec, out) : rec.type === 'close' && this.close(rec, out);
    if (!done) {
      out.cut(start);
      out.text(JSON.stringify(rec));
    }
    out.newline();
  }

  /** `rec`'s JSON line as a string, without the newline. */
  line(rec: EventRecord): string {
    const s = (this.scratch ??= new LineBytes(1024));
    s.clear();
    this.append(rec, s);
    return s.view(0).toString('utf8', 0, s.length - 1);
  }

  private connect(r: ConnectRecord, out: LineBytes): boolean {
    if (!hasKeys(r, CONNECT_KEYS)) return false;
    if (this.process === null || !sameProcess(r, this.process)) {
      const text = JSON.stringify(processPart(r)).slice(1, -1);
      if (text === '') return false; // nothing of it is written: the commas around it are wrong
      this.process = processPart(r);
      this.processText = text;
    }
    if (!head(this.connectHead, 'connect', r, out)) return false;
    if (!pidPart(this.connectPid, r.pid, 'tid', out)) return false;
    // a process's threads take turns: the thread is written on its own, not kept with the rest
    if (!out.number(r.tid)) return false;
    const proto = r.proto;
    if (!this.connectMid.has(this.processText, proto)) {
      if (!isPlain(proto)) return false;
      this.connectMid.keep(`,${this.processText},"proto":"${proto}","src":"`, this.processText, proto);
    }
    out.bytes(this.connectMid.bytes);
    if (!out.plain(r.src)) return false;
    const dst = r.dst;
    if (r.provider === null && r.host === null && r.via === null && r.error === null) {
      if (!this.connectTail.has(dst)) {
        if (!isPlain(dst)) return false;
        this.connectTail.keep(`","dst":"${dst}"${NO_CLASS}`, dst);
      }
      out.bytes(this.connectTail.bytes);
      return true;
    }
    out.ascii('","dst":"');
    if (!out.plain(dst)) return false;
    out.ascii('"');
    // undefined values are left out, as JSON.stringify leaves them out: nothing may be left of a part
    const tail = JSON.stringify({ provider: r.provider, host: r.host, via: r.via, error: r.error }).slice(1, -1);
    if (tail !== '') out.ascii(',');
    out.text(tail);
    out.ascii('}');
    return true;
  }

  private close(r: CloseRecord, out: LineBytes): boolean {
    if (!hasKeys(r, CLOSE_KEYS)) return false;
    if (!head(this.closeHead, 'close', r, out)) return false;
    if (!pidPart(this.closeMid, r.pid, 'tx', out)) return false;
    if (!out.number(r.tx)) return false;
    out.ascii(',"rx":');
    if (!out.number(r.rx)) return false;
    out.ascii(',"durationMs":');
    if (!out.number(r.durationMs)) return false;
    out.ascii('}');
    return true;
  }
}
