"""SOCKS5 on the wire, byte for byte, with a raw-socket client (socksraw.py):
pipelining, one byte per send, method negotiation, RFC 1929, every failure
reply (complete, then close), BND.ADDR/PORT, handshake timeout, IPv6."""

import json
import socket

import pytest

import gwutil
import socksraw as sr
from gwutil import SLOW, USERS
from servers import echo_answer, payload

ALICE_PW = USERS["alice"][0]
EOF_WAIT = 10 * SLOW


def _expect_close(s, what="close"):
    rest = sr.recv_until_eof(s, EOF_WAIT)
    assert rest == b"", "bytes after %s: %r" % (what, rest)


def _failure(gw_port, req, methods=(sr.M_NONE,)):
    """Send a greeting, then req; return the (complete) reply. Asserts the
    gateway then closes the connection."""
    with sr.open_conn(gw_port) as s:
        s.sendall(sr.greeting(methods))
        assert sr.read_method(s) == sr.M_NONE
        s.sendall(req)
        r = sr.read_reply(s)
        _expect_close(s, "a failure reply")
    return r


def _http_peer(s):
    s.sendall(b"GET /peer HTTP/1.0\r\nHost: t\r\n\r\n")
    resp = sr.recv_until_eof(s)
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp
    return json.loads(body)


# --- pipelining and fragmentation -------------------------------------------

def test_pipelined_greeting_request_data_one_send(gw, echo):
    data = payload(5000, seed="pipelined")
    with sr.open_conn(gw.port) as s:
        s.sendall(sr.greeting() + sr.request("127.0.0.1", echo.port) + data)
        assert sr.read_method(s) == sr.M_NONE
        r = sr.read_reply(s)
        assert r.rep == sr.REP_OK, r
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(data)


def test_pipelined_then_immediate_half_close(gw, echo):
    # Like `printf ... | nc`: everything, then FIN, before any answer. The
    # early bytes must be relayed and the FIN forwarded after them.
    data = payload(3000, seed="pipelined-fin")
    with sr.open_conn(gw.port) as s:
        s.sendall(sr.greeting() + sr.request("localhost", echo.port) + data)
        s.shutdown(socket.SHUT_WR)
        assert sr.read_method(s) == sr.M_NONE
        r = sr.read_reply(s)
        assert r.rep == sr.REP_OK, r
        assert sr.recv_until_eof(s) == echo_answer(data)


def test_pipelined_userpass_one_send(gw_auth, echo):
    data = b"optimistic client data"
    with sr.open_conn(gw_auth.port) as s:
        s.sendall(sr.greeting([sr.M_USERPASS]) + sr.userpass("alice", ALICE_PW)
                  + sr.request("127.0.0.1", echo.port) + data)
        assert sr.read_method(s) == sr.M_USERPASS
        assert sr.read_userpass_status(s) == 0
        r = sr.read_reply(s)
        assert r.rep == sr.REP_OK, r
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(data)


@pytest.mark.parametrize("target", ["127.0.0.1", "localhost"])
def test_one_byte_per_send(gw, echo, target):
    data = b"byte by byte"
    msg = sr.greeting() + sr.request(target, echo.port)
    with sr.open_conn(gw.port, nodelay=True) as s:
        for i in range(len(msg)):
            s.send(msg[i:i + 1])
        assert sr.read_method(s) == sr.M_NONE
        r = sr.read_reply(s)
        assert r.rep == sr.REP_OK, r
        for i in range(len(data)):
            s.send(data[i:i + 1])
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(data)


def test_one_byte_per_send_userpass(gw_auth, echo):
    msg = (sr.greeting([sr.M_NONE, sr.M_USERPASS]) + sr.userpass("alice", ALICE_PW)
           + sr.request("localhost", echo.port))
    with sr.open_conn(gw_auth.port, nodelay=True) as s:
        for i in range(len(msg)):
            s.send(msg[i:i + 1])
        assert sr.read_method(s) == sr.M_USERPASS
        assert sr.read_userpass_status(s) == 0
        r = sr.read_reply(s)
        assert r.rep == sr.REP_OK, r
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(b"")


# --- method negotiation and RFC 1929 ----------------------------------------

@pytest.mark.parametrize("methods,offered", [
    ("none", [sr.M_USERPASS]),
    ("none", [0x01, 0x03, 0x80, 0xFE]),
    ("userpass", [sr.M_NONE]),
], ids=["none-vs-userpass", "none-vs-others", "userpass-vs-none"])
def test_no_acceptable_method(gateway, users_file, methods, offered):
    gw = gateway(socks5={"methods": methods}, auth={"users": users_file})
    with sr.open_conn(gw.port) as s:
        s.sendall(sr.greeting(offered))
        got = sr.recv_until_eof(s, EOF_WAIT)
    assert got == b"\x05\xff"


@pytest.mark.parametrize("methods,offered,chosen", [
    ("userpass,none", [sr.M_NONE, sr.M_USERPASS], sr.M_USERPASS),
    ("none,userpass", [sr.M_USERPASS, sr.M_NONE], sr.M_NONE),
    ("userpass,none", [sr.M_NONE], sr.M_NONE),
])
def test_method_preference_order(gateway, users_file, echo, methods, offered,
                                 chosen):
    gw = gateway(socks5={"methods": methods}, auth={"users": users_file})
    with sr.open_conn(gw.port) as s:
        r = sr.handshake(s, "127.0.0.1", echo.port, methods=offered,
                         user="alice", password=ALICE_PW)
        assert r.rep == sr.REP_OK
    # handshake() checks the choice indirectly; check it directly too.
    with sr.open_conn(gw.port) as s:
        s.sendall(sr.greeting(offered))
        assert sr.read_method(s) == chosen


@pytest.mark.parametrize("greeting", [b"\x04\x01\x00", b"\x05\x00"],
                         ids=["socks4-version", "zero-methods"])
def test_malformed_greeting_is_closed(gw, greeting):
    with sr.open_conn(gw.port) as s:
        s.sendall(greeting)
        got = sr.recv_until_eof(s, EOF_WAIT)
    assert got in (b"", b"\x05\xff"), got


@pytest.mark.parametrize("user,password", [
    ("alice", "wrong"), ("alice", ""), ("mallory", ALICE_PW),
    ("alice", ALICE_PW + "x"), ("Alice", ALICE_PW)])
def test_userpass_rejected_then_closed(gw_auth, echo, user, password):
    with sr.open_conn(gw_auth.port) as s:
        s.sendall(sr.greeting([sr.M_USERPASS]))
        assert sr.read_method(s) == sr.M_USERPASS
        s.sendall(sr.userpass(user, password))
        rest = sr.recv_until_eof(s, EOF_WAIT)
    # RFC 1929: a non-zero status, then the connection MUST close. An empty
    # password (PLEN 0) is outside RFC 1929's 1..255, so a plain close is
    # also right for it.
    if password == "" and rest == b"":
        return
    assert len(rest) == 2 and rest[0] == 0x01 and rest[1] != 0, rest


def test_userpass_accepted(gw_auth, echo):
    with sr.open_conn(gw_auth.port) as s:
        r = sr.handshake(s, "127.0.0.1", echo.port, methods=[sr.M_USERPASS],
                         user="carol", password=USERS["carol"][0])
        assert r.rep == sr.REP_OK
        s.sendall(b"x")
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(b"x")


# --- failure replies: complete, right code, then close -----------------------

@pytest.mark.parametrize("cmd", [0x00, 0x09, 0xFF])
def test_unknown_command_rep07(gw, echo, cmd):
    r = _failure(gw.port, sr.request("127.0.0.1", echo.port, cmd=cmd))
    assert r.rep == sr.REP_CMD, r


@pytest.mark.parametrize("atyp", [0x00, 0x02, 0x05, 0xFF])
def test_unknown_atyp_rep08(gw, atyp):
    req = bytes([5, 1, 0, atyp]) + b"\x7f\x00\x00\x01\x00\x50"
    r = _failure(gw.port, req)
    assert r.rep == sr.REP_ATYP, r


def test_empty_domain_fails(gw):
    req = bytes([5, 1, 0, sr.ATYP_NAME, 0]) + b"\x00\x50"
    r = _failure(gw.port, req)
    assert r.rep != sr.REP_OK, r


def test_bad_request_version_fails(gw, echo):
    req = b"\x04" + sr.request("127.0.0.1", echo.port)[1:]
    with sr.open_conn(gw.port) as s:
        s.sendall(sr.greeting())
        assert sr.read_method(s) == sr.M_NONE
        s.sendall(req)
        rest = sr.recv_until_eof(s, EOF_WAIT)
    # Either a complete failure reply or just a close; never success.
    if rest:
        assert len(rest) == 10 and rest[0] == 5 and rest[1] != 0, rest


def test_nxdomain_rep04(gw, echo):
    name = "nonexistent.invalid"
    try:
        socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        if e.errno != socket.EAI_NONAME:
            pytest.skip("this host's resolver answers %r with %s, not "
                        "NXDOMAIN, so 04 cannot be expected" % (name, e))
    else:
        pytest.skip("this host's resolver resolves %r" % name)
    r = _failure(gw.port, sr.request(name, echo.port))
    assert r.rep == sr.REP_HOST_UNREACH, r


def test_longest_domain_fails_cleanly(gw, echo):
    name = ".".join(["a" * 63] * 3 + ["b" * 61 + "in"])  # 255 bytes
    assert len(name) == 255
    r = _failure(gw.port, sr.request(name, echo.port))
    assert r.rep != sr.REP_OK, r


@pytest.mark.parametrize("target", ["127.0.0.1", "localhost"])
def test_refused_rep05(gw, target):
    closed = gwutil.free_port()
    r = _failure(gw.port, sr.request(target, closed))
    assert r.rep == sr.REP_REFUSED, r


def test_refused_ipv6_rep05(gw):
    if not gwutil.ipv6_loopback_usable():
        pytest.skip("::1 is not configured on lo")
    closed = gwutil.free_port("::1")
    r = _failure(gw.port, sr.request("::1", closed))
    assert r.rep == sr.REP_REFUSED, r


def test_failure_does_not_disturb_next_session(gw, echo):
    _failure(gw.port, sr.request("127.0.0.1", echo.port, cmd=0x09))
    s, r = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    with s:
        s.sendall(b"after")
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(b"after")


# --- success reply: complete, BND = the upstream socket's local address -----

@pytest.mark.parametrize("target", ["127.0.0.1", "localhost"])
def test_success_bnd_is_upstream_local_address(gw, origin, target):
    with sr.open_conn(gw.port) as s:
        r = sr.handshake(s, target, origin.port)
        assert r.rep == sr.REP_OK, r
        assert r.atyp == sr.ATYP_V4 and len(r.raw) == 10, r
        peer = _http_peer(s)
    assert (r.addr, r.port) == (peer["ip"], peer["port"]), (r, peer)


def test_success_bnd_ipv6(gw, origin6):
    with sr.open_conn(gw.port) as s:
        r = sr.handshake(s, "::1", origin6.port)
        assert r.rep == sr.REP_OK, r
        assert r.atyp == sr.ATYP_V6 and len(r.raw) == 22, r
        peer = _http_peer(s)
    assert (r.addr, r.port) == (peer["ip"], peer["port"]), (r, peer)


def test_ipv6_target_atyp4_echo(gw, echo6):
    data = payload(100000, seed="v6")
    s, r = sr.connect_via(gw.port, "::1", echo6.port)
    with s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(data)


# --- handshake timeout ------------------------------------------------------

@pytest.mark.parametrize("stage", ["silent", "half-greeting", "after-greeting",
                                   "half-request"])
def test_handshake_timeout_closes(gateway, stage):
    gw = gateway(socks5={"handshake_timeout": "1"})
    with sr.open_conn(gw.port) as s:
        if stage == "half-greeting":
            s.sendall(b"\x05")
        elif stage in ("after-greeting", "half-request"):
            s.sendall(sr.greeting())
            assert sr.read_method(s) == sr.M_NONE
            if stage == "half-request":
                s.sendall(b"\x05\x01\x00\x03\x10abc")
        rest = sr.recv_until_eof(s, EOF_WAIT)
    # Closed; at most a complete failure reply before the close.
    if rest:
        assert stage in ("after-greeting", "half-request"), rest
        assert len(rest) == 10 and rest[:1] == b"\x05" and rest[1] != 0, rest


def test_handshake_timeout_during_auth(gateway, users_file):
    gw = gateway(socks5={"handshake_timeout": "1", "methods": "userpass"},
                 auth={"users": users_file})
    with sr.open_conn(gw.port) as s:
        s.sendall(sr.greeting([sr.M_USERPASS]))
        assert sr.read_method(s) == sr.M_USERPASS
        s.sendall(b"\x01\x05ali")
        rest = sr.recv_until_eof(s, EOF_WAIT)
    # Closed; at most a failed RFC 1929 status before the close.
    assert rest == b"" or (len(rest) == 2 and rest[0] == 1 and rest[1] != 0), \
        rest


def test_handshake_timeout_spares_relaying_sessions(gateway, echo):
    # The handshake timer must not fire once the session relays: a session
    # that outlives several handshake timeouts still works. The client waits
    # for the gateway to time out a second, idle connection (a bounded wait
    # on an event, not a sleep) before it finishes its exchange.
    gw = gateway(socks5={"handshake_timeout": "1"})
    s, r = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    with s, sr.open_conn(gw.port) as idle:
        s.sendall(b"first half ")
        assert sr.recv_until_eof(idle, EOF_WAIT) == b""
        s.sendall(b"second half")
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(b"first half second half")
