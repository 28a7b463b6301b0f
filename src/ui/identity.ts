/**
 * How a process's identity is written in the table, the detail view, the sort and the filter.
 * Pure: the names come from the records (or, when a record carried none, from `userName`).
 */
import type { ProcessRow } from '../core/flows.js';
import type { ContainerRef, ParentRef, PodRef } from '../core/records.js';
import type { UserName } from './filter.js';

/** What the PROCESS column shows: the agent's label when one was recognised, else comm. */
export const processName = (row: ProcessRow): string => row.agent?.label ?? row.comm;

/** The user name the record carried, else the local lookup (the uid as text when unknown). */
export const userOf = (row: ProcessRow, userName: UserName): string => row.user ?? userName(row.uid);

/** A user name when one is known, null when only the number is. */
function knownUser(row: ProcessRow, userName: UserName): string | null {
  const name = userOf(row, userName);
  return name === String(row.uid) ? null : name;
}

/** `alice (uid 1000), group staff (gid 50)`; numbers alone where no name is known. */
export function userAndGroup(row: ProcessRow, userName: UserName): string {
  const user = knownUser(row, userName);
  const u = user === null ? `uid ${row.uid}` : `${user} (uid ${row.uid})`;
  const g = row.group === null ? `gid ${row.gid}` : `group ${row.group} (gid ${row.gid})`;
  return `${u}, ${g}`;
}

export const SHA_SHOWN = 16;

/** The first 16 hex digits of a SHA-256, marked as cut. */
export const shortSha = (sha: string): string => (sha.length > SHA_SHOWN ? `${sha.slice(0, SHA_SHOWN)}…` : sha);

/** `bash(1200) ← sshd(900) ← systemd(1)`: parent first. */
export const parentChain = (parents: readonly ParentRef[]): string =>
  parents.map((p) => `${p.comm}(${p.pid})`).join(' ← ');

/** `containerd 4b1f9c2d8e7a`: the runtime and the id as `docker ps` shortens it. */
export const containerText = (c: ContainerRef): string => `${c.runtime} ${c.id.slice(0, 12)}`;

export const podText = (p: PodRef): string => `${p.name !== undefined ? `${p.namespace}/${p.name} ` : ''}${p.uid} (${p.qos})`;
