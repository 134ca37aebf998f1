"""TLS-protected authentication end to end, with python ssl clients, curl
through socat, and a packet capture: methods 0x80 (tls), 0x82
(tls-userpass), 0x83 (tls-login), the SOCKS5-over-TLS listener, client
certificates, wrong passwords, login throttling, byte-at-a-time and stalled
handshakes, and `mpgw passwd`."""

import os
import re
import socket
import ssl
import subprocess
import uuid

import pytest
import socks

import gwutil
import socksraw as sr
import tlsutil
from gwutil import BIG_TIMEOUT, USERS, curl, run, sha256, wait_until
from servers import echo_answer, payload
from tlsutil import (EOF_WAIT, M_TLS, M_TLS_LOGIN, M_TLS_USERPASS,
                     METHOD_NAMES, BioTLS, client_ctx, negotiate, read_eof,
                     tls_connect, tls_login, tls_open, tls_section)

ALICE_PW = USERS["alice"][0]
CAROL_PW = USERS["carol"][0]
CURLE_PROXY = 97        # curl >= 7.73: the SOCKS handshake failed
BIG = 64 << 20
TLS_METHODS = [M_TLS, M_TLS_USERPASS, M_TLS_LOGIN]


def _mid(m):
    return METHOD_NAMES[m]


@pytest.fixture(scope="module")
def certs():
    return tlsutil.certs_dir()


@pytest.fixture(scope="module")
def big_sha():
    return sha256(payload(BIG))


def _creds(method):
    """(user, password) for the methods that log in, else (None, None)."""
    if method in (M_TLS_USERPASS, M_TLS_LOGIN, sr.M_USERPASS):
        return "alice", ALICE_PW
    return None, None


def _tls_gw(gateway, certs, users_file, methods="tls, tls-userpass, tls-login",
            tls=None, **sections):
    secs = {"socks5": {"methods": methods},
            "tls": tls_section(certs, **(tls or {})),
            "auth": {"users": users_file}}
    for sec, kv in sections.items():
        secs.setdefault(sec, {}).update(kv)
    return gateway(secs)


def _access_line(gw, lport, rest):
    """Wait for the access-log line of the client whose local port was
    lport; rest is a regex for what follows "client=127.0.0.1:PORT "."""
    return gw.wait_stderr(r"access id=\d+ client=127\.0\.0\.1:%d %s"
                          % (lport, rest))


def _check_hello(s):
    hdrs, digest, n = tlsutil.http_get(s, "/hello")
    assert n == 6 and digest == sha256(b"hello\n")
    assert read_eof(s) == b""   # the origin's close, relayed


# --- each method end to end -------------------------------------------------

@pytest.mark.parametrize("method", TLS_METHODS, ids=_mid)
def test_method_end_to_end(gateway, certs, users_file, origin, method):
    gw = _tls_gw(gateway, certs, users_file)
    user, pw = _creds(method)
    n = 300007
    s, r = tls_connect(gw.port, client_ctx(certs), method, "localhost",
                       origin.port, user, pw)
    with s:
        lport = s.getsockname()[1]
        if method == M_TLS_LOGIN:
            # After the close_notify exchange the relay is in the clear.
            assert not isinstance(s, ssl.SSLSocket)
        else:
            assert isinstance(s, ssl.SSLSocket) and s.version() in (
                "TLSv1.2", "TLSv1.3")
        hdrs, digest, got = tlsutil.http_get(s, "/bytes/%d" % n)
        assert got == n
        assert digest == hdrs["x-sha256"] == sha256(payload(n))
        assert read_eof(s) == b""
    _access_line(gw, lport, r"user=%s method=%s target=localhost:%d "
                 r"result=ok " % (user or "-", _mid(method), origin.port))


@pytest.mark.parametrize("method", [M_TLS, M_TLS_LOGIN], ids=_mid)
def test_64mib_download(gateway, certs, users_file, origin, big_sha, method):
    gw = _tls_gw(gateway, certs, users_file)
    user, pw = _creds(method)
    # For tls-login, tls_connect unwraps and the GET goes out right after
    # our close_notify.
    s, _ = tls_connect(gw.port, client_ctx(certs), method, "127.0.0.1",
                       origin.port, user, pw)
    with s:
        s.settimeout(BIG_TIMEOUT)
        hdrs, digest, got = tlsutil.http_get(s, "/bytes/%d" % BIG)
    assert got == BIG
    assert digest == hdrs["x-sha256"] == big_sha


@pytest.mark.parametrize("method", [M_TLS, M_TLS_LOGIN], ids=_mid)
def test_64mib_upload(gateway, certs, users_file, origin, big_sha, method):
    gw = _tls_gw(gateway, certs, users_file)
    user, pw = _creds(method)
    data = memoryview(payload(BIG))
    s, _ = tls_connect(gw.port, client_ctx(certs), method, "127.0.0.1",
                       origin.port, user, pw)
    with s:
        s.settimeout(BIG_TIMEOUT)
        hdrs, body = tlsutil.http_upload(
            s, (data[i:i + (1 << 20)] for i in range(0, BIG, 1 << 20)), BIG)
    assert int(hdrs["x-length"]) == BIG
    assert body == big_sha.encode() + b"\n"


@pytest.mark.parametrize("server", ["echo", "http"])
def test_tls_login_cleartext_in_close_notify_send(gateway, certs, users_file,
                                                  origin, echo, server):
    """Our close_notify and the first cleartext bytes leave in one send()
    (TCP_NODELAY, one segment on loopback), possibly before the gateway's
    close_notify has been read: nothing may be lost or misread as TLS."""
    gw = _tls_gw(gateway, certs, users_file)
    port = echo.port if server == "echo" else origin.port
    s = sr.open_conn(gw.port, nodelay=True)
    with s:
        negotiate(s, M_TLS_LOGIN)
        b = BioTLS(s, client_ctx(certs))
        b.handshake()
        b.sendall(sr.userpass("alice", ALICE_PW))
        assert sr.read_userpass_status(b) == 0
        b.sendall(sr.request("127.0.0.1", port))
        r = sr.read_reply(b)
        assert r.rep == sr.REP_OK, r
        if server == "echo":
            data = payload(200003, seed="close-notify")
            first = data[:1400]
            left = b.close_notify_with(first)
            s.sendall(data[1400:])
            s.shutdown(socket.SHUT_WR)
            got = left + sr.recv_until_eof(s)
            assert got == echo_answer(data)
        else:
            n = 1000003
            req = b"GET /bytes/%d HTTP/1.1\r\nHost: t\r\nConnection: close" \
                  b"\r\n\r\n" % n
            left = b.close_notify_with(req)
            resp = left + sr.recv_until_eof(s, BIG_TIMEOUT)
            head, _, body = resp.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            assert body == payload(n)


def test_tls_login_with_client_certificate_only(gateway, certs, origin):
    # No RFC 1929: a certificate-named client sends its request directly.
    gw = gateway(socks5={"methods": "tls-login"},
                 tls=tls_section(certs, client_ca=os.path.join(certs, "ca.pem"),
                                 require_client_cert="yes"))
    s, r = tls_connect(gw.port, client_ctx(certs, "alice"), M_TLS_LOGIN,
                       "127.0.0.1", origin.port)
    with s:
        lport = s.getsockname()[1]
        assert not isinstance(s, ssl.SSLSocket)
        _check_hello(s)
    _access_line(gw, lport, r"user=alice method=tls-login .*result=ok ")


# --- the SOCKS5-over-TLS listener -------------------------------------------

def _tls_listener_gw(gateway, certs, users_file, methods):
    tport = gwutil.free_port()
    gw = gateway(socks5={"methods": methods}, auth={"users": users_file},
                 tls=tls_section(certs, listen="127.0.0.1:%d" % tport))
    wait_until(lambda: gwutil.accepts("127.0.0.1", tport), gwutil.START_TIMEOUT,
               "the TLS listener on %d" % tport, proc=gw.proc)
    return gw, tport


@pytest.mark.parametrize("methods", ["none", "userpass"])
def test_tls_listener_curl_through_socat(gateway, certs, users_file, origin,
                                         tmp_path, methods):
    gwutil.need_tool("socat")
    gw, tport = _tls_listener_gw(gateway, certs, users_file, methods)
    sport = gwutil.free_port()
    log = open(str(tmp_path / "socat.log"), "wb")
    socat = subprocess.Popen(
        ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % sport,
         "OPENSSL:127.0.0.1:%d,cafile=%s" % (tport,
                                             os.path.join(certs, "ca.pem"))],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    try:
        wait_until(lambda: gwutil.accepts("127.0.0.1", sport),
                   gwutil.START_TIMEOUT, "socat to listen", proc=socat)
        n = 4000037
        out, hdr = tmp_path / "body", tmp_path / "headers"
        auth = ["-U", "alice:" + ALICE_PW] if methods == "userpass" else []
        r = curl("--socks5-hostname", "127.0.0.1:%d" % sport, *auth,
                 "-o", str(out), "-D", str(hdr),
                 origin.url("/bytes/%d" % n, host="localhost"))
        assert r.returncode == 0, "curl exit %d: %s; socat: %s" % (
            r.returncode, r.stderr.decode(errors="replace"),
            (tmp_path / "socat.log").read_text(errors="replace"))
        m = re.search(r"(?im)^x-sha256: *([0-9a-f]{64})", hdr.read_text())
        assert m, hdr.read_text()
        assert gwutil.sha256_file(str(out)) == m.group(1) == \
            sha256(payload(n))
    finally:
        socat.terminate()
        socat.wait(10)
    gw.wait_stderr(r"access id=\d+ client=127\.0\.0\.1:\d+ user=%s method=%s "
                   r"target=localhost:%d result=ok " % (
                       "alice" if methods == "userpass" else "-", methods,
                       origin.port))


def test_tls_listener_python_client(gateway, certs, users_file, origin):
    gw, tport = _tls_listener_gw(gateway, certs, users_file, "userpass")
    ts = client_ctx(certs).wrap_socket(sr.open_conn(tport),
                                       server_hostname="localhost")
    with ts:
        r = sr.handshake(ts, "localhost", origin.port,
                         methods=[sr.M_USERPASS], user="carol",
                         password=CAROL_PW)
        assert r.rep == sr.REP_OK, r
        _check_hello(ts)


def test_tls_listener_does_not_offer_tls_methods_inside(gateway, certs,
                                                        users_file):
    # Inside the TLS listener there is no second TLS layer to negotiate.
    gw, tport = _tls_listener_gw(gateway, certs, users_file,
                                 "tls, tls-login, none")
    ts = client_ctx(certs).wrap_socket(sr.open_conn(tport),
                                       server_hostname="localhost")
    with ts:
        ts.sendall(sr.greeting([M_TLS, M_TLS_LOGIN]))
        assert sr.read_method(ts) == sr.M_UNACCEPTABLE


@pytest.mark.parametrize("methods", ["tls-userpass", "tls-login"])
def test_tls_listener_takes_userpass_for_tls_methods(gateway, certs,
                                                     users_file, origin,
                                                     methods):
    """Issue 8 defect 15: with only tls* methods configured, the TLS
    listener refused RFC 1929 inside its TLS, though there 0x02 is
    protected; it stands for tls-userpass. Wrong passwords still fail."""
    gw, tport = _tls_listener_gw(gateway, certs, users_file, methods)
    ts = client_ctx(certs).wrap_socket(sr.open_conn(tport),
                                       server_hostname="localhost")
    with ts:
        r = sr.handshake(ts, "localhost", origin.port,
                         methods=[sr.M_USERPASS], user="alice",
                         password=ALICE_PW)
        assert r.rep == sr.REP_OK, r
        _check_hello(ts)
    ts = client_ctx(certs).wrap_socket(sr.open_conn(tport),
                                       server_hostname="localhost")
    with ts:
        ts.sendall(sr.greeting([sr.M_NONE]))
        assert sr.read_method(ts) == sr.M_UNACCEPTABLE
    ts = client_ctx(certs).wrap_socket(sr.open_conn(tport),
                                       server_hostname="localhost")
    with ts:
        ts.sendall(sr.greeting([sr.M_USERPASS]))
        assert sr.read_method(ts) == sr.M_USERPASS
        ts.sendall(sr.userpass("alice", "not-" + ALICE_PW))
        assert sr.read_userpass_status(ts) != 0


def test_tls_resumes_sessions(gateway, certs, users_file, origin):
    """Issue 12: TLS 1.3 resumption by session tickets, on the TLS listener
    and for tls-login; the resumed connection works like any other, and a
    ticket from one connection resumes the next (each gets a new one)."""
    gw, tport = _tls_listener_gw(gateway, certs, users_file,
                                 "userpass, tls-login")
    ctx = client_ctx(certs, version=ssl.TLSVersion.TLSv1_3)
    sess, reused = None, []
    for _ in range(3):
        ts = ctx.wrap_socket(sr.open_conn(tport), server_hostname="localhost",
                             session=sess)
        with ts:
            r = sr.handshake(ts, "localhost", origin.port,
                             methods=[sr.M_USERPASS], user="alice",
                             password=ALICE_PW)
            assert r.rep == sr.REP_OK, r
            _check_hello(ts)
            reused.append(ts.session_reused)
            sess = ts.session
    assert reused == [False, True, True], reused
    # tls-login (0x83) on the SOCKS5 listener: TLS after the greeting.
    sess, reused = None, []
    for _ in range(2):
        s = sr.open_conn(gw.port)
        tlsutil.negotiate(s, M_TLS_LOGIN)
        ts = ctx.wrap_socket(s, server_hostname="localhost", session=sess)
        with ts:
            assert tls_login(ts, M_TLS_LOGIN, "alice", ALICE_PW) == 0
            reused.append(ts.session_reused)
            sess = ts.session
    assert reused == [False, True], reused


# --- client certificates ----------------------------------------------------

def _cert_gw(gateway, certs, require, methods="tls"):
    return gateway(socks5={"methods": methods},
                   tls=tls_section(certs,
                                   client_ca=os.path.join(certs, "ca.pem"),
                                   require_client_cert=require))


def test_client_cert_names_the_user(gateway, certs, origin):
    gw = _cert_gw(gateway, certs, "yes")
    s, _ = tls_connect(gw.port, client_ctx(certs, "alice"), M_TLS,
                       "127.0.0.1", origin.port)
    with s:
        lport = s.getsockname()[1]
        _check_hello(s)
    _access_line(gw, lport, r"user=alice method=tls .*result=ok ")


VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
@pytest.mark.parametrize("cert", ["expired", "rogue", None],
                         ids=lambda c: c or "no-cert")
def test_bad_client_cert_refused_in_handshake(gateway, certs, echo, cert,
                                              version):
    gw = _cert_gw(gateway, certs, "yes")
    s = sr.open_conn(gw.port)
    lport = s.getsockname()[1]
    negotiate(s, M_TLS)
    ctx = client_ctx(certs, cert, version)
    with pytest.raises(ssl.SSLError) as ei:
        ts = ctx.wrap_socket(s, server_hostname="localhost")
        # TLS 1.3: the client's side of the handshake is done before the
        # server has looked at its certificate; the refusal is an alert that
        # the first read returns. Nothing else may come.
        ts.settimeout(EOF_WAIT)
        got = ts.recv(1)
        pytest.fail("TLS session with client cert %s was accepted (read %r)"
                    % (cert, got))
    s.close()
    # An alert from the gateway, not a complaint of our own.
    assert "ALERT" in (ei.value.reason or ""), ei.value
    _access_line(gw, lport, r"user=- method=tls .*result=tls-handshake-failed ")


@pytest.mark.parametrize("cert", [None, "alice"], ids=lambda c: c or "no-cert")
def test_optional_client_cert(gateway, certs, origin, cert):
    # require_client_cert = no: anonymous clients still get in; a valid
    # certificate still names its user.
    gw = _cert_gw(gateway, certs, "no")
    s, _ = tls_connect(gw.port, client_ctx(certs, cert), M_TLS, "127.0.0.1",
                       origin.port)
    with s:
        lport = s.getsockname()[1]
        _check_hello(s)
    _access_line(gw, lport, r"user=%s method=tls .*result=ok "
                 % (cert or "-"))


# --- failed logins ----------------------------------------------------------

@pytest.mark.parametrize("user,pw", [("alice", "not-" + ALICE_PW),
                                     ("mallory", ALICE_PW)],
                         ids=["wrong-password", "unknown-user"])
@pytest.mark.parametrize("method", [M_TLS_USERPASS, M_TLS_LOGIN], ids=_mid)
def test_failed_login_inside_tls(gateway, certs, users_file, method, user, pw):
    gw = _tls_gw(gateway, certs, users_file)
    ts = tls_open(gw.port, client_ctx(certs), method)
    with ts:
        st = tls_login(ts, method, user, pw)
        assert st != 0x00
        assert read_eof(ts) == b""


def _login_from(port, bind, method, certs, pw, origin_port=None,
                user="alice"):
    """One login attempt as user from source address bind. Returns
    "refused" if the gateway closed without a method reply, else the RFC
    1929 status (and, on success with origin_port, checks a GET through)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(sr.IO_TIMEOUT)
    s.bind((bind, 0))
    s.connect(("127.0.0.1", port))
    try:
        try:
            s.sendall(sr.greeting([method]))
            m = s.recv(2)
        except (ConnectionResetError, BrokenPipeError):
            m = b""
        if m == b"":
            return "refused"
        assert m == bytes([sr.VER, method]), m
        c = s
        if method == M_TLS_USERPASS:
            c = client_ctx(certs).wrap_socket(s, server_hostname="localhost")
        c.sendall(sr.userpass(user, pw))
        st = sr.read_userpass_status(c)
        if st == 0 and origin_port is not None:
            c.sendall(sr.request("127.0.0.1", origin_port))
            r = sr.read_reply(c)
            assert r.rep == sr.REP_OK, r
            _check_hello(c)
        return st
    finally:
        s.close()


@pytest.mark.parametrize("method", [sr.M_USERPASS, M_TLS_USERPASS], ids=_mid)
def test_failed_logins_block_that_source_only(gateway, certs, users_file,
                                              origin, method):
    gw = _tls_gw(gateway, certs, users_file, methods="userpass, tls-userpass",
                 auth={"fail_limit": "3", "fail_delay_max": "1",
                       "fail_block": "60"})
    for i in range(3):
        st = _login_from(gw.port, "127.0.0.1", method, certs, "bad-%d" % i)
        assert st not in ("refused", 0), "attempt %d: %r" % (i + 1, st)
    # Blocked now, even with the right password...
    assert _login_from(gw.port, "127.0.0.1", method, certs, ALICE_PW) == \
        "refused"
    # ...but only that address.
    assert _login_from(gw.port, "127.0.0.2", method, certs, ALICE_PW,
                       origin.port) == 0


def _throttled_gw(gateway, certs, users_file):
    return _tls_gw(gateway, certs, users_file, methods="userpass",
                   auth={"fail_limit": "3", "fail_delay_max": "1",
                         "fail_block": "60"})


def test_another_users_login_does_not_reset_failures(gateway, certs,
                                                     users_file):
    # Issue 8 defect 2: two wrong guesses for alice, one valid login as
    # carol, repeat. Carol's login forgives none of alice's failures, so
    # the third guess blocks the address.
    gw = _throttled_gw(gateway, certs, users_file)
    got = []
    for _ in range(3):
        for _ in range(2):
            got.append(_login_from(gw.port, "127.0.0.1", sr.M_USERPASS,
                                   certs, "not-" + ALICE_PW))
        got.append(_login_from(gw.port, "127.0.0.1", sr.M_USERPASS, certs,
                               CAROL_PW, user="carol"))
    assert got[:3] == [1, 1, 0], got
    assert got[3] not in ("refused", 0), got
    assert got[4:] == ["refused"] * 5, got


def test_own_login_forgives_own_failures(gateway, certs, users_file):
    # A user who mistypes and then gets it right is not held against:
    # only their own failures are forgiven.
    gw = _throttled_gw(gateway, certs, users_file)
    got = []
    for _ in range(2):
        for _ in range(2):
            got.append(_login_from(gw.port, "127.0.0.1", sr.M_USERPASS,
                                   certs, "not-" + ALICE_PW))
        got.append(_login_from(gw.port, "127.0.0.1", sr.M_USERPASS, certs,
                               ALICE_PW))
    assert got == [1, 1, 0, 1, 1, 0], got


# --- fragmented and stalled handshakes --------------------------------------

@pytest.mark.parametrize("method", TLS_METHODS, ids=_mid)
def test_handshake_one_byte_per_segment(gateway, certs, users_file, origin,
                                        method):
    gw = _tls_gw(gateway, certs, users_file)
    s = sr.open_conn(gw.port, nodelay=True)
    with s:
        for byte in sr.greeting([method]):
            s.sendall(bytes([byte]))
            tlsutil.wait_sent(s)
        assert sr.read_method(s) == method
        b = BioTLS(s, client_ctx(certs))
        sent = b.handshake(one_byte=True)   # ClientHello, Finished...
        assert sent > 100
        user, pw = _creds(method)
        if user is not None:
            b.sendall(sr.userpass(user, pw))
            assert sr.read_userpass_status(b) == 0
        b.sendall(sr.request("127.0.0.1", origin.port))
        r = sr.read_reply(b)
        assert r.rep == sr.REP_OK, r
        req = b"GET /hello HTTP/1.0\r\nHost: t\r\n\r\n"
        if method == M_TLS_LOGIN:
            resp = b.close_notify_with(req) + sr.recv_until_eof(s)
        else:
            b.sendall(req)
            resp = read_eof(b)
        assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"\r\n\r\nhello\n")


def test_greeting_and_clienthello_in_one_send(gateway, certs, users_file,
                                              origin):
    # An optimistic client: ClientHello right behind the greeting.
    gw = _tls_gw(gateway, certs, users_file)
    s = sr.open_conn(gw.port)
    with s:
        b = BioTLS(s, client_ctx(certs))
        with pytest.raises(ssl.SSLWantReadError):
            b.obj.do_handshake()
        s.sendall(sr.greeting([M_TLS]) + b.out.read())
        assert sr.recv_exact(s, 2) == bytes([sr.VER, M_TLS])
        b.handshake()
        b.sendall(sr.request("127.0.0.1", origin.port))
        assert sr.read_reply(b).rep == sr.REP_OK
        b.sendall(b"GET /hello HTTP/1.0\r\nHost: t\r\n\r\n")
        assert read_eof(b).endswith(b"\r\n\r\nhello\n")


@pytest.mark.parametrize("where", ["after-method-reply", "mid-clienthello",
                                   "after-tls-handshake",
                                   "tls-login-no-close-notify"])
def test_stalled_client_closed_by_handshake_timeout(gateway, certs, users_file,
                                                    echo, where):
    gw = _tls_gw(gateway, certs, users_file,
                 socks5={"handshake_timeout": "1"})
    method = M_TLS_LOGIN if where == "tls-login-no-close-notify" else M_TLS
    s = sr.open_conn(gw.port, nodelay=True)
    with s:
        negotiate(s, method)
        b = BioTLS(s, client_ctx(certs))
        if where == "mid-clienthello":
            with pytest.raises(ssl.SSLWantReadError):
                b.obj.do_handshake()
            hello = b.out.read()
            s.sendall(hello[:len(hello) // 2])
        elif where in ("after-tls-handshake", "tls-login-no-close-notify"):
            b.handshake()
        if where == "tls-login-no-close-notify":
            b.sendall(sr.userpass("alice", ALICE_PW))
            assert sr.read_userpass_status(b) == 0
            b.sendall(sr.request("127.0.0.1", echo.port))
            assert sr.read_reply(b).rep == sr.REP_OK
        # Stall. The gateway must close (its own close_notify aside, no
        # more bytes) within a bounded wait.
        rest = sr.recv_until_eof(s, EOF_WAIT)
        if where == "tls-login-no-close-notify":
            b.inc.write(rest)
            # Only the gateway's close_notify (read() says b"" for it).
            assert b.obj.read(1) == b""
        elif where != "after-tls-handshake":
            assert rest == b""


# --- mpgw passwd ------------------------------------------------------------

def _mkpasswd(pw, method="sha512crypt"):
    gwutil.need_tool("mkpasswd")
    r = run(["mkpasswd", "-m", method, "-s"], input=pw.encode())
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def _passwd(path, user, pw):
    return run([gwutil.MPGW_BIN, "passwd", str(path), user],
               input=pw.encode() + b"\n")


def test_mpgw_passwd_replaces_and_adds(gateway, origin, tmp_path):
    path = tmp_path / "users"
    old_alice = "alice:" + _mkpasswd(ALICE_PW)
    carol = "carol:" + _mkpasswd(CAROL_PW)
    path.write_text("# staff\n%s\n%s\n" % (old_alice, carol))
    path.chmod(0o600)
    new_pw = "new-" + uuid.uuid4().hex[:10]
    r = _passwd(path, "alice", new_pw)
    assert r.returncode == 0, r.stderr
    lines = path.read_text().splitlines()
    assert "# staff" in lines and carol in lines, lines
    alice = [ln for ln in lines if ln.startswith("alice:")]
    assert len(alice) == 1 and alice[0] != old_alice, lines
    assert alice[0].startswith("alice:$y$"), alice      # yescrypt
    r = _passwd(path, "dave", "dave has spaces")
    assert r.returncode == 0, r.stderr
    lines2 = path.read_text().splitlines()
    assert [ln for ln in lines2 if not ln.startswith("dave:")] == lines
    assert len([ln for ln in lines2 if ln.startswith("dave:")]) == 1

    gw = gateway(socks5={"methods": "userpass"}, auth={"users": str(path)})
    proxy = "127.0.0.1:%d" % gw.port
    url = origin.url("/hello")
    r = curl("--socks5", proxy, "-U", "alice:" + new_pw, url)
    assert r.returncode == 0 and r.stdout == b"hello\n", r.stderr
    r = curl("--socks5", proxy, "-U", "alice:" + ALICE_PW, url)
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    r = curl("--socks5", proxy, "-U", "carol:" + CAROL_PW, url)
    assert r.returncode == 0 and r.stdout == b"hello\n", r.stderr
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", gw.port, username="dave",
                password="dave has spaces")
    s.settimeout(sr.IO_TIMEOUT)
    with s:
        s.connect(("127.0.0.1", origin.port))
        _check_hello(s)


# --- what a packet capture of the client leg shows --------------------------

@pytest.fixture(scope="module")
def capture_lab(tmp_path_factory, certs):
    """One namespace: lo only, origin and gateway on 127.0.0.1, a secret
    domain in the gateway's hosts file, a users file with a secret
    password. Clients make their sockets in the namespace."""
    tlsutil.need_netns()
    gwutil.need_tool("tcpdump")
    gwutil.need_tool("mkpasswd")
    d = str(tmp_path_factory.mktemp("capture"))
    tag = uuid.uuid4().hex[:12]
    lab = type("Lab", (), {})()
    lab.domain = "secretdomain-%s.example" % tag
    lab.password = "pw-%s-Secret" % tag
    lab.user = "capuser"
    lab.dir = d
    users = os.path.join(d, "users")
    with open(users, "w") as f:
        f.write("%s:%s\n" % (lab.user, _mkpasswd(lab.password, "yescrypt")))
    os.chmod(users, 0o600)
    ns = tlsutil.Netns("cap", d, hosts="127.0.0.1 localhost\n127.0.0.1 %s\n"
                       % lab.domain)
    gw = None
    try:
        lab.ns = ns
        lab.origin = ns.server("origin", "127.0.0.1")
        lab.port = 1080
        gw = ns.gateway({"socks5": {"methods":
                                    "tls, tls-userpass, tls-login, userpass"},
                         "tls": tls_section(certs),
                         "auth": {"users": users}},
                        ["127.0.0.1:%d" % lab.port])
        lab.gw = gw
        yield lab
    finally:
        problems = gw.stop() if gw is not None else []
        ns.close()
    if problems:
        pytest.fail("gateway teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("method", [M_TLS, M_TLS_USERPASS, M_TLS_LOGIN,
                                    sr.M_USERPASS], ids=_mid)
def test_capture_hides_login_and_target(capture_lab, certs, method):
    lab = capture_lab
    pcap = os.path.join(lab.dir, "%s.pcap" % _mid(method))
    cap = tlsutil.Capture(lab.ns, "lo", "tcp port %d" % lab.port, pcap,
                          lab.port)
    marker = "data-marker-" + uuid.uuid4().hex
    try:
        s = lab.ns.connect("127.0.0.1", lab.port)
        lport = s.getsockname()[1]
        user, pw = (lab.user, lab.password) if method != M_TLS else (None, None)
        if method == sr.M_USERPASS:
            r = sr.handshake(s, lab.domain, lab.origin, methods=[method],
                             user=user, password=pw)
            assert r.rep == sr.REP_OK, r
        else:
            s, r = tls_connect(lab.port, client_ctx(certs), method,
                               lab.domain, lab.origin, user, pw, sock=s)
        with s:
            hdrs, digest, n = tlsutil.http_get(s, "/hello?" + marker)
            assert digest == sha256(b"hello\n")
    finally:
        data = cap.stop()
    streams = tlsutil.tcp_streams(data)
    up = streams.get(("127.0.0.1", lport, "127.0.0.1", lab.port), b"")
    down = streams.get(("127.0.0.1", lab.port, "127.0.0.1", lport), b"")
    # The capture holds this very connection, from its first byte.
    assert up.startswith(sr.greeting([method])), up[:16]
    assert down.startswith(bytes([sr.VER, method])), down[:16]

    clear_login = method == sr.M_USERPASS
    clear_data = method in (sr.M_USERPASS, M_TLS_LOGIN)
    for what, secret, visible in (
            ("password", lab.password.encode(), clear_login),
            ("domain", lab.domain.encode(), clear_login),
            ("data", marker.encode(), clear_data)):
        assert (secret in up) == visible, \
            "%s %s in the client's stream for %s" % (
                what, "missing" if visible else "visible", _mid(method))
        if not visible:
            assert secret not in data, "%s in the pcap file" % what
    assert (b"\r\n\r\nhello\n" in down) == clear_data
