"""UDP ASSOCIATE (RFC 1928 section 7, README "UDP ASSOCIATE") with real
clients against the real daemon: PySocks' UDP socket, and socksraw's
Association for the edges (FRAG, a foreign source port, a datagram far
beyond Ethernet's MTU, the end of the association with its TCP
connection, a denied destination, 1,000 datagrams with none lost).

The tests any SOCKS5 server should pass run against mpgw and against
Dante (danted, the reference; danteutil.py), so a difference from the
most complete SOCKS server shows; where Dante answers differently on
purpose, the test says so and checks Dante's answer as what it is. mpgw's
own knobs (access log, metrics, limits, udp_public_address, the idle
timeout, upstream.via) are tested against mpgw alone.

Drops are shown by order, never by waiting: the datagram that must be
dropped goes first and one that must pass after it; once the second one's
echo is in, an echo of the first would already be queued (Association.
queued() looks without waiting).
"""

import base64
import json
import os
import re
import socket
import struct
import subprocess
import urllib.request

import pytest
import socks

import convertmsg as cm
import gwutil
import socksraw as sr


def _pysocks(port, rdns=False, family=socket.AF_INET):
    s = socks.socksocket(family, socket.SOCK_DGRAM)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", port, rdns=rdns)
    s.settimeout(sr.IO_TIMEOUT)
    return s


def _access(gw, regex):
    """The access line of an association that matches regex (waits)."""
    rx = re.compile(r"^.* access id=\d+ .*$", re.M)
    want = re.compile(regex)

    def line():
        for ln in rx.findall(gw.stderr_text()):
            if "command=udp" in ln and want.search(ln):
                return ln
        return None
    return gwutil.wait_until(line, 10 * gwutil.SLOW,
                             "a UDP access line matching %r" % regex)


def _fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


# --- every SOCKS5 server ------------------------------------------------------

def test_pysocks_ipv4(proxy, udpecho):
    p = proxy()
    with _pysocks(p.port) as s:
        for payload in (b"a", b"hello over udp", os.urandom(1200)):
            s.sendto(payload, ("127.0.0.1", udpecho.port))
            data, src = s.recvfrom(65535)
            assert data == payload
            assert src == ("127.0.0.1", udpecho.port)


def test_pysocks_ipv6_target(proxy, udpecho6):
    """An IPv6 destination from a client whose proxy is on IPv4."""
    p = proxy()
    with _pysocks(p.port) as s:
        s.sendto(b"to v6", ("::1", udpecho6.port))
        data, src = s.recvfrom(65535)
        assert data == b"to v6" and src == ("::1", udpecho6.port)


def test_domain_target(proxy, udpecho):
    """ATYP 3 in the datagram: the relay resolves the name; the reply
    names the address the answer came from."""
    p = proxy()
    with sr.Association(p.port) as a:
        assert a.ok(), a.reply
        a.send("localhost", udpecho.port, b"by name")
        assert a.recv() == ("127.0.0.1", udpecho.port, b"by name")
        a.send("localhost", udpecho.port, b"cached")
        assert a.recv() == ("127.0.0.1", udpecho.port, b"cached")


def test_pysocks_remote_dns(proxy, udpecho):
    """PySocks with rdns: the datagrams name the target, and the request
    names the client's address as the domain "0" (PySocks' way to say "I
    do not know my address"); only DST.PORT counts."""
    p = proxy()
    s = _pysocks(p.port, rdns=True)
    with s:
        s.sendto(b"remote dns", ("localhost", udpecho.port))
        data, src = s.recvfrom(65535)
        assert data == b"remote dns" and src == ("127.0.0.1", udpecho.port)


def test_reply_names_the_relay(proxy):
    """The reply's BND is where the client must send: an address it can
    reach (never 0.0.0.0), here the loopback address it connected to."""
    p = proxy()
    with sr.Association(p.port) as a:
        assert a.ok(), a.reply
        assert a.reply.atyp == sr.ATYP_V4
        assert a.reply.addr == "127.0.0.1" and a.reply.port != 0


def test_frag_dropped(proxy, udpecho):
    """FRAG != 0: neither server reassembles, so RFC 1928 says MUST drop."""
    p = proxy()
    with sr.Association(p.port) as a:
        a.send("127.0.0.1", udpecho.port, b"fragment 1", frag=1)
        a.send("127.0.0.1", udpecho.port, b"whole")
        assert a.recv() == ("127.0.0.1", udpecho.port, b"whole")
        assert a.queued() is None


def test_foreign_source_port_dropped(proxy, udpecho):
    """The request said 0.0.0.0:0: the first datagram's source port is the
    client's; one from another port of the same host is dropped."""
    p = proxy()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sr.Association(p.port) as a, other:
        a.send("127.0.0.1", udpecho.port, b"first")
        assert a.recv()[2] == b"first"
        a.send("127.0.0.1", udpecho.port, b"foreign", sock=other)
        a.send("127.0.0.1", udpecho.port, b"pinned")
        assert a.recv()[2] == b"pinned"
        assert a.queued(sock=other) is None and a.queued() is None


def test_client_names_its_port(proxy, udpecho):
    """DST.PORT named in the request: only that port is the client, even
    if another one speaks first."""
    p = proxy()
    mine = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mine.bind(("127.0.0.1", 0))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sr.Association(p.port, "127.0.0.1", mine.getsockname()[1],
                        sock=mine) as a, other:
        assert a.ok(), a.reply
        a.send("127.0.0.1", udpecho.port, b"not me", sock=other)
        a.send("127.0.0.1", udpecho.port, b"me")
        assert a.recv()[2] == b"me"
        assert a.queued(sock=other) is None and a.queued() is None


@pytest.mark.parametrize("size", [8000, 60000])
def test_datagram_larger_than_ethernet_mtu(proxy, udpecho, size):
    """Datagrams far beyond 1500 bytes, whole both ways (IP fragments them
    where a link needs it: tests/lab/test_udp_lab.py sends 8000 bytes over
    1500-byte links)."""
    p = proxy()
    payload = os.urandom(size)
    with sr.Association(p.port) as a:
        a.send("127.0.0.1", udpecho.port, payload)
        assert a.recv() == ("127.0.0.1", udpecho.port, payload)


def test_two_destinations_source_in_header(proxy, udpecho, udpecho_b):
    """One association, two destinations: each reply's header names the
    destination it came from."""
    p = proxy()
    with sr.Association(p.port) as a:
        a.send("127.0.0.1", udpecho.port, b"to a")
        a.send("127.0.0.1", udpecho_b.port, b"to b")
        got = {a.recv(), a.recv()}
        assert got == {("127.0.0.1", udpecho.port, b"to a"),
                       ("127.0.0.1", udpecho_b.port, b"to b")}


def test_association_ends_with_tcp(proxy, udpecho):
    """RFC 1928: the association ends when its TCP connection does. The
    relay's socket is then closed: a datagram to it draws an ICMP port
    unreachable, which a connected UDP socket reports as ECONNREFUSED."""
    p = proxy()
    a = sr.Association(p.port)
    try:
        a.send("127.0.0.1", udpecho.port, b"alive")
        assert a.recv()[2] == b"alive"
        a.sock.connect(a.relay)
        a.ctl.close()
        refused = False
        # Bounded: each round waits at most 0.25 s; the relay notices the
        # EOF within a round or two.
        for _ in range(int(80 * gwutil.SLOW)):
            a.sock.send(sr.udp_header("127.0.0.1", udpecho.port) + b"late")
            try:
                a.sock.settimeout(0.25)
                a.sock.recv(65535)      # still open: an echo; try again
            except ConnectionRefusedError:
                refused = True
                break
            except socket.timeout:
                continue
        assert refused, "the relay's UDP port still open after the TCP " \
            "connection closed"
    finally:
        a.sock.close()


def test_denied_destination(proxy, udpecho, udpecho_b):
    """A destination the rules deny: its datagrams are dropped (the echo
    server there is up: it is the relay that drops them), others pass."""
    p = proxy({"rule.no-b": {"action": "deny", "dest": "127.0.0.1/32",
                             "port": str(udpecho_b.port),
                             "command": "udp"}},
              dante_rules="socks block {\n        from: 0/0 to: "
              "127.0.0.1/32 port = %d\n        command: udpassociate "
              "udpreply\n}\n" % udpecho_b.port)
    with sr.Association(p.port) as a:
        assert a.ok(), a.reply
        a.send("127.0.0.1", udpecho_b.port, b"denied")
        a.send("127.0.0.1", udpecho.port, b"allowed")
        assert a.recv() == ("127.0.0.1", udpecho.port, b"allowed")
        assert a.queued() is None


def test_unsolicited_sender_dropped(proxy):
    """Only where the client sent may answer: a third party that learns the
    relay's outgoing port cannot send the client anything (mpgw filters
    by address and port, like a strict NAT; Dante too)."""
    p = proxy()
    dest = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest.bind(("127.0.0.1", 0))
    dest.settimeout(sr.IO_TIMEOUT)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sr.Association(p.port) as a, dest, intruder:
        a.send("127.0.0.1", dest.getsockname()[1], b"hi")
        data, relay_out = dest.recvfrom(100)
        assert data == b"hi"
        intruder.sendto(b"intruder", relay_out)
        dest.sendto(b"answer", relay_out)
        first = a.recv()
        assert first == ("127.0.0.1", dest.getsockname()[1], b"answer")
        assert a.queued() is None


def _thousand_echoed(port, udpecho, size):
    """1,000 numbered datagrams of size bytes in windows of 50 (each
    window echoed before the next is sent, so no socket buffer overflows
    on a loaded machine): every one comes back, once."""
    got = []
    with sr.Association(port) as a:
        for w in range(0, 1000, 50):
            for i in range(w, w + 50):
                a.send("127.0.0.1", udpecho.port,
                       struct.pack("!I", i) + b"." * (size - 4))
            for _ in range(50):
                try:
                    got.append(struct.unpack("!I", a.recv(5)[2][:4])[0])
                except socket.timeout:
                    break
    lost = sorted(set(range(1000)) - set(got))
    assert not lost and len(got) == 1000, "lost %d: %s" % (len(lost),
                                                          lost[:20])


def test_thousand_datagrams_none_lost(proxy, udpecho):
    _thousand_echoed(proxy().port, udpecho, 64)


# --- mpgw alone -------------------------------------------------------------

def _metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=10) as r:
        return r.read().decode()


def _metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def test_access_line_and_metrics(gateway, udpecho, udpecho_b):
    """One access line per association at its end: datagrams and payload
    bytes each way, destinations, every drop by reason; the same counts in
    /metrics."""
    mport = gwutil.free_port()
    gw = gateway({"metrics": {"listen": "127.0.0.1:%d" % mport},
                  "rule.no-b": {"action": "deny", "dest": "127.0.0.1/32",
                                "port": str(udpecho_b.port),
                                "command": "udp"}})
    gwutil.wait_until(lambda: gwutil.accepts("127.0.0.1", mport),
                      gwutil.START_TIMEOUT, "the metrics port")
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sr.Association(gw.port) as a, other:
        a.send("127.0.0.1", udpecho.port, b"12345")
        assert a.recv()[2] == b"12345"
        a.send("127.0.0.1", udpecho.port, b"f", frag=2)
        a.send("127.0.0.1", udpecho.port, b"x", sock=other)
        a.send("127.0.0.1", udpecho_b.port, b"denied")
        a.sock.sendto(b"\x00\x00\x00\x09junk", a.relay)     # ATYP 9
        a.send("127.0.0.1", udpecho.port, b"1234567")
        assert a.recv()[2] == b"1234567"
    line = _access(gw, r"result=ok")
    f = _fields(line)
    assert f["command"] == "udp" and f["target"] == "0.0.0.0:0", line
    assert (f["dgrams_up"], f["dgrams_down"]) == ("2", "2"), line
    assert (f["up"], f["down"]) == ("12", "12"), line
    assert f["dests"] == "2", line
    assert (f["drop_frag"], f["drop_source"], f["drop_denied"],
            f["drop_bad"]) == ("1", "1", "1", "1"), line
    assert f["drop_unsolicited"] == "0" and f["drop_error"] == "0", line
    text = _metrics(mport)
    assert _metric(text, 'mpgw_udp_datagrams_total{direction="up"}') == 2
    assert _metric(text, 'mpgw_udp_datagrams_total{direction="down"}') == 2
    for reason in ("frag", "source", "denied", "bad"):
        assert _metric(text, 'mpgw_udp_dropped_total{reason="%s"}'
                       % reason) == 1, reason
    assert _metric(text, "mpgw_udp_associations_open") == 0


def test_association_denied_by_rule(gateway, echo):
    """A rule that denies command udp to this client (no destination in
    it) refuses the association itself: REP 02. CONNECT is not touched."""
    gw = gateway({"rule.no-udp": {"action": "deny", "command": "udp"}})
    with sr.Association(gw.port) as a:
        assert a.reply.rep == sr.REP_NOT_ALLOWED, a.reply
    s, r = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    s.close()
    assert r.rep == sr.REP_OK


def test_max_udp_associations(gateway, udpecho):
    """gateway.max_udp_associations = 1: a second association at once gets
    REP 01; once the first ends, there is room again."""
    gw = gateway({"gateway": {"max_udp_associations": "1"}})
    first = sr.Association(gw.port)
    assert first.ok(), first.reply
    with sr.Association(gw.port) as second:
        assert second.reply.rep == sr.REP_GENERAL, second.reply
    first.close()

    def again():
        with sr.Association(gw.port) as a:
            if not a.ok():
                return False
            a.send("127.0.0.1", udpecho.port, b"room")
            return a.recv()[2] == b"room"
    gwutil.wait_until(again, 10 * gwutil.SLOW, "a new association to work")
    gw.wait_stderr(r"result=udp-limit .*command=udp")


def test_udp_public_address(gateway, udpecho):
    """Behind NAT: BND carries udp_public_address (the family of the
    control connection), with the relay socket's own port."""
    gw = gateway({"socks5": {"udp_public_address": "192.0.2.7, 2001:db8::7"}})
    with sr.Association(gw.port) as a:
        assert a.ok() and a.reply.addr == "192.0.2.7", a.reply
        assert a.reply.port != 0
        # The port is the relay's: reachable on the local address.
        a.relay = ("127.0.0.1", a.reply.port)
        a.send("127.0.0.1", udpecho.port, b"nat")
        assert a.recv()[2] == b"nat"


def test_idle_timeout_ends_association(gateway, udpecho):
    """udp_idle_timeout without a datagram: the gateway ends the
    association and closes the control connection."""
    gw = gateway({"socks5": {"udp_idle_timeout": "1"}})
    with sr.Association(gw.port) as a:
        a.send("127.0.0.1", udpecho.port, b"once")
        assert a.recv()[2] == b"once"
        assert sr.recv_until_eof(a.ctl) == b""
    _access(gw, r"result=idle-timeout")


def _gateway_v6(tmp_path):
    """mpgw listening on [::1] only (the gateway fixture listens on IPv4)."""
    port = gwutil.free_port("::1")
    conf = gwutil.gateway_conf(["[::1]:%d" % port])
    path = str(tmp_path / "mpgw-v6.ini")
    err = str(tmp_path / "mpgw-v6.stderr")
    gwutil.write_ini(path, conf)
    with open(err, "wb") as f:
        proc = subprocess.Popen([gwutil.MPGW_BIN, "-c", path],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                preexec_fn=gwutil.die_with_parent)
    gw = gwutil.Gateway(proc, path, [port], err, conf)
    return gwutil.await_gateway(gw, [("mpgw on [::1]:%d" % port,
                                      lambda: gwutil.accepts("::1", port))])


def test_ipv6_control_connection(tmp_path, udpecho, udpecho6):
    """A client on IPv6: the relay is bound on ::1 (where it connected)
    and reaches destinations of both families."""
    if not gwutil.ipv6_loopback_usable():
        pytest.skip("::1 is not configured on lo")
    gw = _gateway_v6(tmp_path)
    try:
        with sr.Association(gw.port, gw_host="::1") as a:
            assert a.ok() and a.reply.addr == "::1", a.reply
            a.send("::1", udpecho6.port, b"six")
            assert a.recv() == ("::1", udpecho6.port, b"six")
            a.send("127.0.0.1", udpecho.port, b"four")
            assert a.recv() == ("127.0.0.1", udpecho.port, b"four")
    finally:
        problems = gw.stop()
    assert not problems, problems


def test_unresolvable_name_dropped(gateway, udpecho):
    """A name that does not resolve: its datagrams are dropped (counted),
    the association goes on."""
    gw = gateway()
    with sr.Association(gw.port) as a:
        a.send("no-such-host.invalid", udpecho.port, b"lost")
        a.send("127.0.0.1", udpecho.port, b"kept")
        assert a.recv()[2] == b"kept"
    f = _fields(_access(gw, r"result=ok"))
    assert f["drop_unresolved"] == "1", f


# --- through a concentrator (upstream.via) ---------------------------------

@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("udpvia") / "keys")
    subprocess.run([gwutil.MPGW_BIN, "key", "new", "edge", path],
                   stdout=subprocess.PIPE, check=True)
    return path


def test_via_pysocks_echo(gateway, keys, udpecho, udpecho6):
    """The association rides one connection to the concentrator (Convert
    with the UDP TLV, datagrams framed): IPv4, IPv6 and a name only the
    concentrator resolves, all echoed; both tiers log the association."""
    e, c = gwutil.tiers(gateway, keys)
    with _pysocks(e.port) as s:
        for dst, payload in ((("127.0.0.1", udpecho.port), b"v4"),
                             (("::1", udpecho6.port), b"v6"),
                             (("127.0.0.1", udpecho.port), os.urandom(9000))):
            s.sendto(payload, dst)
            data, src = s.recvfrom(65535)
            assert data == payload and src == dst
    with sr.Association(e.port) as a:
        a.send("localhost", udpecho.port, b"name")
        assert a.recv() == ("127.0.0.1", udpecho.port, b"name")
    ea = _fields(_access(e, r"dgrams_up=3 "))
    ca = _fields(_access(c, r"dgrams_up=3 "))
    assert ea["dgrams_down"] == "3" and ca["dgrams_down"] == "3"
    assert ca["user"] == "edge" and ca["method"] == "convert", ca
    assert ea["result"] == "ok", ea
    _access(c, r"dgrams_up=1 .*dests=1 ")


def test_via_convert_client_frames_behind_the_message(gateway, keys, udpecho,
                                                      tmp_path):
    """A Convert client's association at an edge with via: the frame it
    sends right behind the message (one send, as in a SYN) reaches the
    destination through the concentrator, and the echo comes back framed
    (the edge once dropped such bytes when it built its own message)."""
    ckeys = str(tmp_path / "client-keys")
    r = subprocess.run([gwutil.MPGW_BIN, "key", "new", "cli", ckeys],
                       stdout=subprocess.PIPE, check=True, text=True)
    key = base64.b64decode(r.stdout.strip())
    eport = gwutil.free_port()
    e, _ = gwutil.tiers(gateway, keys, edge={
        "convert": {"listen": "127.0.0.1:%d" % eport, "keys": ckeys}})
    gwutil.wait_until(lambda: gwutil.accepts("127.0.0.1", eport),
                      gwutil.START_TIMEOUT, "the edge's Convert listener")
    head = (b"\0\0\0\x01" + socket.inet_aton("127.0.0.1") +
            struct.pack("!H", udpecho.port))
    body = head + b"behind the message"
    msg = cm.message([cm.tlv(0xc3, b"\0\0")], "cli", key=key)
    with socket.create_connection(("127.0.0.1", eport), timeout=10) as s:
        s.sendall(msg + struct.pack("!H", len(body)) + body)
        assert sr.recv_exact(s, len(cm.OK_REPLY)) == cm.OK_REPLY
        n = struct.unpack("!H", sr.recv_exact(s, 2))[0]
        assert sr.recv_exact(s, n) == body
    f = _fields(_access(e, r"result=ok .*command=udp"))
    assert f["dgrams_up"] == "1" and f["dgrams_down"] == "1", f


def test_via_thousand_datagrams_none_lost(gateway, keys, udpecho):
    e, _ = gwutil.tiers(gateway, keys)
    _thousand_echoed(e.port, udpecho, 1004)


def test_via_rules_on_both_tiers(gateway, keys, udpecho, udpecho_b):
    """The edge's rules and the concentrator's both apply, per datagram."""
    e, c = gwutil.tiers(
        gateway, keys,
        conc={"rule.no-b": {"action": "deny", "dest": "127.0.0.1/32",
                            "port": str(udpecho_b.port), "command": "udp"}},
        edge={"rule.no-name": {"action": "deny", "domain": "localhost",
                               "command": "udp"}})
    with sr.Association(e.port) as a:
        a.send("127.0.0.1", udpecho_b.port, b"denied at the concentrator")
        a.send("localhost", udpecho.port, b"denied at the edge")
        a.send("127.0.0.1", udpecho.port, b"allowed")
        assert a.recv()[2] == b"allowed"
        assert a.queued() is None
    assert _fields(_access(e, r"result=ok"))["drop_denied"] == "1"
    assert _fields(_access(c, r"result=ok"))["drop_denied"] == "1"


def test_via_concentrator_gone_ends_association(gateway, keys, udpecho):
    """The concentrator goes away: the edge ends the association and
    closes the client's control connection."""
    e, c = gwutil.tiers(gateway, keys)
    with sr.Association(e.port) as a:
        a.send("127.0.0.1", udpecho.port, b"up")
        assert a.recv()[2] == b"up"
        # Gone for good (SIGTERM would drain: wait for the association).
        c.proc.kill()
        c.proc.wait()
        c.stopped = True
        assert sr.recv_until_eof(a.ctl) == b""
    _access(e, r"result=upstream-closed")
