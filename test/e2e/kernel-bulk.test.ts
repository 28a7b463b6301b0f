/**
 * Bulk TCP sends against the real kernel. A send of at least BUSTED_BULK_SEND bytes past a
 * stream's first BUSTED_HELLO_MAX that crosses no 4 MiB boundary of its socket's write_seq is not
 * counted by the send hook: the next send that reaches the map, the next receive, or the end
 * reads the socket and counts it. These tests hold the count to the byte: live after a receive,
 * in the close record after a close, a shutdown (the FIN is no byte of the owner's: read after
 * it, or closed right after it) and a reset,
 * with four threads sending on one socket at once, under both lifecycles (the cgroup programs,
 * and the state-change tracepoint without them). The client (test/helpers/bulk-client.py) reads
 * its socket's write_seq (TCP_REPAIR) to keep its bulk sends between two boundaries, so the
 * uncounted bytes are known. Loopback only: 127.88.0.0/16 is an LLM range in the kernel's map.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createInterface, type Interface } from 'node:readline';
import { Kind, type CloseEvent, type ConnectEvent, type KernelEvent } from '../../src/bpf/abi.js';
import type { KernelProbe } from '../../src/bpf/probe.js';
import { findCgroup2Mount } from '../../src/bpf/preflight.js';
import { kernelTest } from '../helpers/kernel.js';
import { until } from '../helpers/until.js';

const CLIENT = new URL('../helpers/bulk-client.py', import.meta.url).pathname;
const HOST = '127.88.9.1';
const SPAN = 1 << 22; // 2^BUSTED_BULK_SHIFT
const BULK = 65_536;

/** bulk-client.py, one command at a time. */
class BulkClient {
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;

  private constructor(private readonly child: ChildProcessWithoutNullStreams, private readonly rl: Interface) {
    rl.on('line', (line) => {
      this.lines.push(line);
      this.wake?.();
    });
  }

  static async start(port: number): Promise<{ client: BulkClient; pid: number; sport: number }> {
    const child = spawn('python3', [CLIENT, HOST, String(port)]);
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('exit', (code) => {
      if (code) throw new Error(`bulk-client exited ${code}: ${err}`);
    });
    const client = new BulkClient(child, createInterface({ input: child.stdout }));
    const hello = JSON.parse(await client.next()) as { pid: number; sport: number };
    return { client, ...hello };
  }

  private async next(): Promise<string> {
    const deadline = Date.now() + 20_000;
    while (this.lines.length === 0) {
      if (Date.now() > deadline) throw new Error('bulk-client: no answer within 20 s');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 200);
      });
    }
    return this.lines.shift()!;
  }

  async run(command: string): Promise<{ sent?: number; received?: number; seq?: number; error?: number | null }> {
    this.child.stdin.write(`${command}\n`);
    return JSON.parse(await this.next()) as { sent?: number };
  }

  async end(): Promise<void> {
    this.child.stdin.end();
    if (this.child.exitCode === null) await once(this.child, 'exit');
    this.rl.close();
  }
}

/** A listener that reads everything and keeps each accepted socket for the test to answer or reset
 * (open after the client's FIN). */
async function holdingServer(): Promise<{ server: Server; peers: Socket[] }> {
  const peers: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    peers.push(s);
    s.on('data', () => {}).on('error', () => {});
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  return { server, peers };
}

interface Run {
  probe: KernelProbe;
  events: KernelEvent[];
  client: BulkClient;
  peer: Socket;
  cookie: bigint;
  /** The kernel's live sent count of the client's socket. */
  tx: () => bigint | null;
  /** Its close record, once out. */
  closed: () => Promise<CloseEvent>;
}

/**
 * busted's programs (with the cgroup programs, or the state-change lifecycle without them), a
 * client connected to a holding server; its first send (`first` bytes) announced the flow.
 */
async function withClient(cgroup: boolean, first: number, fn: (r: Run) => Promise<void>): Promise<void> {
  const { KernelProbe } = await import('../../src/bpf/probe.js');
  const events: KernelEvent[] = [];
  const probe = KernelProbe.start({ selfTgid: process.pid, cgroupPath: cgroup ? findCgroup2Mount() : null, onEvent: (ev) => events.push(ev) });
  probe.enforcer.addDestination(new Uint8Array([127, 88, 0, 0]), 16, 0);
  const poll = setInterval(() => probe.poll(), 20);
  const { server, peers } = await holdingServer();
  const { client, pid } = await BulkClient.start((server.address() as { port: number }).port);
  try {
    await client.run(`send ${first}`);
    const connect = await until('the CONNECT', 5_000, () =>
      events.find((e): e is ConnectEvent => e.kind === Kind.CONNECT && e.owner.tgid === pid));
    const cookie = BigInt(connect.cookie);
    const peer = await until('the accepted socket', 5_000, () => peers[0]);
    const tx = () => {
      let found: bigint | null = null;
      probe.counters.readBatch((c, sent) => {
        if (c === cookie) found = sent;
      });
      return found;
    };
    const closed = () => until('the CLOSE', 5_000, () =>
      events.find((e): e is CloseEvent => e.kind === Kind.CLOSE && BigInt(e.cookie) === cookie));
    await fn({ probe, events, client, peer, cookie, tx, closed });
  } finally {
    await client.end();
    clearInterval(poll);
    probe.close();
    for (const p of peers) p.destroy();
    server.close();
  }
}

/**
 * Sends up to the next boundary (counted: the send that ends on it crosses it), then `sends`
 * bulk sends of BULK bytes between boundaries: the send hook leaves at least the last of them
 * uncounted. Returns the bytes written since the first send.
 */
async function bulkBetweenBoundaries(r: Run, written: number, sends = 8): Promise<number> {
  written += (await r.client.run(`fill ${SPAN}`)).sent!;
  written += (await r.client.run(`sendmany ${sends} ${BULK}`)).sent!;
  return written;
}

for (const cgroup of [true, false]) {
  const lifecycle = cgroup ? 'the cgroup programs' : 'the state-change lifecycle';

  kernelTest(`bulk sends between boundaries are counted by the next receive, to the byte, and the close record has them (${lifecycle})`, async (t) => {
    await withClient(cgroup, 100, async (r) => {
      const written = await bulkBetweenBoundaries(r, 100);
      const before = r.tx();
      t.not(before, null, 'the flow has no counter slot');
      t.true(before! <= BigInt(written - BULK), `the last bulk send was counted by the send hook: ${before} of ${written}`);
      t.true(before! >= BigInt(written - 8 * BULK), `the send that reached the boundary was not counted: ${before} of ${written}`);

      r.peer.write(Buffer.alloc(10, 0x72));
      t.is((await r.client.run('recv 10')).received, 10);
      t.is(r.tx(), BigInt(written), 'the receive did not bring the sent count up to date');

      await r.client.run('close');
      t.like(await r.closed(), { tx: written, rx: 10 });
    });
  }, { exclusive: true });

  kernelTest(`a shutdown after bulk sends: the FIN is not counted, live or at the close (${lifecycle})`, async (t) => {
    await withClient(cgroup, 100, async (r) => {
      const written = await bulkBetweenBoundaries(r, 100);
      await r.client.run('shut');
      r.peer.write(Buffer.alloc(10, 0x72));
      t.is((await r.client.run('recv 10')).received, 10);
      t.is(r.tx(), BigInt(written), 'the receive after the shutdown counted the FIN, or missed bytes');
      r.peer.end();
      t.is((await r.client.run('recv 1')).received, 0, 'the server\'s FIN');
      await r.client.run('close');
      t.like(await r.closed(), { tx: written, rx: 10 });
    });
  }, { exclusive: true });

  kernelTest(`a shutdown right after bulk sends, then a close without reading: the close record has every byte and no FIN (${lifecycle})`, async (t) => {
    await withClient(cgroup, 100, async (r) => {
      const written = await bulkBetweenBoundaries(r, 100);
      t.true(r.tx()! <= BigInt(written - BULK), 'the last bulk send was counted by the send hook');
      await r.client.run('shut');
      await r.client.run('close');
      r.peer.end(); // the client's socket, orphaned in FIN_WAIT2, goes to CLOSE (the state-change lifecycle ends it there)
      t.like(await r.closed(), { tx: written, rx: 0 });
    });
  }, { exclusive: true });

  kernelTest(`a reset after bulk sends: the close record has every byte written (${lifecycle})`, async (t) => {
    await withClient(cgroup, 100, async (r) => {
      const written = await bulkBetweenBoundaries(r, 100);
      t.true(r.tx()! <= BigInt(written - BULK), 'the last bulk send was counted by the send hook');
      r.peer.resetAndDestroy();
      t.is((await r.client.run('wait-reset')).error, 104, 'the client saw no ECONNRESET');
      await r.client.run('close');
      t.like(await r.closed(), { tx: written, rx: 0 });
    });
  }, { exclusive: true });
}

kernelTest('four threads sending bulk on one socket at once, after a bulk first send: counted to the byte', async (t) => {
  await withClient(true, 131_072, async (r) => {
    t.is(r.tx(), 131_072n, 'a bulk first send is counted by the send hook');
    let written = 131_072 + (await r.client.run(`fill ${SPAN}`)).sent!;
    written += (await r.client.run(`threads 4 ${4 * BULK}`)).sent!;
    r.peer.write(Buffer.alloc(10, 0x72));
    t.is((await r.client.run('recv 10')).received, 10);
    t.is(r.tx(), BigInt(written));
    await r.client.run('close');
    t.like(await r.closed(), { tx: written, rx: 10 });
  });
}, { exclusive: true });
