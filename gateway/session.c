#include "gateway/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/keys.h"
#include "auth/replay.h"
#include "auth/rules.h"
#include "auth/throttle.h"
#include "auth/tls.h"
#include "auth/userdb.h"
#include "gateway/access.h"
#include "gateway/mptcp.h"
#include "gateway/pool.h"
#include "gateway/relay.h"
#include "gateway/snap.h"
#include "gateway/srclimit.h"
#include "gateway/tlsio.h"
#include "gateway/worker.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/convert.h"
#include "proto/socks5.h"

/* Enough for a greeting, an RFC 1929 message and a request back to back. */
#define SESS_IN_MAX 1280
#define DIAL_MAX_ADDRS 16
#define DIAL_MAX_INFLIGHT 4
/* RFC 8305 section 5: "Connection Attempt Delay", recommended 250 ms. */
#define DIAL_STAGGER 0.25
/* How long a failed session waits for the client to read its reply. */
#define SESS_LINGER 2.0
/* A peer-supplied name (255 bytes) escaped for a log line. */
#define SESS_ESC_MAX (4 * 255 + 1)

enum sess_state {
	SESS_GREETING = 0,
	SESS_CONVERT,
	SESS_TLS,
	SESS_AUTH,
	SESS_REQUEST,
	SESS_RESOLVE,
	SESS_CONNECT,
	SESS_REPLY,
	SESS_TLS_CLOSE,
	SESS_RELAY,
	SESS_CLOSING,
};

static const char *const sess_state_names[] = {
	[SESS_GREETING] = "GREETING",
	[SESS_CONVERT] = "CONVERT",
	[SESS_TLS] = "TLS",
	[SESS_AUTH] = "AUTH",
	[SESS_REQUEST] = "REQUEST",
	[SESS_RESOLVE] = "RESOLVE",
	[SESS_CONNECT] = "CONNECT",
	[SESS_REPLY] = "REPLY",
	[SESS_TLS_CLOSE] = "TLS_CLOSE",
	[SESS_RELAY] = "RELAY",
	[SESS_CLOSING] = "CLOSING",
};

struct session;

struct dial_attempt {
	int fd;
	bool mptcp;
	ev_io io;
	struct session *s;
};

/* Upstream connect state, alive from RESOLVE/CONNECT until RELAY. */
struct dial {
	size_t n;
	size_t next;
	struct sockaddr_storage addrs[DIAL_MAX_ADDRS];
	socklen_t lens[DIAL_MAX_ADDRS];
	struct dial_attempt att[DIAL_MAX_INFLIGHT];
	ev_timer stagger;
	int last_err;
};

struct session {
	TAILQ_ENTRY(session) entry;
	uint64_t id;
	struct worker *w;
	struct gw_snap *snap;
	enum sess_state state;
	int cfd;
	int ufd;
	bool upstream_mptcp;		/* socket was created MPTCP */
	bool lingering;			/* CLOSING: reply sent, SHUT_WR done */
	bool tls_listener;		/* TLS from the first byte */
	bool convert;			/* RFC 8803 Convert listener */
	bool silent;			/* Convert Silent TLV: no reply, RST on failure */
	bool hold;			/* CLOSING: reply waits (login throttle) */
	bool counted;			/* holds a max_per_source slot */
	bool cert_user;			/* user named by a client certificate */
	struct tlsio *tls;		/* client side TLS, while it lasts */
	ev_io cio;
	ev_timer timer;
	ev_tstamp started;
	struct pool_job *job;		/* outstanding, owned by the pool */
	struct dial *dial;
	struct relay relay;
	struct mptcp_stat mst;		/* upstream MPTCP state at the first EOF */
	uint8_t method;
	const char *result;
	char client[64];
	char user[256];
	char target[300];
	struct sockaddr_storage peer;
	struct socks5_request req;
	size_t in_len;
	size_t out_off;
	size_t out_len;
	uint8_t out[SOCKS5_REPLY_MAX + 4];
	uint8_t in[SESS_IN_MAX];
};

static atomic_uint_fast64_t sess_next_id = 1;
static atomic_uint sess_open;
static atomic_uint_fast64_t conv_replays;

static void sess_close(struct session *s);
static void sess_process(struct session *s);
static void sess_fail(struct session *s, uint8_t rep, const char *result);
static void dial_next(struct session *s);
static void sess_start_relay(struct session *s);
static void sess_open_target(struct session *s);
static void sess_fail_conv(struct session *s, uint8_t code);

unsigned
sess_count(void)
{
	return atomic_load(&sess_open);
}

void
sess_stats(struct sess_stats *st)
{
	st->open = atomic_load(&sess_open);
	st->accepted = atomic_load(&sess_next_id) - 1;
	st->convert_replays = atomic_load(&conv_replays);
}

static void
sess_set_state(struct session *s, enum sess_state st)
{
	log_debug("session %" PRIu64 ": %s -> %s", s->id,
	    sess_state_names[s->state], sess_state_names[st]);
	s->state = st;
}

static const struct gw_conf *
sess_conf(const struct session *s)
{
	return &s->snap->conf;
}

/* Watch the client socket for these events (0: none). */
static void
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

static void
sess_timer_set(struct session *s, ev_tstamp after)
{
	s->timer.repeat = after;
	ev_timer_again(s->w->loop, &s->timer);
}

/* Queue handshake bytes for the client; they are sent by sess_flush(). */
static void
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

/* Send queued bytes: 1 all sent, 0 some left, -1 client failed. */
static int
sess_flush(struct session *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = s->tls != NULL ? tlsio_write(s->tls,
		    s->out + s->out_off, s->out_len - s->out_off) :
		    send(s->cfd, s->out + s->out_off, s->out_len - s->out_off,
		    MSG_NOSIGNAL);

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

/* Drop n bytes of parsed input from the front of s->in. */
static void
sess_consume(struct session *s, size_t n)
{
	memmove(s->in, s->in + n, s->in_len - n);
	s->in_len -= n;
}

/* --- GREETING --------------------------------------------------------- */

/* May the client use this method? Only methods built in and configured. */
static bool
sess_method_usable(const struct session *s, uint8_t m)
{
	bool tls = s->snap->tls != NULL && !s->tls_listener;

	switch ((enum socks5_method)m) {
	case SOCKS5_METHOD_NONE:
		return true;
	case SOCKS5_METHOD_USERPASS:
		/* Cleartext passwords stay on this host unless allowed. */
		return s->snap->users != NULL && (s->tls_listener ||
		    sess_conf(s)->allow_cleartext_password ||
		    addr_is_loopback((const struct sockaddr *)&s->peer));
	case SOCKS5_METHOD_TLS:
		return tls;
	case SOCKS5_METHOD_TLS_USERPASS:
		return tls && s->snap->users != NULL;
	case SOCKS5_METHOD_TLS_LOGIN:
		return tls && (s->snap->users != NULL ||
		    sess_conf(s)->tls_client_ca[0] != '\0');
	case SOCKS5_METHOD_GSSAPI:
	case SOCKS5_METHOD_UNACCEPTABLE:
		return false;
	}
	return false;
}

static int
sess_greeting(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	struct socks5_greeting g;
	uint8_t msg[2];
	size_t used;

	switch (socks5_parse_greeting(s->in, s->in_len, &g, &used)) {
	case SOCKS5_AGAIN:
		return 0;
	case SOCKS5_BAD:
		/* Not SOCKS5 (or garbage): no reply could be understood. */
		s->result = "bad-greeting";
		sess_close(s);
		return -1;
	case SOCKS5_OK:
		break;
	}
	sess_consume(s, used);
	s->method = SOCKS5_METHOD_UNACCEPTABLE;
	for (size_t i = 0; i < c->n_methods; i++) {
		if (socks5_greeting_offers(&g, c->methods[i]) &&
		    sess_method_usable(s, c->methods[i])) {
			s->method = c->methods[i];
			break;
		}
	}
	sess_queue(s, msg, socks5_write_method(msg, s->method));
	switch ((enum socks5_method)s->method) {
	case SOCKS5_METHOD_NONE:
		sess_set_state(s, SESS_REQUEST);
		return 1;
	case SOCKS5_METHOD_USERPASS:
		sess_set_state(s, SESS_AUTH);
		return 1;
	case SOCKS5_METHOD_TLS:
	case SOCKS5_METHOD_TLS_USERPASS:
	case SOCKS5_METHOD_TLS_LOGIN:
		sess_set_state(s, SESS_TLS);
		return 1;
	case SOCKS5_METHOD_UNACCEPTABLE:
	case SOCKS5_METHOD_GSSAPI:
		break;
	}
	s->result = "no-acceptable-method";
	sess_set_state(s, SESS_CLOSING);
	return 1;
}

/* --- AUTH (RFC 1929) -------------------------------------------------- */

struct auth_job {
	struct pool_job job;
	struct session *s;
	struct gw_snap *snap;
	bool ok;
	char user[256];
	char pass[256];
};

static void
auth_job_work(struct pool_job *job)
{
	struct auth_job *aj = container_of(job, struct auth_job, job);

	aj->ok = auth_userdb_check(aj->snap->users, aj->user, aj->pass);
}

/*
 * Record a failed login from the client's address and hold the answer back
 * for the throttle's growing delay; other clients are not slowed.
 */
static void
sess_login_failed(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	const struct sockaddr *peer = (const struct sockaddr *)&s->peer;
	double now = ev_now(s->w->loop);
	double delay = auth_throttle_fail(peer, c->fail_limit,
	    c->fail_delay_max, c->fail_block, now);
	struct auth_throttle_stats st;

	if (auth_throttle_blocked(peer, now)) {
		auth_throttle_stats(&st);
		log_warnx("session %" PRIu64 ": %s: %u failed logins: address "
		    "refused for %u s (failed logins so far: %" PRIu64 ", "
		    "refused connections: %" PRIu64 ")", s->id, s->client,
		    c->fail_limit, c->fail_block, st.failures, st.refusals);
	}
	if (delay > 0) {
		s->hold = true;
		/* Read nothing meanwhile: a readable socket would spin. */
		sess_watch_client(s, 0);
		sess_timer_set(s, delay);
	}
}

static void
sess_auth_result(struct session *s, bool ok)
{
	uint8_t msg[2];

	sess_queue(s, msg, socks5_write_userpass_status(msg, ok ? 0x00 : 0x01));
	if (!ok) {
		char esc[SESS_ESC_MAX];

		log_info("session %" PRIu64 ": %s: password check failed for "
		    "user %s", s->id, s->client,
		    log_escape(s->user, esc, sizeof(esc)));
		if (s->result == NULL)
			s->result = "auth-failed";
		sess_set_state(s, SESS_CLOSING);
		sess_login_failed(s);
		return;
	}
	auth_throttle_success((const struct sockaddr *)&s->peer);
	sess_set_state(s, SESS_REQUEST);
}

static void
auth_job_done(struct pool_job *job)
{
	struct auth_job *aj = container_of(job, struct auth_job, job);
	struct session *s = aj->s;
	bool cancelled = job->cancelled, ok = aj->ok;

	snap_unref(aj->snap);
	explicit_bzero(aj->pass, sizeof(aj->pass));
	free(aj);
	if (cancelled)
		return;
	s->job = NULL;
	sess_auth_result(s, ok);
	sess_process(s);
}

static int
sess_auth(struct session *s)
{
	struct socks5_userpass up;
	struct auth_job *aj;
	size_t used;
	int rc = 1;

	if (s->job != NULL)
		return 0;
	/* tls-login: a certificate-named client may go straight on. */
	if (s->method == SOCKS5_METHOD_TLS_LOGIN && s->cert_user &&
	    s->in_len > 0 && s->in[0] == SOCKS5_VERSION) {
		sess_set_state(s, SESS_REQUEST);
		return 1;
	}
	switch (socks5_parse_userpass(s->in, s->in_len, &up, &used)) {
	case SOCKS5_AGAIN:
		return 0;
	case SOCKS5_BAD:
		s->result = "bad-auth-message";
		sess_auth_result(s, false);
		return 1;
	case SOCKS5_OK:
		break;
	}
	sess_consume(s, used);
	memcpy(s->user, up.user, sizeof(s->user));
	if (auth_userdb_cached(s->snap->users, up.user, up.pass)) {
		sess_auth_result(s, true);
		goto out;
	}
	/* crypt(3) is slow by design: hash on a pool thread. */
	if ((aj = calloc(1, sizeof(*aj))) == NULL) {
		s->result = "no-memory";
		sess_auth_result(s, false);
		goto out;
	}
	aj->job.work = auth_job_work;
	aj->job.done = auth_job_done;
	aj->s = s;
	aj->snap = snap_ref(s->snap);
	memcpy(aj->user, up.user, sizeof(aj->user));
	memcpy(aj->pass, up.pass, sizeof(aj->pass));
	s->job = &aj->job;
	pool_submit(&aj->job, &s->w->doneq);
	rc = 0;
out:
	explicit_bzero(&up, sizeof(up));
	return rc;
}

/* --- CONVERT (RFC 8803, DESIGN.md section 4) ------------------------- */


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
 * Check the Auth TLV of m (and that one is there when required): a known
 * user, a valid MAC, a fresh timestamp, a nonce not seen before. Returns 0,
 * or a Convert error code with s->result set.
 */
static uint8_t
sess_convert_auth(struct session *s, const struct conv_msg *m)
{
	const struct gw_conf *c = sess_conf(s);
	uint8_t key[CONV_KEY_LEN];
	char esc[SESS_ESC_MAX];
	double now = (double)time(NULL), skew;
	bool ok;

	if (!m->has_auth) {
		if (!c->convert_require_auth)
			return 0;
		s->result = "convert-no-auth";
		return CONV_ERR_NOT_AUTHORIZED;
	}
	memcpy(s->user, m->user, sizeof(s->user));
	if (s->snap->keys == NULL || !auth_keys_get(s->snap->keys, m->user,
	    key)) {
		s->result = "convert-unknown-user";
		return CONV_ERR_NOT_AUTHORIZED;
	}
	ok = conv_verify(s->in, m, key);
	explicit_bzero(key, sizeof(key));
	if (!ok) {
		s->result = "convert-bad-mac";
		return CONV_ERR_NOT_AUTHORIZED;
	}
	skew = now - (double)m->ts;
	if (skew > c->convert_max_skew || -skew > c->convert_max_skew) {
		s->result = "convert-stale";
		return CONV_ERR_NOT_AUTHORIZED;
	}
	/* Remember the nonce exactly as long as its timestamp is acceptable. */
	switch (auth_replay_check(m->user, m->nonce, now,
	    (double)m->ts + c->convert_max_skew)) {
	case AUTH_REPLAY_FRESH:
		return 0;
	case AUTH_REPLAY_SEEN:
		log_warnx("session %" PRIu64 ": %s: replayed Convert message "
		    "for user %s refused (%" PRIu64 " so far)", s->id,
		    s->client, log_escape(m->user, esc, sizeof(esc)),
		    atomic_fetch_add(&conv_replays, 1) + 1);
		s->result = "convert-replay";
		return CONV_ERR_NOT_AUTHORIZED;
	case AUTH_REPLAY_FULL:
		s->result = "convert-replay-cache-full";
		return CONV_ERR_RESOURCE_EXCEEDED;
	}
	return CONV_ERR_NETWORK_FAILURE;
}

static int
sess_convert(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	struct conv_msg m;
	struct sockaddr_storage ss;
	socklen_t sslen;
	uint8_t err = 0;

	switch (conv_parse_request(s->in, s->in_len, &m, &err)) {
	case CONV_AGAIN:
		return 0;
	case CONV_BAD:
		s->result = "convert-malformed";
		sess_fail_conv(s, err);
		return 1;
	case CONV_OK:
		break;
	}
	s->silent = m.silent;
	if (c->convert_cookie[0] != '\0' && !(m.has_cookie &&
	    conv_cookie_equal(&m, (const uint8_t *)c->convert_cookie,
	    strlen(c->convert_cookie)))) {
		s->result = m.has_cookie ? "convert-bad-cookie" :
		    "convert-no-cookie";
		sess_fail_conv(s, m.has_cookie ? CONV_ERR_NOT_AUTHORIZED :
		    CONV_ERR_MISSING_COOKIE);
		return 1;
	}
	if ((err = sess_convert_auth(s, &m)) != 0) {
		sess_fail_conv(s, err);
		if (err == CONV_ERR_NOT_AUTHORIZED)
			sess_login_failed(s);
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
		s->result = "convert-bad-address";
		sess_fail_conv(s, CONV_ERR_MALFORMED);
		return 1;
	}
	/* What follows the message in the SYN is the client's first data. */
	sess_consume(s, m.len);
	sess_open_target(s);
	return 1;
}

/* --- REQUEST, RESOLVE ------------------------------------------------- */

struct dns_job {
	struct pool_job job;
	struct session *s;
	int gai_err;
	int sys_err;
	size_t n;
	char host[256];
	char port[8];
	struct sockaddr_storage addrs[DIAL_MAX_ADDRS];
	socklen_t lens[DIAL_MAX_ADDRS];
};

/*
 * Resolve on a pool thread with getaddrinfo (so /etc/hosts and nsswitch
 * apply) and order the answers for Happy Eyeballs: alternate families,
 * starting with the family the resolver ranked first (RFC 8305 section 4).
 */
static void
dns_job_work(struct pool_job *job)
{
	struct dns_job *dj = container_of(job, struct dns_job, job);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_protocol = IPPROTO_TCP, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai, *fam[2] = { NULL, NULL };
	int first = -1;

	dj->gai_err = getaddrinfo(dj->host, dj->port, &hints, &res);
	if (dj->gai_err != 0) {
		dj->sys_err = errno;
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (first == -1)
			first = ai->ai_family;
	}
	fam[0] = fam[1] = res;
	while (dj->n < DIAL_MAX_ADDRS) {
		bool any = false;

		for (int k = 0; k < 2 && dj->n < DIAL_MAX_ADDRS; k++) {
			int want = (k == 0) == (first == AF_INET) ? AF_INET :
			    AF_INET6;

			while (fam[k] != NULL && fam[k]->ai_family != want)
				fam[k] = fam[k]->ai_next;
			if (fam[k] == NULL)
				continue;
			memcpy(&dj->addrs[dj->n], fam[k]->ai_addr,
			    fam[k]->ai_addrlen);
			dj->lens[dj->n++] = fam[k]->ai_addrlen;
			fam[k] = fam[k]->ai_next;
			any = true;
		}
		if (!any)
			break;
	}
	freeaddrinfo(res);
}

static void
sess_dial_start(struct session *s)
{
	sess_set_state(s, SESS_CONNECT);
	sess_timer_set(s, sess_conf(s)->connect_timeout);
	dial_next(s);
}

static void
dns_job_done(struct pool_job *job)
{
	struct dns_job *dj = container_of(job, struct dns_job, job);
	struct session *s = dj->s;
	bool nxdomain;

	if (job->cancelled) {
		free(dj);
		return;
	}
	s->job = NULL;
	if (dj->gai_err != 0 || dj->n == 0) {
		char esc[SESS_ESC_MAX];

		log_info("session %" PRIu64 ": resolving %s: %s", s->id,
		    log_escape(dj->host, esc, sizeof(esc)), dj->gai_err == EAI_SYSTEM ?
		    strerror(dj->sys_err) : dj->gai_err != 0 ?
		    gai_strerror(dj->gai_err) : "no IPv4/IPv6 address");
		/*
		 * A name that cannot be resolved (no such name, no address,
		 * no answer from the resolver) is an unreachable host, 04;
		 * the gateway's own trouble (memory, system) is 01.
		 */
		nxdomain = dj->gai_err == 0 || dj->gai_err == EAI_NONAME ||
		    dj->gai_err == EAI_NODATA || dj->gai_err == EAI_AGAIN ||
		    dj->gai_err == EAI_FAIL;
		free(dj);
		sess_fail(s, nxdomain ? SOCKS5_REP_HOST_UNREACHABLE :
		    SOCKS5_REP_GENERAL_FAILURE, nxdomain ? "nxdomain" :
		    "resolve-failed");
		sess_process(s);
		return;
	}
	s->dial->n = dj->n;
	memcpy(s->dial->addrs, dj->addrs, sizeof(dj->addrs));
	memcpy(s->dial->lens, dj->lens, sizeof(dj->lens));
	free(dj);
	sess_dial_start(s);
	sess_process(s);
}

static int
sess_request(struct session *s)
{
	size_t used;
	uint8_t rep;

	switch (socks5_parse_request(s->in, s->in_len, &s->req, &used, &rep)) {
	case SOCKS5_AGAIN:
		return 0;
	case SOCKS5_BAD:
		sess_fail(s, rep, "bad-request");
		return 1;
	case SOCKS5_OK:
		break;
	}
	sess_consume(s, used);
	if (s->req.cmd != SOCKS5_CMD_CONNECT) {
		socks5_addr_format(&s->req.dst, s->target, sizeof(s->target));
		sess_fail(s, SOCKS5_REP_CMD_UNSUPPORTED, "bad-command");
		return 1;
	}
	sess_open_target(s);
	return 1;
}

/*
 * The request is known (s->req, from SOCKS5 or Convert): resolve the name
 * on the pool, or dial the address at once.
 */
static void
sess_open_target(struct session *s)
{
	socks5_addr_format(&s->req.dst, s->target, sizeof(s->target));
	if ((s->dial = calloc(1, sizeof(*s->dial))) == NULL) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, "no-memory");
		return;
	}
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++)
		s->dial->att[i].fd = -1;
	if (s->req.dst.atyp == SOCKS5_ATYP_DOMAIN) {
		struct dns_job *dj = calloc(1, sizeof(*dj));

		if (dj == NULL) {
			sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, "no-memory");
			return;
		}
		dj->job.work = dns_job_work;
		dj->job.done = dns_job_done;
		dj->job.slow = true;
		dj->s = s;
		memcpy(dj->host, s->req.dst.u.name, sizeof(dj->host));
		snprintf(dj->port, sizeof(dj->port), "%u", s->req.dst.port);
		s->job = &dj->job;
		sess_set_state(s, SESS_RESOLVE);
		sess_timer_set(s, sess_conf(s)->connect_timeout);
		pool_submit(&dj->job, &s->w->doneq);
		return;
	}
	socks5_addr_to_sockaddr(&s->req.dst, &s->dial->addrs[0],
	    &s->dial->lens[0]);
	s->dial->n = 1;
	sess_dial_start(s);
}

/* --- CONNECT (Happy Eyeballs over MPTCP sockets) ---------------------- */

static void
attempt_close(struct session *s, struct dial_attempt *a)
{
	ev_io_stop(s->w->loop, &a->io);
	if (a->fd != -1)
		close(a->fd);
	a->fd = -1;
}

static void
dial_free(struct session *s)
{
	if (s->dial == NULL)
		return;
	ev_timer_stop(s->w->loop, &s->dial->stagger);
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++)
		attempt_close(s, &s->dial->att[i]);
	free(s->dial);
	s->dial = NULL;
}

static void sess_connected(struct session *s, struct dial_attempt *a);

static void
attempt_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dial_attempt *a = container_of(io, struct dial_attempt, io);
	struct session *s = a->s;
	socklen_t len = sizeof(int);
	int err = 0;

	(void)loop;
	(void)revents;
	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		sess_connected(s, a);
	} else {
		s->dial->last_err = err;
		attempt_close(s, a);
		dial_next(s);
	}
	sess_process(s);
}

static void
stagger_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct dial *d = container_of(t, struct dial, stagger);

	(void)loop;
	(void)revents;
	/* The attempt owner is any live attempt; all point at one session. */
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++) {
		if (d->att[i].fd != -1) {
			struct session *s = d->att[i].s;

			dial_next(s);
			sess_process(s);
			return;
		}
	}
}

/*
 * May this session reach sa? The access rules decide, per address, after
 * resolution: a name that resolves to a protected address is caught too.
 */
static bool
sess_allowed(struct session *s, const struct sockaddr *sa)
{
	struct auth_target t = {
		.addr = sa,
		.name = s->req.dst.atyp == SOCKS5_ATYP_DOMAIN ?
		    s->req.dst.u.name : NULL,
		.port = s->req.dst.port,
	};
	const char *why = NULL;

	if (auth_rules_check(sess_conf(s), (const struct sockaddr *)&s->peer,
	    s->user, s->req.cmd, &t, &why) == CONF_ALLOW)
		return true;
	log_info("session %" PRIu64 ": %s: %s denied by %s", s->id, s->client,
	    s->target, why != NULL ? why : "a rule");
	return false;
}

/*
 * Start the next connection attempt if an address is left and a slot is
 * free; fail the session when nothing is left and nothing is in flight.
 */
static void
dial_next(struct session *s)
{
	struct dial *d = s->dial;
	struct ev_loop *loop = s->w->loop;
	size_t inflight = 0;

	ev_timer_stop(loop, &d->stagger);
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++)
		if (d->att[i].fd != -1)
			inflight++;
	while (d->next < d->n && inflight < DIAL_MAX_INFLIGHT) {
		const struct sockaddr *sa =
		    (const struct sockaddr *)&d->addrs[d->next];
		struct dial_attempt *a = NULL;
		int one = 1;

		if (!sess_allowed(s, sa)) {
			d->last_err = EACCES;
			d->next++;
			continue;
		}
		for (size_t i = 0; i < DIAL_MAX_INFLIGHT && a == NULL; i++)
			if (d->att[i].fd == -1)
				a = &d->att[i];
		a->s = s;
		a->fd = mptcp_socket(sa->sa_family,
		    sess_conf(s)->upstream_mptcp, &a->mptcp);
		if (a->fd == -1 && (errno == EMFILE || errno == ENFILE) &&
		    worker_shed_fds(s->w))
			a->fd = mptcp_socket(sa->sa_family,
			    sess_conf(s)->upstream_mptcp, &a->mptcp);
		if (a->fd == -1) {
			d->last_err = errno;
			d->next++;
			continue;
		}
		(void)setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (connect(a->fd, sa, d->lens[d->next]) == -1 &&
		    errno != EINPROGRESS) {
			d->last_err = errno;
			d->next++;
			attempt_close(s, a);
			continue;
		}
		d->next++;
		ev_io_init(&a->io, attempt_cb, a->fd, EV_WRITE);
		ev_io_start(loop, &a->io);
		inflight++;
		if (d->next < d->n) {
			ev_timer_init(&d->stagger, stagger_cb, DIAL_STAGGER,
			    0.);
			ev_timer_start(loop, &d->stagger);
		}
		return;
	}
	if (inflight == 0)
		sess_fail(s, socks5_rep_from_errno(d->last_err),
		    d->last_err == EACCES ? "denied" :
		    socks5_rep_str(socks5_rep_from_errno(d->last_err)));
}

static void
sess_connected(struct session *s, struct dial_attempt *a)
{
	struct sockaddr_storage bnd;
	socklen_t len = sizeof(bnd);
	uint8_t reply[SOCKS5_REPLY_MAX];

	ev_io_stop(s->w->loop, &a->io);
	/* The reply (and 0x83's TLS close) get their own time, not what
	 * connect left over. */
	sess_timer_set(s, sess_conf(s)->handshake_timeout);
	s->ufd = a->fd;
	s->upstream_mptcp = a->mptcp;
	a->fd = -1;
	dial_free(s);
	if (getsockname(s->ufd, (struct sockaddr *)&bnd, &len) == -1) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, "getsockname");
		return;
	}
	if (!s->convert)
		sess_queue(s, reply, socks5_write_reply(reply,
		    SOCKS5_REP_SUCCEEDED, (const struct sockaddr *)&bnd));
	else if (!s->silent)
		sess_queue(s, reply, conv_write_ok_reply(reply, sizeof(reply)));
	sess_set_state(s, SESS_REPLY);
}

/* --- TLS (methods 0x80, 0x82, 0x83 and the TLS listener) ------------- */

/*
 * Run the TLS handshake. Bytes the client sent behind its greeting (its
 * ClientHello, typically) are in s->in: they go to TLS first.
 */
static int
sess_tls(struct session *s)
{
	char why[256];
	int rc;

	if (s->tls == NULL) {
		s->tls = tlsio_new(s->snap->tls, s->cfd, s->in, s->in_len);
		if (s->tls == NULL) {
			s->result = "tls-setup-failed";
			sess_close(s);
			return -1;
		}
		s->in_len = 0;
	}
	rc = tlsio_handshake(s->tls, why, sizeof(why));
	if (rc == 0)
		return 0;
	if (rc == -1) {
		log_info("session %" PRIu64 ": %s: TLS handshake failed: %s",
		    s->id, s->client, why);
		s->result = "tls-handshake-failed";
		sess_close(s);
		return -1;
	}
	s->cert_user = auth_tls_peer_user(s->tls->ssl, s->user,
	    sizeof(s->user));
	if (!s->cert_user)
		s->user[0] = '\0';
	if (s->tls_listener)
		sess_set_state(s, SESS_GREETING);
	else if (s->method == SOCKS5_METHOD_TLS)
		sess_set_state(s, SESS_REQUEST);
	else
		sess_set_state(s, SESS_AUTH);
	return 1;
}

/*
 * Method 0x83 after the reply: send our close_notify, read the client's,
 * then the same TCP connection carries the relay in the clear.
 */
static int
sess_tls_close(struct session *s)
{
	uint8_t junk[64];
	ssize_t n;
	int rc = tlsio_close_notify(s->tls);

	if (rc == 0)
		return 0;
	if (rc == -1) {
		s->result = "tls-close-failed";
		sess_close(s);
		return -1;
	}
	n = tlsio_read(s->tls, junk, sizeof(junk));
	if (n == -1 && errno == EAGAIN)
		return 0;
	if (n != 0) {
		/* Data inside TLS after the reply breaks the protocol. */
		s->result = n > 0 ? "tls-login-protocol" : "client-error";
		sess_close(s);
		return -1;
	}
	if (tlsio_close_notify(s->tls) == -1 || SSL_get_shutdown(s->tls->ssl) !=
	    (SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)) {
		s->result = "client-closed";
		sess_close(s);
		return -1;
	}
	s->in_len = tlsio_leftover(s->tls, s->in, sizeof(s->in));
	tlsio_free(s->tls);
	s->tls = NULL;
	sess_start_relay(s);
	return -1;
}

/* --- REPLY, RELAY, CLOSING ------------------------------------------- */

static void
relay_done(struct relay *r, int err)
{
	struct session *s = container_of(r, struct session, relay);

	if (err != 0 && s->result == NULL)
		s->result = err == ECONNRESET ? "reset" : "relay-error";
	sess_close(s);
}

/*
 * Extra subflows may be gone by the time the session closes: note the
 * MPTCP state while the connection is still whole.
 */
static void
relay_first_eof(struct relay *r)
{
	struct session *s = container_of(r, struct session, relay);

	mptcp_stat(s->ufd, &s->mst);
}

/*
 * relay = auto: splice() where it moves pages, i.e. when both sockets are
 * plain TCP; an MPTCP socket's splice copies through recvmsg on current
 * kernels, and measured slower than our buffers (README, Performance).
 */
static bool
sess_use_splice(const struct session *s)
{
	const char *mode = sess_conf(s)->relay;
	socklen_t len = sizeof(int);
	int proto = 0;

	if (strcmp(mode, "auto") != 0)
		return strcmp(mode, "splice") == 0;
	if (s->upstream_mptcp)
		return false;
	return getsockopt(s->cfd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
	    proto == IPPROTO_TCP;
}

static void
sess_start_relay(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);

	sess_watch_client(s, 0);
	sess_set_state(s, SESS_RELAY);
	if (c->idle_timeout > 0)
		sess_timer_set(s, c->idle_timeout);
	else
		ev_timer_stop(s->w->loop, &s->timer);
	s->relay.first_eof = relay_first_eof;
	if (relay_start(&s->relay, s->w, s->cfd, s->ufd, s->tls,
	    sess_use_splice(s), s->in, s->in_len,
	    relay_done) == -1) {
		s->result = "relay-error";
		sess_close(s);
		return;
	}
	s->in_len = 0;
}

/*
 * Queue a failure reply and move to CLOSING; the caller runs sess_process()
 * (or is inside it) to send it.
 */
static void
sess_fail(struct session *s, uint8_t rep, const char *result)
{
	uint8_t reply[SOCKS5_REPLY_MAX];

	if (s->job != NULL) {
		s->job->cancelled = true;
		s->job = NULL;
	}
	dial_free(s);
	s->result = result;
	if (s->convert) {
		sess_fail_conv(s, conv_err_from_rep(rep));
		return;
	}
	sess_queue(s, reply, socks5_write_reply(reply, rep, NULL));
	sess_set_state(s, SESS_CLOSING);
}

/*
 * A Convert failure: an Error TLV and close, or with Silent an RST (the
 * client's only signal, since it reads no reply).
 */
static void
sess_fail_conv(struct session *s, uint8_t code)
{
	uint8_t msg[CONV_REPLY_LEN];
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (s->silent) {
		(void)setsockopt(s->cfd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
		s->in_len = 0;
		s->out_len = s->out_off = 0;
		s->lingering = true;	/* no SHUT_WR: close resets */
		sess_set_state(s, SESS_CLOSING);
		return;
	}
	sess_queue(s, msg, conv_write_error(msg, sizeof(msg), code,
	    code == CONV_ERR_UNSUPPORTED_VERSION ? CONV_VERSION : 0));
	sess_set_state(s, SESS_CLOSING);
}

/*
 * Closing after a failure: send what is queued, then shutdown(SHUT_WR) and
 * wait (briefly) for the client's EOF. Closing with unread client bytes
 * would make the kernel send an RST that can destroy the reply in flight.
 */
static void
sess_closing(struct session *s)
{
	char sink[512];
	ssize_t n;

	if (s->convert && s->silent) {
		sess_close(s);
		return;
	}
	if (!s->lingering) {
		if (s->tls != NULL) {
			int rc = tlsio_close_notify(s->tls);

			if (rc == 0) {
				sess_watch_client(s, s->tls->want_write ?
				    EV_WRITE : EV_READ);
				return;
			}
		}
		s->lingering = true;
		shutdown(s->cfd, SHUT_WR);
		sess_timer_set(s, SESS_LINGER);
	}
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

/*
 * Run the handshake state machine over whatever input and output are
 * pending, then set the client watcher to what the state waits for.
 */
static void
sess_process(struct session *s)
{
	for (;;) {
		enum sess_state st = s->state;
		int rc = 0;

		if (s->hold) {
			sess_watch_client(s, 0);
			return;
		}
		if (s->out_len > 0) {
			rc = sess_flush(s);
			if (rc == -1) {
				if (s->result == NULL)
					s->result = "client-gone";
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
		case SESS_GREETING:
			rc = sess_greeting(s);
			break;
		case SESS_CONVERT:
			rc = sess_convert(s);
			break;
		case SESS_TLS:
			rc = sess_tls(s);
			break;
		case SESS_TLS_CLOSE:
			rc = sess_tls_close(s);
			break;
		case SESS_AUTH:
			rc = sess_auth(s);
			break;
		case SESS_REQUEST:
			rc = sess_request(s);
			break;
		case SESS_REPLY:
			if (s->method == SOCKS5_METHOD_TLS_LOGIN) {
				sess_set_state(s, SESS_TLS_CLOSE);
				continue;
			}
			sess_start_relay(s);
			return;
		case SESS_CLOSING:
			sess_closing(s);
			return;
		case SESS_RESOLVE:
		case SESS_CONNECT:
		case SESS_RELAY:
			rc = 0;
			break;
		}
		if (rc == -1)
			return;
		if (rc == 0 && s->state == st && s->out_len == 0)
			break;
	}
	/* Waiting for input, or for a pool job, the resolver or connect. */
	if (s->state == SESS_TLS || s->state == SESS_TLS_CLOSE)
		sess_watch_client(s, s->tls != NULL && s->tls->want_write ?
		    EV_WRITE : EV_READ);
	else if (s->state == SESS_GREETING || s->state == SESS_REQUEST ||
	    s->state == SESS_CONVERT ||
	    (s->state == SESS_AUTH && s->job == NULL)) {
		/* A TLS read may first need to write (want_write). */
		sess_watch_client(s, s->in_len >= sizeof(s->in) ? 0 :
		    s->tls != NULL && s->tls->want_write ? EV_WRITE : EV_READ);
		/* Decrypted input OpenSSL holds never wakes the watcher. */
		if (s->tls != NULL && tlsio_pending(s->tls) &&
		    s->in_len < sizeof(s->in))
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
	if (s->state == SESS_CLOSING || s->state == SESS_TLS ||
	    s->state == SESS_TLS_CLOSE) {
		sess_process(s);
		return;
	}
	if (((revents & EV_READ) || (s->tls != NULL && s->tls->want_write)) &&
	    s->in_len < sizeof(s->in)) {
		n = s->tls != NULL ? tlsio_read(s->tls, s->in + s->in_len,
		    sizeof(s->in) - s->in_len) : recv(s->cfd, s->in + s->in_len,
		    sizeof(s->in) - s->in_len, 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			s->result = n == 0 ? "client-closed" : "client-error";
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
	case SESS_GREETING:
	case SESS_CONVERT:
	case SESS_TLS:
	case SESS_AUTH:
	case SESS_REQUEST:
	case SESS_REPLY:
	case SESS_TLS_CLOSE:
		s->result = "handshake-timeout";
		sess_close(s);
		return;
	case SESS_RESOLVE:
		sess_fail(s, SOCKS5_REP_HOST_UNREACHABLE, "resolve-timeout");
		sess_process(s);
		return;
	case SESS_CONNECT:
		sess_fail(s, SOCKS5_REP_TTL_EXPIRED, "connect-timeout");
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
		s->result = "idle-timeout";
		sess_close(s);
		return;
	case SESS_CLOSING:
		if (s->hold) {
			s->hold = false;
			sess_process(s);
			return;
		}
		sess_close(s);
		return;
	}
}

/* Log the session, release everything it holds and free it. */
static void
sess_close(struct session *s)
{
	struct worker *w = s->w;
	struct access_entry e;
	struct mptcp_stat st = { 0 };

	if (s->job != NULL) {
		s->job->cancelled = true;
		s->job = NULL;
	}
	if (s->ufd != -1)
		mptcp_stat(s->ufd, &st);
	if (s->mst.subflows > st.subflows)
		st.subflows = s->mst.subflows;
	st.mptcp = st.mptcp || s->mst.mptcp;
	memset(&e, 0, sizeof(e));
	e.id = s->id;
	e.client = s->client;
	e.user = s->user;
	e.method = s->convert ? "convert" :
	    s->method == SOCKS5_METHOD_UNACCEPTABLE ? "-" :
	    socks5_method_name(s->method);
	e.target = s->target[0] ? s->target : NULL;
	e.result = s->result != NULL ? s->result : "ok";
	e.mptcp = st.mptcp;
	e.subflows = st.subflows;
	e.up = s->relay.up.bytes;
	e.down = s->relay.down.bytes;
	e.duration = ev_now(w->loop) - s->started;
	access_write(&e);

	relay_stop(&s->relay);
	dial_free(s);
	ev_io_stop(w->loop, &s->cio);
	ev_timer_stop(w->loop, &s->timer);
	if (s->ufd != -1)
		close(s->ufd);
	tlsio_free(s->tls);
	if (s->counted)
		srclimit_release((const struct sockaddr *)&s->peer);
	close(s->cfd);
	snap_unref(s->snap);
	TAILQ_REMOVE(&w->sessions, s, entry);
	w->n_sessions--;
	atomic_fetch_sub(&sess_open, 1);
	explicit_bzero(s->in, sizeof(s->in));
	free(s);
	if (w->draining && w->n_sessions == 0)
		ev_break(w->loop, EVBREAK_ALL);
}

void
sess_close_all(struct worker *w)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&w->sessions)) != NULL) {
		if (s->result == NULL)
			s->result = "shutdown";
		sess_close(s);
	}
}

/* At most one refusal warning a second, so refused clients cannot flood
 * the log. */
static bool
sess_log_refusal(struct worker *w)
{
	static _Atomic ev_tstamp last;
	ev_tstamp now = ev_now(w->loop), prev = atomic_load(&last);

	return now - prev >= 1.0 && atomic_compare_exchange_strong(&last,
	    &prev, now);
}

void
sess_accept(struct worker *w, struct listener *l, int fd,
    const struct sockaddr *peer, socklen_t peer_len)
{
	struct gw_snap *snap = snap_current();
	const struct gw_conf *c = &snap->conf;
	struct session *s;
	char esc[64];
	int one = 1;

	if (c->max_sessions > 0 && sess_count() >= c->max_sessions) {
		if (sess_log_refusal(w))
			log_warnx("max_sessions (%u) reached: refusing "
			    "connections", c->max_sessions);
		snap_unref(snap);
		close(fd);
		return;
	}
	if (auth_throttle_blocked(peer, ev_now(w->loop))) {
		/* Too many failed logins from there: refuse for a while. */
		auth_throttle_count_refusal();
		snap_unref(snap);
		close(fd);
		return;
	}
	if (!srclimit_acquire(peer, c->max_per_source)) {
		if (sess_log_refusal(w))
			log_warnx("max_per_source (%u) reached by %s: refusing "
			    "connections", c->max_per_source, addr_format(
			    peer, esc, sizeof(esc)));
		snap_unref(snap);
		close(fd);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session");
		if (c->max_per_source > 0)
			srclimit_release(peer);
		snap_unref(snap);
		close(fd);
		return;
	}
	s->counted = c->max_per_source > 0;
	s->id = atomic_fetch_add(&sess_next_id, 1);
	s->w = w;
	s->snap = snap;
	s->cfd = fd;
	s->ufd = -1;
	s->method = SOCKS5_METHOD_UNACCEPTABLE;
	s->tls_listener = l->kind == LISTENER_SOCKS5_TLS;
	s->convert = l->kind == LISTENER_CONVERT;
	s->state = s->tls_listener ? SESS_TLS : s->convert ? SESS_CONVERT :
	    SESS_GREETING;
	s->started = ev_now(w->loop);
	memcpy(&s->peer, peer, peer_len);
	addr_format(peer, s->client, sizeof(s->client));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&s->cio, client_cb, fd, EV_READ);
	ev_init(&s->timer, timer_cb);
	TAILQ_INSERT_TAIL(&w->sessions, s, entry);
	w->n_sessions++;
	atomic_fetch_add(&sess_open, 1);
	log_debug("session %" PRIu64 ": accepted from %s by worker %u", s->id,
	    s->client, w->idx);
	sess_timer_set(s, c->handshake_timeout);
	sess_watch_client(s, EV_READ);
}
