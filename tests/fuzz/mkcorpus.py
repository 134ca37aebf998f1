#!/usr/bin/python3
"""Write the seed corpus of each libFuzzer target into corpus/<target>/:
a few small valid inputs and edge cases per target, named for what they
are. The files are committed; run this again (from tests/fuzz/) after
changing a seed here, and commit what changed.

The fuzzers start from these seeds and write what they find elsewhere
(build-fuzz/corpus/), so the committed corpus stays this small."""

import base64
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def b(*parts):
    out = bytearray()
    for p in parts:
        out += p if isinstance(p, (bytes, bytearray)) else bytes(p)
    return bytes(out)


# SOCKS5 (RFC 1928, RFC 1929): every message kind, valid and edge cases.
SOCKS5 = {
    "greeting-none": b([5, 1, 0]),
    "greeting-all-methods": b([5, 5, 0, 2, 0x80, 0x82, 0x83]),
    "greeting-zero-methods": b([5, 0]),
    "userpass": b([1, 5], b"alice", [6], b"secret"),
    "userpass-empty-password": b([1, 1], b"a", [0]),
    "request-v4": b([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]),
    "request-v6-mapped": b([5, 1, 0, 4], [0] * 10, [0xff, 0xff, 192, 0, 2, 1],
                           [1, 187]),
    "request-domain": b([5, 1, 0, 3, 11], b"example.com", [1, 187]),
    "request-domain-empty": b([5, 1, 0, 3, 0, 0, 80]),
    "request-udp-bad-atyp": b([5, 3, 0, 9, 0, 0]),
    "reply-success-v4": b([5, 0, 0, 1, 10, 77, 0, 1, 4, 56]),
    "reply-refused-domain": b([5, 5, 0, 3, 1], b"x", [0, 1]),
    "method-userpass": b([5, 2]),
    "status-ok": b([1, 0]),
}

# RFC 8803 Convert, with mpgw's private TLVs (0xc0 name, 0xc1 auth,
# 0xc2 silent).
def hdr(words):
    return bytes([1, words, 0x22, 0x63])


CONNECT_V4 = b([0x0a, 5, 0x01, 0xbb], [0] * 10, [0xff, 0xff, 192, 0, 2, 10])
CONNECT_V6 = b([0x0a, 5, 0, 80, 0x20, 1, 0x0d, 0xb8], [0] * 11, [1])
NAME_EX = b([0xc0, 4, 0x01, 0xbb, 11], b"example.com")
AUTH_A = b([0xc1, 0x0a, 0, 1, 0x65, 0, 0, 0], list(range(12)), b"a",
           [0] * 19)
CONVERT = {
    "connect-v4": b(hdr(6), CONNECT_V4),
    "connect-v6-with-data": b(hdr(6), CONNECT_V6, b"GET / HTTP/1.0\r\n\r\n"),
    "connect-name": b(hdr(5), NAME_EX),
    "cookie-silent": b(hdr(10), CONNECT_V4, [0x16, 2, 0, 0], b"abcd",
                       [0xc2, 1, 0, 0]),
    "auth": b(hdr(15), NAME_EX, AUTH_A),
    "info-tcp-options": b(hdr(8), [1, 1, 0, 0], [0x0a, 6, 1, 0xbb], [0] * 10,
                          [0xff, 0xff, 192, 0, 2, 10, 0x1e, 2, 0x22, 2]),
    "private-unknown": b(hdr(9), [0xd0, 2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
                         CONNECT_V4, [0xff, 1, 0x12, 0x34]),
    "reply-header-only": hdr(1),
    "reply-ext-options": b(hdr(4), [0x14, 3, 0, 0, 1, 1, 8, 10, 1, 2, 3, 4],
                           b"data"),
    "reply-error": b(hdr(3), [0x1e, 2, 1, 0, 1, 6, 0x22, 0x63]),
    "bad-total-zero": bytes([1, 0, 0x22, 0x63]),
    "bad-tlv-overrun": b(hdr(2), [0x1e, 2, 0, 0]),
}

CONF = {
    "minimal.ini": b"[socks5]\nlisten = 127.0.0.1:1080\n",
    "userpass-tls.ini": b"""[gateway]
workers = 2
log_level = debug
max_sessions = 100
max_per_source = 8
[socks5]
listen = 127.0.0.1:1080, [::1]:1080
methods = tls-login, tls-userpass, userpass
handshake_timeout = 5s
idle_timeout = 10m
[tls]
listen = 127.0.0.1:1443
cert = /etc/mpgw/cert.pem
key = /etc/mpgw/key.pem
[auth]
users = /etc/mpgw/users
fail_limit = 3
auth_cache_ttl = 0
""",
    "convert-rules.ini": b"""[convert]
listen = 127.0.0.1:5124
keys = /etc/mpgw/keys
cookie = abc
max_skew = 30
tfo_no_cookie = yes
[upstream]
mptcp = off
relay = splice
buffer_size = 4096
[rule.local]
action = deny
dest = 127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10
port = 25, 8000-8999
[rule.lan]
action = allow
client = 10.0.0.0/8
user = alice, bob
domain = example.com
command = connect
""",
    "proxy.ini": b"""[gateway]
proxy_from = 10.0.0.5, 10.1.0.0/16, fd00::/8
[socks5]
listen = 0.0.0.0:1080
methods = userpass
proxy_protocol = yes
[tls]
proxy_protocol = no
[convert]
proxy_protocol = on
[auth]
users = /etc/mpgw/users
""",
    "errors.ini": b"[gateway]\nworkers = 0\n[nope]\nx = 1\nlisten\n",
    "crlf-comments.ini": b"; c\r\n[socks5]\r\nlisten = 127.0.0.1:1 ; x\r\n",
}

# Users ("name:hash") and keys ("name base64key") files, through the same
# line reader. The hashes use the cheap cost settings fuzz_linefile lets
# crypt_r really run.
KEY = base64.b64encode(bytes(range(32)))
USERS_ALL = b"""# one of each kind we accept
alice:$y$j75$YnB9xxIs5z8/pGrFef5Mz1$9HpYusPFNCyok3TAqzG0WC6LofDvLSwQu4CL4iv2Az7
bob:$gy$j75$nAnZPrZbNam3G4bVqF42y.$KANwcVBhamPC/CZ90EC9bBbDWM9n9E2DIp/PvgOMoJB
carol:$7$BU..../....4oIZ92z/C5i0vSJthZBmv.$0es4LiUTCRiQoLIB8SlKewKqCP7ET.2kSm5XDurhiX5
dave:$6$rounds=1000$AmnaucTyx5HwBh/o$S6wLZqn5R3GVh.NLXGBKe/h3QESNOqX.ba7cwfnnxx3yAyYfz6EALz5VkuuUG7nXTtlRrUDrrjDaQdToXZkSk1
erin:$5$rounds=1000$j2YbBye6GA6xGnGy$vacnMPIvZ6BPPOoOtk3TG2ma5Tp35dFNZTb6KWhemr0
frank:$2b$05$4jcxu9cmI787E9hrAG/FeOUoQJXMHRO2ePW5u6v.e6wy/SQRdmjRe
"""
LINEFILE = {
    "users-every-kind": USERS_ALL,
    "users-one-crlf": b"alice:$y$j75$YnB9xxIs5z8/pGrFef5Mz1$"
                      b"9HpYusPFNCyok3TAqzG0WC6LofDvLSwQu4CL4iv2Az7 \t\r\n"
                      b"\r\n   # trailing comment\r\n",
    "users-duplicate": b"a:$5$rounds=1000$j2YbBye6GA6xGnGy$vacnMPIvZ6BPPOoOtk3T"
                       b"G2ma5Tp35dFNZTb6KWhemr0\nb:x\na:y\n",
    "users-foreign-hashes": b"md5:$1$abc$def\ndes:abJnggxhB/yWI\nplain:secret\n"
                            b"empty:\n:nohash\n",
    "users-bom": b"\xef\xbb\xbfalice:$6$rounds=1000$AmnaucTyx5HwBh/o$S6wLZqn5R3G"
                 b"Vh.NLXGBKe/h3QESNOqX.ba7cwfnnxx3yAyYfz6EALz5VkuuUG7nXTtlRrUD"
                 b"rrjDaQdToXZkSk1\n",
    "users-nul-byte": b"alice:\x00$y$\n",
    "users-long-line": b"a:" + b"x" * 4100 + b"\n",
    "keys-two": b"# keys\nalice " + KEY + b"\nbob\t\t" + KEY + b"  \n",
    "keys-bad": b"alice " + KEY[:-1] + b"\nbob AAAA\ncarol " + KEY + b" extra\n"
                b"dave " + KEY.replace(b"=", b"") + b"\n",
    "empty-and-comments": b"\n# only a comment\n   \n\t# another\n",
    "no-final-newline": b"alice " + KEY,
}

SHIMCONF = {
    "shim.ini": open(os.path.join(HERE, "..", "..", "client-shim",
                                  "shim.ini"), "rb").read(),
    "explicit-userpass.ini": b"""[shim]
gateway = [::1]:1080
method = userpass
user = alice
password = se cret;not-a-comment
remote_dns = yes
mptcp = on
timeout = 500ms
""",
    "implicit.ini": b"[shim]\nmode = implicit\ngateway = 127.0.0.1:5124\n"
                    b"user = alice\nkey = " + KEY + b"\nsilent = off\n"
                    b"fake_net4 = 10.99.0.0/16\nfake_net6 = fd00::/112\n"
                    b"dns_table = /dev/shm/mpgw-dns-0 ; table\n",
    "tls-login.ini": b"[shim]\r\nmethod = tls-login\r\nuser = bob\r\n"
                     b"ca = /etc/mpgw/ca.pem\r\nservername = gw.example.net\r\n"
                     b"gateway = gw.example.net:1080\r\ntimeout = 1m\r\n",
    "errors.ini": b"key = outside\n[other]\n[shim]\nnokey\ntimeout = 0\n"
                  b"fake_net4 = 10.0.0.0/8\npassword = " + b"p" * 300 + b"\n",
    "net-v4.txt": b"198.18.0.0/15\n",
    "net-v6.txt": b"fc00::/18\n",
    "b64-key.txt": KEY + b"\n",
}

# PROXY protocol v1 and v2 (haproxy's proxy-protocol.txt).
V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PROXYPROTO = {
    "v1-tcp4": b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 1080\r\n",
    "v1-tcp6": b"PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 1 65535\r\n",
    "v1-unknown": b"PROXY UNKNOWN\r\n",
    "v1-then-data": b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n\x05\x01\x00",
    "v2-local": b(V2SIG, [0x20, 0x00, 0, 0]),
    "v2-tcp4": b(V2SIG, [0x21, 0x11, 0, 12], [192, 0, 2, 1],
                 [198, 51, 100, 2], [0xdc, 0x04, 0x04, 0x38]),
    "v2-tcp6-tlv": b(V2SIG, [0x21, 0x21, 0, 36 + 7], [0x20, 1, 0xd, 0xb8],
                     [0] * 11, [1], [0] * 15, [2], [0, 80, 1, 187],
                     [0x04, 0, 4], b"\x00\x00\x00\x00"),
    "v2-unix": b(V2SIG, [0x21, 0x31, 0, 216], [0] * 216),
    "socks5-not-proxy": b([5, 1, 0]),
}

# HTTP request heads, as a Prometheus server sends them.
HTTP = {
    "get-metrics": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n"
                   b"User-Agent: Prometheus/2.42.0\r\nAccept: text/plain\r\n"
                   b"\r\n",
    "head-http10": b"HEAD /metrics HTTP/1.0\r\n\r\n",
    "bad-version": b"GET / HTTP/2.0\r\n\r\n",
    "lf-only": b"GET /x HTTP/1.1\nHost: a\n\n",
}

TARGETS = {
    "fuzz_http": HTTP,
    "fuzz_proxyproto": PROXYPROTO,
    "fuzz_socks5": SOCKS5,
    "fuzz_convert": CONVERT,
    "fuzz_conf": CONF,
    "fuzz_linefile": LINEFILE,
    "fuzz_shimconf": SHIMCONF,
}


def main():
    for target, seeds in TARGETS.items():
        d = os.path.join(HERE, "corpus", target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%s: %d seeds" % (target, len(seeds)))


if __name__ == "__main__":
    main()
