/*
 * Failed-login throttling: the growing delay and its cap, blocking after the
 * limit and unblocking after fail_block, forgetting after a quiet spell, a
 * success forgiving only that user's failures and never a block,
 * independence of sources, IPv6 /64 and IPv4-mapped grouping, the counters,
 * and eviction of the oldest entry when a table is full. Time is passed in,
 * so nothing sleeps. Criterion runs each test in its own process, so each
 * starts with empty tables.
 */
#include "auth/throttle.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#define LIMIT 5
#define DMAX 4
#define BLOCK 60

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

/* auth_throttle_fail() for address text s and user with the given limits. */
static double
failu(const char *s, const char *user, unsigned limit, unsigned dmax,
    unsigned block, double now)
{
	struct sockaddr_storage ss = addr(s);

	return auth_throttle_fail(
	    (struct sockaddr *)&ss, user, limit, dmax, block, now);
}

/* A failure as user "mallory". */
static double
fail(const char *s, unsigned limit, unsigned dmax, unsigned block, double now)
{
	return failu(s, "mallory", limit, dmax, block, now);
}

/* auth_throttle_blocked() for address text s. */
static bool
blocked(const char *s, double now)
{
	struct sockaddr_storage ss = addr(s);

	return auth_throttle_blocked((struct sockaddr *)&ss, now);
}

/* auth_throttle_success() for address text s and user. */
static void
success(const char *s, const char *user, double now)
{
	struct sockaddr_storage ss = addr(s);

	auth_throttle_success((struct sockaddr *)&ss, user, now);
}

/* Number of (source, user) pairs held. */
static unsigned
pairs(void)
{
	struct auth_throttle_stats st;

	auth_throttle_stats(&st);
	return st.pairs;
}

/* Number of sources held. */
static unsigned
tracked(void)
{
	struct auth_throttle_stats st;

	auth_throttle_stats(&st);
	return st.tracked;
}

TestSuite(throttle, .timeout = 30);

Test(throttle, delay_grows_to_cap)
{
	static const double want[] = {0, 0.25, 0.5, 1, 2, 4, 4, 4, 4};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect_eq(fail("192.0.2.1", 0, 4, BLOCK, 10.0 + (double)i),
		    want[i], "failure %zu", i + 1);
}

Test(throttle, delay_cap_between_steps)
{
	static const double want[] = {0, 0.25, 0.5, 1, 2, 3, 3};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect_eq(fail("192.0.2.1", 0, 3, BLOCK, 10.0 + (double)i),
		    want[i], "failure %zu", i + 1);
}

Test(throttle, no_delay_when_max_is_zero)
{
	for (int i = 0; i < 20; i++)
		cr_expect_eq(fail("192.0.2.1", 0, 0, BLOCK, 10.0), 0);
}

Test(throttle, delay_stays_capped_after_many_failures)
{
	double d = 0;

	for (int i = 0; i < 5000; i++)
		d = fail("192.0.2.1", 0, 60, BLOCK, 10.0);
	cr_expect_eq(d, 60);
}

Test(throttle, blocked_after_limit)
{
	for (int i = 1; i < LIMIT; i++) {
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
		cr_expect(!blocked("192.0.2.1", 100.0), "after %d failures", i);
	}
	fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect(blocked("192.0.2.1", 100.0));
	cr_expect(blocked("192.0.2.1", 100.0 + BLOCK - 0.01));
}

Test(throttle, unblocked_after_fail_block)
{
	for (int i = 0; i < LIMIT; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_assert(blocked("192.0.2.1", 100.0));
	cr_expect(!blocked("192.0.2.1", 100.0 + BLOCK));
	/* And the slate is clean: no delay, a full limit again. */
	cr_expect_eq(fail("192.0.2.1", LIMIT, DMAX, BLOCK, 200.0), 0);
	for (int i = 2; i < LIMIT; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 200.0);
	cr_expect(!blocked("192.0.2.1", 200.0));
	cr_expect_eq(tracked(), 1);
}

Test(throttle, unblocked_by_a_failure_after_fail_block)
{
	for (int i = 0; i < LIMIT; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	/* No blocked() call in between: the next failure starts afresh. */
	cr_expect_eq(fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0 + BLOCK), 0);
	cr_expect(!blocked("192.0.2.1", 100.0 + BLOCK));
}

Test(throttle, limit_zero_never_blocks)
{
	for (int i = 0; i < 100; i++)
		fail("192.0.2.1", 0, DMAX, BLOCK, 100.0);
	cr_expect(!blocked("192.0.2.1", 100.0));
}

Test(throttle, block_zero_never_blocks)
{
	double d = 0;

	for (int i = 0; i < 10; i++)
		d = fail("192.0.2.1", 2, DMAX, 0, 100.0);
	cr_expect(!blocked("192.0.2.1", 100.0));
	/* The delay keeps growing instead. */
	cr_expect_eq(d, DMAX);
}

Test(throttle, forgotten_after_quiet_spell)
{
	for (int i = 0; i < LIMIT - 1; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect_eq(
	    fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0 + AUTH_THROTTLE_FORGET),
	    0);
	cr_expect(!blocked("192.0.2.1", 100.0 + AUTH_THROTTLE_FORGET));
}

Test(throttle, remembered_within_quiet_spell)
{
	for (int i = 0; i < LIMIT - 1; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect_eq(fail("192.0.2.1", LIMIT, DMAX, BLOCK,
			 100.0 + AUTH_THROTTLE_FORGET - 1),
	    2);
	cr_expect(blocked("192.0.2.1", 100.0 + AUTH_THROTTLE_FORGET - 1));
}

Test(throttle, success_forgives_own_failures)
{
	for (int i = 0; i < LIMIT - 1; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect_eq(pairs(), 1);
	success("192.0.2.1", "mallory", 100.5);
	cr_expect_eq(tracked(), 0);
	cr_expect_eq(pairs(), 0);
	cr_expect_eq(fail("192.0.2.1", LIMIT, DMAX, BLOCK, 101.0), 0);
	for (int i = 2; i < LIMIT; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 101.0);
	cr_expect(!blocked("192.0.2.1", 101.0));
	/* A success from a source never seen is harmless. */
	success("198.51.100.1", "mallory", 101.0);
	cr_expect_eq(tracked(), 1);
}

Test(throttle, success_forgives_only_that_user)
{
	failu("192.0.2.1", "bob", LIMIT, DMAX, BLOCK, 100.0);
	failu("192.0.2.1", "bob", LIMIT, DMAX, BLOCK, 100.0);
	failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	success("192.0.2.1", "alice", 100.0);
	/* Bob's two remain: the next failure is the third in a row. */
	cr_expect_eq(failu("192.0.2.1", "carol", LIMIT, DMAX, BLOCK, 100.0),
	    0.5);
	cr_expect_eq(tracked(), 1);
	cr_expect_eq(pairs(), 2, "bob and carol");
}

Test(throttle, another_users_success_does_not_reset)
{
	/*
	 * Issue 8 defect 2: wrong guesses for one user, a valid login as
	 * another, repeat. The block comes after LIMIT guesses all the same.
	 */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < LIMIT - 1; i++) {
			if (blocked("192.0.2.1", 100.0))
				break;
			failu("192.0.2.1", "victim", LIMIT, DMAX, BLOCK, 100.0);
		}
		success("192.0.2.1", "attacker", 100.0);
	}
	cr_expect(blocked("192.0.2.1", 100.0));
}

Test(throttle, success_by_user_who_never_failed_changes_nothing)
{
	fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	success("192.0.2.1", "alice", 100.0);
	success("192.0.2.1", NULL, 100.0);
	cr_expect_eq(fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0), 0.5);
}

Test(throttle, success_never_lifts_a_block)
{
	for (int i = 0; i < LIMIT; i++)
		failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	cr_assert(blocked("192.0.2.1", 100.0));
	success("192.0.2.1", "alice", 101.0);
	cr_expect(blocked("192.0.2.1", 101.0));
	cr_expect(blocked("192.0.2.1", 100.0 + BLOCK - 0.01));
	cr_expect(!blocked("192.0.2.1", 100.0 + BLOCK));
}

Test(throttle, forgiveness_does_not_outlive_the_source)
{
	/* Alice's failures end in a block... */
	for (int i = 0; i < LIMIT; i++)
		failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	cr_assert(blocked("192.0.2.1", 100.0));
	/* ...which runs out; the source starts afresh with bob. */
	for (int i = 0; i < LIMIT - 1; i++)
		failu("192.0.2.1", "bob", LIMIT, DMAX, BLOCK, 100.0 + BLOCK);
	/* Alice's old failures were paid for: they forgive nothing now. */
	success("192.0.2.1", "alice", 100.0 + BLOCK);
	failu("192.0.2.1", "bob", LIMIT, DMAX, BLOCK, 100.0 + BLOCK);
	cr_expect(blocked("192.0.2.1", 100.0 + BLOCK));
}

Test(throttle, success_elsewhere_forgives_nothing_here)
{
	for (int i = 0; i < LIMIT - 1; i++)
		failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	success("192.0.2.2", "alice", 100.0);
	success("2001:db8::1", "alice", 100.0);
	failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect(blocked("192.0.2.1", 100.0));
}

Test(throttle, user_names_compared_exactly)
{
	for (int i = 0; i < LIMIT - 1; i++)
		failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	success("192.0.2.1", "Alice", 100.0);
	success("192.0.2.1", "alice ", 100.0);
	success("192.0.2.1", "alic", 100.0);
	success("192.0.2.1", "", 100.0);
	cr_expect_eq(tracked(), 1);
	success("192.0.2.1", "alice", 100.0);
	cr_expect_eq(tracked(), 0);
}

Test(throttle, user_failures_forgotten_after_quiet_spell)
{
	failu("192.0.2.1", "alice", LIMIT, DMAX, BLOCK, 100.0);
	failu("192.0.2.1", "bob", LIMIT, DMAX, BLOCK,
	    100.0 + AUTH_THROTTLE_FORGET - 1);
	/* Alice's failure is too old to forgive; bob's still counts. */
	success("192.0.2.1", "alice", 100.0 + AUTH_THROTTLE_FORGET);
	cr_expect_eq(failu("192.0.2.1", "bob", LIMIT, DMAX, BLOCK,
			 100.0 + AUTH_THROTTLE_FORGET),
	    0.5);
}

Test(throttle, null_user_counts_the_source_only)
{
	for (int i = 0; i < LIMIT; i++)
		failu("192.0.2.1", NULL, LIMIT, DMAX, BLOCK, 100.0);
	cr_expect(blocked("192.0.2.1", 100.0));
	cr_expect_eq(pairs(), 0);
}

Test(throttle, pairs_bounded_when_names_are_sprayed)
{
	char name[32];

	/* No limit: one source tries many names. */
	for (int i = 0; i < 3 * AUTH_THROTTLE_SLOTS; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		failu("192.0.2.1", name, 0, DMAX, BLOCK, 100.0 + i * 0.001);
		cr_assert_leq(pairs(), AUTH_THROTTLE_SLOTS);
	}
	cr_expect_eq(pairs(), AUTH_THROTTLE_SLOTS);
	cr_expect_eq(tracked(), 1);
	/* The newest names are kept, the oldest evicted. */
	snprintf(name, sizeof(name), "user%d", 3 * AUTH_THROTTLE_SLOTS - 1);
	success("192.0.2.1", name, 200.0);
	cr_expect_eq(pairs(), AUTH_THROTTLE_SLOTS - 1);
	success("192.0.2.1", "user0", 200.0);
	cr_expect_eq(pairs(), AUTH_THROTTLE_SLOTS - 1);
}

Test(throttle, other_address_unaffected)
{
	for (int i = 0; i < LIMIT; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_assert(blocked("192.0.2.1", 100.0));
	cr_expect(!blocked("192.0.2.2", 100.0));
	cr_expect(!blocked("2001:db8::1", 100.0));
	cr_expect_eq(fail("192.0.2.2", LIMIT, DMAX, BLOCK, 100.0), 0);
	cr_expect(blocked("192.0.2.1", 100.0));
}

Test(throttle, ipv6_grouped_by_64)
{
	fail("2001:db8:1:2::1", LIMIT, DMAX, BLOCK, 100.0);
	fail("2001:db8:1:2:aaaa:bbbb:cccc:dddd", LIMIT, DMAX, BLOCK, 100.0);
	fail("2001:db8:1:2::ffff", LIMIT, DMAX, BLOCK, 100.0);
	fail("2001:db8:1:2::1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect_eq(fail("2001:db8:1:2::99", LIMIT, DMAX, BLOCK, 100.0), 2);
	cr_expect(blocked("2001:db8:1:2::1234", 100.0));
	cr_expect(!blocked("2001:db8:1:3::1", 100.0));
	cr_expect(!blocked("2001:db8:1::1", 100.0));
	cr_expect_eq(tracked(), 1);
	/* A success anywhere in the /64 is one at that source. */
	cr_expect_eq(pairs(), 1);
	success("2001:db8:1:2::5", "mallory", 100.0);
	cr_expect_eq(pairs(), 0);
	cr_expect(blocked("2001:db8:1:2::1", 100.0), "a block stands");
}

Test(throttle, ipv4_not_grouped)
{
	for (int i = 0; i < LIMIT; i++)
		fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect(!blocked("192.0.2.0", 100.0));
	cr_expect(!blocked("192.0.3.1", 100.0));
}

Test(throttle, mapped_is_ipv4)
{
	fail("::ffff:192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect_eq(fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0), 0.25);
	for (int i = 2; i < LIMIT; i++)
		fail("::ffff:192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	cr_expect(blocked("192.0.2.1", 100.0));
	cr_expect(blocked("::ffff:192.0.2.1", 100.0));
	/* The /64 of the mapped range is not one source. */
	cr_expect(!blocked("::ffff:192.0.2.2", 100.0));
	cr_expect_eq(tracked(), 1);
}

Test(throttle, unknown_family_never_throttled)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	for (int i = 0; i < 10; i++)
		cr_expect_eq(auth_throttle_fail((struct sockaddr *)&sun, "u", 1,
				 DMAX, BLOCK, 100.0),
		    0);
	cr_expect(!auth_throttle_blocked((struct sockaddr *)&sun, 100.0));
	cr_expect_eq(tracked(), 0);
}

Test(throttle, stats)
{
	struct auth_throttle_stats st;

	auth_throttle_stats(&st);
	cr_expect_eq(st.failures, 0);
	cr_expect_eq(st.refusals, 0);
	cr_expect_eq(st.tracked, 0);
	fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	fail("192.0.2.1", LIMIT, DMAX, BLOCK, 100.0);
	fail("2001:db8::1", LIMIT, DMAX, BLOCK, 100.0);
	auth_throttle_count_refusal();
	auth_throttle_count_refusal();
	auth_throttle_count_refusal();
	auth_throttle_stats(&st);
	cr_expect_eq(st.failures, 3);
	cr_expect_eq(st.refusals, 3);
	cr_expect_eq(st.tracked, 2);
	cr_expect_eq(st.pairs, 2);
	success("192.0.2.1", "mallory", 100.0);
	auth_throttle_stats(&st);
	cr_expect_eq(st.failures, 3, "a success does not undo the count");
	cr_expect_eq(st.tracked, 1);
	cr_expect_eq(st.pairs, 1);
}

Test(throttle, full_table_evicts_oldest)
{
	struct sockaddr_storage s;
	double now = 1000.0;

	/* Source 0 is blocked first, then every slot is filled. */
	s = nth(0);
	auth_throttle_fail((struct sockaddr *)&s, "u", 2, DMAX, 3600, now);
	auth_throttle_fail((struct sockaddr *)&s, "u", 2, DMAX, 3600, now);
	for (uint32_t i = 1; i < AUTH_THROTTLE_SLOTS; i++) {
		s = nth(i);
		auth_throttle_fail(
		    (struct sockaddr *)&s, "u", 2, DMAX, 3600, now += 0.001);
	}
	cr_assert_eq(tracked(), AUTH_THROTTLE_SLOTS);
	/* Source 0 fails again, so source 1 is now the oldest. */
	s = nth(0);
	auth_throttle_fail(
	    (struct sockaddr *)&s, "u", 2, DMAX, 3600, now += 0.001);

	s = nth(AUTH_THROTTLE_SLOTS);
	auth_throttle_fail(
	    (struct sockaddr *)&s, "u", 2, DMAX, 3600, now += 0.001);
	cr_expect_eq(tracked(), AUTH_THROTTLE_SLOTS);
	s = nth(0);
	cr_expect(auth_throttle_blocked((struct sockaddr *)&s, now));
	/* Source 1 was forgotten: its failure is a first one again. */
	s = nth(1);
	cr_expect_eq(auth_throttle_fail(
			 (struct sockaddr *)&s, "u", 0, DMAX, 3600, now),
	    0);
	/* Source 3 was not (source 2 made room for source 1). */
	s = nth(3);
	cr_expect_eq(auth_throttle_fail(
			 (struct sockaddr *)&s, "u", 0, DMAX, 3600, now),
	    0.25);
}

Test(throttle, spray_keeps_table_bounded)
{
	struct sockaddr_storage s;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s;
	double now = 1000.0;

	fail("192.0.2.1", 1, DMAX, 3600, now);
	cr_assert(blocked("192.0.2.1", now));
	/* Spray /64s: each is a new source. */
	s = addr("2001:db8::1");
	for (uint32_t i = 0; i < 3 * AUTH_THROTTLE_SLOTS; i++) {
		memcpy(&sin6->sin6_addr.s6_addr[4], &i, sizeof(i));
		auth_throttle_fail((struct sockaddr *)&s, "u", 1, DMAX, 3600, now);
		cr_assert_leq(tracked(), AUTH_THROTTLE_SLOTS);
	}
	cr_expect_eq(tracked(), AUTH_THROTTLE_SLOTS);
	cr_expect(!blocked("192.0.2.1", now), "the oldest was evicted");
	cr_expect(auth_throttle_blocked((struct sockaddr *)&s, now),
	    "the newest was kept");
}

Test(throttle, expired_slots_are_reused)
{
	struct sockaddr_storage s;

	for (uint32_t i = 0; i < 100; i++) {
		s = nth(i);
		auth_throttle_fail((struct sockaddr *)&s, "u", 1, DMAX, 10, 0.0);
	}
	cr_expect_eq(tracked(), 100);
	for (uint32_t i = 0; i < 100; i++) {
		s = nth(i);
		cr_expect(!auth_throttle_blocked((struct sockaddr *)&s, 10.0));
	}
	cr_expect_eq(tracked(), 0);
	for (uint32_t i = 100; i < 150; i++) {
		s = nth(i);
		auth_throttle_fail((struct sockaddr *)&s, "u", 1, DMAX, 10, 20.0);
	}
	cr_expect_eq(tracked(), 50);
}

/* Each thread fails from its own sources and checks them. */
static void *
hammer(void *arg)
{
	uint32_t base = (uint32_t)(uintptr_t)arg * 100000u;
	struct sockaddr_storage s;

	for (uint32_t i = 0; i < 5000; i++) {
		s = nth(base + i % 700);
		auth_throttle_fail((struct sockaddr *)&s, "u", 3, DMAX, 60, 1.0);
		(void)auth_throttle_blocked((struct sockaddr *)&s, 1.0);
		if (i % 7 == 0)
			auth_throttle_success((struct sockaddr *)&s, "u", 1.0);
		if (i % 11 == 0)
			auth_throttle_count_refusal();
	}
	return NULL;
}

Test(throttle, threads)
{
	struct auth_throttle_stats st;
	pthread_t th[8];

	for (uintptr_t i = 0; i < 8; i++)
		cr_assert_eq(
		    pthread_create(&th[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	auth_throttle_stats(&st);
	cr_expect_eq(st.failures, 8 * 5000);
	cr_expect_eq(st.refusals, 8 * ((5000 + 10) / 11));
	cr_expect_leq(st.tracked, AUTH_THROTTLE_SLOTS);
}

/* --- blocks learnt from the shared state (auth_throttle_block) ------- */

Test(throttle, learnt_block_refuses_until_it_ends)
{
	struct sockaddr_storage ss = addr("192.0.2.9");

	auth_throttle_block((struct sockaddr *)&ss, 130.0, 100.0);
	cr_expect(blocked("192.0.2.9", 100.0));
	cr_expect(blocked("192.0.2.9", 129.99));
	cr_expect(!blocked("192.0.2.9", 130.0));
	cr_expect(!blocked("192.0.2.8", 100.0));
	/* Forgotten afterwards: the next failure starts a clean count. */
	cr_expect_eq(fail("192.0.2.9", LIMIT, DMAX, BLOCK, 131.0), 0);
	cr_expect(!blocked("192.0.2.9", 131.0));
}

Test(throttle, learnt_block_never_shortens_one)
{
	struct sockaddr_storage ss = addr("192.0.2.9");

	for (int i = 0; i < LIMIT; i++)
		fail("192.0.2.9", LIMIT, DMAX, BLOCK, 100.0);
	auth_throttle_block((struct sockaddr *)&ss, 110.0, 100.0);
	cr_expect(blocked("192.0.2.9", 100.0 + BLOCK - 1));
	auth_throttle_block((struct sockaddr *)&ss, 500.0, 101.0);
	cr_expect(blocked("192.0.2.9", 499.0));
	cr_expect(!blocked("192.0.2.9", 500.0));
}

Test(throttle, learnt_block_on_a_counted_source_keeps_its_failures)
{
	struct sockaddr_storage ss = addr("192.0.2.9");

	fail("192.0.2.9", LIMIT, DMAX, BLOCK, 100.0);
	auth_throttle_block((struct sockaddr *)&ss, 120.0, 100.0);
	/* A success during the block forgives nothing. */
	success("192.0.2.9", "mallory", 101.0);
	cr_expect(blocked("192.0.2.9", 101.0));
}

Test(throttle, learnt_block_in_the_past_is_ignored)
{
	struct sockaddr_storage ss = addr("192.0.2.9");

	auth_throttle_block((struct sockaddr *)&ss, 100.0, 100.0);
	cr_expect(!blocked("192.0.2.9", 100.0));
	cr_expect_eq(tracked(), 0);
}

Test(throttle, delay_function_matches_fail)
{
	for (unsigned n = 1; n < 12; n++)
		cr_expect_eq(auth_throttle_delay(n, DMAX),
		    fail("192.0.2.10", 0, DMAX, BLOCK, 100.0), "n=%u", n);
	cr_expect_eq(auth_throttle_delay(0, DMAX), 0);
	cr_expect_eq(auth_throttle_delay(2, DMAX), 0.25);
	cr_expect_eq(auth_throttle_delay(50, 0), 0);
}
