/*
 * The Convert front end (RFC 8803, DESIGN.md section 4): one message,
 * usually in the SYN (TCP Fast Open), naming the target and optionally
 * carrying our Auth, Cookie and Silent TLVs; what follows it is the
 * client's first data. The reply is an Extended TCP Header TLV (success)
 * or an Error TLV, or nothing and an RST on failure with Silent.
 */
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/keys.h"
#include "auth/replay.h"
#include "conf/conf.h"
#include "gateway/admit.h"
#include "gateway/dial.h"
#include "gateway/session.h"
#include "gateway/snap.h"
#include "gateway/state.h"
#include "gateway/stats.h"
#include "gateway/udp.h"
#include "gateway/worker.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/convert.h"

/* The Convert Error code for a failure known as a SOCKS5 reply code. */
static uint8_t
conv_err_from_rep(uint8_t rep)
{
	switch (rep) {
	case SOCKS5_REP_NOT_ALLOWED:
		return CONV_ERR_NOT_AUTHORIZED;
	case SOCKS5_REP_REFUSED:
		return CONV_ERR_CONNECTION_RESET;
	case SOCKS5_REP_NET_UNREACHABLE:
	case SOCKS5_REP_HOST_UNREACHABLE:
	case SOCKS5_REP_TTL_EXPIRED:
		return CONV_ERR_DEST_UNREACHABLE;
	case SOCKS5_REP_CMD_UNSUPPORTED:
	case SOCKS5_REP_ATYP_UNSUPPORTED:
		return CONV_ERR_UNSUPPORTED_MSG;
	default:
		return CONV_ERR_NETWORK_FAILURE;
	}
}

/*
 * A Convert failure: an Error TLV and close, or with Silent an RST (the
 * client's only signal, since it reads no reply).
 */
static void
cv_fail(struct session *s, uint8_t code, enum sess_result r)
{
	uint8_t msg[CONV_REPLY_LEN];

	sess_set_result(s, r);
	if (s->silent) {
		sess_reset(s);
		return;
	}
	sess_queue(s, msg, conv_write_error(msg, sizeof(msg), code,
	    code == CONV_ERR_UNSUPPORTED_VERSION ? CONV_VERSION : 0));
	sess_set_state(s, SESS_CLOSING);
}

/* A replayed message: log it (with the replay count), for the result. */
static enum sess_result
cv_replayed(struct session *s, const char *user)
{
	char esc[SESS_ESC_MAX];

	log_warnx("session %" PRIu64 ": %s: replayed Convert message for user "
	    "%s refused (%" PRIu64 " so far)", s->id, s->client,
	    log_escape(user, esc, sizeof(esc)),
	    stats_add(STAT_CONVERT_REPLAYS, 1));
	return SESS_RES_CONVERT_REPLAY;
}

/*
 * Check the Auth TLV of m (and that one is there when required): a known
 * user, a valid MAC, a fresh timestamp, a nonce not seen before. Returns
 * SESS_RES_OK, or why not. With the shared state, *shared is set when
 * the nonce (and the source's block) must still be asked of Redis: this
 * instance has judged the time window and its own memory of nonces, but
 * another instance may have seen the message.
 */
static enum sess_result
cv_auth(struct session *s, const struct conv_msg *m, bool *shared)
{
	const struct gw_conf *c = sess_conf(s);
	uint8_t key[CONV_KEY_LEN];
	double now = (double)time(NULL);
	bool ok;

	*shared = false;
	if (!m->has_auth)
		return c->convert_require_auth ? SESS_RES_CONVERT_NO_AUTH :
		    SESS_RES_OK;
	memcpy(s->user, m->user, sizeof(s->user));
	if (!admit_login_allowed(s))
		return SESS_RES_THROTTLED;
	if (s->snap->keys == NULL || !auth_keys_get(s->snap->keys, m->user,
	    key))
		return SESS_RES_CONVERT_UNKNOWN_USER;
	ok = conv_verify(s->in, m, key);
	explicit_bzero(key, sizeof(key));
	if (!ok)
		return SESS_RES_CONVERT_BAD_MAC;
	/* One boundary for the time window and the nonce's memory. */
	switch (auth_replay_check_msg(m->user, m->nonce, m->ts, now,
	    c->convert_max_skew)) {
	case AUTH_REPLAY_MSG_FRESH:
		*shared = s->w->state != NULL;
		return SESS_RES_OK;
	case AUTH_REPLAY_MSG_STALE:
		return SESS_RES_CONVERT_STALE;
	case AUTH_REPLAY_MSG_SEEN:
		return cv_replayed(s, m->user);
	case AUTH_REPLAY_MSG_FULL:
		/* Redis remembers: the local table is only a first look. */
		if (s->w->state != NULL) {
			*shared = true;
			return SESS_RES_OK;
		}
		return SESS_RES_CONVERT_REPLAY_CACHE_FULL;
	}
	return SESS_RES_SYSTEM_ERROR;
}

/* The shared state's question about one message. */
struct cv_shared {
	struct state_req r;
	struct session *s;
	char user[256];
};

/*
 * No answer from the shared state: fail closed, since another instance
 * may have accepted this very message (Error 65, a network failure: the
 * client may try again with a new message).
 */
static void
cv_unavailable(struct session *s)
{
	static _Atomic double last;
	double now = ev_now(s->w->loop), prev = atomic_load(&last);

	if (now - prev >= 1.0 && atomic_compare_exchange_strong(&last, &prev,
	    now))
		log_warnx("session %" PRIu64 ": %s: shared state unavailable: "
		    "Convert Auth refused with Error 65 (%" PRIu64 " so far)",
		    s->id, s->client, stats_get(STAT_STATE_REPLAY_ERRORS));
	cv_fail(s, CONV_ERR_NETWORK_FAILURE, SESS_RES_STATE_UNAVAILABLE);
}

static void
cv_shared_done(struct state_req *r)
{
	struct cv_shared *cs = container_of(r, struct cv_shared, r);
	struct session *s = cs->s;

	if (r->cancelled) {
		free(cs);
		return;
	}
	s->sreq = NULL;
	if (r->status != STATE_OK)
		cv_unavailable(s);
	else if (!admit_login_allowed(s))
		/* Blocked at another instance: learnt, counted, refused. */
		cv_fail(s, CONV_ERR_NOT_AUTHORIZED, SESS_RES_THROTTLED);
	else if (!r->fresh) {
		cv_fail(s, CONV_ERR_NOT_AUTHORIZED, cv_replayed(s, cs->user));
		admit_login_failed(s);
	} else
		dial_start(s);
	free(cs);
	sess_process(s);
}

/*
 * Ask the shared state about m: 0 asked (cv_shared_done() goes on), -1
 * failed (the session is failing).
 */
static int
cv_ask_shared(struct session *s, const struct conv_msg *m)
{
	unsigned skew = sess_conf(s)->convert_max_skew;
	struct cv_shared *cs;
	long ttl;

	if ((cs = calloc(1, sizeof(*cs))) == NULL) {
		cv_fail(s, CONV_ERR_NETWORK_FAILURE, SESS_RES_NO_MEMORY);
		return -1;
	}
	cs->r.done = cv_shared_done;
	cs->s = s;
	memcpy(cs->user, m->user, sizeof(cs->user));
	/*
	 * Remember the nonce until the message turns stale here (ts +
	 * max_skew; a timestamp ahead of this clock makes that up to
	 * 2 * max_skew away), and max_skew more for instances whose clock
	 * is behind this one's: max_skew alone would forget a message
	 * stamped ahead while it is still timely.
	 */
	ttl = (long)m->ts + 2 * (long)skew - (long)time(NULL);
	if (ttl < 1)
		ttl = 1;
	if (state_replay(s->w->state, m->user, m->nonce, (unsigned)ttl,
	    (const struct sockaddr *)&s->peer, &cs->r) == -1) {
		free(cs);
		cv_unavailable(s);
		return -1;
	}
	s->sreq = &cs->r;
	return 0;
}

/* The Convert Error code for a failed Auth check. */
static uint8_t
cv_auth_error(enum sess_result r)
{
	return r == SESS_RES_CONVERT_REPLAY_CACHE_FULL ?
	    CONV_ERR_RESOURCE_EXCEEDED : r == SESS_RES_SYSTEM_ERROR ?
	    CONV_ERR_NETWORK_FAILURE : CONV_ERR_NOT_AUTHORIZED;
}

static int
cv_step(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	struct conv_msg m;
	struct sockaddr_storage ss;
	socklen_t sslen;
	enum sess_result r;
	uint8_t err = 0;
	bool shared;

	if (s->sreq != NULL)
		return 0;	/* the shared state is asked about the message */
	switch (conv_parse_request(s->in, s->in_len, &m, &err)) {
	case CONV_AGAIN:
		return 0;
	case CONV_BAD:
		cv_fail(s, err, SESS_RES_CONVERT_MALFORMED);
		return 1;
	case CONV_OK:
		break;
	}
	s->silent = m.silent;
	if (c->convert_cookie[0] != '\0' && !(m.has_cookie &&
	    conv_cookie_equal(&m, (const uint8_t *)c->convert_cookie,
	    strlen(c->convert_cookie)))) {
		cv_fail(s, m.has_cookie ? CONV_ERR_NOT_AUTHORIZED :
		    CONV_ERR_MISSING_COOKIE, m.has_cookie ?
		    SESS_RES_CONVERT_BAD_COOKIE : SESS_RES_CONVERT_NO_COOKIE);
		return 1;
	}
	if ((r = cv_auth(s, &m, &shared)) != SESS_RES_OK) {
		cv_fail(s, cv_auth_error(r), r);
		if (cv_auth_error(r) == CONV_ERR_NOT_AUTHORIZED &&
		    r != SESS_RES_THROTTLED)
			admit_login_failed(s);
		return 1;
	}
	if (m.has_udp) {
		/* Datagrams framed on this connection (DESIGN.md section 6);
		 * what follows the message is the first frames. */
		sess_consume(s, m.len);
		udp_convert(s);
		return 1;
	}
	memset(&s->req, 0, sizeof(s->req));
	s->req.cmd = SOCKS5_CMD_CONNECT;
	if (m.has_name) {
		s->req.dst.atyp = SOCKS5_ATYP_DOMAIN;
		s->req.dst.name_len = m.name_len;
		memcpy(s->req.dst.u.name, m.name, sizeof(s->req.dst.u.name));
		s->req.dst.port = m.port;
	} else if (conv_addr_to_sockaddr(&m, &ss, &sslen) == -1 ||
	    socks5_addr_from_sockaddr(&s->req.dst,
	    (const struct sockaddr *)&ss) == -1) {
		cv_fail(s, CONV_ERR_MALFORMED, SESS_RES_CONVERT_BAD_ADDRESS);
		return 1;
	}
	/* What follows the message in the SYN is the client's first data. */
	sess_consume(s, m.len);
	/*
	 * Only a message about to be served is asked of Redis: a refused
	 * one has nothing to replay, and a nonce is written only for a MAC
	 * that checked out.
	 */
	if (shared)
		return cv_ask_shared(s, &m) == 0 ? 0 : 1;
	dial_start(s);
	return 1;
}

static void
cv_reply_ok(struct session *s, const struct sockaddr *bnd)
{
	uint8_t reply[CONV_REPLY_LEN];

	(void)bnd;
	if (!s->silent)
		sess_queue(s, reply, conv_write_ok_reply(reply, sizeof(reply)));
	sess_set_state(s, SESS_REPLY);
}

static void
cv_reply_fail(struct session *s, uint8_t rep)
{
	cv_fail(s, conv_err_from_rep(rep), s->result);
}

/*
 * The Convert listener takes data in the SYN (TCP Fast Open), so a
 * session can start, and reply, while its connection is still in
 * SYN_RECV. On an MPTCP connection this kernel (6.x) queues what is
 * written then and does not push it once the client's ACK completes the
 * handshake: the reply would wait for the peer's next packet, which never
 * comes, since the peer waits for the reply. Measured in the lab with
 * 5 ms links. Toggling TCP_NODELAY makes MPTCP push what is pending, so
 * while the handshake is incomplete a timer watches for its end and then
 * pushes once: every 2 ms for the first 100 ms (the client's ACK comes one
 * round trip after our SYN-ACK, and the reply waits for the push: a
 * doubling interval cost 35 ms at a 20 ms RTT and 75 ms at 60 ms in the
 * two-tier bench), then doubling up to 0.64 s for a client that never
 * completes it (a forged SYN, until the session ends).
 */
#define CV_KICK_STEP 0.002
#define CV_KICK_FAST 0.1
#define CV_KICK_MAX 0.64

static bool
cv_syn_recv(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    ti.tcpi_state == TCP_SYN_RECV;
}

static void
cv_kick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct session *s = container_of(t, struct session, kick);
	int off = 0, on = 1;

	(void)revents;
	if (cv_syn_recv(s->cfd)) {
		if (ev_now(loop) - s->started >= CV_KICK_FAST &&
		    t->repeat < CV_KICK_MAX)
			t->repeat *= 2;
		ev_timer_again(loop, t);
		return;
	}
	ev_timer_stop(loop, t);
	(void)setsockopt(s->cfd, IPPROTO_TCP, TCP_NODELAY, &off, sizeof(off));
	(void)setsockopt(s->cfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static void
cv_start(struct session *s)
{
	if (!cv_syn_recv(s->cfd))
		return;
	ev_init(&s->kick, cv_kick_cb);
	s->kick.repeat = CV_KICK_STEP;
	ev_timer_again(s->w->loop, &s->kick);
}

static int
cv_after_reply(struct session *s)
{
	sess_start_relay(s);
	return -1;
}

static const char *
cv_method(const struct session *s)
{
	(void)s;
	return "convert";
}

const struct front_ops front_convert = {
	.name = "convert",
	.first = SESS_CONVERT,
	.start = cv_start,
	.step = cv_step,
	.reply_ok = cv_reply_ok,
	.reply_fail = cv_reply_fail,
	.after_reply = cv_after_reply,
	.method = cv_method,
};
