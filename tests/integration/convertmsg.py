"""A small RFC 8803 Convert encoder for the tests (DESIGN.md section 4):
messages with our Auth TLV signed as the gateway checks them, and the
replies the gateway sends. Shared by tests/integration (loopback) and
tests/lab (namespaces), which puts this folder on its path."""

import hashlib
import hmac
import os
import socket
import struct
import time

OK_REPLY = bytes.fromhex("01022263" "14010000")

# Error TLV codes (RFC 8803 section 6.2.5) the tests look for.
ERR_NOT_AUTHORIZED = 32
ERR_NETWORK_FAILURE = 65


def err_reply(code, value=0):
    return bytes([1, 2, 0x22, 0x63, 30, 1, code, value])


def tlv(t, value):
    """Type, Length (words, with type and length), value, zero padding."""
    raw = bytes([t, 0]) + value
    raw += b"\0" * (-len(raw) % 4)
    return bytes([t, len(raw) // 4]) + raw[2:]


def connect_tlv(ip, port):
    return tlv(10, struct.pack("!H", port) + b"\0" * 10 + b"\xff\xff" +
               socket.inet_aton(ip))


def connect_name_tlv(name, port):
    n = name.encode()
    return tlv(0xc0, struct.pack("!HB", port, len(n)) + n)


SILENT = tlv(0xc2, b"\0\0")
INFO = tlv(1, b"\0\0")


def message(tlvs, user, key=None, ts=None, nonce=None, total=None):
    """Header + TLVs (+ Auth, signed with key, when user is set). total
    overrides the header's Total Length (words)."""
    body = b"".join(tlvs)
    auth = b""
    if user is not None:
        u = user.encode()
        alen = 36 + len(u)
        alen += -alen % 4
        auth = (bytes([0xc1, alen // 4, 0, len(u)]) +
                struct.pack("!I", int(time.time()) if ts is None else ts) +
                (os.urandom(12) if nonce is None else nonce) + u)
    size = 4 + len(body) + (alen if user is not None else 0)
    words = size // 4 if total is None else total
    msg = bytes([1, words, 0x22, 0x63]) + body + auth
    if user is not None:
        msg += hmac.new(key, msg, hashlib.sha256).digest()[:16]
        msg += b"\0" * (alen - len(auth) - 16)
    return msg
