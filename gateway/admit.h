/*
 * Admission: whether a new connection may become a session (max_sessions,
 * the login throttle's block, max_per_source), and the login throttle
 * around each password or Convert key check. Refusals are counted in
 * stats.h and logged at most once a second.
 */
#ifndef MPGW_ADMIT_H
#define MPGW_ADMIT_H

#include <stdbool.h>
#include <sys/socket.h>

struct gw_conf;
struct session;

struct admit_slot {
	bool open;	/* counted in STAT_OPEN */
	bool source;	/* holds a max_per_source slot */
};

/*
 * May a connection from peer start a session under c at time now? On true
 * slot records what was taken, to be given back with admit_release().
 */
bool admit_connection(const struct gw_conf *c, const struct sockaddr *peer,
    double now, struct admit_slot *slot);
void admit_release(const struct sockaddr *peer, struct admit_slot *slot);

/*
 * Before every password or Convert key check: false if s's source is
 * blocked for failed logins (the check must not run, and the session
 * fails with SESS_RES_THROTTLED). A block that started after the session
 * was accepted counts too.
 */
bool admit_login_allowed(struct session *s);
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
