/* gateway/admit.c: admission limits under concurrency. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "conf/conf.h"
#include "gateway/admit.h"
#include "gateway/stats.h"

#define THREADS 4
#define ROUNDS 20000
#define MAX 2

static struct gw_conf conf;
static pthread_barrier_t bar;
static atomic_uint admitted, overshoots;

/*
 * Each round every thread tries to admit one connection at the same
 * moment, then the round's winners are counted and released. The crossing
 * of max_sessions happens once a round, so a check that can be passed by
 * two threads at once shows up within a few rounds.
 */
static void *
hammer(void *arg)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct admit_slot slot;
	bool in;

	sin.sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)(uintptr_t)arg);
	for (int r = 0; r < ROUNDS; r++) {
		pthread_barrier_wait(&bar);
		in = admit_connection(&conf, (struct sockaddr *)&sin, 0, &slot);
		if (in)
			atomic_fetch_add(&admitted, 1);
		pthread_barrier_wait(&bar);
		if (arg == 0) {
			if (atomic_load(&admitted) > MAX)
				atomic_fetch_add(&overshoots, 1);
			atomic_store(&admitted, 0);
		}
		pthread_barrier_wait(&bar);
		if (in)
			admit_release((struct sockaddr *)&sin, &slot);
	}
	return NULL;
}

/*
 * Workers admit in parallel: the count of open sessions must never pass
 * max_sessions, however the accepts interleave (defect 12: the check ran
 * before the increment).
 */
Test(admit, max_sessions_never_overshot)
{
	pthread_t t[THREADS];

	conf_defaults(&conf);
	conf.max_sessions = MAX;
	conf.max_per_source = 0;
	pthread_barrier_init(&bar, NULL, THREADS);
	for (uintptr_t i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	cr_assert_eq(atomic_load(&overshoots), 0, "%u rounds admitted more "
	    "than max_sessions", atomic_load(&overshoots));
	cr_assert_eq(stats_get(STAT_OPEN), 0);
}

Test(admit, release_gives_the_slot_back)
{
	struct sockaddr_in s1 = { .sin_family = AF_INET }, s2 = s1, s3 = s1;
	struct admit_slot a, b, c;

	conf_defaults(&conf);
	conf.max_sessions = 2;
	conf.max_per_source = 1;
	s1.sin_addr.s_addr = htonl(0x0a000001u);
	s2.sin_addr.s_addr = htonl(0x0a000002u);
	s3.sin_addr.s_addr = htonl(0x0a000003u);
	cr_assert(admit_connection(&conf, (struct sockaddr *)&s1, 0, &a));
	/* Same source: max_per_source refuses, and gives the session back. */
	cr_assert_not(admit_connection(&conf, (struct sockaddr *)&s1, 0, &b));
	cr_assert(admit_connection(&conf, (struct sockaddr *)&s2, 0, &b));
	cr_assert_not(admit_connection(&conf, (struct sockaddr *)&s3, 0, &c));
	admit_release((struct sockaddr *)&s2, &b);
	cr_assert(admit_connection(&conf, (struct sockaddr *)&s3, 0, &c));
	cr_assert_eq(stats_get(STAT_OPEN), 2);
	/* s2's per-source slot is free again. */
	admit_release((struct sockaddr *)&s3, &c);
	cr_assert(admit_connection(&conf, (struct sockaddr *)&s2, 0, &b));
}

/*
 * Behind a balancer (PROXY) the two steps run apart: admit_open() at
 * accept holds a session but no source; admit_source() on the header's
 * address takes the source, and a refusal there gives the session back.
 */
Test(admit, two_steps_for_proxy)
{
	struct sockaddr_in lb = { .sin_family = AF_INET }, c1 = lb, c2 = lb;
	struct admit_slot a, b, c;

	conf_defaults(&conf);
	conf.max_sessions = 3;
	conf.max_per_source = 1;
	lb.sin_addr.s_addr = htonl(0x0a000005u);
	c1.sin_addr.s_addr = htonl(0x0a4d0101u);
	c2.sin_addr.s_addr = htonl(0x0a4d0201u);
	/* Three connections from the balancer: max_per_source is not its. */
	cr_assert(admit_open(&conf, 0, &a));
	cr_assert(admit_open(&conf, 0, &b));
	cr_assert(admit_open(&conf, 0, &c));
	cr_assert(a.open && !a.source);
	cr_assert_eq(stats_get(STAT_OPEN), 3);
	cr_assert(admit_source(&conf, (struct sockaddr *)&c1, 0, &a));
	cr_assert(a.source);
	/* The second from the same client: refused, its session freed. */
	cr_assert_not(admit_source(&conf, (struct sockaddr *)&c1, 0, &b));
	cr_assert(!b.open && !b.source);
	cr_assert_eq(stats_get(STAT_OPEN), 2);
	cr_assert(admit_source(&conf, (struct sockaddr *)&c2, 0, &c));
	admit_release((struct sockaddr *)&c1, &a);
	admit_release((struct sockaddr *)&c2, &c);
	cr_assert_eq(stats_get(STAT_OPEN), 0);
	/* c1's source slot is free again. */
	cr_assert(admit_connection(&conf, (struct sockaddr *)&c1, 0, &a));
	admit_release((struct sockaddr *)&c1, &a);
}

Test(admit, proxy_refusals_are_counted)
{
	struct sockaddr_in x = { .sin_family = AF_INET };
	uint64_t before = stats_get(STAT_REFUSED_PROXY);

	x.sin_addr.s_addr = htonl(0xc0000201u);
	admit_refuse_proxy((struct sockaddr *)&x, "test", 0);
	admit_refuse_proxy((struct sockaddr *)&x, "test", 0.5);
	cr_assert_eq(stats_get(STAT_REFUSED_PROXY), before + 2);
}
