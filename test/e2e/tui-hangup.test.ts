/**
 * busted-top and SIGHUP (root, real terminal through tmux): a SIGHUP sent while the terminal is
 * there (logrotate) reopens the recording and busted-top keeps running; a terminal that hangs up
 * (tmux gone) ends busted-top. Loopback only.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { hangupAction } from '../../src/cli/top-run.js';
import type { ConnectRecord } from '../../src/core/records.js';
import { parseRecording } from '../../src/sinks/replay.js';
import { ROOT } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { Tmux } from '../helpers/tmux.js';
import test from 'ava';

test('hangupAction: reopen while the terminal is there, quit when it hung up', (t) => {
  t.is(hangupAction(true), 'reopen');
  t.is(hangupAction(false), 'quit');
});

/** The pid of busted-top: the one child of the pane's shell (`env` execs node, which names itself busted-top). */
function bustedTopPid(tm: Tmux): number {
  const shell = tm.format('pane_pid');
  const out = execFileSync('ps', ['-o', 'pid=', '--ppid', shell], { encoding: 'utf8' }).trim().split(/\s+/);
  if (out.length !== 1 || !/^\d+$/.test(out[0]!)) throw new Error(`not one child of the pane's shell ${shell}: ${out.join(' ')}`);
  return Number(out[0]);
}

/** One loopback connection from a separate process (busted ignores its own sockets); resolves with its pid. */
async function connectOnce(port: number): Promise<number> {
  const script = `import os,socket\ns=socket.create_connection(("127.0.0.1",${port}))\ns.sendall(b"hello")\ns.recv(16)\ns.close()\nprint(os.getpid())`;
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`the client exited ${code}`);
  return Number(out.trim());
}

async function waitUntil(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const connectsOf = (file: string, pid: number): ConnectRecord[] => {
  if (!fs.existsSync(file)) return [];
  return parseRecording(fs.readFileSync(file, 'utf8')).records.filter((r): r is ConnectRecord => r.type === 'connect' && r.pid === pid);
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

kernelTest('busted-top: SIGHUP reopens the recording (moved away by logrotate) and keeps running; a terminal hangup ends it', async (t) => {
  const server = net.createServer((sock) => sock.on('data', (d) => sock.end(d)).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-hup-'));
  const recording = path.join(dir, 'top.jsonl');
  const tm = new Tmux('hangup');
  let tmuxGone = false;
  t.teardown(() => {
    if (!tmuxGone) tm.kill();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const run = `env CI=true ${process.execPath} ${ROOT}bin/busted-top.js --all --interval 500 --record ${recording}`;
  tm.start(`sh -c '${run}; echo "EXIT=$?"; sleep 60'`, 100, 30);
  await tm.waitFor((s) => /^busted-top {2}AUDIT {2}● REC/m.test(s) && /up \d+s/.test(s), 'busted-top attached', 30_000);
  const pid = bustedTopPid(tm);

  const before = await connectOnce(port);
  await waitUntil(() => connectsOf(recording, before).length === 1, 'the first connect in the recording');
  fs.renameSync(recording, `${recording}.1`); // what logrotate does
  process.kill(pid, 'SIGHUP');
  await new Promise((r) => setTimeout(r, 300));
  t.true(alive(pid), 'busted-top is still running after SIGHUP');
  t.notRegex(tm.text(), /EXIT=/);
  const after = await connectOnce(port);
  await waitUntil(() => connectsOf(recording, after).length === 1, 'the next connect in a new recording file');
  const fresh = parseRecording(fs.readFileSync(recording, 'utf8'));
  t.is(fresh.records[0]?.type, 'session', 'the new file starts with the session record');
  t.deepEqual(fresh.problems, []);
  t.is(connectsOf(recording, before).length, 0, 'the new file holds only what came after');
  t.is(connectsOf(`${recording}.1`, before).length, 1, 'the moved file kept what it had');
  t.is(connectsOf(`${recording}.1`, after).length, 0);
  await tm.waitFor((s) => /^busted-top {2}AUDIT {2}● REC/m.test(s), 'the UI still drawing');

  // the terminal goes away: the kernel hangs up the pty and sends SIGHUP; busted-top ends
  tm.kill();
  tmuxGone = true;
  await waitUntil(() => !alive(pid), 'busted-top to end after the terminal hung up', 10_000);
  const moved = parseRecording(fs.readFileSync(recording, 'utf8'));
  t.false(moved.truncatedLastLine, 'the recording ends with a whole line');
  t.true(connectsOf(recording, after).length === 1);
});

kernelTest('busted-top: SIGHUP re-reads --policy; a bad file keeps the policy in force; both said on the status line', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-hup-policy-'));
  const policy = path.join(dir, 'p.yaml');
  fs.writeFileSync(policy, 'rules:\n  - name: audit-curl\n    match: {comm: curl}\n    action: audit\n');
  const tm = new Tmux('hup-policy');
  t.teardown(() => {
    tm.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  tm.start(`sh -c 'env CI=true ${process.execPath} ${ROOT}bin/busted-top.js --interval 500 --policy ${policy}; echo "EXIT=$?"; sleep 60'`, 200, 30);
  await tm.waitFor((s) => /^busted-top {2}AUDIT/m.test(s) && /up \d+s/.test(s), 'busted-top attached', 30_000);
  const pid = bustedTopPid(tm);

  fs.writeFileSync(policy, 'rules:\n  - name: broken\n    action: explode\n');
  process.kill(pid, 'SIGHUP');
  const bad = (await tm.waitFor((s) => /policy in force is unchanged/.test(s), 'the refusal on the status line')).join('\n');
  t.regex(bad, /p\.yaml/, `the message names the file: ${bad}`);
  t.true(alive(pid));

  fs.writeFileSync(policy, 'rules:\n  - name: audit-wget\n    match: {comm: wget}\n    action: audit\n');
  process.kill(pid, 'SIGHUP');
  await tm.waitFor((s) => s.includes(`Reloaded the policy from ${policy}`), 'the reload on the status line');
  t.true(alive(pid), 'busted-top is still running');
  t.notRegex(tm.text(), /EXIT=/);
});

kernelTest('busted-top: SIGINT while the engine loads stops it once loaded (exit 0, recording whole); it is not killed midway', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-early-'));
  const recording = path.join(dir, 'top.jsonl');
  const tm = new Tmux('early-int');
  t.teardown(() => {
    tm.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  tm.start(`sh -c 'env CI=true ${process.execPath} ${ROOT}bin/busted-top.js --record ${recording} 2>&1; echo "EXIT=$?"; sleep 60'`, 200, 30);
  // the recording is opened before the engine loads (which takes a second or so): the signal comes during the load
  await waitUntil(() => fs.existsSync(recording), 'the recording to be opened', 20_000);
  const pid = bustedTopPid(tm);
  process.kill(pid, 'SIGINT');
  const text = (await tm.waitFor((s) => /EXIT=\d+/.test(s), 'busted-top to exit', 30_000)).join('\n');
  t.regex(text, /EXIT=0/, text);
  t.regex(text, /SIGINT while starting: stopped before the screen came up/, text);
  t.regex(text, new RegExp(`recorded \\d+ records to ${recording}`));
  const rec = parseRecording(fs.readFileSync(recording, 'utf8'));
  t.deepEqual(rec.problems, []);
  t.false(rec.truncatedLastLine);
  t.false(alive(pid));
});
