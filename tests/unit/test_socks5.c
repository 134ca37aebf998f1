/*
 * Unit tests for proto/socks5.c: table tests for each parser and writer,
 * every prefix of every valid message (one byte at a time), each malformed
 * field, writer round trips, the errno/REP mappings and address formatting.
 *
 * Every parse runs on a heap copy of exactly the bytes offered, so a parser
 * that reads past len trips AddressSanitizer in the asan build.
 */
#include "proto/socks5.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

enum kind {
	K_GREETING = 0,
	K_USERPASS,
	K_REQUEST,
	K_METHOD,
	K_STATUS,
	K_REPLY,
	K_UDP,
};

/* Everything a parser can hand back, so one harness drives all of them. */
struct outcome {
	enum socks5_res res;
	size_t used;
	uint8_t rep;		/* request: reply on BAD; reply: REP on OK */
	uint8_t byte;		/* method or status */
	struct socks5_greeting g;
	struct socks5_userpass up;
	struct socks5_request req;
	struct socks5_addr bnd;
	struct socks5_udp_hdr udp;
};

/* A string literal as (bytes, length), NULs inside included. */
#define M(s) (const uint8_t *)(s), sizeof(s) - 1

static const uint8_t junk[] = { 0x05, 0x01, 0x00, 0x01, 0xff };

/* Runs parser k on a fresh heap copy of buf[0..len); fills *o. */
static void
run(enum kind k, const uint8_t *buf, size_t len, struct outcome *o)
{
	uint8_t *copy;

	memset(o, 0, sizeof(*o));
	o->rep = 0xee;
	o->used = (size_t)-1;
	copy = malloc(len);
	cr_assert(len == 0 || copy != NULL);
	if (len > 0)
		memcpy(copy, buf, len);
	switch (k) {
	case K_GREETING:
		o->res = socks5_parse_greeting(copy, len, &o->g, &o->used);
		break;
	case K_USERPASS:
		o->res = socks5_parse_userpass(copy, len, &o->up, &o->used);
		break;
	case K_REQUEST:
		o->res = socks5_parse_request(copy, len, &o->req, &o->used,
		    &o->rep);
		break;
	case K_METHOD:
		o->res = socks5_parse_method(copy, len, &o->byte, &o->used);
		break;
	case K_STATUS:
		o->res = socks5_parse_userpass_status(copy, len, &o->byte,
		    &o->used);
		break;
	case K_REPLY:
		o->res = socks5_parse_reply(copy, len, &o->rep, &o->bnd,
		    &o->used);
		break;
	case K_UDP:
		o->res = socks5_parse_udp_hdr(copy, len, &o->udp, &o->used);
		break;
	}
	free(copy);
}

/* Whether the parsed addresses a and b are the same. */
static bool
addr_eq(const struct socks5_addr *a, const struct socks5_addr *b)
{
	if (a->atyp != b->atyp || a->port != b->port)
		return false;
	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		return memcmp(a->u.v4, b->u.v4, 4) == 0;
	case SOCKS5_ATYP_IPV6:
		return memcmp(a->u.v6, b->u.v6, 16) == 0;
	case SOCKS5_ATYP_DOMAIN:
		return a->name_len == b->name_len &&
		    memcmp(a->u.name, b->u.name, a->name_len + 1) == 0;
	default:
		return false;
	}
}

/* Whether two OK outcomes of parser k carry the same fields. */
static bool
fields_eq(enum kind k, const struct outcome *a, const struct outcome *b)
{
	switch (k) {
	case K_GREETING:
		return a->g.nmethods == b->g.nmethods &&
		    memcmp(a->g.methods, b->g.methods, a->g.nmethods) == 0;
	case K_USERPASS:
		return a->up.ulen == b->up.ulen && a->up.plen == b->up.plen &&
		    strcmp(a->up.user, b->up.user) == 0 &&
		    strcmp(a->up.pass, b->up.pass) == 0;
	case K_REQUEST:
		return a->req.cmd == b->req.cmd &&
		    addr_eq(&a->req.dst, &b->req.dst);
	case K_METHOD:
	case K_STATUS:
		return a->byte == b->byte;
	case K_REPLY:
		return a->rep == b->rep && addr_eq(&a->bnd, &b->bnd);
	case K_UDP:
		return a->udp.frag == b->udp.frag &&
		    addr_eq(&a->udp.addr, &b->udp.addr);
	}
	return false;
}

/*
 * A valid message of n bytes: every strict prefix (one byte at a time) is
 * AGAIN, the whole is OK using n, and the whole plus trailing bytes is OK
 * using n with the same fields (for a UDP header, the trailing bytes are
 * the payload). Leaves the whole message's outcome in *o.
 */
static void
check_valid(enum kind k, const uint8_t *msg, size_t n, struct outcome *o)
{
	struct outcome p;
	uint8_t *more;
	size_t i;

	for (i = 0; i < n; i++) {
		run(k, msg, i, &p);
		cr_assert_eq(p.res, SOCKS5_AGAIN, "kind %d prefix %zu of %zu",
		    k, i, n);
	}
	run(k, msg, n, o);
	cr_assert_eq(o->res, SOCKS5_OK, "kind %d whole (%zu)", k, n);
	cr_assert_eq(o->used, n, "kind %d used %zu want %zu", k, o->used, n);

	more = malloc(n + sizeof(junk));
	cr_assert_not_null(more);
	memcpy(more, msg, n);
	for (i = 1; i <= sizeof(junk); i++) {
		memcpy(more + n, junk, i);
		run(k, more, n + i, &p);
		cr_assert_eq(p.res, SOCKS5_OK);
		cr_assert_eq(p.used, n, "kind %d used %zu with %zu extra", k,
		    p.used, i);
		cr_assert(fields_eq(k, o, &p));
	}
	free(more);
}

/*
 * A malformed message: prefixes shorter than bad_at are AGAIN; from bad_at
 * bytes on (up to the whole, and with trailing bytes) the answer is BAD,
 * and for a request always with reply rep.
 */
static void
check_bad(enum kind k, const uint8_t *msg, size_t n, size_t bad_at,
    uint8_t rep)
{
	struct outcome p;
	uint8_t *more;
	size_t i;

	cr_assert(bad_at >= 1 && bad_at <= n);
	more = malloc(n + sizeof(junk));
	cr_assert_not_null(more);
	memcpy(more, msg, n);
	memcpy(more + n, junk, sizeof(junk));
	for (i = 0; i <= n + sizeof(junk); i++) {
		run(k, more, i, &p);
		if (i < bad_at) {
			cr_assert_eq(p.res, SOCKS5_AGAIN,
			    "kind %d prefix %zu (bad at %zu)", k, i, bad_at);
			continue;
		}
		cr_assert_eq(p.res, SOCKS5_BAD, "kind %d len %zu (bad at %zu)",
		    k, i, bad_at);
		if (k == K_REQUEST)
			cr_assert_eq(p.rep, rep, "rep %#x want %#x", p.rep, rep);
	}
	free(more);
}

/* --- valid messages -------------------------------------------------- */

Test(socks5, greeting_valid)
{
	static const struct {
		const uint8_t *msg;
		size_t len;
		uint8_t nmethods;
		const char *methods;
	} t[] = {
		{ M("\x05\x01\x00"), 1, "\x00" },
		{ M("\x05\x02\x00\x02"), 2, "\x00\x02" },
		{ M("\x05\x03\x02\x83\x80"), 3, "\x02\x83\x80" },
		{ M("\x05\x01\xff"), 1, "\xff" },
	};
	struct outcome o;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		check_valid(K_GREETING, t[i].msg, t[i].len, &o);
		cr_assert_eq(o.g.nmethods, t[i].nmethods);
		cr_assert_arr_eq(o.g.methods, t[i].methods, t[i].nmethods);
	}
}

Test(socks5, greeting_255_methods)
{
	uint8_t msg[2 + 255];
	struct outcome o;
	size_t i;

	msg[0] = 5;
	msg[1] = 255;
	for (i = 0; i < 255; i++)
		msg[2 + i] = (uint8_t)(254 - i);
	check_valid(K_GREETING, msg, sizeof(msg), &o);
	cr_assert_eq(o.g.nmethods, 255);
	cr_assert_arr_eq(o.g.methods, msg + 2, 255);
	cr_assert(socks5_greeting_offers(&o.g, 0x00));
	cr_assert(socks5_greeting_offers(&o.g, 0xfe));
	cr_assert_not(socks5_greeting_offers(&o.g, 0xff));
}

Test(socks5, greeting_offers)
{
	struct outcome o;

	check_valid(K_GREETING, M("\x05\x02\x00\x02"), &o);
	cr_assert(socks5_greeting_offers(&o.g, SOCKS5_METHOD_NONE));
	cr_assert(socks5_greeting_offers(&o.g, SOCKS5_METHOD_USERPASS));
	cr_assert_not(socks5_greeting_offers(&o.g, SOCKS5_METHOD_TLS_LOGIN));
	/* A method byte beyond NMETHODS is not offered. */
	check_valid(K_GREETING, M("\x05\x01\x02"), &o);
	cr_assert_not(socks5_greeting_offers(&o.g, SOCKS5_METHOD_NONE));
}

Test(socks5, userpass_valid)
{
	static const struct {
		const uint8_t *msg;
		size_t len;
		const char *user;
		const char *pass;
	} t[] = {
		{ M("\x01\x05" "alice\x06secret"), "alice", "secret" },
		{ M("\x01\x01u\x01p"), "u", "p" },
		/* RFC 1929 says PLEN >= 1; empty passwords are sent anyway. */
		{ M("\x01\x03" "bob\x00"), "bob", "" },
		{ M("\x01\x02\xc3\xa9\x03\xff\x01\x7f"), "\xc3\xa9",
		    "\xff\x01\x7f" },
	};
	struct outcome o;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		check_valid(K_USERPASS, t[i].msg, t[i].len, &o);
		cr_assert_str_eq(o.up.user, t[i].user);
		cr_assert_str_eq(o.up.pass, t[i].pass);
		cr_assert_eq(o.up.ulen, strlen(t[i].user));
		cr_assert_eq(o.up.plen, strlen(t[i].pass));
	}
}

Test(socks5, userpass_longest)
{
	uint8_t msg[SOCKS5_MSG_MAX];
	struct outcome o;

	msg[0] = 1;
	msg[1] = 255;
	memset(msg + 2, 'u', 255);
	msg[257] = 255;
	memset(msg + 258, 'p', 255);
	check_valid(K_USERPASS, msg, sizeof(msg), &o);
	cr_assert_eq(o.up.ulen, 255);
	cr_assert_eq(o.up.plen, 255);
	cr_assert_eq(strlen(o.up.user), 255);
	cr_assert_eq(strlen(o.up.pass), 255);
}

Test(socks5, request_valid)
{
	static const struct {
		const uint8_t *msg;
		size_t len;
		uint8_t cmd;
		const char *text;	/* socks5_addr_format of DST */
	} t[] = {
		{ M("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), 1,
		    "127.0.0.1:80" },
		{ M("\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00"
		    "\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb"), 1,
		    "[2001:db8::1]:443" },
		{ M("\x05\x01\x00\x03\x0b" "example.com\x01\xbb"), 1,
		    "example.com:443" },
		{ M("\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00"), 3,
		    "0.0.0.0:0" },
		{ M("\x05\x02\x00\x03\x01x\xff\xff"), 2, "x:65535" },
		/* Unknown CMD parses: the caller answers 07. */
		{ M("\x05\x09\x00\x01\x0a\x00\x00\x01\x00\x16"), 9,
		    "10.0.0.1:22" },
	};
	struct outcome o;
	char text[300];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		check_valid(K_REQUEST, t[i].msg, t[i].len, &o);
		cr_assert_eq(o.req.cmd, t[i].cmd);
		cr_assert_eq(o.req.dst.atyp, t[i].msg[3]);
		socks5_addr_format(&o.req.dst, text, sizeof(text));
		cr_assert_str_eq(text, t[i].text);
	}
}

Test(socks5, request_fields)
{
	struct outcome o;

	check_valid(K_REQUEST,
	    M("\x05\x01\x00\x01\xc0\x00\x02\x07\x1f\x90"), &o);
	cr_assert_eq(o.req.dst.atyp, SOCKS5_ATYP_IPV4);
	cr_assert_arr_eq(o.req.dst.u.v4, "\xc0\x00\x02\x07", 4);
	cr_assert_eq(o.req.dst.port, 8080);

	check_valid(K_REQUEST, M("\x05\x01\x00\x04"
	    "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
	    "\x12\x34"), &o);
	cr_assert_eq(o.req.dst.atyp, SOCKS5_ATYP_IPV6);
	cr_assert_arr_eq(o.req.dst.u.v6,
	    "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
	    16);
	cr_assert_eq(o.req.dst.port, 0x1234);

	check_valid(K_REQUEST, M("\x05\x01\x00\x03\x03""a.b\x00\x35"), &o);
	cr_assert_eq(o.req.dst.atyp, SOCKS5_ATYP_DOMAIN);
	cr_assert_eq(o.req.dst.name_len, 3);
	cr_assert_str_eq(o.req.dst.u.name, "a.b");
	cr_assert_eq(o.req.dst.port, 53);
}

Test(socks5, request_domain_255)
{
	uint8_t msg[4 + 1 + 255 + 2];
	struct outcome o;

	memcpy(msg, "\x05\x01\x00\x03\xff", 5);
	memset(msg + 5, 'n', 255);
	msg[260] = 0x00;
	msg[261] = 0x50;
	check_valid(K_REQUEST, msg, sizeof(msg), &o);
	cr_assert_eq(o.req.dst.name_len, 255);
	cr_assert_eq(strlen(o.req.dst.u.name), 255);
	cr_assert_eq(o.req.dst.port, 80);
}

Test(socks5, method_and_status_valid)
{
	struct outcome o;

	check_valid(K_METHOD, M("\x05\x00"), &o);
	cr_assert_eq(o.byte, SOCKS5_METHOD_NONE);
	check_valid(K_METHOD, M("\x05\x83"), &o);
	cr_assert_eq(o.byte, SOCKS5_METHOD_TLS_LOGIN);
	check_valid(K_METHOD, M("\x05\xff"), &o);
	cr_assert_eq(o.byte, SOCKS5_METHOD_UNACCEPTABLE);

	check_valid(K_STATUS, M("\x01\x00"), &o);
	cr_assert_eq(o.byte, 0x00);
	check_valid(K_STATUS, M("\x01\x01"), &o);
	cr_assert_eq(o.byte, 0x01);
}

Test(socks5, reply_valid)
{
	static const struct {
		const uint8_t *msg;
		size_t len;
		uint8_t rep;
		const char *text;
	} t[] = {
		{ M("\x05\x00\x00\x01\x7f\x00\x00\x01\x9c\x40"), 0x00,
		    "127.0.0.1:40000" },
		{ M("\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"), 0x05,
		    "0.0.0.0:0" },
		{ M("\x05\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00"
		    "\x00\x00\x00\x00\x00\x00\x00\x01\x04\x38"), 0x00,
		    "[::1]:1080" },
		{ M("\x05\x00\x00\x03\x04host\x00\x50"), 0x00, "host:80" },
		/* Dante answers an empty domain with 04 and echoes it. */
		{ M("\x05\x04\x00\x03\x00\x00\x00"), 0x04, ":0" },
		/* RSV is not checked on the client side. */
		{ M("\x05\x01\x01\x01\x01\x02\x03\x04\x00\x01"), 0x01,
		    "1.2.3.4:1" },
	};
	struct outcome o;
	char text[300];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		check_valid(K_REPLY, t[i].msg, t[i].len, &o);
		cr_assert_eq(o.rep, t[i].rep);
		socks5_addr_format(&o.bnd, text, sizeof(text));
		cr_assert_str_eq(text, t[i].text);
	}
}

/* BIND sends two replies; a client reading both at once must get both. */
Test(socks5, reply_two_in_a_row)
{
	static const uint8_t two[] =
	    "\x05\x00\x00\x01\x0a\x00\x00\x01\x13\x88"
	    "\x05\x00\x00\x01\x0a\x00\x00\x02\xc3\x50";
	struct outcome o;

	run(K_REPLY, two, sizeof(two) - 1, &o);
	cr_assert_eq(o.res, SOCKS5_OK);
	cr_assert_eq(o.used, 10);
	cr_assert_eq(o.bnd.port, 5000);
	run(K_REPLY, two + o.used, sizeof(two) - 1 - 10, &o);
	cr_assert_eq(o.res, SOCKS5_OK);
	cr_assert_eq(o.used, 10);
	cr_assert_arr_eq(o.bnd.u.v4, "\x0a\x00\x00\x02", 4);
	cr_assert_eq(o.bnd.port, 50000);
}

/* Greeting and request in one segment: the request is left for later. */
Test(socks5, greeting_then_request)
{
	static const uint8_t both[] = "\x05\x01\x00"
	    "\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50";
	struct outcome o;

	run(K_GREETING, both, sizeof(both) - 1, &o);
	cr_assert_eq(o.res, SOCKS5_OK);
	cr_assert_eq(o.used, 3);
	run(K_REQUEST, both + 3, sizeof(both) - 1 - 3, &o);
	cr_assert_eq(o.res, SOCKS5_OK);
	cr_assert_eq(o.used, 10);
}

/* --- malformed fields ------------------------------------------------ */

Test(socks5, malformed)
{
	static const struct {
		enum kind k;
		const uint8_t *msg;
		size_t len;
		size_t bad_at;
		uint8_t rep;
	} t[] = {
		/* greeting: bad VER (SOCKS4, or 0), NMETHODS 0 */
		{ K_GREETING, M("\x04\x01\x00\x50\x7f\x00\x00\x01\x00"), 1, 0 },
		{ K_GREETING, M("\x00\x01\x00"), 1, 0 },
		{ K_GREETING, M("\x05\x00"), 2, 0 },
		/* RFC 1929: VER != 1, ULEN 0, NUL in UNAME or PASSWD */
		{ K_USERPASS, M("\x05\x01u\x01p"), 1, 0 },
		{ K_USERPASS, M("\x00\x01u\x01p"), 1, 0 },
		{ K_USERPASS, M("\x01\x00\x01p"), 2, 0 },
		{ K_USERPASS, M("\x01\x03\x00" "ab\x01p"), 3, 0 },
		{ K_USERPASS, M("\x01\x03""a\x00""b\x01p"), 4, 0 },
		{ K_USERPASS, M("\x01\x03""ab\x00\x01p"), 5, 0 },
		{ K_USERPASS, M("\x01\x01u\x03p\x00q"), 6, 0 },
		{ K_USERPASS, M("\x01\x01u\x01\x00"), 5, 0 },
		/* request: bad VER */
		{ K_REQUEST, M("\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), 1,
		    SOCKS5_REP_GENERAL_FAILURE },
		{ K_REQUEST, M("\x06\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), 1,
		    SOCKS5_REP_GENERAL_FAILURE },
		/* request: RSV != 0 */
		{ K_REQUEST, M("\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x50"), 3,
		    SOCKS5_REP_GENERAL_FAILURE },
		{ K_REQUEST, M("\x05\x01\xff\x01\x7f\x00\x00\x01\x00\x50"), 3,
		    SOCKS5_REP_GENERAL_FAILURE },
		/* request: bad ATYP */
		{ K_REQUEST, M("\x05\x01\x00\x00\x7f\x00\x00\x01\x00\x50"), 4,
		    SOCKS5_REP_ATYP_UNSUPPORTED },
		{ K_REQUEST, M("\x05\x01\x00\x02\x7f\x00\x00\x01\x00\x50"), 4,
		    SOCKS5_REP_ATYP_UNSUPPORTED },
		{ K_REQUEST, M("\x05\x01\x00\x05\x7f\x00\x00\x01\x00\x50"), 4,
		    SOCKS5_REP_ATYP_UNSUPPORTED },
		{ K_REQUEST, M("\x05\x01\x00\xff"), 4,
		    SOCKS5_REP_ATYP_UNSUPPORTED },
		/* request: empty domain, NUL in domain */
		{ K_REQUEST, M("\x05\x01\x00\x03\x00\x00\x50"), 5,
		    SOCKS5_REP_GENERAL_FAILURE },
		{ K_REQUEST, M("\x05\x01\x00\x03\x03""a\x00""b\x00\x50"), 7,
		    SOCKS5_REP_GENERAL_FAILURE },
		{ K_REQUEST, M("\x05\x01\x00\x03\x01\x00\x00\x50"), 6,
		    SOCKS5_REP_GENERAL_FAILURE },
		/* the first bad field wins: VER before RSV before ATYP */
		{ K_REQUEST, M("\x04\x01\x01\x09"), 1,
		    SOCKS5_REP_GENERAL_FAILURE },
		{ K_REQUEST, M("\x05\x01\x01\x09"), 3,
		    SOCKS5_REP_GENERAL_FAILURE },
		/* method: bad VER (a SOCKS4 reply, a 1929 status) */
		{ K_METHOD, M("\x00\x5a"), 1, 0 },
		{ K_METHOD, M("\x01\x00"), 1, 0 },
		/* status: VER 05 (the classic mistake) */
		{ K_STATUS, M("\x05\x00"), 1, 0 },
		{ K_STATUS, M("\x00\x00"), 1, 0 },
		/* reply: bad VER, bad ATYP */
		{ K_REPLY, M("\x04\x00\x00\x01\x7f\x00\x00\x01\x00\x50"), 1,
		    0 },
		{ K_REPLY, M("\x00\x5a\x00\x50\x7f\x00\x00\x01"), 1, 0 },
		{ K_REPLY, M("\x05\x00\x00\x02\x7f\x00\x00\x01\x00\x50"), 4,
		    0 },
		{ K_REPLY, M("\x05\x00\x00\x00"), 4, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		check_bad(t[i].k, t[i].msg, t[i].len, t[i].bad_at, t[i].rep);
}

/* Parsers leave their outputs alone unless they answer OK. */
Test(socks5, outputs_untouched_unless_ok)
{
	struct socks5_request req;
	size_t used = 77;
	uint8_t rep = 0xee;

	memset(&req, 0xaa, sizeof(req));
	cr_assert_eq(socks5_parse_request(M("\x05\x01\x00\x01\x7f\x00"), &req,
	    &used, &rep), SOCKS5_AGAIN);
	cr_assert_eq(used, 77);
	cr_assert_eq(rep, 0xee);
	cr_assert_eq(req.cmd, 0xaa);
	cr_assert_eq(socks5_parse_request(M("\x05\x01\x00\x07"), &req,
	    &used, &rep), SOCKS5_BAD);
	cr_assert_eq(used, 77);
	cr_assert_eq(rep, SOCKS5_REP_ATYP_UNSUPPORTED);
	cr_assert_eq(req.cmd, 0xaa);
}

/* --- writers --------------------------------------------------------- */

Test(socks5, write_method_and_status)
{
	uint8_t out[2];
	struct outcome o;

	cr_assert_eq(socks5_write_method(out, SOCKS5_METHOD_USERPASS), 2);
	cr_assert_arr_eq(out, "\x05\x02", 2);
	check_valid(K_METHOD, out, 2, &o);
	cr_assert_eq(o.byte, SOCKS5_METHOD_USERPASS);
	cr_assert_eq(socks5_write_method(out, SOCKS5_METHOD_UNACCEPTABLE), 2);
	cr_assert_arr_eq(out, "\x05\xff", 2);

	cr_assert_eq(socks5_write_userpass_status(out, 0x00), 2);
	cr_assert_arr_eq(out, "\x01\x00", 2);
	cr_assert_eq(socks5_write_userpass_status(out, 0x01), 2);
	cr_assert_arr_eq(out, "\x01\x01", 2);
	check_valid(K_STATUS, out, 2, &o);
	cr_assert_eq(o.byte, 0x01);
}

Test(socks5, write_greeting)
{
	static const uint8_t m3[] = { 0x00, 0x02, 0x83 };
	uint8_t many[256];
	uint8_t out[300];
	struct outcome o;
	size_t n;

	n = socks5_write_greeting(out, sizeof(out), m3, 3);
	cr_assert_eq(n, 5);
	cr_assert_arr_eq(out, "\x05\x03\x00\x02\x83", 5);
	check_valid(K_GREETING, out, n, &o);
	cr_assert_eq(o.g.nmethods, 3);
	cr_assert_arr_eq(o.g.methods, m3, 3);

	cr_assert_eq(socks5_write_greeting(out, 5, m3, 3), 5);
	cr_assert_eq(socks5_write_greeting(out, 4, m3, 3), 0);
	cr_assert_eq(socks5_write_greeting(out, 1, m3, 1), 0);
	cr_assert_eq(socks5_write_greeting(out, 0, m3, 1), 0);
	cr_assert_eq(socks5_write_greeting(out, sizeof(out), m3, 0), 0);

	memset(many, 0x02, sizeof(many));
	cr_assert_eq(socks5_write_greeting(out, sizeof(out), many, 255), 257);
	check_valid(K_GREETING, out, 257, &o);
	cr_assert_eq(socks5_write_greeting(out, sizeof(out), many, 256), 0);
}

Test(socks5, write_userpass)
{
	char u255[256], u256[257];
	uint8_t out[SOCKS5_MSG_MAX + 8];
	struct outcome o;
	size_t n;

	n = socks5_write_userpass(out, sizeof(out), "alice", "secret");
	cr_assert_eq(n, 14);
	cr_assert_arr_eq(out, "\x01\x05" "alice\x06" "secret", 14);
	check_valid(K_USERPASS, out, n, &o);
	cr_assert_str_eq(o.up.user, "alice");
	cr_assert_str_eq(o.up.pass, "secret");

	n = socks5_write_userpass(out, sizeof(out), "bob", "");
	cr_assert_eq(n, 6);
	check_valid(K_USERPASS, out, n, &o);
	cr_assert_str_eq(o.up.pass, "");

	cr_assert_eq(socks5_write_userpass(out, sizeof(out), "", "x"), 0);
	cr_assert_eq(socks5_write_userpass(out, 14, "alice", "secret"), 14);
	cr_assert_eq(socks5_write_userpass(out, 13, "alice", "secret"), 0);
	cr_assert_eq(socks5_write_userpass(out, 2, "a", ""), 0);

	memset(u255, 'a', 255);
	u255[255] = '\0';
	memset(u256, 'b', 256);
	u256[256] = '\0';
	n = socks5_write_userpass(out, sizeof(out), u255, u255);
	cr_assert_eq(n, SOCKS5_MSG_MAX);
	check_valid(K_USERPASS, out, n, &o);
	cr_assert_str_eq(o.up.user, u255);
	cr_assert_str_eq(o.up.pass, u255);
	cr_assert_eq(socks5_write_userpass(out, sizeof(out), u256, "x"), 0);
	cr_assert_eq(socks5_write_userpass(out, sizeof(out), "x", u256), 0);
}

Test(socks5, write_request_round_trip)
{
	struct socks5_addr a[4];
	uint8_t out[300];
	struct outcome o;
	size_t i, n;

	memset(a, 0, sizeof(a));
	a[0].atyp = SOCKS5_ATYP_IPV4;
	memcpy(a[0].u.v4, "\x0a\x4d\x00\x02", 4);
	a[0].port = 443;
	a[1].atyp = SOCKS5_ATYP_IPV6;
	memcpy(a[1].u.v6, "\xfe\x80\x00\x00\x00\x00\x00\x00"
	    "\x00\x00\x00\x00\x00\x00\x00\x07", 16);
	a[1].port = 65535;
	a[2].atyp = SOCKS5_ATYP_DOMAIN;
	strcpy(a[2].u.name, "www.example.org");
	a[2].name_len = 15;
	a[2].port = 80;
	a[3].atyp = SOCKS5_ATYP_DOMAIN;
	memset(a[3].u.name, 'z', 255);
	a[3].name_len = 255;
	a[3].port = 1;

	for (i = 0; i < 4; i++) {
		n = socks5_write_request(out, sizeof(out), SOCKS5_CMD_CONNECT,
		    &a[i]);
		cr_assert_neq(n, 0);
		cr_assert_arr_eq(out, "\x05\x01\x00", 3);
		check_valid(K_REQUEST, out, n, &o);
		cr_assert_eq(o.req.cmd, SOCKS5_CMD_CONNECT);
		cr_assert(addr_eq(&o.req.dst, &a[i]), "address %zu", i);
		/* cap exactly n fits; one byte less does not */
		cr_assert_eq(socks5_write_request(out, n, 1, &a[i]), n);
		cr_assert_eq(socks5_write_request(out, n - 1, 1, &a[i]), 0);
	}
	cr_assert_eq(socks5_write_request(out, sizeof(out), 1, &a[0]), 10);
	cr_assert_arr_eq(out, "\x05\x01\x00\x01\x0a\x4d\x00\x02\x01\xbb", 10);
	cr_assert_eq(socks5_write_request(out, sizeof(out), 1, &a[1]), 22);
	cr_assert_eq(socks5_write_request(out, sizeof(out), 1, &a[2]), 22);
	cr_assert_eq(socks5_write_request(out, sizeof(out), 1, &a[3]), 262);
}

Test(socks5, write_request_refuses)
{
	struct socks5_addr a;
	uint8_t out[300];

	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_DOMAIN;
	a.name_len = 0;
	cr_assert_eq(socks5_write_request(out, sizeof(out), 1, &a), 0);
	memcpy(a.u.name, "a\0b", 4);
	a.name_len = 3;
	cr_assert_eq(socks5_write_request(out, sizeof(out), 1, &a), 0);
	a.atyp = 0x02;
	cr_assert_eq(socks5_write_request(out, sizeof(out), 1, &a), 0);
	a.atyp = SOCKS5_ATYP_IPV4;
	cr_assert_eq(socks5_write_request(out, 0, 1, &a), 0);
	cr_assert_eq(socks5_write_request(out, 2, 1, &a), 0);
}

Test(socks5, write_reply)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	uint8_t out[SOCKS5_REPLY_MAX];
	struct outcome o;
	char text[64];
	size_t n;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	inet_pton(AF_INET, "10.77.1.2", &sin.sin_addr);
	n = socks5_write_reply(out, SOCKS5_REP_SUCCEEDED,
	    (struct sockaddr *)&sin);
	cr_assert_eq(n, 10);
	cr_assert_arr_eq(out, "\x05\x00\x00\x01\x0a\x4d\x01\x02\x9c\x40", 10);
	check_valid(K_REPLY, out, n, &o);
	cr_assert_eq(o.rep, 0);
	socks5_addr_format(&o.bnd, text, sizeof(text));
	cr_assert_str_eq(text, "10.77.1.2:40000");

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(1080);
	inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr);
	n = socks5_write_reply(out, SOCKS5_REP_REFUSED,
	    (struct sockaddr *)&sin6);
	cr_assert_eq(n, SOCKS5_REPLY_MAX);
	cr_assert_arr_eq(out, "\x05\x05\x00\x04", 4);
	check_valid(K_REPLY, out, n, &o);
	cr_assert_eq(o.rep, SOCKS5_REP_REFUSED);
	socks5_addr_format(&o.bnd, text, sizeof(text));
	cr_assert_str_eq(text, "[2001:db8::42]:1080");

	/* v4-mapped IPv6 goes out as ATYP 1 */
	inet_pton(AF_INET6, "::ffff:192.0.2.9", &sin6.sin6_addr);
	n = socks5_write_reply(out, SOCKS5_REP_SUCCEEDED,
	    (struct sockaddr *)&sin6);
	cr_assert_eq(n, 10);
	cr_assert_arr_eq(out, "\x05\x00\x00\x01\xc0\x00\x02\x09\x04\x38", 10);

	/* no address, or one that is not IP: 0.0.0.0:0, still complete */
	n = socks5_write_reply(out, SOCKS5_REP_CMD_UNSUPPORTED, NULL);
	cr_assert_eq(n, 10);
	cr_assert_arr_eq(out, "\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00", 10);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	errno = EHOSTUNREACH;
	n = socks5_write_reply(out, SOCKS5_REP_HOST_UNREACHABLE,
	    (struct sockaddr *)&sun);
	cr_assert_eq(n, 10);
	cr_assert_arr_eq(out, "\x05\x04\x00\x01\x00\x00\x00\x00\x00\x00", 10);
	cr_assert_eq(errno, EHOSTUNREACH, "write_reply changed errno");
}

/* --- UDP request headers (RFC 1928 section 7) ---------------------- */

Test(socks5, udp_hdr_valid)
{
	static const struct {
		const uint8_t *msg;
		size_t len;
		uint8_t frag;
		const char *text;
	} t[] = {
		{ M("\x00\x00\x00\x01\x7f\x00\x00\x01\x00\x35"), 0,
		    "127.0.0.1:53" },
		{ M("\x00\x00\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00"
		    "\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb"), 0,
		    "[2001:db8::1]:443" },
		{ M("\x00\x00\x00\x03\x0b" "example.com\x00\x35"), 0,
		    "example.com:53" },
		/* the shortest header: a one-byte name */
		{ M("\x00\x00\x00\x03\x01x\xff\xff"), 0, "x:65535" },
		/* FRAG is reported, not judged */
		{ M("\x00\x00\x01\x01\x0a\x4d\x00\x01\x00\x07"), 1,
		    "10.77.0.1:7" },
		{ M("\x00\x00\x81\x01\x0a\x4d\x00\x01\x00\x07"), 0x81,
		    "10.77.0.1:7" },
		/* RSV is not checked (Dante ignores it as well) */
		{ M("\x00\x01\x00\x01\x0a\x4d\x00\x01\x00\x07"), 0,
		    "10.77.0.1:7" },
		{ M("\xff\xff\x00\x01\x0a\x4d\x00\x01\x00\x07"), 0,
		    "10.77.0.1:7" },
		{ M("\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"), 0,
		    "0.0.0.0:0" },
	};
	struct outcome o;
	char text[300];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		check_valid(K_UDP, t[i].msg, t[i].len, &o);
		cr_assert_eq(o.udp.frag, t[i].frag, "case %zu", i);
		cr_assert_eq(o.udp.addr.atyp, t[i].msg[3]);
		socks5_addr_format(&o.udp.addr, text, sizeof(text));
		cr_assert_str_eq(text, t[i].text);
	}
}

Test(socks5, udp_hdr_domain_255)
{
	uint8_t msg[SOCKS5_UDP_HDR_MAX];
	struct outcome o;

	memcpy(msg, "\x00\x00\x00\x03\xff", 5);
	memset(msg + 5, 'n', 255);
	msg[260] = 0x01;
	msg[261] = 0xbb;
	check_valid(K_UDP, msg, sizeof(msg), &o);
	cr_assert_eq(o.used, SOCKS5_UDP_HDR_MAX);
	cr_assert_eq(o.udp.addr.name_len, 255);
	cr_assert_eq(strlen(o.udp.addr.u.name), 255);
	cr_assert_eq(o.udp.addr.port, 443);
}

/* The payload starts at buf + used and is never taken for header. */
Test(socks5, udp_hdr_payload_left_alone)
{
	static const uint8_t dgram[] = "\x00\x00\x00\x01\x0a\x4d\x00\x02"
	    "\x00\x35" "\x00\x00\x00\x03\x00payload";
	struct outcome o;

	run(K_UDP, dgram, sizeof(dgram) - 1, &o);
	cr_assert_eq(o.res, SOCKS5_OK);
	cr_assert_eq(o.used, 10);
	cr_assert_eq(memcmp(dgram + o.used, "\x00\x00\x00\x03\x00payload",
	    sizeof(dgram) - 1 - 10), 0);
	/* an empty payload is a datagram too */
	run(K_UDP, dgram, 10, &o);
	cr_assert_eq(o.res, SOCKS5_OK);
	cr_assert_eq(o.used, 10);
}

Test(socks5, udp_hdr_malformed)
{
	static const struct {
		const uint8_t *msg;
		size_t len;
		size_t bad_at;
	} t[] = {
		/* unknown ATYP */
		{ M("\x00\x00\x00\x00\x7f\x00\x00\x01\x00\x35"), 4 },
		{ M("\x00\x00\x00\x02\x7f\x00\x00\x01\x00\x35"), 4 },
		{ M("\x00\x00\x00\x05\x7f\x00\x00\x01\x00\x35"), 4 },
		{ M("\x00\x00\x00\xff\x7f\x00\x00\x01\x00\x35"), 4 },
		/* empty name, NUL in the name */
		{ M("\x00\x00\x00\x03\x00\x00\x35"), 5 },
		{ M("\x00\x00\x00\x03\x03" "a\x00" "b\x00\x35"), 7 },
		{ M("\x00\x00\x00\x03\x01\x00\x00\x35"), 6 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		check_bad(K_UDP, t[i].msg, t[i].len, t[i].bad_at, 0);
}

/* A datagram that ends inside its header is AGAIN: the caller drops it. */
Test(socks5, udp_hdr_truncated_is_again)
{
	static const uint8_t v6[] = "\x00\x00\x00\x04\x20\x01\x0d\xb8"
	    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb";
	struct socks5_udp_hdr h;
	size_t used = 77, k;

	memset(&h, 0xaa, sizeof(h));
	for (k = 0; k < sizeof(v6) - 1; k++) {
		cr_assert_eq(socks5_parse_udp_hdr(v6, k, &h, &used),
		    SOCKS5_AGAIN, "len %zu", k);
		cr_assert_eq(used, 77);
		cr_assert_eq(h.frag, 0xaa);
	}
	cr_assert_lt(SOCKS5_UDP_HDR_MIN, 10);
	cr_assert_eq(socks5_parse_udp_hdr(M("\x00\x00\x00\x03\x01x\x00"), &h,
	    &used), SOCKS5_AGAIN);
	cr_assert_eq(socks5_parse_udp_hdr(M("\x00\x00\x00\x03\x01x\x00\x01"),
	    &h, &used), SOCKS5_OK);
	cr_assert_eq(used, SOCKS5_UDP_HDR_MIN);
}

Test(socks5, write_udp_hdr)
{
	struct socks5_addr a;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	uint8_t out[SOCKS5_UDP_HDR_MAX + 8];
	struct outcome o;
	size_t n;

	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_DOMAIN;
	strcpy(a.u.name, "example.com");
	a.name_len = 11;
	a.port = 53;
	n = socks5_write_udp_hdr(out, sizeof(out), 0, &a);
	cr_assert_eq(n, 18);
	cr_assert_arr_eq(out, "\x00\x00\x00\x03\x0b" "example.com\x00\x35",
	    18);
	check_valid(K_UDP, out, n, &o);
	cr_assert(addr_eq(&o.udp.addr, &a));
	cr_assert_eq(socks5_write_udp_hdr(out, n, 0, &a), n);
	cr_assert_eq(socks5_write_udp_hdr(out, n - 1, 0, &a), 0);
	/* FRAG as given; RSV always zero */
	n = socks5_write_udp_hdr(out, sizeof(out), 3, &a);
	cr_assert_arr_eq(out, "\x00\x00\x03\x03", 4);
	check_valid(K_UDP, out, n, &o);
	cr_assert_eq(o.udp.frag, 3);
	/* the longest */
	memset(a.u.name, 'q', 255);
	a.name_len = 255;
	cr_assert_eq(socks5_write_udp_hdr(out, sizeof(out), 0, &a),
	    SOCKS5_UDP_HDR_MAX);
	/* what cannot be written */
	a.name_len = 0;
	cr_assert_eq(socks5_write_udp_hdr(out, sizeof(out), 0, &a), 0);
	memcpy(a.u.name, "a\0b", 4);
	a.name_len = 3;
	cr_assert_eq(socks5_write_udp_hdr(out, sizeof(out), 0, &a), 0);
	a.atyp = 0x02;
	cr_assert_eq(socks5_write_udp_hdr(out, sizeof(out), 0, &a), 0);

	/* from the source address of a datagram */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(5353);
	inet_pton(AF_INET, "10.77.0.9", &sin.sin_addr);
	n = socks5_write_udp_hdr_sa(out, sizeof(out), (struct sockaddr *)&sin);
	cr_assert_eq(n, 10);
	cr_assert_arr_eq(out, "\x00\x00\x00\x01\x0a\x4d\x00\x09\x14\xe9",
	    10);
	cr_assert_eq(socks5_write_udp_hdr_sa(out, 9, (struct sockaddr *)&sin),
	    0);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
	n = socks5_write_udp_hdr_sa(out, sizeof(out),
	    (struct sockaddr *)&sin6);
	cr_assert_eq(n, 22);
	check_valid(K_UDP, out, n, &o);
	cr_assert_eq(o.udp.addr.atyp, SOCKS5_ATYP_IPV6);
	cr_assert_arr_eq(o.udp.addr.u.v6, &sin6.sin6_addr, 16);
	cr_assert_eq(o.udp.addr.port, 443);
	/* v4-mapped goes out as ATYP 1 */
	inet_pton(AF_INET6, "::ffff:192.0.2.9", &sin6.sin6_addr);
	n = socks5_write_udp_hdr_sa(out, sizeof(out),
	    (struct sockaddr *)&sin6);
	cr_assert_eq(n, 10);
	cr_assert_arr_eq(out, "\x00\x00\x00\x01\xc0\x00\x02\x09\x01\xbb",
	    10);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	cr_assert_eq(socks5_write_udp_hdr_sa(out, sizeof(out),
	    (struct sockaddr *)&sun), 0);
	cr_assert_eq(socks5_write_udp_hdr_sa(out, sizeof(out), NULL), 0);
}

/* --- addresses ------------------------------------------------------- */

Test(socks5, addr_sockaddr_round_trip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct socks5_addr a;
	socklen_t sslen;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	inet_pton(AF_INET, "203.0.113.5", &sin.sin_addr);
	cr_assert_eq(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin),
	    0);
	cr_assert_eq(a.atyp, SOCKS5_ATYP_IPV4);
	cr_assert_eq(a.port, 8080);
	cr_assert_arr_eq(a.u.v4, "\xcb\x00\x71\x05", 4);
	cr_assert_eq(socks5_addr_to_sockaddr(&a, &ss, &sslen), 0);
	cr_assert_eq(sslen, sizeof(sin));
	cr_assert_arr_eq(&ss, &sin, sizeof(sin));

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	inet_pton(AF_INET6, "fd00::1:2", &sin6.sin6_addr);
	cr_assert_eq(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6),
	    0);
	cr_assert_eq(a.atyp, SOCKS5_ATYP_IPV6);
	cr_assert_eq(a.port, 443);
	cr_assert_eq(socks5_addr_to_sockaddr(&a, &ss, &sslen), 0);
	cr_assert_eq(sslen, sizeof(sin6));
	cr_assert_arr_eq(&ss, &sin6, sizeof(sin6));

	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	cr_assert_eq(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6),
	    0);
	cr_assert_eq(a.atyp, SOCKS5_ATYP_IPV4);
	cr_assert_arr_eq(a.u.v4, "\x7f\x00\x00\x01", 4);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	errno = 0;
	cr_assert_eq(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sun),
	    -1);
	cr_assert_eq(errno, EAFNOSUPPORT);

	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_DOMAIN;
	strcpy(a.u.name, "example.com");
	a.name_len = 11;
	errno = 0;
	cr_assert_eq(socks5_addr_to_sockaddr(&a, &ss, &sslen), -1);
	cr_assert_eq(errno, EAFNOSUPPORT);
}

Test(socks5, addr_format)
{
	static const struct {
		uint8_t atyp;
		const char *addr;	/* v4/v6 text, or the name */
		uint16_t port;
		const char *want;
	} t[] = {
		{ SOCKS5_ATYP_IPV4, "1.2.3.4", 80, "1.2.3.4:80" },
		{ SOCKS5_ATYP_IPV4, "255.255.255.255", 65535,
		    "255.255.255.255:65535" },
		{ SOCKS5_ATYP_IPV6, "::1", 80, "[::1]:80" },
		{ SOCKS5_ATYP_IPV6, "2001:db8::a:b", 0, "[2001:db8::a:b]:0" },
		{ SOCKS5_ATYP_IPV6, "::ffff:1.2.3.4", 443,
		    "[::ffff:1.2.3.4]:443" },
		{ SOCKS5_ATYP_DOMAIN, "example.com", 443, "example.com:443" },
		/* control bytes from the wire never reach a log line */
		{ SOCKS5_ATYP_DOMAIN, "a\nb\x1b[0m\x7f\xc3", 1, "a?b?[0m??:1" },
	};
	struct socks5_addr a;
	char out[300];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&a, 0, sizeof(a));
		a.atyp = t[i].atyp;
		a.port = t[i].port;
		if (t[i].atyp == SOCKS5_ATYP_IPV4)
			cr_assert_eq(inet_pton(AF_INET, t[i].addr, a.u.v4), 1);
		else if (t[i].atyp == SOCKS5_ATYP_IPV6)
			cr_assert_eq(inet_pton(AF_INET6, t[i].addr, a.u.v6), 1);
		else {
			a.name_len = (uint8_t)strlen(t[i].addr);
			memcpy(a.u.name, t[i].addr, a.name_len + 1);
		}
		socks5_addr_format(&a, out, sizeof(out));
		cr_assert_str_eq(out, t[i].want);
	}
}

Test(socks5, addr_format_truncates)
{
	struct socks5_addr a;
	char out[8];

	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_DOMAIN;
	memset(a.u.name, 'x', 255);
	a.name_len = 255;
	a.port = 80;
	memset(out, '#', sizeof(out));
	socks5_addr_format(&a, out, sizeof(out));
	cr_assert_str_eq(out, "xxxxxxx");

	a.atyp = SOCKS5_ATYP_IPV6;
	memset(a.u.v6, 0xff, 16);
	socks5_addr_format(&a, out, 1);
	cr_assert_str_eq(out, "");

	/* cap 0 writes nothing */
	out[0] = '#';
	socks5_addr_format(&a, out, 0);
	cr_assert_eq(out[0], '#');
}

/* --- codes ----------------------------------------------------------- */

Test(socks5, rep_from_errno)
{
	static const struct {
		int err;
		uint8_t rep;
	} t[] = {
		{ ECONNREFUSED, 0x05 },
		{ ENETUNREACH, 0x03 },
		{ EHOSTUNREACH, 0x04 },
		{ ETIMEDOUT, 0x06 },
		{ EACCES, 0x02 },
		{ EPERM, 0x02 },
		{ ECONNRESET, 0x01 },
		{ ENOMEM, 0x01 },
		{ EADDRNOTAVAIL, 0x01 },
		{ 0, 0x01 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_assert_eq(socks5_rep_from_errno(t[i].err), t[i].rep,
		    "errno %d", t[i].err);
}

Test(socks5, errno_from_rep)
{
	static const struct {
		uint8_t rep;
		int err;
	} t[] = {
		{ 0x05, ECONNREFUSED },
		{ 0x04, EHOSTUNREACH },
		{ 0x03, ENETUNREACH },
		{ 0x06, ETIMEDOUT },
		{ 0x02, EACCES },
		{ 0x00, ECONNREFUSED },
		{ 0x01, ECONNREFUSED },
		{ 0x07, ECONNREFUSED },
		{ 0x08, ECONNREFUSED },
		{ 0x09, ECONNREFUSED },
		{ 0xff, ECONNREFUSED },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_assert_eq(socks5_errno_from_rep(t[i].rep), t[i].err,
		    "rep %#x", t[i].rep);
}

/* Each errno the gateway maps survives the trip through the shim. */
Test(socks5, errno_rep_errno)
{
	static const int errs[] = { ECONNREFUSED, ENETUNREACH, EHOSTUNREACH,
	    ETIMEDOUT, EACCES };
	size_t i;

	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		cr_assert_eq(socks5_errno_from_rep(
		    socks5_rep_from_errno(errs[i])), errs[i]);
}

Test(socks5, rep_str)
{
	unsigned i;

	cr_assert_str_eq(socks5_rep_str(0x05), "connection refused");
	cr_assert_str_eq(socks5_rep_str(0x00), "succeeded");
	cr_assert_str_eq(socks5_rep_str(0x08), "address type not supported");
	cr_assert_str_eq(socks5_rep_str(0x09), "unassigned");
	for (i = 0; i < 256; i++)
		cr_assert_not_null(socks5_rep_str((uint8_t)i));
}

Test(socks5, method_names)
{
	static const char *const names[] = { "none", "userpass", "tls",
	    "tls-userpass", "tls-login" };

	for (size_t i = 0; i < 5; i++) {
		int m = socks5_method_parse(names[i]);

		cr_assert_neq(m, -1);
		cr_assert_str_eq(socks5_method_name((uint8_t)m), names[i]);
	}
	cr_assert_eq(socks5_method_parse("tls-login"), 0x83);
	cr_assert_eq(socks5_method_parse("NONE"), -1);
	cr_assert_eq(socks5_method_parse("gssapi"), -1);
	cr_assert_eq(socks5_method_parse(""), -1);
	cr_assert_str_eq(socks5_method_name(0x01), "gssapi");
	cr_assert_str_eq(socks5_method_name(0x42), "unknown");
}
