/**
 * Drives a real terminal: a private tmux server (its own socket) running one command in a
 * detached session of a given size. Used by the terminal e2e tests of busted-top.
 */
import { execFileSync } from 'node:child_process';

export class Tmux {
  readonly socket: string;

  constructor(name: string) {
    this.socket = `busted-${name}-${process.pid}`;
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8', timeout: 10_000 });
  }

  /** Starts `command` (a shell command line) in a new session of `columns` x `rows`. */
  start(command: string, columns = 80, rows = 24): void {
    this.tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'main', '-x', String(columns), '-y', String(rows), command);
  }

  /** The visible screen, one string per line (no colours). */
  screen(): string[] {
    return this.tmux('capture-pane', '-p', '-t', 'main').replace(/\n$/, '').split('\n');
  }

  text(): string {
    return this.screen().join('\n');
  }

  /** A tmux format variable of the pane, e.g. alternate_on, cursor_flag, pane_pid. */
  format(name: string): string {
    return this.tmux('display-message', '-p', '-t', 'main', `#{${name}}`).trim();
  }

  /** Keys as tmux names them (`Enter`, `Escape`, `C-c`, `Down`) or literal text with `literal`. */
  keys(keys: string, literal = false): void {
    this.tmux('send-keys', '-t', 'main', ...(literal ? ['-l', keys] : [keys]));
  }

  resize(columns: number, rows: number): void {
    this.tmux('resize-window', '-t', 'main', '-x', String(columns), '-y', String(rows));
  }

  /** Polls the screen until `pred` holds; throws with the last screen if it never does. */
  async waitFor(pred: (text: string, lines: string[]) => boolean, what: string, timeoutMs = 10_000): Promise<string[]> {
    const end = Date.now() + timeoutMs;
    let lines: string[] = [];
    while (Date.now() < end) {
      lines = this.screen();
      if (pred(lines.join('\n'), lines)) return lines;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}; the screen was:\n${lines.join('\n')}`);
  }

  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone
    }
  }
}
