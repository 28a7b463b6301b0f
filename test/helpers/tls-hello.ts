/** Synthetic TLS ClientHellos for tests: extensions, the handshake message and its records. */

export const u16 = (n: number) => [n >> 8, n & 0xff];
export const concat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
export const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

export function ext(type: number, data: Uint8Array | number[]): Uint8Array {
  return concat(u16(type), u16(data.length), data);
}
export function sniExt(...names: string[]): Uint8Array {
  const list = concat(...names.map((n) => concat([0], u16(n.length), ascii(n))));
  return ext(0, concat(u16(list.length), list));
}
export function alpnExt(...protos: (string | number[])[]): Uint8Array {
  const list = concat(...protos.map((p) => { const b = typeof p === 'string' ? ascii(p) : p; return concat([b.length], b); }));
  return ext(16, concat(u16(list.length), list));
}
export function versionsExt(...versions: number[]): Uint8Array {
  return ext(43, concat([versions.length * 2], versions.flatMap(u16)));
}

/** A handshake message (type 1, with its 4-byte header). */
export function helloMessage(extensions: Uint8Array[] | null, legacyVersion = 0x0303): Uint8Array {
  const body = concat(
    u16(legacyVersion), new Array(32).fill(7), [32], new Array(32).fill(9),
    u16(4), [0x13, 0x01, 0x13, 0x02], [1, 0],
    extensions === null ? [] : (() => { const e = concat(...extensions); return concat(u16(e.length), e); })(),
  );
  return concat([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff], body);
}

/** Wraps a handshake message in records of at most `sizes[i]` bytes each (the last size repeats). */
export function records(message: Uint8Array, sizes: number[] = [16384]): Uint8Array {
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; off < message.length; i++) {
    const size = Math.min(sizes[Math.min(i, sizes.length - 1)]!, message.length - off);
    out.push(concat([0x16, 0x03, 0x01], u16(size), message.subarray(off, off + size)));
    off += size;
  }
  return concat(...out);
}

/** A whole ClientHello naming `sni`, in one record. */
export function clientHello(sni: string): Uint8Array {
  return records(helloMessage([sniExt(sni)]));
}
