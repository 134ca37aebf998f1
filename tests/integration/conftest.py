"""Fixtures for the mpgw integration tests.

Everything runs on loopback. Servers are separate /usr/bin/python3 processes
(tests/integration/servers.py) so their I/O never competes with the test's
own threads. The gateway is the real binary from $MPGW_BUILD (default
build/); under `make asan` (MPGW_ASAN=1) every gateway's stderr is checked
for sanitizer reports at teardown.
"""

import json
import os
import signal
import subprocess

import pytest

import danteutil
import gwutil
from gwutil import HERE, PYTHON, START_TIMEOUT, USERS, wait_until



class ServerProc:
    def __init__(self, proc, info):
        self.proc = proc
        self.host = info["host"]
        self.port = info["port"]
        self.mptcp = info["mptcp"]

    @property
    def url_host(self):
        return "[%s]" % self.host if ":" in self.host else self.host

    def url(self, path, host=None):
        return "http://%s:%d%s" % (host or self.url_host, self.port, path)


def _start_server(kind, host, tmpdir):
    ready = os.path.join(str(tmpdir), "%s-%s.json" % (kind, host.replace(":", "_")))
    log = open(os.path.join(str(tmpdir), "%s.log" % kind), "wb")
    proc = subprocess.Popen([PYTHON, os.path.join(HERE, "servers.py"), kind,
                             "--host", host, "--ready", ready],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            preexec_fn=gwutil.die_with_parent)
    log.close()
    try:
        wait_until(lambda: os.path.exists(ready), START_TIMEOUT,
                   "%s server on %s to be ready" % (kind, host), proc=proc)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    with open(ready) as f:
        return ServerProc(proc, json.load(f))


def _stop_server(srv):
    alive = srv.proc.poll() is None
    if alive:
        srv.proc.send_signal(signal.SIGINT)
        try:
            srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()
    assert alive, "test server died during the session (status %s)" % \
        srv.proc.returncode


@pytest.fixture(scope="session")
def origin(tmp_path_factory):
    """HTTP origin on 127.0.0.1: /hello, /bytes/N, /peer, /upload."""
    srv = _start_server("origin", "127.0.0.1", tmp_path_factory.mktemp("origin"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def echo(tmp_path_factory):
    """Half-close echo on 127.0.0.1: data until EOF -> data + sha256 hex."""
    srv = _start_server("echo", "127.0.0.1", tmp_path_factory.mktemp("echo"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def echo6(tmp_path_factory):
    """The echo server on [::1]."""
    if not gwutil.ipv6_loopback_usable():
        pytest.skip("::1 is not configured on lo (no IPv6 loopback here)")
    srv = _start_server("echo", "::1", tmp_path_factory.mktemp("echo6"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def udpecho(tmp_path_factory):
    """UDP echo on 127.0.0.1: every datagram back to its sender."""
    srv = _start_server("udpecho", "127.0.0.1",
                        tmp_path_factory.mktemp("udpecho"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def udpecho_b(tmp_path_factory):
    """A second UDP echo on 127.0.0.1 (another port)."""
    srv = _start_server("udpecho", "127.0.0.1",
                        tmp_path_factory.mktemp("udpecho_b"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def udpecho6(tmp_path_factory):
    """The UDP echo on [::1]."""
    if not gwutil.ipv6_loopback_usable():
        pytest.skip("::1 is not configured on lo (no IPv6 loopback here)")
    srv = _start_server("udpecho", "::1", tmp_path_factory.mktemp("udpecho6"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def origin6(tmp_path_factory):
    """The HTTP origin on [::1]."""
    if not gwutil.ipv6_loopback_usable():
        pytest.skip("::1 is not configured on lo (no IPv6 loopback here)")
    srv = _start_server("origin", "::1", tmp_path_factory.mktemp("origin6"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def users_file(tmp_path_factory):
    """A users file of name:crypt-hash lines made by mkpasswd (whois)."""
    gwutil.need_tool("mkpasswd")
    path = tmp_path_factory.mktemp("auth") / "users"
    lines = ["# test users, made by mkpasswd"]
    for name, (pw, method) in USERS.items():
        r = subprocess.run(["mkpasswd", "-m", method, "-s"], input=pw.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           check=True, timeout=60)
        h = r.stdout.decode().strip()
        assert h.startswith("$"), "mkpasswd gave %r" % h
        lines.append("%s:%s" % (name, h))
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)       # mpgw refuses secret files others can read
    return str(path)


@pytest.fixture
def gateway(tmp_path):
    """Factory: gateway({"socks5": {"methods": "userpass"}}, nlisten=1)
    starts build/mpgw with the test defaults overridden section by section
    (a None value removes a key) and returns a gwutil.Gateway once every
    listen port accepts. At teardown each gateway gets SIGTERM and must exit
    0 with no sanitizer report in its stderr."""
    started = []

    def start(overrides=None, nlisten=1, **sections):
        merged = {}
        for src in (overrides or {}), sections:
            for sec, kv in src.items():
                merged.setdefault(sec, {}).update(kv)
        gw = gwutil.start_gateway(str(tmp_path), merged, nlisten=nlisten)
        started.append(gw)
        return gw

    yield start
    problems = []
    for gw in started:
        problems += gw.stop()
    if problems:
        pytest.fail("gateway teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def gw(gateway):
    """A gateway with the default test config (methods = none)."""
    return gateway()


@pytest.fixture
def gw_auth(gateway, users_file):
    """A gateway requiring username/password (loopback, so cleartext ok)."""
    return gateway(socks5={"methods": "userpass"}, auth={"users": users_file})


DANTE_SKIP = danteutil.skip_reason()


class Proxy:
    def __init__(self, kind, port, gw=None):
        self.kind = kind
        self.port = port
        self.gw = gw


@pytest.fixture(params=["mpgw", "dante"])
def proxy(request, gateway, tmp_path):
    """Factory: proxy(sections, dante_rules) starts mpgw (sections merged
    over the test config) or danted (dante_rules put before its catch-all
    pass rule), as the parameter says."""
    kind = request.param
    started = []

    def start(sections=None, dante_rules=""):
        if kind == "mpgw":
            gw = gateway(sections or {})
            return Proxy(kind, gw.port, gw)
        if DANTE_SKIP is not None:
            pytest.skip(DANTE_SKIP)
        d = danteutil.Dante(str(tmp_path), dante_rules)
        started.append(d)
        return Proxy(kind, d.port)

    start.kind = kind
    yield start
    for d in started:
        d.stop()
