/**
 * Soak (root): 200k short loopback connections from 20 short-lived churn processes (two at a
 * time, 10k connections each, paced so busted keeps up) while busted runs. Afterwards, once the
 * close records are drained and busted's retention (10 s for closed flows and idle processes) has
 * passed, everything per socket or per process must be gone again:
 * - busted's kernel maps `sockets`, `traffic`, `cut_socks`, `proc_verdicts` hold at most
 *   a handful of entries (counted with bpftool through busted's own map descriptors), and at most
 *   a handful of the counter slots (`traffic_slots`, mapped through its id) still hold a cookie;
 * - the metrics endpoint reports no open connections (the metrics sink's flow table is empty)
 *   and at most a few per-process series;
 * - busted's RSS stays under 512 MiB (a table keeping every connection would pass that). It does
 *   not return near its start here: 123 MiB -> 245 MiB after 200k connections in one run (V8's
 *   heap keeps what it grew to); bench/soak.ts measures it over 1M connections against the 10 %
 *   target.
 * busted's flow table (src/core/flows.ts) has no outside view; its pruning is covered by the
 * unit tests of FlowTable.
 */
import http from 'node:http';
import fs from 'node:fs';
import type { ExecutionContext } from 'ava';
import { entryCounts, mapsOf, SlotsView, SOCKET_MAPS } from '../helpers/bpfmaps.js';
import { startBustedToFile, waitQuiet } from '../helpers/busted-file.js';
import { runChurns, type ChurnResult } from '../helpers/churn.js';
import { kernelTest } from '../helpers/kernel.js';
import { freePort } from '../helpers/servers.js';

const ROUNDS = 10;
const PARALLEL = 2;
const PER_PROC = 10_000;
const RATE = 6_000; // per process: ~12k connections/s in all, which busted drains here
const RETENTION_MS = 10_000; // FlowTable's closed-flow and idle-process retention
const MAX_LEFT = 8;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const rssKiB = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

kernelTest('soak: 200k short connections leave no map entries, open flows or process series behind', async (t: ExecutionContext) => {
  const port = await freePort();
  const b = await startBustedToFile(['--metrics', `127.0.0.1:${port}`]);
  t.teardown(() => void b.stop());
  const maps = await mapsOf(b.pid);
  const slotsMap = maps.get('traffic_slots');
  if (!slotsMap) throw new Error('busted holds no map named traffic_slots');
  const slots = SlotsView.open(slotsMap);
  t.teardown(() => slots.close());
  const before = await entryCounts(maps, SOCKET_MAPS);
  const slotsBefore = slots.inUse();
  await sleep(1000);
  const rss0 = rssKiB(b.pid);

  const started = Date.now();
  const load: ChurnResult[] = [];
  for (let i = 0; i < ROUNDS; i++) load.push(...(await runChurns(PARALLEL, { seconds: 30, max: PER_PROC, rate: RATE })));
  const connections = load.reduce((s, r) => s + r.connections, 0);
  t.log(`${connections} connections from ${load.length} processes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.true(connections >= 200_000, `only ${connections} connections`);
  const during = await entryCounts(maps, SOCKET_MAPS);
  const slotsDuring = slots.inUse();

  await waitQuiet(b, 1000, 60_000); // the close records are out
  await sleep(RETENTION_MS + 2000); // busted's pruning (every tick) has passed the retention
  const after = await entryCounts(maps, SOCKET_MAPS);
  const slotsAfter = slots.inUse();
  const rss1 = rssKiB(b.pid);
  const text = await scrape(port);
  const open = [...text.matchAll(/^busted_connections_open\{[^}]*\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
  const series = new Set([...text.matchAll(/^busted_process_bytes_total\{pid="(\d+)"/gm)].map((m) => m[1])).size;
  const lost = Number(/^busted_kernel_lost_events_total (\d+)/m.exec(text)?.[1] ?? 0);
  t.log(`map entries before ${JSON.stringify(before)}, right after the load ${JSON.stringify(during)}, after ${JSON.stringify(after)}`);
  t.log(`counter slots in use: before ${slotsBefore}, right after the load ${slotsDuring}, after ${slotsAfter}`);
  t.log(`metrics: open connections ${open}, per-process series ${series}, lost ${lost}; RSS ${rss0} KiB -> ${rss1} KiB`);

  for (const name of SOCKET_MAPS) t.true(after[name]! <= MAX_LEFT, `${name} still holds ${after[name]} entries`);
  t.true(slotsAfter <= MAX_LEFT, `${slotsAfter} counter slots still hold a cookie`);
  t.true(open <= MAX_LEFT, `the metrics still count ${open} open connections`);
  t.true(series <= 21, `${series} per-process series (top 20 + other)`);
  t.true(rss1 <= 512 * 1024, `RSS grew from ${rss0} KiB to ${rss1} KiB`);

  // every connection was reported: the records of the load's pids, unless the kernel said it lost
  // some. Counted once busted has stopped, as a recording is read: its stop takes two censuses,
  // which report a connection whose end the kernel did not show (endUnseen; rare, but one CI
  // run's soak had one: README Limits), as the census every 30 s would have a minute later.
  t.is(await b.stop(), 0, b.stderr());
  const pids = new Set(load.map((r) => r.pid));
  const mine = b.records().filter((r) => (r.type === 'connect' || r.type === 'close') && pids.has(r.pid));
  const unseen = mine.filter((r) => r.type === 'close' && r.endUnseen).length;
  if (unseen > 0) t.log(`${unseen} closes made by the census (end unseen)`);
  // (lost may also count records of other processes on a busy machine: at least, never fewer)
  t.true(2 * connections - mine.length <= lost, `${2 * connections - mine.length} records missing, lost says ${lost}`);
}, { exclusive: true });
