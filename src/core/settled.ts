/**
 * Waiting for something that may never finish (a collector that does not answer, a directory on
 * a mount that hangs), for at most a given time.
 */

/**
 * Resolves once `p` settles (fulfilled or rejected: a rejection is not rethrown) or after `ms`,
 * whichever comes first. With `unref`, the timer does not keep the process alive (a stop that
 * nothing else holds up may then end before the limit).
 */
export function settled(p: Promise<unknown>, ms: number, opts: { unref?: boolean } = {}): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (opts.unref) timer.unref();
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    p.then(done, done);
  });
}
