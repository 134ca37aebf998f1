"""Name resolution of build/mpgw in the namespace lab (issue 8, defect 5):
names in /etc/hosts never wait behind lookups that hang.

gw's /etc/resolv.conf (/etc/netns/<gw-ns>/resolv.conf, bind-mounted by
`ip netns exec`) names a black hole on gw's loopback: a UDP socket that
reads every query and never answers (tests/lab/netprobe.py blackhole,
which prints each name it is asked). gw's /etc/hosts names echo.lab.test,
an echo server on srv. cli opens several SOCKS5 requests for names under
blackhole.test; once the black hole has been asked at least three of them
(every lookup the old thread pool could run at once), cli asks for
echo.lab.test and must get REP 00 and its bytes echoed.

With the old pool (getaddrinfo on threads, a slow lookup never takes the
last thread) the hanging lookups hold every thread a slow job may use, so
echo.lab.test waits until its session's connect_timeout and gets REP 04.

- dns_per_source: with the cap at 2, a third hanging name from the same
  client is refused at once with REP 04 and result=resolve-limit, while a
  hosts-file name still gets through.

Run as root:  MPGW_BUILD=build /usr/bin/python3 -m pytest \\
    tests/lab/test_dns_lab.py
"""

import json
import os
import signal

import pytest

import labutil as lu

SOCKS_PORT, ECHO_PORT = 1080, 7007
NAME = "echo.lab.test"
HOLE = "127.0.0.53"
PROBE = os.path.join(lu.HERE, "netprobe.py")
# The old pool's slow-lookup threads with workers = 2: 2 * 2 - 1.
POOL_SLOW = 3
HOLD = 6

SKIP = lu.skip_reason(lu.MPGW)
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


@pytest.fixture(scope="module")
def lab(request):
    lab = lu.bring_up(request, "dns")
    # Written before anything starts in gw: `ip netns exec` mounts them.
    # glibc would wait 2 x 30 s per name; c-ares as long (see resolve.c).
    lab.netns_file("gw", "resolv.conf", "nameserver %s\n"
                   "options timeout:30 attempts:2\n" % HOLE)
    lab.netns_file("gw", "hosts", "127.0.0.1 localhost\n%s %s\n" % (
        lab.ip("SRV_IP3"), NAME))
    return lab


@pytest.fixture(scope="module")
def echo(lab):
    p = lab.spawn("srv", [lu.PY, PROBE, "echo", "--host", lab.ip("SRV_IP3"),
                          "--port", str(ECHO_PORT)], "echo")
    assert lu.ready_line(p) == "ready", p.tail()
    return p


@pytest.fixture
def hole(lab):
    p = lab.spawn("gw", [lu.PY, PROBE, "blackhole", "--host", HOLE],
                  "blackhole")
    assert lu.ready_line(p) == "ready", p.tail()
    yield p
    p.stop()


def gateway(lab, name, upstream):
    return lu.Gateway(lab, name, {
        "gateway": {"allow_open_proxy": "yes"},
        "socks5": {"listen": "%s:%d" % (lab.ip("GW_IP1"), SOCKS_PORT),
                   "methods": "none"},
        "upstream": dict({"connect_timeout": "20"}, **upstream)})


def hold_then_ask(lab, hole, n_hold, suffix, seen, *targets):
    """From cli: n_hold requests for names under suffix that hang, then,
    once the black hole was asked `seen` of them, one request for each
    (host, port) in targets, in turn, the held ones still open. Returns
    their JSON results."""
    proxy = "%s:%d" % (lab.ip("GW_IP1"), SOCKS_PORT)
    argv = [lu.PY, PROBE, "socks", "--proxy", proxy, "--hold", str(n_hold),
            "--hold-suffix", suffix]
    for host, port in targets:
        argv += [host, str(port)]
    cli = lab.spawn("cli", argv, "cli-" + suffix)
    try:
        cli.wait_out(lambda l: l == "held", "requests held")
        names = set()

        def asked():
            names.update(l for l in hole.out if l.endswith("." + suffix))
            return len(names) >= seen
        hole.wait(asked, "%d names at the black hole" % seen)
        cli.p.send_signal(signal.SIGUSR1)
        cli.wait(lambda: sum(l.startswith("{") for l in cli.out) >=
                 len(targets), "the answers")
        return [json.loads(l) for l in cli.out if l.startswith("{")]
    finally:
        cli.stop()


def test_hosts_name_not_starved_by_hanging_lookups(lab, echo, hole):
    gw = gateway(lab, "mpgw-dns", {})
    try:
        res, = hold_then_ask(lab, hole, HOLD, "blackhole.test", POOL_SLOW,
                             (NAME, ECHO_PORT))
        assert res["rep"] == 0 and res["echo"] == "ping\n", (
            "%s behind hanging lookups: %s\n%s" % (NAME, res,
                                                   gw.proc.tail()))
    finally:
        gw.proc.stop()


def test_dns_per_source_cap(lab, echo, hole):
    gw = gateway(lab, "mpgw-dnscap", {"dns_per_source": "2"})
    try:
        mark = gw.mark()
        # Two lookups hang (the cap); a third is refused at once, a
        # hosts-file name is never counted.
        over, hosts = hold_then_ask(lab, hole, 2, "capped.test", 2,
                                    ("third.capped.test", 80),
                                    (NAME, ECHO_PORT))
        assert over["rep"] == 4, over
        assert hosts["rep"] == 0 and hosts["echo"] == "ping\n", hosts
        acc = gw.wait_access(lambda a: a.get("target", "").startswith(
            "third.capped.test"), "the refused lookup", mark)
        assert acc["result"] == "resolve-limit", acc
        assert "third.capped.test" not in hole.out, \
            "the refused name was sent to the resolver"
    finally:
        gw.proc.stop()
