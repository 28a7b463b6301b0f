/**
 * The census (bpf/busted.h) against the real kernel: a connection whose end no hook sees is
 * closed by it, marked endUnseen, with its exact bytes; connections that are open, here or in a
 * network namespace of their own, are never closed by it; and with every hook in place it closes
 * nothing. The missed end is made real by detaching busted's own sock_release link (bpftool),
 * which is what the kernel's rare missed end looks like to busted: no release, no close.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloseRecord, ConnectRecord, EventRecord } from '../../src/core/records.js';
import { kernelTest } from '../helpers/kernel.js';
import { readyClient, runClient, startBusted, type BustedRun } from '../helpers/busted.js';
import { sample, scrape } from '../helpers/prom.js';
import { freePort, holdingServer, portOf } from '../helpers/servers.js';

const CENSUS_MS = 300;
/** Seconds the connections that must stay open keep open (streaming, or idle). */
const OPEN_S = 12;
const isConnect = (pid: number) => (r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.pid === pid;
const isClose = (flow: string) => (r: EventRecord): r is CloseRecord => r.type === 'close' && r.flow === flow;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Detaches the sock_release link of busted process `pid` (found among its fds); its link id. */
function detachRelease(pid: number): number {
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    const link = /^link_id:\s*(\d+)$/m.exec(info);
    const prog = /^prog_id:\s*(\d+)$/m.exec(info);
    if (!link || !prog) continue;
    const { name } = JSON.parse(execFileSync('bpftool', ['prog', 'show', 'id', prog[1]!, '-j'], { encoding: 'utf8' })) as { name: string };
    if (name !== 'busted_release') continue;
    execFileSync('bpftool', ['link', 'detach', 'id', link[1]!]);
    return Number(link[1]);
  }
  throw new Error(`no busted_release link among the fds of busted (pid ${pid})`);
}

/** A --providers file that makes 127.88.0.0/16 an LLM provider's range (loopback only). */
function providersFile(): { dir: string; providers: string } {
  const dir = mkdtempSync(join(tmpdir(), 'busted-census-'));
  const providers = join(dir, 'providers.yaml');
  writeFileSync(providers, 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.88.0.0/16]\n    source: https://example.test/acme\n');
  return { dir, providers };
}

const closesOf = (b: BustedRun, flow: string) => b.records.filter((r) => r.type === 'close' && r.flow === flow);

kernelTest('a connection whose end no hook sees is closed by the census, endUnseen, with its exact bytes; open ones are left alone, here and in another network namespace; the metrics count it by the state it was last met in', async (t) => {
  const server = await holdingServer('127.0.0.1');
  const port = portOf(server);
  const metricsPort = await freePort();
  const busted = await startBusted(['--metrics', `127.0.0.1:${metricsPort}`], { BUSTED_CENSUS_MS: String(CENSUS_MS) });
  try {
    // open throughout: one that keeps sending, one idle in a network namespace of its own
    // (long enough to outlast the steps before the check below on a loaded machine: in one CI
    // run those took over 5 s)
    const streaming = await readyClient(['stream', '127.0.0.1', port, OPEN_S]);
    let streamEnded = false;
    void streaming.done.then(() => (streamEnded = true), () => {});
    const inNetns = ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"'];
    const idle = await readyClient(['idle-self', '127.0.0.1', OPEN_S], inNetns);
    const streamConn = await busted.waitFor(isConnect(streaming.pid), 5000);
    const idleConn = await busted.waitFor(isConnect(idle.pid), 5000);

    detachRelease(busted.child.pid!);
    const client = await runClient(['exchange', '127.0.0.1', port, 1234, 0]);
    const conn = await busted.waitFor(isConnect(client.pid), 5000);
    const foundAt = Date.now();
    const close = await busted.waitFor(isClose(conn.flow), 10 * CENSUS_MS + 5000);
    t.log(`closed by the census ${Date.now() - foundAt} ms after its connect record (census every ${CENSUS_MS} ms)`);
    t.is(close.endUnseen, true);
    t.is(close.pid, client.pid);
    t.is(close.tx, 1234);
    t.is(close.rx, 0);
    // under --all one that cannot be LLM traffic is kept back until its end and reported whole
    // then: found gone, it is reported with its owner and bytes, but the kernel kept no
    // addresses for it. (One judged maybe-LLM, as while another process's DNS answer is being
    // applied, was announced at its first send, with them.)
    t.true(conn.dst === '[::]:0' || conn.dst === `127.0.0.1:${port}`, conn.dst);
    t.is(conn.comm, 'python3');

    // many censuses later, the open connections are still open
    await sleep(6 * CENSUS_MS);
    t.false(streamEnded, `the stream ended before the check: the steps before it took over ${OPEN_S} s`);
    t.deepEqual(closesOf(busted, streamConn.flow), [], 'the streaming connection is open');
    t.deepEqual(closesOf(busted, idleConn.flow), [], 'the idle connection in its own namespace is open');
    const streamed = await streaming.done;
    await idle.done;
    // the streaming one has ended now, unseen too (no release): closed with every byte it sent
    const streamClose = await busted.waitFor(isClose(streamConn.flow), 10 * CENSUS_MS + 5000);
    t.is(streamClose.endUnseen, true);
    t.is(streamClose.tx, streamed.sent as number);
    // the censuses met it established until it closed (then in FIN_WAIT at the very most)
    const metrics = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    const lastMet = (state: string) => sample(metrics, 'busted_kernel_unseen_ends_by_state_total', { last_state: state }) ?? 0;
    t.true(lastMet('ESTABLISHED') + lastMet('FIN_WAIT1') + lastMet('FIN_WAIT2') >= 1, metrics.split('\n').filter((l) => l.includes('unseen')).join('\n'));
    t.is(sample(metrics, 'busted_census_unreachable_namespaces'), 0, 'as root it enters every namespace');
    // the idle one's namespace went with its process: nothing can walk it, its slot is not judged
    await sleep(4 * CENSUS_MS);
    t.deepEqual(closesOf(busted, idleConn.flow), [], 'not judged: its namespace was not walked');
  } finally {
    await busted.stop();
    server.shut();
  }
});

kernelTest('at its stop busted takes two censuses: a connection whose end no hook saw since the last census gets its CLOSE (endUnseen, exact bytes) before busted exits; an open one does not', async (t) => {
  const server = await holdingServer('127.0.0.1');
  const port = portOf(server);
  // no periodic census while the test runs: only the stop's
  const busted = await startBusted([], { BUSTED_CENSUS_MS: '600000' });
  let open: Awaited<ReturnType<typeof readyClient>> | null = null;
  try {
    // open across the stop: announced by the idle iterator (it moves no byte)
    open = await readyClient(['idle', '127.0.0.1', port, 30]);
    void open.done.catch(() => {}); // killed at the end
    const openConn = await busted.waitFor(isConnect(open.pid), 5000);

    detachRelease(busted.child.pid!);
    const client = await runClient(['exchange', '127.0.0.1', port, 2345, 0]);
    await sleep(500);
    // its end, which no hook saw, is not reported yet (its connect may be: under --all one that
    // cannot be LLM traffic is kept back until its end, but one judged maybe-LLM, as while
    // another test's DNS answer is being applied, is announced at its first send)
    t.deepEqual(busted.records.filter((r) => r.type === 'close' && r.pid === client.pid), [], 'its close is not reported before the stop');
    t.is(await busted.stop(), 0);

    const conn = busted.records.find(isConnect(client.pid));
    t.truthy(conn, 'its connect is reported at the stop');
    const close = busted.records.find(isClose(conn!.flow));
    t.truthy(close, 'its close is reported at the stop');
    t.is(close!.endUnseen, true);
    t.is(close!.pid, client.pid);
    t.is(close!.tx, 2345);
    t.deepEqual(closesOf(busted, openConn.flow), [], 'the open connection is not closed by the stop\'s censuses');
  } finally {
    await busted.stop();
    open?.child.kill();
    server.shut();
  }
});

kernelTest('with every hook in place the census closes nothing: 300 connections, a census every 50 ms, each closed once by its release', async (t) => {
  const server = await holdingServer('127.0.0.1');
  const port = portOf(server);
  const busted = await startBusted([], { BUSTED_CENSUS_MS: '50' });
  try {
    const pids: number[] = [];
    for (let i = 0; i < 3; i++) pids.push((await runClient(['churn', '127.0.0.1', port, 100])).pid);
    await sleep(1000);
    const mine = (r: EventRecord) => 'pid' in r && pids.includes(r.pid as number);
    const connects = busted.records.filter((r): r is ConnectRecord => r.type === 'connect' && mine(r));
    const closes = busted.records.filter((r): r is CloseRecord => r.type === 'close' && mine(r));
    t.is(connects.length, 300);
    t.is(closes.length, 300);
    t.is(new Set(closes.map((c) => c.flow)).size, 300, 'each once');
    t.deepEqual(closes.filter((c) => c.endUnseen), [], 'none by the census');
  } finally {
    await busted.stop();
    server.shut();
  }
});

kernelTest('busted without --all: an LLM connection whose end no hook sees is closed by the census with its exact bytes and counted in the metrics; its connect record has its addresses', async (t) => {
  const { dir, providers } = providersFile();
  const server = await holdingServer('127.88.0.9');
  const port = portOf(server);
  const metricsPort = await freePort();
  const busted = await startBusted(['--providers', providers, '--metrics', `127.0.0.1:${metricsPort}`], { BUSTED_CENSUS_MS: String(CENSUS_MS) }, { all: false });
  try {
    detachRelease(busted.child.pid!);
    const client = await runClient(['exchange', '127.88.0.9', port, 4321, 0]);
    const conn = await busted.waitFor(isConnect(client.pid), 5000);
    t.is(conn.dst, `127.88.0.9:${port}`);
    t.is(conn.provider, 'acme-llm');
    const close = await busted.waitFor(isClose(conn.flow), 10 * CENSUS_MS + 5000);
    t.is(close.endUnseen, true);
    t.is(close.tx, 4321);
    t.is(close.pid, client.pid);
    const metrics = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    // at least this one: with the release detached, every TCP connection on the machine that
    // closes meanwhile (another test file's) ends unseen too
    t.true((sample(metrics, 'busted_kernel_unseen_ends_total') ?? 0) >= 1);
  } finally {
    await busted.stop();
    server.shut();
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('a socket made in one network namespace and connected after its owner moved to another is judged by its own: never closed by the census while open', async (t) => {
  const { dir, providers } = providersFile();
  const busted = await startBusted(['--providers', providers], { BUSTED_CENSUS_MS: String(CENSUS_MS) }, { all: false });
  try {
    // made in a new namespace (its own listener there); connected once its owner is back in
    // busted's: the census walks busted's namespace, where this socket is not
    const inNetns = ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"'];
    const client = await readyClient(['moved', '127.88.0.1', 10 * CENSUS_MS / 1000 + 2, `/proc/${process.pid}/ns/net`], inNetns);
    const conn = await busted.waitFor(isConnect(client.pid), 5000);
    t.is(conn.dst, `127.88.0.1:${client.port}`);
    await sleep(10 * CENSUS_MS);
    t.deepEqual(closesOf(busted, conn.flow), [], 'still open: not closed by the census');
    await client.done;
    const close = await busted.waitFor(isClose(conn.flow), 5000);
    t.is(close.endUnseen, undefined, 'closed by its release');
    t.is(close.tx, 10);
  } finally {
    await busted.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
