/**
 * The full-screen terminal: alternate buffer on entry, and a synchronous, idempotent restore
 * (normal buffer, visible cursor, cooked mode) that every exit path can call, even from an
 * 'exit' or 'uncaughtException' handler where nothing asynchronous runs any more.
 */
import fs from 'node:fs';

const ENTER = '\x1b[?1049h\x1b[H\x1b[2J';
const LEAVE = '\x1b[?25h\x1b[?1049l';

export interface TerminalStreams {
  stdout: { fd?: number; isTTY?: boolean };
  stdin: { isTTY?: boolean; setRawMode?: (on: boolean) => unknown };
}

export class FullScreen {
  private active = false;
  private teardown: (() => void) | null = null;

  constructor(private readonly io: TerminalStreams = { stdout: process.stdout, stdin: process.stdin }) {}

  get entered(): boolean {
    return this.active;
  }

  enter(): void {
    if (this.active || !this.io.stdout.isTTY) return;
    this.write(ENTER);
    this.active = true;
  }

  /**
   * Runs `fn` first thing in restore(), still on the alternate screen: the UI unmounts there,
   * so its last frame never lands on the user's normal screen (e.g. on an exception).
   */
  beforeRestore(fn: () => void): void {
    this.teardown = fn;
  }

  restore(): void {
    if (!this.active) return;
    this.active = false;
    const teardown = this.teardown;
    this.teardown = null;
    try {
      teardown?.();
    } catch {
      // the UI is already broken; leaving the alternate screen matters more
    }
    try {
      if (this.io.stdin.isTTY) this.io.stdin.setRawMode?.(false);
    } catch {
      // stdin may already be closed; the terminal escape below still applies
    }
    this.write(LEAVE);
  }

  private write(text: string): void {
    try {
      fs.writeSync(this.io.stdout.fd ?? 1, text);
    } catch {
      // the terminal is gone (hangup): nothing left to restore
    }
  }
}
