"""The gateway in the namespace lab: SOCKS5 clients in cli, build/mpgw in
gw, an MPTCP sink/source in srv (tests/lab/mptcp_sink.py). cli cannot
reach srv except through the gateway.

- Smoke: a download and an upload through the gateway, checked by sha256
  on both ends, with upstream.mptcp = on (the server's accepted socket is
  MPTCP and has an extra subflow over link 4) and off (plain TCP, and the
  access log says mptcp=no).
- Bonding: tbf on both gw<->srv links, a 16 MiB download with mptcp on and
  off; both must be intact, the MPTCP one must have used both links. The
  two durations and their ratio are printed and written to
  $MPGW_BUILD/lab-results/mptcp_bonding.txt (never asserted on).
- The access log's subflows= for downloads the server saw with an extra
  subflow.
- Metrics: after a download over both gw<->srv links, the metrics
  endpoint's mpgw_upstream_path_bytes_total shows bytes on each of the
  gateway's two local addresses, summing to the transfer.

Run as root:  MPGW_BUILD=build /usr/bin/python3 -m pytest \
    tests/lab/test_gateway_lab.py
"""

import json
import os
import re
import time

import pytest

import labutil as lu

USER, PASSWORD = "carol", "Lab-pass-42"
SRV_PORT = 5001
GW_PORT_ON, GW_PORT_OFF, GW_PORT_METRICS = 1080, 1081, 1082
METRICS_PORT = 9464
RATE = 10           # Mbit/s on each gw<->srv link
BIG = 16 * lu.MIB
SMALL = 2 * lu.MIB

SKIP = lu.skip_reason(lu.MPGW, tools=("mkpasswd",))
if SKIP is None:
    try:
        import socks  # noqa: F401  (PySocks, used by the cli helper)
    except ImportError:
        SKIP = "PySocks is not installed (python3-socks)"
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


@pytest.fixture(scope="module")
def lab(request):
    return lu.bring_up(request, "gwl", "--rate1", str(RATE), "--rate2",
                       str(RATE))


@pytest.fixture(scope="module")
def server(lab):
    p = lab.spawn("srv", [lu.PY, lu.SINK, "serve", "--port",
                          str(SRV_PORT)], "mptcp-sink")
    assert lu.ready_line(p) == "ready", p.tail()
    return p


@pytest.fixture(scope="module")
def gateways(lab, server):
    users = lu.users_file(lab, USER, PASSWORD)
    gws = {}
    for mode, port in (("on", GW_PORT_ON), ("off", GW_PORT_OFF)):
        gws[mode] = lu.Gateway(lab, "mpgw-mptcp-" + mode, {
            "socks5": {"listen": "%s:%d" % (lab.ip("GW_IP1"), port),
                       "methods": "userpass"},
            "auth": {"users": users, "allow_cleartext_password": "yes"},
            "upstream": {"mptcp": mode}})
        gws[mode].port = port
    return gws


def _fetch(lab, server, gw, op, size):
    """One transfer from cli through gw; returns (client report, server
    report, access line)."""
    start_srv, start_gw = len(server.out), gw.mark()
    r = lab.run("cli", [lu.PY, lu.SINK, "fetch", "--proxy",
                        "%s:%d" % (lab.ip("GW_IP1"), gw.port),
                        "--user", USER, "--password", PASSWORD,
                        "--dst", "%s:%d" % (lab.ip("SRV_IP3"), SRV_PORT),
                        "--" + op, str(size)], timeout=180)
    assert r.returncode == 0, "client failed (%d): %s %s" % (
        r.returncode, r.stdout.decode(), r.stderr.decode())
    cli = json.loads(r.stdout.decode().strip().splitlines()[-1])
    srv = json.loads(server.wait_out(lambda l: l.startswith("{"),
                                     "server report", start_srv))
    assert "error" not in srv, srv
    acc = gw.wait_access(lambda a: a.get("target") == "%s:%d" % (
        lab.ip("SRV_IP3"), SRV_PORT), "transfer", start_gw)
    return cli, srv, acc


def _check(mode, op, size, cli, srv, acc):
    assert cli["bytes"] == size and srv["bytes"] == size, (cli, srv)
    assert cli["sha256"] == srv["sha256"], (cli, srv)
    assert acc["result"] == "ok" and acc["user"] == USER, acc
    up, down = int(acc["up"]), int(acc["down"])
    if op == "get":
        assert down == size, acc
    else:
        assert up >= size, acc
    if mode == "on":
        assert srv["protocol"] == 262, "accepted socket is not MPTCP: %s" \
            % srv
        assert srv["subflows"] is not None and srv["subflows"] >= 1, \
            "server saw no extra subflow: %s" % srv
        assert srv["flags"] & 1 == 0, "MPTCP fell back: %s" % srv
        assert acc["mptcp"] == "yes", acc
    else:
        assert srv["protocol"] == 6, "upstream.mptcp=off but the server " \
            "got an MPTCP connection: %s" % srv
        assert srv["subflows"] is None, srv
        assert acc["mptcp"] == "no" and acc["subflows"] == "0", acc


@pytest.mark.parametrize("mode", ["on", "off"])
@pytest.mark.parametrize("op", ["get", "put"])
def test_smoke_transfer(lab, server, gateways, mode, op):
    cli, srv, acc = _fetch(lab, server, gateways[mode], op, SMALL)
    if op == "put":
        assert cli["server"]["sha256"] == cli["sha256"], cli
    _check(mode, op, SMALL, cli, srv, acc)


def test_access_log_subflows(lab, server, gateways):
    """The access log's subflows= ("extra MPTCP subflows at close", README)
    for connections the server saw with an extra subflow. A download ends
    with the server's close; by the time the gateway closes its session
    the kernel may already have closed the extra subflow."""
    seen = []
    for _ in range(6):
        cli, srv, acc = _fetch(lab, server, gateways["on"], "get", lu.MIB)
        _check("on", "get", lu.MIB, cli, srv, acc)
        seen.append((srv["subflows"], acc["subflows"]))
    assert all(int(a) >= 1 for _, a in seen), \
        "server saw extra subflows, access log says subflows=: %s" % seen


def test_cli_cannot_bypass_gateway(lab, server):
    """Positive control for the above: no path from cli to srv."""
    code = ("import socket,sys\ns=socket.socket()\ns.settimeout(5)\n"
            "try:\n s.connect(('%s',%d))\nexcept OSError as e:\n"
            " print(e.errno)\n sys.exit(0)\nsys.exit(3)"
            % (lab.ip("SRV_IP3"), SRV_PORT))
    r = lab.run("cli", [lu.PY, "-c", code])
    assert r.returncode == 0 and r.stdout.strip() == b"101", r  # ENETUNREACH


def test_bonding_16mib(lab, server, gateways, capsys):
    res = {}
    for mode in ("on", "off"):
        before = {ifc: lab.link_bytes("srv", ifc) for ifc in ("s3", "s4")}
        cli, srv, acc = _fetch(lab, server, gateways[mode], "get", BIG)
        grown = {ifc: lab.link_bytes("srv", ifc) - before[ifc]
                 for ifc in ("s3", "s4")}
        _check(mode, "get", BIG, cli, srv, acc)
        if mode == "on":
            for ifc, n in grown.items():
                assert n > lu.MIB, "MPTCP left link %s idle: %s" % (ifc,
                                                                    grown)
        else:
            assert grown["s4"] < lu.MIB, "plain TCP used link 4: %s" % grown
        res[mode] = {"secs": cli["secs"], "srv_link_tx": grown,
                     "subflows": srv["subflows"],
                     "access_subflows": acc.get("subflows")}
    ratio = res["off"]["secs"] / res["on"]["secs"]
    text = ("mptcp bonding, 16 MiB download through mpgw, tbf %d+%d Mbit/s "
            "on the gw<->srv links:\n"
            "  upstream.mptcp=on : %.2f s (srv tx s3=%d s4=%d, extra "
            "subflows %s, access log subflows=%s)\n"
            "  upstream.mptcp=off: %.2f s (srv tx s3=%d s4=%d)\n"
            "  ratio off/on: %.2f\n" % (
                RATE, RATE, res["on"]["secs"],
                res["on"]["srv_link_tx"]["s3"],
                res["on"]["srv_link_tx"]["s4"], res["on"]["subflows"],
                res["on"]["access_subflows"], res["off"]["secs"],
                res["off"]["srv_link_tx"]["s3"],
                res["off"]["srv_link_tx"]["s4"], ratio))
    os.makedirs(lu.RESULTS, exist_ok=True)
    with open(os.path.join(lu.RESULTS, "mptcp_bonding.txt"), "w") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + text)
    with open(os.path.join(lu.RESULTS, "mptcp_bonding.json"), "w") as f:
        json.dump(dict(res, ratio=ratio, rate_mbit=RATE, bytes=BIG), f)
    # Visible in the pytest output with or without -s.
    with capsys.disabled():
        print("\n" + text, end="")


# --- metrics: bytes per path -------------------------------------------------

@pytest.fixture(scope="module")
def metrics_gw(lab, server, gateways):
    # The users file the gateways fixture wrote.
    gw = lu.Gateway(lab, "mpgw-metrics", {
        "socks5": {"listen": "%s:%d" % (lab.ip("GW_IP1"), GW_PORT_METRICS),
                   "methods": "userpass"},
        "auth": {"users": lab.path("users"),
                 "allow_cleartext_password": "yes"},
        "metrics": {"listen": "127.0.0.1:%d" % METRICS_PORT}})
    gw.port = GW_PORT_METRICS
    return gw


def _paths(scrape):
    """{(local, direction): bytes} of mpgw_upstream_path_bytes_total."""
    return {(dict(k[1])["local"], dict(k[1])["direction"]): v
            for k, v in scrape.items()
            if k[0] == "mpgw_upstream_path_bytes_total"}


def test_metrics_path_bytes(lab, server, metrics_gw):
    """A 4 MiB download over the two tbf-limited gw<->srv links: the
    per-path counters grow on both of the gateway's addresses (g3, the
    initial subflow; g4, the subflow endpoint's join) and nowhere else,
    and add up to what the session relayed.

    The tolerance, and why: the counters are the subflows' own TCP
    counts (tcpi_bytes_received; tcpi_bytes_sent less retransmissions),
    which count a TCP retransmission once, so TCP loss on a link adds
    nothing. What a subflow counts beyond the data is its peer's FIN
    (one byte in tcpi_bytes_received): at most one per subflow, and the
    lab allows 3 (limits subflows 2). What MPTCP sends twice is counted
    on each subflow that carried it: the server reports its MPTCP-level
    retransmissions (mptcpi_bytes_retrans, after the gateway's EOF), so
    received over the paths is the download plus at most that plus 3.
    The gateway sent only the request line; a reinjection could put it
    on each subflow once, so sent is the request, at most 3 times over.
    Nothing may be missing: the gateway samples at the relay's first EOF,
    the server's DATA_FIN, when every byte is in and the subflows are
    still up."""
    release = tuple(int(x) for x in
                    re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
    if release < (6, 5):
        pytest.skip("MPTCP_FULL_INFO needs Linux 6.5 (this is %s)"
                    % os.uname().release)
    size = 4 * lu.MIB
    nsub = 3
    before = lu.scrape(lab, METRICS_PORT)
    cli, srv, acc = _fetch(lab, server, metrics_gw, "get", size)
    _check("on", "get", size, cli, srv, acc)
    after = lu.scrape(lab, METRICS_PORT)
    pb, pa = _paths(before), _paths(after)
    delta = {k: v - pb.get(k, 0) for k, v in pa.items()}
    g3, g4 = lab.ip("GW_IP3"), lab.ip("GW_IP4")
    assert {k[0] for k, v in delta.items() if v > 0} == {g3, g4}, \
        "bytes by local address: %s" % delta
    for local in (g3, g4):
        assert delta[(local, "received")] >= 64 * 1024, \
            "link of %s barely used: %s" % (local, delta)
    up, down = int(acc["up"]), int(acc["down"])
    received = sum(v for k, v in delta.items() if k[1] == "received")
    sent = sum(v for k, v in delta.items() if k[1] == "sent")
    retrans = srv.get("retrans") or 0
    assert down <= received <= down + retrans + nsub, \
        (down, received, retrans, delta)
    assert up <= sent <= nsub * up, (up, sent, delta)
    assert sent + received >= up + down
    yes = ("mpgw_upstream_connections_total", frozenset({("mptcp", "yes")}))
    assert after[yes] - before.get(yes, 0) == 1, after
