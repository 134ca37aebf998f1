/*
 * Failed-login throttling (DESIGN.md section 3), per source: an IPv4
 * address, or an IPv6 /64 (one host usually owns a whole /64). An
 * IPv4-mapped IPv6 client counts as its IPv4 address.
 *
 * Each failure earns a growing delay before the answer (0, 0.25, 0.5, 1, 2,
 * ... seconds, capped at fail_delay_max); the fail_limit-th failure blocks
 * the source for fail_block seconds, after which it is forgotten. A source
 * with no failure for AUTH_THROTTLE_FORGET seconds is forgotten too; a
 * success forgets it at once (for IPv6, the whole /64).
 *
 * State is one global table of AUTH_THROTTLE_SLOTS sources behind a mutex;
 * when it is full the source whose last failure is oldest is dropped, so
 * spraying sources costs no memory (but can make the table forget). Every
 * function is thread-safe and cheap enough for an event loop. Times are
 * seconds on a monotonic clock, passed in by the caller.
 */
#ifndef MPGW_AUTH_THROTTLE_H
#define MPGW_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define AUTH_THROTTLE_SLOTS 4096   /* sources remembered at most */
#define AUTH_THROTTLE_FORGET 600.0 /* seconds without failure */

struct auth_throttle_stats {
	uint64_t failures; /* auth_throttle_fail() calls */
	uint64_t refusals; /* auth_throttle_count_refusal() calls */
	unsigned tracked;  /* sources held now (some may have expired
			    * and not yet been dropped) */
};

/* Is client refused right now (blocked after too many failures)? */
bool auth_throttle_blocked(const struct sockaddr *client, double now);

/*
 * Record a failed login from client at time now. Returns the delay in
 * seconds to wait before answering it. After fail_limit failures (0 =
 * never) the source is blocked for fail_block seconds (0 = never).
 */
double auth_throttle_fail(const struct sockaddr *client, unsigned fail_limit,
    unsigned fail_delay_max, unsigned fail_block, double now);

/* A successful login from client: forget its failures. */
void auth_throttle_success(const struct sockaddr *client);

/* Copy the counters into st. */
void auth_throttle_stats(struct auth_throttle_stats *st);

/* Count one connection refused because its source was blocked. */
void auth_throttle_count_refusal(void);

#endif
