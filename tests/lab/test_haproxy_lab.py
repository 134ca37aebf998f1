"""Two gateways behind a real HAProxy (README "Behind HAProxy", DESIGN.md
sections 7 and 8), in the namespace lab:

    cli 10.77.1.1 / 10.77.2.1 --links 1, 2--> gw: HAProxy (mode tcp,
        balance source) on 10.77.1.2 and 10.77.2.2, ports 1080 (send-proxy-v2)
        and 1090 (send-proxy, v1), in front of two mpgw instances on
        10.77.1.2:2081 and :2082 (socks5.proxy_protocol = yes, proxy_from =
        10.77.1.2) --link 3--> srv: an echo server on 10.77.3.3

HAProxy health-checks both instances (`check`, the PROXY header on checks:
LOCAL in v2, in v1 a header that names the check's own connection).

What is checked, each on what a real client got: a client in cli is
logged by the instance that served it with its own address and port; a
rule on that address applies (REP 02 at the client); max_per_source = 1
counts it (a second connection from it is refused while a client at the
other address is served); a headerless connection straight to a PROXY
listener, from cli (not in proxy_from) and from the balancer's own address,
is refused and counted; v1 works the same; the health checks never count as
refusals nor show as sessions, and HAProxy sees both instances UP with no
failed check.

Run as root:  MPGW_BUILD=build /usr/bin/python3 -m pytest \
    tests/lab/test_haproxy_lab.py
"""

import shutil
import socket
import struct
import threading

import pytest

import labutil as lu

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
FRONT_V2, FRONT_V1 = 1080, 1090
GW_PORTS = (2081, 2082)
METRICS_PORTS = (9481, 9482)
ECHO_PORT = 5007
DENIED_PORT = 7777          # a rule denies cli's second address this port
T = lu.WAIT

SKIP = lu.skip_reason(lu.MPGW) or (
    None if shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    else "haproxy is not installed (make deps-test installs it)")
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

HAPROXY_CFG = """
global
    log stderr format raw local0 info
    stats socket {sock} mode 600 level admin
    maxconn 1000

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend socks
    bind {gw1}:{v2}
    bind {gw2}:{v2}
    default_backend mpgw

frontend socks_v1
    bind {gw1}:{v1}
    bind {gw2}:{v1}
    default_backend mpgw_v1

backend mpgw
    balance source
    server a {gw1}:{p0} send-proxy-v2 check inter 200ms
    server b {gw1}:{p1} send-proxy-v2 check inter 200ms

backend mpgw_v1
    balance source
    server a {gw1}:{p0} send-proxy check check-send-proxy inter 200ms
    server b {gw1}:{p1} send-proxy check check-send-proxy inter 200ms
"""


class Env:
    pass


class Echo:
    """An echo server in srv made by the test itself: each connection
    gets back what it sends, until EOF."""

    def __init__(self, lab, addr):
        def listen():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
            s.listen(64)
            return s
        self.ls = lab.in_ns("srv", listen)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            while True:
                try:
                    b = c.recv(65536)
                except OSError:
                    return
                if not b:
                    return
                c.sendall(b)

    def close(self):
        self.ls.close()


@pytest.fixture(scope="module")
def env(request):
    e = Env()
    lab = e.lab = lu.bring_up(request, "hap")
    e.gw1, e.gw2 = lab.ip("GW_IP1"), lab.ip("GW_IP2")
    e.cli1, e.cli2 = lab.ip("CLI_IP1"), lab.ip("CLI_IP2")
    e.srv = lab.ip("SRV_IP3")
    e.echo = Echo(lab, (e.srv, ECHO_PORT))
    request.addfinalizer(e.echo.close)
    e.gws = []
    for i, (port, mport) in enumerate(zip(GW_PORTS, METRICS_PORTS)):
        gw = lu.Gateway(lab, "mpgw-" + "ab"[i], {
            # debug: the health checks' lines prove they arrived.
            "gateway": {"log_level": "debug", "allow_open_proxy": "yes",
                        "proxy_from": e.gw1, "max_per_source": "1"},
            "socks5": {"listen": "%s:%d" % (e.gw1, port), "methods": "none",
                       "proxy_protocol": "yes"},
            "metrics": {"listen": "127.0.0.1:%d" % mport},
            "rule.deny-cli2": {"action": "deny", "client": e.cli2,
                               "port": str(DENIED_PORT)}})
        gw.mport = mport
        e.gws.append(gw)
    e.sock = lab.path("haproxy.sock")
    cfg = lab.write("haproxy.cfg", HAPROXY_CFG.format(
        sock=e.sock, gw1=e.gw1, gw2=e.gw2, v2=FRONT_V2, v1=FRONT_V1,
        p0=GW_PORTS[0], p1=GW_PORTS[1]))
    r = lab.run("gw", [HAPROXY, "-c", "-f", cfg])
    assert r.returncode == 0, "haproxy -c: %s %s" % (r.stdout, r.stderr)
    e.haproxy = lab.spawn("gw", [HAPROXY, "-db", "-f", cfg], "haproxy")
    lu.wait_for(lambda: [r["status"] for r in servers(e)] == ["UP"] * 4,
                "HAProxy to see both instances UP in both backends")
    return e


def servers(e):
    """HAProxy's `show stat` rows for the servers: [{pxname, svname,
    status, chkfail, ...}]; [] while the stats socket is not up."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(e.sock)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError:
        return []
    lines = data.decode().splitlines()
    if not lines or not lines[0].startswith("# "):
        return []
    names = lines[0][2:].split(",")
    rows = [dict(zip(names, ln.split(","))) for ln in lines[1:] if ln]
    return [r for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")]


def refused(e, reason="proxy"):
    return sum(lu.metric(e.lab, gw.mport, "mpgw_refused_total",
                         reason=reason)
               for gw in e.gws)


# --- a SOCKS5 client in cli --------------------------------------------------

def client(e, src, port=FRONT_V2, dst=None, role="cli"):
    """A TCP socket from src (an address of role's namespace) to dst
    (default: HAProxy's port on the gateway's link-1 address)."""
    dst = dst or (e.gw1, port)

    def mk():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(T)
        s.bind((src, 0))
        s.connect(dst)
        return s
    return e.lab.in_ns(role, mk)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise ConnectionError("closed after %r" % buf)
        buf += b
    return buf


def greet(s):
    """Greeting, method: True if the gateway answered method none."""
    s.sendall(b"\x05\x01\x00")
    try:
        return recv_exact(s, 2) == b"\x05\x00"
    except (ConnectionError, OSError):
        return False


def connect(s, host, port):
    """CONNECT after greet(); the REP byte."""
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) +
              struct.pack("!H", port))
    head = recv_exact(s, 4)
    recv_exact(s, 6)                  # IPv4 BND
    return head[1]


def echo_once(s, data=b"hello through haproxy"):
    s.sendall(data)
    assert recv_exact(s, len(data)) == data


def ends(s):
    """The gateway (through HAProxy, or directly) closes s with nothing
    sent: True for EOF or reset."""
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def served_by(e, pred, what):
    """The access line (dict) matching pred, from whichever instance."""
    def find():
        for gw in e.gws:
            for a in gw.access():
                if pred(a):
                    return a
        return None
    return lu.wait_for(find, what)


# --- tests -------------------------------------------------------------------

@pytest.mark.parametrize("front", [FRONT_V2, FRONT_V1], ids=["v2", "v1"])
def test_client_is_logged_with_its_own_address(env, front):
    with client(env, env.cli1, front) as s:
        me = "%s:%d" % s.getsockname()
        assert greet(s)
        assert connect(s, env.srv, ECHO_PORT) == 0
        echo_once(s)
    a = served_by(env, lambda a: a["client"] == me, "a line for " + me)
    assert a["result"] == "ok" and a["target"] == "%s:%d" % (
        env.srv, ECHO_PORT), a


def test_rule_on_the_client_address_applies(env):
    # cli's second address may not reach DENIED_PORT: REP 02.
    with client(env, env.cli2, dst=(env.gw2, FRONT_V2)) as s:
        me = "%s:%d" % s.getsockname()
        assert greet(s)
        assert connect(s, env.srv, DENIED_PORT) == 0x02
    served_by(env, lambda a: a["client"] == me and a["result"] == "denied",
              "the denied line for " + me)
    # Its first address may: nobody listens there, so REP 05.
    with client(env, env.cli1) as s:
        assert greet(s)
        assert connect(s, env.srv, DENIED_PORT) == 0x05


def test_per_source_limit_counts_the_client(env):
    before = refused(env, "per_source")
    a = client(env, env.cli1)
    try:
        assert greet(a), "the first connection was not admitted"
        assert connect(a, env.srv, ECHO_PORT) == 0
        # balance source: the same client reaches the same instance,
        # whose max_per_source = 1 it already holds.
        with client(env, env.cli1) as b:
            assert not greet(b), "a second session from cli1 was admitted"
            assert ends(b)
        # Another client address through the same balancer is served.
        with client(env, env.cli2, dst=(env.gw2, FRONT_V2)) as c:
            assert greet(c)
            assert connect(c, env.srv, ECHO_PORT) == 0
            echo_once(c)
        echo_once(a)
    finally:
        a.close()
    assert refused(env, "per_source") == before + 1
    # The slot comes back with the session's end.
    def again():
        with client(env, env.cli1) as s:
            return greet(s)
    lu.wait_for(again, "cli1 to be admitted again")


def test_headerless_connection_is_refused(env):
    before = refused(env)
    # From cli, which is not in proxy_from: closed at accept.
    with client(env, env.cli1, dst=(env.gw1, GW_PORTS[0])) as s:
        assert not greet(s)
    # From the balancer's own address, speaking SOCKS5 without a header.
    with client(env, env.gw1, dst=(env.gw1, GW_PORTS[1]), role="gw") as s:
        assert not greet(s)
    lu.wait_for(lambda: refused(env) == before + 2, "2 PROXY refusals")


def test_health_checks_are_not_failures(env):
    """Both kinds of check reach both instances (their debug lines), and
    none is counted as a refusal or shows as a session."""
    marks = [gw.mark() for gw in env.gws]
    before = refused(env)
    for gw, m in zip(env.gws, marks):
        for kind in ("v2 LOCAL", "v1 naming its own connection"):
            # A few rounds of checks (every 200 ms) after the mark.
            lu.wait_for(lambda: len([l for l in gw.lines(
                "a health check, closing", m) if kind in l]) >= 3,
                "3 %s health checks at %s" % (kind, gw.proc.name))
    assert refused(env) == before
    for gw in env.gws:
        assert not [a for a in gw.access() if a["client"].startswith(
            env.gw1 + ":")], "a health check was logged as a session"
    rows = servers(env)
    assert len(rows) == 4, rows
    for r in rows:
        assert r["status"] == "UP" and r["chkfail"] == "0", r
