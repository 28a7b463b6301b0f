/**
 * The provider catalog: which host names, address ranges and local servers belong to which LLM
 * provider (../shared/DESIGN.md "Classification"). The built-in data is catalog/providers.yaml;
 * `--providers FILE` (same shape) overrides entries by id and adds new ones.
 *
 * Host patterns (compared lower-case, without a trailing dot):
 *  - `api.example.com`           that name only;
 *  - `*.example.com`             any name below example.com, at any depth, not example.com itself;
 *  - `*` inside any other label  zero or more characters within that one label, never a dot:
 *                                `bedrock-runtime.*.amazonaws.com`, `*-aiplatform.googleapis.com`,
 *                                `bedrock*.*.amazonaws.com`;
 *  - the last two labels are always literal (no pattern can cover a whole top-level domain).
 * When several patterns match a name: an exact name wins, then the pattern with the most literal
 * (non-`*`) characters, then one without a leading `*.`, then the entry listed later (so a
 * `--providers` entry beats a built-in one).
 * Address ranges match by longest prefix, IPv4 and IPv6; an IPv4-mapped IPv6 address matches IPv4 ranges.
 * Local servers match when the listening process's executable file name (or its 15-character
 * comm) is in `local.exe` and the port is in `local.ports`.
 */
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { basename } from 'node:path';
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import { readYaml } from './yaml-doc.js';
import { formatIp, normalizeHostname, parseIp, unmapIp, type IpAddress } from './dns.js';
import { memo } from './memo.js';

export interface LocalHint {
  /** Executable file names of the listening process (`ollama`, `llama-server`). */
  exe: string[];
  ports: number[];
}

export interface ProviderEntry {
  id: string;
  name: string;
  hosts: string[];
  cidrs: string[];
  local: LocalHint | null;
  source: string;
}

export interface ProviderInfo {
  /** Position in the merged catalog; stable for one run (used by the kernel's range maps). */
  index: number;
  id: string;
  name: string;
}

export interface CatalogMatch {
  provider: ProviderInfo;
  /** What matched: the host pattern, the range, or `exe:port`. */
  rule: string;
}

export interface CidrEntry {
  family: 4 | 6;
  /** The network address, 4 or 16 bytes, bits past prefixLen zero. */
  prefix: Uint8Array;
  prefixLen: number;
  providerIndex: number;
}

/** A --providers file (or the built-in catalog) that cannot be used; the message names where and why. */
export class CatalogError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly line: number | null = null,
    readonly entry: number | null = null,
    readonly id: string | null = null,
    readonly field: string | null = null,
  ) {
    const where = [
      line !== null ? `line ${line}` : null,
      entry !== null ? `providers[${entry}]${id !== null ? ` (id "${id}")` : ''}` : null,
      field !== null ? `field ${field}` : null,
    ].filter((s) => s !== null);
    super(`providers file ${file}${where.length ? `, ${where.join(', ')}` : ''}: ${problem}`);
    this.name = 'CatalogError';
  }
}

// ---------------------------------------------------------------------------------------------
// Host patterns

interface HostPattern {
  text: string;
  /** Leading `*.`: one or more labels before `labels`. */
  anyDepth: boolean;
  labels: string[];
  literal: number;
}

const PATTERN_CHARS = /^[a-z0-9*._-]+$/;

/** Why `pattern` is not a valid host pattern, or null when it is. */
export function hostPatternProblem(pattern: string): string | null {
  const p = pattern.toLowerCase();
  if (p.length === 0 || p.length > 253 || !PATTERN_CHARS.test(p)) {
    return `"${pattern}" is not a host name or pattern (letters, digits, "-", "_", "." and "*" only, at most 253 characters)`;
  }
  const labels = p.split('.');
  if (labels.some((l) => l.length === 0 || l.length > 63)) return `"${pattern}" has an empty or over-long label`;
  if (labels.some((l) => l.includes('**'))) return `"${pattern}" has "**"; one "*" already matches any run of characters`;
  if (!p.includes('*')) {
    return normalizeHostname(p) ? null : `"${pattern}" is not a valid host name`;
  }
  const tail = labels.slice(-2);
  if (labels.length < 3 || tail.some((l) => l.includes('*')) || !normalizeHostname(tail.join('.'))) {
    return `"${pattern}" must end in two literal labels such as example.com, with "*" only before them`;
  }
  return null;
}

function compilePattern(text: string): HostPattern {
  const p = text.toLowerCase();
  const anyDepth = p.startsWith('*.');
  const labels = (anyDepth ? p.slice(2) : p).split('.');
  return { text: p, anyDepth, labels, literal: p.replace(/\*/g, '').length };
}

/** Glob match of one label: `*` is any run of characters (none included). */
function matchLabel(pattern: string, label: string): boolean {
  if (!pattern.includes('*')) return pattern === label;
  const segs = pattern.split('*');
  const first = segs[0]!;
  const last = segs[segs.length - 1]!;
  if (label.length < first.length + last.length || !label.startsWith(first) || !label.endsWith(last)) return false;
  let pos = first.length;
  const limit = label.length - last.length;
  for (let i = 1; i < segs.length - 1; i++) {
    const at = label.indexOf(segs[i]!, pos);
    if (at < 0 || at + segs[i]!.length > limit) return false;
    pos = at + segs[i]!.length;
  }
  return true;
}

function matchPattern(p: HostPattern, labels: string[]): boolean {
  const n = p.labels.length;
  if (p.anyDepth ? labels.length <= n : labels.length !== n) return false;
  const off = labels.length - n;
  for (let i = 0; i < n; i++) if (!matchLabel(p.labels[i]!, labels[off + i]!)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Address ranges

export type CidrParse = { ok: true; family: 4 | 6; prefix: Uint8Array; prefixLen: number } | { ok: false; problem: string };

/** Parses `ADDRESS/PREFIX`; bits past the prefix must be zero. */
export function parseCidr(text: string): CidrParse {
  const bad = (why: string): CidrParse => ({ ok: false, problem: `"${text}" ${why}` });
  const slash = text.indexOf('/');
  if (slash < 0) return bad('is not an address range such as 203.0.113.0/24 or 2001:db8::/32 (the /PREFIX is missing)');
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!ip) return bad('is not an address range such as 203.0.113.0/24 or 2001:db8::/32');
  const max = ip.family === 4 ? 32 : 128;
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) return bad(`has a prefix length that is not 0 to ${max}`);
  const prefixLen = Number(lenText);
  const prefix = maskBytes(ip.bytes, prefixLen);
  if (!prefix.every((b, i) => b === ip.bytes[i])) {
    return bad(`has address bits set past /${prefixLen}; write ${formatIp({ family: ip.family, bytes: prefix })}/${prefixLen}`);
  }
  return { ok: true, family: ip.family, prefix, prefixLen };
}

function maskBytes(bytes: Uint8Array, prefixLen: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - 8 * i));
    out[i] = bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** Longest-prefix lookup: one hash map per prefix length present, probed longest first. */
class PrefixTable {
  private readonly byLen = new Map<number, Map<string, { value: number; rule: string }>>();
  private lens: number[] = [];

  add(prefix: Uint8Array, prefixLen: number, value: number, rule: string): void {
    let m = this.byLen.get(prefixLen);
    if (!m) {
      m = new Map();
      this.byLen.set(prefixLen, m);
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    m.set(keyOf(prefix, prefixLen), { value, rule });
  }

  lookup(addr: Uint8Array): { value: number; rule: string } | null {
    for (const len of this.lens) {
      const hit = this.byLen.get(len)!.get(keyOf(maskBytes(addr, len), len));
      if (hit) return hit;
    }
    return null;
  }
}

function keyOf(masked: Uint8Array, prefixLen: number): string {
  let s = '';
  for (let i = 0; i < Math.ceil(prefixLen / 8); i++) s += masked[i]!.toString(16).padStart(2, '0');
  return s;
}

// ---------------------------------------------------------------------------------------------
// The compiled catalog

export class Catalog {
  readonly entries: readonly ProviderEntry[];
  private readonly infos: ProviderInfo[];
  private readonly exact = new Map<string, { index: number; rule: string }>();
  private readonly wildcards: { pattern: HostPattern; index: number }[] = [];
  private readonly v4 = new PrefixTable();
  private readonly v6 = new PrefixTable();
  private readonly cidrs: CidrEntry[] = [];
  private readonly locals: { exe: Set<string>; comm: Set<string>; ports: Set<number>; index: number }[] = [];
  /** matchIp's answers by address text: connections go to few addresses (the catalog never changes). */
  private readonly byText = memo((text: string) => this.matchParsed(parseIp(text)));

  constructor(entries: readonly ProviderEntry[]) {
    this.entries = entries;
    this.infos = entries.map((e, index) => ({ index, id: e.id, name: e.name }));
    entries.forEach((e, index) => {
      for (const host of e.hosts) {
        const problem = hostPatternProblem(host);
        if (problem) throw new TypeError(`provider ${e.id}: ${problem}`);
        if (host.includes('*')) this.wildcards.push({ pattern: compilePattern(host), index });
        else this.exact.set(normalizeHostname(host)!, { index, rule: host.toLowerCase() });
      }
      for (const text of e.cidrs) {
        const c = parseCidr(text);
        if (!c.ok) throw new TypeError(`provider ${e.id}: ${c.problem}`);
        (c.family === 4 ? this.v4 : this.v6).add(c.prefix, c.prefixLen, index, text);
        this.cidrs.push({ family: c.family, prefix: c.prefix, prefixLen: c.prefixLen, providerIndex: index });
      }
      if (e.local) {
        const exe = new Set(e.local.exe);
        this.locals.push({ exe, comm: new Set(e.local.exe.map((x) => x.slice(0, 15))), ports: new Set(e.local.ports), index });
      }
    });
    // Most specific first; among equals the entry listed later first.
    this.wildcards.sort((a, b) =>
      b.pattern.literal - a.pattern.literal
      || Number(a.pattern.anyDepth) - Number(b.pattern.anyDepth)
      || b.index - a.index);
  }

  /** Every provider, in catalog order, for display and for the kernel's provider indexes. */
  providers(): ProviderInfo[] {
    return this.infos.map((p) => ({ ...p }));
  }

  get(id: string): ProviderEntry | undefined {
    return this.entries.find((e) => e.id === id);
  }

  /** The provider a host name belongs to (exact name first, then the most specific pattern). */
  matchHost(host: string): CatalogMatch | null {
    const name = normalizeHostname(host);
    if (!name) return null;
    const exact = this.exact.get(name);
    if (exact) return { provider: this.infos[exact.index]!, rule: exact.rule };
    const labels = name.split('.');
    for (const w of this.wildcards) {
      if (matchPattern(w.pattern, labels)) return { provider: this.infos[w.index]!, rule: w.pattern.text };
    }
    return null;
  }

  /** The provider whose published range holds `ip` (longest prefix wins). */
  matchIp(ip: string | IpAddress): CatalogMatch | null {
    return typeof ip === 'string' ? this.byText(ip) : this.matchParsed(ip);
  }

  private matchParsed(raw: IpAddress | null): CatalogMatch | null {
    if (!raw) return null;
    const addr = unmapIp(raw);
    const hit = (addr.family === 4 ? this.v4.lookup(addr.bytes) : null)
      ?? (raw.family === 6 ? this.v6.lookup(raw.bytes) : null);
    return hit ? { provider: this.infos[hit.value]!, rule: hit.rule } : null;
  }

  /** The local model server listening on `port`, judged by the listener's executable path or comm. */
  matchLocal(listener: { exe?: string | null; comm?: string | null }, port: number): CatalogMatch | null {
    const exe = listener.exe ? basename(listener.exe) : null;
    const comm = listener.comm ?? null;
    for (let i = this.locals.length - 1; i >= 0; i--) {
      const l = this.locals[i]!;
      if (!l.ports.has(port)) continue;
      const name = exe !== null && l.exe.has(exe) ? exe : comm !== null && l.comm.has(comm) ? comm : null;
      if (name !== null) return { provider: this.infos[l.index]!, rule: `${name}:${port}` };
    }
    return null;
  }

  /**
   * Every published range, for the kernel's LPM tries. With `v4Mapped`, each IPv4 range is also
   * given as its `::ffff:0:0/96` IPv6 form, for AF_INET6 sockets talking to IPv4 peers.
   */
  cidrEntries(options: { v4Mapped?: boolean } = {}): CidrEntry[] {
    const out = this.cidrs.map((c) => ({ ...c, prefix: c.prefix.slice() }));
    if (options.v4Mapped) {
      for (const c of this.cidrs) {
        if (c.family !== 4) continue;
        const prefix = new Uint8Array(16);
        prefix[10] = 0xff;
        prefix[11] = 0xff;
        prefix.set(c.prefix, 12);
        out.push({ family: 6, prefix, prefixLen: 96 + c.prefixLen, providerIndex: c.providerIndex });
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Where the built-in catalog lives. */
export function builtinCatalogPath(): string {
  return fileURLToPath(new URL('../../catalog/providers.yaml', import.meta.url));
}

const MAX_FILE_BYTES = 4 << 20;

/** Reads and validates one catalog file. Throws CatalogError. */
export function readProvidersFile(file: string): ProviderEntry[] {
  let text: string;
  try {
    if (statSync(file).size > MAX_FILE_BYTES) throw new CatalogError(file, 'is larger than 4 MiB; a providers file lists entries, not address dumps');
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof CatalogError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new CatalogError(file, `cannot be read (${code}); check the path given to --providers`);
  }
  return parseProviders(text, file);
}

/** An entry of `extra` whose id is already in `base` replaces it in place; other entries are appended. */
export function mergeProviders(base: readonly ProviderEntry[], extra: readonly ProviderEntry[]): ProviderEntry[] {
  const out = [...base];
  for (const e of extra) {
    const at = out.findIndex((b) => b.id === e.id);
    if (at >= 0) out[at] = e;
    else out.push(e);
  }
  return out;
}

/** The built-in catalog, with `providersFile` (from --providers) merged over it. Throws CatalogError. */
export function loadCatalog(providersFile?: string | null): Catalog {
  const builtin = readProvidersFile(builtinCatalogPath());
  const extra = providersFile ? readProvidersFile(providersFile) : [];
  return new Catalog(mergeProviders(builtin, extra));
}

// ---------------------------------------------------------------------------------------------
// Validation

const ENTRY_KEYS = ['id', 'name', 'hosts', 'cidrs', 'local', 'source'];
const LOCAL_KEYS = ['exe', 'ports'];
const ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const EXE = /^[^/\0]{1,255}$/;

/** Parses and validates catalog text (YAML or JSON). `file` is only used in messages. Throws CatalogError. */
export function parseProviders(text: string, file: string): ProviderEntry[] {
  const { root, lineOf } = readYaml(text, (what, line) => new CatalogError(file, what, line));
  if (root === null) throw new CatalogError(file, 'is empty; it needs a "providers:" list');
  if (!isMap(root)) throw new CatalogError(file, 'must be a mapping with a "providers:" list', lineOf(root));
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '?';
    if (key !== 'providers') throw new CatalogError(file, `unknown key "${key}"; the top level holds only "providers"`, lineOf(pair.key));
  }
  const list = root.get('providers', true);
  if (!isSeq(list)) throw new CatalogError(file, '"providers" must be a list of entries', lineOf(list ?? root));
  const seen = new Map<string, { index: number; line: number | null }>();
  return list.items.map((item, index) => {
    const entry = readEntry(item, index, file, lineOf);
    const prev = seen.get(entry.id);
    if (prev) {
      const idNode = isMap(item) ? item.get('id', true) : item;
      throw new CatalogError(file, `id "${entry.id}" is already used by providers[${prev.index}]${prev.line !== null ? ` (line ${prev.line})` : ''}; each id may appear once per file`, lineOf(idNode), index, entry.id, 'id');
    }
    seen.set(entry.id, { index, line: lineOf(item) });
    return entry;
  });
}

type Getter = { get(key: string, keepScalar: true): unknown };

function readEntry(item: unknown, index: number, file: string, lineOf: (n: unknown) => number | null): ProviderEntry {
  if (!isMap(item)) throw new CatalogError(file, 'each entry must be a mapping with id, name, source and hosts, cidrs or local', lineOf(item), index);
  const idNode = item.get('id', true);
  const id = isScalar(idNode) && typeof idNode.value === 'string' && ID.test(idNode.value) ? idNode.value : null;
  const err = (node: unknown, field: string | null, problem: string) =>
    new CatalogError(file, problem, lineOf(node) ?? lineOf(item), index, id, field);
  for (const pair of item.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : null;
    if (key === null || !ENTRY_KEYS.includes(key)) throw err(pair.key, null, `unknown key "${key ?? '?'}"; an entry may have ${ENTRY_KEYS.join(', ')}`);
  }
  const text = (field: string, re: RegExp | null, hint: string): string => {
    const node = item.get(field, true);
    if (node === undefined) throw err(item, field, `is missing; it must be ${hint}`);
    if (!isScalar(node) || typeof node.value !== 'string' || (re && !re.test(node.value))) throw err(node, field, `must be ${hint}`);
    return node.value;
  };
  text('id', ID, 'a lower-case id such as acme-llm (letters, digits, ".", "_", "-")');
  const name = text('name', /^[^\x00-\x1f\x7f]{1,64}$/, 'a display name of 1 to 64 characters');
  const source = text('source', null, 'the URL the data comes from');
  if (!/^https?:\/\/\S+$/.test(source)) throw err(item.get('source', true), 'source', `must be an http(s) URL, not "${source}"`);

  const strings = (parent: Getter, field: string, path: string, check: (s: string) => string | null): string[] => {
    const node = parent.get(field, true);
    if (node === undefined) return [];
    if (!isSeq(node)) throw err(node, path, 'must be a list');
    return node.items.map((el, i) => {
      if (!isScalar(el) || typeof el.value !== 'string') throw err(el, `${path}[${i}]`, 'must be a text value');
      const problem = check(el.value);
      if (problem) throw err(el, `${path}[${i}]`, problem);
      return el.value;
    });
  };
  const hosts = strings(item, 'hosts', 'hosts', hostPatternProblem).map((h) => h.toLowerCase());
  const cidrs = strings(item, 'cidrs', 'cidrs', (s) => { const c = parseCidr(s); return c.ok ? null : c.problem; });
  const local = readLocal(item.get('local', true), err, strings);
  if (hosts.length === 0 && cidrs.length === 0 && !local) throw err(item, null, 'gives no way to recognise the provider; add hosts, cidrs or local');
  return { id: id!, name, hosts, cidrs, local, source };
}

function readLocal(
  node: unknown,
  err: (node: unknown, field: string | null, problem: string) => CatalogError,
  strings: (parent: Getter, field: string, path: string, check: (s: string) => string | null) => string[],
): LocalHint | null {
  if (node === undefined) return null;
  if (!isMap(node)) throw err(node, 'local', 'must be a mapping with exe and ports');
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '?';
    if (!LOCAL_KEYS.includes(key)) throw err(pair.key, `local.${key}`, 'is not a known key; local has exe and ports');
  }
  const exe = strings(node, 'exe', 'local.exe', (s) => (EXE.test(s) ? null : `"${s}" must be an executable file name such as ollama, not a path`));
  const portsNode = node.get('ports', true);
  if (!isSeq(portsNode)) throw err(portsNode ?? node, 'local.ports', 'must be a list of port numbers');
  const ports = portsNode.items.map((el, i) => {
    const v = isScalar(el) ? el.value : null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw err(el, `local.ports[${i}]`, 'must be a port number from 1 to 65535');
    return v;
  });
  if (exe.length === 0 || ports.length === 0) throw err(node, 'local', 'needs at least one exe and one port');
  return { exe, ports };
}
