import test from 'ava';
import fc from 'fast-check';
import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import {
  ClientHelloAssembler, clientHelloLength, isGrease, parseClientHello, type ClientHelloInfo,
} from '../../src/core/tls.js';
import { alpnExt, ascii, concat, ext, helloMessage, records, sniExt, u16, versionsExt } from '../helpers/tls-hello.js';

// ---------------------------------------------------------------------------------------------
// Real ClientHellos: a plain TCP listener on 127.0.0.1 records what a TLS client sends first.

function captureClientHello(startClient: (port: number) => () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let stopClient: (() => void) | null = null;
    const timer = setTimeout(() => finish(new Error('no complete ClientHello within 10 s')), 10_000);
    const server = net.createServer((socket) => {
      const chunks: Buffer[] = [];
      socket.on('error', () => {});
      socket.on('data', (d) => {
        chunks.push(d);
        const bytes = Buffer.concat(chunks);
        const need = clientHelloLength(bytes);
        if (need === null || need <= bytes.length) {
          socket.destroy();
          finish(null, bytes);
        }
      });
    });
    function finish(err: Error | null, bytes?: Buffer) {
      clearTimeout(timer);
      stopClient?.();
      server.close();
      if (err) reject(err);
      else resolve(bytes!);
    }
    server.listen(0, '127.0.0.1', () => {
      stopClient = startClient((server.address() as net.AddressInfo).port);
    });
  });
}

function nodeClient(options: tls.ConnectionOptions) {
  return (port: number) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    socket.on('error', () => {});
    return () => socket.destroy();
  };
}

const PYTHON_CLIENT = `
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(sys.argv[3].split(","))
if sys.argv[4] == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    ctx.wrap_socket(s, server_hostname=sys.argv[2])
except Exception:
    pass
`;

function pythonClient(serverName: string, alpn: string[], maxVersion: '1.2' | '1.3') {
  return (port: number) => {
    const child = spawn('python3', ['-c', PYTHON_CLIENT, String(port), serverName, alpn.join(','), maxVersion], { stdio: 'ignore' });
    return () => { child.kill(); };
  };
}

test('a ClientHello from Node (TLS 1.3) yields its SNI, ALPN and version', async (t) => {
  const bytes = await captureClientHello(nodeClient({ servername: 'api.openai.com', ALPNProtocols: ['h2', 'http/1.1'] }));
  t.is(clientHelloLength(bytes), bytes.length);
  t.deepEqual(parseClientHello(bytes), { sni: 'api.openai.com', alpn: ['h2', 'http/1.1'], version: 'TLS1.3', ech: false });
});

test('a ClientHello from Node limited to TLS 1.2 says TLS1.2', async (t) => {
  const bytes = await captureClientHello(nodeClient({ servername: 'api.anthropic.com', maxVersion: 'TLSv1.2' }));
  t.deepEqual(parseClientHello(bytes), { sni: 'api.anthropic.com', alpn: [], version: 'TLS1.2', ech: false });
});

test('a server name with upper-case letters comes out lower-case', async (t) => {
  const bytes = await captureClientHello(nodeClient({ servername: 'Generativelanguage.GoogleAPIs.com' }));
  t.is(parseClientHello(bytes)?.sni, 'generativelanguage.googleapis.com');
});

test('a ClientHello from Python ssl (TLS 1.3 and 1.2) yields its SNI and ALPN', async (t) => {
  const v13 = await captureClientHello(pythonClient('bedrock-runtime.us-east-1.amazonaws.com', ['h2', 'http/1.1'], '1.3'));
  t.deepEqual(parseClientHello(v13), {
    sni: 'bedrock-runtime.us-east-1.amazonaws.com', alpn: ['h2', 'http/1.1'], version: 'TLS1.3', ech: false,
  });
  const v12 = await captureClientHello(pythonClient('api.mistral.ai', ['http/1.1'], '1.2'));
  t.deepEqual(parseClientHello(v12), { sni: 'api.mistral.ai', alpn: ['http/1.1'], version: 'TLS1.2', ech: false });
});

test('a ClientHello larger than one kernel sample is rebuilt from 1024-byte chunks in any order', async (t) => {
  const longName = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.openai.azure.com`;
  const alpn = Array.from({ length: 60 }, (_, i) => `proto-${i}-${'x'.repeat(20)}`);
  const bytes = await captureClientHello(nodeClient({ servername: longName, ALPNProtocols: alpn }));
  t.true(bytes.length > 2048);
  const chunks: [Uint8Array, number][] = [];
  for (let off = 0; off < bytes.length; off += 1024) chunks.push([bytes.subarray(off, off + 1024), off]);
  const asm = new ClientHelloAssembler();
  for (const [chunk, off] of chunks.reverse()) asm.push(chunk, off);
  const result = asm.result;
  t.is(result.state, 'complete');
  if (result.state === 'complete') {
    t.is(result.info.sni, longName);
    t.is(result.info.alpn.length, 16); // bounded
  }
});

// ---------------------------------------------------------------------------------------------
// Synthetic ClientHellos

const GREASE_EXT = ext(0x0a0a, []);

test('GREASE values are recognised and skipped in extensions, versions and ALPN', (t) => {
  t.true(isGrease(0x0a0a) && isGrease(0xfafa) && isGrease(0x3a3a));
  t.false(isGrease(0x0a1a) || isGrease(0x0303) || isGrease(0x1301));
  const hello = records(helloMessage([
    GREASE_EXT, versionsExt(0x7a7a, 0x0304, 0x0303), alpnExt([0x2a, 0x2a], 'h2'), ext(0xdada, [0]), sniExt('api.groq.com'),
  ]));
  t.deepEqual(parseClientHello(hello), { sni: 'api.groq.com', alpn: ['h2'], version: 'TLS1.3', ech: false });
});

test('extensions are found in any order and unknown ones are skipped', (t) => {
  const exts = [sniExt('api.x.ai'), alpnExt('h2'), versionsExt(0x0304), ext(10, [0, 2, 0, 29]), ext(0xff01, [0])];
  for (const order of [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [3, 0, 4, 2, 1]]) {
    const info = parseClientHello(records(helloMessage(order.map((i) => exts[i]!))));
    t.deepEqual(info, { sni: 'api.x.ai', alpn: ['h2'], version: 'TLS1.3', ech: false });
  }
});

test('versions: legacy only, supported_versions highest, never above TLS 1.2 without supported_versions', (t) => {
  t.is(parseClientHello(records(helloMessage(null, 0x0301)))?.version, 'TLS1.0');
  t.is(parseClientHello(records(helloMessage([], 0x0303)))?.version, 'TLS1.2');
  t.is(parseClientHello(records(helloMessage([], 0x0304)))?.version, 'TLS1.2');
  t.is(parseClientHello(records(helloMessage([versionsExt(0x0302, 0x0303)])))?.version, 'TLS1.2');
  t.is(parseClientHello(records(helloMessage([versionsExt(0x7f1c)])))?.version, 'TLS1.2'); // unknown draft only
  t.is(parseClientHello(records(helloMessage(null, 0x0200))), null); // not SSL3+
});

test('an invalid host_name gives a null sni but still a ClientHello', (t) => {
  const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
  for (const bad of ['exa mple.com', 'a..b', '1.2.3.4', `${'x'.repeat(64)}.com`, 'bad\u0000.com', 'é.com', `${longest}x`]) {
    const info = parseClientHello(records(helloMessage([sniExt(bad)])));
    t.truthy(info, bad);
    t.is(info!.sni, null, bad);
  }
  t.is(parseClientHello(records(helloMessage([sniExt(longest)])))?.sni, longest);
  t.is(parseClientHello(records(helloMessage([sniExt('API.Example.COM.')])))?.sni, 'api.example.com');
});

test('structural errors make it not a ClientHello', (t) => {
  t.is(parseClientHello(records(helloMessage([sniExt('a.com'), sniExt('b.com')]))), null, 'duplicate extension');
  t.is(parseClientHello(records(helloMessage([ext(0, [0, 9, 0, 0, 3, 97])]))), null, 'server_name list overruns');
  t.is(parseClientHello(records(helloMessage([alpnExt('')]))), null, 'empty ALPN name');
  t.is(parseClientHello(records(helloMessage([ext(43, [3, 3, 4])]))), null, 'odd supported_versions');
  const msg = helloMessage([sniExt('a.com')]);
  const trailing = concat(msg.subarray(0, 4), msg.subarray(4), [0]);
  trailing[3]! += 1; // the body claims one more byte than the extensions use
  t.is(parseClientHello(records(trailing)), null, 'bytes after the extensions');
  t.is(parseClientHello(Uint8Array.from([0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5])), null, 'application data record');
  t.is(clientHelloLength(Uint8Array.from([0x16, 3, 1, 0, 5, 2])), null, 'ServerHello, not ClientHello');
  t.is(clientHelloLength(Uint8Array.from([0x16, 3, 1, 0x40, 1])), null, 'record over 2^14 bytes');
  t.is(clientHelloLength(Uint8Array.from([0x16, 3, 1, 0, 8, 1, 0, 0, 3])), null, 'body too short to be a ClientHello');
  t.is(clientHelloLength(Uint8Array.from([0x16, 2])), null, 'not TLS major version 3');
});

test('encrypted_client_hello is reported: the SNI is then the outer name', (t) => {
  const info = parseClientHello(records(helloMessage([sniExt('cloudflare-ech.com'), ext(0xfe0d, [0, 1, 2, 3])])));
  t.deepEqual(info, { sni: 'cloudflare-ech.com', alpn: [], version: 'TLS1.2', ech: true });
});

test('a handshake split over several records (even inside its header) is put back together', (t) => {
  const msg = helloMessage([sniExt('api.fireworks.ai'), alpnExt('h2')]);
  for (const sizes of [[1], [2, 1], [3, 50], [msg.length - 1, 1]]) {
    const bytes = records(msg, sizes);
    t.is(clientHelloLength(bytes), bytes.length, String(sizes));
    t.is(parseClientHello(bytes)?.sni, 'api.fireworks.ai', String(sizes));
  }
});

test('clientHelloLength tells how many bytes to gather, even before the lengths arrive', (t) => {
  const bytes = records(helloMessage([sniExt('api.together.xyz')]), [100]);
  t.is(clientHelloLength(new Uint8Array(0)), 9);
  t.is(clientHelloLength(bytes.subarray(0, 1)), 5);
  t.is(clientHelloLength(bytes.subarray(0, 5)), 105, 'first record known, handshake length not yet');
  t.is(clientHelloLength(bytes.subarray(0, 9)), bytes.length, 'the handshake length gives the exact total');
  t.is(clientHelloLength(concat(bytes, [0x17, 3, 3, 0, 1, 0])), bytes.length, 'later records are not needed');
});

test('every proper prefix of a real ClientHello is incomplete, with a correct lower bound', async (t) => {
  const bytes = await captureClientHello(nodeClient({ servername: 'api.deepseek.com' }));
  for (let n = 0; n < bytes.length; n++) {
    const prefix = bytes.subarray(0, n);
    t.is(parseClientHello(prefix), null);
    const need = clientHelloLength(prefix);
    if (need === null || need <= n || need > bytes.length) t.fail(`prefix ${n}: need ${need}`);
  }
  t.pass();
});

test('the assembler takes samples in order without offsets and gives up on bad or huge input', (t) => {
  const bytes = records(helloMessage([sniExt('api.perplexity.ai')]));
  const inOrder = new ClientHelloAssembler();
  t.is(inOrder.push(bytes.subarray(0, 10)).state, 'pending');
  t.is(inOrder.push(bytes.subarray(10, 30)).state, 'pending');
  const done = inOrder.push(bytes.subarray(30));
  t.is(done.state === 'complete' ? done.info.sni : null, 'api.perplexity.ai');
  t.is(inOrder.push(Uint8Array.from([1, 2, 3])), done, 'final once complete');

  t.deepEqual(new ClientHelloAssembler().push(Uint8Array.from([0x47, 0x45, 0x54, 0x20])), { state: 'failed', reason: 'not-client-hello' });
  const huge = Uint8Array.from([0x16, 3, 1, 0x40, 0, 1, 0x01, 0xff, 0xff]);
  t.deepEqual(new ClientHelloAssembler({ maxBytes: 4096 }).push(huge), { state: 'failed', reason: 'too-large' });
  const slow = new ClientHelloAssembler({ maxSamples: 3 });
  slow.push(bytes.subarray(0, 1), 0);
  slow.push(bytes.subarray(5, 6), 5); // a hole at 1..4 never filled
  t.deepEqual(slow.push(bytes.subarray(6, 7), 6), { state: 'failed', reason: 'too-many-samples' });
  const bad = records(helloMessage([sniExt('a.com'), sniExt('b.com')]));
  t.deepEqual(new ClientHelloAssembler().push(bad), { state: 'failed', reason: 'malformed' });
});

// ---------------------------------------------------------------------------------------------
// Properties

const hostLabel = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
const hostName = fc.array(hostLabel, { minLength: 1, maxLength: 4 })
  .map((ls) => [...ls, 'test'].join('.'));
// Two equal bytes 0x?a ("jj", "zz") are a GREASE ALPN identifier (RFC 8701), which the parser skips.
const alpnName = fc.stringMatching(/^[a-z0-9./-]{1,20}$/)
  .filter((s) => !(s.length === 2 && isGrease((s.charCodeAt(0) << 8) | s.charCodeAt(1))));

test('property: random bytes never throw and are never mistaken for a complete ClientHello', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
    const need = clientHelloLength(bytes);
    const info = parseClientHello(bytes);
    return (need === null || need > 0) && (info === null || (need !== null && need <= bytes.length));
  }), { numRuns: 2000 });
  // Random bodies behind a plausible record and handshake header.
  fc.assert(fc.property(fc.uint8Array({ minLength: 41, maxLength: 600 }), fc.integer({ min: 0, max: 4 }), (body, minor) => {
    const msg = concat([1, 0, body.length >> 8, body.length & 0xff], body);
    const info = parseClientHello(concat([0x16, 3, minor], u16(msg.length), msg));
    return info === null || info.sni === null || /^[a-z0-9._-]+$/.test(info.sni);
  }), { numRuns: 2000 });
  t.pass();
});

test('property: generated ClientHellos parse to what they carry, in any extension order and record split', (t) => {
  fc.assert(fc.property(
    hostName, fc.array(alpnName, { minLength: 1, maxLength: 5 }), fc.boolean(), fc.boolean(),
    fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 1000 }),
    (name, alpn, tls13, grease, sizes, seed) => {
      const exts = [sniExt(name), alpnExt(...alpn), versionsExt(...(tls13 ? [0x0304, 0x0303] : [0x0303]))];
      if (grease) exts.push(GREASE_EXT, ext(0x1a1a + 0x1010 * (seed % 14), [0]));
      const shuffled = exts.map((e, i) => ({ e, k: (i * 7919 + seed) % 101 })).sort((a, b) => a.k - b.k).map((x) => x.e);
      const bytes = records(helloMessage(shuffled), sizes);
      const info = parseClientHello(bytes);
      return clientHelloLength(bytes) === bytes.length && info !== null && info.sni === name
        && JSON.stringify(info.alpn) === JSON.stringify(alpn) && info.version === (tls13 ? 'TLS1.3' : 'TLS1.2');
    },
  ), { numRuns: 500 });
  t.pass();
});

test('property: truncated ClientHellos are incomplete and mutated ones never throw', (t) => {
  const base = records(helloMessage([GREASE_EXT, sniExt('api.replicate.com'), alpnExt('h2', 'http/1.1'), versionsExt(0x0304)]));
  fc.assert(fc.property(fc.integer({ min: 0, max: base.length - 1 }), (n) => {
    const need = clientHelloLength(base.subarray(0, n));
    return parseClientHello(base.subarray(0, n)) === null && need !== null && need > n;
  }));
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    (edits) => {
      const bytes = base.slice();
      for (const [at, value] of edits) bytes[at] = value;
      const info = parseClientHello(bytes);
      return info === null || ((info.sni === null || /^[a-z0-9._-]+$/.test(info.sni)) && info.alpn.every((a) => /^[\x21-\x7e]+$/.test(a)));
    },
  ), { numRuns: 3000 });
  t.pass();
});

test('property: the assembler rebuilds a ClientHello from overlapping samples in any order', (t) => {
  const bytes = records(helloMessage([sniExt('router.huggingface.co'), alpnExt('h2')]), [120]);
  const expected: ClientHelloInfo | null = parseClientHello(bytes);
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 200 })), { maxLength: 10 }),
    fc.array(fc.nat(), { maxLength: 30 }),
    (pieces, order) => {
      // Cover the stream with consecutive samples, then add random overlapping ones.
      const samples: [number, number][] = [];
      for (let off = 0; off < bytes.length; off += 64) samples.push([off, 64]);
      samples.push(...pieces);
      order.forEach((o, i) => { const j = o % samples.length; [samples[i % samples.length], samples[j]] = [samples[j]!, samples[i % samples.length]!]; });
      const asm = new ClientHelloAssembler({ maxSamples: 64 });
      for (const [off, len] of samples) asm.push(bytes.subarray(off, off + len), off);
      const r = asm.result;
      return r.state === 'complete' && JSON.stringify(r.info) === JSON.stringify(expected);
    },
  ), { numRuns: 300 });
  t.pass();
});
