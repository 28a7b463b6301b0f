/**
 * `fn` with its answers kept by argument, for pure functions asked about the same few values over
 * and over (each connection's destination address): at most `max` are kept, all dropped when full.
 */
export function memo<K, V>(fn: (key: K) => V, max = 4096): (key: K) => V {
  const kept = new Map<K, V>();
  return (key: K): V => {
    if (kept.has(key)) return kept.get(key) as V;
    const v = fn(key);
    if (kept.size >= max) kept.clear();
    kept.set(key, v);
    return v;
  };
}
