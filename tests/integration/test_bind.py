"""BIND (RFC 1928 section 4, README "BIND") with a raw client
(socksraw.py) against the real daemon: the two replies, data both ways, a
wrong peer, the timeout, the rules. The general cases run against Dante
(danted) too, as in test_udp.py; where Dante answers differently on
purpose, the test says so and checks Dante's answer as what it is.

The peer is the test itself: after the first reply it connects to the
address and port that reply named, from the address the request said to
expect (127.0.0.1, or 127.0.0.2: all of 127/8 is on lo)."""

import socket

import pytest

import gwutil
import socksraw as sr


def _bind(port, host="127.0.0.1", dport=0):
    """The control connection and the first reply."""
    s = sr.open_conn(port)
    try:
        r = sr.handshake(s, host, dport, cmd=sr.CMD_BIND)
    except BaseException:
        s.close()
        raise
    return s, r


def _peer(first, src="127.0.0.1"):
    p = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    p.settimeout(sr.IO_TIMEOUT)
    p.bind((src, 0))
    p.connect((first.addr, first.port))
    return p


def test_two_replies_and_data_both_ways(proxy):
    """First reply: where the gateway listens; the peer connects there;
    second reply: the peer's address and port; then bytes both ways and
    the half-close, as for CONNECT."""
    px = proxy()
    s, first = _bind(px.port)
    with s:
        assert first.rep == sr.REP_OK, first
        assert first.addr == "127.0.0.1" and first.port != 0, first
        with _peer(first) as p:
            second = sr.read_reply(s)
            assert second.rep == sr.REP_OK, second
            assert (second.addr, second.port) == p.getsockname()
            p.sendall(b"from the peer")
            assert sr.recv_exact(s, 13) == b"from the peer"
            s.sendall(b"from the client")
            s.shutdown(socket.SHUT_WR)
            assert sr.recv_until_eof(p) == b"from the client"
            p.sendall(b"after the client's FIN")
            p.shutdown(socket.SHUT_WR)
            assert sr.recv_until_eof(s) == b"after the client's FIN"


def test_first_bytes_before_the_peer(proxy):
    """Bytes the client sends while it waits reach the peer first (mpgw
    keeps them, as it keeps a CONNECT client's bytes sent behind the
    request). Expected difference: Dante ends the BIND when the client
    sends before the second reply, without a reply."""
    px = proxy()
    s, first = _bind(px.port)
    with s:
        assert first.rep == sr.REP_OK, first
        s.sendall(b"early")
        if px.kind == "dante":
            # Its listener goes too: a peer may find nobody there, or
            # the listener while the kernel still tears it down.
            try:
                _peer(first).close()
            except (ConnectionRefusedError, ConnectionResetError):
                pass
            with pytest.raises(sr.ProtocolError):
                sr.read_reply(s)
            return
        with _peer(first) as p:
            assert sr.read_reply(s).rep == sr.REP_OK
            assert sr.recv_exact(p, 5) == b"early"


def test_wrong_peer_refused(proxy):
    """The request names 127.0.0.2: a connection from 127.0.0.1 is not
    the peer. mpgw closes it (an RST) and keeps waiting, so the right
    peer still gets through. Expected difference: Dante answers the
    client with a second reply 02 (not allowed) at the first wrong peer
    and ends the BIND."""
    px = proxy()
    s, first = _bind(px.port, "127.0.0.2")
    with s:
        assert first.rep == sr.REP_OK, first
        try:
            with _peer(first, "127.0.0.1") as wrong:
                assert sr.recv_until_eof(wrong) == b""
        except ConnectionResetError:
            pass    # the RST came during connect()
        if px.kind == "dante":
            assert sr.read_reply(s).rep == sr.REP_NOT_ALLOWED
            return
        with _peer(first, "127.0.0.2") as p:
            second = sr.read_reply(s)
            assert second.rep == sr.REP_OK, second
            assert (second.addr, second.port) == p.getsockname()
            p.sendall(b"right one")
            assert sr.recv_exact(s, 9) == b"right one"
    px.gw.wait_stderr(r"command=bind wrong_peers=1\b")


def test_name_in_request(proxy):
    """DST.ADDR as a name: resolved, then as for an address."""
    px = proxy()
    s, first = _bind(px.port, "localhost")
    with s:
        assert first.rep == sr.REP_OK, first
        with _peer(first) as p:
            assert sr.read_reply(s).rep == sr.REP_OK
            p.sendall(b"x")
            assert sr.recv_exact(s, 1) == b"x"


# --- mpgw alone -------------------------------------------------------------

def test_timeout_second_reply_06(gateway):
    """No peer within bind_timeout: the second reply is 06 (TTL expired,
    what mpgw answers for any timeout), then the connection closes. (Dante
    1.4.2 has no limit on this wait: timeout.connect does not apply.)"""
    gw = gateway({"socks5": {"bind_timeout": "1"}})
    s, first = _bind(gw.port)
    with s:
        assert first.rep == sr.REP_OK, first
        second = sr.read_reply(s)
        assert second.rep == sr.REP_TTL, second
        assert sr.recv_until_eof(s) == b""
        # The listener is gone with it.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((first.addr, first.port), timeout=5)
    gw.wait_stderr(r"result=bind-timeout .*command=bind")


def test_denied_by_rule(gateway):
    """Rules with command = bind: a denied DST.ADDR gets 02 at once."""
    gw = gateway({"rule.no-bind": {"action": "deny", "command": "bind"}})
    s, first = _bind(gw.port)
    with s:
        assert first.rep == sr.REP_NOT_ALLOWED, first
        assert sr.recv_until_eof(s) == b""


def test_zero_address_takes_any_peer(gateway):
    """DST.ADDR 0.0.0.0: no peer named; the listener is on the address the
    client reached, and the first peer the rules allow is taken."""
    gw = gateway()
    s, first = _bind(gw.port, "0.0.0.0")
    with s:
        assert first.rep == sr.REP_OK and first.addr == "127.0.0.1", first
        with _peer(first, "127.0.0.3") as p:
            second = sr.read_reply(s)
            assert second.addr == "127.0.0.3", second
            p.sendall(b"any")
            assert sr.recv_exact(s, 3) == b"any"


def test_not_through_a_concentrator(gateway, tmp_path):
    """With upstream.via the peer would have to reach the concentrator:
    BIND is answered 07."""
    import subprocess
    keys = str(tmp_path / "keys")
    subprocess.run([gwutil.MPGW_BIN, "key", "new", "edge", keys],
                   stdout=subprocess.PIPE, check=True)
    gw = gateway({"upstream": {"via": "convert://127.0.0.1:%d"
                               % gwutil.free_port(), "via_user": "edge",
                               "via_keys": keys}})
    s, first = _bind(gw.port)
    with s:
        assert first.rep == sr.REP_CMD, first
