/** The policy's decision in user space: each field, lists, all-fields-must-match, first match wins, default. */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadCatalog } from '../../src/core/catalog.js';
import {
  ancestorsFromIds, compilePolicy, decide, hashRuleMask, loadPolicy, matchIdentity, parsePolicy, ruleMatchesHash,
  type CompiledPolicy, type CompiledRule, type PolicyFs, type PolicySubject,
} from '../../src/core/policy.js';

const catalog = loadCatalog();
const index = (id: string) => catalog.providers().find((p) => p.id === id)!.index;
const OPENAI = index('openai');
const ANTHROPIC = index('anthropic');
const OLLAMA = index('ollama');
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/policy/${name}`, import.meta.url));
const machine = JSON.parse(readFileSync(fixture('machine.json'), 'utf8')) as { cgroupRoot: string; files: Record<string, { dev: number; ino: string }>; cgroups: Record<string, number> };

const fs: PolicyFs = {
  stat(path) {
    const rel = path === machine.cgroupRoot ? '/' : path.slice(machine.cgroupRoot.length);
    if (path.startsWith(machine.cgroupRoot) && machine.cgroups[rel] !== undefined) return { dev: 0x1e, ino: BigInt(machine.cgroups[rel]!), isDirectory: true };
    const f = machine.files[path];
    return f ? { dev: f.dev, ino: BigInt(f.ino), isDirectory: false } : null;
  },
  subdirs(path) {
    const rel = path === machine.cgroupRoot ? '/' : path.slice(machine.cgroupRoot.length);
    const prefix = rel === '/' ? '/' : `${rel}/`;
    return Object.keys(machine.cgroups).filter((p) => p.startsWith(prefix) && p !== rel && !p.slice(prefix.length).includes('/')).map((p) => p.slice(prefix.length));
  },
};
const compile = (text: string): CompiledPolicy =>
  compilePolicy(parsePolicy(text, 'p.yaml', catalog), { catalog, cgroupRoot: machine.cgroupRoot, fs, passwdPath: fixture('passwd') });
const ruleOf = (m: string): CompiledRule => compile(`rules:\n  - name: a\n    match: ${m}\n    action: block\n`).rules[0]!;

/** Cgroup ids from the root down to the process's own cgroup, from fixture paths. */
const chain = (path: string) => {
  const ids = [BigInt(machine.cgroups['/']!)];
  let p = '';
  for (const seg of path.split('/').filter(Boolean)) ids.push(BigInt(machine.cgroups[(p += `/${seg}`)]!));
  return ancestorsFromIds(ids);
};
const RUNNER = { exeDev: (8 << 20) | 1, exeIno: 1234567n };
const who = (over: Partial<PolicySubject> = {}): PolicySubject => ({
  uid: 1000, comm: 'python3', exeDev: (8 << 20) | 1, exeIno: 42n, cgroupAncestors: chain('/user.slice/user-1000.slice'),
  sha256: null, agent: null, ...over,
});

test('each field, single values and lists', (t) => {
  const cases: [string, Partial<PolicySubject>, boolean][] = [
    ['{exe: /opt/ci/bin/runner}', RUNNER, true],
    ['{exe: /opt/ci/bin/runner}', {}, false],
    ['{exe: /opt/ci/bin/runner}', { ...RUNNER, exeDev: 8 << 20 }, false], // same inode, other device
    ['{exe: [/usr/bin/python3, /opt/ci/bin/runner]}', {}, true],
    ['{exe: /not/installed}', RUNNER, false],
    ['{uid: 1000}', {}, true],
    ['{uid: [0, 1001]}', {}, false],
    ['{user: alice}', {}, true],
    ['{user: [root, bob]}', {}, false],
    ['{comm: python3}', {}, true],
    ['{comm: [node, bun]}', {}, false],
    ['{cgroup: /user.slice}', {}, true], // an ancestor covers its descendants
    ['{cgroup: /user.slice/user-1000.slice}', {}, true],
    ['{cgroup: /system.slice}', {}, false],
    ['{cgroup: /system.slice/payments.service}', { cgroupAncestors: chain('/user.slice') }, false], // above the rule's level
    [`{container: ${'d'.repeat(12)}}`, { cgroupAncestors: chain(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b4f9c2e_1f3a_4b8e_9d6c_5a7e8f901234.slice/cri-containerd-${'d'.repeat(64)}.scope`) }, true],
    ['{pod: 0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234}', { cgroupAncestors: chain(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b4f9c2e_1f3a_4b8e_9d6c_5a7e8f901234.slice/cri-containerd-${'e'.repeat(64)}.scope`) }, true],
    [`{container: ${'c'.repeat(12)}}`, { cgroupAncestors: chain(`/system.slice/libpod-${'c'.repeat(64)}.scope/container`) }, true],
    [`{container: ${'c'.repeat(12)}}`, { cgroupAncestors: chain(`/system.slice/libpod-conmon-${'c'.repeat(64)}.scope`) }, false], // its monitor
    [`{sha256: ${'A'.repeat(64)}}`, { sha256: 'a'.repeat(64) }, true],
    [`{sha256: ${'a'.repeat(64)}}`, { sha256: null }, false], // not hashed yet
    [`{sha256: [${'b'.repeat(64)}, ${'a'.repeat(64)}]}`, { sha256: 'A'.repeat(64) }, true],
    ['{agent: claude}', { agent: 'claude' }, true],
    ['{agent: [codex, aider]}', { agent: 'claude' }, false],
    ['{agent: claude}', {}, false],
  ];
  for (const [m, over, expected] of cases) t.is(matchIdentity(ruleOf(m), who(over), OPENAI), expected, `${m} ${JSON.stringify(over, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
});

test('providers: null is any; otherwise one of the catalog indices', (t) => {
  t.true(matchIdentity(ruleOf('{uid: 1000}'), who(), OLLAMA));
  const r = ruleOf('{uid: 1000, provider: [openai, anthropic]}');
  t.true(matchIdentity(r, who(), OPENAI));
  t.true(matchIdentity(r, who(), ANTHROPIC));
  t.false(matchIdentity(r, who(), OLLAMA));
  t.false(matchIdentity(ruleOf('{provider: openai}'), who(), ANTHROPIC));
});

test('every key given must match', (t) => {
  const r = ruleOf('{user: alice, comm: python3, cgroup: /user.slice, provider: openai}');
  t.true(matchIdentity(r, who(), OPENAI));
  t.false(matchIdentity(r, who({ uid: 0 }), OPENAI));
  t.false(matchIdentity(r, who({ comm: 'node' }), OPENAI));
  t.false(matchIdentity(r, who({ cgroupAncestors: chain('/system.slice') }), OPENAI));
  t.false(matchIdentity(r, who(), ANTHROPIC));
  const both = ruleOf(`{exe: /opt/ci/bin/runner, sha256: ${'a'.repeat(64)}}`);
  t.false(matchIdentity(both, who({ ...RUNNER }), OPENAI));
  t.true(matchIdentity(both, who({ ...RUNNER, sha256: 'a'.repeat(64) }), OPENAI));
});

test('first match wins; no match gives the default', (t) => {
  const p = compile([
    'default: audit',
    'rules:',
    '  - {name: root-free, match: {uid: 0}, action: allow}',
    '  - {name: no-openai-for-python, match: {comm: python3, provider: openai}, action: block}',
    '  - {name: python-audited, match: {comm: python3}, action: audit}',
    '  - {name: alice-blocked, match: {user: alice}, action: block}',
  ].join('\n'));
  t.deepEqual(decide(p, who({ uid: 0 }), OPENAI), { action: 'allow', rule: 'root-free' });
  t.deepEqual(decide(p, who(), OPENAI), { action: 'block', rule: 'no-openai-for-python' });
  t.deepEqual(decide(p, who(), ANTHROPIC), { action: 'audit', rule: 'python-audited' });
  t.deepEqual(decide(p, who({ comm: 'node' }), ANTHROPIC), { action: 'block', rule: 'alice-blocked' });
  t.deepEqual(decide(p, who({ comm: 'node', uid: 1001 }), ANTHROPIC), { action: 'audit', rule: 'default' });
  t.deepEqual(decide(compile('rules: []'), who(), OPENAI), { action: 'allow', rule: 'default' });
});

test('rules only user space can judge: decided in user space, skipped when deciding as the kernel', (t) => {
  const p = compile('rules:\n  - {name: agents, match: {agent: claude}, action: block}\n  - {name: alice, match: {uid: 1000}, action: audit}\n');
  t.deepEqual(decide(p, who({ agent: 'claude' }), OPENAI), { action: 'block', rule: 'agents' });
  t.deepEqual(decide(p, who({ agent: 'claude' }), OPENAI, { kernelOnly: true }), { action: 'audit', rule: 'alice' });
});

test('sha256: ruleMatchesHash and the per-content rule bits', (t) => {
  const p = compile(loadPolicyText());
  const pinned = p.rules.find((r) => r.name === 'pinned-binary')!;
  const sha = 'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c';
  t.true(ruleMatchesHash(pinned, sha));
  t.true(ruleMatchesHash(pinned, sha.toUpperCase()));
  t.false(ruleMatchesHash(pinned, 'c'.repeat(64)));
  t.false(ruleMatchesHash(p.rules[0]!, sha)); // no sha256 key
  t.is(hashRuleMask(p, sha), 1n << BigInt(pinned.index));
  t.is(hashRuleMask(p, 'c'.repeat(64)), 0n);
  t.deepEqual(decide(p, who({ sha256: sha, uid: 5 }), OLLAMA), { action: 'block', rule: 'pinned-binary' });
});

function loadPolicyText(): string {
  return readFileSync(loadPolicy(fixture('full.yaml')).file, 'utf8');
}
