import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentsError, loadAgents, matchAgent, parseAgents, scriptOf, type ProcessTraits } from '../../src/core/agents.js';

const builtin = loadAgents();

type Row = [string, ProcessTraits, string | null];
const table: Row[] = [
  ['npm-installed Claude Code run by node', { exe: '/usr/bin/node', comm: 'node', cmdline: ['node', '/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js'] }, 'claude'],
  ['Claude Code through its bin symlink', { exe: '/usr/bin/node', comm: 'node', cmdline: ['node', '/usr/local/bin/claude', '--print', 'hi'] }, 'claude'],
  ['Claude Code after it set its process title', { exe: '/usr/bin/node', comm: 'claude', cmdline: ['claude'] }, 'claude'],
  ['Claude Code native installer (versioned file name)', { exe: '/home/a/.local/share/claude/versions/2.0.64', comm: 'claude', cmdline: ['claude'] }, 'claude'],
  ['a copy of any program renamed claude', { exe: '/tmp/x/claude', comm: 'claude', cmdline: ['/tmp/x/claude', '-c'] }, 'claude'],
  ['a process known only by its comm', { exe: null, comm: 'claude', cmdline: null }, 'claude'],
  ['node with options before the script', { exe: '/usr/bin/node', cmdline: ['node', '--max-old-space-size=4096', '-r', 'x.js', '/opt/node_modules/@google/gemini-cli/dist/index.js'] }, 'gemini'],
  ['codex native binary from the npm package', { exe: '/usr/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex', cmdline: ['codex'] }, 'codex'],
  ['codex node wrapper', { exe: '/usr/bin/node', cmdline: ['node', '/usr/local/bin/codex', 'exec', 'fix it'] }, 'codex'],
  ['gemini', { exe: '/usr/local/bin/gemini' }, 'gemini'],
  ['aider from a pipx venv', { exe: '/home/a/.local/share/pipx/venvs/aider-chat/bin/python3.12', cmdline: ['/home/a/.local/share/pipx/venvs/aider-chat/bin/python', '/home/a/.local/bin/aider'] }, 'aider'],
  ['aider as a module', { exe: '/usr/bin/python3.12', cmdline: ['python3', '-m', 'aider', '--model', 'x'] }, 'aider'],
  ['pip installing aider is not aider', { exe: '/usr/bin/python3.12', cmdline: ['python3', '-m', 'pip', 'install', 'aider-chat'] }, null],
  ['npm installing Claude Code is not Claude Code', { exe: '/usr/bin/node', cmdline: ['npm', 'install', '-g', '@anthropic-ai/claude-code'] }, null],
  ['editing a file named claude is not Claude Code', { exe: '/usr/bin/vim.basic', comm: 'vim', cmdline: ['vim', 'claude'] }, null],
  ['goose', { exe: '/usr/local/bin/goose', cmdline: ['goose', 'session'] }, 'goose'],
  ['opencode platform binary', { exe: '/usr/lib/node_modules/opencode-ai/node_modules/opencode-linux-x64/bin/opencode' }, 'opencode'],
  ['cursor-agent bundled node', { exe: '/home/a/.local/share/cursor-agent/versions/2025.09.12/node', comm: 'node', cmdline: ['/home/a/.local/share/cursor-agent/versions/2025.09.12/node', '/home/a/.local/share/cursor-agent/versions/2025.09.12/index.js'] }, 'cursor-agent'],
  ['GitHub Copilot CLI', { exe: '/usr/bin/node', cmdline: ['node', '/usr/lib/node_modules/@github/copilot/index.js'] }, 'copilot'],
  ['Amp', { exe: '/usr/bin/node', cmdline: ['node', '/usr/local/lib/node_modules/@sourcegraph/amp/dist/main.js'] }, 'amp'],
  ['Cline CLI', { exe: '/usr/bin/node', cmdline: ['node', '/usr/local/bin/cline', 'task'] }, 'cline'],
  ['Continue CLI', { exe: '/usr/bin/node', cmdline: ['node', '/usr/local/bin/cn', '-p', 'x'] }, 'continue'],
  ['OpenHands', { exe: '/home/a/.local/share/uv/tools/openhands/bin/python', cmdline: ['/home/a/.local/share/uv/tools/openhands/bin/python', '/home/a/.local/bin/openhands'] }, 'openhands'],
  ['Amazon Q chat', { exe: '/usr/local/bin/q', cmdline: ['q', 'chat'] }, 'amazon-q'],
  ['the command line as one string', { exe: '/usr/bin/node', cmdline: 'node /usr/lib/node_modules/@anthropic-ai/claude-code/cli.js --resume' }, 'claude'],
  ['plain curl', { exe: '/usr/bin/curl', comm: 'curl', cmdline: ['curl', 'https://api.anthropic.com'] }, null],
  ['plain python', { exe: '/usr/bin/python3.12', comm: 'python3', cmdline: ['python3', 'app.py'] }, null],
  ['nothing known', {}, null],
];

for (const [name, traits, want] of table) {
  test(`agent: ${name}`, (t) => {
    t.is(matchAgent(traits, builtin)?.id ?? null, want);
  });
}

test('agent: the label comes with the id', (t) => {
  t.deepEqual(matchAgent({ exe: '/x/claude' }), { id: 'claude', label: 'Claude Code' });
});

test('every built-in entry has a label and an http(s) source', (t) => {
  t.true(builtin.entries.length >= 12);
  for (const e of builtin.entries) {
    t.regex(e.source, /^https?:\/\//, e.id);
    t.true(e.label.length > 0);
  }
  for (const id of ['claude', 'codex', 'gemini', 'aider', 'goose', 'opencode', 'cursor-agent', 'copilot', 'amp', 'cline', 'continue', 'openhands']) {
    t.truthy(builtin.entries.find((e) => e.id === id), id);
  }
});

test('scriptOf: the script an interpreter runs', (t) => {
  t.is(scriptOf(['node', '--inspect', '/usr/bin/claude']), '/usr/bin/claude');
  t.is(scriptOf(['node', '-e', 'x']), null);
  t.is(scriptOf(['python3', '-m', 'aider']), null);
  t.is(scriptOf(['python3', '-W', 'ignore', 'a.py']), 'a.py');
  t.is(scriptOf(['claude', 'x.js']), null);
  t.is(scriptOf(['whatever', '/usr/bin/claude'], '/usr/bin/node'), '/usr/bin/claude', 'the interpreter known from exe');
});

function userFile(t: { teardown(fn: () => void): void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'busted-agents-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'agents.yaml');
  writeFileSync(f, text);
  return f;
}

test('a user file adds agents (tried first) and overrides built-in ones by id', (t) => {
  const f = userFile(t, `agents:
  - id: my-bot
    label: My Bot
    exe: [claude]
    source: https://example.test/my-bot
  - id: goose
    label: Goose (ours)
    cmdline: ["run-goose"]
    source: https://example.test/goose
`);
  const cat = loadAgents(f);
  t.deepEqual(cat.match({ exe: '/usr/bin/claude' }), { id: 'my-bot', label: 'My Bot' });
  t.deepEqual(cat.match({ exe: '/usr/bin/x', cmdline: ['x', 'run-goose'] }), { id: 'goose', label: 'Goose (ours)' });
  t.is(cat.match({ exe: '/usr/local/bin/goose' }), null, 'the built-in goose entry was replaced');
  t.is(cat.match({ exe: '/usr/local/bin/codex' })?.id, 'codex');
});

const bad: Array<[string, string, RegExp]> = [
  ['not YAML', 'agents: [', /agents file F, line \d+: is not valid YAML/],
  ['no list', 'agents: 3', /"agents" must be a list/],
  ['unknown top key', 'agent: []', /unknown key "agent"/],
  ['unknown entry key', 'agents:\n  - {id: a, label: A, exe: [a], source: "https://x.test", colour: red}', /agents\[0\] \(id "a"\): unknown key "colour"/],
  ['missing label', 'agents:\n  - {id: a, exe: [a], source: "https://x.test"}', /agents\[0\] \(id "a"\), field label: is missing/],
  ['bad id', 'agents:\n  - {id: "Big Bot", label: B, exe: [a], source: "https://x.test"}', /agents\[0\], field id: must be a lower-case id/],
  ['bad source', 'agents:\n  - {id: a, label: A, exe: [a], source: "somewhere"}', /field source: must be an http\(s\) URL/],
  ['exe is a path', 'agents:\n  - {id: a, label: A, exe: [/usr/bin/a], source: "https://x.test"}', /field exe\[0\]: "\/usr\/bin\/a" must be an executable file name/],
  ['bad regex', 'agents:\n  - {id: a, label: A, cmdline: ["(unclosed"], source: "https://x.test"}', /agents\[0\] \(id "a"\), field cmdline\[0\]: is not a valid regular expression/],
  ['empty regex', 'agents:\n  - {id: a, label: A, path: [""], source: "https://x.test"}', /field path\[0\]: must not be empty/],
  ['no evidence', 'agents:\n  - {id: a, label: A, source: "https://x.test"}', /agents\[0\] \(id "a"\): gives no way to recognise the agent/],
  ['duplicate id', 'agents:\n  - {id: a, label: A, exe: [a], source: "https://x.test"}\n  - {id: a, label: B, exe: [b], source: "https://x.test"}', /line 3, agents\[1\] \(id "a"\), field id: id "a" is already used by agents\[0\]/],
];

for (const [name, text, re] of bad) {
  test(`agents file refused: ${name}`, (t) => {
    const e = t.throws(() => parseAgents(text, 'F'), { instanceOf: AgentsError });
    t.regex(e!.message, re);
  });
}

test('an unreadable agents file names the file and the option', (t) => {
  const e = t.throws(() => loadAgents('/nonexistent/agents.yaml'), { instanceOf: AgentsError });
  t.regex(e!.message, /agents file \/nonexistent\/agents.yaml: cannot be read \(ENOENT\); check the path given to --agents/);
});
