/**
 * `busted-top`: the terminal UI, live (root) or from a recording (`--replay FILE`). This file
 * parses flags and owns the process (only it exits); the wiring lives in top-run.tsx and is
 * loaded after the flags are checked, so usage errors and --help answer at once.
 * Exit codes: 0 done, 1 runtime failure, 2 usage error.
 */
import meow from 'meow';
import { privilegeStatus } from '../bpf/preflight.js';
import { closeAllRecorders } from '../sinks/recorder.js';
import { parseSinkFlags, SINK_CLI_FLAGS } from '../sinks/wire.js';
import { ReplayError } from '../sinks/recording.js';
import { describeError, UsageError } from './options.js';
import { FullScreen } from './terminal.js';
import { NEED_ROOT, validateTopFlags } from './top-options.js';

const HELP = `
  Usage
    $ sudo busted-top [options]               watch live LLM traffic per process
    $ busted-top --replay FILE [--speed N]    the same screen from a recording (no root needed)

  Options
    --replay FILE    play a JSONL recording (e.g. examples/demo.jsonl) with its original timing
    --speed N        replay N times faster (default 1)
    --interval MS    screen refresh interval (default 1000)
    --record FILE    also write every record to FILE (JSON lines, mode 0600)
    --all            start with all traffic shown, not only LLM traffic (key t toggles)
    --providers FILE extra or overriding provider catalog entries (YAML or JSON)
    --policy FILE    block/audit rules for LLM traffic (YAML or JSON)
    --enforce        block verdicts really block (EPERM); without it they are audit-only
    --metrics [HOST:]PORT  serve Prometheus metrics (default host 127.0.0.1)
    --otlp URL       send every record as an OpenTelemetry log (OTLP/HTTP)
    --record-max-size SIZE, --record-keep N, --record-flush MS, --record-fsync  recording rotation
    --help           show this help
    --version        show the version

  Keys: arrows/j/k move, s/</> sort, r reverse, / filter, Enter detail, x kill, b block,
  a audit, Space pause, t all/LLM, ? help, q quit.
  Exit codes: 0 done, 1 runtime failure, 2 usage error, 130/143 a second SIGINT/SIGTERM while starting.
`;

const cli = meow(HELP, {
  importMeta: import.meta,
  allowUnknownFlags: true,
  flags: {
    replay: { type: 'string' },
    speed: { type: 'number' },
    interval: { type: 'number' },
    record: { type: 'string' },
    all: { type: 'boolean' },
    providers: { type: 'string' },
    policy: { type: 'string' },
    enforce: { type: 'boolean' },
    ...SINK_CLI_FLAGS,
  },
});

/** The one full screen of this process: every exit path restores it before saying anything. */
const screen = new FullScreen();

async function main(): Promise<number> {
  const flags = validateTopFlags(cli.flags, cli.input);
  const sinkFlags = parseSinkFlags(cli.flags, 'busted-top');
  // live needs what busted needs to load its programs: root, or the capabilities (as busted checks)
  if (flags.replay === null && !privilegeStatus().ok) {
    process.stderr.write(`busted-top: ${NEED_ROOT}\n`);
    return 1;
  }
  // Ink draws no interactive frames when it believes it runs in CI (CI=1 in the environment);
  // busted-top only ever runs on a terminal (top-run checks), so that guess does not apply.
  delete process.env.CI;
  delete process.env.CONTINUOUS_INTEGRATION;
  const { runTop } = await import('./top-run.js');
  return runTop(flags, screen, sinkFlags);
}

function fail(err: unknown): never {
  screen.restore();
  closeAllRecorders();
  const { message, code } = err instanceof ReplayError ? { message: err.message, code: 1 } : describeError(err);
  process.stderr.write(`busted-top: ${message}\n`);
  process.exit(err instanceof UsageError ? 2 : code);
}

process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

main().then((code) => process.exit(code), fail);
