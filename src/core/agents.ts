/**
 * Recognizing AI agents and coding assistants (Claude Code, Codex, Gemini CLI, aider, …) from a
 * process's executable, command line and comm. The list is data: catalog/agents.yaml, extended
 * or overridden by `--agents FILE` (same shape, described at the top of that file).
 */
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import { readYaml } from './yaml-doc.js';

export interface AgentEntry {
  id: string;
  label: string;
  exe: string[];
  path: RegExp[];
  cmdline: RegExp[];
  source: string;
}

export interface AgentMatch {
  id: string;
  label: string;
}

export interface ProcessTraits {
  /** Executable path (as /proc/PID/exe shows it), or null when unknown. */
  exe?: string | null;
  comm?: string | null;
  /** The arguments, or the command line as one string (split at spaces). */
  cmdline?: readonly string[] | string | null;
}

/** An --agents file (or the built-in list) that cannot be used; the message names file, line, entry and field. */
export class AgentsError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly line: number | null = null,
    readonly entry: number | null = null,
    readonly id: string | null = null,
    readonly field: string | null = null,
  ) {
    const where = [
      line !== null ? `line ${line}` : null,
      entry !== null ? `agents[${entry}]${id !== null ? ` (id "${id}")` : ''}` : null,
      field !== null ? `field ${field}` : null,
    ].filter((s) => s !== null);
    super(`agents file ${file}${where.length ? `, ${where.join(', ')}` : ''}: ${problem}`);
    this.name = 'AgentsError';
  }
}

/** Programs that run a script named by their first non-option argument. */
const INTERPRETER = /^(node|nodejs|bun|deno|python[0-9.]*|pypy[0-9.]*|ruby[0-9.]*|perl[0-9.]*|sh|bash|dash|zsh|env)$/;
/** Interpreter options that take the next argument as their value. */
const OPTION_WITH_VALUE = new Set(['-r', '--require', '--import', '--loader', '--experimental-loader', '-W', '-X']);
/** Options after which no script file follows (code or a module name instead). */
const NO_SCRIPT = new Set(['-e', '--eval', '-p', '--print', '-c', '-m']);
const COMM_LEN = 15;

function argsOf(cmdline: ProcessTraits['cmdline']): string[] {
  if (!cmdline) return [];
  return typeof cmdline === 'string' ? cmdline.split(' ').filter((a) => a !== '') : [...cmdline];
}

/**
 * The script an interpreter command line runs (`node --inspect /usr/bin/claude` → /usr/bin/claude);
 * the interpreter is recognized by `exe` when known, else by argv[0].
 */
export function scriptOf(args: readonly string[], exe?: string | null): string | null {
  if (args.length < 2 || !INTERPRETER.test(basename(exe ?? args[0]!))) return null;
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (NO_SCRIPT.has(a)) return null;
    if (OPTION_WITH_VALUE.has(a)) i++;
    else if (!a.startsWith('-') && !/^\w+=/.test(a)) return a; // `env FOO=1 node x`: skip assignments
  }
  return null;
}

export class AgentCatalog {
  private readonly byName = new Map<string, AgentEntry>();
  private readonly byComm = new Map<string, AgentEntry>();

  /** Entries earlier in the list win ties (put user entries first). */
  constructor(readonly entries: readonly AgentEntry[]) {
    for (const e of entries) {
      for (const name of e.exe) {
        if (!this.byName.has(name)) this.byName.set(name, e);
        const comm = name.slice(0, COMM_LEN);
        if (!this.byComm.has(comm)) this.byComm.set(comm, e);
      }
    }
  }

  /** The agent this process is, by the strongest evidence; null when none matches. */
  match(p: ProcessTraits): AgentMatch | null {
    const e = this.matchEntry(p);
    return e ? { id: e.id, label: e.label } : null;
  }

  matchEntry(p: ProcessTraits): AgentEntry | null {
    const args = argsOf(p.cmdline);
    const exe = p.exe ?? null;
    const script = scriptOf(args, exe);
    const byPath = (path: string) => this.entries.find((e) => e.path.some((re) => re.test(path))) ?? null;
    return (
      (exe ? this.byName.get(basename(exe)) : undefined) ??
      (exe ? byPath(exe) : null) ??
      (script ? byPath(script) : null) ??
      (script ? this.byName.get(basename(script)) : undefined) ??
      (args[0] ? this.byName.get(basename(args[0])) : undefined) ??
      (args.length ? this.entries.find((e) => e.cmdline.some((re) => re.test(args.join(' ')))) : undefined) ??
      (p.comm ? this.byComm.get(p.comm) : undefined) ??
      null
    );
  }
}

/** Where the built-in list lives. */
export function builtinAgentsPath(): string {
  return fileURLToPath(new URL('../../catalog/agents.yaml', import.meta.url));
}

/** Reads and validates one agents file. Throws AgentsError. */
export function readAgentsFile(file: string): AgentEntry[] {
  let text: string;
  try {
    if (statSync(file).size > 1 << 20) throw new AgentsError(file, 'is larger than 1 MiB; an agents file lists a few entries');
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof AgentsError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new AgentsError(file, `cannot be read (${code}); check the path given to --agents`);
  }
  return parseAgents(text, file);
}

/** The built-in list with `agentsFile` (from --agents) over it: same id replaces, new ids are tried first. */
export function loadAgents(agentsFile?: string | null, builtinFile = builtinAgentsPath()): AgentCatalog {
  const builtin = readAgentsFile(builtinFile);
  const extra = agentsFile ? readAgentsFile(agentsFile) : [];
  const ids = new Set(extra.map((e) => e.id));
  return new AgentCatalog([...extra, ...builtin.filter((e) => !ids.has(e.id))]);
}

let builtinCatalog: AgentCatalog | null = null;

/** Matches against the built-in list (loaded on first use) or the catalog given. */
export function matchAgent(p: ProcessTraits, catalog?: AgentCatalog): AgentMatch | null {
  return (catalog ?? (builtinCatalog ??= loadAgents())).match(p);
}

const ENTRY_KEYS = ['id', 'label', 'exe', 'path', 'cmdline', 'source'];
const ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const EXE = /^[^/\0\s]{1,255}$/;

/** Parses and validates agents text (YAML or JSON); `file` is only used in messages. Throws AgentsError. */
export function parseAgents(text: string, file: string): AgentEntry[] {
  const { root, lineOf } = readYaml(text, (what, line) => new AgentsError(file, what, line));
  if (root === null) throw new AgentsError(file, 'is empty; it needs an "agents:" list');
  if (!isMap(root)) throw new AgentsError(file, 'must be a mapping with an "agents:" list', lineOf(root));
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '?';
    if (key !== 'agents') throw new AgentsError(file, `unknown key "${key}"; the top level holds only "agents"`, lineOf(pair.key));
  }
  const list = root.get('agents', true);
  if (!isSeq(list)) throw new AgentsError(file, '"agents" must be a list of entries', lineOf(list ?? root));
  const seen = new Map<string, number>();
  return list.items.map((item, index) => {
    const entry = readEntry(item, index, file, lineOf);
    const prev = seen.get(entry.id);
    if (prev !== undefined) {
      throw new AgentsError(file, `id "${entry.id}" is already used by agents[${prev}]; each id may appear once per file`, lineOf(item), index, entry.id, 'id');
    }
    seen.set(entry.id, index);
    return entry;
  });
}

function readEntry(item: unknown, index: number, file: string, lineOf: (n: unknown) => number | null): AgentEntry {
  if (!isMap(item)) throw new AgentsError(file, 'each entry must be a mapping with id, label, source and exe, path or cmdline', lineOf(item), index);
  const idNode = item.get('id', true);
  const id = isScalar(idNode) && typeof idNode.value === 'string' && ID.test(idNode.value) ? idNode.value : null;
  const err = (node: unknown, field: string | null, problem: string) => new AgentsError(file, problem, lineOf(node) ?? lineOf(item), index, id, field);
  for (const pair of item.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : null;
    if (key === null || !ENTRY_KEYS.includes(key)) throw err(pair.key, null, `unknown key "${key ?? '?'}"; an entry may have ${ENTRY_KEYS.join(', ')}`);
  }
  const text = (field: string, re: RegExp, hint: string): string => {
    const node = item.get(field, true);
    if (node === undefined) throw err(item, field, `is missing; it must be ${hint}`);
    if (!isScalar(node) || typeof node.value !== 'string' || !re.test(node.value)) throw err(node, field, `must be ${hint}`);
    return node.value;
  };
  text('id', ID, 'a lower-case id such as my-agent (letters, digits, ".", "_", "-")');
  const label = text('label', /^[^\x00-\x1f\x7f]{1,64}$/, 'a display name of 1 to 64 characters');
  const source = text('source', /^https?:\/\/\S+$/, 'an http(s) URL saying where the facts about the program come from');
  const strings = (field: string, check: (s: string) => string | null): string[] => {
    const node = item.get(field, true);
    if (node === undefined) return [];
    if (!isSeq(node)) throw err(node, field, 'must be a list');
    return node.items.map((el, i) => {
      if (!isScalar(el) || typeof el.value !== 'string') throw err(el, `${field}[${i}]`, 'must be a text value');
      const problem = check(el.value);
      if (problem) throw err(el, `${field}[${i}]`, problem);
      return el.value;
    });
  };
  const regexProblem = (s: string): string | null => {
    if (s === '') return 'must not be empty (it would match every process)';
    try {
      new RegExp(s);
      return null;
    } catch (e) {
      return `is not a valid regular expression: ${(e as Error).message}`;
    }
  };
  const exe = strings('exe', (s) => (EXE.test(s) ? null : `"${s}" must be an executable file name such as claude, not a path`));
  const path = strings('path', regexProblem).map((s) => new RegExp(s));
  const cmdline = strings('cmdline', regexProblem).map((s) => new RegExp(s));
  if (exe.length + path.length + cmdline.length === 0) throw err(item, null, 'gives no way to recognise the agent; add exe, path or cmdline');
  return { id: id!, label, exe, path, cmdline, source };
}
