/**
 * busted-top's wiring: a source (kernel engine or replay player) feeds the store; the store
 * feeds the UI and the recorder. The terminal is restored on q, Ctrl-C, SIGINT/SIGTERM, SIGHUP
 * from a terminal that hung up, and (through busted-top.tsx) on an exception. SIGHUP while the
 * terminal is still there (logrotate, `kill -HUP`) reopens the recording instead.
 */
import { basename } from 'node:path';
import { isatty } from 'node:tty';
import type { Engine } from '../core/engine.js';
import React from 'react';
import { render, type Instance } from 'ink';
import { readStartTime } from '../core/identity.js';
import type { KillRecord } from '../core/records.js';
import { Store, turnClock, type Clock } from '../core/store.js';
import { VERSION } from '../core/version.js';
import { closeAllRecorders, type Recorder } from '../sinks/recorder.js';
import { attachSinks, type KernelStats, type SinkFlags } from '../sinks/wire.js';
import { describeProblems, readRecording, ReplayPlayer, type Recording } from '../sinks/replay.js';
import { App, type AppProps } from '../ui/App.js';
import type { UiActions } from '../ui/actions.js';
import type { UiOptions } from '../ui/source.js';
import { liveKill, REPLAY_KILL, refuseInReplay } from './kill.js';
import type { FullScreen } from './terminal.js';
import { topUsageError, type TopFlags } from './top-options.js';
import { localUserNames, recordedUserNames } from './users.js';

interface Source {
  options: UiOptions['source'];
  clock: Clock;
  start(store: Store): Promise<void>;
  stop(): Promise<void>;
  kill: UiActions['kill'];
  verdict?: UiActions['verdict'];
  /** Why kill is refused up front, or null. */
  killUnavailable: string | null;
  /** Said on stderr once the terminal is restored (`short`: for the status line, file names without their folder). */
  notes(short?: boolean): string[];
  /** The kernel's lost count, map fill levels and ring-buffer use (live only, once attached). */
  kernelStats?(): KernelStats | null;
  /** SIGHUP: re-read what can be re-read (the policy). */
  reload?(): void;
}

type Notice = { text: string; level: 'info' | 'error' };
type Say = (text: string, level?: Notice['level']) => void;

function replaySource(flags: TopFlags, file: string): Source {
  const recording: Recording = readRecording(file);
  // The store needs the player's clock, so the player publishes to a store it is given later.
  let store: Store | null = null;
  const player = new ReplayPlayer({ publish: (rec) => store?.publish(rec) }, recording.records, { speed: flags.speed });
  let ticker: NodeJS.Timeout | null = null;
  return {
    options: { mode: 'replay', file, speed: flags.speed, endsAt: player.endsAt },
    clock: player.clock,
    async start(s) {
      store = s;
      player.start();
      s.tick();
      ticker = setInterval(() => s.tick(), flags.intervalMs);
    },
    async stop() {
      player.stop();
      if (ticker) clearInterval(ticker);
    },
    kill: refuseInReplay,
    killUnavailable: REPLAY_KILL,
    notes: (short = false) => {
      const name = short ? basename(file) : file;
      const notes: string[] = [];
      if (recording.problems.length > 0) notes.push(`${name}: ${describeProblems(recording.problems)}.`);
      if (recording.truncatedLastLine) notes.push(`${name}: the last line was cut short (a crash while recording?) and was skipped.`);
      return notes;
    },
  };
}

function liveSource(flags: TopFlags, say: Say): Source {
  let engine: Engine | null = null;
  let publishKill: (rec: KillRecord) => void = () => {};
  return {
    options: { mode: 'live' },
    clock: turnClock,
    async start(store) {
      publishKill = (rec) => store.publish(rec);
      // Imported here so a replay never loads the kernel bindings.
      const { startEngine } = await import('../core/engine.js');
      const { loadCatalog } = await import('../core/catalog.js');
      const catalog = loadCatalog(flags.providers);
      engine = await startEngine(store, {
        catalog, all: flags.all, intervalMs: flags.intervalMs, verbose: false,
        policyFile: flags.policy, enforce: flags.enforce, onWarning: (m) => say(m),
      });
      store.tick();
    },
    async stop() {
      const e = engine;
      engine = null;
      await e?.stop();
    },
    kill: liveKill({
      selfPid: process.pid,
      readStartTime: (pid) => readStartTime(pid),
      signal: (pid, sig) => process.kill(pid, sig),
      publish: (rec) => publishKill(rec),
    }),
    killUnavailable: null,
    kernelStats: () => engine?.kernelStats() ?? null,
    reload() {
      if (!engine || !flags.policy) return;
      try {
        const warnings = engine.reloadPolicy();
        say(`Reloaded the policy from ${flags.policy}${warnings.length ? ` (${warnings.length} warnings)` : ''}.`, 'info');
      } catch (err) {
        say(`${(err as Error).message}; the policy in force is unchanged.`);
      }
    },
    async verdict(target, action) {
      if (!engine) return { ok: false, message: 'busted is not attached yet.' };
      if (!engine.canEnforce) return { ok: false, message: 'Verdicts need the cgroup programs, which are not attached here: run busted doctor.' };
      const current = engine.verdictOf(target.pid, target.startTime);
      const next = current === action ? null : action;
      engine.setVerdict(target.pid, target.startTime, next);
      const who = `${target.pid} (${target.comm})`;
      if (next === null) return { ok: true, message: `Cleared the ${action} on ${who}.` };
      if (next === 'audit') return { ok: true, message: `Auditing the LLM traffic of ${who}.` };
      return { ok: true, message: flags.enforce ? `Blocked the LLM traffic of ${who}.` : `Block on ${who} is audit-only (start with --enforce to block).` };
    },
    notes: () => [],
  };
}

/** Reads the recording or starts the engine, then runs the UI until quit. Resolves to the exit code. */
export async function runTop(flags: TopFlags, screen: FullScreen, sinkFlags: SinkFlags = {}): Promise<number> {
  // the engine's warnings go to the status line as they come, and to stderr once the terminal is back
  const warnings: string[] = [];
  const listeners = new Set<(n: Notice) => void>();
  const say: Say = (text, level = 'error') => {
    if (level === 'error') {
      if (warnings.length >= MAX_WARNINGS) warnings.shift();
      warnings.push(text);
    }
    if (listeners.size === 0) pending = { text, level }; // before the screen is up: shown when it is
    for (const l of listeners) l({ text, level });
  };
  let pending: Notice | null = null;
  const notices = (l: (n: Notice) => void) => {
    listeners.add(l);
    if (pending) l(pending);
    pending = null;
    return () => void listeners.delete(l);
  };
  const source = flags.replay !== null ? replaySource(flags, flags.replay) : liveSource(flags, say);
  if (!process.stdout.isTTY || !process.stdin.isTTY) {
    throw topUsageError('busted-top needs a terminal on stdin and stdout; for pipes use busted --format json');
  }
  const store = new Store(source.clock);
  const sinks = await attachSinks(store, {
    ...sinkFlags,
    onWarning: (m) => say(m),
    stats: () => {
      const k = source.kernelStats?.() ?? null; // lost: the larger of the table's and the kernel's count
      return k ? { ...k, lost: Math.max(store.table.lost, k.lost) } : { lost: store.table.lost, maps: [] };
    },
  });
  try {
    // a signal while the engine loads (a second or more on a busy host) stops busted-top once the
    // load is done, through the same stop as q; a second one exits at once, the recording closed
    const held = holdSignals((signal) => {
      closeAllRecorders();
      process.stderr.write(`busted-top: ${signal} again: exiting without waiting for the start to finish\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
    try {
      await source.start(store);
    } finally {
      held.release();
    }
    if (held.received) {
      await source.stop().catch(() => {});
      const problems = closeAllRecorders();
      process.stderr.write(`busted-top: ${held.received} while starting: stopped before the screen came up\n`);
      if (sinks.recorder) process.stderr.write(`busted-top: recorded ${sinks.recorder.count} records to ${sinks.recorder.path}\n`);
      for (const problem of problems) process.stderr.write(`busted-top: ${problem}\n`);
      return 0;
    }
    return await runUi(flags, source, store, sinks.recorder, screen, () => {
      sinks.reopen();
      source.reload?.();
    }, notices);
  } finally {
    await sinks.close();
    for (const w of warnings) process.stderr.write(`busted-top: ${w}\n`);
  }
}

/**
 * Holds SIGINT, SIGTERM and SIGHUP (their default is to kill busted-top) until release():
 * `received` is the first that asks to stop (SIGHUP only when the terminal hung up); `again`
 * runs on a SIGINT or SIGTERM after it.
 */
export function holdSignals(
  again: (signal: 'SIGINT' | 'SIGTERM') => void, hungUp: () => boolean = () => !terminalAlive(),
): { readonly received: NodeJS.Signals | null; release(): void } {
  const held = { received: null as NodeJS.Signals | null, release: () => {} };
  const on = (signal: NodeJS.Signals): void => {
    if (signal === 'SIGHUP') {
      // sent on purpose (logrotate) while the terminal is there: nothing to reopen yet, go on
      if (hungUp()) held.received ??= signal;
    } else if (held.received !== null) {
      again(signal as 'SIGINT' | 'SIGTERM');
    } else {
      held.received = signal;
    }
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, on);
  held.release = () => {
    for (const s of signals) process.off(s, on);
  };
  return held;
}

/** Engine warnings kept for stderr at exit (the latest). */
const MAX_WARNINGS = 50;

/**
 * What SIGHUP means: the terminal hung up (closed window, lost ssh connection) when stdin or
 * stdout is no longer a terminal, so busted-top quits; otherwise someone sent it on purpose
 * (logrotate's postrotate, `kill -HUP`), so the recording is reopened, --policy is re-read and
 * busted-top goes on.
 */
export function hangupAction(terminalAlive: boolean): 'quit' | 'reopen' {
  return terminalAlive ? 'reopen' : 'quit';
}

/** A hung-up terminal fails the isatty() ioctl on the fds that still point at it. */
const terminalAlive = (): boolean => isatty(0) && isatty(1);

async function runUi(
  flags: TopFlags, source: Source, store: Store, recorder: Recorder | null, screen: FullScreen, reopen: () => void,
  notices: AppProps['notices'],
): Promise<number> {
  let instance: Instance | null = null;
  const quit = (): void => instance?.unmount();
  const onSignal = (): void => quit();
  const onHangup = (): void => {
    if (hangupAction(terminalAlive()) === 'quit') quit();
    else reopen();
  };
  const onExit = (): void => {
    screen.restore();
    closeAllRecorders();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, onSignal);
  process.on('SIGHUP', onHangup);
  process.on('exit', onExit);
  screen.enter();
  screen.beforeRestore(quit);
  instance = render(
    <App
      store={store}
      actions={{ kill: source.kill, ...(source.verdict ? { verdict: source.verdict } : {}), quit: () => {} }}
      options={{ source: source.options, recording: recorder?.path ?? null, intervalMs: flags.intervalMs }}
      config={{ selfPid: process.pid, tombstoneMs: 5000, userName: flags.replay ? recordedUserNames : localUserNames(),
        killUnavailable: source.killUnavailable }}
      showAll={flags.all}
      notice={source.notes().length > 0 ? { text: source.notes(true).join(' '), level: 'error' } : undefined}
      notices={notices}
    />,
    { exitOnCtrlC: false },
  );
  try {
    await instance.waitUntilExit();
  } finally {
    await source.stop().catch(() => {});
    screen.restore();
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, onSignal);
    process.off('SIGHUP', onHangup);
  }
  const problems = closeAllRecorders();
  if (recorder) process.stderr.write(`busted-top: recorded ${recorder.count} records to ${recorder.path}\n`);
  for (const note of [...source.notes(), ...problems]) process.stderr.write(`busted-top: ${note}\n`);
  return 0;
}
