/**
 * Issue 5's figure: while a 200 MB executable is being hashed by the identity resolver, how long
 * does a kernel record take to reach a sink? A process running a fresh 200 MB binary connects (so
 * busted hashes it), while another client connects every 5 ms; for each of its connect records
 * the delay from the kernel's timestamp to the record reaching a store listener is measured.
 * Loopback only; bounded in time. Run as root: npx tsx bench/identity-latency.ts
 */
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, chmodSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEngine } from '../src/core/engine.js';
import { Store } from '../src/core/store.js';
import type { ConnectRecord, ProcessRecord } from '../src/core/records.js';

const python = realpathSync((await new Promise<string>((res) => execFile('python3', ['-c', 'import sys; print(sys.executable)'], (_e, o) => res(o)))).trim());
const dir = mkdtempSync(join(tmpdir(), 'busted-hashbench-'));
const big = join(dir, 'bigbin');
copyFileSync(python, big);
const chunk = Buffer.alloc(16 << 20, 7);
for (let i = 0; i < 13; i++) appendFileSync(big, chunk); // ~208 MB: python still runs (trailing data is ignored)
chmodSync(big, 0o755);

const server = createServer((s) => s.on('data', () => {}).on('error', () => {}));
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const port = (server.address() as AddressInfo).port;

const store = new Store();
const delays: number[] = [];
let hashedAt = 0;
let bigPid = -1;
const t0 = Date.now();
const connectScript = `import socket,sys,time\nfor i in range(int(sys.argv[1])):\n  s=socket.create_connection(('127.0.0.1',${port})); s.close(); time.sleep(float(sys.argv[2]))`;
store.onRecord((r) => {
  const now = Date.now();
  if (r.type === 'connect' && (r as ConnectRecord).comm.startsWith('python')) delays.push(now - Date.parse(r.ts));
  if (r.type === 'process' && r.pid === bigPid && (r as ProcessRecord).sha256 && !hashedAt) hashedAt = now;
});
const engine = await startEngine(store, { all: true, intervalMs: 1000, verbose: false, holdMs: 0 });
const bigProc = spawn(big, ['-c', connectScript, '1', '0']);
bigPid = bigProc.pid!;
const small = spawn(python, ['-c', connectScript, '300', '0.005']);
await once(small, 'exit');
await new Promise((r) => setTimeout(r, 500));
await engine.stop();
server.close();
rmSync(dir, { recursive: true, force: true });
delays.sort((a, b) => a - b);
const pct = (p: number) => delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))];
console.log(`connect records measured: ${delays.length}; the 208 MB binary's hash arrived ${hashedAt ? hashedAt - t0 : 'never'} ms after start`);
console.log(`kernel record -> sink latency: p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${delays[delays.length - 1]} ms (target < 100 ms)`);
process.exit(0);
