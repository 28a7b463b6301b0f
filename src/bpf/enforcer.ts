/**
 * Writes the enforcement maps the cgroup/connect and cgroup_skb programs decide from:
 * LLM destinations (LPM tries), compiled rules (two banks, flipped in one write so a reload is
 * never half-applied), per-process toggles, executables whose hash matched a rule, and the
 * sockets of open flows to cut. Encodings follow bpf/busted.h (checked by test/unit/abi.test.ts).
 */
import {
  Action, COMM_LEN, CGROUP_REF, EXE_ID, LPM4, LPM6, MAX_RULES, POLICY, PROC_KEY, RULE, RULE_ITEMS, RuleField,
  type ActionValue,
} from './abi.js';
import type { BpfMap } from './object.js';

export interface ExeId {
  /** Kernel dev_t encoding (major << 20 | minor). */
  dev: number;
  ino: bigint;
}

export interface KernelRule {
  action: ActionValue;
  /** Catalog provider indices the rule applies to; null = any provider. */
  providers: number[] | null;
  exes: ExeId[] | null;
  uids: number[] | null;
  comms: string[] | null;
  cgroups: { id: bigint; level: number }[] | null;
  /** Matches executables whose sha256 matched (hashed_exes carries this rule's bit). */
  hash: boolean;
  /** Can only be decided in user space (e.g. agent): never matches in the kernel. */
  never: boolean;
}

export interface KernelPolicy {
  rules: KernelRule[];
  /** sha256 rules exist: the kernel reports every exec so its executable is hashed at once. */
  hashExec?: boolean;
  defaultAction: ActionValue;
  enforce: boolean;
}

export interface EnforcerMaps {
  llmV4: BpfMap;
  llmV6: BpfMap;
  policy: BpfMap;
  rules: BpfMap;
  procVerdicts: BpfMap;
  hashedExes: BpfMap;
  cutSocks: BpfMap;
}

export class RuleLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RuleLimitError';
  }
}

/** Encodes one rule as struct busted_rule. */
export function encodeRule(r: KernelRule, index: number): Buffer {
  const b = Buffer.alloc(RULE.size);
  const many = (what: string, list: unknown[] | null) => {
    if (list && list.length > RULE_ITEMS) {
      throw new RuleLimitError(`rule ${index} lists ${list.length} ${what}; the kernel takes at most ${RULE_ITEMS} per rule: split it into several rules`);
    }
  };
  many('executables', r.exes);
  many('uids', r.uids);
  many('comms', r.comms);
  many('cgroups', r.cgroups);
  let fields = 0;
  if (r.exes) fields |= RuleField.EXE;
  if (r.uids) fields |= RuleField.UID;
  if (r.comms) fields |= RuleField.COMM;
  if (r.cgroups) fields |= RuleField.CGROUP;
  if (r.hash) fields |= RuleField.HASH;
  if (r.never) fields |= RuleField.NEVER;
  b.writeUInt32LE(fields, RULE.fields);
  b.writeUInt8(r.action, RULE.action);
  b.writeUInt8(r.exes?.length ?? 0, RULE.n_exe);
  b.writeUInt8(r.uids?.length ?? 0, RULE.n_uid);
  b.writeUInt8(r.comms?.length ?? 0, RULE.n_comm);
  b.writeUInt8(r.cgroups?.length ?? 0, RULE.n_cgroup);
  let mask = 0n;
  for (const p of r.providers ?? []) {
    if (p < 0 || p > 63) throw new RuleLimitError(`rule ${index} names provider #${p}; the kernel distinguishes the first 64 providers only`);
    mask |= 1n << BigInt(p);
  }
  b.writeBigUInt64LE(mask, RULE.providers);
  (r.exes ?? []).forEach((e, i) => {
    b.writeUInt32LE(e.dev, RULE.exe + i * EXE_ID.size + EXE_ID.dev);
    b.writeBigUInt64LE(e.ino, RULE.exe + i * EXE_ID.size + EXE_ID.ino);
  });
  (r.uids ?? []).forEach((u, i) => b.writeUInt32LE(u, RULE.uid + i * 4));
  (r.comms ?? []).forEach((c, i) => {
    const bytes = Buffer.from(c, 'utf8').subarray(0, COMM_LEN - 1); // the kernel's comm is 15 bytes + NUL
    bytes.copy(b, RULE.comm + i * COMM_LEN);
  });
  (r.cgroups ?? []).forEach((c, i) => {
    b.writeBigUInt64LE(c.id, RULE.cgroup + i * CGROUP_REF.size + CGROUP_REF.id);
    b.writeUInt32LE(c.level, RULE.cgroup + i * CGROUP_REF.size + CGROUP_REF.level);
  });
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n, 0);
  return b;
}

export function procKey(tgid: number, startTicks: number): Buffer {
  const k = Buffer.alloc(PROC_KEY.size);
  k.writeUInt32LE(tgid, PROC_KEY.tgid);
  k.writeBigUInt64LE(BigInt(startTicks), PROC_KEY.start_ticks);
  return k;
}

export function exeKey(e: ExeId): Buffer {
  const k = Buffer.alloc(EXE_ID.size);
  k.writeUInt32LE(e.dev, EXE_ID.dev);
  k.writeBigUInt64LE(e.ino, EXE_ID.ino);
  return k;
}

/** LPM key for an address (4 or 16 bytes) and prefix length. */
export function lpmKey(addr: Uint8Array, prefixLen: number): Buffer {
  const layout = addr.length === 4 ? LPM4 : LPM6;
  const k = Buffer.alloc(layout.size);
  k.writeUInt32LE(prefixLen, layout.prefixlen);
  Buffer.from(addr).copy(k, layout.addr);
  return k;
}

export class Enforcer {
  private bank = 0;
  private state = { nrules: 0, defaultAction: Action.ALLOW as ActionValue, enforce: false, toggles: 0, cuts: 0, hashExec: false };

  /** `onCutting(true)` when the first flow is cut, `(false)` when none is any more. */
  constructor(
    private readonly maps: EnforcerMaps,
    private readonly onCutting?: (cutting: boolean) => void,
  ) {}

  /** Maps an address range (or one address, /32 or /128) to a catalog provider. */
  addDestination(addr: Uint8Array, prefixLen: number, provider: number): void {
    (addr.length === 4 ? this.maps.llmV4 : this.maps.llmV6).update(lpmKey(addr, prefixLen), u32(provider));
  }

  removeDestination(addr: Uint8Array, prefixLen: number): void {
    (addr.length === 4 ? this.maps.llmV4 : this.maps.llmV6).delete(lpmKey(addr, prefixLen));
  }

  /** Writes the rules to the idle bank, then makes it live in one write; returns that bank. */
  setPolicy(p: KernelPolicy): number {
    if (p.rules.length > MAX_RULES) throw new RuleLimitError(`the policy has ${p.rules.length} rules; at most ${MAX_RULES} fit in the kernel`);
    const encoded = p.rules.map((r, i) => encodeRule(r, i)); // every error before anything is written
    const next = this.bank ^ 1;
    encoded.forEach((buf, i) => this.maps.rules.update(u32(next * MAX_RULES + i), buf));
    this.bank = next;
    this.state = { ...this.state, nrules: p.rules.length, defaultAction: p.defaultAction, enforce: p.enforce, hashExec: p.hashExec ?? false };
    this.writePolicy();
    return next;
  }

  setEnforce(enforce: boolean): void {
    this.state.enforce = enforce;
    this.writePolicy();
  }

  /** A per-process verdict (busted-top's b/a keys); Action.NONE removes it. */
  setToggle(tgid: number, startTicks: number, action: ActionValue): void {
    const key = procKey(tgid, startTicks);
    if (action === Action.NONE) {
      if (this.maps.procVerdicts.delete(key)) this.state.toggles--;
    } else {
      const had = this.maps.procVerdicts.lookup(key, Buffer.alloc(1));
      this.maps.procVerdicts.update(key, Buffer.from([action]));
      if (!had) this.state.toggles++;
    }
    this.writePolicy();
  }

  /** The rules (bit i = rule i) whose sha256 the executable matched; 0n removes it. */
  setHashedExe(exe: ExeId, rulesMask: bigint): void {
    if (rulesMask === 0n) this.maps.hashedExes.delete(exeKey(exe));
    else this.maps.hashedExes.update(exeKey(exe), u64(rulesMask));
  }

  /** Drops the packets of an open flow (or lets them pass again). */
  setCut(cookie: bigint, cut: boolean): void {
    const before = this.state.cuts;
    if (cut) {
      const had = this.maps.cutSocks.lookup(u64(cookie), Buffer.alloc(1)); // cut twice: counted once
      this.maps.cutSocks.update(u64(cookie), Buffer.from([1]));
      if (!had) this.state.cuts++;
    } else if (this.maps.cutSocks.delete(u64(cookie))) {
      this.state.cuts--;
    }
    // the packet programs first, then the switch that makes them drop
    if (before === 0 && this.state.cuts > 0) this.onCutting?.(true);
    this.writePolicy();
    if (before > 0 && this.state.cuts === 0) this.onCutting?.(false);
  }

  private writePolicy(): void {
    const s = this.state;
    const b = Buffer.alloc(POLICY.size);
    b.writeUInt32LE(this.bank, POLICY.bank);
    b.writeUInt32LE(s.nrules, POLICY.nrules);
    b.writeUInt8(s.defaultAction, POLICY.default_action);
    b.writeUInt8(s.enforce ? 1 : 0, POLICY.enforce);
    const active = s.nrules > 0 || s.toggles > 0 || s.defaultAction === Action.AUDIT || s.defaultAction === Action.BLOCK;
    b.writeUInt8(active ? 1 : 0, POLICY.active);
    b.writeUInt8(s.cuts > 0 ? 1 : 0, POLICY.cut);
    b.writeUInt32LE(s.hashExec ? 1 : 0, POLICY.hash_exec);
    this.maps.policy.update(u32(0), b);
  }
}
