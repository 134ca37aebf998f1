/*
 * Unit tests for the PROXY protocol codec (proto/proxyproto.c): v1 and v2
 * wire vectors, every prefix of every valid header one byte at a time,
 * each malformed field with the byte at which it must be refused, data
 * after the header left alone, and writer -> parser round trips.
 *
 * Every parse runs on a heap copy of exactly the bytes offered, so a
 * parser that reads past len trips AddressSanitizer in the asan build.
 */
#include "proto/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <criterion/criterion.h>

/* clang-format off: byte tables read best as the wire lays them out. */
/* A byte vector as two initializers: pointer, length. */
#define B(...)                                                                 \
	(const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
/* A string literal as two initializers, NULs inside included. */
#define S(s) (const uint8_t *)(s), sizeof(s) - 1

#define SIG                                                                    \
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
/* 10.0.0.1:56324 -> 192.0.2.10:443 */
#define ADDR4 10, 0, 0, 1, 192, 0, 2, 10, 0xdc, 0x04, 0x01, 0xbb
/* [2001:db8::1]:1 -> [2001:db8::2]:65535 */
#define ADDR6                                                                  \
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x20,      \
	    0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x00, 0x01,  \
	    0xff, 0xff
#define EXAMPLE_COM 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'
#define X8 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'
#define X64 X8, X8, X8, X8, X8, X8, X8, X8
#define Z8 0, 0, 0, 0, 0, 0, 0, 0
#define Z100 Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, 0, 0, 0, 0
/* Two 108-byte AF_UNIX paths, "/a" and "/b". */
#define ADDR_UNIX                                                              \
	'/', 'a', Z100, 0, 0, 0, 0, 0, 0, '/', 'b', Z100, 0, 0, 0, 0, 0, 0
/* clang-format on */

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

/* "1.2.3.4:80" or "[::ffff:1.2.3.4]:80": the family as parsed, unmapped. */
static const char *
fmt(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(out, cap, "%s:%u", a, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(out, cap, "[%s]:%u", a, ntohs(sin6->sin6_port));
	} else {
		snprintf(out, cap, "family %u", ss->ss_family);
	}
	return out;
}

/* Whether two OK parses of (maybe different copies of) one header agree. */
static void
same_hdr(const struct pp_hdr *a, const uint8_t *abuf, const struct pp_hdr *b,
    const uint8_t *bbuf, const char *what)
{
	cr_assert_eq(a->version, b->version, "%s", what);
	cr_assert_eq(a->cmd, b->cmd, "%s", what);
	cr_assert_eq(a->fam, b->fam, "%s", what);
	cr_assert_eq(a->proto, b->proto, "%s", what);
	cr_assert_eq(a->has_addr, b->has_addr, "%s", what);
	cr_assert_eq(a->addr_len, b->addr_len, "%s", what);
	if (a->has_addr) {
		cr_assert_eq(
		    memcmp(&a->src, &b->src, a->addr_len), 0, "%s", what);
		cr_assert_eq(
		    memcmp(&a->dst, &b->dst, a->addr_len), 0, "%s", what);
	}
	cr_assert_eq(a->tlvs == NULL, b->tlvs == NULL, "%s", what);
	if (a->tlvs != NULL)
		cr_assert_eq(a->tlvs - abuf, b->tlvs - bbuf, "%s", what);
	cr_assert_eq(a->tlvs_len, b->tlvs_len, "%s", what);
}

/* Tails that follow a header in the tests: none may change the answer. */
static const struct {
	const uint8_t *b;
	size_t len;
} tails[] = {
    {S("\x05\x01\x00")},
    {S("\r\n")},
    {S("\n")},
    {S("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
    {S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")},
    {S("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff")},
};

/*
 * A valid header of total bytes at the start of b[0..len): every shorter
 * prefix is AGAIN, every longer one (up to len, then with each tail added)
 * OK with *used == total and the same fields. Leaves the parse of
 * b[0..total) in *h, pointing into the caller's b.
 */
static void
check_valid(const uint8_t *b, size_t len, size_t total, struct pp_hdr *h,
    const char *what)
{
	struct pp_hdr p;
	size_t k, t, used;
	uint8_t *c;

	cr_assert_leq(total, len, "%s: vector", what);
	cr_assert_eq(pp_parse(b, total, h, &used), PP_OK, "%s: whole", what);
	cr_assert_eq(used, total, "%s: used %zu", what, used);
	for (k = 0; k <= len; k++) {
		enum pp_res r;

		c = copy_prefix(b, k);
		used = 7777;
		r = pp_parse(c, k, &p, &used);
		if (k < total) {
			cr_assert_eq(
			    r, PP_AGAIN, "%s: prefix %zu gave %d", what, k, r);
			cr_assert_eq(used, 7777, "%s: used set", what);
		} else {
			cr_assert_eq(
			    r, PP_OK, "%s: prefix %zu gave %d", what, k, r);
			cr_assert_eq(used, total, "%s: prefix %zu", what, k);
			same_hdr(&p, c, h, b, what);
		}
		free(c);
	}
	for (t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
		c = malloc(total + tails[t].len);
		cr_assert_not_null(c);
		memcpy(c, b, total);
		memcpy(c + total, tails[t].b, tails[t].len);
		cr_assert_eq(pp_parse(c, total + tails[t].len, &p, &used),
		    PP_OK, "%s: tail %zu", what, t);
		cr_assert_eq(used, total, "%s: tail %zu", what, t);
		same_hdr(&p, c, h, b, what);
		/* The client's bytes are still there, as they were. */
		cr_assert_eq(memcmp(c + used, tails[t].b, tails[t].len), 0);
		free(c);
	}
}

struct valid_case {
	const char *name;
	const uint8_t *b;
	size_t len;
	size_t total; /* header bytes; the rest is the client's */
	uint8_t version, cmd, fam, proto;
	const char *src; /* fmt() of src and dst, NULL: no addresses */
	const char *dst;
	size_t tlvs_len;
};

/* clang-format off: byte tables read best as the wire lays them out. */
static const struct valid_case valid[] = {
    {"v1 tcp4 (the spec's example)",
	S("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), 47, 1,
	PP_CMD_PROXY, PP_FAM_INET, PP_PROTO_STREAM, "192.168.0.1:56324",
	"192.168.0.11:443", 0},
    {"v1 tcp4 extremes", S("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
	44, 1, PP_CMD_PROXY, PP_FAM_INET, PP_PROTO_STREAM, "0.0.0.0:0",
	"255.255.255.255:65535", 0},
    {"v1 tcp4, request after it",
	S("PROXY TCP4 10.77.0.1 10.77.0.2 1 2\r\nGET / HTTP/1.0\r\n\r\n"), 36,
	1, PP_CMD_PROXY, PP_FAM_INET, PP_PROTO_STREAM, "10.77.0.1:1",
	"10.77.0.2:2", 0},
    {"v1 tcp4, socks5 greeting after it",
	S("PROXY TCP4 10.77.0.1 10.77.0.2 40000 1080\r\n\x05\x01\x00"), 43, 1,
	PP_CMD_PROXY, PP_FAM_INET, PP_PROTO_STREAM, "10.77.0.1:40000",
	"10.77.0.2:1080", 0},
    {"v1 tcp6", S("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"), 46, 1,
	PP_CMD_PROXY, PP_FAM_INET6, PP_PROTO_STREAM, "[2001:db8::1]:56324",
	"[2001:db8::2]:443", 0},
    {"v1 tcp6 upper case, v4-mapped",
	S("PROXY TCP6 2001:DB8::A ::ffff:192.0.2.1 9 10\r\n"), 46, 1,
	PP_CMD_PROXY, PP_FAM_INET6, PP_PROTO_STREAM, "[2001:db8::a]:9",
	"[::ffff:192.0.2.1]:10", 0},
    {"v1 tcp6 longest (104)",
	S("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	104, 1, PP_CMD_PROXY, PP_FAM_INET6, PP_PROTO_STREAM,
	"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", 0},
    {"v1 unknown, short form", S("PROXY UNKNOWN\r\n"), 15, 1, PP_CMD_PROXY,
	PP_FAM_UNSPEC, PP_PROTO_UNSPEC, NULL, NULL, 0},
    {"v1 unknown, worst case (107)",
	S("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	107, 1, PP_CMD_PROXY, PP_FAM_UNSPEC, PP_PROTO_UNSPEC, NULL, NULL, 0},
    {"v1 unknown, any printable text", S("PROXY UNKNOWN  ~!? whatever\r\n\x05"),
	29, 1, PP_CMD_PROXY, PP_FAM_UNSPEC, PP_PROTO_UNSPEC, NULL, NULL, 0},
    {"v2 local (haproxy's health check)", B(SIG, 0x20, 0x00, 0x00, 0x00), 16, 2,
	PP_CMD_LOCAL, PP_FAM_UNSPEC, PP_PROTO_UNSPEC, NULL, NULL, 0},
    {"v2 local, unspec block skipped unread",
	B(SIG, 0x20, 0x00, 0x00, 0x05, 0xff, 0x00, 0xff, 0x00, 0xff, 0x05), 21,
	2, PP_CMD_LOCAL, PP_FAM_UNSPEC, PP_PROTO_UNSPEC, NULL, NULL, 0},
    {"v2 local over tcp4: addresses ignored, tlvs kept",
	B(SIG, 0x20, 0x11, 0x00, 0x0f, ADDR4, 0x04, 0x00, 0x00), 31, 2,
	PP_CMD_LOCAL, PP_FAM_INET, PP_PROTO_STREAM, NULL, NULL, 3},
    {"v2 proxy unspec", B(SIG, 0x21, 0x00, 0x00, 0x00, 0x05), 16, 2,
	PP_CMD_PROXY, PP_FAM_UNSPEC, PP_PROTO_UNSPEC, NULL, NULL, 0},
    {"v2 tcp4", B(SIG, 0x21, 0x11, 0x00, 0x0c, ADDR4), 28, 2, PP_CMD_PROXY,
	PP_FAM_INET, PP_PROTO_STREAM, "10.0.0.1:56324", "192.0.2.10:443", 0},
    {"v2 udp4", B(SIG, 0x21, 0x12, 0x00, 0x0c, ADDR4, 0x05), 28, 2,
	PP_CMD_PROXY, PP_FAM_INET, PP_PROTO_DGRAM, "10.0.0.1:56324",
	"192.0.2.10:443", 0},
    {"v2 tcp6", B(SIG, 0x21, 0x21, 0x00, 0x24, ADDR6), 52, 2, PP_CMD_PROXY,
	PP_FAM_INET6, PP_PROTO_STREAM, "[2001:db8::1]:1", "[2001:db8::2]:65535",
	0},
    {"v2 udp6", B(SIG, 0x21, 0x22, 0x00, 0x24, ADDR6), 52, 2, PP_CMD_PROXY,
	PP_FAM_INET6, PP_PROTO_DGRAM, "[2001:db8::1]:1", "[2001:db8::2]:65535",
	0},
    {"v2 tcp6 with authority, empty noop and unique-id",
	B(SIG, 0x21, 0x21, 0x00, 0x3c, ADDR6, 0x02, 0x00, 0x0b, EXAMPLE_COM,
	    0x04, 0x00, 0x00, 0x05, 0x00, 0x04, 1, 2, 3, 4, 'G', 'E', 'T'),
	76, 2, PP_CMD_PROXY, PP_FAM_INET6, PP_PROTO_STREAM, "[2001:db8::1]:1",
	"[2001:db8::2]:65535", 24},
    {"v2 tcp4 with a 64-byte tlv",
	B(SIG, 0x21, 0x11, 0x00, 0x4f, ADDR4, 0xe0, 0x00, 0x40, X64), 95, 2,
	PP_CMD_PROXY, PP_FAM_INET, PP_PROTO_STREAM, "10.0.0.1:56324",
	"192.0.2.10:443", 67},
    {"v2 unix stream", B(SIG, 0x21, 0x31, 0x00, 0xd8, ADDR_UNIX), 232, 2,
	PP_CMD_PROXY, PP_FAM_UNIX, PP_PROTO_STREAM, NULL, NULL, 0},
    {"v2 unix dgram with a tlv",
	B(SIG, 0x21, 0x32, 0x00, 0xdc, ADDR_UNIX, 0x30, 0x00, 0x01, 'n'), 236,
	2, PP_CMD_PROXY, PP_FAM_UNIX, PP_PROTO_DGRAM, NULL, NULL, 4},
};
/* clang-format on */

Test(proxyproto, every_prefix_of_every_valid_header)
{
	char text[128];
	struct pp_hdr h;
	size_t i;

	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct valid_case *v = &valid[i];

		check_valid(v->b, v->len, v->total, &h, v->name);
		cr_assert_eq(h.version, v->version, "%s", v->name);
		cr_assert_eq(h.cmd, v->cmd, "%s", v->name);
		cr_assert_eq(h.fam, v->fam, "%s", v->name);
		cr_assert_eq(h.proto, v->proto, "%s", v->name);
		cr_assert_eq(h.has_addr, v->src != NULL, "%s", v->name);
		if (v->src != NULL) {
			cr_assert_str_eq(
			    fmt(&h.src, text, sizeof(text)), v->src);
			cr_assert_str_eq(
			    fmt(&h.dst, text, sizeof(text)), v->dst);
			cr_assert_eq(h.addr_len,
			    h.src.ss_family == AF_INET
				? sizeof(struct sockaddr_in)
				: sizeof(struct sockaddr_in6));
			cr_assert_eq(h.src.ss_family, h.dst.ss_family);
		}
		cr_assert_eq(h.tlvs_len, v->tlvs_len, "%s", v->name);
		if (v->tlvs_len > 0)
			cr_assert_eq(h.tlvs + h.tlvs_len, v->b + v->total,
			    "%s: tlvs end the header", v->name);
		else
			cr_assert_null(h.tlvs, "%s", v->name);
	}
}

Test(proxyproto, longest_v2_header)
{
	static const uint8_t zero[PP_HDR_MAX];
	uint8_t b[PP_HDR_MAX + 4], tlv[PP_HDR_MAX];
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(1)};
	struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(2)};
	struct pp_hdr h;
	size_t n, t;

	/* One NOOP filling everything after the addresses. */
	t = pp_write_tlv(
	    tlv, sizeof(tlv), PP_TLV_NOOP, zero, PP_HDR_MAX - 16 - 12 - 3);
	cr_assert_eq(t, PP_HDR_MAX - 28);
	n = pp_write_v2(b, sizeof(b), PP_CMD_PROXY, PP_PROTO_STREAM,
	    (struct sockaddr *)&s, (struct sockaddr *)&d, tlv, t);
	cr_assert_eq(n, PP_HDR_MAX);
	memcpy(b + n, "\x05\x01\x00\x00", 4);
	check_valid(b, sizeof(b), n, &h, "longest");
	cr_assert_eq(h.tlvs_len, t);
	/* One byte more does not fit. */
	cr_assert_eq(
	    pp_write_v2(b, sizeof(b), PP_CMD_PROXY, PP_PROTO_STREAM,
		(struct sockaddr *)&s, (struct sockaddr *)&d, tlv, t + 1),
	    0);
}

struct bad_case {
	const char *name;
	const uint8_t *b;
	size_t len;
	size_t at; /* shortest prefix that is already BAD */
};

/* clang-format off: byte tables read best as the wire lays them out. */
static const struct bad_case bad[] = {
    /* Not a header at all: refused at the first byte. */
    {"socks5 greeting", S("\x05\x01\x00"), 1},
    {"socks4 request", S("\x04\x01\x00\x50\x7f\x00\x00\x01\x00"), 1},
    {"tls client hello", S("\x16\x03\x01\x02\x00\x01"), 1},
    {"http get", S("GET / HTTP/1.1\r\n"), 1},
    {"convert", S("\x01\x06\x22\x63"), 1},
    {"nul", S("\x00"), 1},
    {"lower-case proxy", S("proxy TCP4 "), 1},
    {"bare lf", S("\n"), 1},
    /* v1: the literal and the protocol word */
    {"http post", S("POST / HTTP/1.1\r\n"), 2},
    {"PROXY without space", S("PROXY\r\n"), 6},
    {"PROXY, two spaces", S("PROXY  TCP4 1.2.3.4"), 7},
    {"PROXY, tab", S("PROXY\tTCP4 1.2.3.4"), 6},
    {"tcp4 lower case", S("PROXY tcp4 1.2.3.4"), 7},
    {"TCP5", S("PROXY TCP5 1.2.3.4"), 10},
    {"UDP4", S("PROXY UDP4 1.2.3.4"), 8},
    {"TCP4 without space", S("PROXY TCP4\r\n"), 11},
    {"TCP4, two spaces", S("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), 12},
    {"UNKNOWNX", S("PROXY UNKNOWNX\r\n"), 14},
    {"UNKNOWN, LF only", S("PROXY UNKNOWN\n"), 14},
    {"UNKNOWN, CR CR", S("PROXY UNKNOWN\r\r\n"), 15},
    {"UNKNOWN, control byte", S("PROXY UNKNOWN a\x01\r\n"), 16},
    {"UNKNOWN, LF inside", S("PROXY UNKNOWN a\nb\r\n"), 16},
    {"UNKNOWN, high byte", S("PROXY UNKNOWN \xc3\xa9\r\n"), 15},
    {"UNKNOWN, line of 108",
	S("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
	106},
    /* v1 TCP4 addresses */
    {"ipv4 leading zero", S("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), 13},
    {"ipv4 00", S("PROXY TCP4 1.00.3.4 5.6.7.8 1 2\r\n"), 15},
    {"ipv4 octet 256", S("PROXY TCP4 1.2.256.4 5.6.7.8 1 2\r\n"), 18},
    {"ipv4 octet 1000", S("PROXY TCP4 1.2.3.1000 5.6.7.8 1 2\r\n"), 21},
    {"ipv4 three parts", S("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), 17},
    {"ipv4 five parts", S("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), 19},
    {"ipv4 empty part", S("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n"), 14},
    {"ipv4 leading dot", S("PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n"), 12},
    {"ipv4 trailing dot", S("PROXY TCP4 1.2.3. 5.6.7.8 1 2\r\n"), 18},
    {"ipv4 empty", S("PROXY TCP4  5.6.7.8 1 2\r\n"), 12},
    {"ipv6 under TCP4", S("PROXY TCP4 ::1 ::1 1 2\r\n"), 12},
    {"ipv4 hex", S("PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n"), 13},
    {"ipv4 dst bad", S("PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n"), 27},
    {"ipv4 dst missing", S("PROXY TCP4 1.2.3.4 1 2\r\n"), 21},
    /* v1 TCP6 addresses, judged whole at their space */
    {"ipv4 under TCP6", S("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), 19},
    {"ipv6 triple colon", S("PROXY TCP6 2001:db8:::1 ::1 1 2\r\n"), 24},
    {"ipv6 two double colons", S("PROXY TCP6 1::2::3 ::1 1 2\r\n"), 19},
    {"ipv6 five hex digits", S("PROXY TCP6 12345:: ::1 1 2\r\n"), 19},
    {"ipv6 letter g", S("PROXY TCP6 2001:dg8::1 ::1 1 2\r\n"), 18},
    {"ipv6 zone", S("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), 19},
    {"ipv6 brackets", S("PROXY TCP6 [::1] ::1 1 2\r\n"), 12},
    {"ipv6 empty", S("PROXY TCP6  ::1 1 2\r\n"), 12},
    {"ipv6 nine groups",
	S("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:0 ::1 1 2\r\n"),
	53},
    {"ipv6 text over 45 bytes",
	S("PROXY TCP6 1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa ::1 1 "
	  "2\r\n"),
	57},
    {"ipv6 dst bad", S("PROXY TCP6 ::1 ::1::1 1 2\r\n"), 22},
    /* v1 ports and the end of the line */
    {"port leading zero", S("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"), 29},
    {"port 00", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"), 31},
    {"port 65536", S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), 32},
    {"port 100000", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n"), 35},
    {"port sign", S("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), 28},
    {"sport missing", S("PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n"), 28},
    {"dport missing", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n"), 30},
    {"one port only", S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), 29},
    {"three ports", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), 31},
    {"space before CRLF", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), 31},
    {"LF only", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), 31},
    {"CR only", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), 32},
    {"CR CR LF", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"), 32},
    {"tab before port", S("PROXY TCP4 1.2.3.4 5.6.7.8\t1 2\r\n"), 27},
    /* v2: signature, version and command, family */
    {"sig byte 2", B(0x0d, 0x0d), 2},
    {"sig byte 5 (nul)", B(0x0d, 0x0a, 0x0d, 0x0a, 0x01), 5},
    {"sig byte 12",
	B(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
	    0x0d),
	12},
    {"CRLF then HTTP", S("\r\nGET / HTTP/1.1\r\n"), 3},
    {"version 1", B(SIG, 0x11, 0x11, 0x00, 0x0c, ADDR4), 13},
    {"version 3", B(SIG, 0x31, 0x11, 0x00, 0x0c, ADDR4), 13},
    {"version 0", B(SIG, 0x01, 0x11, 0x00, 0x0c, ADDR4), 13},
    {"command 2", B(SIG, 0x22, 0x11, 0x00, 0x0c, ADDR4), 13},
    {"command 15", B(SIG, 0x2f, 0x11, 0x00, 0x0c, ADDR4), 13},
    {"family 4", B(SIG, 0x21, 0x41, 0x00, 0x0c, ADDR4), 14},
    {"family 15", B(SIG, 0x21, 0xf1, 0x00, 0x0c, ADDR4), 14},
    {"protocol 3", B(SIG, 0x21, 0x13, 0x00, 0x0c, ADDR4), 14},
    {"inet, protocol unspec", B(SIG, 0x21, 0x10, 0x00, 0x0c, ADDR4), 14},
    {"unspec, protocol stream", B(SIG, 0x21, 0x01, 0x00, 0x00), 14},
    {"unix, protocol 15", B(SIG, 0x21, 0x3f, 0x00, 0xd8, ADDR_UNIX), 14},
    {"local, family 4", B(SIG, 0x20, 0x40, 0x00, 0x00), 14},
    /* v2 length */
    {"inet, length 11", B(SIG, 0x21, 0x11, 0x00, 0x0b, ADDR4), 16},
    {"inet, length 0", B(SIG, 0x21, 0x11, 0x00, 0x00, ADDR4), 16},
    {"inet6, length 35", B(SIG, 0x21, 0x21, 0x00, 0x23, ADDR6), 16},
    {"unix, length 215", B(SIG, 0x21, 0x31, 0x00, 0xd7, ADDR_UNIX), 16},
    {"length over the cap", B(SIG, 0x21, 0x00, 0x03, 0xf1), 16},
    {"length 65535", B(SIG, 0x20, 0x00, 0xff, 0xff), 16},
    /* v2 TLVs must tile the rest of the header exactly */
    {"1 byte after the addresses", B(SIG, 0x21, 0x11, 0x00, 0x0d, ADDR4, 0x04),
	16},
    {"2 bytes after the addresses",
	B(SIG, 0x21, 0x11, 0x00, 0x0e, ADDR4, 0x04, 0x00), 16},
    {"tlv overruns the header",
	B(SIG, 0x21, 0x11, 0x00, 0x14, ADDR4, 0x02, 0x00, 0x06, 'a', 'b', 'c',
	    'd', 'e', 'f'),
	31},
    {"tlv length 65535",
	B(SIG, 0x21, 0x21, 0x00, 0x28, ADDR6, 0x04, 0xff, 0xff, 0), 55},
    {"tlvs leave 2 bytes",
	B(SIG, 0x21, 0x11, 0x00, 0x13, ADDR4, 0x04, 0x00, 0x02, 0, 0, 0x04, 0),
	31},
    {"second tlv overruns",
	B(SIG, 0x21, 0x11, 0x00, 0x15, ADDR4, 0x04, 0x00, 0x01, 0, 0x05, 0x00,
	    0x03, 1, 2),
	35},
    {"local over inet: tlvs still checked",
	B(SIG, 0x20, 0x11, 0x00, 0x0f, ADDR4, 0x04, 0x00, 0x01), 31},
    {"unix: tlv overruns",
	B(SIG, 0x21, 0x31, 0x00, 0xdb, ADDR_UNIX, 0x30, 0x00, 0x01), 235},
};
/* clang-format on */

Test(proxyproto, each_malformed_field_is_refused_as_early_as_possible)
{
	size_t i, k, used;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad_case *c = &bad[i];

		cr_assert_leq(c->at, c->len, "%s: vector", c->name);
		cr_assert_geq(c->at, 1, "%s: vector", c->name);
		for (k = 0; k <= c->len; k++) {
			struct pp_hdr h;
			uint8_t *p = copy_prefix(c->b, k);
			enum pp_res r;

			memset(&h, 0xaa, sizeof(h));
			used = 7777;
			r = pp_parse(p, k, &h, &used);
			free(p);
			cr_assert_eq(used, 7777, "%s: used set", c->name);
			cr_assert_eq(h.version, 0xaa, "%s: h set", c->name);
			if (k < c->at)
				cr_assert_eq(r, PP_AGAIN,
				    "%s: prefix %zu gave %d", c->name, k, r);
			else
				cr_assert_eq(r, PP_BAD,
				    "%s: prefix %zu gave %d", c->name, k, r);
		}
	}
}

/* Every single byte of the v2 signature, changed, is refused right there. */
Test(proxyproto, each_signature_byte)
{
	uint8_t b[] = {SIG, 0x21, 0x11, 0x00, 0x0c, ADDR4};
	struct pp_hdr h;
	size_t i, k, used;

	for (i = 1; i < 12; i++) {
		b[i] ^= 0x40;
		for (k = 0; k <= sizeof(b); k++) {
			uint8_t *p = copy_prefix(b, k);

			cr_assert_eq(pp_parse(p, k, &h, &used),
			    k <= i ? PP_AGAIN : PP_BAD, "byte %zu prefix %zu",
			    i, k);
			free(p);
		}
		b[i] ^= 0x40;
	}
}

Test(proxyproto, tlv_find)
{
	const struct valid_case *v = NULL;
	const uint8_t *val;
	struct pp_hdr h;
	size_t i, used, vlen;

	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		if (strncmp(valid[i].name, "v2 tcp6 with", 12) == 0)
			v = &valid[i];
	cr_assert_not_null(v);
	cr_assert_eq(pp_parse(v->b, v->len, &h, &used), PP_OK);
	cr_assert(pp_tlv_find(&h, PP_TLV_AUTHORITY, &val, &vlen));
	cr_assert_eq(vlen, 11);
	cr_assert_eq(memcmp(val, "example.com", 11), 0);
	cr_assert(pp_tlv_find(&h, PP_TLV_NOOP, &val, &vlen));
	cr_assert_eq(vlen, 0);
	cr_assert(pp_tlv_find(&h, PP_TLV_UNIQUE_ID, &val, &vlen));
	cr_assert_eq(vlen, 4);
	cr_assert_eq(memcmp(val, "\x01\x02\x03\x04", 4), 0);
	/* "GET" after the header is the client's, not a TLV. */
	cr_assert_not(pp_tlv_find(&h, 'G', &val, &vlen));
	cr_assert_not(pp_tlv_find(&h, PP_TLV_SSL, &val, &vlen));

	cr_assert_eq(pp_parse(valid[0].b, valid[0].len, &h, &used), PP_OK);
	cr_assert_not(pp_tlv_find(&h, PP_TLV_NOOP, &val, &vlen));
}

/* --- writers --------------------------------------------------------- */

/* Writes v1 for src/dst and checks the exact line, then parses it. */
static void
v1_pins(
    const struct sockaddr *src, const struct sockaddr *dst, const char *want)
{
	uint8_t out[PP_V1_MAX + 8];
	struct pp_hdr h;
	size_t n, k;

	n = pp_write_v1(out, sizeof(out), src, dst);
	cr_assert_eq(n, strlen(want), "%s: got %zu", want, n);
	cr_assert_eq(memcmp(out, want, n), 0, "%s: got %.*s", want, (int)n,
	    (const char *)out);
	check_valid(out, n, n, &h, want);
	for (k = 0; k < n; k++)
		cr_assert_eq(
		    pp_write_v1(out, k, src, dst), 0, "%s cap %zu", want, k);
}

Test(proxyproto, write_v1)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(1)};
	struct sockaddr_in d4 = {.sin_family = AF_INET, .sin_port = htons(2)};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	struct sockaddr_in6 m6 = {.sin6_family = AF_INET6};
	struct sockaddr_in6 big = {.sin6_family = AF_INET6};
	struct sockaddr_un su = {.sun_family = AF_UNIX};
	struct pp_hdr h;
	uint8_t out[PP_V1_MAX + 8];
	char text[64];
	size_t used;

	inet_pton(AF_INET, "192.168.0.1", &s4.sin_addr);
	inet_pton(AF_INET, "192.168.0.11", &d4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
	s6.sin6_port = htons(65535);
	inet_pton(AF_INET6, "::ffff:10.77.0.9", &m6.sin6_addr);
	m6.sin6_port = htons(443);
	memset(&big.sin6_addr, 0xff, 16);

	v1_pins((struct sockaddr *)&s4, (struct sockaddr *)&d4,
	    "PROXY TCP4 192.168.0.1 192.168.0.11 1 2\r\n");
	/* A dual-stack listener's view of an IPv4 peer is written as TCP4. */
	v1_pins((struct sockaddr *)&m6, (struct sockaddr *)&d4,
	    "PROXY TCP4 10.77.0.9 192.168.0.11 443 2\r\n");
	v1_pins((struct sockaddr *)&s6, (struct sockaddr *)&s6,
	    "PROXY TCP6 2001:db8::1 2001:db8::1 65535 65535\r\n");
	/* Mixed families: IPv4 goes v4-mapped. */
	v1_pins((struct sockaddr *)&s4, (struct sockaddr *)&s6,
	    "PROXY TCP6 ::ffff:192.168.0.1 2001:db8::1 1 65535\r\n");
	v1_pins((struct sockaddr *)&big, (struct sockaddr *)&big,
	    "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 0 0\r\n");
	v1_pins(NULL, (struct sockaddr *)&d4, "PROXY UNKNOWN\r\n");
	v1_pins((struct sockaddr *)&s4, NULL, "PROXY UNKNOWN\r\n");
	v1_pins((struct sockaddr *)&su, (struct sockaddr *)&su,
	    "PROXY UNKNOWN\r\n");
	v1_pins((struct sockaddr *)&s4, (struct sockaddr *)&su,
	    "PROXY UNKNOWN\r\n");

	/* The parsed addresses are the ones written. */
	cr_assert_gt(pp_write_v1(out, sizeof(out), (struct sockaddr *)&s4,
			 (struct sockaddr *)&s6),
	    0);
	cr_assert_eq(pp_parse(out, sizeof(out), &h, &used), PP_OK);
	cr_assert_str_eq(
	    fmt(&h.src, text, sizeof(text)), "[::ffff:192.168.0.1]:1");
	cr_assert_str_eq(
	    fmt(&h.dst, text, sizeof(text)), "[2001:db8::1]:65535");
}

/* Writes v2 and checks the parse gives back what was written. */
static size_t
v2_trip(uint8_t cmd, uint8_t proto, const struct sockaddr *src,
    const struct sockaddr *dst, const uint8_t *tlvs, size_t tlvs_len,
    uint8_t want_fam, uint8_t *out, size_t cap, struct pp_hdr *h)
{
	char what[64];
	size_t n, k;

	n = pp_write_v2(out, cap, cmd, proto, src, dst, tlvs, tlvs_len);
	snprintf(what, sizeof(what), "v2 cmd %u fam %u", cmd, want_fam);
	cr_assert_gt(n, 0, "%s", what);
	check_valid(out, n, n, h, what);
	cr_assert_eq(h->version, 2, "%s", what);
	cr_assert_eq(h->cmd, cmd, "%s", what);
	cr_assert_eq(h->fam, want_fam, "%s", what);
	cr_assert_eq(
	    h->proto, want_fam == PP_FAM_UNSPEC ? 0 : proto, "%s", what);
	cr_assert_eq(
	    h->tlvs_len, want_fam == PP_FAM_UNSPEC ? 0 : tlvs_len, "%s", what);
	if (want_fam != PP_FAM_UNSPEC && tlvs_len > 0)
		cr_assert_eq(memcmp(h->tlvs, tlvs, tlvs_len), 0, "%s", what);
	for (k = 0; k < n; k++)
		cr_assert_eq(
		    pp_write_v2(out, k, cmd, proto, src, dst, tlvs, tlvs_len),
		    0, "%s: cap %zu", what, k);
	return n;
}

Test(proxyproto, write_v2_pins_and_round_trips)
{
	/* The "v2 tcp4" and "v2 tcp6 ..." vectors above, from the writer. */
	static const uint8_t tcp4[] = {SIG, 0x21, 0x11, 0x00, 0x0c, ADDR4};
	static const uint8_t local[] = {SIG, 0x20, 0x00, 0x00, 0x00};
	struct sockaddr_in s4 = {
	    .sin_family = AF_INET, .sin_port = htons(56324)};
	struct sockaddr_in d4 = {.sin_family = AF_INET, .sin_port = htons(443)};
	struct sockaddr_in6 s6 = {
	    .sin6_family = AF_INET6, .sin6_port = htons(1)};
	struct sockaddr_in6 d6 = {
	    .sin6_family = AF_INET6, .sin6_port = htons(65535)};
	struct sockaddr_in6 m6 = {.sin6_family = AF_INET6};
	struct sockaddr_un su = {.sun_family = AF_UNIX, .sun_path = "/a"};
	struct sockaddr_un du = {.sun_family = AF_UNIX, .sun_path = "/b"};
	uint8_t out[PP_HDR_MAX], tlvs[64];
	struct pp_hdr h;
	char text[64];
	size_t n, t;

	inet_pton(AF_INET, "10.0.0.1", &s4.sin_addr);
	inet_pton(AF_INET, "192.0.2.10", &d4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
	inet_pton(AF_INET6, "2001:db8::2", &d6.sin6_addr);
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &m6.sin6_addr);
	m6.sin6_port = htons(56324);

	n = v2_trip(PP_CMD_PROXY, PP_PROTO_STREAM, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d4, NULL, 0, PP_FAM_INET, out, sizeof(out), &h);
	cr_assert_eq(n, sizeof(tcp4));
	cr_assert_eq(memcmp(out, tcp4, n), 0);
	/* v4-mapped is written as IPv4: the same bytes. */
	n = v2_trip(PP_CMD_PROXY, PP_PROTO_STREAM, (struct sockaddr *)&m6,
	    (struct sockaddr *)&d4, NULL, 0, PP_FAM_INET, out, sizeof(out), &h);
	cr_assert_eq(memcmp(out, tcp4, n), 0);

	n = v2_trip(PP_CMD_LOCAL, PP_PROTO_STREAM, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d4, NULL, 0, PP_FAM_UNSPEC, out, sizeof(out),
	    &h);
	cr_assert_eq(n, sizeof(local));
	cr_assert_eq(memcmp(out, local, n), 0);
	cr_assert_not(h.has_addr);
	v2_trip(PP_CMD_PROXY, PP_PROTO_STREAM, NULL, (struct sockaddr *)&d4,
	    NULL, 0, PP_FAM_UNSPEC, out, sizeof(out), &h);
	cr_assert_not(h.has_addr);

	t = pp_write_tlv(tlvs, sizeof(tlvs), PP_TLV_AUTHORITY,
	    (const uint8_t *)"example.com", 11);
	cr_assert_eq(t, 14);
	t += pp_write_tlv(tlvs + t, sizeof(tlvs) - t, PP_TLV_NOOP, NULL, 0);
	cr_assert_eq(t, 17);
	v2_trip(PP_CMD_PROXY, PP_PROTO_DGRAM, (struct sockaddr *)&s6,
	    (struct sockaddr *)&d6, tlvs, t, PP_FAM_INET6, out, sizeof(out),
	    &h);
	cr_assert(h.has_addr);
	cr_assert_str_eq(fmt(&h.src, text, sizeof(text)), "[2001:db8::1]:1");
	cr_assert_str_eq(
	    fmt(&h.dst, text, sizeof(text)), "[2001:db8::2]:65535");
	/* Mixed families: both IPv6, the IPv4 one mapped. */
	v2_trip(PP_CMD_PROXY, PP_PROTO_STREAM, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d6, NULL, 0, PP_FAM_INET6, out, sizeof(out),
	    &h);
	cr_assert_str_eq(
	    fmt(&h.src, text, sizeof(text)), "[::ffff:10.0.0.1]:56324");
	/* AF_UNIX: paths written, not reported. */
	n = v2_trip(PP_CMD_PROXY, PP_PROTO_STREAM, (struct sockaddr *)&su,
	    (struct sockaddr *)&du, tlvs, t, PP_FAM_UNIX, out, sizeof(out), &h);
	cr_assert_eq(n, 16 + 216 + t);
	cr_assert_eq(memcmp(out + 16, "/a", 3), 0);
	cr_assert_eq(memcmp(out + 16 + 108, "/b", 3), 0);
	cr_assert_not(h.has_addr);
	/* Unix with IP: no common family, so UNSPEC. */
	v2_trip(PP_CMD_PROXY, PP_PROTO_STREAM, (struct sockaddr *)&su,
	    (struct sockaddr *)&d4, NULL, 0, PP_FAM_UNSPEC, out, sizeof(out),
	    &h);
}

Test(proxyproto, writers_refuse)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	uint8_t out[PP_HDR_MAX + 16], big[PP_HDR_MAX + 16];

	memset(big, 0, sizeof(big));
	cr_assert_eq(
	    pp_write_v2(out, sizeof(out), 2, PP_PROTO_STREAM,
		(struct sockaddr *)&s4, (struct sockaddr *)&s4, NULL, 0),
	    0);
	cr_assert_eq(
	    pp_write_v2(out, sizeof(out), PP_CMD_PROXY, 0,
		(struct sockaddr *)&s4, (struct sockaddr *)&s4, NULL, 0),
	    0);
	cr_assert_eq(
	    pp_write_v2(out, sizeof(out), PP_CMD_PROXY, 3,
		(struct sockaddr *)&s4, (struct sockaddr *)&s4, NULL, 0),
	    0);
	cr_assert_eq(pp_write_v2(out, sizeof(out), PP_CMD_LOCAL,
			 PP_PROTO_STREAM, NULL, NULL, big, PP_HDR_MAX - 15),
	    0);
	cr_assert_eq(pp_write_v2(out, sizeof(out), PP_CMD_LOCAL,
			 PP_PROTO_STREAM, NULL, NULL, big, PP_HDR_MAX - 16),
	    PP_HDR_MAX);
	cr_assert_eq(pp_write_v2(out, sizeof(out), PP_CMD_LOCAL,
			 PP_PROTO_STREAM, NULL, NULL, NULL, 3),
	    0);
	cr_assert_eq(pp_write_tlv(out, 2, PP_TLV_NOOP, NULL, 0), 0);
	cr_assert_eq(pp_write_tlv(out, 3, PP_TLV_NOOP, NULL, 0), 3);
	cr_assert_eq(pp_write_tlv(out, 13, PP_TLV_NOOP, big, 11), 0);
	cr_assert_eq(pp_write_tlv(out, 14, PP_TLV_NOOP, big, 11), 14);
	cr_assert_eq(pp_write_tlv(big, sizeof(big), 1, big, 65536), 0);
}
