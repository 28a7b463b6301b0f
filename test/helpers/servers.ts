/**
 * Loopback servers for the kernel e2e tests (127.0.0.0/8 and ::1 only): the counterpart a test
 * client talks to, so busted sees a real connection with exact byte counts.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** A server that reads `expect` bytes from each connection, answers `reply` bytes, and ends it. */
export async function exchangeServer(host: string, expect: number, reply: number): Promise<Server> {
  const server = createServer((sock) => {
    let got = 0;
    sock.on('data', (d) => {
      got += d.length;
      if (got >= expect) sock.end(Buffer.alloc(reply, 0x61));
    });
    sock.on('error', () => {});
  });
  server.listen(0, host);
  await once(server, 'listening');
  return server;
}

export interface Listener extends Server {
  /** Bytes received over all connections. */
  received: number;
  /** Closes the server and drops every open connection. */
  shut(): void;
}

/** A server that keeps each connection open and counts the bytes it receives. */
export async function holdingServer(host: string): Promise<Listener> {
  const conns = new Set<Socket>();
  const server = createServer((s) => {
    conns.add(s);
    s.on('data', (d) => (server.received += d.length)).on('error', () => {}).on('close', () => conns.delete(s));
  }) as Listener;
  server.received = 0;
  server.shut = () => {
    for (const c of conns) c.destroy();
    server.close();
  };
  server.listen(0, host);
  await once(server, 'listening');
  return server;
}

export const portOf = (s: Server): number => (s.address() as AddressInfo).port;

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = portOf(s);
  s.close();
  await once(s, 'close');
  return port;
}
