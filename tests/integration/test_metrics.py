"""The metrics endpoint ([metrics] listen, README "Metrics"): what a real
Prometheus server (Debian's prometheus) scrapes and answers over its
query API, `promtool check metrics` on the output, the HTTP answers for
everything that is not GET /metrics, and clients that connect and say
nothing, which must not keep a scraper out."""

import json
import os
import re
import signal
import socket
import subprocess
import urllib.parse
import urllib.request

import pytest

import gwutil
from gwutil import SLOW, wait_until

T = 30 * SLOW                  # hang protection only
CONNS_MAX = 16                 # METRICS_CONNS_MAX in gateway/metrics.h
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
def mgw(gateway):
    """A gateway with a metrics endpoint; .mport is its port."""
    mport = gwutil.free_port()
    gw = gateway(metrics={"listen": "127.0.0.1:%d" % mport})
    gw.mport = mport
    wait_until(lambda: gwutil.accepts("127.0.0.1", mport), T,
               "the metrics port to accept", proc=gw.proc)
    return gw


def http(port, raw, timeout=T):
    """Send raw bytes to 127.0.0.1:port, half-close, read to EOF; returns
    (status, headers dict with lower-case names, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def scrape(port):
    status, headers, body = http(port, b"GET /metrics HTTP/1.1\r\n"
                                 b"Host: 127.0.0.1\r\n\r\n")
    assert status == 200, (status, headers, body)
    assert headers["content-type"] == CONTENT_TYPE, headers
    assert int(headers["content-length"]) == len(body), headers
    return body.decode()


def sample(text, name, **labels):
    """The value of the series name{labels} (exact label set), or None."""
    for ln in text.splitlines():
        if ln.startswith("#"):
            continue
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", ln)
        assert m, "not a sample line: %r" % ln
        if m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == labels:
            return float(m.group(3))
    return None


def through(gw, origin, path="/hello"):
    r = gwutil.curl("--socks5", "127.0.0.1:%d" % gw.port, origin.url(path),
                    "-o", "/dev/null", "-w", "%{http_code}")
    assert r.returncode == 0 and r.stdout == b"200", r.stderr
    return r


def promtool_check(text):
    gwutil.need_tool("promtool")
    r = gwutil.run(["promtool", "check", "metrics"], input=text.encode(),
                   timeout=T)
    assert r.returncode == 0, "promtool check metrics: %s %s\n%s" % (
        r.stdout.decode(), r.stderr.decode(), text)


def test_scrape_counts_sessions_and_passes_promtool(mgw, origin):
    for _ in range(3):
        through(mgw, origin)
    # A session is counted when it closes, just after curl has its answer.
    text = wait_until(
        lambda: (lambda t: t if sample(
            t, "mpgw_sessions_total", listener="socks5", method="none",
            result="ok") == 3 else None)(scrape(mgw.mport)),
        T, "three ok sessions in the scrape")
    assert sample(text, "mpgw_build_info", version="0.2.0-dev") == 1
    assert sample(text, "mpgw_sessions_open") == 0
    mptcp = "yes" if origin.mptcp else "fallback"
    assert sample(text, "mpgw_upstream_connections_total", mptcp=mptcp) == 3
    assert sample(text, "mpgw_upstream_connect_seconds_count") == 3
    assert sample(text, "mpgw_reply_seconds_count") == 3
    # curl is a plain TCP client (the lab's MPTCP clients: test_tfo_lab);
    # the fixture's readiness probe was a session too.
    assert sample(text, "mpgw_client_connections_total", mptcp="no") >= 3
    assert sample(text, "mpgw_client_connections_total", mptcp="yes") == 0
    assert sample(text, "mpgw_client_subflows_count") == 0
    assert sample(text, "mpgw_bytes_total", direction="down") > 0
    promtool_check(text)


def test_path_bytes_match_the_access_log(mgw, origin):
    """Over loopback an MPTCP upstream has one subflow, from 127.0.0.1: its
    bytes are what the session relayed, plus at most one for the FIN
    (tcpi_bytes_received counts it) on the received side."""
    if not origin.mptcp:
        pytest.skip("the origin's listener is not MPTCP here")
    r = gwutil.curl("--socks5", "127.0.0.1:%d" % mgw.port,
                    origin.url("/bytes/200000"), "-o", "/dev/null")
    assert r.returncode == 0, r.stderr
    acc = wait_until(lambda: re.search(
        r"access .*result=ok mptcp=yes subflows=\d+ .*up=(\d+) down=(\d+)",
        mgw.stderr_text()), T, "the access line")
    up, down = int(acc.group(1)), int(acc.group(2))
    text = scrape(mgw.mport)
    sent = sample(text, "mpgw_upstream_path_bytes_total", local="127.0.0.1",
                  direction="sent")
    received = sample(text, "mpgw_upstream_path_bytes_total",
                      local="127.0.0.1", direction="received")
    assert sent == up, text
    assert down <= received <= down + 1, (down, received)
    assert sample(text, "mpgw_upstream_subflows_count") == 1


def test_other_requests(mgw):
    def status(raw):
        return http(mgw.mport, raw)[0]

    assert status(b"GET / HTTP/1.1\r\n\r\n") == 404
    assert status(b"GET /metricsx HTTP/1.1\r\n\r\n") == 404
    assert status(b"GET /metrics/ HTTP/1.0\r\n\r\n") == 404
    assert status(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n") \
        == 405
    assert status(b"GET /metrics HTTP/2.0\r\n\r\n") == 400
    assert status(b"\x16\x03\x01\x00\xa5\x01\x00\x00") == 400  # TLS hello
    assert status(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000 +
                  b"\r\n\r\n") == 431
    # A query string is the scraper's business.
    assert status(b"GET /metrics?x=1 HTTP/1.0\n\n") == 200
    st, headers, body = http(mgw.mport, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert st == 200 and body == b"" and \
        int(headers["content-length"]) > 0, (st, headers)
    r = gwutil.curl("-s", "-o", "/dev/null", "-w", "%{http_code}",
                    "http://127.0.0.1:%d/nope" % mgw.mport)
    assert r.stdout == b"404", r


def closed(s):
    """s was closed by the gateway without an answer: EOF, or an RST if
    it had not read what the client sent."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def test_silent_clients_do_not_block_scrapes(mgw, origin):
    """Twice the connection limit of clients that connect and send
    nothing, and one that stops halfway through its request: a scrape
    still gets its answer, the oldest silent client is the one closed to
    make room, and the SOCKS side still serves."""
    silent = []
    try:
        half = socket.create_connection(("127.0.0.1", mgw.mport), timeout=T)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x")
        silent.append(half)
        for _ in range(2 * CONNS_MAX):
            silent.append(socket.create_connection(("127.0.0.1", mgw.mport),
                                                   timeout=T))
        for _ in range(3):
            assert "mpgw_build_info" in scrape(mgw.mport)
        # The first ones were closed for the newer ones, unanswered.
        assert closed(half) and closed(silent[1])
        through(mgw, origin)
    finally:
        for s in silent:
            s.close()


# --- a real Prometheus server ----------------------------------------------

@pytest.fixture
def prometheus(tmp_path):
    """Factory: prometheus(target_port) starts Debian's prometheus scraping
    127.0.0.1:target_port every second; returns its base URL."""
    gwutil.need_tool("prometheus")
    procs = []

    def start(target_port):
        port = gwutil.free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: mpgw\n"
            "    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n" % target_port)
        log = open(tmp_path / "prometheus.log", "wb")
        p = subprocess.Popen(
            ["prometheus", "--config.file=%s" % cfg,
             "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % port],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=gwutil.die_with_parent)
        log.close()
        procs.append(p)
        url = "http://127.0.0.1:%d" % port

        def ready():
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        try:
            wait_until(ready, 60 * SLOW, "prometheus to be ready", proc=p)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (
                e, (tmp_path / "prometheus.log").read_text()[-3000:]))
        return url

    yield start
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def query(url, promql):
    """An instant PromQL query over the HTTP API: the result vector."""
    q = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen("%s/api/v1/query?%s" % (url, q),
                                timeout=10) as r:
        res = json.load(r)
    assert res["status"] == "success", res
    return res["data"]["result"]


def test_prometheus_scrapes_the_sessions_just_made(mgw, origin, prometheus):
    url = prometheus(mgw.mport)
    # Scraping works before any session: the target is up.
    wait_until(lambda: [r for r in query(url, 'up{job="mpgw"}')
                        if r["value"][1] == "1"], T, "up == 1")
    for _ in range(4):
        through(mgw, origin)

    def four_ok():
        res = query(url, 'mpgw_sessions_total{result="ok"}')
        return res if res and res[0]["value"][1] == "4" else None
    res = wait_until(four_ok, T, "Prometheus to report the 4 sessions")
    assert len(res) == 1, res
    assert res[0]["metric"]["listener"] == "socks5", res
    assert res[0]["metric"]["method"] == "none", res
    assert res[0]["metric"]["job"] == "mpgw", res
    # The histograms are usable as histograms.
    res = query(url, "histogram_quantile(0.5, "
                "mpgw_upstream_connect_seconds_bucket)")
    assert len(res) == 1 and float(res[0]["value"][1]) > 0, res
    if not origin.mptcp:
        return
    # README's per-path graph: the loopback MPTCP upstreams' one path.
    # A rate needs the counter to grow after Prometheus first saw it.
    readme = ('sum by (local) (rate(mpgw_upstream_path_bytes_total'
              '{direction="received"}[1m]))')
    wait_until(lambda: query(url, "mpgw_upstream_path_bytes_total"), T,
               "Prometheus to have the path series")
    for _ in range(2):
        through(mgw, origin)

    def loopback_rate():
        r = query(url, readme)
        return r if r and float(r[0]["value"][1]) > 0 else None
    res = wait_until(loopback_rate, T, "a rate for the loopback path")
    assert [r["metric"] for r in res] == [{"local": "127.0.0.1"}], res
    res = query(url, "max(sum by (local) (rate("
                "mpgw_upstream_path_bytes_total[5m]))) / "
                "sum(rate(mpgw_upstream_path_bytes_total[5m]))")
    assert len(res) == 1 and float(res[0]["value"][1]) == 1.0, res
