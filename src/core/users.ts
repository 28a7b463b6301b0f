/**
 * User and group names from /etc/passwd and /etc/group (no NSS, no getent: users known only to
 * LDAP/sssd stay unnamed). The files are read once at first use; afterwards a lookup at most
 * every `checkMs` starts an asynchronous stat of both files and re-reads them when their inode,
 * size or mtime changed. Lookups themselves never do I/O after the first one.
 */
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';

/** `name:x:uid:…` lines; the first name for an id wins (as getpwuid does). */
export function parseIdFile(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const [name, , id] = line.split(':');
    if (!name || id === undefined || !/^\d+$/.test(id)) continue;
    const n = Number(id);
    if (!names.has(n)) names.set(n, name);
  }
  return names;
}

export const parsePasswd = parseIdFile;
export const parseGroup = parseIdFile;

export interface NameDirectoryOptions {
  passwd?: string;
  group?: string;
  /** Minimum time between checks of the files for changes. Default 5000 ms. */
  checkMs?: number;
  now?: () => number;
  /** Called after the names were reloaded because a file changed. */
  onChange?: () => void;
}

interface Loaded {
  stamp: string;
  names: Map<number, string>;
}

export class NameDirectory {
  private users: Loaded | null = null;
  private groups: Loaded | null = null;
  private lastCheck: number;
  private checking: Promise<boolean> | null = null;
  private readonly passwd: string;
  private readonly groupFile: string;
  private readonly checkMs: number;
  private readonly now: () => number;
  onChange: (() => void) | undefined;

  constructor(opts: NameDirectoryOptions = {}) {
    this.passwd = opts.passwd ?? '/etc/passwd';
    this.groupFile = opts.group ?? '/etc/group';
    this.checkMs = opts.checkMs ?? 5000;
    this.now = opts.now ?? (() => performance.now());
    this.onChange = opts.onChange;
    this.lastCheck = this.now();
  }

  user(uid: number): string | null {
    this.users ??= loadSync(this.passwd);
    this.maybeCheck();
    return this.users.names.get(uid) ?? null;
  }

  group(gid: number): string | null {
    this.groups ??= loadSync(this.groupFile);
    this.maybeCheck();
    return this.groups.names.get(gid) ?? null;
  }

  /** Re-reads the files that changed; true when any did. */
  refresh(): Promise<boolean> {
    this.checking ??= this.reload().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  private maybeCheck(): void {
    const t = this.now();
    if (t - this.lastCheck < this.checkMs) return;
    this.lastCheck = t;
    void this.refresh().then((changed) => {
      if (changed) this.onChange?.();
    });
  }

  private async reload(): Promise<boolean> {
    const [u, g] = await Promise.all([reloadIfChanged(this.passwd, this.users), reloadIfChanged(this.groupFile, this.groups)]);
    const changed = u !== this.users || g !== this.groups;
    this.users = u;
    this.groups = g;
    return changed;
  }
}

function stampOf(st: { ino: number; size: number; mtimeMs: number }): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

function loadSync(path: string): Loaded {
  try {
    const stamp = stampOf(statSync(path));
    return { stamp, names: parseIdFile(readFileSync(path, 'utf8')) };
  } catch {
    return { stamp: 'missing', names: new Map() };
  }
}

async function reloadIfChanged(path: string, old: Loaded | null): Promise<Loaded | null> {
  try {
    const stamp = stampOf(await stat(path));
    if (old && old.stamp === stamp) return old;
    return { stamp, names: parseIdFile(await readFile(path, 'utf8')) };
  } catch {
    return old && old.stamp === 'missing' ? old : { stamp: 'missing', names: new Map() };
  }
}
