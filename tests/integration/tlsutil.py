"""Helpers for the TLS and policy integration tests: the test PKI, python
TLS clients for methods 0x80/0x82/0x83 (an ssl.SSLSocket one and a
memory-BIO one that controls every byte it sends), network namespaces with a
gateway and test servers inside, tcpdump captures and a small pcap reader
that reassembles TCP streams."""

import atexit
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import uuid

import gwutil
import socksraw as sr
from gwutil import BUILD, HERE, PYTHON, ROOT, SLOW, START_TIMEOUT, wait_until

M_TLS, M_TLS_USERPASS, M_TLS_LOGIN = 0x80, 0x82, 0x83
METHOD_NAMES = {sr.M_NONE: "none", sr.M_USERPASS: "userpass", M_TLS: "tls",
                M_TLS_USERPASS: "tls-userpass", M_TLS_LOGIN: "tls-login"}

EOF_WAIT = 15 * SLOW       # bound on "the gateway closes"; not a claim


# --- the test PKI -----------------------------------------------------------

def certs_dir():
    """$MPGW_BUILD/certs, made by tests/certs.sh if it is not there yet."""
    d = os.path.join(ROOT, BUILD, "certs")
    if not os.path.exists(os.path.join(d, ".done")):
        subprocess.run(["sh", os.path.join(ROOT, "tests", "certs.sh"), d],
                       check=True, timeout=120, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    return d


def tls_section(certs, **extra):
    sec = {"cert": os.path.join(certs, "server.pem"),
           "key": os.path.join(certs, "server.key")}
    sec.update(extra)
    return sec


def client_ctx(certs, cert=None, version=None):
    """A verifying client context (the test CA, server name "localhost").
    cert: "alice", "expired", "rogue" or None. version: ssl.TLSVersion to
    pin, or None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(certs, "ca.pem"))
    if cert is not None:
        ctx.load_cert_chain(os.path.join(certs, cert + ".pem"),
                            os.path.join(certs, cert + ".key"))
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


# --- SOCKS5 with the TLS methods over an SSLSocket --------------------------

def negotiate(s, method):
    """Offer only method; assert the gateway chose it."""
    s.sendall(sr.greeting([method]))
    m = sr.read_method(s)
    assert m == method, "gateway chose %#04x, offered only %#04x" % (m, method)


def tls_open(port, ctx, method, host="127.0.0.1", sock=None):
    """TCP to the gateway (or the given socket), greeting, method reply,
    TLS handshake. Returns the SSLSocket."""
    s = sock if sock is not None else sr.open_conn(port, host)
    try:
        negotiate(s, method)
        return ctx.wrap_socket(s, server_hostname="localhost")
    except BaseException:
        s.close()
        raise


def tls_login(ts, method, user, password):
    """RFC 1929 inside TLS (0x82/0x83); returns the status byte."""
    assert method in (M_TLS_USERPASS, M_TLS_LOGIN)
    ts.sendall(sr.userpass(user, password))
    return sr.read_userpass_status(ts)


def tls_connect(port, ctx, method, host, dport, user=None, password=None,
                sock=None):
    """Everything up to a successful reply. For 0x83 also the close_notify
    exchange: returns the plain socket then. Returns (socket, Reply)."""
    ts = tls_open(port, ctx, method, sock=sock)
    try:
        if user is not None:
            st = tls_login(ts, method, user, password)
            assert st == 0, "login as %s failed: status %#04x" % (user, st)
        ts.sendall(sr.request(host, dport))
        r = sr.read_reply(ts)
        assert r.rep == sr.REP_OK, "CONNECT %s:%d: %r" % (host, dport, r)
        if method == M_TLS_LOGIN:
            # Both close_notify sent and read; the same TCP connection goes
            # on in the clear. Hand back a plain socket object for it.
            raw = ts.unwrap()
            plain = socket.socket(raw.family, raw.type, fileno=raw.detach())
            plain.settimeout(sr.IO_TIMEOUT)
            return plain, r
        return ts, r
    except BaseException:
        ts.close()
        raise


def read_eof(s, timeout=EOF_WAIT):
    """Everything until EOF on a plain or TLS socket. A reset, a TLS EOF
    without close_notify or a TLS alert after the last byte all count as
    the end. Raises TimeoutError if the peer does not close in time."""
    return sr.recv_until_eof(s, timeout, eof_errors=(
        ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError))


def http_get(s, path, host="t"):
    """One GET on a connected socket (plain or TLS). Returns (headers dict
    with lower-case names, body sha256 hex, body length). Streams the body
    through the hash, so 64 MiB costs no memory."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (path, host)).encode())
    return read_http_response(s, hashlib.sha256())


def read_http_response(s, h, timeout=gwutil.BIG_TIMEOUT):
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(1 << 16)
        assert b, "EOF in the response head: %r" % buf
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines[0]
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    want = int(hdrs["content-length"])
    n = len(body)
    h.update(body)
    while n < want:
        try:
            b = s.recv(min(1 << 20, want - n))
        except (ssl.SSLEOFError, ConnectionResetError):
            b = b""
        assert b, "EOF after %d of %d body bytes" % (n, want)
        h.update(b)
        n += len(b)
    return hdrs, h.hexdigest(), n


class _Keep:
    """A hash-like sink that keeps what it is given (small bodies)."""

    def __init__(self):
        self.parts = []

    def update(self, b):
        self.parts.append(b)

    def hexdigest(self):
        return None


def http_upload(s, chunks, length, host="t"):
    """PUT /upload with Content-Length; chunks yields the body. Returns
    (headers, response body): the origin answers the sha256 hex + "\\n"."""
    s.sendall(("PUT /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n" % (host, length)).encode())
    for chunk in chunks:
        s.sendall(chunk)
    keep = _Keep()
    hdrs, _, _ = read_http_response(s, keep)
    return hdrs, b"".join(keep.parts)


# --- a TLS client on a memory BIO: every byte on the wire is ours -----------

SIOCOUTQNSD = 0x894B  # bytes in the send queue not yet sent


def wait_sent(sock, timeout=10 * SLOW):
    """Until the kernel has put every queued byte on the wire (so the next
    send() starts a new segment with TCP_NODELAY)."""
    def empty():
        v = fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0")
        return struct.unpack("i", v)[0] == 0
    wait_until(empty, timeout, "the send queue to drain", interval=0.001)


class BioTLS:
    """A TLS client over a plain socket through ssl.MemoryBIO: the test
    decides how the TLS bytes are cut into send() calls."""

    def __init__(self, sock, ctx, server_hostname="localhost"):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname=server_hostname)

    def _pull(self, timeout=sr.IO_TIMEOUT):
        self.sock.settimeout(timeout)
        b = self.sock.recv(1 << 16)
        if not b:
            self.inc.write_eof()
        else:
            self.inc.write(b)
        return b

    def flush(self, one_byte=False):
        data = self.out.read()
        if not one_byte:
            if data:
                self.sock.sendall(data)
            return len(data)
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            wait_sent(self.sock)
        return len(data)

    def handshake(self, one_byte=False):
        """Returns the number of client handshake bytes sent."""
        sent = 0
        while True:
            try:
                self.obj.do_handshake()
                sent += self.flush(one_byte)
                return sent
            except ssl.SSLWantReadError:
                sent += self.flush(one_byte)
                if not self._pull():
                    raise ConnectionError("EOF during the TLS handshake")

    def settimeout(self, t):
        self.sock.settimeout(t)

    def sendall(self, data):
        self.obj.write(data)
        self.flush()

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                buf += self.obj.read(n - len(buf))
            except ssl.SSLWantReadError:
                if not self._pull():
                    raise ConnectionError("EOF after %d of %d bytes" %
                                          (len(buf), n))
        return buf

    def recv(self, n):
        """socksraw-compatible recv (so sr.read_reply works on it)."""
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                if not self._pull():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    def close_notify_with(self, cleartext):
        """tls-login end of TLS: our close_notify and the first cleartext
        bytes go out in ONE send() call (one segment on loopback), before we
        have necessarily read the gateway's close_notify. Then wait for
        theirs. Returns the cleartext bytes that followed their close_notify
        (already read into the BIO)."""
        try:
            self.obj.unwrap()
            done = True
        except ssl.SSLWantReadError:
            done = False
        notify = self.out.read()
        assert notify, "no close_notify produced"
        self.sock.sendall(notify + cleartext)
        while not done:
            if not self._pull():
                raise ConnectionError("EOF before the gateway's close_notify")
            try:
                self.obj.unwrap()
                done = True
            except ssl.SSLWantReadError:
                pass
        return self.inc.read()


# --- network namespaces -----------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
_live_ns = set()


def _cleanup_all():
    for ns in list(_live_ns):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree("/etc/netns/" + ns, ignore_errors=True)


atexit.register(_cleanup_all)


def need_netns():
    """Skip (with the reason) where namespaces cannot be made."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")


def sh(*argv, timeout=60):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                                  r.stderr.decode(errors="replace")))
    return r


def run_in_netns(ns, fn):
    """Call fn() on a thread that has entered namespace ns; returns its
    value. Sockets made there stay in ns for good, whichever thread then
    uses them."""
    box = {}

    def body():
        try:
            fd = os.open("/run/netns/" + ns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns(%s): %s" % (ns, os.strerror(e)))
            finally:
                os.close(fd)
            box["v"] = fn()
        except BaseException as e:  # handed to the caller
            box["e"] = e
    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]


class Netns:
    """A network namespace of ours (unique name, lo up), torn down by
    close(): processes started in it, the namespace, /etc/netns/NAME."""

    def __init__(self, tag, tmpdir, hosts=None):
        self.name = "mpgwt-%s-%d-%s" % (tag, os.getpid(), uuid.uuid4().hex[:6])
        self.dir = tmpdir
        self.procs = []
        self.etc = None
        sh("ip", "netns", "add", self.name)
        _live_ns.add(self.name)
        try:
            sh(*self.argv("ip", "link", "set", "lo", "up"))
            if hosts is not None:
                # `ip netns exec` bind-mounts these over /etc for what it runs.
                self.etc = "/etc/netns/" + self.name
                os.makedirs(self.etc, exist_ok=True)
                with open(os.path.join(self.etc, "hosts"), "w") as f:
                    f.write(hosts)
        except BaseException:
            self.close()
            raise

    def argv(self, *argv):
        return ("ip", "netns", "exec", self.name) + tuple(argv)

    def socket(self, family=socket.AF_INET, bind=None, timeout=sr.IO_TIMEOUT):
        def make():
            s = socket.socket(family, socket.SOCK_STREAM)
            if bind is not None:
                s.bind((bind, 0))
            return s
        s = run_in_netns(self.name, make)
        s.settimeout(timeout)
        return s

    def connect(self, host, port, bind=None, timeout=sr.IO_TIMEOUT):
        s = self.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                        bind=bind, timeout=timeout)
        try:
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s

    def accepts(self, host, port):
        try:
            self.connect(host, port, timeout=2).close()
            return True
        except OSError:
            return False

    def spawn(self, argv, name):
        log = open(os.path.join(self.dir, "%s.log" % name), "wb")
        p = subprocess.Popen(self.argv(*argv), stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log)
        log.close()
        self.procs.append(p)
        return p

    def server(self, kind, host):
        """servers.py kind on host inside the namespace; returns its port."""
        ready = os.path.join(self.dir, "%s-%s-%s.json" % (
            self.name, kind, host.replace(":", "_")))
        p = self.spawn([PYTHON, os.path.join(HERE, "servers.py"), kind,
                        "--host", host, "--ready", ready],
                       "%s-%s" % (kind, host.replace(":", "_")))
        wait_until(lambda: os.path.exists(ready), START_TIMEOUT,
                   "%s server on %s in %s" % (kind, host, self.name), proc=p)
        with open(ready) as f:
            return json.load(f)["port"]

    def gateway(self, sections, listen):
        """mpgw inside the namespace. listen: list of "addr:port" for
        socks5.listen (all checked for readiness, as are tls.listen ones).
        Returns a gwutil.Gateway (stop() checks exit 0 and sanitizers)."""
        conf = gwutil.gateway_conf(listen, sections)
        n = len(self.procs)
        conf_path = os.path.join(self.dir, "%s-mpgw-%d.ini" % (self.name, n))
        err_path = os.path.join(self.dir, "%s-mpgw-%d.stderr" % (self.name, n))
        gwutil.write_ini(conf_path, conf)
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(self.argv(gwutil.MPGW_BIN, "-c", conf_path),
                                    stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    cwd=self.dir)
        self.procs.append(proc)
        addrs = [a for a in conf["socks5"]["listen"].split(",") if a]
        addrs += [a for a in conf.get("tls", {}).get("listen", "").split(",")
                  if a]
        ports = [int(a.rsplit(":", 1)[1]) for a in addrs]
        gw = gwutil.Gateway(proc, conf_path, ports, err_path, conf)
        checks = []
        for a in addrs:
            host, port = a.rsplit(":", 1)
            checks.append(("mpgw to accept on %s in %s" % (a, self.name),
                           lambda h=host.strip("[]"), p=int(port):
                           self.accepts(h, p)))
        gwutil.await_gateway(gw, checks)
        return gw

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["ip", "netns", "del", self.name],
                       stderr=subprocess.DEVNULL)
        _live_ns.discard(self.name)
        if self.etc is not None:
            shutil.rmtree(self.etc, ignore_errors=True)


# --- packet capture ---------------------------------------------------------

class Capture:
    """tcpdump -i IFACE in a namespace, writing a pcap. stop() makes sure
    every packet sent before it was called is in the file: it sends a
    sentinel on the captured port and waits until the file holds it."""

    def __init__(self, ns, iface, bpf, path, port, host="127.0.0.1"):
        self.ns, self.path, self.port, self.host = ns, path, port, host
        self.err = path + ".stderr"
        with open(self.err, "wb") as e:
            self.proc = subprocess.Popen(
                ns.argv("tcpdump", "-i", iface, "-n", "-s", "0", "-U",
                        "--immediate-mode", "-Z", "root", "-w", path, bpf),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e)

        def ready():
            with open(self.err, "rb") as f:
                return b"listening on" in f.read()
        try:
            wait_until(ready, START_TIMEOUT, "tcpdump to listen",
                       proc=self.proc)
        except AssertionError:
            self._kill()
            raise

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        token = b"SENTINEL-" + uuid.uuid4().hex.encode()
        s = self.ns.connect(self.host, self.port)
        try:
            s.sendall(token)
        finally:
            s.close()

        def flushed():
            with open(self.path, "rb") as f:
                return token in f.read()
        try:
            wait_until(flushed, 30 * SLOW, "the sentinel in the capture",
                       proc=self.proc)
        finally:
            self._kill()
        with open(self.path, "rb") as f:
            return f.read()


def pcap_packets(data):
    """(src, sport, dst, dport, flags, seq, payload) for each TCP packet of
    a classic pcap file (Ethernet, Linux cooked v1/v2 or raw IP)."""
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise AssertionError("not a pcap file (magic %r)" % magic)
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:               # Ethernet
            proto, l3 = struct.unpack("!H", pkt[12:14])[0], pkt[14:]
        elif linktype == 113:           # Linux cooked v1
            proto, l3 = struct.unpack("!H", pkt[14:16])[0], pkt[16:]
        elif linktype == 276:           # Linux cooked v2
            proto, l3 = struct.unpack("!H", pkt[0:2])[0], pkt[20:]
        elif linktype in (12, 101):     # raw IP
            proto = 0x0800 if pkt[0] >> 4 == 4 else 0x86DD
            l3 = pkt
        else:
            raise AssertionError("pcap link type %d not handled" % linktype)
        if proto == 0x0800:
            ihl = (l3[0] & 0x0F) * 4
            if l3[9] != 6:
                continue
            tot = struct.unpack("!H", l3[2:4])[0] or len(l3)
            src, dst = socket.inet_ntoa(l3[12:16]), socket.inet_ntoa(l3[16:20])
            tcp = l3[ihl:tot]
        elif proto == 0x86DD:
            if l3[6] != 6:
                continue
            plen = struct.unpack("!H", l3[4:6])[0] or len(l3) - 40
            src = socket.inet_ntop(socket.AF_INET6, l3[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, l3[24:40])
            tcp = l3[40:40 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[0:8])
        doff = (tcp[12] >> 4) * 4
        yield src, sport, dst, dport, tcp[13], seq, tcp[doff:]


def tcp_streams(data):
    """{(src, sport, dst, dport): bytes} for each direction of each TCP
    connection in a pcap, in sequence order, retransmissions merged."""
    segs = {}
    isn = {}
    for src, sport, dst, dport, flags, seq, pl in pcap_packets(data):
        key = (src, sport, dst, dport)
        if flags & 0x02:                # SYN: data starts at seq + 1
            isn[key] = (seq + 1) & 0xFFFFFFFF
        if pl:
            segs.setdefault(key, []).append((seq, pl))
    out = {}
    for key, lst in segs.items():
        base = isn.get(key, min(s for s, _ in lst))
        lst = sorted(((s - base) & 0xFFFFFFFF, p) for s, p in lst)
        buf = bytearray()
        for rel, p in lst:
            if rel > len(buf):
                raise AssertionError("capture of %r misses bytes %d..%d"
                                     % (key, len(buf), rel))
            buf += p[len(buf) - rel:]
        out[key] = bytes(buf)
    return out
