"""The client shim (build/libmpgw.so via build/mpgw-run) with real programs.

Loopback targets pass through the shim untouched, so these tests run in a
network namespace of their own (a unique name, deleted at the end; no
default route): lo carries 10.77.200.1/24 and fd00:77::1, the origin HTTP
server listens there, the gateway on 127.0.0.1. The client runs as
`nobody`, and iptables in the namespace REJECTs nobody's TCP to the
origin: a client that succeeds was routed through the gateway, and the
gateway's access log must name the target as well. nobody runs copies of
mpgw-run and libmpgw.so in the lab's world-readable temporary directory,
so the checkout may live anywhere (a 0700 home directory included).

Gateways: the real build/mpgw for explicit none/userpass (and tls-login,
implicit mode when `mpgw -t` accepts their config). A small reference
gateway in this file (`python3 test_shim.py mockgw|mockconv ...`) speaks
the client side's expected wire for method 0x83 (TLS-protected login,
DESIGN.md section 3) and for the Convert listener (section 4), so the
shim's side of those is tested even where the daemon lacks them.

Needs root (namespaces, iptables, setpriv); skips with the reason
otherwise.
"""

import base64
import hashlib
import hmac
import json
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, os.environ.get("MPGW_BUILD", "build"))
MPGW = os.path.join(BUILD, "mpgw")
LIB = os.path.join(BUILD, "libmpgw.so")
RUN = os.path.join(BUILD, "mpgw-run")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
ORIGIN4 = "10.77.200.1"
ORIGIN6 = "fd00:77::1"
NAME = "origin.mpgw-test"       # resolved only by the gateway
GW_PORT = 1080
MOCK_PORT = 1081
CONV_PORT = 5124
MOCKCONV_PORT = 5125
USER, PASSWORD = "alice", "Wonderland-7"
KEY = bytes(range(32))
TIMEOUT = 60


# ======================================================================
# Reference gateway (runs as a subprocess inside the namespace)
# ======================================================================

def _recv_exact(sock, n):
    b = b""
    while len(b) < n:
        c = sock.recv(n - len(b))
        if not c:
            raise EOFError("peer closed")
        b += c
    return b


def _relay(a, b):
    """Both directions with half-close, until both are done."""
    socks = [a, b]
    peer = {a: b, b: a}
    open_ = {a, b}
    while open_:
        r, _, _ = select.select(list(open_), [], [], 60)
        if not r:
            return
        for s in r:
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if d:
                try:
                    peer[s].sendall(d)
                except OSError:
                    return
            else:
                open_.discard(s)
                try:
                    peer[s].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    for s in socks:
        s.close()


class _TlsChan:
    """Server side of method 0x83 over memory BIOs: reads whole TLS records
    from the socket, so nothing after the client's close_notify is taken."""

    def __init__(self, sock, ctx):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        self._run(self.obj.do_handshake)

    def _flush(self):
        d = self.out.read()
        if d:
            self.sock.sendall(d)

    def _feed(self):
        hdr = _recv_exact(self.sock, 5)
        n = struct.unpack("!H", hdr[3:5])[0]
        self.inc.write(hdr + _recv_exact(self.sock, n))

    def _run(self, fn, *a):
        while True:
            try:
                r = fn(*a)
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                self._feed()

    def read_exact(self, n):
        b = b""
        while len(b) < n:
            b += self._run(self.obj.read, n - len(b))
        return b

    def write(self, d):
        self._run(self.obj.write, d)

    def close_notify(self):
        """Ours right away, then wait for the client's; then the stream
        is cleartext again, and no byte of it may be left in the BIO."""
        self._run(self.obj.unwrap)
        assert self.inc.pending == 0, "read past the client's close_notify"


def _mock_connect(atyp, host, port):
    fam = socket.AF_INET6 if atyp == 4 else socket.AF_INET
    if atyp == 3:
        fam, _, _, _, sa = socket.getaddrinfo(host, port, 0,
                                              socket.SOCK_STREAM)[0]
        host = sa[0]
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    s.settimeout(None)
    return s


def _mockgw_session(c, a, ctx, log):
    method_name = {0: "none", 2: "userpass", 0x83: "tls-login"}
    ver, n = _recv_exact(c, 2)
    offered = _recv_exact(c, n)
    m = next((x for x in a.methods if x in offered), 0xff)
    c.sendall(bytes([5, m]))
    if m == 0xff:
        return c.close()
    ch = c
    if m == 0x83:
        ch = _TlsChan(c, ctx)
    rd = ch.read_exact if m == 0x83 else (lambda k: _recv_exact(c, k))
    wr = ch.write if m == 0x83 else c.sendall
    user = "-"
    if m in (2, 0x83):
        v, ul = rd(2)
        user = rd(ul).decode()
        pl = rd(1)[0]
        pw = rd(pl).decode()
        ok = a.users.get(user) == pw
        wr(bytes([1, 0 if ok else 1]))
        if not ok:
            return c.close()
    v, cmd, rsv, atyp = rd(4)
    if atyp == 1:
        host = socket.inet_ntop(socket.AF_INET, rd(4))
    elif atyp == 4:
        host = socket.inet_ntop(socket.AF_INET6, rd(16))
    else:
        host = rd(rd(1)[0]).decode()
    port = struct.unpack("!H", rd(2))[0]
    rep = 0
    try:
        up = _mock_connect(atyp, host, port)
    except ConnectionRefusedError:
        rep = 5
    except socket.gaierror:
        rep = 4
    except OSError:
        rep = 1
    target = "[%s]:%d" % (host, port) if atyp == 4 else "%s:%d" % (host, port)
    with open(a.log, "a") as f:
        f.write("access method=%s user=%s target=%s result=%s\n"
                % (method_name.get(m, m), user, target,
                   "ok" if rep == 0 else "rep%d" % rep))
    wr(bytes([5, rep, 0, 1, 10, 77, 200, 1, 0, 80]))
    if rep != 0:
        return c.close()
    if m == 0x83:
        ch.close_notify()
    _relay(c, up)


def _conv_session(c, a, log):
    b = _recv_exact(c, 4)
    total = b[1] * 4
    b += _recv_exact(c, total - 4)
    assert b[0] == 1 and b[2:4] == b"\x22\x63", b[:4]
    off, host, port, user, ok_mac, silent = 4, None, None, None, False, False
    while off < total:
        t, ln = b[off], b[off + 1] * 4
        v = b[off:off + ln]
        if t == 10:
            port = struct.unpack("!H", v[2:4])[0]
            addr = v[4:20]
            if addr[:12] == b"\0" * 10 + b"\xff\xff":
                host = socket.inet_ntop(socket.AF_INET, addr[12:])
            else:
                host = "[%s]" % socket.inet_ntop(socket.AF_INET6, addr)
        elif t == 0xc0:
            port = struct.unpack("!H", v[2:4])[0]
            host = v[5:5 + v[4]].decode()
        elif t == 0xc2:
            silent = True
        elif t == 0xc1:
            ul = v[3]
            user = v[20:20 + ul].decode()
            mac = v[20 + ul:36 + ul]
            want = hmac.new(a.keys.get(user, b"?"), b[:off + 20 + ul],
                            hashlib.sha256).digest()[:16]
            ok_mac = hmac.compare_digest(mac, want)
        off += ln
    result = "ok" if ok_mac and silent else "bad-auth"
    up = None
    if result == "ok":
        try:
            up = _mock_connect(3 if not host.startswith("[") and
                               not host[0].isdigit() else
                               (4 if host.startswith("[") else 1),
                               host.strip("[]"), port)
        except OSError:
            result = "connect-failed"
    with open(a.log, "a") as f:
        f.write("access method=convert user=%s target=%s:%d result=%s "
                "syn_data=%d\n" % (user, host, port, result,
                                   _syn_data(c)))
    if up is None:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        return c.close()
    _relay(c, up)


def _syn_data(sock):
    """1 if the SYN carried data (TCPI_OPT_SYN_DATA), per TCP_INFO."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        return 1 if info[5] & 32 else 0
    except OSError:
        return -1


def mock_main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["mockgw", "mockconv"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--methods", default="none")
    ap.add_argument("--users", default="")
    ap.add_argument("--keys", default="")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True)
    a = ap.parse_args(argv)
    codes = {"none": 0, "userpass": 2, "tls-login": 0x83}
    a.methods = [codes[x] for x in a.methods.split(",")]
    a.users = dict(u.split(":", 1) for u in a.users.split(",") if u)
    a.keys = {u.split(":", 1)[0]: base64.b64decode(u.split(":", 1)[1])
              for u in a.keys.split(",") if u}
    ctx = None
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if a.kind == "mockconv":
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 64)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(128)
    open(a.ready, "w").close()
    while True:
        c, _ = ls.accept()

        def run(c=c):
            try:
                if a.kind == "mockgw":
                    _mockgw_session(c, a, ctx, a.log)
                else:
                    _conv_session(c, a, a.log)
            except Exception as e:  # one session, never the server
                sys.stderr.write("session: %r\n" % e)
                c.close()
        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    sys.exit(mock_main(sys.argv[1:]))


# ======================================================================
# The tests
# ======================================================================

import pytest  # noqa: E402  (the mock above runs without pytest)


def _wait_for(pred, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _shared_tmp():
    """A temporary directory every user can traverse: $TMPDIR if each of
    its ancestors is, else /tmp."""
    d = os.path.realpath(tempfile.gettempdir())
    p = d
    while True:
        if not os.stat(p).st_mode & 0o001:
            return "/tmp"
        if p == "/":
            return d
        p = os.path.dirname(p)


def _sh(*argv, check=True, **kw):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=TIMEOUT, **kw)


class Lab:
    """One namespace with the origin, gateways and the iptables fence."""

    def __init__(self):
        self.ns = "mpgwshim-%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
        self.dir = tempfile.mkdtemp(prefix="mpgw-shim-", dir=_shared_tmp())
        os.chmod(self.dir, 0o755)       # nobody reads configs from here
        self.rw = os.path.join(self.dir, "rw")  # and writes only here
        os.mkdir(self.rw)
        os.chmod(self.rw, 0o1777)
        self.procs = []
        self.etc = "/etc/netns/" + self.ns
        _sh("ip", "netns", "add", self.ns)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self):
        # nobody may not be able to reach the build tree (a checkout in
        # /root or another 0700 directory): it runs these copies.
        # mpgw-run finds libmpgw.so next to itself.
        bindir = os.path.join(self.dir, "bin")
        os.mkdir(bindir)
        os.chmod(bindir, 0o755)
        self.run = os.path.join(bindir, "mpgw-run")
        self.lib = os.path.join(bindir, "libmpgw.so")
        for src, dst, mode in ((RUN, self.run, 0o755),
                               (LIB, self.lib, 0o644)):
            shutil.copyfile(src, dst)
            os.chmod(dst, mode)
        x = self.exec_argv
        _sh(*x("ip", "link", "set", "lo", "up"))
        _sh(*x("ip", "addr", "add", ORIGIN4 + "/24", "dev", "lo"))
        _sh(*x("ip", "-6", "addr", "add", ORIGIN6 + "/128", "dev", "lo",
               "nodad"))
        # Client TFO on, cookie-less server accept: namespace sysctls only.
        _sh(*x("sysctl", "-qw", "net.ipv4.tcp_fastopen=%d" % (0x1 | 0x2 | 0x200)))
        for ipt, dst in (("iptables", ORIGIN4), ("ip6tables", ORIGIN6)):
            _sh(*x(ipt, "-A", "OUTPUT", "-d", dst, "-p", "tcp", "-m", "owner",
                   "--uid-owner", "nobody", "-j", "REJECT", "--reject-with",
                   "tcp-reset"))
        # Only processes started with `ip netns exec` (gateways, origin)
        # see this hosts file; clients enter with nsenter and do not, so
        # NAME can only be resolved by the gateway.
        os.makedirs(self.etc, exist_ok=True)
        with open(os.path.join(self.etc, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n%s %s\n" % (ORIGIN4, NAME))
        self.origin4 = self._server(ORIGIN4)
        self.origin6 = self._server(ORIGIN6)

    def exec_argv(self, *argv):
        return ("ip", "netns", "exec", self.ns) + argv

    def client_argv(self, *argv, root=False):
        pre = ("nsenter", "--net=/run/netns/" + self.ns)
        if not root:
            pre += ("setpriv", "--reuid=nobody", "--regid=nogroup",
                    "--clear-groups")
        return pre + argv

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def spawn(self, argv, name, ready=None):
        err = open(self.path(name + ".stderr"), "wb")
        p = subprocess.Popen(self.exec_argv(*argv), stdin=subprocess.DEVNULL,
                             stdout=err, stderr=err)
        err.close()
        self.procs.append(p)
        if ready is not None:
            def ok():
                if p.poll() is not None:
                    raise AssertionError("%s exited: %s" % (name, open(
                        self.path(name + ".stderr")).read()))
                return ready()
            _wait_for(ok, name)
        return p

    def _server(self, host):
        ready = self.path("origin-%s.json" % host.replace(":", "_"))
        self.spawn([PYTHON, os.path.join(HERE, "servers.py"), "origin",
                    "--host", host, "--ready", ready],
                   "origin-" + host.replace(":", "_"),
                   lambda: os.path.exists(ready))
        with open(ready) as f:
            return json.load(f)["port"]

    def port_open(self, port):
        r = subprocess.run(self.exec_argv(PYTHON, "-c", (
            "import socket,sys\ns=socket.socket()\ns.settimeout(1)\n"
            "sys.exit(s.connect_ex(('127.0.0.1',%d)))" % port)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["ip", "netns", "del", self.ns],
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(self.etc, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _need_root_tools():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespace, iptables, setpriv)")
    for t in ("ip", "iptables", "ip6tables", "nsenter", "setpriv"):
        if shutil.which(t) is None:
            pytest.skip("%s is not installed" % t)
    for f in (LIB, RUN):
        if not os.path.exists(f):
            pytest.skip("%s is not built (run `make`)" % f)


@pytest.fixture(scope="module")
def lab():
    _need_root_tools()
    try:
        lb = Lab()
    except subprocess.CalledProcessError as e:
        pytest.skip("cannot build the namespace lab: %s %s"
                    % (e.cmd, e.stderr.decode(errors="replace")))
    yield lb
    lb.close()


def _mpgw_accepts(lab, sections):
    """Whether `mpgw -t` takes this config (feature present)."""
    if not os.access(MPGW, os.X_OK):
        return False
    p = lab.write("probe-%s.ini" % uuid.uuid4().hex[:6], _ini(sections))
    r = subprocess.run([MPGW, "-t", "-c", p], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    return r.returncode == 0


def _ini(sections):
    out = []
    for sec, kv in sections.items():
        out.append("[%s]" % sec)
        out += ["%s = %s" % (k, v) for k, v in kv.items()]
    return "\n".join(out) + "\n"


class Gw:
    def __init__(self, kind, port, log):
        self.kind, self.port, self.log = kind, port, log

    def lines(self):
        try:
            with open(self.log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def count(self, needle):
        return sum(1 for ln in self.lines() if needle in ln)

    def wait_line(self, needle, n=1):
        _wait_for(lambda: self.count(needle) >= n,
                  "%r in the access log of %s:\n%s"
                  % (needle, self.kind, "\n".join(self.lines())), 10)


@pytest.fixture(scope="module")
def users_file(lab):
    r = _sh("mkpasswd", "-m", "yescrypt", "-s", input=PASSWORD.encode())
    return lab.write("users", "%s:%s\n" % (USER, r.stdout.decode().strip()),
                     0o600)


@pytest.fixture(scope="module")
def certs(lab):
    """A CA and a gateway certificate for 127.0.0.1 (IP SAN)."""
    d = lab.dir
    ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in (
        "ca.key", "ca.pem", "gw.key", "gw.csr", "gw.pem"))
    ext = lab.write("ext.cnf", "subjectAltName=IP:127.0.0.1\n")
    _sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=mpgw test CA")
    _sh("openssl", "req", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=127.0.0.1")
    _sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    os.chmod(ca, 0o644)
    return {"ca": ca, "cert": crt, "key": key}


def _start_mpgw(lab, name, port, sections):
    if not os.access(MPGW, os.X_OK):
        pytest.skip("%s is not built yet" % MPGW)
    log = lab.path(name + ".access")
    conf = {"gateway": {"workers": "1", "log_level": "debug",
                        "access_log": log}}
    for k, v in sections.items():
        conf.setdefault(k, {}).update(v)
    if not _mpgw_accepts(lab, conf):
        return None
    p = lab.write(name + ".ini", _ini(conf))
    lab.spawn([MPGW, "-c", p], name, lambda: lab.port_open(port))
    return Gw("mpgw", port, log)


# MPGW_SHIM_MOCK=1 runs the explicit-mode tests against the reference
# gateway instead of build/mpgw (to tell shim bugs from daemon bugs).
USE_MOCK = os.environ.get("MPGW_SHIM_MOCK") == "1"


@pytest.fixture(scope="module")
def gw_none(lab, request):
    if USE_MOCK:
        return request.getfixturevalue("mock_tls")
    gw = _start_mpgw(lab, "gw-none", GW_PORT, {"socks5": {
        "listen": "127.0.0.1:%d" % GW_PORT, "methods": "none"}})
    if gw is None:
        pytest.skip("build/mpgw -t rejects a plain socks5 config")
    return gw


@pytest.fixture(scope="module")
def gw_userpass(lab, users_file, request):
    if USE_MOCK:
        return request.getfixturevalue("mock_tls")
    gw = _start_mpgw(lab, "gw-userpass", GW_PORT + 10, {
        "socks5": {"listen": "127.0.0.1:%d" % (GW_PORT + 10),
                   "methods": "userpass"},
        "auth": {"users": users_file}})
    if gw is None:
        pytest.skip("build/mpgw -t rejects methods = userpass")
    return gw


@pytest.fixture(scope="module")
def gw_tls_login(lab, users_file, certs):
    gw = _start_mpgw(lab, "gw-tlslogin", GW_PORT + 20, {
        "socks5": {"listen": "127.0.0.1:%d" % (GW_PORT + 20),
                   "methods": "tls-login"},
        "tls": {"cert": certs["cert"], "key": certs["key"]},
        "auth": {"users": users_file}})
    if gw is None:
        pytest.skip("build/mpgw -t rejects methods = tls-login (the "
                    "gateway side of 0x83 is not there yet)")
    return gw


@pytest.fixture(scope="module")
def gw_convert(lab):
    keys = lab.write("keys", "%s %s\n" % (USER, base64.b64encode(KEY)
                                          .decode()), 0o600)
    gw = _start_mpgw(lab, "gw-convert", CONV_PORT, {
        "socks5": {"listen": "127.0.0.1:%d" % (GW_PORT + 30)},
        "convert": {"listen": "127.0.0.1:%d" % CONV_PORT,
                    "require_auth": "yes", "keys": keys}})
    if gw is None:
        pytest.skip("build/mpgw -t rejects a [convert] section (the "
                    "Convert listener is not there yet)")
    return gw


@pytest.fixture(scope="module")
def mock_tls(lab, certs):
    log = lab.path("mockgw.access")
    ready = lab.path("mockgw.ready")
    lab.spawn([PYTHON, os.path.abspath(__file__), "mockgw", "--port",
               str(MOCK_PORT), "--methods", "tls-login,userpass,none",
               "--users", "%s:%s" % (USER, PASSWORD), "--cert",
               certs["cert"], "--key", certs["key"], "--log", log,
               "--ready", ready], "mockgw", lambda: os.path.exists(ready))
    return Gw("mock", MOCK_PORT, log)


@pytest.fixture(scope="module")
def mock_conv(lab):
    log = lab.path("mockconv.access")
    ready = lab.path("mockconv.ready")
    lab.spawn([PYTHON, os.path.abspath(__file__), "mockconv", "--port",
               str(MOCKCONV_PORT), "--keys", "%s:%s" % (
                   USER, base64.b64encode(KEY).decode()), "--log", log,
               "--ready", ready], "mockconv", lambda: os.path.exists(ready))
    return Gw("mockconv", MOCKCONV_PORT, log)


def _env(gw, **kw):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C",
           "MPGW_GATEWAY": "127.0.0.1:%d" % gw.port, "MPGW_TIMEOUT": "10"}
    if os.environ.get("MPGW_ASAN") == "1":
        # An ASan-built libmpgw.so in a program that is not: the runtime
        # cannot come first in the library list.
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0:detect_leaks=0"
    for k, v in kw.items():
        env["MPGW_" + k.upper()] = v
    return env


def _client(lab, env, *argv, shim=True, root=False):
    if shim:
        argv = (lab.run,) + argv
    return subprocess.run(lab.client_argv(*argv, root=root), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=TIMEOUT)


def _out(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (
        r.returncode, r.stdout.decode(errors="replace")[-2000:],
        r.stderr.decode(errors="replace")[-2000:])


# --- the fence itself --------------------------------------------------

def test_fence_blocks_direct_connections(lab, gw_none):
    """Without the shim, nobody cannot reach the origin: so any success
    below went through a gateway."""
    r = _client(lab, _env(gw_none), "curl", "-sS", "--max-time", "10",
                "http://%s:%d/hello" % (ORIGIN4, lab.origin4), shim=False)
    assert r.returncode == 7, _out(r)      # couldn't connect
    r = _client(lab, _env(gw_none), "curl", "-sS", "--max-time", "10",
                "http://%s:%d/hello" % (ORIGIN4, lab.origin4), shim=False,
                root=True)
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)


# --- explicit mode with real programs ----------------------------------

PY_CLIENTS = {
    "blocking": """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"GET /hello HTTP/1.0\\r\\n\\r\\n")
d = b""
while True:
    c = s.recv(4096)
    if not c: break
    d += c
print(d.split(b"\\r\\n\\r\\n", 1)[1].decode(), end="")
""",
    "timeout": """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(10)
s.connect((sys.argv[1], int(sys.argv[2])))
peer = s.getpeername()
if sys.argv[1][0].isdigit() or ":" in sys.argv[1]:
    assert peer[0] == sys.argv[1] and peer[1] == int(sys.argv[2]), peer
s.sendall(b"GET /hello HTTP/1.0\\r\\n\\r\\n")
d = b""
while True:
    c = s.recv(4096)
    if not c: break
    d += c
print(d.split(b"\\r\\n\\r\\n", 1)[1].decode(), end="")
""",
    "asyncio": """
import asyncio, sys
async def main():
    r, w = await asyncio.wait_for(asyncio.open_connection(
        sys.argv[1], int(sys.argv[2])), 10)
    w.write(b"GET /hello HTTP/1.0\\r\\n\\r\\n")
    d = await r.read()
    w.close()
    print(d.split(b"\\r\\n\\r\\n", 1)[1].decode(), end="")
asyncio.run(main())
""",
    "urllib": """
import sys, urllib.request
print(urllib.request.urlopen("http://%s:%s/hello" % (sys.argv[1], sys.argv[2]),
      timeout=10).read().decode(), end="")
""",
}


def _py(lab, name):
    return lab.write("client-%s.py" % name, PY_CLIENTS[name])


def _target(lab, host):
    return "%s:%d" % (host, lab.origin4) if ":" not in host else \
        "[%s]:%d" % (host, lab.origin6)


@pytest.mark.parametrize("prog", ["curl", "wget", "py-blocking", "py-timeout",
                                  "py-asyncio", "py-urllib"])
def test_explicit_none(lab, gw_none, prog):
    env = _env(gw_none)
    url = "http://%s:%d/hello" % (ORIGIN4, lab.origin4)
    before = gw_none.count("target=%s:%d" % (ORIGIN4, lab.origin4))
    if prog == "curl":
        r = _client(lab, env, "curl", "-sS", "--max-time", "20", url)
    elif prog == "wget":
        r = _client(lab, env, "wget", "-q", "-O", "-", "-T", "20", url)
    else:
        r = _client(lab, env, PYTHON, _py(lab, prog[3:]), ORIGIN4,
                    str(lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    gw_none.wait_line("target=%s:%d" % (ORIGIN4, lab.origin4), before + 1)


def test_explicit_ipv6_target(lab, gw_none):
    r = _client(lab, _env(gw_none), PYTHON, _py(lab, "timeout"), ORIGIN6,
                str(lab.origin6))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    gw_none.wait_line("target=[%s]:%d" % (ORIGIN6, lab.origin6))


def test_explicit_refused_maps_to_econnrefused(lab, gw_none):
    """REP 05 from the gateway -> ECONNREFUSED, for blocking and
    non-blocking sockets alike; curl reports it as exit 7."""
    code = """
import errno, socket, sys
for timeout in (None, 10):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((sys.argv[1], 1))
    except OSError as e:
        assert e.errno == errno.ECONNREFUSED, e
    else:
        sys.exit("connected")
print("ok")
"""
    r = _client(lab, _env(gw_none), PYTHON, lab.write("refused.py", code),
                ORIGIN4)
    assert r.returncode == 0 and r.stdout == b"ok\n", _out(r)
    r = _client(lab, _env(gw_none), "curl", "-sS", "--max-time", "20",
                "http://%s:1/" % ORIGIN4)
    assert r.returncode == 7, _out(r)


@pytest.mark.parametrize("prog", ["curl", "py-timeout"])
def test_explicit_userpass(lab, gw_userpass, prog):
    env = _env(gw_userpass, method="userpass", user=USER, password=PASSWORD)
    url = "http://%s:%d/hello" % (ORIGIN4, lab.origin4)
    if prog == "curl":
        r = _client(lab, env, "curl", "-sS", "--max-time", "20", url)
    else:
        r = _client(lab, env, PYTHON, _py(lab, "timeout"), ORIGIN4,
                    str(lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    gw_userpass.wait_line("target=%s:%d" % (ORIGIN4, lab.origin4))


def test_explicit_userpass_wrong_password(lab, gw_userpass):
    env = _env(gw_userpass, method="userpass", user=USER, password="nope")
    r = _client(lab, env, PYTHON, "-c", (
        "import socket,sys\ns=socket.socket()\n"
        "try:\n s.connect(('%s',%d))\nexcept OSError as e:\n"
        " print(e.errno)\n sys.exit(0)\nsys.exit(3)") % (ORIGIN4,
                                                       lab.origin4))
    assert r.returncode == 0 and r.stdout.strip() == b"13", _out(r)  # EACCES


def _tls_login_check(lab, gw, certs):
    env = _env(gw, method="tls-login", user=USER, password=PASSWORD,
               ca=certs["ca"])
    for prog in ("curl", "py-timeout"):
        if prog == "curl":
            r = _client(lab, env, "curl", "-sS", "--max-time", "20",
                        "http://%s:%d/bytes/300000" % (ORIGIN4,
                                                        lab.origin4),
                        "-o", "/dev/null", "-w", "%{size_download}")
            assert r.returncode == 0 and r.stdout == b"300000", _out(r)
        else:
            r = _client(lab, env, PYTHON, _py(lab, "timeout"), ORIGIN4,
                        str(lab.origin4))
            assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    gw.wait_line("target=%s:%d" % (ORIGIN4, lab.origin4), 2)
    # A CA that did not sign the gateway's certificate: refused.
    env["MPGW_CA"] = "/etc/ssl/certs/ca-certificates.crt"
    r = _client(lab, env, "curl", "-sS", "--max-time", "20",
                "http://%s:%d/hello" % (ORIGIN4, lab.origin4))
    assert r.returncode != 0, _out(r)
    assert b"certificate" in r.stderr, _out(r)


def test_tls_login_reference_gateway(lab, mock_tls, certs):
    """The shim's side of method 0x83 against the reference gateway in this
    file (record-exact TLS, close_notify both ways, then cleartext)."""
    _tls_login_check(lab, mock_tls, certs)
    assert mock_tls.count("method=tls-login user=%s" % USER) >= 2


def test_tls_login_mpgw(lab, gw_tls_login, certs):
    _tls_login_check(lab, gw_tls_login, certs)


def test_tls_login_resumes_within_a_process(lab, gw_tls_login, certs):
    """Issue 12: the shim keeps the gateway's TLS 1.3 session ticket and the
    process's next tls-login handshake resumes it (the shim says so in its
    debug output); every request still gets its bytes."""
    env = _env(gw_tls_login, method="tls-login", user=USER,
               password=PASSWORD, ca=certs["ca"])
    env["MPGW_DEBUG"] = "1"
    code = ("import socket, sys\n"
            "for i in range(3):\n"
            "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), "
            "timeout=20)\n"
            "    s.sendall(b'GET /hello HTTP/1.0\\r\\n\\r\\n')\n"
            "    b = b''\n"
            "    while True:\n"
            "        d = s.recv(4096)\n"
            "        if not d: break\n"
            "        b += d\n"
            "    s.close()\n"
            "    sys.stdout.write(b.split(b'\\r\\n\\r\\n', 1)[1].decode())\n")
    r = _client(lab, env, PYTHON, "-c", code, ORIGIN4, str(lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n" * 3, _out(r)
    assert r.stderr.count(b"tls-login: session resumed") == 2, _out(r)


# --- remote DNS --------------------------------------------------------

def test_remote_dns_curl(lab, gw_none):
    env = _env(gw_none, remote_dns="on", dns_table=os.path.join(lab.rw, "dns-table"))
    r = _client(lab, env, "curl", "-sS", "--max-time", "20",
                "http://%s:%d/hello" % (NAME, lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    gw_none.wait_line("target=%s:%d" % (NAME, lab.origin4))


def test_remote_dns_python_families(lab, gw_none):
    env = _env(gw_none, remote_dns="on", dns_table=os.path.join(lab.rw, "dns-table"))
    code = """
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
a4 = socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)
a6 = socket.getaddrinfo(name, port, socket.AF_INET6, socket.SOCK_STREAM)
au = socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM)
assert a4[0][4][0].startswith("198.18."), a4
assert a6[0][4][0].startswith("fc00:"), a6
assert [x[0] for x in au] == [socket.AF_INET], au
assert socket.getnameinfo(a4[0][4], 0)[0] == name
assert socket.gethostbyaddr(a6[0][4][0])[0] == name
assert socket.gethostbyname(name) == a4[0][4][0]
assert socket.getaddrinfo("localhost", 1)[0][4][0] in ("127.0.0.1", "::1")
assert socket.getaddrinfo("10.77.200.1", 1)[0][4][0] == "10.77.200.1"
for fam, a in ((socket.AF_INET6, a6), (socket.AF_INET, a4)):
    s = socket.socket(fam)
    s.settimeout(10)
    s.connect(a[0][4])
    s.sendall(b"GET /hello HTTP/1.0\\r\\n\\r\\n")
    d = b""
    while True:
        c = s.recv(4096)
        if not c: break
        d += c
    assert d.endswith(b"hello\\n"), d
print("ok")
"""
    r = _client(lab, env, PYTHON, lab.write("dns.py", code), NAME,
                str(lab.origin4))
    assert r.returncode == 0 and r.stdout == b"ok\n", _out(r)
    gw_none.wait_line("target=%s:%d" % (NAME, lab.origin4), 2)


# --- the probe ---------------------------------------------------------

@pytest.fixture(scope="module")
def probe(lab):
    out = lab.path("shimprobe")
    r = subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-Wall",
                        "-pthread", "-o", out,
                        os.path.join(HERE, "shimprobe.c")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode == 0, r.stdout.decode()
    os.chmod(out, 0o755)
    return out


def _run_probe(lab, gw, probe, env, *checks):
    r = _client(lab, env, probe, ORIGIN4, str(lab.origin4), ORIGIN6,
                str(lab.origin6), *checks)
    assert r.returncode == 0, _out(r)
    return r


PROBE_CHECKS = ["blocking", "nonblocking", "refused", "getpeername",
                "options", "bind", "ipv6", "v4mapped", "fork", "threads",
                "epoll", "errno", "fastopen", "dup2", "closefrom"]


@pytest.mark.parametrize("check", PROBE_CHECKS)
def test_probe_explicit(lab, gw_none, probe, check):
    _run_probe(lab, gw_none, probe, _env(gw_none), check)


def test_probe_mptcp_sockets(lab, gw_none, probe):
    if not os.path.exists("/proc/sys/net/mptcp/enabled"):
        pytest.skip("this kernel has no MPTCP")
    _run_probe(lab, gw_none, probe, _env(gw_none, mptcp="on"), "mptcp",
               "nonblocking", "options")


def test_probe_explicit_tls_login(lab, mock_tls, probe, certs):
    env = _env(mock_tls, method="tls-login", user=USER, password=PASSWORD,
               ca=certs["ca"])
    _run_probe(lab, mock_tls, probe, env, "blocking", "nonblocking",
               "threads", "epoll", "fastopen")


# --- implicit mode -----------------------------------------------------

def _implicit_env(gw):
    # The reference converter takes cookieless SYN data (sysctl 0x200):
    # the shim may send it so, and every connection is checked for it.
    return _env(gw, mode="implicit", user=USER,
                key=base64.b64encode(KEY).decode(), tfo_no_cookie="on")


def test_implicit_reference_converter(lab, mock_conv, probe):
    """The Convert message in the SYN, signed, Silent; checked by the
    reference converter in this file (MAC, TCPI_OPT_SYN_DATA)."""
    env = _implicit_env(mock_conv)
    r = _client(lab, env, "curl", "-sS", "--max-time", "20",
                "http://%s:%d/hello" % (ORIGIN4, lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    mock_conv.wait_line("target=%s:%d result=ok syn_data=1"
                        % (ORIGIN4, lab.origin4))
    for check in ("blocking", "nonblocking", "getpeername", "ipv6",
                  "threads", "epoll", "fastopen", "errno"):
        _run_probe(lab, mock_conv, probe, env, check)
    # Remote DNS: Connect-Name.
    env.update(MPGW_REMOTE_DNS="on", MPGW_DNS_TABLE=os.path.join(lab.rw, "dns-table"))
    r = _client(lab, env, _py_path(lab), NAME, str(lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    mock_conv.wait_line("target=%s:%d result=ok" % (NAME, lab.origin4))
    # A wrong key: the converter resets the connection.
    env["MPGW_KEY"] = base64.b64encode(b"x" * 32).decode()
    r = _client(lab, env, "curl", "-sS", "--max-time", "20",
                "http://%s:%d/hello" % (ORIGIN4, lab.origin4))
    assert r.returncode != 0, _out(r)


def _program(lab, prog, url_host, port):
    url = "http://%s:%d/hello" % (url_host, port)
    if prog == "curl":
        return ("curl", "-sS", "--max-time", "20", url)
    if prog == "curl-tfo":
        return ("curl", "-sS", "--tcp-fastopen", "--max-time", "20", url)
    if prog == "wget":
        return ("wget", "-q", "-O", "-", "-T", "20", url)
    return (PYTHON, _py(lab, prog[3:]), url_host, str(port))


@pytest.mark.parametrize("prog", ["curl", "curl-tfo", "wget", "py-blocking",
                                  "py-timeout", "py-asyncio", "py-urllib"])
def test_implicit_reference_programs(lab, mock_conv, prog):
    before = mock_conv.count("target=%s:%d result=ok syn_data=1"
                             % (ORIGIN4, lab.origin4))
    r = _client(lab, _implicit_env(mock_conv),
                *_program(lab, prog, ORIGIN4, lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    mock_conv.wait_line("target=%s:%d result=ok syn_data=1"
                        % (ORIGIN4, lab.origin4), before + 1)


def test_explicit_curl_tcp_fastopen(lab, gw_none):
    """curl --tcp-fastopen sets TCP_FASTOPEN_CONNECT: connect() returns at
    once with the SYN deferred; the handshake must still work."""
    r = _client(lab, _env(gw_none),
                *_program(lab, "curl-tfo", ORIGIN4, lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)


def _py_path(lab):
    return lab.write("client-timeout-run.sh", "#!/bin/sh\nexec %s %s \"$@\"\n"
                     % (PYTHON, _py(lab, "timeout")), 0o755)


@pytest.mark.parametrize("prog", ["curl", "wget", "py-timeout", "py-asyncio"])
def test_implicit_mpgw(lab, gw_convert, prog):
    env = _implicit_env(gw_convert)
    url = "http://%s:%d/hello" % (ORIGIN4, lab.origin4)
    if prog == "curl":
        r = _client(lab, env, "curl", "-sS", "--max-time", "20", url)
    elif prog == "wget":
        r = _client(lab, env, "wget", "-q", "-O", "-", "-T", "20", url)
    else:
        r = _client(lab, env, PYTHON, _py(lab, prog[3:]), ORIGIN4,
                    str(lab.origin4))
    assert r.returncode == 0 and r.stdout == b"hello\n", _out(r)
    gw_convert.wait_line("target=%s:%d" % (ORIGIN4, lab.origin4))


@pytest.mark.parametrize("check", ["blocking", "nonblocking", "refused",
                                   "getpeername", "ipv6", "fork", "threads",
                                   "epoll", "fastopen", "errno"])
def test_probe_implicit_mpgw(lab, gw_convert, probe, check):
    _run_probe(lab, gw_convert, probe, _implicit_env(gw_convert), check)


# --- mpgw-run ----------------------------------------------------------

def _run_nobody(lab, *argv, env=None):
    e = {"PATH": "/usr/bin:/bin"}
    if os.environ.get("MPGW_ASAN") == "1":
        e["ASAN_OPTIONS"] = "verify_asan_link_order=0:detect_leaks=0"
    e.update(env or {})
    return _client(lab, e, lab.run, *argv, shim=False)


def test_run_refuses_static(lab):
    static = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not os.path.exists(static):
        pytest.skip("no static binary (ldconfig) here")
    r = _run_nobody(lab, static, "-p")
    assert r.returncode == 126 and b"statically linked" in r.stderr, _out(r)


def test_run_refuses_setuid(lab):
    p = lab.path("suid-true")
    shutil.copy("/bin/true", p)
    os.chmod(p, 0o4755)         # owned by root, run by nobody
    r = _run_nobody(lab, p)
    assert r.returncode == 126 and b"set-user-ID" in r.stderr, _out(r)


def test_run_refuses_go(lab):
    src = lab.write("fakego.c", (
        '__attribute__((section(".go.buildinfo"), used))\n'
        'static const char bi[] = "\\xff Go buildinf:";\n'
        'int main(void) { return 0; }\n'))
    out = lab.path("fakego")
    _sh("gcc", "-o", out, src)
    os.chmod(out, 0o755)
    r = _run_nobody(lab, out)
    assert r.returncode == 126 and b"Go program" in r.stderr, _out(r)


def test_run_prepends_ld_preload_and_sets_config(lab):
    cfg = lab.write("shim.ini", "[shim]\ngateway = 127.0.0.1:1080\n")
    extra = "/lib/x86_64-linux-gnu/libm.so.6"
    if not os.path.exists(extra):
        extra = lab.lib
    r = _run_nobody(lab, "-c", cfg, "sh", "-c",
                    'echo "$LD_PRELOAD|$MPGW_CONFIG"',
                    env={"PATH": "/usr/bin:/bin", "LD_PRELOAD": extra})
    assert r.returncode == 0, _out(r)
    assert r.stdout.decode().strip() == "%s:%s|%s" % (
        os.path.realpath(lab.lib), extra, cfg), _out(r)


def test_run_reports_config_errors(lab):
    cfg = lab.write("bad.ini", "[shim]\ngateway = 127.0.0.1:1080\nmode = x\n")
    r = _run_nobody(lab, "-c", cfg, "true")
    assert r.returncode == 2, _out(r)
    assert b"bad.ini:3" in r.stderr and b"mode" in r.stderr, _out(r)
