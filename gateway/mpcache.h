/*
 * The MPTCP capability cache (issue 12): destinations (address and port)
 * whose server answered an MPTCP SYN without MPTCP are remembered for
 * upstream.mptcp_cache_ttl, and dialled with a plain TCP socket meanwhile.
 * An MPTCP socket in fallback costs a relay its splice path and overruns
 * its receive memory (shared/research/relay_perf.md: 0.31 of the TCP path);
 * nearly every server on the Internet is such a destination. After the TTL
 * the destination is probed with MPTCP again.
 *
 * Shared by every worker: the table is split in shards, each with its own
 * lock and a fixed capacity (oldest entry forgotten when full), so no lock
 * covers the whole table and memory is bounded. Thread-safe.
 */
#ifndef MPGW_MPCACHE_H
#define MPGW_MPCACHE_H

#include <stdbool.h>
#include <sys/socket.h>

/* Destinations remembered at most. */
#define MPCACHE_CAPACITY 16384

/* Is dst remembered, at time now (seconds), as not speaking MPTCP? */
bool mpcache_no_mptcp(const struct sockaddr *dst, double now);

/*
 * What a connection to dst showed: mptcp false remembers it until now +
 * ttl; true forgets it (the server speaks MPTCP again).
 */
void mpcache_note(const struct sockaddr *dst, bool mptcp, double now,
    unsigned ttl);

/* Destinations remembered now (some may have expired). */
unsigned mpcache_count(void);

#endif
