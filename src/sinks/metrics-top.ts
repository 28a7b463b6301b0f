/**
 * Per-process byte counters for at most N process identities, everything else in "other",
 * such that no exported counter ever goes backwards:
 * - a process gets its own series at its first bytes while fewer than N have one; otherwise it
 *   is `pending` and its bytes go to "other";
 * - on a rebalance (each scrape) the busiest pending processes are promoted into free slots, or
 *   displace a tracked process that moved less than half as much (a decayed score), and count
 *   from then on in their own series;
 * - a tracked process that goes idle, exits or is displaced is `folded`: its series' totals
 *   move into "other" and it never gets a series again (a returning series would look like a
 *   counter reset to Prometheus, or double-count).
 * A label set (pid, comm, user, agent) has at most one lifetime as a series: a reused pid with the
 * same comm stays in "other". So every exported counter only grows, and for each provider and
 * direction the sum over all series equals the bytes seen.
 */

export interface ProcLabels {
  pid: number;
  comm: string;
  user: string;
  agent: string;
}

export interface ProcSeries {
  labels: { pid: string; comm: string; user: string; agent: string; provider: string; direction: 'tx' | 'rx' };
  value: number;
}

interface Dir {
  tx: number;
  rx: number;
}

interface Proc {
  labels: ProcLabels;
  state: 'pending' | 'tracked' | 'folded';
  /** Bytes by provider since promotion (tracked only). */
  bytes: Map<string, Dir>;
  /** Providers it moved bytes with: a new series starts at 0 for each (so rate() sees its first bytes). */
  providers: Set<string>;
  total: number;
  rankedAt: number;
  score: number;
  open: number;
  lastActivity: number;
}

/** Entries kept for processes without a series (their bytes are already in "other"). */
const MAX_PROCS = 50_000;
/** Label sets whose series ended, remembered so that none of them comes back (a reset). */
const MAX_RETIRED = 10_000;
const DECAY = 0.5;

function add(map: Map<string, Dir>, provider: string, tx: number, rx: number): void {
  const d = map.get(provider);
  if (d) {
    d.tx += tx;
    d.rx += rx;
  } else {
    map.set(provider, { tx, rx });
  }
}

const labelKey = (l: ProcLabels): string => `${l.pid}\0${l.comm}\0${l.user}\0${l.agent}`;

export class ProcessTop {
  private readonly procs = new Map<string, Proc>();
  private readonly other = new Map<string, Dir>();
  private tracked = 0;
  private readonly retired = new Set<string>();
  /** Label sets with a series now. */
  private readonly live = new Set<string>();

  constructor(private readonly n: number, private readonly idleMs: number) {}

  /** A connect by this process identity. */
  seen(key: string, labels: ProcLabels, now: number): void {
    const p = this.procs.get(key);
    if (p) {
      if (p.state !== 'tracked') p.labels = labels;
      p.lastActivity = now;
      return;
    }
    if (this.procs.size >= MAX_PROCS) this.forgetUntracked();
    this.procs.set(key, { labels, state: 'pending', bytes: new Map(), providers: new Set(), total: 0, rankedAt: 0, score: 0, open: 0, lastActivity: now });
  }

  /** Identity details learned later (a process record); frozen once the process has a series. */
  identity(key: string, change: { user: string | null; agent: string | null }): void {
    const p = this.procs.get(key);
    if (!p || p.state === 'tracked') return;
    if (change.user !== null) p.labels.user = change.user;
    if (change.agent !== null) p.labels.agent = change.agent;
  }

  opened(key: string): void {
    const p = this.procs.get(key);
    if (p) p.open++;
  }

  closed(key: string, now: number): void {
    const p = this.procs.get(key);
    if (!p) return;
    p.open = Math.max(0, p.open - 1);
    p.lastActivity = now;
  }

  bytes(key: string, provider: string, tx: number, rx: number, now: number): void {
    const p = this.procs.get(key);
    if (!p) {
      add(this.other, provider, tx, rx);
      return;
    }
    // While a slot is free a process gets its series at its first bytes, so it counts them all.
    if (p.state === 'pending' && this.tracked < this.n && this.promotable(p)) this.promote(p);
    p.total += tx + rx;
    p.lastActivity = now;
    p.providers.add(provider);
    add(p.state === 'tracked' ? p.bytes : this.other, provider, tx, rx);
  }

  /** Retires idle processes and promotes the busiest pending ones. */
  rebalance(now: number): void {
    const tracked: Proc[] = [];
    const pending: Proc[] = [];
    for (const [key, p] of this.procs) {
      if (p.open === 0 && now - p.lastActivity >= this.idleMs) {
        if (p.state === 'tracked') this.fold(p);
        this.procs.delete(key);
        continue;
      }
      p.score = p.score * DECAY + (p.total - p.rankedAt);
      p.rankedAt = p.total;
      if (p.state === 'tracked') tracked.push(p);
      else if (p.state === 'pending' && p.score > 0 && this.promotable(p)) pending.push(p);
    }
    pending.sort((a, b) => b.score - a.score);
    tracked.sort((a, b) => a.score - b.score);
    for (const c of pending) {
      if (this.tracked < this.n) {
        this.promote(c);
        continue;
      }
      const low = tracked[0];
      if (!low || c.score <= 2 * low.score) break;
      tracked.shift();
      this.fold(low);
      this.promote(c);
    }
  }

  /** The series to export now: one per tracked process, provider and direction, plus "other". */
  *series(): Generator<ProcSeries> {
    for (const p of this.procs.values()) {
      if (p.state !== 'tracked') continue;
      const base = { pid: String(p.labels.pid), comm: p.labels.comm, user: p.labels.user, agent: p.labels.agent };
      for (const [provider, d] of p.bytes) {
        yield { labels: { ...base, provider, direction: 'tx' }, value: d.tx };
        yield { labels: { ...base, provider, direction: 'rx' }, value: d.rx };
      }
    }
    for (const [provider, d] of this.other) {
      const base = { pid: '', comm: 'other', user: '', agent: '', provider };
      yield { labels: { ...base, direction: 'tx' }, value: d.tx };
      yield { labels: { ...base, direction: 'rx' }, value: d.rx };
    }
  }

  /** A label set that had a series before (a reused pid with the same comm) never gets one again. */
  private promotable(p: Proc): boolean {
    const key = labelKey(p.labels);
    return !this.retired.has(key) && !this.live.has(key);
  }

  private promote(p: Proc): void {
    // A pid is reused only after its process exited: the older identity's series ends first,
    // so two identities never share one label set.
    for (const q of this.procs.values()) {
      if (q !== p && q.state === 'tracked' && q.labels.pid === p.labels.pid) this.fold(q);
    }
    p.state = 'tracked';
    p.bytes = new Map([...p.providers].map((provider) => [provider, { tx: 0, rx: 0 }]));
    p.labels = { ...p.labels };
    this.live.add(labelKey(p.labels));
    this.tracked++;
  }

  private fold(p: Proc): void {
    if (p.state !== 'tracked') return;
    for (const [provider, d] of p.bytes) add(this.other, provider, d.tx, d.rx);
    p.bytes = new Map();
    p.state = 'folded';
    this.tracked--;
    const key = labelKey(p.labels);
    this.live.delete(key);
    if (this.retired.size >= MAX_RETIRED) this.retired.delete(this.retired.values().next().value as string);
    this.retired.add(key);
  }

  /** Drops the oldest half of the entries without a series (safe: their bytes are in "other"). */
  private forgetUntracked(): void {
    let drop = Math.floor(this.procs.size / 2);
    for (const [key, p] of this.procs) {
      if (drop <= 0) break;
      if (p.state === 'tracked') continue;
      this.procs.delete(key);
      drop--;
    }
  }
}
