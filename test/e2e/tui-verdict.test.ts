/**
 * Live busted-top with --enforce (root): `b` on a client's row makes its next provider connect
 * fail with EPERM, `b` again restores it. The provider is a loopback range in a providers file.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { Tmux } from '../helpers/tmux.js';

kernelTest('live busted-top: b blocks a process\'s provider connects (EPERM), b again unblocks', async (t) => {
  const server = net.createServer((s) => s.on('data', () => {}).on('error', () => {}));
  server.listen(0, '127.97.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-verdict-'));
  const providers = path.join(dir, 'providers.yaml');
  fs.writeFileSync(providers, 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.97.0.0/16]\n    source: https://example.test/acme\n');
  const tm = new Tmux('verdict');
  t.teardown(() => {
    tm.kill();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  tm.start(`sh -c 'env CI=true ${process.execPath} ${ROOT}bin/busted-top.js --enforce --providers ${providers} --interval 500; sleep 60'`, 100, 30);
  await tm.waitFor((s) => /^busted-top {2}ENFORCE/m.test(s) && /up \d+s/.test(s), 'busted-top attached in ENFORCE mode', 30_000);

  const client = spawn('python3', [`${ROOT}test/fixtures/provider-client.py`, '127.97.0.1', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => client.kill('SIGKILL'));
  const lines = createInterface({ input: client.stdout })[Symbol.asyncIterator]();
  const pid = Number((await lines.next()).value);
  const next = async () => String((await lines.next()).value);
  /** Reads results until `want` shows up (at most `max` attempts). */
  const until = async (want: string, max = 20) => {
    for (let i = 0; i < max; i++) if ((await next()) === want) return true;
    return false;
  };
  t.true(await until('ok', 3), 'connects before the block');
  tm.keys('/');
  tm.keys(`pid:${pid}`, true);
  tm.keys('Enter');
  await tm.waitFor((_, l) => l.some((x) => new RegExp(`^\\s+${pid} `).test(x)), 'the client row', 10_000);
  tm.keys('b');
  await tm.waitFor((s) => new RegExp(`Blocked the LLM traffic of ${pid}`).test(s), 'the block on the status line');
  t.true(await until('EPERM'), 'the next provider connect fails with EPERM');
  await tm.waitFor((_, l) => l.some((x) => new RegExp(`^\\s+${pid} .*BLOCK\\s*$`).test(x)), 'BLOCK in the POLICY column');
  tm.keys('b');
  await tm.waitFor((s) => new RegExp(`Cleared the block on ${pid}`).test(s), 'the unblock on the status line');
  t.true(await until('ok'), 'connects again after b');
});
