/**
 * The LLM destinations the kernel's connect programs check: the catalog's published ranges
 * (for the whole run) and single addresses learned from DNS answers and SNI (until their TTL
 * runs out, at least MIN_TTL_S). IPv4 addresses are also entered in their v4-mapped IPv6 form,
 * for AF_INET6 sockets that talk to IPv4 peers.
 */
import type { Catalog } from './catalog.js';
import { parseIp, unmapIp } from './dns.js';

export interface DestinationSink {
  addDestination(addr: Uint8Array, prefixLen: number, provider: number): void;
  removeDestination(addr: Uint8Array, prefixLen: number): void;
}

const MIN_TTL_S = 300;
const MAX_LEARNED = 32768;

function mapped(v4: Uint8Array): Uint8Array {
  const a = new Uint8Array(16);
  a[10] = 0xff;
  a[11] = 0xff;
  a.set(v4, 12);
  return a;
}

export class Destinations {
  private readonly learned = new Map<string, { bytes: Uint8Array; expires: number }>();

  constructor(private readonly sink: DestinationSink, private readonly catalog: Catalog) {}

  /** Enters every published range of the catalog. */
  loadRanges(): number {
    const entries = this.catalog.cidrEntries({ v4Mapped: true });
    for (const c of entries) this.sink.addDestination(c.prefix, c.prefixLen, c.providerIndex);
    return entries.length;
  }

  /** An address belongs to `providerId` for `ttlS` seconds (renewed when seen again). */
  learn(ip: string, providerId: string, ttlS: number, nowMs: number): void {
    const provider = this.catalog.providers().find((p) => p.id === providerId);
    const parsed = parseIp(ip);
    if (!provider || !parsed) return;
    const addr = unmapIp(parsed);
    const key = `${addr.family}:${Buffer.from(addr.bytes).toString('hex')}`;
    const expires = nowMs + Math.max(ttlS, MIN_TTL_S) * 1000;
    const known = this.learned.get(key);
    if (known) {
      known.expires = Math.max(known.expires, expires);
      return;
    }
    if (this.learned.size >= MAX_LEARNED) this.expire(Infinity, 1);
    this.learned.set(key, { bytes: addr.bytes, expires });
    this.write(addr.bytes, provider.index);
  }

  /** Removes learned addresses whose time is up (at most `max` of them). */
  expire(nowMs: number, max = Infinity): void {
    let n = 0;
    for (const [key, l] of this.learned) {
      if (n >= max) return;
      if (l.expires > nowMs) continue;
      this.learned.delete(key);
      this.remove(l.bytes);
      n++;
    }
  }

  get size(): number {
    return this.learned.size;
  }

  private write(bytes: Uint8Array, provider: number): void {
    if (bytes.length === 4) {
      this.sink.addDestination(bytes, 32, provider);
      this.sink.addDestination(mapped(bytes), 128, provider);
    } else {
      this.sink.addDestination(bytes, 128, provider);
    }
  }

  private remove(bytes: Uint8Array): void {
    if (bytes.length === 4) {
      this.sink.removeDestination(bytes, 32);
      this.sink.removeDestination(mapped(bytes), 128);
    } else {
      this.sink.removeDestination(bytes, 128);
    }
  }
}
