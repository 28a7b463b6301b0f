/**
 * Output lines as UTF-8 bytes in one reused buffer, for the outputs every record of `--all`
 * goes to (stdout and the recording).
 *
 * Lines used to be strings joined and then encoded: at 10k connections/s that was a third of
 * the bytes busted allocated and a fifth of its CPU (joining, encoding, collecting). Here a line
 * is written once, into bytes that are written out as they are and then written over.
 *
 * The append methods that check what they write (`plain`, `number`) return false instead of
 * writing something that is not what JSON.stringify would write; the caller cuts back to where
 * its line began (`cut`) and writes the line another way.
 */

/**
 * Text JSON writes as it is and that is ASCII: no quote, backslash, control character or
 * character past U+007F (what `LineBytes.plain` writes; this only tells).
 */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7f]*$/;
export const isPlain = (s: unknown): s is string => typeof s === 'string' && PLAIN.test(s);

/** Starting size; the buffer grows to hold a turn's lines and shrinks back after a burst. */
const START_BYTES = 64 * 1024;
const KEEP_BYTES = 1024 * 1024;

export class LineBytes {
  private buf: Buffer;
  /** Bytes held. */
  length = 0;

  constructor(private readonly startBytes = START_BYTES) {
    this.buf = Buffer.allocUnsafe(startBytes);
  }

  /** Any text, as UTF-8 (a lone surrogate becomes U+FFFD, as Node writes a string to a stream). */
  text(s: string): void {
    this.room(s.length * 3);
    this.length += this.buf.write(s, this.length, 'utf8');
  }

  /**
   * Text `isPlain` accepts, written as it is. Anything else (or a non-string) returns false,
   * leaving a partial write.
   */
  plain(s: unknown): boolean {
    if (typeof s !== 'string') return false;
    const n = s.length;
    this.room(n);
    const b = this.buf;
    let p = this.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7f || c === 0x22 || c === 0x5c) return false;
      b[p++] = c;
    }
    this.length = p;
    return true;
  }

  /** ASCII the caller knows needs no check (the fixed parts of a line). */
  ascii(s: string): void {
    const n = s.length;
    this.room(n);
    const b = this.buf;
    let p = this.length;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    this.length = p;
  }

  /** A number as JSON.stringify writes it; false for a non-number or one it writes as null. */
  number(n: unknown): boolean {
    if (typeof n !== 'number') return false;
    if (n >>> 0 === n) {
      // an integer in 0..2^32-1 (or -0, which JSON writes as 0)
      this.digits(n >>> 0);
      return true;
    }
    if (!Number.isFinite(n)) return false;
    if (Number.isSafeInteger(n) && n > 0) {
      this.digits(n);
      return true;
    }
    const k = Math.round(n * 1000);
    if (k > 0 && k < 1e15 && k / 1000 === n) {
      // thousandths (durations in ms to the µs): an integer of up to 15 digits over 1000 is
      // written by JavaScript as those digits with the point put back, trailing zeros dropped
      let frac = k % 1000;
      this.digits((k - frac) / 1000);
      if (frac !== 0) {
        let places = 3;
        while (frac % 10 === 0) {
          frac /= 10;
          places--;
        }
        this.room(places + 1);
        const b = this.buf;
        let p = this.length + places + 1;
        this.length = p;
        for (let i = 0; i < places; i++) {
          const q = Math.floor(frac / 10);
          b[--p] = 0x30 + (frac - q * 10);
          frac = q;
        }
        b[p - 1] = 0x2e;
      }
      return true;
    }
    this.ascii(String(n)); // what JSON.stringify writes for a finite number
    return true;
  }

  /** A non-negative safe integer's digits, without a string. */
  private digits(v: number): void {
    let count = 1;
    for (let d = v; d >= 10; d = Math.floor(d / 10)) count++;
    this.room(count);
    const b = this.buf;
    let p = this.length + count;
    this.length = p;
    do {
      const q = Math.floor(v / 10);
      b[--p] = 0x30 + (v - q * 10);
      v = q;
    } while (v > 0);
  }

  /** Bytes already encoded (a kept part of a line). */
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  newline(): void {
    this.room(1);
    this.buf[this.length++] = 0x0a;
  }

  /** Drops what was written from `at` on. */
  cut(at: number): void {
    this.length = at;
  }

  /** The bytes from `from` on, as a view that the next write may change. */
  view(from = 0): Buffer {
    return this.buf.subarray(from, this.length);
  }

  /** Empties the buffer, giving back what a burst made it grow to. */
  clear(): void {
    this.length = 0;
    if (this.buf.length > KEEP_BYTES) this.buf = Buffer.allocUnsafe(this.startBytes);
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
}
