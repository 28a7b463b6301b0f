/** Policy files: every validation error names file, line, rule and key; values, lists, normalization. */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { loadCatalog } from '../../src/core/catalog.js';
import { loadPolicy, parsePolicy, PolicyError } from '../../src/core/policy.js';

const catalog = loadCatalog();
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/policy/${name}`, import.meta.url));
const parse = (text: string) => parsePolicy(text, 'p.yaml', catalog);
/** A policy with one rule `a` whose match is `m` (the match is on line 3, the action on line 4). */
const one = (m: string, action = 'block') => `rules:\n  - name: a\n    match: ${m}\n    action: ${action}\n`;
const at = (line: number, key: string, rule = 'rules[0] (name "a")') => `policy file p.yaml, line ${line}, ${rule}, key ${key}: `;

/** [what, policy text, the message's start (file, line, rule, key), the problem]. */
const ERRORS: [string, string, string, RegExp][] = [
  ['YAML syntax', 'rules: [\n  - {name: x\n', 'policy file p.yaml, line 3: ', /^is not valid YAML/],
  ['duplicate YAML key', 'default: allow\ndefault: block\n', 'policy file p.yaml, line 2: ', /^is not valid YAML: Map keys must be unique/],
  ['empty file', '# nothing\n', 'policy file p.yaml: ', /^is empty/],
  ['top level not a mapping', '- a\n- b\n', 'policy file p.yaml, line 1: ', /^must be a mapping with "default" and "rules"/],
  ['unknown top-level key', 'default: allow\nrulez: []\n', 'policy file p.yaml, line 2, key rulez: ', /^unknown key "rulez"/],
  ['bad default', 'default: deny\n', 'policy file p.yaml, line 1, key default: ', /^must be allow, audit or block, not "deny"/],
  ['default not a string', 'default: [block]\n', 'policy file p.yaml, line 1, key default: ', /^must be allow, audit or block, not a list/],
  ['rules not a list', 'rules: {a: 1}\n', 'policy file p.yaml, line 1, key rules: ', /^must be a list of rules/],
  ['rule not a mapping', 'rules:\n  - just-a-string\n', 'policy file p.yaml, line 2, rules[0]: ', /^must be a mapping with name, match and action/],
  ['missing name', 'rules:\n  - match: {uid: 1}\n    action: block\n', 'policy file p.yaml, line 2, rules[0], key name: ', /^every rule needs a name/],
  ['name not a string', 'rules:\n  - name: [x]\n    match: {uid: 1}\n    action: block\n', 'policy file p.yaml, line 2, rules[0], key name: ', /^every rule needs a name \(a non-empty string\), not a list/],
  ['reserved name', 'rules:\n  - name: default\n    match: {uid: 1}\n    action: block\n', at(2, 'name', 'rules[0] (name "default")'), /^"default" is reserved/],
  ['unknown rule key', `${one('{uid: 1}')}    when: always\n`, at(5, 'when'), /^unknown key "when"; a rule holds name, match and action/],
  ['bad action', one('{uid: 1}', 'deny'), at(4, 'action'), /^must be allow, audit or block, not "deny"/],
  ['missing action', 'rules:\n  - name: a\n    match: {uid: 1}\n', at(2, 'action'), /^must be allow, audit or block, not null/],
  ['empty match', one('{}'), at(3, 'match'), /^must be a mapping with at least one of exe, sha256, comm, uid, user, cgroup, container, pod, agent, provider/],
  ['match not a mapping', one('/bin/x'), at(3, 'match'), /^must be a mapping with at least one of/],
  ['missing match', 'rules:\n  - name: a\n    action: block\n', at(2, 'match'), /^must be a mapping/],
  ['unknown match key', one('{binary: /bin/x}'), at(3, 'match.binary'), /^unknown match key "binary"/],
  ['relative exe', one('{exe: runner}'), at(3, 'match.exe'), /^must be an absolute path, not "runner"$/],
  ['exe not a string', one('{exe: {path: /bin/x}}'), at(3, 'match.exe'), /^must be a non-empty string, not a mapping/],
  ['relative cgroup', one('{cgroup: system.slice}'), at(3, 'match.cgroup'), /^must be an absolute path, not "system.slice"/],
  ['cgroup with ..', one('{cgroup: /system.slice/../../etc}'), at(3, 'match.cgroup'), /^must not contain "\." or "\.\." segments/],
  ['bad sha256', one('{sha256: abc}'), at(3, 'match.sha256'), /^must be 64 hexadecimal characters, not "abc"/],
  ['sha256 not hex', one(`{sha256: ${'g'.repeat(64)}}`), at(3, 'match.sha256'), /^must be 64 hexadecimal characters/],
  ['negative uid', one('{uid: -1}'), at(3, 'match.uid'), /^must be a non-negative integer, not -1/],
  ['uid as a string', one('{uid: "1000"}'), at(3, 'match.uid'), /^must be a non-negative integer, not "1000"/],
  ['fractional uid', one('{uid: 1.5}'), at(3, 'match.uid'), /^must be a non-negative integer, not 1.5/],
  ['uid too large', one('{uid: 4294967295}'), at(3, 'match.uid'), /^must be a non-negative integer/],
  ['numeric user', one('{user: 1000}'), at(3, 'match.user'), /^must be a user name; for a numeric id write uid: 1000/],
  ['long comm', one('{comm: a-very-long-command-name}'), at(3, 'match.comm'), /^is longer than 15 bytes/],
  ['comm of 13 characters but 26 bytes', one('{comm: ééééééééééééé}'), at(3, 'match.comm'), /^is longer than 15 bytes/],
  ['alias to no anchor as the default (read as absent it would allow everything)', 'default: *blk\nrules: []\n', 'policy file p.yaml, line 1, key default: ', /^alias \*blk names no anchor \(&blk\) defined before it/],
  ['alias to no anchor as the rules', 'default: block\nrules: *mine\n', 'policy file p.yaml, line 2, key rules: ', /^alias \*mine names no anchor/],
  ['alias to an anchor defined after it', one('{comm: *bots}') + '  - name: b\n    match: {comm: &bots [x]}\n    action: audit\n', at(3, 'match.comm'), /^alias \*bots names no anchor/],
  ['alias to no anchor in a list', one('{uid: [1, *two]}'), at(3, 'match.uid'), /^alias \*two names no anchor/],
  ['nested list', one('{comm: [a, [b]]}'), at(3, 'match.comm'), /^must be a non-empty string, not a list/],
  ['empty string', one('{agent: ""}'), at(3, 'match.agent'), /^must be a non-empty string, not ""/],
  ['null value', one('{exe: }'), at(3, 'match.exe'), /^must be a non-empty string, not null/],
  ['unknown provider', one('{provider: skynet}'), at(3, 'match.provider'), /^names no provider in the catalog: "skynet"/],
  ['bad container', one('{container: a/b}'), at(3, 'match.container'), /^must be a container id/],
  ['bad pod', one('{pod: not-a-pod}'), at(3, 'match.pod'), /^must be a pod UID/],
  ['too many values', one('{uid: [1,2,3,4,5,6,7,8,9]}'), at(3, 'match.uid'), /^lists 9 values; at most 8 fit one rule: split it/],
  ['empty list', one('{comm: []}'), at(3, 'match.comm'), /^must give at least one value/],
  ['duplicate name', `${one('{uid: 1}')}  - name: a\n    match: {uid: 2}\n    action: audit\n`, at(5, 'name', 'rules[1] (name "a")'), /^name "a" is already used by rules\[0\]; rule names must be unique/],
];

for (const [what, text, where, problem] of ERRORS) {
  test(`policy error: ${what}`, (t) => {
    const err = t.throws(() => parse(text), { instanceOf: PolicyError })!;
    t.true(err.message.startsWith(where), err.message);
    t.regex(err.message.slice(where.length), problem);
    t.is(err.file, 'p.yaml');
  });
}

test('an error in a list names the line of the bad value, in block style too', (t) => {
  const text = 'rules:\n  - name: ok\n    match: {uid: 1}\n    action: audit\n  - name: x\n    match:\n      exe:\n        - /bin/a\n        - runner\n    action: block\n';
  t.throws(() => parse(text), { message: 'policy file p.yaml, line 9, rules[1] (name "x"), key match.exe: must be an absolute path, not "runner"' });
});

test('more than 64 rules are refused', (t) => {
  const rules = Array.from({ length: 65 }, (_, i) => `  - name: r${i}\n    match: {uid: ${i}}\n    action: audit\n`).join('');
  t.throws(() => parse(`rules:\n${rules}`), { message: 'policy file p.yaml, line 2, key rules: has 65 rules; busted enforces at most 64' });
  t.is(parse(`rules:\n${rules.split('  - ').slice(0, 65).join('  - ')}`).rules.length, 64);
});

test('loadPolicy: a file with an error names it; an unreadable file says so', (t) => {
  const file = fixture('bad-exe.yaml');
  t.throws(() => loadPolicy(file, catalog), { message: `policy file ${file}, line 7, rules[1] (name "x"), key match.exe: must be an absolute path, not "runner"` });
  t.throws(() => loadPolicy('/nonexistent/p.yaml'), { instanceOf: PolicyError, message: /^policy file \/nonexistent\/p\.yaml: cannot be read \(ENOENT\)/ });
});

test('single values and lists both become lists; values are normalized', (t) => {
  const p = loadPolicy(fixture('full.yaml'), catalog);
  t.is(p.default, 'audit');
  t.is(p.rules.length, 8);
  t.deepEqual(p.rules.map((r) => [r.index, r.name, r.action]), [
    [0, 'ci-runner-offline', 'block'], [1, 'notebooks', 'audit'], [2, 'pinned-binary', 'block'], [3, 'payments-service', 'block'],
    [4, 'web-container', 'audit'], [5, 'batch-pod', 'block'], [6, 'agents', 'block'], [7, 'everyone-else-local', 'allow'],
  ]);
  t.deepEqual(p.rules[0]!.match, { exe: ['/opt/ci/bin/runner'] });
  t.deepEqual(p.rules[1]!.match, { user: ['alice'], provider: ['openai', 'anthropic'] });
  t.deepEqual(p.rules[2]!.match.sha256, ['b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c']);
  t.deepEqual(p.rules[3]!.match, { cgroup: ['/system.slice/payments.service'], comm: ['python3', 'node'] });
  t.deepEqual(p.rules[5]!.match, { pod: ['0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234'], uid: [0, 1000] });
  t.is(p.rules[1]!.line, 7);
  t.deepEqual(p.rules[1]!.lines, { user: 9, provider: 10 });
});

test('defaults, an empty rule list, JSON, anchors, duplicates in a list', (t) => {
  t.deepEqual(parse('rules: []\n'), { file: 'p.yaml', default: 'allow', rules: [] });
  t.deepEqual(parse('default: block\nrules:\n'), { file: 'p.yaml', default: 'block', rules: [] });
  const j = parse('{"default": "audit", "rules": [{"name": "j", "match": {"uid": 7, "comm": ["a", "b"]}, "action": "allow"}]}');
  t.deepEqual(j.rules[0]!.match, { uid: [7], comm: ['a', 'b'] });
  const anchored = parse('rules:\n  - name: a\n    match: {comm: &bots [bot1, bot2]}\n    action: block\n  - name: b\n    match: {comm: *bots, uid: 0}\n    action: audit\n');
  t.deepEqual(anchored.rules[1]!.match, { comm: ['bot1', 'bot2'], uid: [0] });
  t.deepEqual(parse(one('{uid: [5, 5, 6]}')).rules[0]!.match.uid, [5, 6]);
});

test('providers are checked against the catalog or a set of ids when given, and not otherwise', (t) => {
  t.throws(() => parsePolicy(one('{provider: openai}'), 'p.yaml', new Set(['anthropic'])), { message: /key match\.provider: names no provider in the catalog: "openai"/ });
  t.deepEqual(parsePolicy(one('{provider: skynet}'), 'p.yaml').rules[0]!.match.provider, ['skynet']);
});

test('container values: ids, prefixes and names; pods with dashes or underscores', (t) => {
  t.deepEqual(parse(one('{container: [0123456789AB, web, Web]}')).rules[0]!.match.container, ['0123456789ab', 'web', 'Web']);
  t.deepEqual(parse(one(`{pod: [0B4F9C2E-1F3A-4B8E-9D6C-5A7E8F901234, ${'a'.repeat(32)}]}`)).rules[0]!.match.pod, ['0b4f9c2e-1f3a-4b8e-9d6c-5a7e8f901234', 'a'.repeat(32)]);
});

test('values YAML would read as numbers keep the text written where a string is meant', (t) => {
  const m = parse(one('{container: [123456789012, 1234e5678901], comm: 007, sha256: ' + '1'.repeat(64) + '}')).rules[0]!.match;
  t.deepEqual(m.container, ['123456789012', '1234e5678901']);
  t.deepEqual(m.comm, ['007']);
  t.deepEqual(m.sha256, ['1'.repeat(64)]);
  t.deepEqual(parse(one('{uid: 0x10}')).rules[0]!.match.uid, [16]);
});
