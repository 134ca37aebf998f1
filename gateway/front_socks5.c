/*
 * The SOCKS5 front end (RFC 1928, RFC 1929 and the TLS methods of
 * DESIGN.md section 3): GREETING -> [TLS] -> [AUTH] -> REQUEST, the
 * replies, and for method 0x83 the close_notify exchange after the reply
 * (TLS_CLOSE) before the relay runs in the clear. The TLS listener's
 * variant starts in TLS and then speaks SOCKS5 inside it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "auth/tls.h"
#include "auth/userdb.h"
#include "conf/conf.h"
#include "gateway/admit.h"
#include "gateway/bind.h"
#include "gateway/dial.h"
#include "gateway/pool.h"
#include "gateway/session.h"
#include "gateway/snap.h"
#include "gateway/state.h"
#include "gateway/tlsio.h"
#include "gateway/udp.h"
#include "gateway/worker.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"

static bool
s5_tls_listener(const struct session *s)
{
	return s->front == &front_socks5_tls;
}

/* --- GREETING --------------------------------------------------------- */

/* May the client use this method? Only methods built in and configured. */
static bool
s5_method_usable(const struct session *s, uint8_t m)
{
	bool tls = s->snap->tls != NULL && !s5_tls_listener(s);

	switch ((enum socks5_method)m) {
	case SOCKS5_METHOD_NONE:
		return true;
	case SOCKS5_METHOD_USERPASS:
		/* Cleartext passwords stay on this host unless allowed. */
		return s->snap->users != NULL && (s5_tls_listener(s) ||
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

/*
 * The method a configured one stands for on this listener: inside the TLS
 * listener the connection is already TLS, so tls-userpass and tls-login
 * are username/password (0x02, protected there: DESIGN.md section 3).
 */
static uint8_t
s5_inner_method(const struct session *s, uint8_t m)
{
	if (s5_tls_listener(s) && (m == SOCKS5_METHOD_TLS_USERPASS ||
	    m == SOCKS5_METHOD_TLS_LOGIN))
		return SOCKS5_METHOD_USERPASS;
	return m;
}

static int
s5_greeting(struct session *s)
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
		sess_set_result(s, SESS_RES_BAD_GREETING);
		sess_close(s);
		return -1;
	case SOCKS5_OK:
		break;
	}
	sess_consume(s, used);
	s->method = SOCKS5_METHOD_UNACCEPTABLE;
	for (size_t i = 0; i < c->n_methods; i++) {
		uint8_t m = s5_inner_method(s, c->methods[i]);

		if (socks5_greeting_offers(&g, m) && s5_method_usable(s, m)) {
			s->method = m;
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
	sess_set_result(s, SESS_RES_NO_ACCEPTABLE_METHOD);
	sess_set_state(s, SESS_CLOSING);
	return 1;
}

/* --- TLS (methods 0x80, 0x82, 0x83 and the TLS listener) ------------- */

/*
 * Run the TLS handshake. Bytes the client sent behind its greeting (its
 * ClientHello, typically) are in s->in: they go to TLS first.
 */
static int
s5_tls(struct session *s)
{
	char why[256];
	int rc;

	if (s->tls == NULL) {
		s->tls = tlsio_new(s->snap->tls, s->cfd, s->in, s->in_len);
		if (s->tls == NULL) {
			sess_set_result(s, SESS_RES_TLS_SETUP_FAILED);
			sess_close(s);
			return -1;
		}
		s->in_len = 0;
		xport_tls(&s->cx, s->tls);
	}
	rc = tlsio_handshake(s->tls, why, sizeof(why));
	if (rc == 0)
		return 0;
	if (rc == -1) {
		log_info("session %" PRIu64 ": %s: TLS handshake failed: %s",
		    s->id, s->client, why);
		sess_set_result(s, SESS_RES_TLS_HANDSHAKE_FAILED);
		sess_close(s);
		return -1;
	}
	s->cert_user = auth_tls_peer_user(s->tls->ssl, s->user,
	    sizeof(s->user));
	if (!s->cert_user)
		s->user[0] = '\0';
	if (s5_tls_listener(s))
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
s5_tls_close(struct session *s)
{
	uint8_t junk[64];
	ssize_t n;
	int rc = tlsio_close_notify(s->tls);

	if (rc == 0)
		return 0;
	if (rc == -1) {
		sess_set_result(s, SESS_RES_TLS_CLOSE_FAILED);
		sess_close(s);
		return -1;
	}
	n = tlsio_read(s->tls, junk, sizeof(junk));
	if (n == -1 && errno == EAGAIN)
		return 0;
	if (n != 0) {
		/* Data inside TLS after the reply breaks the protocol. */
		sess_set_result(s, n > 0 ? SESS_RES_TLS_LOGIN_PROTOCOL :
		    SESS_RES_CLIENT_ERROR);
		sess_close(s);
		return -1;
	}
	if (tlsio_close_notify(s->tls) == -1 || SSL_get_shutdown(s->tls->ssl) !=
	    (SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)) {
		sess_set_result(s, SESS_RES_CLIENT_CLOSED);
		sess_close(s);
		return -1;
	}
	s->in_len = tlsio_leftover(s->tls, s->in, SESS_IN_MAX);
	tlsio_free(s->tls);
	s->tls = NULL;
	xport_plain(&s->cx, s->cfd);
	sess_start_relay(s);
	return -1;
}

/* --- AUTH (RFC 1929) -------------------------------------------------- */

/*
 * One login: the password check on a pool thread, and before it, with
 * the shared state, the question whether the source is blocked at
 * another instance (the password waits here meanwhile).
 */
struct auth_job {
	struct pool_job job;
	struct state_req sreq;
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

/* The source is blocked: answer failure without counting another. */
static void
s5_auth_refused(struct session *s)
{
	uint8_t msg[2];

	sess_queue(s, msg, socks5_write_userpass_status(msg, 0x01));
	sess_set_result(s, SESS_RES_THROTTLED);
	sess_set_state(s, SESS_CLOSING);
}

/*
 * Answer the login; a failure is counted by the throttle, and its answer
 * held back for the throttle's growing delay (other clients are not
 * slowed).
 */
static void
s5_auth_result(struct session *s, bool ok)
{
	char esc[SESS_ESC_MAX];
	uint8_t msg[2];

	/* A block that began while the hash ran wins over a success. */
	if (ok && !admit_login_allowed(s)) {
		s5_auth_refused(s);
		return;
	}
	sess_queue(s, msg, socks5_write_userpass_status(msg, ok ? 0x00 : 0x01));
	if (ok) {
		admit_login_ok(s);
		sess_set_state(s, SESS_REQUEST);
		return;
	}
	log_info("session %" PRIu64 ": %s: password check failed for user %s",
	    s->id, s->client, log_escape(s->user, esc, sizeof(esc)));
	sess_set_result(s, SESS_RES_AUTH_FAILED);
	sess_set_state(s, SESS_CLOSING);
	admit_login_failed(s);
}

static void
auth_job_free(struct auth_job *aj)
{
	snap_unref(aj->snap);
	explicit_bzero(aj->pass, sizeof(aj->pass));
	free(aj);
}

static void
auth_job_done(struct pool_job *job)
{
	struct auth_job *aj = container_of(job, struct auth_job, job);
	struct session *s = aj->s;
	bool cancelled = job->cancelled, ok = aj->ok;

	auth_job_free(aj);
	if (cancelled)
		return;
	s->job = NULL;
	s5_auth_result(s, ok);
	sess_process(s);
}

/*
 * Check aj's password: from the cache at once (aj freed; 1), or on a pool
 * thread (crypt(3) is slow by design; 0, auth_job_done() answers).
 */
static int
s5_auth_verify(struct session *s, struct auth_job *aj)
{
	if (auth_userdb_cached(s->snap->users, aj->user, aj->pass)) {
		auth_job_free(aj);
		s5_auth_result(s, true);
		return 1;
	}
	s->job = &aj->job;
	pool_submit(&aj->job, &s->w->doneq);
	return 0;
}

/* The shared state answered whether the source is blocked elsewhere. */
static void
auth_shared_done(struct state_req *r)
{
	struct auth_job *aj = container_of(r, struct auth_job, sreq);
	struct session *s = aj->s;

	if (r->cancelled) {
		auth_job_free(aj);
		return;
	}
	s->sreq = NULL;
	/* A block Redis reported is the in-process throttle's by now. */
	if (!admit_login_allowed(s)) {
		auth_job_free(aj);
		s5_auth_refused(s);
	} else
		(void)s5_auth_verify(s, aj);
	sess_process(s);
}

static int
s5_auth(struct session *s)
{
	struct socks5_userpass up;
	struct auth_job *aj;
	size_t used;
	int rc = 1;

	if (s->job != NULL || s->sreq != NULL)
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
		sess_set_result(s, SESS_RES_BAD_AUTH_MESSAGE);
		s5_auth_result(s, false);
		return 1;
	case SOCKS5_OK:
		break;
	}
	sess_consume(s, used);
	memcpy(s->user, up.user, sizeof(s->user));
	if (!admit_login_allowed(s)) {
		s5_auth_refused(s);
		goto out;
	}
	if ((aj = calloc(1, sizeof(*aj))) == NULL) {
		sess_set_result(s, SESS_RES_NO_MEMORY);
		s5_auth_result(s, false);
		goto out;
	}
	aj->job.work = auth_job_work;
	aj->job.done = auth_job_done;
	aj->sreq.done = auth_shared_done;
	aj->s = s;
	aj->snap = snap_ref(s->snap);
	memcpy(aj->user, up.user, sizeof(aj->user));
	memcpy(aj->pass, up.pass, sizeof(aj->pass));
	if (admit_login_ask(s, &aj->sreq)) {
		s->sreq = &aj->sreq;
		rc = 0;
		goto out;
	}
	rc = s5_auth_verify(s, aj);
out:
	explicit_bzero(&up, sizeof(up));
	return rc;
}

/* --- REQUEST ---------------------------------------------------------- */

static int
s5_request(struct session *s)
{
	size_t used;
	uint8_t rep;

	switch (socks5_parse_request(s->in, s->in_len, &s->req, &used, &rep)) {
	case SOCKS5_AGAIN:
		return 0;
	case SOCKS5_BAD:
		sess_fail(s, rep, SESS_RES_BAD_REQUEST);
		return 1;
	case SOCKS5_OK:
		break;
	}
	sess_consume(s, used);
	if (s->req.cmd == SOCKS5_CMD_UDP_ASSOCIATE) {
		udp_request(s);
		return 1;
	}
	if (s->req.cmd == SOCKS5_CMD_BIND) {
		bind_request(s);
		return 1;
	}
	if (s->req.cmd != SOCKS5_CMD_CONNECT) {
		socks5_addr_format(&s->req.dst, s->target, sizeof(s->target));
		sess_fail(s, SOCKS5_REP_CMD_UNSUPPORTED, SESS_RES_BAD_COMMAND);
		return 1;
	}
	if (sess_conf(s)->early_reply)
		sess_reply_early(s);
	else
		dial_start(s);
	return 1;
}

/* --- the ops ---------------------------------------------------------- */

static int
s5_step(struct session *s)
{
	switch (s->state) {
	case SESS_GREETING:
		return s5_greeting(s);
	case SESS_TLS:
		return s5_tls(s);
	case SESS_AUTH:
		return s5_auth(s);
	case SESS_REQUEST:
		return s5_request(s);
	case SESS_TLS_CLOSE:
		return s5_tls_close(s);
	case SESS_PROXY:
	case SESS_CONVERT:
	case SESS_RESOLVE:
	case SESS_CONNECT:
	case SESS_REPLY:
	case SESS_EARLY:
	case SESS_RELAY:
	case SESS_HOLD:
	case SESS_CLOSING:
	case SESS_LINGER:
	case SESS_UDP:
	case SESS_BIND_WAIT:
		break;
	}
	return 0;
}

static void
s5_reply_ok(struct session *s, const struct sockaddr *bnd)
{
	uint8_t reply[SOCKS5_REPLY_MAX];

	sess_queue(s, reply, socks5_write_reply(reply, SOCKS5_REP_SUCCEEDED,
	    bnd));
	sess_set_state(s, SESS_REPLY);
}

static void
s5_reply_fail(struct session *s, uint8_t rep)
{
	uint8_t reply[SOCKS5_REPLY_MAX];

	sess_queue(s, reply, socks5_write_reply(reply, rep, NULL));
	sess_set_state(s, SESS_CLOSING);
}

static int
s5_after_reply(struct session *s)
{
	if (s->method == SOCKS5_METHOD_TLS_LOGIN) {
		/*
		 * Bytes the client sent inside TLS behind its request would
		 * have to go upstream, but 0x83 relays only what follows
		 * the close_notify: a protocol error, not data to drop.
		 */
		if (s->in_len > 0) {
			sess_set_result(s, SESS_RES_TLS_LOGIN_PROTOCOL);
			sess_close(s);
			return -1;
		}
		sess_set_state(s, SESS_TLS_CLOSE);
		return 1;
	}
	sess_start_relay(s);
	return -1;
}

static const char *
s5_method(const struct session *s)
{
	return s->method == SOCKS5_METHOD_UNACCEPTABLE ? "-" :
	    socks5_method_name(s->method);
}

const struct front_ops front_socks5 = {
	.name = "socks5",
	.first = SESS_GREETING,
	.step = s5_step,
	.reply_ok = s5_reply_ok,
	.reply_fail = s5_reply_fail,
	.after_reply = s5_after_reply,
	.method = s5_method,
};

const struct front_ops front_socks5_tls = {
	.name = "socks5-tls",
	.first = SESS_TLS,
	.step = s5_step,
	.reply_ok = s5_reply_ok,
	.reply_fail = s5_reply_fail,
	.after_reply = s5_after_reply,
	.method = s5_method,
};
