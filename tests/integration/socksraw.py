"""A small raw-socket SOCKS5 client (RFC 1928, RFC 1929) for wire tests.

Independent of the gateway's codec on purpose: it builds messages byte by
byte from the RFCs and parses replies strictly, so a test sees exactly what
the gateway put on the wire.
"""

import ipaddress
import os
import socket
import struct
import time

VER = 0x05
M_NONE, M_USERPASS, M_UNACCEPTABLE = 0x00, 0x02, 0xFF
CMD_CONNECT, CMD_BIND, CMD_UDP = 0x01, 0x02, 0x03
ATYP_V4, ATYP_NAME, ATYP_V6 = 0x01, 0x03, 0x04

REP_OK = 0x00
REP_GENERAL = 0x01
REP_NOT_ALLOWED = 0x02
REP_NET_UNREACH = 0x03
REP_HOST_UNREACH = 0x04
REP_REFUSED = 0x05
REP_TTL = 0x06
REP_CMD = 0x07
REP_ATYP = 0x08

# Generous bounds: they only stop a hung test, they measure nothing.
IO_TIMEOUT = 20.0 * (4 if os.environ.get("MPGW_ASAN") == "1" else 1)


class ProtocolError(AssertionError):
    pass


def open_conn(port, host="127.0.0.1", timeout=IO_TIMEOUT, nodelay=False):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((host, port))
    return s


def greeting(methods=(M_NONE,)):
    return bytes([VER, len(methods)]) + bytes(methods)


def userpass(user, password):
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    return bytes([0x01, len(u)]) + u + bytes([len(p)]) + p


def encode_addr(host):
    """(ATYP, address bytes) for an IPv4/IPv6 literal or a domain name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode() if isinstance(host, str) else host
        return ATYP_NAME, bytes([len(name)]) + name
    if ip.version == 4:
        return ATYP_V4, ip.packed
    return ATYP_V6, ip.packed


def request(host, port, cmd=CMD_CONNECT, atyp=None, raw_addr=None):
    """VER CMD RSV ATYP DST.ADDR DST.PORT. atyp/raw_addr override the
    encoding, for malformed requests."""
    a, enc = encode_addr(host) if raw_addr is None else (atyp, raw_addr)
    if atyp is not None:
        a = atyp
    return bytes([VER, cmd, 0x00, a]) + enc + struct.pack("!H", port)


def recv_exact(s, n, what="data"):
    buf = b""
    while len(buf) < n:
        try:
            b = s.recv(n - len(buf))
        except ConnectionResetError:
            b = b""
        if not b:
            raise ProtocolError("connection closed after %d of %d bytes of %s"
                                " (got %r)" % (len(buf), n, what, buf))
        buf += b
    return buf


def recv_until_eof(s, timeout=IO_TIMEOUT, eof_errors=(ConnectionResetError,)):
    """Everything until the peer closes. A reset (or another of eof_errors)
    counts as a close (the bytes before it are kept). Raises TimeoutError if
    no EOF in timeout."""
    deadline = time.monotonic() + timeout
    parts = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no EOF within %.0f s; got %d bytes"
                               % (timeout, sum(map(len, parts))))
        s.settimeout(left)
        try:
            b = s.recv(1 << 16)
        except eof_errors:
            break
        except socket.timeout:
            raise TimeoutError("no EOF within %.0f s; got %d bytes"
                               % (timeout, sum(map(len, parts))))
        if not b:
            break
        parts.append(b)
    return b"".join(parts)


class Reply:
    def __init__(self, raw):
        self.raw = raw
        self.ver, self.rep, self.rsv, self.atyp = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:-2]
        self.port = struct.unpack("!H", raw[-2:])[0]
        if self.atyp == ATYP_V4:
            self.addr = str(ipaddress.IPv4Address(body))
        elif self.atyp == ATYP_V6:
            self.addr = str(ipaddress.IPv6Address(body))
        else:
            self.addr = body[1:].decode("latin-1")

    def __repr__(self):
        return "Reply(rep=%#04x, atyp=%d, bnd=%s:%d, raw=%s)" % (
            self.rep, self.atyp, self.addr, self.port, self.raw.hex())


def read_method(s):
    m = recv_exact(s, 2, "method selection")
    if m[0] != VER:
        raise ProtocolError("method selection with VER %#04x: %r" % (m[0], m))
    return m[1]


def read_userpass_status(s):
    st = recv_exact(s, 2, "RFC 1929 status")
    if st[0] != 0x01:
        raise ProtocolError("RFC 1929 status with VER %#04x: %r" % (st[0], st))
    return st[1]


def read_reply(s):
    """A complete reply; raises ProtocolError if it is short or malformed."""
    head = recv_exact(s, 4, "reply header")
    if head[0] != VER:
        raise ProtocolError("reply VER %#04x: %r" % (head[0], head))
    if head[2] != 0x00:
        raise ProtocolError("reply RSV %#04x: %r" % (head[2], head))
    if head[3] == ATYP_V4:
        rest = recv_exact(s, 6, "IPv4 BND")
    elif head[3] == ATYP_V6:
        rest = recv_exact(s, 18, "IPv6 BND")
    elif head[3] == ATYP_NAME:
        ln = recv_exact(s, 1, "BND name length")
        rest = ln + recv_exact(s, ln[0] + 2, "BND name")
    else:
        raise ProtocolError("reply ATYP %#04x: %r" % (head[3], head))
    return Reply(head + rest)


def handshake(s, host, port, methods=(M_NONE,), user=None, password=None,
              cmd=CMD_CONNECT):
    """Greeting (+ RFC 1929 if chosen) + request; returns the Reply.
    Sends each message only after the previous answer, like most clients."""
    s.sendall(greeting(methods))
    m = read_method(s)
    if m == M_USERPASS:
        if user is None:
            raise ProtocolError("gateway chose userpass, no credentials given")
        s.sendall(userpass(user, password))
        st = read_userpass_status(s)
        if st != 0:
            raise ProtocolError("authentication failed, status %#04x" % st)
    elif m != M_NONE:
        raise ProtocolError("gateway chose method %#04x" % m)
    s.sendall(request(host, port, cmd))
    return read_reply(s)


def connect_via(gw_port, host, port, **kw):
    """A socket through the gateway to host:port, reply checked as success."""
    s = open_conn(gw_port)
    try:
        r = handshake(s, host, port, **kw)
    except BaseException:
        s.close()
        raise
    if r.rep != REP_OK:
        s.close()
        raise ProtocolError("CONNECT %s:%d failed: %r" % (host, port, r))
    return s, r


# --- UDP ASSOCIATE (RFC 1928 section 7) and BIND (section 4) ----------------

def udp_header(host, port, frag=0):
    """RSV(2) FRAG ATYP DST.ADDR DST.PORT, written from the RFC."""
    a, enc = encode_addr(host)
    return b"\x00\x00" + bytes([frag, a]) + enc + struct.pack("!H", port)


def parse_udp(data):
    """(frag, host, port, payload) of a datagram from the relay; raises
    ProtocolError if its header is short or malformed."""
    if len(data) < 4 or data[0:2] != b"\x00\x00":
        raise ProtocolError("UDP header RSV/length: %r" % data[:8])
    frag, atyp = data[2], data[3]
    if atyp == ATYP_V4:
        end = 8
        host = str(ipaddress.IPv4Address(data[4:8])) if len(data) >= 8 \
            else None
    elif atyp == ATYP_V6:
        end = 20
        host = str(ipaddress.IPv6Address(data[4:20])) if len(data) >= 20 \
            else None
    elif atyp == ATYP_NAME and len(data) > 4:
        end = 5 + data[4]
        host = data[5:end].decode("latin-1")
    else:
        raise ProtocolError("UDP header ATYP %#04x: %r" % (atyp, data[:8]))
    if host is None or len(data) < end + 2:
        raise ProtocolError("UDP header truncated: %r" % data[:24])
    port = struct.unpack("!H", data[end:end + 2])[0]
    return frag, host, port, data[end + 2:]


class Association:
    """A UDP association: the control connection (ctl), the relay's
    address (relay) from the reply, and a UDP socket (sock) of the
    control connection's family, bound on loopback, for datagrams."""

    def __init__(self, gw_port, host="0.0.0.0", port=0, gw_host="127.0.0.1",
                 sock=None, **kw):
        self.ctl = open_conn(gw_port, host=gw_host)
        try:
            self.reply = handshake(self.ctl, host, port, cmd=CMD_UDP, **kw)
        except BaseException:
            self.ctl.close()
            raise
        self.relay = (self.reply.addr, self.reply.port)
        fam = socket.AF_INET6 if ":" in gw_host else socket.AF_INET
        self.sock = sock or socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.settimeout(IO_TIMEOUT)

    def ok(self):
        return self.reply.rep == REP_OK

    def send(self, host, port, payload, frag=0, sock=None):
        (sock or self.sock).sendto(udp_header(host, port, frag) + payload,
                                   self.relay)

    def recv(self, timeout=IO_TIMEOUT, sock=None):
        """(host, port, payload) of the next datagram from the relay."""
        s = sock or self.sock
        s.settimeout(timeout)
        data, src = s.recvfrom(1 << 17)
        if src[:2] != self.relay[:2] and \
                (src[0], src[1]) != (self.relay[0], self.relay[1]):
            raise ProtocolError("datagram from %r, relay is %r"
                                % (src, self.relay))
        frag, host, port, payload = parse_udp(data)
        if frag != 0:
            raise ProtocolError("relay sent FRAG %d" % frag)
        return host, port, payload

    def queued(self, sock=None):
        """The datagram already waiting in the socket, or None; never
        waits. A drop is shown by ordering, not by waiting: the dropped
        datagram is sent first and an accepted one after it, and once the
        second one's answer is in, anything the first one caused would
        already be queued."""
        s = sock or self.sock
        s.setblocking(False)
        try:
            return s.recv(1 << 17)
        except BlockingIOError:
            return None
        finally:
            s.settimeout(IO_TIMEOUT)

    def close(self):
        self.ctl.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
