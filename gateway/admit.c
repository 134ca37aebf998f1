#include "gateway/admit.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "auth/throttle.h"
#include "conf/conf.h"
#include "gateway/session.h"
#include "gateway/srclimit.h"
#include "gateway/state.h"
#include "gateway/stats.h"
#include "gateway/worker.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"

/*
 * At most one refusal warning a second for the whole process and each
 * reason (its own *last), so refused clients cannot flood the log, nor
 * one kind of refusal hide another.
 */
static bool
admit_log_refusal(_Atomic double *last, double now)
{
	double prev = atomic_load(last);

	return now - prev >= 1.0 && atomic_compare_exchange_strong(last,
	    &prev, now);
}

static _Atomic double log_max_sessions, log_per_source, log_proxy;

bool
admit_open(const struct gw_conf *c, double now, struct admit_slot *slot)
{
	slot->open = slot->source = false;
	/*
	 * Take the slot first and look at the count it gives: workers
	 * accept in parallel, and a check before the increment lets them
	 * all pass it at once.
	 */
	if (stats_add(STAT_OPEN, 1) > c->max_sessions && c->max_sessions > 0) {
		stats_sub(STAT_OPEN, 1);
		stats_add(STAT_REFUSED_MAX_SESSIONS, 1);
		if (admit_log_refusal(&log_max_sessions, now))
			log_warnx("max_sessions (%u) reached: refusing "
			    "connections", c->max_sessions);
		return false;
	}
	slot->open = true;
	return true;
}

bool
admit_source(const struct gw_conf *c, const struct sockaddr *peer,
    double now, struct admit_slot *slot)
{
	char buf[ADDR_STR_MAX];

	/*
	 * The in-process throttle only, never a round trip (admit.h): it
	 * holds the blocks Redis reported to this instance too.
	 */
	if (auth_throttle_blocked(peer, now)) {
		/* Too many failed logins from there: refuse for a while. */
		stats_add(STAT_REFUSED_THROTTLE, 1);
		auth_throttle_count_refusal();
		admit_release(peer, slot);
		return false;
	}
	if (!srclimit_acquire(peer, c->max_per_source)) {
		stats_add(STAT_REFUSED_PER_SOURCE, 1);
		if (admit_log_refusal(&log_per_source, now))
			log_warnx("max_per_source (%u) reached by %s: refusing "
			    "connections", c->max_per_source, addr_format(peer,
			    buf, sizeof(buf)));
		admit_release(peer, slot);
		return false;
	}
	slot->source = c->max_per_source > 0;
	return true;
}

bool
admit_connection(const struct gw_conf *c, const struct sockaddr *peer,
    double now, struct admit_slot *slot)
{
	return admit_open(c, now, slot) && admit_source(c, peer, now, slot);
}

void
admit_refuse_proxy(const struct sockaddr *peer, const char *why, double now)
{
	char buf[ADDR_STR_MAX];
	uint64_t n = stats_add(STAT_REFUSED_PROXY, 1);

	if (admit_log_refusal(&log_proxy, now))
		log_warnx("PROXY protocol: connection from %s refused: %s (%"
		    PRIu64 " so far)", addr_format(peer, buf, sizeof(buf)), why,
		    n);
}

void
admit_release(const struct sockaddr *peer, struct admit_slot *slot)
{
	if (slot->source)
		srclimit_release(peer);
	if (slot->open)
		stats_sub(STAT_OPEN, 1);
	slot->open = slot->source = false;
}

bool
admit_login_allowed(struct session *s)
{
	if (!auth_throttle_blocked((const struct sockaddr *)&s->peer,
	    ev_now(s->w->loop)))
		return true;
	stats_add(STAT_REFUSED_THROTTLE, 1);
	log_info("session %" PRIu64 ": %s: login refused: address blocked for "
	    "failed logins", s->id, s->client);
	return false;
}

bool
admit_login_ask(struct session *s, struct state_req *r)
{
	return s->w->state != NULL && state_blocked(s->w->state,
	    (const struct sockaddr *)&s->peer, r) == 0;
}

/*
 * Has the client completed the TCP handshake? With TCP Fast Open the
 * gateway reads a client's first bytes in SYN_RECV, before the ACK that
 * shows the SYN's source address is real. A connection reset in SYN_RECV
 * (the real owner of a forged address answers our SYN-ACK with an RST)
 * proves nothing either.
 */
static bool
admit_handshake_done(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
		return false;
	switch (ti.tcpi_state) {
	case TCP_ESTABLISHED:
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSE_WAIT:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
	case TCP_TIME_WAIT:
		return true;
	default:
		return false;
	}
}

/* Count a failed login of s against its source; the delay to hold for. */
static double
admit_count_failure(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	const struct sockaddr *peer = (const struct sockaddr *)&s->peer;
	double now = ev_now(s->w->loop);
	double delay = auth_throttle_fail(peer, s->user[0] != '\0' ? s->user :
	    NULL, c->fail_limit, c->fail_delay_max, c->fail_block, now);
	struct auth_throttle_stats st;

	stats_auth_failed(s->front->method(s));
	if (auth_throttle_blocked(peer, now)) {
		auth_throttle_stats(&st);
		log_warnx("session %" PRIu64 ": %s: %u failed logins: address "
		    "refused for %u s (failed logins so far: %" PRIu64 ", "
		    "refused connections: %" PRIu64 ")", s->id, s->client,
		    c->fail_limit, c->fail_block, st.failures, st.refusals);
	}
	return delay;
}

/* A failure counted in Redis too: the hold waits for its answer. */
struct admit_fail {
	struct state_req r;
	struct session *s;
	double delay;		/* the in-process throttle's */
	double since;
};

/*
 * Redis has counted the failure of af->s (or could not): hold the reply
 * for the delay of every instance's count, less the time the question
 * took. Without an answer the in-process delay stands.
 */
static void
admit_fail_done(struct state_req *r)
{
	struct admit_fail *af = container_of(r, struct admit_fail, r);
	struct session *s = af->s;
	const struct gw_conf *c;
	double delay = af->delay, left;

	if (r->cancelled) {
		free(af);
		return;
	}
	s->sreq = NULL;
	c = sess_conf(s);
	if (r->status == STATE_OK) {
		if (auth_throttle_delay(r->fails, c->fail_delay_max) > delay)
			delay = auth_throttle_delay(r->fails,
			    c->fail_delay_max);
		if (r->block_started)
			log_warnx("session %" PRIu64 ": %s: %u failed logins "
			    "(every instance's): address refused for %u s",
			    s->id, s->client, r->fails, c->fail_block);
	}
	left = delay - (ev_now(s->w->loop) - af->since);
	free(af);
	if (s->state != SESS_HOLD)
		return;
	if (left > 0.001) {
		sess_timer_set(s, left);
		return;
	}
	sess_set_state(s, SESS_CLOSING);
	sess_process(s);
}

void
admit_login_failed(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	struct admit_fail *af;
	double delay;

	if (!admit_handshake_done(s->cfd)) {
		s->login_unproven = true;
		log_debug("session %" PRIu64 ": failed login before the "
		    "handshake completed: counted only once it does", s->id);
		return;
	}
	delay = admit_count_failure(s);
	if (s->w->state != NULL && (af = calloc(1, sizeof(*af))) != NULL) {
		af->r.done = admit_fail_done;
		af->s = s;
		af->delay = delay;
		af->since = ev_now(s->w->loop);
		if (state_fail(s->w->state, (const struct sockaddr *)&s->peer,
		    s->user[0] != '\0' ? s->user : NULL, c->fail_limit,
		    c->fail_block, &af->r) == 0) {
			s->sreq = &af->r;
			sess_set_state(s, SESS_HOLD);
			/* A bound only: the answer, or its failure, comes first. */
			sess_timer_set(s, delay > 2 * STATE_TIMEOUT ? delay :
			    2 * STATE_TIMEOUT);
			return;
		}
		free(af);
	}
	if (delay > 0) {
		sess_set_state(s, SESS_HOLD);
		sess_timer_set(s, delay);
	}
}

void
admit_session_end(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);

	if (s->login_unproven && admit_handshake_done(s->cfd)) {
		(void)admit_count_failure(s);
		/* Nobody waits: the answer only teaches this instance a block. */
		if (s->w->state != NULL)
			(void)state_fail(s->w->state, (const struct sockaddr *)
			    &s->peer, s->user[0] != '\0' ? s->user : NULL,
			    c->fail_limit, c->fail_block, NULL);
	}
	s->login_unproven = false;
}

void
admit_login_ok(struct session *s)
{
	auth_throttle_success((const struct sockaddr *)&s->peer, s->user,
	    ev_now(s->w->loop));
	if (s->w->state != NULL)
		(void)state_login_ok(s->w->state, (const struct sockaddr *)
		    &s->peer, s->user);
}
