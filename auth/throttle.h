/*
 * Failed-login throttling (DESIGN.md section 3), per source: an IPv4
 * address, or an IPv6 /64 (one host usually owns a whole /64). An
 * IPv4-mapped IPv6 client counts as its IPv4 address.
 *
 * Each failure from a source earns a growing delay before the answer (0,
 * 0.25, 0.5, 1, 2, ... seconds, capped at fail_delay_max); the
 * fail_limit-th failure blocks the source for fail_block seconds, after
 * which it is forgotten. A source with no failure for AUTH_THROTTLE_FORGET
 * seconds is forgotten too.
 *
 * Failures are also counted per (source, user). A successful login as user
 * U from source S forgives U's own failures at S only: they are taken off
 * S's count. Other users' failures stay, and an active block is never
 * lifted, so "wrong guesses for X, one valid login as Y, repeat" still ends
 * in a block, while a user who mistypes and then gets it right is not
 * held against. The caller asks auth_throttle_blocked() before every
 * password or key check, not only at accept.
 *
 * State is two global tables (lib/srctab.h: buckets by a keyed hash under
 * a per-process secret): AUTH_THROTTLE_SLOTS sources and as many
 * (source, user) pairs, the user name reduced to a keyed 64-bit hash, so a
 * peer-chosen name costs a fixed few bytes. When a table is full its entry
 * with the oldest failure is dropped: spraying sources or names costs no
 * memory (but can make the table forget).
 *
 * Thread-safe: one mutex guards both tables and the counters, held for a
 * few lookups per call, cheap enough for an event loop. Times are seconds
 * on a monotonic clock, passed in by the caller.
 */
#ifndef MPGW_AUTH_THROTTLE_H
#define MPGW_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define AUTH_THROTTLE_SLOTS 4096   /* sources, and (source, user) pairs */
#define AUTH_THROTTLE_FORGET 600.0 /* seconds without failure */

struct auth_throttle_stats {
	uint64_t failures; /* auth_throttle_fail() calls */
	uint64_t refusals; /* auth_throttle_count_refusal() calls */
	unsigned tracked;  /* sources held now (some may have expired
			    * and not yet been dropped) */
	unsigned pairs;	   /* (source, user) pairs held now */
};

/* Is client refused right now (blocked after too many failures)? */
bool auth_throttle_blocked(const struct sockaddr *client, double now);

/*
 * Record a failed login from client as user (NULL when the client named
 * none, e.g. a bad client certificate) at time now. Returns the delay in
 * seconds to wait before answering it. After fail_limit failures from the
 * source (0 = never) it is blocked for fail_block seconds (0 = never).
 */
double (auth_throttle_fail)(const struct sockaddr *client, const char *user,
    unsigned fail_limit, unsigned fail_delay_max, unsigned fail_block,
    double now);

/*
 * A successful login from client as user at time now: take user's own
 * failures at that source off the source's count, unless the source is
 * blocked. NULL user: nothing to forgive.
 */
void (auth_throttle_success)(const struct sockaddr *client, const char *user,
    double now);

/*
 * Mark client's source blocked until `until` (same clock as now), as if
 * it had reached the limit here: a block learnt from another instance
 * through the shared state. A block already running longer stands; the
 * source is forgotten when the block ends, as after any block.
 */
void auth_throttle_block(const struct sockaddr *client, double until,
    double now);

/*
 * The delay before answering the n-th failure in a row from a source:
 * 0 for the first, then 0.25, 0.5, 1, 2, ... seconds, at most max (0: no
 * delay). auth_throttle_fail() answers with it; the shared state uses it
 * with the count of every instance.
 */
double auth_throttle_delay(unsigned n, unsigned max);

/* Copy the counters into st. */
void auth_throttle_stats(struct auth_throttle_stats *st);

/* Count one connection refused because its source was blocked. */
void auth_throttle_count_refusal(void);

#endif
