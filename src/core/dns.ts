/**
 * DNS answers seen by the kernel (cgroup_skb ingress, UDP or TCP source port 53) → which names an
 * address was handed out for. Records are decoded with `dns-packet`; everything else here is
 * bounds, normalisation and a bounded cache. Nothing in this file throws on network bytes.
 *
 * Also the address and host-name text forms the classifier keys on (`parseIp`, `formatIp`,
 * `canonicalIp`, `normalizeHostname`), so that a DNS answer, a kernel address and a catalog range
 * always compare equal.
 */
import dnsPacket from 'dns-packet';
import { memo } from './memo.js';

// ---------------------------------------------------------------------------------------------
// Addresses

export interface IpAddress {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/** Dotted quad, decimal only, no leading zeros (inet_aton would read "010" as octal). Char by
 * char: it runs for every connection classified. */
function parseIpv4(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // a '.' after the last part ends it
    if (c === 46) {
      if (digits === 0 || part > 3) return null;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return null; // a leading zero
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return null;
    } else {
      return null;
    }
  }
  return part === 4 ? out : null;
}

function parseGroups(text: string): number[] | null {
  if (text === '') return [];
  const groups: number[] = [];
  const parts = text.split(':');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i === parts.length - 1 && p.includes('.')) {
      const v4 = parseIpv4(p);
      if (!v4) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      groups.push(parseInt(p, 16));
    }
  }
  return groups;
}

function parseIpv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  let groups: number[];
  if (halves.length === 2) {
    const left = parseGroups(halves[0]!);
    const right = parseGroups(halves[1]!);
    if (!left || !right || left.length + right.length > 7) return null;
    groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    const all = parseGroups(text);
    if (!all || all.length !== 8) return null;
    groups = all;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/** Parses a textual IPv4 or IPv6 address (no zone id, no brackets, no port). v4-mapped IPv6 stays IPv6. */
export function parseIp(text: string): IpAddress | null {
  if (typeof text !== 'string') return null;
  if (text.includes(':')) {
    const bytes = parseIpv6(text);
    return bytes ? { family: 6, bytes } : null;
  }
  const bytes = parseIpv4(text);
  return bytes ? { family: 4, bytes } : null;
}

/** `::ffff:a.b.c.d` → `a.b.c.d`; every other address unchanged. */
export function unmapIp(ip: IpAddress): IpAddress {
  if (ip.family === 4) return ip;
  const b = ip.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return ip;
  if (b[10] !== 0xff || b[11] !== 0xff) return ip;
  return { family: 4, bytes: b.slice(12, 16) };
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest run of zero groups (≥ 2) as `::`. */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** One text form per address (v4-mapped IPv6 written as IPv4), or null when `text` is not an address. */
export function canonicalIp(text: string): string | null {
  return canonical(text);
}
/** Every connection's destination is looked up, and connections go to few addresses. */
const canonical = memo((text: string): string | null => {
  const ip = parseIp(text);
  return ip ? formatIp(unmapIp(ip)) : null;
});

// ---------------------------------------------------------------------------------------------
// Host names

const HOST_CHARS = /^[A-Za-z0-9._-]+$/;
const LABEL = /^[a-z0-9_-]{1,63}$/;

/**
 * A host name as busted compares and shows it: lower case, no trailing dot, ASCII letters, digits,
 * `-` and `_` only (IDNs arrive as `xn--` labels), labels of 1–63 characters, at most 253 in all,
 * and a last label that is not all digits (so an IP literal is not a name). Null when invalid.
 */
export function normalizeHostname(name: string): string | null {
  if (typeof name !== 'string' || name.length === 0 || name.length > 254) return null;
  if (!HOST_CHARS.test(name)) return null;
  let s = name.toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.length === 0 || s.length > 253) return null;
  const labels = s.split('.');
  for (const label of labels) if (!LABEL.test(label)) return null;
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return null;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Responses

export interface DnsAddress {
  /** Canonical text (see `canonicalIp`). */
  address: string;
  family: 4 | 6;
  /** Seconds: the smallest TTL along the CNAME chain and the address record. */
  ttl: number;
}

export interface DnsAnswer {
  id: number;
  /** `NOERROR`, `NXDOMAIN`, … */
  rcode: string;
  /** The question name, normalised. */
  name: string;
  /** The question type (`A`, `AAAA`, `HTTPS`, …). */
  type: string;
  /** The question name followed by each CNAME target in order; the last one holds `addresses`. */
  chain: string[];
  /** A and AAAA records of the chain's last name, de-duplicated. */
  addresses: DnsAddress[];
  /** The sample ended inside the answer section (kernel copy bound) or the TC bit was set. */
  truncated: boolean;
}

/** CNAME links followed at most; longer chains keep the names seen and give no addresses. */
export const MAX_CNAME_CHAIN = 16;
/** Answer records decoded at most per response. */
const MAX_ANSWERS = 256;
const HEADER_BYTES = 12;
const QR_BIT = 0x8000;
const TC_BIT = 0x0200;
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

type Decoder<T> = ((buf: Buffer, offset?: number) => T) & { bytes: number };
interface RawQuestion { name: string; type: string }
interface RawAnswer { name: string; type: string; class?: string; ttl?: number; data?: unknown }
// dns-packet exports its per-section codecs at run time; its type package only declares encode/decode.
const codec = dnsPacket as unknown as {
  question: { decode: Decoder<RawQuestion> };
  answer: { decode: Decoder<RawAnswer> };
};

interface AnswerRecord { name: string; type: string; ttl: number; data: unknown }

/**
 * Decodes one answer record with dns-packet and checks that it consumed exactly its RDLENGTH
 * (dns-packet trusts the type: an A record with RDLENGTH 2 would otherwise shift every later record).
 */
function readAnswer(buf: Buffer, offset: number): { rec: RawAnswer; next: number } | null {
  const rec = codec.answer.decode(buf, offset);
  const next = offset + codec.answer.decode.bytes;
  // RDATA follows the owner name, TYPE (2), CLASS (2), TTL (4) and RDLENGTH (2).
  const rdata = skipName(buf, offset) + 10;
  if (rdata > buf.length || next > buf.length) return null;
  if (rdata + buf.readUInt16BE(rdata - 2) !== next) return null;
  return { rec, next };
}

/** Offset just past the (possibly compressed) name at `offset`. */
function skipName(buf: Buffer, offset: number): number {
  let p = offset;
  while (p < buf.length) {
    const len = buf[p]!;
    if (len === 0) return p + 1;
    if ((len & 0xc0) !== 0) return p + 2;
    p += len + 1;
  }
  return buf.length + 1;
}

/**
 * Parses a DNS response (the UDP payload, or one TCP message without its length prefix).
 * Returns null for queries, packets without a question and malformed bytes. A sample cut short
 * inside the answer section still yields the complete records before the cut (`truncated`).
 */
export function parseDnsResponse(bytes: Uint8Array): DnsAnswer | null {
  try {
    return parseResponse(bytes);
  } catch {
    return null;
  }
}

function parseResponse(bytes: Uint8Array): DnsAnswer | null {
  if (!(bytes instanceof Uint8Array) || bytes.length < HEADER_BYTES || bytes.length > 65535) return null;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = buf.readUInt16BE(2);
  if ((flags & QR_BIT) === 0) return null;
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  if (qdcount === 0) return null;

  let offset = HEADER_BYTES;
  let question: RawQuestion | null = null;
  for (let i = 0; i < qdcount; i++) {
    const q = codec.question.decode(buf, offset);
    offset += codec.question.decode.bytes;
    if (offset > buf.length) return null;
    question ??= q;
  }
  const name = question ? normalizeHostname(question.name) : null;
  if (!question || !name) return null;

  const records: AnswerRecord[] = [];
  let truncated = (flags & TC_BIT) !== 0;
  for (let i = 0; i < Math.min(ancount, MAX_ANSWERS); i++) {
    let read: { rec: RawAnswer; next: number } | null;
    try {
      read = readAnswer(buf, offset);
    } catch {
      read = null;
    }
    if (!read) { truncated = true; break; }
    offset = read.next;
    const { rec } = read;
    const owner = normalizeHostname(rec.name);
    if (!owner || (rec.class !== undefined && rec.class !== 'IN')) continue;
    records.push({ name: owner, type: rec.type, ttl: rec.ttl ?? 0, data: rec.data });
  }

  const { chain, ttl } = followChain(name, records);
  const addresses = chain.length <= MAX_CNAME_CHAIN + 1 ? collectAddresses(chain[chain.length - 1]!, records, ttl) : [];
  return {
    id: buf.readUInt16BE(0),
    rcode: RCODES[flags & 0xf] ?? `RCODE${flags & 0xf}`,
    name,
    type: question.type,
    chain,
    addresses,
    truncated,
  };
}

function followChain(name: string, records: AnswerRecord[]): { chain: string[]; ttl: number } {
  const chain = [name];
  const seen = new Set(chain);
  let ttl = Number.MAX_SAFE_INTEGER;
  let current = name;
  for (let hops = 0; hops <= MAX_CNAME_CHAIN; hops++) {
    const link = records.find((r) => r.type === 'CNAME' && r.name === current);
    if (!link) break;
    const target = typeof link.data === 'string' ? normalizeHostname(link.data) : null;
    if (!target || seen.has(target)) break; // a loop or a bad name ends the chain
    ttl = Math.min(ttl, link.ttl);
    chain.push(target);
    seen.add(target);
    current = target;
  }
  return { chain, ttl };
}

function collectAddresses(owner: string, records: AnswerRecord[], chainTtl: number): DnsAddress[] {
  const out = new Map<string, DnsAddress>();
  for (const r of records) {
    if (r.name !== owner || (r.type !== 'A' && r.type !== 'AAAA') || typeof r.data !== 'string') continue;
    const ip = parseIp(r.data);
    if (!ip || (r.type === 'A') !== (ip.family === 4)) continue;
    const target = unmapIp(ip); // a v4-mapped AAAA is connected to over IPv4
    const address = formatIp(target);
    const ttl = Math.min(chainTtl, r.ttl);
    const prev = out.get(address);
    if (!prev || prev.ttl < ttl) out.set(address, { address, family: target.family, ttl });
  }
  return [...out.values()];
}

// ---------------------------------------------------------------------------------------------
// DNS over TCP

/** Splits a TCP/53 byte stream into complete messages (each after its 2-byte length); `rest` is an incomplete tail. */
export function splitDnsTcp(stream: Uint8Array): { messages: Uint8Array[]; rest: Uint8Array } {
  const messages: Uint8Array[] = [];
  let p = 0;
  while (p + 2 <= stream.length) {
    const len = (stream[p]! << 8) | stream[p + 1]!;
    if (p + 2 + len > stream.length) break;
    if (len > 0) messages.push(stream.subarray(p + 2, p + 2 + len));
    p += 2 + len;
  }
  return { messages, rest: stream.subarray(p) };
}

/** Prefixes a DNS message with its 2-byte length, as on TCP. */
export function frameDnsTcp(message: Uint8Array): Uint8Array {
  if (message.length > 0xffff) throw new RangeError('a DNS message over TCP is at most 65535 bytes');
  const out = new Uint8Array(message.length + 2);
  out[0] = message.length >> 8;
  out[1] = message.length & 0xff;
  out.set(message, 2);
  return out;
}

/**
 * Parses the first response of a TCP/53 sample (length prefix first). If the sample is cut short,
 * the available bytes are parsed as a truncated message.
 */
export function parseDnsTcpResponse(sample: Uint8Array): DnsAnswer | null {
  if (sample.length < 2 + HEADER_BYTES) return null;
  const len = (sample[0]! << 8) | sample[1]!;
  if (len < HEADER_BYTES) return null;
  return parseDnsResponse(sample.subarray(2, Math.min(sample.length, 2 + len)));
}

// ---------------------------------------------------------------------------------------------
// Cache: address → names it was handed out for

export interface DnsCacheOptions {
  /** Addresses kept at most; the least recently used goes first. Default 16384. */
  maxAddresses?: number;
  /** Names kept per address at most; the least recently seen goes first. Default 8. */
  maxNamesPerAddress?: number;
  /** TTL floor in seconds: clients reuse an answer for a while after a short TTL. Default 60. */
  minTtlS?: number;
  /** TTL ceiling in seconds, so a stale association does not live for days. Default 3600. */
  maxTtlS?: number;
}

interface NameEntry { expiresMs: number }

/**
 * Which names each address was recently given out for, as this host's DNS answers said.
 * Bounded in addresses (LRU) and in names per address; entries expire by TTL (clamped).
 */
export class DnsCache {
  private readonly byAddress = new Map<string, Map<string, NameEntry>>();
  private readonly maxAddresses: number;
  private readonly maxNames: number;
  private readonly minTtlMs: number;
  private readonly maxTtlMs: number;

  constructor(options: DnsCacheOptions = {}) {
    this.maxAddresses = Math.max(1, options.maxAddresses ?? 16384);
    this.maxNames = Math.max(1, options.maxNamesPerAddress ?? 8);
    this.minTtlMs = Math.max(0, options.minTtlS ?? 60) * 1000;
    this.maxTtlMs = Math.max(this.minTtlMs, (options.maxTtlS ?? 3600) * 1000);
  }

  /** Remembers every address of a parsed response for its question name. */
  add(answer: DnsAnswer, nowMs: number): void {
    for (const a of answer.addresses) this.remember(a.address, answer.name, a.ttl, nowMs);
  }

  /** Remembers that `ip` was given out for `name` with a TTL of `ttlS` seconds. Invalid input is ignored. */
  remember(ip: string, name: string, ttlS: number, nowMs: number): void {
    const key = canonicalIp(ip);
    const host = normalizeHostname(name);
    if (!key || !host || !Number.isFinite(ttlS) || !Number.isFinite(nowMs)) return;
    const ttlMs = Math.min(this.maxTtlMs, Math.max(this.minTtlMs, ttlS * 1000));
    let names = this.byAddress.get(key);
    if (names) this.byAddress.delete(key); // re-insert below: most recently used last
    names ??= new Map();
    this.byAddress.set(key, names);
    names.delete(host);
    names.set(host, { expiresMs: nowMs + ttlMs });
    this.expire(names, nowMs);
    while (names.size > this.maxNames) names.delete(names.keys().next().value!);
    while (this.byAddress.size > this.maxAddresses) this.byAddress.delete(this.byAddress.keys().next().value!);
  }

  /** Names `ip` was given out for that have not expired at `nowMs`, the most recently seen first. */
  namesFor(ip: string, nowMs: number): string[] {
    const key = canonicalIp(ip);
    const names = key ? this.byAddress.get(key) : undefined;
    if (!key || !names) return [];
    this.expire(names, nowMs);
    this.byAddress.delete(key);
    if (names.size === 0) return [];
    this.byAddress.set(key, names);
    return [...names.keys()].reverse();
  }

  /** Addresses held (expired names are dropped lazily). */
  get size(): number {
    return this.byAddress.size;
  }

  clear(): void {
    this.byAddress.clear();
  }

  private expire(names: Map<string, NameEntry>, nowMs: number): void {
    for (const [name, e] of names) if (e.expiresMs <= nowMs) names.delete(name);
  }
}
