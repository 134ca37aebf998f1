"""Small helper programs for the lab tests of name resolution and the
gateway's own-address protection (run inside lab namespaces).

  netprobe.py blackhole --host H [--port 53]
      A DNS server that reads every UDP query and never answers. Prints
      "ready" once bound, then the name asked in each query, one per line.

  netprobe.py echo --host H --port P
      A TCP echo server: prints "ready", echoes every connection.

  netprobe.py socks --proxy H:P [--hold N --hold-suffix S] HOST PORT...
      A SOCKS5 client (method none, CONNECT). With --hold, first opens N
      connections asking for slowI.S:80, leaves them waiting, prints
      "held" and waits for SIGUSR1. Then, for each HOST PORT in turn,
      makes a CONNECT and, on success, sends a line and reads it back;
      prints {"rep": N, "echo": "..."} as JSON (rep is null if the
      connection closed or timed out without a reply).
"""

import argparse
import json
import signal
import socket
import struct
import sys
import threading

# Bounds a hang, measures nothing.
IO_TIMEOUT = 60.0


def qname(pkt):
    labels, off = [], 12
    while off < len(pkt) and pkt[off] != 0:
        n = pkt[off]
        labels.append(pkt[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels)


def blackhole(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.host, args.port))
    print("ready", flush=True)
    while True:
        pkt = s.recv(2048)
        if len(pkt) >= 12:
            print(qname(pkt), flush=True)


def echo_one(c):
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)


def echo(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.host, args.port))
    s.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo_one, args=(c,), daemon=True).start()


def request(host, port):
    try:
        raw = socket.inet_aton(host)
        addr = b"\x01" + raw
    except OSError:
        name = host.encode()
        addr = b"\x03" + bytes([len(name)]) + name
    return b"\x05\x01\x00" + b"\x05\x01\x00" + addr + struct.pack(">H", port)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def connect(proxy, host, port):
    s = socket.create_connection(proxy, timeout=IO_TIMEOUT)
    s.sendall(request(host, port))
    try:
        if recv_exact(s, 2) != b"\x05\x00":
            return {"rep": None, "echo": None, "error": "method refused"}
        head = recv_exact(s, 4)
        rep = head[1]
        alen = {1: 4, 4: 16}.get(head[3])
        if alen is None:
            alen = recv_exact(s, 1)[0]
        recv_exact(s, alen + 2)
        got = None
        if rep == 0:
            s.sendall(b"ping\n")
            got = recv_exact(s, 5).decode()
        return {"rep": rep, "echo": got}
    except (EOFError, socket.timeout, ConnectionError) as e:
        return {"rep": None, "echo": None, "error": repr(e)}
    finally:
        s.close()


def socks(args):
    host, _, port = args.proxy.rpartition(":")
    proxy = (host, int(port))
    held = []
    if args.hold:
        # Blocked before "held" is printed, so no signal can be missed.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    for i in range(args.hold):
        s = socket.create_connection(proxy, timeout=IO_TIMEOUT)
        s.sendall(request("slow%d.%s" % (i, args.hold_suffix), 80))
        if recv_exact(s, 2) != b"\x05\x00":
            sys.exit("method refused")
        held.append(s)
    if args.hold:
        print("held", flush=True)
        signal.sigwait({signal.SIGUSR1})
    for i in range(0, len(args.targets) - 1, 2):
        print(json.dumps(connect(proxy, args.targets[i],
                                 int(args.targets[i + 1]))), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("blackhole")
    b.add_argument("--host", required=True)
    b.add_argument("--port", type=int, default=53)
    e = sub.add_parser("echo")
    e.add_argument("--host", required=True)
    e.add_argument("--port", type=int, required=True)
    c = sub.add_parser("socks")
    c.add_argument("--proxy", required=True)
    c.add_argument("--hold", type=int, default=0)
    c.add_argument("--hold-suffix", default="blackhole.test")
    c.add_argument("targets", nargs="+", metavar="HOST PORT")
    args = ap.parse_args()
    {"blackhole": blackhole, "echo": echo, "socks": socks}[args.cmd](args)


if __name__ == "__main__":
    main()
