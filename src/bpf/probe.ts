/**
 * busted's kernel side as one unit: finds bpf/busted.bpf.o, configures, loads and attaches it,
 * and exposes the ring buffer, the counters and the stats. Used by the engine and by doctor.
 */
import { openSync, closeSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CENSUS_CFG, CENSUS_NETNS_MAX, CONFIG, TCP_STATES, TCP_STATE_NAMES, DnsSync, IPPROTO_TCP, MODEL_PORTS, QuietMode, OWNER, SOCK, decodeCString, decodeRecord, EXEC, EXEC_SLOTS, Kind, Stat, type KernelEvent, type PayloadSample, type PolicyDecision, type ExecEvent } from './abi.js';
import { PerCpuStats, TrafficCounters } from './counters.js';
import { BpfObject, type BpfMap } from './object.js';
import { RingBuffer } from './ringbuf.js';
import { BpfError, libbpf, strerror, type Ptr } from './libbpf.js';
import { Enforcer, type EnforcerMaps } from './enforcer.js';
import { COUNTED_MAPS, KernelStatsReader, type KernelFill } from './kstats.js';
import { inNetnsOf, netnsOf, ownNetns } from './netns.js';

export const OBJECT_PATH = process.env.BUSTED_BPF_OBJECT ?? fileURLToPath(new URL('../../bpf/busted.bpf.o', import.meta.url));

/** Every program in the object, with the hook its section names. */
export const PROGRAMS = [
  'busted_set_state', 'busted_send', 'busted_recv',
  'busted_egress', 'busted_ingress', 'busted_connect4', 'busted_connect6', 'busted_release',
  'busted_exec', 'busted_sendmsg4', 'busted_sendmsg6', 'busted_sk_error', 'busted_idle', 'busted_census',
] as const;

/**
 * The path process `tgid` (started at `startNs`, ns of boot time) last exec'd, from the `execs`
 * array (busted.h): null when its slot holds another process, or is being written. `scratch`
 * and `again` are EXEC.size buffers, `key` 4 bytes.
 */
export function readExecSlot(execs: BpfMap, tgid: number, startNs: bigint,
  key = Buffer.alloc(4), scratch = Buffer.alloc(EXEC.size), again = Buffer.alloc(EXEC.size)): string | null {
  key.writeUInt32LE(tgid & (EXEC_SLOTS - 1), 0);
  if (!execs.lookup(key, scratch)) return null;
  const seq = scratch.readBigUInt64LE(EXEC.seq);
  if (seq % 2n === 1n) return null; // an exec is writing it now
  if (scratch.readUInt32LE(EXEC.tgid) !== tgid || scratch.readBigUInt64LE(EXEC.start_ns) !== startNs) return null;
  // a copy is not atomic, and in no set byte order: a second copy must be the same, byte for byte
  // (a write during either shows as another seq or other bytes)
  if (!execs.lookup(key, again) || !again.equals(scratch)) return null;
  const path = decodeCString(scratch.subarray(EXEC.path));
  return path === '' ? null : path;
}

export const isCgroupSection = (section: string) => section.startsWith('cgroup');

/** The packet programs: they only drop the packets of cut flows, so they are attached only while one is. */
export const PACKET_PROGRAMS: readonly string[] = ['busted_egress', 'busted_ingress'];

/**
 * Every state change of every TCP socket (ten per loopback connection): attached only where the
 * cgroup programs are not, which otherwise see a connection's life in two runs (the connect hook
 * tracks it, its first send or receive announces it, sock_release or the error report ends it;
 * bpf/busted.bpf.c).
 */
export const STATE_PROGRAM = 'busted_set_state';

/**
 * The iterator that announces idle connections (tracked, established, no byte moved yet): run by
 * user space (KernelProbe.announceIdle), needed only where the state-change tracepoint is not
 * attached.
 */
export const IDLE_PROGRAM = 'busted_idle';

/**
 * The census iterator (busted.h): a second witness of a TCP connection's end, run by user space
 * now and then (KernelProbe.census); with the cgroup programs, as the idle iterator.
 */
export const CENSUS_PROGRAM = 'busted_census';

/** What one census did. */
export interface CensusRun {
  /** Network namespaces walked (busted's own included). */
  walked: number;
  /** Namespaces of owners that could not be entered: their sockets were not judged. */
  unreachable: number;
}

/** Whether busted attaches program `name` at start, with the cgroup programs or without them. */
export function attachedAtStart(name: string, section: string, withCgroup: boolean): boolean {
  if (PACKET_PROGRAMS.includes(name)) return false;
  if (isCgroupSection(section)) return withCgroup;
  if (name === STATE_PROGRAM) return !withCgroup;
  if (name === IDLE_PROGRAM || name === CENSUS_PROGRAM) return withCgroup;
  return true;
}

const isCgroupProgram = (obj: BpfObject, name: string) =>
  obj.programs().some((p) => p.name === name && isCgroupSection(p.section));

export interface ProbeOptions {
  /** Events of this process are not reported (busted's own sockets). */
  selfTgid?: number;
  /** cgroup v2 directory the cgroup programs attach to (the root, to see every socket); null: none. */
  cgroupPath: string | null;
  /** Connected UDP sockets to this port are flows (QUIC); 0 turns UDP tracking off. */
  udpPort?: number;
  /** ClientHello and DNS payload samples. */
  samplePayload?: boolean;
  /**
   * TCP connections the kernel can tell are not LLM traffic (no model server port, no LLM
   * address, no DNS answer pending, no TLS) are kept back: counted, not reported (quiet()), or
   * with `late` (busted --all) reported late: at their close in one record (Kind.BRIEF), or by
   * the idle iterator once a second old. Needs the cgroup programs and the LLM address maps
   * filled; at most MODEL_PORTS ports. null: every connection is announced at its first use.
   */
  quiet?: { modelPorts: number[]; late?: boolean } | null;
  onEvent: (ev: KernelEvent) => void;
  onPayload?: (sample: PayloadSample) => void;
  onPolicy?: (decision: PolicyDecision) => void;
  onExec?: (exec: ExecEvent) => void;
  /** Records whose kind the decoder does not know (ABI mismatch): counted, not fatal. */
  onBadRecord?: () => void;
  /** Something did not work but busted goes on (open flows could not be cut). */
  onWarning?: (message: string) => void;
}

/** The maps an Enforcer writes, from a loaded object. */
export function enforcerMaps(obj: BpfObject): EnforcerMaps {
  return {
    llmV4: obj.map('llm_v4'), llmV6: obj.map('llm_v6'), policy: obj.map('policy'), rules: obj.map('rules'),
    procVerdicts: obj.map('proc_verdicts'), hashedExes: obj.map('hashed_exes'), cutSocks: obj.map('cut_socks'),
  };
}

/** Writes the object's `cfg` (.rodata) from the options; before load(). */
export function configureObject(obj: BpfObject, opts: Pick<ProbeOptions, 'selfTgid' | 'udpPort' | 'samplePayload' | 'quiet'>): void {
  obj.setRodata((ro) => {
    ro.setUint32(CONFIG.self_tgid, opts.selfTgid ?? 0, true);
    ro.setUint16(CONFIG.udp_port, opts.udpPort ?? 443, true);
    ro.setUint8(CONFIG.sample_payload, opts.samplePayload === false ? 0 : 1);
    const quiet = opts.quiet ?? null;
    if (quiet && quiet.modelPorts.length > MODEL_PORTS) throw new Error(`quiet mode takes at most ${MODEL_PORTS} model server ports, not ${quiet.modelPorts.length}`);
    ro.setUint8(CONFIG.quiet, quiet === null ? QuietMode.OFF : quiet.late ? QuietMode.LATE : QuietMode.COUNT);
    for (const [i, port] of (quiet?.modelPorts ?? []).entries()) ro.setUint16(CONFIG.model_ports + 2 * i, port, true);
  });
}

export class KernelProbe {
  readonly counters: TrafficCounters;
  private readonly stats: PerCpuStats;
  private readonly execs: BpfMap;
  readonly enforcer: Enforcer;
  private readonly execKey = Buffer.alloc(4);
  private readonly execValue = Buffer.alloc(EXEC.size);
  private readonly execAgain = Buffer.alloc(EXEC.size);
  private readonly ring: RingBuffer;

  private packetLinks: Ptr[] = [];

  private constructor(
    private readonly obj: BpfObject,
    opts: ProbeOptions,
    private readonly idleLink: Ptr | null = null,
    private readonly censusLink: Ptr | null = null,
  ) {
    this.ring = new RingBuffer(obj.map('events'), (view, offset, length) => {
      const rec = decodeRecord(view, offset, length);
      if (rec === null) opts.onBadRecord?.();
      else if (rec.kind === Kind.PAYLOAD) opts.onPayload?.(rec);
      else if (rec.kind === Kind.POLICY) opts.onPolicy?.(rec);
      else if (rec.kind === Kind.EXEC) opts.onExec?.(rec);
      else opts.onEvent(rec);
    });
    obj.own(this.ring);
    this.counters = TrafficCounters.of(obj, opts.quiet?.late === true);
    this.stats = new PerCpuStats(obj.map('stats'));
    this.execs = obj.map('execs');
    this.enforcer = new Enforcer(enforcerMaps(obj), (cutting) => {
      try {
        this.setCutting(cutting, opts.cgroupPath);
      } catch (err) {
        opts.onWarning?.(`open flows of blocked processes cannot be cut: ${(err as Error).message}. New connections are still blocked.`);
      }
    });
  }

  /**
   * Attaches the packet programs (a flow is cut: its packets are dropped) or detaches them (none
   * is): no program runs per packet while nothing is cut. Throws when they cannot be attached,
   * leaving none attached.
   */
  private setCutting(cutting: boolean, cgroupPath: string | null): void {
    if (!cutting) {
      for (const link of this.packetLinks.splice(0)) this.obj.detach(link);
      return;
    }
    if (this.packetLinks.length > 0) return;
    if (cgroupPath === null) throw new Error('cgroup v2 is not mounted: open flows cannot be cut (mount -t cgroup2 none /sys/fs/cgroup)');
    const fd = openSync(cgroupPath, 'r');
    try {
      for (const prog of this.obj.programs()) {
        if (PACKET_PROGRAMS.includes(prog.name)) this.packetLinks.push(this.obj.attachCgroup(prog, fd));
      }
    } catch (err) {
      for (const link of this.packetLinks.splice(0)) this.obj.detach(link);
      throw err;
    } finally {
      closeSync(fd);
    }
  }

  /** Whether the packet programs are attached (a flow is being cut). */
  get cutting(): boolean {
    return this.packetLinks.length > 0;
  }

  /** The path process `tgid` (started at `startNs`) last exec'd, as the kernel saw it; null if unknown. */
  execPath(tgid: number, startNs: bigint): string | null {
    return readExecSlot(this.execs, tgid, startNs, this.execKey, this.execValue, this.execAgain);
  }

  /** Opens, loads and attaches everything; on any failure nothing stays loaded or attached. */
  static start(opts: ProbeOptions): KernelProbe {
    const obj = BpfObject.open(OBJECT_PATH);
    try {
      configureObject(obj, opts);
      if (opts.cgroupPath === null) obj.setAutoload((name) => !isCgroupProgram(obj, name) && name !== IDLE_PROGRAM && name !== CENSUS_PROGRAM);
      obj.load();
      let idleLink: Ptr | null = null;
      let censusLink: Ptr | null = null;
      const cgroupFd = opts.cgroupPath === null ? -1 : openSync(opts.cgroupPath, 'r');
      try {
        for (const prog of obj.programs()) {
          if (!attachedAtStart(prog.name, prog.section, cgroupFd >= 0)) continue;
          if (isCgroupSection(prog.section)) obj.attachCgroup(prog, cgroupFd);
          else if (prog.name === IDLE_PROGRAM) idleLink = obj.attach(prog);
          else if (prog.name === CENSUS_PROGRAM) censusLink = obj.attach(prog);
          else obj.attach(prog);
        }
      } finally {
        if (cgroupFd >= 0) closeSync(cgroupFd); // links keep their own reference to the cgroup
      }
      return new KernelProbe(obj, opts, idleLink, censusLink);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /**
   * Drains the ring buffer (non-blocking), at most `budget` records; `more` when some are left;
   * `fill`: the share of the ring the records read took up (0 to 1).
   */
  poll(budget = Infinity, maxMs = Infinity): { handled: number; more: boolean; fill: number } {
    const { handled, more, bytes } = this.ring.consume(budget, maxMs);
    return { handled, more, fill: bytes / this.ring.size };
  }

  private readonly idleKey = Buffer.alloc(4);
  private readonly idleValue = Buffer.alloc(8);
  private readonly idleOut = Buffer.alloc(64);

  /**
   * Whether announceIdle() does anything: with the cgroup programs a TCP connection is announced
   * at its first send or receive (or its close), and the iterator announces the idle ones.
   */
  get announcesIdle(): boolean {
    return this.idleLink !== null;
  }

  /**
   * Announces the tracked TCP connections that are established but have moved no byte, whose
   * connect() is at least `minAgeNs` old (the kernel's iterator over TCP sockets; their CONNECT
   * records come through the ring buffer as any). An iterator sees one network namespace: busted's
   * own, then that of each process in `pids` (a container's), once each. Synchronous: when it
   * returns, the records are in the ring. A no-op without the iterator.
   */
  announceIdle(minAgeNs: bigint, pids: Iterable<number> = []): void {
    if (this.idleLink === null) return;
    this.idleValue.writeBigUInt64LE(minAgeNs, 0);
    this.obj.map('idle_min_age').update(this.idleKey, this.idleValue);
    this.iterateIdle();
    const done = new Set<bigint>([ownNetns()]);
    for (const pid of pids) {
      const ns = netnsOf(pid);
      if (ns === null || done.has(ns)) continue;
      done.add(ns);
      inNetnsOf(pid, () => this.iterateIdle());
    }
  }

  /** One run of the idle iterator over the TCP sockets of this thread's network namespace. */
  private iterateIdle(): void {
    this.iterate(this.idleLink!, IDLE_PROGRAM);
  }

  /** Whether census() does anything (the cgroup programs are attached). */
  get takesCensus(): boolean {
    return this.censusLink !== null;
  }

  private censusGen = 0;
  /** Namespaces the last census marked as walked in `census_ns`. */
  private censusMarked = new Set<number>();
  private readonly censusKey = Buffer.alloc(4);
  private readonly censusValue = Buffer.alloc(CENSUS_CFG.size);
  private readonly censusNsKey = Buffer.alloc(4);
  private readonly censusNsValue = Buffer.alloc(4);

  /**
   * The census (busted.h): walks the TCP sockets of busted's own network namespace and of each
   * process in `pids` (the owners of open flows; a container's), then judges every counter slot:
   * a tracked TCP socket that two censuses in a row did not find, in a namespace both walked,
   * ended without any hook seeing it, and gets its CLOSE now (CloseEvent.unseen). Synchronous;
   * null without the cgroup programs (the state-change tracepoint sees every end then).
   */
  census(pids: Iterable<number> = []): CensusRun | null {
    if (this.censusLink === null) return null;
    const gen = ++this.censusGen;
    // CLOCK_MONOTONIC, as bpf_ktime_get_ns(): sockets tracked from now on are not judged
    this.writeCensusCfg(process.hrtime.bigint(), gen, 0);
    const own = Number(ownNetns());
    const walked = new Set<number>([own]);
    let unreachable = 0;
    for (const pid of pids) {
      const ns = netnsOf(pid);
      if (ns === null || walked.has(Number(ns))) continue;
      if (walked.size >= CENSUS_NETNS_MAX) {
        unreachable++;
        continue;
      }
      if (inNetnsOf(pid, () => this.iterate(this.censusLink!, CENSUS_PROGRAM))) {
        walked.add(Number(ns));
        this.markWalked(Number(ns), gen);
      } else {
        unreachable++;
      }
    }
    // its own namespace last: the end of that walk judges every slot
    this.markWalked(own, gen);
    const startNs = this.censusValue.readBigUInt64LE(CENSUS_CFG.start_ns);
    this.writeCensusCfg(startNs, gen, 1);
    try {
      this.iterate(this.censusLink, CENSUS_PROGRAM);
    } finally {
      this.writeCensusCfg(startNs, gen, 0);
    }
    // namespaces not walked this time are forgotten (the hash stays small)
    const map = this.obj.map('census_ns');
    for (const ns of this.censusMarked) {
      if (walked.has(ns)) continue;
      this.censusNsKey.writeUInt32LE(ns, 0);
      map.delete(this.censusNsKey);
    }
    this.censusMarked = walked;
    return { walked: walked.size, unreachable };
  }

  private writeCensusCfg(startNs: bigint, gen: number, finish: number): void {
    this.censusValue.writeBigUInt64LE(startNs, CENSUS_CFG.start_ns);
    this.censusValue.writeUInt32LE(gen, CENSUS_CFG.gen);
    this.censusValue.writeUInt32LE(finish, CENSUS_CFG.finish);
    this.censusKey.writeUInt32LE(0, 0);
    this.obj.map('census_cfg').update(this.censusKey, this.censusValue);
  }

  private markWalked(ns: number, gen: number): void {
    this.censusNsKey.writeUInt32LE(ns, 0);
    this.censusNsValue.writeUInt32LE(gen, 0);
    this.obj.map('census_ns').update(this.censusNsKey, this.censusNsValue);
  }

  /** One run of an iterator program over the TCP sockets of this thread's network namespace. */
  private iterate(link: Ptr, name: string): void {
    const lib = libbpf();
    const fd = lib.bpf_iter_create(lib.bpf_link__fd(link) as number) as number;
    if (fd < 0) throw new BpfError(`bpf_iter_create(${name})`, -fd, strerror(fd));
    try {
      // the program prints nothing: one read runs it over every socket and returns 0 (the end)
      while (readSync(fd, this.idleOut) > 0);
    } finally {
      closeSync(fd);
    }
  }

  private readonly ownerKey = Buffer.alloc(8);
  private readonly ownerValue = Buffer.alloc(SOCK.size);

  /**
   * The process that owns a tracked TCP socket: from `slot_socks` at its slot index, or (slot -1)
   * from the overflow `sockets` hash; null when it is not there (closed meanwhile) or not TCP.
   */
  ownerOf(cookie: bigint, slot: number): number | null {
    let found: boolean;
    if (slot >= 0) {
      this.ownerKey.writeUInt32LE(slot, 0);
      found = this.obj.map('slot_socks').lookup(this.ownerKey.subarray(0, 4), this.ownerValue);
    } else {
      this.ownerKey.writeBigUInt64LE(cookie, 0);
      found = this.obj.map('sockets').lookup(this.ownerKey, this.ownerValue);
    }
    if (!found || this.ownerValue.readUInt16LE(SOCK.proto) !== IPPROTO_TCP) return null;
    const tgid = this.ownerValue.readUInt32LE(SOCK.owner + OWNER.tgid);
    return tgid === 0 ? null : tgid;
  }

  private fill: KernelStatsReader | null = null;

  /** Fill levels of the maps (recounted at most once a second) and of the ring buffer. */
  kernelStats(): KernelFill {
    if (this.fill === null) {
      this.fill = new KernelStatsReader(COUNTED_MAPS.map((name) => this.obj.map(name)), this.obj.map('events'), {
        // the counter slots (an array) are counted by the scan that reads them every tick
        known: () => [{ name: 'traffic_slots', entries: this.counters.slotsInUse, max: this.counters.slotCount }],
      });
      this.obj.own(this.fill); // unmapped when the object closes
    }
    return this.fill.read();
  }

  lost(): bigint {
    return this.stats.read(Stat.LOST);
  }

  untracked(): bigint {
    return this.stats.read(Stat.UNTRACKED);
  }

  /** Tracked TCP sockets the census found gone, whose end no hook saw: finished by it. */
  unseen(): bigint {
    return this.stats.read(Stat.UNSEEN);
  }

  /** The same, by the TCP state the census last met each in (its name; `none`: never met). */
  unseenByState(): Record<string, bigint> {
    const by: Record<string, bigint> = {};
    for (let s = 0; s < TCP_STATES; s++) {
      const n = this.stats.read(Stat.UNSEEN_LAST + s);
      if (n > 0n) by[TCP_STATE_NAMES[s] ?? `state_${s}`] = n;
    }
    return by;
  }

  /** Connections kept back in the kernel (quiet mode): closed ones, and failed connects. */
  quiet(): { closed: bigint; failed: bigint } {
    return { closed: this.stats.read(Stat.QUIET), failed: this.stats.read(Stat.QUIET_FAILED) };
  }

  private readonly dnsKey = Buffer.alloc(4);
  private readonly dnsValue = Buffer.alloc(8);

  /**
   * Quiet mode: user space has applied every DNS answer sampled up to `tsNs` (the addresses they
   * name are in the LLM maps), so the kernel stops reporting every connection for them.
   */
  dnsApplied(tsNs: bigint): void {
    this.dnsKey.writeUInt32LE(DnsSync.APPLIED, 0);
    this.dnsValue.writeBigUInt64LE(tsNs, 0);
    this.obj.map('dns_sync').update(this.dnsKey, this.dnsValue);
  }

  get attached(): number {
    return this.obj.attachedCount;
  }

  close(): void {
    this.obj.close();
  }
}
