/**
 * Kernel tests run only as root on a kernel with BTF. Elsewhere they are skipped — unless
 * BUSTED_REQUIRE_KERNEL=1 (set by .ci/run), when each of them fails and says why.
 *
 * Every kernel test holds a lock on one file while it runs (flock(1)): shared normally, exclusive
 * for the load tests (overload, soak). Tracepoints see every socket on the machine, so a load
 * test running beside another file's kernel test (ava runs two files at once) would make that
 * test's busted lose records, and the other test's connections would blur the load test's counts.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function kernelUnavailable(): string | null {
  if (process.geteuid?.() !== 0) return 'kernel tests need root';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel tests need BTF at /sys/kernel/btf/vmlinux';
  return null;
}

export const KERNEL_UNAVAILABLE = kernelUnavailable();
const REQUIRED = process.env.BUSTED_REQUIRE_KERNEL === '1';
const LOCK_FILE = join(tmpdir(), 'busted-kernel-tests.lock');

export interface KernelTestOptions {
  /** No other kernel test runs meanwhile (a test that loads the whole machine). */
  exclusive?: boolean;
}

/**
 * Runs `fn` holding the lock. flock(1) holds it while its `cat` reads our stdin, so the lock goes
 * when we end stdin, or when this process dies (the pipe closes).
 */
async function withLock(exclusive: boolean, fn: () => Promise<void>): Promise<void> {
  const holder = spawn('flock', [exclusive ? '-x' : '-s', LOCK_FILE, '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const [spawnErr] = await Promise.race([once(holder.stdout, 'data'), once(holder, 'error'), once(holder, 'exit')]) as [unknown];
  if (spawnErr instanceof Error || holder.exitCode !== null) {
    throw new Error(`cannot take the kernel-test lock with flock(1) (util-linux): ${spawnErr instanceof Error ? spawnErr.message : `exit ${holder.exitCode}`}`);
  }
  try {
    await fn();
  } finally {
    holder.stdin.end();
    if (holder.exitCode === null) await once(holder, 'exit');
  }
}

/** A serial kernel test: runs, fails (when required) or is skipped, never passes silently. */
export function kernelTest(title: string, fn: (t: ExecutionContext) => Promise<void>, opts: KernelTestOptions = {}): void {
  if (KERNEL_UNAVAILABLE === null) {
    test.serial(title, (t) => withLock(opts.exclusive ?? false, () => fn(t)));
  } else if (REQUIRED) {
    test.serial(title, (t) => t.fail(`${KERNEL_UNAVAILABLE} (BUSTED_REQUIRE_KERNEL=1)`));
  } else {
    test.skip(title, fn);
  }
}
