/**
 * Policy compilation against this machine's real cgroup v2 mount (root): a child cgroup the test
 * creates is found by path and, named like a docker container's scope, by container id; a process
 * moved into it matches. Skipped without root or without a cgroup v2 mount.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { findCgroup2Mount } from '../../src/bpf/preflight.js';
import { loadCatalog } from '../../src/core/catalog.js';
import { ancestorsFromIds, compilePolicy, decide, matchIdentity, parsePolicy } from '../../src/core/policy.js';

const mount = findCgroup2Mount();
const usable = mount !== null && process.getuid?.() === 0;
const real = usable ? test.serial : test.serial.skip;
const catalog = loadCatalog();
const top = `/busted-policy-test-${process.pid}`;
const id = `${process.pid.toString(16).padStart(8, '0')}${'a'.repeat(56)}`;
const scope = `${top}/docker-${id}.scope`;
const leaf = `${scope}/leaf`;
const created: string[] = [];

test.after.always(async () => {
  for (const rel of created.reverse()) {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(`${mount}${rel}`);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
        await sleep(20); // the last process's exit is still being accounted
      }
    }
  }
});

const compile = (m: string) =>
  compilePolicy(parsePolicy(`rules:\n  - name: t\n    match: ${m}\n    action: block\n`, 'p.yaml', catalog), { catalog, cgroupRoot: mount });
const inode = (rel: string) => statSync(`${mount}${rel}`, { bigint: true }).ino;

real('a cgroup rule resolves to the directory inode and its depth; container rules find the scope', (t) => {
  for (const rel of [top, scope, leaf]) {
    mkdirSync(`${mount}${rel}`);
    created.push(rel);
  }
  const c = compile(`{cgroup: [${top}, ${leaf}]}`);
  t.deepEqual(c.warnings, []);
  t.deepEqual(c.rules[0]!.kernel.cgroups, [{ id: inode(top), level: 1, path: top }, { id: inode(leaf), level: 3, path: leaf }]);
  t.deepEqual(compile(`{container: ${id.slice(0, 12)}}`).rules[0]!.kernel.cgroups, [{ id: inode(scope), level: 2, path: scope }]);
  t.deepEqual(compile('{cgroup: /}').rules[0]!.kernel.cgroups, [{ id: inode('/'), level: 0, path: '/' }]);
  const gone = compile(`{cgroup: ${top}/missing}`);
  t.deepEqual(gone.rules[0]!.kernel.cgroups, []);
  t.is(gone.warnings.length, 1);
});

real('a process in a child of the rule\'s cgroup matches, by the ids of its cgroup path', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    writeFileSync(`${mount}${leaf}/cgroup.procs`, String(child.pid));
    const path = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3);
    t.is(path, leaf);
    const ids = [inode('/')];
    let p = '';
    for (const seg of path.split('/').filter(Boolean)) ids.push(inode((p += `/${seg}`)));
    const who = { uid: 0, comm: 'sleep', exeDev: 0, exeIno: 0n, cgroupAncestors: ancestorsFromIds(ids), sha256: null, agent: null };
    t.true(matchIdentity(compile(`{cgroup: ${top}}`).rules[0]!, who, 0));
    t.true(matchIdentity(compile(`{container: ${id}}`).rules[0]!, who, 0));
    t.deepEqual(decide(compile('{cgroup: /system.slice}'), who, 0), { action: 'allow', rule: 'default' });
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
  }
});
