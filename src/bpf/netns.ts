/**
 * Running a call inside another process's network namespace, on this thread only: what makes a
 * kernel object bound to "the caller's namespace" (a TCP socket iterator) for a container's
 * sockets. The thread goes back to its own namespace before the call returns, whatever happens.
 */
import { closeSync, openSync, statSync } from 'node:fs';
import koffi from 'koffi';
import { libc } from './libbpf.js';

const CLONE_NEWNET = 0x40000000;
const OWN = '/proc/thread-self/ns/net';

/** The network namespace of process `pid` (its inode), or null when it is gone or unreadable. */
export function netnsOf(pid: number): bigint | null {
  try {
    return statSync(`/proc/${pid}/ns/net`, { bigint: true }).ino;
  } catch {
    return null;
  }
}

/** This thread's network namespace (its inode). */
export const ownNetns = (): bigint => statSync(OWN, { bigint: true }).ino;

/**
 * Runs `fn` in the network namespace of process `pid` (the caller has checked it is not this
 * thread's own: netnsOf, ownNetns); false without calling it when that process is gone or its
 * namespace cannot be entered. Throws if this thread could not go back to its own namespace
 * (never seen: it holds its own namespace open throughout).
 */
export function inNetnsOf(pid: number, fn: () => void): boolean {
  let target: number;
  try {
    target = openSync(`/proc/${pid}/ns/net`, 'r');
  } catch {
    return false;
  }
  let own = -1;
  try {
    own = openSync(OWN, 'r');
    if ((libc().setns(target, CLONE_NEWNET) as number) !== 0) return false; // e.g. not allowed: left alone
    try {
      fn();
    } finally {
      if ((libc().setns(own, CLONE_NEWNET) as number) !== 0) {
        throw new Error(`could not return to busted's own network namespace (errno ${koffi.errno()})`);
      }
    }
    return true;
  } finally {
    closeSync(target);
    if (own >= 0) closeSync(own);
  }
}
