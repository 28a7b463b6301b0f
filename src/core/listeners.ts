/**
 * Which process listens on a local TCP port: /proc/net/tcp{,6} gives the listening socket's
 * inode, /proc/PID/fd links name its owner. Used only for connections to local addresses on
 * the catalog's local-server ports, and cached per port, so the /proc walk stays rare.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';

const TCP_LISTEN = '0A';

export interface Listener {
  pid: number;
  exe: string | null;
  comm: string | null;
}

/** Inodes of sockets listening on `port`, from /proc/net/tcp-format text. */
export function listeningInodes(tables: string[], port: number): Set<string> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const text of tables) {
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
      if (f[1]!.split(':')[1] === hexPort) inodes.add(f[9]!);
    }
  }
  return inodes;
}

export class ListenerFinder {
  private readonly cache = new Map<number, { at: number; listener: Listener | null }>();

  constructor(
    private readonly procRoot = '/proc',
    private readonly ttlMs = 5000,
  ) {}

  find(port: number, nowMs = Date.now()): Listener | null {
    const hit = this.cache.get(port);
    if (hit && nowMs - hit.at < this.ttlMs) return hit.listener;
    const listener = this.scan(port);
    this.cache.set(port, { at: nowMs, listener });
    return listener;
  }

  private read(path: string): string {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  }

  private scan(port: number): Listener | null {
    const inodes = listeningInodes([this.read(`${this.procRoot}/net/tcp`), this.read(`${this.procRoot}/net/tcp6`)], port);
    if (inodes.size === 0) return null;
    const wanted = new Set([...inodes].map((i) => `socket:[${i}]`));
    let pids: string[] = [];
    try {
      pids = readdirSync(this.procRoot).filter((d) => /^\d+$/.test(d));
    } catch {
      return null;
    }
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = readdirSync(`${this.procRoot}/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        let target: string;
        try {
          target = readlinkSync(`${this.procRoot}/${pid}/fd/${fd}`);
        } catch {
          continue;
        }
        if (!wanted.has(target)) continue;
        let exe: string | null = null;
        try {
          exe = readlinkSync(`${this.procRoot}/${pid}/exe`);
        } catch {
          /* exited or not ours to read */
        }
        const comm = this.read(`${this.procRoot}/${pid}/comm`).trim() || null;
        return { pid: Number(pid), exe, comm };
      }
    }
    return null;
  }
}

/** Names a listener is known by: its executable's base name and its comm. */
export function listenerNames(l: Listener): string[] {
  const names = new Set<string>();
  if (l.exe) names.add(basename(l.exe.replace(/ \(deleted\)$/, '')));
  if (l.comm) names.add(l.comm);
  return [...names];
}
