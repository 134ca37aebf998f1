"""The relay: large transfers both ways (sha256 on both ends), half-close in
each direction, 200 concurrent sessions, both relay paths (buffer, splice),
MPTCP on the upstream, idle timeout, and the access log."""

import json
import os
import re
import socket
import threading

import pytest
import socks

import gwutil
import socksraw as sr
from gwutil import SLOW, USERS, curl, sha256, sha256_file
from servers import echo_answer, payload

RELAYS = ["auto", "buffer", "splice"]
BIG = 64 << 20


def _ok(r):
    assert r.returncode == 0, "exit %d: %s" % (r.returncode,
                                              r.stderr.decode(errors="replace"))
    return r.stdout


def _pysocks(port, user=None, password=None, timeout=gwutil.CLIENT_TIMEOUT):
    s = socks.socksocket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", port, rdns=True,
                username=user, password=password)
    return s


def _read_all(s):
    chunks = []
    while True:
        b = s.recv(1 << 18)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


# --- big transfers -----------------------------------------------------------

@pytest.mark.parametrize("relay", RELAYS)
def test_download_64mib_curl(gateway, origin, tmp_path, relay):
    gw = gateway(upstream={"relay": relay})
    out, hdr = tmp_path / "body", tmp_path / "headers"
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw.port, "-o", str(out),
             "-D", str(hdr), origin.url("/bytes/%d" % BIG, host="localhost"),
             timeout=gwutil.BIG_TIMEOUT)
    _ok(r)
    m = re.search(r"(?im)^x-sha256:\s*([0-9a-f]{64})", hdr.read_text())
    assert m, hdr.read_text()
    assert os.path.getsize(out) == BIG
    assert sha256_file(out) == m.group(1) == sha256(payload(BIG))


@pytest.mark.parametrize("relay", RELAYS)
def test_upload_64mib_curl(gateway, origin, tmp_path, relay):
    gw = gateway(upstream={"relay": relay})
    src, hdr = tmp_path / "upload", tmp_path / "headers"
    data = payload(BIG, seed="upload")
    src.write_bytes(data)
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw.port, "-T", str(src),
             "-H", "Expect:", "-D", str(hdr),
             origin.url("/upload", host="localhost"),
             timeout=gwutil.BIG_TIMEOUT)
    body = _ok(r)
    assert body.strip().decode() == sha256(data)
    m = re.search(r"(?im)^x-length:\s*(\d+)", hdr.read_text())
    assert m and int(m.group(1)) == BIG, hdr.read_text()


@pytest.mark.parametrize("relay", RELAYS)
def test_both_directions_32mib_pysocks(gateway, echo, relay):
    # 32 MiB up, then 32 MiB + hash back, over one session.
    gw = gateway(upstream={"relay": relay})
    data = payload(32 << 20, seed="bidir")
    with _pysocks(gw.port, timeout=gwutil.BIG_TIMEOUT) as s:
        s.connect(("localhost", echo.port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = _read_all(s)
    assert len(got) == len(data) + 64
    assert sha256(got) == sha256(echo_answer(data))


# --- half-close ----------------------------------------------------------------

@pytest.mark.parametrize("relay", RELAYS)
def test_half_close_client_first(gateway, echo, relay):
    # The client shuts down its write side; the echo server must see EOF
    # (it answers only then) and its answer must still reach the client.
    gw = gateway(upstream={"relay": relay})
    data = payload(1 << 20, seed="halfclose")
    with _pysocks(gw.port) as s:
        s.connect(("127.0.0.1", echo.port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = _read_all(s)
    assert got == echo_answer(data)


@pytest.mark.parametrize("relay", RELAYS)
def test_half_close_server_first(gateway, origin, relay):
    # HTTP/1.0-style: the origin answers and closes while the client keeps
    # its write side open; the client must get the whole answer and EOF.
    gw = gateway(upstream={"relay": relay})
    s, r = sr.connect_via(gw.port, "127.0.0.1", origin.port)
    with s:
        s.sendall(b"GET /bytes/100000 HTTP/1.0\r\nHost: t\r\n\r\n")
        resp = sr.recv_until_eof(s, 30 * SLOW)
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body == payload(100000)


def test_empty_session_both_eof(gw, echo):
    # No data at all: the FIN alone must travel, and the answer (the hash of
    # nothing) come back.
    s, r = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    with s:
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(b"")


# --- concurrency --------------------------------------------------------------

@pytest.mark.parametrize("relay", RELAYS)
def test_200_concurrent_sessions(gateway, echo, relay):
    n = 200
    gw = gateway(upstream={"relay": relay})
    barrier = threading.Barrier(n, timeout=gwutil.CLIENT_TIMEOUT)
    results = [None] * n

    def one(i):
        data = payload(65536 + i, seed="conc-%d" % i)
        try:
            with _pysocks(gw.port) as s:
                s.connect(("localhost" if i % 2 else "127.0.0.1", echo.port))
                barrier.wait()  # all 200 sessions are open at once
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = _read_all(s)
            results[i] = "ok" if got == echo_answer(data) else \
                "wrong answer: %d bytes, expected %d" % (len(got), len(data) + 64)
        except Exception as e:  # report every failure, not just the first
            barrier.abort()
            results[i] = "%s: %s" % (type(e).__name__, e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(gwutil.CLIENT_TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    bad = {i: r for i, r in enumerate(results) if r != "ok"}
    assert not bad, "%d of %d sessions failed, e.g. %s" % (
        len(bad), n, list(bad.items())[:5])


# --- upstream MPTCP -------------------------------------------------------------

@pytest.mark.parametrize("mptcp", ["on", "off"])
def test_upstream_mptcp(gateway, origin, mptcp):
    if not origin.mptcp:
        pytest.skip("the kernel refused an MPTCP listener for the origin "
                    "(net.mptcp.enabled=0 or no CONFIG_MPTCP)")
    gw = gateway(upstream={"mptcp": mptcp})
    s, r = sr.connect_via(gw.port, "127.0.0.1", origin.port)
    with s:
        s.sendall(b"GET /peer HTTP/1.0\r\nHost: t\r\n\r\n")
        resp = sr.recv_until_eof(s)
    peer = json.loads(resp.partition(b"\r\n\r\n")[2])
    assert peer["mptcp"] is (mptcp == "on"), peer
    assert (r.addr, r.port) == (peer["ip"], peer["port"])


# --- idle timeout -------------------------------------------------------------

def test_idle_timeout_closes_relay(gateway, origin):
    gw = gateway(socks5={"idle_timeout": "1"})
    s, r = sr.connect_via(gw.port, "127.0.0.1", origin.port)
    with s:
        assert sr.recv_until_eof(s, 10 * SLOW) == b""


# --- access log ------------------------------------------------------------------

def _exchange(gw_port, port, data, **kw):
    s, r = sr.connect_via(gw_port, "127.0.0.1", port, **kw)
    with s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(data)


def test_access_log_one_line_per_connection(gateway, echo, origin, tmp_path):
    log = tmp_path / "access.log"
    gw = gateway(gateway={"access_log": str(log), "workers": "1"})
    n = 5
    for i in range(n):
        _exchange(gw.port, echo.port, b"x" * (i + 1))
    rx = gwutil.port_regex(echo.port)
    gwutil.wait_until(lambda: gwutil.count_matching_lines(log, rx) >= n,
                      10 * SLOW, "%d access-log lines naming port %d"
                      % (n, echo.port))
    # One more session to another target; once its line is there, no late
    # duplicate for the first five can still be on its way (one worker).
    s, r = sr.connect_via(gw.port, "127.0.0.1", origin.port)
    with s:
        s.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        assert sr.recv_until_eof(s).endswith(b"\r\n\r\nhello\n")
    gwutil.wait_until(lambda: gwutil.count_matching_lines(
        log, gwutil.port_regex(origin.port)) >= 1, 10 * SLOW,
        "the access-log line for the marker session")
    assert gwutil.count_matching_lines(log, rx) == n, log.read_text()
    # The access log went to the file, not stderr.
    assert gwutil.count_matching_lines(gw.stderr_path, rx) == 0, \
        gw.stderr_text()


def test_access_log_names_user(gateway, users_file, echo, tmp_path):
    log = tmp_path / "access.log"
    gw = gateway(gateway={"access_log": str(log)},
                 socks5={"methods": "userpass"}, auth={"users": users_file})
    _exchange(gw.port, echo.port, b"who", methods=[sr.M_USERPASS],
              user="alice", password=USERS["alice"][0])
    rx = gwutil.port_regex(echo.port)
    gwutil.wait_until(lambda: gwutil.count_matching_lines(log, rx) >= 1,
                      10 * SLOW, "an access-log line naming port %d" % echo.port)
    lines = [ln for ln in log.read_text().splitlines() if re.search(rx, ln)]
    assert len(lines) == 1 and "alice" in lines[0], lines
    # Never log passwords.
    assert USERS["alice"][0] not in log.read_text()
    assert USERS["alice"][0] not in gw.stderr_text()


# --- robustness: abrupt clients, fd leaks, worker counts ----------------------

def _fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _fd_kinds(pid):
    kinds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            k = os.readlink("/proc/%d/fd/%s" % (pid, fd)).split(":")[0]
        except OSError:
            continue
        kinds[k] = kinds.get(k, 0) + 1
    return kinds


def _rst_close(s):
    import struct
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _abuse_round(gw_port, origin, echo, n):
    """n sessions of each way a session can end, one after another."""
    closed = gwutil.free_port()
    for i in range(n):
        _exchange(gw_port, echo.port, b"ok %d" % i)
        with sr.open_conn(gw_port) as s:            # refused upstream
            assert sr.handshake(s, "127.0.0.1", closed).rep == sr.REP_REFUSED
        with sr.open_conn(gw_port) as s:            # bad command
            s.sendall(sr.greeting() + sr.request("127.0.0.1", echo.port, cmd=9))
            assert sr.read_method(s) == sr.M_NONE
            assert sr.read_reply(s).rep == sr.REP_CMD
        with sr.open_conn(gw_port) as s:            # no acceptable method
            s.sendall(sr.greeting([sr.M_USERPASS]))
            assert sr.recv_until_eof(s) == b"\x05\xff"
        with sr.open_conn(gw_port) as s:            # client leaves mid-greeting
            s.sendall(b"\x05")
        s = sr.open_conn(gw_port)                    # RST right after CONNECT
        s.sendall(sr.greeting() + sr.request("127.0.0.1", origin.port))
        _rst_close(s)
        s, r = sr.connect_via(gw_port, "127.0.0.1", origin.port)
        s.sendall(b"GET /bytes/%d HTTP/1.0\r\n\r\n" % (8 << 20))
        sr.recv_exact(s, 65536, "the start of a download")
        _rst_close(s)                                # RST mid-download


def test_abrupt_clients_leak_no_fds(gateway, origin, echo):
    gw = gateway()
    pid = gw.proc.pid
    _abuse_round(gw.port, origin, echo, 2)  # warm any pools and lazy state
    base = _fd_count(pid)
    n = 25
    _abuse_round(gw.port, origin, echo, n)
    # A leak of one fd per session of any kind adds n; pools and sessions
    # still closing may add a few. Wait (bounded) for the count to settle.
    slack = 10
    try:
        gwutil.wait_until(lambda: _fd_count(pid) <= base + slack, 20 * SLOW,
                          "mpgw's open fds to return near %d" % base,
                          proc=gw.proc)
    except AssertionError as e:
        raise AssertionError("%s: now %d fds %r" % (e, _fd_count(pid),
                                                    _fd_kinds(pid))) from None
    # And it still serves.
    _exchange(gw.port, echo.port, b"still here")


@pytest.mark.parametrize("workers", ["1", "auto"])
def test_concurrent_sessions_workers(gateway, echo, workers):
    n = 50
    gw = gateway(gateway={"workers": workers})
    socks_ = []
    try:
        for i in range(n):
            socks_.append(sr.connect_via(gw.port, "127.0.0.1", echo.port)[0])
        for i, s in enumerate(socks_):
            s.sendall(payload(1000 + i, seed="w%d" % i))
            s.shutdown(socket.SHUT_WR)
        for i, s in enumerate(socks_):
            assert sr.recv_until_eof(s) == \
                echo_answer(payload(1000 + i, seed="w%d" % i)), i
    finally:
        for s in socks_:
            s.close()


def test_access_log_line_for_failed_session(gateway, tmp_path):
    log = tmp_path / "access.log"
    gw = gateway(gateway={"access_log": str(log)})
    closed = gwutil.free_port()
    with sr.open_conn(gw.port) as s:
        assert sr.handshake(s, "127.0.0.1", closed).rep == sr.REP_REFUSED
        assert sr.recv_until_eof(s) == b""
    gwutil.wait_until(lambda: gwutil.count_matching_lines(
        log, gwutil.port_regex(closed)) >= 1, 10 * SLOW,
        "an access-log line naming the refused port %d" % closed)
