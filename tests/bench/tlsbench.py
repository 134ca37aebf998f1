#!/usr/bin/env python3
"""tests/bench/tlsbench.py PORT CA COUNT MODE PROTO - TLS handshakes for the
benchmark (tests/bench/run.sh, section tls).

COUNT TLS 1.3 connections to 127.0.0.1:PORT, one after the other, each
verified against CA for the name localhost. MODE full starts every one
afresh; MODE resume offers the ticket of the previous connection. PROTO
says what to exchange so that the server has finished its side of the
handshake and sent its ticket: socks (a SOCKS5 greeting on mpgw's TLS
listener, answered 05 00) or rev (a line to openssl s_server -rev, answered
reversed). Prints one line: handshakes=N resumed=M errors=E.
"""
import socket
import ssl
import sys

EXCHANGE = {
    "socks": (b"\x05\x01\x00", b"\x05\x00"),
    "rev": (b"ping\n", b"gnip\n"),
}


def main():
    port, ca, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    mode, (ask, answer) = sys.argv[4], EXCHANGE[sys.argv[5]]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    sess, done, resumed, errors = None, 0, 0, 0
    for _ in range(count):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with ctx.wrap_socket(raw, server_hostname="localhost",
                                 session=sess) as ts:
                ts.sendall(ask)
                got = b""
                while len(got) < len(answer):
                    chunk = ts.recv(len(answer) - len(got))
                    if not chunk:
                        break
                    got += chunk
                if got != answer:
                    errors += 1
                    continue
                done += 1
                resumed += ts.session_reused
                if mode == "resume":
                    sess = ts.session
        except (OSError, ssl.SSLError):
            errors += 1
    print("handshakes=%d resumed=%d errors=%d" % (done, resumed, errors))


if __name__ == "__main__":
    main()
