/**
 * Names for the USER column when a record carried none (older recordings, a name not yet
 * resolved). Live, from the core's NameDirectory (/etc/passwd, re-read when it changes).
 */
import { NameDirectory } from '../core/users.js';
import type { UserName } from '../ui/filter.js';

/** Local names when they exist, else the number. */
export function localUserNames(names = new NameDirectory()): UserName {
  return (uid) => names.user(uid) ?? String(uid);
}

/**
 * For a recording from another machine local names would be wrong: only uid 0 is named
 * (it is root everywhere); other users show as numbers unless the records carry names.
 */
export const recordedUserNames: UserName = (uid) => (uid === 0 ? 'root' : String(uid));
