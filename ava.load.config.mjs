// The load tests (a 10x ring-buffer overload, a 200k-connection soak) saturate both CPUs of a
// small machine: they run after the rest of the suite, on their own, so no other test is starved
// by them. `npm test` runs the main suite, then this one.
export default {
  extensions: { ts: 'module', tsx: 'module' },
  nodeArguments: ['--import=tsx'],
  files: ['test/e2e/kernel-overload.test.ts', 'test/e2e/kernel-soak.test.ts'],
  timeout: '180s',
  serial: true,
  concurrency: 1,
  workerThreads: false,
};
