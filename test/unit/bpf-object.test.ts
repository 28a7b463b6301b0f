import test from 'ava';
import { readFileSync, statSync } from 'node:fs';
import { ROOT } from '../helpers/busted.js';
import { hashBpfSources } from '../../bpf/hash-sources.mjs';

test('the committed bpf/busted.bpf.o was built from the current sources (else: npm run build:bpf)', (t) => {
  const recorded = readFileSync(`${ROOT}bpf/busted.bpf.o.sha256`, 'utf8').trim();
  t.is(hashBpfSources(`${ROOT}bpf`), recorded);
  t.true(statSync(`${ROOT}bpf/busted.bpf.o`).size > 1000);
});
