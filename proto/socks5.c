#include "proto/socks5.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"

/*
 * Every parser below is a pure function of (buf, len): it looks at the fields
 * in wire order and stops at the first one that is either wrong (BAD) or not
 * there yet (AGAIN). So a BAD seen on a prefix is seen, with the same REP, on
 * every longer input, and an OK on a prefix stays OK with the same *used:
 * one byte at a time and all at once give the same answer. Output structs
 * are written only on OK.
 */

/*
 * The address part shared by requests, replies and UDP headers
 * (RFC 1928 sections 4, 5 and 6):
 *
 *	+------+----------+----------+
 *	| ATYP | DST.ADDR | DST.PORT |
 *	+------+----------+----------+
 *	|  1   | Variable |    2     |
 *	+------+----------+----------+
 *
 *	ATYP 01: 4 octets, IPv4
 *	ATYP 03: 1 length octet, then that many octets of name, no NUL
 *	ATYP 04: 16 octets, IPv6
 *
 * Parses the ADDR and PORT that start at buf[off] (just after ATYP; off must
 * be <= len). strict (requests) refuses an empty name and a name with a NUL
 * in it; replies take any name, since Dante echoes an empty one. On OK fills
 * *a and sets *end to the offset just past PORT; on BAD sets *rep.
 */
static enum socks5_res
parse_addr(const uint8_t *buf, size_t len, size_t off, uint8_t atyp,
    bool strict, struct socks5_addr *a, size_t *end, uint8_t *rep)
{
	size_t alen, avail;
	uint8_t n;

	switch (atyp) {
	case SOCKS5_ATYP_IPV4:
		alen = 4;
		break;
	case SOCKS5_ATYP_IPV6:
		alen = 16;
		break;
	case SOCKS5_ATYP_DOMAIN:
		if (len - off < 1)
			return SOCKS5_AGAIN;
		n = buf[off];
		if (strict && n == 0) {
			*rep = SOCKS5_REP_GENERAL_FAILURE;
			return SOCKS5_BAD;
		}
		off++;
		/* A NUL is refused as soon as it arrives, not at the end. */
		avail = len - off < n ? len - off : n;
		if (strict && memchr(buf + off, '\0', avail) != NULL) {
			*rep = SOCKS5_REP_GENERAL_FAILURE;
			return SOCKS5_BAD;
		}
		if (len - off < (size_t)n + 2)
			return SOCKS5_AGAIN;
		memset(a, 0, sizeof(*a));
		a->atyp = atyp;
		a->name_len = n;
		memcpy(a->u.name, buf + off, n);
		a->u.name[n] = '\0';
		a->port = (uint16_t)(buf[off + n] << 8 | buf[off + n + 1]);
		*end = off + n + 2;
		return SOCKS5_OK;
	default:
		*rep = SOCKS5_REP_ATYP_UNSUPPORTED;
		return SOCKS5_BAD;
	}
	if (len - off < alen + 2)
		return SOCKS5_AGAIN;
	memset(a, 0, sizeof(*a));
	a->atyp = atyp;
	memcpy(atyp == SOCKS5_ATYP_IPV4 ? a->u.v4 : a->u.v6, buf + off, alen);
	a->port = (uint16_t)(buf[off + alen] << 8 | buf[off + alen + 1]);
	*end = off + alen + 2;
	return SOCKS5_OK;
}

/*
 * Bytes ATYP ADDR PORT of a take on the wire, or 0 if a cannot be written:
 * an unknown ATYP, or a name that is empty or holds a NUL.
 */
static size_t
addr_wire_len(const struct socks5_addr *a)
{
	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		return 1 + 4 + 2;
	case SOCKS5_ATYP_IPV6:
		return 1 + 16 + 2;
	case SOCKS5_ATYP_DOMAIN:
		if (a->name_len == 0 ||
		    memchr(a->u.name, '\0', a->name_len) != NULL)
			return 0;
		return 1 + 1 + (size_t)a->name_len + 2;
	default:
		return 0;
	}
}

/*
 * Writes ATYP ADDR PORT of a at out, which must hold addr_wire_len(a) bytes
 * (non-zero). Returns the bytes written.
 */
static size_t
write_addr(uint8_t *out, const struct socks5_addr *a)
{
	size_t off = 0;

	out[off++] = a->atyp;
	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		memcpy(out + off, a->u.v4, 4);
		off += 4;
		break;
	case SOCKS5_ATYP_IPV6:
		memcpy(out + off, a->u.v6, 16);
		off += 16;
		break;
	case SOCKS5_ATYP_DOMAIN:
		out[off++] = a->name_len;
		memcpy(out + off, a->u.name, a->name_len);
		off += a->name_len;
		break;
	default:
		break;
	}
	out[off++] = (uint8_t)(a->port >> 8);
	out[off++] = (uint8_t)(a->port & 0xff);
	return off;
}

/*
 * Method selection request, client to server (RFC 1928 section 3):
 *
 *	+-----+----------+----------+
 *	| VER | NMETHODS | METHODS  |
 *	+-----+----------+----------+
 *	|  1  |    1     | 1 to 255 |
 *	+-----+----------+----------+
 *
 * VER must be 05 and NMETHODS at least 1. On OK fills *g.
 */
enum socks5_res
socks5_parse_greeting(const uint8_t *buf, size_t len,
    struct socks5_greeting *g, size_t *used)
{
	uint8_t n;

	if (len < 1)
		return SOCKS5_AGAIN;
	if (buf[0] != SOCKS5_VERSION)
		return SOCKS5_BAD;
	if (len < 2)
		return SOCKS5_AGAIN;
	n = buf[1];
	if (n == 0)
		return SOCKS5_BAD;
	if (len - 2 < n)
		return SOCKS5_AGAIN;
	g->nmethods = n;
	memcpy(g->methods, buf + 2, n);
	*used = 2 + (size_t)n;
	return SOCKS5_OK;
}

/* Whether the client listed method in its greeting g. */
bool
socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method)
{
	size_t i;

	for (i = 0; i < g->nmethods; i++)
		if (g->methods[i] == method)
			return true;
	return false;
}

/*
 * Username/password request, client to server (RFC 1929 section 2):
 *
 *	+-----+------+----------+------+----------+
 *	| VER | ULEN |  UNAME   | PLEN |  PASSWD  |
 *	+-----+------+----------+------+----------+
 *	|  1  |  1   | 1 to 255 |  1   | 0 to 255 |
 *	+-----+------+----------+------+----------+
 *
 * VER must be 01 and ULEN at least 1; a NUL in UNAME or PASSWD is BAD, since
 * both are handed on as C strings. PLEN 0 is taken: RFC 1929 says 1 to 255,
 * but clients send empty passwords and the password check refuses them.
 * On OK fills *up with NUL-terminated copies.
 */
enum socks5_res
socks5_parse_userpass(const uint8_t *buf, size_t len,
    struct socks5_userpass *up, size_t *used)
{
	size_t avail, poff;
	uint8_t ulen, plen;

	if (len < 1)
		return SOCKS5_AGAIN;
	if (buf[0] != SOCKS5_USERPASS_VERSION)
		return SOCKS5_BAD;
	if (len < 2)
		return SOCKS5_AGAIN;
	ulen = buf[1];
	if (ulen == 0)
		return SOCKS5_BAD;
	avail = len - 2 < ulen ? len - 2 : ulen;
	if (memchr(buf + 2, '\0', avail) != NULL)
		return SOCKS5_BAD;
	poff = 2 + (size_t)ulen;
	if (len - 2 < (size_t)ulen + 1)
		return SOCKS5_AGAIN;
	plen = buf[poff];
	avail = len - poff - 1 < plen ? len - poff - 1 : plen;
	if (memchr(buf + poff + 1, '\0', avail) != NULL)
		return SOCKS5_BAD;
	if (len - poff - 1 < plen)
		return SOCKS5_AGAIN;
	up->ulen = ulen;
	up->plen = plen;
	memcpy(up->user, buf + 2, ulen);
	up->user[ulen] = '\0';
	memcpy(up->pass, buf + poff + 1, plen);
	up->pass[plen] = '\0';
	*used = poff + 1 + plen;
	return SOCKS5_OK;
}

/*
 * Request, client to server (RFC 1928 section 4):
 *
 *	+-----+-----+-------+------+----------+----------+
 *	| VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
 *	+-----+-----+-------+------+----------+----------+
 *	|  1  |  1  | X'00' |  1   | Variable |    2     |
 *	+-----+-----+-------+------+----------+----------+
 *
 * CMD is not checked (the caller answers 07). On BAD, *rep is the reply to
 * send: 08 for an unknown ATYP, 01 for a bad VER, a non-zero RSV, or an
 * empty domain or one with a NUL. On OK fills *req.
 */
enum socks5_res
socks5_parse_request(const uint8_t *buf, size_t len,
    struct socks5_request *req, size_t *used, uint8_t *rep)
{
	enum socks5_res res;
	size_t end;

	if (len < 1)
		return SOCKS5_AGAIN;
	if (buf[0] != SOCKS5_VERSION) {
		*rep = SOCKS5_REP_GENERAL_FAILURE;
		return SOCKS5_BAD;
	}
	if (len < 3)
		return SOCKS5_AGAIN;
	if (buf[2] != 0x00) {
		*rep = SOCKS5_REP_GENERAL_FAILURE;
		return SOCKS5_BAD;
	}
	if (len < 4)
		return SOCKS5_AGAIN;
	res = parse_addr(buf, len, 4, buf[3], true, &req->dst, &end, rep);
	if (res != SOCKS5_OK)
		return res;
	req->cmd = buf[1];
	*used = end;
	return SOCKS5_OK;
}

/*
 * Method selection reply, server to client (RFC 1928 section 3):
 *
 *	+-----+--------+
 *	| VER | METHOD |
 *	+-----+--------+
 *	|  1  |   1    |
 *	+-----+--------+
 *
 * Writes VER 05 and method into out; returns 2.
 */
size_t
socks5_write_method(uint8_t out[2], uint8_t method)
{
	out[0] = SOCKS5_VERSION;
	out[1] = method;
	return 2;
}

/*
 * Username/password status, server to client (RFC 1929 section 2):
 *
 *	+-----+--------+
 *	| VER | STATUS |
 *	+-----+--------+
 *	|  1  |   1    |
 *	+-----+--------+
 *
 * VER is 01 (the sub-negotiation's version, not 05). Returns 2.
 */
size_t
socks5_write_userpass_status(uint8_t out[2], uint8_t status)
{
	out[0] = SOCKS5_USERPASS_VERSION;
	out[1] = status;
	return 2;
}

/*
 * Reply, server to client (RFC 1928 section 6):
 *
 *	+-----+-----+-------+------+----------+----------+
 *	| VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
 *	+-----+-----+-------+------+----------+----------+
 *	|  1  |  1  | X'00' |  1   | Variable |    2     |
 *	+-----+-----+-------+------+----------+----------+
 *
 * Writes a whole reply, failures included, into out (SOCKS5_REPLY_MAX
 * bytes) with BND from bnd (AF_INET or AF_INET6, a v4-mapped address as
 * IPv4); NULL or another family gives 0.0.0.0:0. Returns 10 or 22.
 */
size_t
socks5_write_reply(uint8_t *out, uint8_t rep, const struct sockaddr *bnd)
{
	struct socks5_addr a;
	int saved_errno = errno;

	if (bnd == NULL || socks5_addr_from_sockaddr(&a, bnd) == -1) {
		memset(&a, 0, sizeof(a));
		a.atyp = SOCKS5_ATYP_IPV4;
	}
	/* The caller may still want the errno that made it reply. */
	errno = saved_errno;
	out[0] = SOCKS5_VERSION;
	out[1] = rep;
	out[2] = 0x00;
	return 3 + write_addr(out + 3, &a);
}

/*
 * Client side of the greeting (diagram above socks5_parse_greeting): writes
 * VER NMETHODS METHODS for the n methods into out (cap bytes). Returns the
 * bytes written, or 0 if n is 0 or above 255 or the message does not fit.
 */
size_t
socks5_write_greeting(uint8_t *out, size_t cap, const uint8_t *methods,
    size_t n)
{
	if (n == 0 || n > 255 || cap < 2 || cap - 2 < n)
		return 0;
	out[0] = SOCKS5_VERSION;
	out[1] = (uint8_t)n;
	memcpy(out + 2, methods, n);
	return 2 + n;
}

/*
 * Client side of RFC 1929 (diagram above socks5_parse_userpass): writes
 * VER ULEN UNAME PLEN PASSWD from the C strings user and pass into out (cap
 * bytes). Returns the bytes written, or 0 if user is empty, either is longer
 * than 255, or the message does not fit. pass may be empty.
 */
size_t
socks5_write_userpass(uint8_t *out, size_t cap, const char *user,
    const char *pass)
{
	size_t ulen, plen;

	/* strnlen: a long string is refused without reading all of it. */
	ulen = strnlen(user, 256);
	plen = strnlen(pass, 256);
	if (ulen == 0 || ulen > 255 || plen > 255)
		return 0;
	if (cap < 3 || cap - 3 < ulen + plen)
		return 0;
	out[0] = SOCKS5_USERPASS_VERSION;
	out[1] = (uint8_t)ulen;
	memcpy(out + 2, user, ulen);
	out[2 + ulen] = (uint8_t)plen;
	memcpy(out + 3 + ulen, pass, plen);
	return 3 + ulen + plen;
}

/*
 * Client side of the request (diagram above socks5_parse_request): writes
 * VER CMD RSV ATYP DST.ADDR DST.PORT for cmd and dst into out (cap bytes).
 * Returns the bytes written, or 0 if dst has an unknown ATYP, an empty name
 * or one with a NUL, or the message does not fit.
 */
size_t
socks5_write_request(uint8_t *out, size_t cap, uint8_t cmd,
    const struct socks5_addr *dst)
{
	size_t alen;

	alen = addr_wire_len(dst);
	if (alen == 0 || cap < 3 || cap - 3 < alen)
		return 0;
	out[0] = SOCKS5_VERSION;
	out[1] = cmd;
	out[2] = 0x00;
	return 3 + write_addr(out + 3, dst);
}

/* A two-byte answer, VER then one value: sets *val when complete. */
static enum socks5_res
parse_pair(const uint8_t *buf, size_t len, uint8_t ver, uint8_t *val,
    size_t *used)
{
	if (len < 1)
		return SOCKS5_AGAIN;
	if (buf[0] != ver)
		return SOCKS5_BAD;
	if (len < 2)
		return SOCKS5_AGAIN;
	*val = buf[1];
	*used = 2;
	return SOCKS5_OK;
}

/*
 * Client side of method selection (diagram above socks5_write_method):
 * VER must be 05. On OK sets *method.
 */
enum socks5_res
socks5_parse_method(const uint8_t *buf, size_t len, uint8_t *method,
    size_t *used)
{
	return parse_pair(buf, len, SOCKS5_VERSION, method, used);
}

/*
 * Client side of the RFC 1929 status (diagram above
 * socks5_write_userpass_status): VER must be 01. On OK sets *status.
 */
enum socks5_res
socks5_parse_userpass_status(const uint8_t *buf, size_t len,
    uint8_t *status, size_t *used)
{
	return parse_pair(buf, len, SOCKS5_USERPASS_VERSION, status, used);
}

/*
 * Client side of the reply (diagram above socks5_write_reply): VER must be
 * 05 and ATYP known. RSV is not checked, and a domain BND.ADDR is taken as
 * it comes (Dante echoes an empty one on failure): the client needs REP
 * more than a tidy address. On OK sets *rep and fills *bnd.
 */
enum socks5_res
socks5_parse_reply(const uint8_t *buf, size_t len, uint8_t *rep,
    struct socks5_addr *bnd, size_t *used)
{
	enum socks5_res res;
	size_t end;
	uint8_t dummy;

	if (len < 1)
		return SOCKS5_AGAIN;
	if (buf[0] != SOCKS5_VERSION)
		return SOCKS5_BAD;
	if (len < 4)
		return SOCKS5_AGAIN;
	res = parse_addr(buf, len, 4, buf[3], false, bnd, &end, &dummy);
	if (res != SOCKS5_OK)
		return res;
	*rep = buf[1];
	*used = end;
	return SOCKS5_OK;
}

/*
 * UDP request header, client to relay and relay to client (RFC 1928
 * section 7):
 *
 *	+----+------+------+----------+----------+----------+
 *	|RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 *	+----+------+------+----------+----------+----------+
 *	| 2  |  1   |  1   | Variable |    2     | Variable |
 *	+----+------+------+----------+----------+----------+
 *
 * The RFC writes RSV as X'0000' but says nothing of a relay that sees
 * another value, and a datagram has no channel to report an error on; Dante
 * copies RSV and never looks at it, so a client that puts garbage there
 * works with Dante. It is not checked here either, and always written as
 * zero. FRAG is the caller's to judge. The address is strict, as in a
 * request: a name is 1..255 bytes with no NUL, since it is resolved. The
 * parser sees a whole datagram, so AGAIN is a truncated header. On OK
 * fills *h.
 */
enum socks5_res
socks5_parse_udp_hdr(const uint8_t *buf, size_t len, struct socks5_udp_hdr *h,
    size_t *used)
{
	enum socks5_res res;
	size_t end;
	uint8_t dummy;

	if (len < 4)
		return SOCKS5_AGAIN;
	res = parse_addr(buf, len, 4, buf[3], true, &h->addr, &end, &dummy);
	if (res != SOCKS5_OK)
		return res;
	h->frag = buf[2];
	*used = end;
	return SOCKS5_OK;
}

/*
 * Writes the header (diagram above socks5_parse_udp_hdr) for frag and a
 * into out (cap bytes). Returns its length, or 0 if a cannot be written or
 * cap is short.
 */
size_t
socks5_write_udp_hdr(uint8_t *out, size_t cap, uint8_t frag,
    const struct socks5_addr *a)
{
	size_t alen;

	alen = addr_wire_len(a);
	if (alen == 0 || cap < 3 || cap - 3 < alen)
		return 0;
	out[0] = 0x00;
	out[1] = 0x00;
	out[2] = frag;
	return 3 + write_addr(out + 3, a);
}

/*
 * The relay's header for a datagram from sa (AF_INET or AF_INET6, a
 * v4-mapped address as IPv4), FRAG 0. Returns its length, or 0 for another
 * family or a short cap.
 */
size_t
socks5_write_udp_hdr_sa(uint8_t *out, size_t cap, const struct sockaddr *sa)
{
	struct socks5_addr a;

	if (socks5_addr_from_sockaddr(&a, sa) == -1)
		return 0;
	return socks5_write_udp_hdr(out, cap, 0, &a);
}

/*
 * Fills *a from an AF_INET or AF_INET6 sockaddr; a v4-mapped IPv6 address
 * becomes IPv4. Returns 0, or -1 with errno EAFNOSUPPORT for another family.
 */
int
socks5_addr_from_sockaddr(struct socks5_addr *a, const struct sockaddr *sa)
{
	struct sockaddr_storage ss;
	const struct sockaddr *u = addr_unmap(sa, &ss);

	memset(a, 0, sizeof(*a));
	if (u == NULL) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (u->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)u;

		a->atyp = SOCKS5_ATYP_IPV4;
		memcpy(a->u.v4, &sin->sin_addr, 4);
		a->port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)u;

		a->atyp = SOCKS5_ATYP_IPV6;
		memcpy(a->u.v6, sin6->sin6_addr.s6_addr, 16);
		a->port = ntohs(sin6->sin6_port);
	}
	return 0;
}

/*
 * Fills *ss and *sslen from an IPv4 or IPv6 address a. Returns 0, or -1
 * with errno EAFNOSUPPORT for a domain (the caller resolves it) or an
 * unknown ATYP.
 */
int
socks5_addr_to_sockaddr(const struct socks5_addr *a,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;

	memset(ss, 0, sizeof(*ss));
	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->u.v4, 4);
		*sslen = sizeof(*sin);
		return 0;
	case SOCKS5_ATYP_IPV6:
		sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		memcpy(&sin6->sin6_addr, a->u.v6, 16);
		*sslen = sizeof(*sin6);
		return 0;
	default:
		errno = EAFNOSUPPORT;
		return -1;
	}
}

/*
 * Writes a as "1.2.3.4:80", "[::1]:80" or "name:80" into out (cap bytes),
 * truncating, and always NUL-terminated when cap > 0. Bytes of a name
 * outside printable ASCII come out as '?': the result goes into log lines,
 * and a name is whatever the peer sent.
 */
void
socks5_addr_format(const struct socks5_addr *a, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	char name[256];
	size_t i;
	unsigned char c;

	if (cap == 0)
		return;
	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		inet_ntop(AF_INET, a->u.v4, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, (unsigned)a->port);
		break;
	case SOCKS5_ATYP_IPV6:
		inet_ntop(AF_INET6, a->u.v6, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, (unsigned)a->port);
		break;
	case SOCKS5_ATYP_DOMAIN:
		for (i = 0; i < a->name_len; i++) {
			c = (unsigned char)a->u.name[i];
			name[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		name[i] = '\0';
		snprintf(out, cap, "%s:%u", name, (unsigned)a->port);
		break;
	default:
		snprintf(out, cap, "(atyp %u)", (unsigned)a->atyp);
		break;
	}
}

/*
 * The REP for a failed upstream connect's errno (DESIGN.md section 2);
 * anything not listed is 01, general failure.
 */
uint8_t
socks5_rep_from_errno(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return SOCKS5_REP_REFUSED;
	case ENETUNREACH:
		return SOCKS5_REP_NET_UNREACHABLE;
	case EHOSTUNREACH:
		return SOCKS5_REP_HOST_UNREACHABLE;
	case ETIMEDOUT:
		return SOCKS5_REP_TTL_EXPIRED;
	case EACCES:
	case EPERM:
		return SOCKS5_REP_NOT_ALLOWED;
	default:
		return SOCKS5_REP_GENERAL_FAILURE;
	}
}

/*
 * The errno the client shim gives connect() for a failure REP. Codes with
 * no closer errno (01, 07, 08, unassigned, and 00 if asked) give
 * ECONNREFUSED, which every caller of connect() already handles.
 */
int
socks5_errno_from_rep(uint8_t rep)
{
	switch (rep) {
	case SOCKS5_REP_REFUSED:
		return ECONNREFUSED;
	case SOCKS5_REP_HOST_UNREACHABLE:
		return EHOSTUNREACH;
	case SOCKS5_REP_NET_UNREACHABLE:
		return ENETUNREACH;
	case SOCKS5_REP_TTL_EXPIRED:
		return ETIMEDOUT;
	case SOCKS5_REP_NOT_ALLOWED:
		return EACCES;
	default:
		return ECONNREFUSED;
	}
}

/* RFC 1928 section 6 name of rep, for logs; never NULL. */
/*
 * Method names, as configured in socks5.methods and written in logs. The
 * switch has no default so that a new method without a name fails to
 * build (-Wswitch-enum).
 */
const char *
socks5_method_name(uint8_t method)
{
	switch ((enum socks5_method)method) {
	case SOCKS5_METHOD_NONE:
		return "none";
	case SOCKS5_METHOD_GSSAPI:
		return "gssapi";
	case SOCKS5_METHOD_USERPASS:
		return "userpass";
	case SOCKS5_METHOD_TLS:
		return "tls";
	case SOCKS5_METHOD_TLS_USERPASS:
		return "tls-userpass";
	case SOCKS5_METHOD_TLS_LOGIN:
		return "tls-login";
	case SOCKS5_METHOD_UNACCEPTABLE:
		return "unacceptable";
	}
	return "unknown";
}

int
socks5_method_parse(const char *s)
{
	static const uint8_t usable[] = { SOCKS5_METHOD_NONE,
		SOCKS5_METHOD_USERPASS, SOCKS5_METHOD_TLS,
		SOCKS5_METHOD_TLS_USERPASS, SOCKS5_METHOD_TLS_LOGIN };

	for (size_t i = 0; i < sizeof(usable); i++)
		if (strcmp(socks5_method_name(usable[i]), s) == 0)
			return usable[i];
	return -1;
}

const char *
socks5_rep_str(uint8_t rep)
{
	switch (rep) {
	case SOCKS5_REP_SUCCEEDED:
		return "succeeded";
	case SOCKS5_REP_GENERAL_FAILURE:
		return "general SOCKS server failure";
	case SOCKS5_REP_NOT_ALLOWED:
		return "connection not allowed by ruleset";
	case SOCKS5_REP_NET_UNREACHABLE:
		return "network unreachable";
	case SOCKS5_REP_HOST_UNREACHABLE:
		return "host unreachable";
	case SOCKS5_REP_REFUSED:
		return "connection refused";
	case SOCKS5_REP_TTL_EXPIRED:
		return "TTL expired";
	case SOCKS5_REP_CMD_UNSUPPORTED:
		return "command not supported";
	case SOCKS5_REP_ATYP_UNSUPPORTED:
		return "address type not supported";
	default:
		return "unassigned";
	}
}

int
socks5_parse_hostport(const char *s, char *host, size_t hostcap,
    uint16_t *port)
{
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hostcap || colon[1] == '\0')
		return -1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || p == 0 || p > 65535 ||
	    !isdigit((unsigned char)colon[1]))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)p;
	return 0;
}
