// The terminal tests drive busted-top in tmux and read the screen against timeouts: they run after
// the main suite, one file at a time, so the kernel tests' bursts (hundreds of connections, a
// 16k-entry bpftool batch) cannot starve the terminal they are reading. `npm test` runs the main
// suite, then these, then the load tests.
export default {
  extensions: { ts: 'module', tsx: 'module' },
  nodeArguments: ['--import=tsx'],
  files: ['test/e2e/tui-*.test.ts'],
  timeout: '120s',
  concurrency: 1,
  workerThreads: false,
};
