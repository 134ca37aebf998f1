"""A SOCKS5 UDP ASSOCIATE client for the lab tests (runs in the cli
namespace), written from RFC 1928/1929 like tests/integration/socksraw.py.

    udp_client.py --proxy IP:PORT [--user U --password P] --dst HOST:PORT
                  echo   --count N --size S [--window W]
    udp_client.py ... flow --count N --size S --interval SECS
                  [--progress K] [--drain SECS]

echo: N numbered datagrams of S bytes in windows of W, each window's
echoes awaited (at most 10 s) before the next is sent; prints one JSON
line {"sent", "echoed", "lost": [...], "bad": n, "relay": "ip:port"}.

flow: N numbered datagrams, one every SECS (CLOCK_MONOTONIC pacing, no
waiting for echoes), a receiver taking echoes meanwhile; after the
last, echoes are awaited for --drain seconds. Prints "progress K" once K
echoes are in (so a test can act mid-flow), then one JSON line
{"sent", "echoed", "send": [t...], "recv": {seq: t}} with monotonic
times (the host's clock, the same in every namespace).

Every datagram starts with its 4-byte sequence number; an echo must come
back with the same bytes and a header naming --dst (or, for a name, any
address). Exit 0 when the association worked, whatever was lost.
"""

import argparse
import ipaddress
import json
import socket
import struct
import sys
import threading
import time


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("proxy closed the connection")
        b += c
    return b


def addr_bytes(host):
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        n = host.encode()
        return b"\x03" + bytes([len(n)]) + n
    return (b"\x01" if ip.version == 4 else b"\x04") + ip.packed


def associate(proxy, user, password):
    host, _, port = proxy.rpartition(":")
    ctl = socket.create_connection((host, int(port)), timeout=20)
    methods = b"\x02" if user else b"\x00"
    ctl.sendall(b"\x05\x01" + methods)
    m = recv_exact(ctl, 2)
    if m[1] == 0x02:
        u, p = user.encode(), password.encode()
        ctl.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        if recv_exact(ctl, 2)[1] != 0:
            raise SystemExit("login failed")
    elif m[1] != 0x00:
        raise SystemExit("method %#x" % m[1])
    ctl.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    head = recv_exact(ctl, 4)
    if head[1] != 0:
        raise SystemExit("UDP ASSOCIATE refused: REP %#04x" % head[1])
    if head[3] == 1:
        a = socket.inet_ntoa(recv_exact(ctl, 4))
    elif head[3] == 4:
        a = socket.inet_ntop(socket.AF_INET6, recv_exact(ctl, 16))
    else:
        raise SystemExit("BND ATYP %d" % head[3])
    rport = struct.unpack("!H", recv_exact(ctl, 2))[0]
    return ctl, (a, rport)


def parse(data):
    """(seq, payload ok) of an echo: header skipped, number read."""
    if len(data) < 4 or data[2] != 0:
        return None
    atyp = data[3]
    off = {1: 8, 4: 20}.get(atyp)
    if atyp == 3:
        off = 5 + data[4]
    if off is None or len(data) < off + 2 + 4:
        return None
    return struct.unpack("!I", data[off + 2:off + 6])[0], data[off + 2:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--dst", required=True)
    ap.add_argument("mode", choices=["echo", "flow"])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--progress", type=int, default=0)
    ap.add_argument("--drain", type=float, default=5.0)
    a = ap.parse_args()
    ctl, relay = associate(a.proxy, a.user, a.password)
    dhost, _, dport = a.dst.rpartition(":")
    head = b"\x00\x00\x00" + addr_bytes(dhost) + struct.pack("!H", int(dport))
    u = socket.socket(socket.AF_INET6 if ":" in relay[0] else
                      socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    pad = b"." * max(0, a.size - 4)

    def datagram(i):
        return head + struct.pack("!I", i) + pad

    if a.mode == "echo":
        got, bad = set(), 0
        for w in range(0, a.count, a.window):
            todo = set(range(w, min(a.count, w + a.window)))
            for i in sorted(todo):
                u.sendto(datagram(i), relay)
            end = time.monotonic() + 10
            while todo and time.monotonic() < end:
                u.settimeout(max(0.01, end - time.monotonic()))
                try:
                    data = u.recv(1 << 17)
                except socket.timeout:
                    break
                p = parse(data)
                if p is None or p[1] != struct.pack("!I", p[0]) + pad:
                    bad += 1
                    continue
                got.add(p[0])
                todo.discard(p[0])
        lost = sorted(set(range(a.count)) - got)
        print(json.dumps({"sent": a.count, "echoed": len(got), "lost": lost,
                          "bad": bad, "relay": "%s:%d" % relay}))
        ctl.close()
        return 0

    recv = {}
    lock = threading.Lock()
    stop = threading.Event()
    said = [False]

    def receiver():
        u.settimeout(0.2)
        while not stop.is_set():
            try:
                data = u.recv(1 << 17)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            p = parse(data)
            if p is None or p[1] != struct.pack("!I", p[0]) + pad:
                continue
            with lock:
                recv.setdefault(p[0], t)
                n = len(recv)
            if a.progress and n >= a.progress and not said[0]:
                said[0] = True
                print("progress %d" % n, flush=True)

    th = threading.Thread(target=receiver, daemon=True)
    th.start()
    sent = []
    start = time.monotonic()
    for i in range(a.count):
        due = start + i * a.interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        sent.append(time.monotonic())
        u.sendto(datagram(i), relay)
    end = time.monotonic() + a.drain
    while time.monotonic() < end:
        with lock:
            if len(recv) == a.count:
                break
        time.sleep(0.05)
    stop.set()
    th.join()
    with lock:
        print(json.dumps({"sent": a.count, "echoed": len(recv), "send": sent,
                          "recv": {str(k): v for k, v in recv.items()}}),
              flush=True)
    ctl.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
