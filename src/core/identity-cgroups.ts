/**
 * The kernel's cgroup id (what bpf_get_current_cgroup_id() returns) to a cgroup v2 path. On
 * 64-bit kernels the id is the inode number of the cgroup's directory in the cgroup2 mount
 * (kernfs_node id, see kernfs_ino()), so the mount is walked and directory inodes are matched.
 * The result is cached, so a cgroup keeps its path after its processes exited (and even after
 * the directory is removed, once seen). Walks are asynchronous, one at a time, and not more
 * often than `minWalkIntervalMs`.
 */
import { readFile, readdir, stat } from 'node:fs/promises';

/** The first cgroup2 mount point in /proc/mounts text (octal escapes such as \040 decoded). */
export function cgroup2MountFrom(mounts: string): string | null {
  for (const line of mounts.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (fsType === 'cgroup2' && mountPoint) return mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return null;
}

export interface CgroupResolverOptions {
  /** cgroup2 mount point; default: found in `mountsFile`. null: no cgroup v2 (ids stay unresolved). */
  mount?: string | null;
  mountsFile?: string;
  /** Cached ids. Default 8192. */
  maxEntries?: number;
  /** Directories visited per walk at most. Default 50,000. */
  maxDirs?: number;
  minWalkIntervalMs?: number;
  now?: () => number;
}

export class CgroupResolver {
  private readonly paths = new Map<bigint, string>();
  private mount: string | null | undefined;
  private walking: Promise<void> | null = null;
  private lastWalk = -Infinity;
  private readonly maxEntries: number;
  private readonly maxDirs: number;
  private readonly minWalkIntervalMs: number;
  private readonly now: () => number;
  private readonly mountsFile: string;
  /** Walks done since creation. */
  walks = 0;

  constructor(opts: CgroupResolverOptions = {}) {
    this.mount = opts.mount;
    this.mountsFile = opts.mountsFile ?? '/proc/mounts';
    this.maxEntries = opts.maxEntries ?? 8192;
    this.maxDirs = opts.maxDirs ?? 50_000;
    this.minWalkIntervalMs = opts.minWalkIntervalMs ?? 2000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The path if already known (synchronous, no I/O). `/` is the root cgroup. */
  peek(id: bigint): string | null {
    return this.paths.get(id) ?? null;
  }

  /**
   * The path of cgroup `id`. `hint` is a path that probably is it (from /proc/PID/cgroup): it
   * is checked with one stat before any walk.
   */
  async resolve(id: bigint, hint?: string | null): Promise<string | null> {
    const known = this.paths.get(id);
    if (known !== undefined) return known;
    const mount = await this.mountPoint();
    if (mount === null || id === 0n) return null;
    if (hint) {
      const ino = await inodeOf(joinMount(mount, hint));
      if (ino === id) {
        this.remember(id, normalize(hint));
        return this.paths.get(id)!;
      }
    }
    await this.walk(mount);
    return this.paths.get(id) ?? null;
  }

  /** The cgroup2 mount point used, or null when there is none. */
  async mountPoint(): Promise<string | null> {
    if (this.mount === undefined) {
      try {
        this.mount = cgroup2MountFrom(await readFile(this.mountsFile, 'utf8'));
      } catch {
        this.mount = null;
      }
    }
    return this.mount;
  }

  private walk(mount: string): Promise<void> {
    if (this.walking) return this.walking;
    // at most one walk per interval: a request that comes sooner waits for the next one
    const wait = Math.max(0, this.lastWalk + this.minWalkIntervalMs - this.now());
    const start = wait > 0 ? new Promise<void>((r) => setTimeout(r, wait)) : Promise.resolve();
    this.walking = start.then(() => this.doWalk(mount)).finally(() => {
      this.lastWalk = this.now();
      this.walking = null;
    });
    return this.walking;
  }

  private async doWalk(mount: string): Promise<void> {
    this.walks++;
    const rootIno = await inodeOf(mount);
    if (rootIno !== null) this.remember(rootIno, '/');
    const stack: string[] = [''];
    let visited = 0;
    while (stack.length && visited < this.maxDirs) {
      const rel = stack.pop()!;
      let entries;
      try {
        entries = await readdir(mount + rel, { withFileTypes: true });
      } catch {
        continue; // removed while walking
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const child = `${rel}/${e.name}`;
        const ino = await inodeOf(mount + child);
        if (ino !== null) this.remember(ino, child);
        stack.push(child);
        visited++;
      }
    }
  }

  private remember(id: bigint, path: string): void {
    this.paths.delete(id);
    this.paths.set(id, path);
    if (this.paths.size > this.maxEntries) this.paths.delete(this.paths.keys().next().value!);
  }
}

async function inodeOf(path: string): Promise<bigint | null> {
  try {
    return (await stat(path, { bigint: true })).ino;
  } catch {
    return null;
  }
}

function normalize(p: string): string {
  const s = p.replace(/\/+$/, '');
  return s === '' ? '/' : s.startsWith('/') ? s : `/${s}`;
}

function joinMount(mount: string, p: string): string {
  const n = normalize(p);
  return n === '/' ? mount : mount + n;
}
