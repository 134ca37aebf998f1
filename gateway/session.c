#include "gateway/session.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/rules.h"
#include "conf/conf.h"
#include "gateway/access.h"
#include "gateway/bind.h"
#include "gateway/dial.h"
#include "gateway/pool.h"
#include "gateway/proxyhdr.h"
#include "gateway/resolve.h"
#include "gateway/snap.h"
#include "gateway/state.h"
#include "gateway/stats.h"
#include "gateway/tlsio.h"
#include "gateway/udp.h"
#include "gateway/worker.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"

static atomic_uint_fast64_t sess_next_id = 1;

static const char *
sess_state_name(enum sess_state st)
{
	switch (st) {
	case SESS_PROXY:
		return "PROXY";
	case SESS_GREETING:
		return "GREETING";
	case SESS_TLS:
		return "TLS";
	case SESS_AUTH:
		return "AUTH";
	case SESS_REQUEST:
		return "REQUEST";
	case SESS_CONVERT:
		return "CONVERT";
	case SESS_RESOLVE:
		return "RESOLVE";
	case SESS_CONNECT:
		return "CONNECT";
	case SESS_REPLY:
		return "REPLY";
	case SESS_EARLY:
		return "EARLY";
	case SESS_TLS_CLOSE:
		return "TLS_CLOSE";
	case SESS_RELAY:
		return "RELAY";
	case SESS_HOLD:
		return "HOLD";
	case SESS_CLOSING:
		return "CLOSING";
	case SESS_LINGER:
		return "LINGER";
	case SESS_UDP:
		return "UDP";
	case SESS_BIND_WAIT:
		return "BIND_WAIT";
	}
	return "?";
}

const char *
sess_result_name(enum sess_result r)
{
	switch (r) {
	case SESS_RES_OK:
		return "ok";
	case SESS_RES_BAD_GREETING:
		return "bad-greeting";
	case SESS_RES_NO_ACCEPTABLE_METHOD:
		return "no-acceptable-method";
	case SESS_RES_BAD_AUTH_MESSAGE:
		return "bad-auth-message";
	case SESS_RES_AUTH_FAILED:
		return "auth-failed";
	case SESS_RES_THROTTLED:
		return "throttled";
	case SESS_RES_BAD_REQUEST:
		return "bad-request";
	case SESS_RES_BAD_COMMAND:
		return "bad-command";
	case SESS_RES_DENIED:
		return "denied";
	case SESS_RES_NXDOMAIN:
		return "nxdomain";
	case SESS_RES_RESOLVE_FAILED:
		return "resolve-failed";
	case SESS_RES_RESOLVE_TIMEOUT:
		return "resolve-timeout";
	case SESS_RES_RESOLVE_LIMIT:
		return "resolve-limit";
	case SESS_RES_REFUSED:
		return "refused";
	case SESS_RES_NET_UNREACHABLE:
		return "net-unreachable";
	case SESS_RES_HOST_UNREACHABLE:
		return "host-unreachable";
	case SESS_RES_CONNECT_TIMEOUT:
		return "connect-timeout";
	case SESS_RES_CONNECT_FAILED:
		return "connect-failed";
	case SESS_RES_VIA_REFUSED:
		return "via-refused";
	case SESS_RES_VIA_PROTOCOL:
		return "via-protocol";
	case SESS_RES_CLIENT_CLOSED:
		return "client-closed";
	case SESS_RES_CLIENT_ERROR:
		return "client-error";
	case SESS_RES_CLIENT_GONE:
		return "client-gone";
	case SESS_RES_RESET:
		return "reset";
	case SESS_RES_RELAY_ERROR:
		return "relay-error";
	case SESS_RES_HANDSHAKE_TIMEOUT:
		return "handshake-timeout";
	case SESS_RES_IDLE_TIMEOUT:
		return "idle-timeout";
	case SESS_RES_SHUTDOWN:
		return "shutdown";
	case SESS_RES_NO_MEMORY:
		return "no-memory";
	case SESS_RES_SYSTEM_ERROR:
		return "system-error";
	case SESS_RES_TLS_SETUP_FAILED:
		return "tls-setup-failed";
	case SESS_RES_TLS_HANDSHAKE_FAILED:
		return "tls-handshake-failed";
	case SESS_RES_TLS_CLOSE_FAILED:
		return "tls-close-failed";
	case SESS_RES_TLS_LOGIN_PROTOCOL:
		return "tls-login-protocol";
	case SESS_RES_CONVERT_MALFORMED:
		return "convert-malformed";
	case SESS_RES_CONVERT_NO_COOKIE:
		return "convert-no-cookie";
	case SESS_RES_CONVERT_BAD_COOKIE:
		return "convert-bad-cookie";
	case SESS_RES_CONVERT_NO_AUTH:
		return "convert-no-auth";
	case SESS_RES_CONVERT_UNKNOWN_USER:
		return "convert-unknown-user";
	case SESS_RES_CONVERT_BAD_MAC:
		return "convert-bad-mac";
	case SESS_RES_CONVERT_STALE:
		return "convert-stale";
	case SESS_RES_CONVERT_REPLAY:
		return "convert-replay";
	case SESS_RES_CONVERT_REPLAY_CACHE_FULL:
		return "convert-replay-cache-full";
	case SESS_RES_CONVERT_BAD_ADDRESS:
		return "convert-bad-address";
	case SESS_RES_STATE_UNAVAILABLE:
		return "state-unavailable";
	case SESS_RES_UDP_LIMIT:
		return "udp-limit";
	case SESS_RES_UPSTREAM_CLOSED:
		return "upstream-closed";
	case SESS_RES_BIND_TIMEOUT:
		return "bind-timeout";
	}
	return "?";
}

void
sess_set_state(struct session *s, enum sess_state st)
{
	log_debug("session %" PRIu64 ": %s -> %s", s->id,
	    sess_state_name(s->state), sess_state_name(st));
	s->state = st;
}

void
sess_set_result(struct session *s, enum sess_result r)
{
	if (s->result == SESS_RES_OK)
		s->result = r;
}

const struct gw_conf *
sess_conf(const struct session *s)
{
	return &s->snap->conf;
}

void
sess_watch_client(struct session *s, int events)
{
	struct ev_loop *loop = s->w->loop;

	if (ev_is_active(&s->cio) && (s->cio.events & (EV_READ | EV_WRITE)) ==
	    events)
		return;
	ev_io_stop(loop, &s->cio);
	if (events == 0)
		return;
	ev_io_set(&s->cio, s->cfd, events);
	ev_io_start(loop, &s->cio);
}

void
sess_timer_set(struct session *s, ev_tstamp after)
{
	s->timer.repeat = after;
	ev_timer_again(s->w->loop, &s->timer);
}

void
sess_queue(struct session *s, const uint8_t *p, size_t n)
{
	if (sizeof(s->out) - s->out_len < n) {
		/* Cannot happen: one small message is queued at a time. */
		log_warnx("session %" PRIu64 ": reply overflow", s->id);
		return;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

void
sess_consume(struct session *s, size_t n)
{
	memmove(s->in, s->in + n, s->in_len - n);
	s->in_len -= n;
}

void
sess_cancel_job(struct session *s)
{
	if (s->job != NULL) {
		s->job->cancelled = true;
		s->job = NULL;
	}
	state_cancel(&s->sreq);
}

/* Send queued bytes: 1 all sent, 0 some left, -1 client failed. */
static int
sess_flush(struct session *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = s->cx.ops->send(&s->cx, s->out + s->out_off,
		    s->out_len - s->out_off);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		s->out_off += (size_t)n;
	}
	s->out_off = s->out_len = 0;
	return 1;
}

void
sess_fail(struct session *s, uint8_t rep, enum sess_result r)
{
	sess_cancel_job(s);
	dial_free(s);
	s->result = r;
	/* After an early success reply the only way to say no is an RST. */
	if (s->early)
		sess_reset(s);
	else
		s->front->reply_fail(s, rep);
}

bool
sess_rules_allow(struct session *s, uint8_t cmd, const struct auth_target *t,
    const char *fmt, ...)
{
	const char *why = NULL;
	char what[SESS_ESC_MAX];
	va_list ap;

	if (auth_rules_check(sess_conf(s), (const struct sockaddr *)&s->peer,
	    s->user, cmd, t, &why) == CONF_ALLOW)
		return true;
	stats_add(STAT_REFUSED_RULES, 1);
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_info("session %" PRIu64 ": %s: %s denied by %s", s->id, s->client,
	    what, why != NULL ? why : "a rule");
	return false;
}

struct resolve_req *
sess_resolve_dst(struct session *s,
    void (*done)(void *arg, const struct resolve_result *res), void *arg)
{
	struct resolve_req *r;

	r = resolve_start(s->w->resolver, s->req.dst.u.name, s->req.dst.port,
	    (const struct sockaddr *)&s->peer, sess_conf(s)->dns_per_source,
	    done, arg);
	if (r == NULL) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_NO_MEMORY);
		return NULL;
	}
	sess_set_state(s, SESS_RESOLVE);
	sess_timer_set(s, sess_conf(s)->connect_timeout);
	return r;
}

void
sess_reply_early(struct session *s)
{
	s->early = true;
	socks5_addr_format(&s->req.dst, s->target, sizeof(s->target));
	s->front->reply_ok(s, NULL);
}

static enum stat_id
sess_upstream_stat(enum sess_upstream up)
{
	switch (up) {
	case SESS_UP_TCP:
		return STAT_UPSTREAM_TCP;
	case SESS_UP_MPTCP:
		return STAT_UPSTREAM_MPTCP;
	case SESS_UP_FALLBACK:
		return STAT_UPSTREAM_FALLBACK;
	case SESS_UP_CACHED_NO:
		return STAT_UPSTREAM_CACHED_NO;
	}
	return STAT_UPSTREAM_TCP;
}

void
sess_dialed(struct session *s, int fd, enum sess_upstream up)
{
	struct sockaddr_storage bnd;
	socklen_t len = sizeof(bnd);

	stats_observe(STAT_H_CONNECT, ev_now(s->w->loop) - s->dial_started);
	stats_add(sess_upstream_stat(up), 1);
	/* The reply (and 0x83's TLS close) get their own time. */
	sess_timer_set(s, sess_conf(s)->handshake_timeout);
	s->ufd = fd;
	s->upstream = up;
	s->upstream_mptcp = up == SESS_UP_MPTCP || up == SESS_UP_FALLBACK;
	xport_plain(&s->ux, fd);
	if (s->udp != NULL) {
		/* The association's connection to the concentrator. */
		udp_dialed(s);
		return;
	}
	if (s->early) {
		/* The client has had its reply. */
		sess_start_relay(s);
		return;
	}
	if (getsockname(fd, (struct sockaddr *)&bnd, &len) == -1) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_SYSTEM_ERROR);
		return;
	}
	s->front->reply_ok(s, (const struct sockaddr *)&bnd);
	if (s->state == SESS_REPLY)
		stats_observe(STAT_H_REPLY, ev_now(s->w->loop) - s->started);
}

/* --- RELAY ------------------------------------------------------------ */

static void
relay_done(struct relay *r, int err)
{
	struct session *s = container_of(r, struct session, relay);

	if (err != 0)
		sess_set_result(s, err == ECONNRESET ? SESS_RES_RESET :
		    SESS_RES_RELAY_ERROR);
	sess_close(s);
}

/*
 * Is the client's socket MPTCP (an MPTCP client on our MPTCP listener;
 * plain TCP clients get plain TCP sockets)? Asked once, when needed.
 */
static bool
sess_client_mptcp(struct session *s)
{
	socklen_t len = sizeof(int);
	int proto = 0;

	if (s->client_proto == 0 && getsockopt(s->cfd, SOL_SOCKET,
	    SO_PROTOCOL, &proto, &len) == 0)
		s->client_proto = (uint16_t)proto;
	return s->client_proto == IPPROTO_MPTCP;
}

/* Merge a fresh MPTCP sample of fd into *m: most subflows seen wins. */
static void
sess_sample_leg(int fd, struct mptcp_stat *m)
{
	struct mptcp_stat st = { 0 };

	if (fd == -1)
		return;
	mptcp_stat(fd, &st);
	m->mptcp = m->mptcp || st.mptcp;
	if (st.subflows > m->subflows)
		m->subflows = st.subflows;
}

/*
 * Sample both legs' MPTCP state, and what each upstream path carried so
 * far into the per-path bytes (stats.h counts each byte once over several
 * samples).
 */
static void
sess_sample(struct session *s)
{
	struct mptcp_subflow sf[MPTCP_SUBFLOWS_MAX];
	int n;

	/* Plain TCP legs have no MPTCP state to ask about. */
	if (s->upstream_mptcp)
		sess_sample_leg(s->ufd, &s->mst);
	if (sess_client_mptcp(s))
		sess_sample_leg(s->cfd, &s->cmst);
	if (s->upstream_mptcp && s->mst.mptcp &&
	    (n = mptcp_subflows(s->ufd, sf, nitems(sf))) > 0)
		stats_paths_sample(&s->paths, sf, (size_t)n);
}

/*
 * Extra subflows may be gone by the time the session closes: note the
 * MPTCP state of both legs while the connection is still whole.
 */
static void
relay_first_eof(struct relay *r)
{
	struct session *s = container_of(r, struct session, relay);

	sess_sample(s);
}

/*
 * relay = auto: splice() where it moves pages, i.e. when both sockets are
 * plain TCP; an MPTCP socket's splice copies through recvmsg on current
 * kernels, and measured slower than our buffers (README, Performance).
 */
static bool
sess_use_splice(struct session *s)
{
	const char *mode = sess_conf(s)->relay;

	if (strcmp(mode, "auto") != 0)
		return strcmp(mode, "splice") == 0;
	return !s->upstream_mptcp && !sess_client_mptcp(s) &&
	    s->client_proto == IPPROTO_TCP;
}

void
sess_start_relay(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);

	if (s->udp != NULL) {
		/* UDP ASSOCIATE: datagrams, not a byte stream. */
		udp_start(s);
		return;
	}
	if (s->ufd == -1) {
		/* Replied early: the first bytes, then the dial. */
		sess_set_state(s, SESS_EARLY);
		sess_timer_set(s, c->early_wait_ms / 1000.);
		sess_process(s);
		return;
	}
	sess_watch_client(s, 0);
	sess_set_state(s, SESS_RELAY);
	if (c->idle_timeout > 0)
		sess_timer_set(s, c->idle_timeout);
	else
		ev_timer_stop(s->w->loop, &s->timer);
	s->relay.first_eof = relay_first_eof;
	if (relay_start(&s->relay, s->w, &s->cx, &s->ux, sess_use_splice(s),
	    s->in, s->in_len, relay_done) == -1) {
		sess_set_result(s, SESS_RES_RELAY_ERROR);
		sess_close(s);
		return;
	}
	sess_input_done(s);
}

void
sess_input_done(struct session *s)
{
	if (s->in != NULL) {
		/* It may have held a password. */
		explicit_bzero(s->in, SESS_IN_MAX);
		free(s->in);
		s->in = NULL;
	}
	s->in_len = 0;
}

/* --- CLOSING, LINGER -------------------------------------------------- */

/*
 * Closing after a failure, the reply sent: finish the client's write side
 * (TLS close_notify), shutdown(SHUT_WR) and linger until the client's EOF.
 * Closing with unread client bytes would make the kernel send an RST that
 * can destroy the reply in flight.
 */
static int
sess_closing(struct session *s)
{
	int rc;

	/*
	 * A failed login from an address the handshake has not proven yet
	 * waits for it (admit.c): no FIN and no RST until the client shows
	 * itself or the linger time ends.
	 */
	if (s->login_unproven) {
		sess_timer_set(s, SESS_LINGER_TIME);
		sess_set_state(s, SESS_LINGER);
		return 1;
	}
	if (s->reset) {
		sess_close(s);
		return -1;
	}
	rc = s->cx.ops->close_write(&s->cx);
	if (rc == 0) {
		sess_watch_client(s, xport_wait_events(&s->cx));
		return 0;
	}
	shutdown(s->cfd, SHUT_WR);
	sess_timer_set(s, SESS_LINGER_TIME);
	sess_set_state(s, SESS_LINGER);
	return 1;
}

void
sess_reset(struct session *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(s->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	s->in_len = 0;
	s->out_len = s->out_off = 0;
	s->reset = true;
	sess_set_state(s, SESS_CLOSING);
}

/* Drain the client until its EOF (or the linger timer). */
static void
sess_linger(struct session *s)
{
	char sink[512];
	ssize_t n;

	/* A bounded drain per wakeup, so a flooding client cannot hog it. */
	for (int i = 0; i < 64; i++) {
		n = recv(s->cfd, sink, sizeof(sink), 0);
		if (n > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		sess_close(s);
		return;
	}
	sess_watch_client(s, EV_READ);
}

/* --- the state machine ------------------------------------------------ */

/* States in which the core reads client bytes into s->in for the front. */
static bool
sess_reads_input(const struct session *s)
{
	switch (s->state) {
	case SESS_GREETING:
	case SESS_REQUEST:
	case SESS_EARLY:
	case SESS_BIND_WAIT:	/* bytes for the peer, or the client's EOF */
		return true;
	case SESS_CONVERT:
		/*
		 * Not while the shared state is asked about the message: a
		 * client's FIN behind it must wait for the relay.
		 */
		return s->sreq == NULL;
	case SESS_AUTH:
		return s->job == NULL && s->sreq == NULL;
	case SESS_PROXY:	/* proxyhdr.c reads the header itself */
	case SESS_TLS:
	case SESS_RESOLVE:
	case SESS_CONNECT:
	case SESS_REPLY:
	case SESS_TLS_CLOSE:
	case SESS_RELAY:
	case SESS_HOLD:
	case SESS_CLOSING:
	case SESS_LINGER:
	case SESS_UDP:		/* udp.c watches the connection itself */
		return false;
	}
	return false;
}

void
sess_process(struct session *s)
{
	for (;;) {
		enum sess_state st = s->state;
		int rc = 0;

		if (st == SESS_HOLD) {
			sess_watch_client(s, 0);
			return;
		}
		if (st == SESS_LINGER) {
			sess_linger(s);
			return;
		}
		if (s->out_len > 0) {
			rc = sess_flush(s);
			if (rc == -1) {
				sess_set_result(s, SESS_RES_CLIENT_GONE);
				sess_close(s);
				return;
			}
			if (rc == 0) {
				/* Reading while a reply waits would only queue more. */
				sess_watch_client(s, EV_WRITE);
				return;
			}
		}
		switch (st) {
		case SESS_PROXY:
			rc = proxyhdr_step(s);
			break;
		case SESS_GREETING:
		case SESS_TLS:
		case SESS_AUTH:
		case SESS_REQUEST:
		case SESS_CONVERT:
		case SESS_TLS_CLOSE:
			rc = s->front->step(s);
			break;
		case SESS_REPLY:
			rc = s->front->after_reply(s);
			break;
		case SESS_CLOSING:
			rc = sess_closing(s);
			break;
		case SESS_EARLY:
			if (s->in_len > 0) {
				dial_start(s);
				rc = 1;
			}
			break;
		case SESS_RESOLVE:
		case SESS_CONNECT:
		case SESS_RELAY:
		case SESS_HOLD:
		case SESS_LINGER:
		case SESS_UDP:
		case SESS_BIND_WAIT:
			rc = 0;
			break;
		}
		if (rc == -1)
			return;
		if (rc == 0 && s->state == st && s->out_len == 0)
			break;
	}
	/* Waiting: for input, a pool job, the resolver or a connect. */
	if (s->state == SESS_TLS || s->state == SESS_TLS_CLOSE) {
		sess_watch_client(s, xport_wait_events(&s->cx));
	} else if (s->state == SESS_PROXY) {
		sess_watch_client(s, EV_READ);
	} else if (s->state == SESS_CLOSING) {
		/* sess_closing() set the watcher. */
	} else if (sess_reads_input(s)) {
		sess_watch_client(s, s->in_len >= SESS_IN_MAX ? 0 :
		    xport_wait_events(&s->cx));
		/* Decrypted input OpenSSL holds never wakes the watcher. */
		if (s->cx.ops->pending(&s->cx) && s->in_len < SESS_IN_MAX)
			ev_feed_event(s->w->loop, &s->cio, EV_READ);
	} else
		sess_watch_client(s, 0);
}

static void
client_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct session *s = container_of(io, struct session, cio);
	ssize_t n;

	(void)loop;
	if (sess_reads_input(s) && ((revents & EV_READ) ||
	    s->cx.ops->want_write(&s->cx)) && s->in_len < SESS_IN_MAX) {
		n = s->cx.ops->recv(&s->cx, s->in + s->in_len,
		    SESS_IN_MAX - s->in_len);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			sess_set_result(s, n == 0 ? SESS_RES_CLIENT_CLOSED :
			    SESS_RES_CLIENT_ERROR);
			sess_close(s);
			return;
		}
		if (n > 0)
			s->in_len += (size_t)n;
	}
	sess_process(s);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct session *s = container_of(t, struct session, timer);
	ev_tstamp idle, left;

	(void)revents;
	switch (s->state) {
	case SESS_PROXY:
		proxyhdr_timeout(s);
		return;
	case SESS_GREETING:
	case SESS_TLS:
	case SESS_AUTH:
	case SESS_REQUEST:
	case SESS_CONVERT:
	case SESS_REPLY:
	case SESS_TLS_CLOSE:
		sess_set_result(s, SESS_RES_HANDSHAKE_TIMEOUT);
		sess_close(s);
		return;
	case SESS_RESOLVE:
		sess_fail(s, SOCKS5_REP_HOST_UNREACHABLE,
		    SESS_RES_RESOLVE_TIMEOUT);
		sess_process(s);
		return;
	case SESS_EARLY:
		/* No first bytes (the server speaks first): dial without. */
		dial_start(s);
		sess_process(s);
		return;
	case SESS_CONNECT:
		sess_fail(s, SOCKS5_REP_TTL_EXPIRED, SESS_RES_CONNECT_TIMEOUT);
		sess_process(s);
		return;
	case SESS_RELAY:
		/* libev's advice: keep one timer, check the last activity. */
		idle = sess_conf(s)->idle_timeout;
		left = s->relay.last_active + idle - ev_now(loop);
		if (left > 0.001) {
			t->repeat = left;
			ev_timer_again(loop, t);
			return;
		}
		sess_set_result(s, SESS_RES_IDLE_TIMEOUT);
		sess_close(s);
		return;
	case SESS_HOLD:
		/* The throttle's delay is over: send the failure reply. */
		sess_set_state(s, SESS_CLOSING);
		sess_process(s);
		return;
	case SESS_CLOSING:
	case SESS_LINGER:
		sess_close(s);
		return;
	case SESS_UDP:
		udp_timer(s);
		return;
	case SESS_BIND_WAIT:
		bind_timer(s);
		return;
	}
}

/* --- close ------------------------------------------------------------ */

/* The access-log line and the counters of a session that ends. */
static void
sess_account(struct session *s)
{
	struct worker *w = s->w;
	struct access_entry e;
	char extra[512];

	sess_sample(s);
	memset(&e, 0, sizeof(e));
	e.id = s->id;
	e.client = s->client;
	e.user = s->user;
	e.method = s->front->method(s);
	e.target = s->target[0] ? s->target : NULL;
	e.result = sess_result_name(s->result);
	e.mptcp = s->upstream == SESS_UP_CACHED_NO ? "cached-no" :
	    s->mst.mptcp ? "yes" : "no";
	e.subflows = s->mst.subflows;
	e.client_mptcp = s->cmst.mptcp;
	e.client_subflows = s->cmst.subflows;
	e.early = s->early;
	e.up = s->up_syn + s->relay.up.bytes;
	e.down = s->relay.down.bytes;
	e.duration = ev_now(w->loop) - s->started;
	if (s->udp != NULL)
		e.extra = udp_access(s, extra, sizeof(extra), &e.up, &e.down);
	else if (s->bind != NULL)
		e.extra = bind_access(s, extra, sizeof(extra));
	admit_session_end(s);
	access_write(&e);
	stats_add(STAT_BYTES_UP, e.up);
	stats_add(STAT_BYTES_DOWN, e.down);
	stats_session_end(s->front->name, e.method, s->result);
	if (s->ufd != -1 && s->mst.mptcp)
		stats_observe(STAT_H_SUBFLOWS, s->mst.subflows);
	stats_add(s->cmst.mptcp ? STAT_CLIENT_MPTCP : STAT_CLIENT_TCP, 1);
	if (s->cmst.mptcp)
		stats_observe(STAT_H_CLIENT_SUBFLOWS, s->cmst.subflows);
}

void
sess_close(struct session *s)
{
	struct worker *w = s->w;

	sess_cancel_job(s);
	if (s->state != SESS_PROXY)
		sess_account(s);
	stats_paths_free(&s->paths);
	relay_stop(&s->relay);
	dial_free(s);
	udp_free(s);
	bind_free(s);
	ev_io_stop(w->loop, &s->cio);
	ev_timer_stop(w->loop, &s->timer);
	ev_timer_stop(w->loop, &s->kick);
	if (s->ufd != -1)
		close(s->ufd);
	tlsio_free(s->tls);
	admit_release((const struct sockaddr *)&s->peer, &s->admit);
	close(s->cfd);
	snap_unref(s->snap);
	TAILQ_REMOVE(&w->sessions, s, entry);
	w->n_sessions--;
	sess_input_done(s);
	free(s);
	if (w->draining && w->n_sessions == 0)
		ev_break(w->loop, EVBREAK_ALL);
}

void
sess_close_all(struct worker *w)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&w->sessions)) != NULL) {
		sess_set_result(s, SESS_RES_SHUTDOWN);
		sess_close(s);
	}
}

/* --- accept ----------------------------------------------------------- */

static const struct front_ops *
sess_front_of(enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_SOCKS5:
		return &front_socks5;
	case LISTENER_SOCKS5_TLS:
		return &front_socks5_tls;
	case LISTENER_CONVERT:
		return &front_convert;
	}
	return &front_socks5;
}

void
sess_admitted(struct session *s)
{
	stats_add(STAT_ACCEPTED, 1);
	log_debug("session %" PRIu64 ": accepted from %s by worker %u", s->id,
	    s->client, s->w->idx);
	if (s->state != s->front->first)
		sess_set_state(s, s->front->first);
	sess_timer_set(s, sess_conf(s)->handshake_timeout);
	sess_watch_client(s, EV_READ);
	if (s->front->start != NULL)
		s->front->start(s);
}

void
sess_accept(struct worker *w, struct listener *l, int fd,
    const struct sockaddr *peer, socklen_t peer_len)
{
	struct gw_snap *snap = snap_current();
	const struct gw_conf *c = &snap->conf;
	ev_tstamp now = ev_now(w->loop);
	struct admit_slot slot;
	struct session *s;

	/*
	 * Behind a balancer (PROXY) only max_sessions can be judged now:
	 * the per-source checks wait for the client's address in the
	 * header (proxyhdr.c), which only proxy_from sources may send.
	 */
	if (l->proxy ? !proxyhdr_sender_ok(c, peer, now) ||
	    !admit_open(c, now, &slot) : !admit_connection(c, peer, now,
	    &slot)) {
		snap_unref(snap);
		close(fd);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->in = malloc(SESS_IN_MAX)) == NULL) {
		log_warn("session");
		free(s);
		admit_release(peer, &slot);
		snap_unref(snap);
		close(fd);
		return;
	}
	s->admit = slot;
	s->id = atomic_fetch_add(&sess_next_id, 1);
	s->w = w;
	s->snap = snap;
	s->front = sess_front_of(l->kind);
	s->cfd = fd;
	s->ufd = -1;
	xport_plain(&s->cx, fd);
	xport_plain(&s->ux, -1);
	s->method = SOCKS5_METHOD_UNACCEPTABLE;
	s->state = l->proxy ? SESS_PROXY : s->front->first;
	s->started = now;
	memcpy(&s->peer, peer, peer_len);
	addr_format(peer, s->client, sizeof(s->client));
	ev_io_init(&s->cio, client_cb, fd, EV_READ);
	ev_init(&s->timer, timer_cb);
	TAILQ_INSERT_TAIL(&w->sessions, s, entry);
	w->n_sessions++;
	if (!l->proxy) {
		sess_admitted(s);
		return;
	}
	log_debug("session %" PRIu64 ": from %s: reading the PROXY header",
	    s->id, s->client);
	/* The header has its own handshake_timeout, the front then its. */
	sess_timer_set(s, c->handshake_timeout);
	sess_watch_client(s, EV_READ);
}
