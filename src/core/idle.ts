/**
 * When to run the kernel's idle-connection iterator (KernelProbe.announceIdle). With the cgroup
 * programs a TCP connection is announced at its first send or receive; one that moves no byte
 * would otherwise be seen only at its close. Each counter scan lists the slots not announced
 * yet: almost always connections between their connect() and their first byte, gone by the next
 * scan. A slot still unannounced after `minAgeMs` (less a fifth: the scans' timer is not exact)
 * makes the iterator run, at most once per `minAgeMs`; a socket it cannot announce yet (still connecting, or a UDP socket that never
 * sent, which the iterator does not see) asks again after twice its age, so it costs a
 * logarithmic number of runs, not one a second.
 */
export class IdleSweep {
  /** Unannounced cookies: when first seen, and when they may ask for a run. */
  private seen = new Map<bigint, { first: number; next: number }>();
  private lastRun = -Infinity;
  /** Scans come on a timer that runs late or early by a little: a run is not put off a whole scan for that. */
  private readonly slackMs: number;

  constructor(private readonly minAgeMs = 1000) {
    this.slackMs = minAgeMs / 5;
  }

  /**
   * The cookies a scan found unannounced at `now` (ms). When the iterator should run now: the
   * positions (in `cookies`) of those that asked for it (their owners' network namespaces are
   * the ones to look in); else null.
   */
  due(cookies: readonly bigint[], now: number): number[] | null {
    const next = new Map<bigint, { first: number; next: number }>();
    let due = false;
    const at = now + this.slackMs;
    for (const c of cookies) {
      const s = this.seen.get(c) ?? { first: now, next: now + this.minAgeMs };
      next.set(c, s);
      if (at >= s.next) due = true;
    }
    this.seen = next;
    if (!due || at - this.lastRun < this.minAgeMs) return null;
    this.lastRun = now;
    const asked: number[] = [];
    for (let i = 0; i < cookies.length; i++) {
      const s = next.get(cookies[i]!)!;
      if (at < s.next) continue;
      s.next = now + Math.max(this.minAgeMs, now - s.first);
      asked.push(i);
    }
    return asked;
  }

  /** How many unannounced sockets are being watched (for tests and stats). */
  get watched(): number {
    return this.seen.size;
  }
}
