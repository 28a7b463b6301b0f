/**
 * `busted`: the headless agent. Parses flags, wires the engine to the printer, and owns the
 * process: only this file exits. Exit codes: 0 done, 1 runtime failure, 2 usage error.
 */
import meow from 'meow';
import { formatDoctor, runDoctor } from '../core/doctor.js';
import { loadAgents, type AgentCatalog } from '../core/agents.js';
import { loadCatalog, type Catalog } from '../core/catalog.js';
import { startEngine, type Engine } from '../core/engine.js';
import { afterLong } from '../core/long-timer.js';
import { Store, turnClock, type Clock } from '../core/store.js';
import { VERSION } from '../core/version.js';
import { Printer } from '../sinks/printer.js';
import { closeAllRecorders } from '../sinks/recorder.js';
import { StdoutLines } from '../sinks/stdout-lines.js';
import { attachSinks, parseSinkFlags, SINK_CLI_FLAGS, type KernelStats, type SinkFlags } from '../sinks/wire.js';
import { describeProblems, readRecording, ReplayPlayer } from '../sinks/replay.js';
import { describeError, usageError, type Flags, validateFlags } from './options.js';

const cli = meow(
  `
  Usage
    $ sudo busted [options]        stream outbound connections and their bytes until Ctrl-C
    $ sudo busted doctor [--json]  check what this machine offers busted

  Options
    --format text|json   output format (default text); json starts with a session record
    --all                also report flows that are not LLM traffic (default: LLM flows only, in the
                         output, the recording and OTLP; the others are only counted in --metrics)
    --providers FILE     extra or overriding provider catalog entries (YAML or JSON; see README)
    --agents FILE        extra or overriding AI agent entries (YAML or JSON; see README)
    --policy FILE        block/audit rules for LLM traffic (YAML or JSON; see README); SIGHUP reloads it
    --enforce            block decisions really block (EPERM); without it they are audited as would-deny
    --interval MS        how often byte counters are read and traffic records made (default 1000)
    --duration S         stop after S seconds
    --verbose            more fields per line (tid, gid, exe, cgroup, flow id) and traffic lines
    --record FILE        also write every record to FILE (JSON lines, mode 0600, flushed every second)
    --record-max-size SIZE  rotate the recording at SIZE (e.g. 100M), keeping --record-keep N files (default 5)
    --record-flush MS    how often the recording is written (default 1000)
    --record-fsync       fsync the recording after every write
    --metrics [HOST:]PORT   serve Prometheus metrics (default host 127.0.0.1)
    --otlp URL           send every record as an OpenTelemetry log over OTLP/HTTP
    --replay FILE        print a recording instead of watching the kernel (no root needed)
    --speed N            with --replay: play N times faster (default 1; 0 = as fast as possible)
    --json               (doctor) print the report as JSON
    --help               show this help
    --version            show the version

  Exit codes: 0 done, 1 runtime failure, 2 usage error, 130/143 a second SIGINT/SIGTERM while stopping.
  When busted exits or is killed, the kernel detaches its programs: traffic is never blocked by a dead busted.

  Examples
    $ sudo busted --format json | jq 'select(.type=="close")'
    $ sudo busted --duration 60 --verbose --record /var/tmp/busted.jsonl
    $ busted --replay examples/demo.jsonl --speed 0 --format json
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
      record: { type: 'string' },
      ...SINK_CLI_FLAGS,
      providers: { type: 'string' },
      agents: { type: 'string' },
      policy: { type: 'string' },
      enforce: { type: 'boolean', default: false },
      replay: { type: 'string' },
      speed: { type: 'number' },
    },
  },
);

async function main(): Promise<number> {
  const known = new Set(['format', 'all', 'interval', 'duration', 'verbose', 'json', 'record', 'replay', 'speed', 'providers', 'agents', 'policy', 'enforce', 'help', 'version',
    'recordMaxSize', 'recordKeep', 'recordFlush', 'recordFsync', 'metrics', 'otlp']);
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
  const flags = { ...validateFlags(cli.flags), sinks: parseSinkFlags(cli.flags) };
  return runHeadless(flags);
}

interface Source {
  clock: Clock;
  start(store: Store): Promise<void>;
  stop(): Promise<void>;
  /** Resolves when the source has nothing more to give (a replay's end). */
  ended: Promise<void>;
  /** SIGHUP: re-read what can be re-read (the policy). */
  reload?(): void;
  /** The kernel's lost count, map fill levels and ring-buffer use (live only, once attached). */
  kernelStats?(): KernelStats | null;
}

function liveSource(flags: Flags, catalog: Catalog, agents: AgentCatalog, warn: (msg: string) => void, backedUp: () => boolean): Source {
  let engine: Engine | null = null;
  return {
    clock: turnClock,
    ended: new Promise<void>(() => {}),
    async start(store) {
      engine = await startEngine(store, { catalog, agents, policyFile: flags.policy ?? null, enforce: flags.enforce, all: flags.all, quiet: !flags.all, intervalMs: flags.interval, verbose: flags.verbose, onWarning: warn, backedUp });
      if (flags.format === 'text') warn('attached; press Ctrl-C to stop');
    },
    async stop() {
      const e = engine;
      engine = null;
      await e?.stop();
    },
    kernelStats: () => engine?.kernelStats() ?? null,
    reload() {
      if (!engine || !flags.policy) return;
      try {
        const warnings = engine.reloadPolicy();
        warn(`reloaded the policy from ${flags.policy}${warnings.length ? ` (${warnings.length} warnings above)` : ''}`);
      } catch (err) {
        warn(`${(err as Error).message}; the policy in force is unchanged.`);
      }
    },
  };
}

function replaySource(flags: Flags, file: string, warn: (msg: string) => void): Source {
  const recording = readRecording(file);
  let store: Store | null = null;
  const speed = flags.speed === 0 ? 1e9 : flags.speed;
  const player = new ReplayPlayer({ publish: (rec) => store?.publish(rec) }, recording.records, { speed });
  return {
    clock: player.clock,
    ended: player.done.then(() => {
      if (recording.problems.length > 0) warn(`${file}: ${describeProblems(recording.problems)}.`);
      if (recording.truncatedLastLine) warn(`${file}: the last line was cut short and was skipped.`);
    }),
    async start(s) {
      store = s;
      player.start();
    },
    async stop() {
      player.stop();
    },
  };
}

async function runHeadless(flags: Flags & { sinks: SinkFlags }): Promise<number> {
  const warn = (msg: string) => process.stderr.write(`busted: ${msg}\n`);
  const out = new StdoutLines(warn);
  const catalog = loadCatalog(flags.providers ?? null);
  const agents = loadAgents(flags.agents ?? null);
  const source = flags.replay !== undefined ? replaySource(flags, flags.replay, warn) : liveSource(flags, catalog, agents, warn, () => out.backedUp());
  // nothing headless shows closed flows (busted-top does): they leave the table as they close
  const store = new Store(source.clock, { closedMax: 0 });
  const printer = new Printer({
    format: flags.format, verbose: flags.verbose, all: flags.all, write: (l) => out.write(l), writeRecord: (rec) => out.record(rec),
    providerName: (id) => catalog.get(id)?.name ?? id,
  });
  store.onRecord((rec) => printer.handle(rec));
  const sinks = await attachSinks(store, {
    ...flags.sinks,
    onWarning: warn,
    stats: () => {
      const k = source.kernelStats?.() ?? null; // lost: the larger of the table's and the kernel's count
      return k ? { ...k, lost: Math.max(store.table.lost, k.lost) } : { lost: store.table.lost, maps: [] };
    },
  });
  const recorder = sinks.recorder;
  if (sinks.metricsUrl) warn(`serving Prometheus metrics at ${sinks.metricsUrl}`);
  process.once('exit', () => closeAllRecorders());
  process.once('uncaughtException', (err) => {
    closeAllRecorders();
    throw err;
  });

  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await source.stop();
    await sinks.close();
    for (const problem of closeAllRecorders()) warn(problem);
    if (recorder && flags.format === 'text') warn(`recorded ${recorder.count} records to ${recorder.path}`);
    await out.flush();
    finish(code);
  };
  // the first SIGINT or SIGTERM stops busted in order (censuses, the ring's last records, the
  // sinks); a second one while that runs exits at once, the recording closed on the way out
  // (the 'exit' handler above), not killed by the signal with its buffer unwritten
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (!stopping) return void stop(0);
    warn(`${signal} again: exiting without waiting for the stop to finish`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => {
    source.reload?.();
    sinks.reopen(); // logrotate moved the recording away: start a new file
  });
  out.onBrokenPipe(() => void stop(0));

  await source.start(store);
  void source.ended.then(() => stop(0));
  if (flags.duration !== undefined) afterLong(flags.duration * 1000, () => void stop(0));
  return done;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const { message, code } = describeError(err);
    process.stderr.write(`busted: ${message}\n`);
    process.exit(code);
  },
);
