/*
 * The gateway's counters, one registry for the whole process: every module
 * counts here, and the SIGUSR1 log line (and the metrics endpoint) read
 * from here. Counters are relaxed atomics, safe from any thread.
 */
#ifndef MPGW_STATS_H
#define MPGW_STATS_H

#include <stdint.h>

enum stat_id {
	STAT_ACCEPTED = 0,		/* sessions started */
	STAT_OPEN,			/* sessions open now (a gauge) */
	STAT_REFUSED_MAX_SESSIONS,	/* connections over gateway.max_sessions */
	STAT_REFUSED_PER_SOURCE,	/* over gateway.max_per_source */
	STAT_REFUSED_THROTTLE,		/* from a source blocked for failed logins */
	STAT_LOGIN_FAILURES,		/* failed password or Convert key checks */
	STAT_CONVERT_REPLAYS,		/* replayed Convert messages refused */
	STAT_BYTES_UP,			/* client -> upstream, relayed */
	STAT_BYTES_DOWN,		/* upstream -> client */
};
#define STAT_COUNT (STAT_BYTES_DOWN + 1)

/* Add n to counter id; returns the value after the addition. */
uint64_t stats_add(enum stat_id id, uint64_t n);
/* Subtract n (gauges only). */
void stats_sub(enum stat_id id, uint64_t n);
uint64_t stats_get(enum stat_id id);
/* Its name, for logs ("accepted", "open", ...). */
const char *stats_name(enum stat_id id);
/* One info line with every counter, plus the auth module's own state. */
void stats_log(void);

#endif
