/*
 * gateway.max_per_source: how many sessions each client address (an IPv6
 * client's /64) has open, across all workers. A session takes a slot at accept and gives it back
 * when it closes.
 */
#ifndef MPGW_SRCLIMIT_H
#define MPGW_SRCLIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

/* Take a slot for sa unless it already holds max (0 = no limit). */
bool srclimit_acquire(const struct sockaddr *sa, unsigned max);
/* Give back a slot taken by srclimit_acquire(sa, max > 0). */
void srclimit_release(const struct sockaddr *sa);

#endif
