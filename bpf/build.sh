#!/usr/bin/env bash
# Builds bpf/busted.bpf.o (CO-RE) and records the hash of its sources in bpf/busted.bpf.o.sha256.
# Needs clang, libbpf headers (libbpf-dev) and bpftool; vmlinux.h is generated from the running
# kernel's BTF into bpf/.output/ and never committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/.output"
mkdir -p "$out"
for tool in clang bpftool; do
  command -v "$tool" >/dev/null || { echo "build:bpf: $tool is missing: apt-get install -y clang libbpf-dev bpftool" >&2; exit 1; }
done
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "build:bpf: libbpf headers are missing: apt-get install -y libbpf-dev" >&2; exit 1; }
btf="${BUSTED_BTF:-/sys/kernel/btf/vmlinux}"
[ -r "$btf" ] || { echo "build:bpf: no kernel BTF at $btf: set BUSTED_BTF to a vmlinux with BTF" >&2; exit 1; }
bpftool btf dump file "$btf" format c > "$out/vmlinux.h.tmp"
mv "$out/vmlinux.h.tmp" "$out/vmlinux.h"
arch="$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')"
clang -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_"$arch" \
  -I "$out" -I "$here" -c "$here/busted.bpf.c" -o "$out/busted.bpf.o"
# strip DWARF but keep BTF (.BTF/.BTF.ext) for CO-RE
llvm-strip -g "$out/busted.bpf.o" 2>/dev/null || true
mv "$out/busted.bpf.o" "$here/busted.bpf.o"
node "$here/hash-sources.mjs" > "$here/busted.bpf.o.sha256"
echo "build:bpf: wrote bpf/busted.bpf.o ($(stat -c %s "$here/busted.bpf.o") bytes), sources $(cat "$here/busted.bpf.o.sha256")"
