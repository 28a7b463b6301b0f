/**
 * Loopback connection load for the kernel e2e tests: bench/churn.c (connect, send 64 B, receive
 * 64 B, read the server's FIN, close), compiled once per test process into a temporary folder.
 * Each churn process prints its own pid and how many connections it made, so a test can count
 * the records of exactly those processes.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './busted.js';

export interface ChurnResult {
  pid: number;
  connections: number;
  failed: number;
  incomplete: number;
  firstError: string;
  seconds: number;
  cps: number;
}

let binary: string | null = null;

/** The compiled churn binary (cc -O2); throws one sentence when there is no C compiler. */
export function churnBinary(): string {
  if (binary && fs.existsSync(binary)) return binary;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-churn-'));
  const out = path.join(dir, 'churn');
  try {
    execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', out, `${ROOT}bench/churn.c`], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`cannot build bench/churn.c with cc (install gcc): ${(err as Error).message}`);
  }
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  binary = out;
  return out;
}

export interface ChurnOptions {
  seconds: number;
  /** Stop after this many connections (default: unbounded). */
  max?: number;
  /** Pin both threads to this CPU (default: unpinned). */
  cpu?: number;
  /** Connections per second at most (default: as fast as possible). */
  rate?: number;
}

/** Runs one churn process to completion; rejects if it fails or outlives its time by 30 s. */
export function runChurn(opts: ChurnOptions): Promise<ChurnResult> {
  const args = [String(opts.seconds), String(opts.max ?? 100_000_000), '4', String(opts.cpu ?? -1), String(opts.rate ?? 0)];
  return new Promise((resolve, reject) => {
    execFile(churnBinary(), args, { timeout: (opts.seconds + 30) * 1000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      if (err || !line.startsWith('{')) {
        reject(new Error(`churn ${args.join(' ')} failed: ${err?.message ?? ''} ${stderr.trim()} ${line}`));
        return;
      }
      resolve(JSON.parse(line) as ChurnResult);
    });
  });
}

/** `n` churn processes at once. */
export function runChurns(n: number, opts: ChurnOptions): Promise<ChurnResult[]> {
  return Promise.all(Array.from({ length: n }, () => runChurn(opts)));
}
