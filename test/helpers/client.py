"""Test client: a separate process that makes real loopback connections.

usage: client.py exchange HOST PORT SEND RECV   connect, send SEND bytes, receive exactly RECV, close
       client.py tls HOST PORT SNI [WAIT_MS]     start TLS with server name SNI (plain listener),
                                                 WAIT_MS after connecting
       client.py hello-parts HOST PORT SNI PAD   a ClientHello naming SNI (padded by PAD bytes)
                                                 written in pieces by send, sendmsg (two
                                                 buffers), write and writev
       client.py dns SERVER NAME:PORT SEND       resolve NAME at SERVER:53, connect to it, send
       client.py udp HOST PORT SEND              connected UDP socket, send SEND bytes once
       client.py refused HOST PORT              connect to a port nobody listens on
       client.py churn HOST PORT COUNT          COUNT connect/close pairs as fast as possible
       client.py wait-tls HOST PORT SNI SECONDS connect, print the pid, wait for a line on stdin,
                                                 then a ClientHello naming SNI and 100 bytes every
                                                 50 ms for SECONDS
       client.py moved HOST SECONDS NETNS       a socket made here, connected (to a listener of
                                                 its own, 10 bytes sent) after the process moved
                                                 to network namespace NETNS; held SECONDS
Prints one JSON line with its pid and what happened.
"""
import json
import os
import socket
import sys


def family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def exchange(host, port, send, recv):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(b'q' * send)
    got = 0
    while got < recv:
        chunk = s.recv(min(65536, recv - got))
        if not chunk:
            break
        got += len(chunk)
    local = s.getsockname()[1]
    s.close()
    return {'sent': send, 'received': got, 'sport': local}


def refused(host, port):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    try:
        s.connect((host, port))
        return {'error': None}
    except OSError as e:
        return {'error': e.errno}
    finally:
        s.close()


def churn(host, port, count):
    ports = []
    for _ in range(count):
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.connect((host, port))
        ports.append(s.getsockname()[1])
        s.close()
    return {'count': count, 'sports': ports}


def tls_hello(host, port, sni, wait_ms=0):
    """Starts TLS with server name `sni` against a plain TCP listener; the handshake fails."""
    import ssl
    import time
    raw = socket.socket(family(host), socket.SOCK_STREAM)
    raw.settimeout(10)
    raw.connect((host, port))
    time.sleep(wait_ms / 1000)
    ctx = ssl.create_default_context()
    try:
        ctx.wrap_socket(raw, server_hostname=sni).close()
    except (ssl.SSLError, OSError):
        pass
    finally:
        raw.close()
    return {'sni': sni}


def wait_tls(host, port, sni, seconds):
    """Connects and prints its pid, then waits for a line on stdin; then writes a ClientHello
    naming `sni` and 100 bytes every 50 ms for `seconds`, counting what the socket took."""
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    print(json.dumps({'pid': os.getpid(), 'sport': s.getsockname()[1], 'ready': True}), flush=True)
    sys.stdin.readline()
    return trickle(s, seconds, client_hello(sni, 0))


def client_hello(sni, pad):
    """A minimal TLS 1.3 ClientHello record with a server_name and a padding extension."""
    import struct

    def u16(n):
        return struct.pack('>H', n)
    name = sni.encode()
    names = b'\x00' + u16(len(name)) + name
    exts = u16(0) + u16(len(names) + 2) + u16(len(names)) + names
    exts += u16(21) + u16(pad) + b'\x00' * pad
    body = b'\x03\x03' + b'\x07' * 32 + b'\x00' + u16(2) + b'\x13\x01' + b'\x01\x00' + u16(len(exts)) + exts
    msg = b'\x01' + len(body).to_bytes(3, 'big') + body
    return b'\x16\x03\x01' + u16(len(msg)) + msg


def hello_parts(host, port, sni, pad):
    """Writes a ClientHello in pieces through four different calls, then closes."""
    h = client_hello(sni, pad)
    cuts = [0, 40, 300, 1100, 1300, 1400, len(h)]
    p = [h[a:b] for a, b in zip(cuts, cuts[1:])]
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    s.send(p[0])                # sendto
    s.sendmsg([p[1], p[2]])     # sendmsg, two buffers
    os.write(s.fileno(), p[3])  # write
    os.writev(s.fileno(), [p[4], p[5]])  # writev, two buffers
    s.close()
    return {'sni': sni, 'bytes': len(h)}


def dns_then_connect(server, name, send):
    """Asks the DNS server at `server` (ip) for `name`, connects to the first A/AAAA answer on
    the port given after the name (name:port), sends `send` bytes and closes."""
    import struct
    qname, port = name.rsplit(':', 1)
    q = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0)
    for label in qname.split('.'):
        q += bytes([len(label)]) + label.encode()
    q += b'\x00' + struct.pack('>HH', 1, 1)
    u = socket.socket(family(server), socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(q, (server, 53))
    resp, _ = u.recvfrom(4096)
    u.close()
    # the last A record of the answer section (after any CNAMEs)
    an = struct.unpack('>H', resp[6:8])[0]
    off = 12
    while resp[off] != 0:
        off += 1 + resp[off]
    off += 5
    addr = None
    for _ in range(an):
        if resp[off] & 0xc0 == 0xc0:
            off += 2
        else:
            while resp[off] != 0:
                off += 1 + resp[off]
            off += 1
        rtype, _, _, rdlen = struct.unpack('>HHIH', resp[off:off + 10])
        off += 10
        if rtype == 1:
            addr = socket.inet_ntoa(resp[off:off + 4])
        off += rdlen
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((addr, int(port)))
    s.sendall(b'd' * send)
    s.close()
    return {'address': addr}


def udp_send(host, port, send):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.connect((host, port))
    s.send(b'u' * send)
    local = s.getsockname()[1]
    s.close()
    return {'sport': local}


def wait_connect(host, port, count):
    """Prints its pid, then for each line on stdin makes one connection and reports the result."""
    print(json.dumps({'pid': os.getpid(), 'ready': True}), flush=True)
    results = []
    for _ in range(count):
        if not sys.stdin.readline():
            break
        s = socket.socket(family(host), socket.SOCK_STREAM)
        try:
            s.connect((host, port))
            s.sendall(b'hello')
            r = {'ok': True, 'error': None}
        except OSError as e:
            r = {'ok': False, 'error': e.errno}
        finally:
            s.close()
        print(json.dumps(r), flush=True)
        results.append(r)
    return {'results': results}


def stream(host, port, seconds, wait=False):
    """One connection that sends 100 bytes every 50 ms for `seconds`; reports when sends stall.
    With `wait`, it connects and prints its pid, then sends nothing until a line comes on stdin."""
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    print(json.dumps({'pid': os.getpid(), 'sport': s.getsockname()[1], 'ready': True}), flush=True)
    if wait:
        sys.stdin.readline()
    return trickle(s, seconds)


def trickle(s, seconds, first=b''):
    """Writes `first`, then 100 bytes every 50 ms for `seconds` on the connected `s` (stalled
    writes time out and are not counted), and closes it."""
    import time
    s.settimeout(0.2)
    if first:
        s.sendall(first)
    sent = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            s.sendall(b's' * 100)
            sent += 100
        except OSError:
            pass
        time.sleep(0.05)
    s.close()
    return {'sent': sent}


def hold(s, port, seconds, fill=b''):
    """On the connected `s`: sends `fill`, prints the pid and ports, waits `seconds`, closes."""
    import time
    if fill:
        s.sendall(fill)
    local = s.getsockname()[1]
    print(json.dumps({'pid': os.getpid(), 'sport': local, 'port': port, 'ready': True}), flush=True)
    time.sleep(seconds)
    s.close()
    return {'sport': local}


def idle(host, port, seconds):
    """One connection that moves no byte: connects, prints its pid and port, waits `seconds`, closes."""
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    return hold(s, port, seconds)


def idle_self(host, seconds, fill=b''):
    """idle() against a listener of its own (for a network namespace with nothing else in it);
    with `fill`, the connection sends it first."""
    srv = socket.socket(family(host), socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(1)
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, srv.getsockname()[1]))
    out = hold(s, srv.getsockname()[1], seconds, fill)
    srv.close()
    return out


def tunnel(host, port, target, seconds, delay=0.0):
    """Through an HTTP proxy at host:port: CONNECT `target` (one send, `delay` s after connecting),
    read the answer, print the pid, then send 100 bytes every 50 ms for `seconds` (going on when
    the proxy stops taking them)."""
    import time
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    time.sleep(delay)
    s.sendall(('CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' % (target, target)).encode())
    answer = b''
    while b'\r\n\r\n' not in answer:
        chunk = s.recv(1024)
        if not chunk:
            raise SystemExit('the proxy closed before answering')
        answer += chunk
    print(json.dumps({'pid': os.getpid(), 'sport': s.getsockname()[1], 'answer': answer.split(b'\r\n')[0].decode(), 'ready': True}), flush=True)
    sent = 0
    s.settimeout(0.2)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s.send(b't' * 100)
            sent += 100
        except (socket.timeout, OSError):
            pass
        time.sleep(0.05)
    s.close()
    return {'sent': sent}


def moved(host, seconds, netns):
    """A socket whose namespace is not its owner's: made here (with a listener of its own), then the
    process moves to `netns` (setns) and connects it, sends 10 bytes and holds it `seconds`."""
    import ctypes
    srv = socket.socket(family(host), socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(1)
    s = socket.socket(family(host), socket.SOCK_STREAM)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise SystemExit('setns: errno %d' % ctypes.get_errno())
    os.close(fd)
    s.connect((host, srv.getsockname()[1]))  # the socket's own namespace: its own listener
    out = hold(s, srv.getsockname()[1], seconds, b'm' * 10)
    srv.close()
    return out


def listen_first(host, port, expect):
    """Connects to a server that speaks first: reads `expect` bytes, sends nothing, closes."""
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    local = s.getsockname()[1]
    got = 0
    while got < expect:
        d = s.recv(65536)
        if not d:
            break
        got += len(d)
    s.close()
    return {'sport': local, 'received': got}


def stalled_server(host):
    """A server whose accept queue is full, so that connects to it stay connecting (their SYNs are
    dropped and sent again 1 s later): listens with backlog 0, takes one connection into the queue
    itself, prints its port, and accepts only once a line comes on stdin. Then it reads every
    connection and prints the bytes received so far ({"received": n}) every 100 ms, until stdin closes."""
    import select
    srv = socket.socket(family(host), socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(0)
    filler = socket.socket(family(host), socket.SOCK_STREAM)
    filler.connect(srv.getsockname()[:2])
    print(json.dumps({'port': srv.getsockname()[1], 'ready': True}), flush=True)
    sys.stdin.readline()
    srv.setblocking(False)
    conns, received, stdin_open = [], 0, True
    while stdin_open:
        ready, _, _ = select.select([srv, sys.stdin] + conns, [], [], 0.1)
        for r in ready:
            if r is srv:
                conns.append(srv.accept()[0])
            elif r is sys.stdin:
                stdin_open = sys.stdin.readline() != ''
            else:
                d = r.recv(65536)
                received += len(d)
                if not d:
                    conns.remove(r)
        print(json.dumps({'received': received}), flush=True)
    filler.close()
    return {'received': received}


def main():
    mode, host = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if sys.argv[3].isdigit() else 0
    if mode == 'exchange':
        out = exchange(host, port, int(sys.argv[4]), int(sys.argv[5]))
    elif mode == 'refused':
        out = refused(host, port)
    elif mode == 'tls':
        out = tls_hello(host, port, sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif mode == 'hello-parts':
        out = hello_parts(host, port, sys.argv[4], int(sys.argv[5]))
    elif mode == 'dns':
        out = dns_then_connect(host, sys.argv[3], int(sys.argv[4]))
    elif mode == 'udp':
        out = udp_send(host, port, int(sys.argv[4]))
    elif mode == 'wait-connect':
        out = wait_connect(host, port, int(sys.argv[4]))
    elif mode == 'stream':
        out = stream(host, port, float(sys.argv[4]))
    elif mode == 'idle':
        out = idle(host, port, float(sys.argv[4]))
    elif mode == 'idle-self':
        out = idle_self(host, float(sys.argv[3]))
    elif mode == 'tunnel':
        out = tunnel(host, port, sys.argv[4], float(sys.argv[5]), float(sys.argv[6]) if len(sys.argv) > 6 else 0.0)
    elif mode == 'sent-self':
        out = idle_self(host, float(sys.argv[3]), b's' * 10)
    elif mode == 'idle-then-send':
        out = stream(host, port, float(sys.argv[4]), wait=True)
    elif mode == 'wait-tls':
        out = wait_tls(host, port, sys.argv[4], float(sys.argv[5]))
    elif mode == 'listen-first':
        out = listen_first(host, port, int(sys.argv[4]))
    elif mode == 'stalled-server':
        out = stalled_server(host)
    elif mode == 'moved':
        out = moved(host, float(sys.argv[3]), sys.argv[4])
    elif mode == 'churn':
        out = churn(host, port, int(sys.argv[4]))
    else:
        raise SystemExit('unknown mode ' + mode)
    out['pid'] = os.getpid()
    out['uid'] = os.getuid()
    with open('/proc/self/comm') as f:
        out['comm'] = f.read().strip()
    print(json.dumps(out), flush=True)


main()
