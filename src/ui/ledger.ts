/**
 * Per-provider accounting for the breakdown, from the snapshot's provider totals (the flow
 * table keeps them, closed flows it has forgotten included), and the provider rates sampled
 * each tick for the sparklines. Pure: every function returns new values and never mutates its input.
 */
import type { ProviderTotal } from '../core/flows.js';

/** The key used for flows whose provider is not (yet) known. */
export const UNCLASSIFIED = 'unclassified';

/** One provider's bytes, connections and current rate (tx + rx, bytes per second). */
export type ProviderTotals = Omit<ProviderTotal, 'provider'>;

export interface ProviderLedger {
  providers: ReadonlyMap<string, ProviderTotals>;
}

export interface RateSample {
  at: number;
  rates: ReadonlyMap<string, number>;
}

export const HISTORY_MS = 60_000;

export const EMPTY_LEDGER: ProviderLedger = { providers: new Map() };

/** The ledger of a snapshot's provider totals. */
export function ledgerOf(totals: readonly ProviderTotal[]): ProviderLedger {
  const providers = new Map<string, ProviderTotals>();
  for (const t of totals) {
    providers.set(t.provider ?? UNCLASSIFIED, { bytes: t.bytes, connections: t.connections, rate: t.rate });
  }
  return { providers };
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
