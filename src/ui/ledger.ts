/**
 * Per-provider accounting for the breakdown. The flow table forgets closed flows after a
 * while, so the UI keeps its own running totals: on every tick it adds each flow's growth
 * since the previous tick to its provider, and samples the provider rates for the sparklines.
 * Pure: every function returns new values and never mutates its input.
 */
import type { Flow } from '../core/flows.js';

/** The key used for flows whose provider is not (yet) known. */
export const UNCLASSIFIED = 'unclassified';

export interface ProviderTotals {
  bytes: number;
  connections: number;
  /** Current rate (tx + rx), bytes per second. */
  rate: number;
}

interface SeenFlow {
  provider: string;
  bytes: number;
}

export interface ProviderLedger {
  providers: ReadonlyMap<string, ProviderTotals>;
  /** What was counted per flow at the previous tick (to compute growth and re-attribution). */
  seen: ReadonlyMap<string, SeenFlow>;
}

export interface RateSample {
  at: number;
  rates: ReadonlyMap<string, number>;
}

export const HISTORY_MS = 60_000;

export const EMPTY_LEDGER: ProviderLedger = { providers: new Map(), seen: new Map() };

const providerOf = (f: Flow): string => f.provider ?? UNCLASSIFIED;

export function updateLedger(ledger: ProviderLedger, flows: readonly Flow[]): ProviderLedger {
  const providers = new Map<string, ProviderTotals>();
  for (const [name, t] of ledger.providers) providers.set(name, { ...t, rate: 0 });
  const totals = (name: string): ProviderTotals => {
    let t = providers.get(name);
    if (!t) {
      t = { bytes: 0, connections: 0, rate: 0 };
      providers.set(name, t);
    }
    return t;
  };
  const seen = new Map<string, SeenFlow>();
  for (const f of flows) {
    const name = providerOf(f);
    const bytes = f.tx + f.rx;
    const before = ledger.seen.get(f.id);
    const t = totals(name);
    if (!before) {
      t.connections++;
      t.bytes += bytes;
    } else if (before.provider !== name) {
      // Classified since the last tick: move what was counted to the provider it now has.
      const old = totals(before.provider);
      old.connections = Math.max(0, old.connections - 1);
      old.bytes = Math.max(0, old.bytes - before.bytes);
      t.connections++;
      t.bytes += bytes;
    } else {
      t.bytes += Math.max(0, bytes - before.bytes);
    }
    t.rate += f.txRate + f.rxRate;
    // Unchanged entries are shared with the previous ledger (they are never mutated).
    seen.set(f.id, before && before.provider === name && before.bytes === bytes ? before : { provider: name, bytes });
  }
  for (const [name, t] of providers) if (t.connections === 0 && t.bytes === 0) providers.delete(name);
  return { providers, seen };
}

/** Adds a sample of the current provider rates and drops samples older than a minute. */
export function addSample(history: readonly RateSample[], ledger: ProviderLedger, at: number): RateSample[] {
  const rates = new Map<string, number>();
  for (const [name, t] of ledger.providers) rates.set(name, t.rate);
  const kept = history.filter((s) => at - s.at < HISTORY_MS && s.at <= at);
  kept.push({ at, rates });
  return kept;
}

/**
 * The rate of one provider over the last minute, in `buckets` equal time slots: the highest
 * sample in each slot; a slot without a sample (samples sparser than slots, as in a fast
 * replay) repeats the slot before it, since a rate holds until the next sample.
 */
export function rateSeries(history: readonly RateSample[], provider: string, buckets: number, at: number): number[] {
  const out = new Array<number | null>(Math.max(0, buckets)).fill(null);
  if (buckets <= 0) return [];
  const slot = HISTORY_MS / buckets;
  for (const s of history) {
    const age = at - s.at;
    if (age < 0 || age >= HISTORY_MS) continue;
    const i = buckets - 1 - Math.floor(age / slot);
    const v = s.rates.get(provider) ?? 0;
    out[i] = Math.max(out[i] ?? 0, v);
  }
  let held = 0;
  let seen = false;
  return out.map((v) => {
    if (v !== null) {
      held = v;
      seen = true;
      return v;
    }
    return seen ? held : 0;
  });
}
