/*
 * The replay cache: a nonce is fresh once and then seen until it expires;
 * other users and nonces are independent; a full table refuses new nonces
 * but never forgets a live one; expired slots are reused; the table agrees
 * with a simple model over a long random run; and concurrent workers each
 * get exactly one FRESH per nonce. auth_replay_check_msg: one boundary for
 * the timestamp window and the nonce's memory (a message exactly max_skew
 * old is stale, never a replay), judged on the cache's clock.
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

/* auth_replay_check_msg for alice's nonce a. */
static enum auth_replay_msg
msg(uint32_t a, uint32_t ts, double now, unsigned max_skew)
{
	uint8_t n[AUTH_REPLAY_NONCE_LEN];

	nonce_of(n, a, 0);
	return auth_replay_check_msg("alice", n, ts, now, max_skew);
}

#define M_FRESH AUTH_REPLAY_MSG_FRESH
#define M_SEEN AUTH_REPLAY_MSG_SEEN
#define M_STALE AUTH_REPLAY_MSG_STALE
#define M_FULL AUTH_REPLAY_MSG_FULL

Test(replay, msg_exactly_max_skew_old_is_stale_not_a_replay)
{
	struct auth_replay_stats st;

	/*
	 * Issue 8 defect 11: the old pair of checks let this message pass
	 * the skew test and then answered SEEN, so it was logged and counted
	 * as a replay.
	 */
	cr_assert_eq(auth_replay_init(0), 0);
	cr_expect_eq(msg(1, 1000 - 30, 1000, 30), M_STALE);
	cr_expect_eq(msg(1, 1000 - 30, 1000, 30), M_STALE);
	auth_replay_stats(&st);
	cr_expect_eq(st.replays, 0);
	cr_expect_eq(st.stale, 2);
	cr_expect_eq(st.fresh, 0);
}

Test(replay, msg_window_boundaries)
{
	cr_assert_eq(auth_replay_init(0), 0);
	/* The past edge: 30 s old is out, 29 s in. */
	cr_expect_eq(msg(1, 969, 1000, 30), M_STALE);
	cr_expect_eq(msg(2, 970, 1000, 30), M_STALE);
	cr_expect_eq(msg(3, 971, 1000, 30), M_FRESH);
	cr_expect_eq(msg(3, 971, 1000, 30), M_SEEN);
	/* The future edge: 30 s ahead is out, 29 s in. */
	cr_expect_eq(msg(4, 1030, 1000, 30), M_STALE);
	cr_expect_eq(msg(5, 1031, 1000, 30), M_STALE);
	cr_expect_eq(msg(6, 1029, 1000, 30), M_FRESH);
	cr_expect_eq(msg(6, 1029, 1000, 30), M_SEEN);
	cr_expect_eq(msg(7, 1000, 1000, 30), M_FRESH);
	/* A fraction of a second counts. */
	cr_expect_eq(msg(8, 971, 1000.5, 30), M_FRESH);
	cr_expect_eq(msg(9, 970, 1000.5, 30), M_STALE);
	cr_expect_eq(msg(10, 1031, 1000.5, 30), M_STALE);
	cr_expect_eq(msg(11, 1030, 1000.5, 30), M_FRESH);
}

Test(replay, msg_seen_until_stale_never_fresh_again)
{
	cr_assert_eq(auth_replay_init(0), 0);
	cr_expect_eq(msg(1, 990, 1000, 30), M_FRESH);
	for (double t = 1000; t < 1020; t += 0.5)
		cr_expect_eq(msg(1, 990, t, 30), M_SEEN, "at %.1f", t);
	/* ts + max_skew: the window and the memory close together. */
	cr_expect_eq(msg(1, 990, 1020, 30), M_STALE);
	cr_expect_eq(msg(1, 990, 5000, 30), M_STALE);
	/* The nonce with a new timestamp is a new message. */
	cr_expect_eq(msg(1, 5000, 5000, 30), M_FRESH);
}

Test(replay, msg_judged_on_the_cache_clock)
{
	struct auth_replay_stats st;

	cr_assert_eq(auth_replay_init(0), 0);
	/* Another worker's clock already read 1001. */
	cr_expect_eq(msg(1, 1001, 1001, 30), M_FRESH);
	/*
	 * This worker read 1000: by its clock ts 971 is 29 s old, but by
	 * the cache's it is 30 and its entry would already have expired.
	 * Stale, not a replay.
	 */
	cr_expect_eq(msg(2, 971, 1000, 30), M_STALE);
	cr_expect_eq(msg(3, 972, 1000, 30), M_FRESH);
	cr_expect_eq(msg(3, 972, 1000, 30), M_SEEN);
	auth_replay_stats(&st);
	cr_expect_eq(st.stale, 1);
	cr_expect_eq(st.replays, 1);
}

Test(replay, msg_odd_inputs)
{
	cr_expect_eq(msg(1, 1000, 1000, 30), M_FULL, "before init");
	cr_assert_eq(auth_replay_init(0), 0);
	cr_expect_eq(msg(1, 1000, NAN, 30), M_STALE);
	cr_expect_eq(msg(1, 1000, INFINITY, 30), M_STALE);
	cr_expect_eq(msg(1, 1000, -INFINITY, 30), M_STALE);
	/* Nonsense did not move the clock. */
	cr_expect_eq(msg(1, 1000, 1000, 30), M_FRESH);
	/* No skew allowed: nothing is timely. */
	cr_expect_eq(msg(2, 1000, 1000, 0), M_STALE);
	/* Timestamps near the ends of their range. */
	cr_expect_eq(msg(3, 0, 1000, 30), M_STALE);
	cr_expect_eq(msg(4, UINT32_MAX, 1000, 30), M_STALE);
	cr_expect_eq(msg(5, UINT32_MAX, (double)UINT32_MAX, 30), M_FRESH);
	cr_expect_eq(msg(5, UINT32_MAX, (double)UINT32_MAX, 30), M_SEEN);
}

Test(replay, msg_full_table)
{
	cr_assert_eq(auth_replay_init(2), 0);
	cr_expect_eq(msg(1, 1000, 1000, 30), M_FRESH);
	cr_expect_eq(msg(2, 1000, 1000, 30), M_FRESH);
	cr_expect_eq(msg(3, 1000, 1000, 30), M_FULL);
	/* A stale message is stale however full the table is. */
	cr_expect_eq(msg(3, 900, 1000, 30), M_STALE);
	cr_expect_eq(msg(1, 1000, 1000, 30), M_SEEN);
	/* At 1030 both entries have expired: room again. */
	cr_expect_eq(msg(3, 1020, 1030, 30), M_FRESH);
}

/*
 * A long random run against the model the header states: stale iff
 * |t - ts| >= max_skew with t the latest clock; else seen iff the nonce is
 * remembered past t; else fresh and remembered until ts + max_skew.
 */
Test(replay, msg_agrees_with_model)
{
	enum { KEYS = 50, STEPS = 200000, SKEW = 30 };
	static double until[KEYS];
	uint64_t rng = 0x243f6a8885a308d3ULL;
	double clock = 1000, cache = 0, t;
	size_t counts[4] = {0};

	cr_assert_eq(auth_replay_init(0), 0);
	for (int step = 0; step < STEPS; step++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		uint32_t key = (uint32_t)(rng >> 33) % KEYS;
		/* Callers' clocks jitter around a clock that creeps on. */
		t = clock + (double)((rng >> 20) % 5) - 2;
		if ((rng >> 40) % 16 == 0)
			clock += 1;
		uint32_t ts = (uint32_t)(t + (double)((rng >> 24) % 80) - 40);
		enum auth_replay_msg want, got;
		double eff;

		got = msg(key, ts, t, SKEW);
		if (t > cache)
			cache = t;
		eff = cache;
		if (eff - ts >= SKEW || (double)ts - eff >= SKEW)
			want = M_STALE;
		else if (until[key] > eff)
			want = M_SEEN;
		else {
			want = M_FRESH;
			until[key] = (double)ts + SKEW;
		}
		cr_assert_eq(got, want, "step %d key %u ts %u t %.0f: got %d "
		    "want %d", step, key, ts, t, got, want);
		counts[got]++;
	}
	for (int i = 0; i < 3; i++)
		cr_assert_gt(counts[i], 1000, "answer %d: %zu", i, counts[i]);
}
