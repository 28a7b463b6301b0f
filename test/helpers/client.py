"""Test client: a separate process that makes real loopback connections.

usage: client.py exchange HOST PORT SEND RECV   connect, send SEND bytes, receive exactly RECV, close
       client.py refused HOST PORT              connect to a port nobody listens on
       client.py churn HOST PORT COUNT          COUNT connect/close pairs as fast as possible
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


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == 'exchange':
        out = exchange(host, port, int(sys.argv[4]), int(sys.argv[5]))
    elif mode == 'refused':
        out = refused(host, port)
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
