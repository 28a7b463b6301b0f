/** Filter parsing (provider: user: pid: process: and free text) and matching. */
import test from 'ava';
import type { ProcessRow } from '../../src/core/flows.js';
import { matchesFilter, parseFilter } from '../../src/ui/filter.js';
import { userName } from '../helpers/ui-fixtures.js';

const row = (over: Partial<ProcessRow>): ProcessRow => ({
  key: '1:1', pid: 1, startTime: 1, comm: 'x', uid: 1000, gid: 1000, exe: null, cgroup: null, providers: [],
  user: null, group: null, sha256: null, exeReplaced: false, cmdline: null, ppid: null, parents: [], container: null, pod: null, agent: null,
  verdict: null, lastPolicy: null,
  open: 0, total: 0, failed: 0, tx: 0, rx: 0, txRate: 0, rxRate: 0, firstSeen: 0, lastActivity: 0, exitedAt: null, ...over,
});

const py = row({ pid: 4211, comm: 'python3', uid: 1000, exe: '/usr/bin/python3.12', providers: ['openai'] });
const node = row({ pid: 5120, comm: 'node', uid: 1001, exe: '/usr/local/bin/node', providers: ['anthropic', 'openrouter'] });
const curl = row({ pid: 6001, comm: 'curl', uid: 0, exe: '/usr/bin/curl', providers: ['ollama'], cgroup: '/system.slice/x.service' });
const agent = row({
  pid: 7300, comm: 'claude', uid: 1002, user: 'carol', group: 'devs', exe: '/opt/claude/versions/2.0.14', providers: ['anthropic'],
  agent: { id: 'claude', label: 'Claude Code' }, cmdline: 'claude --model opus', container: { id: 'c0ffee'.padEnd(64, '0'), runtime: 'containerd' },
});
// a recorded name that differs from the local one (a recording made on another machine)
const robert = row({ pid: 5121, comm: 'node', uid: 1001, user: 'robert', providers: ['vllm'] });
const all = [py, node, curl, agent, robert];

const pidsFor = (text: string): number[] => all.filter((r) => matchesFilter(r, parseFilter(text), userName)).map((r) => r.pid);

test('parseFilter splits keyed terms and free text, case-insensitively', (t) => {
  t.deepEqual(parseFilter('Provider:OpenAI  user:alice pid:42 process:py hello'), {
    terms: [
      { kind: 'provider', value: 'openai' }, { kind: 'user', value: 'alice' }, { kind: 'pid', value: '42' },
      { kind: 'process', value: 'py' }, { kind: 'text', value: 'hello' },
    ],
    errors: [],
  });
  t.deepEqual(parseFilter('').terms, []);
  t.deepEqual(parseFilter('process:"my app"').terms, [{ kind: 'process', value: 'my app' }]);
  t.deepEqual(parseFilter('foo:bar').terms, [{ kind: 'text', value: 'foo:bar' }], 'unknown keys are free text');
});

test('parseFilter reports unusable terms in one sentence each and leaves them out', (t) => {
  const f = parseFilter('pid:abc provider: node');
  t.deepEqual(f.terms, [{ kind: 'text', value: 'node' }]);
  t.is(f.errors.length, 2);
  t.regex(f.errors[0]!, /"pid:abc" is not a pid/);
  t.regex(f.errors[1]!, /"provider:" needs a value/);
});

test('each term kind matches what it names', (t) => {
  t.deepEqual(pidsFor('provider:openai'), [4211]);
  t.deepEqual(pidsFor('provider:open'), [4211, 5120], 'provider is a substring match');
  t.deepEqual(pidsFor('user:bob'), [5120, 5121], 'the local name of uid 1001 matches too');
  t.deepEqual(pidsFor('user:0'), [6001], 'user by uid');
  t.deepEqual(pidsFor('pid:6001'), [6001]);
  t.deepEqual(pidsFor('pid:60'), [], 'pid is exact');
  t.deepEqual(pidsFor('process:python'), [4211]);
  t.deepEqual(pidsFor('process:local/bin'), [5120], 'process matches the executable path too');
  t.deepEqual(pidsFor('system.slice'), [6001], 'free text searches cgroup');
  t.deepEqual(pidsFor('ROOT'), [6001], 'free text searches user names');
});

test('agent labels and recorded user names match like comm and local names', (t) => {
  t.deepEqual(pidsFor('process:"claude code"'), [7300], 'process matches the agent label');
  t.deepEqual(pidsFor('process:Claude'), [7300]);
  t.deepEqual(pidsFor('process:code'), [7300], 'a substring of the label');
  t.deepEqual(pidsFor('user:carol'), [7300], 'the user name the record carried (no local name)');
  t.deepEqual(pidsFor('user:robert'), [5121]);
  t.deepEqual(pidsFor('user:1002'), [7300]);
  t.deepEqual(pidsFor('user:car'), [], 'user names are exact');
  t.deepEqual(pidsFor('opus'), [7300], 'free text searches the command line');
  t.deepEqual(pidsFor('c0ffee'), [7300], 'free text searches the container id');
  t.deepEqual(pidsFor('devs'), [7300], 'free text searches the group name');
  t.deepEqual(pidsFor('process:claude user:alice'), []);
});

test('same-kind terms are alternatives; different kinds must all match', (t) => {
  t.deepEqual(pidsFor('provider:openai provider:ollama'), [4211, 6001]);
  t.deepEqual(pidsFor('provider:openai user:bob'), []);
  t.deepEqual(pidsFor('provider:anthropic user:bob'), [5120]);
  t.deepEqual(pidsFor('provider:anthropic user:bob user:carol'), [5120, 7300]);
  t.deepEqual(pidsFor('node openrouter'), [5120]);
  t.deepEqual(pidsFor('node python'), [], 'free words must all match');
  t.deepEqual(pidsFor(''), [4211, 5120, 6001, 7300, 5121]);
});
