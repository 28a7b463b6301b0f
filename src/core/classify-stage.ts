/**
 * Classification between the kernel and the store. A TCP connect is held back briefly (at most
 * `holdMs`) for its ClientHello so that its connect record already names the provider and host;
 * SNI that completes later, or a DNS answer, yields a `classify` record instead. Holding never
 * reorders one flow's records: a held connect is released before that flow's traffic or close.
 */
import { networkInterfaces } from 'node:os';
import type { Classification, Classifier } from './classifier.js';
import { parseDnsResponse, parseDnsTcpResponse } from './dns.js';
import { listenerNames, type ListenerFinder } from './listeners.js';
import type { ConnectRecord, EventRecord } from './records.js';
import { ChurnMap } from './churn-map.js';
import { parseConnectRequest, startsConnect, type ConnectTarget } from './http-connect.js';
import { ClientHelloAssembler } from './tls.js';

export interface StageOptions {
  classifier: Classifier;
  publish: (rec: EventRecord) => void;
  listeners: ListenerFinder;
  now: () => number;
  /** How long a TCP connect waits for its ClientHello (default 250 ms); 0 never waits. */
  holdMs?: number;
  /** An address learned to belong to a provider (from a DNS answer or a flow's SNI), for enforcement. */
  onLearned?: (ip: string, provider: string, ttlS: number) => void;
  /** A flow whose connect record had gone out was classified again (a `classify` record went out). */
  onLateClassified?: (rec: ConnectRecord, cls: Classification) => void;
  /** Last touches to a connect record as it is published (e.g. the identity as known by then). */
  finalize?: (rec: ConnectRecord) => ConnectRecord;
  /**
   * LLM flows only (headless busted without --all): a connect that still names no provider when
   * it would go out is not published, nor anything else of its flow, unless SNI later names a
   * provider (then its connect goes out late). Each such connection is told to `onQuiet` once,
   * when it ends still quiet (a failed connect at once, others when they close).
   */
  quiet?: boolean;
  onQuiet?: (proto: 'tcp' | 'udp', failed: boolean) => void;
}

interface FlowState {
  rec: ConnectRecord;
  cls: Classification;
  dstIp: string;
  dstPort: number;
  held: boolean;
  heldUntil: number;
  hello: ClientHelloAssembler | null;
  sni: string | null;
  ech: boolean;
  /** The target of the HTTP CONNECT request the stream opened with (through a proxy). */
  proxy: ConnectTarget | null;
  /** Not published (quiet mode: no provider when its connect would have gone out). */
  quiet: boolean;
}

/** `ip:port` or `[ip]:port` → parts. */
export function splitEndpoint(ep: string): { ip: string; port: number } {
  if (ep.startsWith('[')) {
    const end = ep.indexOf(']');
    return { ip: ep.slice(1, end), port: Number(ep.slice(end + 2)) };
  }
  const colon = ep.lastIndexOf(':');
  return { ip: ep.slice(0, colon), port: Number(ep.slice(colon + 1)) };
}

const MAX_FLOWS = 65536;
/** How long an address seen with a provider's SNI stays known as that provider's. */
const SNI_TTL_S = 3600;

export class ClassificationStage {
  private readonly flows = new ChurnMap<string, FlowState>();
  /**
   * The held ones, in the order they were held (the order their holds expire in), from
   * `holdingHead` on. A released one stays in place with `held` false until the head passes it:
   * a queue, not a map, so a hold costs no hash-table insert and delete (one each per TCP connect).
   */
  private holding: FlowState[] = [];
  private holdingHead = 0;
  private readonly holdMs: number;
  private readonly localPorts: Set<number>;
  private localAddrs: { at: number; set: Set<string> } = { at: -Infinity, set: new Set() };
  /** DNS answers with addresses read from the kernel's samples. */
  dnsAnswers = 0;

  /** Samples skipped because they did not parse, by why (`dns-malformed`, `tls-malformed`, `tls-too-large`, …). */
  skippedSamples(): Record<string, number> {
    const out: Record<string, number> = { 'dns-malformed': this.badDns, 'http-connect-malformed': this.badConnects };
    for (const [reason, n] of Object.entries(this.badHellos)) out[`tls-${reason}`] = n;
    return out;
  }
  /** DNS samples that did not parse, skipped. */
  badDns = 0;
  /** Streams that opened with an HTTP CONNECT request whose request line did not parse, skipped. */
  badConnects = 0;
  /** TLS handshake samples that gave no ClientHello, skipped (the flow is classified without SNI), by why. */
  readonly badHellos: Record<string, number> = {};
  private lastDst = '';
  private lastSplit = { ip: '', port: 0 };

  constructor(private readonly opts: StageOptions) {
    this.holdMs = opts.holdMs ?? 250;
    this.localPorts = new Set(opts.classifier.catalog.entries.flatMap((e) => e.local?.ports ?? []));
  }

  isHeld(flow: string): boolean {
    return this.flows.get(flow)?.held ?? false;
  }

  /** Whether a connect of `flow` came and its close has not (connected, held or quiet). */
  isOpen(flow: string): boolean {
    return this.flows.has(flow);
  }

  /** A new connect from the kernel: classified from what is known now, then published or held. */
  connect(rec: ConnectRecord): void {
    // connections go to few destinations: the last one's parts are kept
    if (rec.dst !== this.lastDst) {
      this.lastDst = rec.dst;
      this.lastSplit = splitEndpoint(rec.dst);
    }
    const { ip, port } = this.lastSplit;
    const st: FlowState = {
      rec, cls: { provider: null, host: null, via: null }, dstIp: ip, dstPort: port, held: false, heldUntil: 0,
      hello: null, sni: null, ech: false, proxy: null, quiet: false,
    };
    st.cls = this.classify(st);
    if (rec.error !== null) {
      this.emit(st);
      return;
    }
    if (this.flows.size >= MAX_FLOWS) this.forget(this.flows.first()!);
    this.flows.set(rec.flow, st);
    if (rec.proto === 'tcp' && this.holdMs > 0) {
      st.held = true;
      st.heldUntil = this.opts.now() + this.holdMs;
      this.holding.push(st);
      return;
    }
    this.emit(st);
  }

  private emit(st: FlowState): void {
    if (this.opts.quiet && st.cls.provider === null) {
      st.quiet = true;
      if (st.rec.error !== null) this.opts.onQuiet?.(st.rec.proto, true); // failed: no close follows
      return;
    }
    // the stage's own record, published once: filled in place (a copy per connection was garbage
    // to collect; the keys are already there, so the JSON field order is the same)
    const rec = st.rec;
    rec.provider = st.cls.provider;
    rec.host = st.cls.host;
    rec.via = st.cls.via;
    this.opts.publish(this.opts.finalize ? this.opts.finalize(rec) : rec);
  }

  /** A ClientHello sample (TLS payload at `offset` of the flow's stream), or a CONNECT request's. */
  tls(flow: string, offset: number, data: Uint8Array): void {
    const st = this.flows.get(flow);
    if (!st || st.sni !== null) return;
    if (offset === 0 && st.hello === null && startsConnect(data)) {
      // a tunnel through a proxy: its target names the flow; nothing after it is sampled
      st.sni = '';
      st.proxy = parseConnectRequest(data);
      if (st.proxy) this.reclassify(st);
      else this.badConnects++;
      this.release(st);
      return;
    }
    st.hello ??= new ClientHelloAssembler();
    const r = st.hello.push(data, offset);
    if (r.state === 'pending') return;
    st.hello = null;
    if (r.state === 'complete') {
      st.sni = r.info.sni ?? '';
      st.ech = r.info.ech;
      this.reclassify(st);
    } else {
      st.sni = '';
      this.badHellos[r.reason] = (this.badHellos[r.reason] ?? 0) + 1;
    }
    this.release(st);
  }

  /** A DNS message received from port 53. */
  dns(data: Uint8Array, proto: 'tcp' | 'udp'): void {
    // over TCP a reader may take the 2-byte length apart from the message (glibc does): the
    // sample of its read then holds the bare message
    const answer = proto === 'tcp' ? (parseDnsTcpResponse(data) ?? parseDnsResponse(data)) : parseDnsResponse(data);
    if (!answer) {
      this.badDns++;
      return;
    }
    if (answer.addresses.length === 0) return;
    this.dnsAnswers++;
    this.opts.classifier.observeDns(answer, this.opts.now());
    const match = this.opts.onLearned ? this.opts.classifier.catalog.matchHost(answer.name) : null;
    if (match) for (const a of answer.addresses) this.opts.onLearned!(a.address, match.provider.id, a.ttl);
  }

  /** Before a flow's traffic or close is published: its connect goes first. */
  flush(flow: string): void {
    const st = this.flows.get(flow);
    if (st) this.release(st);
  }

  /** The flow is over. Returns false when nothing of it was published (quiet mode), else true. */
  forget(flow: string): boolean {
    const st = this.flows.get(flow);
    if (!st) return true; // unknown here (e.g. its connect was lost): its close is still news
    this.release(st);
    this.flows.delete(flow);
    if (st.quiet) this.opts.onQuiet?.(st.rec.proto, false);
    return !st.quiet;
  }

  /** Releases every held connect now (the engine is stopping, or a process is being blocked). */
  releaseAll(): void {
    this.expire(Infinity);
  }

  /** Releases connects whose hold expired. */
  tick(): void {
    this.expire(this.opts.now());
  }

  /** Releases the held connects whose hold ends by `now`: the oldest first, up to the first still held. */
  private expire(now: number): void {
    const q = this.holding;
    let i = this.holdingHead;
    for (; i < q.length; i++) {
      const st = q[i]!;
      if (!st.held) continue; // released already (its ClientHello or close came)
      if (now < st.heldUntil) break;
      this.release(st);
    }
    if (i === q.length) {
      this.holding = [];
      this.holdingHead = 0;
    } else if (i > 1024 && i * 2 > q.length) {
      this.holding = q.slice(i); // now and then, not every tick
      this.holdingHead = 0;
    } else {
      this.holdingHead = i;
    }
  }

  private release(st: FlowState): void {
    if (!st.held) return;
    st.held = false;
    this.emit(st);
  }

  private reclassify(st: FlowState): void {
    const next = this.classify(st);
    if (next.via === 'sni' && next.provider) this.opts.onLearned?.(st.dstIp, next.provider, SNI_TTL_S);
    const cur = st.cls;
    if (next.provider === cur.provider && next.host === cur.host && next.via === cur.via) return;
    st.cls = next;
    if (st.held) return; // the connect record will carry it
    if (st.quiet) {
      if (next.provider === null) return;
      st.quiet = false; // late SNI named a provider: the connect goes out now, classified
      this.emit(st);
      return;
    }
    this.opts.publish({
      type: 'classify', ts: new Date(this.opts.now()).toISOString(), flow: st.rec.flow, pid: st.rec.pid, ...next,
    });
    this.opts.onLateClassified?.(st.rec, next);
  }

  private classify(st: FlowState): Classification {
    const listener = this.localListener(st.dstIp, st.dstPort);
    return this.opts.classifier.classify({
      dstIp: st.dstIp,
      dstPort: st.dstPort,
      sni: st.sni || null,
      ech: st.ech,
      proxy: st.proxy,
      listenerExe: listener?.exe ?? null,
      listenerComm: listener?.comm ?? null,
      nowMs: this.opts.now(),
    });
  }

  /** The listener on a local destination port that a local model server may use. */
  private localListener(ip: string, port: number): { exe: string | null; comm: string | null } | null {
    if (!this.localPorts.has(port) || !this.isLocalAddress(ip)) return null;
    const l = this.opts.listeners.find(port, this.opts.now());
    if (!l) return null;
    const names = listenerNames(l);
    return { exe: l.exe ?? names[0] ?? null, comm: l.comm };
  }

  private isLocalAddress(ip: string): boolean {
    if (ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.')) return true;
    const now = this.opts.now();
    if (now - this.localAddrs.at > 60_000) {
      const set = new Set<string>();
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) set.add(a.address);
      this.localAddrs = { at: now, set };
    }
    return this.localAddrs.set.has(ip);
  }
}
