/**
 * Enforcement in user space: keeps the kernel's LLM destinations current, applies compiled
 * policies and per-process toggles, turns the kernel's decisions into `policy` records, and
 * cuts the open flows of a process that becomes blocked. The decision on a connect itself is
 * always the kernel's, synchronously, in cgroup/connect; nothing here is on that path.
 */
import { Action, RULE_DEFAULT, RULE_TOGGLE, formatEndpoint, type ActionValue, type PolicyDecision } from '../bpf/abi.js';
import type { Enforcer, ExeId, KernelPolicy } from '../bpf/enforcer.js';
import type { Catalog } from './catalog.js';
import { Destinations } from './destinations.js';
import { nsToTicks } from './identity.js';
import type { EventRecord, PolicyRecord, Proto } from './records.js';

export type VerdictAction = 'block' | 'audit' | 'allow';

export interface EnforcementOptions {
  enforcer: Enforcer;
  catalog: Catalog;
  publish: (rec: EventRecord) => void;
  /** Kernel monotonic ns → ISO time. */
  iso: (monoNs: bigint) => string;
  enforce: boolean;
  /** Socket cookies of the open LLM flows of a process identity (`pid:startTime`). */
  openLlmFlows: (key: string) => bigint[];
}

const ACTION_CODE: Record<VerdictAction, ActionValue> = { block: Action.BLOCK, audit: Action.AUDIT, allow: Action.ALLOW };

export class Enforcement {
  readonly destinations: Destinations;
  /** The rule names of the policy in each kernel bank: a decision names its rule from the bank it was made by. */
  private readonly ruleNames: [string[], string[]] = [[], []];
  private readonly toggles = new Map<string, VerdictAction>();
  /** Flows cut by busted-top's block, by process identity. */
  private readonly cut = new Map<string, bigint[]>();
  /**
   * Flows the policy's rules want cut, by process identity: cut while no verdict from busted-top
   * overrides the rules (a verdict's block cuts them in `cut`; allow and audit let them pass), and
   * cut again when the verdict is cleared.
   */
  private readonly ruleCut = new Map<string, bigint[]>();
  private readonly providerIds: string[];

  constructor(private readonly opts: EnforcementOptions) {
    this.destinations = new Destinations(opts.enforcer, opts.catalog);
    this.providerIds = [];
    for (const p of opts.catalog.providers()) this.providerIds[p.index] = p.id;
    opts.enforcer.setPolicy({ rules: [], defaultAction: Action.ALLOW, enforce: opts.enforce });
    this.destinations.loadRanges();
  }

  get enforce(): boolean {
    return this.opts.enforce;
  }

  /** Applies a compiled policy (replacing the previous one in one step). */
  applyPolicy(names: string[], kernel: Omit<KernelPolicy, 'enforce'>): void {
    const bank = this.opts.enforcer.setPolicy({ ...kernel, enforce: this.opts.enforce });
    this.ruleNames[bank & 1] = names;
  }

  /** Executables whose content matched sha256 rules (bit i = rule i). */
  setHashedExe(exe: ExeId, mask: bigint): void {
    this.opts.enforcer.setHashedExe(exe, mask);
  }

  /** The verdict busted-top set for a process identity, if any. */
  toggleOf(key: string): VerdictAction | null {
    return this.toggles.get(key) ?? null;
  }

  /**
   * Sets (or with null clears) a per-process verdict. Blocking under --enforce also cuts the
   * process's open LLM flows (their packets are dropped); clearing lets them through again.
   */
  setToggle(pid: number, startTime: number, action: VerdictAction | null, nowIso = new Date().toISOString()): void {
    const key = `${pid}:${startTime}`;
    this.opts.enforcer.setToggle(pid, startTime, action === null ? Action.NONE : ACTION_CODE[action]);
    if (action === null) this.toggles.delete(key);
    else this.toggles.set(key, action);
    this.opts.publish({ type: 'verdict', ts: nowIso, pid, startTime, action, source: 'busted-top' });
    const cookies = this.cut.get(key) ?? [];
    for (const c of cookies) this.opts.enforcer.setCut(c, false);
    this.cut.delete(key);
    // the rules' cuts: lifted while a verdict overrides the rules, in force again when it is cleared
    for (const c of this.ruleCut.get(key) ?? []) this.opts.enforcer.setCut(c, action === null);
    if (action === 'block' && this.opts.enforce) {
      const open = this.opts.openLlmFlows(key);
      for (const c of open) this.opts.enforcer.setCut(c, true);
      if (open.length > 0) {
        this.cut.set(key, open);
        this.opts.publish({
          type: 'policy', ts: nowIso, pid, startTime, action: 'block', result: 'denied', dst: '*', provider: null,
          rule: 'busted-top', cut: open.length,
        });
      }
    }
  }

  /**
   * A flow of a process blocked from busted-top reached the table after the block (announced at
   * its first byte, or by the idle sweep): under --enforce it is cut as the open ones were.
   */
  lateFlow(key: string, cookie: bigint, nowIso = new Date().toISOString()): void {
    if (!this.opts.enforce || this.toggles.get(key) !== 'block') return;
    const list = this.cut.get(key) ?? [];
    if (list.includes(cookie)) return;
    this.opts.enforcer.setCut(cookie, true);
    list.push(cookie);
    this.cut.set(key, list);
    const [pid, startTime] = key.split(':').map(Number) as [number, number];
    this.opts.publish({
      type: 'policy', ts: nowIso, pid, startTime, action: 'block', result: 'denied', dst: '*', provider: null,
      rule: 'busted-top', cut: 1,
    });
  }

  /**
   * The policy blocks these open flows of a process (a reload, or a flow announced after one):
   * their packets are dropped. With `replace` (a reload's judgement of all its open flows), the
   * process's earlier rule cuts that the new policy no longer blocks are lifted. `about`: the one
   * flow cut, for its record (a tunnel through a proxy); else the record says `*`.
   */
  cutForRule(
    pid: number, startTime: number, cookies: bigint[], rule: string, nowIso = new Date().toISOString(), replace = false,
    about?: { comm: string; uid: number; dst: string; proto: Proto; provider: string | null },
  ): void {
    if (!this.opts.enforce) return;
    const key = `${pid}:${startTime}`;
    const overridden = this.toggles.has(key); // a verdict from busted-top decides this process's flows
    let list = this.ruleCut.get(key) ?? [];
    if (replace) {
      for (const c of list) if (!cookies.includes(c) && !overridden) this.opts.enforcer.setCut(c, false);
      list = list.filter((c) => cookies.includes(c));
    }
    let newly = 0;
    for (const c of cookies) {
      if (list.includes(c)) continue;
      if (!overridden) this.opts.enforcer.setCut(c, true);
      list.push(c);
      newly++;
    }
    if (list.length > 0) this.ruleCut.set(key, list);
    else this.ruleCut.delete(key);
    if (newly === 0 || overridden) return;
    this.opts.publish({
      type: 'policy', ts: nowIso, pid, startTime, action: 'block', result: 'denied', ...(about ?? { dst: '*', provider: null }), rule, cut: newly,
    });
  }

  /** A process is gone: its toggle and cut sockets go too. */
  forget(key: string): void {
    const [pid, start] = key.split(':').map(Number) as [number, number];
    if (this.toggles.has(key)) this.setToggle(pid, start, null);
    for (const c of this.ruleCut.get(key) ?? []) this.opts.enforcer.setCut(c, false);
    this.ruleCut.delete(key);
  }

  /** A flow closed: it no longer needs cutting. */
  closed(key: string, cookie: number | bigint): void {
    const c = BigInt(cookie);
    for (const lists of [this.cut, this.ruleCut]) {
      const list = lists.get(key);
      if (!list?.includes(c)) continue;
      this.opts.enforcer.setCut(c, false);
      const rest = list.filter((x) => x !== c);
      if (rest.length > 0) lists.set(key, rest);
      else lists.delete(key);
    }
  }

  /** A decision the kernel made on a connect or send. */
  decision(d: PolicyDecision): PolicyRecord {
    const rule = d.rule === RULE_DEFAULT ? 'default' : d.rule === RULE_TOGGLE ? 'busted-top' : (this.ruleNames[d.bank & 1]?.[d.rule] ?? `#${d.rule}`);
    const rec: PolicyRecord = {
      type: 'policy', ts: this.opts.iso(d.tsNs), pid: d.tgid, startTime: nsToTicks(d.startNs), comm: d.comm, uid: d.uid,
      action: d.action === Action.BLOCK ? 'block' : 'audit',
      result: d.denied ? 'denied' : 'would-deny',
      dst: formatEndpoint(d.family, d.daddr, d.dport), proto: d.proto === 17 ? 'udp' : 'tcp',
      provider: this.providerIds[d.provider] ?? null, rule,
    };
    this.opts.publish(rec);
    return rec;
  }
}

/** The executables of the running processes, once each (path via /proc, for hashing). */
export async function runningExecutables(procRoot = '/proc', max = 4096): Promise<{ path: string; kdev: number; ino: bigint }[]> {
  const { readdir, stat } = await import('node:fs/promises');
  const { userDevToKernel } = await import('./identity-proc.js');
  const seen = new Map<string, { path: string; kdev: number; ino: bigint }>();
  const pids = (await readdir(procRoot).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d)).slice(0, max);
  for (const pid of pids) {
    const path = `${procRoot}/${pid}/exe`;
    const st = await stat(path, { bigint: true }).catch(() => null);
    if (!st) continue;
    const kdev = userDevToKernel(Number(st.dev));
    const key = `${kdev}:${st.ino}`;
    if (!seen.has(key)) seen.set(key, { path, kdev, ino: st.ino });
  }
  return [...seen.values()];
}
