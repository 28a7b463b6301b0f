/**
 * Runs the real `busted` CLI as a child process and collects its JSON records, and runs the
 * real test client (test/helpers/client.py) as another process. Used by the kernel e2e tests.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { EventRecord } from '../../src/core/records.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BUSTED_BIN = `${ROOT}bin/busted.js`;
export const CLIENT = `${ROOT}test/helpers/client.py`;

export interface BustedRun {
  child: ChildProcessWithoutNullStreams;
  records: EventRecord[];
  stderr: () => string;
  /** Resolves with the first record matching `pred`, waiting up to `timeoutMs`. */
  waitFor<T extends EventRecord>(pred: (r: EventRecord) => r is T, timeoutMs?: number): Promise<T>;
  waitFor(pred: (r: EventRecord) => boolean, timeoutMs?: number): Promise<EventRecord>;
  /** SIGINT, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `busted --format json` (with `--all` unless `all: false`) and waits for its session record. */
export async function startBusted(args: string[] = [], env: NodeJS.ProcessEnv = {}, opts: { all?: boolean } = {}): Promise<BustedRun> {
  const all = opts.all === false ? [] : ['--all'];
  const child = spawn(process.execPath, [BUSTED_BIN, '--format', 'json', ...all, ...args], {
    env: { ...process.env, ...env },
  });
  const records: EventRecord[] = [];
  const waiters = new Set<() => void>();
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  createInterface({ input: child.stdout }).on('line', (line) => {
    records.push(JSON.parse(line) as EventRecord);
    for (const w of waiters) w();
  });
  const exited = once(child, 'exit');
  const waitFor = (pred: (r: EventRecord) => boolean, timeoutMs = 10_000): Promise<EventRecord> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const hit = records.find(pred);
        if (!hit) return false;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching record within ${timeoutMs} ms; busted stderr: ${err.trim()}; records: ${records.length}`));
      }, timeoutMs);
      if (!check()) waiters.add(check);
      void exited.then(() => {
        if (waiters.has(check) && !check()) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`busted exited (code ${child.exitCode}) before a matching record; stderr: ${err.trim()}`));
        }
      });
    });
  const run: BustedRun = {
    child,
    records,
    stderr: () => err,
    waitFor: waitFor as BustedRun['waitFor'],
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited;
      // what busted wrote before it exited (its stop's last records) is all in `records` by then
      if (!child.stdout.closed) await once(child.stdout, 'close');
      return child.exitCode;
    },
  };
  await run.waitFor((r) => r.type === 'session', 30_000);
  return run;
}

export interface ClientResult {
  pid: number;
  uid: number;
  comm: string;
  [key: string]: unknown;
}

/** Runs the python test client in its own process; resolves with its JSON report. */
export async function runClient(args: (string | number)[], python = 'python3'): Promise<ClientResult> {
  const child = spawn(python, [CLIENT, ...args.map(String)]);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`client ${args.join(' ')} exited ${code}: ${err}`);
  return JSON.parse(out.trim().split('\n').pop()!) as ClientResult; // its last line (`idle` prints one when ready)
}

/**
 * Starts the python test client with a mode that prints a line once connected (`idle`, `stream`,
 * ...; `prefix`: a command to run it under, e.g. unshare); resolves with that first line while
 * the client goes on, and `done` with its last.
 */
export async function readyClient(args: (string | number)[], prefix: string[] = []) {
  const [cmd, ...rest] = [...prefix, 'python3', CLIENT, ...args.map(String)];
  const child = spawn(cmd!, rest);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = JSON.parse((await lines.next()).value as string) as { pid: number; sport: number; port: number };
  const done = (async () => JSON.parse((await lines.next()).value as string) as Record<string, unknown>)();
  return { ...first, child, done };
}
