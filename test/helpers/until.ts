/** Polls `get` every 20 ms until it gives a value (not null, undefined or false); throws after `ms`. */
export async function until<T>(what: string, ms: number, get: () => T | null | undefined | false): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
