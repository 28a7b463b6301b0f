/**
 * Who a process is, in terms the kernel vouches for, enriched from /proc, the cgroup tree and
 * the executable's content. `lookup()` answers at once with what is known (kernel facts, cached
 * names, paths and hashes, never any I/O except the first read of /etc/passwd); the rest is
 * filled in asynchronously with bounded concurrency, and every change is announced to the
 * `onChange` listeners. A process identity is (pid, start time): a reused pid is a new identity.
 */
import type { AgentCatalog, AgentMatch } from './agents.js';
import { parseCgroupPath, type ContainerInfo, type PodInfo } from './containers.js';
import { FileHasher, type HashResult } from './hash.js';
import { CgroupResolver } from './identity-cgroups.js';
import {
  kernelDevToUser, readCgroupAsync, readCmdlineArgs, readExeLink, readParentChain, readStartTime, readStatAsync, redactCmdline,
  scanExecutables, statInode, statPath, userDevToKernel, type ParentInfo,
} from './identity-proc.js';
import { NameDirectory } from './users.js';
import type { PodNames } from './kube.js';

export type { ParentInfo };

/** What busted says about a process; these fields become JSON record fields. */
export interface Identity {
  exe: string | null;
  sha256: string | null;
  /** The file at `exe` is no longer the one the process runs (replaced or deleted since it started). */
  exeReplaced: boolean;
  /** Arguments joined by spaces, credentials redacted, at most `cmdlineBytes` read. */
  cmdline: string | null;
  user: string | null;
  group: string | null;
  ppid: number | null;
  /** Parent first, up to pid 1 or `maxParents`. */
  parents: ParentInfo[];
  cgroup: string | null;
  container: ContainerInfo | null;
  pod: PodInfo | null;
  agent: AgentMatch | null;
  startTime: number;
}

/** What the kernel recorded at connect time (struct busted_owner). */
export interface ProcessFacts {
  pid: number;
  /** Clock ticks since boot, as /proc/PID/stat field 22 (nsToTicks(owner.startNs)). */
  startTime: number;
  /** Kernel-internal dev_t of the executable's superblock (owner.exeDev). */
  exeDev: number;
  /** Inode of the executable (owner.exeIno); 0n when unknown. */
  exeIno: bigint;
  uid: number;
  gid: number;
  cgroupId: bigint;
  comm?: string;
  /** Parent tgid the kernel saw at connect time. */
  ppid?: number | null;
  /** Path of the file the process exec'd, as the kernel saw it at exec (unverified; may be relative). */
  execPath?: string | null;
}

export interface ResolverOptions {
  procRoot?: string;
  hasher?: FileHasher;
  cgroups?: CgroupResolver;
  names?: NameDirectory;
  /** null: no agent labels. */
  agents?: AgentCatalog | null;
  /** Pod namespace and name by pod UID (core/kube.ts); null or absent: the UID only. */
  pods?: PodNames | null;
  /** Identities kept (least recently looked up dropped first). Default 4096. */
  maxIdentities?: number;
  /** Learned executable paths, per (dev, inode). Default 4096. */
  maxPaths?: number;
  maxParents?: number;
  cmdlineBytes?: number;
  /** Identities enriched at the same time. Default 8. */
  concurrency?: number;
  /** Identities waiting for enrichment; beyond this, new ones keep the kernel facts only. Default 1024. */
  maxWaiting?: number;
  onChange?: ChangeListener;
}

export type ChangeListener = (key: string, identity: Identity, facts: ProcessFacts) => void;

export function identityKey(pid: number, startTime: number): string {
  return `${pid}:${startTime}`;
}

interface Entry {
  key: string;
  facts: ProcessFacts;
  identity: Identity;
  /** The arguments as read (unredacted, for agent matching only; never output). */
  cmdArgs?: string[];
  state: 'waiting' | 'running' | 'done' | 'dropped';
  /** Looked up since it was last considered for eviction. */
  used: boolean;
  /** New facts arrived while running: enrich once more when done. */
  again?: boolean;
  /**
   * forget() came (the process exited) while its enrichment or hash was pending: it is no
   * longer looked up, but that work still finishes and its listeners hear the result.
   */
  forgotten?: boolean;
}

interface LearnedPath {
  path: string;
  /** stat() device and inode of the file when learned (userspace encoding). */
  dev: number;
  ino: bigint;
}

export class IdentityResolver {
  readonly hasher: FileHasher;
  readonly cgroups: CgroupResolver;
  readonly names: NameDirectory;
  private readonly entries = new Map<string, Entry>();
  private readonly paths = new Map<string, LearnedPath>();
  /** Paths of installed executables (seedExecutables), per kernel (dev, inode). */
  private readonly seeded = new Map<string, LearnedPath>();
  private readonly waiting: Entry[] = [];
  private readonly listeners = new Set<ChangeListener>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly background = new Set<Promise<void>>();
  private running = 0;
  private readonly procRoot: string;
  private readonly agents: AgentCatalog | null;
  private readonly pods: PodNames | null;
  private readonly opts: Required<Pick<ResolverOptions, 'maxIdentities' | 'maxPaths' | 'maxParents' | 'cmdlineBytes' | 'concurrency' | 'maxWaiting'>>;
  /** Counters for diagnostics (`busted doctor`, --verbose). */
  readonly stats = { lookups: 0, enriched: 0, dropped: 0, sawProcess: 0, hashFailures: 0, errors: 0 };

  constructor(options: ResolverOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.hasher = options.hasher ?? new FileHasher();
    this.cgroups = options.cgroups ?? new CgroupResolver();
    this.names = options.names ?? new NameDirectory();
    this.agents = options.agents ?? null;
    this.pods = options.pods ?? null;
    this.pods?.onUpdate(() => this.namePods());
    this.opts = {
      maxIdentities: options.maxIdentities ?? 4096, maxPaths: options.maxPaths ?? 4096, maxParents: options.maxParents ?? 16,
      cmdlineBytes: options.cmdlineBytes ?? 4096, concurrency: options.concurrency ?? 8, maxWaiting: options.maxWaiting ?? 1024,
    };
    if (options.onChange) this.listeners.add(options.onChange);
    const prev = this.names.onChange;
    this.names.onChange = () => {
      prev?.();
      this.renameAll();
    };
  }

  /** Subscribes to identity changes; returns the unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What is known now about this process; starts enrichment the first time an identity is seen. */
  lookup(facts: ProcessFacts): Identity {
    this.stats.lookups++;
    const key = identityKey(facts.pid, facts.startTime);
    const known = this.entries.get(key);
    if (known) {
      // second chance: the entry moves behind the others only when it comes up for eviction (a
      // delete and re-insert on every connection made V8 reallocate the map's table each time)
      known.used = true;
      if (facts.exeIno !== known.facts.exeIno && facts.exeIno !== 0n) this.reexec(known, facts);
      return known.identity;
    }
    const entry: Entry = { key, facts, identity: this.initial(facts), state: 'waiting', used: false };
    this.entries.set(key, entry);
    if (this.entries.size > this.opts.maxIdentities) this.evict();
    this.enqueue(entry);
    return entry.identity;
  }

  /**
   * lookup() of an identity already known under `key` whose executable is still `exeIno`:
   * the connection path's shortcut, which needs no facts object. Null when lookup() must run.
   */
  known(key: string, exeIno: bigint): Identity | null {
    const e = this.entries.get(key);
    if (!e || (exeIno !== e.facts.exeIno && exeIno !== 0n)) return null;
    this.stats.lookups++;
    e.used = true;
    return e.identity;
  }

  /** The identity if known, without starting anything. */
  get(key: string): Identity | null {
    return this.entries.get(key)?.identity ?? null;
  }

  /** Whether the identity is still running (one small synchronous /proc read). */
  alive(pid: number, startTime: number): boolean {
    return readStartTime(pid, this.procRoot) === startTime;
  }

  /**
   * The process has exited: its identity is no longer kept. Enrichment already queued or
   * running still finishes (a process that is gone is what the learned and seeded paths are
   * for) and is told to the listeners, so a short-lived process still gets its hash and cgroup.
   */
  forget(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    e.forgotten = true; // nothing pending: nothing holds it any more
    this.entries.delete(key);
  }

  /** Resolves when no enrichment is waiting or running (hashes included). */
  async idle(): Promise<void> {
    for (;;) {
      if (this.running > 0 || this.waiting.length > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
      await Promise.allSettled([...this.background]);
      if (this.running === 0 && this.waiting.length === 0 && this.background.size === 0) return;
    }
  }

  private initial(f: ProcessFacts): Identity {
    const learned = this.knownPath(f);
    const cgroup = this.cgroups.peek(f.cgroupId);
    const { container, pod } = parseCgroupPath(cgroup);
    const exe = learned?.path ?? null;
    return {
      exe, sha256: null, exeReplaced: false, cmdline: null,
      user: this.names.user(f.uid), group: this.names.group(f.gid),
      ppid: f.ppid ?? null, parents: [], cgroup, container, pod: this.namedPod(pod),
      agent: this.agentOf(exe, f.comm ?? null, null), startTime: f.startTime,
    };
  }

  private agentOf(exe: string | null, comm: string | null, cmdline: string[] | null): AgentMatch | null {
    return this.agents ? this.agents.match({ exe, comm, cmdline }) : null;
  }

  private enqueue(entry: Entry): void {
    if (this.waiting.length >= this.opts.maxWaiting) {
      entry.state = 'dropped';
      this.stats.dropped++;
      return;
    }
    entry.state = 'waiting';
    this.waiting.push(entry);
    this.pump();
  }

  private pump(): void {
    while (this.running < this.opts.concurrency && this.waiting.length > 0) {
      const entry = this.waiting.shift()!;
      if (!this.isCurrent(entry)) continue; // evicted meanwhile
      this.running++;
      entry.state = 'running';
      void this.enrich(entry)
        .catch(() => this.stats.errors++)
        .finally(() => {
          entry.state = 'done';
          this.running--;
          this.stats.enriched++;
          if (entry.again) {
            entry.again = false;
            this.enqueue(entry);
          }
          this.pump();
          if (this.running === 0 && this.waiting.length === 0) this.idleWaiters.splice(0).forEach((r) => r());
        });
    }
  }

  /** Drops the least recently looked up identity (approximately: those looked up since they came up last get a second chance). */
  private evict(): void {
    for (const [key, e] of this.entries) {
      if (e.used) {
        e.used = false;
        this.entries.delete(key);
        this.entries.set(key, e);
        continue;
      }
      this.drop(key);
      return;
    }
  }

  /** Whether the entry is the identity of its key, or a forgotten one still finishing its work. */
  private isCurrent(entry: Entry): boolean {
    const now = this.entries.get(entry.key);
    return now === entry || (now === undefined && entry.forgotten === true);
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    const at = this.waiting.indexOf(e);
    if (at >= 0) this.waiting.splice(at, 1);
  }

  private reexec(entry: Entry, facts: ProcessFacts): void {
    entry.facts = facts;
    entry.cmdArgs = undefined;
    this.update(entry, { exe: null, sha256: null, exeReplaced: false, cmdline: null });
    if (entry.state === 'running') entry.again = true;
    else if (entry.state !== 'waiting') this.enqueue(entry);
  }

  private update(entry: Entry, patch: Partial<Identity>): void {
    const next = { ...entry.identity, ...patch };
    if ('exe' in patch || 'cmdline' in patch) next.agent = this.agentOf(next.exe, entry.facts.comm ?? null, entry.cmdArgs ?? null);
    if (JSON.stringify(next) === JSON.stringify(entry.identity)) return;
    entry.identity = next;
    if (!this.isCurrent(entry)) return;
    for (const l of this.listeners) l(entry.key, next, entry.facts);
  }

  /** The pod with its namespace and name when the API server listed it. */
  private namedPod(pod: PodInfo | null): PodInfo | null {
    const meta = pod && this.pods?.lookup(pod.uid);
    return meta ? { ...pod, namespace: meta.namespace, name: meta.name } : pod;
  }

  /** Pod names learned: identities in pods get them (and their listeners hear of it). */
  private namePods(): void {
    for (const e of this.entries.values()) {
      const pod = e.identity.pod;
      if (pod && pod.name === undefined) this.update(e, { pod: this.namedPod(pod) });
    }
  }

  private renameAll(): void {
    for (const e of this.entries.values()) this.update(e, { user: this.names.user(e.facts.uid), group: this.names.group(e.facts.gid) });
  }

  private async enrich(entry: Entry): Promise<void> {
    const f = entry.facts;
    // open /proc/PID/exe at once, while the process may still live (the hasher keeps the file
    // open until it is read); the inode check makes a reused pid harmless
    const fromExe = f.exeIno !== 0n ? this.hasher.hash(`${this.procRoot}/${f.pid}/exe`, { ino: f.exeIno }) : Promise.resolve(null);
    const seen = await this.fromProc(entry);
    let fallback: LearnedPath | null = null;
    if (!seen) {
      fallback = await this.verifiedPath(f);
      this.update(entry, { exe: fallback?.path ?? null }); // drops the unverified hint when it no longer holds
    }
    // the hash may wait behind other files: it does not hold an enrichment slot
    this.track(this.finishHash(entry, f, fromExe, fallback));
    const work: Array<Promise<void>> = [this.resolveCgroup(entry, seen?.cgroup ?? null)];
    if (seen) work.push(readParentChain(seen.ppid, this.procRoot, this.opts.maxParents).then((parents) => this.update(entry, { parents })));
    await Promise.all(work);
  }

  private async finishHash(entry: Entry, f: ProcessFacts, fromExe: Promise<HashResult | null>, fallback: LearnedPath | null): Promise<void> {
    let r = await fromExe;
    if ((!r || !r.ok) && fallback) r = await this.hasher.hash(fallback.path, { dev: fallback.dev, ino: fallback.ino });
    if (entry.facts !== f) return; // it exec'd meanwhile: this hash is of the program before
    if (r?.ok) this.update(entry, { sha256: r.sha256 });
    else if (r) this.stats.hashFailures++;
  }

  private track(p: Promise<void>): void {
    this.background.add(p);
    void p.catch(() => {}).finally(() => this.background.delete(p));
  }

  /** Reads the live process; null when it is gone (or is another process now). */
  private async fromProc(entry: Entry): Promise<{ ppid: number; cgroup: string | null } | null> {
    const f = entry.facts;
    const base = `${this.procRoot}/${f.pid}`;
    const before = await readStatAsync(f.pid, this.procRoot);
    if (before?.startTime !== f.startTime) return null;
    const [link, args, cgroup, running] = await Promise.all([
      readExeLink(f.pid, this.procRoot), readCmdlineArgs(f.pid, this.procRoot, this.opts.cmdlineBytes),
      readCgroupAsync(f.pid, this.procRoot), statInode(`${base}/exe`),
    ]);
    // the pid may have been reused while we read: check once more
    if ((await readStatAsync(f.pid, this.procRoot))?.startTime !== f.startTime) return null;
    if (entry.facts !== f) return null; // new facts (an exec) arrived meanwhile: the next pass reads them
    this.stats.sawProcess++;
    // the process may have exec'd another program since the kernel recorded it
    const sameExe = f.exeIno === 0n || running?.ino === f.exeIno;
    const patch: Partial<Identity> = { ppid: before.ppid };
    if (sameExe && link) {
      // compared through the process's own root: the path is in its mount namespace
      const onDisk = link.deleted ? 'missing' : await statPath(`${base}/root${link.path}`);
      const replaced = onDisk === 'missing' || (onDisk !== null && running !== null && (onDisk.ino !== running.ino || onDisk.dev !== running.dev));
      patch.exe = link.path;
      patch.exeReplaced = replaced;
      if (!replaced && onDisk !== null && running && f.exeIno !== 0n) this.learn(f, { path: link.path, dev: running.dev, ino: running.ino });
    }
    if (sameExe && args) {
      entry.cmdArgs = args.args;
      patch.cmdline = redactCmdline(args.args) + (args.truncated ? ' …' : '');
    }
    this.update(entry, patch);
    return { ppid: before.ppid, cgroup };
  }

  /**
   * Learns where the executables in `dirs` (default: the directories of $PATH) are, so that a
   * process that exited before it was looked up still gets its path (and hash) when it ran one
   * of them. Asynchronous, one file at a time; call once at startup. Returns the files indexed.
   */
  async seedExecutables(dirs: readonly string[] = (process.env.PATH ?? '').split(':'), limit = 20_000): Promise<number> {
    const files = await scanExecutables(dirs, limit);
    for (const f of files) this.seeded.set(`${userDevToKernel(f.dev)}:${f.ino}`, f);
    return files.length;
  }

  private knownPath(f: ProcessFacts): LearnedPath | undefined {
    if (f.exeIno === 0n) return undefined;
    const k = `${f.exeDev}:${f.exeIno}`;
    const learned = this.paths.get(k) ?? this.seeded.get(k);
    if (learned) return learned;
    // the kernel's exec path: a hint, which verifiedPath() checks against the kernel's inode
    if (f.execPath?.startsWith('/')) return { path: f.execPath, dev: kernelDevToUser(f.exeDev), ino: f.exeIno };
    return undefined;
  }

  private learn(f: ProcessFacts, p: LearnedPath): void {
    const k = `${f.exeDev}:${f.exeIno}`;
    this.paths.delete(k);
    this.paths.set(k, p);
    if (this.paths.size > this.opts.maxPaths) this.paths.delete(this.paths.keys().next().value!);
  }

  /** A path learned from another process that ran the same (dev, inode), if it still is that file. */
  private async verifiedPath(f: ProcessFacts): Promise<LearnedPath | null> {
    const learned = this.knownPath(f);
    if (!learned) return null;
    const now = await statInode(learned.path);
    if (now && now.ino === learned.ino && now.dev === learned.dev) return learned;
    // a path seen inside another mount namespace cannot be checked from here: compare with the kernel's
    if (now === null && kernelDevToUser(f.exeDev) === learned.dev) return learned;
    return null;
  }


  private async resolveCgroup(entry: Entry, hint: string | null): Promise<void> {
    const path = (await this.cgroups.resolve(entry.facts.cgroupId, hint)) ?? hint;
    if (path === null) return;
    const { container, pod } = parseCgroupPath(path);
    this.update(entry, { cgroup: path, container, pod: this.namedPod(pod) });
  }

}
