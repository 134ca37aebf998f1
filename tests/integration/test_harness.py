"""The test servers and helpers on their own, without the gateway, so a
failure elsewhere is known to be the gateway's and not the harness's."""

import json
import re
import socket
import warnings

import pytest

import socksraw as sr
from gwutil import USERS, curl, sha256
from servers import echo_answer, payload


def test_payload_is_deterministic():
    assert payload(1000) == payload(1000)
    assert payload(1000) != payload(1000, seed="other")
    assert payload(1001)[:1000] != payload(1000)  # n is part of the seed
    assert len(payload(0)) == 0


def test_origin_direct(origin, tmp_path):
    r = curl("--noproxy", "*", origin.url("/hello"))
    assert r.returncode == 0 and r.stdout == b"hello\n"
    hdr = tmp_path / "h"
    r = curl("--noproxy", "*", "-D", str(hdr), origin.url("/bytes/123457"))
    assert r.returncode == 0
    m = re.search(r"(?im)^x-sha256:\s*([0-9a-f]{64})", hdr.read_text())
    assert sha256(r.stdout) == m.group(1) == sha256(payload(123457))


def test_origin_upload_length_and_chunked(origin):
    data = payload(300000, seed="u")
    r = curl("--noproxy", "*", "-H", "Expect:", "--data-binary", "@-",
             origin.url("/upload"), input=data)
    assert r.returncode == 0 and r.stdout.strip().decode() == sha256(data)
    r = curl("--noproxy", "*", "-H", "Expect:", "-T", "-",
             origin.url("/upload"), input=data)  # chunked PUT
    assert r.returncode == 0 and r.stdout.strip().decode() == sha256(data)


def test_origin_peer(origin):
    with socket.create_connection(("127.0.0.1", origin.port), timeout=10) as s:
        s.sendall(b"GET /peer HTTP/1.0\r\n\r\n")
        resp = sr.recv_until_eof(s)
        me = s.getsockname()
    peer = json.loads(resp.partition(b"\r\n\r\n")[2])
    assert (peer["ip"], peer["port"]) == me
    assert peer["mptcp"] is False or not origin.mptcp  # plain TCP client


def test_origin_peer_mptcp(origin):
    if not origin.mptcp:
        pytest.skip("no MPTCP listener on this kernel")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as s:
        s.settimeout(10)
        s.connect(("127.0.0.1", origin.port))
        s.sendall(b"GET /peer HTTP/1.0\r\n\r\n")
        resp = sr.recv_until_eof(s)
    assert json.loads(resp.partition(b"\r\n\r\n")[2])["mptcp"] is True


@pytest.mark.parametrize("n", [0, 1, 200000])
def test_echo_direct_half_close(echo, n):
    data = payload(n, seed="e")
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(data)


def test_echo6_direct(echo6):
    with socket.create_connection(("::1", echo6.port), timeout=10) as s:
        s.sendall(b"six")
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(b"six")


def test_users_file_hashes(users_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    entries = dict(ln.split(":", 1) for ln in open(users_file).read().splitlines()
                   if ln and not ln.startswith("#"))
    assert set(entries) == set(USERS)
    assert entries["alice"].startswith("$y$")
    assert entries["carol"].startswith("$6$")
    for name, (pw, _) in USERS.items():
        assert crypt.crypt(pw, entries[name]) == entries[name]
        assert crypt.crypt(pw + "x", entries[name]) != entries[name]


def test_socksraw_encoding():
    assert sr.greeting([0, 2]) == b"\x05\x02\x00\x02"
    assert sr.userpass("ab", "c") == b"\x01\x02ab\x01c"
    assert sr.request("1.2.3.4", 80) == b"\x05\x01\x00\x01\x01\x02\x03\x04\x00\x50"
    assert sr.request("::1", 1) == b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x00\x01"
    assert sr.request("ab", 258) == b"\x05\x01\x00\x03\x02ab\x01\x02"
