/** parseSinkFlags: --metrics, --otlp and the --record-* flags, and their usage errors (one sentence each). */
import test from 'ava';
import { UsageError } from '../../src/cli/options.js';
import { parseListen, parseSinkFlags, parseSize } from '../../src/sinks/wire.js';

test('--metrics: PORT, HOST:PORT and [v6]:PORT; the host defaults to loopback', (t) => {
  t.deepEqual(parseSinkFlags({ metrics: '9464' }), { metrics: '127.0.0.1:9464' });
  t.deepEqual(parseSinkFlags({ metrics: 9464 }), { metrics: '127.0.0.1:9464' });
  t.deepEqual(parseSinkFlags({ metrics: '0.0.0.0:9464' }), { metrics: '0.0.0.0:9464' });
  t.deepEqual(parseSinkFlags({ metrics: '[::1]:9464' }), { metrics: '[::1]:9464' });
  t.deepEqual(parseSinkFlags({ metrics: 'localhost:9100' }), { metrics: 'localhost:9100' });
  t.deepEqual(parseListen('[::]:80'), { host: '::', port: 80 });
  for (const bad of ['', 'abc', '70000', '0', '127.0.0.1:', ':9464', '::1:9464', '[zz]:1', 'host name:1', '1.2.3.4:99999']) {
    const err = t.throws(() => parseSinkFlags({ metrics: bad }), { instanceOf: UsageError }, bad);
    t.regex(err!.message, /^--metrics must be \[HOST:\]PORT .*not ".*"; see busted --help\.$/);
  }
});

test('--otlp: an http(s) URL', (t) => {
  t.deepEqual(parseSinkFlags({ otlp: 'http://127.0.0.1:4318' }), { otlp: 'http://127.0.0.1:4318/' });
  t.deepEqual(parseSinkFlags({ otlp: 'https://collector.test/v1/logs' }), { otlp: 'https://collector.test/v1/logs' });
  for (const bad of ['127.0.0.1:4318', 'ftp://x/', 'not a url', 'http://']) {
    const err = t.throws(() => parseSinkFlags({ otlp: bad }), { instanceOf: UsageError }, bad);
    t.regex(err!.message, /^--otlp must be an http:\/\/ or https:\/\/ URL/);
  }
});

test('sizes: plain bytes and K/M/G/T (binary), with or without B/iB', (t) => {
  t.is(parseSize('4096'), 4096);
  t.is(parseSize('512K'), 512 * 1024);
  t.is(parseSize('100M'), 100 * 1024 ** 2);
  t.is(parseSize('100MiB'), 100 * 1024 ** 2);
  t.is(parseSize('1.5g'), 1.5 * 1024 ** 3);
  t.is(parseSize('2TB'), 2 * 1024 ** 4);
  for (const bad of ['', 'M', '-1M', '10X', '1e3']) t.is(parseSize(bad), null, bad);
});

test('--record-*: parsed into the record options', (t) => {
  t.deepEqual(parseSinkFlags({ record: '/var/log/busted/x.jsonl' }), { record: { path: '/var/log/busted/x.jsonl' } });
  t.deepEqual(
    parseSinkFlags({ record: 'r.jsonl', recordMaxSize: '100M', recordKeep: 7, recordFlush: 250, recordFsync: true }),
    { record: { path: 'r.jsonl', maxBytes: 100 * 1024 ** 2, keep: 7, flushMs: 250, fsync: true } },
  );
  t.deepEqual(parseSinkFlags({ record: 'r.jsonl', recordFlush: 0, recordFsync: false }), { record: { path: 'r.jsonl', flushMs: 0 } });
});

test('--record-* usage errors say what is wrong in one sentence', (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ recordMaxSize: '1M' }, /^--record-max-size only applies with --record FILE; see busted --help\.$/],
    [{ recordKeep: 3 }, /^--record-keep only applies with --record FILE/],
    [{ recordFlush: 10 }, /^--record-flush only applies with --record FILE/],
    [{ recordFsync: true }, /^--record-fsync only applies with --record FILE/],
    [{ record: 'r', recordKeep: 3 }, /^--record-keep only applies with --record-max-size SIZE/],
    [{ record: 'r', recordMaxSize: '1K' }, /^--record-max-size must be a size of at least 4K, such as 100M, 512K or 1G, not "1K"/],
    [{ record: 'r', recordMaxSize: 'big' }, /not "big"/],
    [{ record: 'r', recordMaxSize: '1M', recordKeep: 0 }, /^--record-keep must be a whole number of files from 1 to 1000/],
    [{ record: 'r', recordMaxSize: '1M', recordKeep: 2.5 }, /--record-keep must be/],
    [{ record: 'r', recordMaxSize: '1M', recordKeep: Number.NaN }, /--record-keep must be .*not "NaN"/],
    [{ record: 'r', recordFlush: -1 }, /^--record-flush must be a whole number of milliseconds from 0 \(every record\) to 60000, not "-1"/],
    [{ record: 'r', recordFlush: 600_000 }, /--record-flush must be/],
  ];
  for (const [raw, re] of cases) {
    const err = t.throws(() => parseSinkFlags(raw), { instanceOf: UsageError }, JSON.stringify(raw));
    t.regex(err!.message, re);
    t.is(err!.message.split('; ').length, 2, 'one sentence, then the pointer to --help');
  }
});

test('the usage error names the command it came from', (t) => {
  const err = t.throws(() => parseSinkFlags({ metrics: 'nope' }, 'busted-top'), { instanceOf: UsageError });
  t.regex(err!.message, /see busted-top --help\.$/);
});
