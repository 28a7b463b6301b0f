/**
 * busted --all: the kernel judges each TCP connect as it does without --all, but reports the
 * connections that cannot be LLM traffic late instead of only counting them: a short one in one
 * record at its close (BRIEF), a long one by the idle iterator while it is open (kernel-pipeline's
 * test of a connection that keeps sending). LLM connections and TLS ones are announced at their
 * first send, as before. Real kernel, real client processes,
 * loopback only (127.88.0.0/16 mapped to a provider in the kernel's LLM map).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:net';
import { Kind, type ConnectEvent, type KernelEvent, type PayloadSample } from '../../src/bpf/abi.js';
import { findCgroup2Mount } from '../../src/bpf/preflight.js';
import { runClient } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { exchangeServer, portOf } from '../helpers/servers.js';

type Seen = { kind: number; cookie: bigint; pid: number; ev: KernelEvent | PayloadSample };

/** A plain listener that ends each connection once it gets its first bytes (a ClientHello). */
async function helloSink(): Promise<Server> {
  const server = createServer((s) => s.once('data', () => s.end()).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/**
 * A listener that answers a connection's first bytes, and resets it (RST) when the peer sends
 * again, its peer still holding its socket. The peer sends again only after it read the answer:
 * bytes still in the receive queue when the kernel ends the connection on a reset are read after
 * its one record went out, and are not in it.
 */
async function resettingServer(): Promise<Server> {
  const server = createServer((s) => {
    let answered = false;
    s.on('data', () => {
      if (!answered) {
        answered = true;
        s.write('pong');
      } else {
        s.resetAndDestroy();
      }
    }).on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** A client that sends 4 bytes, reads the 4-byte answer, sends 1 byte, waits for the reset, then closes; prints its pid and port. */
const RESET_CLIENT = `
import json, os, socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'ping')
got = b''
while len(got) < 4:
    chunk = s.recv(4 - len(got))
    if not chunk:
        break
    got += chunk
s.sendall(b'!'); time.sleep(0.3)
try:
    s.recv(1)
except OSError:
    pass
time.sleep(0.2)
print(json.dumps({'pid': os.getpid(), 'sport': s.getsockname()[1] if s.fileno() >= 0 else 0}))
s.close()
`;

/** The records of `cookie`'s flow, in ring order. */
const kindsOf = (seen: Seen[], cookie: bigint) => seen.filter((s) => s.cookie === cookie).map((s) => s.kind);

kernelTest('--all in the kernel: a short non-LLM connection is one BRIEF record with its pid, addresses and bytes; an LLM one and a TLS one are a CONNECT at their first send and a CLOSE', async (t) => {
  const { KernelProbe } = await import('../../src/bpf/probe.js');
  const seen: Seen[] = [];
  const probe = KernelProbe.start({
    selfTgid: process.pid, cgroupPath: findCgroup2Mount(), quiet: { modelPorts: [], late: true },
    onEvent: (ev) => seen.push({ kind: ev.kind, cookie: BigInt(ev.cookie), pid: ev.kind === Kind.CLOSE ? ev.pid : ev.owner.tgid, ev }),
    onPayload: (p) => seen.push({ kind: Kind.PAYLOAD, cookie: p.cookie, pid: 0, ev: p }),
  });
  probe.enforcer.addDestination(new Uint8Array([127, 88, 0, 0]), 16, 0);
  const plainServer = await exchangeServer('127.0.0.1', 100, 200);
  const llmServer = await exchangeServer('127.88.4.1', 300, 400);
  const sink = await helloSink();
  const resetter = await resettingServer();
  const poll = setInterval(() => probe.poll(), 20);
  try {
    const plain = await runClient(['exchange', '127.0.0.1', portOf(plainServer), 100, 200]);
    const llm = await runClient(['exchange', '127.88.4.1', portOf(llmServer), 300, 400]);
    const tls = await runClient(['tls', '127.0.0.1', portOf(sink), 'www.example.org']);
    const reset = JSON.parse((await promisify(execFile)('python3', ['-c', RESET_CLIENT, String(portOf(resetter))])).stdout) as { pid: number; sport: number };
    const deadline = Date.now() + 3000;
    const pids = [plain.pid, llm.pid, tls.pid, reset.pid];
    const closes = () => seen.filter((s) => (s.kind === Kind.CLOSE || s.kind === Kind.BRIEF) && pids.includes(s.pid));
    while (closes().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

    const ofPlain = seen.filter((s) => s.pid === plain.pid);
    t.deepEqual(ofPlain.map((s) => s.kind), [Kind.BRIEF], 'the plain connection: one record, at its close');
    t.deepEqual(kindsOf(seen, ofPlain[0]!.cookie), [Kind.BRIEF], 'nothing else of its socket');
    t.like(ofPlain[0]!.ev, { proto: 6, src: `127.0.0.1:${plain.sport as number}`, dst: `127.0.0.1:${portOf(plainServer)}`, tx: 100, rx: 200, error: 0 });
    const brief = ofPlain[0]!.ev as ConnectEvent;
    t.true(brief.tsNs > brief.connectNs, 'its time is its close, after its connect');

    const ofLlm = seen.filter((s) => s.pid === llm.pid);
    t.deepEqual(ofLlm.map((s) => s.kind), [Kind.CONNECT, Kind.CLOSE], 'the LLM connection: announced at its first send, then closed');
    t.like(ofLlm[0]!.ev, { dst: `127.88.4.1:${portOf(llmServer)}` });
    t.like(ofLlm[1]!.ev, { tx: 300, rx: 400 });

    const ofTls = seen.filter((s) => s.pid === tls.pid);
    t.is(ofTls[0]?.kind, Kind.CONNECT, 'the TLS connection to a non-LLM address: announced by its ClientHello');
    const tlsKinds = kindsOf(seen, ofTls[0]!.cookie);
    t.is(tlsKinds[0], Kind.CONNECT, `its CONNECT before its ClientHello sample: ${tlsKinds.join(' ')}`);
    t.true(tlsKinds.includes(Kind.PAYLOAD), 'its ClientHello sampled');
    t.is(tlsKinds.at(-1), Kind.CLOSE);
    t.false(tlsKinds.includes(Kind.BRIEF));

    // reset by its peer after its exchange: ended by the kernel (tcp_done cleared skc_num), still one BRIEF with its port
    const ofReset = seen.filter((s) => s.pid === reset.pid);
    t.deepEqual(ofReset.map((s) => s.kind), [Kind.BRIEF], 'the reset connection: one record');
    t.like(ofReset[0]!.ev, { src: `127.0.0.1:${reset.sport}`, dst: `127.0.0.1:${portOf(resetter)}`, tx: 5, rx: 4 });
  } finally {
    clearInterval(poll);
    probe.close();
    plainServer.close();
    llmServer.close();
    sink.close();
    resetter.close();
  }
}, { exclusive: true });
