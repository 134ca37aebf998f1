/* lib/addr: v4-mapped unmapping, loopback, formatting, source keys. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/addr.h"

static struct sockaddr_storage
sa_of(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else {
		cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1, "%s",
		    ip);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

Test(addr, unmap)
{
	struct sockaddr_storage in = sa_of("::ffff:10.1.2.3", 80), out;
	const struct sockaddr *u = addr_unmap(SA(in), &out);
	const struct sockaddr_in *sin = (const void *)u;

	cr_assert_eq(u->sa_family, AF_INET);
	cr_assert_eq(ntohs(sin->sin_port), 80);
	cr_assert_eq(ntohl(sin->sin_addr.s_addr), 0x0a010203);
	cr_assert_eq(addr_len(u), sizeof(struct sockaddr_in));

	in = sa_of("2001:db8::1", 443);
	u = addr_unmap(SA(in), &out);
	cr_assert_eq(u->sa_family, AF_INET6);
	cr_assert_eq(memcmp(u, &in, sizeof(struct sockaddr_in6)), 0);

	in.ss_family = AF_UNIX;
	cr_assert_null(addr_unmap(SA(in), &out));
	cr_assert_null(addr_unmap(NULL, &out));
}

Test(addr, loopback)
{
	static const char *const yes[] = { "127.0.0.1", "127.255.0.9", "::1",
	    "::ffff:127.0.0.1" };
	static const char *const no[] = { "128.0.0.1", "10.0.0.1", "::2",
	    "::ffff:10.0.0.1", "::", "0.0.0.0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		struct sockaddr_storage ss = sa_of(yes[i], 1);
		cr_assert(addr_is_loopback(SA(ss)), "%s", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		struct sockaddr_storage ss = sa_of(no[i], 1);
		cr_assert_not(addr_is_loopback(SA(ss)), "%s", no[i]);
	}
}

Test(addr, format)
{
	struct sockaddr_storage a = sa_of("::ffff:192.0.2.7", 1080),
	    b = sa_of("2001:db8::1", 65535);
	char buf[ADDR_STR_MAX], tiny[5];

	cr_assert_str_eq(addr_format(SA(a), buf, sizeof(buf)),
	    "192.0.2.7:1080");
	cr_assert_str_eq(addr_format(SA(b), buf, sizeof(buf)),
	    "[2001:db8::1]:65535");
	cr_assert_str_eq(addr_format(SA(b), tiny, sizeof(tiny)), "[200");
	a.ss_family = AF_UNIX;
	cr_assert_str_eq(addr_format(SA(a), buf, sizeof(buf)), "?");
}

Test(addr, source_key)
{
	struct sockaddr_storage v4 = sa_of("192.0.2.7", 1),
	    mapped = sa_of("::ffff:192.0.2.7", 2),
	    a6 = sa_of("2001:db8:0:1::1", 3), b6 = sa_of("2001:db8:0:1::ff", 4),
	    c6 = sa_of("2001:db8:0:2::1", 5);
	uint8_t k1[ADDR_KEY_LEN], k2[ADDR_KEY_LEN];

	cr_assert(addr_source_key(SA(v4), k1));
	cr_assert(addr_source_key(SA(mapped), k2));
	cr_assert_eq(memcmp(k1, k2, ADDR_KEY_LEN), 0, "v4 and v4-mapped");
	cr_assert(addr_source_key(SA(a6), k1));
	cr_assert(addr_source_key(SA(b6), k2));
	cr_assert_eq(memcmp(k1, k2, ADDR_KEY_LEN), 0, "one /64");
	cr_assert(addr_source_key(SA(c6), k2));
	cr_assert_neq(memcmp(k1, k2, ADDR_KEY_LEN), 0, "another /64");
	v4.ss_family = AF_UNIX;
	cr_assert_not(addr_source_key(SA(v4), k1));
}
