/**
 * The kill action the UI is given. Live: checks that the pid still belongs to the same process
 * (start time), sends the signal and records a `kill` record. Replay: always refuses.
 */
import type { KillRecord } from '../core/records.js';
import type { KillResult } from '../ui/actions.js';
import type { KillSignal, KillTarget } from '../ui/state.js';

export interface KillDeps {
  selfPid: number;
  /** Start time (clock ticks) of a pid now, or null when it is gone. */
  readStartTime: (pid: number) => number | null;
  signal: (pid: number, signal: KillSignal) => void;
  publish: (rec: KillRecord) => void;
  now?: () => Date;
}

export type Kill = (target: KillTarget, signal: KillSignal) => Promise<KillResult>;

export const REPLAY_KILL = 'Kill is not available in a replay: these processes ran on the recording machine.';

export const refuseInReplay: Kill = async () => ({ ok: false, message: REPLAY_KILL });

export function liveKill(deps: KillDeps): Kill {
  return async (target, signal) => {
    const who = `${target.pid} (${target.comm})`;
    if (target.pid <= 1) return { ok: false, message: `Refusing to signal pid ${target.pid}.` };
    if (target.pid === deps.selfPid) return { ok: false, message: 'Refusing to signal busted-top itself.' };
    const start = deps.readStartTime(target.pid);
    if (start === null) return { ok: false, message: `Process ${who} has already exited.` };
    if (start !== target.startTime) {
      return { ok: false, message: `Pid ${target.pid} now belongs to another process; nothing was sent.` };
    }
    try {
      deps.signal(target.pid, signal);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ESRCH') return { ok: false, message: `Process ${who} has already exited.` };
      if (code === 'EPERM') return { ok: false, message: `Not allowed to signal ${who}: run busted-top as root.` };
      return { ok: false, message: `Could not signal ${who}: ${(e as Error).message}.` };
    }
    deps.publish({ type: 'kill', ts: (deps.now?.() ?? new Date()).toISOString(), pid: target.pid, signal });
    return { ok: true, message: `Sent ${signal} to ${who}.` };
  };
}
