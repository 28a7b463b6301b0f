/**
 * The preamble every busted data file shares (catalog, agents): parse YAML (JSON is valid YAML)
 * keeping line numbers, refuse duplicate keys, and turn the first syntax error into the caller's
 * own error type with its line.
 */
import { LineCounter, parseDocument, type Node } from 'yaml';

export interface YamlDoc {
  /** The document's top node; null for an empty file. */
  root: unknown;
  /** The 1-based line a node starts on, when known. */
  lineOf(node: unknown): number | null;
}

export function readYaml(text: string, syntaxError: (what: string, line: number | null) => Error): YamlDoc {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw syntaxError(`is not valid YAML: ${what}`, first.linePos?.[0].line ?? null);
  }
  return {
    root: doc.contents,
    lineOf: (node) => {
      const range = (node as Node | null | undefined)?.range;
      return range ? lineCounter.linePos(range[0]).line : null;
    },
  };
}
