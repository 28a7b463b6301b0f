import test from 'ava';
import fc from 'fast-check';
import dnsPacket, { type Answer } from 'dns-packet';
import {
  canonicalIp, DnsCache, formatIp, frameDnsTcp, MAX_CNAME_CHAIN, normalizeHostname, parseDnsResponse,
  parseDnsTcpResponse, parseIp, splitDnsTcp, unmapIp,
} from '../../src/core/dns.js';

function response(question: string, answers: Answer[], extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({
    type: 'response', id: 4242, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ type: 'A', name: question }], answers, ...extra,
  });
}
const A = (name: string, data: string, ttl = 300): Answer => ({ type: 'A', name, ttl, data });
const AAAA = (name: string, data: string, ttl = 300): Answer => ({ type: 'AAAA', name, ttl, data });
const CNAME = (name: string, data: string, ttl = 300): Answer => ({ type: 'CNAME', name, ttl, data });

test('an A and AAAA answer gives the question name and addresses with TTLs', (t) => {
  const r = parseDnsResponse(response('api.openai.com', [A('api.openai.com', '127.0.0.2', 60), AAAA('api.openai.com', '::1', 30)]));
  t.deepEqual(r, {
    id: 4242, rcode: 'NOERROR', name: 'api.openai.com', type: 'A', chain: ['api.openai.com'], truncated: false,
    addresses: [{ address: '127.0.0.2', family: 4, ttl: 60 }, { address: '::1', family: 6, ttl: 30 }],
  });
});

test('a CNAME chain is followed to its final name; the TTL is the smallest along it', (t) => {
  const r = parseDnsResponse(response('API.Anthropic.com.', [
    CNAME('api.anthropic.com', 'edge.example.net', 600),
    CNAME('edge.example.net', 'pop7.cdn.example.net', 20),
    A('pop7.cdn.example.net', '127.0.0.9', 300),
    A('pop7.cdn.example.net', '127.0.0.9', 100), // duplicate keeps the longer TTL
    AAAA('pop7.cdn.example.net', '::ffff:127.0.0.10', 300), // v4-mapped: reached over IPv4
  ]));
  t.deepEqual(r?.chain, ['api.anthropic.com', 'edge.example.net', 'pop7.cdn.example.net']);
  t.deepEqual(r?.addresses, [{ address: '127.0.0.9', family: 4, ttl: 20 }, { address: '127.0.0.10', family: 4, ttl: 20 }]);
});

test('records that do not hang off the question are ignored', (t) => {
  const r = parseDnsResponse(response('api.groq.com', [
    A('evil.example', '127.0.0.66'), A('api.groq.com', '127.0.0.7'), CNAME('other.example', 'api.groq.com'),
  ]));
  t.deepEqual(r?.addresses.map((a) => a.address), ['127.0.0.7']);
  t.deepEqual(r?.chain, ['api.groq.com']);
});

test('CNAME loops and over-long chains end without addresses from beyond the bound', (t) => {
  const loop = parseDnsResponse(response('a.test', [CNAME('a.test', 'b.test'), CNAME('b.test', 'a.test'), A('a.test', '127.0.0.1')]));
  t.deepEqual(loop?.chain, ['a.test', 'b.test']);
  t.deepEqual(loop?.addresses, []);
  const names = Array.from({ length: MAX_CNAME_CHAIN + 3 }, (_, i) => `n${i}.test`);
  const long = names.slice(0, -1).map((n, i) => CNAME(n, names[i + 1]!));
  const r = parseDnsResponse(response('n0.test', [...long, A(names[names.length - 1]!, '127.0.0.1')]));
  t.is(r?.chain.length, MAX_CNAME_CHAIN + 2);
  t.deepEqual(r?.addresses, []);
  const ok = names.slice(0, MAX_CNAME_CHAIN + 1);
  const fine = parseDnsResponse(response('n0.test', [...ok.slice(0, -1).map((n, i) => CNAME(n, ok[i + 1]!)), A(ok[ok.length - 1]!, '127.0.0.1')]));
  t.is(fine?.addresses.length, 1);
});

test('NXDOMAIN, queries and malformed packets', (t) => {
  const nx = parseDnsResponse(dnsPacket.encode({ type: 'response', id: 1, flags: 3, questions: [{ type: 'A', name: 'nope.test' }], answers: [] }));
  t.is(nx?.rcode, 'NXDOMAIN');
  t.deepEqual(nx?.addresses, []);
  t.is(parseDnsResponse(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'api.openai.com' }] })), null);
  t.is(parseDnsResponse(dnsPacket.encode({ type: 'response', id: 1, questions: [], answers: [A('x.test', '127.0.0.1')] })), null);
  t.is(parseDnsResponse(new Uint8Array(5)), null);
  t.is(parseDnsResponse(response('bad name.test', [])), null);
  // An A record whose RDLENGTH is 2: the record and everything after it is dropped, nothing misread.
  const buf = response('x.test', [A('x.test', '127.0.0.1'), A('x.test', '127.0.0.2')]);
  const rdlen = buf.indexOf(Buffer.from([0, 4, 127, 0, 0, 1])); // RDLENGTH then RDATA
  buf[rdlen + 1] = 2;
  t.deepEqual(parseDnsResponse(buf)?.addresses, []);
  t.true(parseDnsResponse(buf)!.truncated);
  // A compression pointer to itself.
  const self = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
  t.is(parseDnsResponse(self), null);
});

test('a sample cut inside the answers keeps the complete records before the cut', (t) => {
  const full = response('api.cohere.com', [A('api.cohere.com', '127.0.0.1'), A('api.cohere.com', '127.0.0.2'), A('api.cohere.com', '127.0.0.3')]);
  const cut = parseDnsResponse(full.subarray(0, full.length - 3));
  t.deepEqual(cut?.addresses.map((a) => a.address), ['127.0.0.1', '127.0.0.2']);
  t.true(cut?.truncated);
  const tc = parseDnsResponse(response('api.cohere.com', [], { flags: dnsPacket.TRUNCATED_RESPONSE }));
  t.true(tc?.truncated);
});

test('DNS over TCP: framing, splitting a stream, parsing a sample', (t) => {
  const one = response('api.deepseek.com', [A('api.deepseek.com', '127.0.0.5')]);
  const two = response('api.x.ai', [AAAA('api.x.ai', '::1')]);
  const stream = Buffer.concat([frameDnsTcp(one), frameDnsTcp(two), frameDnsTcp(one).subarray(0, 7)]);
  const { messages, rest } = splitDnsTcp(stream);
  t.is(messages.length, 2);
  t.is(rest.length, 7);
  t.is(parseDnsResponse(messages[1]!)?.name, 'api.x.ai');
  t.deepEqual(parseDnsTcpResponse(frameDnsTcp(one))?.addresses.map((a) => a.address), ['127.0.0.5']);
  t.deepEqual(parseDnsTcpResponse(Buffer.from(dnsPacket.streamEncode(dnsPacket.decode(one))))?.name, 'api.deepseek.com');
  t.is(parseDnsTcpResponse(Uint8Array.from([0, 3, 1, 2, 3])), null);
  t.throws(() => frameDnsTcp(new Uint8Array(70000)), { instanceOf: RangeError });
});

test('addresses: parse, canonical text, v4-mapped', (t) => {
  t.is(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  t.is(canonicalIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
  t.is(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  t.is(canonicalIp('2001:db8:1:1:1:1:0:1'), '2001:db8:1:1:1:1:0:1');
  t.is(canonicalIp('::'), '::');
  t.is(canonicalIp('::ffff:10.1.2.3'), '10.1.2.3');
  t.is(canonicalIp('::ffff:a01:203'), '10.1.2.3');
  t.is(canonicalIp('127.0.0.1'), '127.0.0.1');
  for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', '[::1]', 'x', '', ':::', '1:2:3:4:5:6:7::8']) {
    t.is(parseIp(bad), null, bad);
  }
  t.deepEqual(unmapIp(parseIp('::ffff:1.2.3.4')!), { family: 4, bytes: Uint8Array.from([1, 2, 3, 4]) });
});

test('host names are validated and normalised', (t) => {
  t.is(normalizeHostname('API.OpenAI.com.'), 'api.openai.com');
  t.is(normalizeHostname('xn--bcher-kva.example'), 'xn--bcher-kva.example');
  t.is(normalizeHostname('localhost'), 'localhost');
  for (const bad of ['', '.', 'a..b', 'a b.com', '1.2.3.4', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}com`, 'bücher.de', 'a/b.com']) {
    t.is(normalizeHostname(bad), null, bad);
  }
});

test('property: IPv6 text is RFC 5952 canonical (as the WHATWG URL parser writes it) and round-trips', (t) => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (bytes, sparse) => {
    if (sparse) for (let i = 0; i < 16; i++) if (bytes[i]! % 3) bytes[i] = 0;
    const ip = { family: 6 as const, bytes };
    const text = formatIp(ip);
    const back = parseIp(text);
    const whatwg = new URL(`http://[${text}]/`).hostname.slice(1, -1);
    return back !== null && back.bytes.every((b, i) => b === bytes[i]) && (unmapIp(ip).family === 4 || whatwg === text);
  }), { numRuns: 2000 });
  t.pass();
});

test('property: IPv4 text parses exactly when it is four decimal parts 0-255 without leading zeros', (t) => {
  const reference = /^(?:(?:0|[1-9][0-9]{0,2})\.){3}(?:0|[1-9][0-9]{0,2})$/;
  const part = fc.oneof(fc.nat(300).map(String), fc.nat(99).map((n) => `0${n}`), fc.constantFrom('', 'a', '-1', ' 1', '1e2', '0x1'));
  const text = fc.array(part, { minLength: 1, maxLength: 6 }).chain((ps) => fc.constantFrom('.', '..', ':').map((sep) => ps.join(sep)));
  fc.assert(fc.property(text, (s) => {
    const parsed = parseIp(s);
    const ok = reference.test(s) && s.split('.').every((p) => Number(p) <= 255);
    if (!ok) return parsed === null || parsed.family === 6;
    return parsed !== null && parsed.family === 4 && [...parsed.bytes].join('.') === s;
  }), { numRuns: 5000 });
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// Cache

test('the cache maps an address to its question names, newest first, across v4-mapped forms', (t) => {
  const cache = new DnsCache();
  cache.add(parseDnsResponse(response('api.openai.com', [A('api.openai.com', '127.0.0.2')]))!, 0);
  cache.add(parseDnsResponse(response('chatgpt.com', [A('chatgpt.com', '127.0.0.2')]))!, 10);
  t.deepEqual(cache.namesFor('127.0.0.2', 20), ['chatgpt.com', 'api.openai.com']);
  t.deepEqual(cache.namesFor('::ffff:127.0.0.2', 20), ['chatgpt.com', 'api.openai.com']);
  t.deepEqual(cache.namesFor('127.0.0.3', 20), []);
  t.deepEqual(cache.namesFor('not an ip', 20), []);
});

test('cache entries expire by TTL, clamped to the floor and ceiling', (t) => {
  const cache = new DnsCache({ minTtlS: 60, maxTtlS: 600 });
  cache.remember('127.0.0.1', 'short.test', 5, 0);
  cache.remember('127.0.0.1', 'long.test', 86400, 0);
  t.deepEqual(cache.namesFor('127.0.0.1', 59_999), ['long.test', 'short.test']);
  t.deepEqual(cache.namesFor('127.0.0.1', 60_000), ['long.test']);
  t.deepEqual(cache.namesFor('127.0.0.1', 600_000), []);
  t.is(cache.size, 0, 'an address with no live name is dropped');
  cache.remember('127.0.0.1', 'again.test', 300, 0);
  cache.remember('127.0.0.1', 'again.test', 300, 500_000); // seen again: expiry moves
  t.deepEqual(cache.namesFor('127.0.0.1', 700_000), ['again.test']);
});

test('the cache is bounded: least recently used addresses and least recently seen names go first', (t) => {
  const cache = new DnsCache({ maxAddresses: 3, maxNamesPerAddress: 2 });
  for (let i = 1; i <= 3; i++) cache.remember(`127.0.0.${i}`, `n${i}.test`, 300, 0);
  cache.namesFor('127.0.0.1', 1); // touch .1, so .2 is now the least recently used
  cache.remember('127.0.0.4', 'n4.test', 300, 2);
  t.is(cache.size, 3);
  t.deepEqual(cache.namesFor('127.0.0.2', 3), []);
  t.deepEqual(cache.namesFor('127.0.0.1', 3), ['n1.test']);
  for (const n of ['a.test', 'b.test', 'c.test']) cache.remember('127.0.0.9', n, 300, 4);
  t.deepEqual(cache.namesFor('127.0.0.9', 5), ['c.test', 'b.test']);
  cache.remember('bogus', 'x.test', 300, 0);
  cache.remember('127.0.0.8', 'bad name', 300, 0);
  t.deepEqual(cache.namesFor('127.0.0.8', 5), []);
});

// ---------------------------------------------------------------------------------------------
// Properties on network bytes

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const name = fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => [...ls, 'test'].join('.'));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));

test('property: generated responses with CNAME chains parse to their chain, addresses and minimum TTL', (t) => {
  fc.assert(fc.property(
    fc.uniqueArray(name, { minLength: 1, maxLength: 6 }), fc.uniqueArray(ipv4, { minLength: 0, maxLength: 4 }),
    fc.array(fc.integer({ min: 0, max: 100_000 }), { minLength: 7, maxLength: 7 }), fc.nat(),
    (chain, addrs, ttls, seed) => {
      const answers: Answer[] = chain.slice(0, -1).map((n, i) => CNAME(n, chain[i + 1]!, ttls[i]!));
      answers.push(...addrs.map((a) => A(chain[chain.length - 1]!, a, ttls[6]!)));
      answers.sort((x, y) => ((x.name.length * 31 + seed) % 7) - ((y.name.length * 31 + seed) % 7)); // any order
      const r = parseDnsResponse(response(chain[0]!, answers));
      const minTtl = Math.min(...ttls.slice(0, chain.length - 1), ttls[6]!);
      return r !== null && JSON.stringify(r.chain) === JSON.stringify(chain)
        && JSON.stringify(r.addresses.map((a) => a.address).sort()) === JSON.stringify([...addrs].sort())
        && r.addresses.every((a) => a.ttl === minTtl);
    },
  ), { numRuns: 500 });
  t.pass();
});

test('property: random, truncated and mutated DNS packets never throw and never invent addresses', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
    const r = parseDnsResponse(bytes);
    return r === null || r.addresses.every((a) => canonicalIp(a.address) === a.address);
  }), { numRuns: 3000 });
  const base = response('api.openai.com', [
    CNAME('api.openai.com', 'edge.cdn.test'), A('edge.cdn.test', '127.0.0.1'), A('edge.cdn.test', '127.0.0.2'),
    AAAA('edge.cdn.test', '::1'),
  ], { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as Answer] });
  const all = new Set(parseDnsResponse(base)!.addresses.map((a) => a.address));
  fc.assert(fc.property(fc.integer({ min: 0, max: base.length }), (n) => {
    const r = parseDnsResponse(base.subarray(0, n));
    return r === null || r.addresses.every((a) => all.has(a.address));
  }));
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { minLength: 1, maxLength: 6 }),
    (edits) => {
      const bytes = Buffer.from(base);
      for (const [at, v] of edits) bytes[at] = v;
      const r = parseDnsResponse(bytes);
      return r === null || (normalizeHostname(r.name) === r.name && r.addresses.every((a) => canonicalIp(a.address) === a.address));
    },
  ), { numRuns: 3000 });
  t.pass();
});
