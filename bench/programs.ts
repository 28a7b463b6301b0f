/**
 * busted's kernel programs without busted: an object loaded and configured as busted configures
 * it, and its programs attached by the bench's own process (bench/attach-cost.ts,
 * bench/stand-in.ts). Root.
 */
import { MODEL_PORTS } from '../src/bpf/abi.js';
import type { Ptr } from '../src/bpf/libbpf.js';
import { BpfObject } from '../src/bpf/object.js';
import { Enforcer } from '../src/bpf/enforcer.js';
import { attachedAtStart, configureObject, enforcerMaps, isCgroupSection } from '../src/bpf/probe.js';
import { loadCatalog } from '../src/core/catalog.js';

const catalog = loadCatalog();
const modelPorts = [...new Set(catalog.entries.flatMap((e) => e.local?.ports ?? []))].slice(0, MODEL_PORTS);

/**
 * What the kernel does with connections that cannot be LLM traffic (config.quiet): `count` (busted
 * by default), `late` (busted --all since session 17), `off` (reported at first use: busted --all
 * before session 17, and wherever busted cannot judge in the kernel).
 */
export type KernelMode = 'off' | 'count' | 'late';
export const KERNEL_MODES: readonly KernelMode[] = ['off', 'count', 'late'];

/**
 * Loads an object configured as busted configures it (the catalog's model server ports; as `--all`
 * does: connections that cannot be LLM traffic reported late, or by default: counted), its LLM
 * address maps filled with the catalog's ranges as busted fills them (the connect hook looks every
 * connection up there). `mode` overrides what `all` picks.
 */
export function loadAsBusted(path: string, all: boolean, mode?: KernelMode): BpfObject {
  const obj = BpfObject.open(path);
  const m = mode ?? (all ? 'late' : 'count');
  configureObject(obj, { selfTgid: process.pid, quiet: m === 'off' ? null : { modelPorts, late: m === 'late' } });
  obj.load();
  const enforcer = new Enforcer(enforcerMaps(obj));
  for (const c of catalog.cidrEntries({ v4Mapped: true })) enforcer.addDestination(c.prefix, c.prefixLen, c.providerIndex);
  return obj;
}

/** The programs busted attaches at start with the cgroup programs: all but the packet programs and the state-change one. */
export const atStart = (name: string, section: string) => attachedAtStart(name, section, true);

/** The empty programs (bench/floor.bpf.c: busted_X's twin is floor_X) on the hooks busted attaches at start. */
export const floorAtStart = (name: string, section: string) => atStart(name.replace(/^floor_/, 'busted_'), section);

/** Attaches the object's programs that `which` names (the cgroup ones to the cgroup open as `cgroupFd`); their links. */
export function attachPrograms(obj: BpfObject, which: (name: string, section: string) => boolean, cgroupFd: number): Ptr[] {
  const links: Ptr[] = [];
  try {
    for (const p of obj.programs()) {
      if (which(p.name, p.section)) links.push(isCgroupSection(p.section) ? obj.attachCgroup(p, cgroupFd) : obj.attach(p));
    }
  } catch (err) {
    for (const l of links) obj.detach(l);
    throw err;
  }
  return links;
}
