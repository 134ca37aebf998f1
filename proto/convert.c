#include "proto/convert.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/addr.h"

/*
 * Wire format (RFC 8803 section 4, DESIGN.md section 4). Every multi-byte
 * field is in network byte order.
 *
 * Fixed header, the first bytes of the stream in both directions:
 *
 *	 0                   1                   2                   3
 *	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *	+---------------+---------------+-------------------------------+
 *	|  Version = 1  | Total Length  |     Magic Number = 0x2263     |
 *	+---------------+---------------+-------------------------------+
 *
 *	Total Length: 32-bit words of the whole message, header included
 *	(0 is invalid, so 1..255 words = 4..1020 bytes). What follows the
 *	message in the stream is application data.
 *
 * TLVs follow back to back until Total Length:
 *
 *	+---------------+---------------+-------------------------------+
 *	|     Type      |    Length     |            Value...           |
 *	+---------------+---------------+-------------------------------+
 *
 *	Length: 32-bit words of the TLV, Type and Length included (so never
 *	0); the value is zero padded to the next 4-byte boundary. A type may
 *	appear once per message.
 *
 * The TLVs this codec knows:
 *
 *	Info (1), Length 1; Extended TCP Header (20), Length >= 1:
 *	+---------------+---------------+-------------------------------+
 *	|   Type = 1    |  Length = 1   |             Zero              |
 *	+---------------+---------------+-------------------------------+
 *	|   Type = 20   |    Length     |             Zero              |
 *	+---------------+---------------+-------------------------------+
 *	|  TCP options of the server's SYN+ACK (kind, len, value)...    |
 *	+---------------------------------------------------------------+
 *
 *	Connect (10), Length 5 + options:
 *	+---------------+---------------+-------------------------------+
 *	|   Type = 10   |    Length     |       Remote Peer Port        |
 *	+---------------+---------------+-------------------------------+
 *	|        Remote Peer IPv6 Address (128 bits; IPv4 as            |
 *	|        the IPv4-mapped ::ffff:a.b.c.d)                        |
 *	|                                                               |
 *	|                                                               |
 *	+---------------------------------------------------------------+
 *	|  TCP options (kind, len >= 2, value; no EOL/NOP), zero pad... |
 *	+---------------------------------------------------------------+
 *
 *	Cookie (22), Length >= 1:
 *	+---------------+---------------+-------------------------------+
 *	|   Type = 22   |    Length     |             Zero              |
 *	+---------------+---------------+-------------------------------+
 *	|  Opaque cookie, zero padded...                                |
 *	+---------------------------------------------------------------+
 *
 *	Error (30), Length >= 1:
 *	+---------------+---------------+---------------+---------------+
 *	|   Type = 30   |    Length     |  Error Code   |   Value...    |
 *	+---------------+---------------+---------------+---------------+
 *
 *	Connect-Name (0xC0, ours), Length = (5 + name length + 3) / 4:
 *	+---------------+---------------+-------------------------------+
 *	|  Type = 0xC0  |    Length     |       Remote Peer Port        |
 *	+---------------+---------------+-------------------------------+
 *	|  Name Length  |  Name (1..255 bytes, no NUL), zero pad...     |
 *	+---------------+-----------------------------------------------+
 *
 *	Auth (0xC1, ours), the last TLV, Length = (36 + user length + 3) / 4:
 *	+---------------+---------------+---------------+---------------+
 *	|  Type = 0xC1  |    Length     |  Flags = 0    |  User Length  |
 *	+---------------+---------------+---------------+---------------+
 *	|                  Timestamp (unix seconds)                     |
 *	+---------------------------------------------------------------+
 *	|                                                               |
 *	|                       Nonce (96 bits)                         |
 *	|                                                               |
 *	+---------------------------------------------------------------+
 *	|  User (1..255 bytes, no NUL)...                               |
 *	+---------------------------------------------------------------+
 *	|  MAC (128 bits): HMAC-SHA256(user key, every message byte     |
 *	|  before the MAC, fixed header included), first 16 bytes       |
 *	|                                                               |
 *	|                                                               |
 *	+---------------------------------------------------------------+
 *	|  zero pad...                                                  |
 *	+---------------------------------------------------------------+
 *
 *	Silent (0xC2, ours), Length 1:
 *	+---------------+---------------+-------------------------------+
 *	|  Type = 0xC2  |  Length = 1   |             Zero              |
 *	+---------------+---------------+-------------------------------+
 *
 *	UDP (0xC3, ours), Length 1: the connection carries the datagrams
 *	of a UDP association, framed as conv_udp_frame_parse describes, so
 *	there is no Connect or Connect-Name, or a Connect naming no target
 *	(port 0, address ::ffff:0.0.0.0 or ::, no options):
 *	+---------------+---------------+-------------------------------+
 *	|  Type = 0xC3  |  Length = 1   |             Zero              |
 *	+---------------+---------------+-------------------------------+
 *
 * The parsers are pure functions of (buf, len): they look at the bytes in
 * wire order and stop at the first that is either wrong (BAD) or not there
 * yet (AGAIN). So a BAD seen on a prefix is seen, with the same code, on
 * every longer input, and one byte at a time gives the same answer as all
 * at once.
 */

#define PAD4(n) (((n) + 3) & ~(size_t)3)

/* Fixed parts of the TLVs, in bytes. */
#define TLV_HDR 2
#define CONNECT_LEN 20	 /* Type Length Port Addr */
#define NAME_FIXED 5	 /* Type Length Port NameLen */
#define AUTH_USER_OFF 20 /* Type Length Flags ULen TS Nonce */
#define AUTH_FIXED (AUTH_USER_OFF + CONV_MAC_LEN)

/*
 * A TLV under parse: buf[off] is its Type, end is off + Length * 4 (already
 * checked to lie within the message), have the bytes present, capped at
 * Total Length.
 */
struct tlv {
	const uint8_t *buf;
	size_t have;
	size_t off;
	size_t end;
};

/* Sets *err (if err is not NULL) and returns CONV_BAD. */
static enum conv_res
bad(uint8_t *err, enum conv_err code)
{
	if (err != NULL)
		*err = (uint8_t)code;
	return CONV_BAD;
}

/* AGAIN unless the first `to` bytes are present. */
static enum conv_res
need(const struct tlv *t, size_t to)
{
	return t->have < to ? CONV_AGAIN : CONV_OK;
}

/*
 * Checks the present part of buf[from..to) is all zero: BAD (Malformed) at
 * the first byte that is not, else AGAIN if some are still missing, else OK.
 */
static enum conv_res
zeros(const struct tlv *t, size_t from, size_t to, uint8_t *err)
{
	size_t i, stop;

	stop = to < t->have ? to : t->have;
	for (i = from; i < stop; i++)
		if (t->buf[i] != 0)
			return bad(err, CONV_ERR_MALFORMED);
	return need(t, to);
}

/* As zeros(), but refuses a NUL byte instead. */
static enum conv_res
no_nul(const struct tlv *t, size_t from, size_t to, uint8_t *err)
{
	size_t stop;

	stop = to < t->have ? to : t->have;
	if (from < stop && memchr(t->buf + from, '\0', stop - from) != NULL)
		return bad(err, CONV_ERR_MALFORMED);
	return need(t, to);
}

/* A 16-bit and a 32-bit network-order field at p. */
static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * The fixed header at buf[0..4): sets *total (bytes) on OK. Version first,
 * so a version-2 peer hears "unsupported version" whatever else it sent.
 */
static enum conv_res
parse_header(const uint8_t *buf, size_t len, size_t *total, uint8_t *err)
{
	if (len < 1)
		return CONV_AGAIN;
	if (buf[0] != CONV_VERSION)
		return bad(err, CONV_ERR_UNSUPPORTED_VERSION);
	if (len < 2)
		return CONV_AGAIN;
	if (buf[1] == 0)
		return bad(err, CONV_ERR_MALFORMED);
	if (len < 3)
		return CONV_AGAIN;
	if (buf[2] != (CONV_MAGIC >> 8))
		return bad(err, CONV_ERR_MALFORMED);
	if (len < 4)
		return CONV_AGAIN;
	if (buf[3] != (CONV_MAGIC & 0xff))
		return bad(err, CONV_ERR_MALFORMED);
	*total = (size_t)buf[1] * 4;
	return CONV_OK;
}

/*
 * Type and Length of the TLV at t->off (< total) and the checks every type
 * shares: the type seen twice, Length 0, a TLV beyond Total Length. On OK
 * sets t->end and marks the type in seen (a 256-bit set).
 */
static enum conv_res
parse_tlv_hdr(struct tlv *t, size_t total, uint8_t seen[32], uint8_t *err)
{
	uint8_t type;

	if (t->have - t->off < 1)
		return CONV_AGAIN;
	type = t->buf[t->off];
	if (seen[type / 8] & (1u << (type % 8)))
		return bad(err, CONV_ERR_MALFORMED);
	seen[type / 8] |= (uint8_t)(1u << (type % 8));
	if (t->have - t->off < 2)
		return CONV_AGAIN;
	if (t->buf[t->off + 1] == 0)
		return bad(err, CONV_ERR_MALFORMED);
	if ((size_t)t->buf[t->off + 1] * 4 > total - t->off)
		return bad(err, CONV_ERR_MALFORMED);
	t->end = t->off + (size_t)t->buf[t->off + 1] * 4;
	return CONV_OK;
}

/* Whether the type bit is set in seen. */
static bool
was_seen(const uint8_t seen[32], uint8_t type)
{
	return (seen[type / 8] & (1u << (type % 8))) != 0;
}

/* Info or Silent: exactly Type, Length = 1 and two zero bytes. */
static enum conv_res
parse_flag_tlv(const struct tlv *t, bool *flag, uint8_t *err)
{
	enum conv_res r;

	if (t->end - t->off != 4)
		return bad(err, CONV_ERR_MALFORMED);
	if ((r = zeros(t, t->off + 2, t->end, err)) != CONV_OK)
		return r;
	*flag = true;
	return CONV_OK;
}

/*
 * TCP options in buf[from..t->end): kind, length >= 2, value, with no NOP;
 * an EOL (0) starts the padding, which is zero and shorter than 4 bytes.
 * On OK *opts_end is where the options stop.
 */
static enum conv_res
parse_options(const struct tlv *t, size_t from, size_t *opts_end, uint8_t *err)
{
	size_t p;

	for (p = from; p < t->end; p += t->buf[p + 1]) {
		/* p may lie beyond have after skipping an option's value. */
		if (t->have <= p)
			return CONV_AGAIN;
		if (t->buf[p] == 0) {
			if (t->end - p > 3)
				return bad(err, CONV_ERR_MALFORMED);
			*opts_end = p;
			return zeros(t, p, t->end, err);
		}
		if (t->buf[p] == 1)
			return bad(err, CONV_ERR_MALFORMED);
		if (t->have <= p + 1)
			return CONV_AGAIN;
		if (t->buf[p + 1] < 2 || t->buf[p + 1] > t->end - p)
			return bad(err, CONV_ERR_MALFORMED);
	}
	*opts_end = p;
	return need(t, t->end);
}

/*
 * Whether a Connect address and port name no target: 0.0.0.0:0 (written
 * ::ffff:0.0.0.0) or [::]:0, what goes with the UDP TLV.
 */
static bool
no_target(const uint8_t a6[16], uint16_t port)
{
	static const uint8_t mapped0[16] = {[10] = 0xff, [11] = 0xff};
	static const uint8_t zero[16];

	return port == 0 &&
	    (memcmp(a6, zero, 16) == 0 || memcmp(a6, mapped0, 16) == 0);
}

/* Whether m has a Connect TLV that names a target (or carries options). */
static bool
names_target(const struct conv_msg *m)
{
	return m->has_connect &&
	    (m->opts_len > 0 || !no_target(m->addr.s6_addr, m->port));
}

/*
 * The port and address of a Connect that comes after the UDP TLV, as far
 * as they have arrived: zero, except address bytes 10 and 11, both 0 or
 * both 0xff. BAD at the first byte that breaks it.
 */
static enum conv_res
udp_connect_target(const struct tlv *t, uint8_t *err)
{
	size_t i, a10 = t->off + 4 + 10, stop;

	stop = t->off + CONNECT_LEN < t->have ? t->off + CONNECT_LEN : t->have;
	for (i = t->off + 2; i < stop; i++) {
		if (i == a10 && t->buf[i] != 0 && t->buf[i] != 0xff)
			return bad(err, CONV_ERR_MALFORMED);
		if (i == a10 + 1 && t->buf[i] != t->buf[i - 1])
			return bad(err, CONV_ERR_MALFORMED);
		if ((i < a10 || i > a10 + 1) && t->buf[i] != 0)
			return bad(err, CONV_ERR_MALFORMED);
	}
	return need(t, t->off + CONNECT_LEN);
}

/*
 * Connect: port, IPv6 address, then TCP options. After the UDP TLV (udp)
 * it may only name no target, and carries no options.
 */
static enum conv_res
parse_connect(const struct tlv *t, bool udp, struct conv_msg *m, uint8_t *err)
{
	enum conv_res r;
	size_t opts_end;

	if (t->end - t->off < CONNECT_LEN)
		return bad(err, CONV_ERR_MALFORMED);
	if (udp && t->end - t->off != CONNECT_LEN)
		return bad(err, CONV_ERR_MALFORMED);
	if (udp && (r = udp_connect_target(t, err)) != CONV_OK)
		return r;
	if ((r = need(t, t->off + CONNECT_LEN)) != CONV_OK)
		return r;
	r = parse_options(t, t->off + CONNECT_LEN, &opts_end, err);
	if (r != CONV_OK)
		return r;
	m->has_connect = true;
	m->port = get16(t->buf + t->off + 2);
	memcpy(&m->addr, t->buf + t->off + 4, 16);
	m->opts = t->buf + t->off + CONNECT_LEN;
	m->opts_len = opts_end - (t->off + CONNECT_LEN);
	return CONV_OK;
}

/* Connect-Name: port, name length, name, padding; the length is exact. */
static enum conv_res
parse_connect_name(const struct tlv *t, struct conv_msg *m, uint8_t *err)
{
	enum conv_res r;
	size_t name;
	uint8_t n;

	if (t->end - t->off < PAD4(NAME_FIXED + 1))
		return bad(err, CONV_ERR_MALFORMED);
	if ((r = need(t, t->off + NAME_FIXED)) != CONV_OK)
		return r;
	n = t->buf[t->off + 4];
	if (n == 0 || t->end - t->off != PAD4(NAME_FIXED + (size_t)n))
		return bad(err, CONV_ERR_MALFORMED);
	name = t->off + NAME_FIXED;
	if ((r = no_nul(t, name, name + n, err)) != CONV_OK)
		return r;
	if ((r = zeros(t, name + n, t->end, err)) != CONV_OK)
		return r;
	m->has_name = true;
	m->port = get16(t->buf + t->off + 2);
	m->name_len = n;
	memcpy(m->name, t->buf + name, n);
	m->name[n] = '\0';
	return CONV_OK;
}

/* Cookie: two zero bytes, then the opaque cookie with its padding. */
static enum conv_res
parse_cookie(const struct tlv *t, struct conv_msg *m, uint8_t *err)
{
	enum conv_res r;

	if ((r = zeros(t, t->off + 2, t->off + 4, err)) != CONV_OK)
		return r;
	if ((r = need(t, t->end)) != CONV_OK)
		return r;
	m->has_cookie = true;
	m->cookie = t->buf + t->off + 4;
	m->cookie_len = t->end - t->off - 4;
	return CONV_OK;
}

/* Auth (the caller has checked it ends the message). */
static enum conv_res
parse_auth(const struct tlv *t, struct conv_msg *m, uint8_t *err)
{
	enum conv_res r;
	size_t user, mac;
	uint8_t n;

	if (t->end - t->off < PAD4(AUTH_FIXED + 1))
		return bad(err, CONV_ERR_MALFORMED);
	if ((r = zeros(t, t->off + 2, t->off + 3, err)) != CONV_OK)
		return r;
	if ((r = need(t, t->off + 4)) != CONV_OK)
		return r;
	n = t->buf[t->off + 3];
	if (n == 0 || t->end - t->off != PAD4(AUTH_FIXED + (size_t)n))
		return bad(err, CONV_ERR_MALFORMED);
	user = t->off + AUTH_USER_OFF;
	mac = user + n;
	if ((r = no_nul(t, user, mac, err)) != CONV_OK)
		return r;
	if ((r = zeros(t, mac + CONV_MAC_LEN, t->end, err)) != CONV_OK)
		return r;
	m->has_auth = true;
	m->ts = get32(t->buf + t->off + 4);
	memcpy(m->nonce, t->buf + t->off + 8, CONV_NONCE_LEN);
	m->user_len = n;
	memcpy(m->user, t->buf + user, n);
	m->user[n] = '\0';
	memcpy(m->mac, t->buf + mac, CONV_MAC_LEN);
	m->mac_off = mac;
	return CONV_OK;
}

/*
 * Parses a client's Convert message from buf[0..len) (see convert.h). On
 * OK fills *m (pointers into buf); on BAD sets *err to the Error code.
 */
enum conv_res
conv_parse_request(
    const uint8_t *buf, size_t len, struct conv_msg *m, uint8_t *err)
{
	uint8_t seen[32] = {0};
	struct tlv t;
	size_t total;
	enum conv_res r;
	uint8_t type;

	memset(m, 0, sizeof(*m));
	if ((r = parse_header(buf, len, &total, err)) != CONV_OK)
		return r;
	t.buf = buf;
	t.have = len < total ? len : total;
	for (t.off = CONV_HDR_LEN; t.off < total; t.off = t.end) {
		/* Type-only checks come before the Length byte is needed. */
		if (t.have - t.off >= 1) {
			type = buf[t.off];
			switch (type) {
			case CONV_TLV_INFO:
			case CONV_TLV_COOKIE:
			case CONV_TLV_AUTH:
			case CONV_TLV_SILENT:
				break;
			case CONV_TLV_CONNECT:
				if (was_seen(seen, CONV_TLV_CONNECT_NAME))
					return bad(err, CONV_ERR_MALFORMED);
				break;
			case CONV_TLV_CONNECT_NAME:
				if (was_seen(seen, CONV_TLV_CONNECT) ||
				    was_seen(seen, CONV_TLV_UDP))
					return bad(err, CONV_ERR_MALFORMED);
				break;
			case CONV_TLV_UDP:
				/* Datagrams name their own targets. */
				if (m->has_name || names_target(m))
					return bad(err, CONV_ERR_MALFORMED);
				break;
			default:
				if (type < 192)
					return bad(
					    err, CONV_ERR_UNSUPPORTED_MSG);
				break;
			}
		}
		if ((r = parse_tlv_hdr(&t, total, seen, err)) != CONV_OK)
			return r;
		type = buf[t.off];
		/* Everything before the MAC is signed: nothing may follow. */
		if (type == CONV_TLV_AUTH && t.end != total)
			return bad(err, CONV_ERR_MALFORMED);
		switch (type) {
		case CONV_TLV_INFO:
			r = parse_flag_tlv(&t, &m->info, err);
			break;
		case CONV_TLV_SILENT:
			r = parse_flag_tlv(&t, &m->silent, err);
			break;
		case CONV_TLV_UDP:
			r = parse_flag_tlv(&t, &m->has_udp, err);
			break;
		case CONV_TLV_CONNECT:
			r = parse_connect(
			    &t, was_seen(seen, CONV_TLV_UDP), m, err);
			break;
		case CONV_TLV_CONNECT_NAME:
			r = parse_connect_name(&t, m, err);
			break;
		case CONV_TLV_COOKIE:
			r = parse_cookie(&t, m, err);
			break;
		case CONV_TLV_AUTH:
			r = parse_auth(&t, m, err);
			break;
		default:
			/* Private Use types we do not know are skipped. */
			r = need(&t, t.end);
			break;
		}
		if (r != CONV_OK)
			return r;
	}
	if (!m->has_connect && !m->has_name && !m->has_udp)
		return bad(err, CONV_ERR_MALFORMED);
	m->len = total;
	return CONV_OK;
}

/*
 * Parses a converter's reply from buf[0..len) (see convert.h). On OK fills
 * *r (opts points into buf).
 */
enum conv_res
conv_parse_reply(const uint8_t *buf, size_t len, struct conv_reply *r)
{
	uint8_t seen[32] = {0};
	struct tlv t;
	size_t total;
	enum conv_res res;
	uint8_t type;

	memset(r, 0, sizeof(*r));
	r->ok = true;
	if ((res = parse_header(buf, len, &total, NULL)) != CONV_OK)
		return res;
	t.buf = buf;
	t.have = len < total ? len : total;
	for (t.off = CONV_HDR_LEN; t.off < total; t.off = t.end) {
		if (t.have - t.off >= 1) {
			type = buf[t.off];
			if (type < 192 && type != CONV_TLV_EXT_TCP_HDR &&
			    type != CONV_TLV_SUPPORTED_EXT &&
			    type != CONV_TLV_ERROR)
				return CONV_BAD;
		}
		if ((res = parse_tlv_hdr(&t, total, seen, NULL)) != CONV_OK)
			return res;
		type = buf[t.off];
		if (type == CONV_TLV_EXT_TCP_HDR) {
			res = zeros(&t, t.off + 2, t.off + 4, NULL);
			if (res != CONV_OK)
				return res;
			/* Options copied from a SYN+ACK: NOPs and all. */
			r->opts = buf + t.off + 4;
			r->opts_len = t.end - t.off - 4;
		} else if (type == CONV_TLV_ERROR) {
			if ((res = need(&t, t.off + 4)) != CONV_OK)
				return res;
			r->ok = false;
			r->code = buf[t.off + 2];
			r->value = buf[t.off + 3];
		}
		if ((res = need(&t, t.end)) != CONV_OK)
			return res;
	}
	r->len = total;
	return CONV_OK;
}

/* IPv6 address bytes and host-order port of an AF_INET/AF_INET6 sa. */
static int
addr_from_sockaddr(const struct sockaddr *sa, uint8_t a6[16], uint16_t *port)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		memset(a6, 0, 10);
		a6[10] = 0xff;
		a6[11] = 0xff;
		memcpy(a6 + 12, &sin->sin_addr, 4);
		*port = ntohs(sin->sin_port);
		return 0;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(a6, &sin6->sin6_addr, 16);
		*port = ntohs(sin6->sin6_port);
		return 0;
	default:
		return -1;
	}
}

/* Writes a TLV header at out and returns the TLV size (len bytes padded). */
static size_t
put_tlv(uint8_t *out, uint8_t type, size_t len)
{
	out[0] = type;
	out[1] = (uint8_t)(PAD4(len) / 4);
	return PAD4(len);
}

/*
 * Writes a client's Convert message for req into out[0..cap) (see
 * convert.h); returns its length or 0.
 */
size_t
conv_write_request(
    uint8_t *out, size_t cap, const struct conv_req *req, size_t *mac_off)
{
	size_t total, off, nlen = 0, ulen = 0;
	uint8_t a6[16];
	uint16_t port = 0;

	if (mac_off != NULL)
		*mac_off = 0;
	if (req->udp ? req->name != NULL
		     : (req->addr == NULL) == (req->name == NULL))
		return 0;
	/* Each part is bounded first, so the sums cannot wrap. */
	total = CONV_HDR_LEN;
	if (req->addr != NULL) {
		if (addr_from_sockaddr(req->addr, a6, &port) == -1)
			return 0;
		if (req->opts_len > CONV_MSG_MAX ||
		    (req->opts_len > 0 && req->opts == NULL))
			return 0;
		if (req->udp && (req->opts_len > 0 || !no_target(a6, port)))
			return 0;
		total += PAD4(CONNECT_LEN + req->opts_len);
	} else if (req->name != NULL) {
		nlen = strnlen(req->name, 256);
		if (nlen == 0 || nlen > 255)
			return 0;
		total += PAD4(NAME_FIXED + nlen);
	}
	if (req->cookie != NULL) {
		if (req->cookie_len > CONV_MSG_MAX)
			return 0;
		total += PAD4(4 + req->cookie_len);
	}
	if (req->udp)
		total += 4;
	if (req->info)
		total += 4;
	if (req->silent)
		total += 4;
	if (req->user != NULL) {
		ulen = strnlen(req->user, 256);
		if (ulen == 0 || ulen > 255)
			return 0;
		total += PAD4(AUTH_FIXED + ulen);
	}
	if (total > CONV_MSG_MAX || total > cap)
		return 0;

	memset(out, 0, total);
	out[0] = CONV_VERSION;
	out[1] = (uint8_t)(total / 4);
	put16(out + 2, CONV_MAGIC);
	off = CONV_HDR_LEN;
	if (req->addr != NULL) {
		put16(out + off + 2, port);
		memcpy(out + off + 4, a6, 16);
		if (req->opts_len > 0)
			memcpy(
			    out + off + CONNECT_LEN, req->opts, req->opts_len);
		off += put_tlv(
		    out + off, CONV_TLV_CONNECT, CONNECT_LEN + req->opts_len);
	} else if (req->name != NULL) {
		put16(out + off + 2, req->port);
		out[off + 4] = (uint8_t)nlen;
		memcpy(out + off + NAME_FIXED, req->name, nlen);
		off += put_tlv(
		    out + off, CONV_TLV_CONNECT_NAME, NAME_FIXED + nlen);
	}
	if (req->udp)
		off += put_tlv(out + off, CONV_TLV_UDP, 4);
	if (req->cookie != NULL) {
		if (req->cookie_len > 0)
			memcpy(out + off + 4, req->cookie, req->cookie_len);
		off += put_tlv(out + off, CONV_TLV_COOKIE, 4 + req->cookie_len);
	}
	if (req->info)
		off += put_tlv(out + off, CONV_TLV_INFO, 4);
	if (req->silent)
		off += put_tlv(out + off, CONV_TLV_SILENT, 4);
	if (req->user != NULL) {
		out[off + 3] = (uint8_t)ulen;
		put32(out + off + 4, req->ts);
		memcpy(out + off + 8, req->nonce, CONV_NONCE_LEN);
		memcpy(out + off + AUTH_USER_OFF, req->user, ulen);
		if (mac_off != NULL)
			*mac_off = off + AUTH_USER_OFF + ulen;
		off += put_tlv(out + off, CONV_TLV_AUTH, AUTH_FIXED + ulen);
	}
	return off;
}

/* Writes header + Extended TCP Header (no options); 0 if cap is short. */
size_t
conv_write_ok_reply(uint8_t *out, size_t cap)
{
	if (cap < CONV_REPLY_LEN)
		return 0;
	memset(out, 0, CONV_REPLY_LEN);
	out[0] = CONV_VERSION;
	out[1] = CONV_REPLY_LEN / 4;
	put16(out + 2, CONV_MAGIC);
	put_tlv(out + CONV_HDR_LEN, CONV_TLV_EXT_TCP_HDR, 4);
	return CONV_REPLY_LEN;
}

/* Writes header + Error(code, value); 0 if cap is short. */
size_t
conv_write_error(uint8_t *out, size_t cap, uint8_t code, uint8_t value)
{
	if (cap < CONV_REPLY_LEN)
		return 0;
	out[0] = CONV_VERSION;
	out[1] = CONV_REPLY_LEN / 4;
	put16(out + 2, CONV_MAGIC);
	put_tlv(out + CONV_HDR_LEN, CONV_TLV_ERROR, 4);
	out[CONV_HDR_LEN + 2] = code;
	out[CONV_HDR_LEN + 3] = value;
	return CONV_REPLY_LEN;
}

/*
 * A datagram frame on a UDP-carrying connection (diagram in convert.h):
 * Length(16) then that many bytes, a SOCKS5 UDP header and the payload.
 * A Length below the shortest header can never frame a datagram, so it is
 * BAD as soon as both its bytes are in. On OK *body points into buf.
 */
enum conv_res
conv_udp_frame_parse(const uint8_t *buf, size_t len, const uint8_t **body,
    size_t *n, size_t *used)
{
	size_t blen;

	if (len < CONV_UDP_LEN_LEN)
		return CONV_AGAIN;
	blen = get16(buf);
	if (blen < CONV_UDP_BODY_MIN)
		return CONV_BAD;
	if (len - CONV_UDP_LEN_LEN < blen)
		return CONV_AGAIN;
	*body = buf + CONV_UDP_LEN_LEN;
	*n = blen;
	*used = CONV_UDP_LEN_LEN + blen;
	return CONV_OK;
}

/* Writes the Length of an n-byte body; 0 if n cannot be framed. */
size_t
conv_udp_frame_len(uint8_t out[CONV_UDP_LEN_LEN], size_t n)
{
	if (n < CONV_UDP_BODY_MIN || n > CONV_UDP_BODY_MAX)
		return 0;
	put16(out, (uint16_t)n);
	return CONV_UDP_LEN_LEN;
}

/* Writes Length and body; 0 if n cannot be framed or cap is short. */
size_t
conv_udp_frame_write(uint8_t *out, size_t cap, const uint8_t *body, size_t n)
{
	if (cap < CONV_UDP_LEN_LEN || cap - CONV_UDP_LEN_LEN < n)
		return 0;
	if (conv_udp_frame_len(out, n) == 0)
		return 0;
	memcpy(out + CONV_UDP_LEN_LEN, body, n);
	return CONV_UDP_LEN_LEN + n;
}

/*
 * HMAC-SHA256(key, msg[0..len)) truncated to CONV_MAC_LEN bytes into mac.
 * On failure mac is zeroed and -1 returned: a caller that ignored it would
 * otherwise compare against whatever was in mac.
 */
int
conv_mac(const uint8_t key[CONV_KEY_LEN], const uint8_t *msg, size_t len,
    uint8_t mac[CONV_MAC_LEN])
{
	uint8_t full[EVP_MAX_MD_SIZE];
	unsigned int flen = 0;
	static const uint8_t empty[1];

	if (HMAC(EVP_sha256(), key, CONV_KEY_LEN, len > 0 ? msg : empty, len,
		full, &flen) == NULL ||
	    flen < CONV_MAC_LEN) {
		memset(mac, 0, CONV_MAC_LEN);
		OPENSSL_cleanse(full, sizeof(full));
		return -1;
	}
	memcpy(mac, full, CONV_MAC_LEN);
	OPENSSL_cleanse(full, sizeof(full));
	return 0;
}

/* Fills msg[mac_off..mac_off+16) with the MAC of what precedes it. */
int
conv_sign(uint8_t *msg, size_t mac_off, const uint8_t key[CONV_KEY_LEN])
{
	return conv_mac(key, msg, mac_off, msg + mac_off);
}

/* Whether a and b are the same MAC, in time independent of their bytes. */
bool
conv_mac_equal(const uint8_t a[CONV_MAC_LEN], const uint8_t b[CONV_MAC_LEN])
{
	return CRYPTO_memcmp(a, b, CONV_MAC_LEN) == 0;
}

/* Whether m (parsed from buf) has an Auth TLV whose MAC key produced. */
bool
conv_verify(const uint8_t *buf, const struct conv_msg *m,
    const uint8_t key[CONV_KEY_LEN])
{
	uint8_t mac[CONV_MAC_LEN];
	bool ok;

	if (!m->has_auth)
		return false;
	if (conv_mac(key, buf, m->mac_off, mac) == -1)
		return false;
	ok = conv_mac_equal(mac, m->mac);
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/*
 * Whether m's Cookie TLV holds cookie[0..len) and then only zero padding.
 * The cookie may be a secret, so the bytes are compared in constant time;
 * its length is not.
 */
bool
conv_cookie_equal(const struct conv_msg *m, const uint8_t *cookie, size_t len)
{
	uint8_t pad = 0;
	size_t i;

	if (!m->has_cookie || m->cookie_len != PAD4(len))
		return false;
	for (i = len; i < m->cookie_len; i++)
		pad |= m->cookie[i];
	if (len > 0 && CRYPTO_memcmp(m->cookie, cookie, len) != 0)
		return false;
	return pad == 0;
}

/*
 * The Connect target of m as a sockaddr: AF_INET for a v4-mapped address,
 * else AF_INET6. 0, or -1 if m has no Connect TLV.
 */
int
conv_addr_to_sockaddr(
    const struct conv_msg *m, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_in6 sin6;

	if (!m->has_connect)
		return -1;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(m->port);
	sin6.sin6_addr = m->addr;
	*sslen = addr_len(addr_unmap((const struct sockaddr *)&sin6, ss));
	return 0;
}

/*
 * Error code for the errno of a failed upstream connect (DESIGN.md
 * section 4): an RST from the server is Connection Reset, no route or no
 * answer is Destination Unreachable, a refusal by policy is Not
 * Authorized, running out of something local is Resource Exceeded.
 */
uint8_t
conv_err_from_errno(int err)
{
	switch (err) {
	case ECONNREFUSED:
	case ECONNRESET:
		return CONV_ERR_CONNECTION_RESET;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ETIMEDOUT:
		return CONV_ERR_DEST_UNREACHABLE;
	case EACCES:
	case EPERM:
		return CONV_ERR_NOT_AUTHORIZED;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		return CONV_ERR_RESOURCE_EXCEEDED;
	default:
		return CONV_ERR_NETWORK_FAILURE;
	}
}

/*
 * The errno the client shim gives connect() for an Error code. Codes with
 * no closer errno (protocol errors, resource exceeded, unassigned) give
 * ECONNREFUSED, which every caller of connect() already handles.
 */
int
conv_errno_from_err(uint8_t code)
{
	switch (code) {
	case CONV_ERR_CONNECTION_RESET:
		return ECONNREFUSED;
	case CONV_ERR_DEST_UNREACHABLE:
		return EHOSTUNREACH;
	case CONV_ERR_NETWORK_FAILURE:
		return ENETUNREACH;
	case CONV_ERR_NOT_AUTHORIZED:
	case CONV_ERR_MISSING_COOKIE:
		return EACCES;
	default:
		return ECONNREFUSED;
	}
}

/* IANA "Convert Errors" name of code, for logs; never NULL. */
const char *
conv_err_str(uint8_t code)
{
	switch (code) {
	case CONV_ERR_UNSUPPORTED_VERSION:
		return "unsupported version";
	case CONV_ERR_MALFORMED:
		return "malformed message";
	case CONV_ERR_UNSUPPORTED_MSG:
		return "unsupported message";
	case CONV_ERR_MISSING_COOKIE:
		return "missing cookie";
	case CONV_ERR_NOT_AUTHORIZED:
		return "not authorized";
	case CONV_ERR_UNSUPPORTED_OPTION:
		return "unsupported TCP option";
	case CONV_ERR_RESOURCE_EXCEEDED:
		return "resource exceeded";
	case CONV_ERR_NETWORK_FAILURE:
		return "network failure";
	case CONV_ERR_CONNECTION_RESET:
		return "connection reset";
	case CONV_ERR_DEST_UNREACHABLE:
		return "destination unreachable";
	default:
		return "unknown error";
	}
}
