/** The request line of an HTTP CONNECT request (a tunnel through a proxy), as the kernel samples it. */
import test from 'ava';
import fc from 'fast-check';
import { parseConnectRequest, startsConnect } from '../../src/core/http-connect.js';

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

test('a CONNECT request names its target: a host name (as busted shows names), an IPv4 or a bracketed IPv6 address', (t) => {
  t.deepEqual(parseConnectRequest(bytes('CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n')), { host: 'api.openai.com', port: 443, ip: false });
  t.deepEqual(parseConnectRequest(bytes('CONNECT API.Anthropic.com.:8443 HTTP/1.0\n\n')), { host: 'api.anthropic.com', port: 8443, ip: false });
  t.deepEqual(parseConnectRequest(bytes('CONNECT 192.0.2.7:443 HTTP/1.1\r\n')), { host: '192.0.2.7', port: 443, ip: true });
  t.deepEqual(parseConnectRequest(bytes('CONNECT [2001:DB8::1]:443 HTTP/1.1\r\n')), { host: '2001:db8::1', port: 443, ip: true });
  t.true(startsConnect(bytes('CONNECT x')));
  t.false(startsConnect(bytes('CONNEC')));
  t.false(startsConnect(bytes('GET / HTTP/1.1\r\n')));
  t.false(startsConnect(new Uint8Array([0x16, 3, 1, 0, 200])));
});

const BAD: [string, string][] = [
  ['CONNECT api.openai.com HTTP/1.1\r\n', 'no port'],
  ['CONNECT api.openai.com:0 HTTP/1.1\r\n', 'port 0'],
  ['CONNECT api.openai.com:70000 HTTP/1.1\r\n', 'port above 65535'],
  ['CONNECT api.openai.com:443 HTTP/2\r\n', 'not HTTP/1.x'],
  ['CONNECT api.openai.com:443 HTTP/1.1', 'the line is cut short (no end in the sample)'],
  ['CONNECT user@api.openai.com:443 HTTP/1.1\r\n', 'userinfo'],
  ['CONNECT https://api.openai.com/ HTTP/1.1\r\n', 'not the authority form'],
  ['CONNECT api_openai..com:443 HTTP/1.1\r\n', 'not a host name'],
  ['CONNECT [2001:db8::1:443 HTTP/1.1\r\n', 'an unclosed bracket'],
  ['CONNECT [api.openai.com]:443 HTTP/1.1\r\n', 'a name in brackets'],
  ['CONNECT api.openai.com:443  HTTP/1.1\r\n', 'two spaces'],
  ['CONNECT caf\xe9.example:443 HTTP/1.1\r\n', 'not ASCII'],
  ['CONNECTapi.openai.com:443 HTTP/1.1\r\n', 'no space after the method'],
];

for (const [line, why] of BAD) {
  test(`a CONNECT request line that does not parse gives null: ${why}`, (t) => {
    t.is(parseConnectRequest(bytes(line)), null);
  });
}

test('any bytes after "CONNECT " give a target or null, never an exception', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (tail) => {
    const data = new Uint8Array([...bytes('CONNECT '), ...tail]);
    const r = parseConnectRequest(data);
    return r === null || (r.port >= 1 && r.port <= 65535 && r.host.length > 0);
  }));
  t.pass();
});
