"""Two tiers in the namespace lab (issue 9, DESIGN.md section 5):

    cli --link 1--> gw (edge) ==links 3+4, tbf, MPTCP==> srv (concentrator)
                                                   --link 5--> far (server)

The edge (build/mpgw in gw) takes SOCKS5 from cli and carries every
request as one MPTCP connection to the concentrator (build/mpgw in srv,
a Convert listener), whose SYN holds the Convert message; the edge has a
subflow endpoint on link 4. far runs the servers with MPTCP disabled, and
neither cli nor gw has a route to it. Clients are real: PySocks (the sink's
fetch), curl --socks5-hostname and curl through the shim in explicit mode.

Run as root:  MPGW_BUILD=build /usr/bin/python3 -m pytest \
    tests/lab/test_tier_lab.py
"""

import json
import os
import struct
import subprocess
import time

import pytest

import labutil as lu

USER, PASSWORD = "carol", "Tier-pass-42"
VIA_USER = "edge"
CONV_PORT, SINK_PORT, HTTP_PORT, CLOSED_PORT = 5124, 5001, 8080, 9
EDGE_ON, EDGE_OFF, EDGE_EARLY, EDGE_BADKEY = 1080, 1081, 1082, 1083
RATE = 10               # Mbit/s on each edge<->concentrator link
DELAY = 5               # ms one way on each of them
BIG = 16 * lu.MIB
NAME = "far.tier.test"  # only the concentrator's namespace resolves it

SKIP = lu.skip_reason(lu.MPGW, lu.LIB, lu.MPGW_RUN,
                      tools=("mkpasswd", "curl", "tcpdump"))
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

HTTP_SERVER = r"""
import functools, http.server, sys
d, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
srv = http.server.ThreadingHTTPServer((host, port), h)
print("ready", flush=True)
srv.serve_forever()
"""


class Tier:
    pass


@pytest.fixture(scope="module")
def tier(request):
    t = Tier()
    lab = t.lab = lu.bring_up(request, "tier", "--far", "--rate1", str(RATE),
                              "--rate2", str(RATE), "--delay1", str(DELAY),
                              "--delay2", str(DELAY))
    t.far = lab.ip("FAR_IP5")
    t.conc_ip = lab.ip("SRV_IP3")
    t.edge_ip = lab.ip("GW_IP1")
    # far: the MPTCP sink (plain TCP there) and an HTTP server.
    t.sink = lab.spawn("far", [lu.PY, lu.SINK, "serve", "--host", t.far,
                               "--port", str(SINK_PORT)], "sink")
    assert lu.ready_line(t.sink) == "ready", t.sink.tail()
    www = os.path.join(lab.dir, "www")
    os.mkdir(www)
    t.page = os.urandom(300 * 1024)
    with open(os.path.join(www, "page.bin"), "wb") as f:
        f.write(t.page)
    t.http = lab.spawn("far", [lu.PY, "-c", HTTP_SERVER, www, t.far,
                               str(HTTP_PORT)], "http")
    assert lu.ready_line(t.http) == "ready", t.http.tail()
    lab.netns_file("srv", "hosts", "127.0.0.1 localhost\n%s %s\n"
                   % (t.far, NAME))
    # The concentrator: a Convert listener, the edge's key. No login
    # throttle: every edge shares a few source addresses.
    keys, t.key_b64 = lu.key_file(lab, VIA_USER)
    other = lab.path("other-keys")
    subprocess.run([lu.MPGW, "key", "new", VIA_USER, other], check=True,
                   capture_output=True)
    t.conc = lu.Gateway(lab, "concentrator", {
        "socks5": {"listen": "127.0.0.1:1080"},
        "auth": {"fail_limit": "0"},
        "convert": {"listen": "%s:%d" % (t.conc_ip, CONV_PORT),
                    "keys": keys}}, role="srv")
    users = lu.users_file(lab, USER, PASSWORD)
    t.edges = {}

    def edge(port, keyfile=keys, **extra):
        sec = {"socks5": {"listen": "%s:%d" % (t.edge_ip, port),
                          "methods": "userpass"},
               "auth": {"users": users, "allow_cleartext_password": "yes"},
               "upstream": {"via": "convert://%s:%d" % (t.conc_ip,
                                                       CONV_PORT),
                            "via_user": VIA_USER, "via_keys": keyfile}}
        for k, v in extra.items():
            sec.setdefault(k, {}).update(v)
        g = lu.Gateway(lab, "edge-%d" % port, sec)
        g.port = port
        t.edges[port] = g
    edge(EDGE_ON)
    edge(EDGE_OFF, upstream={"mptcp": "off"})
    edge(EDGE_EARLY, socks5={"early_reply": "yes"})
    edge(EDGE_BADKEY, keyfile=other)
    return t


def _sink(t, edge, op, size, dst=None, rdns=False):
    """A transfer from cli through the edge to the sink in far; returns
    (client report, server report, edge access, concentrator access)."""
    lab = t.lab
    g = t.edges[edge]
    s0, e0, c0 = len(t.sink.out), g.mark(), t.conc.mark()
    dst = dst or "%s:%d" % (t.far, SINK_PORT)
    argv = [lu.PY, lu.SINK, "fetch", "--proxy", "%s:%d" % (t.edge_ip, edge),
            "--user", USER, "--password", PASSWORD, "--dst", dst,
            "--" + op, str(size)] + (["--rdns"] if rdns else [])
    r = lab.run("cli", argv, timeout=300)
    assert r.returncode == 0, "client failed (%d): %s %s" % (
        r.returncode, r.stdout.decode(), r.stderr.decode())
    cli = json.loads(r.stdout.decode().strip().splitlines()[-1])
    srv = json.loads(t.sink.wait_out(lambda l: l.startswith("{"),
                                     "sink report", s0))
    target = dst
    ea = g.wait_access(lambda a: a["target"] == target, "edge access", e0)
    ca = t.conc.wait_access(lambda a: a["target"] == target,
                            "concentrator access", c0)
    return cli, srv, ea, ca


def test_controls(tier):
    """Neither cli nor the edge reaches far or resolves NAME; the
    concentrator does both."""
    lab = tier.lab
    for role in ("cli", "gw"):
        r = lab.run(role, ["curl", "-sS", "--max-time", "5",
                           "http://%s:%d/" % (tier.far, HTTP_PORT)])
        assert r.returncode == 7, (role, r.stderr)
        r = lab.run(role, ["getent", "hosts", NAME])
        assert r.returncode == 2, (role, r.stdout)
    r = lab.run("srv", ["getent", "hosts", NAME])
    assert r.returncode == 0 and r.stdout.split()[0].decode() == tier.far
    r = lab.run("far", ["sysctl", "-n", "net.mptcp.enabled"])
    assert r.stdout.strip() == b"0"


@pytest.mark.parametrize("op", ["get", "put"])
def test_bonded_transfer(tier, op):
    """16 MiB each way through both tiers, bonded across links 3 and 4:
    sha256 equal at both ends, the edge's leg to the concentrator is MPTCP
    with an extra subflow (on both of the concentrator's interfaces), the
    server saw plain TCP."""
    lab = tier.lab
    rx3, rx4 = lab.link_bytes("srv", "s3", "rx"), lab.link_bytes("srv", "s4",
                                                                "rx")
    tx3, tx4 = lab.link_bytes("srv", "s3", "tx"), lab.link_bytes("srv", "s4",
                                                                "tx")
    cli, srv, ea, ca = _sink(tier, EDGE_ON, op, BIG)
    assert cli["bytes"] == srv["bytes"] == BIG, (cli, srv)
    assert cli["sha256"] == srv["sha256"], (cli, srv)
    if op == "put":
        assert cli["server"]["sha256"] == cli["sha256"]
    assert srv["protocol"] == 6, srv            # plain TCP at the server
    assert ea["result"] == "ok" and ea["mptcp"] == "yes" and \
        ea["subflows"] == "1", ea
    assert ca["result"] == "ok" and ca["user"] == VIA_USER, ca
    assert ca["client_mptcp"] == "yes" and ca["client_subflows"] == "1", ca
    # The server leg is TCP (plain from the start once the cache knows).
    assert ca["mptcp"] in ("no", "cached-no"), ca
    # Both of the concentrator's links carried a real share.
    moved = [lab.link_bytes("srv", "s3", "rx") - rx3,
             lab.link_bytes("srv", "s4", "rx") - rx4] if op == "put" else \
        [lab.link_bytes("srv", "s3", "tx") - tx3,
         lab.link_bytes("srv", "s4", "tx") - tx4]
    assert min(moved) > BIG // 8, moved


def test_mptcp_off_uses_one_link(tier):
    """upstream.mptcp = off on the edge: one TCP connection, one link. The
    on/off duration ratio is recorded, never asserted on."""
    on, srv_on, _, _ = _sink(tier, EDGE_ON, "get", BIG)
    off, srv_off, ea, ca = _sink(tier, EDGE_OFF, "get", BIG)
    assert off["sha256"] == srv_off["sha256"] and off["bytes"] == BIG
    assert ea["mptcp"] == "no" and ca["client_mptcp"] == "no", (ea, ca)
    lu.results("tier_mptcp_onoff.txt",
             "two tiers, 16 MiB download over 2 x %d Mbit/s (%d ms one "
             "way): mptcp on %.2f s, off %.2f s, off/on %.2f\n" % (
                 RATE, DELAY, on["secs"], off["secs"],
                 off["secs"] / on["secs"]))


def test_failover_first_link_down(tier):
    """The edge's first link to the concentrator goes down mid-transfer;
    MPTCP carries on over the second and the transfer completes intact."""
    lab = tier.lab
    base = lab.link_bytes("srv", "s3", "tx")
    p = lab.spawn("cli", [lu.PY, lu.SINK, "fetch", "--proxy",
                          "%s:%d" % (tier.edge_ip, EDGE_ON), "--user", USER,
                          "--password", PASSWORD, "--dst",
                          "%s:%d" % (tier.far, SINK_PORT), "--get",
                          str(BIG)], "failover-fetch")
    try:
        # Mid-transfer: link 3 has carried a few MiB of this download.
        deadline = time.monotonic() + 120
        while lab.link_bytes("srv", "s3", "tx") - base < 3 * lu.MIB:
            assert time.monotonic() < deadline and p.p.poll() is None, \
                p.tail()
            time.sleep(0.02)
        lab.run("gw", ["ip", "link", "set", "g3", "down"])
        line = p.wait_out(lambda l: l.startswith("{"), "fetch report",
                          timeout=300)
    finally:
        lab.run("gw", ["ip", "link", "set", "g3", "up"])
    rep = json.loads(line)
    srv = json.loads(tier.sink.wait_out(
        lambda l: l.startswith("{") and json.loads(l)["sha256"] ==
        rep["sha256"], "sink report"))
    assert rep["bytes"] == BIG and rep["sha256"] == srv["sha256"], (rep,
                                                                    srv)


def _pcap_syn_payloads(path, port):
    """Payloads of SYNs (without ACK) to port in a pcap of Ethernet frames."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return out
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        tcp = ip[ihl:tot]
        dport = struct.unpack("!H", tcp[2:4])[0]
        flags = tcp[13]
        if dport == port and flags & 0x02 and not flags & 0x10:
            out.append(tcp[(tcp[12] >> 4) * 4:])
    return out


def test_early_reply_request_rides_in_the_syn(tier):
    """With early_reply the client's request goes in the SYN to the
    concentrator (from the second connection on, once the edge's kernel
    holds the TFO cookie). A refused destination after an early reply
    resets the client."""
    lab = tier.lab
    pcap = lab.path("early.pcap")
    cap = lab.spawn("srv", ["tcpdump", "-i", "s3", "-n", "-s", "0", "-U",
                            "--immediate-mode", "-Z", "root", "-w", pcap,
                            "tcp dst port %d" % CONV_PORT], "tcpdump")
    cap.wait_err(lambda l: "listening on" in l, "tcpdump to listen")
    try:
        for i in range(2):
            r = lab.run("cli", ["curl", "-sS", "--max-time", "30",
                                "--socks5-hostname",
                                "%s:%d" % (tier.edge_ip, EDGE_EARLY),
                                "-U", "%s:%s" % (USER, PASSWORD),
                                "http://%s:%d/page.bin?n=%d" % (
                                    NAME, HTTP_PORT, i)])
            assert r.returncode == 0 and r.stdout == tier.page, r.stderr
        want = b"GET /page.bin?n=1 HTTP/1.1"
        lu.wait_for(lambda: any(want in p for p in _pcap_syn_payloads(
            pcap, CONV_PORT)), "the second request in a SYN payload")
    finally:
        cap.stop()
    syns = _pcap_syn_payloads(pcap, CONV_PORT)
    # The Convert message leads the SYN payload, the request follows it.
    rode = [p for p in syns if want in p][0]
    assert rode[:1] == b"\x01" and rode[2:4] == b"\x22\x63", rode[:8]
    assert tier.edges[EDGE_EARLY].lines("early=yes")
    r = lab.run("cli", ["curl", "-sS", "--max-time", "30",
                        "--socks5-hostname",
                        "%s:%d" % (tier.edge_ip, EDGE_EARLY),
                        "-U", "%s:%s" % (USER, PASSWORD),
                        "http://%s:%d/" % (NAME, CLOSED_PORT)])
    assert r.returncode == 56 and b"reset" in r.stderr, (r.returncode,
                                                          r.stderr)


def test_name_only_the_concentrator_resolves(tier):
    """curl --socks5-hostname and the shim in explicit mode with remote
    DNS fetch a page by a name that only the concentrator resolves."""
    lab = tier.lab
    url = "http://%s:%d/page.bin" % (NAME, HTTP_PORT)
    r = lab.run("cli", ["curl", "-sS", "--max-time", "30",
                        "--socks5-hostname", "%s:%d" % (tier.edge_ip,
                                                        EDGE_ON),
                        "-U", "%s:%s" % (USER, PASSWORD), url])
    assert r.returncode == 0 and r.stdout == tier.page, r.stderr
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C",
           "MPGW_MODE": "explicit", "MPGW_TIMEOUT": "20",
           "MPGW_GATEWAY": "%s:%d" % (tier.edge_ip, EDGE_ON),
           "MPGW_METHOD": "userpass", "MPGW_USER": USER,
           "MPGW_PASSWORD": PASSWORD, "MPGW_REMOTE_DNS": "on",
           "MPGW_DNS_TABLE": lab.path("dns-table")}
    if os.environ.get("MPGW_ASAN") == "1":
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0:detect_leaks=0"
    r = lab.run("cli", [lu.MPGW_RUN, "curl", "-sS", "--max-time", "30", url],
                env=env)
    assert r.returncode == 0 and r.stdout == tier.page, r.stderr


def test_wrong_key_every_request_is_02(tier):
    """An edge whose key the concentrator does not know: each request fails
    with 02 (PySocks says "not allowed by ruleset"), and the concentrator
    logs the refusals."""
    lab = tier.lab
    c0 = tier.conc.mark()
    for _ in range(2):
        r = lab.run("cli", [lu.PY, lu.SINK, "fetch", "--proxy",
                            "%s:%d" % (tier.edge_ip, EDGE_BADKEY),
                            "--user", USER, "--password", PASSWORD,
                            "--dst", "%s:%d" % (tier.far, SINK_PORT),
                            "--get", "1"])
        assert r.returncode != 0 and b"0x02" in r.stderr, r.stderr
    # The concentrator logs each refusal when its session ends, which
    # can be after the client saw the 02.
    tier.conc.proc.wait(lambda: len(tier.conc.lines(
        "result=convert-bad-mac", c0)) >= 2, "two refusals logged")
    bad = tier.conc.lines("result=convert-bad-mac", c0)
    assert len(bad) == 2, bad
