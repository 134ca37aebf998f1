/*
 * The metrics endpoint (`[metrics] listen`): `GET /metrics` answered with
 * stats_write_prometheus(), anything else with an HTTP error, one request
 * per connection. It runs on the main thread's event loop, never on a
 * worker's, and never blocks it: sockets are non-blocking, a request head
 * is bounded (HTTP_REQ_MAX), a connection has METRICS_TIMEOUT in all, and
 * at most METRICS_CONNS_MAX are open (a new one closes the oldest that
 * has not sent its request yet), so clients that connect and say nothing
 * cannot keep a scraper out.
 */
#ifndef MPGW_METRICS_H
#define MPGW_METRICS_H

#include <ev.h>
#include <stddef.h>

struct conf_addr;

#define METRICS_CONNS_MAX 16
/* Seconds a connection may take from accept to its last byte sent. */
#define METRICS_TIMEOUT 10.
/* Seconds to wait for the client's EOF after the response. */
#define METRICS_LINGER 2.

/*
 * Listen on a and serve on loop. 0, or -1 with a message in err (the
 * address cannot be bound). Call once.
 */
int metrics_start(struct ev_loop *loop, const struct conf_addr *a,
    char *err, size_t errlen);
/* Close the listener and every connection (NULL-safe to call unstarted). */
void metrics_stop(void);

#endif
