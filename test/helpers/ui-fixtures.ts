/**
 * Records and stores for UI tests: snapshots come from the real Store and FlowTable fed with
 * records at chosen times, so tests see exactly the shapes the UI gets at run time.
 */
import type { ConnectRecord, EventRecord, ProcessRecord, SessionRecord } from '../../src/core/records.js';
import { Store, type StoreSnapshot } from '../../src/core/store.js';
import type { UiConfig } from '../../src/ui/state.js';

export const T0 = Date.parse('2026-01-15T09:30:00.000Z');
export const iso = (ms: number): string => new Date(T0 + ms).toISOString();

export class ManualClock {
  constructor(public t = T0) {}
  now = (): number => this.t;
}

export const session = (ms = 0, over: Partial<SessionRecord> = {}): SessionRecord => ({
  type: 'session', ts: iso(ms), v: 1, host: 'test-host', kernel: '6.8.0-test', version: '0.1.0', enforce: false, ...over,
});

export interface ProcSpec {
  pid: number;
  comm: string;
  uid?: number;
  startTime?: number;
  exe?: string | null;
}

export function connect(ms: number, flow: string, p: ProcSpec, over: Partial<ConnectRecord> = {}): ConnectRecord {
  return {
    type: 'connect', ts: iso(ms), flow, pid: p.pid, tid: p.pid, comm: p.comm, uid: p.uid ?? 1000, gid: p.uid ?? 1000,
    exe: p.exe === undefined ? `/usr/bin/${p.comm}` : p.exe, cgroup: '/user.slice', cgroupId: 1, startTime: p.startTime ?? 100,
    proto: 'tcp', src: '10.0.0.2:40000', dst: '192.0.2.10:443', provider: 'openai', host: 'api.openai.com', via: 'sni',
    error: null, ...over,
  };
}

/** A process record for `p` with no details known; `over` adds them. */
export function processRecord(ms: number, p: ProcSpec, over: Partial<ProcessRecord> = {}): ProcessRecord {
  return {
    type: 'process', ts: iso(ms), pid: p.pid, startTime: p.startTime ?? 100,
    exe: p.exe === undefined ? `/usr/bin/${p.comm}` : p.exe, cgroup: '/user.slice', cmdline: null, parents: [],
    sha256: null, exeReplaced: false, user: null, group: null, ppid: null, container: null, pod: null, agent: null,
    ...over,
  };
}

export const traffic = (ms: number, flow: string, pid: number, tx: number, rx: number): EventRecord =>
  ({ type: 'traffic', ts: iso(ms), flow, pid, tx, rx });

export const close = (ms: number, flow: string, pid: number, tx: number, rx: number, durationMs = 1000): EventRecord =>
  ({ type: 'close', ts: iso(ms), flow, pid, tx, rx, durationMs });

/** Publishes each record at its own time (ms after T0) and ticks at `at`. */
export function snapshotOf(records: readonly EventRecord[], at?: number, store?: Store, clock?: ManualClock): StoreSnapshot {
  const c = clock ?? new ManualClock();
  const s = store ?? new Store(c);
  for (const r of records) {
    c.t = Date.parse(r.ts);
    s.publish(r);
  }
  c.t = T0 + (at ?? Math.max(0, ...records.map((r) => Date.parse(r.ts) - T0)));
  return s.tick();
}

export const PY = { pid: 4211, comm: 'python3', uid: 1000, startTime: 500 };
export const NODE = { pid: 5120, comm: 'node', uid: 1001, startTime: 600 };
export const CURL = { pid: 6001, comm: 'curl', uid: 0, startTime: 700 };

/** Three processes: python3 (openai, most rx), node (anthropic), curl (ollama, the most tx). */
export function threeProcesses(): EventRecord[] {
  return [
    session(0),
    connect(100, '1', PY),
    connect(200, '2', NODE, { provider: 'anthropic', host: 'api.anthropic.com', dst: '192.0.2.20:443' }),
    connect(300, '3', CURL, { provider: 'ollama', host: null, via: 'port', dst: '127.0.0.1:11434' }),
    traffic(1000, '1', PY.pid, 1000, 50_000),
    traffic(1000, '2', NODE.pid, 2000, 20_000),
    traffic(1000, '3', CURL.pid, 90_000, 1000),
  ];
}

/** A coding agent in a pod, with everything the resolver can say about it. */
export const AGENT = { pid: 7300, comm: 'claude', uid: 1002, startTime: 800, exe: '/opt/claude/versions/2.0.14' };
export const AGENT_SHA = '9f2c4e1a7b3d5f60a8c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5';
export const AGENT_CONTAINER = 'c0ffee'.padEnd(64, '0');
export const AGENT_POD = '7c2e9a41-5b3d-4f0e-9a61-2d8c4b7e1f35';

/** The agent's connect (identity as known then: no hash yet), then a process record with the rest. */
export function agentRecords(): EventRecord[] {
  const cgroup = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${AGENT_POD.replace(/-/g, '_')}.slice/cri-containerd-${AGENT_CONTAINER}.scope`;
  const who = {
    user: 'carol', group: 'devs', ppid: 7290, agent: { id: 'claude', label: 'Claude Code' },
    container: { id: AGENT_CONTAINER, runtime: 'containerd' }, pod: { uid: AGENT_POD, qos: 'burstable' },
  };
  return [
    connect(400, '7', AGENT, { provider: 'anthropic', host: 'api.anthropic.com', dst: '192.0.2.30:443', cgroup, ...who }),
    processRecord(900, AGENT, {
      ...who, cgroup, sha256: AGENT_SHA, exeReplaced: true,
      cmdline: 'claude --model opus --permission-mode acceptEdits -p "fix the failing test in src/parser.ts and commit"',
      parents: [
        { pid: 7290, comm: 'bash', exe: '/usr/bin/bash' }, { pid: 7201, comm: 'containerd-shim', exe: '/usr/bin/containerd-shim-runc-v2' },
        { pid: 1, comm: 'systemd', exe: '/usr/lib/systemd/systemd' },
      ],
    }),
    traffic(1000, '7', AGENT.pid, 3000, 9000),
  ];
}

export const names: Record<number, string> = { 0: 'root', 1000: 'alice', 1001: 'bob' };
export const userName = (uid: number): string => names[uid] ?? String(uid);

export const config = (over: Partial<UiConfig> = {}): UiConfig => ({ selfPid: 999_999, tombstoneMs: 5000, userName, ...over });
