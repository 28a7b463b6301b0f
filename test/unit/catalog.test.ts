import test from 'ava';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memo } from '../../src/core/memo.js';
import {
  builtinCatalogPath, Catalog, CatalogError, hostPatternProblem, loadCatalog, mergeProviders, parseCidr,
  parseProviders, readProvidersFile, type ProviderEntry,
} from '../../src/core/catalog.js';

const dir = mkdtempSync(join(tmpdir(), 'busted-catalog-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string): string {
  const path = join(dir, `providers-${n++}.yaml`);
  writeFileSync(path, text);
  return path;
}

const entry = (over: Partial<ProviderEntry>): ProviderEntry => ({
  id: 'x', name: 'X', hosts: [], cidrs: [], local: null, source: 'https://example.test/', ...over,
});

// ---------------------------------------------------------------------------------------------
// The built-in catalog

const builtin = loadCatalog();

test('the built-in catalog loads and covers every provider the design names, each with a source', (t) => {
  const ids = builtin.providers().map((p) => p.id);
  for (const id of ['openai', 'anthropic', 'gemini', 'vertex-ai', 'azure-openai', 'azure-ai', 'aws-bedrock', 'mistral',
    'cohere', 'groq', 'together', 'fireworks', 'perplexity', 'deepseek', 'xai', 'openrouter', 'huggingface', 'replicate',
    'ollama', 'lm-studio', 'vllm', 'llama-cpp', 'tgi']) t.true(ids.includes(id), id);
  for (const e of builtin.entries) t.regex(e.source, /^https:\/\//, e.id);
  t.deepEqual(builtin.providers()[0], { index: 0, id: 'openai', name: 'OpenAI' });
});

test('built-in hosts: exact names, regional endpoints and every Bedrock region', (t) => {
  const cases: [string, string | null][] = [
    ['api.openai.com', 'openai'], ['eu.api.openai.com', 'openai'], ['api.anthropic.com', 'anthropic'],
    ['generativelanguage.googleapis.com', 'gemini'], ['aiplatform.googleapis.com', 'vertex-ai'],
    ['europe-west4-aiplatform.googleapis.com', 'vertex-ai'], ['aiplatform.us.rep.googleapis.com', 'vertex-ai'],
    ['my-res.openai.azure.com', 'azure-openai'], ['my-res.services.ai.azure.com', 'azure-ai'],
    ['my-res.cognitiveservices.azure.com', 'azure-ai'], ['models.inference.ai.azure.com', 'azure-ai'],
    ['bedrock-runtime.us-east-1.amazonaws.com', 'aws-bedrock'], ['bedrock-runtime.ap-southeast-4.amazonaws.com', 'aws-bedrock'],
    ['bedrock-agent-runtime.eu-central-1.amazonaws.com', 'aws-bedrock'], ['bedrock.us-west-2.amazonaws.com', 'aws-bedrock'],
    ['bedrock-runtime-fips.us-east-2.amazonaws.com', 'aws-bedrock'], ['bedrock-mantle.us-east-1.api.aws', 'aws-bedrock'],
    ['vpce-0a1b-c2d3.bedrock-runtime.us-east-1.vpce.amazonaws.com', 'aws-bedrock'],
    ['api.mistral.ai', 'mistral'], ['api.eu.mistral.ai', 'mistral'], ['api.cohere.com', 'cohere'], ['api.groq.com', 'groq'],
    ['api.together.xyz', 'together'], ['api.fireworks.ai', 'fireworks'], ['api.perplexity.ai', 'perplexity'],
    ['api.deepseek.com', 'deepseek'], ['api.x.ai', 'xai'], ['us-east-1.api.x.ai', 'xai'], ['openrouter.ai', 'openrouter'],
    ['router.huggingface.co', 'huggingface'], ['my-ep.us-east-1.aws.endpoints.huggingface.cloud', 'huggingface'],
    ['api.replicate.com', 'replicate'],
    // not providers
    ['openai.azure.com', null], ['s3.us-east-1.amazonaws.com', null], ['www.googleapis.com', null], ['example.com', null],
    ['ec2.bedrock.amazonaws.com.evil.test', null], ['api.openai.com.evil.test', null], ['xapi.openai.com', null],
  ];
  for (const [host, id] of cases) t.is(builtin.matchHost(host)?.provider.id ?? null, id, host);
  t.is(builtin.matchHost('API.OpenAI.COM.')?.provider.id, 'openai');
  t.is(builtin.matchHost('not a host'), null);
});

test('built-in ranges and local servers', (t) => {
  t.is(builtin.matchIp('160.79.104.10')?.provider.id, 'anthropic');
  t.is(builtin.matchIp('::ffff:160.79.105.255')?.provider.id, 'anthropic');
  t.is(builtin.matchIp('2607:6bc0::10')?.provider.id, 'anthropic');
  t.is(builtin.matchIp('160.79.106.1'), null);
  t.is(builtin.matchIp('127.0.0.1'), null);
  t.is(builtin.matchLocal({ exe: '/usr/local/bin/ollama' }, 11434)?.provider.id, 'ollama');
  t.is(builtin.matchLocal({ exe: '/usr/local/bin/ollama' }, 8080), null, 'port must match too');
  t.is(builtin.matchLocal({ exe: '/usr/bin/python3.12', comm: 'vllm' }, 8000)?.provider.id, 'vllm');
  t.is(builtin.matchLocal({ exe: '/usr/bin/python3.12', comm: 'python3' }, 8000), null);
  t.is(builtin.matchLocal({ exe: '/opt/llama.cpp/build/bin/llama-server' }, 8080)?.provider.id, 'llama-cpp');
  t.is(builtin.matchLocal({ comm: 'text-generation' }, 80)?.provider.id, 'tgi', 'comm is cut at 15 characters');
  t.is(builtin.matchLocal({ exe: '/tmp/.mount_LM/lm-studio' }, 1234)?.provider.id, 'lm-studio');
  t.is(builtin.matchLocal({}, 11434), null);
});

test('the built-in file is the one the loader reads', (t) => {
  t.regex(builtinCatalogPath(), /catalog\/providers\.yaml$/);
  t.deepEqual(readProvidersFile(builtinCatalogPath()), [...builtin.entries]);
});

// ---------------------------------------------------------------------------------------------
// Pattern rules and precedence

test('pattern rules: *. is any depth below, a mid * is one label, * in a label is any run of characters', (t) => {
  const c = new Catalog([
    entry({ id: 'suffix', hosts: ['*.example.test'] }),
    entry({ id: 'mid', hosts: ['svc.*.cloud.test'] }),
    entry({ id: 'part', hosts: ['*-ai.apis.test', 'run*.x.cloud.test'] }),
  ]);
  const id = (h: string) => c.matchHost(h)?.provider.id ?? null;
  t.is(id('a.example.test'), 'suffix');
  t.is(id('a.b.c.example.test'), 'suffix');
  t.is(id('example.test'), null);
  t.is(id('svc.eu-1.cloud.test'), 'mid');
  t.is(id('svc.a.b.cloud.test'), null, 'a mid * never spans a dot');
  t.is(id('svc.cloud.test'), null);
  t.is(id('us-central1-ai.apis.test'), 'part');
  t.is(id('-ai.apis.test'), 'part', '* matches zero characters');
  t.is(id('x.us-ai.apis.test'), null);
  t.is(id('run.x.cloud.test'), 'part');
  t.is(id('runner-7.x.cloud.test'), 'part');
});

test('precedence: exact beats any pattern, then the most literal characters, then the later entry', (t) => {
  const c = new Catalog([
    entry({ id: 'broad', hosts: ['*.cloud.test'] }),
    entry({ id: 'narrow', hosts: ['*.ai.cloud.test'] }),
    entry({ id: 'mid', hosts: ['svc.*.cloud.test'] }),
    entry({ id: 'exact', hosts: ['svc.ai.cloud.test'] }),
    entry({ id: 'first', hosts: ['dup.test', '*.same.test'] }),
    entry({ id: 'second', hosts: ['dup.test', '*.same.test'] }),
  ]);
  const id = (h: string) => c.matchHost(h)?.provider.id ?? null;
  t.is(id('svc.ai.cloud.test'), 'exact');
  t.is(id('x.ai.cloud.test'), 'narrow');
  t.is(id('svc.eu.cloud.test'), 'mid');
  t.is(id('other.cloud.test'), 'broad');
  t.is(id('dup.test'), 'second');
  t.is(id('a.same.test'), 'second');
  t.deepEqual(c.matchHost('x.ai.cloud.test')?.rule, '*.ai.cloud.test');
});

test('host patterns that are refused', (t) => {
  for (const ok of ['api.example.test', '*.example.test', 'bedrock*.*.amazonaws.com', '*-aiplatform.googleapis.com', 'localhost']) {
    t.is(hostPatternProblem(ok), null, ok);
  }
  for (const bad of ['*', '*.com', '*.*', 'api.*', 'api.example.*', 'a..b', 'a b.test', 'a**.b.test', 'http://x.test', '1.2.3.4', 'x.*.test']) {
    t.truthy(hostPatternProblem(bad), bad);
  }
});

test('ranges: longest prefix wins, v4 and v6, v4-mapped addresses match v4 ranges', (t) => {
  const c = new Catalog([
    entry({ id: 'wide', cidrs: ['127.0.0.0/8', '2001:db8::/32'] }),
    entry({ id: 'narrow', cidrs: ['127.1.0.0/16', '2001:db8:aa::/48', '0.0.0.0/0'] }),
    entry({ id: 'host', cidrs: ['127.1.2.3/32', '::1/128'] }),
  ]);
  const id = (ip: string) => c.matchIp(ip)?.provider.id ?? null;
  t.is(id('127.9.9.9'), 'wide');
  t.is(id('127.1.9.9'), 'narrow');
  t.is(id('127.1.2.3'), 'host');
  t.is(id('::ffff:127.1.2.3'), 'host');
  t.is(id('8.8.8.8'), 'narrow', '0.0.0.0/0 catches the rest of IPv4');
  t.is(id('2001:db8:1::1'), 'wide');
  t.is(id('2001:db8:aa::1'), 'narrow');
  t.is(id('::1'), 'host');
  t.is(id('2001:dead::1'), null);
  t.is(id('garbage'), null);
  t.deepEqual(c.matchIp('127.1.2.3')?.rule, '127.1.2.3/32');
});

test('cidrEntries gives the kernel every range with its provider index, optionally v4-mapped', (t) => {
  const c = new Catalog([entry({ id: 'a', hosts: ['a.test'] }), entry({ id: 'b', cidrs: ['127.66.0.0/16', 'fd00::/8'] })]);
  t.deepEqual(c.cidrEntries(), [
    { family: 4, prefix: Uint8Array.from([127, 66, 0, 0]), prefixLen: 16, providerIndex: 1 },
    { family: 6, prefix: Uint8Array.from([0xfd, ...new Array(15).fill(0)]), prefixLen: 8, providerIndex: 1 },
  ]);
  const mapped = c.cidrEntries({ v4Mapped: true });
  t.is(mapped.length, 3);
  t.deepEqual(mapped[2], { family: 6, prefix: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 66, 0, 0]), prefixLen: 112, providerIndex: 1 });
});

test('parseCidr explains what is wrong', (t) => {
  t.like(parseCidr('10.0.0.0/8'), { ok: true, family: 4, prefixLen: 8 });
  t.like(parseCidr('10.1.0.0/8'), { ok: false, problem: '"10.1.0.0/8" has address bits set past /8; write 10.0.0.0/8' });
  t.like(parseCidr('2001:db8::1/32'), { ok: false, problem: '"2001:db8::1/32" has address bits set past /32; write 2001:db8::/32' });
  t.like(parseCidr('10.0.0.0/33'), { ok: false });
  t.like(parseCidr('10.0.0.0'), { ok: false });
  t.like(parseCidr('10.0.0.0/08'), { ok: false });
  t.like(parseCidr('::/0'), { ok: true, family: 6, prefixLen: 0 });
});

// ---------------------------------------------------------------------------------------------
// --providers files

test('a --providers file overrides an entry by id and adds new ones', (t) => {
  const path = file(`providers:
  - id: openai
    name: OpenAI via proxy
    hosts: [llm-proxy.corp.test]
    source: https://wiki.corp.test/llm-proxy
  - id: loopback-llm
    name: Loopback LLM
    cidrs: [127.77.0.0/16]
    local: {exe: [fake-llm], ports: [7777]}
    source: https://example.test/loopback
`);
  const c = loadCatalog(path);
  t.is(c.providers()[0]!.name, 'OpenAI via proxy', 'an override keeps its place');
  t.is(c.matchHost('api.openai.com'), null, 'an override replaces the whole entry');
  t.is(c.matchHost('llm-proxy.corp.test')?.provider.id, 'openai');
  t.is(c.matchIp('127.77.1.1')?.provider.id, 'loopback-llm');
  t.is(c.matchLocal({ exe: 'fake-llm' }, 7777)?.provider.id, 'loopback-llm');
  t.is(c.providers().at(-1)!.id, 'loopback-llm');
  t.is(c.get('anthropic')?.name, 'Anthropic');
  t.deepEqual(mergeProviders([entry({ id: 'a' }), entry({ id: 'b' })], [entry({ id: 'b', name: 'B2' }), entry({ id: 'c' })]).map((e) => `${e.id}:${e.name}`), ['a:X', 'b:B2', 'c:X']);
});

test('JSON is accepted as YAML', (t) => {
  const entries = parseProviders(JSON.stringify({ providers: [{ id: 'j', name: 'J', hosts: ['j.test'], source: 'https://j.test/' }] }), 'p.json');
  t.deepEqual(entries, [{ id: 'j', name: 'J', hosts: ['j.test'], cidrs: [], local: null, source: 'https://j.test/' }]);
});

function errorOf(text: string): CatalogError {
  const path = file(text);
  const err = t_throws(() => readProvidersFile(path));
  return err;
}
function t_throws(fn: () => unknown): CatalogError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CatalogError) return err;
    throw err;
  }
  throw new Error('expected a CatalogError');
}

test('validation: bad YAML names the file and line', (t) => {
  const err = errorOf('providers:\n  - id: a\n    name: [unclosed\n');
  t.is(err.line, 4);
  t.true(err.message.startsWith(`providers file ${err.file}, line 4: is not valid YAML: `), err.message);
  const dupKey = errorOf('providers:\n  - id: a\n    id: b\n');
  t.is(dupKey.line, 3);
  t.regex(dupKey.message, /unique/);
});

test('validation: an unknown key names the entry, its id and the line', (t) => {
  const err = errorOf(`providers:
  - id: acme
    name: Acme
    hosts: [acme.test]
    hostz: [typo.test]
    source: https://acme.test/
`);
  t.is(err.message, `providers file ${err.file}, line 5, providers[0] (id "acme"): unknown key "hostz"; an entry may have id, name, hosts, cidrs, local, source`);
  t.like(err, { line: 5, entry: 0, id: 'acme', field: null });
  const top = errorOf('providers: []\nextra: 1\n');
  t.is(top.message, `providers file ${top.file}, line 2: unknown key "extra"; the top level holds only "providers"`);
  const local = errorOf('providers:\n  - id: l\n    name: L\n    local: {exe: [x], ports: [1], port: 2}\n    source: https://l.test/\n');
  t.like(local, { line: 4, field: 'local.port' });
});

test('validation: a bad range names the field and its index', (t) => {
  const err = errorOf(`providers:
  - id: ok
    name: OK
    hosts: [ok.test]
    source: https://ok.test/
  - id: acme
    name: Acme
    cidrs:
      - 203.0.113.0/24
      - 10.0.0.0/33
    source: https://acme.test/
`);
  t.is(err.message, `providers file ${err.file}, line 10, providers[1] (id "acme"), field cidrs[1]: "10.0.0.0/33" has a prefix length that is not 0 to 32`);
});

test('validation: a missing id, a duplicate id, bad values', (t) => {
  const missing = errorOf('providers:\n  - name: Nameless\n    hosts: [x.test]\n    source: https://x.test/\n');
  t.is(missing.message, `providers file ${missing.file}, line 2, providers[0], field id: is missing; it must be a lower-case id such as acme-llm (letters, digits, ".", "_", "-")`);
  const dup = errorOf(`providers:
  - {id: twin, name: One, hosts: [one.test], source: "https://one.test/"}
  - {id: twin, name: Two, hosts: [two.test], source: "https://two.test/"}
`);
  t.is(dup.message, `providers file ${dup.file}, line 3, providers[1] (id "twin"), field id: id "twin" is already used by providers[0] (line 2); each id may appear once per file`);
  const upper = errorOf('providers:\n  - {id: Acme, name: A, hosts: [a.test], source: "https://a.test/"}\n');
  t.like(upper, { line: 2, field: 'id', id: null });
  const port = errorOf('providers:\n  - id: p\n    name: P\n    local:\n      exe: [p]\n      ports: [80, 70000]\n    source: https://p.test/\n');
  t.like(port, { line: 6, field: 'local.ports[1]', id: 'p' });
  const path = errorOf('providers:\n  - {id: p, name: P, local: {exe: [/usr/bin/p], ports: [1]}, source: "https://p.test/"}\n');
  t.like(path, { field: 'local.exe[0]' });
  const host = errorOf('providers:\n  - id: h\n    name: H\n    hosts:\n      - ok.test\n      - "*.com"\n    source: https://h.test/\n');
  t.like(host, { line: 6, field: 'hosts[1]' });
  const nothing = errorOf('providers:\n  - {id: e, name: E, source: "https://e.test/"}\n');
  t.regex(nothing.message, /gives no way to recognise the provider; add hosts, cidrs or local$/);
  const source = errorOf('providers:\n  - {id: s, name: S, hosts: [s.test], source: "somewhere"}\n');
  t.like(source, { field: 'source', line: 2 });
  const notList = errorOf('providers:\n  - {id: s, name: S, hosts: s.test, source: "https://s.test/"}\n');
  t.like(notList, { field: 'hosts' });
});

test('validation: empty file, wrong shapes, unreadable file', (t) => {
  t.regex(errorOf('').message, /is empty; it needs a "providers:" list$/);
  t.regex(errorOf('- id: a\n').message, /line 1: must be a mapping with a "providers:" list$/);
  t.regex(errorOf('providers: {id: a}\n').message, /line 1: "providers" must be a list of entries$/);
  t.regex(errorOf('providers:\n  - just-a-string\n').message, /line 2, providers\[0\]: each entry must be a mapping/);
  const gone = t_throws(() => readProvidersFile(join(dir, 'missing.yaml')));
  t.is(gone.message, `providers file ${join(dir, 'missing.yaml')}: cannot be read (ENOENT); check the path given to --providers`);
  t.throws(() => loadCatalog(join(dir, 'missing.yaml')), { instanceOf: CatalogError });
});

test('memo keeps answers by argument, null ones too, and drops them all when full', (t) => {
  let calls = 0;
  const f = memo((x: number) => {
    calls++;
    return x % 2 === 0 ? null : x * 10;
  }, 2);
  t.deepEqual([f(1), f(1), f(2), f(2)], [10, 10, null, null]);
  t.is(calls, 2);
  t.is(f(3), 30); // full: 1 and 2 dropped
  t.is(calls, 3);
  t.is(f(1), 10);
  t.is(calls, 4);
});
