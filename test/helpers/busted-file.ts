/**
 * `busted --format json` with its stdout going to a file, for the load tests. Node writes to a
 * pipe asynchronously: a reader slower than busted (a test process parsing 40k lines/s on a busy
 * 2-CPU machine) makes busted's output queue up in busted's memory and every record arrive
 * seconds late. A file is written synchronously, so what is in the file is what busted said, when
 * it said it; the test looks at it without parsing every line while the load runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EventRecord } from '../../src/core/records.js';
import { BUSTED_BIN } from './busted.js';

export interface FileBusted {
  child: ChildProcess;
  pid: number;
  file: string;
  stderr: () => string;
  /** Bytes busted wrote to the file so far. */
  size(): number;
  /** Text written since byte `from`. */
  readFrom(from: number): string;
  /** Every record in the file now (whole lines only). */
  records(): EventRecord[];
  /** SIGINT, then the exit code. */
  stop(): Promise<number | null>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `busted --format json --all ARGS` writing to a file; resolves after its session record. */
export async function startBustedToFile(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<FileBusted> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-out-'));
  const file = path.join(dir, 'out.jsonl');
  const fd = fs.openSync(file, 'w');
  const child = spawn(process.execPath, [BUSTED_BIN, '--format', 'json', '--all', ...args], { stdio: ['ignore', fd, 'pipe'], env: { ...process.env, ...env } });
  fs.closeSync(fd); // the child has its own copy
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = once(child, 'exit');
  const readFrom = (from: number) => {
    const h = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(h).size;
      const buf = Buffer.alloc(Math.max(0, size - from));
      fs.readSync(h, buf, 0, buf.length, from);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(h);
    }
  };
  const run: FileBusted = {
    child,
    pid: child.pid ?? 0,
    file,
    stderr: () => err,
    size: () => fs.statSync(file).size,
    readFrom,
    records() {
      const text = readFrom(0);
      return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map((l) => JSON.parse(l) as EventRecord);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited;
      const code = child.exitCode;
      return code;
    },
  };
  process.once('exit', () => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 30_000;
  while (!readFrom(0).includes('\n')) {
    if (child.exitCode !== null) throw new Error(`busted exited (code ${child.exitCode}) before attaching: ${err.trim()}`);
    if (Date.now() > deadline) throw new Error(`busted printed no session record within 30 s: ${err.trim()}`);
    await sleep(20);
  }
  const first = JSON.parse(readFrom(0).split('\n')[0]!) as EventRecord;
  if (first.type !== 'session') throw new Error(`busted's first record is ${first.type}, not session`);
  return run;
}

/** Waits until the file has not grown for `quietMs`, at most `timeoutMs`. */
export async function waitQuiet(b: FileBusted, quietMs = 1000, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let size = b.size();
  let since = Date.now();
  while (Date.now() < end) {
    await sleep(100);
    const s = b.size();
    if (s !== size) {
      size = s;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
  }
  throw new Error(`busted's output kept growing for ${timeoutMs} ms`);
}
