import test from 'ava';
import fc from 'fast-check';
import { isPlain, LineBytes } from '../../src/sinks/line-bytes.js';

const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\n', '\u0000', '\u007f', '\u0080', '\ud800', 'a\udc00b', '😀'));

test('text is written as Node writes a string (UTF-8, a lone surrogate as U+FFFD)', (t) => {
  fc.assert(
    fc.property(fc.array(text), (parts) => {
      const b = new LineBytes(16); // small: every few parts make it grow
      for (const p of parts) b.text(p);
      return b.view().equals(Buffer.from(parts.join(''), 'utf8'));
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('plain writes exactly the strings JSON writes as they are, in ASCII; anything else returns false', (t) => {
  fc.assert(
    fc.property(text, (s) => {
      const b = new LineBytes(4);
      const ok = b.plain(s);
      const asIs = JSON.stringify(s) === `"${s}"` && /^[\x00-\x7f]*$/.test(s);
      return ok === asIs && isPlain(s) === asIs && (!ok || b.view().toString('latin1') === s);
    }),
    { numRuns: 2000 },
  );
  const b = new LineBytes();
  t.false(b.plain(42));
  t.false(b.plain(null));
  t.false(isPlain(42));
  t.true(b.plain('\u007f')); // JSON leaves DEL as it is
});

test('number writes what JSON.stringify writes for it, and refuses what JSON writes as null', (t) => {
  const thousandths = fc.oneof(fc.integer(), fc.integer({ min: 1, max: 1e15 + 10 }), fc.maxSafeInteger()).map((k) => k / 1000);
  const num = fc.oneof(fc.integer(), fc.nat(), fc.maxSafeInteger(), fc.double(), thousandths, fc.constantFrom(0, -0, 2 ** 32 - 1, 2 ** 32, 1e21, 0.051, 0.001, 0.0005, 0.1 + 0.2, 1e12 - 0.001, 5e-324));
  fc.assert(
    fc.property(num, (n) => {
      const b = new LineBytes(2);
      const ok = b.number(n);
      return Number.isFinite(n) ? ok && b.view().toString('latin1') === JSON.stringify(n) : !ok;
    }),
    { numRuns: 5000 },
  );
  const b = new LineBytes();
  t.false(b.number('1'));
  t.false(b.number(Number.NaN));
  t.false(b.number(Number.NEGATIVE_INFINITY));
});

test('bytes, newline, cut and clear; what was held survives growth', (t) => {
  const b = new LineBytes(8);
  b.ascii('{"a":');
  b.bytes(Buffer.from('[1,2,3]'));
  b.ascii('}');
  b.newline();
  const mark = b.length;
  b.ascii('half a line that is cut back');
  b.cut(mark);
  b.text('x'.repeat(3 << 20)); // past the size kept after a burst
  t.is(b.view().subarray(0, mark).toString(), '{"a":[1,2,3]}\n');
  t.is(b.length, mark + (3 << 20));
  t.is(b.view(mark).length, 3 << 20);
  b.clear();
  t.is(b.length, 0);
  b.ascii('again');
  t.is(b.view().toString(), 'again');
});
