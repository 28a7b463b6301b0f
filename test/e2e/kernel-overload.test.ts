/**
 * Overload (root): four churn processes make well over 10x the ring buffer's ~27k records while
 * busted is stopped for a while, so the kernel drops records. Checked:
 * - `lost` accounts exactly for the missing records: for the load's pids, 2 records (connect and
 *   close, which the kernel sends as one BRIEF record under --all, counted 2 when lost) per
 *   connection made, minus those received, equals the lost total of the stream, of
 *   the kernel's own counter and of the metrics endpoint (a close is still published when its
 *   connect was lost, so nothing goes missing unannounced);
 * - the first `lost` record is in the stream, and the metrics show lost > 0, within 1 s of busted
 *   being able to run: busted is stopped (SIGSTOP) while the load fills its ring, and continued
 *   while the load goes on (running, its reader keeps up with this load on this VM);
 * - busted recovers: after the load, one connection is reported with its close and lost stays;
 * - busted-top's header shows `lost N` within 1 s as well (a real terminal, tmux).
 *
 * Robust by construction: the test holds the exclusive kernel-test lock (no other kernel test's
 * connections or busted meanwhile). Any other process on the machine that connects during the
 * load would add records (and lost ones) that no pid filter can see, so the test counts TCP
 * active opens of the network namespace (/proc/net/snmp): when they equal the load's connections
 * plus the flows of the test's own (metrics) connection, every flow is accounted for and the
 * equality is exact; otherwise the machine was not quiet, the test says so and checks the bracket
 * that other flows allow (each unseen flow of another process may hide 2 lost records).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import http from 'node:http';
import type { ExecutionContext } from 'ava';
import type { EventRecord } from '../../src/core/records.js';
import { mapsOf, perCpuSum } from '../helpers/bpfmaps.js';
import { ROOT } from '../helpers/busted.js';
import { startBustedToFile, waitQuiet, type FileBusted } from '../helpers/busted-file.js';
import { runChurn, runChurns, type ChurnResult } from '../helpers/churn.js';
import { kernelTest } from '../helpers/kernel.js';
import { freePort } from '../helpers/servers.js';
import { Tmux } from '../helpers/tmux.js';

/** 4 MiB ring buffer / ~150 B per connect, close or brief record (record + 8 B header). */
const RING_RECORDS = 27_000;
const LOAD_PROCS = 4;
/**
 * 4 x 70k connections: 280k ring records, ~10x the ring. busted --all gets one record per churn
 * connection (a BRIEF: connect and close in one, at its close; it stands for 2 stream records,
 * and a lost one counts 2).
 */
const PER_PROC = 70_000;
const STAT_LOST = 0;
const STAT_UNTRACKED = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** TCP active opens of this network namespace so far. */
function activeOpens(): number {
  const lines = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf('ActiveOpens')]);
}

/** One keep-alive connection to the metrics endpoint, opened once and reused by every scrape. */
function metricsClient(port: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () =>
    new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
      }).on('error', reject);
    });
  return {
    async lost(): Promise<number> {
      const m = /^busted_kernel_lost_events_total (\d+)/m.exec(await get());
      return m ? Number(m[1]) : 0;
    },
    close: () => agent.destroy(),
  };
}

interface Timeline {
  /** when busted was continued, and when the stream and the metrics first showed a loss */
  resumed: number;
  stream: number;
  metrics: number;
  /** the kernel's lost count when busted was continued */
  kernelLost: number;
}

/**
 * Stops busted (SIGSTOP) while `load` runs, until the kernel has dropped records, then continues
 * it under the load that goes on; returns when the stream and the metrics first showed the loss.
 * busted's reader is fast enough for this load when it runs (0.4 µs a record), so stopping it
 * is what makes the ring overflow on every machine; the 1 s is then measured from when it can run.
 */
async function overloadWhileStopped(b: FileBusted, statsId: number, metrics: { lost(): Promise<number> }, loadDone: () => boolean): Promise<Timeline> {
  let offset = b.size();
  process.kill(b.pid, 'SIGSTOP');
  let kernelLost = 0;
  try {
    while (!loadDone() && (kernelLost = await perCpuSum(statsId, STAT_LOST)) === 0) await sleep(50);
  } finally {
    process.kill(b.pid, 'SIGCONT');
  }
  const tl: Timeline = { resumed: Date.now(), stream: 0, metrics: 0, kernelLost };
  while (!(tl.stream && tl.metrics) && Date.now() - tl.resumed < 10_000) {
    if (!tl.stream) {
      const text = b.readFrom(offset);
      const whole = text.lastIndexOf('\n') + 1;
      if (text.slice(0, whole).includes('"type":"lost"')) tl.stream = Date.now();
      offset += Buffer.byteLength(text.slice(0, whole));
    }
    if (!tl.metrics && (await metrics.lost()) > 0) tl.metrics = Date.now();
    await sleep(50);
  }
  return tl;
}

interface Accounting {
  lostRecords: number;
  loadConnections: number;
  loadFailed: number;
  loadMissing: number;
  /** flows of other pids (the test's own metrics connection included) */
  otherFlows: number;
  /** their closes without a connect (the connect was lost) and connects without a close (open, or the close was lost) */
  otherClosesWithoutConnect: number;
  otherConnectsWithoutClose: number;
}

function account(records: EventRecord[], load: ChurnResult[]): Accounting {
  const pids = new Set(load.map((r) => r.pid));
  let lostRecords = 0;
  let loadReceived = 0;
  const others = new Map<string, { connect: boolean; close: boolean }>();
  for (const r of records) {
    if (r.type === 'lost') lostRecords += r.count;
    if (r.type !== 'connect' && r.type !== 'close') continue;
    if (pids.has(r.pid)) loadReceived++;
    else {
      const f = others.get(r.flow) ?? { connect: false, close: false };
      if (r.type === 'connect') f.connect = true;
      else f.close = true;
      others.set(r.flow, f);
    }
  }
  const loadConnections = load.reduce((s, r) => s + r.connections, 0);
  const failed = load.reduce((s, r) => s + r.failed, 0);
  const flows = [...others.values()];
  return {
    lostRecords,
    loadConnections,
    loadFailed: failed,
    // a connection: connect + close; a failed connect: one connect record carrying its error
    loadMissing: 2 * loadConnections + failed - loadReceived,
    otherFlows: flows.length,
    otherClosesWithoutConnect: flows.filter((f) => !f.connect).length,
    otherConnectsWithoutClose: flows.filter((f) => !f.close).length,
  };
}

/**
 * The overload tests' busted runs a census every 500 ms: a connection whose end the kernel does
 * not show (about once in 10-20 M connections, bench/README.md sessions 20-23; two CI runs met
 * one here) is finished by it within 1.5 s instead of 30-90 s, and the tests count records only
 * past three censuses after the load, so the counts are exact.
 */
const CENSUS_MS = 500;

kernelTest('10x overload: lost equals the missing records, shows within 1 s in the stream and metrics, busted recovers', async (t: ExecutionContext) => {
  const port = await freePort();
  const b = await startBustedToFile(['--metrics', `127.0.0.1:${port}`, '--interval', '500'], { BUSTED_CENSUS_MS: String(CENSUS_MS) });
  t.teardown(() => void b.stop());
  const metrics = metricsClient(port);
  t.teardown(() => metrics.close());
  const statsId = (await mapsOf(b.pid)).get('stats')!.id;
  t.is(await metrics.lost(), 0); // opens the test's one metrics connection before the load
  const opens0 = activeOpens();

  let loadDone = false;
  const loading = runChurns(LOAD_PROCS, { seconds: 60, max: PER_PROC }).finally(() => (loadDone = true));
  const tl = await overloadWhileStopped(b, statsId, metrics, () => loadDone);
  const load = await loading;
  const loadConnections = load.reduce((s, r) => s + r.connections, 0);
  const cps = Math.round(loadConnections / Math.max(...load.map((r) => r.seconds)));
  t.log(`load: ${loadConnections} connections by pids ${load.map((r) => r.pid).join(' ')} at ${cps}/s in total`);
  t.true(loadConnections >= 10 * RING_RECORDS, `the load made ${loadConnections} ring records, less than 10x the ring's ${RING_RECORDS}`);
  t.true(tl.kernelLost > 0, 'the kernel never dropped a record: the ring did not overflow while busted was stopped');
  t.log(`busted continued with the kernel's lost at ${tl.kernelLost}, the load still running: the stream's lost record ` +
    `${tl.stream - tl.resumed} ms and the metrics ${tl.metrics - tl.resumed} ms after`);
  t.true(tl.stream > 0 && tl.stream - tl.resumed <= 1000, `the first lost record came ${tl.stream - tl.resumed} ms after busted could run`);
  t.true(tl.metrics > 0 && tl.metrics - tl.resumed <= 1000, `the metrics showed lost ${tl.metrics - tl.resumed} ms after busted could run`);

  // recovery: the backlog drains, then one connection is reported normally and lost stays put
  await waitQuiet(b, 1000, 60_000);
  const lostAfterLoad = await perCpuSum(statsId, STAT_LOST);
  const one = await runChurn({ seconds: 5, max: 1 });
  t.is(one.connections, 1);
  const seen = async () => {
    for (let i = 0; i < 50; i++) {
      const recs = b.records().filter((r) => (r.type === 'connect' || r.type === 'close') && r.pid === one.pid);
      if (recs.length === 2) return recs;
      await sleep(100);
    }
    return b.records().filter((r) => (r.type === 'connect' || r.type === 'close') && r.pid === one.pid);
  };
  t.deepEqual((await seen()).map((r) => r.type).sort(), ['close', 'connect'], 'the connection after the overload is reported with its close');
  metrics.close(); // its close record ends the test's own flow
  await sleep(4 * CENSUS_MS); // past three censuses
  await waitQuiet(b, 1000);
  const opens1 = activeOpens();
  const records = b.records();
  const lostKernel = await perCpuSum(statsId, STAT_LOST);
  t.is(lostKernel, lostAfterLoad, 'lost kept growing after the load');
  t.is(await perCpuSum(statsId, STAT_UNTRACKED), 0, 'connects went untracked (sockets map full)');
  const scraper = metricsClient(port);
  const scraped = await scraper.lost();
  scraper.close();

  const a = account(records, [...load, one]);
  t.log(`records ${records.length}; lost: stream ${a.lostRecords}, kernel ${lostKernel}, metrics ${scraped}; load missing ${a.loadMissing}; ` +
    `other flows ${a.otherFlows} (${a.otherClosesWithoutConnect} without connect, ${a.otherConnectsWithoutClose} without close)`);
  t.true(a.lostRecords > 0);
  t.is(a.lostRecords, lostKernel, 'the lost records add up to the kernel counter');
  t.is(scraped, lostKernel, 'the metrics show the kernel counter');
  // connections opened meanwhile that left no record at all (the metrics connection predates opens0)
  const unseen = opens1 - opens0 - a.loadConnections - a.loadFailed - (a.otherFlows - 1);
  t.log(`active opens ${opens1 - opens0}; connections that left no record: ${unseen}`);
  // every flow left a trace; a flow of another process with a connect but no close is open or lost its close
  const known = a.loadMissing + a.otherClosesWithoutConnect;
  if (unseen <= 0 && a.otherConnectsWithoutClose === 0) {
    t.is(a.lostRecords, known, 'lost == records missing (every flow accounted for)');
  } else {
    t.log(`the machine was not quiet: ${Math.max(0, unseen)} connections by other processes left no record and ` +
      `${a.otherConnectsWithoutClose} have no close; checking the bracket they allow`);
    t.true(a.lostRecords >= known, `lost ${a.lostRecords} < ${known} records known to be missing`);
    t.true(a.lostRecords <= known + a.otherConnectsWithoutClose + 2 * Math.max(0, unseen), `lost ${a.lostRecords} is more than the missing records explain`);
  }
  t.is(await b.stop(), 0, b.stderr());
}, { exclusive: true });

/*
 * busted-top's side. While a 10x overload saturates both CPUs of this VM, loopback packet
 * processing (softirq, which no nice value outranks) starves every process: busted-top, the
 * tmux server that draws it and this test's own polling alike (measured: 1.7-3 s gaps in which
 * none of them ran, whatever their priority). What the screen does is measured here without that
 * noise: busted-top is stopped (SIGSTOP) while the overload fills its ring buffer ~6x over, then
 * continued; the kernel's lost count must be on screen within 1 s, and busted-top must go on
 * drawing new traffic.
 */
kernelTest('10x overload: busted-top shows lost within 1 s of being able to run, and recovers', async (t: ExecutionContext) => {
  const tm = new Tmux('overload');
  t.teardown(() => tm.kill());
  tm.start(`sh -c 'env CI=true ${process.execPath} ${ROOT}bin/busted-top.js --all --interval 500; sleep 60'`, 120, 30);
  await tm.waitFor((s) => /^busted-top/m.test(s) && /up \d+s/.test(s), 'busted-top attached', 30_000);
  const sh = Number(tm.format('pane_pid'));
  const node = Number(execFileSync('pgrep', ['-P', String(sh)], { encoding: 'utf8' }).trim().split('\n')[0]);
  const statsId = (await mapsOf(node)).get('stats')!.id;
  t.regex(tm.text(), /lost 0\b/);

  process.kill(node, 'SIGSTOP');
  let load: ChurnResult[];
  try {
    load = await runChurns(LOAD_PROCS, { seconds: 60, max: PER_PROC / 2 });
  } catch (err) {
    process.kill(node, 'SIGCONT');
    throw err;
  }
  const kernelLost = await perCpuSum(statsId, STAT_LOST);
  const made = load.reduce((s, r) => s + r.connections, 0);
  t.true(made >= 5 * RING_RECORDS, `the load made only ${made} connections (ring records)`);
  t.true(kernelLost > 0, 'the kernel never dropped a record: the ring did not overflow');

  const resumed = Date.now();
  process.kill(node, 'SIGCONT');
  const shown = await tm.waitFor((s) => /lost [1-9]\d*/.test(s), 'lost on screen', 10_000).then(() => Date.now());
  t.log(`load: ${made} connections, kernel lost ${kernelLost}; busted-top showed lost ${shown - resumed} ms after it was continued`);
  t.true(shown - resumed <= 1000, `busted-top showed lost ${shown - resumed} ms after it was continued`);
  const m = /lost (\d+)/.exec(tm.text());
  t.true(Number(m?.[1]) >= kernelLost, `the screen says lost ${m?.[1]}, the kernel ${kernelLost}`);

  // recovery: a new process's connection shows up in the table once the backlog is read
  const marker = await runChurn({ seconds: 5, max: 20 });
  await tm.waitFor((s) => s.includes(String(marker.pid)), 'a new connection after the overload', 15_000);
  t.is(await perCpuSum(statsId, STAT_LOST), kernelLost, 'lost kept growing after the load');
  tm.keys('q');
}, { exclusive: true });

/*
 * A reader that stops reading busted's stdout (a stuck `busted | consumer`): busted buffers up to
 * its backlog limit (256 KiB here through BUSTED_OUTPUT_BACKLOG; 32 MiB by default), then stops
 * reading the ring, so its memory stays bounded and the kernel counts what it drops as lost; when
 * the reader comes back, everything up to the limit arrives, followed by the lost count.
 */
kernelTest('a stalled stdout reader: busted stops reading the ring, memory stays bounded, the drops arrive as lost', async (t: ExecutionContext) => {
  const child = spawn(process.execPath, [`${ROOT}bin/busted.js`, '--format', 'json', '--all'], {
    env: { ...process.env, BUSTED_OUTPUT_BACKLOG: String(256 << 10), BUSTED_CENSUS_MS: String(CENSUS_MS) },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const lines: string[] = [];
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (l) => lines.push(l));
  try {
    while (!lines.some((l) => l.includes('"type":"session"'))) {
      if (child.exitCode !== null) throw new Error(`busted exited: ${stderr}`);
      await sleep(50);
    }
    const rss = () => Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    const rssBefore = rss();
    child.stdout.pause(); // nobody reads: the pipe fills, then busted's own buffer
    rl.pause();
    let rssMax = 0;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rss())), 100);
    const load = await runChurns(2, { seconds: 60, max: 30_000 }).finally(() => clearInterval(sampler));
    await sleep(4 * CENSUS_MS); // past three censuses
    t.regex(stderr, /not being read fast enough/, 'busted said that its output is not being read');
    child.stdout.resume();
    rl.resume();
    const pids = new Set(load.map((r) => r.pid));
    const count = () => {
      let mine = 0;
      let lost = 0;
      for (const l of lines) {
        const r = JSON.parse(l) as EventRecord;
        if (r.type === 'lost') lost += r.count;
        else if ((r.type === 'connect' || r.type === 'close') && pids.has(r.pid)) mine++;
      }
      return { mine, lost };
    };
    for (let i = 0; i < 100 && count().lost === 0; i++) await sleep(100);
    for (let n = -1, i = 0; n !== lines.length && i < 60; i++) { // until the output is quiet
      n = lines.length;
      await sleep(1000);
    }
    const made = load.reduce((s, r) => s + r.connections, 0);
    const { mine, lost } = count();
    t.log(`load ${made} connections (${2 * made} records); received ${mine} of theirs, lost ${lost}; RSS ${rssBefore.toFixed(0)} -> max ${rssMax.toFixed(0)} MiB`);
    t.true(lost > 0, 'the kernel dropped records while busted was paused, and busted said so');
    t.true(mine < 2 * made, 'records are missing');
    t.true(mine + lost >= 2 * made, `received ${mine} + lost ${lost} < ${2 * made} records: some vanished uncounted`);
    t.true(rssMax - rssBefore < 64, `busted's RSS grew by ${(rssMax - rssBefore).toFixed(0)} MiB while its reader was stuck`);
    // and it goes on: a new connection is reported
    const marker = await runChurn({ seconds: 5, max: 10 });
    for (let i = 0; i < 100 && !lines.some((l) => l.includes(`"pid":${marker.pid}`)); i++) await sleep(100);
    t.true(lines.some((l) => l.includes('"type":"connect"') && l.includes(`"pid":${marker.pid}`)), 'a connection after the stall is reported');
  } finally {
    child.kill('SIGINT');
    await once(child, 'exit');
  }
}, { exclusive: true });
