"""The MPTCP capability cache (issue 12): a destination whose server
answered an MPTCP SYN in plain TCP is dialled with a plain TCP socket for
upstream.mptcp_cache_ttl (the access log says mptcp=cached-no); one that
took MPTCP keeps getting MPTCP; with the TTL at 0 nothing is remembered."""

import re
import socket
import threading

import pytest

import gwutil
import socksraw as sr


@pytest.fixture
def tcp_server():
    """A plain TCP (not MPTCP) server on 127.0.0.1 that answers "hi"."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with c:
                c.sendall(b"hi")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield ls.getsockname()[1]
    stop.set()
    ls.close()


def _fetch(gw, port):
    s, _ = sr.connect_via(gw.port, "127.0.0.1", port)
    with s:
        assert sr.recv_until_eof(s) == b"hi"


def _mptcp_fields(gw, port, n):
    """The mptcp= field of the first n access lines for port (waits)."""
    rx = re.compile(r" access id=\d+ .*target=127\.0\.0\.1:%d result=ok "
                    r"mptcp=(\S+)" % port)
    return gwutil.wait_until(lambda: len(rx.findall(gw.stderr_text())) >= n
                             and rx.findall(gw.stderr_text()), gwutil.SLOW *
                             10, "%d access lines" % n)


def test_plain_server_gets_plain_tcp_the_second_time(gateway, tcp_server):
    gw = gateway({"gateway": {"workers": "1"}})
    for _ in range(3):
        _fetch(gw, tcp_server)
    assert _mptcp_fields(gw, tcp_server, 3) == ["no", "cached-no",
                                                "cached-no"]


def test_mptcp_server_keeps_mptcp(gateway, origin):
    if not origin.mptcp:
        pytest.skip("the origin's listener is not MPTCP here")
    gw = gateway({"gateway": {"workers": "1"}})
    for _ in range(2):
        s, _ = sr.connect_via(gw.port, "127.0.0.1", origin.port)
        with s:
            s.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
            assert sr.recv_until_eof(s).endswith(b"hello\n")
    assert _mptcp_fields(gw, origin.port, 2) == ["yes", "yes"]


def test_ttl_zero_remembers_nothing(gateway, tcp_server):
    gw = gateway({"upstream": {"mptcp_cache_ttl": "0"}})
    for _ in range(2):
        _fetch(gw, tcp_server)
    assert _mptcp_fields(gw, tcp_server, 2) == ["no", "no"]


def test_mptcp_off_is_plain_tcp_not_cached_no(gateway, tcp_server):
    gw = gateway({"upstream": {"mptcp": "off"}})
    for _ in range(2):
        _fetch(gw, tcp_server)
    assert _mptcp_fields(gw, tcp_server, 2) == ["no", "no"]
