"""The PROXY protocol on listeners (proxy_protocol = yes, gateway.proxy_from;
README "Behind HAProxy"), with raw sockets on loopback standing in for the
balancer: headers written by hand here from HAProxy's proxy-protocol.txt
(not with the gateway's codec), cut into segments as a test needs, the
client's first bytes (a SOCKS5 greeting, a TLS ClientHello, a Convert
message) in the same segment as the header or after it. What counts is
what the client gets (replies, relayed bytes, EOF or reset) and what the
metrics endpoint says was refused; the access log's client= is checked
where the header's address is the point.

The real HAProxy in front of two gateways is in tests/lab/test_haproxy_lab.py.
"""

import copy
import re
import signal
import socket
import ssl
import struct

import pytest

import gwutil
import socksraw as sr
import tlsutil
from gwutil import SLOW, wait_until
from servers import echo_answer, payload
from test_metrics import sample, scrape

T = 30 * SLOW                   # hang protection only
EOF_WAIT = 15 * SLOW
CLIENT = ("203.0.113.7", 4242)  # the address the header names
CLIENT6 = ("2001:db8::7", 4243)
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PP_HDR_MAX = 1024               # proto/proxyproto.h


# --- headers, written from the spec -----------------------------------------

def v1(src=CLIENT, dst=("127.0.0.1", 1080)):
    fam = "TCP6" if ":" in src[0] else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src[0], dst[0], src[1],
                                          dst[1])).encode()


def v2(src=CLIENT, dst=("127.0.0.1", 1080), cmd=1, fam=None, tlvs=b"",
       body=None):
    """cmd 1 PROXY, 0 LOCAL. fam: the family/protocol byte; by default
    0x11 (TCP over IPv4) or 0x21 (IPv6) from src, 0x00 with src None."""
    if body is None:
        if src is None:
            body = b""
        elif ":" in src[0]:
            body = (socket.inet_pton(socket.AF_INET6, src[0]) +
                    socket.inet_pton(socket.AF_INET6, dst[0]) +
                    struct.pack("!HH", src[1], dst[1]))
        else:
            body = (socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) +
                    struct.pack("!HH", src[1], dst[1]))
    if fam is None:
        fam = 0x00 if src is None else 0x21 if ":" in src[0] else 0x11
    body += tlvs
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) \
        + body


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


# --- the gateway -------------------------------------------------------------

@pytest.fixture
def pgw(gateway):
    """Factory: a gateway whose socks5 listener (and the tls/convert ones
    asked for) expects PROXY headers from 127.0.0.1, with a metrics
    endpoint (.mport); .tport / .cport are the TLS and Convert ports.
    The clients the headers name are not on loopback, so a last rule
    lets them reach the test servers on 127.0.0.1 (DESIGN.md section 2).
    Returns once the start-up probes' refusals are counted (each port
    that expects a header was probed once by a connect and close), so a
    test's counts start from a known value."""
    def start(tls=False, convert=False, **sections):
        mport = gwutil.free_port()
        conf = {"gateway": {"proxy_from": "127.0.0.1"},
                "socks5": {"proxy_protocol": "yes"},
                "metrics": {"listen": "127.0.0.1:%d" % mport}}
        tport = cport = None
        if tls:
            tport = gwutil.free_port()
            conf["tls"] = tlsutil.tls_section(
                tlsutil.certs_dir(), listen="127.0.0.1:%d" % tport,
                proxy_protocol="yes")
        if convert:
            cport = gwutil.free_port()
            conf["convert"] = {"listen": "127.0.0.1:%d" % cport,
                               "require_auth": "no", "proxy_protocol": "yes"}
        for sec, kv in sections.items():
            conf.setdefault(sec, {}).update(kv)
        conf["rule.zz-test-servers"] = {"action": "allow",
                                        "dest": "127.0.0.1"}
        gw = gateway(conf)
        gw.mport, gw.tport, gw.cport = mport, tport, cport
        probes = 1
        for p in (mport, tport, cport):
            if p is not None:
                wait_until(lambda p=p: gwutil.accepts("127.0.0.1", p), T,
                           "port %d to accept" % p, proc=gw.proc)
                probes += p != mport
        wait_until(lambda: refused(gw) == probes, T,
                   "the %d start-up probes to be counted" % probes)
        return gw
    return start


def refused(gw, reason="proxy"):
    return sample(scrape(gw.mport), "mpgw_refused_total", reason=reason)


IPPROTO_MPTCP = 262


def conn(port, src="127.0.0.1", proto=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    s.settimeout(sr.IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def ends(s, timeout=EOF_WAIT):
    """How the gateway ends s, which it must: "eof" or "reset"; any bytes
    before it fail the test (a refused connection gets no answer)."""
    s.settimeout(timeout)
    try:
        b = s.recv(4096)
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        raise AssertionError("the gateway did not close the connection")
    assert b == b"", "bytes from a refused connection: %r" % b
    return "eof"


def access_line(gw, client):
    """The access line of the session from client (waited for)."""
    return gw.wait_stderr(r"[^\n]* access id=\d+ client=%s [^\n]*" %
                          re.escape(client)).group(0)


def echo_through(s, echo, rest=b""):
    """CONNECT to the echo server on s (greeting already sent, or in rest)
    and prove the relay."""
    if rest:
        s.sendall(rest)
    assert sr.read_method(s) == sr.M_NONE
    echo_request(s, echo)


def echo_request(s, echo):
    """echo_through() after the method selection."""
    s.sendall(sr.request("127.0.0.1", echo.port))
    r = sr.read_reply(s)
    assert r.rep == sr.REP_OK, r
    data = payload(7001, seed="proxy")
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    assert sr.recv_until_eof(s) == echo_answer(data)


# --- the header and the client's first bytes ----------------------------------

def test_v2_header_and_greeting_in_one_segment(pgw, echo):
    gw = pgw()
    with conn(gw.port) as s:
        s.sendall(v2(dst=("127.0.0.1", gw.port)) + sr.greeting())
        echo_through(s, echo)
    line = access_line(gw, "%s:%d" % CLIENT)
    assert " result=ok " in line


def test_header_from_an_mptcp_balancer(pgw, echo):
    """The balancer's connection is MPTCP: the header is peeked at on an
    MPTCP socket."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                      IPPROTO_MPTCP).close()
    except OSError as e:
        pytest.skip("no MPTCP sockets here: %s" % e)
    gw = pgw()
    for i, hdr in enumerate((v2(src=("198.51.100.7", 7)),
                             v1(src=("198.51.100.8", 8)))):
        with conn(gw.port, proto=IPPROTO_MPTCP) as s:
            s.sendall(hdr[:9])
            tlsutil.wait_sent(s)
            s.sendall(hdr[9:] + sr.greeting())
            echo_through(s, echo)
        line = access_line(gw, "198.51.100.%d:%d" % (7 + i, 7 + i))
        assert " client_mptcp=yes " in line, line


def test_header_split_across_segments(pgw, echo):
    """Every byte of a v1 and of a v2 header its own send() (TCP_NODELAY;
    each waits until the previous left the socket)."""
    gw = pgw()
    for i, hdr in enumerate((v1(src=("198.51.100.1", 1001)),
                             v2(src=("198.51.100.2", 1002),
                                tlvs=tlv(0x04, b"\0" * 9)))):
        with conn(gw.port) as s:
            for k in range(len(hdr)):
                s.sendall(hdr[k:k + 1])
                tlsutil.wait_sent(s)
            echo_through(s, echo, sr.greeting())
        access_line(gw, "198.51.100.%d:%d" % (i + 1, 1001 + i))


def test_v2_ipv6_client_and_v1_tcp6(pgw, echo):
    gw = pgw()
    with conn(gw.port) as s:
        s.sendall(v2(src=CLIENT6, dst=("::1", gw.port)) + sr.greeting())
        echo_through(s, echo)
    access_line(gw, "[%s]:%d" % CLIENT6)
    with conn(gw.port) as s:
        s.sendall(v1(src=("2001:db8::8", 5), dst=("::1", 6)) +
                  sr.greeting())
        echo_through(s, echo)
    access_line(gw, "[2001:db8::8]:5")


def test_header_and_clienthello_on_the_tls_listener(pgw, origin):
    """The header and the TLS ClientHello in one send(): the TLS front
    gets the ClientHello intact."""
    gw = pgw(tls=True)
    ctx = tlsutil.client_ctx(tlsutil.certs_dir())
    with conn(gw.tport) as s:
        t = tlsutil.BioTLS(s, ctx)
        with pytest.raises(ssl.SSLWantReadError):
            t.obj.do_handshake()
        hello = t.out.read()
        assert hello[0] == 0x16, "not a TLS record: %r" % hello[:8]
        s.sendall(v2(src=("192.0.2.44", 4444)) + hello)
        t.handshake()
        t.sendall(sr.greeting())
        assert sr.read_method(t) == sr.M_NONE
        t.sendall(sr.request("127.0.0.1", origin.port))
        assert sr.read_reply(t).rep == sr.REP_OK
        t.sendall(b"GET /hello HTTP/1.0\r\nHost: t\r\n\r\n")
        got = b""
        while True:
            b = t.recv(65536)
            if not b:
                break
            got += b
        assert got.startswith(b"HTTP/1.1 200") and \
            got.endswith(b"\r\n\r\nhello\n"), got
    access_line(gw, "192.0.2.44:4444")


def convert_connect(port):
    """An RFC 8803 message: Connect to 127.0.0.1:port (no Auth)."""
    value = struct.pack("!H", port) + b"\0" * 10 + b"\xff\xff" + \
        socket.inet_aton("127.0.0.1")
    t = bytes([10, (2 + len(value)) // 4]) + value
    return bytes([1, (4 + len(t)) // 4, 0x22, 0x63]) + t


CONVERT_OK = bytes.fromhex("01022263" "14010000")


def test_header_and_convert_message_on_the_convert_listener(pgw, echo):
    """Header, Convert message and the client's first data in one
    segment, then EOF: the echo's answer comes back behind the success
    reply."""
    gw = pgw(convert=True)
    data = payload(1200, seed="convert")
    with conn(gw.cport) as s:
        s.sendall(v2(src=("192.0.2.55", 5555)) + convert_connect(echo.port)
                  + data)
        s.shutdown(socket.SHUT_WR)
        got = sr.recv_until_eof(s)
    assert got == CONVERT_OK + echo_answer(data)
    line = access_line(gw, "192.0.2.55:5555")
    assert " method=convert " in line and " result=ok " in line


# --- who may send a header, and what is refused -------------------------------

def test_headerless_connections_are_refused(pgw):
    gw = pgw()
    before = refused(gw)
    # From a source in proxy_from, speaking SOCKS5 straight away.
    with conn(gw.port) as s:
        s.sendall(sr.greeting())
        ends(s)
    # From a source not in proxy_from, whatever it sends: a greeting, or
    # even a valid header.
    for first in (sr.greeting(), v2()):
        with conn(gw.port, src="127.0.0.2") as s:
            try:
                s.sendall(first)
            except ConnectionResetError:
                pass
            ends(s)
    wait_until(lambda: refused(gw) == before + 3, T,
               "3 PROXY refusals counted")
    gw.wait_stderr(r"PROXY protocol: connection from 127\.0\.0\.\d+:\d+ "
                   r"refused: ")
    assert "client=127.0.0.2" not in gw.stderr_text()


@pytest.mark.parametrize("what,data", [
    ("garbage", b"GET / HTTP/1.0\r\n\r\n"),
    ("v1 bad address", b"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n"),
    ("v1 too long", b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n"),
    ("v2 too long", V2_SIG + b"\x21\x11" +
     struct.pack("!H", PP_HDR_MAX - 16 + 1) + b"\0" * 12),
    ("v2 bad version", V2_SIG + b"\x31\x11\x00\x0c" + b"\0" * 12),
    ("v2 short address block", V2_SIG + b"\x21\x21\x00\x0c" + b"\0" * 12),
    ("v2 PROXY over AF_UNSPEC", v2(src=None)),
    ("v2 PROXY over AF_UNIX", v2(fam=0x31, body=b"\0" * 216)),
])
def test_bad_headers_are_refused(pgw, what, data):
    gw = pgw()
    before = refused(gw)
    with conn(gw.port) as s:
        try:
            s.sendall(data + sr.greeting())
        except ConnectionResetError:
            pass
        ends(s)
    wait_until(lambda: refused(gw) == before + 1, T,
               "the refusal of %s counted" % what)
    assert " access id=" not in gw.stderr_text()


def test_timeout_and_early_close_are_refused(pgw):
    gw = pgw(socks5={"handshake_timeout": "1"})
    before = refused(gw)
    with conn(gw.port) as s:
        s.sendall(v2()[:20])         # half a header, then nothing
        ends(s)
    with conn(gw.port) as s:
        s.sendall(b"PROXY TCP4 ")
        s.shutdown(socket.SHUT_WR)
        ends(s)
    wait_until(lambda: refused(gw) == before + 2, T, "2 refusals counted")
    gw.wait_stderr(r"refused: no complete header within")


@pytest.mark.parametrize("hdr", [v2(cmd=0), v2(cmd=0, src=None),
                                 b"PROXY UNKNOWN\r\n",
                                 b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n",
                                 "own-v1", "own-v2"],
                         ids=["v2-local-inet", "v2-local-unspec",
                              "v1-unknown", "v1-unknown-with-addresses",
                              "own-v1", "own-v2"])
def test_health_checks_close_cleanly(pgw, hdr):
    """LOCAL (v2), UNKNOWN (v1) and a header that names the connection it
    comes on (HAProxy's v1 health checks, "own-v1"/"own-v2"): a clean
    close (FIN, not RST), no refusal counted, no session logged."""
    gw = pgw()
    before = refused(gw)
    started = sample(scrape(gw.mport), "mpgw_sessions_started_total")
    with conn(gw.port) as s:
        if hdr in ("own-v1", "own-v2"):
            me, peer = s.getsockname(), s.getpeername()
            hdr = v1(src=me, dst=peer) if hdr == "own-v1" else \
                v2(src=me, dst=peer)
        s.sendall(hdr)
        assert ends(s) == "eof"
    # A session that does count, to know the gateway got that far.
    with conn(gw.port) as s:
        s.sendall(v2(src=("192.0.2.99", 9)) + sr.greeting())
        assert sr.read_method(s) == sr.M_NONE
    access_line(gw, "192.0.2.99:9")
    text = scrape(gw.mport)
    assert sample(text, "mpgw_refused_total", reason="proxy") == before
    assert sample(text, "mpgw_sessions_started_total") == started + 1
    assert len(re.findall(r" access id=", gw.stderr_text())) == 1


def test_header_naming_the_balancer_elsewhere_is_a_client(pgw, echo):
    """The balancer's own address and port as the source, but another
    destination: a relayed client (on the balancer's host), not a check."""
    gw = pgw()
    with conn(gw.port) as s:
        me = s.getsockname()
        s.sendall(v1(src=me, dst=("127.0.0.1", 1)) + sr.greeting())
        echo_through(s, echo)
    access_line(gw, "127.0.0.1:%d" % me[1])


# --- the header's address is the client for everything ----------------------

def test_rules_and_per_source_limit_see_the_header_address(pgw, echo):
    gw = pgw(gateway={"max_per_source": "1"},
             **{"rule.no-doc": {"action": "deny",
                                "client": "198.51.100.0/24"}})
    # A rule on the header's address: denied, REP 02.
    with conn(gw.port) as s:
        s.sendall(v2(src=("198.51.100.9", 9)) + sr.greeting())
        assert sr.read_method(s) == sr.M_NONE
        s.sendall(sr.request("127.0.0.1", echo.port))
        assert sr.read_reply(s).rep == sr.REP_NOT_ALLOWED
    # max_per_source counts the header's address, not the balancer's.
    before = refused(gw, "per_source")
    a = conn(gw.port)
    a.sendall(v2(src=("192.0.2.1", 1)) + sr.greeting())
    assert sr.read_method(a) == sr.M_NONE
    with conn(gw.port) as b:          # same client: refused
        b.sendall(v2(src=("192.0.2.1", 2)) + sr.greeting())
        ends(b)
    with conn(gw.port) as c:          # another client via the same balancer
        c.sendall(v2(src=("192.0.2.2", 1)) + sr.greeting())
        echo_through(c, echo)
    assert refused(gw, "per_source") == before + 1
    echo_request(a, echo)
    a.close()
    # a's slot is given back at its close.
    def again():
        with conn(gw.port) as d:
            d.sendall(v2(src=("192.0.2.1", 3)) + sr.greeting())
            try:
                return sr.read_method(d) == sr.M_NONE
            except sr.ProtocolError:
                return False
    wait_until(again, T, "192.0.2.1 to be admitted again")


def test_plain_listener_next_to_a_proxy_one(gateway, echo):
    """proxy_protocol is per section: the TLS listener expects headers,
    the SOCKS5 one does not, even from a proxy_from source."""
    tport = gwutil.free_port()
    gw = gateway({"gateway": {"proxy_from": "127.0.0.0/8"},
                  "tls": tlsutil.tls_section(
                      tlsutil.certs_dir(), listen="127.0.0.1:%d" % tport,
                      proxy_protocol="yes")})
    s, _ = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    s.close()
    gw.wait_stderr(r" access id=\d+ client=127\.0\.0\.1:\d+ ")
    gw.wait_stderr(r"socks5\+tls listening on 127\.0\.0\.1:%d \(PROXY "
                   r"protocol\)" % tport)


def test_reload_keeps_the_listeners_proxy_protocol(pgw, echo):
    """proxy_protocol belongs to the listeners (restart only); proxy_from
    is reloaded, and a reload that would leave PROXY listeners without it
    is refused."""
    gw = pgw()
    conf = copy.deepcopy(gw.config)
    # proxy_protocol off and no proxy_from: valid as a file, refused as a
    # reload, since the running listener still expects headers.
    conf["socks5"]["proxy_protocol"] = "no"
    del conf["gateway"]["proxy_from"]
    gwutil.write_ini(gw.conf_path, conf)
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_stderr(r"reload refused, keeping the running config: the "
                   r"running listeners expect PROXY headers: "
                   r"socks5\.proxy_protocol: needs gateway\.proxy_from")
    with conn(gw.port) as s:
        s.sendall(v2(src=("192.0.2.10", 10)) + sr.greeting())
        echo_through(s, echo)
    # proxy_from moved elsewhere: reloaded, so 127.0.0.1 may no longer
    # send headers; the listener still wants one.
    conf["socks5"]["proxy_protocol"] = "yes"
    conf["gateway"]["proxy_from"] = "127.0.0.2"
    gwutil.write_ini(gw.conf_path, conf)
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_stderr(r"reloaded ")
    with conn(gw.port) as s:
        s.sendall(v2(src=("192.0.2.11", 11)) + sr.greeting())
        ends(s)
    with conn(gw.port, src="127.0.0.2") as s:
        s.sendall(v2(src=("192.0.2.12", 12)) + sr.greeting())
        echo_through(s, echo)
    access_line(gw, "192.0.2.12:12")
    assert "client=192.0.2.11:" not in gw.stderr_text()
