/**
 * `busted doctor`: what this machine offers busted, each check with a fix when it fails.
 * Hooks are checked for real: each program is loaded and attached on its own, then released.
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { BpfObject } from '../bpf/object.js';
import { libbpfVersion } from '../bpf/libbpf.js';
import { BTF_PATH, checkBtf, findCgroup2Mount, privilegeStatus } from '../bpf/preflight.js';
import { OBJECT_PATH, PROGRAMS, isCgroupSection } from '../bpf/probe.js';
import { closeSync, openSync } from 'node:fs';
import { VERSION } from './version.js';
import { hashBpfSources } from '../../bpf/hash-sources.mjs';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** Whether busted can run without it. */
  required: boolean;
  fix?: string;
}

export interface DoctorReport {
  version: string;
  kernel: string;
  checks: Check[];
  ok: boolean;
  failOpen: string;
}

const FAIL_OPEN =
  'Every busted program is attached through a link owned by the busted process: when busted exits or is killed, the kernel detaches it and traffic flows as before (fail-open). Nothing is pinned.';

function attempt(fn: () => string): { ok: boolean; detail: string } {
  try {
    return { ok: true, detail: fn() };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

function objectFresh(): { ok: boolean; detail: string } {
  try {
    const dir = fileURLToPath(new URL('../../bpf/', import.meta.url));
    const recorded = readFileSync(`${dir}busted.bpf.o.sha256`, 'utf8').trim();
    const actual = hashBpfSources(dir); // the single definition of what the object is built from
    return recorded === actual
      ? { ok: true, detail: `${OBJECT_PATH} matches its sources` }
      : { ok: false, detail: `${OBJECT_PATH} is older than bpf/ sources` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

/** Loads and attaches one program alone (cgroup programs to `cgroup`), then releases it. */
function probeHook(name: string, cgroup: string | null): { ok: boolean; detail: string } {
  return attempt(() => {
    const obj = BpfObject.open(OBJECT_PATH);
    try {
      const prog = obj.programs().find((p) => p.name === name);
      if (!prog) throw new Error(`no program ${name} in the object`);
      obj.setAutoload((n) => n === name);
      obj.load();
      if (!isCgroupSection(prog.section)) {
        obj.attach(prog);
      } else {
        if (cgroup === null) throw new Error(`${prog.section} loads, but there is no cgroup v2 mount to attach it to`);
        const fd = openSync(cgroup, 'r');
        try {
          obj.attachCgroup(prog, fd);
        } finally {
          closeSync(fd);
        }
      }
      return `${prog.section} loads and attaches`;
    } finally {
      obj.close();
    }
  });
}

/** What each hook gives; the tracing hooks are required, the cgroup ones add classification. */
const HOOK_ROLE: Record<(typeof PROGRAMS)[number], { required: boolean; role: string }> = {
  busted_set_state: { required: true, role: 'TCP lifecycle where the cgroup programs cannot be attached (attached only then)' },
  busted_sk_error: { required: true, role: 'TCP connections the kernel ends on an error (refused, timed out, reset)' },
  busted_send: { required: true, role: 'tx bytes, TLS SNI samples' },
  busted_recv: { required: true, role: 'rx bytes, DNS answers' },
  busted_egress: { required: false, role: 'cutting open flows of blocked processes (attached only then)' },
  busted_ingress: { required: false, role: 'cutting open flows of blocked processes (attached only then)' },
  busted_connect4: { required: false, role: 'TCP and UDP/QUIC connections tracked, enforcement (IPv4)' },
  busted_connect6: { required: false, role: 'TCP and UDP/QUIC connections tracked, enforcement (IPv6)' },
  busted_sendmsg4: { required: false, role: 'enforcement of unconnected UDP, DNS answers of unconnected resolvers (IPv4)' },
  busted_sendmsg6: { required: false, role: 'enforcement of unconnected UDP, DNS answers of unconnected resolvers (IPv6)' },
  busted_release: { required: false, role: 'TCP and UDP closes' },
  busted_exec: { required: false, role: 'executable paths of short-lived processes' },
  busted_idle: { required: false, role: 'TCP connections that move no byte, announced within seconds (with the cgroup programs)' },
  busted_census: { required: false, role: 'a second witness of TCP connection ends: one no hook saw end is closed within about a minute' },
};

export async function runDoctor(): Promise<DoctorReport> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const kernel = release();

  add({ name: 'kernel', ok: true, detail: kernel, required: true });
  const btf = attempt(() => (checkBtf(), `${BTF_PATH} present`));
  add({ name: 'btf', ...btf, required: true, fix: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y' });
  const priv = privilegeStatus();
  add({
    name: 'privileges',
    ok: priv.ok,
    detail: priv.ok ? (priv.root ? 'root' : 'capabilities present') : `missing ${priv.missing.join(', ')}`,
    required: true,
    fix: 'run busted with sudo, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN',
  });
  const lib = attempt(() => `libbpf ${libbpfVersion()}`);
  add({ name: 'libbpf', ...lib, required: true, fix: 'apt-get install -y libbpf1' });
  const cg = findCgroup2Mount();
  add({
    name: 'cgroup2',
    ok: cg !== null,
    detail: cg ? `mounted at ${cg}` : 'not mounted',
    required: false,
    fix: 'mount -t cgroup2 none /sys/fs/cgroup/unified (needed for enforcement and cgroup identity)',
  });
  add({ name: 'bpf-object', ...objectFresh(), required: false, fix: 'npm run build:bpf' });

  const canLoad = btf.ok && priv.ok && lib.ok;
  for (const name of PROGRAMS) {
    const r = canLoad ? probeHook(name, cg) : { ok: false, detail: 'not tried: BTF, privileges or libbpf missing' };
    const { required, role } = HOOK_ROLE[name];
    add({ name: `hook:${name}`, ok: r.ok, detail: `${r.detail} (${role})`, required });
  }
  return { version: VERSION, kernel, checks, ok: checks.every((c) => c.ok || !c.required), failOpen: FAIL_OPEN };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [`busted ${r.version} doctor — kernel ${r.kernel}`];
  for (const c of r.checks) {
    const mark = c.ok ? 'ok  ' : c.required ? 'FAIL' : 'warn';
    lines.push(`  [${mark}] ${c.name.padEnd(24)} ${c.detail}${!c.ok && c.fix ? ` — fix: ${c.fix}` : ''}`);
  }
  lines.push('', r.failOpen, '');
  const missing = r.checks.filter((c) => !c.ok && c.required).map((c) => c.name);
  lines.push(r.ok ? 'busted can run here.' : `busted cannot run here: ${missing.join(', ')} missing or failing.`);
  return lines.join('\n');
}
