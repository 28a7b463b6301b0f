/**
 * Identity against the real kernel: a client in a cgroup v2 child the test creates, the
 * executable's SHA-256, another user's uid and name, a process that connects and exits at once,
 * and a copy of an executable named like an agent.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { once } from 'node:events';
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, createReadStream, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmdirSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectRecord, EventRecord, ProcessRecord } from '../../src/core/records.js';
import { findCgroup2Mount } from '../../src/bpf/preflight.js';
import { kernelTest } from '../helpers/kernel.js';
import { ROOT, runClient, startBusted, type BustedRun, type ClientResult } from '../helpers/busted.js';

const CLIENT = `${ROOT}test/helpers/client.py`;
const PYTHON = realpathSync(execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim());

async function sink(): Promise<Server> {
  const server = createServer((s) => s.on('data', () => {}).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const connectOf = (b: BustedRun, pid: number) =>
  b.waitFor((r: EventRecord): r is ConnectRecord => r.type === 'connect' && r.pid === pid);

/** Runs a command (argv) whose last output line is the client's JSON report. */
async function run(argv: string[]): Promise<ClientResult> {
  const child = spawn(argv[0]!, argv.slice(1));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}: ${err}`);
  return JSON.parse(out.trim().split('\n').pop()!) as ClientResult;
}

const sha256Of = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

kernelTest('a client in a new cgroup v2 child is reported with that cgroup path and its executable\'s SHA-256', async (t) => {
  const mount = findCgroup2Mount();
  t.truthy(mount, 'cgroup v2 mount');
  const name = `busted-test-${process.pid}-${Date.now()}`;
  const dir = join(mount!, name);
  mkdirSync(dir);
  const server = await sink();
  const busted = await startBusted();
  try {
    const client = await run(['sh', '-c', `echo $$ > ${dir}/cgroup.procs && exec "$0" "$@"`, PYTHON, CLIENT,
      'exchange', '127.0.0.1', String((server.address() as AddressInfo).port), '10', '0']);
    const conn = await connectOf(busted, client.pid);
    t.is(conn.exe, PYTHON);
    // details found off the hot path arrive on the connect, or in a later process record
    const later = (pred: (r: ProcessRecord) => boolean) =>
      busted.waitFor((r): r is ProcessRecord => r.type === 'process' && r.pid === client.pid && pred(r), 15_000);
    t.is(conn.cgroup ?? (await later((r) => r.cgroup !== null)).cgroup, `/${name}`);
    t.is(conn.sha256 ?? (await later((r) => r.sha256 !== null)).sha256, sha256Of(PYTHON));
  } finally {
    await busted.stop();
    server.close();
    rmdirSync(dir);
  }
});

kernelTest('a process that exits while its executable is still being hashed gets its SHA-256 in a later process record', async (t) => {
  // a copy of the interpreter made 256 MiB long (sparse; the loader ignores what follows the
  // ELF's segments): hashing it takes about a second, the client is gone within milliseconds,
  // and with --interval 100 busted sees it exit (and forgets it) while the hash is still running
  const dir = mkdtempSync(join(tmpdir(), 'busted-bigexe-'));
  const big = join(dir, 'bigpython');
  copyFileSync(PYTHON, big);
  chmodSync(big, 0o755);
  truncateSync(big, 256 * 1024 * 1024);
  const server = await sink();
  const busted = await startBusted(['--interval', '100']);
  try {
    const client = await runClient(['exchange', '127.0.0.1', (server.address() as AddressInfo).port, 10, 0], big);
    const conn = await connectOf(busted, client.pid);
    t.is(conn.exe, big);
    const exited = Date.now();
    const hashed = conn.sha256 ?? (await busted.waitFor((r): r is ProcessRecord =>
      r.type === 'process' && r.pid === client.pid && r.sha256 !== null, 15_000)).sha256;
    t.is(hashed, await sha256OfFile(big));
    t.log(`sha256 ${conn.sha256 === null ? `in a process record ${Date.now() - exited} ms after the connect record` : 'on the connect record'}`);
  } finally {
    await busted.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('a client run as another user (setpriv 65534) is reported with that uid and user name', async (t) => {
  const server = await sink();
  const busted = await startBusted();
  const nobody = execFileSync('getent', ['passwd', '65534'], { encoding: 'utf8' }).split(':')[0];
  try {
    const client = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', PYTHON, CLIENT,
      'exchange', '127.0.0.1', String((server.address() as AddressInfo).port), '10', '0']);
    t.is(client.uid, 65534);
    const conn = await connectOf(busted, client.pid);
    t.is(conn.uid, 65534);
    t.is(conn.gid, 65534);
    t.is(conn.user, nobody);
  } finally {
    await busted.stop();
    server.close();
  }
});

kernelTest('a process that connects and exits within milliseconds keeps its comm, uid, ppid and exe; a copy named claude is labelled as the agent', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-agent-'));
  const claude = join(dir, 'claude');
  copyFileSync(PYTHON, claude);
  chmodSync(claude, 0o755);
  const server = await sink();
  const busted = await startBusted();
  try {
    // the client exits as soon as its connection is closed: long before busted reads /proc
    const client = await runClient(['exchange', '127.0.0.1', (server.address() as AddressInfo).port, 1, 0], claude);
    const conn = await connectOf(busted, client.pid);
    t.is(conn.comm, 'claude');
    t.is(conn.uid, client.uid);
    t.is(conn.ppid, process.pid);
    t.is(conn.exe, claude);
    t.like(conn.agent, { id: 'claude' });
  } finally {
    await busted.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
