/** Where the records come from and where they go: shown in the header, provided by the CLI. */

export type SourceInfo =
  | { mode: 'live' }
  | {
      mode: 'replay';
      file: string;
      speed: number;
      /** Recording time of its last record; the replay has ended once the snapshot reaches it. */
      endsAt: number | null;
    };

export interface UiOptions {
  source: SourceInfo;
  /** File being recorded to, if any. */
  recording: string | null;
  intervalMs: number;
}
