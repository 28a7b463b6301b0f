/**
 * What the UI may ask of the world. The CLI provides it (live: signals a real process and
 * records a `kill` record; replay: refuses), tests provide fakes. The UI never signals itself.
 */
import type { KillSignal, KillTarget } from './state.js';

export interface KillResult {
  ok: boolean;
  /** One sentence for the status line. */
  message: string;
}

export interface UiActions {
  kill(target: KillTarget, signal: KillSignal): Promise<KillResult>;
  /**
   * b/a: toggles a block or audit verdict on a process identity (the same key again clears it).
   * Absent when verdicts cannot be set (a replay).
   */
  verdict?(target: KillTarget, action: 'block' | 'audit'): Promise<KillResult>;
  /** Leave the UI; the CLI restores the terminal and exits. */
  quit(): void;
}
