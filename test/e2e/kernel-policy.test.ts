/**
 * --policy against the real kernel, through the busted CLI, loopback only: provider addresses
 * are a loopback range mapped by a --providers file, or learned from a ClientHello's SNI.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventRecord, PolicyRecord } from '../../src/core/records.js';
import { findCgroup2Mount } from '../../src/bpf/preflight.js';
import { kernelTest } from '../helpers/kernel.js';
import { bpfIdsOf, mapEntries, mapsOf, packetAttached } from '../helpers/bpfmaps.js';
import { holdingServer } from '../helpers/servers.js';
import { ROOT, runClient, startBusted, type BustedRun } from '../helpers/busted.js';

const EPERM = 1;
const CLIENT = `${ROOT}test/helpers/client.py`;
const PYTHON = realpathSync(execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim());

function files(policy: string) {
  const dir = mkdtempSync(join(tmpdir(), 'busted-policy-'));
  writeFileSync(join(dir, 'providers.yaml'), 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.98.0.0/16]\n    source: https://example.test/acme\n');
  writeFileSync(join(dir, 'policy.yaml'), policy);
  const bot = join(dir, 'llmbot');
  copyFileSync(PYTHON, bot);
  chmodSync(bot, 0o755);
  return { dir, providers: join(dir, 'providers.yaml'), policy: join(dir, 'policy.yaml'), bot, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const port = (s: Server) => (s.address() as AddressInfo).port;

/** One connect attempt by `python` (in an optional shell prefix); `before` runs while the client waits, before it connects. */
async function tryConnect(python: string, host: string, p: number, prefix: string[] = [], before?: () => Promise<void>) {
  const child: ChildProcessWithoutNullStreams = spawn(prefix[0] ?? python, [...prefix.slice(1), ...(prefix.length ? [python] : []), CLIENT, 'wait-connect', host, String(p), '1']);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const { pid } = JSON.parse((await lines.next()).value as string) as { pid: number };
  await before?.();
  child.stdin.write('\n');
  const r = JSON.parse((await lines.next()).value as string) as { ok: boolean; error: number | null };
  child.kill();
  return { pid, ...r };
}

const policyRecords = (b: BustedRun, pid: number) => b.records.filter((r: EventRecord): r is PolicyRecord => r.type === 'policy' && r.pid === pid);

kernelTest('a policy blocks one executable: EPERM to the provider, while it still reaches other addresses and others still reach the provider', async (t) => {
  const f = files('');
  writeFileSync(f.policy, `rules:\n  - name: no-llmbot\n    match: {exe: ${f.bot}}\n    action: block\n`);
  const llm = await holdingServer('127.98.0.1');
  const other = await holdingServer('127.0.0.1');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy, '--enforce']);
  try {
    t.true((busted.records[0] as { enforce?: boolean }).enforce, 'session says ENFORCE');
    const blocked = await tryConnect(f.bot, '127.98.0.1', port(llm));
    t.deepEqual([blocked.ok, blocked.error], [false, EPERM]);
    const plain = await tryConnect(f.bot, '127.0.0.1', port(other));
    t.deepEqual([plain.ok, plain.error], [true, null], 'the same executable reaches a non-LLM address');
    const bystander = await tryConnect(PYTHON, '127.98.0.1', port(llm));
    t.deepEqual([bystander.ok, bystander.error], [true, null], 'another process reaches the provider');
    const rec = await busted.waitFor((r): r is PolicyRecord => r.type === 'policy' && r.pid === blocked.pid);
    t.like(rec, { action: 'block', result: 'denied', provider: 'acme-llm', rule: 'no-llmbot', dst: `127.98.0.1:${port(llm)}` });
    t.deepEqual(policyRecords(busted, bystander.pid), []);
  } finally {
    await busted.stop();
    llm.shut();
    other.shut();
    f.cleanup();
  }
});

kernelTest('without --enforce the same policy lets the connect through and records would-deny', async (t) => {
  const f = files('');
  writeFileSync(f.policy, `rules:\n  - name: no-llmbot\n    match: {exe: ${f.bot}}\n    action: block\n`);
  const llm = await holdingServer('127.98.0.2');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy]);
  try {
    const c = await tryConnect(f.bot, '127.98.0.2', port(llm));
    t.deepEqual([c.ok, c.error], [true, null]);
    t.like(await busted.waitFor((r): r is PolicyRecord => r.type === 'policy' && r.pid === c.pid), { action: 'block', result: 'would-deny', rule: 'no-llmbot' });
  } finally {
    await busted.stop();
    llm.shut();
    f.cleanup();
  }
});

kernelTest('rules by uid and by cgroup block the right processes only', async (t) => {
  const mount = findCgroup2Mount()!;
  const name = `busted-policy-${process.pid}-${Date.now()}`;
  mkdirSync(join(mount, name));
  const f = files(`rules:\n  - name: no-nobody\n    match: {uid: 65534}\n    action: block\n  - name: no-jail\n    match: {cgroup: /${name}}\n    action: block\n`);
  const llm = await holdingServer('127.98.0.3');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy, '--enforce']);
  try {
    const nobody = await tryConnect(PYTHON, '127.98.0.3', port(llm), ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--']);
    t.deepEqual([nobody.ok, nobody.error], [false, EPERM], 'uid 65534 is blocked');
    const jailed = await tryConnect(PYTHON, '127.98.0.3', port(llm), ['sh', '-c', `echo $$ > ${join(mount, name)}/cgroup.procs && exec "$0" "$@"`]);
    t.deepEqual([jailed.ok, jailed.error], [false, EPERM], 'a process in the cgroup is blocked');
    const free = await tryConnect(PYTHON, '127.98.0.3', port(llm));
    t.deepEqual([free.ok, free.error], [true, null], 'root outside the cgroup is not');
    t.like(policyRecords(busted, nobody.pid)[0] ?? (await busted.waitFor((r): r is PolicyRecord => r.type === 'policy' && r.pid === nobody.pid)), { rule: 'no-nobody' });
  } finally {
    await busted.stop();
    llm.shut();
    f.cleanup();
    rmdirSync(join(mount, name));
  }
});

kernelTest('an address learned from a ClientHello\'s SNI is blocked for a blocked process\'s next connect', async (t) => {
  const f = files('');
  writeFileSync(f.policy, `rules:\n  - name: no-openai-for-llmbot\n    match: {exe: ${f.bot}, provider: openai}\n    action: block\n`);
  const server = createServer((s) => s.once('data', () => s.end()).on('error', () => {}));
  server.listen(0, '127.0.0.60');
  await once(server, 'listening');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy, '--enforce']);
  try {
    const first = await tryConnect(f.bot, '127.0.0.60', port(server));
    t.deepEqual([first.ok, first.error], [true, null], 'unknown address: allowed');
    const hello = await runClient(['tls', '127.0.0.60', port(server), 'api.openai.com']);
    await busted.waitFor((r) => r.type === 'connect' && r.pid === hello.pid && r.provider === 'openai');
    const next = await tryConnect(f.bot, '127.0.0.60', port(server));
    t.deepEqual([next.ok, next.error], [false, EPERM], 'the address is now known as openai');
  } finally {
    await busted.stop();
    server.close();
    f.cleanup();
  }
});

kernelTest('after busted is killed with SIGKILL the blocked process connects again', async (t) => {
  const f = files('');
  writeFileSync(f.policy, `default: block\n`);
  const llm = await holdingServer('127.98.0.4');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy, '--enforce']);
  const before = await tryConnect(PYTHON, '127.98.0.4', port(llm));
  t.deepEqual([before.ok, before.error], [false, EPERM], 'default: block');
  busted.child.kill('SIGKILL');
  await busted.stop();
  let after = await tryConnect(PYTHON, '127.98.0.4', port(llm));
  for (let i = 0; i < 20 && !after.ok; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await tryConnect(PYTHON, '127.98.0.4', port(llm));
  }
  t.deepEqual([after.ok, after.error], [true, null], 'fail-open within 2 s');
  llm.shut();
  f.cleanup();
});

kernelTest('a connection still connecting when a SIGHUP reload blocks its process is cut when it is announced: nothing it sends reaches the server', async (t) => {
  const f = files('rules:\n  - name: nothing-yet\n    match: {uid: 4242424}\n    action: block\n');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy, '--enforce']);
  // a server whose accept queue is full: the bot's connect stays connecting (its SYN is dropped)
  const server = spawn('python3', [CLIENT, 'stalled-server', '127.98.0.7', '0']);
  const serverLines = createInterface({ input: server.stdout })[Symbol.asyncIterator]();
  try {
    const { port: p } = JSON.parse((await serverLines.next()).value as string) as { port: number };
    const child = spawn(f.bot, [CLIENT, 'stream', '127.98.0.7', String(p), '4']);
    try {
      await new Promise((r) => setTimeout(r, 300)); // its connect() has started; the kernel let it through
      writeFileSync(f.policy, `rules:\n  - name: stop-llmbot\n    match: {exe: ${f.bot}}\n    action: block\n`);
      busted.child.kill('SIGHUP');
      const deadline = Date.now() + 3000;
      while (!/reloaded the policy/.test(busted.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      t.regex(busted.stderr(), /reloaded the policy/);
      server.stdin.write('\n'); // room in the queue: its next SYN (1 s after the first) gets through
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const { pid } = JSON.parse((await lines.next()).value as string) as { pid: number };
      const cut = await busted.waitFor((r): r is PolicyRecord => r.type === 'policy' && r.pid === pid && r.cut !== undefined, 3000);
      t.like(cut, { rule: 'stop-llmbot', result: 'denied', cut: 1 });
      let received = 0;
      const counts = (async () => {
        for await (const line of serverLines) received = (JSON.parse(line) as { received: number }).received;
      })();
      await new Promise((r) => setTimeout(r, 500));
      const atCut = received;
      await new Promise((r) => setTimeout(r, 1500));
      t.is(received, atCut, 'no bytes reach the server after the cut');
      // before the cut: its connect held up to 250 ms for a ClientHello, and one ring read (100 B every 50 ms)
      t.true(atCut <= 1000, `at most what was sent before the cut: ${atCut} bytes`);
      server.stdin.end();
      await counts;
    } finally {
      child.kill();
    }
  } finally {
    server.kill();
    await busted.stop();
    f.cleanup();
  }
});

kernelTest('a bad policy file is refused with file, line, rule and key, and nothing is attached', async (t) => {
  const f = files('rules:\n  - name: x\n    match: {exe: runner}\n    action: block\n');
  const child = spawn(process.execPath, [`${ROOT}bin/busted.js`, '--policy', f.policy]);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const [code] = await once(child, 'exit');
  t.is(code, 2);
  t.regex(err, /policy\.yaml, line 3, rules\[0\] \(name "x"\), key match\.exe: must be an absolute path, not "runner"/);
  f.cleanup();
});

kernelTest('a sha256 rule blocks a binary started after busted from its first connect (hashed at exec)', async (t) => {
  const f = files('');
  const { appendFileSync, readFileSync } = await import('node:fs');
  const { createHash } = await import('node:crypto');
  appendFileSync(f.bot, Buffer.from(`\nbusted-test ${Date.now()}\n`)); // same program, content of its own
  const sha = createHash('sha256').update(readFileSync(f.bot)).digest('hex');
  writeFileSync(f.policy, `rules:\n  - name: by-hash\n    match: {sha256: ${sha}}\n    action: block\n`);
  const llm = await holdingServer('127.98.0.5');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy, '--enforce']);
  try {
    // the binary is hashed because it was exec'd (it has not connected yet): its kernel entry
    // appears while it waits; on a busy machine that takes longer than python's startup
    const hashedExes = (await mapsOf(busted.child.pid!)).get('hashed_exes')!;
    const hashed = async () => {
      const deadline = Date.now() + 5000;
      while ((await mapEntries(hashedExes.id)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    const first = await tryConnect(f.bot, '127.98.0.5', port(llm), [], hashed);
    t.is(await mapEntries(hashedExes.id), 1, 'the exec of the binary put its executable in hashed_exes');
    t.deepEqual([first.ok, first.error], [false, EPERM], 'the first connect of the hashed binary is refused');
    const other = await tryConnect(PYTHON, '127.98.0.5', port(llm));
    t.deepEqual([other.ok, other.error], [true, null], 'the original binary (another hash) is not');
    t.like(await busted.waitFor((r): r is PolicyRecord => r.type === 'policy' && r.pid === first.pid), { rule: 'by-hash', result: 'denied' });
    // a reload whose sha256 rule (at the same index) names another hash: the binary's kernel
    // entry must lose its bit, or the new rule would block it by the old one's match
    writeFileSync(f.policy, `rules:\n  - name: other-hash\n    match: {sha256: ${'ab'.repeat(32)}}\n    action: block\n`);
    busted.child.kill('SIGHUP');
    const deadline = Date.now() + 5000;
    while (!/reloaded the policy/.test(busted.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    t.regex(busted.stderr(), /reloaded the policy/);
    const after = await tryConnect(f.bot, '127.98.0.5', port(llm));
    t.deepEqual([after.ok, after.error], [true, null], 'after the reload the binary, which no rule names now, connects');
    t.is(await mapEntries(hashedExes.id), 0, 'its hashed_exes entry is gone');
  } finally {
    await busted.stop();
    llm.shut();
    f.cleanup();
  }
});

kernelTest('a SIGHUP reload that blocks a process cuts its open LLM flows within 1 s (the packet programs attached only while it is cut), and a bad reload keeps the policy', async (t) => {
  const f = files('rules:\n  - name: nothing-yet\n    match: {uid: 4242424}\n    action: block\n');
  let received = 0;
  const conns = new Set<Socket>();
  const server = createServer((s) => {
    conns.add(s);
    s.on('data', (d) => (received += d.length)).on('error', () => {});
  });
  server.listen(0, '127.98.0.6');
  await once(server, 'listening');
  const busted = await startBusted(['--providers', f.providers, '--policy', f.policy, '--enforce']);
  const child = spawn(f.bot, [CLIENT, 'stream', '127.98.0.6', String(port(server)), '6']);
  try {
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const { pid } = JSON.parse((await lines.next()).value as string) as { pid: number };
    await busted.waitFor((r) => r.type === 'connect' && r.pid === pid);
    await new Promise((r) => setTimeout(r, 600));
    t.true(received > 0, 'bytes flow before the reload');
    const progs = bpfIdsOf(busted.child.pid!).progs;
    t.deepEqual(packetAttached(progs), [], 'no packet program attached before a flow is cut');
    writeFileSync(f.policy, 'rules: [oops\n'); // a bad file: the old policy stays
    busted.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    t.regex(busted.stderr(), /policy file .*policy\.yaml, line \d+: is not valid YAML.*the policy in force is unchanged/);
    writeFileSync(f.policy, `rules:\n  - name: stop-llmbot\n    match: {exe: ${f.bot}}\n    action: block\n`);
    busted.child.kill('SIGHUP');
    const cut = await busted.waitFor((r): r is PolicyRecord => r.type === 'policy' && r.pid === pid && r.cut !== undefined, 3000);
    t.like(cut, { rule: 'stop-llmbot', result: 'denied', cut: 1 });
    await new Promise((r) => setTimeout(r, 1000));
    const atCut = received;
    await new Promise((r) => setTimeout(r, 1500));
    t.is(received, atCut, 'no bytes reach the server after the cut');
    t.deepEqual(packetAttached(progs).sort(), ['busted_egress (cgroup_inet_egress)', 'busted_ingress (cgroup_inet_ingress)'], 'the packet programs are attached while the flow is cut');
    child.kill();
    await busted.waitFor((r) => r.type === 'close' && r.pid === pid, 5000);
    const deadline = Date.now() + 3000;
    while (packetAttached(progs).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    t.deepEqual(packetAttached(progs), [], 'and detached once the cut flow is gone');
    // the kernel now decides by the reloaded policy's bank: its record names the new rule
    const again = await tryConnect(f.bot, '127.98.0.6', port(server));
    t.deepEqual([again.ok, again.error], [false, EPERM]);
    t.like(await busted.waitFor((r): r is PolicyRecord => r.type === 'policy' && r.pid === again.pid), { rule: 'stop-llmbot', result: 'denied' });
  } finally {
    child.kill();
    await busted.stop();
    for (const c of conns) c.destroy();
    server.close();
    f.cleanup();
  }
});
