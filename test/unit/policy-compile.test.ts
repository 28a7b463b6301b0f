/** Policy compilation against a fake machine (files, cgroup tree, passwd), and the kernel's form. */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Action } from '../../src/bpf/abi.js';
import { loadAgents } from '../../src/core/agents.js';
import { loadCatalog } from '../../src/core/catalog.js';
import { compilePolicy as kernelForm } from '../../src/core/policy-compile.js';
import { compilePolicy, loadPolicy, parsePolicy, PolicyError, walkCgroups, type CompileEnv, type PolicyFs } from '../../src/core/policy.js';

const catalog = loadCatalog();
const index = (id: string) => catalog.providers().find((p) => p.id === id)!.index;
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/policy/${name}`, import.meta.url));

interface Machine { cgroupRoot: string; files: Record<string, { dev: number; ino: string; dir?: boolean }>; cgroups: Record<string, number> }
const machine = JSON.parse(readFileSync(fixture('machine.json'), 'utf8')) as Machine;

/** The fixture machine as a PolicyFs: files by path, cgroups under the mount by path. */
function fakeFs(m: Machine, extraCgroups: Record<string, number> = {}): PolicyFs & { listed: string[] } {
  const cgroups = { ...m.cgroups, ...extraCgroups };
  const rel = (path: string) => (path === m.cgroupRoot ? '/' : path.startsWith(`${m.cgroupRoot}/`) ? path.slice(m.cgroupRoot.length) : null);
  const listed: string[] = [];
  return {
    listed,
    stat(path) {
      const r = rel(path);
      if (r !== null) return cgroups[r] !== undefined ? { dev: 0x1e, ino: BigInt(cgroups[r]!), isDirectory: true } : null;
      const f = m.files[path];
      return f ? { dev: f.dev, ino: BigInt(f.ino), isDirectory: f.dir ?? false } : null;
    },
    subdirs(path) {
      const r = rel(path);
      if (r === null) return [];
      listed.push(r);
      const prefix = r === '/' ? '/' : `${r}/`;
      return Object.keys(cgroups).filter((p) => p.startsWith(prefix) && p !== r && !p.slice(prefix.length).includes('/')).map((p) => p.slice(prefix.length));
    },
  };
}

const env = (over: Partial<CompileEnv> = {}): CompileEnv => ({
  catalog, cgroupRoot: machine.cgroupRoot, fs: fakeFs(machine), passwdPath: fixture('passwd'), agents: loadAgents(), ...over,
});
const parse = (text: string) => parsePolicy(text, 'p.yaml', catalog);
const rule = (m: string) => parse(`rules:\n  - name: a\n    match: ${m}\n    action: block\n`);
const A = `0123456789ab${'1'.repeat(52)}`;
const POD = '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b4f9c2e_1f3a_4b8e_9d6c_5a7e8f901234.slice';

test('the full fixture: every key resolved on the fake machine', (t) => {
  const c = compilePolicy(loadPolicy(fixture('full.yaml'), catalog), env());
  t.is(c.default, 'audit');
  const [exe, notebooks, pinned, payments, web, pod, agents, local] = c.rules;
  // exe: stat's dev 0x801 (8:1) in the kernel's encoding is 8 << 20 | 1
  t.deepEqual(exe!.kernel, { exeInodes: [{ dev: (8 << 20) | 1, ino: 1234567n }], uids: null, comms: null, cgroups: null });
  t.deepEqual(notebooks!.kernel.uids, [1000]); // the first alice in passwd
  t.deepEqual(notebooks!.providers, [index('openai'), index('anthropic')]);
  t.deepEqual(pinned!.sha256, ['b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c']);
  t.deepEqual(pinned!.kernel, { exeInodes: null, uids: null, comms: null, cgroups: null });
  t.deepEqual(payments!.kernel.cgroups, [{ id: 14n, level: 2, path: '/system.slice/payments.service' }]);
  t.deepEqual(payments!.kernel.comms, ['python3', 'node']);
  t.deepEqual(web!.kernel.cgroups!.map((g) => g.id), [11n, 13n]); // a prefix of two containers: both, outermost dirs only
  t.deepEqual(pod!.kernel.cgroups, [{ id: 22n, level: 3, path: POD }]);
  t.deepEqual(pod!.kernel.uids, [0, 1000]);
  t.true(agents!.userSpaceOnly);
  t.deepEqual(agents!.agents, ['claude', 'codex']);
  t.deepEqual(local!.providers, [index('ollama')]);
  t.false(c.rules.slice(0, 6).some((r) => r.userSpaceOnly));
  t.deepEqual(c.rules.map((r) => r.source.name), loadPolicy(fixture('full.yaml')).rules.map((r) => r.name));
  t.is(c.warnings.length, 2, c.warnings.join('\n'));
  t.regex(c.warnings[0]!, /^policy file .*full\.yaml, line 20, rules\[4\] \(name "web-container"\), key match\.container: 0123456789ab is a prefix of 2 container ids/);
  t.regex(c.warnings[1]!, /rules\[6\] \(name "agents"\), key match\.agent: agent is judged in user space only/);
});

test('exe: missing or a directory is a warning and matches nothing; two paths to one file are one inode', (t) => {
  const c = compilePolicy(rule('{exe: [/opt/ci/bin/runner, /nonexistent/bin, /opt/ci/bin, /opt/ci/bin/runner]}'), env());
  t.deepEqual(c.rules[0]!.kernel.exeInodes, [{ dev: (8 << 20) | 1, ino: 1234567n }]);
  t.regex(c.warnings[0]!, /key match\.exe: \/nonexistent\/bin does not exist: the rule matches no executable there until the policy is compiled again/);
  t.regex(c.warnings[1]!, /\/opt\/ci\/bin is a directory/);
  t.deepEqual(compilePolicy(rule('{exe: /gone}'), env()).rules[0]!.kernel.exeInodes, []);
});

test('user: unknown users are an error naming file, line, rule and key; uid and user must both hold', (t) => {
  const text = 'rules:\n  - name: ok\n    match: {uid: 1}\n    action: audit\n  - name: b\n    match:\n      user: [alice, mallory]\n    action: block\n';
  t.throws(() => compilePolicy(parse(text), env()), {
    instanceOf: PolicyError,
    message: `policy file p.yaml, line 7, rules[1] (name "b"), key match.user: names user "mallory", who is not in ${fixture('passwd')} (a user known only to LDAP or sssd needs uid:)`,
  });
  t.deepEqual(compilePolicy(rule('{user: [alice, bob]}'), env()).rules[0]!.kernel.uids, [1000, 1001]);
  t.deepEqual(compilePolicy(rule('{user: [alice, bob], uid: [1001, 5]}'), env()).rules[0]!.kernel.uids, [1001]);
  const none = compilePolicy(rule('{user: alice, uid: 0}'), env());
  t.deepEqual(none.rules[0]!.kernel.uids, []);
  t.regex(none.warnings[0]!, /no user is both uid 0 and alice: the rule matches nobody/);
  t.deepEqual(compilePolicy(rule('{user: carol}'), env({ uidOf: (n) => (n === 'carol' ? 77 : null) })).rules[0]!.kernel.uids, [77]);
});

test('cgroup: id and level; missing is a warning; no cgroup v2 mount is a warning', (t) => {
  const c = compilePolicy(rule('{cgroup: [/, /system.slice, /system.slice/payments.service, /system.slice/gone.service]}'), env());
  t.deepEqual(c.rules[0]!.kernel.cgroups!.map(({ id, level }) => [id, level]), [[1n, 0], [10n, 1], [14n, 2]]);
  t.regex(c.warnings[0]!, /key match\.cgroup: cgroup \/system\.slice\/gone\.service does not exist under \/sys\/fs\/cgroup/);
  const none = compilePolicy(rule('{cgroup: /system.slice, pod: 0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234}'), env({ cgroupRoot: null }));
  t.deepEqual(none.rules[0]!.kernel.cgroups, []);
  t.is(none.warnings.length, 2);
  t.regex(none.warnings[0]!, /there is no cgroup v2 mount here/);
});

test('container: full id, prefix, podman scope (not its child nor conmon), lxc name, not running', (t) => {
  const ids = (m: string) => compilePolicy(rule(m), env()).rules[0]!.kernel.cgroups!.map(({ id, level }) => [id, level]);
  t.deepEqual(ids(`{container: ${A}}`), [[11n, 2]]);
  t.deepEqual(ids(`{container: ${'d'.repeat(12)}}`), [[23n, 4]]);
  t.deepEqual(ids(`{container: ${'c'.repeat(64)}}`), [[15n, 2]]);
  t.deepEqual(ids('{container: web}'), [[30n, 1]]);
  const gone = compilePolicy(rule(`{container: [${'f'.repeat(12)}, nginx]}`), env());
  t.deepEqual(gone.rules[0]!.kernel.cgroups, []);
  t.regex(gone.warnings[0]!, /no cgroup of container ffffffffffff exists now: the rule matches it once the policy is compiled again/);
  t.regex(gone.warnings[1]!, /no cgroup of container nginx exists now \(docker, podman and kubernetes containers are named by id, not by name\)/);
});

test('pod, and keys narrowing each other: pod and container, cgroup and container', (t) => {
  const cg = (m: string) => compilePolicy(rule(m), env()).rules[0]!.kernel.cgroups!.map((g) => g.id);
  const uid = '0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234';
  t.deepEqual(cg(`{pod: ${uid}}`), [22n]);
  t.deepEqual(cg(`{pod: ${uid}, container: ${'e'.repeat(12)}}`), [24n]);
  t.deepEqual(cg(`{pod: ${uid}, container: ${A}}`), []);
  t.deepEqual(cg(`{cgroup: /kubepods.slice, container: [${'d'.repeat(12)}, ${A}]}`), [23n]);
  t.deepEqual(cg(`{cgroup: [/system.slice/payments.service, /kubepods.slice/kubepods-burstable.slice], pod: ${uid}}`), [22n]);
});

test('the cgroup walk is bounded in depth and entries, and done once per compilation', (t) => {
  const fs = fakeFs(machine);
  t.is(walkCgroups(fs, machine.cgroupRoot).dirs.length, Object.keys(machine.cgroups).length);
  t.deepEqual(walkCgroups(fs, machine.cgroupRoot, 1).dirs.sort(), ['/', '/kubepods.slice', '/lxc.payload.web', '/system.slice', '/user.slice']);
  t.deepEqual(walkCgroups(fs, machine.cgroupRoot, 12, 3), { dirs: ['/', '/system.slice', '/kubepods.slice'], truncated: true });
  const deep: Record<string, number> = {};
  for (let i = 1, p = ''; i <= 14; i++) deep[(p += `/d${i}`)] = 100 + i;
  t.is(Math.max(...walkCgroups(fakeFs(machine, deep), machine.cgroupRoot).dirs.map((d) => d.split('/').length - 1)), 12);
  const counted = fakeFs(machine);
  const c = compilePolicy(rule(`{container: [${A}, web], pod: 0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234}`), env({ fs: counted }));
  t.is(counted.listed.filter((d) => d === '/').length, 1);
  t.deepEqual(c.rules[0]!.kernel.cgroups, []);
  const cut = compilePolicy(rule('{container: web}'), env({ maxCgroupDirs: 2 }));
  t.regex(cut.warnings[0]!, /the cgroup tree under \/sys\/fs\/cgroup has more than 2 directories; only that many were searched/);
});

test('providers map to catalog indices; an unknown provider or agent is an error at compile time', (t) => {
  const c = compilePolicy(rule('{provider: [anthropic, openai, ollama]}'), env());
  t.deepEqual(c.rules[0]!.providers, [index('anthropic'), index('openai'), index('ollama')]);
  t.is(c.rules[0]!.providers![1], 0);
  const unchecked = parsePolicy('rules:\n  - name: a\n    match:\n      provider: skynet\n    action: block\n', 'p.yaml');
  t.throws(() => compilePolicy(unchecked, env()), { message: 'policy file p.yaml, line 4, rules[0] (name "a"), key match.provider: names no provider in the catalog: "skynet" (see catalog/providers.yaml, or add it with --providers)' });
  t.throws(() => compilePolicy(rule('{agent: hal9000}'), env()), { message: /line 3, rules\[0\] \(name "a"\), key match\.agent: names no agent in the agent list: "hal9000"/ });
  t.true(compilePolicy(rule('{agent: hal9000}'), env({ agents: undefined })).rules[0]!.userSpaceOnly);
});

test('the kernel form: action codes, rule bits per sha256, user-space-only rules never match', (t) => {
  const sha = 'a'.repeat(64);
  const p = parse(`default: block\nrules:\n  - {name: h1, match: {sha256: ${sha}}, action: audit}\n  - {name: ag, match: {agent: claude}, action: block}\n  - {name: h2, match: {sha256: [${sha}, ${'b'.repeat(64)}], comm: x}, action: allow}\n  - {name: cg, match: {cgroup: /system.slice}, action: block}\n`);
  const k = kernelForm(p, env());
  t.deepEqual(k.names, ['h1', 'ag', 'h2', 'cg']);
  t.is(k.defaultAction, Action.BLOCK);
  t.deepEqual(k.rules.map((r) => r.action), [Action.AUDIT, Action.BLOCK, Action.ALLOW, Action.BLOCK]);
  t.deepEqual(k.hashRules, new Map([[sha, 0b101n], ['b'.repeat(64), 0b100n]]));
  t.deepEqual(k.rules.map((r) => [r.hash, r.never]), [[true, false], [false, true], [true, false], [false, false]]);
  t.deepEqual(k.rules[3]!.cgroups, [{ id: 10n, level: 1 }]);
  t.deepEqual(k.rules[2]!.comms, ['x']);
});

test('the kernel form refuses a rule that resolves to more cgroups than the kernel holds', (t) => {
  const many: Record<string, number> = {};
  for (let i = 0; i < 9; i++) many[`/system.slice/docker-${'9'.repeat(12)}${String(i).repeat(52)}.scope`] = 500 + i;
  const e = env({ fs: fakeFs(machine, many) });
  t.is(compilePolicy(rule(`{container: ${'9'.repeat(12)}}`), e).rules[0]!.kernel.cgroups!.length, 9);
  t.throws(() => kernelForm(rule(`{container: ${'9'.repeat(12)}}`), e), { message: /line 3, rules\[0\] \(name "a"\), key match\.container: resolves to 9 cgroups; at most 8 fit one rule: split it/ });
});
