/**
 * The kernel/user ABI of bpf/busted.h, decoded with DataView. test/unit/abi.test.ts compiles a
 * probe against busted.h and checks every size and offset here, so a change on one side fails.
 * Ring records are decoded in place: `length` bytes at `offset` of one DataView over the whole
 * ring (bpf/ringbuf.ts), every byte that is kept copied out (the ring's memory is reused).
 */

export const COMM_LEN = 16;

export const Kind = { CONNECT: 1, FAIL: 2, CLOSE: 3, PAYLOAD: 4, POLICY: 5, EXEC: 6, BRIEF: 7 } as const;

/* ---- enforcement ---- */

export const MAX_RULES = 64;
export const RULE_ITEMS = 8;
export const Action = { NONE: 0, ALLOW: 1, AUDIT: 2, BLOCK: 3 } as const;
export type ActionValue = (typeof Action)[keyof typeof Action];
export const RuleField = { EXE: 1, UID: 2, COMM: 4, CGROUP: 8, HASH: 16, NEVER: 32 } as const;
export const RULE_DEFAULT = 0xffff;
export const RULE_TOGGLE = 0xfffe;

/** struct busted_exe_id */
export const EXE_ID = { size: 16, dev: 0, ino: 8 } as const;
/** struct busted_cgroup_ref */
export const CGROUP_REF = { size: 16, id: 0, level: 8 } as const;
/** struct busted_rule */
export const RULE = {
  size: 440, fields: 0, action: 4, n_exe: 5, n_uid: 6, n_comm: 7, n_cgroup: 8, providers: 16,
  exe: 24, uid: 152, comm: 184, cgroup: 312,
} as const;
/** struct busted_policy */
export const POLICY = { size: 16, bank: 0, nrules: 4, default_action: 8, enforce: 9, active: 10, cut: 11, hash_exec: 12 } as const;
/** struct busted_exec_event */
export const EXEC_EVENT = { size: 32, kind: 0, tgid: 4, start_ns: 8, exe: 16 } as const;

export interface ExecEvent {
  kind: typeof Kind.EXEC;
  tgid: number;
  startNs: bigint;
  exeDev: number;
  exeIno: bigint;
}

export function decodeExecEvent(view: DataView, offset: number, length: number): ExecEvent | null {
  if (!fits(view, offset, length, EXEC_EVENT.size) || view.getUint32(offset, true) !== Kind.EXEC) return null;
  return {
    kind: Kind.EXEC,
    tgid: view.getUint32(offset + EXEC_EVENT.tgid, true),
    startNs: view.getBigUint64(offset + EXEC_EVENT.start_ns, true),
    exeDev: view.getUint32(offset + EXEC_EVENT.exe + EXE_ID.dev, true),
    exeIno: view.getBigUint64(offset + EXEC_EVENT.exe + EXE_ID.ino, true),
  };
}
/** struct busted_proc_key */
export const PROC_KEY = { size: 16, tgid: 0, start_ticks: 8 } as const;
/** struct busted_lpm4 / busted_lpm6 */
export const LPM4 = { size: 8, prefixlen: 0, addr: 4 } as const;
export const LPM6 = { size: 20, prefixlen: 0, addr: 4 } as const;
/** struct busted_policy_event */
export const POLICY_EVENT = {
  size: 104, kind: 0, family: 4, proto: 6, ts_ns: 8, tgid: 16, tid: 20, uid: 24, gid: 28, start_ns: 32,
  cgroup_id: 40, daddr: 48, dport: 64, action: 66, denied: 67, rule: 68, bank: 70, provider: 72, comm: 80,
} as const;

export interface PolicyDecision {
  kind: typeof Kind.POLICY;
  family: number;
  proto: number;
  tsNs: bigint;
  tgid: number;
  tid: number;
  uid: number;
  gid: number;
  startNs: bigint;
  cgroupId: bigint;
  daddr: Uint8Array;
  dport: number;
  action: number;
  denied: boolean;
  rule: number;
  /** The rule bank (0 or 1) the kernel decided by: `rule` is an index into that bank's policy. */
  bank: number;
  provider: number;
  comm: string;
}

export function decodePolicyEvent(view: DataView, offset: number, length: number): PolicyDecision | null {
  if (!fits(view, offset, length, POLICY_EVENT.size) || view.getUint32(offset, true) !== Kind.POLICY) return null;
  const P = POLICY_EVENT;
  const o = offset;
  return {
    kind: Kind.POLICY,
    family: view.getUint16(o + P.family, true),
    proto: view.getUint16(o + P.proto, true),
    tsNs: view.getBigUint64(o + P.ts_ns, true),
    tgid: view.getUint32(o + P.tgid, true),
    tid: view.getUint32(o + P.tid, true),
    uid: view.getUint32(o + P.uid, true),
    gid: view.getUint32(o + P.gid, true),
    startNs: view.getBigUint64(o + P.start_ns, true),
    cgroupId: view.getBigUint64(o + P.cgroup_id, true),
    daddr: copyBytes(view, o + P.daddr, 16),
    dport: view.getUint16(o + P.dport, true),
    action: view.getUint8(o + P.action),
    denied: view.getUint8(o + P.denied) === 1,
    rule: view.getUint16(o + P.rule, true),
    bank: view.getUint16(o + P.bank, true),
    provider: view.getUint32(o + P.provider, true),
    comm: decodeCStringAt(view, o + P.comm, COMM_LEN),
  };
}

export const PayloadWhat = { TLS: 1, DNS: 2 } as const;
export type PayloadWhatValue = (typeof PayloadWhat)[keyof typeof PayloadWhat];

export const PAYLOAD_MAX = 1024;
export const PAYLOAD_CHUNKS = 4;
export const HELLO_MAX = 4096;
/** Bytes of an HTTP CONNECT request sampled at most, its request line only (BUSTED_CONNECT_MAX). */
export const CONNECT_MAX = 512;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export type KindValue = (typeof Kind)[keyof typeof Kind];

export const Stat = { LOST: 0, UNTRACKED: 1, OVERFLOW: 2, QUIET: 3, QUIET_FAILED: 4, UNSEEN: 5, UNSEEN_LAST: 6, MAX: 22 } as const;
/** TCP state numbers the census tells apart (BUSTED_TCP_STATES): Stat.UNSEEN_LAST + s counts the
 * unseen ends last met in state s. */
export const TCP_STATES = 16;
/** The kernel's TCP state names by number (include/net/tcp_states.h); 0: the census never met it. */
export const TCP_STATE_NAMES: readonly string[] = ['none', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV', 'BOUND_INACTIVE'];

export const AF_INET = 2;
export const AF_INET6 = 10;

/** struct busted_config: the object's only .rodata variable, at offset 0. */
export const CONFIG = { size: 40, self_tgid: 0, udp_port: 4, sample_payload: 6, quiet: 7, model_ports: 8 } as const;
/** Entries of busted_config.model_ports (u16 each). */
export const MODEL_PORTS = 16;
/** busted_traffic.announced (BUSTED_ANNOUNCED_*): whether a tracked socket's CONNECT went out. */
export const Announced = { NO: 0, YES: 1, QUIET: 2, KEPT: 3, DONE: 4 } as const;
/** config.quiet: what becomes of a TCP connection the kernel can tell is not LLM traffic (BUSTED_QUIET_*). */
export const QuietMode = { OFF: 0, COUNT: 1, LATE: 2 } as const;
/** Keys of the `dns_sync` array (u64 values: bpf_ktime_get_ns times). */
export const DnsSync = { SEEN: 0, APPLIED: 1 } as const;

/** struct busted_owner */
export const OWNER = {
  size: 64,
  tgid: 0,
  tid: 4,
  uid: 8,
  gid: 12,
  cgroup_id: 16,
  start_ns: 24,
  exe_ino: 32,
  exe_dev: 40,
  ppid: 44,
  comm: 48,
} as const;

export const PATH_MAX = 248;

/** struct busted_exec (value of the `execs` array, in slot tgid & (EXEC_SLOTS - 1)) */
export const EXEC = { size: 272, tgid: 0, seq: 8, start_ns: 16, path: 24 } as const;

/** BUSTED_EXEC_SLOTS: entries of the `execs` array (a power of two). */
export const EXEC_SLOTS = 8192;

/** struct busted_sock */
export const SOCK = { size: 88, owner: 0, connect_ns: 64, proto: 72, hello_need: 74, netns: 76, tx_base: 80 } as const;
/** struct busted_census_slot: the `census` array's entry per counter slot. */
export const CENSUS_SLOT = { size: 16, cookie: 0, seen: 8, missed: 12, state: 14 } as const;
/** struct busted_census_cfg: the `census_cfg` array's one entry. */
export const CENSUS_CFG = { size: 16, start_ns: 0, gen: 8, finish: 12 } as const;
/** Censuses in a row that must miss a tracked socket before it is finished (BUSTED_CENSUS_MISSES). */
export const CENSUS_MISSES = 2;
/** Network namespaces one census can walk (BUSTED_CENSUS_NETNS_MAX: the `census_ns` hash). */
export const CENSUS_NETNS_MAX = 1024;
/** busted_event.error of a CLOSE the census made: no hook saw the connection end (BUSTED_END_UNSEEN). */
export const END_UNSEEN = -1;


/** struct busted_payload */
export const PAYLOAD = {
  size: 1104,
  kind: 0,
  family: 4,
  what: 6,
  proto: 7,
  cookie: 8,
  ts_ns: 16,
  offset: 24,
  len: 28,
  total: 32,
  saddr: 40,
  daddr: 56,
  sport: 72,
  dport: 74,
  data: 80,
} as const;

/** struct busted_traffic */
export const TRAFFIC = { size: 24, tx: 0, rx: 8, announced: 16 } as const;

/** struct busted_slot: one entry of the mmap'd `traffic_slots` array (busted.h: life of a slot). */
export const SLOT = { size: 32, cookie: 0, counters: 8 } as const;
export const SLOTS = 65536;
export const SLOT_PROBES = 4;
export const OVERFLOW_MAX = 16384;
/** A slot's cookie while it is being claimed: never a socket's. */
export const SLOT_BUSY = 0xffff_ffff_ffff_ffffn;

/** struct busted_event */
export const EVENT = {
  size: 152,
  kind: 0,
  family: 4,
  proto: 6,
  cookie: 8,
  ts_ns: 16,
  owner: 24,
  saddr: 88,
  daddr: 104,
  sport: 120,
  dport: 122,
  error: 124,
  connect_ns: 128,
  tx: 136,
  rx: 144,
} as const;

/** The process a connecting thread belongs to, as that thread saw it (its comm is the thread's). */
export interface Owner {
  tgid: number;
  uid: number;
  gid: number;
  cgroupId: bigint;
  startNs: bigint;
  exeIno: bigint;
  exeDev: number;
  ppid: number;
  comm: string;
}

/**
 * A socket cookie: a number while it is below 2^53 (always, in practice: the kernel counts
 * sockets from 1), a bigint above. `flowId(cookie)` is the flow id either way.
 */
export type Cookie = number | bigint;

/**
 * A CONNECT or FAIL record: who made the connection, from where to where. Or a BRIEF one (busted
 * --all: a connection the kernel kept back until it closed): that, with its CLOSE's `tsNs` and
 * totals in `tx` and `rx`.
 */
export interface ConnectEvent {
  kind: typeof Kind.CONNECT | typeof Kind.FAIL | typeof Kind.BRIEF;
  proto: number;
  cookie: Cookie;
  /** Monotonic ns (a number: exact for 104 days after boot, within a few ns after that). */
  tsNs: number;
  /** Monotonic ns of its connect() (the kernel's connect hook). */
  connectNs: number;
  owner: Owner;
  /** The connecting thread. */
  tid: number;
  /** `ip:port` as busted's records write it (formatEndpoint). */
  src: string;
  dst: string;
  /** FAIL: the socket's error (positive errno), or 0 when none was set. */
  error: number;
  /** BRIEF: bytes sent and received (0 for CONNECT and FAIL). */
  tx: number;
  rx: number;
}

/** A CLOSE record: the flow's totals. The owner and addresses are the connect's; not decoded again. */
export interface CloseEvent {
  kind: typeof Kind.CLOSE;
  cookie: Cookie;
  tsNs: number;
  pid: number;
  connectNs: number;
  /** Bytes (exact up to 2^53, 9 PB). */
  tx: number;
  rx: number;
  /** No hook saw it end: the census found its socket gone from the kernel's TCP tables (END_UNSEEN). */
  unseen: boolean;
}

/**
 * A cookie's flow id (its decimal). Through a BigInt, not String(number): V8 keeps the strings
 * String(number) makes in its number-to-string cache, and a new cookie every connection kept each
 * flow id alive there past a young collection or two. That more than doubled what each young
 * collection copied and its time (--trace-gc-nvp at 10k connections/s: 1.5 -> 3.5 ms each).
 */
export const flowId = (cookie: Cookie): string => BigInt(cookie).toString();

const TWO_32 = 4294967296;

/** The u64 at `off` of `view` as a number (the nearest double above 2^53). No BigInt is made. */
function u64At(view: DataView, off: number): number {
  return view.getUint32(off + 4, true) * TWO_32 + view.getUint32(off, true);
}

/** The cookie at `off` of `view`: a number while exact, else a bigint. */
function cookieAt(view: DataView, off: number): Cookie {
  const hi = view.getUint32(off + 4, true);
  return hi < 0x20_0000 ? hi * TWO_32 + view.getUint32(off, true) : view.getBigUint64(off, true);
}

export type KernelEvent = ConnectEvent | CloseEvent;

const utf8 = new TextDecoder('utf-8');

/** A NUL-terminated C string in a fixed-size field. */
export function decodeCString(bytes: Uint8Array): string {
  return decodeCStringAt(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength);
}

/** A NUL-terminated C string in the `size` bytes at `offset` of `view`. */
export function decodeCStringAt(view: DataView, offset: number, size: number): string {
  // names are nearly always ASCII: build those directly (TextDecoder costs more than the
  // whole rest of a record's decoding for 16 bytes)
  let ascii = '';
  for (let i = 0; i < size; i++) {
    const b = view.getUint8(offset + i);
    if (b === 0) return ascii;
    if (b > 0x7e || b < 0x20) {
      const bytes = copyBytes(view, offset, size);
      const end = bytes.indexOf(0);
      return utf8.decode(end < 0 ? bytes : bytes.subarray(0, end));
    }
    ascii += String.fromCharCode(b);
  }
  return ascii;
}

/** The struct busted_owner at `base` of `view`. */
export function decodeOwner(view: DataView, base: number): Owner {
  return {
    tgid: view.getUint32(base + OWNER.tgid, true),
    uid: view.getUint32(base + OWNER.uid, true),
    gid: view.getUint32(base + OWNER.gid, true),
    cgroupId: view.getBigUint64(base + OWNER.cgroup_id, true),
    startNs: view.getBigUint64(base + OWNER.start_ns, true),
    exeIno: view.getBigUint64(base + OWNER.exe_ino, true),
    exeDev: view.getUint32(base + OWNER.exe_dev, true),
    ppid: view.getUint32(base + OWNER.ppid, true),
    comm: decodeCStringAt(view, base + OWNER.comm, COMM_LEN),
  };
}

export interface PayloadSample {
  kind: typeof Kind.PAYLOAD;
  what: PayloadWhatValue;
  family: number;
  proto: number;
  cookie: bigint;
  tsNs: bigint;
  /** TLS: stream offset of `data` from the flow's first payload byte. */
  offset: number;
  /** Payload bytes in the packet (data may hold fewer). */
  total: number;
  saddr: Uint8Array;
  daddr: Uint8Array;
  sport: number;
  dport: number;
  data: Uint8Array;
}

/** Copies bytes out of the ring (its memory is reused once the record is consumed). */
function copyBytes(view: DataView, off: number, len: number): Uint8Array {
  if (len > 64) return new Uint8Array(view.buffer.slice(view.byteOffset + off, view.byteOffset + off + len));
  const out = new Uint8Array(len); // small arrays live on the JS heap: no backing-store allocation
  for (let i = 0; i < len; i++) out[i] = view.getUint8(off + i);
  return out;
}

/** A record of `length` bytes at `offset` holds a struct of `size` bytes, all inside `view`. */
function fits(view: DataView, offset: number, length: number, size: number): boolean {
  return length >= size && offset >= 0 && offset + size <= view.byteLength;
}

/**
 * Decodes the ring-buffer record of `length` bytes at `offset` of `view`; returns null when it is
 * too short or of an unknown kind.
 */
export function decodeRecord(view: DataView, offset: number, length: number): KernelEvent | PayloadSample | PolicyDecision | ExecEvent | null {
  if (!fits(view, offset, length, 4)) return null;
  const kind = view.getUint32(offset, true);
  if (kind === Kind.PAYLOAD) return decodePayload(view, offset, length);
  if (kind === Kind.POLICY) return decodePolicyEvent(view, offset, length);
  if (kind === Kind.EXEC) return decodeExecEvent(view, offset, length);
  return decodeEvent(view, offset, length);
}

export function decodePayload(view: DataView, offset: number, length: number): PayloadSample | null {
  if (!fits(view, offset, length, PAYLOAD.size) || view.getUint32(offset + PAYLOAD.kind, true) !== Kind.PAYLOAD) return null;
  const o = offset;
  const what = view.getUint8(o + PAYLOAD.what);
  if (what !== PayloadWhat.TLS && what !== PayloadWhat.DNS) return null;
  const len = Math.min(view.getUint32(o + PAYLOAD.len, true), PAYLOAD_MAX);
  return {
    kind: Kind.PAYLOAD,
    what,
    family: view.getUint16(o + PAYLOAD.family, true),
    proto: view.getUint8(o + PAYLOAD.proto),
    cookie: view.getBigUint64(o + PAYLOAD.cookie, true),
    tsNs: view.getBigUint64(o + PAYLOAD.ts_ns, true),
    offset: view.getUint32(o + PAYLOAD.offset, true),
    total: view.getUint32(o + PAYLOAD.total, true),
    saddr: copyBytes(view, o + PAYLOAD.saddr, 16),
    daddr: copyBytes(view, o + PAYLOAD.daddr, 16),
    sport: view.getUint16(o + PAYLOAD.sport, true),
    dport: view.getUint16(o + PAYLOAD.dport, true),
    data: copyBytes(view, o + PAYLOAD.data, len),
  };
}

export function decodeEvent(view: DataView, offset: number, length: number): KernelEvent | null {
  if (!fits(view, offset, length, EVENT.size)) return null;
  const o = offset;
  const kind = view.getUint32(o + EVENT.kind, true);
  if (kind === Kind.CLOSE) {
    // two records per connection: the close carries only what the connect did not
    return {
      kind, cookie: cookieAt(view, o + EVENT.cookie), tsNs: u64At(view, o + EVENT.ts_ns),
      pid: view.getUint32(o + EVENT.owner + OWNER.tgid, true), connectNs: u64At(view, o + EVENT.connect_ns),
      tx: u64At(view, o + EVENT.tx), rx: u64At(view, o + EVENT.rx),
      unseen: view.getInt32(o + EVENT.error, true) === END_UNSEEN,
    };
  }
  if (kind !== Kind.CONNECT && kind !== Kind.FAIL && kind !== Kind.BRIEF) return null;
  const family = view.getUint16(o + EVENT.family, true);
  return {
    kind,
    proto: view.getUint16(o + EVENT.proto, true),
    cookie: cookieAt(view, o + EVENT.cookie),
    tsNs: u64At(view, o + EVENT.ts_ns),
    connectNs: u64At(view, o + EVENT.connect_ns),
    owner: ownerAt(view, o + EVENT.owner),
    tid: view.getUint32(o + EVENT.owner + OWNER.tid, true),
    src: endpointAt(view, o + EVENT.saddr, family, view.getUint16(o + EVENT.sport, true)),
    dst: endpointAt(view, o + EVENT.daddr, family, view.getUint16(o + EVENT.dport, true)),
    error: view.getInt32(o + EVENT.error, true),
    tx: kind === Kind.BRIEF ? u64At(view, o + EVENT.tx) : 0,
    rx: kind === Kind.BRIEF ? u64At(view, o + EVENT.rx) : 0,
  };
}

/**
 * The last connect's owner, as decoded and as its 64 bytes: a burst of connects comes from one
 * process, its threads taking turns (the thread id is not part of the owner).
 */
let lastOwner: Owner | null = null;
const lastOwnerWords = new Uint32Array(OWNER.size / 4);
const TID_WORD = OWNER.tid / 4;

/** decodeOwner, giving the previous record's Owner object again when the bytes are the same (it is never changed). */
function ownerAt(view: DataView, base: number): Owner {
  const w = lastOwnerWords;
  let same = lastOwner !== null;
  for (let i = 0; i < w.length; i++) {
    if (i === TID_WORD) continue;
    const v = view.getUint32(base + i * 4, true);
    if (v !== w[i]) {
      same = false;
      w[i] = v;
    }
  }
  if (same) return lastOwner!;
  lastOwner = decodeOwner(view, base);
  return lastOwner;
}

/** IPv4 addresses as text, by their 32 bits: connections go to few addresses, each written once. */
const v4Text = new Map<number, string>();
/** The last two addresses looked up (a connect's source and destination), without the map. */
let v4KeyA = -1;
let v4IpA = '';
let v4KeyB = -1;
let v4IpB = '';

/**
 * `:port` for each port seen, made once: String(port) for a new source port every connection
 * filled V8's number-to-string cache, which keeps what it holds alive past young collections
 * (see flowId). At most 65,536 short strings.
 */
const portText: (string | undefined)[] = new Array(65536);

/** The IPv4 address whose 32 bits (big-endian) are `key`, as text. */
function v4At(view: DataView, off: number, key: number): string {
  if (key === v4KeyA) return v4IpA;
  if (key === v4KeyB) return v4IpB;
  let ip = v4Text.get(key);
  if (ip === undefined) {
    if (v4Text.size >= 4096) v4Text.clear();
    ip = `${view.getUint8(off)}.${view.getUint8(off + 1)}.${view.getUint8(off + 2)}.${view.getUint8(off + 3)}`;
    v4Text.set(key, ip);
  }
  v4KeyB = v4KeyA;
  v4IpB = v4IpA;
  v4KeyA = key;
  v4IpA = ip;
  return ip;
}

/** The endpoint whose 16 address bytes are at `off` of `view`, as formatEndpoint writes it. */
function endpointAt(view: DataView, off: number, family: number, port: number): string {
  let v4 = -1;
  if (family === AF_INET) v4 = off;
  else if (view.getUint32(off, true) === 0 && view.getUint32(off + 4, true) === 0 && view.getUint32(off + 8, false) === 0xffff) v4 = off + 12;
  if (v4 < 0) return formatEndpoint(family, copyBytes(view, off, 16), port);
  return v4At(view, v4, view.getUint32(v4, false)) + (portText[port] ??= `:${port}`);
}

/** Formats an address as busted's records do: `ip:port`, IPv6 as `[ip]:port`, v4-mapped v6 as v4. */
export function formatEndpoint(family: number, addr: Uint8Array, port: number): string {
  if (family === AF_INET) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}:${port}`;
  const mapped = addr.subarray(0, 10).every((b) => b === 0) && addr[10] === 0xff && addr[11] === 0xff;
  if (mapped) return `${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}:${port}`;
  return `[${formatIpv6(addr)}]:${port}`;
}

export function formatIpv6(addr: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((addr[i]! << 8) | addr[i + 1]!);
  // RFC 5952: compress the longest run (length ≥ 2) of zero groups, the first one on a tie
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}
