/**
 * The request line of an HTTP CONNECT request: how a client asks a proxy (HTTPS_PROXY) for a
 * tunnel, `CONNECT api.openai.com:443 HTTP/1.1` (RFC 9110 §9.3.6, authority form). The kernel
 * samples a TCP stream's first send when it starts with one, as it samples a ClientHello; the
 * tunnel's target names the flow's provider as SNI would.
 */
import { isIP } from 'node:net';
import { normalizeHostname } from './dns.js';

const PREFIX = 'CONNECT ';
/** The request line: the target in authority form, then the protocol version. */
const REQUEST_LINE = /^CONNECT ([^\s/?#@]{1,300}) HTTP\/1\.[01]\r?$/;

/** Whether a stream's first bytes are an HTTP CONNECT request. */
export function startsConnect(data: Uint8Array): boolean {
  if (data.length < PREFIX.length) return false;
  for (let i = 0; i < PREFIX.length; i++) if (data[i] !== PREFIX.charCodeAt(i)) return false;
  return true;
}

export interface ConnectTarget {
  /** A host name as busted shows names (normalizeHostname), or an IP address (IPv6 without brackets). */
  host: string;
  port: number;
  /** Whether `host` is an IP address. */
  ip: boolean;
}

/**
 * The tunnel's target from a stream's first bytes; null when they do not hold a whole, valid
 * request line (cut short, not ASCII, no port, a host that is neither a name nor an address).
 */
export function parseConnectRequest(data: Uint8Array): ConnectTarget | null {
  if (!startsConnect(data)) return null;
  const end = data.indexOf(0x0a);
  if (end < 0) return null; // the line goes on past the sample
  let line = '';
  for (let i = 0; i < end; i++) {
    const b = data[i]!;
    if (b < 0x20 && b !== 0x0d) return null;
    if (b > 0x7e) return null;
    line += String.fromCharCode(b);
  }
  const m = REQUEST_LINE.exec(line);
  if (!m) return null;
  const authority = m[1]!;
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0 || authority[close + 1] !== ':') return null;
    host = authority.slice(1, close);
    portText = authority.slice(close + 2);
    if (isIP(host) !== 6) return null;
  } else {
    // an IPv6 address without brackets (`2001:db8::1:443`, not the RFC's form, sent by some old
    // clients) is read with its last group as the port
    const colon = authority.lastIndexOf(':');
    if (colon <= 0) return null;
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  if (isIP(host) !== 0) return { host: host.toLowerCase(), port, ip: true };
  const name = normalizeHostname(host);
  return name ? { host: name, port, ip: false } : null;
}
