import test from 'ava';
import dnsPacket from 'dns-packet';
import { Catalog, mergeProviders, parseProviders, readProvidersFile, builtinCatalogPath } from '../../src/core/catalog.js';
import { Classifier } from '../../src/core/classifier.js';
import { DnsCache, parseDnsResponse } from '../../src/core/dns.js';

// The built-in catalog plus what an e2e --providers file would add: a loopback range.
const catalog = new Catalog(mergeProviders(readProvidersFile(builtinCatalogPath()), parseProviders(`providers:
  - id: loopback-llm
    name: Loopback LLM
    cidrs: [127.77.0.0/16, "fd77::/16"]
    source: https://example.test/loopback
`, 'test.yaml')));

const NOW = 1_000_000;
function classifier(dns: [ip: string, name: string][] = []): Classifier {
  const c = new Classifier(catalog, new DnsCache());
  for (const [ip, name] of dns) c.dns.remember(ip, name, 300, NOW - 1000);
  return c;
}

test('SNI in the catalog decides, whatever DNS and ranges say', (t) => {
  const c = classifier([['127.77.0.5', 'api.openai.com']]);
  t.deepEqual(c.classify({ dstIp: '127.77.0.5', dstPort: 443, sni: 'api.anthropic.com', nowMs: NOW }),
    { provider: 'anthropic', host: 'api.anthropic.com', via: 'sni' });
  t.deepEqual(c.classify({ dstIp: '10.0.0.1', dstPort: 443, sni: 'Bedrock-Runtime.eu-west-3.amazonaws.com', nowMs: NOW }),
    { provider: 'aws-bedrock', host: 'bedrock-runtime.eu-west-3.amazonaws.com', via: 'sni' });
});

test('an SNI not in the catalog beats a DNS name for the same address (shared CDN)', (t) => {
  const c = classifier([['127.0.0.20', 'api.openai.com']]);
  t.deepEqual(c.classify({ dstIp: '127.0.0.20', dstPort: 443, sni: 'www.example.test', nowMs: NOW }),
    { provider: null, host: 'www.example.test', via: 'sni' });
});

test('an SNI not in the catalog still lets a published range or a local server say who runs the server', (t) => {
  const c = classifier();
  t.deepEqual(c.classify({ dstIp: '127.77.1.1', dstPort: 443, sni: 'new-endpoint.loopback.test', nowMs: NOW }),
    { provider: 'loopback-llm', host: 'new-endpoint.loopback.test', via: 'cidr' });
  t.deepEqual(c.classify({ dstIp: '127.0.0.1', dstPort: 11434, sni: 'localhost', listenerExe: '/usr/bin/ollama', nowMs: NOW }),
    { provider: 'ollama', host: 'localhost', via: 'port' });
});

test('a DNS answer for the address classifies a flow without SNI', (t) => {
  const c = new Classifier(catalog);
  const answer = parseDnsResponse(dnsPacket.encode({
    type: 'response', id: 1, questions: [{ type: 'A', name: 'api.mistral.ai' }],
    answers: [
      { type: 'CNAME', name: 'api.mistral.ai', ttl: 60, data: 'mistral.edge.test' },
      { type: 'A', name: 'mistral.edge.test', ttl: 60, data: '127.0.0.30' },
    ],
  }))!;
  c.observeDns(answer, NOW);
  t.deepEqual(c.classify({ dstIp: '127.0.0.30', dstPort: 443, nowMs: NOW + 1000 }),
    { provider: 'mistral', host: 'api.mistral.ai', via: 'dns' });
  t.deepEqual(c.classify({ dstIp: '::ffff:127.0.0.30', dstPort: 443, sni: null, nowMs: NOW + 1000 }),
    { provider: 'mistral', host: 'api.mistral.ai', via: 'dns' });
  t.deepEqual(c.classify({ dstIp: '127.0.0.30', dstPort: 443, nowMs: NOW + 3_600_001 }),
    { provider: null, host: null, via: null }, 'an expired answer says nothing');
});

test('an address seen for names of several providers is not trusted alone', (t) => {
  const c = classifier([['127.0.0.40', 'api.openai.com'], ['127.0.0.40', 'api.anthropic.com']]);
  t.deepEqual(c.classify({ dstIp: '127.0.0.40', dstPort: 443, nowMs: NOW }), { provider: null, host: null, via: null });
  const mixed = classifier([['127.77.0.41', 'api.groq.com'], ['127.77.0.41', 'www.example.test']]);
  t.deepEqual(mixed.classify({ dstIp: '127.77.0.41', dstPort: 443, nowMs: NOW }),
    { provider: 'loopback-llm', host: null, via: 'cidr' }, 'falls through to the published range');
  const localMixed = classifier([['127.0.0.42', 'api.groq.com'], ['127.0.0.42', 'www.example.test']]);
  t.deepEqual(localMixed.classify({ dstIp: '127.0.0.42', dstPort: 8080, listenerExe: '/opt/llama-server', nowMs: NOW }),
    { provider: 'llama-cpp', host: null, via: 'port' }, 'then to the local server');
});

test('several names of the same provider are trusted; the most recent is the host', (t) => {
  const c = classifier([['127.0.0.50', 'api.openai.com']]);
  c.dns.remember('127.0.0.50', 'eu.api.openai.com', 300, NOW - 10);
  t.deepEqual(c.classify({ dstIp: '127.0.0.50', dstPort: 443, nowMs: NOW }),
    { provider: 'openai', host: 'eu.api.openai.com', via: 'dns' });
});

test('a single non-provider DNS name is kept as the host (for --all)', (t) => {
  const c = classifier([['127.0.0.60', 'www.example.test']]);
  t.deepEqual(c.classify({ dstIp: '127.0.0.60', dstPort: 443, nowMs: NOW }),
    { provider: null, host: 'www.example.test', via: 'dns' });
});

test('published ranges, then local servers, then nothing', (t) => {
  const c = classifier();
  t.deepEqual(c.classify({ dstIp: '160.79.104.20', dstPort: 443, nowMs: NOW }), { provider: 'anthropic', host: null, via: 'cidr' });
  t.deepEqual(c.classify({ dstIp: 'fd77::9', dstPort: 443, nowMs: NOW }), { provider: 'loopback-llm', host: null, via: 'cidr' });
  t.deepEqual(c.classify({ dstIp: '127.0.0.1', dstPort: 11434, listenerExe: '/usr/local/bin/ollama', nowMs: NOW }),
    { provider: 'ollama', host: null, via: 'port' });
  t.deepEqual(c.classify({ dstIp: '127.0.0.1', dstPort: 8000, listenerExe: '/usr/bin/python3.11', listenerComm: 'vllm', nowMs: NOW }),
    { provider: 'vllm', host: null, via: 'port' });
  t.deepEqual(c.classify({ dstIp: '127.0.0.1', dstPort: 11434, listenerExe: '/usr/bin/nc', nowMs: NOW }), { provider: null, host: null, via: null });
  t.deepEqual(c.classify({ dstIp: '127.0.0.1', dstPort: 11434, nowMs: NOW }), { provider: null, host: null, via: null });
});

test('with encrypted_client_hello an unknown outer SNI gives way to DNS', (t) => {
  const c = classifier([['127.0.0.70', 'api.perplexity.ai']]);
  t.deepEqual(c.classify({ dstIp: '127.0.0.70', dstPort: 443, sni: 'cloudflare-ech.com', ech: true, nowMs: NOW }),
    { provider: 'perplexity', host: 'api.perplexity.ai', via: 'dns' });
  t.deepEqual(c.classify({ dstIp: '127.0.0.71', dstPort: 443, sni: 'cloudflare-ech.com', ech: true, nowMs: NOW }),
    { provider: null, host: 'cloudflare-ech.com', via: 'sni' });
  t.deepEqual(c.classify({ dstIp: '127.0.0.71', dstPort: 443, sni: 'api.openai.com', ech: true, nowMs: NOW }),
    { provider: 'openai', host: 'api.openai.com', via: 'sni' });
});

test('an SNI that is not a valid host name counts as no SNI', (t) => {
  const c = classifier([['127.0.0.80', 'api.deepseek.com']]);
  t.deepEqual(c.classify({ dstIp: '127.0.0.80', dstPort: 443, sni: 'bad name!', nowMs: NOW }),
    { provider: 'deepseek', host: 'api.deepseek.com', via: 'dns' });
});

test('through a proxy the CONNECT target decides (via proxy): by name or by range; DNS for the proxy is not consulted', (t) => {
  const c = classifier([['10.1.1.1', 'api.openai.com']]); // a DNS name seen for the proxy's address
  const tunnel = (host: string, ip = false) => ({ host, port: 443, ip });
  t.deepEqual(c.classify({ dstIp: '10.1.1.1', dstPort: 3128, proxy: tunnel('api.anthropic.com'), nowMs: NOW }),
    { provider: 'anthropic', host: 'api.anthropic.com', via: 'proxy' });
  t.deepEqual(c.classify({ dstIp: '10.1.1.1', dstPort: 3128, proxy: tunnel('127.77.0.9', true), nowMs: NOW }),
    { provider: 'loopback-llm', host: '127.77.0.9', via: 'proxy' }, 'an address target by the published ranges');
  t.deepEqual(c.classify({ dstIp: '10.1.1.1', dstPort: 3128, proxy: tunnel('www.example.org'), nowMs: NOW }),
    { provider: null, host: 'www.example.org', via: 'proxy' }, 'not the DNS name of the proxy');
  t.deepEqual(c.classify({ dstIp: '127.77.0.1', dstPort: 3128, proxy: tunnel('www.example.org'), nowMs: NOW }),
    { provider: 'loopback-llm', host: 'www.example.org', via: 'cidr' }, 'a proxy a user mapped to a provider is that provider');
  t.deepEqual(c.classify({ dstIp: '10.1.1.1', dstPort: 3128, sni: 'api.mistral.ai', proxy: tunnel('api.groq.com'), nowMs: NOW }),
    { provider: 'groq', host: 'api.groq.com', via: 'proxy' });
});
