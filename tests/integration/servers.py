"""Test servers for the integration suite, run as separate processes.

    python3 servers.py origin --host 127.0.0.1 --ready FILE
    python3 servers.py echo   --host ::1       --ready FILE
    python3 servers.py udpecho --host 127.0.0.1 --ready FILE

Each binds an ephemeral port, listens, then writes FILE (JSON: host, port,
mptcp) atomically, so the fixture knows the port once it can accept.

origin (HTTP/1.1, one request per connection, "Connection: close"):
  GET  /hello        "hello\\n"
  GET  /bytes/N      payload(N): N deterministic pseudo-random bytes,
                     header X-SHA256 = their sha256 hex
  GET  /peer         JSON {"ip", "port", "mptcp"}: the peer's address as this
                     server sees it, and whether the connection is MPTCP
  PUT|POST /upload   reads the body (Content-Length or chunked), answers its
                     sha256 hex + "\\n", header X-Length = bytes received

echo: reads until EOF, then sends back everything it got followed by the
64-character sha256 hex of it, then closes.

udpecho: a UDP socket that sends every datagram back to where it came
from, unchanged (the "port" in FILE is its UDP port).

The listeners are MPTCP when the kernel allows it (they accept plain TCP
too), so a test can tell whether the gateway's upstream negotiated MPTCP.
This module is also imported by the tests for payload() and the constants.
"""

import argparse
import hashlib
import http.server
import json
import os
import random
import socket
import socketserver
import sys
import threading

IPPROTO_MPTCP = 262
TCP_IS_MPTCP = 43

_payload_lock = threading.Lock()
_payload_cache = {}


def payload(n, seed="bytes"):
    """n deterministic pseudo-random bytes; the same (n, seed) always gives
    the same bytes, in any process."""
    key = (n, seed)
    with _payload_lock:
        data = _payload_cache.get(key)
    if data is None:
        data = random.Random("mpgw-%s-%d" % (seed, n)).randbytes(n)
        with _payload_lock:
            if len(_payload_cache) > 4:
                _payload_cache.clear()
            _payload_cache[key] = data
    return data


def echo_answer(data):
    """What the echo server sends back for data."""
    return data + hashlib.sha256(data).hexdigest().encode()


def is_mptcp(sock):
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, TCP_IS_MPTCP))
    except OSError:
        return None


def _listen_socket(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    mptcp = True
    try:
        s = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP)
    except OSError:
        s = socket.socket(family, socket.SOCK_STREAM)
        mptcp = False
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, 0))
    s.listen(1024)
    return s, mptcp


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host, handler):
        socketserver.TCPServer.__init__(self, None, handler,
                                        bind_and_activate=False)
        self.socket.close()
        self.socket, self.mptcp = _listen_socket(host)
        self.address_family = self.socket.family
        self.server_address = self.socket.getsockname()


class OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mpgw-test-origin"

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body, headers=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            view = memoryview(body)
            for off in range(0, len(view), 1 << 20):
                self.wfile.write(view[off:off + (1 << 20)])
        self.close_connection = True

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/hello":
            self._send(200, b"hello\n", [("Content-Type", "text/plain")])
        elif path.startswith("/bytes/"):
            try:
                n = int(path[len("/bytes/"):])
            except ValueError:
                n = -1
            if n < 0 or n > (1 << 31):
                self._send(400, b"bad length\n")
                return
            data = payload(n)
            self._send(200, data, [
                ("Content-Type", "application/octet-stream"),
                ("X-SHA256", hashlib.sha256(data).hexdigest())])
        elif path == "/peer":
            ip, port = self.connection.getpeername()[:2]
            body = json.dumps({"ip": ip, "port": port,
                               "mptcp": is_mptcp(self.connection)})
            self._send(200, body.encode() + b"\n",
                       [("Content-Type", "application/json")])
        else:
            self._send(404, b"not found\n")

    def _read_body(self, h):
        n = 0
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("EOF in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return n
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError("EOF in chunk")
                    h.update(chunk)
                    n += len(chunk)
                    left -= len(chunk)
                self.rfile.readline(16)
        left = int(self.headers.get("Content-Length", "0"))
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError("EOF in body")
            h.update(chunk)
            n += len(chunk)
            left -= len(chunk)
        return n

    def _upload(self):
        if self.path.split("?", 1)[0] != "/upload":
            self._send(404, b"not found\n")
            return
        h = hashlib.sha256()
        n = self._read_body(h)
        self._send(200, h.hexdigest().encode() + b"\n",
                   [("X-Length", str(n)), ("Content-Type", "text/plain")])

    do_PUT = _upload
    do_POST = _upload


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        parts = []
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            parts.append(b)
        s.sendall(echo_answer(b"".join(parts)))
        # close() after the last byte: FIN, the client sees EOF.


def udp_echo(host, ready):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((host, 0))
    _write_ready(ready, {"host": host, "port": s.getsockname()[1],
                         "mptcp": False, "pid": os.getpid()})
    try:
        while True:
            data, peer = s.recvfrom(1 << 16)
            s.sendto(data, peer)
    except KeyboardInterrupt:
        pass
    return 0


def _write_ready(path, info):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["origin", "echo", "udpecho"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ready", required=True)
    a = ap.parse_args()
    if a.kind == "udpecho":
        return udp_echo(a.host, a.ready)
    handler = OriginHandler if a.kind == "origin" else EchoHandler
    srv = _Server(a.host, handler)
    _write_ready(a.ready, {"host": a.host, "port": srv.server_address[1],
                           "mptcp": srv.mptcp, "pid": os.getpid()})
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
