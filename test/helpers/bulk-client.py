"""Test client for bulk sends: connects to HOST PORT, then runs one command per line of stdin and
answers each with one JSON line on stdout.

usage: bulk-client.py HOST PORT
  send N          one send() of N bytes (a blocking socket: the whole buffer at once)
  sendmany K N    K send()s of N bytes each
  threads K N     K threads, each one send() of N bytes, all at once
  fill N          send()s of at most 1 MiB until write_seq is a multiple of N (each ends on it
                  or before it)
  seq             the socket's write_seq (TCP_REPAIR: needs CAP_NET_ADMIN)
  recv N          receive exactly N bytes
  shut            shutdown(SHUT_WR)
  wait-reset      block until the peer's reset (a recv that fails)
  close
The first line of output gives the pid and the local port.
"""
import json
import os
import socket
import sys
import threading

TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ, TCP_SEND_QUEUE = 19, 20, 21, 2


def write_seq(s):
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
        return s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ) & 0xffffffff
    finally:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)


def send(s, n):
    sent = s.send(b'b' * n)
    if sent != n:
        raise SystemExit(f'send({n}) sent {sent}')
    return sent


def run(s, words):
    cmd, args = words[0], [int(w) for w in words[1:]]
    if cmd == 'send':
        return {'sent': send(s, args[0])}
    if cmd == 'sendmany':
        return {'sent': sum(send(s, args[1]) for _ in range(args[0]))}
    if cmd == 'threads':
        ts = [threading.Thread(target=send, args=(s, args[1])) for _ in range(args[0])]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return {'sent': args[0] * args[1]}
    if cmd == 'fill':
        total = 0
        while True:
            room = (args[0] - write_seq(s) % args[0]) % args[0]
            if room == 0:
                return {'sent': total}
            total += send(s, min(room, 1 << 20))
    if cmd == 'seq':
        return {'seq': write_seq(s)}
    if cmd == 'recv':
        got = 0
        while got < args[0]:
            chunk = s.recv(args[0] - got)
            if not chunk:
                break
            got += len(chunk)
        return {'received': got}
    if cmd == 'shut':
        s.shutdown(socket.SHUT_WR)
        return {}
    if cmd == 'wait-reset':
        try:
            while s.recv(65536):
                pass
            return {'error': None}
        except OSError as e:
            return {'error': e.errno}
    if cmd == 'close':
        s.close()
        return {}
    raise SystemExit('unknown command ' + cmd)


def main():
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    print(json.dumps({'pid': os.getpid(), 'sport': s.getsockname()[1]}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words:
            print(json.dumps(run(s, words)), flush=True)


main()
