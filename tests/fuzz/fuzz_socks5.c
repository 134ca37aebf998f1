/*
 * libFuzzer target for proto/socks5.c. Runs every parser on the input,
 * whole and cut at every point, and aborts unless:
 *   - the answers agree: a prefix answers AGAIN, or exactly what the whole
 *     input answers (same *used, same fields, same REP); AGAIN never comes
 *     after OK or BAD as the prefix grows;
 *   - an OK uses no more than it was given, and shorter prefixes than *used
 *     are AGAIN;
 *   - what a parser accepts, the matching writer writes back byte for byte
 *     (greeting, username/password, request; a UDP header up to RSV, which
 *     is written as zero), and addresses survive the trip through struct
 *     sockaddr and socks5_addr_format.
 * Each parse sees a heap copy of exactly the bytes offered, so a read past
 * len is caught by AddressSanitizer.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -I. \
 *       tests/fuzz/fuzz_socks5.c proto/socks5.c -o fuzz_socks5
 */
#include "proto/socks5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages are at most SOCKS5_MSG_MAX; a little more tests trailing bytes. */
#define FUZZ_MAX (SOCKS5_MSG_MAX + 64)

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		abort();						\
	}								\
} while (0)

enum kind {
	K_GREETING = 0,
	K_USERPASS,
	K_REQUEST,
	K_METHOD,
	K_STATUS,
	K_REPLY,
	K_UDP,
};

#define K_COUNT (K_UDP + 1)

struct outcome {
	enum socks5_res res;
	size_t used;
	uint8_t rep;
	uint8_t byte;
	struct socks5_greeting g;
	struct socks5_userpass up;
	struct socks5_request req;
	struct socks5_addr bnd;
	struct socks5_udp_hdr udp;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs parser k on a heap copy of buf[0..len); fills *o. */
static void
run(enum kind k, const uint8_t *buf, size_t len, struct outcome *o)
{
	uint8_t *copy;

	memset(o, 0, sizeof(*o));
	copy = malloc(len);
	CHECK(len == 0 || copy != NULL);
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

/* Whether two outcomes of parser k are the same answer. */
static bool
same(enum kind k, const struct outcome *a, const struct outcome *b)
{
	if (a->res != b->res)
		return false;
	switch (a->res) {
	case SOCKS5_AGAIN:
		return true;
	case SOCKS5_BAD:
		return k != K_REQUEST || a->rep == b->rep;
	case SOCKS5_OK:
		break;
	}
	if (a->used != b->used)
		return false;
	switch (k) {
	case K_GREETING:
		return a->g.nmethods == b->g.nmethods &&
		    memcmp(a->g.methods, b->g.methods, a->g.nmethods) == 0;
	case K_USERPASS:
		return a->up.ulen == b->up.ulen && a->up.plen == b->up.plen &&
		    memcmp(a->up.user, b->up.user, a->up.ulen + 1) == 0 &&
		    memcmp(a->up.pass, b->up.pass, a->up.plen + 1) == 0;
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

/* Checks an address the parsers produced: formatting and sockaddr trips. */
static void
check_addr(const struct socks5_addr *a)
{
	struct sockaddr_storage ss;
	struct socks5_addr back;
	socklen_t sslen;
	char text[300], small[5];

	socks5_addr_format(a, text, sizeof(text));
	CHECK(strlen(text) < sizeof(text));
	socks5_addr_format(a, small, sizeof(small));
	CHECK(strlen(small) < sizeof(small));
	if (a->atyp == SOCKS5_ATYP_DOMAIN) {
		CHECK(socks5_addr_to_sockaddr(a, &ss, &sslen) == -1);
		return;
	}
	CHECK(socks5_addr_to_sockaddr(a, &ss, &sslen) == 0);
	CHECK(socks5_addr_from_sockaddr(&back,
	    (const struct sockaddr *)&ss) == 0);
	/* A v4-mapped IPv6 address comes back as IPv4; nothing else moves. */
	if (a->atyp == SOCKS5_ATYP_IPV6 && back.atyp == SOCKS5_ATYP_IPV4)
		CHECK(memcmp(a->u.v6 + 12, back.u.v4, 4) == 0 &&
		    memcmp(a->u.v6, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 &&
		    a->port == back.port);
	else
		CHECK(addr_eq(a, &back));
}

/*
 * A UDP header the parser took: the writer gives it back but for RSV, and
 * an IP address written from a sockaddr parses to the same address.
 */
static void
check_udp(const uint8_t *data, const struct outcome *o)
{
	uint8_t out[SOCKS5_MSG_MAX];
	struct sockaddr_storage ss;
	struct outcome back;
	socklen_t sslen;
	size_t n;

	CHECK(o->used >= SOCKS5_UDP_HDR_MIN && o->used <= SOCKS5_UDP_HDR_MAX);
	if (o->udp.addr.atyp == SOCKS5_ATYP_DOMAIN)
		CHECK(o->udp.addr.name_len >= 1 &&
		    strlen(o->udp.addr.u.name) == o->udp.addr.name_len);
	n = socks5_write_udp_hdr(out, sizeof(out), o->udp.frag, &o->udp.addr);
	CHECK(n == o->used && out[0] == 0 && out[1] == 0);
	CHECK(memcmp(out + 2, data + 2, n - 2) == 0);
	CHECK(socks5_write_udp_hdr(out, n - 1, o->udp.frag, &o->udp.addr) ==
	    0);
	check_addr(&o->udp.addr);
	if (o->udp.addr.atyp == SOCKS5_ATYP_DOMAIN)
		return;
	CHECK(socks5_addr_to_sockaddr(&o->udp.addr, &ss, &sslen) == 0);
	n = socks5_write_udp_hdr_sa(out, sizeof(out),
	    (const struct sockaddr *)&ss);
	CHECK(n >= 10);
	run(K_UDP, out, n, &back);
	CHECK(back.res == SOCKS5_OK && back.used == n && back.udp.frag == 0);
	/* Only a v4-mapped address changes: it comes back as IPv4. */
	if (back.udp.addr.atyp == o->udp.addr.atyp)
		CHECK(addr_eq(&back.udp.addr, &o->udp.addr));
	else
		CHECK(memcmp(o->udp.addr.u.v6 + 12, back.udp.addr.u.v4, 4) == 0);
}

/* What an OK must satisfy, and the writers giving the same bytes back. */
static void
check_ok(enum kind k, const uint8_t *data, size_t size,
    const struct outcome *o)
{
	uint8_t out[SOCKS5_MSG_MAX];
	size_t n;

	CHECK(o->used >= 2 && o->used <= size);
	switch (k) {
	case K_GREETING:
		CHECK(o->g.nmethods >= 1 && o->used == 2u + o->g.nmethods);
		n = socks5_write_greeting(out, sizeof(out), o->g.methods,
		    o->g.nmethods);
		CHECK(n == o->used && memcmp(out, data, n) == 0);
		break;
	case K_USERPASS:
		CHECK(o->up.ulen >= 1 && strlen(o->up.user) == o->up.ulen);
		CHECK(strlen(o->up.pass) == o->up.plen);
		n = socks5_write_userpass(out, sizeof(out), o->up.user,
		    o->up.pass);
		CHECK(n == o->used && memcmp(out, data, n) == 0);
		break;
	case K_REQUEST:
		if (o->req.dst.atyp == SOCKS5_ATYP_DOMAIN)
			CHECK(o->req.dst.name_len >= 1 &&
			    strlen(o->req.dst.u.name) == o->req.dst.name_len);
		n = socks5_write_request(out, sizeof(out), o->req.cmd,
		    &o->req.dst);
		CHECK(n == o->used && memcmp(out, data, n) == 0);
		check_addr(&o->req.dst);
		break;
	case K_METHOD:
		CHECK(o->used == 2);
		n = socks5_write_method(out, o->byte);
		CHECK(n == 2 && memcmp(out, data, 2) == 0);
		break;
	case K_STATUS:
		CHECK(o->used == 2);
		n = socks5_write_userpass_status(out, o->byte);
		CHECK(n == 2 && memcmp(out, data, 2) == 0);
		break;
	case K_REPLY:
		CHECK(socks5_rep_str(o->rep) != NULL);
		check_addr(&o->bnd);
		break;
	case K_UDP:
		check_udp(data, o);
		break;
	}
}

/* Parser k on data whole and on every prefix, as described on top. */
static void
check_kind(enum kind k, const uint8_t *data, size_t size)
{
	struct outcome whole, p;
	bool settled = false;
	size_t i;

	run(k, data, size, &whole);
	if (whole.res == SOCKS5_OK)
		check_ok(k, data, size, &whole);
	for (i = 0; i <= size; i++) {
		run(k, data, i, &p);
		if (p.res == SOCKS5_AGAIN) {
			/* Once answered, more bytes cannot undo it. */
			CHECK(!settled);
			if (whole.res == SOCKS5_OK)
				CHECK(i < whole.used);
			continue;
		}
		settled = true;
		CHECK(same(k, &p, &whole));
		if (p.res == SOCKS5_OK)
			CHECK(i >= whole.used);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int k;

	if (size > FUZZ_MAX)
		size = FUZZ_MAX;
	for (k = 0; k < K_COUNT; k++)
		check_kind((enum kind)k, data, size);
	return 0;
}
