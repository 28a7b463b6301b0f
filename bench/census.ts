/**
 * What one census costs (KernelProbe.census, bpf/busted.h): busted's programs loaded and
 * attached as by default, this process's own sockets tracked (selfTgid 0), N loopback
 * connections held open (2N sockets in the TCP tables, N of them tracked); then, over R rounds
 * (median reported), the time of one census: the walk over this namespace's TCP sockets and the
 * judgement of every counter slot. busted runs one every 30 s, so its share of one CPU is the
 * census time / 30 s; for comparison, the same walk with no socket open.
 *
 *   sudo npx tsx bench/census.ts [--quick] [--conns N] [--json FILE]
 *
 * No target in issue 8 (a periodic cost, not a per-connection one): printed for information.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { KernelProbe } from '../src/bpf/probe.js';
import { findCgroup2Mount } from '../src/bpf/preflight.js';

const quick = process.argv.includes('--quick');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
const connsArg = process.argv.indexOf('--conns');
const CONNS = connsArg > 0 ? Number(process.argv[connsArg + 1]) : quick ? 2_000 : 8_000;
const ROUNDS = quick ? 5 : 21;
const PERIOD_MS = 30_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function timeCensus(probe: KernelProbe): number[] {
  const ms: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint();
    probe.census([]);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}

async function main(): Promise<void> {
  if (process.geteuid?.() !== 0) throw new Error('loading busted\'s BPF programs needs root: run this bench as root.');
  const cgroupPath = findCgroup2Mount();
  if (cgroupPath === null) throw new Error('no cgroup v2 mount: the census needs the cgroup programs');
  let closes = 0;
  const probe = KernelProbe.start({ selfTgid: 0, cgroupPath, onEvent: (ev) => void (ev.kind === 3 && closes++) });
  const server = createServer((s) => s.on('error', () => {}));
  const clients: Socket[] = [];
  try {
    if (!probe.takesCensus) throw new Error('the census iterator is not attached');
    const empty = median(timeCensus(probe));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    for (let i = 0; i < CONNS; i += 200) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(CONNS, i + 200); j++) {
        const c = createConnection({ host: '127.0.0.1', port });
        c.on('error', () => {});
        clients.push(c);
        batch.push(once(c, 'connect'));
      }
      await Promise.all(batch);
    }
    probe.poll();
    const full = timeCensus(probe);
    probe.poll();
    const m = median(full);
    const share = (m / PERIOD_MS) * 100;
    console.log(`census with ${CONNS.toLocaleString('en-US')} open connections (${(2 * CONNS).toLocaleString('en-US')} TCP sockets, ${CONNS.toLocaleString('en-US')} tracked): median ${m.toFixed(2)} ms over ${ROUNDS} runs (min ${Math.min(...full).toFixed(2)}, max ${Math.max(...full).toFixed(2)})`);
    console.log(`census with no socket open: median ${empty.toFixed(2)} ms (the judgement of ${(65_536).toLocaleString('en-US')} slots and the walk's fixed cost)`);
    console.log(`every ${PERIOD_MS / 1000} s: ${share.toFixed(3)} % of one CPU; connections closed by it meanwhile (none may be): ${closes}`);
    if (closes !== 0) process.exitCode = 1;
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ conns: CONNS, periodMs: PERIOD_MS, medianMs: { open: m, empty }, cpuPercent: share, closedByCensus: closes }));
  } finally {
    for (const c of clients) c.destroy();
    server.close();
    probe.close();
  }
}

main().catch((err: Error) => {
  console.error(`bench/census: ${err.message}`);
  process.exit(1);
});
