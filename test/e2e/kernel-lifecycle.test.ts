/**
 * Fail-open and clear failures, against the real kernel: a SIGKILLed busted leaves nothing
 * loaded or attached; without root, without BTF or without libbpf busted says why and exits 1.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libbpf } from '../../src/bpf/libbpf.js';
import { PACKET_PROGRAMS, PROGRAMS, STATE_PROGRAM } from '../../src/bpf/probe.js';
import { bpfIdsOf, packetAttached } from '../helpers/bpfmaps.js';
import { kernelTest } from '../helpers/kernel.js';
import { BUSTED_BIN, ROOT, startBusted } from '../helpers/busted.js';

function stillExists(kind: 'prog' | 'link', id: number): boolean {
  const lib = libbpf();
  const fd = (kind === 'prog' ? lib.bpf_prog_get_fd_by_id(id) : lib.bpf_link_get_fd_by_id(id)) as number;
  if (fd < 0) return false;
  closeSync(fd);
  return true;
}

/** Waits up to `ms` for the kernel to free them (it does so asynchronously); returns what is left. */
async function remainingAfter(ids: { progs: number[]; links: number[] }, ms: number): Promise<string[]> {
  const deadline = Date.now() + ms;
  const left = () => [
    ...ids.progs.filter((id) => stillExists('prog', id)).map((id) => `prog ${id}`),
    ...ids.links.filter((id) => stillExists('link', id)).map((id) => `link ${id}`),
  ];
  let now = left();
  while (now.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    now = left();
  }
  return now;
}

kernelTest('after SIGKILL none of busted\'s programs or links remains within 2 s (fail-open)', async (t) => {
  const busted = await startBusted();
  const pid = busted.child.pid!;
  const ids = bpfIdsOf(pid);
  t.true(ids.progs.length >= PROGRAMS.length, `programs held by busted: ${ids.progs.join(',')}`);
  // every program but the packet ones, which are attached only while a flow is cut, and the
  // state-change tracepoint, attached only where the cgroup programs are not
  t.true(ids.links.length >= PROGRAMS.length - PACKET_PROGRAMS.length - 1, `links held by busted: ${ids.links.join(',')}`);
  t.true(PROGRAMS.includes(STATE_PROGRAM));
  t.true(ids.progs.every((id) => stillExists('prog', id)));
  // program ids attached to any cgroup (other busted instances of concurrent tests may be there too)
  const attached = () => execFileSync('bpftool', ['cgroup', 'tree'], { encoding: 'utf8' }).split('\n')
    .map((l) => Number(/^\s*(\d+)\s/.exec(l)?.[1] ?? NaN)).filter((id) => ids.progs.includes(id));
  t.true(attached().length >= 5, 'busted programs attached to the cgroup v2 root while it runs');
  t.deepEqual(packetAttached(ids.progs), [], 'no packet program attached while nothing is cut');
  busted.child.kill('SIGKILL');
  await busted.stop();
  t.deepEqual(await remainingAfter(ids, 2000), [], 'programs or links still present 2 s after SIGKILL');
  t.deepEqual(attached(), [], 'busted programs still attached to a cgroup after SIGKILL');
});

kernelTest('SIGTERM ends busted cleanly with exit 0 and releases everything', async (t) => {
  const busted = await startBusted();
  const pid = busted.child.pid!;
  const ids = bpfIdsOf(pid);
  busted.child.kill('SIGTERM');
  t.is(await busted.stop(), 0);
  t.true(ids.links.length >= 3);
  t.deepEqual(await remainingAfter(ids, 2000), []);
});

function runBusted(prefix: string[], env: NodeJS.ProcessEnv = {}) {
  const [cmd, ...args] = [...prefix, process.execPath, BUSTED_BIN, '--duration', '1'];
  return spawnSync(cmd!, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
}

kernelTest('busted loads while signals keep arriving (node --cpu-prof: SIGPROF every ms), which fails the verifier unless they are held', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-prof-'));
  try {
    const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, BUSTED_BIN, '--duration', '1'],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stderr, /busted: attached/);
    t.notRegex(r.stderr, /EWOULDBLOCK|EAGAIN|could not be attached/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('without root busted says what it needs and exits 1', async (t) => {
  const r = runBusted(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--']);
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /busted needs root or CAP_BPF\+CAP_PERFMON\+CAP_NET_ADMIN .*sudo/);
  t.is(r.stderr.trim().split('\n').length, 1);
});

kernelTest('without kernel BTF busted says so and exits 1', async (t) => {
  // hide /sys/kernel/btf in a private mount namespace
  const r = runBusted(['unshare', '--mount', '--', 'sh', '-c', 'mount -t tmpfs none /sys/kernel/btf && exec "$@"', 'sh']);
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /no BTF at \/sys\/kernel\/btf\/vmlinux.*CONFIG_DEBUG_INFO_BTF/);
});

kernelTest('without libbpf.so.1 busted says how to install it and exits 1', async (t) => {
  const r = runBusted([], { BUSTED_LIBBPF: '/nonexistent/libbpf.so.1' });
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /needs libbpf\.so\.1 .*apt-get install -y libbpf1/);
});

kernelTest('busted doctor reports every hook as loading here and exits 0', async (t) => {
  const r = spawnSync(process.execPath, [BUSTED_BIN, 'doctor', '--json'], { encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; ok: boolean }[]; failOpen: string };
  t.true(report.ok);
  for (const prog of PROGRAMS) t.true(report.checks.find((c) => c.name === `hook:${prog}`)?.ok, prog);
  t.regex(report.failOpen, /fail-open/);
});

kernelTest('busted doctor as a non-root user exits non-zero and names the missing privileges', async (t) => {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--', process.execPath, BUSTED_BIN, 'doctor'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.is(r.status, 1, r.stdout + r.stderr);
  t.regex(r.stdout, /\[FAIL\] privileges\s+missing CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN/);
  t.regex(r.stdout, /busted cannot run here: privileges/);
});

