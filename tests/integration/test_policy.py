"""Access policy with real clients: [rule.NAME] sections (user, client
CIDR, port, domain suffix, dest CIDR, command, first match wins), the
built-in protection of loopback and the gateway's own addresses against
non-loopback clients (in network namespaces), the open-proxy check of
`mpgw -t`, and gateway.max_per_source."""

import os
import socket
import uuid

import pytest
import socks

import gwutil
import socksraw as sr
import tlsutil
from gwutil import MPGW_BIN, SLOW, USERS, curl, run, wait_until
from servers import echo_answer, payload

ALICE_PW = USERS["alice"][0]
CAROL_PW = USERS["carol"][0]
CURLE_PROXY = 97        # curl >= 7.73: the SOCKS handshake failed
EOF_WAIT = 15 * SLOW


def _exchange(s, port, echo_port):
    """Prove the relay works: echo round trip, or GET /hello."""
    if port == echo_port:
        data = payload(20011, seed="policy")
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(s) == echo_answer(data)
    else:
        s.sendall(b"GET /hello HTTP/1.0\r\nHost: t\r\n\r\n")
        resp = sr.recv_until_eof(s)
        assert resp.startswith(b"HTTP/1.1 200"), resp[:100]
        assert resp.endswith(b"\r\n\r\nhello\n"), resp[-100:]


def _try(sock, host, port, echo_port=None, methods=(sr.M_NONE,), user=None,
         password=None):
    """Handshake on a connected socket; returns the REP byte. On success the
    relay is exercised; on failure the gateway must close right after its
    reply."""
    with sock:
        r = sr.handshake(sock, host, port, methods=methods, user=user,
                         password=password)
        if r.rep == sr.REP_OK:
            _exchange(sock, port, echo_port)
        else:
            assert sr.recv_until_eof(sock, EOF_WAIT) == b"", \
                "bytes after a failure reply"
        return r.rep


def _bound_conn(port, bind="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(sr.IO_TIMEOUT)
    s.bind((bind, 0))
    s.connect(("127.0.0.1", port))
    return s


def _rep(gw, host, port, echo_port=None, bind="127.0.0.1", user=None):
    kw = {}
    if user is not None:
        kw = dict(methods=[sr.M_USERPASS], user=user,
                  password=USERS[user][0])
    return _try(_bound_conn(gw.port, bind), host, port, echo_port, **kw)


def _curl(gw, url, user=None):
    auth = ["-U", "%s:%s" % (user, USERS[user][0])] if user else []
    return curl("--socks5-hostname", "127.0.0.1:%d" % gw.port, *auth, url)


def _pysocks_get(gw, host, port, user=None):
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", gw.port, rdns=True,
                username=user, password=USERS[user][0] if user else None)
    s.settimeout(sr.IO_TIMEOUT)
    with s:
        s.connect((host, port))
        _exchange(s, port, None)


def _pysocks_denied(gw, host, port, user=None):
    with pytest.raises(socks.ProxyError) as ei:
        _pysocks_get(gw, host, port, user)
    assert "0x02" in str(ei.value), ei.value


# --- rules, loopback clients ------------------------------------------------

def test_rule_by_user(gateway, users_file, origin):
    gw = gateway(socks5={"methods": "userpass"}, auth={"users": users_file},
                 **{"rule.no-carol": {"action": "deny", "user": "carol"}})
    assert _rep(gw, "127.0.0.1", origin.port, user="carol") == \
        sr.REP_NOT_ALLOWED
    assert _rep(gw, "127.0.0.1", origin.port, user="alice") == sr.REP_OK
    r = _curl(gw, origin.url("/hello"), user="carol")
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    r = _curl(gw, origin.url("/hello"), user="alice")
    assert r.returncode == 0 and r.stdout == b"hello\n", r.stderr
    _pysocks_denied(gw, "127.0.0.1", origin.port, user="carol")
    _pysocks_get(gw, "127.0.0.1", origin.port, user="alice")


def test_rule_first_match_wins(gateway, users_file, origin):
    gw = gateway(socks5={"methods": "userpass"}, auth={"users": users_file},
                 **{"rule.alice": {"action": "allow", "user": "alice"},
                    "rule.nobody-else": {"action": "deny"}})
    assert _rep(gw, "localhost", origin.port, user="alice") == sr.REP_OK
    assert _rep(gw, "localhost", origin.port, user="carol") == \
        sr.REP_NOT_ALLOWED


def test_rule_by_client_cidr(gateway, origin):
    gw = gateway(**{"rule.no-dot2": {"action": "deny",
                                     "client": "10.0.0.0/8, 127.0.0.2/32"}})
    assert _rep(gw, "127.0.0.1", origin.port, bind="127.0.0.2") == \
        sr.REP_NOT_ALLOWED
    assert _rep(gw, "127.0.0.1", origin.port, bind="127.0.0.1") == sr.REP_OK
    assert _rep(gw, "127.0.0.1", origin.port, bind="127.0.0.3") == sr.REP_OK


def test_rule_by_port(gateway, origin, echo):
    gw = gateway(**{"rule.web": {"action": "allow",
                                 "port": "1-2, %d-%d" % (origin.port,
                                                         origin.port)},
                    "rule.rest": {"action": "deny"}})
    assert _rep(gw, "127.0.0.1", origin.port) == sr.REP_OK
    assert _rep(gw, "127.0.0.1", echo.port, echo.port) == sr.REP_NOT_ALLOWED
    r = _curl(gw, origin.url("/hello"))
    assert r.returncode == 0 and r.stdout == b"hello\n", r.stderr
    _pysocks_denied(gw, "127.0.0.1", echo.port)


def test_rule_by_domain_suffix(gateway, origin):
    # .LocalHost: lower-cased, the leading dot dropped; "calhost" is not a
    # label suffix of "localhost".
    gw = gateway(**{"rule.not-calhost": {"action": "deny",
                                         "domain": "calhost"},
                    "rule.no-localhost": {"action": "deny",
                                          "domain": "example.org, .LocalHost"}})
    assert _rep(gw, "localhost", origin.port) == sr.REP_NOT_ALLOWED
    assert _rep(gw, "LOCALHOST", origin.port) == sr.REP_NOT_ALLOWED
    assert _rep(gw, "127.0.0.1", origin.port) == sr.REP_OK
    r = _curl(gw, origin.url("/hello", host="localhost"))
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    r = _curl(gw, origin.url("/hello"))
    assert r.returncode == 0 and r.stdout == b"hello\n", r.stderr
    _pysocks_denied(gw, "localhost", origin.port)


def test_rule_by_dest_after_resolution(gateway, origin, echo):
    # A name is judged by the address it resolves to.
    gw = gateway(**{"rule.no-echo": {"action": "deny",
                                     "dest": "127.0.0.1/32",
                                     "port": str(echo.port)}})
    assert _rep(gw, "localhost", echo.port, echo.port) == sr.REP_NOT_ALLOWED
    assert _rep(gw, "127.0.0.1", echo.port, echo.port) == sr.REP_NOT_ALLOWED
    assert _rep(gw, "localhost", origin.port) == sr.REP_OK


def test_rule_by_command(gateway, origin):
    gw = gateway(**{"rule.no-connect": {"action": "deny",
                                        "command": "connect"}})
    assert _rep(gw, "127.0.0.1", origin.port) == sr.REP_NOT_ALLOWED
    r = _curl(gw, origin.url("/hello"))
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)


# --- built-in protection against non-loopback clients -----------------------

GW_ADDR, CLI_ADDR = "10.77.9.1", "10.77.9.2"


@pytest.fixture(scope="module")
def remote_lab(tmp_path_factory, users_file):
    """Namespace G (gateways, an origin on 0.0.0.0) and namespace C (the
    client, an origin on 10.77.9.2), joined by a veth pair 10.77.9.1 <->
    10.77.9.2/24. No default routes anywhere."""
    tlsutil.need_netns()
    d = str(tmp_path_factory.mktemp("remote"))
    g = tlsutil.Netns("pg", d, hosts="127.0.0.1 localhost\n")
    c = None
    gws = []
    try:
        c = tlsutil.Netns("pc", d)
        tlsutil.sh("ip", "-n", g.name, "link", "add", "v0", "type", "veth",
                   "peer", "name", "v1", "netns", c.name)
        # "brd +": the interface has a directed broadcast, 10.77.9.255.
        tlsutil.sh("ip", "-n", g.name, "addr", "add", GW_ADDR + "/24",
                   "brd", "+", "dev", "v0")
        tlsutil.sh("ip", "-n", c.name, "addr", "add", CLI_ADDR + "/24",
                   "brd", "+", "dev", "v1")
        tlsutil.sh("ip", "-n", g.name, "link", "set", "v0", "up")
        tlsutil.sh("ip", "-n", c.name, "link", "set", "v1", "up")
        lab = type("Lab", (), {})()
        lab.g, lab.c = g, c
        lab.origin_g = g.server("origin", "0.0.0.0")
        lab.origin_c = c.server("origin", CLI_ADDR)
        up = {"methods": "userpass"}
        auth = {"users": users_file, "allow_cleartext_password": "yes"}
        open_gw = {"allow_open_proxy": "yes"}

        def start(name, listen, secs):
            gw = g.gateway(secs, listen)
            gws.append(gw)
            setattr(lab, name, gw)
        # The default protection, logins required.
        start("plain", ["%s:1080" % GW_ADDR, "127.0.0.1:1081"],
              {"socks5": up, "auth": auth})
        # An operator who named 127.0.0.1/32 opens exactly that.
        start("lo_open", ["%s:1082" % GW_ADDR],
              {"gateway": open_gw,
               "rule.lo": {"action": "allow", "dest": "127.0.0.1/32"}})
        # Catch-all allows open nothing protected.
        start("catch_all", ["%s:1083" % GW_ADDR],
              {"gateway": open_gw, "rule.all": {"action": "allow"}})
        start("slash0", ["%s:1084" % GW_ADDR],
              {"gateway": open_gw,
               "rule.any": {"action": "allow", "dest": "0.0.0.0/0, ::/0"}})
        # No allow_cleartext_password: only loopback clients get 0x02.
        start("no_clear", ["%s:1085" % GW_ADDR, "127.0.0.1:1086"],
              {"socks5": up, "auth": {"users": users_file}})
        yield lab
    finally:
        problems = []
        for gw in gws:
            problems += gw.stop()
        if c is not None:
            c.close()
        g.close()
    if problems:
        pytest.fail("gateway teardown:\n" + "\n".join(problems), pytrace=False)


def _remote_rep(lab, gw_port, host, port, user="alice"):
    """From the client namespace (source 10.77.9.2)."""
    s = lab.c.connect(GW_ADDR, gw_port)
    assert s.getsockname()[0] == CLI_ADDR
    kw = {}
    if user is not None:
        kw = dict(methods=[sr.M_USERPASS], user=user, password=USERS[user][0])
    return _try(s, host, port, **kw)


PROTECTED = ["127.0.0.1", "127.0.0.2", GW_ADDR, "localhost", "0.0.0.0",
             "10.77.9.255", "::1", "::ffff:127.0.0.1", "::"]


@pytest.mark.parametrize("host", PROTECTED)
def test_remote_client_denied_protected_destination(remote_lab, host):
    lab = remote_lab
    assert _remote_rep(lab, 1080, host, lab.origin_g) == sr.REP_NOT_ALLOWED


def test_remote_client_reaches_ordinary_destination(remote_lab):
    lab = remote_lab
    assert _remote_rep(lab, 1080, CLI_ADDR, lab.origin_c) == sr.REP_OK


def test_remote_client_curl(remote_lab):
    gwutil.need_tool("curl")
    lab = remote_lab
    base = ["curl", "-sS", "--max-time", str(gwutil.CLIENT_TIMEOUT - 5),
            "--socks5-hostname", "%s:1080" % GW_ADDR,
            "-U", "alice:" + ALICE_PW]
    r = run(lab.c.argv(*base, "http://localhost:%d/hello" % lab.origin_g))
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    r = run(lab.c.argv(*base, "http://%s:%d/hello" % (GW_ADDR, lab.origin_g)))
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    r = run(lab.c.argv(*base, "http://%s:%d/hello" % (CLI_ADDR, lab.origin_c)))
    assert r.returncode == 0 and r.stdout == b"hello\n", r.stderr


@pytest.mark.parametrize("host,rep", [("127.0.0.1", sr.REP_OK),
                                      ("localhost", sr.REP_OK),
                                      ("127.0.0.2", sr.REP_NOT_ALLOWED),
                                      (GW_ADDR, sr.REP_NOT_ALLOWED),
                                      (CLI_ADDR, sr.REP_OK)])
def test_remote_client_allow_rule_naming_loopback(remote_lab, host, rep):
    lab = remote_lab
    port = lab.origin_c if host == CLI_ADDR else lab.origin_g
    assert _remote_rep(lab, 1082, host, port, user=None) == rep


@pytest.mark.parametrize("which,port", [("catch-all", 1083), ("slash0", 1084)])
def test_remote_client_wide_allow_rule_opens_nothing(remote_lab, which, port):
    lab = remote_lab
    assert _remote_rep(lab, port, "127.0.0.1", lab.origin_g, user=None) == \
        sr.REP_NOT_ALLOWED
    assert _remote_rep(lab, port, GW_ADDR, lab.origin_g, user=None) == \
        sr.REP_NOT_ALLOWED
    assert _remote_rep(lab, port, CLI_ADDR, lab.origin_c, user=None) == \
        sr.REP_OK


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", GW_ADDR])
def test_loopback_client_reaches_loopback(remote_lab, host):
    lab = remote_lab
    s = lab.g.connect("127.0.0.1", 1081)
    assert _try(s, host, lab.origin_g, methods=[sr.M_USERPASS], user="alice",
                password=ALICE_PW) == sr.REP_OK


def test_remote_client_gets_no_cleartext_password_method(remote_lab):
    lab = remote_lab
    with lab.c.connect(GW_ADDR, 1085) as s:
        s.sendall(sr.greeting([sr.M_USERPASS]))
        assert sr.read_method(s) == sr.M_UNACCEPTABLE
        assert sr.recv_until_eof(s, EOF_WAIT) == b""
    # The same gateway still takes 0x02 from a loopback client.
    s = lab.g.connect("127.0.0.1", 1086)
    assert _try(s, "127.0.0.1", lab.origin_g, methods=[sr.M_USERPASS],
                user="carol", password=CAROL_PW) == sr.REP_OK


# --- mpgw -t: no open proxy by accident -------------------------------------

def _conf(tmp_path, certs, users_file, listen, methods, tls=None, gw=None):
    sections = {
        "gateway": dict(gw or {}),
        "socks5": {"listen": listen, "methods": methods},
        "auth": {"users": users_file},
        "tls": tlsutil.tls_section(certs, **(tls or {})),
    }
    path = tmp_path / ("c-%s.ini" % uuid.uuid4().hex[:8])
    gwutil.write_ini(str(path), sections)
    return path


OPEN_PROXY_CASES = [
    # (id, listen, methods, tls extra, gateway extra, open?)
    ("none-any4", "0.0.0.0:%d", "none", None, None, True),
    ("none-any6", "[::]:%d", "none", None, None, True),
    ("none-after-userpass", "0.0.0.0:%d", "userpass, none", None, None, True),
    ("tls-no-client-cert", "0.0.0.0:%d", "tls", None, None, True),
    ("tls-listener-none", "127.0.0.1:%d", "none",
     {"listen": "0.0.0.0:@"}, None, True),
    ("none-loopback", "127.0.0.1:%d", "none", None, None, False),
    ("userpass-any4", "0.0.0.0:%d", "userpass, tls-userpass", None, None, False),
    ("tls-required-cert", "0.0.0.0:%d", "tls",
     {"client_ca": "@ca", "require_client_cert": "yes"}, None, False),
]


@pytest.mark.parametrize("case", OPEN_PROXY_CASES, ids=lambda c: c[0])
@pytest.mark.parametrize("allow", ["no", "yes"])
def test_open_proxy_refused_by_config_check(tmp_path, users_file, case, allow):
    certs = tlsutil.certs_dir()
    _, listen, methods, tls, _, is_open = case
    tls = dict(tls or {})
    for k, v in tls.items():
        if v == "@ca":
            tls[k] = os.path.join(certs, "ca.pem")
        elif v == "0.0.0.0:@":
            tls[k] = "0.0.0.0:%d" % gwutil.free_port()
    path = _conf(tmp_path, certs, users_file, listen % gwutil.free_port(),
                 methods, tls, {"allow_open_proxy": allow})
    r = run([MPGW_BIN, "-t", "-c", str(path)])
    text = (r.stdout + r.stderr).decode(errors="replace")
    if is_open and allow == "no":
        assert r.returncode == 1, text
        assert "allow_open_proxy" in text, text
    else:
        assert r.returncode == 0, text


# --- gateway.max_per_source -------------------------------------------------

def _refused(port, bind="127.0.0.1"):
    """True if the gateway closed the connection without a method reply,
    False if it answered the greeting."""
    s = _bound_conn(port, bind)
    with s:
        try:
            s.sendall(sr.greeting())
            s.settimeout(EOF_WAIT)
            got = s.recv(2)
        except (ConnectionResetError, BrokenPipeError):
            got = b""
    return got == b""


def test_max_per_source(gateway, echo):
    gw = gateway(gateway={"max_per_source": "2"})
    s1, _ = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    s2, _ = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    with s1, s2:
        assert _refused(gw.port)
        # Another source address has its own allowance.
        assert _rep(gw, "127.0.0.1", echo.port, echo.port,
                    bind="127.0.0.2") == sr.REP_OK
        # The first two are unharmed.
        for i, s in enumerate((s1, s2)):
            data = payload(5000 + i, seed="per-source")
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            assert sr.recv_until_eof(s) == echo_answer(data)
    # Once they are gone the address may come back.
    wait_until(lambda: not _refused(gw.port), EOF_WAIT,
               "a slot for 127.0.0.1 after two sessions ended")
    assert _rep(gw, "127.0.0.1", echo.port, echo.port) == sr.REP_OK
