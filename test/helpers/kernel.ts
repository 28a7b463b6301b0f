/**
 * Kernel tests run only as root on a kernel with BTF. Elsewhere they are skipped — unless
 * BUSTED_REQUIRE_KERNEL=1 (set by .ci/run), when each of them fails and says why.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';

function kernelUnavailable(): string | null {
  if (process.geteuid?.() !== 0) return 'kernel tests need root';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel tests need BTF at /sys/kernel/btf/vmlinux';
  return null;
}

export const KERNEL_UNAVAILABLE = kernelUnavailable();
const REQUIRED = process.env.BUSTED_REQUIRE_KERNEL === '1';

/** A serial kernel test: runs, fails (when required) or is skipped, never passes silently. */
export function kernelTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  if (KERNEL_UNAVAILABLE === null) {
    test.serial(title, fn);
  } else if (REQUIRED) {
    test.serial(title, (t) => t.fail(`${KERNEL_UNAVAILABLE} (BUSTED_REQUIRE_KERNEL=1)`));
  } else {
    test.skip(title, fn);
  }
}
