/*
 * The gateway's counters, one registry for the whole process: every module
 * counts here, and the SIGUSR1 log line and the metrics endpoint read from
 * here. Plain counters, labeled counters and histograms are relaxed
 * atomics, safe from any thread and cheap on a worker's path; label values
 * (listener and method names, upstream local addresses) are interned once
 * into bounded tables, a value beyond a table's room being counted as
 * "other". stats_write_prometheus() renders everything in the Prometheus
 * text format for the metrics endpoint (README, "Metrics").
 */
#ifndef MPGW_STATS_H
#define MPGW_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mptcp_subflow;

/*
 * A new counter needs a name in stats_name() and an export in stats.c's
 * stat_export(), both switches without default: it does not build
 * without them. A refusal reason is a STAT_REFUSED_ value exported as
 * mpgw_refused_total{reason="..."}.
 */
enum stat_id {
	STAT_ACCEPTED = 0,		/* sessions started */
	STAT_OPEN,			/* sessions open now (a gauge) */
	STAT_REFUSED_MAX_SESSIONS,	/* connections over gateway.max_sessions */
	STAT_REFUSED_PER_SOURCE,	/* over gateway.max_per_source */
	STAT_REFUSED_THROTTLE,		/* from a source blocked for failed logins */
	STAT_REFUSED_RULES,		/* target addresses an access rule denied */
	STAT_REFUSED_PROXY,		/* PROXY listener: bad sender or header */
	STAT_LOGIN_FAILURES,		/* failed password or Convert key checks */
	STAT_CONVERT_REPLAYS,		/* replayed Convert messages refused */
	STAT_BYTES_UP,			/* client -> upstream, relayed */
	STAT_BYTES_DOWN,		/* upstream -> client */
	STAT_UPSTREAM_MPTCP,		/* upstream connections, MPTCP negotiated */
	STAT_UPSTREAM_FALLBACK,		/* MPTCP sockets that fell back to TCP */
	STAT_UPSTREAM_TCP,		/* plain TCP sockets (upstream.mptcp off) */
	STAT_UPSTREAM_CACHED_NO,	/* plain TCP: the server is known not to */
	STAT_PATH_OVERFLOW,		/* subflows counted as local="other" */
	STAT_STATE_CLIENTS,		/* Redis clients (one per worker; a gauge) */
	STAT_STATE_CONNECTED,		/* of them connected now (a gauge) */
	STAT_STATE_CONNECT_OK,		/* connections made (handshake done) */
	STAT_STATE_CONNECT_FAILED,	/* attempts that failed */
	STAT_STATE_REPLAY_REQUESTS,	/* Convert replay questions to Redis */
	STAT_STATE_REPLAY_ERRORS,	/* of them unanswered: Convert refused */
	STAT_STATE_THROTTLE_REQUESTS,	/* throttle questions to Redis */
	STAT_STATE_THROTTLE_ERRORS,	/* unanswered: in-process throttle used */
	STAT_UDP_OPEN,			/* UDP associations open now (a gauge) */
	STAT_REFUSED_UDP_LIMIT,		/* over gateway.max_udp_associations */
	STAT_UDP_DGRAMS_UP,		/* datagrams client -> destination */
	STAT_UDP_DGRAMS_DOWN,		/* datagrams destination -> client */
	STAT_UDP_DROP_FRAG,		/* FRAG != 0 (RFC 1928: MUST drop) */
	STAT_UDP_DROP_SOURCE,		/* from a source not the client's */
	STAT_UDP_DROP_DENIED,		/* to a destination the rules deny */
	STAT_UDP_DROP_BAD,		/* a malformed SOCKS5 UDP header */
	STAT_UDP_DROP_UNRESOLVED,	/* to a name that did not resolve */
	STAT_UDP_DROP_CONGESTED,	/* a full socket or a full queue */
	STAT_UDP_DROP_UNSOLICITED,	/* from where the client never sent */
	STAT_UDP_DROP_ERROR,		/* sending failed (EMSGSIZE, ...) */
	STAT_BIND_WRONG_PEER,		/* BIND: connections from another peer */
	STAT_CLIENT_MPTCP,		/* sessions whose client leg was MPTCP */
	STAT_CLIENT_TCP,		/* ... plain TCP (or fell back to it) */
};
#define STAT_COUNT (STAT_CLIENT_TCP + 1)

/* Histograms; their buckets are in stats.c. */
enum stat_hist {
	STAT_H_CONNECT = 0,	/* dial start to connected upstream, seconds */
	STAT_H_REPLY,		/* accept to success reply queued, seconds */
	STAT_H_SUBFLOWS,	/* extra subflows of an MPTCP upstream at close */
	STAT_H_CLIENT_SUBFLOWS,	/* ... of an MPTCP client leg */
};
#define STAT_H_COUNT (STAT_H_CLIENT_SUBFLOWS + 1)

/* Local addresses per-path bytes are kept for; more count as "other". */
#define STATS_PATHS_MAX 64

/* Add n to counter id; returns the value after the addition. */
uint64_t stats_add(enum stat_id id, uint64_t n);
/* Subtract n (gauges only). */
void stats_sub(enum stat_id id, uint64_t n);
uint64_t stats_get(enum stat_id id);
/* Its name, for logs ("accepted", "open", ...). */
const char *stats_name(enum stat_id id);
/* Count v (seconds, or a count) into histogram h. */
void stats_observe(enum stat_hist h, double v);

/*
 * A session ended: listener is its front's name (front_ops.name), method
 * the access log's method= and result its enum sess_result. The strings
 * are copied when first seen.
 */
void stats_session_end(const char *listener, const char *method,
    unsigned result);
/* A failed login with method (the access log's method=). */
void stats_auth_failed(const char *method);

/*
 * Per-path bytes of one upstream MPTCP connection. Each sample (n
 * subflows from mptcp_subflows()) adds to the per-address totals what
 * each subflow carried since the connection's previous sample, so a
 * connection sampled twice is counted once, with the larger of the two
 * readings per subflow. *pp starts NULL and is allocated on the first
 * sample (nothing is counted if that fails); stats_paths_free() at close.
 */
struct stats_paths;
void stats_paths_sample(struct stats_paths **pp,
    const struct mptcp_subflow *sf, size_t n);
void stats_paths_free(struct stats_paths **pp);

/*
 * Every metric in the Prometheus text exposition format, version 0.0.4,
 * into f. 0, or -1 if writing to f failed.
 */
int stats_write_prometheus(FILE *f);
/* Its Content-Type. */
#define STATS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One info line with every counter, plus the auth module's own state. */
void stats_log(void);

#endif
