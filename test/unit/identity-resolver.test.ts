import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAgents } from '../../src/core/agents.js';
import { FileHasher } from '../../src/core/hash.js';
import { CgroupResolver } from '../../src/core/identity-cgroups.js';
import { parseStat, scanExecutables, userDevToKernel } from '../../src/core/identity-proc.js';
import { IdentityResolver, identityKey, type Identity, type ProcessFacts } from '../../src/core/identity.js';
import { NameDirectory } from '../../src/core/users.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/identity/${name}`, import.meta.url));
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const names = () => new NameDirectory({ passwd: fixture('passwd'), group: fixture('group') });

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'busted-id-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Kernel facts of a file as the executable, as the BPF program records them. */
function exeFacts(path: string): Pick<ProcessFacts, 'exeDev' | 'exeIno'> {
  const st = statSync(path, { bigint: true });
  return { exeDev: userDevToKernel(Number(st.dev)), exeIno: st.ino };
}

interface FakeProc {
  pid: number;
  startTime: number;
  ppid: number;
  comm: string;
  exe: string;
  args: string[];
  cgroup: string;
}

/** Writes /proc/PID/{stat,cmdline,cgroup,exe,root} for a fake process under procRoot. */
function writeProc(procRoot: string, p: FakeProc): void {
  const dir = join(procRoot, String(p.pid));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const fields = ['S', String(p.ppid), ...Array(17).fill('0'), String(p.startTime), '0'];
  writeFileSync(join(dir, 'stat'), `${p.pid} (${p.comm}) ${fields.join(' ')}\n`);
  writeFileSync(join(dir, 'cmdline'), p.args.map((a) => `${a}\0`).join(''));
  writeFileSync(join(dir, 'cgroup'), `0::${p.cgroup}\n`);
  symlinkSync(p.exe, join(dir, 'exe'));
  symlinkSync('/', join(dir, 'root'));
}

function facts(p: FakeProc, over: Partial<ProcessFacts> = {}): ProcessFacts {
  return { pid: p.pid, startTime: p.startTime, ...exeFacts(p.exe), uid: 1000, gid: 27, cgroupId: 0n, comm: p.comm, ...over };
}

function resolver(procRoot: string, extra: Partial<ConstructorParameters<typeof IdentityResolver>[0]> = {}): IdentityResolver {
  return new IdentityResolver({
    procRoot, names: names(), cgroups: new CgroupResolver({ mount: null }), agents: loadAgents(), ...extra,
  });
}

test('parseStat: comm with spaces and parentheses', (t) => {
  const s = parseStat('42 (my (weird) comm) S 7 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0\n');
  t.deepEqual(s, { comm: 'my (weird) comm', state: 'S', ppid: 7, startTime: 98765 });
});

test('lookup answers at once with kernel facts and names, then fills in /proc details and the hash', async (t) => {
  const dir = tempDir(t);
  const procRoot = join(dir, 'proc');
  const exe = join(dir, 'tool');
  writeFileSync(exe, 'tool binary v1');
  const p: FakeProc = { pid: 4242, startTime: 1000, ppid: 1, comm: 'tool', exe, args: ['tool', '--api-key', 'sk-abcdefghijklmnopqrstuvwxyz', 'run'], cgroup: '/system.slice/docker-' + 'a'.repeat(64) + '.scope' };
  writeProc(procRoot, p);
  writeProc(procRoot, { pid: 1, startTime: 1, ppid: 0, comm: 'init', exe: '/bin/sh', args: ['init'], cgroup: '/' });
  const r = resolver(procRoot);
  const changes: Identity[] = [];
  r.onChange((key, id) => {
    t.is(key, '4242:1000');
    changes.push(id);
  });
  const first = r.lookup(facts(p));
  t.deepEqual(first, {
    exe: null, sha256: null, exeReplaced: false, cmdline: null, user: 'alice', group: 'sudo', ppid: null, parents: [],
    cgroup: null, container: null, pod: null, agent: null, startTime: 1000,
  });
  await r.idle();
  const id = r.get(identityKey(4242, 1000))!;
  t.is(id.exe, exe);
  t.is(id.sha256, sha('tool binary v1'));
  t.false(id.exeReplaced);
  t.is(id.cmdline, 'tool --api-key *** run', 'the key is not kept');
  t.is(id.ppid, 1);
  t.deepEqual(id.parents, [{ pid: 1, comm: 'init', exe: '/bin/sh' }]);
  t.is(id.cgroup, p.cgroup, 'no cgroup2 mount: the /proc path');
  t.deepEqual(id.container, { id: 'a'.repeat(64), runtime: 'docker' });
  t.true(changes.length >= 1);
  t.deepEqual(changes.at(-1), id);
  t.is(r.lookup(facts(p)), id, 'a known identity is answered from the cache');
});

test('a reused pid is a new identity with its own exe and hash; the old one is never merged or re-read', async (t) => {
  const dir = tempDir(t);
  const procRoot = join(dir, 'proc');
  const exeA = join(dir, 'a');
  const exeB = join(dir, 'b');
  writeFileSync(exeA, 'program A');
  writeFileSync(exeB, 'program B');
  const a: FakeProc = { pid: 777, startTime: 5000, ppid: 1, comm: 'a', exe: exeA, args: ['a'], cgroup: '/' };
  const b: FakeProc = { ...a, startTime: 9000, comm: 'claude', exe: exeB, args: ['claude'] };
  writeProc(procRoot, a);
  const r = resolver(procRoot);
  r.lookup(facts(a));
  await r.idle();
  const idA = r.get('777:5000')!;
  t.is(idA.sha256, sha('program A'));

  writeProc(procRoot, b); // pid 777 exited and was reused
  const idB0 = r.lookup(facts(b));
  t.is(idB0.startTime, 9000);
  t.is(idB0.sha256, null, 'nothing of A carries over');
  t.deepEqual(idB0.agent, { id: 'claude', label: 'Claude Code' }, 'its comm is known at once');
  await r.idle();
  const idB = r.get('777:9000')!;
  t.is(idB.exe, exeB);
  t.is(idB.sha256, sha('program B'));
  t.is(idB.cmdline, 'claude');
  t.deepEqual(r.get('777:5000'), idA, 'A is unchanged');
  t.is(r.lookup(facts(a)), idA);

  // a resolver that first hears of A now, while /proc shows B, must not take B's details for A
  const late = resolver(procRoot);
  late.lookup(facts(a));
  await late.idle();
  const lateA = late.get('777:5000')!;
  t.is(lateA.cmdline, null);
  t.is(lateA.exe, null);
  t.is(lateA.sha256, null);
  t.is(lateA.ppid, null);
});

test('a process that exited before we looked gets the exe path learned from another process of the same binary', async (t) => {
  const dir = tempDir(t);
  const procRoot = join(dir, 'proc');
  const exe = join(dir, 'shared-tool');
  writeFileSync(exe, 'shared');
  const live: FakeProc = { pid: 10, startTime: 100, ppid: 1, comm: 'shared-tool', exe, args: ['shared-tool'], cgroup: '/' };
  writeProc(procRoot, live);
  const r = resolver(procRoot);
  r.lookup(facts(live));
  await r.idle();
  // pid 11 ran the same file and is gone
  const gone = r.lookup({ pid: 11, startTime: 150, ...exeFacts(exe), uid: 0, gid: 0, cgroupId: 0n, comm: 'shared-tool' });
  t.is(gone.exe, exe, 'known at once');
  await r.idle();
  const id = r.get('11:150')!;
  t.is(id.exe, exe);
  t.is(id.sha256, sha('shared'));
  t.is(id.user, 'root');
  t.is(id.cmdline, null);

  // the path now holds another file: no longer trusted for that inode
  const other = r.lookup({ pid: 12, startTime: 160, exeDev: exeFacts(exe).exeDev, exeIno: exeFacts(exe).exeIno + 1000n, uid: 0, gid: 0, cgroupId: 0n });
  t.is(other.exe, null);
  // the file at the learned path was replaced: a later dead process of the old inode gets no path
  const oldFacts = exeFacts(exe);
  renameSync(exe, `${exe}.old`);
  writeFileSync(exe, 'replaced');
  r.lookup({ pid: 13, startTime: 170, ...oldFacts, uid: 0, gid: 0, cgroupId: 0n });
  await r.idle();
  t.is(r.get('13:170')!.sha256, null, 'the new file is not hashed for the old inode');
  t.is(r.get('13:170')!.exe, null, 'and the path is not claimed');
});

test('seeded executables: a process never seen alive still gets the path and hash of an installed binary', async (t) => {
  const dir = tempDir(t);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const tool = join(bin, 'gemini');
  writeFileSync(tool, 'installed binary', { mode: 0o755 });
  writeFileSync(join(bin, 'README'), 'not executable', { mode: 0o644 });
  symlinkSync(tool, join(bin, 'gem-link'));
  const r = resolver(join(dir, 'proc'));
  t.is(await r.seedExecutables([bin, bin, join(dir, 'missing')]), 1, 'regular executable files only, each directory once');
  const dead: ProcessFacts = { pid: 31337, startTime: 5, ...exeFacts(tool), uid: 1000, gid: 1000, cgroupId: 0n, comm: 'gemini' };
  t.is(r.lookup(dead).exe, tool);
  await r.idle();
  const id = r.get('31337:5')!;
  t.is(id.exe, tool);
  t.is(id.sha256, sha('installed binary'));
  t.deepEqual(id.agent, { id: 'gemini', label: 'Gemini CLI' });
});

test('scanning executables: a directory of more files than one batch is read whole, up to the limit', async (t) => {
  const dir = tempDir(t);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (let i = 0; i < 700; i++) writeFileSync(join(bin, `tool-${i}`), '', { mode: 0o755 });
  for (let i = 0; i < 10; i++) writeFileSync(join(bin, `notes-${i}`), '', { mode: 0o644 });
  const executable = 700;
  const files = await scanExecutables([bin]);
  t.is(files.length, executable, 'every executable, none of the others: none lost at a batch boundary');
  t.is(new Set(files.map((f) => f.path)).size, executable);
  t.true(files.every((f) => f.path.startsWith(`${bin}/tool-`) && f.ino > 0n));
  t.is((await scanExecutables([bin], 250)).length, 250, 'at most the limit');
});

test('new kernel facts for a known identity (it exec()ed): enriched again for the new program', async (t) => {
  const dir = tempDir(t);
  const procRoot = join(dir, 'proc');
  const before = join(dir, 'sh');
  const after = join(dir, 'codex');
  writeFileSync(before, 'shell');
  writeFileSync(after, 'codex binary');
  const p: FakeProc = { pid: 55, startTime: 10, ppid: 1, comm: 'codex', exe: after, args: ['codex', 'exec'], cgroup: '/' };
  writeProc(procRoot, p);
  const r = resolver(procRoot);
  r.lookup(facts(p, exeFacts(before))); // the kernel saw it before the exec
  await r.idle();
  t.is(r.get('55:10')!.exe, null, '/proc shows another program than the kernel recorded');
  t.is(r.get('55:10')!.cmdline, null);
  r.lookup(facts(p)); // a later connect, after the exec
  await r.idle();
  const id = r.get('55:10')!;
  t.is(id.exe, after);
  t.is(id.sha256, sha('codex binary'));
  t.deepEqual(id.agent, { id: 'codex', label: 'OpenAI Codex CLI' });
});

test('with a cgroup2 mount, the kernel cgroup id gives the path, container and pod even when /proc is gone', async (t) => {
  const dir = tempDir(t);
  const mount = join(dir, 'cgroup');
  const uid = '1a2b3c4d-0000-4000-8000-00000000abcd';
  const cid = 'c'.repeat(64);
  const path = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-${cid}.scope`;
  mkdirSync(mount + path, { recursive: true });
  const cgroupId = statSync(mount + path, { bigint: true }).ino;
  const r = resolver(join(dir, 'proc'), { cgroups: new CgroupResolver({ mount, minWalkIntervalMs: 0 }) });
  r.lookup({ pid: 99, startTime: 1, exeDev: 0, exeIno: 0n, uid: 65534, gid: 65534, cgroupId });
  await r.idle();
  const id = r.get('99:1')!;
  t.is(id.cgroup, path);
  t.deepEqual(id.container, { id: cid, runtime: 'containerd' });
  t.deepEqual(id.pod, { uid, qos: 'burstable' });
  t.is(id.user, 'nobody');
  t.is(id.group, 'nogroup');
  // the next identity in that cgroup knows it at once
  t.is(r.lookup({ pid: 100, startTime: 2, exeDev: 0, exeIno: 0n, uid: 0, gid: 0, cgroupId }).cgroup, path);
});

test('a process forgotten (it exited) before its enrichment ran or its hash was done still gets them, told to the listeners', async (t) => {
  const dir = tempDir(t);
  const procRoot = join(dir, 'proc');
  const mount = join(dir, 'cgroup');
  mkdirSync(join(mount, 'jobs', 'quick'), { recursive: true });
  const cgroupId = statSync(join(mount, 'jobs', 'quick'), { bigint: true }).ino;
  const exe = join(dir, 'quick-tool');
  writeFileSync(exe, 'quick tool');
  const r = resolver(procRoot, { concurrency: 1, cgroups: new CgroupResolver({ mount, minWalkIntervalMs: 0 }) });
  const told = new Map<string, Identity>();
  r.onChange((key, id) => told.set(key, id));
  // an installed binary (what the seeded paths give), run by three processes that are gone
  // from /proc: the first is forgotten while its enrichment runs, the second while it waits
  // behind the first, the third once enriched but with its hash still to do
  const gone = (pid: number): ProcessFacts => ({ pid, startTime: 7, ...exeFacts(exe), uid: 0, gid: 0, cgroupId, execPath: exe });
  r.lookup(gone(21));
  r.lookup(gone(22));
  r.forget('21:7');
  r.forget('22:7');
  t.is(r.get('21:7'), null, 'not looked up any more');
  t.is(r.get('22:7'), null);
  await r.idle();
  for (const key of ['21:7', '22:7']) {
    t.is(told.get(key)?.sha256, sha('quick tool'), `${key}: its hash is told`);
    t.is(told.get(key)?.cgroup, '/jobs/quick', `${key}: its cgroup is told`);
    t.is(r.get(key), null, `${key}: still forgotten`);
  }
  // forgotten while only its hash was pending: the hasher is busy with a large file first
  const big = join(dir, 'big');
  writeFileSync(big, Buffer.alloc(64 * 1024 * 1024));
  const hasher = new FileHasher();
  const r2 = resolver(procRoot, { hasher, cgroups: new CgroupResolver({ mount, minWalkIntervalMs: 0 }) });
  const told2 = new Map<string, Identity>();
  r2.onChange((key, id) => told2.set(key, id));
  const bigHash = hasher.hash(big);
  r2.lookup(gone(23));
  while (told2.get('23:7')?.cgroup !== '/jobs/quick') await new Promise((res) => setTimeout(res, 1));
  t.true(hasher.reading || hasher.pending > 0, 'the big file is still being hashed');
  t.is(told2.get('23:7')?.sha256, null);
  r2.forget('23:7');
  await bigHash;
  await r2.idle();
  t.is(told2.get('23:7')?.sha256, sha('quick tool'), 'the hash done after forget() is told');
  // a new identity under the same key is not overwritten by a forgotten one's late results
  t.is(r2.get('23:7'), null);
});

test('enrichment is bounded: beyond maxWaiting, identities keep the kernel facts', async (t) => {
  const dir = tempDir(t);
  const r = resolver(join(dir, 'proc'), { concurrency: 1, maxWaiting: 2 });
  for (let pid = 1; pid <= 10; pid++) r.lookup({ pid, startTime: 1, exeDev: 0, exeIno: 0n, uid: 0, gid: 0, cgroupId: 0n });
  t.is(r.stats.dropped, 7, 'one running, two waiting');
  await r.idle();
  t.is(r.stats.enriched, 3);
  t.is(r.get('10:1')!.user, 'root', 'kernel facts and names still there');
});

test('identities are bounded: the least recently looked up is dropped', (t) => {
  const dir = tempDir(t);
  const r = resolver(join(dir, 'proc'), { maxIdentities: 3 });
  const f = (pid: number): ProcessFacts => ({ pid, startTime: 1, exeDev: 0, exeIno: 0n, uid: 0, gid: 0, cgroupId: 0n });
  r.lookup(f(1));
  r.lookup(f(2));
  r.lookup(f(3));
  r.lookup(f(1)); // 1 is now the most recent
  r.lookup(f(4));
  t.is(r.get('2:1'), null);
  t.truthy(r.get('1:1'));
  r.forget('1:1');
  t.is(r.get('1:1'), null);
});

// ---------------------------------------------------------------------------------------------
// Real processes (this machine's /proc)

function startCopy(t: { teardown(fn: () => void): void }, exe: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(exe, args, { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    child.once('spawn', () => {
      // wait until the exec is done (the child's exe is the copy, not node)
      const check = () => {
        try {
          if (statSync(`/proc/${child.pid}/exe`).ino === statSync(exe).ino) return resolve(child);
        } catch {
          // not yet
        }
        setTimeout(check, 2);
      };
      check();
    });
    child.once('error', reject);
  });
}

function realFacts(pid: number, exeAtStart: { exeDev: number; exeIno: bigint }): ProcessFacts {
  const st = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))!;
  return { pid, startTime: st.startTime, ...exeAtStart, uid: 0, gid: 0, cgroupId: 0n, comm: st.comm };
}

test('a running copy of a binary: exe, hash of what runs, cmdline and parent chain to pid 1', async (t) => {
  const dir = tempDir(t);
  const exe = join(dir, 'claude');
  copyFileSync('/bin/sleep', exe);
  const child = await startCopy(t, exe, ['30']);
  const r = new IdentityResolver({ names: names(), agents: loadAgents() });
  r.lookup(realFacts(child.pid!, exeFacts(exe)));
  await r.idle();
  const id = r.get(identityKey(child.pid!, realFacts(child.pid!, exeFacts(exe)).startTime))!;
  t.is(id.exe, exe);
  t.false(id.exeReplaced);
  t.is(id.sha256, sha(readFileSync('/bin/sleep')));
  t.is(id.cmdline, `${exe} 30`);
  t.deepEqual(id.agent, { id: 'claude', label: 'Claude Code' }, 'a copy renamed claude');
  t.is(id.ppid, process.pid);
  t.is(id.parents[0]!.pid, process.pid);
  t.is(id.parents.at(-1)!.pid, 1);
  t.not(id.cgroup, null);
});

test('a binary replaced on disk after the process started is flagged, and what runs is hashed', async (t) => {
  const dir = tempDir(t);
  const exe = join(dir, 'tool');
  copyFileSync('/bin/sleep', exe);
  const original = sha(readFileSync(exe));
  const atStart = exeFacts(exe);
  const child = await startCopy(t, exe, ['30']);
  // replace: a new file renamed over the path (what package managers and `install` do)
  writeFileSync(`${exe}.new`, 'a different program');
  renameSync(`${exe}.new`, exe);
  const r = new IdentityResolver({ names: names() });
  const f = realFacts(child.pid!, atStart);
  r.lookup(f);
  await r.idle();
  const id = r.get(identityKey(f.pid, f.startTime))!;
  t.true(id.exeReplaced);
  t.is(id.exe, exe);
  t.is(id.sha256, original, 'the running (old) binary, from /proc/PID/exe');

  // deleted outright: /proc/PID/exe ends with " (deleted)"
  unlinkSync(exe);
  const r2 = new IdentityResolver({ names: names() });
  r2.lookup(f);
  await r2.idle();
  const id2 = r2.get(identityKey(f.pid, f.startTime))!;
  t.true(id2.exeReplaced);
  t.is(id2.exe, exe, 'without the " (deleted)" suffix');
  t.is(id2.sha256, original);
});

test('a process that exec()ed another program since the kernel recorded it: no /proc exe or cmdline for the old one', async (t) => {
  const dir = tempDir(t);
  const exe = join(dir, 'now-running');
  copyFileSync('/bin/sleep', exe);
  const child = await startCopy(t, exe, ['30']);
  const f = realFacts(child.pid!, { exeDev: exeFacts(exe).exeDev, exeIno: exeFacts(exe).exeIno + 7n });
  const r = new IdentityResolver({ names: names() });
  r.lookup(f);
  await r.idle();
  const id = r.get(identityKey(f.pid, f.startTime))!;
  t.is(id.exe, null);
  t.is(id.cmdline, null);
  t.is(id.sha256, null);
  t.is(id.ppid, process.pid, 'the parent is still right');
});
