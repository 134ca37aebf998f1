"""The gateway's own-address protection in the namespace lab (issue 8,
defect 6): addresses the kernel delivers to the gateway's host are closed
to remote clients even when they appear after start-up.

gw runs build/mpgw (SOCKS5, method none, on 10.77.1.2) and an echo server
on 0.0.0.0, so any local address of gw would answer; srv runs another echo
server. After the gateway has started and served a first request:

- `ip addr add 10.77.9.1/32 dev <g1>` in gw: CONNECT 10.77.9.1 gets REP 02;
- `ip route add local 10.77.8.0/24 dev lo` (AnyIP) in gw: CONNECT
  10.77.8.5 gets REP 02;
- control: srv's echo server through the gateway gets REP 00 and its bytes.

The old gateway listed its addresses with getifaddrs() at start and on
SIGHUP only: it connected both, and the echo server answered (REP 00).

Run as root:  MPGW_BUILD=build /usr/bin/python3 -m pytest \\
    tests/lab/test_own_addr_lab.py
"""

import json
import os
import subprocess

import pytest

import labutil as lu

SOCKS_PORT, ECHO_PORT = 1080, 7008
ADDED, ANYIP_NET, ANYIP = "10.77.9.1", "10.77.8.0/24", "10.77.8.5"
PROBE = os.path.join(lu.HERE, "netprobe.py")

SKIP = lu.skip_reason(lu.MPGW)
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


@pytest.fixture(scope="module")
def lab(request):
    return lu.bring_up(request, "own")


@pytest.fixture(scope="module")
def echoes(lab):
    ps = []
    for role, host in (("gw", "0.0.0.0"), ("srv", lab.ip("SRV_IP3"))):
        p = lab.spawn(role, [lu.PY, PROBE, "echo", "--host", host,
                             "--port", str(ECHO_PORT)], "echo-" + role)
        assert lu.ready_line(p) == "ready", p.tail()
        ps.append(p)
    return ps


@pytest.fixture(scope="module")
def gw(lab, echoes):
    return lu.Gateway(lab, "mpgw-own", {
        "gateway": {"allow_open_proxy": "yes"},
        "socks5": {"listen": "%s:%d" % (lab.ip("GW_IP1"), SOCKS_PORT),
                   "methods": "none"}})


def connect(lab, host):
    """CONNECT host:ECHO_PORT from cli through the gateway."""
    r = lab.run("cli", [lu.PY, PROBE, "socks", "--proxy", "%s:%d" % (
        lab.ip("GW_IP1"), SOCKS_PORT), host, str(ECHO_PORT)])
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def ip_gw(lab, *args):
    subprocess.run(["ip", "-n", lab.ns("gw")] + list(args), check=True)


def test_own_addresses_added_after_start(lab, gw):
    # The gateway is up and serving before the addresses appear.
    res = connect(lab, lab.ip("SRV_IP3"))
    assert res["rep"] == 0 and res["echo"] == "ping\n", res
    ip_gw(lab, "addr", "add", ADDED + "/32", "dev", lab.env["LAB_GW_IF1"])
    ip_gw(lab, "route", "add", "local", ANYIP_NET, "dev", "lo")
    for host, what in ((ADDED, "an address added after start"),
                       (ANYIP, "an AnyIP local route")):
        res = connect(lab, host)
        assert res["rep"] == 2, "%s (%s): %s\n%s" % (host, what, res,
                                                     gw.proc.tail())
    res = connect(lab, lab.ip("SRV_IP3"))
    assert res["rep"] == 0 and res["echo"] == "ping\n", res
