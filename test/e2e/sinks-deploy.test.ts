/**
 * deploy/: the systemd unit passes `systemd-analyze verify` and its offline security review, its
 * flags are valid busted flags, its capabilities are enough for full identity when busted runs
 * unprivileged with exactly those (root), and its system-call filter allows every call busted
 * makes (strace, root). The DaemonSet parses as Kubernetes YAML with the fields busted relies on.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseAllDocuments } from 'yaml';
import type { ConnectRecord, EventRecord, ProcessRecord } from '../../src/core/records.js';
import { parseSinkFlags, type RawSinkFlags } from '../../src/sinks/wire.js';
import { BUSTED_BIN, ROOT } from '../helpers/busted.js';
import { kernelTest } from '../helpers/kernel.js';
import { exchangeServer, freePort } from '../helpers/servers.js';

const UNIT = fs.readFileSync(path.join(ROOT, 'deploy/busted.service'), 'utf8');
const DAEMONSET = fs.readFileSync(path.join(ROOT, 'deploy/daemonset.yaml'), 'utf8');
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

/** `Key=value` settings of the unit (a key given twice keeps the last). */
const settings = new Map(UNIT.split('\n').filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const unitCaps = (settings.get('AmbientCapabilities') ?? '').split(/\s+/).filter(Boolean);

/** busted's flags in an argument list → parseSinkFlags' raw shape (and the rest). */
function flagsOf(args: string[]): { raw: RawSinkFlags; format?: string } {
  const raw: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const next = args[i + 1];
    if (next === undefined || next.startsWith('--')) raw[name] = true;
    else {
      raw[name] = /^\d+$/.test(next) && ['recordKeep', 'recordFlush'].includes(name) ? Number(next) : next;
      i++;
    }
  }
  return { raw: raw as RawSinkFlags, format: raw.format as string | undefined };
}

/** The unit with ExecStart pointing at a stub, since /usr/bin/busted is not installed here. */
function unitCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-unit-'));
  fs.writeFileSync(path.join(dir, 'busted'), '#!/bin/sh\n', { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'busted.service'), UNIT.replace('ExecStart=/usr/bin/busted', `ExecStart=${dir}/busted`));
  return path.join(dir, 'busted.service');
}

const analyzeTest = hasAnalyze ? test : test.skip;
const why = hasAnalyze ? '' : ' (skipped: systemd-analyze is not installed on this machine)';

analyzeTest(`the unit passes systemd-analyze verify${why}`, (t) => {
  const unit = unitCopy();
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', cwd: path.dirname(unit), timeout: 30_000 });
  t.is(r.status, 0, r.stderr);
  t.is(r.stderr.trim(), '', 'no warnings');
  fs.rmSync(path.dirname(unit), { recursive: true, force: true });
});

analyzeTest(`the unit's offline security review rates it OK (exposure below 4)${why}`, (t) => {
  const unit = unitCopy();
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', unit], { encoding: 'utf8', timeout: 30_000 });
  fs.rmSync(path.dirname(unit), { recursive: true, force: true });
  const m = /Overall exposure level for busted\.service: ([\d.]+) (\w+)/.exec(r.stdout);
  t.truthy(m, r.stdout + r.stderr);
  t.log(`exposure ${m![1]} ${m![2]}`);
  t.true(Number(m![1]) < 4, `exposure ${m![1]}`);
});

/** The repository paths deploy/Dockerfile copies into the image (COPY lines, the destination left out). */
function imagePaths(): string[] {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
  return dockerfile.split('\n').filter((l) => /^COPY\s/.test(l)).flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
}

test("the image's files (what deploy/Dockerfile copies) are enough for busted to start and for doctor to check its object", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-image-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const p of imagePaths()) fs.cpSync(path.join(ROOT, p), path.join(dir, p), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules')); // the image's npm ci
  const bin = path.join(dir, 'bin/busted.js');
  const version = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', timeout: 60_000 });
  t.is(version.status, 0, version.stderr);
  t.regex(version.stdout, /^\d+\.\d+\.\d+/);
  const doctor = spawnSync(process.execPath, [bin, 'doctor', '--json'], { encoding: 'utf8', timeout: 120_000 });
  t.is(doctor.stderr.trim(), '', 'doctor starts from the image layout');
  const report = JSON.parse(doctor.stdout) as { checks: { name: string; ok: boolean; detail: string }[] };
  t.like(report.checks.find((c) => c.name === 'bpf-object'), { ok: true }, 'the image holds what the object is checked against');
});

test('the unit: hardening settings, only the needed capabilities, and valid busted flags', (t) => {
  t.like(Object.fromEntries(settings), {
    NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'read-only', PrivateTmp: 'yes', PrivateDevices: 'yes',
    ProtectKernelTunables: 'yes', ProtectKernelModules: 'yes', ProtectControlGroups: 'yes', DynamicUser: 'yes',
    LogsDirectory: 'busted', ReadWritePaths: '/var/log/busted', ExecReload: '/bin/kill -HUP $MAINPID',
  });
  t.deepEqual(unitCaps, ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH']);
  t.is(settings.get('CapabilityBoundingSet'), settings.get('AmbientCapabilities'));
  const [bin, ...args] = settings.get('ExecStart')!.split(/\s+/);
  t.is(bin, '/usr/bin/busted');
  const { raw, format } = flagsOf(args);
  t.is(format, 'json');
  t.deepEqual(parseSinkFlags(raw), {
    metrics: '127.0.0.1:9464',
    record: { path: '/var/log/busted/busted.jsonl', maxBytes: 100 * 1024 ** 2, keep: 10 },
  });
});

interface K8s { kind: string; apiVersion: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any }

test('the DaemonSet parses as Kubernetes YAML with host PID, only the needed capabilities, the mounts, and scrape annotations', (t) => {
  const docs = parseAllDocuments(DAEMONSET);
  for (const d of docs) t.deepEqual(d.errors, []);
  const objs = docs.map((d) => d.toJS() as K8s);
  t.deepEqual(objs.map((o) => `${o.apiVersion}/${o.kind}`), [
    'v1/Namespace', 'v1/ServiceAccount', 'rbac.authorization.k8s.io/v1/ClusterRole', 'rbac.authorization.k8s.io/v1/ClusterRoleBinding', 'apps/v1/DaemonSet',
  ]);
  const ds = objs.find((o) => o.kind === 'DaemonSet')!;
  t.is(ds.metadata.namespace, objs[0]!.metadata.name);
  const pod = ds.spec.template;
  t.deepEqual(ds.spec.selector.matchLabels, pod.metadata.labels);
  t.is(pod.spec.hostPID, true);
  t.is(pod.spec.hostNetwork, false);
  t.like(pod.metadata.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9464', 'prometheus.io/path': '/metrics' });
  t.is(pod.spec.containers.length, 1);
  const c = pod.spec.containers[0];
  t.like(c.securityContext, { privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
  t.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  t.deepEqual(c.securityContext.capabilities.add, unitCaps.map((cap) => cap.replace(/^CAP_/, '')), 'the same capabilities as the systemd unit');
  const { raw, format } = flagsOf(c.args);
  t.is(format, 'json', 'JSON lines on stdout for the node log collector');
  t.deepEqual(parseSinkFlags(raw), { metrics: '0.0.0.0:9464' });
  t.deepEqual(c.ports, [{ name: 'metrics', containerPort: 9464, protocol: 'TCP' }]);
  t.like(c.readinessProbe.httpGet, { path: '/metrics', port: 'metrics' });
  const mounts = new Map<string, { mountPath: string; readOnly?: boolean }>(c.volumeMounts.map((m: { name: string }) => [m.name, m]));
  const hostPaths = new Map<string, string>(pod.spec.volumes.filter((v: { hostPath?: unknown }) => v.hostPath).map((v: { name: string; hostPath: { path: string } }) => [v.hostPath.path, v.name]));
  for (const p of ['/sys/fs/cgroup', '/sys/kernel/btf']) {
    const m = mounts.get(hostPaths.get(p)!);
    t.truthy(m, `${p} is mounted`);
    t.is(m!.mountPath, p);
    t.true(m!.readOnly, `${p} is read-only`);
  }
  t.is(mounts.get('tmp')?.mountPath, '/tmp', 'a writable /tmp on a read-only root');
  t.true(c.env.some((e: { name: string }) => e.name === 'NODE_NAME'));
});

test('the DaemonSet may read pods, and only that: a ServiceAccount, a ClusterRole get/list/watch on pods, the binding, NODE_NAME from spec.nodeName', (t) => {
  const objs = parseAllDocuments(DAEMONSET).map((d) => d.toJS() as K8s & { rules?: any[]; roleRef?: any; subjects?: any[] });
  const ns = objs.find((o) => o.kind === 'Namespace')!.metadata.name;
  const sa = objs.find((o) => o.kind === 'ServiceAccount')!;
  const role = objs.find((o) => o.kind === 'ClusterRole')!;
  const binding = objs.find((o) => o.kind === 'ClusterRoleBinding')!;
  const pod = objs.find((o) => o.kind === 'DaemonSet')!.spec.template;
  t.is(sa.metadata.namespace, ns);
  t.deepEqual(role.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
  t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  t.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: ns }]);
  t.is(pod.spec.serviceAccountName, sa.metadata.name);
  t.not(pod.spec.automountServiceAccountToken, false, 'the token is mounted');
  const env = pod.spec.containers[0].env as { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  t.is(env.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
});

const SYSTEM_PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** A client that exchanges 1000/2000 bytes, says its pid, and stays alive a while (so it can be looked at). */
const CLIENT = `
import json, os, socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'q' * 1000)
got = 0
while got < 2000:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += len(chunk)
s.close()
print(json.dumps({'pid': os.getpid(), 'received': got}), flush=True)
time.sleep(15)
`;

/** Runs CLIENT as another user (uid 65533); resolves with its pid once it is done talking. Kill it with stop(). */
async function clientAsOtherUser(port: number): Promise<{ pid: number; stop(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-client-'));
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'client.py'), CLIENT, { mode: 0o644 });
  const child = spawn('setpriv', ['--reuid=65533', '--regid=65533', '--clear-groups', SYSTEM_PYTHON, path.join(dir, 'client.py'), String(port)], { timeout: 20_000 });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const stop = () => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const [line] = (await Promise.race([
    once(createInterface({ input: child.stdout }), 'line'),
    once(child, 'exit').then(() => { throw new Error(`client exited: ${err}`); }),
  ])) as [string];
  const out = JSON.parse(line) as { pid: number; received: number };
  if (out.received !== 2000) throw new Error(`client received ${out.received} bytes`);
  return { pid: out.pid, stop };
}

/** Starts busted with `wrap` in front, waits for its session record, runs `during`, stops it (SIGINT). */
async function runBusted(t: ExecutionContext, wrap: string[], during: (records: EventRecord[]) => Promise<void>): Promise<EventRecord[]> {
  const [cmd, ...rest] = [...wrap, process.execPath, BUSTED_BIN, '--format', 'json', '--all', '--interval', '200'];
  const child = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  const records: EventRecord[] = [];
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  createInterface({ input: child.stdout }).on('line', (l) => records.push(JSON.parse(l) as EventRecord));
  const exited = once(child, 'exit');
  try {
    const deadline = Date.now() + 30_000;
    while (!records.some((r) => r.type === 'session')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`busted did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await during(records);
  } finally {
    // strace passes no signal on: stop busted itself, strace's child
    const tracee = wrap[0] === 'strace' ? Number(fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]) : 0;
    if (tracee > 0) process.kill(tracee, 'SIGINT');
    else child.kill('SIGINT');
    await exited;
  }
  t.is(child.exitCode, 0, err);
  return records;
}

async function until(cond: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

kernelTest("with only the unit's capabilities, as an unprivileged user, busted attaches and names another user's process fully", async (t) => {
  const caps = unitCaps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  const wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', `--inh-caps=-all,${caps}`, `--ambient-caps=-all,${caps}`, `--bounding-set=-all,${caps}`, '--no-new-privs'];
  const server = await exchangeServer('127.0.0.1', 1000, 2000);
  let pid = 0;
  const records = await runBusted(t, wrap, async (live) => {
    const client = await clientAsOtherUser((server.address() as AddressInfo).port);
    pid = client.pid;
    await until(() => live.some((r) => r.type === 'process' && r.pid === pid && r.sha256 !== null));
    client.stop();
  });
  server.close();
  const conn = records.find((r): r is ConnectRecord => r.type === 'connect' && r.pid === pid);
  t.truthy(conn, 'the connect of the other user is seen');
  t.is(conn!.uid, 65533);
  const close = records.find((r) => r.type === 'close' && r.flow === conn!.flow) as { tx: number; rx: number } | undefined;
  t.like(close, { tx: 1000, rx: 2000 });
  const proc = records.filter((r): r is ProcessRecord => r.type === 'process' && r.pid === pid).at(-1);
  t.truthy(proc?.exe, 'the executable path (needs CAP_SYS_PTRACE for another user)');
  t.regex(proc?.sha256 ?? '', /^[0-9a-f]{64}$/, 'the executable hash');
});

/** System calls a seccomp allow list admits: @groups expanded as this systemd defines them. */
function allowedSyscalls(filter: string): Set<string> {
  const groups = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of execFileSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')) {
    const s = line.trim();
    if (s === '' || s.startsWith('#')) continue;
    if (!line.startsWith(' ') && s.startsWith('@')) groups.set(s, (current = []));
    else current?.push(s);
  }
  const expand = (name: string, seen = new Set<string>()): string[] => {
    if (!name.startsWith('@')) return [name];
    if (seen.has(name)) return [];
    seen.add(name);
    return (groups.get(name) ?? []).flatMap((m) => expand(m, seen));
  };
  return new Set(filter.split(/\s+/).filter(Boolean).flatMap((n) => expand(n)));
}

const hasStrace = spawnSync('strace', ['-V']).status === 0;

kernelTest("the unit's SystemCallFilter allows every system call busted makes while it watches real traffic (strace)", async (t) => {
  if (!hasAnalyze || !hasStrace) {
    t.fail(`this test needs ${hasStrace ? 'systemd-analyze (package systemd)' : 'strace (package strace)'}`);
    return;
  }
  const allowed = allowedSyscalls(settings.get('SystemCallFilter')!);
  t.true(allowed.has('bpf') && allowed.has('openat') && allowed.size > 300, `${allowed.size} calls allowed`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-strace-'));
  const log = path.join(dir, 'trace');
  const server = await exchangeServer('127.0.0.1', 1000, 2000);
  try {
    await runBusted(t, ['strace', '-f', '-qq', '-o', log], async (live) => {
      const client = await clientAsOtherUser((server.address() as AddressInfo).port);
      await until(() => live.some((r) => r.type === 'process' && r.pid === client.pid && r.sha256 !== null));
      client.stop();
    });
    const used = new Set<string>();
    for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
      const m = /^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)/.exec(line);
      if (m && m[1] !== 'exit' && m[1] !== 'exit_group' && m[1] !== 'execve') used.add(m[1]!);
    }
    t.true(used.has('bpf') && used.size > 30, `${used.size} distinct calls seen`);
    t.log(`${used.size} distinct system calls made, all within the ${allowed.size} the filter allows`);
    t.deepEqual([...used].filter((c) => !allowed.has(c)).sort(), [], 'calls the filter would refuse');
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest("with only the unit's capabilities busted cannot enter a container's network namespace: it says so once and counts it in busted_census_unreachable_namespaces", async (t) => {
  const caps = unitCaps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  const wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', `--inh-caps=-all,${caps}`, `--ambient-caps=-all,${caps}`, `--bounding-set=-all,${caps}`, '--no-new-privs'];
  const metricsPort = await freePort();
  // an LLM provider's range on loopback: its connections are reported (and judged) as they start
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busted-netns-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const providers = path.join(dir, 'providers.yaml');
  fs.writeFileSync(providers, 'providers:\n  - id: acme-llm\n    name: Acme LLM\n    hosts: [api.acme-llm.test]\n    cidrs: [127.88.0.0/16]\n    source: https://example.test/acme\n', { mode: 0o644 });
  fs.chmodSync(dir, 0o755);
  const [cmd, ...rest] = [...wrap, process.execPath, BUSTED_BIN, '--format', 'json', '--providers', providers, '--metrics', `127.0.0.1:${metricsPort}`];
  const child = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BUSTED_CENSUS_MS: '300' } });
  const records: EventRecord[] = [];
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  createInterface({ input: child.stdout }).on('line', (l) => records.push(JSON.parse(l) as EventRecord));
  const exited = once(child, 'exit');
  await until(() => records.some((r) => r.type === 'session') || child.exitCode !== null, 30_000);
  // a process in a network namespace of its own (a container's) with a connection that sent 10 bytes
  const inNetns = ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"'];
  const client = spawn(inNetns[0]!, [...inNetns.slice(1), 'python3', path.join(ROOT, 'test/helpers/client.py'), 'sent-self', '127.88.0.1', '20']);
  try {
    const first = JSON.parse((await once(createInterface({ input: client.stdout }), 'line'))[0] as string) as { pid: number };
    await until(() => records.some((r) => r.type === 'connect' && r.pid === first.pid));
    t.true(records.some((r) => r.type === 'connect' && r.pid === first.pid), `its connect is reported: ${err}`);
    await until(() => /could not enter the network namespace/.test(err), 10_000);
    t.regex(err, /could not enter the network namespace of 1 process with open flows \(a container's; entering one needs CAP_SYS_ADMIN, and at most 1024 are walked\)/);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    t.regex(metrics, /^busted_census_unreachable_namespaces 1$/m);
    await new Promise((r) => setTimeout(r, 1000)); // more censuses: said once
    t.is(err.match(/could not enter the network namespace/g)?.length, 1, err);
  } finally {
    client.kill();
    child.kill('SIGINT');
    await exited;
  }
});
