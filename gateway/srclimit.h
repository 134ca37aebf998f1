/*
 * gateway.max_per_source: how many sessions each client source (an IPv4
 * address, or an IPv6 client's /64; lib/addr.h addr_source_key) has open,
 * across all workers. A session takes a slot at accept and gives it back
 * when it closes.
 *
 * The counts live in one table of SRCLIMIT_SOURCES sources (lib/srctab.h:
 * buckets chosen by a keyed hash under a per-process secret, so clients
 * cannot pick addresses that share a chain). A live count is never evicted:
 * when every slot holds an open session's source, a new source is refused.
 *
 * Thread-safe: one mutex guards the table; each call holds it for one
 * lookup.
 */
#ifndef MPGW_SRCLIMIT_H
#define MPGW_SRCLIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

/* Sources counted at once, at most. */
#define SRCLIMIT_SOURCES 8192

/*
 * Take a slot for sa unless its source already holds max (0 = no limit),
 * or it is a new source and SRCLIMIT_SOURCES others hold slots. Anything
 * but AF_INET and AF_INET6 is not counted and always gets one.
 */
bool srclimit_acquire(const struct sockaddr *sa, unsigned max);

/* Give back a slot taken by srclimit_acquire(sa, max > 0). */
void srclimit_release(const struct sockaddr *sa);

/* The number of sources holding slots now. */
unsigned srclimit_sources(void);

#endif
