/*
 * Unit tests for the Convert codec (proto/convert.c): hand-written wire
 * vectors, every prefix of every valid message one byte at a time, each
 * malformed field with the byte at which it must be refused and its Error
 * code, writer -> parser round trips, the MAC, and the UDP TLV with the
 * datagram framing that follows it.
 */
#include "proto/convert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <criterion/criterion.h>

/* clang-format off: byte tables read best as the wire lays them out. */
/* A byte vector as two initializers: pointer, length. */
#define B(...)                                                                 \
	(const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

#define HDR(words) 0x01, (words), 0x22, 0x63
/* Connect 192.0.2.10:443 (libconvert's example in the research notes). */
#define CONNECT_V4                                                             \
	0x0a, 0x05, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,      \
	    0xc0, 0x00, 0x02, 0x0a
/* Connect [2001:db8::1]:80. */
#define CONNECT_V6                                                             \
	0x0a, 0x05, 0x00, 0x50, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0,   \
	    0, 0, 0, 0, 0x01
#define EXAMPLE_COM 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'
/* Connect-Name example.com:443: 5 + 11 = 16 bytes, no padding. */
#define NAME_EX 0xc0, 0x04, 0x01, 0xbb, 0x0b, EXAMPLE_COM
#define TS 0x65, 0x00, 0x00, 0x00
#define NONCE 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
#define ZERO16 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
/* The UDP TLV, and the Connects that may go with it: 0.0.0.0:0, [::]:0. */
#define UDP_TLV 0xc3, 0x01, 0x00, 0x00
#define CONNECT_ZERO4                                                          \
	0x0a, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0,   \
	    0, 0, 0
#define CONNECT_ZERO6                                                          \
	0x0a, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
/* Auth for user "a": 36 + 1 = 37 -> 40 bytes, 10 words, MAC left zero. */
#define AUTH_A 0xc1, 0x0a, 0x00, 0x01, TS, NONCE, 'a', ZERO16, 0, 0, 0

/* Pinned Auth vector: key 00 01 .. 1f; MAC from `openssl dgst -sha256
 * -mac HMAC -macopt hexkey:0001..1f` over the 49 bytes before it. */
#define AUTH_MAC                                                               \
	0x59, 0xa7, 0x72, 0x7b, 0x3f, 0x74, 0xaf, 0xdb, 0xb2, 0x40, 0xe2,      \
	    0xeb, 0x51, 0xcb, 0x1f, 0x6b
static const uint8_t auth_vec[] = {
    HDR(17),
    NAME_EX,
    0xc2,
    0x01,
    0x00,
    0x00,
    0xc1,
    0x0b,
    0x00,
    0x05,
    TS,
    NONCE,
    'a',
    'l',
    'i',
    'c',
    'e',
    AUTH_MAC,
    0,
    0,
    0,
};
#define AUTH_VEC_MAC_OFF 49

static const uint8_t connect_v4_vec[] = {HDR(6), CONNECT_V4};
/* clang-format on */

/* Key 00 01 02 .. 1f. */
static void
test_key(uint8_t key[CONV_KEY_LEN])
{
	for (int i = 0; i < CONV_KEY_LEN; i++)
		key[i] = (uint8_t)i;
}

/*
 * buf[0..k) in a heap block of exactly k bytes, so ASan catches any read
 * past what the parser was given. Caller frees.
 */
static uint8_t *
copy_prefix(const uint8_t *buf, size_t k)
{
	uint8_t *p = malloc(k > 0 ? k : 1);

	cr_assert_not_null(p);
	memcpy(p, buf, k);
	return p;
}

struct valid_case {
	const char *name;
	const uint8_t *b;
	size_t len;
	size_t total; /* Total Length in bytes; len - total is data */
};

/* clang-format off: byte tables read best as the wire lays them out. */
static const struct valid_case valid[] = {
    {"connect v4-mapped", B(HDR(6), CONNECT_V4), 24},
    {"connect v6", B(HDR(6), CONNECT_V6), 24},
    {"connect-name", B(HDR(5), NAME_EX), 20},
    {"connect-name, 1 byte, padded",
	B(HDR(3), 0xc0, 0x02, 0x00, 0x50, 0x01, 'x', 0, 0), 12},
    {"cookie", B(HDR(8), CONNECT_V4, 0x16, 0x02, 0, 0, 'a', 'b', 'c', 0), 32},
    {"empty cookie", B(HDR(7), CONNECT_V4, 0x16, 0x01, 0, 0), 28},
    {"auth", B(HDR(15), NAME_EX, AUTH_A), 60},
    {"auth pinned",
	B(HDR(17), NAME_EX, 0xc2, 0x01, 0x00, 0x00, 0xc1, 0x0b, 0x00, 0x05, TS,
	    NONCE, 'a', 'l', 'i', 'c', 'e', AUTH_MAC, 0, 0, 0),
	68},
    {"silent", B(HDR(7), CONNECT_V4, 0xc2, 0x01, 0, 0), 28},
    {"info first", B(HDR(7), 0x01, 0x01, 0, 0, CONNECT_V4), 28},
    {"everything",
	B(HDR(19), 0x01, 0x01, 0, 0, NAME_EX, 0x16, 0x02, 0, 0, 'k', 'k', 'k',
	    'k', 0xc2, 0x01, 0, 0, AUTH_A),
	76},
    {"tcp options",
	B(HDR(7), 0x0a, 0x06, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0xc0, 0x00, 0x02, 0x0a, 0x1e, 0x02, 0x22, 0x02),
	28},
    {"tcp option, padded",
	B(HDR(7), 0x0a, 0x06, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0xc0, 0x00, 0x02, 0x0a, 0x1e, 0x03, 0x00, 0x00),
	28},
    {"unknown private types skipped",
	B(HDR(9), 0xd0, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, CONNECT_V4,
	    0xff, 0x01, 0x12, 0x34),
	36},
    {"trailing data",
	B(HDR(6), CONNECT_V4, 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P',
	    '/', '1', '.', '0', '\r', '\n'),
	24},
    {"trailing data that looks bad", B(HDR(5), NAME_EX, 0x02, 0x00, 0xff, 0x00),
	20},
    {"udp alone", B(HDR(2), UDP_TLV), 8},
    {"udp, connect 0.0.0.0:0", B(HDR(7), CONNECT_ZERO4, UDP_TLV), 28},
    {"udp, then connect [::]:0", B(HDR(7), UDP_TLV, CONNECT_ZERO6), 28},
    {"udp with cookie, silent and auth",
	B(HDR(15), UDP_TLV, 0x16, 0x02, 0, 0, 'k', 'k', 'k', 'k', 0xc2, 0x01, 0,
	    0, AUTH_A),
	60},
    {"udp, then a datagram frame",
	B(HDR(2), UDP_TLV, 0x00, 0x0a, 0, 0, 0, 0x01, 10, 77, 0, 1, 0, 53), 8},
};
/* clang-format on */

Test(convert, every_prefix_of_every_valid_message)
{
	size_t i, k;

	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct valid_case *v = &valid[i];

		cr_assert_eq(v->b[1] * 4u, v->total, "%s: vector", v->name);
		for (k = 0; k <= v->len; k++) {
			struct conv_msg m;
			uint8_t err = 0xee;
			uint8_t *p = copy_prefix(v->b, k);
			enum conv_res r = conv_parse_request(p, k, &m, &err);

			if (k < v->total) {
				cr_assert_eq(r, CONV_AGAIN, "%s: prefix %zu",
				    v->name, k);
			} else {
				cr_assert_eq(r, CONV_OK,
				    "%s: prefix %zu: %d"
				    " err %u",
				    v->name, k, r, err);
				cr_assert_eq(m.len, v->total, "%s", v->name);
				if (m.has_udp)
					cr_assert_not(m.has_name);
				else
					cr_assert(m.has_connect != m.has_name);
			}
			cr_assert_eq(err, 0xee, "%s: err set", v->name);
			free(p);
		}
	}
}

/* The valid vector called name. */
static const struct valid_case *
find_valid(const char *name)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		if (strcmp(valid[i].name, name) == 0)
			return &valid[i];
	cr_assert_fail("no vector %s", name);
	return NULL;
}

/* Parses a whole vector that must be valid. */
static void
parse_ok(const uint8_t *b, size_t len, struct conv_msg *m)
{
	uint8_t err = 0;

	cr_assert_eq(
	    conv_parse_request(b, len, m, &err), CONV_OK, "err %u", err);
}

Test(convert, connect_v4_fields)
{
	struct conv_msg m;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	socklen_t sl;

	parse_ok(connect_v4_vec, sizeof(connect_v4_vec), &m);
	cr_assert(m.has_connect);
	cr_assert_not(
	    m.has_name || m.has_cookie || m.has_auth || m.info || m.silent);
	cr_assert_eq(m.port, 443);
	cr_assert(IN6_IS_ADDR_V4MAPPED(&m.addr));
	cr_assert_eq(m.opts_len, 0);
	cr_assert_eq(conv_addr_to_sockaddr(&m, &ss, &sl), 0);
	cr_assert_eq(sin->sin_family, AF_INET);
	cr_assert_eq(sl, sizeof(*sin));
	cr_assert_eq(ntohs(sin->sin_port), 443);
	cr_assert_eq(ntohl(sin->sin_addr.s_addr), 0xc000020a);
}

Test(convert, connect_v6_fields)
{
	static const uint8_t b[] = {HDR(6), CONNECT_V6};
	struct conv_msg m;
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct in6_addr want;
	socklen_t sl;

	parse_ok(b, sizeof(b), &m);
	cr_assert_eq(inet_pton(AF_INET6, "2001:db8::1", &want), 1);
	cr_assert(m.has_connect);
	cr_assert_eq(m.port, 80);
	cr_assert_eq(memcmp(&m.addr, &want, 16), 0);
	cr_assert_eq(conv_addr_to_sockaddr(&m, &ss, &sl), 0);
	cr_assert_eq(sin6->sin6_family, AF_INET6);
	cr_assert_eq(sl, sizeof(*sin6));
	cr_assert_eq(ntohs(sin6->sin6_port), 80);
	cr_assert_eq(memcmp(&sin6->sin6_addr, &want, 16), 0);
}

Test(convert, connect_name_fields)
{
	static const uint8_t b[] = {HDR(5), NAME_EX};
	struct conv_msg m;
	struct sockaddr_storage ss;
	socklen_t sl;

	parse_ok(b, sizeof(b), &m);
	cr_assert(m.has_name);
	cr_assert_not(m.has_connect);
	cr_assert_eq(m.port, 443);
	cr_assert_eq(m.name_len, 11);
	cr_assert_str_eq(m.name, "example.com");
	cr_assert_eq(conv_addr_to_sockaddr(&m, &ss, &sl), -1);
}

Test(convert, cookie_fields)
{
	static const uint8_t b[] = {
	    HDR(8), CONNECT_V4, 0x16, 0x02, 0, 0, 'a', 'b', 'c', 0};
	struct conv_msg m;

	parse_ok(b, sizeof(b), &m);
	cr_assert(m.has_cookie);
	cr_assert_eq(m.cookie, b + 28);
	cr_assert_eq(m.cookie_len, 4);
	cr_assert(conv_cookie_equal(&m, (const uint8_t *)"abc", 3));
	cr_assert_not(conv_cookie_equal(&m, (const uint8_t *)"abd", 3));
	cr_assert_not(conv_cookie_equal(&m, (const uint8_t *)"ab", 2));
	cr_assert_not(conv_cookie_equal(&m, (const uint8_t *)"abcd", 4));
	cr_assert_not(conv_cookie_equal(&m, (const uint8_t *)"abcdefg", 7));
	cr_assert_not(conv_cookie_equal(&m, (const uint8_t *)"", 0));
	/* No Cookie TLV never matches, not even an empty cookie. */
	parse_ok(connect_v4_vec, sizeof(connect_v4_vec), &m);
	cr_assert_not(conv_cookie_equal(&m, (const uint8_t *)"", 0));
}

Test(convert, cookie_padding_is_not_the_cookie)
{
	/* "ab" then 0x01 where padding would be: not the cookie "ab". */
	static const uint8_t b[] = {
	    HDR(8), CONNECT_V4, 0x16, 0x02, 0, 0, 'a', 'b', 0, 1};
	struct conv_msg m;

	parse_ok(b, sizeof(b), &m);
	cr_assert_not(conv_cookie_equal(&m, (const uint8_t *)"ab", 2));
}

Test(convert, auth_fields)
{
	struct conv_msg m;
	uint8_t key[CONV_KEY_LEN];
	static const uint8_t mac[] = {AUTH_MAC};
	static const uint8_t nonce[] = {NONCE};

	test_key(key);
	parse_ok(auth_vec, sizeof(auth_vec), &m);
	cr_assert(m.has_name && m.silent && m.has_auth);
	cr_assert_not(m.has_cookie || m.info);
	cr_assert_str_eq(m.user, "alice");
	cr_assert_eq(m.user_len, 5);
	cr_assert_eq(m.ts, 0x65000000u);
	cr_assert_eq(memcmp(m.nonce, nonce, 12), 0);
	cr_assert_eq(memcmp(m.mac, mac, 16), 0);
	cr_assert_eq(m.mac_off, AUTH_VEC_MAC_OFF);
	cr_assert(conv_verify(auth_vec, &m, key));
}

Test(convert, info_silent_options_private)
{
	const struct valid_case *v;
	struct conv_msg m;

	v = find_valid("info first");
	parse_ok(v->b, v->len, &m);
	cr_assert(m.info);
	cr_assert_not(m.silent);
	v = find_valid("silent");
	parse_ok(v->b, v->len, &m);
	cr_assert(m.silent);
	cr_assert_not(m.info);
	v = find_valid("tcp options");
	parse_ok(v->b, v->len, &m);
	cr_assert_eq(m.opts_len, 4);
	cr_assert_eq(m.opts, v->b + 24);
	v = find_valid("tcp option, padded");
	parse_ok(v->b, v->len, &m);
	cr_assert_eq(m.opts_len, 3);
	v = find_valid("unknown private types skipped");
	parse_ok(v->b, v->len, &m);
	cr_assert(m.has_connect);
	cr_assert_eq(m.port, 443);
	v = find_valid("everything");
	parse_ok(v->b, v->len, &m);
	cr_assert(
	    m.info && m.silent && m.has_name && m.has_cookie && m.has_auth);
	cr_assert_str_eq(m.user, "a");
}

Test(convert, trailing_data_is_not_consumed)
{
	const struct valid_case *v = find_valid("trailing data");
	struct conv_msg m;

	parse_ok(v->b, v->len, &m);
	cr_assert_eq(m.len, 24);
	cr_assert_eq(v->b[m.len], 'G');
}

Test(convert, largest_message)
{
	uint8_t b[CONV_MSG_MAX];
	struct conv_msg m;

	memcpy(b, connect_v4_vec, sizeof(connect_v4_vec));
	b[1] = 255;
	memset(b + 24, 0x5a, sizeof(b) - 24);
	b[24] = 0xd7;
	b[25] = 249;
	parse_ok(b, sizeof(b), &m);
	cr_assert_eq(m.len, CONV_MSG_MAX);
}

struct bad_case {
	const char *name;
	const uint8_t *b;
	size_t len;
	size_t at; /* shortest prefix that is already BAD */
	uint8_t err;
};

/* clang-format off: byte tables read best as the wire lays them out. */
#define MAL CONV_ERR_MALFORMED
#define UNS CONV_ERR_UNSUPPORTED_MSG
static const struct bad_case bad[] = {
    {"version 0", B(0x00, 0x06, 0x22, 0x63, CONNECT_V4), 1,
	CONV_ERR_UNSUPPORTED_VERSION},
    {"version 2", B(0x02, 0x06, 0x22, 0x63, CONNECT_V4), 1,
	CONV_ERR_UNSUPPORTED_VERSION},
    {"total length 0", B(0x01, 0x00, 0x22, 0x63), 2, MAL},
    {"magic high byte", B(0x01, 0x06, 0x00, 0x00, CONNECT_V4), 3, MAL},
    {"magic low byte", B(0x01, 0x06, 0x22, 0x64, CONNECT_V4), 4, MAL},
    {"header only", B(HDR(1)), 4, MAL},
    {"no connect", B(HDR(2), 0x16, 0x01, 0, 0), 8, MAL},
    {"tlv length 0", B(HDR(6), 0x0a, 0x00, 0x01, 0xbb), 6, MAL},
    {"tlv overruns message", B(HDR(6), 0x0a, 0x06, 0x01, 0xbb), 6, MAL},
    {"second tlv overruns", B(HDR(7), CONNECT_V4, 0x16, 0x02, 0, 0), 26, MAL},
    {"connect too short",
	B(HDR(5), 0x0a, 0x04, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
	6, MAL},
    {"info not zero", B(HDR(7), 0x01, 0x01, 0x00, 0x01, CONNECT_V4), 8, MAL},
    {"info too long", B(HDR(8), 0x01, 0x02, 0, 0, 0, 0, 0, 0, CONNECT_V4), 6,
	MAL},
    {"silent not zero", B(HDR(7), CONNECT_V4, 0xc2, 0x01, 0x01, 0x00), 27, MAL},
    {"silent too long", B(HDR(8), CONNECT_V4, 0xc2, 0x02, 0, 0, 0, 0, 0, 0), 26,
	MAL},
    {"cookie reserved not zero",
	B(HDR(8), CONNECT_V4, 0x16, 0x02, 0x00, 0x01, 'a', 'b', 'c', 0), 28,
	MAL},
    {"name padding not zero",
	B(HDR(5), 0xc0, 0x04, 0x01, 0xbb, 0x0a, 'e', 'x', 'a', 'm', 'p', 'l',
	    'e', '.', 'c', 'o', 0x01),
	20, MAL},
    {"name empty", B(HDR(3), 0xc0, 0x02, 0x01, 0xbb, 0x00, 0, 0, 0), 9, MAL},
    {"name with NUL",
	B(HDR(5), 0xc0, 0x04, 0x01, 0xbb, 0x0b, 'e', 'x', 0, 'm', 'p', 'l', 'e',
	    '.', 'c', 'o', 'm'),
	12, MAL},
    {"name length != tlv length",
	B(HDR(6), 0xc0, 0x05, 0x01, 0xbb, 0x0b, EXAMPLE_COM, 0, 0, 0, 0), 9,
	MAL},
    {"connect-name too short", B(HDR(2), 0xc0, 0x01, 0x01, 0xbb), 6, MAL},
    {"connect twice", B(HDR(11), CONNECT_V4, CONNECT_V4), 25, MAL},
    {"cookie twice", B(HDR(8), CONNECT_V4, 0x16, 0x01, 0, 0, 0x16, 0x01, 0, 0),
	29, MAL},
    {"private type twice",
	B(HDR(8), 0xd0, 0x01, 0xaa, 0xbb, 0xd0, 0x01, 0xaa, 0xbb, CONNECT_V4),
	9, MAL},
    {"connect then connect-name", B(HDR(10), CONNECT_V4, NAME_EX), 25, MAL},
    {"connect-name then connect", B(HDR(10), NAME_EX, CONNECT_V4), 21, MAL},
    {"auth not last", B(HDR(16), NAME_EX, AUTH_A, 0xc2, 0x01, 0, 0), 22, MAL},
    {"auth flags not zero",
	B(HDR(15), NAME_EX, 0xc1, 0x0a, 0x01, 0x01, TS, NONCE, 'a', ZERO16, 0,
	    0, 0),
	23, MAL},
    {"auth user empty",
	B(HDR(15), NAME_EX, 0xc1, 0x0a, 0x00, 0x00, TS, NONCE, 'a', ZERO16, 0,
	    0, 0),
	24, MAL},
    {"auth user with NUL",
	B(HDR(15), NAME_EX, 0xc1, 0x0a, 0x00, 0x01, TS, NONCE, 0, ZERO16, 0, 0,
	    0),
	41, MAL},
    {"auth padding not zero",
	B(HDR(15), NAME_EX, 0xc1, 0x0a, 0x00, 0x01, TS, NONCE, 'a', ZERO16, 0,
	    0, 7),
	60, MAL},
    {"auth user length != tlv length",
	B(HDR(15), NAME_EX, 0xc1, 0x0a, 0x00, 0x05, TS, NONCE, 'a', ZERO16, 0,
	    0, 0),
	24, MAL},
    {"auth too short", B(HDR(6), NAME_EX, 0xc1, 0x01, 0, 0), 22, MAL},
    {"option NOP",
	B(HDR(7), 0x0a, 0x06, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0xc0, 0x00, 0x02, 0x0a, 0x01, 0x1e, 0x02, 0x00),
	25, MAL},
    {"option length 1",
	B(HDR(7), 0x0a, 0x06, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0xc0, 0x00, 0x02, 0x0a, 0x1e, 0x01, 0x00, 0x00),
	26, MAL},
    {"option overruns tlv",
	B(HDR(7), 0x0a, 0x06, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0xc0, 0x00, 0x02, 0x0a, 0x1e, 0x05, 0x00, 0x00),
	26, MAL},
    {"option padding not zero",
	B(HDR(7), 0x0a, 0x06, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0xc0, 0x00, 0x02, 0x0a, 0x1e, 0x02, 0x00, 0x01),
	28, MAL},
    {"option padding a whole word",
	B(HDR(7), 0x0a, 0x06, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0xc0, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x00),
	25, MAL},
    {"unknown type 2", B(HDR(7), 0x02, 0x01, 0, 0, CONNECT_V4), 5, UNS},
    {"reserved type 0", B(HDR(7), 0x00, 0x01, 0, 0, CONNECT_V4), 5, UNS},
    {"type 191", B(HDR(7), 0xbf, 0x01, 0, 0, CONNECT_V4), 5, UNS},
    {"reply type 20 in a request", B(HDR(7), CONNECT_V4, 0x14, 0x01, 0, 0), 25,
	UNS},
    {"reply type 21 in a request", B(HDR(7), 0x15, 0x01, 0, 0, CONNECT_V4), 5,
	UNS},
    {"error type 30 in a request", B(HDR(7), 0x1e, 0x01, 0x01, 0, CONNECT_V4),
	5, UNS},
    {"udp value not zero", B(HDR(2), 0xc3, 0x01, 0x00, 0x01), 8, MAL},
    {"udp too long", B(HDR(3), 0xc3, 0x02, 0, 0, 0, 0, 0, 0), 6, MAL},
    {"udp twice", B(HDR(3), UDP_TLV, UDP_TLV), 9, MAL},
    {"udp then connect-name", B(HDR(6), UDP_TLV, NAME_EX), 9, MAL},
    {"connect-name then udp", B(HDR(6), NAME_EX, UDP_TLV), 21, MAL},
    {"connect with a target then udp", B(HDR(7), CONNECT_V4, UDP_TLV), 25, MAL},
    {"connect 0.0.0.0:1 then udp",
	B(HDR(7), 0x0a, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0, 0, 0, 0, UDP_TLV),
	25, MAL},
    {"connect 0.0.0.0:0 with an option then udp",
	B(HDR(8), 0x0a, 0x06, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff, 0, 0, 0, 0, 0x1e, 0x02, 0, 0, UDP_TLV),
	29, MAL},
    {"udp then connect port 256",
	B(HDR(7), UDP_TLV, 0x0a, 0x05, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff, 0, 0, 0, 0),
	11, MAL},
    {"udp then connect port 1",
	B(HDR(7), UDP_TLV, 0x0a, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff, 0, 0, 0, 0),
	12, MAL},
    {"udp then connect 1.0.0.0:0",
	B(HDR(7), UDP_TLV, 0x0a, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff, 1, 0, 0, 0),
	25, MAL},
    {"udp then connect [::1]:0",
	B(HDR(7), UDP_TLV, 0x0a, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0, 0, 0, 0, 1),
	28, MAL},
    {"udp then connect [2001::]:0",
	B(HDR(7), UDP_TLV, 0x0a, 0x05, 0x00, 0x00, 0x20, 0x01, 0, 0, 0, 0, 0, 0,
	    0, 0, 0, 0, 0, 0, 0, 0),
	13, MAL},
    {"udp then connect [::ff00:0]:0",
	B(HDR(7), UDP_TLV, 0x0a, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0x00, 0, 0, 0, 0),
	24, MAL},
    {"udp then connect [::fe:0]:0",
	B(HDR(7), UDP_TLV, 0x0a, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0x00, 0xfe, 0, 0, 0, 0),
	24, MAL},
    {"udp then connect with an option",
	B(HDR(8), UDP_TLV, 0x0a, 0x06, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff, 0, 0, 0, 0, 0x1e, 0x02, 0, 0),
	10, MAL},
    {"udp then connect too short", B(HDR(4), UDP_TLV, 0x0a, 0x02, 0, 0, 0, 0),
	10, MAL},
};
/* clang-format on */

Test(convert, each_malformed_field_is_refused_as_early_as_possible)
{
	size_t i, k;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad_case *c = &bad[i];

		cr_assert_leq(c->at, c->len, "%s: vector", c->name);
		for (k = 0; k <= c->len; k++) {
			struct conv_msg m;
			uint8_t err = 0xee;
			uint8_t *p = copy_prefix(c->b, k);
			enum conv_res r = conv_parse_request(p, k, &m, &err);

			free(p);
			if (k < c->at) {
				cr_assert_eq(r, CONV_AGAIN,
				    "%s: prefix %zu"
				    " gave %d err %u",
				    c->name, k, r, err);
				continue;
			}
			cr_assert_eq(r, CONV_BAD, "%s: prefix %zu gave %d",
			    c->name, k, r);
			cr_assert_eq(err, c->err, "%s: err %u, want %u",
			    c->name, err, c->err);
		}
	}
}

Test(convert, hand_written_vectors_pin_the_writer)
{
	static const uint8_t name_vec[] = {HDR(5), NAME_EX};
	struct sockaddr_in sin = {
	    .sin_family = AF_INET, .sin_port = htons(443)};
	struct conv_req req = {.addr = (struct sockaddr *)&sin};
	struct conv_req nreq = {.name = "example.com", .port = 443};
	uint8_t out[CONV_MSG_MAX];
	size_t mac_off = 99;

	sin.sin_addr.s_addr = htonl(0xc000020a);
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, &mac_off), 24);
	cr_assert_eq(memcmp(out, connect_v4_vec, 24), 0);
	cr_assert_eq(mac_off, 0);
	cr_assert_eq(conv_write_request(out, sizeof(out), &nreq, NULL), 20);
	cr_assert_eq(memcmp(out, name_vec, 20), 0);
}

Test(convert, writer_and_sign_reproduce_the_pinned_auth_vector)
{
	struct conv_req req = {.name = "example.com",
	    .port = 443,
	    .silent = true,
	    .user = "alice",
	    .ts = 0x65000000};
	uint8_t out[CONV_MSG_MAX], key[CONV_KEY_LEN];
	uint8_t zero[CONV_MAC_LEN] = {0};
	size_t n, mac_off;

	test_key(key);
	for (int i = 0; i < CONV_NONCE_LEN; i++)
		req.nonce[i] = (uint8_t)i;
	n = conv_write_request(out, sizeof(out), &req, &mac_off);
	cr_assert_eq(n, sizeof(auth_vec));
	cr_assert_eq(mac_off, AUTH_VEC_MAC_OFF);
	cr_assert_eq(memcmp(out, auth_vec, mac_off), 0);
	cr_assert_eq(memcmp(out + mac_off, zero, CONV_MAC_LEN), 0);
	cr_assert_eq(
	    memcmp(out + mac_off + CONV_MAC_LEN,
		auth_vec + mac_off + CONV_MAC_LEN, n - mac_off - CONV_MAC_LEN),
	    0);
	cr_assert_eq(conv_sign(out, mac_off, key), 0);
	cr_assert_eq(memcmp(out, auth_vec, n), 0);
}

/* Writes req, parses it back and checks what both sides agree on. */
static void
round_trip(const struct conv_req *req, const char *what)
{
	uint8_t out[CONV_MSG_MAX + 8];
	struct conv_msg m;
	uint8_t err = 0;
	size_t n, mac_off, k;

	n = conv_write_request(out, sizeof(out), req, &mac_off);
	cr_assert_gt(n, 0, "%s: write", what);
	cr_assert_eq(n % 4, 0, "%s", what);
	cr_assert_eq(conv_parse_request(out, n, &m, &err), CONV_OK,
	    "%s: err %u", what, err);
	cr_assert_eq(m.len, n, "%s", what);
	if (req->addr != NULL) {
		uint8_t a6[16] = {[10] = 0xff, [11] = 0xff};
		uint16_t port;

		cr_assert(m.has_connect && !m.has_name, "%s", what);
		if (req->addr->sa_family == AF_INET) {
			const struct sockaddr_in *s =
			    (const struct sockaddr_in *)req->addr;

			memcpy(a6 + 12, &s->sin_addr, 4);
			port = ntohs(s->sin_port);
		} else {
			const struct sockaddr_in6 *s6 =
			    (const struct sockaddr_in6 *)req->addr;

			memcpy(a6, &s6->sin6_addr, 16);
			port = ntohs(s6->sin6_port);
		}
		cr_assert_eq(memcmp(&m.addr, a6, 16), 0, "%s", what);
		cr_assert_eq(m.port, port, "%s", what);
		cr_assert_eq(m.opts_len, req->opts_len, "%s", what);
		if (req->opts_len > 0)
			cr_assert_eq(memcmp(m.opts, req->opts, req->opts_len),
			    0, "%s", what);
	} else if (req->name != NULL) {
		cr_assert(m.has_name && !m.has_connect, "%s", what);
		cr_assert_str_eq(m.name, req->name, "%s", what);
		cr_assert_eq(m.name_len, strlen(req->name), "%s", what);
		cr_assert_eq(m.port, req->port, "%s", what);
	} else {
		cr_assert(!m.has_name && !m.has_connect, "%s", what);
	}
	cr_assert_eq(m.has_udp, req->udp, "%s", what);
	cr_assert_eq(m.has_cookie, req->cookie != NULL, "%s", what);
	if (req->cookie != NULL)
		cr_assert(conv_cookie_equal(&m, req->cookie, req->cookie_len),
		    "%s", what);
	cr_assert_eq(m.info, req->info, "%s", what);
	cr_assert_eq(m.silent, req->silent, "%s", what);
	cr_assert_eq(m.has_auth, req->user != NULL, "%s", what);
	if (req->user != NULL) {
		cr_assert_str_eq(m.user, req->user, "%s", what);
		cr_assert_eq(m.ts, req->ts, "%s", what);
		cr_assert_eq(memcmp(m.nonce, req->nonce, 12), 0, "%s", what);
		cr_assert_eq(m.mac_off, mac_off, "%s", what);
	}
	/* Too small a buffer writes nothing. */
	for (k = 0; k < n; k++)
		cr_assert_eq(conv_write_request(out, k, req, NULL), 0,
		    "%s: cap %zu", what, k);
}

Test(convert, writer_parser_round_trips)
{
	struct sockaddr_in sin = {
	    .sin_family = AF_INET, .sin_port = htons(8080)};
	struct sockaddr_in6 sin6 = {
	    .sin6_family = AF_INET6, .sin6_port = htons(1)};
	/* MPTCP listed empty, a TFO cookie, a 3-byte option (1 pad byte). */
	static const uint8_t opts[] = {
	    0x1e, 0x02, 0x22, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8, 0xfd, 0x03, 0x07};
	static const uint8_t cookie[] = "0123456789abcdef";
	char name[256], user[256], what[64];
	struct conv_req req;
	size_t i;

	sin.sin_addr.s_addr = htonl(0x0a4d0001);
	inet_pton(AF_INET6, "fe80::1:2:3:4", &sin6.sin6_addr);
	memset(name, 'n', sizeof(name));
	memset(user, 'u', sizeof(user));
	for (i = 0; i < 16; i++) {
		memset(&req, 0, sizeof(req));
		if (i % 3 == 0) {
			req.addr = (struct sockaddr *)&sin;
		} else if (i % 3 == 1) {
			req.addr = (struct sockaddr *)&sin6;
			req.opts = opts;
			req.opts_len = i % 2 ? 2 : sizeof(opts);
		} else {
			name[i + 1] = '\0';
			req.name = name;
			req.port = (uint16_t)(65535 - i);
		}
		if (i % 4 != 3) {
			req.cookie = cookie;
			req.cookie_len = i;
		}
		req.info = i & 1;
		req.silent = i & 2;
		if (i % 5 != 0) {
			user[i] = '\0';
			req.user = user;
			req.ts = 0xfedcba98u - (uint32_t)i;
			memset(req.nonce, (int)i, sizeof(req.nonce));
		}
		snprintf(what, sizeof(what), "case %zu", i);
		round_trip(&req, what);
		memset(name, 'n', sizeof(name));
		memset(user, 'u', sizeof(user));
	}
	/* The longest name and user. */
	memset(&req, 0, sizeof(req));
	name[255] = '\0';
	user[255] = '\0';
	req.name = name;
	req.user = user;
	round_trip(&req, "255-byte name and user");
}

Test(convert, writer_refuses_what_it_cannot_write)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	uint8_t out[CONV_MSG_MAX + 64], big[CONV_MSG_MAX];
	char name[300];
	struct conv_req req;
	size_t mac_off = 7;

	memset(big, 'c', sizeof(big));
	memset(name, 'x', sizeof(name));
	name[256] = '\0';

	memset(&req, 0, sizeof(req));
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, &mac_off), 0);
	cr_assert_eq(mac_off, 0);
	req.addr = (struct sockaddr *)&sin;
	req.name = "x";
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	req.addr = (struct sockaddr *)&sun;
	req.name = NULL;
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	req.addr = NULL;
	req.name = "";
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	req.name = name;
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	req.name = "x";
	req.user = "";
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	req.user = name;
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	req.user = NULL;
	/* 1020 bytes exactly fit; one more cookie byte does not. */
	req.addr = (struct sockaddr *)&sin;
	req.name = NULL;
	req.cookie = big;
	req.cookie_len = CONV_MSG_MAX - 24 - 4;
	cr_assert_eq(
	    conv_write_request(out, sizeof(out), &req, NULL), CONV_MSG_MAX);
	req.cookie_len++;
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
}

Test(convert, udp_fields)
{
	const struct valid_case *v;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct conv_msg m;
	socklen_t sl;

	v = find_valid("udp alone");
	parse_ok(v->b, v->len, &m);
	cr_assert(m.has_udp);
	cr_assert_not(m.has_connect || m.has_name || m.has_cookie);
	cr_assert_eq(conv_addr_to_sockaddr(&m, &ss, &sl), -1);
	v = find_valid("udp, connect 0.0.0.0:0");
	parse_ok(v->b, v->len, &m);
	cr_assert(m.has_udp && m.has_connect);
	cr_assert_eq(conv_addr_to_sockaddr(&m, &ss, &sl), 0);
	cr_assert_eq(sin->sin_family, AF_INET);
	cr_assert_eq(sin->sin_port, 0);
	cr_assert_eq(sin->sin_addr.s_addr, 0);
	v = find_valid("udp with cookie, silent and auth");
	parse_ok(v->b, v->len, &m);
	cr_assert(m.has_udp && m.has_cookie && m.silent && m.has_auth);
	cr_assert_str_eq(m.user, "a");
	/* Without the UDP TLV nothing changed: no target is still refused. */
	parse_ok(connect_v4_vec, sizeof(connect_v4_vec), &m);
	cr_assert_not(m.has_udp);
}

Test(convert, udp_request_written)
{
	static const uint8_t alone[] = {HDR(2), UDP_TLV};
	static const uint8_t zero4[] = {HDR(7), CONNECT_ZERO4, UDP_TLV};
	static const uint8_t zero6[] = {HDR(7), CONNECT_ZERO6, UDP_TLV};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	static const uint8_t opt[] = {0x1e, 0x02};
	struct conv_req req = {.udp = true};
	uint8_t out[CONV_MSG_MAX];
	size_t n;

	n = conv_write_request(out, sizeof(out), &req, NULL);
	cr_assert_eq(n, sizeof(alone));
	cr_assert_eq(memcmp(out, alone, n), 0);
	round_trip(&req, "udp alone");
	req.addr = (struct sockaddr *)&sin;
	n = conv_write_request(out, sizeof(out), &req, NULL);
	cr_assert_eq(n, sizeof(zero4));
	cr_assert_eq(memcmp(out, zero4, n), 0);
	round_trip(&req, "udp, 0.0.0.0:0");
	req.addr = (struct sockaddr *)&sin6;
	n = conv_write_request(out, sizeof(out), &req, NULL);
	cr_assert_eq(n, sizeof(zero6));
	cr_assert_eq(memcmp(out, zero6, n), 0);
	req.addr = NULL;
	req.user = "alice";
	req.ts = 77;
	req.silent = true;
	req.cookie = (const uint8_t *)"secret";
	req.cookie_len = 6;
	round_trip(&req, "udp with everything");

	/* What cannot go with UDP: a name, a target, options. */
	memset(&req, 0, sizeof(req));
	req.udp = true;
	req.name = "example.com";
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	req.name = NULL;
	req.addr = (struct sockaddr *)&sin;
	sin.sin_port = htons(1);
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	sin.sin_port = 0;
	sin.sin_addr.s_addr = htonl(1);
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	sin.sin_addr.s_addr = 0;
	req.opts = opt;
	req.opts_len = sizeof(opt);
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
	req.addr = (struct sockaddr *)&sin6;
	req.opts_len = 0;
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
	/* Without udp, no target at all is still refused. */
	memset(&req, 0, sizeof(req));
	cr_assert_eq(conv_write_request(out, sizeof(out), &req, NULL), 0);
}

/*
 * A frame of total bytes at the start of b[0..len): every shorter prefix
 * is AGAIN, every longer one OK with the same body, n and used.
 */
static void
frame_ok(const uint8_t *b, size_t len, size_t total, const char *what)
{
	const uint8_t *body;
	size_t k, n, used;

	for (k = 0; k <= len; k++) {
		uint8_t *p = copy_prefix(b, k);
		enum conv_res r;

		body = NULL;
		n = used = 7777;
		r = conv_udp_frame_parse(p, k, &body, &n, &used);
		if (k < total) {
			cr_assert_eq(r, CONV_AGAIN, "%s: prefix %zu", what, k);
			cr_assert(body == NULL && n == 7777 && used == 7777);
		} else {
			cr_assert_eq(r, CONV_OK, "%s: prefix %zu", what, k);
			cr_assert_eq(body, p + 2, "%s", what);
			cr_assert_eq(n, total - 2, "%s", what);
			cr_assert_eq(used, total, "%s", what);
		}
		free(p);
	}
}

Test(convert, udp_frames_every_prefix)
{
	/* clang-format off: byte tables read best as the wire lays them out. */
	const struct {
		const char *name;
		const uint8_t *b;
		size_t len;
		size_t total;
	} t[] = {
	    {"shortest: a one-byte name, no payload",
		B(0x00, 0x08, 0, 0, 0, 0x03, 0x01, 'x', 0x00, 0x35), 10},
	    {"ipv4 with payload",
		B(0x00, 0x0e, 0, 0, 0, 0x01, 10, 77, 0, 1, 0, 53, 'p', 'i', 'n',
		    'g'),
		16},
	    {"two frames back to back",
		B(0x00, 0x0a, 0, 0, 0, 0x01, 10, 77, 0, 1, 0, 53, 0x00, 0x0a, 0,
		    0, 0, 0x01, 10, 77, 0, 2, 0, 53),
		12},
	    {"a frame, then a bad one",
		B(0x00, 0x0b, 0, 0, 0, 0x01, 10, 77, 0, 1, 0, 53, 'x', 0x00,
		    0x00),
		13},
	};
	/* clang-format on */
	static uint8_t big[CONV_UDP_FRAME_MAX + 3];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		frame_ok(t[i].b, t[i].len, t[i].total, t[i].name);
	/* The largest body the Length can say. */
	memset(big, 0x5a, sizeof(big));
	big[0] = 0xff;
	big[1] = 0xff;
	frame_ok(big, sizeof(big), CONV_UDP_FRAME_MAX, "largest");
}

Test(convert, udp_frame_length_below_a_header_is_bad)
{
	static const uint8_t body[8] = {0};
	const uint8_t *p;
	uint8_t b[2 + 8];
	size_t n, used, k, blen;

	for (blen = 0; blen < CONV_UDP_BODY_MIN; blen++) {
		b[0] = 0;
		b[1] = (uint8_t)blen;
		memcpy(b + 2, body, 8);
		for (k = 0; k <= sizeof(b); k++) {
			uint8_t *c = copy_prefix(b, k);

			cr_assert_eq(conv_udp_frame_parse(c, k, &p, &n, &used),
			    k < 2 ? CONV_AGAIN : CONV_BAD, "len %zu prefix %zu",
			    blen, k);
			free(c);
		}
	}
}

Test(convert, udp_frame_written)
{
	static const uint8_t hdr[] = {0, 0, 0, 0x01, 10, 77, 0, 1, 0, 53};
	static uint8_t body[CONV_UDP_BODY_MAX + 1], out[CONV_UDP_FRAME_MAX + 1];
	uint8_t len[CONV_UDP_LEN_LEN];
	const uint8_t *p;
	size_t n, used;

	cr_assert_eq(
	    conv_udp_frame_write(out, sizeof(out), hdr, sizeof(hdr)), 12);
	cr_assert_eq(memcmp(out, "\x00\x0a", 2), 0);
	cr_assert_eq(memcmp(out + 2, hdr, sizeof(hdr)), 0);
	cr_assert_eq(conv_udp_frame_parse(out, 12, &p, &n, &used), CONV_OK);
	cr_assert(p == out + 2 && n == sizeof(hdr) && used == 12);
	cr_assert_eq(conv_udp_frame_write(out, 12, hdr, sizeof(hdr)), 12);
	cr_assert_eq(conv_udp_frame_write(out, 11, hdr, sizeof(hdr)), 0);
	cr_assert_eq(conv_udp_frame_write(out, 1, hdr, 8), 0);
	cr_assert_eq(conv_udp_frame_write(out, sizeof(out), hdr, 7), 0);
	cr_assert_eq(conv_udp_frame_write(out, sizeof(out), hdr, 0), 0);
	cr_assert_eq(
	    conv_udp_frame_write(out, sizeof(out), body, CONV_UDP_BODY_MAX),
	    CONV_UDP_FRAME_MAX);
	cr_assert_eq(memcmp(out, "\xff\xff", 2), 0);
	cr_assert_eq(
	    conv_udp_frame_write(out, sizeof(out), body, CONV_UDP_BODY_MAX + 1),
	    0);

	cr_assert_eq(conv_udp_frame_len(len, 8), 2);
	cr_assert_eq(memcmp(len, "\x00\x08", 2), 0);
	cr_assert_eq(conv_udp_frame_len(len, 1234), 2);
	cr_assert_eq(memcmp(len, "\x04\xd2", 2), 0);
	cr_assert_eq(conv_udp_frame_len(len, CONV_UDP_BODY_MAX), 2);
	cr_assert_eq(conv_udp_frame_len(len, 7), 0);
	cr_assert_eq(conv_udp_frame_len(len, CONV_UDP_BODY_MAX + 1), 0);
}

Test(convert, replies_written_and_parsed)
{
	static const uint8_t ok_vec[] = {HDR(2), 0x14, 0x01, 0x00, 0x00};
	static const uint8_t err_vec[] = {HDR(2), 0x1e, 0x01, 0x61, 0x03};
	uint8_t out[CONV_REPLY_LEN];
	struct conv_reply r;
	size_t k;

	cr_assert_eq(conv_write_ok_reply(out, sizeof(out)), CONV_REPLY_LEN);
	cr_assert_eq(memcmp(out, ok_vec, sizeof(ok_vec)), 0);
	cr_assert_eq(conv_write_ok_reply(out, CONV_REPLY_LEN - 1), 0);
	cr_assert_eq(
	    conv_write_error(out, sizeof(out), CONV_ERR_DEST_UNREACHABLE, 3),
	    CONV_REPLY_LEN);
	cr_assert_eq(memcmp(out, err_vec, sizeof(err_vec)), 0);
	cr_assert_eq(conv_write_error(out, CONV_REPLY_LEN - 1, 1, 0), 0);

	for (k = 0; k <= CONV_REPLY_LEN; k++) {
		uint8_t *p = copy_prefix(ok_vec, k);

		cr_assert_eq(conv_parse_reply(p, k, &r),
		    k < CONV_REPLY_LEN ? CONV_AGAIN : CONV_OK, "ok %zu", k);
		free(p);
		p = copy_prefix(err_vec, k);
		cr_assert_eq(conv_parse_reply(p, k, &r),
		    k < CONV_REPLY_LEN ? CONV_AGAIN : CONV_OK, "err %zu", k);
		free(p);
	}
	cr_assert_eq(conv_parse_reply(ok_vec, sizeof(ok_vec), &r), CONV_OK);
	cr_assert(r.ok);
	cr_assert_eq(r.len, 8);
	cr_assert_eq(r.opts_len, 0);
	cr_assert_eq(conv_parse_reply(err_vec, sizeof(err_vec), &r), CONV_OK);
	cr_assert_not(r.ok);
	cr_assert_eq(r.code, CONV_ERR_DEST_UNREACHABLE);
	cr_assert_eq(r.value, 3);
}

struct reply_case {
	const char *name;
	const uint8_t *b;
	size_t len;
	enum conv_res res;
	bool ok;
	size_t opts_len;
};

/* clang-format off: byte tables read best as the wire lays them out. */
static const struct reply_case replies[] = {
    {"header only", B(HDR(1)), CONV_OK, true, 0},
    {"options with NOPs, then data",
	B(HDR(4), 0x14, 0x03, 0, 0, 0x01, 0x01, 0x08, 0x0a, 1, 2, 3, 4, 'd',
	    'a', 't', 'a'),
	CONV_OK, true, 8},
    {"supported ext and private",
	B(HDR(4), 0x15, 0x02, 0, 0, 0x1e, 0x22, 0, 0, 0xe0, 0x01, 0, 0),
	CONV_OK, true, 0},
    {"error with echo",
	B(HDR(3), 0x1e, 0x02, 0x01, 0x00, 0x01, 0x06, 0x22, 0x63), CONV_OK,
	false, 0},
    {"version 2", B(0x02, 0x02, 0x22, 0x63, 0x14, 0x01, 0, 0), CONV_BAD, false,
	0},
    {"bad magic", B(0x01, 0x02, 0x00, 0x00, 0x14, 0x01, 0, 0), CONV_BAD, false,
	0},
    {"total 0", B(0x01, 0x00, 0x22, 0x63), CONV_BAD, false, 0},
    {"connect in a reply", B(HDR(6), CONNECT_V4), CONV_BAD, false, 0},
    {"ext twice", B(HDR(3), 0x14, 0x01, 0, 0, 0x14, 0x01, 0, 0), CONV_BAD,
	false, 0},
    {"ext reserved not zero", B(HDR(2), 0x14, 0x01, 0, 1), CONV_BAD, false, 0},
    {"tlv length 0", B(HDR(2), 0x14, 0x00, 0, 0), CONV_BAD, false, 0},
    {"tlv overrun", B(HDR(2), 0x1e, 0x02, 0, 0), CONV_BAD, false, 0},
};
/* clang-format on */

Test(convert, reply_table_every_prefix)
{
	size_t i, k;

	for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		const struct reply_case *c = &replies[i];
		struct conv_reply r;
		enum conv_res first = CONV_AGAIN;

		cr_assert_eq(
		    conv_parse_reply(c->b, c->len, &r), c->res, "%s", c->name);
		if (c->res == CONV_OK) {
			cr_assert_eq(r.ok, c->ok, "%s", c->name);
			cr_assert_eq(r.opts_len, c->opts_len, "%s", c->name);
			cr_assert_eq(r.len, c->b[1] * 4u, "%s", c->name);
		}
		/* AGAIN, then the final answer and nothing else. */
		for (k = 0; k <= c->len; k++) {
			uint8_t *p = copy_prefix(c->b, k);
			enum conv_res res = conv_parse_reply(p, k, &r);

			free(p);
			if (first == CONV_AGAIN)
				first = res;
			else
				cr_assert_eq(
				    res, first, "%s: prefix %zu", c->name, k);
			if (res != CONV_AGAIN)
				cr_assert_eq(
				    res, c->res, "%s: prefix %zu", c->name, k);
		}
	}
}

Test(convert, mac_rfc4231_vectors)
{
	/* Case 2: key "Jefe"; a key shorter than the block is zero padded,
	 * so "Jefe" and 28 zero bytes is the same key. */
	static const uint8_t want2[] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60,
	    0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7};
	/* Case 1: key 20 x 0x0b, "Hi There". */
	static const uint8_t want1[] = {0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb,
	    0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b, 0xf1, 0x2b};
	static const char data2[] = "what do ya want for nothing?";
	uint8_t key[CONV_KEY_LEN] = {'J', 'e', 'f', 'e'};
	uint8_t mac[CONV_MAC_LEN];

	cr_assert_eq(
	    conv_mac(key, (const uint8_t *)data2, strlen(data2), mac), 0);
	cr_assert_eq(memcmp(mac, want2, 16), 0);
	cr_assert(conv_mac_equal(mac, want2));
	memset(key, 0, sizeof(key));
	memset(key, 0x0b, 20);
	cr_assert_eq(conv_mac(key, (const uint8_t *)"Hi There", 8, mac), 0);
	cr_assert_eq(memcmp(mac, want1, 16), 0);
	cr_assert_not(conv_mac_equal(mac, want2));
}

Test(convert, sign_verify_and_every_flipped_bit_fails)
{
	uint8_t msg[sizeof(auth_vec)], key[CONV_KEY_LEN];
	struct conv_msg m;
	uint8_t err;
	size_t i;
	int bit;

	test_key(key);
	memcpy(msg, auth_vec, sizeof(msg));
	memset(msg + AUTH_VEC_MAC_OFF, 0, CONV_MAC_LEN);
	cr_assert_eq(conv_sign(msg, AUTH_VEC_MAC_OFF, key), 0);
	cr_assert_eq(memcmp(msg, auth_vec, sizeof(msg)), 0);
	parse_ok(msg, sizeof(msg), &m);
	cr_assert(conv_verify(msg, &m, key));

	/* Every bit of the signed part and of the MAC. */
	for (i = 0; i < AUTH_VEC_MAC_OFF + CONV_MAC_LEN; i++) {
		for (bit = 0; bit < 8; bit++) {
			msg[i] ^= (uint8_t)(1u << bit);
			if (conv_parse_request(msg, sizeof(msg), &m, &err) ==
			    CONV_OK)
				cr_assert_not(conv_verify(msg, &m, key),
				    "byte %zu bit %d", i, bit);
			msg[i] ^= (uint8_t)(1u << bit);
		}
	}
	parse_ok(msg, sizeof(msg), &m);
	key[31] ^= 0x80;
	cr_assert_not(conv_verify(msg, &m, key));
	key[31] ^= 0x80;
	cr_assert(conv_verify(msg, &m, key));
	/* No Auth TLV is never verified. */
	parse_ok(connect_v4_vec, sizeof(connect_v4_vec), &m);
	cr_assert_not(conv_verify(connect_v4_vec, &m, key));
}

Test(convert, errno_mapping)
{
	static const struct {
		int err;
		uint8_t code;
	} to_code[] = {
	    {ECONNREFUSED, CONV_ERR_CONNECTION_RESET},
	    {ECONNRESET, CONV_ERR_CONNECTION_RESET},
	    {EHOSTUNREACH, CONV_ERR_DEST_UNREACHABLE},
	    {ENETUNREACH, CONV_ERR_DEST_UNREACHABLE},
	    {ETIMEDOUT, CONV_ERR_DEST_UNREACHABLE},
	    {EACCES, CONV_ERR_NOT_AUTHORIZED},
	    {EPERM, CONV_ERR_NOT_AUTHORIZED},
	    {EMFILE, CONV_ERR_RESOURCE_EXCEEDED},
	    {ENOBUFS, CONV_ERR_RESOURCE_EXCEEDED},
	    {EADDRNOTAVAIL, CONV_ERR_NETWORK_FAILURE},
	    {EIO, CONV_ERR_NETWORK_FAILURE},
	    {0, CONV_ERR_NETWORK_FAILURE},
	};
	static const struct {
		uint8_t code;
		int err;
	} to_errno[] = {
	    {CONV_ERR_CONNECTION_RESET, ECONNREFUSED},
	    {CONV_ERR_DEST_UNREACHABLE, EHOSTUNREACH},
	    {CONV_ERR_NETWORK_FAILURE, ENETUNREACH},
	    {CONV_ERR_NOT_AUTHORIZED, EACCES},
	    {CONV_ERR_MISSING_COOKIE, EACCES},
	    {CONV_ERR_MALFORMED, ECONNREFUSED},
	    {CONV_ERR_RESOURCE_EXCEEDED, ECONNREFUSED},
	    {200, ECONNREFUSED},
	};
	size_t i;

	for (i = 0; i < sizeof(to_code) / sizeof(to_code[0]); i++)
		cr_assert_eq(conv_err_from_errno(to_code[i].err),
		    to_code[i].code, "errno %d", to_code[i].err);
	for (i = 0; i < sizeof(to_errno) / sizeof(to_errno[0]); i++)
		cr_assert_eq(conv_errno_from_err(to_errno[i].code),
		    to_errno[i].err, "code %u", to_errno[i].code);
}

Test(convert, error_names)
{
	for (int c = 0; c < 256; c++)
		cr_assert_not_null(conv_err_str((uint8_t)c));
	cr_assert_str_eq(conv_err_str(0), "unsupported version");
	cr_assert_str_eq(conv_err_str(3), "missing cookie");
	cr_assert_str_eq(conv_err_str(32), "not authorized");
	cr_assert_str_eq(conv_err_str(97), "destination unreachable");
	cr_assert_str_eq(conv_err_str(5), "unknown error");
}
