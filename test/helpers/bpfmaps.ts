/**
 * The kernel maps of a running busted, seen from outside with bpftool: found through the map
 * descriptors in /proc/PID/fdinfo (so another busted on the machine is never confused with it),
 * counted with `bpftool -j map dump`, and the counter slots through a mapping of their own. Used by
 * the overload and soak tests and the benchmarks.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import koffi from 'koffi';
import { SLOT } from '../../src/bpf/abi.js';
import { libbpf, mmapReadWrite, munmap, type Ptr } from '../../src/bpf/libbpf.js';

export interface MapInfo {
  id: number;
  name: string;
  type: string;
  maxEntries: number;
}

function bpftool(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bpftool', ['-j', ...args], { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 30_000 }, (err, stdout) =>
      err ? reject(new Error(`bpftool ${args.join(' ')} failed: ${err.message}`)) : resolve(stdout),
    );
  });
}

/** The maps process `pid` holds open, by name. */
export async function mapsOf(pid: number): Promise<Map<string, MapInfo>> {
  const maps = new Map<string, MapInfo>();
  for (const id of fdinfoIds(pid).maps) {
    const m = JSON.parse(await bpftool(['map', 'show', 'id', String(id)])) as { id: number; name: string; type: string; max_entries: number };
    maps.set(m.name, { id: m.id, name: m.name, type: m.type, maxEntries: m.max_entries });
  }
  return maps;
}

/** Entries in a (hash) map now. */
export async function mapEntries(id: number): Promise<number> {
  return (JSON.parse(await bpftool(['map', 'dump', 'id', String(id)])) as unknown[]).length;
}

/** Entry counts of the named maps of `maps`. */
export async function entryCounts(maps: Map<string, MapInfo>, names: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of names) {
    const m = maps.get(name);
    if (!m) throw new Error(`busted holds no map named ${name}`);
    out[name] = await mapEntries(m.id);
  }
  return out;
}

/** Slot `index` of a per-CPU array of __u64 (busted's `stats`), summed over CPUs. */
export async function perCpuSum(id: number, index: number): Promise<number> {
  const dump = JSON.parse(await bpftool(['map', 'dump', 'id', String(id)])) as { formatted?: { key: number; values: { value: number }[] } }[];
  const slot = dump.find((e) => e.formatted?.key === index);
  if (!slot?.formatted) throw new Error(`map ${id} has no slot ${index} with BTF-formatted values`);
  return slot.formatted.values.reduce((s, v) => s + Number(v.value), 0);
}

/** The maps whose entries belong to sockets or processes: they must empty again after a load
 * (`traffic` is the counters' overflow hash; the slots are counted with SlotsView). */
export const SOCKET_MAPS = ['sockets', 'traffic', 'cut_socks', 'proc_verdicts'] as const;

/**
 * busted's `traffic_slots` array seen from outside: opened by map id and mapped writable, to count
 * the slots in use and to take free slots away from the kernel (and give them back), the way
 * the kernel claims them: a compare-and-swap on the cookie (Atomics on the shared mapping).
 */
export class SlotsView {
  private readonly cookies: BigUint64Array;

  private constructor(
    private readonly fd: number,
    private readonly addr: Ptr,
    private readonly length: number,
  ) {
    this.cookies = new BigUint64Array(koffi.view(addr, length));
  }

  static open(map: MapInfo): SlotsView {
    const fd = libbpf().bpf_map_get_fd_by_id(map.id) as number;
    if (fd < 0) throw new Error(`bpf_map_get_fd_by_id(${map.id}) failed: ${-fd}`);
    const length = map.maxEntries * SLOT.size;
    try {
      return new SlotsView(fd, mmapReadWrite(`mmap(${map.name})`, fd, length), length);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  private get count(): number {
    return this.length / SLOT.size;
  }

  private cookieIndex(slot: number): number {
    return (slot * SLOT.size + SLOT.cookie) / 8;
  }

  /** Slots whose cookie is neither 0 (free) nor `except`. */
  inUse(except = 0n): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) {
      const c = Atomics.load(this.cookies, this.cookieIndex(s));
      if (c !== 0n && c !== except) n++;
    }
    return n;
  }

  /** Slots holding `cookie`. */
  holding(cookie: bigint): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) if (Atomics.load(this.cookies, this.cookieIndex(s)) === cookie) n++;
    return n;
  }

  /** Every free slot gets cookie `fake` (never a socket's); returns how many. */
  takeFree(fake: bigint): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) if (Atomics.compareExchange(this.cookies, this.cookieIndex(s), 0n, fake) === 0n) n++;
    return n;
  }

  /** The slots holding `fake` are free again; returns how many. */
  giveBack(fake: bigint): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) if (Atomics.compareExchange(this.cookies, this.cookieIndex(s), fake, 0n) === fake) n++;
    return n;
  }

  close(): void {
    munmap('munmap(traffic_slots)', this.addr, this.length);
    fs.closeSync(this.fd);
  }
}

/** The ids of the BPF maps, programs and links process `pid` holds open (from /proc/PID/fdinfo). */
function fdinfoIds(pid: number): { maps: number[]; progs: number[]; links: number[] } {
  const ids = { maps: new Set<number>(), progs: new Set<number>(), links: new Set<number>() };
  for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
    let info = '';
    try {
      info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    for (const [kind, re] of [['maps', /^map_id:\s*(\d+)/m], ['progs', /^prog_id:\s*(\d+)/m], ['links', /^link_id:\s*(\d+)/m]] as const) {
      const m = re.exec(info);
      if (m) ids[kind].add(Number(m[1]));
    }
  }
  return { maps: [...ids.maps], progs: [...ids.progs], links: [...ids.links] };
}

/** The ids of the programs and links process `pid` holds open. */
export function bpfIdsOf(pid: number): { progs: number[]; links: number[] } {
  const { progs, links } = fdinfoIds(pid);
  return { progs, links };
}

/**
 * How many times process `pid`'s program `name` has run. The kernel counts only while
 * kernel.bpf_stats_enabled is on (withBpfStats).
 */
export async function programRuns(pid: number, name: string): Promise<number> {
  for (const id of fdinfoIds(pid).progs) {
    const p = JSON.parse(await bpftool(['prog', 'show', 'id', String(id)])) as { name: string; run_cnt?: number };
    if (p.name === name) return p.run_cnt ?? 0;
  }
  throw new Error(`process ${pid} holds no program named ${name}`);
}

/** Runs `body` with kernel.bpf_stats_enabled on (program run counts), then sets it back. */
export async function withBpfStats<T>(body: () => Promise<T>): Promise<T> {
  const path = '/proc/sys/kernel/bpf_stats_enabled';
  const before = fs.readFileSync(path, 'utf8').trim();
  fs.writeFileSync(path, '1');
  try {
    return await body();
  } finally {
    fs.writeFileSync(path, before);
  }
}

/** Which of these program ids are attached to a cgroup as packet programs (cgroup_skb egress/ingress). */
export function packetAttached(progIds: number[]): string[] {
  const out = execFileSync('bpftool', ['cgroup', 'tree'], { encoding: 'utf8' });
  const found: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(cgroup_inet_(?:egress|ingress))\s+\S+\s+(\S+)/.exec(line);
    if (m && progIds.includes(Number(m[1]))) found.push(`${m[3]} (${m[2]})`);
  }
  return found;
}
