/*
 * The Convert replay cache (auth/replay.c) under ThreadSanitizer: worker
 * threads check the same nonces at once, fill the table past its capacity,
 * and move the clock on so entries expire, while another thread reads the
 * counters.
 *
 * Checked: each (user, nonce) is FRESH for exactly one thread while it is
 * live; a full table answers FULL exactly for what does not fit; the
 * counters add up to the calls made.
 */
#include "auth/replay.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "harness.h"

#define THREADS 4
#define CAP 4096
#define SHARED 2000	/* nonces every thread checks */
#define OWN 2000	/* distinct nonces per thread in the fill phase */

struct worker {
	unsigned idx;
	unsigned phase;
	unsigned fresh, seen, full;
};

static atomic_uint fresh_of[SHARED];
static atomic_bool stop_stats;
static atomic_uint stats_reads;

static void
nonce(uint8_t n[AUTH_REPLAY_NONCE_LEN], unsigned tag, unsigned i)
{
	memset(n, 0, AUTH_REPLAY_NONCE_LEN);
	memcpy(n, &tag, sizeof(tag));
	memcpy(n + 4, &i, sizeof(i));
}

static void
count(struct worker *w, enum auth_replay_res r)
{
	switch (r) {
	case AUTH_REPLAY_FRESH:
		w->fresh++;
		break;
	case AUTH_REPLAY_SEEN:
		w->seen++;
		break;
	case AUTH_REPLAY_FULL:
		w->full++;
		break;
	}
}

/*
 * Phase 0: every thread checks the same SHARED nonces, each from its own
 * starting point, at now 100 (expiring at 1000).
 * Phase 1: each thread adds OWN nonces of its own; the table fills up.
 * Phase 2: the clock moves past 1000, so everything expires; the shared
 * nonces come back and each must again be fresh for exactly one thread.
 */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t n[AUTH_REPLAY_NONCE_LEN];
	enum auth_replay_res r;
	unsigned k;

	w->fresh = w->seen = w->full = 0;
	for (unsigned i = 0; i < SHARED || (w->phase == 1 && i < OWN); i++) {
		switch (w->phase) {
		case 0:
		case 2:
			k = (i + w->idx * (SHARED / THREADS)) % SHARED;
			nonce(n, 0xabc, k);
			r = auth_replay_check(w->phase == 0 ? "alice" : "bob",
			    n, w->phase == 0 ? 100.0 : 2000.0 + i % 7,
			    w->phase == 0 ? 1000.0 : 5000.0);
			if (r == AUTH_REPLAY_FRESH)
				atomic_fetch_add(&fresh_of[k], 1);
			break;
		default:
			nonce(n, 0x1000 + w->idx, i);
			r = auth_replay_check("carol", n, 100.0 + i % 3,
			    1000.0);
			break;
		}
		count(w, r);
	}
	return NULL;
}

static void *
stats_main(void *arg)
{
	struct auth_replay_stats st;

	(void)arg;
	while (!atomic_load(&stop_stats)) {
		auth_replay_stats(&st);
		CHECK(st.fresh + st.replays + st.full >= st.live);
		atomic_fetch_add(&stats_reads, 1);
	}
	return NULL;
}

static void
phase(struct worker *ws, unsigned p, unsigned *fresh, unsigned *seen,
    unsigned *full)
{
	*fresh = *seen = *full = 0;
	for (unsigned i = 0; i < THREADS; i++) {
		ws[i].idx = i;
		ws[i].phase = p;
	}
	run_threads(THREADS, worker_main, ws, sizeof(ws[0]));
	for (unsigned i = 0; i < THREADS; i++) {
		*fresh += ws[i].fresh;
		*seen += ws[i].seen;
		*full += ws[i].full;
	}
}

int
main(void)
{
	struct worker ws[THREADS];
	struct auth_replay_stats st;
	unsigned fresh, seen, full;
	pthread_t stats;

	CHECK(auth_replay_init(CAP) == 0);
	CHECK(pthread_create(&stats, NULL, stats_main, NULL) == 0);

	phase(ws, 0, &fresh, &seen, &full);
	CHECKF(fresh == SHARED && seen == SHARED * (THREADS - 1) && full == 0,
	    "fresh %u seen %u full %u", fresh, seen, full);
	for (unsigned k = 0; k < SHARED; k++)
		CHECKF(atomic_load(&fresh_of[k]) == 1, "nonce %u fresh %u "
		    "times", k, atomic_load(&fresh_of[k]));

	/* SHARED entries are live; CAP - SHARED more fit. */
	phase(ws, 1, &fresh, &seen, &full);
	CHECKF(fresh == CAP - SHARED && seen == 0 &&
	    full == THREADS * OWN - (CAP - SHARED),
	    "fresh %u seen %u full %u", fresh, seen, full);
	auth_replay_stats(&st);
	CHECKF(st.live == CAP, "live %zu", st.live);

	for (unsigned k = 0; k < SHARED; k++)
		atomic_store(&fresh_of[k], 0);
	phase(ws, 2, &fresh, &seen, &full);
	CHECKF(fresh == SHARED && seen == SHARED * (THREADS - 1) && full == 0,
	    "fresh %u seen %u full %u", fresh, seen, full);
	for (unsigned k = 0; k < SHARED; k++)
		CHECKF(atomic_load(&fresh_of[k]) == 1, "nonce %u fresh %u "
		    "times after expiry", k, atomic_load(&fresh_of[k]));

	atomic_store(&stop_stats, true);
	CHECK(pthread_join(stats, NULL) == 0);
	auth_replay_stats(&st);
	CHECK(st.fresh == (uint64_t)SHARED + (CAP - SHARED) + SHARED);
	CHECK(st.replays == 2ULL * SHARED * (THREADS - 1));
	CHECK(st.full == (uint64_t)THREADS * OWN - (CAP - SHARED));
	CHECK(st.live == SHARED);
	auth_replay_fini();
	printf("tsan_replay: %u threads, %u stats reads while checking\n",
	    THREADS, atomic_load(&stats_reads));
	return 0;
}
