/**
 * Signals while busted stops (no root: a replay). The first SIGINT stops busted in order; a
 * second one while that stop waits (here on an OpenTelemetry collector that accepts connections
 * and never answers: up to 3 s) exits at once with 130, and the recording is whole.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseRecording } from '../../src/sinks/replay.js';
import { BUSTED_BIN, ROOT } from '../helpers/busted.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a second SIGINT while busted stops exits at once (130), the recording closed whole', async (t) => {
  const held: net.Socket[] = [];
  const collector = net.createServer((s) => void held.push(s)); // reads nothing, answers nothing
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of held) s.destroy();
    collector.close();
  });
  const port = (collector.address() as net.AddressInfo).port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-signals-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'rec.jsonl');
  const child = spawn(process.execPath, [
    BUSTED_BIN, '--replay', `${ROOT}examples/demo.jsonl`, '--speed', '1', '--format', 'json',
    '--record', file, '--record-flush', '60000', '--otlp', `http://127.0.0.1:${port}/v1/logs`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  for (let i = 0; i < 200 && stdout.split('\n').length < 3; i++) await sleep(50); // session and the first connect
  t.true(stdout.split('\n').length >= 3, `busted printed: ${stdout} ${stderr}`);

  child.kill('SIGINT');
  await sleep(500); // stopping: waiting for the collector
  t.is(child.exitCode, null, 'busted was still stopping (waiting on the collector)');
  const second = performance.now();
  child.kill('SIGINT');
  const [code, signal] = await exited;
  const after = performance.now() - second;
  t.is(signal, null, 'busted was killed by the signal instead of exiting');
  t.is(code, 130, stderr);
  t.true(after < 1000, `busted took ${after.toFixed(0)} ms to exit after the second SIGINT`);
  t.regex(stderr, /SIGINT again: exiting without waiting for the stop to finish/);

  const rec = parseRecording(fs.readFileSync(file, 'utf8'));
  t.deepEqual(rec.problems, []);
  t.false(rec.truncatedLastLine);
  const printed = stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; ts: string });
  t.deepEqual(rec.records.map((r) => [r.type, r.ts]), printed.map((r) => [r.type, r.ts]), 'the recording holds what was printed');
});
