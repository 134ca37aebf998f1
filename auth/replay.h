/*
 * The Convert replay cache (DESIGN.md section 4): each (user, nonce) is
 * accepted once while its message timestamp is acceptable, across all
 * worker threads of the process.
 *
 * auth_replay_check_msg() is the one decision for a message: it judges the
 * timestamp and the nonce together, under one lock and against one clock,
 * with one boundary, so a message is either stale or looked up, never
 * accepted as timely and then refused as a replay for being too old.
 *
 * Entries are a keyed hash (SipHash-2-4 under a random per-process secret)
 * of user and nonce, so a client cannot aim collisions. The table has a
 * fixed capacity allocated once; expired entries are reclaimed as they are
 * met, and a live entry is never evicted: when the table holds capacity
 * live entries a new nonce gets AUTH_REPLAY_FULL, which the caller answers
 * with "resource exceeded".
 *
 * The cache keeps its own clock: the latest `now` any caller passed.
 * Entries expire against it, so a thread whose clock reads a little behind
 * another's cannot accept a nonce the other has already forgotten.
 */
#ifndef MPGW_AUTH_REPLAY_H
#define MPGW_AUTH_REPLAY_H

#include <stddef.h>
#include <stdint.h>

/* Entries the cache holds when auth_replay_init() is given 0. */
#define AUTH_REPLAY_DEFAULT_CAPACITY ((size_t)1 << 18)
/* Bytes in a Convert Auth nonce. */
#define AUTH_REPLAY_NONCE_LEN 12

enum auth_replay_res {
	AUTH_REPLAY_FRESH = 0, /* not seen; now remembered */
	AUTH_REPLAY_SEEN,      /* seen before, or its window already closed */
	AUTH_REPLAY_FULL,      /* not seen, but no room: refuse the message */
};

/* What auth_replay_check_msg() makes of a message. */
enum auth_replay_msg {
	AUTH_REPLAY_MSG_FRESH = 0, /* timely, nonce not seen; now remembered */
	AUTH_REPLAY_MSG_SEEN,	   /* timely, but the nonce was seen: a replay */
	AUTH_REPLAY_MSG_STALE,	   /* timestamp outside the window */
	AUTH_REPLAY_MSG_FULL,	   /* timely and not seen, but no room */
};

struct auth_replay_stats {
	uint64_t fresh;	  /* checks answered FRESH */
	uint64_t replays; /* checks answered SEEN */
	uint64_t full;	  /* checks answered FULL */
	uint64_t stale;	  /* messages answered STALE */
	size_t live;	  /* entries not expired at the cache's clock */
};

/*
 * Allocate the cache for capacity live entries (0: the default) with a
 * fresh secret. Call once at start-up, before any check. Returns 0, or -1
 * with errno (EALREADY if already set up, ENOMEM, EIO without randomness).
 */
int auth_replay_init(size_t capacity);

/*
 * Atomically test (user, nonce) and remember it until expires_at (the
 * message timestamp plus the allowed skew; same unit and clock as now).
 * Thread-safe; never blocks for long (the lock covers a short probe).
 *
 * FRESH: never seen, or seen but expired; it is now remembered.
 * SEEN: remembered and not expired, or expires_at is not after the
 * cache's clock (the nonce might already have been forgotten), or a
 * non-finite time was passed.
 * FULL: not seen and the table is full of live entries; nothing changes.
 * Also FULL before auth_replay_init().
 */
enum auth_replay_res auth_replay_check(const char *user,
    const uint8_t nonce[AUTH_REPLAY_NONCE_LEN], double now, double expires_at);

/*
 * Judge a Convert Auth message of user with nonce and timestamp ts (whole
 * seconds, the clock now is on: the Unix epoch) and remember its nonce.
 * Let t be the later of now and the cache's clock (the latest now any
 * caller passed). The message is timely when
 *
 *	t - max_skew < ts < t + max_skew
 *
 * that is |t - ts| < max_skew: a message exactly max_skew old is STALE,
 * one a second younger is looked up. A timely nonce is remembered until
 * ts + max_skew, which is after t, so it cannot have been forgotten while
 * the message still counts as timely. Thread-safe.
 *
 * FRESH: timely and not seen; now remembered.
 * SEEN: timely and seen before (a replay).
 * STALE: not timely, or now is not finite (nothing is looked up or
 * remembered; not counted as a replay).
 * FULL: timely and not seen, but the table is full of live entries; also
 * before auth_replay_init().
 */
enum auth_replay_msg auth_replay_check_msg(const char *user,
    const uint8_t nonce[AUTH_REPLAY_NONCE_LEN], uint32_t ts, double now,
    unsigned max_skew);

/*
 * Counters since init, and the live entries. Walks the table (about a
 * millisecond at the default size) under the lock; meant for metrics.
 * All zero before init.
 */
void auth_replay_stats(struct auth_replay_stats *st);

/* Free the cache and forget its secret. Call after every checker stopped. */
void auth_replay_fini(void);

#endif
