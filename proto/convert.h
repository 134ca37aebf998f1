/*
 * The 0-RTT TCP Convert Protocol (RFC 8803) with mpgw's private TLVs
 * (DESIGN.md section 4): a pure codec over byte buffers, shared by the
 * gateway's converter listener and the client shim's implicit mode.
 *
 * No sockets, no libev, no malloc. The parsers take (buf, len) of what has
 * arrived so far and return CONV_AGAIN until the whole message (Total Length
 * bytes) is there, then CONV_OK, or CONV_BAD as soon as the bytes seen so
 * far can never become valid. They never read past len nor past Total
 * Length, so application data that follows the message is left alone.
 * Feeding one byte at a time gives the same answers as feeding it all at
 * once. Output structs are meaningful only on CONV_OK.
 */
#ifndef MPGW_CONVERT_H
#define MPGW_CONVERT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONV_VERSION 1
#define CONV_MAGIC 0x2263
/* Total Length is 8 bits of 32-bit words: 255 * 4. */
#define CONV_MSG_MAX 1020
#define CONV_HDR_LEN 4
/* What conv_write_ok_reply and conv_write_error write. */
#define CONV_REPLY_LEN 8
#define CONV_KEY_LEN 32
#define CONV_MAC_LEN 16
#define CONV_NONCE_LEN 12

enum conv_res {
	CONV_OK = 0,
	CONV_AGAIN,
	CONV_BAD,
};

/* TLV types (IANA "Convert TLVs"; 0xC0-0xC3 are ours, in Private Use). */
enum conv_tlv {
	CONV_TLV_INFO = 1,
	CONV_TLV_CONNECT = 10,
	CONV_TLV_EXT_TCP_HDR = 20,
	CONV_TLV_SUPPORTED_EXT = 21,
	CONV_TLV_COOKIE = 22,
	CONV_TLV_ERROR = 30,
	CONV_TLV_CONNECT_NAME = 0xc0,
	CONV_TLV_AUTH = 0xc1,
	CONV_TLV_SILENT = 0xc2,
	CONV_TLV_UDP = 0xc3,
};

/* Error TLV codes (IANA "Convert Errors"). */
enum conv_err {
	CONV_ERR_UNSUPPORTED_VERSION = 0,
	CONV_ERR_MALFORMED = 1,
	CONV_ERR_UNSUPPORTED_MSG = 2,
	CONV_ERR_MISSING_COOKIE = 3,
	CONV_ERR_NOT_AUTHORIZED = 32,
	CONV_ERR_UNSUPPORTED_OPTION = 33,
	CONV_ERR_RESOURCE_EXCEEDED = 64,
	CONV_ERR_NETWORK_FAILURE = 65,
	CONV_ERR_CONNECTION_RESET = 96,
	CONV_ERR_DEST_UNREACHABLE = 97,
};

/*
 * A parsed request. Pointers point into the buffer given to the parser and
 * live as long as it does. Without has_udp, exactly one of has_connect and
 * has_name is set. With has_udp (the connection carries a UDP association,
 * whose datagrams name their own targets) has_name is never set, and
 * has_connect only for a Connect that names no target: port 0, address
 * ::ffff:0.0.0.0 or ::, no options.
 */
struct conv_msg {
	size_t len;    /* Total Length in bytes */
	uint16_t port; /* host order, Connect or Connect-Name */
	bool has_connect;
	struct in6_addr addr; /* Connect; IPv4 is ::ffff:a.b.c.d */
	const uint8_t *opts;  /* Connect TCP options, no padding */
	size_t opts_len;
	bool has_name;
	uint8_t name_len; /* 1..255 */
	char name[256];	  /* NUL-terminated, no NUL inside */
	bool has_cookie;
	const uint8_t *cookie; /* with its zero padding */
	size_t cookie_len;     /* multiple of 4, may be 0 */
	bool info;
	bool silent;
	bool has_udp;
	bool has_auth;
	uint8_t user_len; /* 1..255 */
	char user[256];	  /* NUL-terminated, no NUL inside */
	uint32_t ts;	  /* unix seconds, host order */
	uint8_t nonce[CONV_NONCE_LEN];
	uint8_t mac[CONV_MAC_LEN];
	size_t mac_off; /* offset of the MAC = bytes it covers */
};

/* A parsed reply (client side). */
struct conv_reply {
	size_t len;	     /* Total Length in bytes */
	bool ok;	     /* no Error TLV */
	uint8_t code;	     /* enum conv_err, when !ok */
	uint8_t value;	     /* first byte of the Error value */
	const uint8_t *opts; /* Extended TCP Header options, if any */
	size_t opts_len;     /* (with padding) */
};

/*
 * What conv_write_request puts on the wire: Connect (addr set: AF_INET,
 * written as ::ffff:a.b.c.d, or AF_INET6) or Connect-Name (addr NULL, name
 * and port), then UDP, Cookie, Info, Silent, and Auth last when user is
 * set. With udp, name must be NULL and addr NULL (no Connect TLV) or
 * 0.0.0.0:0 or [::]:0 with no options.
 */
struct conv_req {
	const struct sockaddr *addr;
	const char *name;    /* 1..255 bytes */
	uint16_t port;	     /* host order; only with name */
	const uint8_t *opts; /* Connect TCP options, copied verbatim */
	size_t opts_len;
	const uint8_t *cookie; /* NULL: no Cookie TLV */
	size_t cookie_len;
	bool info;
	bool silent;
	bool udp;	  /* UDP TLV: the connection carries datagrams */
	const char *user; /* NULL: no Auth TLV; else 1..255 bytes */
	uint32_t ts;	  /* host order */
	uint8_t nonce[CONV_NONCE_LEN];
};

/*
 * Server side. On CONV_BAD *err is the Error code to send back: 0 for a
 * version other than 1; 2 for an unknown TLV type below 192 (and the reply
 * types 20, 21, 30); 1 for everything else (bad magic, Total Length 0, TLV
 * Length 0 or too short or too long for its type, a TLV overrunning the
 * message, non-zero padding or reserved bytes, a TLV type given twice,
 * Connect and Connect-Name both or neither, Auth not last, an empty name or
 * user or one with a NUL in it, NOP or bad lengths in Connect options).
 * With the UDP TLV (value 00 00) neither Connect nor Connect-Name is
 * needed; Connect-Name is then refused, and Connect only passes if it
 * names no target (port 0, address ::ffff:0.0.0.0 or ::, no options).
 * Unknown types 192..255 are skipped. The address is not judged here.
 */
enum conv_res conv_parse_request(
    const uint8_t *buf, size_t len, struct conv_msg *m, uint8_t *err);

/*
 * Client side: fixed header, then Extended TCP Header (success) and/or
 * Error; Supported TCP Extensions and types 192..255 are skipped, anything
 * else is BAD. A reply with no Error TLV counts as success.
 */
enum conv_res conv_parse_reply(
    const uint8_t *buf, size_t len, struct conv_reply *r);

/*
 * Writers return the bytes written, or 0 if the message does not fit in cap
 * or CONV_MSG_MAX, or req is not valid (neither or both of addr and name,
 * another family, an empty or too long name or user).
 * With Auth, *mac_off (if not NULL) is where the 16 MAC bytes go; they are
 * written as zero for conv_sign to fill. Without Auth it is set to 0.
 */
size_t conv_write_request(
    uint8_t *out, size_t cap, const struct conv_req *req, size_t *mac_off);
/* Header + Extended TCP Header with no options: CONV_REPLY_LEN bytes. */
size_t conv_write_ok_reply(uint8_t *out, size_t cap);
/* Header + Error(code, value): CONV_REPLY_LEN bytes. */
size_t conv_write_error(uint8_t *out, size_t cap, uint8_t code, uint8_t value);

/*
 * Datagrams on a connection whose request carried the UDP TLV (DESIGN.md
 * section 6), both ways once the Convert exchange is done:
 *
 *	+-------------------------------+------------------------------+
 *	|      Length (16 bits)         | SOCKS5 UDP header | payload  |
 *	+-------------------------------+------------------------------+
 *
 * Length counts the bytes after it: at least CONV_UDP_BODY_MIN (the
 * shortest SOCKS5 UDP header, a one-byte name), at most the field's
 * 65535. The frame codec does not look inside the body: a bad SOCKS5
 * header loses that datagram only, a bad Length the whole stream.
 */
#define CONV_UDP_LEN_LEN 2
#define CONV_UDP_BODY_MIN 8
#define CONV_UDP_BODY_MAX 65535
#define CONV_UDP_FRAME_MAX (CONV_UDP_LEN_LEN + CONV_UDP_BODY_MAX)

/*
 * One frame at the start of buf[0..len): AGAIN until it is all there, BAD
 * for a Length below CONV_UDP_BODY_MIN (0 included). On OK *body points at
 * the SOCKS5 UDP header in buf, *n is its length with the payload, and
 * *used (2 + *n) is where the next frame starts.
 */
enum conv_res conv_udp_frame_parse(const uint8_t *buf, size_t len,
    const uint8_t **body, size_t *n, size_t *used);
/*
 * Writes Length and body[0..n) into out (cap bytes): 2 + n, or 0 if n is
 * outside CONV_UDP_BODY_MIN..CONV_UDP_BODY_MAX or cap is short.
 */
size_t conv_udp_frame_write(
    uint8_t *out, size_t cap, const uint8_t *body, size_t n);
/*
 * Writes only the Length of an n-byte body (for a body already in place, or
 * sent with writev): CONV_UDP_LEN_LEN, or 0 if n is out of range.
 */
size_t conv_udp_frame_len(uint8_t out[CONV_UDP_LEN_LEN], size_t n);

/*
 * HMAC-SHA256 of msg[0..len) with key, truncated to 16 bytes: 0, or -1 if
 * OpenSSL failed (mac is then zeroed and must not be used).
 */
int conv_mac(const uint8_t key[CONV_KEY_LEN], const uint8_t *msg, size_t len,
    uint8_t mac[CONV_MAC_LEN]);
/* Fills msg[mac_off..mac_off+16) with the MAC of msg[0..mac_off): 0 or -1. */
int conv_sign(uint8_t *msg, size_t mac_off, const uint8_t key[CONV_KEY_LEN]);
/* Constant-time comparison of two MACs. */
bool conv_mac_equal(
    const uint8_t a[CONV_MAC_LEN], const uint8_t b[CONV_MAC_LEN]);
/*
 * Whether the Auth TLV of m (parsed from buf) carries the right MAC for
 * key. False when m has no Auth or OpenSSL failed.
 */
bool conv_verify(const uint8_t *buf, const struct conv_msg *m,
    const uint8_t key[CONV_KEY_LEN]);
/*
 * Whether m carries a Cookie TLV equal to cookie[0..len) followed by its
 * zero padding, compared in constant time for a given length.
 */
bool conv_cookie_equal(
    const struct conv_msg *m, const uint8_t *cookie, size_t len);

/* Connect address and port as AF_INET (v4-mapped) or AF_INET6: 0 or -1. */
int conv_addr_to_sockaddr(
    const struct conv_msg *m, struct sockaddr_storage *ss, socklen_t *sslen);

/*
 * Error code for a failed upstream connect: ECONNREFUSED/ECONNRESET -> 96,
 * EHOSTUNREACH/ENETUNREACH/ETIMEDOUT -> 97 (callers report a failed name
 * resolution as EHOSTUNREACH), EACCES/EPERM -> 32, EMFILE/ENFILE/ENOBUFS/
 * ENOMEM -> 64, anything else -> 65. The value byte is the caller's (0).
 */
uint8_t conv_err_from_errno(int err);
/* The client shim's mapping back, for connect(); ECONNREFUSED by default. */
int conv_errno_from_err(uint8_t code);
/* Name of an Error code, for logs; never NULL. */
const char *conv_err_str(uint8_t code);

#endif
