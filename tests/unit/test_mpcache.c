/* gateway/mpcache.c: the MPTCP capability cache. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "gateway/mpcache.h"

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
		cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

Test(mpcache, remembers_until_the_ttl)
{
	struct sockaddr_storage a = sa_of("192.0.2.1", 443);

	cr_assert_not(mpcache_no_mptcp(SA(a), 100));
	mpcache_note(SA(a), false, 100, 600);
	cr_assert(mpcache_no_mptcp(SA(a), 100));
	cr_assert(mpcache_no_mptcp(SA(a), 699.9));
	/* Expired: probe again, and the entry is gone. */
	cr_assert_not(mpcache_no_mptcp(SA(a), 700));
	cr_assert_eq(mpcache_count(), 0);
}

Test(mpcache, keyed_by_address_and_port)
{
	struct sockaddr_storage a = sa_of("192.0.2.1", 443),
	    b = sa_of("192.0.2.1", 80), m = sa_of("::ffff:192.0.2.1", 443),
	    v6 = sa_of("2001:db8::1", 443);

	mpcache_note(SA(a), false, 0, 600);
	cr_assert_not(mpcache_no_mptcp(SA(b), 1));
	cr_assert(mpcache_no_mptcp(SA(m), 1), "v4-mapped is the same host");
	cr_assert_not(mpcache_no_mptcp(SA(v6), 1));
}

Test(mpcache, mptcp_again_forgets)
{
	struct sockaddr_storage a = sa_of("2001:db8::7", 8443);

	mpcache_note(SA(a), false, 0, 600);
	cr_assert(mpcache_no_mptcp(SA(a), 1));
	mpcache_note(SA(a), true, 2, 600);
	cr_assert_not(mpcache_no_mptcp(SA(a), 3));
}

Test(mpcache, ttl_zero_is_off)
{
	struct sockaddr_storage a = sa_of("198.51.100.9", 25);

	mpcache_note(SA(a), false, 0, 0);
	cr_assert_not(mpcache_no_mptcp(SA(a), 1));
}

Test(mpcache, bounded)
{
	/* Far more destinations than it holds: the oldest go, nothing grows. */
	for (unsigned i = 0; i < 4 * MPCACHE_CAPACITY; i++) {
		struct sockaddr_storage a = sa_of("10.0.0.0", 1);

		((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(0x0a000000u +
		    i);
		mpcache_note(SA(a), false, i, 600);
	}
	cr_assert_leq(mpcache_count(), MPCACHE_CAPACITY);
	cr_assert_geq(mpcache_count(), MPCACHE_CAPACITY * 9 / 10);
}
