/**
 * `busted`: the headless agent. Parses flags, wires the engine to the printer, and owns the
 * process: only this file exits. Exit codes: 0 done, 1 runtime failure, 2 usage error.
 */
import meow from 'meow';
import { formatDoctor, runDoctor } from '../core/doctor.js';
import { startEngine, type Engine } from '../core/engine.js';
import { Store } from '../core/store.js';
import { Printer } from '../sinks/printer.js';
import { describeError, usageError, type Flags, validateFlags } from './options.js';

const cli = meow(
  `
  Usage
    $ sudo busted [options]        stream outbound connections and their bytes until Ctrl-C
    $ sudo busted doctor [--json]  check what this machine offers busted

  Options
    --format text|json   output format (default text); json starts with a session record
    --all                also show non-LLM TCP flows (until classification lands, everything is shown)
    --interval MS        how often byte counters are read and traffic records made (default 1000)
    --duration S         stop after S seconds
    --verbose            more fields per line (tid, gid, exe, cgroup, flow id) and traffic lines
    --json               (doctor) print the report as JSON
    --help               show this help
    --version            show the version

  Exit codes: 0 done, 1 runtime failure, 2 usage error.
  When busted exits or is killed, the kernel detaches its programs: traffic is never blocked by a dead busted.

  Examples
    $ sudo busted --format json | jq 'select(.type=="close")'
    $ sudo busted --duration 60 --verbose
`,
  {
    importMeta: import.meta,
    allowUnknownFlags: true,
    flags: {
      format: { type: 'string', default: 'text' },
      all: { type: 'boolean', default: false },
      interval: { type: 'number', default: 1000 },
      duration: { type: 'number' },
      verbose: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  },
);

async function main(): Promise<number> {
  const known = new Set(['format', 'all', 'interval', 'duration', 'verbose', 'json', 'help', 'version']);
  const unknown = Object.keys(cli.flags).find((k) => !known.has(k));
  if (unknown) throw usageError(`unknown option --${unknown.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  const [command, ...extra] = cli.input;
  if (extra.length > 0) throw usageError(`unexpected argument ${extra[0]}`);
  if (command === 'doctor') {
    const report = await runDoctor();
    process.stdout.write(cli.flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`);
    return report.ok ? 0 : 1;
  }
  if (command !== undefined) throw usageError(`unknown command ${command} (commands: doctor)`);
  const flags: Flags = validateFlags(cli.flags);
  return runHeadless(flags);
}

async function runHeadless(flags: Flags): Promise<number> {
  const store = new Store();
  const out = new StdoutLines();
  const printer = new Printer({ format: flags.format, verbose: flags.verbose, all: true, write: (l) => out.write(l) });
  store.onRecord((rec) => printer.handle(rec));
  const warn = (msg: string) => process.stderr.write(`busted: ${msg}\n`);

  let engine: Engine | null = null;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));
  const stop = async (code: number) => {
    const e = engine;
    engine = null;
    if (e) await e.stop();
    await out.flush();
    finish(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));
  process.once('SIGHUP', () => void stop(0));
  out.onBrokenPipe(() => void stop(0));

  engine = await startEngine(store, { all: flags.all, intervalMs: flags.interval, verbose: flags.verbose, onWarning: warn });
  if (flags.format === 'text') warn('attached; press Ctrl-C to stop');
  if (flags.duration !== undefined) setTimeout(() => void stop(0), flags.duration * 1000).unref();
  return done;
}

/** Line output to stdout that waits for the pipe to drain on exit and ends quietly on EPIPE. */
class StdoutLines {
  private broken = false;
  private onBroken: () => void = () => {};

  constructor() {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') {
        this.broken = true;
        this.onBroken();
      }
    });
  }

  onBrokenPipe(fn: () => void): void {
    this.onBroken = fn;
  }

  write(line: string): void {
    if (!this.broken) process.stdout.write(`${line}\n`);
  }

  flush(): Promise<void> {
    if (this.broken || process.stdout.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => process.stdout.write('', () => resolve()));
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const { message, code } = describeError(err);
    process.stderr.write(`busted: ${message}\n`);
    process.exit(code);
  },
);
