/**
 * Event records, version 1 (../shared/DESIGN.md "Event records").
 * `--format json`, `--record` and `--replay` all share these shapes: one object per line.
 * Fields may be added; none may change meaning within version 1.
 */

export const SCHEMA_VERSION = 1;

export type Proto = 'tcp' | 'udp';
export type Via = 'sni' | 'proxy' | 'dns' | 'cidr' | 'port' | null;

interface RecordBase {
  /** ISO 8601 with milliseconds. */
  ts: string;
}

export interface SessionRecord extends RecordBase {
  type: 'session';
  v: number;
  host: string;
  kernel: string;
  version: string;
  enforce: boolean;
  /** `live` when attached to the kernel, `replay` when fed from a recording. */
  source?: 'live' | 'replay';
}

export interface ContainerRef {
  id: string;
  /** docker, containerd, cri-o, podman, cri, … */
  runtime: string;
}

export interface PodRef {
  uid: string;
  /** besteffort, burstable or guaranteed */
  qos: string;
  /** Namespace and name from the Kubernetes API server, when busted runs in the cluster (absent otherwise). */
  namespace?: string;
  name?: string;
}

export interface AgentRef {
  id: string;
  label: string;
}

export interface ParentRef {
  pid: number;
  comm: string;
  exe: string | null;
}

/** Who a process is beyond the kernel's facts: filled in from /proc, the cgroup tree and the executable. */
export interface IdentityFields {
  /** SHA-256 of the executable (hex), once hashed; null until then or when it cannot be read. */
  sha256: string | null;
  /** The file at `exe` is not the one the process runs (replaced or deleted since it started). */
  exeReplaced: boolean;
  user: string | null;
  group: string | null;
  /** Parent process id (from the kernel at connect time, else /proc). */
  ppid: number | null;
  container: ContainerRef | null;
  pod: PodRef | null;
  /** An AI agent or coding assistant recognised by catalog/agents.yaml. */
  agent: AgentRef | null;
}

export interface ProcessFields {
  pid: number;
  tid: number;
  comm: string;
  uid: number;
  gid: number;
  /** Executable path, when /proc still knew it. */
  exe: string | null;
  /** cgroup v2 path of the process, when known. */
  cgroup: string | null;
  /** Kernel cgroup id (inode of the cgroup v2 directory). */
  cgroupId: number;
  /** Process start time in clock ticks since boot (as /proc/PID/stat field 22); with pid, the identity. */
  startTime: number;
}

export interface ConnectRecord extends RecordBase, ProcessFields, Partial<IdentityFields> {
  type: 'connect';
  /** Stable id of the socket: its kernel socket cookie, in decimal. */
  flow: string;
  proto: Proto;
  src: string;
  dst: string;
  provider: string | null;
  host: string | null;
  via: Via;
  /** null when the connection was established; an errno name (ECONNREFUSED, ETIMEDOUT, …) when it failed. */
  error: string | null;
}

export interface ClassifyRecord extends RecordBase {
  type: 'classify';
  flow: string;
  pid: number;
  provider: string | null;
  host: string | null;
  via: Via;
}

export interface TrafficRecord extends RecordBase {
  type: 'traffic';
  flow: string;
  pid: number;
  /** Bytes sent since the previous traffic record of this flow. */
  tx: number;
  /** Bytes received since the previous traffic record of this flow. */
  rx: number;
}

export interface CloseRecord extends RecordBase {
  type: 'close';
  flow: string;
  pid: number;
  /** Totals over the life of the flow, in bytes. */
  tx: number;
  rx: number;
  durationMs: number;
  /**
   * Present (true) when no hook saw the connection end: the census found its socket gone from
   * the kernel's TCP tables, up to three census periods (90 s) after it ended. `ts` and
   * `durationMs` are then when it was found; the byte totals are exact.
   */
  endUnseen?: true;
}

export interface PolicyRecord extends RecordBase {
  type: 'policy';
  pid: number;
  /** With pid, the process identity. */
  startTime?: number;
  comm?: string;
  uid?: number;
  action: 'block' | 'audit';
  /** `denied`: refused (block under --enforce); `would-deny`: let through (audit, or block without --enforce). */
  result: 'denied' | 'would-deny';
  /** `ip:port` of the refused or audited connect, or of the proxy a cut tunnel goes through; `*` when a process's open flows were cut. */
  dst: string;
  proto?: Proto;
  provider: string | null;
  /** The rule's name, `default`, or `busted-top` for a toggle. */
  rule: string;
  /** Open flows whose packets are now dropped (a process blocked while it had connections). */
  cut?: number;
}

/**
 * A process identity's details, published when they become known or change after its first
 * connect record (a hash finished, the cgroup path was resolved, …): the whole identity each time.
 */
export interface ProcessRecord extends RecordBase, IdentityFields {
  type: 'process';
  pid: number;
  startTime: number;
  exe: string | null;
  cgroup: string | null;
  /** Arguments joined by spaces, credentials redacted. */
  cmdline: string | null;
  /** Parent first, up to pid 1. */
  parents: ParentRef[];
}

/** A per-process verdict set (or cleared, `action: null`) from busted-top while busted runs. */
export interface VerdictRecord extends RecordBase {
  type: 'verdict';
  pid: number;
  startTime: number;
  action: 'block' | 'audit' | 'allow' | null;
  /** Who set it: `busted-top`. */
  source: string;
}

export interface KillRecord extends RecordBase {
  type: 'kill';
  pid: number;
  signal: string;
}

export interface LostRecord extends RecordBase {
  type: 'lost';
  /** Events the kernel could not deliver since the previous lost record. */
  count: number;
}

export type EventRecord =
  | SessionRecord
  | ConnectRecord
  | ProcessRecord
  | ClassifyRecord
  | TrafficRecord
  | CloseRecord
  | PolicyRecord
  | VerdictRecord
  | KillRecord
  | LostRecord;

export type RecordType = EventRecord['type'];

export const RECORD_TYPES: readonly RecordType[] = [
  'session', 'connect', 'process', 'classify', 'traffic', 'close', 'policy', 'verdict', 'kill', 'lost',
];
