"""The Convert (RFC 8803, 0-RTT) listener of build/mpgw in the namespace
lab, and the client shim in both modes (DESIGN.md sections 4 and 5).

gw runs mpgw with a SOCKS5 listener (userpass) and a Convert listener
(require_auth, a keys file, tfo_no_cookie) on 10.77.1.2; srv runs an HTTP
server on 10.77.3.3 serving a random file. The name origin.lab.test is in
an /etc/netns/<gw-ns>/hosts file, so only processes started with `ip netns
exec` in gw (the gateway) can resolve it; cli has no route to srv.

- the shim (mpgw-run) with curl, wget and python urllib in explicit and
  implicit mode, and curl with remote DNS in both: sha256 of the file;
- a capture on cli's link-1 interface: the client's SYN carries the signed
  Convert message, and the gateway's SYN-ACK acknowledges it;
- replay, stale, bad MAC, unknown user, no Auth: Error 32 (or a reset for
  a Silent message), the gateway's replay counter;
- every malformed message against the live listener: the right Error code
  or a close, never a hang, and the gateway still serves afterwards;
- a Silent request whose target refuses: the client gets a reset.

Raw messages come from tests/integration/convertmsg.py and are sent from the cli
namespace by tests/lab/convert_client.py.

Run as root:  MPGW_BUILD=build /usr/bin/python3 -m pytest \
    tests/lab/test_convert_lab.py
"""

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import sys
import time

import pytest

import labutil as lu

USER, PASSWORD = "alice", "Convert-lab-7"
SOCKS_PORT, CONV_PORT, HTTP_PORT = 1080, 5124, 8080
CLOSED_PORT = 9        # nothing listens there on srv
NAME = "origin.lab.test"
MAX_SKEW = 30
FILE_SIZE = 1 << 20
CONVERT_CLIENT = os.path.join(lu.HERE, "convert_client.py")
SYN_SPOOF = os.path.join(lu.HERE, "syn_spoof.py")

SKIP = lu.skip_reason(lu.MPGW, lu.LIB, lu.MPGW_RUN,
                      tools=("mkpasswd", "curl", "wget"))
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


# --- the Convert encoder, shared with tests/integration ----------------------

sys.path.insert(0, os.path.join(os.path.dirname(lu.HERE), "integration"))
import convertmsg as cm  # noqa: E402

OK_REPLY, err_reply = cm.OK_REPLY, cm.err_reply
tlv, connect_tlv, connect_name_tlv = cm.tlv, cm.connect_tlv, cm.connect_name_tlv
SILENT, INFO = cm.SILENT, cm.INFO


def message(tlvs, user=USER, **kw):
    """cm.message(), signing as the lab's user unless told otherwise."""
    return cm.message(tlvs, user, **kw)


def http_get(path, host):
    return ("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode()


def http_body(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), raw[:200]
    return body


# --- fixtures ------------------------------------------------------------------

HTTP_SERVER = r"""
import functools, http.server, sys
d, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
srv = http.server.ThreadingHTTPServer((host, port), h)
print("ready", flush=True)
srv.serve_forever()
"""


class Env:
    pass


@pytest.fixture(scope="module")
def env(request):
    e = Env()
    lab = e.lab = lu.bring_up(request, "cvl")
    e.srv_ip, e.gw_ip = lab.ip("SRV_IP3"), lab.ip("GW_IP1")
    www = os.path.join(lab.dir, "www")
    os.mkdir(www)
    e.data = os.urandom(FILE_SIZE)
    e.sha = hashlib.sha256(e.data).hexdigest()
    with open(os.path.join(www, "file.bin"), "wb") as f:
        f.write(e.data)
    e.http = lab.spawn("srv", [lu.PY, "-c", HTTP_SERVER, www, e.srv_ip,
                               str(HTTP_PORT)], "http")
    assert lu.ready_line(e.http) == "ready", e.http.tail()
    # The name only the gateway resolves (before it is started).
    lab.netns_file("gw", "hosts", "127.0.0.1 localhost\n%s %s\n"
                   % (e.srv_ip, NAME))
    users = lu.users_file(lab, USER, PASSWORD)
    keys, e.key_b64 = lu.key_file(lab, USER)
    e.key = base64.b64decode(e.key_b64)
    e.gw = lu.Gateway(lab, "mpgw-convert", {
        "socks5": {"listen": "%s:%d" % (e.gw_ip, SOCKS_PORT),
                   "methods": "userpass", "handshake_timeout": "30"},
        # The failures below are deliberate: no login throttle, or the
        # fifth would block cli's address and the checks after it.
        "auth": {"users": users, "allow_cleartext_password": "yes",
                 "fail_limit": "0", "fail_delay_max": "0"},
        "convert": {"listen": "%s:%d" % (e.gw_ip, CONV_PORT),
                    "require_auth": "yes", "keys": keys,
                    "max_skew": str(MAX_SKEW), "tfo_no_cookie": "yes"}})
    e.conv = "%s:%d" % (e.gw_ip, CONV_PORT)
    return e


def shim_env(e, mode, remote_dns="off"):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C",
           "MPGW_MODE": mode, "MPGW_TIMEOUT": "10",
           "MPGW_USER": USER, "MPGW_REMOTE_DNS": remote_dns,
           "MPGW_DNS_TABLE": e.lab.path("dns-table-" + mode)}
    if os.environ.get("MPGW_ASAN") == "1":
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0:detect_leaks=0"
    if mode == "explicit":
        env.update(MPGW_GATEWAY="%s:%d" % (e.gw_ip, SOCKS_PORT),
                   MPGW_METHOD="userpass", MPGW_PASSWORD=PASSWORD)
    else:
        env.update(MPGW_GATEWAY=e.conv, MPGW_KEY=e.key_b64)
    return env


URLLIB = r"""
import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=20).read())
"""


def program(e, prog, url):
    if prog == "curl":
        return ["curl", "-sS", "--max-time", "20", url]
    if prog == "wget":
        return ["wget", "-q", "-O", "-", "-T", "20", url]
    return [lu.PY, "-c", URLLIB, url]


def out(r):
    return "exit %d, %d bytes out; stderr: %s" % (
        r.returncode, len(r.stdout), r.stderr.decode(errors="replace")[-1500:])


def raw(e, cases):
    """Run raw cases from cli; returns the results (see convert_client)."""
    for c in cases:
        c.setdefault("dst", e.conv)
        if isinstance(c["data"], bytes):
            c["data"] = c["data"].hex()
    r = e.lab.run("cli", [lu.PY, CONVERT_CLIENT],
                  input=json.dumps(cases).encode(), timeout=120)
    assert r.returncode == 0, out(r)
    res = json.loads(r.stdout.decode())
    for x in res:
        x["reply"] = bytes.fromhex(x["reply"])
    return res


def good_case(e, silent=False):
    """A signed request for the file on srv, then the HTTP request."""
    tl = [connect_tlv(e.srv_ip, HTTP_PORT)] + ([SILENT] if silent else [])
    return {"data": message(tl, key=e.key) + http_get("/file.bin", e.srv_ip),
            "fastopen": True}


def assert_good(e, res, silent=False):
    assert res["connect"] == "ok" and res["end"] == "eof", res["end"]
    rep = res["reply"]
    if not silent:
        assert rep[:8] == OK_REPLY, rep[:16].hex()
        rep = rep[8:]
    body = http_body(rep)
    assert hashlib.sha256(body).hexdigest() == e.sha, len(body)


def replay_count(e):
    n = 0
    for ln in e.gw.lines("replayed Convert message"):
        m = re.search(r"\((\d+) so far\)", ln)
        assert m, ln
        n = max(n, int(m.group(1)))
    return n


# --- controls -------------------------------------------------------------------

def test_controls(env):
    """cli can neither reach srv nor resolve NAME; gw resolves NAME."""
    lab = env.lab
    r = lab.run("cli", ["curl", "-sS", "--max-time", "10",
                        "http://%s:%d/file.bin" % (env.srv_ip, HTTP_PORT)])
    assert r.returncode == 7, out(r)            # couldn't connect
    r = lab.run("cli", ["getent", "hosts", NAME])
    assert r.returncode == 2, out(r)            # not found
    r = lab.run("gw", ["getent", "hosts", NAME])
    assert r.returncode == 0 and r.stdout.split()[0].decode() == \
        env.srv_ip, out(r)


# --- the shim with real programs ------------------------------------------------

@pytest.mark.parametrize("mode", ["explicit", "implicit"])
@pytest.mark.parametrize("prog", ["curl", "wget", "urllib"])
def test_shim_fetch(env, mode, prog):
    mark = env.gw.mark()
    url = "http://%s:%d/file.bin" % (env.srv_ip, HTTP_PORT)
    r = env.lab.run("cli", [lu.MPGW_RUN] + program(env, prog, url),
                    env=shim_env(env, mode))
    assert r.returncode == 0, out(r)
    assert hashlib.sha256(r.stdout).hexdigest() == env.sha, out(r)
    a = env.gw.wait_access(lambda a: a["target"] == "%s:%d" % (
        env.srv_ip, HTTP_PORT), "shim fetch", mark)
    assert a["result"] == "ok" and a["user"] == USER, a
    assert a["method"] == ("convert" if mode == "implicit" else
                           "userpass"), a


@pytest.mark.parametrize("mode", ["explicit", "implicit"])
def test_shim_remote_dns(env, mode):
    mark = env.gw.mark()
    r = env.lab.run("cli", [lu.MPGW_RUN, "curl", "-sS", "--max-time", "20",
                            "http://%s:%d/file.bin" % (NAME, HTTP_PORT)],
                    env=shim_env(env, mode, remote_dns="on"))
    assert r.returncode == 0, out(r)
    assert hashlib.sha256(r.stdout).hexdigest() == env.sha, out(r)
    a = env.gw.wait_access(lambda a: a["target"] == "%s:%d" % (
        NAME, HTTP_PORT), "remote DNS fetch", mark)
    assert a["result"] == "ok", a


# --- the Convert message in the SYN ---------------------------------------------

def read_pcap(path):
    """Ethernet/IPv4/TCP packets of a pcap file as dicts."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    assert linktype == 1, "link type %d, want Ethernet" % linktype
    off, pkts = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if struct.unpack("!H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0xf) * 4
        tot = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        tcp = ip[ihl:tot]
        doff = (tcp[12] >> 4) * 4
        pkts.append({
            "src": socket.inet_ntoa(ip[12:16]),
            "dst": socket.inet_ntoa(ip[16:20]),
            "sport": struct.unpack("!H", tcp[0:2])[0],
            "dport": struct.unpack("!H", tcp[2:4])[0],
            "seq": struct.unpack("!I", tcp[4:8])[0],
            "ack": struct.unpack("!I", tcp[8:12])[0],
            "flags": tcp[13], "payload": tcp[doff:]})
    return pkts


def parse_tlvs(msg):
    out, off = {}, 4
    while off < msg[1] * 4:
        t, ln = msg[off], msg[off + 1] * 4
        assert ln > 0, msg.hex()
        out[t] = msg[off:off + ln]
        off += ln
    return out


@pytest.fixture(scope="module")
def captured_syn(env):
    """tcpdump on cli's link-1 interface around one implicit-mode curl:
    the client's SYN and the gateway's SYN-ACK."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    lab = env.lab
    pcap = lab.path("convert-syn.pcap")
    td = lab.spawn("cli", ["tcpdump", "-i", lab.ip("CLI_IF1"), "-n", "-U",
                           "-c", "2", "-w", pcap,
                           "tcp port %d and tcp[tcpflags] & tcp-syn != 0"
                           % CONV_PORT], "tcpdump")
    td.wait_err(lambda l: "listening on" in l, "tcpdump listening")
    r = lab.run("cli", [lu.MPGW_RUN, "curl", "-sS", "--max-time", "20",
                        "http://%s:%d/file.bin" % (env.srv_ip, HTTP_PORT)],
                env=shim_env(env, "implicit"))
    assert r.returncode == 0, out(r)
    assert hashlib.sha256(r.stdout).hexdigest() == env.sha, out(r)
    td.p.wait(30)
    td.stop()
    pkts = read_pcap(pcap)
    syn = [p for p in pkts if p["dport"] == CONV_PORT and
           p["flags"] & 0x12 == 0x02]
    synack = [p for p in pkts if p["sport"] == CONV_PORT and
              p["flags"] & 0x12 == 0x12]
    assert len(syn) == 1 and len(synack) == 1, pkts
    return syn[0], synack[0]


def test_convert_message_in_syn(env, captured_syn):
    syn, synack = captured_syn
    p = syn["payload"]
    # cli: tcp_fastopen 0x5 (0x4: SYN data without a cookie, whatever the
    # socket asks; tests/lab/test_tfo_lab.py runs with the default 0x1).
    assert len(p) > 0, "the SYN carries no data"
    assert p[0] == 1 and p[2:4] == b"\x22\x63", p[:4].hex()
    assert len(p) >= p[1] * 4, (len(p), p[1])
    t = parse_tlvs(p[:p[1] * 4])
    port = struct.unpack("!H", t[10][2:4])[0]
    assert (socket.inet_ntoa(t[10][16:20]), port) == (env.srv_ip,
                                                      HTTP_PORT), t
    assert 0xc2 in t, "no Silent TLV"          # the shim reads no reply
    auth = t[0xc1]
    assert auth[4 + 16:4 + 16 + auth[3]] == USER.encode(), auth.hex()
    # The gateway's kernel took the data in the SYN (tfo_no_cookie): its
    # SYN-ACK acknowledges the SYN and every payload byte.
    assert synack["ack"] == (syn["seq"] + 1 + len(p)) & 0xffffffff, \
        (syn["seq"], len(p), synack["ack"])


def test_captured_syn_replayed(env, captured_syn):
    """The shim's own SYN payload, sent again in a SYN: refused as a
    replay; it is Silent, so the refusal is a reset."""
    syn, _ = captured_syn
    msg = syn["payload"][:syn["payload"][1] * 4]
    n0, mark = replay_count(env), env.gw.mark()
    res = raw(env, [{"data": msg + http_get("/file.bin", env.srv_ip),
                     "fastopen": True}, good_case(env)])
    assert res[0]["end"] == "reset" and res[0]["reply"] == b"", res[0]
    assert_good(env, res[1])
    a = env.gw.wait_access(lambda a: a["result"] == "convert-replay",
                           "replay refused", mark)
    assert a["user"] == USER, a
    assert replay_count(env) == n0 + 1


# --- authentication ---------------------------------------------------------------

def test_replay_constructed(env):
    msg = message([connect_tlv(env.srv_ip, HTTP_PORT)], key=env.key)
    data = msg + http_get("/file.bin", env.srv_ip)
    res = raw(env, [{"data": data, "fastopen": True}])
    assert_good(env, res[0])
    n0, mark = replay_count(env), env.gw.mark()
    res = raw(env, [{"data": data, "fastopen": True}])
    assert res[0]["reply"] == err_reply(32), res[0]["reply"].hex()
    assert res[0]["end"] == "eof", res[0]
    env.gw.wait_access(lambda a: a["result"] == "convert-replay",
                       "replay refused", mark)
    assert replay_count(env) == n0 + 1
    # The same bytes through plain connect + send: still a replay.
    res = raw(env, [{"data": data}])
    assert res[0]["reply"] == err_reply(32), res[0]["reply"].hex()
    assert replay_count(env) == n0 + 2


def _auth_cases(e):
    now = int(time.time())
    good = message([connect_tlv(e.srv_ip, HTTP_PORT)], key=e.key)
    i = len(good) - 16 - (-(36 + len(USER)) % 4)    # first MAC byte
    bad_mac = good[:i] + bytes([good[i] ^ 0x01]) + good[i + 1:]
    signed_other = bytearray(good)
    signed_other[8] ^= 0x01        # a bit of the Connect port, signed
    return {
        "stale": (message([connect_tlv(e.srv_ip, HTTP_PORT)], key=e.key,
                          ts=now - 2 * MAX_SKEW), "convert-stale"),
        "future": (message([connect_tlv(e.srv_ip, HTTP_PORT)], key=e.key,
                           ts=now + 2 * MAX_SKEW), "convert-stale"),
        # Issue 8 defect 11: one boundary for the window and the replay
        # cache, so exactly max_skew old is stale, not a replay.
        "max-skew-old": (message([connect_tlv(e.srv_ip, HTTP_PORT)],
                                 key=e.key, ts=now - MAX_SKEW),
                         "convert-stale"),
        "bad-mac": (bad_mac, "convert-bad-mac"),
        "tampered": (bytes(signed_other), "convert-bad-mac"),
        "unknown-user": (message([connect_tlv(e.srv_ip, HTTP_PORT)],
                                 user="mallory", key=os.urandom(32)),
                         "convert-unknown-user"),
        "wrong-key": (message([connect_tlv(e.srv_ip, HTTP_PORT)],
                              key=os.urandom(32)), "convert-bad-mac"),
        "no-auth": (message([connect_tlv(e.srv_ip, HTTP_PORT)], user=None),
                    "convert-no-auth"),
    }


@pytest.mark.parametrize("case", [
    "stale", "future",
    "max-skew-old",
    "bad-mac", "tampered", "unknown-user", "wrong-key", "no-auth"])
def test_not_authorized(env, case):
    data, result = _auth_cases(env)[case]
    mark = env.gw.mark()
    res = raw(env, [{"data": data + http_get("/file.bin", env.srv_ip),
                     "fastopen": True}, good_case(env)])
    assert res[0]["reply"] == err_reply(32), res[0]["reply"].hex()
    assert res[0]["end"] == "eof", res[0]
    assert_good(env, res[1])
    # The one refusal since mark; the good case's line says ok.
    a = env.gw.wait_access(lambda a: a["result"].startswith("convert-"),
                           result, mark)
    assert a["result"] == result, a


# --- malformed messages -------------------------------------------------------------

def _malformed(e):
    c = connect_tlv(e.srv_ip, HTTP_PORT)
    cn = connect_name_tlv(NAME, HTTP_PORT)
    k = e.key

    def signed_then(extra):
        m = message([c], key=k)
        return m[:1] + bytes([m[1] + len(extra) // 4]) + m[2:] + extra

    return {
        # name: (bytes, expected reply or None for "a close, no bytes")
        "version": (b"\x02" + message([c], key=k)[1:], err_reply(0, 1)),
        "magic": (message([c], key=k)[:3] + b"\x64" +
                  message([c], key=k)[4:], err_reply(1)),
        "total-zero": (b"\x01\x00\x22\x63" + c, err_reply(1)),
        "tlv-length-zero": (b"\x01\x03\x22\x63" + bytes([10, 0]) +
                            b"\0" * 6, err_reply(1)),
        "tlv-overrun": (message([c], user=None, total=3),
                        err_reply(1)),
        "duplicate": (message([c, c], key=k), err_reply(1)),
        "duplicate-silent": (message([c, SILENT, SILENT], key=k),
                             err_reply(1)),
        "connect-and-name": (message([c, cn], key=k), err_reply(1)),
        "neither-connect": (message([INFO], key=k), err_reply(1)),
        "auth-not-last": (signed_then(SILENT), err_reply(1)),
        "unknown-type": (message([c, tlv(50, b"\0\0")], key=k),
                         err_reply(2)),
        "reply-type": (message([c, tlv(30, b"\0\0")], key=k), err_reply(2)),
        "oversize-cut": (b"\x01\xff\x22\x63" + c, None),
        "missing-auth": (message([c], user=None), err_reply(32)),
    }


MALFORMED = ["version", "magic", "total-zero", "tlv-length-zero",
             "tlv-overrun", "duplicate", "duplicate-silent",
             "connect-and-name", "neither-connect", "auth-not-last",
             "unknown-type", "reply-type", "oversize-cut", "missing-auth"]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed(env, case):
    data, want = _malformed(env)[case]
    # Sent in the SYN, then half-closed: the gateway must answer (or
    # close) on what it has, without waiting for more.
    res = raw(env, [{"data": data, "fastopen": True, "shut": True},
                    good_case(env), good_case(env, silent=True)])
    bad = res[0]
    assert bad["end"] != "timeout", "no answer and no close: %s" % bad
    if want is None:
        assert bad["reply"] == b"" and bad["end"] in ("eof", "reset"), bad
    else:
        assert bad["reply"] == want, (bad["reply"].hex(), want.hex())
        assert bad["end"] == "eof", bad
    assert_good(env, res[1])
    assert_good(env, res[2], silent=True)
    assert env.gw.proc.p.poll() is None, "the gateway exited"


def test_unknown_private_tlv_skipped(env):
    """Types 192..255 that mpgw does not know are skipped (section 4)."""
    msg = message([connect_tlv(env.srv_ip, HTTP_PORT),
                   tlv(0xd7, b"\0\0xyz")], key=env.key)
    res = raw(env, [{"data": msg + http_get("/file.bin", env.srv_ip),
                     "fastopen": True}])
    assert_good(env, res[0])


@pytest.mark.parametrize("with_connect", [False, True],
                         ids=["udp-only", "udp-connect-any"])
def test_udp_association(env, with_connect):
    """The UDP TLV (0xC3): the listener answers success and relays the
    framed datagrams (len(16) | SOCKS5 UDP header | payload, DESIGN.md
    section 6) that follow the message in the SYN; it never dials
    0.0.0.0:0. The client's half-close ends the association, and the
    gateway closes. (Datagrams both ways through a concentrator:
    test_udp_lab.py.)"""
    tl = [tlv(0xc3, b"\0\0")]
    if with_connect:
        tl.append(connect_tlv("0.0.0.0", 0))
    body = (b"\0\0\0\x01" + socket.inet_aton(env.srv_ip) +
            struct.pack("!H", CLOSED_PORT) + b"one datagram")
    mark = env.gw.mark()
    res = raw(env, [{"data": message(tl, key=env.key) +
                     struct.pack("!H", len(body)) + body,
                     "fastopen": True, "shut": True}])
    assert res[0]["reply"] == OK_REPLY, res[0]["reply"].hex()
    assert res[0]["end"] == "eof", res[0]
    a = env.gw.wait_access(lambda a: a.get("command") == "udp",
                           "the association's access line", mark)
    assert a["result"] == "ok" and a["dgrams_up"] == "1", a
    assert a["up"] == "12" and a["method"] == "convert", a


# --- Silent failures ----------------------------------------------------------------

def test_silent_failure_is_a_reset(env):
    mark = env.gw.mark()
    msg = message([connect_tlv(env.srv_ip, CLOSED_PORT), SILENT],
                  key=env.key)
    res = raw(env, [{"data": msg + http_get("/", env.srv_ip),
                     "fastopen": True}, good_case(env, silent=True)])
    assert res[0]["end"] == "reset" and res[0]["reply"] == b"", res[0]
    assert_good(env, res[1], silent=True)
    a = env.gw.wait_access(lambda a: a["target"] == "%s:%d" % (
        env.srv_ip, CLOSED_PORT), "refused target", mark)
    assert a["result"] != "ok", a
    # Without Silent the same failure is an Error TLV: 96, reset by peer.
    msg = message([connect_tlv(env.srv_ip, CLOSED_PORT)], key=env.key)
    res = raw(env, [{"data": msg, "fastopen": True}])
    assert res[0]["reply"] == err_reply(96), res[0]["reply"].hex()


# --- the login throttle and forged sources -------------------------------------

def test_spoofed_syns_cannot_block_a_source(env):
    """Issue 8 defect 7: with convert.tfo_no_cookie, a Convert message in a
    SYN is read before the handshake completes. Failed Auth in SYNs from a
    forged address must not count towards the throttle, or an off-path
    attacker could block any victim: here four forged SYNs with a bad MAC
    from 10.77.1.50 (fail_limit 2), then the real 10.77.1.50 logs in."""
    lab = env.lab
    port = CONV_PORT + 1
    victim = "10.77.1.50"
    gw = lu.Gateway(lab, "mpgw-throttle", {
        "socks5": {"listen": "127.0.0.1:1091"},
        "auth": {"fail_limit": "2", "fail_delay_max": "0",
                 "fail_block": "300"},
        "convert": {"listen": "%s:%d" % (env.gw_ip, port),
                    "require_auth": "yes", "keys": lab.path("keys"),
                    "max_skew": str(MAX_SKEW), "tfo_no_cookie": "yes"}})
    try:
        bad = message([connect_tlv(env.srv_ip, HTTP_PORT)], key=b"\0" * 32)
        r = lab.run("cli", [lu.PY, SYN_SPOOF, victim, env.gw_ip, str(port),
                            bad.hex(), "4"])
        assert r.returncode == 0, out(r)

        def forged():
            return [a for a in gw.access() if a["client"].startswith(
                victim + ":") and a["result"] == "convert-bad-mac"]
        # (The old gateway logged two and then refused the rest at accept.)
        gw.proc.wait(lambda: len(forged()) >= 2, "forged SYNs refused")
        # The address's real owner shows up and logs in.
        lab.run("cli", ["ip", "addr", "add", victim + "/24", "dev", "c1"])
        case = dict(good_case(env), dst="%s:%d" % (env.gw_ip, port),
                    src=victim)
        assert_good(env, raw(env, [case])[0])
    finally:
        lab.run("cli", ["ip", "addr", "del", victim + "/24", "dev", "c1"])
        gw.proc.stop()


def test_connect_name_unknown_is_unreachable(env):
    """Connect-Name with a name gw cannot resolve: Error 97."""
    msg = message([connect_name_tlv("nowhere.lab.test", HTTP_PORT)],
                  key=env.key)
    res = raw(env, [{"data": msg, "fastopen": True}])
    assert res[0]["reply"] == err_reply(97), res[0]["reply"].hex()


def test_connect_name_raw(env):
    msg = message([connect_name_tlv(NAME, HTTP_PORT)], key=env.key)
    res = raw(env, [{"data": msg + http_get("/file.bin", NAME),
                     "fastopen": True}])
    assert_good(env, res[0])
