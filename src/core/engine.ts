/**
 * The live source: attaches the kernel probe and turns what it reports into event records on
 * the store. Lifecycle records come from the ring buffer (drained every `pollMs`); byte deltas
 * come from one batched read of the kernel counters every `intervalMs`. Nothing per-packet
 * reaches JavaScript.
 */
import { hostname, release } from 'node:os';
import { CENSUS_NETNS_MAX, END_UNSEEN, IPPROTO_TCP, IPPROTO_UDP, Kind, MODEL_PORTS, flowId, OVERFLOW_MAX, PayloadWhat, type ConnectEvent, type Cookie, type KernelEvent, type PayloadSample } from '../bpf/abi.js';
import { errnoName } from '../bpf/libbpf.js';
import { checkBtf, checkPrivileges, findCgroup2Mount } from '../bpf/preflight.js';
import { KernelProbe, type ProbeOptions } from '../bpf/probe.js';
import { libc } from '../bpf/libbpf.js';
import { loadCatalog, type Catalog } from './catalog.js';
import { ClassificationStage } from './classify-stage.js';
import { Classifier } from './classifier.js';
import { loadAgents, type AgentCatalog } from './agents.js';
import { IdentityResolver, nsToTicks, type Identity } from './identity.js';
import { ListenerFinder } from './listeners.js';
import { startKubePods } from './kube.js';
import { Enforcement, runningExecutables, type VerdictAction } from './enforcement.js';
import { loadPolicy } from './policy.js';
import { QuietCollector } from './memory.js';
import { settled } from './settled.js';
import { compilePolicy, type CompiledPolicy } from './policy-compile.js';
import { ancestorsFromIds, decide } from './policy-match.js';
import { statSync } from 'node:fs';
import { ChurnMap } from './churn-map.js';
import { IdleSweep } from './idle.js';
import { SCHEMA_VERSION, type CloseRecord, type ConnectRecord, type EventRecord, type SessionRecord } from './records.js';
import { turnClock, type Store } from './store.js';
import { VERSION } from './version.js';
import type { KernelStats } from './kernel-stats.js';

/** Ids (directory inodes) of a cgroup path's ancestors, root first, itself last. */
function cgroupAncestorIds(mount: string | null, path: string | null): bigint[] {
  if (!mount || !path) return [];
  const ids: bigint[] = [];
  let dir = mount;
  try {
    ids.push(statSync(dir, { bigint: true }).ino);
    for (const seg of path.split('/').filter(Boolean)) {
      dir = `${dir}/${seg}`;
      ids.push(statSync(dir, { bigint: true }).ino);
    }
  } catch {
    /* the cgroup went away: judge by what was found */
  }
  return ids;
}

/** Ring-buffer records handled per turn of the event loop. */
const DRAIN_BUDGET = 2048;
/** ...and for at most this long, so a starved busted still runs its chores (lost counts) on time. */
const DRAIN_MS = 20;
/**
 * The wait between ring reads while records come, at most. Each read has a cost of its own
 * besides its records' (waking up, the timers, caches the load has taken over in between): at
 * 10k connections/s, busted --all took 11 % of a core reading every 10 ms, 8 % every 50 ms
 * (bench/README.md, session 9) and a tenth less again every 100 ms (session 12; 200 ms saved no
 * more). The 4 MiB ring holds ~27k records: 100 ms of 270k a second, so the wait shortens while
 * the ring fills faster (nextBusyPoll).
 */
const BUSY_POLL_MS = 100;
/** The shortest wait between ring reads while records come. */
const MIN_BUSY_POLL_MS = 10;
/** The share of the ring that came between two reads above which the wait halves... */
const FILL_HIGH = 1 / 4;
/** ...and below which it doubles again, up to BUSY_POLL_MS. */
const FILL_LOW = 1 / 16;

/**
 * The next wait between ring reads while records come, from the last one and the share of the
 * ring that the records read since then took up: a quarter of the ring, at most, fills between
 * two reads while records come at up to ~670k a second (10 ms reads). At 10k connections/s,
 * --all's 20k records a second fill 7 % of it in 100 ms.
 */
export function nextBusyPoll(waitMs: number, fill: number): number {
  if (fill > FILL_HIGH) return Math.max(MIN_BUSY_POLL_MS, waitMs / 2);
  if (fill < FILL_LOW) return Math.min(BUSY_POLL_MS, waitMs * 2);
  return waitMs;
}
/** ...while sha256 rules need each exec hashed before the new process's first connect. */
const EXEC_POLL_MS = 10;
/** The longest wait between ring reads while nothing comes. */
const IDLE_POLL_MS = 100;
/**
 * How often the kernel's lost and untracked counts are read: a `lost` record then follows the
 * loss within a quarter of a second (every 50 ms, the two lookups were 2-3 % of busted's CPU at
 * 10k connections/s).
 */
const STATS_MS = 250;
/** A connection that has moved no byte for this long is announced by the kernel's iterator (core/idle.ts). */
const IDLE_MIN_AGE_MS = 1000;
/**
 * The iterator announces the unannounced connections at least this old: the idle ones, not one
 * about to send its first byte (which would announce it anyway; announced either way, only once).
 */
const IDLE_ITER_MIN_AGE_NS = 500_000_000n;
/** Owners looked up for one run of the iterator (a map lookup each: which network namespaces to look in). */
const IDLE_OWNER_LOOKUPS = 1024;
/**
 * How often the census runs (KernelProbe.census, bpf/busted.h): a tracked TCP connection whose
 * end no hook saw (the kernel showed none, about once in tens of millions here: bench/README.md)
 * is closed, marked endUnseen, two to three periods after it ended (or at busted's stop, which
 * takes two censuses), and its slot freed. One walk
 * over the TCP sockets of each owner's network namespace and one over the counter slots: a few
 * milliseconds. BUSTED_CENSUS_MS sets another period (tests).
 */
const CENSUS_MS = 30_000;
/** At a block, how long busted reads the ring for the connections the iterator announced (they come after what waits there). */
const TAKE_IN_MS = 200;
/** At stop, how long busted keeps reading records a busy machine keeps producing. */
const STOP_DRAIN_MS = 2000;
/** How long the start waits for the scan of $PATH's executables (it goes on past that in the background). */
const SEED_WAIT_MS = 2000;

export interface EngineOptions {
  /** The provider catalog (built-in plus --providers); default: the built-in one. */
  catalog?: Catalog;
  /** Agent catalog (built-in plus --agents); default: the built-in one. */
  agents?: AgentCatalog;
  /** --policy FILE: rules compiled into the kernel (refused whole, before anything is attached, when bad). */
  policyFile?: string | null;
  /** How long a TCP connect waits for its ClientHello before it is published (default 250 ms). */
  holdMs?: number;
  all: boolean;
  /**
   * LLM flows only: flows with no provider are not published at all, only counted
   * (Store.noteQuiet). For headless busted without --all, whose sinks show LLM flows only.
   */
  quiet?: boolean;
  /** Counter read and snapshot interval. */
  intervalMs: number;
  verbose: boolean;
  /** Ring-buffer drain interval while records come (default: 100 ms, shorter while the ring fills fast; 10 ms with sha256 rules). */
  pollMs?: number;
  enforce?: boolean;
  /** cgroup v2 directory for the cgroup programs; default: the cgroup v2 root from /proc/mounts. */
  cgroupPath?: string | null;
  /** Called with problems that do not stop the engine (e.g. an unreadable record). */
  onWarning?: (message: string) => void;
  /**
   * True while an output cannot keep up (a slow pipe reader): the ring buffer is not read, so
   * memory stays bounded and what the kernel then cannot deliver is counted as `lost`.
   */
  backedUp?: () => boolean;
  /**
   * Benches and tests of the user-space pipeline: a stand-in for the kernel probe, called where
   * KernelProbe.start would be (privileges and kernel BTF are then not checked).
   */
  startProbe?: (opts: ProbeOptions) => Probe;
}

/** What the engine uses of the kernel probe. */
export type Probe = Pick<KernelProbe, 'counters' | 'enforcer' | 'execPath' | 'poll' | 'kernelStats' | 'lost' | 'untracked' | 'quiet' | 'dnsApplied' | 'announcesIdle' | 'announceIdle' | 'ownerOf' | 'census' | 'unseen' | 'unseenByState' | 'close'>;

export interface Engine {
  session: SessionRecord;
  /** Re-reads --policy FILE (SIGHUP); a bad file keeps the policy in force and throws PolicyError. */
  reloadPolicy(): string[];
  stop(): Promise<void>;
  /** busted-top's b/a keys: a verdict for one process identity while busted runs (null clears it). */
  setVerdict(pid: number, startTime: number, action: VerdictAction | null): void;
  /** The verdict set for a process identity, if any. */
  verdictOf(pid: number, startTime: number): VerdictAction | null;
  /** Whether verdicts can be enforced here (the cgroup programs are attached). */
  canEnforce: boolean;
  /** Kernel numbers for the metrics: lost events, map fill levels (recounted at most once a second), ring-buffer use. */
  kernelStats(): KernelStats;
}

interface LiveFlow {
  pid: number;
  proc: string;
  tx: bigint;
  rx: bigint;
}

/** Converts kernel monotonic nanoseconds to ISO wall-clock time. */
export class WallClock {
  /** Wall-clock time minus monotonic time, as whole milliseconds and the nanoseconds left over. */
  private readonly offsetMs: number;
  private readonly offsetRestNs: number;

  constructor() {
    const offsetNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
    const ms = offsetNs / 1_000_000n;
    this.offsetMs = Number(ms);
    this.offsetRestNs = Number(offsetNs - ms * 1_000_000n);
  }

  /** The monotonic range [lo, hi) of the last string's millisecond. */
  private lo = 0;
  private hi = 0;
  private lastIso = '';

  /**
   * Records come in bursts from the same millisecond: the string is made once per millisecond,
   * and a time within it is told by two comparisons. Times are numbers: exact to the nanosecond
   * for 104 days after boot (2^53 ns), to a few nanoseconds after that.
   */
  iso(monoNs: number | bigint): string {
    const ns = typeof monoNs === 'number' ? monoNs : Number(monoNs);
    if (ns >= this.lo && ns < this.hi) return this.lastIso;
    // an integer below 2^53 over 1e6, rounded, never crosses an integer: floor is exact
    const ms = Math.floor((ns + this.offsetRestNs) / 1e6);
    this.lo = ms * 1e6 - this.offsetRestNs;
    this.hi = this.lo + 1e6;
    this.lastIso = new Date(ms + this.offsetMs).toISOString();
    return this.lastIso;
  }
}

/** The identity fields a connect record carries. */
function identityFields(who: Identity) {
  return {
    sha256: who.sha256, exeReplaced: who.exeReplaced, user: who.user, group: who.group, ppid: who.ppid,
    container: who.container, pod: who.pod, agent: who.agent,
  };
}

/** The fields of a process record. */
function processFields(who: Identity) {
  return {
    startTime: who.startTime, exe: who.exe, cgroup: who.cgroup, cmdline: who.cmdline, parents: who.parents,
    ...identityFields(who),
  };
}

export async function startEngine(store: Store, opts: EngineOptions): Promise<Engine> {
  if (!opts.startProbe) {
    checkPrivileges();
    checkBtf();
  }
  const catalog = opts.catalog ?? loadCatalog(); // before anything is attached: a bad file attaches nothing
  const providerIds = new Set(catalog.providers().map((p) => p.id));
  const compile = (): CompiledPolicy | null =>
    opts.policyFile ? compilePolicy(loadPolicy(opts.policyFile, providerIds), { catalog, cgroupRoot: findCgroup2Mount() }) : null;
  let policy = compile();
  const clock = new WallClock();
  const pods = startKubePods(opts.onWarning); // pod namespaces and names, when running in a cluster
  const identities = new IdentityResolver({ agents: opts.agents ?? loadAgents(), pods });
  /**
   * Identities whose details changed since their last record: a process record each, once the
   * table knows them. The identity is kept here: the resolver forgets a process when it exits,
   * and what it learns after that (the hash of a process that was quick) is still told.
   */
  const changed = new Map<string, { since: number; who: Identity }>();
  /** Identities that have had their first process record. */
  const described = new Set<string>();
  identities.onChange((key, who) => {
    const was = changed.get(key);
    if (was) was.who = who;
    else changed.set(key, { since: Date.now(), who });
  });
  /** Open flows whose counters are read, by flow id (the socket cookie in decimal). */
  const live = new ChurnMap<string, LiveFlow>();
  /** After a burst of records, one full GC gives the memory back. */
  const quiet = new QuietCollector({ trim: () => void libc().malloc_trim(0) });
  /**
   * Monotonic ns when the last reloaded policy had been applied and open flows judged by it (0:
   * no reload yet). A connection started before it and announced after it (it was still
   * connecting) was let through by the kernel under the old policy: it is judged when it arrives.
   */
  let policyReloadedNs = 0;
  /** Such connections, from their connect record until finalize (bounded: quiet ones never get there). */
  const connectedBeforeReload = new Set<string>();
  /** Kernel facts per process identity, for judging open flows when a reloaded policy blocks them. */
  const factsByKey = new Map<string, { uid: number; comm: string; exeDev: number; exeIno: bigint }>();
  const publish = (rec: EventRecord) => store.publish(rec);
  let badRecords = 0;

  const cgroupPath = opts.cgroupPath !== undefined ? opts.cgroupPath : findCgroup2Mount();
  let stage!: ClassificationStage; // made once the probe says whether payload samples come

  /** The process of the last connect: its identity key, made once. */
  let lastOwner: { tgid: number; startNs: bigint; startTime: number; key: string } | null = null;
  /** `unseen`: the census found it gone (no hook saw its end). */
  const closed = (flow: string, ev: { cookie: Cookie; tsNs: number; connectNs: number; tx: number; rx: number }, pid: number, unseen = false) => {
    // a held connect goes out before its close; a quiet flow's close stays back with it
    if (connectedBeforeReload.size > 0) connectedBeforeReload.delete(flow); // closed unannounced, or kept back
    if (!stage.forget(flow)) return;
    const lf = live.get(flow);
    live.delete(flow);
    // a close whose connect record was lost (ring buffer full) is still reported: then the
    // `lost` count is exactly the records missing
    if (lf) enforcement?.closed(lf.proc, ev.cookie);
    const rec: CloseRecord = {
      type: 'close', ts: clock.iso(ev.tsNs), flow, pid, tx: ev.tx, rx: ev.rx,
      durationMs: Math.round((ev.tsNs - ev.connectNs) / 1e3) / 1e3,
    };
    if (unseen) rec.endUnseen = true; // the census found it gone: it ended before ts, unseen
    publish(rec);
  };
  const onEvent = (ev: KernelEvent) => {
    const flow = flowId(ev.cookie);
    if (ev.kind === Kind.CLOSE) {
      closed(flow, ev, ev.pid, ev.unseen);
      return;
    }
    // a failure of a flow that is open here ends it: the kernel sends a CLOSE then, but a record
    // of an older kernel object (or a race it missed) must not make a second connect record,
    // which would leave the flow open for good
    if (ev.kind === Kind.FAIL && stage.isOpen(flow)) {
      closed(flow, ev, ev.owner.tgid);
      return;
    }
    connected(flow, ev);
    // busted --all: a connection the kernel kept back until it closed (one record): its close now
    if (ev.kind === Kind.BRIEF) closed(flow, ev, ev.owner.tgid, ev.error === END_UNSEEN);
  };
  /** A CONNECT, FAIL or BRIEF record: the flow's connect record, to classify and publish. */
  const connected = (flow: string, ev: ConnectEvent) => {
    // a connection's record carries its connect()'s time, whenever it was announced (its first
    // byte, the idle iterator a second later, or its close: a brief's own time is its close's); a
    // failed one's, the failure's
    const ts = clock.iso(ev.kind === Kind.FAIL ? ev.tsNs : ev.connectNs);
    if (ev.connectNs < policyReloadedNs && ev.kind === Kind.CONNECT) {
      if (connectedBeforeReload.size >= 4096) connectedBeforeReload.clear();
      connectedBeforeReload.add(flow);
    }
    const o = ev.owner;
    // a burst of connects comes from one process: its key is not made again for each
    let last = lastOwner;
    if (last === null || last.tgid !== o.tgid || last.startNs !== o.startNs) {
      const ticks = nsToTicks(o.startNs);
      last = lastOwner = { tgid: o.tgid, startNs: o.startNs, startTime: ticks, key: `${o.tgid}:${ticks}` }; // == identityKey(pid, startTime)
    }
    const startTime = last.startTime;
    const factsKey = last.key;
    const knownFacts = factsByKey.get(factsKey);
    if (!knownFacts) {
      if (factsByKey.size >= 16384) factsByKey.delete(factsByKey.keys().next().value!);
      factsByKey.set(factsKey, { uid: o.uid, comm: o.comm, exeDev: o.exeDev, exeIno: o.exeIno });
    } else if (knownFacts.exeIno !== o.exeIno || knownFacts.exeDev !== o.exeDev || knownFacts.uid !== o.uid || knownFacts.comm !== o.comm) {
      // exec, setuid or a new name keep the pid and start time: a reload judges open flows by the newest facts
      factsByKey.set(factsKey, { uid: o.uid, comm: o.comm, exeDev: o.exeDev, exeIno: o.exeIno });
    }
    // the kernel's exec path (two copies of its slot, a syscall each) only matters to an identity the resolver
    // does not know yet, or one that exec'd since: not to every connection of a known process
    const needPath = knownFacts === undefined || knownFacts.exeIno !== o.exeIno || identities.get(factsKey) === null;
    const who = (!needPath && identities.known(factsKey, o.exeIno)) || identities.lookup({
      pid: o.tgid, startTime, exeDev: o.exeDev, exeIno: o.exeIno, uid: o.uid, gid: o.gid, cgroupId: o.cgroupId,
      comm: o.comm, ppid: o.ppid || null, execPath: needPath ? probe.execPath(o.tgid, o.startNs) : null,
    });
    // one literal (a spread of identityFields made a second object per connection)
    const rec: ConnectRecord = {
      type: 'connect', ts, flow, pid: o.tgid, tid: ev.tid, comm: o.comm, uid: o.uid, gid: o.gid, exe: who.exe, cgroup: who.cgroup,
      sha256: who.sha256, exeReplaced: who.exeReplaced, user: who.user, group: who.group, ppid: who.ppid,
      container: who.container, pod: who.pod, agent: who.agent,
      cgroupId: Number(o.cgroupId), startTime, proto: ev.proto === IPPROTO_UDP ? 'udp' : 'tcp',
      src: ev.src, dst: ev.dst,
      provider: null, host: null, via: null,
      error: ev.kind === Kind.FAIL ? (ev.error > 0 ? errnoName(ev.error) : 'ECONNABORTED') : null,
    };
    stage.connect(rec);
  };

  /** Quiet mode in the kernel: the newest DNS answer handled (its addresses learned), to tell it. */
  let dnsHandledNs = 0n;
  let dnsToldNs = 0n;
  const onPayload = (sample: PayloadSample) => {
    if (sample.what === PayloadWhat.TLS) stage.tls(sample.cookie.toString(), sample.offset, sample.data);
    else if (sample.proto === IPPROTO_TCP || sample.proto === IPPROTO_UDP) {
      stage.dns(sample.data, sample.proto === IPPROTO_TCP ? 'tcp' : 'udp');
      if (sample.tsNs > dnsHandledNs) dnsHandledNs = sample.tsNs;
    }
  };

  if (cgroupPath === null) {
    opts.onWarning?.('cgroup v2 is not mounted: UDP flows are not seen and nothing can be enforced (mount -t cgroup2 none /sys/fs/cgroup).');
  }
  let enforcement: Enforcement | null = null;
  // the kernel judges connections, when it can: it needs the LLM address maps (filled with the
  // cgroup programs, by Enforcement) and the model server ports to fit its table. Those it can
  // tell are not LLM traffic it keeps back: in quiet mode they are counted; with --all they are
  // reported late (at their close in one record, or by the idle iterator once a second old)
  const modelPorts = [...new Set(catalog.entries.flatMap((e) => e.local?.ports ?? []))];
  const kernelQuiet = (cg: string | null) => (cg !== null && modelPorts.length <= MODEL_PORTS ? { modelPorts, late: !opts.quiet } : null);
  if (opts.quiet && modelPorts.length > MODEL_PORTS) {
    opts.onWarning?.(`the catalog names ${modelPorts.length} local model server ports, more than the kernel's table holds (${MODEL_PORTS}): every connection is read to judge it, which costs more CPU.`);
  }
  const startProbe = (cg: string | null) =>
    (opts.startProbe ?? KernelProbe.start)({
      selfTgid: process.pid, cgroupPath: cg, quiet: kernelQuiet(cg), onEvent, onPayload, onBadRecord: () => badRecords++,
      onWarning: (m) => opts.onWarning?.(m),
      onPolicy: (d) => enforcement?.decision(d),
      onExec: (x) => void hashExec(x.tgid, x.exeDev, x.exeIno),
    });
  // paths of $PATH binaries, for processes gone before they are looked at: started before the
  // programs load, finished before the session starts (not while the first records come)
  const seeding = identities.seedExecutables().catch(() => 0);
  let probe: Probe;
  let cgroupOn = cgroupPath !== null;
  let kernelQuietOn = kernelQuiet(cgroupPath) !== null;
  try {
    probe = startProbe(cgroupPath);
  } catch (err) {
    if (cgroupPath === null) throw err;
    // an older kernel may refuse a cgroup hook: keep monitoring without them
    opts.onWarning?.(`the cgroup programs could not be attached (${(err as Error).message}); UDP flows are not seen and nothing can be enforced. Run busted doctor for details.`);
    probe = startProbe(null);
    cgroupOn = false;
    kernelQuietOn = false;
  }
  if (cgroupOn) {
    enforcement = new Enforcement({
      enforcer: probe.enforcer, catalog, publish, iso: (ns) => clock.iso(ns), enforce: opts.enforce ?? false,
      openLlmFlows: (key) => store.table.openFlowsOf(key, true).map((id) => BigInt(id)),
    });
  } else if (policy) {
    probe.close();
    throw new Error('--policy needs the cgroup programs, which could not be attached here: run busted doctor.');
  }
  /** Executables given sha256 rule bits in the kernel (hashed_exes), by `dev:ino`: a reload rewrites their bits. */
  const hashedNoted = new Map<string, { exe: { dev: number; ino: bigint }; sha256: string }>();
  const applyPolicy = (p: CompiledPolicy) => {
    enforcement!.applyPolicy(p.names, { rules: p.rules, defaultAction: p.defaultAction, hashExec: p.hashRules.size > 0 });
    // a kernel entry's bits name rules by their index in the policy it was written for: under the
    // new rules they would block an executable by whatever sha256 rule now has that index
    for (const [key, n] of hashedNoted) {
      const mask = p.hashRules.get(n.sha256) ?? 0n;
      enforcement!.setHashedExe(n.exe, mask);
      if (mask === 0n) hashedNoted.delete(key);
    }
    for (const w of p.warnings) opts.onWarning?.(`policy: ${w}`);
    if (p.hashRules.size > 0) void hashRunningExecutables(p);
  };
  /** sha256 rules: executables of running processes are hashed now; new ones as busted meets them. */
  const hashRunningExecutables = async (p: CompiledPolicy) => {
    for (const exe of await runningExecutables()) {
      const r = await identities.hasher.hash(exe.path, { ino: exe.ino });
      if (r.ok && policy === p) noteHash(exe.kdev, exe.ino, r.sha256);
    }
  };
  /** sha256 rules: a new executable is hashed as it is exec'd (once per inode: the hasher caches). */
  const hashExec = async (tgid: number, kdev: number, ino: bigint) => {
    if (!policy?.hashRules.size || ino === 0n) return;
    const r = await identities.hasher.hash(`/proc/${tgid}/exe`, { ino });
    if (r.ok) noteHash(kdev, ino, r.sha256);
  };
  const noteHash = (kdev: number, ino: bigint, sha256: string) => {
    const mask = policy?.hashRules.get(sha256);
    if (!mask || !enforcement) return;
    const exe = { dev: kdev, ino };
    enforcement.setHashedExe(exe, mask);
    hashedNoted.set(`${kdev}:${ino}`, { exe, sha256 });
  };
  identities.onChange((_key, who, facts) => {
    if (who.sha256 && policy?.hashRules.size) noteHash(facts.exeDev, facts.exeIno, who.sha256);
  });
  if (policy) applyPolicy(policy);
  stage = new ClassificationStage({
    onLearned: (ip, provider, ttlS) => enforcement?.destinations.learn(ip, provider, ttlS, Date.now()),
    classifier: new Classifier(catalog),
    publish,
    listeners: new ListenerFinder(),
    now: turnClock.now,
    holdMs: opts.holdMs,
    quiet: opts.quiet ?? false,
    onQuiet: (proto, failed) => store.noteQuiet(proto, failed),
    // a flow named only after its connect went out (a ClientHello or CONNECT request that came
    // after the hold): judged now as finalize would have judged it
    onLateClassified: (rec, cls) => {
      if (cls.provider === null) return;
      const key = `${rec.pid}:${rec.startTime}`;
      judgeNamed(key, enforcement?.toggleOf(key), { ...rec, ...cls }, false);
    },
    finalize: (rec) => {
      // the identity as known when the connect goes out; later changes become process records
      const l = lastOwner;
      const key = l !== null && l.tgid === rec.pid && l.startTime === rec.startTime ? l.key : `${rec.pid}:${rec.startTime}`;
      // its counters are read from now on (a held connect's deltas wait for it)
      const beforeReload = connectedBeforeReload.size > 0 && connectedBeforeReload.delete(rec.flow);
      if (rec.error === null) {
        live.set(rec.flow, { pid: rec.pid, proc: key, tx: 0n, rx: 0n });
        if (rec.provider !== null) {
          const toggle = enforcement?.toggleOf(key);
          // a tunnel's judgement follows its connect record
          if (!judgeNamed(key, toggle, rec, true) && toggle === null && beforeReload && policy) {
            cutIfBlocked(policy, key, [{ id: rec.flow, provider: rec.provider }]);
          }
        }
      }
      const who = identities.get(key);
      if (!who) return rec;
      if (!described.has(key)) {
        // one process record follows a process's first connect: cmdline and parents travel there
        if (described.size >= 65536) described.clear();
        described.add(key);
        changed.set(key, { since: Date.now(), who });
      } else {
        changed.delete(key);
      }
      // in place: the record is the classification stage's own, published once
      rec.exe = who.exe ?? rec.exe;
      rec.cgroup = who.cgroup ?? rec.cgroup;
      rec.sha256 = who.sha256;
      rec.exeReplaced = who.exeReplaced;
      rec.user = who.user;
      rec.group = who.group;
      rec.ppid = who.ppid;
      rec.container = who.container;
      rec.pod = who.pod;
      rec.agent = who.agent;
      return rec;
    },
  });
  const session: SessionRecord = {
    type: 'session', ts: new Date().toISOString(), v: SCHEMA_VERSION, host: hostname(), kernel: release(),
    version: VERSION, enforce: opts.enforce ?? false, source: 'live',
  };
  await settled(seeding, SEED_WAIT_MS); // a $PATH directory that does not answer delays the start this long at most
  publish(session);

  let lostSeen = 0n;
  let quietSeen = { closed: 0n, failed: 0n };
  let lastBad = 0;
  const publishChangedIdentities = () => {
    const now = Date.now();
    for (const [key, { since, who: told }] of changed) {
      const who = identities.get(key) ?? told;
      if (store.table.hasProcess(key)) {
        const [pid] = key.split(':').map(Number) as [number];
        publish({ type: 'process', ts: new Date(now).toISOString(), pid, ...processFields(who) });
        changed.delete(key);
      } else if (now - since > 10_000) {
        changed.delete(key); // its connect never reached the table (held, failed or filtered)
      }
    }
  };
  let lastChores = 0;
  let wasPaused = false;
  let untrackedSeen = 0n;
  let untrackedSaidAt = -Infinity;
  /** When the kernel's lost and untracked counts were last read (two map lookups, 30 µs or so). */
  let statsReadAt = -Infinity;
  let drainQueued = false;
  /** The last ring read found nothing. */
  let idle = false;
  /** The share of the ring read since the last timed read. */
  let filled = 0;
  const drain = () => {
    // a bounded batch per turn of the event loop: timers, I/O and sinks run in between
    const paused = opts.backedUp?.() ?? false;
    if (paused && !wasPaused) opts.onWarning?.('the output is not being read fast enough: kernel records wait in the ring buffer (and are counted as lost if it fills).');
    wasPaused = paused;
    const got = paused ? null : probe.poll(DRAIN_BUDGET, DRAIN_MS);
    if (dnsHandledNs > dnsToldNs && kernelQuietOn) {
      probe.dnsApplied(dnsHandledNs); // the answers' addresses are in the maps: the kernel may judge again
      dnsToldNs = dnsHandledNs;
    }
    idle = got !== null && got.handled === 0;
    if (got) filled += got.fill;
    if (got && got.handled > 0) quiet.record(got.handled, Date.now());
    if (got?.more && !drainQueued) {
      drainQueued = true;
      setImmediate(() => {
        drainQueued = false;
        guard(drain);
      });
    }
    const now = Date.now();
    if (now - lastChores < 50) return; // the rest needs no 10 ms cadence
    lastChores = now;
    stage.tick();
    publishChangedIdentities();
    quiet.check(now);
    if (now - statsReadAt < STATS_MS) return;
    statsReadAt = now;
    const lost = probe.lost();
    if (lost > lostSeen) {
      publish({ type: 'lost', ts: new Date().toISOString(), count: Number(lost - lostSeen) });
      lostSeen = lost;
    }
    const untracked = probe.untracked();
    if (untracked > untrackedSeen) {
      // said once per burst: the table has room again when the count stops growing
      if (now - untrackedSaidAt > 60_000) {
        opts.onWarning?.(`${untracked - untrackedSeen} connections were not tracked: the kernel had no room for them (their counter slots taken and the ${OVERFLOW_MAX} overflow entries full). They are counted in busted_kernel_untracked_connections_total.`);
        untrackedSaidAt = now;
      }
      untrackedSeen = untracked;
    }
    if (badRecords > lastBad) {
      opts.onWarning?.(`${badRecords - lastBad} ring-buffer records had an unknown layout and were skipped: rebuild bpf/busted.bpf.o.`);
      lastBad = badRecords;
    }
  };
  const idleSweep = new IdleSweep(IDLE_MIN_AGE_MS);
  /**
   * The processes that own the TCP sockets the last counter read found unannounced (those at
   * `which`, or all): a lookup each, at most IDLE_OWNER_LOOKUPS (a socket left out asks again).
   */
  const unannouncedOwners = (which?: readonly number[]): Set<number> => {
    const { unannounced, unannouncedAt } = probe.counters;
    const owners = new Set<number>();
    let looked = 0;
    for (const i of which ?? unannounced.keys()) {
      if (++looked > IDLE_OWNER_LOOKUPS) break;
      const tgid = probe.ownerOf(unannounced[i]!, unannouncedAt[i]!);
      if (tgid !== null) owners.add(tgid);
    }
    return owners;
  };
  const readCounters = () => {
    lastChores = 0;
    drain(); // connects first, so their counters have somewhere to go
    const ts = new Date().toISOString();
    probe.counters.readBatch((cookie, tx, rx) => {
      const flow = cookie.toString();
      const lf = live.get(flow);
      if (!lf || (tx === lf.tx && rx === lf.rx)) return;
      if (stage.isHeld(flow)) return; // its deltas wait for its connect record
      publish({ type: 'traffic', ts, flow, pid: lf.pid, tx: Number(tx - lf.tx), rx: Number(rx - lf.rx) });
      lf.tx = tx;
      lf.rx = rx;
    });
    // connections that have moved no byte for a second are announced by the kernel's iterator,
    // in the network namespaces of their owners (a container's own)
    const idle = probe.announcesIdle ? idleSweep.due(probe.counters.unannounced, Date.now()) : null;
    const owners = idle && unannouncedOwners(idle);
    // none: UDP sockets that have not sent, which the iterator does not see; its records are read
    // with the ring's next read
    if (owners && owners.size > 0) probe.announceIdle(IDLE_ITER_MIN_AGE_NS, owners);
    // connections the kernel kept back (quiet mode) are counts, not news: read with the counters
    if (kernelQuietOn && opts.quiet) {
      const q = probe.quiet();
      if (q.closed > quietSeen.closed) store.noteQuiet('tcp', false, Number(q.closed - quietSeen.closed));
      if (q.failed > quietSeen.failed) store.noteQuiet('tcp', true, Number(q.failed - quietSeen.failed));
      quietSeen = q;
    }
    markExited();
    store.advance();
  };
  let exitCheck = 0;
  const markExited = () => {
    if (++exitCheck % 3 !== 0) return;
    const now = Date.now();
    enforcement?.destinations.expire(now);
    for (const key of store.table.liveProcessKeys()) {
      const [pid, start] = key.split(':').map(Number) as [number, number];
      if (!identities.alive(pid, start)) {
        store.table.markExited(key, now);
        enforcement?.forget(key);
        identities.forget(key);
      }
    }
  };

  // Every 100 ms while records come (less while the ring fills fast: nextBusyPoll), every 10 ms
  // while sha256 rules need each exec to reach the hasher before a fresh process's first
  // connect. When nothing came, the wait doubles up to 100 ms (idle CPU: a timer wakeup costs
  // more than an empty ring read).
  let busyWait = BUSY_POLL_MS;
  const busyPollMs = () => opts.pollMs ?? ((policy?.hashRules.size ?? 0) > 0 ? EXEC_POLL_MS : busyWait);
  let pollDelay = busyPollMs();
  let pollTimer: ReturnType<typeof setTimeout> | null = null;
  const pollLoop = () => {
    guard(drain);
    busyWait = nextBusyPoll(busyWait, filled);
    filled = 0;
    const eager = !idle || (policy?.hashRules.size ?? 0) > 0;
    pollDelay = eager ? busyPollMs() : Math.min(pollDelay * 2, Math.max(IDLE_POLL_MS, busyPollMs()));
    if (!stopped) pollTimer = setTimeout(pollLoop, pollDelay);
  };
  pollTimer = setTimeout(pollLoop, pollDelay);
  const counterTimer = setInterval(() => guard(readCounters), opts.intervalMs);
  // the census: the network namespaces of the open flows' owners, each once (probe.census)
  let unreachableNamespaces = 0;
  let unreachableSaid = false;
  const takeCensus = () => {
    const pids = new Set<number>();
    for (const lf of live.values()) pids.add(lf.pid);
    const run = probe.census(pids);
    if (!run) return;
    unreachableNamespaces = run.unreachable;
    if (run.unreachable > 0 && !unreachableSaid) {
      unreachableSaid = true;
      opts.onWarning?.(`could not enter the network namespace of ${run.unreachable} process${run.unreachable === 1 ? '' : 'es'} with open flows `
        + `(a container's; entering one needs CAP_SYS_ADMIN, and at most ${CENSUS_NETNS_MAX} are walked): connections there that move no byte are reported only at their close, `
        + 'and ends the kernel did not show there are not found (busted_census_unreachable_namespaces counts them)');
    }
  };
  const censusMs = Number(process.env.BUSTED_CENSUS_MS) > 0 ? Number(process.env.BUSTED_CENSUS_MS) : CENSUS_MS;
  const censusTimer = setInterval(() => guard(takeCensus), censusMs);
  const guard = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      opts.onWarning?.(`reading the kernel failed: ${(err as Error).message}`);
    }
  };

  /**
   * Before a block is applied: every open connection is in the table, including the idle ones
   * (announced by the kernel's iterator now) and the connects held for their ClientHello.
   */
  const takeInOpenFlows = (pids: Iterable<number>) => {
    if (probe.announcesIdle) {
      guard(() => probe.announceIdle(0n, pids));
      guard(() => probe.poll(Infinity, TAKE_IN_MS));
    }
    stage.releaseAll();
  };

  /** The LLM flows of process `key` that policy `p` blocks are cut, as a `b` would cut them. */
  const providerIndex = new Map(catalog.providers().map((p) => [p.id, p.index]));
  /** What the rules match a process by: the kernel's facts and what user space resolved. */
  const subjectOf = (key: string) => {
    const facts = factsByKey.get(key);
    if (!facts) return null;
    const who = identities.get(key);
    return {
      ...facts, cgroupAncestors: ancestorsFromIds(cgroupAncestorIds(cgroupPath, who?.cgroup ?? null)),
      sha256: who?.sha256 ?? null, agent: who?.agent?.id ?? null,
    };
  };
  const cutIfBlocked = (p: CompiledPolicy, key: string, flows: { id: string; provider: string }[], replace = false) => {
    if (!enforcement || !opts.enforce || (flows.length === 0 && !replace)) return;
    const subject = subjectOf(key);
    if (!subject) return;
    let rule = '';
    const cookies = flows.filter((f) => {
      const idx = providerIndex.get(f.provider);
      if (idx === undefined) return false;
      const d = decide(p.resolved, subject, idx, { kernelOnly: true });
      if (d.action === 'block') rule = d.rule;
      return d.action === 'block';
    }).map((f) => BigInt(f.id));
    const [pid, start] = key.split(':').map(Number) as [number, number];
    enforcement.cutForRule(pid, start, cookies, rule, undefined, replace);
  };
  /**
   * An LLM flow named once its connect went out (when it is announced, or by a ClientHello or
   * CONNECT request that came after the hold): a process blocked from busted-top before has it
   * cut as its open ones were; a tunnel of a process without a verdict goes to the rules. Returns
   * whether it was judged; `defer` judges a tunnel after the record being published.
   */
  const judgeNamed = (key: string, toggle: VerdictAction | null | undefined, rec: ConnectRecord, defer: boolean): boolean => {
    if (toggle === 'block') {
      enforcement!.lateFlow(key, BigInt(rec.flow));
      return true;
    }
    if (toggle !== null || rec.via !== 'proxy' || !policy) return false;
    const p = policy;
    if (defer) queueMicrotask(() => judgeTunnel(p, key, rec));
    else judgeTunnel(p, key, rec);
    return true;
  };
  /**
   * An LLM flow through a proxy (classified by its CONNECT request's target): the kernel let its
   * connect through, since the proxy is no LLM address, so the rules judge it here as the kernel
   * judges a connect. A block under --enforce cuts it (its packets are dropped from now on); a
   * block without --enforce, or an audit, is a would-deny record.
   */
  const judgeTunnel = (p: CompiledPolicy, key: string, rec: ConnectRecord) => {
    const idx = rec.provider !== null ? providerIndex.get(rec.provider) : undefined;
    const subject = subjectOf(key);
    if (idx === undefined || !subject) return;
    const d = decide(p.resolved, subject, idx, { kernelOnly: true });
    if (d.action !== 'block' && d.action !== 'audit') return;
    const about = { comm: rec.comm, uid: rec.uid, dst: rec.dst, proto: rec.proto, provider: rec.provider };
    if (d.action === 'block' && opts.enforce && enforcement) {
      enforcement.cutForRule(rec.pid, rec.startTime, [BigInt(rec.flow)], d.rule, undefined, false, about);
      return;
    }
    publish({
      type: 'policy', ts: new Date().toISOString(), pid: rec.pid, startTime: rec.startTime,
      action: d.action, result: 'would-deny', ...about, rule: d.rule,
    });
  };
  /** After a reload: open LLM flows of processes the new policy blocks are cut. */
  const cutNewlyBlocked = (p: CompiledPolicy) => {
    if (!enforcement || !opts.enforce) return;
    for (const key of store.table.liveProcessKeys()) {
      // a busted-top verdict overrides rules: its flows are judged again if it is cleared
      cutIfBlocked(p, key, store.table.openLlmFlowsOf(key), true);
    }
  };

  let stopped = false;
  // read by state only once there is one (16 more lookups)
  const unseenStats = (): Pick<KernelStats, 'unseen' | 'unseenByState'> => {
    const unseen = Number(probe.unseen());
    if (unseen === 0) return { unseen };
    return { unseen, unseenByState: Object.fromEntries(Object.entries(probe.unseenByState()).map(([s, n]) => [s, Number(n)])) };
  };
  const needEnforcement = (): Enforcement => {
    if (!enforcement) throw new Error('Verdicts need the cgroup programs, which are not attached here: run busted doctor.');
    return enforcement;
  };
  return {
    session,
    reloadPolicy() {
      if (!opts.policyFile) return [];
      const next = compile()!; // throws PolicyError: the policy in force stays
      policy = next;
      applyPolicy(next);
      takeInOpenFlows(unannouncedOwners());
      cutNewlyBlocked(next);
      // connections still connecting now are judged when they are announced (finalize)
      policyReloadedNs = Number(process.hrtime.bigint());
      return next.warnings;
    },
    canEnforce: enforcement !== null,
    kernelStats: () => (stopped ? { lost: Number(lostSeen), maps: [] } : { lost: Number(probe.lost()), untracked: Number(probe.untracked()), ...unseenStats(), unreachableNamespaces, skippedSamples: stage.skippedSamples(), ...probe.kernelStats() }),
    setVerdict: (pid, startTime, action) => {
      const e = needEnforcement();
      if (action === 'block') takeInOpenFlows([pid]);
      e.setToggle(pid, startTime, action);
    },
    verdictOf: (pid, startTime) => enforcement?.toggleOf(`${pid}:${startTime}`) ?? null,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (pollTimer) clearTimeout(pollTimer);
      clearInterval(counterTimer);
      clearInterval(censusTimer);
      pods?.stop();
      // two censuses in a row: a connection that ended unseen since the last periodic one (up to
      // two periods ago) gets its CLOSE now, instead of going untold with busted's exit
      guard(() => {
        takeCensus();
        takeCensus();
      });
      // everything the kernel delivered before now is published: the ring is drained to the end
      // (bounded in time, in case a load keeps producing), held connects go out, then the last
      // counter deltas
      const deadline = Date.now() + STOP_DRAIN_MS;
      guard(() => {
        while (probe.poll(DRAIN_BUDGET).more && Date.now() < deadline);
        if (Date.now() >= deadline) {
          const left = probe.kernelStats().ringbufUsedBytes ?? 0;
          if (left > 0) opts.onWarning?.(`stopping: ${left} bytes of kernel records were still arriving after ${STOP_DRAIN_MS} ms and were not read.`);
        }
      });
      stage.releaseAll();
      guard(readCounters); // the last deltas and records before detaching
      probe.close();
    },
  };
}
