/*
 * Name resolution on a worker's event loop, with c-ares: no thread is ever
 * held by a lookup, so a resolver that never answers slows only the names
 * that need it.
 *
 * A lookup runs in two steps:
 *   1. the hosts file (/etc/hosts, read at every lookup: the file that
 *      `ip netns exec` bind-mounts) and numeric names ("192.0.2.1",
 *      "2001:db8::1"), answered at once without touching the network and
 *      without counting against any limit;
 *   2. only then DNS, as /etc/resolv.conf says (servers, search, ndots,
 *      timeout, attempts; the file is checked for changes at every DNS
 *      lookup, as glibc does). Each client source (an IPv4 address or an
 *      IPv6 /64, across all workers) may have at most max_per_source DNS
 *      lookups in flight; one more fails at once with RESOLVE_LIMIT.
 *
 * Answers are ordered for Happy Eyeballs (RFC 8305 section 4): families
 * alternate, starting with the one ranked first (RFC 6724 order, as
 * getaddrinfo gives it), at most RESOLVE_MAX_ADDRS addresses, each with
 * the requested port.
 *
 * One struct resolver per event loop; everything here runs on that loop's
 * thread except the per-source counting, which is shared and locked.
 */
#ifndef MPGW_RESOLVE_H
#define MPGW_RESOLVE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVE_MAX_ADDRS 16

enum resolve_status {
	RESOLVE_OK = 0,
	/*
	 * The name cannot be resolved: no such name, no IPv4/IPv6 address,
	 * server failure or refusal, no answer in time. SOCKS5 04, Convert 97.
	 */
	RESOLVE_UNRESOLVABLE,
	/* The source has max_per_source DNS lookups in flight. As above. */
	RESOLVE_LIMIT,
	/* The gateway's own trouble (memory, sockets). SOCKS5 01, Convert 65. */
	RESOLVE_FAILED,
};

struct resolve_result {
	enum resolve_status status;
	const char *msg;	/* for the log; static, never NULL */
	size_t n;		/* addresses, 0 unless RESOLVE_OK */
	struct sockaddr_storage addrs[RESOLVE_MAX_ADDRS];
	socklen_t lens[RESOLVE_MAX_ADDRS];
};

struct resolver;
struct resolve_req;

/*
 * A resolver on loop: reads /etc/resolv.conf. NULL with a message in err
 * on failure. Its watchers are active (and keep the loop running) only
 * while c-ares queries, cancelled ones included, or results not yet
 * delivered are pending.
 */
struct resolver *resolver_new(struct ev_loop *loop, char *err, size_t errlen);

/*
 * Stop everything and free r. Requests still open are dropped: their done()
 * is never called and their handles become invalid. Not from inside a
 * done() callback.
 */
void resolver_free(struct resolver *r);

/*
 * Resolve name (NUL-terminated, as a client sent it) for port (host
 * order). client is the source charged for a DNS lookup (NULL: nobody);
 * max_per_source is that source's cap on DNS lookups in flight across
 * all workers (0: no cap). Returns a handle for resolve_cancel(), or NULL
 * with errno (ENOMEM) when the request could not even be queued; every
 * other outcome, a refusal over the cap included, comes through done().
 *
 * done(arg, res) runs on the loop thread, never from inside
 * resolve_start(); res is valid only during the call. The request is
 * freed when done() returns: do not cancel it after that.
 */
struct resolve_req *resolve_start(struct resolver *r, const char *name,
    uint16_t port, const struct sockaddr *client, unsigned max_per_source,
    void (*done)(void *arg, const struct resolve_result *res), void *arg);

/*
 * Forget req (its session closed): done() will not be called, and req's
 * slot no longer counts against its source's cap. A DNS query already sent
 * finishes inside c-ares holding only a few bytes. req must be a live
 * handle (not yet delivered to done()).
 */
void resolve_cancel(struct resolve_req *req);

/*
 * c-ares queries of r not yet finished, cancelled ones included (for tests
 * and counters).
 */
unsigned resolver_inflight(const struct resolver *r);

#endif
