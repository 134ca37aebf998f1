/*
 * The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's
 * doc/proxy-protocol.txt defines them: the header a balancer puts in front
 * of a relayed connection to say who the client is. The receiver side for
 * the gateway's listeners (DESIGN.md section 7), and writers for the tests
 * and for anything that speaks to a PROXY-protocol server.
 *
 * No sockets, no libev, no malloc. pp_parse takes (buf, len) of what has
 * arrived so far and returns PP_AGAIN until the whole header is there, then
 * PP_OK with *used set to its length, or PP_BAD as soon as the bytes seen
 * can never begin a valid header: a connection without a header is refused
 * at its first byte unless that byte is 'P' (v1) or CR (v2), and one that
 * starts like a header at the first byte that departs from it. It never
 * reads past len, nor past the header: what follows belongs to the client.
 * Feeding one byte at a time gives the same answers as feeding it all at
 * once. *h and *used are written only on PP_OK.
 */
#ifndef MPGW_PROXYPROTO_H
#define MPGW_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A v1 line, CRLF included, is at most this long (the spec's worst case). */
#define PP_V1_MAX 107
/* The fixed part of a v2 header: signature, ver/cmd, fam, length. */
#define PP_V2_HDR_LEN 16
/*
 * The longest v2 header accepted or written, fixed part included. The spec
 * bounds only the 16-bit length; this leaves room for the largest address
 * block (AF_UNIX, 216 bytes) and the TLVs balancers send (HAProxy's
 * authority, unique-id, SSL and CRC32C, AWS's VPC endpoint) while letting
 * the receiver hold the whole header in a small fixed buffer. A longer
 * header is PP_BAD as soon as its length field arrives.
 */
#define PP_HDR_MAX 1024

enum pp_res {
	PP_OK = 0,
	PP_AGAIN,
	PP_BAD,
};

/* The command (v2 ver_cmd low nibble); a v1 header is always PROXY. */
enum pp_cmd {
	PP_CMD_LOCAL = 0x0,
	PP_CMD_PROXY = 0x1,
};

/* Address family (v2 high nibble of the 14th byte). */
enum pp_fam {
	PP_FAM_UNSPEC = 0x0,
	PP_FAM_INET = 0x1,
	PP_FAM_INET6 = 0x2,
	PP_FAM_UNIX = 0x3,
};

/* Transport protocol (v2 low nibble of the 14th byte). */
enum pp_proto {
	PP_PROTO_UNSPEC = 0x0,
	PP_PROTO_STREAM = 0x1,
	PP_PROTO_DGRAM = 0x2,
};

/* TLV types the spec registers (v2; pp_tlv_find takes any type). */
enum pp_tlv {
	PP_TLV_ALPN = 0x01,
	PP_TLV_AUTHORITY = 0x02,
	PP_TLV_CRC32C = 0x03,
	PP_TLV_NOOP = 0x04,
	PP_TLV_UNIQUE_ID = 0x05,
	PP_TLV_SSL = 0x20,
	PP_TLV_NETNS = 0x30,
};

/*
 * A parsed header. has_addr is set only for a PROXY command over AF_INET
 * or AF_INET6 (v1 TCP4 and TCP6): src is then the client and dst the
 * address it connected to, each AF_INET or AF_INET6 as sent (a v4-mapped
 * IPv6 address stays AF_INET6; lib/addr.h's addr_unmap turns it into
 * IPv4). Otherwise the connection's own endpoints stand: a LOCAL command
 * (a balancer's health check), v1 UNKNOWN, or a PROXY over AF_UNSPEC or
 * AF_UNIX, whose addresses are skipped.
 */
struct pp_hdr {
	uint8_t version; /* 1 or 2 */
	uint8_t cmd;	 /* enum pp_cmd */
	uint8_t fam;	 /* enum pp_fam; v1: INET, INET6 or UNSPEC (UNKNOWN) */
	uint8_t proto;	 /* enum pp_proto; v1: STREAM, or UNSPEC (UNKNOWN) */
	bool has_addr;
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
	socklen_t addr_len;  /* of src and of dst, when has_addr */
	const uint8_t *tlvs; /* v2 TLVs, pointing into buf; NULL if none */
	size_t tlvs_len;     /* bytes, all TLVs back to back */
};

/*
 * Parses a v1 or v2 header at the start of buf[0..len). The first byte
 * decides: 'P' is v1, CR is v2, anything else is PP_BAD.
 *
 * v1: "PROXY TCP4 a.b.c.d a.b.c.d sport dport\r\n", TCP6 likewise with
 * IPv6 addresses, or "PROXY UNKNOWN" followed by anything printable up to
 * the CRLF; single spaces, dotted quads and ports without leading zeros,
 * ports 0..65535, nothing but CRLF ends the line, 107 bytes at most. An
 * IPv6 address is judged whole, by inet_pton, at the space that ends it.
 *
 * v2: the 12-byte signature, version 2, command LOCAL or PROXY, and one of
 * the family/protocol bytes the spec lists (0x00, 0x11, 0x12, 0x21, 0x22,
 * 0x31, 0x32); the length must cover the address block (12, 36 or 216
 * bytes) and keep the header within PP_HDR_MAX. The TLVs after a known
 * address block must tile the rest exactly (each Type, Length(16), Value
 * inside the header); they are not interpreted. After AF_UNSPEC the spec
 * gives no address length, so the rest is skipped unread.
 *
 * On PP_OK fills *h (tlvs points into buf) and sets *used to the header's
 * length.
 */
enum pp_res pp_parse(
    const uint8_t *buf, size_t len, struct pp_hdr *h, size_t *used);

/*
 * The first TLV of type in h (a header pp_parse accepted, whose buffer is
 * still there): true with *val and *vlen set, or false.
 */
bool pp_tlv_find(
    const struct pp_hdr *h, uint8_t type, const uint8_t **val, size_t *vlen);

/*
 * Writes a v1 line into out (cap bytes): TCP4 when src and dst are both
 * IPv4 (v4-mapped counts), TCP6 when both are IP and one is IPv6 (IPv4 then
 * written v4-mapped), and "PROXY UNKNOWN\r\n" when either is NULL or of
 * another family. Returns the bytes written (no NUL), or 0 if cap is short.
 */
size_t pp_write_v1(uint8_t *out, size_t cap, const struct sockaddr *src,
    const struct sockaddr *dst);

/*
 * Writes a v2 header into out (cap bytes). cmd is LOCAL or PROXY; with
 * PROXY and src and dst both IP (families mixed as for v1) or both
 * AF_UNIX, the addresses are written with proto (STREAM or DGRAM);
 * otherwise the family is AF_UNSPEC with no addresses. tlvs[0..tlvs_len)
 * follows verbatim (pp_write_tlv builds them; the writer does not judge
 * them, so tests can write bad ones). Returns the bytes written, or 0 for
 * an unknown cmd or proto, a header above PP_HDR_MAX, or cap too short.
 */
size_t pp_write_v2(uint8_t *out, size_t cap, uint8_t cmd, uint8_t proto,
    const struct sockaddr *src, const struct sockaddr *dst, const uint8_t *tlvs,
    size_t tlvs_len);

/* Writes one TLV (type, 16-bit length, val) into out: bytes or 0. */
size_t pp_write_tlv(
    uint8_t *out, size_t cap, uint8_t type, const uint8_t *val, size_t vlen);

#endif
