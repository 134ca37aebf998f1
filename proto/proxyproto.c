#include "proto/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "lib/addr.h"

/*
 * Wire format (HAProxy doc/proxy-protocol.txt, sections 2.1 and 2.2).
 *
 * Version 1, one line of US-ASCII, single spaces, CRLF, 107 bytes at most:
 *
 *	PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n
 *	PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n
 *	PROXY UNKNOWN[ anything]\r\n
 *
 *	"PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF
 *	addresses in the family's canonical text form, decimal ports 0..65535,
 *	no leading zeros in either.
 *
 * Version 2, binary, every multi-byte field in network byte order:
 *
 *	 0                   1                   2                   3
 *	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *	+---------------------------------------------------------------+
 *	|          Signature 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A        |
 *	|                           (12 bytes)                          |
 *	|                                                               |
 *	+-------+-------+-------+-------+-------------------------------+
 *	|Ver = 2|  Cmd  |  Fam  | Proto |      Length (bytes after)     |
 *	+-------+-------+-------+-------+-------------------------------+
 *	|  Addresses: Fam INET 12 bytes, INET6 36, UNIX 216, UNSPEC ?   |
 *	+---------------------------------------------------------------+
 *	|  TLVs up to Length...                                         |
 *	+---------------------------------------------------------------+
 *
 *	Cmd: 0 LOCAL (the balancer's own connection, addresses ignored),
 *	1 PROXY. Fam: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX. Proto: 0 UNSPEC,
 *	1 STREAM, 2 DGRAM; the valid bytes are 0x00, 0x11, 0x12, 0x21,
 *	0x22, 0x31, 0x32.
 *
 *	INET:  src addr(4)  dst addr(4)  src port(2) dst port(2)
 *	INET6: src addr(16) dst addr(16) src port(2) dst port(2)
 *	UNIX:  src path(108) dst path(108)
 *
 *	TLV:
 *	+---------------+-------------------------------+---------------+
 *	|     Type      |        Length (of Value)      |   Value...    |
 *	+---------------+-------------------------------+---------------+
 *
 * The parsers are pure functions of (buf, len): they look at the bytes in
 * wire order and stop at the first that is either wrong (BAD) or not there
 * yet (AGAIN). So a BAD seen on a prefix is seen on every longer input, and
 * one byte at a time gives the same answer as all at once.
 */

static const char v1_sig[] = "PROXY ";
static const uint8_t v2_sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define V2_ADDR_INET 12
#define V2_ADDR_INET6 36
#define V2_ADDR_UNIX 216
#define UNIX_PATH 108
#define TLV_HDR 3
/* Longest IPv6 text: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255". */
#define V6_TEXT_MAX 45

/* A v1 line under parse: buf[0..len) and the next byte to look at, i. */
struct line {
	const uint8_t *buf;
	size_t len;
	size_t i;
};

/*
 * The next byte of the line into *b: AGAIN if it has not arrived, BAD if
 * the line cannot end within PP_V1_MAX with it (a byte other than CR or LF
 * needs two more after it, a CR one).
 */
static enum pp_res
next(struct line *l, uint8_t *b)
{
	size_t room;

	if (l->i >= l->len)
		return PP_AGAIN;
	*b = l->buf[l->i];
	room = *b == '\n' ? 0 : *b == '\r' ? 1 : 2;
	if (l->i + room >= PP_V1_MAX)
		return PP_BAD;
	l->i++;
	return PP_OK;
}

/* The next byte must be c. */
static enum pp_res
expect(struct line *l, uint8_t c)
{
	enum pp_res r;
	uint8_t b;

	if ((r = next(l, &b)) != PP_OK)
		return r;
	return b == c ? PP_OK : PP_BAD;
}

static bool
is_digit(uint8_t b)
{
	return b >= '0' && b <= '9';
}

static bool
is_xdigit(uint8_t b)
{
	return is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

/*
 * The protocol word after "PROXY ": sets *which to 0 (TCP4, its space
 * eaten), 1 (TCP6, likewise) or 2 (UNKNOWN). Bytes are matched as they
 * come, so the first that fits no word is BAD.
 */
static enum pp_res
v1_word(struct line *l, int *which)
{
	static const char *const words[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
	size_t start = l->i, n, wl;
	enum pp_res r;
	bool any;
	uint8_t b;
	int k;

	for (;;) {
		if ((r = next(l, &b)) != PP_OK)
			return r;
		n = l->i - start;
		any = false;
		for (k = 0; k < 3; k++) {
			wl = strlen(words[k]);
			if (wl < n || memcmp(l->buf + start, words[k], n) != 0)
				continue;
			if (wl == n) {
				*which = k;
				return PP_OK;
			}
			any = true;
		}
		if (!any)
			return PP_BAD;
	}
}

/*
 * A decimal 0..max with no leading zero, ended by the byte end: judged
 * byte by byte, so a wrong byte is BAD as soon as it comes.
 */
static enum pp_res
v1_decimal(struct line *l, uint32_t max, uint8_t end, uint32_t *out)
{
	unsigned digits = 0;
	uint32_t val = 0;
	enum pp_res r;
	uint8_t b;

	for (;;) {
		if ((r = next(l, &b)) != PP_OK)
			return r;
		if (is_digit(b)) {
			if (digits == 1 && val == 0)
				return PP_BAD;
			val = val * 10 + (uint32_t)(b - '0');
			if (val > max)
				return PP_BAD;
			digits++;
		} else if (b == end && digits > 0) {
			*out = val;
			return PP_OK;
		} else {
			return PP_BAD;
		}
	}
}

/* A dotted quad ended by a space. */
static enum pp_res
v1_ipv4(struct line *l, uint8_t a[4])
{
	enum pp_res r;
	uint32_t v;

	for (int i = 0; i < 4; i++) {
		if ((r = v1_decimal(l, 255, i < 3 ? '.' : ' ', &v)) != PP_OK)
			return r;
		a[i] = (uint8_t)v;
	}
	return PP_OK;
}

/*
 * An IPv6 address ended by a space: hex digits, colons and dots (the
 * dotted tail inet_ntop writes for ::ffff:a.b.c.d) as they come, then
 * inet_pton on the whole at the space.
 */
static enum pp_res
v1_ipv6(struct line *l, uint8_t a[16])
{
	char text[V6_TEXT_MAX + 1];
	size_t start = l->i, n;
	enum pp_res r;
	uint8_t b;

	for (;;) {
		if ((r = next(l, &b)) != PP_OK)
			return r;
		if (b == ' ')
			break;
		if (!is_xdigit(b) && b != ':' && b != '.')
			return PP_BAD;
		if (l->i - start > V6_TEXT_MAX)
			return PP_BAD;
	}
	n = l->i - 1 - start;
	memcpy(text, l->buf + start, n);
	text[n] = '\0';
	return inet_pton(AF_INET6, text, a) == 1 ? PP_OK : PP_BAD;
}

/* A port, ended by end. */
static enum pp_res
v1_port(struct line *l, uint8_t end, uint16_t *port)
{
	enum pp_res r;
	uint32_t v;

	if ((r = v1_decimal(l, 65535, end, &v)) == PP_OK)
		*port = (uint16_t)v;
	return r;
}

/*
 * After "UNKNOWN": a space and printable text, or nothing, then CRLF. The
 * spec tells the receiver to ignore the text; a lone CR or LF is still BAD.
 */
static enum pp_res
v1_unknown_rest(struct line *l)
{
	enum pp_res r;
	uint8_t b;
	bool first = true;

	for (;;) {
		if ((r = next(l, &b)) != PP_OK)
			return r;
		if (b == '\r')
			return expect(l, '\n');
		if (first ? b != ' ' : (b < 0x20 || b > 0x7e))
			return PP_BAD;
		first = false;
	}
}

/* Fills ss with family, address bytes a and host-order port. */
static socklen_t
fill_inet(
    struct sockaddr_storage *ss, int family, const uint8_t *a, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a, 4);
		sin->sin_port = htons(port);
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	memcpy(&sin6->sin6_addr, a, 16);
	sin6->sin6_port = htons(port);
	return sizeof(*sin6);
}

/* Version 1, from "PROXY" on; the caller has seen buf[0] == 'P'. */
static enum pp_res
parse_v1(const uint8_t *buf, size_t len, struct pp_hdr *h, size_t *used)
{
	struct line l = {buf, len, 0};
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	enum pp_res r;
	int which, family;
	size_t k;

	for (k = 0; k < sizeof(v1_sig) - 1; k++)
		if ((r = expect(&l, (uint8_t)v1_sig[k])) != PP_OK)
			return r;
	if ((r = v1_word(&l, &which)) != PP_OK)
		return r;
	memset(h, 0, sizeof(*h));
	h->version = 1;
	h->cmd = PP_CMD_PROXY;
	if (which == 2) {
		if ((r = v1_unknown_rest(&l)) != PP_OK)
			return r;
		h->fam = PP_FAM_UNSPEC;
		h->proto = PP_PROTO_UNSPEC;
		*used = l.i;
		return PP_OK;
	}
	family = which == 0 ? AF_INET : AF_INET6;
	r = family == AF_INET ? v1_ipv4(&l, src) : v1_ipv6(&l, src);
	if (r != PP_OK)
		return r;
	r = family == AF_INET ? v1_ipv4(&l, dst) : v1_ipv6(&l, dst);
	if (r != PP_OK)
		return r;
	if ((r = v1_port(&l, ' ', &sport)) != PP_OK)
		return r;
	if ((r = v1_port(&l, '\r', &dport)) != PP_OK)
		return r;
	if ((r = expect(&l, '\n')) != PP_OK)
		return r;
	h->fam = family == AF_INET ? PP_FAM_INET : PP_FAM_INET6;
	h->proto = PP_PROTO_STREAM;
	h->has_addr = true;
	h->addr_len = fill_inet(&h->src, family, src, sport);
	fill_inet(&h->dst, family, dst, dport);
	*used = l.i;
	return PP_OK;
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Bytes of the address block for a v2 family byte; -1 if not valid. */
static int
v2_addr_len(uint8_t famproto)
{
	switch (famproto) {
	case 0x00:
		return 0;
	case 0x11:
	case 0x12:
		return V2_ADDR_INET;
	case 0x21:
	case 0x22:
		return V2_ADDR_INET6;
	case 0x31:
	case 0x32:
		return V2_ADDR_UNIX;
	default:
		return -1;
	}
}

/* Version 2; the caller has seen buf[0] == CR. */
static enum pp_res
parse_v2(const uint8_t *buf, size_t len, struct pp_hdr *h, size_t *used)
{
	size_t k, total, off, tlv_off;
	int alen;
	uint8_t cmd, fam;

	for (k = 0; k < sizeof(v2_sig); k++) {
		if (len <= k)
			return PP_AGAIN;
		if (buf[k] != v2_sig[k])
			return PP_BAD;
	}
	if (len < 13)
		return PP_AGAIN;
	cmd = buf[12] & 0x0f;
	if ((buf[12] >> 4) != 2 || (cmd != PP_CMD_LOCAL && cmd != PP_CMD_PROXY))
		return PP_BAD;
	if (len < 14)
		return PP_AGAIN;
	if ((alen = v2_addr_len(buf[13])) == -1)
		return PP_BAD;
	fam = buf[13] >> 4;
	if (len < PP_V2_HDR_LEN)
		return PP_AGAIN;
	total = PP_V2_HDR_LEN + (size_t)get16(buf + 14);
	if (total - PP_V2_HDR_LEN < (size_t)alen || total > PP_HDR_MAX)
		return PP_BAD;
	/*
	 * The TLVs must tile the rest of the header. Only their Type and
	 * Length are read, so a Length that overruns the header is BAD as
	 * soon as it arrives, whatever is still missing before it.
	 */
	tlv_off = PP_V2_HDR_LEN + (size_t)alen;
	if (fam != PP_FAM_UNSPEC) {
		for (off = tlv_off; off < total;
		     off += TLV_HDR + get16(buf + off + 1)) {
			if (total - off < TLV_HDR)
				return PP_BAD;
			if (len < off || len - off < TLV_HDR)
				return PP_AGAIN;
			if (get16(buf + off + 1) > total - off - TLV_HDR)
				return PP_BAD;
		}
	}
	if (len < total)
		return PP_AGAIN;

	memset(h, 0, sizeof(*h));
	h->version = 2;
	h->cmd = cmd;
	h->fam = fam;
	h->proto = buf[13] & 0x0f;
	if (fam != PP_FAM_UNSPEC && total > tlv_off) {
		h->tlvs = buf + tlv_off;
		h->tlvs_len = total - tlv_off;
	}
	if (cmd == PP_CMD_PROXY && fam == PP_FAM_INET) {
		h->has_addr = true;
		h->addr_len =
		    fill_inet(&h->src, AF_INET, buf + 16, get16(buf + 24));
		fill_inet(&h->dst, AF_INET, buf + 20, get16(buf + 26));
	} else if (cmd == PP_CMD_PROXY && fam == PP_FAM_INET6) {
		h->has_addr = true;
		h->addr_len =
		    fill_inet(&h->src, AF_INET6, buf + 16, get16(buf + 48));
		fill_inet(&h->dst, AF_INET6, buf + 32, get16(buf + 50));
	}
	*used = total;
	return PP_OK;
}

/*
 * Parses a PROXY header from buf[0..len) (see proxyproto.h). Output is
 * built in a local and copied on OK, so *h is untouched otherwise.
 */
enum pp_res
pp_parse(const uint8_t *buf, size_t len, struct pp_hdr *h, size_t *used)
{
	struct pp_hdr tmp;
	enum pp_res r;
	size_t n = 0;

	if (len < 1)
		return PP_AGAIN;
	if (buf[0] == 'P')
		r = parse_v1(buf, len, &tmp, &n);
	else if (buf[0] == v2_sig[0])
		r = parse_v2(buf, len, &tmp, &n);
	else
		return PP_BAD;
	if (r == PP_OK) {
		*h = tmp;
		*used = n;
	}
	return r;
}

/* The first TLV of type in h's TLVs (already bounds-checked by pp_parse). */
bool
pp_tlv_find(
    const struct pp_hdr *h, uint8_t type, const uint8_t **val, size_t *vlen)
{
	size_t off, n;

	for (off = 0; h->tlvs_len - off >= TLV_HDR; off += TLV_HDR + n) {
		n = get16(h->tlvs + off + 1);
		if (n > h->tlvs_len - off - TLV_HDR)
			return false;
		if (h->tlvs[off] == type) {
			*val = h->tlvs + off + TLV_HDR;
			*vlen = n;
			return true;
		}
	}
	return false;
}

/*
 * src and dst as a pair of one family for the writers: both IPv4 (after
 * unmapping) stay AF_INET; IPv4 with IPv6 becomes two AF_INET6, the IPv4
 * one v4-mapped. Returns the family, or AF_UNSPEC if either is NULL or not
 * IP.
 */
static int
ip_pair(const struct sockaddr *src, const struct sockaddr *dst,
    struct sockaddr_storage *s, struct sockaddr_storage *d)
{
	struct sockaddr_storage *p[2] = {s, d};
	const struct sockaddr *in[2] = {src, dst};
	struct sockaddr_storage tmp;
	struct sockaddr_in6 *sin6;
	struct sockaddr_in sin;
	int i;

	for (i = 0; i < 2; i++) {
		if (addr_unmap(in[i], &tmp) == NULL)
			return AF_UNSPEC;
		*p[i] = tmp;
	}
	if (s->ss_family == d->ss_family)
		return s->ss_family;
	for (i = 0; i < 2; i++) {
		if (p[i]->ss_family != AF_INET)
			continue;
		memcpy(&sin, p[i], sizeof(sin));
		sin6 = (struct sockaddr_in6 *)p[i];
		memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = sin.sin_port;
		sin6->sin6_addr.s6_addr[10] = 0xff;
		sin6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(sin6->sin6_addr.s6_addr + 12, &sin.sin_addr, 4);
	}
	return AF_INET6;
}

/* Writes a v1 line for src and dst (see proxyproto.h). */
size_t
pp_write_v1(uint8_t *out, size_t cap, const struct sockaddr *src,
    const struct sockaddr *dst)
{
	char line[PP_V1_MAX + 1 + 16], a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	struct sockaddr_storage s, d;
	const struct sockaddr_in *s4, *d4;
	const struct sockaddr_in6 *s6, *d6;
	int family, n;

	family =
	    src == NULL || dst == NULL ? AF_UNSPEC : ip_pair(src, dst, &s, &d);
	if (family == AF_INET) {
		s4 = (const struct sockaddr_in *)&s;
		d4 = (const struct sockaddr_in *)&d;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		inet_ntop(AF_INET, &d4->sin_addr, b, sizeof(b));
		n = snprintf(line, sizeof(line), "PROXY TCP4 %s %s %u %u\r\n",
		    a, b, (unsigned)ntohs(s4->sin_port),
		    (unsigned)ntohs(d4->sin_port));
	} else if (family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)&s;
		d6 = (const struct sockaddr_in6 *)&d;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		inet_ntop(AF_INET6, &d6->sin6_addr, b, sizeof(b));
		n = snprintf(line, sizeof(line), "PROXY TCP6 %s %s %u %u\r\n",
		    a, b, (unsigned)ntohs(s6->sin6_port),
		    (unsigned)ntohs(d6->sin6_port));
	} else {
		n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
	}
	/* The longest mapped forms overrun the spec's 107: write nothing. */
	if (n < 0 || (size_t)n > PP_V1_MAX || (size_t)n > cap)
		return 0;
	memcpy(out, line, (size_t)n);
	return (size_t)n;
}

static void
put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Writes a v2 header (see proxyproto.h). */
size_t
pp_write_v2(uint8_t *out, size_t cap, uint8_t cmd, uint8_t proto,
    const struct sockaddr *src, const struct sockaddr *dst, const uint8_t *tlvs,
    size_t tlvs_len)
{
	struct sockaddr_storage s, d;
	const struct sockaddr_in *s4, *d4;
	const struct sockaddr_in6 *s6, *d6;
	const struct sockaddr_un *su, *du;
	enum pp_fam fam = PP_FAM_UNSPEC;
	size_t alen = 0, total;

	if (cmd != PP_CMD_LOCAL && cmd != PP_CMD_PROXY)
		return 0;
	if (proto != PP_PROTO_STREAM && proto != PP_PROTO_DGRAM)
		return 0;
	if (cmd == PP_CMD_PROXY && src != NULL && dst != NULL) {
		if (src->sa_family == AF_UNIX && dst->sa_family == AF_UNIX) {
			fam = PP_FAM_UNIX;
			alen = V2_ADDR_UNIX;
		} else {
			switch (ip_pair(src, dst, &s, &d)) {
			case AF_INET:
				fam = PP_FAM_INET;
				alen = V2_ADDR_INET;
				break;
			case AF_INET6:
				fam = PP_FAM_INET6;
				alen = V2_ADDR_INET6;
				break;
			default:
				break;
			}
		}
	}
	if (tlvs_len > PP_HDR_MAX || (tlvs_len > 0 && tlvs == NULL))
		return 0;
	total = PP_V2_HDR_LEN + alen + tlvs_len;
	if (total > PP_HDR_MAX || total > cap)
		return 0;

	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = (uint8_t)(0x20 | cmd);
	out[13] = fam == PP_FAM_UNSPEC ? 0x00 : (uint8_t)(fam << 4 | proto);
	put16(out + 14, total - PP_V2_HDR_LEN);
	switch (fam) {
	case PP_FAM_INET:
		s4 = (const struct sockaddr_in *)&s;
		d4 = (const struct sockaddr_in *)&d;
		memcpy(out + 16, &s4->sin_addr, 4);
		memcpy(out + 20, &d4->sin_addr, 4);
		memcpy(out + 24, &s4->sin_port, 2);
		memcpy(out + 26, &d4->sin_port, 2);
		break;
	case PP_FAM_INET6:
		s6 = (const struct sockaddr_in6 *)&s;
		d6 = (const struct sockaddr_in6 *)&d;
		memcpy(out + 16, &s6->sin6_addr, 16);
		memcpy(out + 32, &d6->sin6_addr, 16);
		memcpy(out + 48, &s6->sin6_port, 2);
		memcpy(out + 50, &d6->sin6_port, 2);
		break;
	case PP_FAM_UNIX:
		su = (const struct sockaddr_un *)(const void *)src;
		du = (const struct sockaddr_un *)(const void *)dst;
		memcpy(out + 16, su->sun_path, UNIX_PATH);
		memcpy(out + 16 + UNIX_PATH, du->sun_path, UNIX_PATH);
		break;
	case PP_FAM_UNSPEC:
		break;
	}
	if (tlvs_len > 0)
		memcpy(out + PP_V2_HDR_LEN + alen, tlvs, tlvs_len);
	return total;
}

/* Writes Type, Length, Value; 0 if vlen is above 65535 or cap is short. */
size_t
pp_write_tlv(
    uint8_t *out, size_t cap, uint8_t type, const uint8_t *val, size_t vlen)
{
	if (vlen > 0xffff || cap < TLV_HDR || cap - TLV_HDR < vlen)
		return 0;
	out[0] = type;
	put16(out + 1, vlen);
	if (vlen > 0)
		memcpy(out + TLV_HDR, val, vlen);
	return TLV_HDR + vlen;
}
