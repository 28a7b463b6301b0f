/**
 * Which provider a flow talks to, and how we know (../shared/DESIGN.md "Classification"):
 * TLS SNI > a DNS answer this host received for the address > a published range > a local server.
 *
 * - A name in the catalog, from SNI, decides (`via: sni`), whatever DNS or ranges say: on a shared
 *   CDN address the SNI is the only evidence about this flow.
 * - An SNI that is not in the catalog still names the host. DNS is then not consulted (the SNI is
 *   the better name), but a published range or a local server can still say who runs the server;
 *   failing those the result is `provider: null, host: <sni>, via: sni` (shown with --all).
 * - With encrypted_client_hello the SNI is only the public name of a front end: it decides when it
 *   is in the catalog, and otherwise the other evidence is consulted as if there were no SNI.
 * - DNS: the names this host's answers gave for the address. It decides only when every one of
 *   them maps to the same provider; an address seen for names of different providers, or for a
 *   provider and a non-provider, is not trusted alone and the next evidence is consulted.
 * - A flow through an HTTP proxy (its stream opens with a CONNECT request): the tunnel's target
 *   decides (`via: proxy`), by name, or by published range when it is an address. A target that
 *   names no provider is the flow's host; the proxy's own address is then judged as any address
 *   (a range a user gave the proxy in --providers), and DNS is not consulted (it names the proxy).
 * - `via` says where `provider` came from, or where `host` came from when provider is null.
 */
import type { Via } from './records.js';
import type { Catalog } from './catalog.js';
import { DnsCache, normalizeHostname, type DnsAnswer } from './dns.js';
import type { ConnectTarget } from './http-connect.js';

export interface ClassifyInput {
  /** Destination address, as text (IPv6 without brackets; v4-mapped accepted). */
  dstIp: string;
  dstPort: number;
  /** server_name from the flow's ClientHello, when one was seen. */
  sni?: string | null;
  /** The ClientHello carried encrypted_client_hello (so `sni` is an outer, public name). */
  ech?: boolean;
  /** The target of the HTTP CONNECT request the flow opened with (a tunnel through a proxy). */
  proxy?: ConnectTarget | null;
  /** Executable path (or file name) of the process listening on dstIp:dstPort, for local flows. */
  listenerExe?: string | null;
  /** comm of that listener (what a "#!" script like `vllm` shows, since its exe is the interpreter). */
  listenerComm?: string | null;
  nowMs: number;
}

export interface Classification {
  /** Catalog id, or null when the flow is not LLM traffic as far as busted can tell. */
  provider: string | null;
  /** SNI or DNS name of the destination, when known. */
  host: string | null;
  via: Via;
}

export class Classifier {
  constructor(readonly catalog: Catalog, readonly dns: DnsCache = new DnsCache()) {}

  /** Feeds a parsed DNS response seen on this host. */
  observeDns(answer: DnsAnswer, nowMs: number): void {
    this.dns.add(answer, nowMs);
  }

  classify(input: ClassifyInput): Classification {
    if (input.proxy) return this.byTunnel(input, input.proxy);
    const sni = input.sni ? normalizeHostname(input.sni) : null;
    if (sni) {
      const byName = this.catalog.matchHost(sni);
      if (byName) return { provider: byName.provider.id, host: sni, via: 'sni' };
      if (!input.ech) return this.bySource(input, sni, 'sni');
    }
    const names = this.dns.namesFor(input.dstIp, input.nowMs);
    if (names.length > 0) {
      const providers = new Set(names.map((n) => this.catalog.matchHost(n)?.provider.id ?? null));
      const only = providers.size === 1 ? [...providers][0]! : null;
      if (only !== null) return { provider: only, host: names[0]!, via: 'dns' };
    }
    // Only a single name is a trustworthy host for display; an outer ECH name is better than none.
    if (names.length === 1) return this.bySource(input, names[0]!, 'dns');
    return sni ? this.bySource(input, sni, 'sni') : this.bySource(input, null, null);
  }

  /** A tunnel through a proxy: its target by name or range, else the proxy's address as any. */
  private byTunnel(input: ClassifyInput, target: ConnectTarget): Classification {
    const match = target.ip ? this.catalog.matchIp(target.host) : this.catalog.matchHost(target.host);
    if (match) return { provider: match.provider.id, host: target.host, via: 'proxy' };
    return this.bySource(input, target.host, 'proxy');
  }

  /** Published ranges, then local servers; `host`/`via` describe the name evidence already found. */
  private bySource(input: ClassifyInput, host: string | null, via: Via): Classification {
    const range = this.catalog.matchIp(input.dstIp);
    if (range) return { provider: range.provider.id, host, via: 'cidr' };
    if (input.listenerExe || input.listenerComm) {
      const local = this.catalog.matchLocal({ exe: input.listenerExe, comm: input.listenerComm }, input.dstPort);
      if (local) return { provider: local.provider.id, host, via: 'port' };
    }
    return { provider: null, host, via };
  }
}
