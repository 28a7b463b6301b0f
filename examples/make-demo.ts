/**
 * Writes examples/demo.jsonl: a deterministic, made-up two-and-a-half-minute recording of a
 * workstation where a notebook, a chat service (in a Kubernetes pod), a coding agent and a few
 * one-off commands talk to several LLM providers (and one not-LLM host). Addresses are
 * documentation/example values; hashes are SHA-256 of made-up strings, not of real programs.
 * Each process's first connect carries its identity; a process record follows with its command
 * line and parents (and, for the agent, the hash of its large executable, computed meanwhile).
 *
 *   npx tsx examples/make-demo.ts [OUT] [--seconds N]
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { AgentRef, ConnectRecord, ContainerRef, EventRecord, ParentRef, PodRef, ProcessRecord, Via } from '../src/core/records.js';

const T0 = Date.parse('2026-01-15T09:30:00.000Z');
const HOST_IP = '10.0.2.15';

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Proc {
  pid: number; comm: string; uid: number; gid: number; exe: string; cgroup: string; startTime: number;
  /** Names from the host's /etc/passwd and /etc/group; null for an id it does not list. */
  user: string | null; group: string | null;
  cmdline: string;
  /** Parent first, up to pid 1. */
  parents: ParentRef[];
  agent?: AgentRef; container?: ContainerRef; pod?: PodRef;
  /** The executable was replaced on disk after the process started. */
  exeReplaced?: boolean;
  /** Its executable is big: the hash is not ready at the first connect and comes with the process record. */
  hashLater?: boolean;
}

/** A stable stand-in for a hash or an id: the SHA-256 of a made-up string. */
const made = (what: string): string => createHash('sha256').update(`busted demo: ${what}`).digest('hex');

const parent = (pid: number, comm: string, exe: string | null): ParentRef => ({ pid, comm, exe });
const SSHD = [parent(1187, 'sshd', '/usr/sbin/sshd'), parent(1, 'systemd', '/usr/lib/systemd/systemd')];
const ALICE_SHELL = [parent(53101, 'zsh', '/usr/bin/zsh'), parent(53088, 'sshd', '/usr/sbin/sshd'), ...SSHD];
const ALICE_SHELL_2 = [parent(59870, 'zsh', '/usr/bin/zsh'), parent(59861, 'sshd', '/usr/sbin/sshd'), ...SSHD];

const POD_UID = '7c2e9a41-5b3d-4f0e-9a61-2d8c4b7e1f35';
const CHATBOT_CONTAINER = made('chatbot container');
const CHATBOT_CGROUP = '/kubepods.slice/kubepods-burstable.slice/'
  + `kubepods-burstable-pod${POD_UID.replace(/-/g, '_')}.slice/cri-containerd-${CHATBOT_CONTAINER}.scope`;

interface Dest {
  dst: string; provider: string | null; host: string | null; via: Via;
}

interface Session {
  proc: Proc; dest: Dest;
  /** Seconds from the start. */
  start: number; end: number;
  /** A request every `every` seconds: `req` bytes up, `resp` bytes down over `stream` seconds. */
  every: number; req: [number, number]; resp: [number, number]; stream: number;
  error?: string;
  /** Provider learned after the connect (ClientHello seen a moment later). */
  lateClassify?: boolean;
}

const HOME = '/user.slice/user-1000.slice';
const ALICE = { uid: 1000, gid: 1000, user: 'alice', group: 'alice' };
const procs = {
  notebook: {
    pid: 48211, comm: 'python3', ...ALICE, exe: '/usr/bin/python3.12', cgroup: `${HOME}/session-4.scope`, startTime: 912_334,
    cmdline: '/usr/bin/python3.12 -m ipykernel_launcher -f /home/alice/.local/share/jupyter/runtime/kernel-5c1f.json',
    parents: [parent(47950, 'jupyter-lab', '/usr/bin/python3.12'), ...ALICE_SHELL],
  },
  chatbot: {
    pid: 51007, comm: 'node', uid: 10001, gid: 10001, user: null, group: null, exe: '/usr/local/bin/node',
    cgroup: CHATBOT_CGROUP, startTime: 701_002, cmdline: 'node /app/dist/server.js --port 8080',
    parents: [parent(3021, 'containerd-shim', '/usr/bin/containerd-shim-runc-v2'), parent(1, 'systemd', '/usr/lib/systemd/systemd')],
    container: { id: CHATBOT_CONTAINER, runtime: 'containerd' }, pod: { uid: POD_UID, qos: 'burstable' },
  },
  agent: {
    pid: 53390, comm: 'claude', ...ALICE, exe: '/home/alice/.local/share/claude/versions/2.0.14', cgroup: `${HOME}/session-4.scope`,
    startTime: 955_870, cmdline: 'claude --model opus --add-dir /home/alice/src/notes', parents: ALICE_SHELL,
    agent: { id: 'claude', label: 'Claude Code' }, hashLater: true,
  },
  gemini: {
    pid: 22310, comm: 'python3', uid: 1001, gid: 1001, user: 'bob', group: 'bob', exe: '/opt/conda/bin/python3.11',
    cgroup: '/user.slice/user-1001.slice/session-9.scope', startTime: 640_118,
    cmdline: '/opt/conda/bin/python3.11 summarize.py --model gemini-2.5-flash reports/',
    parents: [parent(22190, 'bash', '/usr/bin/bash'), parent(22180, 'sshd', '/usr/sbin/sshd'), ...SSHD], exeReplaced: true,
  },
  curlOllama: {
    pid: 60112, comm: 'curl', ...ALICE, exe: '/usr/bin/curl', cgroup: `${HOME}/session-4.scope`, startTime: 961_540,
    cmdline: 'curl -sN http://127.0.0.1:11434/api/chat -d @question.json', parents: ALICE_SHELL_2,
  },
  curlVllm: {
    pid: 60188, comm: 'curl', ...ALICE, exe: '/usr/bin/curl', cgroup: `${HOME}/session-4.scope`, startTime: 967_120,
    cmdline: 'curl -s http://127.0.0.1:8000/v1/models', parents: ALICE_SHELL_2,
  },
  git: {
    pid: 61001, comm: 'git', ...ALICE, exe: '/usr/lib/git-core/git-remote-https', cgroup: `${HOME}/session-4.scope`, startTime: 968_003,
    cmdline: 'git remote-https origin https://github.com/alice/notes.git',
    // pushed by the agent
    parents: [parent(61000, 'git', '/usr/bin/git'), parent(53390, 'claude', '/home/alice/.local/share/claude/versions/2.0.14'), ...ALICE_SHELL],
  },
} satisfies Record<string, Proc>;

/** The identity fields of a process; the hash only once it is computed. */
function identityOf(proc: Proc, hashed: boolean) {
  return {
    sha256: hashed ? made(`executable ${proc.exe}`) : null, exeReplaced: proc.exeReplaced ?? false,
    user: proc.user, group: proc.group, ppid: proc.parents[0]?.pid ?? null,
    container: proc.container ?? null, pod: proc.pod ?? null, agent: proc.agent ?? null,
  };
}

/** What the resolver publishes once it has read the rest (command line, parents, the hash). */
function processRecord(proc: Proc, ts: string): ProcessRecord {
  return {
    type: 'process', ts, pid: proc.pid, startTime: proc.startTime, exe: proc.exe, cgroup: proc.cgroup,
    cmdline: proc.cmdline, parents: proc.parents, ...identityOf(proc, true),
  };
}

const dests = {
  openai: { dst: '162.159.140.245:443', provider: 'openai', host: 'api.openai.com', via: 'sni' },
  anthropic: { dst: '160.79.104.10:443', provider: 'anthropic', host: 'api.anthropic.com', via: 'sni' },
  openrouter: { dst: '104.18.2.115:443', provider: 'openrouter', host: 'openrouter.ai', via: 'sni' },
  gemini: { dst: '[2a00:1450:4001:82b::200a]:443', provider: 'google', host: 'generativelanguage.googleapis.com', via: 'sni' },
  ollama: { dst: '127.0.0.1:11434', provider: 'ollama', host: null, via: 'port' },
  vllm: { dst: '127.0.0.1:8000', provider: 'vllm', host: null, via: 'port' },
  sentry: { dst: '34.120.195.249:443', provider: null, host: 'o4504.ingest.sentry.io', via: null },
  github: { dst: '140.82.121.3:443', provider: null, host: 'github.com', via: null },
} satisfies Record<string, Dest>;

function scenario(seconds: number): Session[] {
  const s: Session[] = [
    { proc: procs.agent, dest: dests.anthropic, start: 1, end: seconds, every: 6, req: [20_000, 90_000], resp: [8_000, 60_000], stream: 5 },
    { proc: procs.agent, dest: dests.sentry, start: 3, end: 40, every: 15, req: [1_500, 4_000], resp: [300, 600], stream: 1 },
    { proc: procs.chatbot, dest: dests.anthropic, start: 2, end: seconds, every: 9, req: [3_000, 12_000], resp: [10_000, 45_000], stream: 6 },
    { proc: procs.chatbot, dest: dests.openrouter, start: 30, end: 110, every: 20, req: [2_000, 6_000], resp: [15_000, 30_000], stream: 4 },
    { proc: procs.gemini, dest: dests.gemini, start: 12, end: seconds, every: 11, req: [4_000, 9_000], resp: [20_000, 80_000], stream: 5, lateClassify: true },
    { proc: procs.curlOllama, dest: dests.ollama, start: 40, end: 52, every: 30, req: [600, 900], resp: [30_000, 60_000], stream: 9 },
    { proc: procs.curlVllm, dest: dests.vllm, start: 96, end: 96, every: 99, req: [0, 0], resp: [0, 0], stream: 0, error: 'ECONNREFUSED' },
    { proc: procs.git, dest: dests.github, start: 70, end: 78, every: 99, req: [2_000, 3_000], resp: [400_000, 900_000], stream: 6 },
  ];
  // The notebook opens a fresh connection for each cell it runs.
  for (let t = 5; t < seconds - 10; t += 27) {
    s.push({ proc: procs.notebook, dest: dests.openai, start: t, end: Math.min(seconds, t + 18), every: 7, req: [2_000, 15_000], resp: [25_000, 220_000], stream: 7 });
  }
  return s;
}

export function makeDemo(seconds = 150, seed = 20260115): EventRecord[] {
  const rand = prng(seed);
  const between = ([lo, hi]: [number, number]) => Math.round(lo + rand() * (hi - lo));
  const iso = (sec: number, ms = 0) => new Date(T0 + sec * 1000 + ms).toISOString();
  const out: { at: number; seq: number; rec: EventRecord }[] = [];
  const emit = (at: number, rec: EventRecord) => out.push({ at, seq: out.length, rec });
  emit(0, { type: 'session', ts: iso(0), v: 1, host: 'demo-workstation', kernel: '6.8.0-45-generic', version: '0.1.0', enforce: false, source: 'live' });
  let cookie = 8193;
  const described = new Set<Proc>();
  for (const sess of scenario(seconds)) {
    const flow = String(cookie++);
    const { proc, dest } = sess;
    const connectMs = Math.floor(rand() * 900);
    const connect: ConnectRecord = {
      type: 'connect', ts: iso(sess.start, connectMs), flow, pid: proc.pid, tid: proc.pid, comm: proc.comm,
      uid: proc.uid, gid: proc.gid, exe: proc.exe, cgroup: proc.cgroup, cgroupId: 4000 + (proc.pid % 1000),
      startTime: proc.startTime, proto: 'tcp', src: `${dest.dst.startsWith('127.') ? '127.0.0.1' : HOST_IP}:${40000 + Math.floor(rand() * 20000)}`,
      dst: dest.dst, provider: sess.lateClassify ? null : dest.provider, host: sess.lateClassify ? null : dest.host,
      via: sess.lateClassify ? null : dest.via, error: sess.error ?? null, ...identityOf(proc, !proc.hashLater),
    };
    if (dest.dst.startsWith('[')) connect.src = `[fd00::15]:${connect.src.split(':')[1]}`;
    emit(sess.start * 1000 + connectMs, connect);
    if (!described.has(proc)) {
      described.add(proc);
      const at = sess.start * 1000 + connectMs + (proc.hashLater ? 1800 : 120);
      emit(at, processRecord(proc, new Date(T0 + at).toISOString()));
    }
    if (sess.error) continue;
    if (sess.lateClassify) {
      emit(sess.start * 1000 + connectMs + 40, { type: 'classify', ts: iso(sess.start, connectMs + 40), flow, pid: proc.pid, provider: dest.provider, host: dest.host, via: dest.via });
    }
    // Per-second deltas, as the engine reports them on each counter read.
    const perSecond = new Map<number, { tx: number; rx: number }>();
    const add = (sec: number, tx: number, rx: number) => {
      if (sec >= sess.end || sec >= seconds) return;
      const d = perSecond.get(sec) ?? { tx: 0, rx: 0 };
      d.tx += tx;
      d.rx += rx;
      perSecond.set(sec, d);
    };
    for (let t = sess.start + 1; t < sess.end; t += Math.max(1, Math.round(sess.every * (0.6 + rand() * 0.8)))) {
      add(t, between(sess.req), 0);
      const resp = between(sess.resp);
      const chunks = Math.max(1, sess.stream);
      for (let i = 0; i < chunks; i++) add(t + 1 + i, 40 + Math.floor(rand() * 60), Math.round(resp / chunks));
    }
    let tx = 0;
    let rx = 0;
    for (const sec of [...perSecond.keys()].sort((a, b) => a - b)) {
      const d = perSecond.get(sec)!;
      tx += d.tx;
      rx += d.rx;
      emit(sec * 1000, { type: 'traffic', ts: iso(sec), flow, pid: proc.pid, tx: d.tx, rx: d.rx });
    }
    if (sess.end < seconds) {
      const closeMs = sess.end * 1000 + 300;
      emit(closeMs, { type: 'close', ts: new Date(T0 + closeMs).toISOString(), flow, pid: proc.pid, tx, rx, durationMs: closeMs - (sess.start * 1000 + connectMs) });
    }
  }
  return out.sort((a, b) => a.at - b.at || a.seq - b.seq).map((e) => e.rec);
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${fs.realpathSync(process.argv[1])}`).href;
if (isMain) {
  const args = process.argv.slice(2);
  const secIdx = args.indexOf('--seconds');
  const seconds = secIdx >= 0 ? Number(args.splice(secIdx, 2)[1]) : 150;
  const outPath = args[0] ?? new URL('./demo.jsonl', import.meta.url).pathname;
  const lines = makeDemo(seconds).map((r) => JSON.stringify(r)).join('\n');
  fs.writeFileSync(outPath, `${lines}\n`);
  process.stderr.write(`wrote ${outPath}\n`);
}
