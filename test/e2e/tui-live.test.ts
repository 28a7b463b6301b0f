/**
 * Live busted-top (root): a client's row appears within two refreshes with its pid and bytes,
 * and x + y on it ends the client with SIGTERM, recorded as a `kill` record. Loopback only.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { Tmux } from '../helpers/tmux.js';

const INTERVAL_MS = 500;

kernelTest('live busted-top shows a client within two refreshes and x + y ends it', async (t) => {
  const server = net.createServer((sock) => sock.on('data', (d) => sock.write(Buffer.concat([d, d, d, d]))).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-live-'));
  const recording = path.join(dir, 'live.jsonl');
  const tm = new Tmux('live');
  t.teardown(() => {
    tm.kill();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const run = `env CI=true ${process.execPath} ${ROOT}bin/busted-top.js --all --interval ${INTERVAL_MS} --record ${recording}`;
  tm.start(`sh -c '${run}; echo "EXIT=$?"; sleep 60'`, 100, 30);
  await tm.waitFor((s) => /^busted-top {2}AUDIT {2}● REC/m.test(s) && /up \d+s/.test(s), 'busted-top attached', 30_000);

  const client = spawn('python3', [`${ROOT}test/fixtures/loop-client.py`, '127.0.0.1', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => client.kill('SIGKILL'));
  const [first] = (await once(client.stdout, 'data')) as [Buffer];
  const pid = Number(first.toString().trim());
  t.is(pid, client.pid ?? -1);
  const seenAt = Date.now();
  const row = new RegExp(`^\\s+${pid} root\\s+python3\\S*\\s+-\\s+1/1\\s+\\S+\\s+\\S+\\s+(\\S+)\\s+(\\S+)\\s`, 'm');
  const lines = await tm.waitFor((s) => {
    const m = row.exec(s);
    return m !== null && m[1] !== '0' && m[2] !== '0';
  }, `a row for pid ${pid} with bytes`, 10_000);
  // two refreshes, plus the time tmux and the poll add
  t.true(Date.now() - seenAt <= 2 * INTERVAL_MS + 1500, `row after ${Date.now() - seenAt} ms`);
  t.true(lines.some((l) => row.test(l)));

  tm.keys('/');
  tm.keys(`pid:${pid}`, true);
  tm.keys('Enter');
  await tm.waitFor((_, l) => l.filter((x) => /^\s+\d+ /.test(x)).length === 1, 'only the client row');
  tm.keys('x');
  await tm.waitFor((s) => new RegExp(`Kill ${pid} \\(python3\\S*\\)\\? y: SIGTERM`).test(s), 'the kill prompt');
  tm.keys('y');
  const [code, signal] = (await once(client, 'exit')) as [number | null, string | null];
  t.is(signal, 'SIGTERM');
  t.is(code, null);
  await tm.waitFor((s) => new RegExp(`Sent SIGTERM to ${pid} \\(python3\\S*\\)\\.`).test(s), 'the result on the status line');

  tm.keys('q');
  const end = await tm.waitFor((s) => s.includes('EXIT='), 'busted-top to exit', 15_000);
  t.regex(end.join('\n'), /EXIT=0/);
  const records = fs.readFileSync(recording, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; pid?: number; signal?: string });
  t.is(records[0]!.type, 'session');
  t.true(records.some((r) => r.type === 'connect' && r.pid === pid));
  t.true(records.some((r) => r.type === 'kill' && r.pid === pid && r.signal === 'SIGTERM'));
  t.is(fs.statSync(recording).mode & 0o777, 0o600);
});
