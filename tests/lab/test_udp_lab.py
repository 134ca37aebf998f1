"""UDP ASSOCIATE through two tiers in the namespace lab (DESIGN.md
section 6, README "UDP ASSOCIATE"):

    cli --link 1 (UDP)--> gw (edge) ==links 3+4, one MPTCP connection
        carrying the framed datagrams==> srv (concentrator) --link 5 (UDP)-->
        far (UDP echo)

The client (udp_client.py, RFC 1928 written out) associates with the edge;
the edge carries the association as one Convert connection with the UDP
TLV to the concentrator, which sends the datagrams from its own UDP socket
to the echo server in far. Links are veths with the usual 1500-byte MTU,
so an 8000-byte datagram is fragmented by IP on links 1 and 5. UDP over
the concentrator gains failover across the edge's links, not
aggregation: when link 3 goes down mid-flow, MPTCP carries the frames
over link 4 and most datagrams keep coming back after a short gap (the
gap is reported, not asserted on).

Run as root:  MPGW_BUILD=build /usr/bin/python3 -m pytest \
    tests/lab/test_udp_lab.py
"""

import json
import os
import subprocess

import pytest

import labutil as lu

USER, PASSWORD = "dora", "Udp-lab-77"
VIA_USER = "edge"
CONV_PORT, EDGE_PORT, ECHO_PORT = 5124, 1080, 7007
RATE = 10               # Mbit/s on each edge<->concentrator link
DELAY = 5               # ms one way on each of them
NAME = "echo.far.test"  # only the concentrator's namespace resolves it
UDP_CLIENT = os.path.join(lu.HERE, "udp_client.py")

SKIP = lu.skip_reason(lu.MPGW, tools=("mkpasswd",))
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(1 << 16)
    s.sendto(d, a)
"""


class Tier:
    pass


@pytest.fixture(scope="module")
def tier(request):
    t = Tier()
    lab = t.lab = lu.bring_up(request, "udp", "--far", "--rate1", str(RATE),
                              "--rate2", str(RATE), "--delay1", str(DELAY),
                              "--delay2", str(DELAY))
    t.far = lab.ip("FAR_IP5")
    t.conc_ip = lab.ip("SRV_IP3")
    t.edge_ip = lab.ip("GW_IP1")
    t.echo = lab.spawn("far", [lu.PY, "-c", UDP_ECHO, t.far, str(ECHO_PORT)],
                       "udpecho")
    assert lu.ready_line(t.echo) == "ready", t.echo.tail()
    lab.netns_file("srv", "hosts", "127.0.0.1 localhost\n%s %s\n"
                   % (t.far, NAME))
    keys, _ = lu.key_file(lab, VIA_USER)
    t.conc = lu.Gateway(lab, "concentrator", {
        "socks5": {"listen": "127.0.0.1:1080"},
        "auth": {"fail_limit": "0"},
        "convert": {"listen": "%s:%d" % (t.conc_ip, CONV_PORT),
                    "keys": keys}}, role="srv")
    users = lu.users_file(lab, USER, PASSWORD)
    t.edge = lu.Gateway(lab, "edge", {
        "socks5": {"listen": "%s:%d" % (t.edge_ip, EDGE_PORT),
                   "methods": "userpass"},
        "auth": {"users": users, "allow_cleartext_password": "yes"},
        "upstream": {"via": "convert://%s:%d" % (t.conc_ip, CONV_PORT),
                     "via_user": VIA_USER, "via_keys": keys}})
    return t


def _client(t, mode, dst, *args, timeout=120):
    argv = [lu.PY, UDP_CLIENT, "--proxy", "%s:%d" % (t.edge_ip, EDGE_PORT),
            "--user", USER, "--password", PASSWORD, "--dst", dst, mode] + \
        [str(a) for a in args]
    r = t.lab.run("cli", argv, timeout=timeout)
    assert r.returncode == 0, "client failed (%d): %s %s" % (
        r.returncode, r.stdout.decode(), r.stderr.decode())
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_controls(tier):
    """cli reaches neither far nor the concentrator's Convert port: every
    echo below went through the edge."""
    r = tier.lab.run("cli", ["ip", "route", "get", tier.far])
    assert r.returncode != 0, r.stdout
    r = tier.lab.run("gw", ["ip", "route", "get", tier.far])
    assert r.returncode != 0, r.stdout


@pytest.mark.parametrize("size", [100, 1200, 8000])
def test_echo_across_the_tiers(tier, size):
    """Datagrams through edge and concentrator to far and back, none lost
    (windows of 50); 8000 bytes is fragmented by IP on links 1 and 5. Both
    tiers log the association; the edge's leg is MPTCP."""
    e0, c0 = tier.edge.mark(), tier.conc.mark()
    rep = _client(tier, "echo", "%s:%d" % (tier.far, ECHO_PORT),
                  "--count", 200, "--size", size)
    assert rep["echoed"] == 200 and rep["bad"] == 0, rep
    assert rep["relay"] == "%s:%d" % (tier.edge_ip, int(
        rep["relay"].rsplit(":", 1)[1])), rep
    ea = tier.edge.wait_access(lambda a: a.get("command") == "udp",
                               "edge access", e0)
    ca = tier.conc.wait_access(lambda a: a.get("command") == "udp",
                               "concentrator access", c0)
    assert ea["result"] == "ok" and ea["dgrams_up"] == "200", ea
    assert ea["dgrams_down"] == "200" and ea["mptcp"] == "yes", ea
    assert ca["user"] == VIA_USER and ca["method"] == "convert", ca
    assert ca["dgrams_up"] == "200" and ca["dgrams_down"] == "200", ca
    assert ca["client_mptcp"] == "yes" and ca["dests"] == "1", ca


def test_name_only_the_concentrator_resolves(tier):
    rep = _client(tier, "echo", "%s:%d" % (NAME, ECHO_PORT), "--count", 20)
    assert rep["echoed"] == 20, rep


def test_first_link_down_while_datagrams_flow(tier):
    """1500 datagrams, one every 10 ms; once 300 are back, the edge's link
    3 (the via connection's first subflow) goes down. The frames go on
    over link 4: of the datagrams sent after the link went down at least
    80 % come back, and of the last 200 too. The gap (longest time
    without an echo) is reported."""
    lab = tier.lab
    p = lab.spawn("cli", [lu.PY, UDP_CLIENT, "--proxy",
                          "%s:%d" % (tier.edge_ip, EDGE_PORT), "--user",
                          USER, "--password", PASSWORD, "--dst",
                          "%s:%d" % (tier.far, ECHO_PORT), "flow",
                          "--count", "1500", "--size", "200", "--interval",
                          "0.01", "--progress", "300", "--drain", "10"],
                  "udp-flow")
    try:
        p.wait_out(lambda l: l.startswith("progress"), "300 echoes")
        # The via connection's second subflow, over link 4, is what the
        # frames fail over to: it must be up before link 3 goes down.
        lu.wait_for(lambda: ":%d" % CONV_PORT in lab.run("gw", [
            "ss", "-tnH", "state", "established", "src",
            lab.ip("GW_IP4")]).stdout.decode(),
            "the edge's subflow over link 4")
        legs = lab.run("gw", ["ss", "-tniH", "state", "established"]
                       ).stdout.decode()
        t_down = float(lab.run("gw", [lu.PY, "-c", "import time, "
                                      "subprocess; t = time.monotonic(); "
                                      "subprocess.run(['ip', 'link', 'set', "
                                      "'g3', 'down'], check=True); "
                                      "print(t)"]).stdout)
        line = p.wait_out(lambda l: l.startswith("{"), "flow report",
                          timeout=120)
    finally:
        lab.run("gw", ["ip", "link", "set", "g3", "up"])
    rep = json.loads(line)
    send, recv = rep["send"], {int(k): v for k, v in rep["recv"].items()}
    after = [i for i, t in enumerate(send) if t > t_down]
    back = [i for i in after if i in recv]
    last = list(range(len(send) - 200, len(send)))
    back_last = [i for i in last if i in recv]
    times = sorted(recv.values())
    gaps = [b - a for a, b in zip(times, times[1:]) if b > t_down - 1]
    gap = max(gaps) if gaps else float("nan")
    lu.results("udp_failover.txt",
             "UDP through edge+concentrator, link 3 down after %d echoes: "
             "%d of %d sent after it echoed (%.1f %%), last 200: %d, "
             "longest gap between echoes %.3f s, all: %d/%d\n" % (
                 len([t for t in times if t <= t_down]), len(back),
                 len(after), 100.0 * len(back) / max(1, len(after)),
                 len(back_last), gap, rep["echoed"], rep["sent"]))
    why = "\n--- gw's TCP legs at link down:\n%s\n--- edge:\n%s\n" \
        "--- concentrator:\n%s\n--- gw nstat:\n%s" % (
            legs, tier.edge.proc.tail(8), tier.conc.proc.tail(8),
            lab.run("gw", ["nstat", "-az", "MPTcpExt*Fallback*",
                           "MPTcpExtMPJoin*"]).stdout.decode())
    assert len(after) > 500, (len(after), t_down)
    assert len(back) >= 0.8 * len(after), (len(back), len(after), why)
    assert len(back_last) >= 160, (len(back_last), why)


def test_udp_tlv_needs_auth_at_the_concentrator(tier):
    """The concentrator's Convert listener requires Auth for UDP as for
    TCP: an edge with an unknown key gets 02 for its association."""
    lab = tier.lab
    other = lab.path("other-keys")
    subprocess.run([lu.MPGW, "key", "new", VIA_USER, other], check=True,
                   capture_output=True)
    users = lu.users_file(lab, USER, PASSWORD)
    bad = lu.Gateway(lab, "edge-badkey", {
        "socks5": {"listen": "%s:%d" % (tier.edge_ip, EDGE_PORT + 1),
                   "methods": "userpass"},
        "auth": {"users": users, "allow_cleartext_password": "yes"},
        "upstream": {"via": "convert://%s:%d" % (tier.conc_ip, CONV_PORT),
                     "via_user": VIA_USER, "via_keys": other}})
    argv = [lu.PY, UDP_CLIENT, "--proxy", "%s:%d" % (tier.edge_ip,
                                                     EDGE_PORT + 1),
            "--user", USER, "--password", PASSWORD, "--dst",
            "%s:%d" % (tier.far, ECHO_PORT), "echo", "--count", "1"]
    r = lab.run("cli", argv)
    assert r.returncode != 0 and b"REP 0x02" in r.stderr, r.stderr
    bad.proc.stop()
