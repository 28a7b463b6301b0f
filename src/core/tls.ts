/**
 * TLS ClientHello → server name (SNI), ALPN and the highest version offered, from the first bytes
 * of a TCP stream (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2, RFC 6066 §3, RFC 7301, RFC 8701 GREASE).
 *
 * The bytes come from the network: every length is checked against what is there, every loop
 * advances by at least one byte of input, and nothing throws. A handshake message split over several
 * TLS records, or over several kernel samples (`ClientHelloAssembler`), is put back together first.
 */
import { normalizeHostname } from './dns.js';

export type TlsVersion = 'SSL3.0' | 'TLS1.0' | 'TLS1.1' | 'TLS1.2' | 'TLS1.3';

export interface ClientHelloInfo {
  /** server_name host_name, normalised; null when absent or not a valid host name. */
  sni: string | null;
  /** ALPN protocol names in the client's order (GREASE values and unprintable names left out). */
  alpn: string[];
  /** The highest version offered (supported_versions when present, else legacy_version). */
  version: TlsVersion;
  /** encrypted_client_hello present: `sni` is then the public (outer) name, not the real server. */
  ech: boolean;
}

/** Default bound of bytes an assembler keeps per flow. */
export const MAX_CLIENT_HELLO_BYTES = 16384;

const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const MAX_RECORD = 1 << 14; // TLSPlaintext.length limit
const MAX_MESSAGE = 1 << 17; // a ClientHello's fields cannot add up to more
// legacy_version (2) + random (32) + session_id (1) + cipher_suites (2+2) + compression (1+1)
const MIN_BODY = 41;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ECH = 0xfe0d;
const MAX_ALPN = 16;
const VERSIONS: Record<number, TlsVersion> = {
  0x0300: 'SSL3.0', 0x0301: 'TLS1.0', 0x0302: 'TLS1.1', 0x0303: 'TLS1.2', 0x0304: 'TLS1.3',
};

/** RFC 8701 reserves 0x0A0A, 0x1A1A, …, 0xFAFA for GREASE in every 16-bit code point space. */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && (value >> 8) === (value & 0xff);
}

type Walk =
  | { kind: 'invalid' }
  | { kind: 'need'; bytes: number }
  | { kind: 'complete'; end: number; message: Uint8Array };

/**
 * Walks the TLS records at the start of `bytes`, gathering the first handshake message.
 * `need` is a lower bound on the stream bytes still required (exact once the lengths are known).
 */
function walkRecords(bytes: Uint8Array): Walk {
  const parts: Uint8Array[] = [];
  let have = 0; // handshake bytes gathered so far
  let total = -1; // handshake message length with its header, once known
  let pos = 0;
  for (;;) {
    if (pos >= bytes.length) return { kind: 'need', bytes: pos + RECORD_HEADER + (total < 0 ? HANDSHAKE_HEADER - have : total - have) };
    if (bytes[pos] !== CONTENT_HANDSHAKE) return { kind: 'invalid' };
    if (pos + 1 < bytes.length && bytes[pos + 1] !== 3) return { kind: 'invalid' };
    if (pos + 2 < bytes.length && bytes[pos + 2]! > 4) return { kind: 'invalid' };
    if (pos + RECORD_HEADER > bytes.length) return { kind: 'need', bytes: pos + RECORD_HEADER };
    const recLen = (bytes[pos + 3]! << 8) | bytes[pos + 4]!;
    if (recLen === 0 || recLen > MAX_RECORD) return { kind: 'invalid' };
    const start = pos + RECORD_HEADER;
    const end = start + recLen;
    const avail = Math.min(end, bytes.length);
    parts.push(bytes.subarray(start, avail));
    const before = have;
    have += avail - start;
    if (before === 0 && avail > start && bytes[start] !== HANDSHAKE_CLIENT_HELLO) return { kind: 'invalid' };
    if (total < 0 && have >= HANDSHAKE_HEADER) {
      const header = gather(parts, HANDSHAKE_HEADER);
      const bodyLen = (header[1]! << 16) | (header[2]! << 8) | header[3]!;
      if (bodyLen < MIN_BODY || bodyLen > MAX_MESSAGE) return { kind: 'invalid' };
      total = HANDSHAKE_HEADER + bodyLen;
    }
    if (total >= 0 && have >= total) {
      const endOfMessage = start + (total - before);
      return { kind: 'complete', end: endOfMessage, message: gather(parts, total) };
    }
    if (end > bytes.length) {
      if (total < 0) return { kind: 'need', bytes: Math.max(end, start + HANDSHAKE_HEADER) };
      const missing = total - have; // handshake bytes still to come
      const roomLeft = end - avail; // of them, how many fit in this record
      return { kind: 'need', bytes: missing <= roomLeft ? avail + missing : end + RECORD_HEADER + (missing - roomLeft) };
    }
    pos = end;
  }
}

/** The first `n` bytes of the concatenated parts (a view when one part holds them all). */
function gather(parts: Uint8Array[], n: number): Uint8Array {
  if (parts[0]!.length >= n) return parts[0]!.subarray(0, n);
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    if (off >= n) break;
    const take = Math.min(p.length, n - off);
    out.set(p.subarray(0, take), off);
    off += take;
  }
  return out;
}

/**
 * How many bytes from the start of the stream hold the whole ClientHello (its record or records),
 * judged from the bytes so far; null when they cannot start a ClientHello. While the value exceeds
 * `bytes.length` it is a lower bound: read that many and ask again. Once it does not, the first
 * that-many bytes are what `parseClientHello` needs.
 */
export function clientHelloLength(bytes: Uint8Array): number | null {
  if (!(bytes instanceof Uint8Array)) return null;
  const walk = walkRecords(bytes);
  if (walk.kind === 'invalid') return null;
  return walk.kind === 'need' ? walk.bytes : walk.end;
}

/** Parses the ClientHello at the start of a TCP stream; null for anything else or when incomplete. */
export function parseClientHello(bytes: Uint8Array): ClientHelloInfo | null {
  if (!(bytes instanceof Uint8Array)) return null;
  const walk = walkRecords(bytes);
  if (walk.kind !== 'complete') return null;
  return parseBody(walk.message.subarray(HANDSHAKE_HEADER));
}

/** A cursor that never reads past its end: a short read sets `bad` and yields zeros. */
class Reader {
  bad = false;
  constructor(private readonly buf: Uint8Array, public pos = 0, private readonly end = buf.length) {}
  get left(): number { return this.end - this.pos; }
  u8(): number { return this.take(1) ? this.buf[this.pos - 1]! : 0; }
  u16(): number { return this.take(2) ? (this.buf[this.pos - 2]! << 8) | this.buf[this.pos - 1]! : 0; }
  bytes(n: number): Uint8Array { return this.take(n) ? this.buf.subarray(this.pos - n, this.pos) : new Uint8Array(0); }
  private take(n: number): boolean {
    if (this.bad || n > this.left) { this.bad = true; return false; }
    this.pos += n;
    return true;
  }
}

function parseBody(body: Uint8Array): ClientHelloInfo | null {
  const r = new Reader(body);
  const legacyVersion = r.u16();
  r.bytes(32); // random
  const sessionIdLen = r.u8();
  if (sessionIdLen > 32) return null;
  r.bytes(sessionIdLen);
  const suitesLen = r.u16();
  if (suitesLen < 2 || suitesLen % 2 !== 0) return null;
  r.bytes(suitesLen);
  const compressionLen = r.u8();
  if (compressionLen < 1) return null;
  r.bytes(compressionLen);
  if (r.bad || legacyVersion >> 8 !== 3) return null;

  const info: ClientHelloInfo = { sni: null, alpn: [], version: legacyName(legacyVersion), ech: false };
  if (r.left === 0) return info; // no extensions: a TLS 1.0–1.2 client may send none
  const extLen = r.u16();
  if (r.bad || extLen !== r.left) return null;
  const seen = new Set<number>();
  let offered: TlsVersion | null = null;
  while (r.left > 0) {
    const type = r.u16();
    const data = r.bytes(r.u16());
    if (r.bad || seen.has(type)) return null; // RFC 8446 §4.2: one extension of each type
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const sni = parseServerName(data);
      if (sni === undefined) return null;
      info.sni = sni;
    } else if (type === EXT_ALPN) {
      const alpn = parseAlpn(data);
      if (!alpn) return null;
      info.alpn = alpn;
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      const v = parseSupportedVersions(data);
      if (v === undefined) return null;
      offered = v;
    } else if (type === EXT_ECH) {
      info.ech = true;
    }
  }
  if (offered) info.version = offered;
  return info;
}

/** Without supported_versions a client cannot offer TLS 1.3, whatever legacy_version says. */
function legacyName(v: number): TlsVersion {
  return VERSIONS[Math.min(v, 0x0303)] ?? 'TLS1.2';
}

/** RFC 6066 §3. undefined: malformed; null: no usable host_name. */
function parseServerName(data: Uint8Array): string | null | undefined {
  if (data.length === 0) return null;
  const r = new Reader(data);
  const listLen = r.u16();
  if (r.bad || listLen !== r.left || listLen === 0) return undefined;
  let host: string | null = null;
  let found = false;
  while (r.left > 0) {
    const nameType = r.u8();
    const name = r.bytes(r.u16());
    if (r.bad) return undefined;
    if (nameType !== 0 || found) continue;
    found = true;
    host = name.length > 0 && name.length <= 253 ? normalizeHostname(ascii(name)) : null;
  }
  return host;
}

/** RFC 7301 §3.1; null when malformed. */
function parseAlpn(data: Uint8Array): string[] | null {
  const r = new Reader(data);
  const listLen = r.u16();
  if (r.bad || listLen !== r.left || listLen < 2) return null;
  const out: string[] = [];
  while (r.left > 0) {
    const proto = r.bytes(r.u8());
    if (r.bad || proto.length === 0) return null;
    if (proto.length === 2 && isGrease((proto[0]! << 8) | proto[1]!)) continue;
    if (out.length < MAX_ALPN && proto.every((b) => b > 0x20 && b < 0x7f)) out.push(ascii(proto));
  }
  return out;
}

/** RFC 8446 §4.2.1 (ClientHello form); undefined when malformed, null when no known version. */
function parseSupportedVersions(data: Uint8Array): TlsVersion | null | undefined {
  const r = new Reader(data);
  const len = r.u8();
  if (r.bad || len !== r.left || len < 2 || len % 2 !== 0) return undefined;
  let best = -1;
  while (r.left > 0) {
    const v = r.u16();
    if (!isGrease(v) && VERSIONS[v] && v > best) best = v;
  }
  return best < 0 ? null : VERSIONS[best]!;
}

function ascii(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Reassembly across samples

export type AssemblyResult =
  | { state: 'pending' }
  | { state: 'complete'; info: ClientHelloInfo }
  | { state: 'failed'; reason: 'not-client-hello' | 'too-large' | 'malformed' | 'too-many-samples' };

export interface AssemblerOptions {
  /** Stream bytes kept at most; a ClientHello needing more fails with `too-large`. Default 16 KiB. */
  maxBytes?: number;
  /** Samples taken at most before giving up. Default 32. */
  maxSamples?: number;
}

/**
 * Rebuilds one flow's ClientHello from payload samples. Each sample carries its offset in the TCP
 * stream (0 = first payload byte); without one, samples are taken to follow each other. Samples
 * may arrive out of order, overlap or repeat; bytes past `maxBytes` are dropped. The result is
 * final once it is not `pending`.
 */
export class ClientHelloAssembler {
  private readonly chunks: { offset: number; bytes: Uint8Array }[] = [];
  private readonly maxBytes: number;
  private readonly maxSamples: number;
  private nextOffset = 0;
  private samples = 0;
  private state: AssemblyResult = { state: 'pending' };

  constructor(options: AssemblerOptions = {}) {
    this.maxBytes = Math.max(RECORD_HEADER + HANDSHAKE_HEADER + MIN_BODY, options.maxBytes ?? MAX_CLIENT_HELLO_BYTES);
    this.maxSamples = Math.max(1, options.maxSamples ?? 32);
  }

  get result(): AssemblyResult {
    return this.state;
  }

  push(sample: Uint8Array, streamOffset?: number): AssemblyResult {
    if (this.state.state !== 'pending') return this.state;
    this.samples++;
    const offset = streamOffset ?? this.nextOffset;
    if (sample instanceof Uint8Array && Number.isSafeInteger(offset) && offset >= 0) {
      this.nextOffset = Math.max(this.nextOffset, offset + sample.length);
      const keep = Math.min(sample.length, this.maxBytes - offset);
      if (keep > 0) this.chunks.push({ offset, bytes: sample.slice(0, keep) });
    }
    this.state = this.evaluate();
    if (this.state.state === 'pending' && this.samples >= this.maxSamples) {
      this.state = { state: 'failed', reason: 'too-many-samples' };
    }
    return this.state;
  }

  private evaluate(): AssemblyResult {
    const prefix = this.contiguousPrefix();
    if (prefix.length === 0) return { state: 'pending' };
    const need = clientHelloLength(prefix);
    if (need === null) return { state: 'failed', reason: 'not-client-hello' };
    if (need > this.maxBytes) return { state: 'failed', reason: 'too-large' };
    if (need > prefix.length) return { state: 'pending' };
    const info = parseClientHello(prefix.subarray(0, need));
    return info ? { state: 'complete', info } : { state: 'failed', reason: 'malformed' };
  }

  /** The stream bytes from offset 0 up to the first hole. */
  private contiguousPrefix(): Uint8Array {
    const sorted = [...this.chunks].sort((a, b) => a.offset - b.offset);
    let end = 0;
    for (const c of sorted) {
      if (c.offset > end) break;
      end = Math.max(end, c.offset + c.bytes.length);
    }
    const out = new Uint8Array(end);
    for (const c of sorted) {
      if (c.offset >= end) break;
      out.set(c.bytes.subarray(0, end - c.offset), c.offset);
    }
    return out;
  }
}
