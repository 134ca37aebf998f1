"""Raw Convert client for the lab tests (runs inside the cli namespace).

Reads a JSON list of cases on stdin, runs them one after the other, each on
a new TCP socket, and prints a JSON list of results on stdout.

A case: {"dst": "IP:PORT", "data": HEX, "fastopen": bool, "shut": bool,
         "timeout": seconds, "src": IP (optional source address)}
  data is sent in the SYN (sendto MSG_FASTOPEN with TCP_FASTOPEN_NO_COOKIE)
  when fastopen is set, else after connect(); with shut the socket is then
  half-closed (SHUT_WR). Everything the peer sends is read until EOF, a
  reset or the timeout.
A result: {"reply": HEX, "end": "eof" | "reset" | "timeout" | "errno N",
           "connect": "ok" | "errno N"}
"""

import errno
import json
import socket
import sys

TCP_FASTOPEN_NO_COOKIE = 34


def run(case):
    host, _, port = case["dst"].rpartition(":")
    dst = (host, int(port))
    data = bytes.fromhex(case["data"])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if case.get("src"):
        s.bind((case["src"], 0))
    res = {"reply": "", "connect": "ok"}
    try:
        if case.get("fastopen"):
            s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, 1)
            n = s.sendto(data, socket.MSG_FASTOPEN, dst)
            if n < len(data):
                s.sendall(data[n:])
        else:
            s.connect(dst)
            s.sendall(data)
        if case.get("shut"):
            s.shutdown(socket.SHUT_WR)
    except OSError as e:
        res["connect"] = "errno %s" % e.errno
    # Blocking for connect and send (small, always taken by the kernel);
    # bounded for the answer.
    s.settimeout(case.get("timeout", 5))
    got = b""
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            res["end"] = "timeout"
            break
        except OSError as e:
            res["end"] = "reset" if e.errno == errno.ECONNRESET else \
                "errno %d" % e.errno
            break
        if not b:
            res["end"] = "eof"
            break
        got += b
    res["reply"] = got.hex()
    s.close()
    return res


def main():
    cases = json.load(sys.stdin)
    print(json.dumps([run(c) for c in cases]))


if __name__ == "__main__":
    main()
