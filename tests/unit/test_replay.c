/*
 * The replay cache: a nonce is fresh once and then seen until it expires;
 * other users and nonces are independent; a full table refuses new nonces
 * but never forgets a live one; expired slots are reused; the table agrees
 * with a simple model over a long random run; and concurrent workers each
 * get exactly one FRESH per nonce.
 */
#include "auth/replay.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRESH AUTH_REPLAY_FRESH
#define SEEN AUTH_REPLAY_SEEN
#define FULL AUTH_REPLAY_FULL

static void
teardown(void)
{
	auth_replay_fini();
}

TestSuite(replay, .fini = teardown, .timeout = 60);

/* A nonce that encodes a and b. */
static void
nonce_of(uint8_t n[AUTH_REPLAY_NONCE_LEN], uint32_t a, uint32_t b)
{
	memset(n, 0xa5, AUTH_REPLAY_NONCE_LEN);
	memcpy(n, &a, sizeof(a));
	memcpy(n + 4, &b, sizeof(b));
}

/* Check (user, nonce_of(a, 0)). */
static enum auth_replay_res
chk(const char *user, uint32_t a, double now, double exp)
{
	uint8_t n[AUTH_REPLAY_NONCE_LEN];

	nonce_of(n, a, 0);
	return auth_replay_check(user, n, now, exp);
}

Test(replay, fresh_then_seen)
{
	struct auth_replay_stats st;

	cr_assert_eq(auth_replay_init(0), 0);
	cr_assert_eq(chk("alice", 1, 1000, 1030), FRESH);
	cr_assert_eq(chk("alice", 1, 1000, 1030), SEEN);
	cr_assert_eq(chk("alice", 1, 1010, 1030), SEEN);
	cr_assert_eq(chk("alice", 1, 1029, 1030), SEEN);
	auth_replay_stats(&st);
	cr_assert_eq(st.fresh, 1);
	cr_assert_eq(st.replays, 3);
	cr_assert_eq(st.full, 0);
	cr_assert_eq(st.live, 1);
}

Test(replay, other_user_or_nonce_is_fresh)
{
	uint8_t n[AUTH_REPLAY_NONCE_LEN], m[AUTH_REPLAY_NONCE_LEN];

	cr_assert_eq(auth_replay_init(0), 0);
	nonce_of(n, 7, 7);
	cr_assert_eq(auth_replay_check("alice", n, 100, 130), FRESH);
	cr_assert_eq(auth_replay_check("bob", n, 100, 130), FRESH);
	cr_assert_eq(auth_replay_check("alic", n, 100, 130), FRESH);
	cr_assert_eq(auth_replay_check("alice2", n, 100, 130), FRESH);
	cr_assert_eq(auth_replay_check("", n, 100, 130), FRESH);
	/* Every single-bit change of the nonce is another nonce. */
	for (int bit = 0; bit < AUTH_REPLAY_NONCE_LEN * 8; bit++) {
		memcpy(m, n, sizeof(m));
		m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_eq(auth_replay_check("alice", m, 100, 130), FRESH,
		    "bit %d", bit);
	}
	cr_assert_eq(auth_replay_check("alice", n, 100, 130), SEEN);
	cr_assert_eq(auth_replay_check("bob", n, 100, 130), SEEN);
	cr_assert_eq(auth_replay_check("", n, 100, 130), SEEN);
}

Test(replay, expires_at_its_time)
{
	struct auth_replay_stats st;

	cr_assert_eq(auth_replay_init(0), 0);
	cr_assert_eq(chk("alice", 1, 100, 130), FRESH);
	cr_assert_eq(chk("alice", 2, 100, 200), FRESH);
	cr_assert_eq(chk("alice", 1, 129.5, 130), SEEN);
	/* Past 130 the nonce may come back with a new timestamp. */
	cr_assert_eq(chk("alice", 1, 131, 161), FRESH);
	cr_assert_eq(chk("alice", 1, 131, 161), SEEN);
	/* The other entry is still live. */
	cr_assert_eq(chk("alice", 2, 131, 200), SEEN);
	auth_replay_stats(&st);
	cr_assert_eq(st.live, 2);
	cr_assert_eq(chk("alice", 3, 500, 530), FRESH);
	auth_replay_stats(&st);
	cr_assert_eq(st.live, 1);
}

Test(replay, closed_window_is_refused)
{
	cr_assert_eq(auth_replay_init(0), 0);
	/* Already expired when checked: nothing to remember it by. */
	cr_assert_eq(chk("alice", 1, 100, 100), SEEN);
	cr_assert_eq(chk("alice", 1, 100, 99), SEEN);
	/*
	 * Another worker's clock read 200 and may have reclaimed entries
	 * expiring by then; a worker whose clock reads 150 must not take a
	 * nonce valid until 180.
	 */
	cr_assert_eq(chk("alice", 2, 200, 230), FRESH);
	cr_assert_eq(chk("alice", 3, 150, 180), SEEN);
	cr_assert_eq(chk("alice", 3, 150, 201), FRESH);
	/* Nonsense times are refused, and do not move the clock. */
	cr_assert_eq(chk("alice", 4, NAN, 300), SEEN);
	cr_assert_eq(chk("alice", 4, 200, INFINITY), SEEN);
	cr_assert_eq(chk("alice", 4, INFINITY, INFINITY), SEEN);
	cr_assert_eq(chk("alice", 4, 200, NAN), SEEN);
	cr_assert_eq(chk("alice", 4, 200, 230), FRESH);
}

Test(replay, full_table_refuses_and_never_evicts)
{
	struct auth_replay_stats st;

	cr_assert_eq(auth_replay_init(4), 0);
	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(chk("alice", i, 100, 130 + i), FRESH);
	for (int round = 0; round < 3; round++) {
		for (uint32_t i = 4; i < 50; i++)
			cr_assert_eq(chk("alice", i, 100 + round, 140), FULL,
			    "nonce %u", i);
		/* A live nonce is still known, not FULL. */
		for (uint32_t i = 0; i < 4; i++)
			cr_assert_eq(
			    chk("alice", i, 100 + round, 130 + i), SEEN);
	}
	/* Right up to the first expiry nothing is reclaimed. */
	cr_assert_eq(chk("bob", 9, 129.9, 150), FULL);
	auth_replay_stats(&st);
	cr_assert_eq(st.fresh, 4);
	cr_assert_eq(st.full, 3 * 46 + 1);
	cr_assert_eq(st.replays, 3 * 4);
	cr_assert_eq(st.live, 4);
}

Test(replay, expired_slots_are_reused)
{
	struct auth_replay_stats st;

	cr_assert_eq(auth_replay_init(4), 0);
	/* Two short-lived entries and two long-lived ones. */
	cr_assert_eq(chk("alice", 0, 100, 110), FRESH);
	cr_assert_eq(chk("alice", 1, 100, 110), FRESH);
	cr_assert_eq(chk("alice", 2, 100, 500), FRESH);
	cr_assert_eq(chk("alice", 3, 100, 500), FRESH);
	cr_assert_eq(chk("alice", 4, 105, 135), FULL);
	/* At 111 the short ones are gone: two new nonces fit, a third not. */
	cr_assert_eq(chk("alice", 4, 111, 141), FRESH);
	cr_assert_eq(chk("alice", 5, 111, 120), FRESH);
	cr_assert_eq(chk("alice", 6, 111, 141), FULL);
	cr_assert_eq(chk("alice", 2, 111, 500), SEEN);
	cr_assert_eq(chk("alice", 3, 111, 500), SEEN);
	cr_assert_eq(chk("alice", 4, 111, 141), SEEN);
	/*
	 * Nonce 5 expires first (120), although it came in after the table
	 * was last found full; at 121 its slot is free again.
	 */
	cr_assert_eq(chk("alice", 6, 119, 141), FULL);
	cr_assert_eq(chk("alice", 6, 121, 141), FRESH);
	auth_replay_stats(&st);
	cr_assert_eq(st.live, 4);
	/* Much later everything has expired: a whole new set fits. */
	for (uint32_t i = 100; i < 104; i++)
		cr_assert_eq(chk("bob", i, 1000, 1030), FRESH);
	cr_assert_eq(chk("bob", 104, 1000, 1030), FULL);
	for (uint32_t i = 100; i < 104; i++)
		cr_assert_eq(chk("bob", i, 1000, 1030), SEEN);
}

/*
 * A long random run on a small table, against a model that keeps every
 * entry in a list: many collisions, expiries in every order, reclaiming
 * in the middle of probe runs, full spells.
 */
Test(replay, agrees_with_model)
{
	enum { CAP = 64, KEYS = 300, STEPS = 200000 };
	static double model[KEYS]; /* expiry of each key; 0: absent */
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	double now = 1000;
	size_t live, counts[3] = {0, 0, 0};

	cr_assert_eq(auth_replay_init(CAP), 0);
	for (int step = 0; step < STEPS; step++) {
		enum auth_replay_res want, got;
		uint32_t key;
		double exp;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		key = (uint32_t)(rng % KEYS);
		if ((rng >> 20) % 8 == 0)
			now += (double)((rng >> 24) % 4);
		exp = now + 1 + (double)((rng >> 32) % 40);

		live = 0;
		for (size_t i = 0; i < KEYS; i++)
			live += model[i] > now;
		if (model[key] > now)
			want = SEEN;
		else if (live >= CAP)
			want = FULL;
		else {
			want = FRESH;
			model[key] = exp;
		}
		got = chk("u", key, now, exp);
		cr_assert_eq(got, want, "step %d key %u: got %d want %d", step,
		    key, got, want);
		counts[got]++;
	}
	/* The run must have visited every answer many times. */
	for (int i = 0; i < 3; i++)
		cr_assert_gt(counts[i], 1000, "answer %d: %zu", i, counts[i]);
}

Test(replay, init_and_fini)
{
	uint8_t n[AUTH_REPLAY_NONCE_LEN];
	struct auth_replay_stats st;

	nonce_of(n, 1, 1);
	/* Before init nothing can be remembered: refuse. */
	cr_assert_eq(auth_replay_check("alice", n, 100, 130), FULL);
	auth_replay_stats(&st);
	cr_assert_eq(st.fresh + st.replays + st.full + st.live, 0);

	cr_assert_eq(auth_replay_init(16), 0);
	errno = 0;
	cr_assert_eq(auth_replay_init(16), -1);
	cr_assert_eq(errno, EALREADY);
	cr_assert_eq(auth_replay_check("alice", n, 100, 130), FRESH);
	auth_replay_fini();
	cr_assert_eq(auth_replay_check("alice", n, 100, 130), FULL);

	/* A new cache forgets the old one. */
	cr_assert_eq(auth_replay_init(16), 0);
	cr_assert_eq(auth_replay_check("alice", n, 100, 130), FRESH);
	auth_replay_stats(&st);
	cr_assert_eq(st.fresh, 1);
	cr_assert_eq(st.full, 0);

	auth_replay_fini();
	errno = 0;
	cr_assert_eq(auth_replay_init(SIZE_MAX / 2), -1);
	cr_assert_eq(errno, ENOMEM);
}

#define NTHREADS 8
#define PER_THREAD 20000

struct worker {
	pthread_t tid;
	uint32_t id;
	pthread_barrier_t *barrier;
	size_t fresh, seen, full;
	bool shared; /* all threads use the same nonces */
};

/* Check this worker's nonces twice, with every worker in step. */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t n[AUTH_REPLAY_NONCE_LEN];

	for (int pass = 0; pass < 2; pass++) {
		pthread_barrier_wait(w->barrier);
		for (uint32_t i = 0; i < PER_THREAD; i++) {
			nonce_of(n, i, w->shared ? 0 : w->id + 1);
			switch (auth_replay_check("alice", n, 1000, 1030)) {
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
	}
	return NULL;
}

/* Run NTHREADS workers; returns the summed counts in w[0]-like totals. */
static void
run_workers(bool shared, size_t *fresh, size_t *seen, size_t *full)
{
	struct worker w[NTHREADS];
	pthread_barrier_t barrier;

	cr_assert_eq(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
	for (uint32_t i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){
		    .id = i, .barrier = &barrier, .shared = shared};
		cr_assert_eq(
		    pthread_create(&w[i].tid, NULL, worker_main, &w[i]), 0);
	}
	*fresh = *seen = *full = 0;
	for (uint32_t i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].tid, NULL);
		if (!shared) {
			/* Own nonces: all fresh once, then all seen. */
			cr_assert_eq(w[i].fresh, PER_THREAD, "thread %u", i);
			cr_assert_eq(w[i].seen, PER_THREAD, "thread %u", i);
		}
		*fresh += w[i].fresh;
		*seen += w[i].seen;
		*full += w[i].full;
	}
	pthread_barrier_destroy(&barrier);
}

Test(replay, threads_with_distinct_nonces)
{
	struct auth_replay_stats st;
	size_t fresh, seen, full;

	cr_assert_eq(auth_replay_init(0), 0);
	run_workers(false, &fresh, &seen, &full);
	cr_assert_eq(fresh, NTHREADS * PER_THREAD);
	cr_assert_eq(seen, NTHREADS * PER_THREAD);
	cr_assert_eq(full, 0);
	auth_replay_stats(&st);
	cr_assert_eq(st.fresh, NTHREADS * PER_THREAD);
	cr_assert_eq(st.replays, NTHREADS * PER_THREAD);
	cr_assert_eq(st.live, NTHREADS * PER_THREAD);
}

Test(replay, threads_racing_on_the_same_nonces)
{
	size_t fresh, seen, full;

	cr_assert_eq(auth_replay_init(0), 0);
	run_workers(true, &fresh, &seen, &full);
	/* Whoever wins, each nonce is FRESH exactly once. */
	cr_assert_eq(fresh, PER_THREAD);
	cr_assert_eq(seen, 2 * NTHREADS * PER_THREAD - PER_THREAD);
	cr_assert_eq(full, 0);
}
