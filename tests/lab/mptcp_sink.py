"""Helper programs for the lab gateway tests (run inside lab namespaces).

  mptcp_sink.py serve --host H --port P
      An MPTCP listener (socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP); plain
      TCP where the namespace has MPTCP disabled) that
      prints "ready" once it listens, then serves connections one after
      the other. A connection starts with one request line:
        "GET N\\n"  the server sends N random bytes, then closes;
        "PUT N\\n"  the server reads N bytes (until EOF), replies with its
                    report as JSON, then closes.
      For each connection it prints a JSON report on stdout: bytes, sha256,
      the accepted socket's SO_PROTOCOL (262 = MPTCP, 6 = plain TCP, which
      is what an MPTCP listener hands out for a TCP client) and, for MPTCP,
      MPTCP_INFO's mptcpi_subflows (extra subflows) and mptcpi_flags, and
      "retrans": mptcpi_bytes_retrans (Linux 6.6+; None before), the bytes
      the server sent again at the MPTCP level, read after the client's
      EOF, when every byte has been delivered.
      Before reporting an MPTCP connection it waits (bounded) for the
      path manager's extra subflow, so a fast transfer cannot end before
      the join and be misread as "no second subflow".

  mptcp_sink.py fetch --proxy H:P [--user U --password W] --dst H:P
                      [--rdns] (--get N | --put N)
      The client, through SOCKS5 with PySocks; prints a JSON report: bytes,
      sha256, secs (connect to EOF) and, for PUT, the server's report.
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import time

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
SUBFLOW_WAIT = 10.0


def mptcp_info(c):
    """(subflows, flags) from MPTCP_INFO, or (None, None) for plain TCP."""
    try:
        info = c.getsockopt(SOL_MPTCP, MPTCP_INFO, 256)
    except OSError:
        return None, None
    return info[0], int.from_bytes(info[8:12], sys.byteorder)


def mptcp_retrans(c):
    """MPTCP_INFO's mptcpi_bytes_retrans, or None (not MPTCP, or a
    kernel whose mptcp_info ends before it)."""
    try:
        info = c.getsockopt(SOL_MPTCP, MPTCP_INFO, 256)
    except OSError:
        return None
    if len(info) < 56:
        return None
    return int.from_bytes(info[48:56], sys.byteorder)


def serve_one(c):
    f = c.makefile("rb")
    line = f.readline(64).decode().split()
    op, n = line[0], int(line[1])
    h = hashlib.sha256()
    t0 = time.monotonic()
    got = 0
    if op == "GET":
        data = os.urandom(n)
        h.update(data)
        c.sendall(data)
        got = n
    else:
        while got < n:
            b = f.read1(1 << 16)
            if not b:
                break
            h.update(b)
            got += len(b)
    secs = time.monotonic() - t0
    proto = c.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    sub, flags = mptcp_info(c)
    if proto == IPPROTO_MPTCP:
        end = time.monotonic() + SUBFLOW_WAIT
        while sub is not None and sub < 1 and time.monotonic() < end:
            time.sleep(0.01)
            sub, flags = mptcp_info(c)
    r = {"op": op, "bytes": got, "sha256": h.hexdigest(), "secs": secs,
         "protocol": proto, "subflows": sub, "flags": flags,
         "peer": c.getpeername()[0]}
    if op == "PUT":
        c.sendall(json.dumps(r).encode())
    c.shutdown(socket.SHUT_WR)
    # Until the client's EOF, so nothing it sent is left unread (no RST).
    while f.read1(1 << 16):
        pass
    r["retrans"] = mptcp_retrans(c) if proto == IPPROTO_MPTCP else None
    c.close()
    return r


def serve(a):
    try:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    except OSError:
        # net.mptcp.enabled = 0 here: a plain TCP server.
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(16)
    print("ready", flush=True)
    while True:
        c, _ = ls.accept()
        c.settimeout(120)
        try:
            r = serve_one(c)
        except (OSError, ValueError, IndexError) as e:
            r = {"error": repr(e)}
            c.close()
        print(json.dumps(r), flush=True)


def hostport(s):
    h, _, p = s.rpartition(":")
    return h, int(p)


def fetch(a):
    import socks
    s = socks.socksocket()
    ph, pp = hostport(a.proxy)
    s.set_proxy(socks.SOCKS5, ph, pp, rdns=a.rdns, username=a.user,
                password=a.password)
    s.settimeout(120)
    t0 = time.monotonic()
    s.connect(hostport(a.dst))
    h = hashlib.sha256()
    n = 0
    r = {}
    if a.get is not None:
        s.sendall(b"GET %d\n" % a.get)
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
    else:
        s.sendall(b"PUT %d\n" % a.put)
        data = os.urandom(a.put)
        h.update(data)
        s.sendall(data)
        n = len(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            reply += b
        r["server"] = json.loads(reply.decode())
    r.update(bytes=n, sha256=h.hexdigest(), secs=time.monotonic() - t0)
    s.close()
    print(json.dumps(r), flush=True)


def main(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--host", default="0.0.0.0")
    sv.add_argument("--port", type=int, required=True)
    fe = sub.add_parser("fetch")
    fe.add_argument("--proxy", required=True)
    fe.add_argument("--user")
    fe.add_argument("--password")
    fe.add_argument("--dst", required=True)
    fe.add_argument("--rdns", action="store_true",
                    help="send the name to the proxy (remote DNS)")
    g = fe.add_mutually_exclusive_group(required=True)
    g.add_argument("--get", type=int)
    g.add_argument("--put", type=int)
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        serve(a)
    else:
        fetch(a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
