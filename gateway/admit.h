/*
 * Admission: whether a new connection may become a session (max_sessions,
 * the login throttle's block, max_per_source), and the login throttle
 * around each password or Convert key check. Refusals are counted in
 * stats.h and logged at most once a second (per reason).
 *
 * Admission takes two steps, so that behind a balancer the per-source
 * checks judge the client's address from the PROXY header, not the
 * balancer's (nginx: realip before limit_conn): admit_open() at accept,
 * admit_source() once the client's address is known. A listener without
 * PROXY knows it at accept and runs both at once (admit_connection).
 *
 * With [state] redis the throttle is shared by every instance (state.h):
 * failures and successes go to Redis as well as to the in-process
 * throttle, which keeps counting so that it can take over at once when
 * Redis is unreachable, and which learns every block Redis reports. The
 * accept-time check asks only the in-process throttle: a round trip to
 * Redis for every connection would slow every client for the sake of a
 * few, and a blocked source still meets the shared block before its
 * first password check here (admit_login_ask), after which this instance
 * refuses it at accept for the rest of the block.
 */
#ifndef MPGW_ADMIT_H
#define MPGW_ADMIT_H

#include <stdbool.h>
#include <sys/socket.h>

struct gw_conf;
struct session;
struct state_req;

struct admit_slot {
	bool open;	/* counted in STAT_OPEN */
	bool source;	/* holds a max_per_source slot */
};

/*
 * May one more connection be open under c (max_sessions) at time now? On
 * true slot records it, to be given back with admit_release().
 */
bool admit_open(const struct gw_conf *c, double now, struct admit_slot *slot);
/*
 * May a connection from client, which holds slot from admit_open(), go
 * on (the throttle's block, max_per_source)? On true slot records the
 * source's slot too; on false everything slot held is given back.
 */
bool admit_source(const struct gw_conf *c, const struct sockaddr *client,
    double now, struct admit_slot *slot);
/* admit_open() and admit_source() at once. */
bool admit_connection(const struct gw_conf *c, const struct sockaddr *peer,
    double now, struct admit_slot *slot);
/* Give back what slot holds; client is the address admit_source() saw. */
void admit_release(const struct sockaddr *client, struct admit_slot *slot);

/*
 * A connection to a PROXY protocol listener from peer was refused (why:
 * for the log): count it (STAT_REFUSED_PROXY) and warn, at most once a
 * second.
 */
void admit_refuse_proxy(const struct sockaddr *peer, const char *why,
    double now);

/*
 * Before every password or Convert key check: false if s's source is
 * blocked for failed logins (the check must not run, and the session
 * fails with SESS_RES_THROTTLED). A block that started after the session
 * was accepted counts too.
 */
bool admit_login_allowed(struct session *s);
/*
 * With the shared state: after admit_login_allowed() said yes, ask Redis
 * whether s's source is blocked elsewhere, with r (its done() set by the
 * caller), and return true: the caller waits for r->done(), then asks
 * admit_login_allowed() again, which by then knows any block Redis
 * reported. false when there is no shared state or it is unreachable
 * (the in-process throttle's yes stands); nothing is asked then.
 */
bool admit_login_ask(struct session *s, struct state_req *r);
/*
 * A failed login (password or Convert key) by s, whose failure reply is
 * queued: count it against the client's source, and hold the reply back
 * for the throttle's growing delay (-> SESS_HOLD; other clients are not
 * slowed). A client that has not completed the TCP handshake (its
 * message came in a SYN, TCP Fast Open) has not proven its address: the
 * failure is counted only if the handshake completes before the session
 * ends (admit_session_end), so spoofed SYNs cannot block a victim.
 */
void admit_login_failed(struct session *s);
/* A successful login by s. */
void admit_login_ok(struct session *s);
/* The session is closing: settle what admission still owes it. */
void admit_session_end(struct session *s);

#endif
