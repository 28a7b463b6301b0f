/** User names for the UID column: from /etc/passwd, read once (the UI itself reads nothing). */
import fs from 'node:fs';
import type { UserName } from '../ui/filter.js';

export function parsePasswd(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    const n = Number(uid);
    if (name && uid !== undefined && uid !== '' && Number.isInteger(n) && !names.has(n)) names.set(n, name);
  }
  return names;
}

/** Local names when they exist, else the number. */
export function localUserNames(path = '/etc/passwd'): UserName {
  let names = new Map<number, string>();
  try {
    names = parsePasswd(fs.readFileSync(path, 'utf8'));
  } catch {
    // no passwd file (minimal container): numbers only
  }
  return (uid) => names.get(uid) ?? String(uid);
}

/**
 * For a recording from another machine local names would be wrong: only uid 0 is named
 * (it is root everywhere); other users show as numbers.
 */
export const recordedUserNames: UserName = (uid) => (uid === 0 ? 'root' : String(uid));
