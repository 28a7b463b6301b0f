/**
 * Listens to the keyboard and carries out what `interpretKey` decides, through the injected
 * `dispatch` and `actions`. Renders nothing.
 *
 * Several keys can arrive in one chunk (typing fast, pasting, tmux send-keys) before React
 * renders again, so the state each key sees is advanced here with the same pure reducer.
 */
import { useInput, type Key } from 'ink';
import type React from 'react';
import { useRef } from 'react';
import type { UiActions } from './actions.js';
import { interpretKey, type KeyPress } from './input.js';
import { keyName } from './keys.js';
import { reducer, type Action, type UiState } from './state.js';

export interface KeyInputProps {
  state: UiState;
  dispatch: (action: Action) => void;
  actions: UiActions;
  /** Rows moved by PgUp/PgDn. */
  page: number;
  /** The farthest the detail screen's connections can scroll. */
  detailMax?: number;
}

const CHAR_NAMES: Record<string, string> = { '\r': 'return', '\n': 'return', '\x7f': 'backspace', '\b': 'backspace' };

/** One press per character when plain text came in as one chunk. */
export function splitPresses(input: string, key: Key): KeyPress[] {
  const name = keyName(input, key);
  const special = name !== input || key.ctrl || key.meta;
  if (special || [...input].length <= 1) return [{ name, input, ctrl: key.ctrl, meta: key.meta }];
  return [...input].map((ch) => ({ name: CHAR_NAMES[ch] ?? ch, input: ch, ctrl: false, meta: false }));
}

export function KeyInput({ state, dispatch, actions, page, detailMax }: KeyInputProps): React.JSX.Element | null {
  const current = useRef(state);
  current.current = state;
  useInput((input, key) => {
    for (const press of splitPresses(input, key)) {
      for (const effect of interpretKey(press, current.current, page, detailMax)) {
        switch (effect.kind) {
          case 'dispatch':
            current.current = reducer(current.current, effect.action);
            dispatch(effect.action);
            break;
          case 'kill':
            actions.kill(effect.target, effect.signal).then(
              (r) => dispatch({ type: 'killDone', ok: r.ok, message: r.message }),
              (e: unknown) => dispatch({ type: 'killDone', ok: false, message: e instanceof Error ? e.message : String(e) }),
            );
            break;
          case 'verdict': {
            const done = (ok: boolean, message: string) => dispatch({ type: 'status', text: message, level: ok ? 'info' : 'error' });
            if (!actions.verdict) {
              done(false, 'Verdicts act on live traffic: not in a replay.');
              break;
            }
            actions.verdict(effect.target, effect.action).then(
              (r) => done(r.ok, r.message),
              (e: unknown) => done(false, e instanceof Error ? e.message : String(e)),
            );
            break;
          }
          case 'quit':
            actions.quit();
            break;
        }
      }
    }
  });
  return null;
}
