/**
 * Compiles a validated policy into what the kernel can match, resolving names on this machine:
 *  - exe       → (device, inode) of the file, the device in the kernel's dev_t encoding;
 *  - user      → uid (from the passwd file); uid as is;
 *  - cgroup    → (id, level) of the directory in the cgroup v2 mount: the id is its inode, the
 *                level its depth (`/a/b` is 2); the kernel matches when the process's ancestor
 *                cgroup at that level has that id, so a rule covers the cgroup's descendants;
 *  - container → the outermost cgroup directory of each container whose id starts with the value
 *                (at least 12 hex characters) or equals it (lxc and nspawn names);
 *  - pod       → the pod's cgroup directory (kubepods…pod<uid>);
 *  - provider  → catalog indices; sha256 stays hex (the engine marks matching executables);
 *    agent can only be judged in user space.
 * What does not exist now (an executable not installed, a container not running) is a warning,
 * not an error: the rule is kept and matches nothing there until the policy is compiled again.
 * Every key given must match: uid and user give the uids in both; cgroup, container and pod
 * give the cgroups inside all of them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { findCgroup2Mount } from '../bpf/preflight.js';
import type { AgentCatalog } from './agents.js';
import type { Catalog } from './catalog.js';
import { parseCgroupPath } from './containers.js';
import { userDevToKernel } from './identity-proc.js';
import { PolicyError, policyWhere, type MatchKey, type Policy, type PolicyAction, type PolicyRule } from './policy-parse.js';

export interface ExeInode {
  /** The kernel's dev_t encoding (12-bit major, 20-bit minor), as in `inode->i_sb->s_dev`. */
  dev: number;
  ino: bigint;
}

export interface CgroupRef {
  /** The cgroup id: the directory's inode number in the cgroup v2 mount. */
  id: bigint;
  /** Depth below the root cgroup (`/` is 0, `/a/b` is 2). */
  level: number;
  /** Path relative to the mount, for messages. */
  path: string;
}

export interface KernelSubject {
  exeInodes: ExeInode[] | null;
  uids: number[] | null;
  comms: string[] | null;
  cgroups: CgroupRef[] | null;
}

export interface CompiledRule {
  index: number;
  name: string;
  action: PolicyAction;
  /** Catalog indices; null = any provider. */
  providers: number[] | null;
  /** null = not constrained; [] = constrained but nothing on this machine matches now. */
  kernel: KernelSubject;
  /** Lower-case hex. */
  sha256: string[] | null;
  agents: string[] | null;
  /** Some field (agent) can only be judged in user space: the kernel never matches this rule. */
  userSpaceOnly: boolean;
  source: PolicyRule;
}

export interface CompiledPolicy {
  file: string;
  default: PolicyAction;
  rules: CompiledRule[];
  warnings: string[];
}

/** The file system, as compilation sees it (injectable for tests). */
export interface PolicyFs {
  /** stat() following symlinks, `dev` as stat reports it; null when the path cannot be found or read. */
  stat(path: string): { dev: number; ino: bigint; isDirectory: boolean } | null;
  /** Names of the subdirectories of `path` ([] when it cannot be read). */
  subdirs(path: string): string[];
}

export interface CompileEnv {
  catalog: Catalog;
  /** The cgroup v2 mount point; null when there is none. Default: found in /proc/mounts. */
  cgroupRoot?: string | null;
  /** User name → uid; default: looked up in `passwdPath`. */
  uidOf?: (name: string) => number | null;
  /** Default /etc/passwd. */
  passwdPath?: string;
  fs?: PolicyFs;
  /** When given, agent ids are checked against it. */
  agents?: AgentCatalog;
  /** Bounds of the cgroup tree walk (container and pod rules). Default depth 12, 100,000 directories. */
  maxCgroupDepth?: number;
  maxCgroupDirs?: number;
}

export const nodePolicyFs: PolicyFs = {
  stat(path) {
    try {
      const st = statSync(path, { bigint: true, throwIfNoEntry: false });
      return st ? { dev: Number(st.dev), ino: st.ino, isDirectory: st.isDirectory() } : null;
    } catch {
      return null;
    }
  },
  subdirs(path) {
    try {
      return readdirSync(path, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return [];
    }
  },
};

/** name → uid from passwd text; the first line naming a user wins, as getpwnam() does. */
export function parsePasswdNames(text: string): Map<string, number> {
  const uids = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const [name, , id] = line.split(':');
    if (name && id !== undefined && /^\d+$/.test(id) && !uids.has(name)) uids.set(name, Number(id));
  }
  return uids;
}

const joinMount = (root: string, rel: string) => (rel === '/' ? root : `${root.replace(/\/+$/, '')}${rel}`);
const levelOf = (rel: string) => rel.split('/').filter((s) => s !== '').length;
const parentOf = (rel: string) => (rel.lastIndexOf('/') <= 0 ? '/' : rel.slice(0, rel.lastIndexOf('/')));
/** `a` is `b` or one of its ancestors. */
const covers = (a: string, b: string) => a === '/' || a === b || b.startsWith(`${a}/`);
const isHexId = (v: string) => /^[0-9a-f]{12,64}$/.test(v);

/** Every cgroup directory below the mount, as paths relative to it, breadth first and bounded. */
export function walkCgroups(fs: PolicyFs, root: string, maxDepth = 12, maxDirs = 100_000): { dirs: string[]; truncated: boolean } {
  const dirs = ['/'];
  for (let i = 0; i < dirs.length; i++) {
    const rel = dirs[i]!;
    if (levelOf(rel) >= maxDepth) continue;
    for (const name of fs.subdirs(joinMount(root, rel))) {
      if (dirs.length >= maxDirs) return { dirs, truncated: true };
      dirs.push(rel === '/' ? `/${name}` : `${rel}/${name}`);
    }
  }
  return { dirs, truncated: false };
}

/** Resolves a policy on this machine (or the one `env` describes). Throws PolicyError for names that cannot exist. */
export function compilePolicy(policy: Policy, env: CompileEnv): CompiledPolicy {
  return new Compiler(policy, env).run();
}

class Compiler {
  private readonly fs: PolicyFs;
  private readonly root: string | null;
  private readonly warnings: string[] = [];
  private walked: string[] | null = null;
  private users: Map<string, number> | null = null;
  private readonly providerIndex: Map<string, number>;

  constructor(private readonly policy: Policy, private readonly env: CompileEnv) {
    this.fs = env.fs ?? nodePolicyFs;
    this.root = env.cgroupRoot === undefined ? findCgroup2Mount() : env.cgroupRoot;
    this.providerIndex = new Map(env.catalog.providers().map((p) => [p.id, p.index]));
  }

  run(): CompiledPolicy {
    const rules = this.policy.rules.map((r) => this.rule(r));
    return { file: this.policy.file, default: this.policy.default, rules, warnings: this.warnings };
  }

  private fail(rule: PolicyRule, key: MatchKey, problem: string): never {
    throw new PolicyError(this.policy.file, problem, rule.lines[key] ?? rule.line, rule.index, rule.name, `match.${key}`);
  }

  private warn(rule: PolicyRule, key: MatchKey, what: string): void {
    this.warnings.push(`policy file ${this.policy.file}${policyWhere(rule.lines[key] ?? rule.line, rule.index, rule.name, `match.${key}`)}: ${what}`);
  }

  private rule(r: PolicyRule): CompiledRule {
    const m = r.match;
    for (const id of m.agent ?? []) {
      if (this.env.agents && !this.env.agents.entries.some((e) => e.id === id)) {
        this.fail(r, 'agent', `names no agent in the agent list: "${id}" (see catalog/agents.yaml, or add it with --agents)`);
      }
    }
    if (m.agent) this.warn(r, 'agent', 'agent is judged in user space only: the kernel never matches this rule, so it cannot block or audit a connect');
    return {
      index: r.index,
      name: r.name,
      action: r.action,
      providers: m.provider ? m.provider.map((id) => this.providerIndex.get(id) ?? this.fail(r, 'provider', `names no provider in the catalog: "${id}" (see catalog/providers.yaml, or add it with --providers)`)) : null,
      kernel: { exeInodes: m.exe ? this.exes(r, m.exe) : null, uids: this.uids(r), comms: m.comm ?? null, cgroups: this.cgroups(r) },
      sha256: m.sha256 ?? null,
      agents: m.agent ?? null,
      userSpaceOnly: Boolean(m.agent),
      source: r,
    };
  }

  private exes(r: PolicyRule, paths: string[]): ExeInode[] {
    const out: ExeInode[] = [];
    for (const path of paths) {
      const st = this.fs.stat(path);
      if (!st || st.isDirectory) {
        this.warn(r, 'exe', `${path} ${st ? 'is a directory' : 'does not exist'}: the rule matches no executable there until the policy is compiled again`);
        continue;
      }
      const dev = userDevToKernel(st.dev);
      if (!out.some((e) => e.dev === dev && e.ino === st.ino)) out.push({ dev, ino: st.ino });
    }
    return out;
  }

  private uids(r: PolicyRule): number[] | null {
    const { uid, user } = r.match;
    if (!user) return uid ?? null;
    const fromNames = user.map((name) => this.uidOf(name) ?? this.fail(r, 'user',
      `names user "${name}", who is not in ${this.env.uidOf ? 'the user list' : this.env.passwdPath ?? '/etc/passwd'} (a user known only to LDAP or sssd needs uid:)`));
    if (!uid) return [...new Set(fromNames)];
    const both = uid.filter((u) => fromNames.includes(u));
    if (both.length === 0) this.warn(r, 'user', `no user is both uid ${uid.join('/')} and ${user.join('/')}: the rule matches nobody`);
    return both;
  }

  private uidOf(name: string): number | null {
    if (this.env.uidOf) return this.env.uidOf(name);
    this.users ??= parsePasswdNames(readText(this.env.passwdPath ?? '/etc/passwd'));
    return this.users.get(name) ?? null;
  }

  /** Each of cgroup, container and pod given narrows the set: the cgroups inside all of them. */
  private cgroups(r: PolicyRule): CgroupRef[] | null {
    const m = r.match;
    const sets: CgroupRef[][] = [];
    if (m.cgroup) sets.push(this.namedCgroups(r, m.cgroup));
    if (m.container) sets.push(this.found(r, 'container', m.container, (d, v) => matchContainer(parseCgroupPath(d).container?.id, v)));
    if (m.pod) sets.push(this.found(r, 'pod', m.pod, (d, v) => parseCgroupPath(d).pod?.uid === v));
    if (sets.length === 0) return null;
    return sets.reduce((a, b) => intersect(a, b));
  }

  private namedCgroups(r: PolicyRule, paths: string[]): CgroupRef[] {
    if (this.root === null) {
      this.warn(r, 'cgroup', 'there is no cgroup v2 mount here: the rule matches no cgroup');
      return [];
    }
    const out: CgroupRef[] = [];
    for (const path of paths) {
      const ref = this.ref(path);
      if (ref) out.push(ref);
      else this.warn(r, 'cgroup', `cgroup ${path} does not exist under ${this.root}: the rule matches it once it exists and the policy is compiled again`);
    }
    return out;
  }

  /** The outermost cgroup directories for which `is(path, value)` holds, per value. */
  private found(r: PolicyRule, key: 'container' | 'pod', values: string[], is: (dir: string, v: string) => boolean): CgroupRef[] {
    if (this.root === null) {
      this.warn(r, key, `there is no cgroup v2 mount here: the rule matches no ${key}`);
      return [];
    }
    const out: CgroupRef[] = [];
    for (const v of values) {
      const dirs = this.dirs(r, key).filter((d) => is(d, v) && !is(parentOf(d), v));
      const refs = dirs.map((d) => this.ref(d)).filter((x) => x !== null);
      if (refs.length === 0) this.warn(r, key, `no cgroup of ${key} ${v} exists now${key === 'container' && !isHexId(v) ? ' (docker, podman and kubernetes containers are named by id, not by name)' : ''}: the rule matches it once the policy is compiled again`);
      if (key === 'container') {
        const ids = new Set(dirs.map((d) => parseCgroupPath(d).container!.id));
        if (ids.size > 1) this.warn(r, key, `${v} is a prefix of ${ids.size} container ids (${[...ids].map((i) => i.slice(0, 12)).join(', ')}): the rule covers all of them`);
      }
      for (const ref of refs) if (!out.some((o) => o.id === ref.id)) out.push(ref);
    }
    return out;
  }

  private dirs(r: PolicyRule, key: MatchKey): string[] {
    if (this.walked === null) {
      const walk = walkCgroups(this.fs, this.root!, this.env.maxCgroupDepth, this.env.maxCgroupDirs);
      this.walked = walk.dirs;
      if (walk.truncated) this.warn(r, key, `the cgroup tree under ${this.root} has more than ${walk.dirs.length} directories; only that many were searched`);
    }
    return this.walked;
  }

  /** A cgroup directory as the kernel knows it; null when it is gone (containers come and go). */
  private ref(rel: string): CgroupRef | null {
    const st = this.fs.stat(joinMount(this.root!, rel));
    return st?.isDirectory ? { id: st.ino, level: levelOf(rel), path: rel } : null;
  }
}

function matchContainer(id: string | undefined, value: string): boolean {
  if (id === undefined) return false;
  return isHexId(value) ? id.startsWith(value) : id === value;
}

/** The cgroups of `a` inside one of `b`, and of `b` inside one of `a`: both conditions hold below them. */
function intersect(a: CgroupRef[], b: CgroupRef[]): CgroupRef[] {
  const out = [...a.filter((x) => b.some((y) => covers(y.path, x.path))), ...b.filter((y) => a.some((x) => covers(x.path, y.path)))];
  return out.filter((x, i) => out.findIndex((y) => y.id === x.id) === i);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
