"""Real SOCKS5 clients nobody here wrote, through the real gateway: curl,
python PySocks, ncat, proxychains4 (+ curl, wget). Each asserts on what the
client received: body bytes, sha256, exit status."""

import json
import re
import socket

import pytest
import socks

import gwutil
from gwutil import USERS, curl, run, sha256
from servers import echo_answer, payload

ALICE_PW = USERS["alice"][0]
CAROL_PW = USERS["carol"][0]

# curl's exit code for a failed SOCKS handshake, including a rejected login
# or no acceptable method: CURLE_PROXY (97, "Proxy handshake error") since
# curl 7.73. Older curls said 7 (couldn't connect).
CURLE_PROXY = 97


def _curl_ok(r):
    assert r.returncode == 0, "curl exit %d: %s" % (r.returncode,
                                                   r.stderr.decode(errors="replace"))
    return r.stdout


# --- curl -------------------------------------------------------------------

def test_curl_socks5_ip(gw, origin):
    r = curl("--socks5", "127.0.0.1:%d" % gw.port, origin.url("/hello"))
    assert _curl_ok(r) == b"hello\n"


def test_curl_socks5_local_dns(gw, origin):
    # --socks5: curl resolves "localhost" itself and sends an address.
    r = curl("--socks5", "127.0.0.1:%d" % gw.port,
             origin.url("/hello", host="localhost"))
    assert _curl_ok(r) == b"hello\n"


def test_curl_socks5_hostname(gw, origin):
    # --socks5-hostname: the gateway resolves "localhost".
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw.port,
             origin.url("/hello", host="localhost"))
    assert _curl_ok(r) == b"hello\n"


def test_curl_socks5h_url_scheme(gw, origin):
    r = curl("-x", "socks5h://127.0.0.1:%d" % gw.port,
             origin.url("/hello", host="localhost"))
    assert _curl_ok(r) == b"hello\n"


@pytest.mark.parametrize("n", [0, 1, 65535, 1000003])
def test_curl_socks5_hostname_bytes(gw, origin, tmp_path, n):
    hdr = tmp_path / "headers"
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw.port, "-D", str(hdr),
             origin.url("/bytes/%d" % n, host="localhost"))
    body = _curl_ok(r)
    m = re.search(r"(?im)^x-sha256:\s*([0-9a-f]{64})", hdr.read_text())
    assert m, "origin's X-SHA256 header missing: %r" % hdr.read_text()
    assert len(body) == n
    assert sha256(body) == m.group(1) == sha256(payload(n))


def test_curl_userpass(gw_auth, origin):
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw_auth.port,
             "-U", "alice:%s" % ALICE_PW, origin.url("/hello", host="localhost"))
    assert _curl_ok(r) == b"hello\n"


def test_curl_userpass_sha512crypt_user_in_url(gw_auth, origin):
    # The second user's hash is sha512crypt; password has spaces.
    r = curl("-x", "socks5h://127.0.0.1:%d" % gw_auth.port,
             "--proxy-user", "carol:%s" % CAROL_PW,
             origin.url("/hello", host="localhost"))
    assert _curl_ok(r) == b"hello\n"


@pytest.mark.parametrize("cred", ["alice:wrong-password", "alice:",
                                  "mallory:%s" % ALICE_PW,
                                  "alice:%s " % ALICE_PW])
def test_curl_userpass_rejected(gw_auth, origin, cred):
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw_auth.port, "-U", cred,
             origin.url("/hello", host="localhost"))
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    assert b"hello" not in r.stdout


def test_curl_no_credentials_when_required(gw_auth, origin):
    # curl offers only "no authentication": the gateway must refuse (0xFF).
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw_auth.port,
             origin.url("/hello", host="localhost"))
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    assert r.stdout == b""


def test_curl_gateway_still_serves_after_failures(gw_auth, origin):
    for _ in range(3):
        r = curl("--socks5-hostname", "127.0.0.1:%d" % gw_auth.port,
                 "-U", "alice:nope", origin.url("/hello", host="localhost"))
        assert r.returncode == CURLE_PROXY
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw_auth.port,
             "-U", "alice:%s" % ALICE_PW, origin.url("/hello", host="localhost"))
    assert _curl_ok(r) == b"hello\n"


def test_curl_refused_target(gw):
    closed = gwutil.free_port()
    r = curl("--socks5-hostname", "127.0.0.1:%d" % gw.port,
             "http://localhost:%d/" % closed)
    # curl reports any SOCKS failure reply as a proxy handshake error.
    assert r.returncode == CURLE_PROXY, (r.returncode, r.stderr)
    # curl 7.88 prints the REP code: "Can't complete SOCKS5 connection to
    # localhost. (5)".
    assert re.search(rb"\(5\)|onnection refused", r.stderr), r.stderr


def test_curl_ipv6_target(gw, origin6):
    r = curl("--socks5", "127.0.0.1:%d" % gw.port, origin6.url("/hello"))
    assert _curl_ok(r) == b"hello\n"


def test_two_listen_addresses(gateway, origin):
    gw = gateway(nlisten=2)
    for p in gw.ports:
        r = curl("--socks5-hostname", "127.0.0.1:%d" % p,
                 origin.url("/hello", host="localhost"))
        assert _curl_ok(r) == b"hello\n"


# --- python socks (PySocks) -----------------------------------------------

def _pysocks(gw_port, rdns, user=None, password=None):
    s = socks.socksocket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(gwutil.CLIENT_TIMEOUT)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", gw_port, rdns=rdns,
                username=user, password=password)
    return s


def _echo_roundtrip(s, host, port, data):
    s.connect((host, port))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    chunks = []
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


@pytest.mark.parametrize("rdns", [True, False], ids=["rdns", "local-dns"])
def test_pysocks_echo(gw, echo, rdns):
    data = payload(200000, seed="pysocks-%s" % rdns)
    with _pysocks(gw.port, rdns) as s:
        got = _echo_roundtrip(s, "localhost", echo.port, data)
    assert got == echo_answer(data)


@pytest.mark.parametrize("rdns", [True, False], ids=["rdns", "local-dns"])
def test_pysocks_userpass(gw_auth, echo, rdns):
    data = b"authenticated hello"
    with _pysocks(gw_auth.port, rdns, "alice", ALICE_PW) as s:
        got = _echo_roundtrip(s, "localhost", echo.port, data)
    assert got == echo_answer(data)


def _proxy_error(ei):
    """PySocks wraps the SOCKS error in GeneralProxyError("Socket error")."""
    e = ei.value
    return getattr(e, "socket_err", None) or e


def test_pysocks_wrong_password(gw_auth, echo):
    with _pysocks(gw_auth.port, True, "alice", "not-her-password") as s:
        with pytest.raises(socks.ProxyError) as ei:
            s.connect(("localhost", echo.port))
    assert isinstance(_proxy_error(ei), socks.SOCKS5AuthError), repr(ei.value)


def test_pysocks_refused_reply(gw):
    closed = gwutil.free_port()
    with _pysocks(gw.port, True) as s:
        with pytest.raises(socks.ProxyError) as ei:
            s.connect(("localhost", closed))
    err = _proxy_error(ei)
    # PySocks formats the REP code: "0x05: Connection refused".
    assert isinstance(err, socks.SOCKS5Error) and "0x05" in str(err), repr(err)


def test_pysocks_peer_is_gateway_upstream(gw, origin):
    # get_proxy_sockname() is the BND.ADDR/PORT; the origin reports the peer
    # it saw. They must be the same socket address.
    with _pysocks(gw.port, True) as s:
        s.connect(("localhost", origin.port))
        bnd = s.get_proxy_sockname()
        s.sendall(b"GET /peer HTTP/1.0\r\nHost: x\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(4096)
            if not b:
                break
            chunks.append(b)
    body = b"".join(chunks).split(b"\r\n\r\n", 1)[1]
    peer = json.loads(body)
    assert (bnd[0], bnd[1]) == (peer["ip"], peer["port"])


# --- ncat -------------------------------------------------------------------

def test_ncat_echo(gw, echo):
    gwutil.need_tool("ncat")
    data = payload(300000, seed="ncat")
    r = run(["ncat", "--proxy", "127.0.0.1:%d" % gw.port,
             "--proxy-type", "socks5", "127.0.0.1", str(echo.port)],
            input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == echo_answer(data)


def test_ncat_echo_remote_dns(gw, echo):
    gwutil.need_tool("ncat")
    data = b"ncat with the gateway resolving\n"
    r = run(["ncat", "--proxy", "127.0.0.1:%d" % gw.port,
             "--proxy-type", "socks5", "--proxy-dns", "remote",
             "localhost", str(echo.port)], input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == echo_answer(data)


def test_ncat_proxy_auth(gw_auth, echo):
    gwutil.need_tool("ncat")
    data = b"ncat logged in\n"
    r = run(["ncat", "--proxy", "127.0.0.1:%d" % gw_auth.port,
             "--proxy-type", "socks5", "--proxy-auth", "alice:%s" % ALICE_PW,
             "127.0.0.1", str(echo.port)], input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == echo_answer(data)


def test_ncat_proxy_auth_wrong(gw_auth, echo):
    gwutil.need_tool("ncat")
    r = run(["ncat", "--proxy", "127.0.0.1:%d" % gw_auth.port,
             "--proxy-type", "socks5", "--proxy-auth", "alice:wrong",
             "127.0.0.1", str(echo.port)], input=b"x")
    assert r.returncode != 0
    assert r.stdout == b""


# --- proxychains4 -------------------------------------------------------------

def _proxychains_conf(tmp_path, gw_port, cred=None):
    path = tmp_path / "proxychains.conf"
    line = "socks5 127.0.0.1 %d" % gw_port
    if cred:
        line += " %s %s" % cred
    path.write_text("strict_chain\nquiet_mode\nproxy_dns\n"
                    "remote_dns_subnet 224\n"
                    "tcp_read_time_out 15000\ntcp_connect_time_out 8000\n"
                    "[ProxyList]\n%s\n" % line)
    return str(path)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_proxychains_curl(gw, origin, tmp_path, host):
    gwutil.need_tool("proxychains4")
    conf = _proxychains_conf(tmp_path, gw.port)
    n = 777777
    r = run(["proxychains4", "-q", "-f", conf, "curl", "-sS", "--noproxy", "*",
             origin.url("/bytes/%d" % n, host=host)])
    assert r.returncode == 0, r.stderr
    assert sha256(r.stdout) == sha256(payload(n))
    # Evidence the bytes went through the gateway and not around it: its
    # access log (stderr by default) names the target.
    _wait_log(gw, origin.port)


def _wait_log(gw, port):
    gwutil.wait_until(lambda: gwutil.count_matching_lines(
        gw.stderr_path, gwutil.port_regex(port)) >= 1, 10 * gwutil.SLOW,
        "an access-log line mentioning port %d" % port)
    return True


def test_proxychains_userpass_curl(gw_auth, origin, tmp_path):
    gwutil.need_tool("proxychains4")
    conf = _proxychains_conf(tmp_path, gw_auth.port, ("alice", ALICE_PW))
    r = run(["proxychains4", "-q", "-f", conf, "curl", "-sS", "--noproxy", "*",
             origin.url("/hello")])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\n"


def test_proxychains_wget(gw, origin, tmp_path):
    gwutil.need_tool("proxychains4")
    gwutil.need_tool("wget")
    conf = _proxychains_conf(tmp_path, gw.port)
    r = run(["proxychains4", "-q", "-f", conf, "wget", "-q", "-O", "-",
             "--no-proxy", origin.url("/hello")])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\n"
