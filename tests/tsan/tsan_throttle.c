/*
 * The login throttle (auth/throttle.c) under ThreadSanitizer: worker
 * threads record failures for the same sources at once (IPv4 addresses,
 * and hosts of one IPv6 /64, which count as one source), record successes
 * for others, ask whether sources are blocked and count refusals; then
 * they spray more sources than the table holds, so it evicts while they
 * run.
 *
 * Checked: a source that got fail_limit failures from any mix of threads
 * is blocked, and no longer once the block is over; delays stay within
 * [0, fail_delay_max]; the counters add up to the calls made; the table
 * never tracks more than it holds.
 *
 * Uses the API of auth/throttle.h as of issue 8: fail(client, limit,
 * delay_max, block, now), blocked(client, now), success(client).
 */
#include "auth/throttle.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

#define THREADS 4
#define NA 256		/* IPv4 sources every thread fails on */
#define FAILS 2		/* failures per thread and source: 8 in all */
#define LIMIT 5
#define DMAX 4
#define BLOCK 60
#define NB 64		/* sources that fail and succeed in turn */
#define SPRAY 2000	/* distinct sources per thread in phase 1 */

struct worker {
	unsigned idx;
	unsigned phase;
	unsigned fails, refusals;
};

static struct sockaddr_in
v4(uint32_t host)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(1000);
	sin.sin_addr.s_addr = htonl(host);
	return sin;
}

/* Host h of 2001:db8:77:: /64 number net. */
static struct sockaddr_in6
v6(uint16_t net, uint32_t h)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	CHECK(inet_pton(AF_INET6, "2001:db8:77::", &sin6.sin6_addr) == 1);
	sin6.sin6_addr.s6_addr[6] = (uint8_t)(net >> 8);
	sin6.sin6_addr.s6_addr[7] = (uint8_t)net;
	memcpy(&sin6.sin6_addr.s6_addr[12], &h, sizeof(h));
	return sin6;
}

static void
fail(struct worker *w, const void *sa, double now)
{
	double d = auth_throttle_fail(sa, (w->idx & 1) ? "u" : NULL, LIMIT, DMAX,
	    BLOCK, now);

	CHECKF(d >= 0 && d <= DMAX, "delay %g", d);
	w->fails++;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct sockaddr_in a;
	struct sockaddr_in6 b6;

	if (w->phase == 1) {
		for (unsigned i = 0; i < SPRAY; i++) {
			a = v4(0x0b000000u + w->idx * SPRAY + i);
			fail(w, &a, 2000.0);
			a = v4(0x0a010000u + i % NA);
			/* Phase 0's blocks are over by now. */
			CHECK(!auth_throttle_blocked((void *)&a, 2000.0));
		}
		return NULL;
	}
	for (unsigned r = 0; r < FAILS; r++) {
		for (unsigned i = 0; i < NA; i++) {
			unsigned k = (i + w->idx * (NA / THREADS)) % NA;

			a = v4(0x0a010000u + k);
			fail(w, &a, 1000.0);
			/* One /64: every thread's hosts are one source. */
			b6 = v6(1, w->idx * 1000 + r * NA + i);
			if (i % 32 == 0)
				fail(w, &b6, 1000.0);
			a = v4(0x0a020000u + i % NB);
			if ((i + w->idx) % 2 == 0)
				fail(w, &a, 1000.0);
			else
				auth_throttle_success((void *)&a, "u", 1000.0);
			a = v4(0x0a010000u + (k * 7) % NA);
			if (auth_throttle_blocked((void *)&a, 1000.0)) {
				auth_throttle_count_refusal();
				w->refusals++;
			}
		}
	}
	return NULL;
}

static void
phase(struct worker *ws, unsigned p)
{
	for (unsigned i = 0; i < THREADS; i++) {
		ws[i].idx = i;
		ws[i].phase = p;
		ws[i].fails = ws[i].refusals = 0;
	}
	run_threads(THREADS, worker_main, ws, sizeof(ws[0]));
}

int
main(void)
{
	struct worker ws[THREADS];
	struct auth_throttle_stats st;
	struct sockaddr_in a;
	struct sockaddr_in6 b6;
	uint64_t fails = 0, refusals = 0;

	phase(ws, 0);
	for (unsigned i = 0; i < THREADS; i++) {
		fails += ws[i].fails;
		refusals += ws[i].refusals;
	}
	for (unsigned k = 0; k < NA; k++) {
		a = v4(0x0a010000u + k);
		CHECKF(auth_throttle_blocked((void *)&a, 1000.0 + BLOCK - 1),
		    "source %u not blocked after %u failures", k,
		    THREADS * FAILS);
	}
	/* Another host in the /64 the threads shared. */
	b6 = v6(1, 0xffffffffu);
	CHECK(auth_throttle_blocked((void *)&b6, 1001.0));
	b6 = v6(2, 1);
	CHECK(!auth_throttle_blocked((void *)&b6, 1001.0));
	auth_throttle_stats(&st);
	CHECKF(st.failures == fails, "%ju failures counted, %ju made",
	    (uintmax_t)st.failures, (uintmax_t)fails);
	CHECK(st.refusals == refusals);
	CHECK(st.tracked <= AUTH_THROTTLE_SLOTS);

	phase(ws, 1);
	for (unsigned i = 0; i < THREADS; i++)
		fails += ws[i].fails;
	auth_throttle_stats(&st);
	CHECK(st.failures == fails);
	CHECKF(st.tracked <= AUTH_THROTTLE_SLOTS, "tracked %u", st.tracked);
	CHECKF(st.tracked >= AUTH_THROTTLE_SLOTS / 2, "tracked %u", st.tracked);
	printf("tsan_throttle: %u threads, %ju failures, %ju refusals, %u "
	    "sources tracked\n", THREADS, (uintmax_t)fails,
	    (uintmax_t)refusals, st.tracked);
	return 0;
}
