/*
 * gateway/srclimit: per-source session counts up to max and back, IPv6
 * /64 and IPv4-mapped grouping, max 0 and non-IP sources uncounted, a full
 * table that refuses new sources but never forgets a live count, and
 * threads taking and giving back slots. Criterion runs each test in its
 * own process, so each starts with an empty table.
 */
#include "gateway/srclimit.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

/* Numeric address text (IPv4 or IPv6) to a sockaddr. */
static struct sockaddr_storage
addr(const char *s)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(40000);
	} else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(40001);
	} else
		cr_assert_fail("bad address %s in test", s);
	return ss;
}

/* The IPv4 source number i, 10.0.0.0 + i. */
static struct sockaddr_storage
nth(uint32_t i)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x0a000000u + i);
	return ss;
}

static bool
acq(const char *s, unsigned max)
{
	struct sockaddr_storage ss = addr(s);

	return srclimit_acquire((struct sockaddr *)&ss, max);
}

static void
rel(const char *s)
{
	struct sockaddr_storage ss = addr(s);

	srclimit_release((struct sockaddr *)&ss);
}

TestSuite(srclimit, .timeout = 30);

Test(srclimit, up_to_max_then_refused)
{
	for (int i = 0; i < 3; i++)
		cr_expect(acq("192.0.2.1", 3), "slot %d", i + 1);
	cr_expect(!acq("192.0.2.1", 3));
	cr_expect(acq("192.0.2.2", 3), "another source has its own count");
	rel("192.0.2.1");
	cr_expect(acq("192.0.2.1", 3));
	cr_expect(!acq("192.0.2.1", 3));
	cr_expect_eq(srclimit_sources(), 2);
}

Test(srclimit, released_source_is_forgotten)
{
	cr_expect(acq("192.0.2.1", 2));
	cr_expect(acq("192.0.2.1", 2));
	rel("192.0.2.1");
	rel("192.0.2.1");
	cr_expect_eq(srclimit_sources(), 0);
	/* A release too many, or of a source never seen, is harmless. */
	rel("192.0.2.1");
	rel("198.51.100.7");
	cr_expect_eq(srclimit_sources(), 0);
	cr_expect(acq("192.0.2.1", 1));
	cr_expect(!acq("192.0.2.1", 1));
}

Test(srclimit, ipv6_grouped_by_64)
{
	cr_expect(acq("2001:db8:1:2::1", 2));
	cr_expect(acq("2001:db8:1:2:ffff::9", 2));
	cr_expect(!acq("2001:db8:1:2::3", 2));
	cr_expect(acq("2001:db8:1:3::1", 2));
	rel("2001:db8:1:2::77");
	cr_expect(acq("2001:db8:1:2::3", 2));
}

Test(srclimit, mapped_is_ipv4)
{
	cr_expect(acq("::ffff:192.0.2.1", 2));
	cr_expect(acq("192.0.2.1", 2));
	cr_expect(!acq("::ffff:192.0.2.1", 2));
	cr_expect_eq(srclimit_sources(), 1);
}

Test(srclimit, zero_max_and_non_ip_are_not_counted)
{
	struct sockaddr_un sun;

	for (int i = 0; i < 100; i++)
		cr_expect(acq("192.0.2.1", 0));
	cr_expect_eq(srclimit_sources(), 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	for (int i = 0; i < 5; i++)
		cr_expect(srclimit_acquire((struct sockaddr *)&sun, 1));
	srclimit_release((struct sockaddr *)&sun);
	cr_expect_eq(srclimit_sources(), 0);
}

Test(srclimit, full_table_refuses_and_never_evicts)
{
	struct sockaddr_storage s;

	for (uint32_t i = 0; i < SRCLIMIT_SOURCES; i++) {
		s = nth(i);
		cr_assert(srclimit_acquire((struct sockaddr *)&s, 2), "%u", i);
	}
	cr_assert_eq(srclimit_sources(), SRCLIMIT_SOURCES);
	s = nth(SRCLIMIT_SOURCES);
	cr_expect(!srclimit_acquire((struct sockaddr *)&s, 2),
	    "a new source when every slot is live");
	/* Every count is still there: one more each, then refused. */
	for (uint32_t i = 0; i < SRCLIMIT_SOURCES; i++) {
		s = nth(i);
		cr_assert(srclimit_acquire((struct sockaddr *)&s, 2), "%u", i);
		cr_assert(!srclimit_acquire((struct sockaddr *)&s, 2), "%u", i);
	}
	/* A source that closes all its sessions makes room. */
	s = nth(17);
	srclimit_release((struct sockaddr *)&s);
	srclimit_release((struct sockaddr *)&s);
	s = nth(SRCLIMIT_SOURCES);
	cr_expect(srclimit_acquire((struct sockaddr *)&s, 2));
	cr_expect_eq(srclimit_sources(), SRCLIMIT_SOURCES);
}

/* Each thread takes and gives back slots of shared and own sources. */
static void *
hammer(void *arg)
{
	uint32_t base = 1000 + (uint32_t)(uintptr_t)arg * 1000u;
	struct sockaddr_storage s;

	for (uint32_t i = 0; i < 20000; i++) {
		s = nth(i % 2 == 0 ? i % 50 : base + i % 300);
		if (srclimit_acquire((struct sockaddr *)&s, 1000000))
			srclimit_release((struct sockaddr *)&s);
	}
	return NULL;
}

Test(srclimit, threads)
{
	pthread_t th[8];

	for (uintptr_t i = 0; i < 8; i++)
		cr_assert_eq(
		    pthread_create(&th[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	cr_expect_eq(srclimit_sources(), 0, "every slot given back");
}
