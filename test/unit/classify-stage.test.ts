import test from 'ava';
import { ClassificationStage } from '../../src/core/classify-stage.js';
import { loadCatalog } from '../../src/core/catalog.js';
import { Classifier } from '../../src/core/classifier.js';
import { ListenerFinder } from '../../src/core/listeners.js';
import type { ConnectRecord, EventRecord } from '../../src/core/records.js';
import { clientHello } from '../helpers/tls-hello.js';

function connect(flow: string, dst: string, error: string | null = null, proto: 'tcp' | 'udp' = 'tcp'): ConnectRecord {
  return {
    type: 'connect', ts: '2026-11-27T00:00:00.000Z', flow, pid: 100 + Number(flow), tid: 1, comm: 'client', uid: 0, gid: 0,
    exe: null, cgroup: null, cgroupId: 1, startTime: 5, proto, src: '10.0.0.1:40000', dst, provider: null, host: null, via: null, error,
  };
}

function stage(quiet: boolean, holdMs = 250) {
  let now = 1000;
  const published: EventRecord[] = [];
  const quietCalls: [string, boolean][] = [];
  const learned: string[] = [];
  const late: string[] = [];
  const s = new ClassificationStage({
    classifier: new Classifier(loadCatalog()), publish: (r) => published.push(r), listeners: new ListenerFinder(),
    now: () => now, holdMs, quiet, onQuiet: (proto, failed) => quietCalls.push([proto, failed]),
    onLearned: (ip, provider) => learned.push(`${ip}=${provider}`),
    onLateClassified: (rec, cls) => late.push(`${rec.flow}:${cls.provider}:${cls.via}`),
  });
  return { s, published, quietCalls, learned, late, advance: (ms: number) => (now += ms) };
}

const types = (recs: EventRecord[]) => recs.map((r) => `${r.type}:${'flow' in r ? r.flow : ''}`);

test('held connects go out in order as their holds expire, and only then', (t) => {
  const { s, published, advance } = stage(false);
  s.connect(connect('1', '192.0.2.1:443'));
  advance(100);
  s.connect(connect('2', '192.0.2.2:443'));
  s.tick();
  t.deepEqual(published, []);
  advance(160); // 1 expired (260 ms), 2 not (160 ms)
  s.tick();
  t.deepEqual(types(published), ['connect:1']);
  t.true(s.isHeld('2'));
  advance(100);
  s.tick();
  t.deepEqual(types(published), ['connect:1', 'connect:2']);
  t.false(s.isHeld('2'));
});

test('a ClientHello releases its connect at once, classified by SNI', (t) => {
  const { s, published } = stage(false);
  s.connect(connect('1', '192.0.2.1:443'));
  s.tls('1', 0, clientHello('api.anthropic.com'));
  t.like(published[0], { type: 'connect', flow: '1', provider: 'anthropic', host: 'api.anthropic.com', via: 'sni' });
});

test('without quiet, a non-LLM flow is published and forget() says so', (t) => {
  const { s, published, quietCalls } = stage(false);
  s.connect(connect('1', '192.0.2.1:443'));
  t.true(s.forget('1'));
  t.like(published[0], { type: 'connect', flow: '1', provider: null });
  t.deepEqual(quietCalls, []);
});

test('quiet: a non-LLM flow is never published and is counted once, when it is forgotten', (t) => {
  const { s, published, quietCalls, advance } = stage(true);
  s.connect(connect('1', '192.0.2.1:443'));
  advance(300);
  s.tick(); // its hold expires: judged quiet
  t.deepEqual(quietCalls, []);
  t.false(s.forget('1'), 'its close must stay back too');
  t.deepEqual(published, []);
  t.deepEqual(quietCalls, [['tcp', false]]);
  t.true(s.forget('1'), 'an unknown flow is news (its connect may have been lost)');
});

test('quiet: a failed non-LLM connect is counted as failed at once; an LLM flow is published as usual', (t) => {
  const { s, published, quietCalls } = stage(true);
  s.connect(connect('1', '192.0.2.1:443', 'ECONNREFUSED'));
  t.deepEqual(quietCalls, [['tcp', true]]);
  s.connect(connect('2', '192.0.2.1:443'));
  s.tls('2', 0, clientHello('api.openai.com'));
  t.true(s.forget('2'));
  t.deepEqual(types(published), ['connect:2']);
  t.like(published[0], { provider: 'openai' });
});

test('quiet: SNI naming a provider after the hold sends the connect then; a non-LLM name keeps it back', (t) => {
  const { s, published, quietCalls, advance } = stage(true);
  s.connect(connect('1', '192.0.2.1:443'));
  s.connect(connect('2', '192.0.2.2:443'));
  advance(300);
  s.tick();
  s.tls('2', 0, clientHello('www.example.org'));
  s.tls('1', 0, clientHello('api.mistral.ai'));
  t.deepEqual(types(published), ['connect:1'], 'a connect, not a classify record');
  t.like(published[0], { provider: 'mistral', host: 'api.mistral.ai', via: 'sni' });
  t.true(s.forget('1'));
  t.false(s.forget('2'));
  t.deepEqual(quietCalls, [['tcp', false]]);
});

test('releaseAll sends every held connect (stop)', (t) => {
  const { s, published } = stage(false);
  for (const f of ['1', '2', '3']) s.connect(connect(f, '192.0.2.1:443'));
  s.releaseAll();
  t.deepEqual(types(published), ['connect:1', 'connect:2', 'connect:3']);
});

test('samples that do not parse are counted by why and skipped; the flow goes on without SNI', (t) => {
  const { s, published } = stage(false);
  s.connect(connect('1', '192.0.2.1:443'));
  const hello = clientHello('api.anthropic.com');
  const cut = Uint8Array.from(hello);
  cut[9] = 0xff; // the ClientHello's length: past its record
  s.tls('1', 0, cut);
  t.like(published[0], { type: 'connect', flow: '1', provider: null, host: null });
  s.connect(connect('2', '192.0.2.2:443'));
  s.tls('2', 0, Uint8Array.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])); // a ServerHello
  s.dns(Uint8Array.from([1, 2, 3]), 'udp');
  s.dns(Uint8Array.from([0, 1, 0x81]), 'tcp');
  const skipped = s.skippedSamples();
  t.is(skipped['dns-malformed'], 2);
  const tls = Object.entries(skipped).filter(([k]) => k.startsWith('tls-'));
  t.is(tls.reduce((n, [, v]) => n + v, 0), 2, JSON.stringify(skipped));
  t.deepEqual(types(published), ['connect:1', 'connect:2']);
});

test('a stream that opens with a CONNECT request is named by its target (via proxy), the proxy not learned as the provider; a bad request line is counted', (t) => {
  const { s, published, learned, advance } = stage(true);
  const request = (target: string) => new Uint8Array(Buffer.from(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
  s.connect(connect('1', '192.0.2.80:3128'));
  s.tls('1', 0, request('api.openai.com:443'));
  t.like(published[0], { type: 'connect', flow: '1', provider: 'openai', host: 'api.openai.com', via: 'proxy' });
  s.tls('1', 60, clientHello('api.anthropic.com')); // later bytes (the tunnelled handshake) change nothing
  t.is(published.length, 1);
  t.deepEqual(learned, [], 'the proxy is not an LLM address');
  s.connect(connect('2', '192.0.2.80:3128'));
  s.tls('2', 0, request('www.example.org:443'));
  s.connect(connect('3', '192.0.2.80:3128'));
  s.tls('3', 0, new Uint8Array(Buffer.from('CONNECT nonsense\r\n\r\n')));
  advance(300);
  s.tick();
  t.is(published.length, 1, 'quiet: neither a non-LLM tunnel nor an unreadable one is published');
  t.is(s.skippedSamples()['http-connect-malformed'], 1);
});

test('a CONNECT request that comes after its connect went out gives a classify record and tells the engine (onLateClassified)', (t) => {
  const { s, published, late, advance } = stage(false);
  s.connect(connect('1', '192.0.2.80:3128'));
  advance(300);
  s.tick();
  t.like(published[0], { type: 'connect', flow: '1', provider: null });
  s.tls('1', 0, new Uint8Array(Buffer.from('CONNECT api.openai.com:443 HTTP/1.1\r\n\r\n')));
  t.like(published[1], { type: 'classify', flow: '1', provider: 'openai', via: 'proxy' });
  t.deepEqual(late, ['1:openai:proxy']);
});
