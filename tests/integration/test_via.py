"""The two-tier `via` connector on loopback (DESIGN.md section 5): an edge
mpgw whose every upstream connection is one Convert connection to a
concentrator mpgw. Real clients (curl, PySocks) against both real
daemons; the multipath side (MPTCP across two links, SYN data, failover)
is in tests/lab/test_tier_lab.py."""

import os
import re
import socket
import subprocess

import pytest
import socks

import gwutil
import socksraw as sr
from gwutil import curl, sha256
from servers import payload


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A Convert keys file with a key for "edge" (mpgw key new)."""
    d = tmp_path_factory.mktemp("via")
    path = str(d / "keys")
    r = subprocess.run([gwutil.MPGW_BIN, "key", "new", "edge", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       check=True)
    assert len(r.stdout.strip()) == 44
    other = str(d / "other-keys")
    subprocess.run([gwutil.MPGW_BIN, "key", "new", "edge", other],
                   stdout=subprocess.PIPE, check=True)
    return path, other


def _pair(gateway, keys, edge=None, conc=None, edge_keys=None):
    """A concentrator (Convert listener) and an edge pointing at it."""
    return gwutil.tiers(gateway, keys[0], edge, conc, edge_keys)


def _access(gw, regex):
    return gw.wait_stderr(r" access id=\d+ .*" + regex)


@pytest.mark.parametrize("early", ["no", "yes"])
def test_curl_through_the_edge(gateway, keys, origin, early):
    e, c = _pair(gateway, keys, edge={"socks5": {"early_reply": early}})
    n = 3000017
    r = curl("--socks5-hostname", "127.0.0.1:%d" % e.port,
             origin.url("/bytes/%d" % n, host="localhost"))
    assert r.returncode == 0, r.stderr
    assert sha256(r.stdout) == sha256(payload(n))
    # The concentrator resolved the name and saw the edge's via_user.
    _access(c, r"user=edge method=convert target=localhost:%d result=ok "
            % origin.port)
    _access(e, r"target=localhost:%d result=ok .*early=%s " % (origin.port,
                                                                early))


def test_pysocks_ip_target_and_upload(gateway, keys, echo):
    e, _ = _pair(gateway, keys)
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", e.port)
    s.settimeout(sr.IO_TIMEOUT)
    data = os.urandom(1 << 20)
    with s:
        s.connect(("127.0.0.1", echo.port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = sr.recv_until_eof(s)
    assert got == data + sha256(data).encode()


@pytest.mark.parametrize("early", ["no", "yes"])
def test_refused_target(gateway, keys, early):
    """Error 96 from the concentrator is SOCKS5 05; after an early reply
    there is no second reply to give, so the client is reset."""
    e, c = _pair(gateway, keys, edge={"socks5": {"early_reply": early}})
    port = gwutil.free_port()
    s = sr.open_conn(e.port)
    with s:
        s.sendall(sr.greeting() + sr.request("127.0.0.1", port))
        assert sr.read_method(s) == sr.M_NONE
        if early == "no":
            assert sr.read_reply(s).rep == sr.REP_REFUSED
        else:
            r = sr.read_reply(s)
            assert r.rep == sr.REP_OK and r.port == 0, r
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                while s.recv(4096):
                    pass
    _access(c, r"target=127\.0\.0\.1:%d result=refused " % port)


def test_unresolvable_name_is_04(gateway, keys):
    e, _ = _pair(gateway, keys)
    s = sr.open_conn(e.port)
    with s:
        s.sendall(sr.greeting() + sr.request("no-such-name.invalid", 80))
        assert sr.read_method(s) == sr.M_NONE
        assert sr.read_reply(s).rep == sr.REP_HOST_UNREACH


def test_wrong_key_is_02(gateway, keys, origin):
    """The edge signs with a key the concentrator does not have: every
    request fails with 02 and the concentrator logs the refusal."""
    e, c = _pair(gateway, keys, edge_keys=keys[1],
                 conc={"auth": {"fail_limit": "0"}})
    for _ in range(2):
        s = sr.open_conn(e.port)
        with s:
            s.sendall(sr.greeting() + sr.request("127.0.0.1", origin.port))
            assert sr.read_method(s) == sr.M_NONE
            assert sr.read_reply(s).rep == sr.REP_NOT_ALLOWED
    _access(c, r"user=edge method=convert .*result=convert-bad-mac ")
    _access(e, r"result=via-refused ")


def test_concentrator_rules_see_via_user(gateway, keys, origin):
    """A rule on the concentrator for user "edge" applies to what the edge
    forwards; the edge's own rules apply before anything is sent."""
    e, c = _pair(gateway, keys,
                 conc={"rule.no-edge": {"action": "deny", "user": "edge",
                                        "port": str(origin.port)}},
                 edge={"rule.no-9": {"action": "deny", "port": "9"}})
    s = sr.open_conn(e.port)
    with s:
        s.sendall(sr.greeting() + sr.request("127.0.0.1", origin.port))
        assert sr.read_method(s) == sr.M_NONE
        assert sr.read_reply(s).rep == sr.REP_NOT_ALLOWED
    _access(c, r"user=edge .*result=denied ")
    before = c.stderr_text().count(" access id=")
    s = sr.open_conn(e.port)
    with s:
        s.sendall(sr.greeting() + sr.request("127.0.0.1", 9))
        assert sr.read_method(s) == sr.M_NONE
        assert sr.read_reply(s).rep == sr.REP_NOT_ALLOWED
    _access(e, r"target=127\.0\.0\.1:9 result=denied ")
    # Nothing reached the concentrator for the request the edge denied.
    assert c.stderr_text().count(" access id=") == before


@pytest.mark.parametrize("conf,msg", [
    ({"upstream": {"via": "http://127.0.0.1:1"}}, r"is not convert://"),
    ({"upstream": {"via": "convert://127.0.0.1:5124"}},
     r"needs upstream.via_user and upstream.via_keys"),
    ({"socks5": {"early_reply": "yes"}}, r"early_reply: needs upstream.via"),
])
def test_config_errors(tmp_path, conf, msg):
    path = str(tmp_path / "bad.ini")
    gwutil.write_ini(path, gwutil.gateway_conf(["127.0.0.1:1080"], conf))
    r = gwutil.run([gwutil.MPGW_BIN, "-t", "-c", path])
    assert r.returncode == 1 and re.search(msg, r.stderr.decode()), r.stderr


def test_config_checks_the_via_key(tmp_path, keys):
    path = str(tmp_path / "edge.ini")
    gwutil.write_ini(path, gwutil.gateway_conf(["127.0.0.1:1080"], {
        "upstream": {"via": "convert://127.0.0.1:5124", "via_user": "nobody",
                     "via_keys": keys[0]}}))
    r = gwutil.run([gwutil.MPGW_BIN, "-t", "-c", path])
    assert r.returncode == 1 and b"nobody has no key" in r.stderr, r.stderr
