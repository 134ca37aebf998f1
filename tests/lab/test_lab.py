"""Lab self-tests: namespaces and routes, the delay emulator, MPTCP subflows.

Run as root:  /usr/bin/python3 -m pytest tests/lab/test_lab.py
The delay tests need $MPGW_BUILD/linkemu (default build/linkemu; `make`).
See tests/lab/README.md for the topology.
"""

import errno
import json
import os
import select
import shutil
import subprocess
import sys
import time

import pytest

from labutil import BUILD, LAB_SH

LINKEMU = os.path.join(BUILD, "linkemu")
PY = sys.executable

MIB = 1 << 20
# The emulator adds its delay on top of a sub-millisecond veth RTT.
RTT_TOLERANCE_MS = 5.0


def _skip_reason():
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, iptables)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' is not installed"
    r = subprocess.run(["ip", "netns", "list"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return "'ip netns' is unavailable: " + r.stderr.strip()
    if not os.path.exists("/proc/sys/net/mptcp/enabled"):
        return "kernel has no MPTCP (/proc/sys/net/mptcp missing)"
    if shutil.which("iptables") is None:
        return "iptables is not installed (needed for NFQUEUE)"
    return None


SKIP_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None,
                                reason=SKIP_REASON or "")

# --- helpers run inside a namespace (python3 -c CODE ARGS...) ---------------

# ICMP echo over a raw socket (the machine has no ping binary).  Prints JSON:
# {"rtts": [ms, ...], "lost": n} or {"errno": e} when sending fails.
PING = r"""
import json, os, select, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
dst, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
rtts, lost = [], 0
for seq in range(count):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"mpgw-lab" * 4
    pkt = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    t0 = time.monotonic()
    try:
        s.sendto(pkt, (dst, 0))
    except OSError as e:
        print(json.dumps({"errno": e.errno}))
        sys.exit(3)
    while True:
        left = t0 + 2.0 - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            lost += 1
            break
        data, addr = s.recvfrom(2048)
        ihl = (data[0] & 0xf) * 4
        typ, _, _, i, q = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if typ == 0 and i == ident and q == seq and addr[0] == dst:
            rtts.append((time.monotonic() - t0) * 1000.0)
            break
    time.sleep(0.02)
print(json.dumps({"rtts": rtts, "lost": lost}))
"""

# TCP connect; prints {"errno": 0} on success, else the errno.
CONNECT = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    e = 0
except OSError as x:
    e = x.errno if x.errno is not None else -1
print(json.dumps({"errno": e}))
"""

# MPTCP sink: accept one connection, read to EOF, report MPTCP_INFO.
MPTCP_SERVER = r"""
import json, socket, sys, time
IPPROTO_MPTCP, SOL_MPTCP, MPTCP_INFO = 262, 284, 1
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(4)
print("ready", flush=True)
c, peer = ls.accept()
n, t0 = 0, time.monotonic()
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    n += len(b)
secs = time.monotonic() - t0
info = c.getsockopt(SOL_MPTCP, MPTCP_INFO, 256)
r = {"bytes": n, "secs": secs, "peer": peer[0],
     "protocol": c.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
     "subflows": info[0]}
c.sendall(json.dumps(r).encode())
c.close()
print(json.dumps(r), flush=True)
"""

MPTCP_CLIENT = r"""
import socket, sys
IPPROTO_MPTCP = 262
dst, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
s.connect((dst, port))
buf = b"\x5a" * (1 << 16)
left = size
while left > 0:
    left -= s.send(buf[:min(left, len(buf))])
s.shutdown(socket.SHUT_WR)
print(s.recv(4096).decode())
"""


class Lab:
    """One lab instance brought up by lab.sh with a unique suffix."""

    counter = 0

    def __init__(self, *args):
        Lab.counter += 1
        self.suffix = "t%d-%d" % (os.getpid(), Lab.counter)
        self.up = False
        r = self.sh("up", *args)
        self.up = True
        self.log = r.stdout
        env = self.sh("env").stdout
        self.env = {}
        for line in env.splitlines():
            k, _, v = line.partition("=")
            self.env[k] = v.strip("'")

    def sh(self, cmd, *args, check=True):
        r = subprocess.run([LAB_SH, cmd, "--suffix", self.suffix, *args],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("lab.sh %s failed (%d):\n%s%s" %
                                 (cmd, r.returncode, r.stdout, r.stderr))
        return r

    def down(self):
        if self.up:
            self.sh("down")
            self.up = False

    def ns(self, role):
        return self.env["LAB_NS_" + role.upper()]

    def ip(self, name):
        return self.env["LAB_" + name]

    def py(self, role, code, *args, timeout=60):
        """Run a python helper in a namespace; returns its JSON output."""
        r = subprocess.run(["ip", "netns", "exec", self.ns(role), PY, "-c",
                            code, *map(str, args)],
                           capture_output=True, text=True, timeout=timeout)
        try:
            return r.returncode, json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError("helper in %s failed (%d): %s%s" %
                                 (role, r.returncode, r.stdout, r.stderr))

    def popen(self, role, code, *args):
        return subprocess.Popen(["ip", "netns", "exec", self.ns(role), PY,
                                 "-c", code, *map(str, args)],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def rx_bytes(self, role, ifname):
        r = subprocess.run(["ip", "-n", self.ns(role), "-j", "-s", "link",
                            "show", "dev", ifname],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout)[0]["stats64"]["rx"]["bytes"]

    def ping(self, role, dst, count=10):
        rc, out = self.py(role, PING, dst, count)
        assert rc == 0, "ping %s from %s: %s" % (dst, role, out)
        assert out["lost"] == 0, "ping %s from %s lost %d of %d" % (
            dst, role, out["lost"], count)
        rtts = sorted(out["rtts"])
        return rtts[len(rtts) // 2], rtts


def _bring_up(request, *args):
    lab = Lab(*args)
    request.addfinalizer(lab.down)
    return lab


def _need_linkemu():
    if not os.access(LINKEMU, os.X_OK):
        pytest.fail("%s is missing: build it with `make` (or set "
                    "MPGW_BUILD)" % LINKEMU)


@pytest.fixture(scope="module")
def plain_lab(request):
    """Rate-limited links (50 Mbit/s each), no delay, no forwarding."""
    return _bring_up(request, "--rate1", "50", "--rate2", "50",
                     "--crate1", "50", "--crate2", "50")


@pytest.fixture(scope="module")
def delay_lab(request):
    """One-way delays: 20 ms on both cli links, 5 and 15 ms gw<->srv."""
    _need_linkemu()
    return _bring_up(request, "--cdelay", "20", "--delay1", "5",
                     "--delay2", "15")


@pytest.fixture(scope="module")
def route_lab(request):
    """Direct-route baseline: gw forwards, cli reaches srv on two paths."""
    return _bring_up(request, "--route", "--rate1", "50", "--rate2", "50",
                     "--crate1", "50", "--crate2", "50")


# --- topology ----------------------------------------------------------------

def test_no_default_route_and_only_lab_addresses(plain_lab):
    for role in ("cli", "gw", "srv"):
        r = subprocess.run(["ip", "-n", plain_lab.ns(role), "-4", "-j",
                            "route", "show", "table", "all"],
                           capture_output=True, text=True, check=True)
        for rt in json.loads(r.stdout):
            dst = rt.get("dst", "")
            assert dst != "default", "%s has a default route" % role
            if rt.get("type", "unicast") == "unicast":
                assert dst.startswith("10.77."), (role, rt)
        r = subprocess.run(["ip", "-n", plain_lab.ns(role), "-4", "-j",
                            "addr", "show"],
                           capture_output=True, text=True, check=True)
        for link in json.loads(r.stdout):
            for a in link.get("addr_info", []):
                assert (a["local"].startswith("10.77.") or
                        a["local"] == "127.0.0.1"), (role, a)


def test_cli_cannot_reach_srv(plain_lab):
    for dst in (plain_lab.ip("SRV_IP3"), plain_lab.ip("SRV_IP4")):
        rc, out = plain_lab.py("cli", PING, dst, 1)
        assert rc == 3 and out["errno"] == errno.ENETUNREACH, out
        rc, out = plain_lab.py("cli", CONNECT, dst, 80)
        assert out["errno"] == errno.ENETUNREACH, out
    # srv has no way back to cli either.
    rc, out = plain_lab.py("srv", CONNECT, plain_lab.ip("CLI_IP1"), 80)
    assert out["errno"] == errno.ENETUNREACH, out
    # Positive control: the same probes work where a route exists.
    plain_lab.ping("gw", plain_lab.ip("SRV_IP3"), 2)
    plain_lab.ping("cli", plain_lab.ip("GW_IP1"), 2)
    rc, out = plain_lab.py("gw", CONNECT, plain_lab.ip("SRV_IP3"), 80)
    assert out["errno"] == errno.ECONNREFUSED, out


def test_route_mode_reaches_srv(route_lab):
    for dst in (route_lab.ip("SRV_IP3"), route_lab.ip("SRV_IP4")):
        median, _ = route_lab.ping("cli", dst, 3)
        assert median < 5.0


# --- the delay emulator --------------------------------------------------------

def test_rtt_without_delay(plain_lab):
    for role, dst in (("cli", "GW_IP1"), ("cli", "GW_IP2"),
                      ("gw", "SRV_IP3"), ("gw", "SRV_IP4")):
        median, rtts = plain_lab.ping(role, plain_lab.ip(dst))
        assert median < 5.0, "%s -> %s: %s" % (role, dst, rtts)


@pytest.mark.parametrize("role,dst,one_way_ms", [
    ("cli", "GW_IP1", 20),
    ("cli", "GW_IP2", 20),
    ("gw", "SRV_IP3", 5),
    ("gw", "SRV_IP4", 15),
])
def test_rtt_with_delay(delay_lab, role, dst, one_way_ms):
    median, rtts = delay_lab.ping(role, delay_lab.ip(dst))
    want = 2 * one_way_ms
    assert want <= median <= want + RTT_TOLERANCE_MS, (
        "%s -> %s: median %.2f ms, want [%d, %d] ms; all %s" % (
            role, dst, median, want, want + RTT_TOLERANCE_MS, rtts))
    # A held packet is never released early.
    assert min(rtts) >= want, rtts


# --- MPTCP over both links ------------------------------------------------------

def _transfer(lab, src, dst_role, dst_ip, links, port, size=8 * MIB):
    before = {l: lab.rx_bytes(*l) for l in links}
    srv = lab.popen(dst_role, MPTCP_SERVER, port)
    try:
        ready, _, _ = select.select([srv.stdout], [], [], 10)
        assert ready and srv.stdout.readline().strip() == "ready", \
            srv.stderr.read() if srv.poll() is not None else "no ready"
        rc, cli_view = lab.py(src, MPTCP_CLIENT, dst_ip, port, size)
        assert rc == 0, cli_view
        out, err = srv.communicate(timeout=30)
        assert srv.returncode == 0, err
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    result = json.loads(out.strip().splitlines()[-1])
    grown = {l: lab.rx_bytes(*l) - before[l] for l in links}
    return result, grown


@pytest.mark.parametrize("src,dst_role,dst,links", [
    ("gw", "srv", "SRV_IP3", [("srv", "s3"), ("srv", "s4")]),
    ("cli", "gw", "GW_IP1", [("gw", "g1"), ("gw", "g2")]),
])
def test_mptcp_uses_both_links(plain_lab, src, dst_role, dst, links):
    size = 8 * MIB
    result, grown = _transfer(plain_lab, src, dst_role, plain_lab.ip(dst),
                              links, 5001)
    assert result["bytes"] == size
    assert result["protocol"] == 262, "accepted socket is not MPTCP"
    assert result["subflows"] >= 1, "no additional subflow: %s" % result
    for link, n in grown.items():
        assert n > MIB, "link %s carried only %d bytes: %s" % (
            link, n, grown)


def test_mptcp_direct_route_uses_both_paths(route_lab):
    links = [("gw", "g1"), ("gw", "g2"), ("srv", "s3"), ("srv", "s4")]
    result, grown = _transfer(route_lab, "cli", "srv",
                              route_lab.ip("SRV_IP3"), links, 5002)
    assert result["bytes"] == 8 * MIB
    assert result["subflows"] >= 1, result
    for link, n in grown.items():
        assert n > MIB, "link %s carried only %d bytes: %s" % (
            link, n, grown)


# --- lab.sh itself ---------------------------------------------------------------

def test_up_down_idempotent():
    _need_linkemu()
    lab = Lab("--cdelay", "1")
    try:
        run_dir = lab.env["LAB_RUN_DIR"]
        lab.sh("up", "--cdelay", "1")       # again: rebuilt, not doubled
        pids = []
        for f in os.listdir(run_dir):
            if f.endswith(".pid"):
                with open(os.path.join(run_dir, f)) as fh:
                    pids.append(int(fh.read()))
        assert len(pids) == 4, pids         # both ends of links 1 and 2
        lab.ping("cli", lab.ip("GW_IP1"), 2)
    finally:
        lab.down()
    lab.sh("down")                          # again: nothing to do
    names = subprocess.run(["ip", "netns", "list"], capture_output=True,
                           text=True, check=True).stdout
    assert lab.suffix not in names
    assert not os.path.exists(run_dir)
    deadline = time.monotonic() + 3
    while any(_is_linkemu(p) for p in pids):
        assert time.monotonic() < deadline, "linkemu still running"
        time.sleep(0.05)


def _is_linkemu(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"linkemu" in f.read()
    except OSError:
        return False
