// Prints the SHA-256 of the sources bpf/busted.bpf.o is built from, so that a test can tell
// when they changed without a rebuild (`npm run build:bpf`).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const BPF_SOURCES = ['busted.h', 'busted.bpf.c', 'build.sh'];

export function hashBpfSources(dir = dirname(fileURLToPath(import.meta.url))) {
  const h = createHash('sha256');
  for (const name of BPF_SOURCES) {
    h.update(name + '\0');
    h.update(readFileSync(join(dir, name)));
  }
  return h.digest('hex');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(hashBpfSources());
