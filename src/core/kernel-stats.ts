/** Kernel-side numbers, as the engine reports them (metrics read them at scrape time). */
export interface KernelStats {
  /** Events the kernel could not deliver since busted started (monotonic). */
  lost: number;
  /** Connections the kernel could not track because it had no room for them: no free counter slot among their candidates and the overflow hashes full (monotonic). */
  untracked?: number;
  /** Tracked TCP connections whose end no hook saw, finished by the census (monotonic): reported closes get endUnseen. */
  unseen?: number;
  /** The same by the TCP state the census last met each connection in (`ESTABLISHED`, `CLOSE_WAIT`, …; `none`: never met). */
  unseenByState?: Record<string, number>;
  /**
   * Network namespaces (of processes with open flows) the last census could not walk: entering
   * another namespace needs CAP_SYS_ADMIN, and at most CENSUS_NETNS_MAX are walked.
   */
  unreachableNamespaces?: number;
  /** Payload samples (DNS answers, TLS ClientHellos) skipped because they did not parse, by why (monotonic). */
  skippedSamples?: Record<string, number>;
  /** Bytes waiting in the ring buffer, and its size. */
  ringbufUsedBytes?: number;
  ringbufSizeBytes?: number;
  /** Fill levels of the kernel maps. */
  maps: { name: string; entries: number; max: number }[];
}
