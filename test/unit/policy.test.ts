/** Policy files: every validation error names file, line, rule and key; compilation to kernel rules. */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy, PolicyError } from '../../src/core/policy-file.js';
import { compilePolicy } from '../../src/core/policy-compile.js';
import { loadCatalog } from '../../src/core/catalog.js';
import { Action } from '../../src/bpf/abi.js';

const catalog = loadCatalog();
const ids = new Set(catalog.providers().map((p) => p.id));
const parse = (text: string) => parsePolicy(text, 'p.yaml', ids);

const ERRORS: [string, string, RegExp][] = [
  ['YAML syntax', 'rules: [\n  - {name: x\n', /^policy file p\.yaml, line \d+: is not valid YAML/],
  ['unknown top-level key', 'default: allow\nrulez: []\n', /line 2, key rulez: unknown key "rulez"/],
  ['bad default', 'default: deny\n', /line 1, key default: must be allow, audit or block, not "deny"/],
  ['rules not a list', 'rules: {a: 1}\n', /line 1, key rules: must be a list of rules/],
  ['rule not a mapping', 'rules:\n  - just-a-string\n', /line 2, rules\[0\]: must be a mapping/],
  ['missing name', 'rules:\n  - match: {uid: 1}\n    action: block\n', /rules\[0\], key name: every rule needs a name/],
  ['unknown rule key', 'rules:\n  - name: a\n    match: {uid: 1}\n    action: block\n    when: always\n', /line 5, rules\[0\] \(name "a"\), key when: unknown key "when"/],
  ['bad action', 'rules:\n  - name: a\n    match: {uid: 1}\n    action: deny\n', /line 4, rules\[0\] \(name "a"\), key action: must be allow, audit or block/],
  ['empty match', 'rules:\n  - name: a\n    match: {}\n    action: block\n', /key match: must be a mapping with at least one of/],
  ['unknown match key', 'rules:\n  - name: a\n    match: {binary: /bin/x}\n    action: block\n', /key match\.binary: unknown match key "binary"/],
  ['relative exe', 'rules:\n  - name: a\n    match: {exe: runner}\n    action: block\n', /key match\.exe: must be an absolute path, not "runner"/],
  ['bad sha256', 'rules:\n  - name: a\n    match: {sha256: abc}\n    action: block\n', /key match\.sha256: must be 64 hexadecimal characters/],
  ['bad uid', 'rules:\n  - name: a\n    match: {uid: -1}\n    action: block\n', /key match\.uid: must be a non-negative integer/],
  ['long comm', 'rules:\n  - name: a\n    match: {comm: a-very-long-command-name}\n    action: block\n', /key match\.comm: is longer than 15 characters/],
  ['unknown provider', 'rules:\n  - name: a\n    match: {provider: skynet}\n    action: block\n', /key match\.provider: names no provider in the catalog: "skynet"/],
  ['bad container', 'rules:\n  - name: a\n    match: {container: xyz}\n    action: block\n', /key match\.container: must be a container id/],
  ['too many values', 'rules:\n  - name: a\n    match: {uid: [1,2,3,4,5,6,7,8,9]}\n    action: block\n', /key match\.uid: lists 9 values; at most 8/],
  ['duplicate name', 'rules:\n  - name: a\n    match: {uid: 1}\n    action: block\n  - name: a\n    match: {uid: 2}\n    action: audit\n', /line 5, rules\[1\] \(name "a"\), key name: name "a" is already used by rules\[0\]/],
];

for (const [what, text, message] of ERRORS) {
  test(`policy error: ${what}`, (t) => {
    const err = t.throws(() => parse(text), { instanceOf: PolicyError });
    t.regex(err!.message, message);
    t.true(err!.message.startsWith('policy file p.yaml'));
  });
}

test('more than 64 rules are refused', (t) => {
  const rules = Array.from({ length: 65 }, (_, i) => `  - name: r${i}\n    match: {uid: ${i}}\n    action: audit\n`).join('');
  t.throws(() => parse(`rules:\n${rules}`), { message: /has 65 rules; busted enforces at most 64/ });
});

test('a valid policy: default, single values and lists, JSON too', (t) => {
  const p = parse('default: audit\nrules:\n  - name: bots\n    match: {comm: [bot1, bot2], provider: openai}\n    action: block\n');
  t.is(p.default, 'audit');
  t.deepEqual(p.rules[0]!.match, { comm: ['bot1', 'bot2'], provider: ['openai'] });
  t.is(parse('{"rules": [{"name": "j", "match": {"uid": 7}, "action": "allow"}]}').rules[0]!.match.uid![0], 7);
  t.throws(() => parse(''), { message: /is empty/ });
});

test('compilation: exe to dev/inode, user to uid, providers to indices, sha256 to rule bits, agent never in the kernel', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'busted-pol-'));
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  const sha = 'a'.repeat(64);
  const p = parse([
    'default: block',
    'rules:',
    `  - {name: tool, match: {exe: ${process.execPath}}, action: allow}`,
    '  - {name: alice, match: {user: alice, provider: [openai, anthropic]}, action: audit}',
    `  - {name: hashed, match: {sha256: ${sha}}, action: block}`,
    '  - {name: agents, match: {agent: claude}, action: block}',
    '  - {name: gone, match: {exe: /nonexistent/bin}, action: block}',
  ].join('\n'));
  const c = compilePolicy(p, { catalog, cgroupRoot: null, passwdPath: passwd });
  t.deepEqual(c.names, ['tool', 'alice', 'hashed', 'agents', 'gone']);
  t.is(c.defaultAction, Action.BLOCK);
  t.is(c.rules[0]!.action, Action.ALLOW);
  t.is(c.rules[0]!.exes!.length, 1);
  t.true(c.rules[0]!.exes![0]!.ino > 0n);
  t.deepEqual(c.rules[1]!.uids, [1000]);
  const index = (id: string) => catalog.providers().find((x) => x.id === id)!.index;
  t.deepEqual(c.rules[1]!.providers, [index('openai'), index('anthropic')]);
  t.true(c.rules[2]!.hash);
  t.is(c.hashRules.get(sha), 1n << 2n);
  t.true(c.rules[3]!.never);
  t.deepEqual(c.rules[4]!.exes, []);
  t.true(c.warnings.some((w) => w.includes('agent is judged in user space')));
  t.true(c.warnings.some((w) => w.includes('/nonexistent/bin does not exist')));
  t.throws(() => compilePolicy(parse('rules:\n  - {name: b, match: {user: bob}, action: block}\n'), { catalog, cgroupRoot: null, passwdPath: passwd }),
    { message: /rules\[0\] \(name "b"\), key match\.user: names user "bob", who is not in/ });
  rmSync(dir, { recursive: true, force: true });
});
