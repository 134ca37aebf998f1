/*
 * Explicit mode: the SOCKS5 handshake on the app's own socket
 * (RFC 1928, RFC 1929, and method 0x83 "TLS-protected login" of
 * DESIGN.md section 3).
 *
 * Every read takes exactly the bytes of the message it expects, so data
 * the target sends right after the reply (SSH, SMTP banners) stays in the
 * socket for the app.
 *
 * Method 0x83, client side:
 *   greeting 05 01 83 -> 05 83; TLS handshake (the gateway's certificate
 *   verified against `ca`, and its name or IP against `servername` or the
 *   gateway host); inside TLS: RFC 1929 request and status, SOCKS request
 *   and reply; then our close_notify is sent and the gateway's read; from
 *   there the socket carries the app's bytes in the clear.
 * OpenSSL sees the socket only through a pair of memory BIOs and is fed
 * whole TLS records (5-byte header, then its length), one at a time and
 * only when it asks for more, so it can never swallow cleartext that
 * follows the gateway's close_notify.
 */
#include "client-shim/shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proto/socks5.h"

/* A TLS record body: 2^14 plaintext plus at most 2048 of expansion. */
#define TLS_RECORD_MAX (16384 + 2048)

struct chan {
	int fd;
	int64_t deadline;
	SSL *ssl;		/* NULL: cleartext */
	BIO *in, *out;		/* owned by ssl */
};

static SSL_CTX *tls_ctx;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
/*
 * The last session ticket the gateway gave this process: the next
 * tls-login handshake resumes it (TLS 1.3), which saves the gateway its
 * public-key work. In memory only, shared by the process's threads.
 */
static pthread_mutex_t tls_sess_mu = PTHREAD_MUTEX_INITIALIZER;
static SSL_SESSION *tls_sess;

/* OpenSSL hands us each new ticket; keep the newest. */
static int
tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION *old;

	(void)ssl;
	pthread_mutex_lock(&tls_sess_mu);
	old = tls_sess;
	tls_sess = sess;	/* returning 1 gives us the reference */
	pthread_mutex_unlock(&tls_sess_mu);
	SSL_SESSION_free(old);
	return 1;
}

static void
tls_ctx_init(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_new_session);
	if (shim_conf.ca[0] != '\0' ? SSL_CTX_load_verify_locations(ctx,
	    shim_conf.ca, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		shim_warn("tls-login: cannot load CA %s",
		    shim_conf.ca[0] != '\0' ? shim_conf.ca : "(system)");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return;
	}
	tls_ctx = ctx;
}

/* Sends whatever OpenSSL wrote into the out BIO. */
static int
tls_flush(struct chan *c)
{
	uint8_t buf[4096];
	int n;

	while (BIO_ctrl_pending(c->out) > 0) {
		n = BIO_read(c->out, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (shim_send_all(c->fd, buf, (size_t)n, c->deadline) == -1)
			return -1;
	}
	return 0;
}

/* Reads one whole TLS record from the socket into the in BIO. */
static int
tls_feed_record(struct chan *c)
{
	uint8_t buf[4096];
	size_t len, n;

	if (shim_recv_exact(c->fd, buf, 5, c->deadline) == -1)
		return -1;
	len = (size_t)buf[3] << 8 | buf[4];
	if (len > TLS_RECORD_MAX) {
		errno = EPROTO;
		return -1;
	}
	if (BIO_write(c->in, buf, 5) != 5)
		goto err_nomem;
	while (len > 0) {
		n = len < sizeof(buf) ? len : sizeof(buf);
		if (shim_recv_exact(c->fd, buf, n, c->deadline) == -1)
			return -1;
		if (BIO_write(c->in, buf, (int)n) != (int)n)
			goto err_nomem;
		len -= n;
	}
	return 0;
err_nomem:
	errno = ENOMEM;
	return -1;
}

enum tls_op {
	TLS_OP_HANDSHAKE = 0,
	TLS_OP_READ,
	TLS_OP_WRITE,
	TLS_OP_SHUTDOWN,
};

/*
 * Runs one OpenSSL operation to completion, moving records between the
 * BIOs and the socket. Returns the operation's positive result, 0 for a
 * clean close_notify (TLS_OP_READ) or a sent one (TLS_OP_SHUTDOWN), or -1.
 */
static int
tls_run(struct chan *c, enum tls_op op, void *buf, int len)
{
	for (;;) {
		int r = 0, e;

		ERR_clear_error();
		switch (op) {
		case TLS_OP_HANDSHAKE:
			r = SSL_do_handshake(c->ssl);
			break;
		case TLS_OP_READ:
			r = SSL_read(c->ssl, buf, len);
			break;
		case TLS_OP_WRITE:
			r = SSL_write(c->ssl, buf, len);
			break;
		case TLS_OP_SHUTDOWN:
			r = SSL_shutdown(c->ssl);
			if (r >= 0) {
				if (tls_flush(c) == -1)
					return -1;
				return 0;
			}
			break;
		}
		if (tls_flush(c) == -1)
			return -1;
		if (r > 0)
			return r;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN && op == TLS_OP_READ)
			return 0;
		if (e != SSL_ERROR_WANT_READ) {
			unsigned long ssl_err = ERR_peek_error();

			if (op == TLS_OP_HANDSHAKE && SSL_get_verify_result(
			    c->ssl) != X509_V_OK)
				shim_warn("tls-login: gateway certificate: %s",
				    X509_verify_cert_error_string(
				    SSL_get_verify_result(c->ssl)));
			else if (ssl_err != 0)
				shim_debug("tls-login: %s",
				    ERR_reason_error_string(ssl_err));
			ERR_clear_error();
			errno = ECONNREFUSED;
			return -1;
		}
		if (tls_feed_record(c) == -1)
			return -1;
	}
}

static int
chan_write(struct chan *c, const uint8_t *buf, size_t len)
{
	if (c->ssl == NULL)
		return shim_send_all(c->fd, buf, len, c->deadline);
	return tls_run(c, TLS_OP_WRITE, (void *)buf, (int)len) > 0 ? 0 : -1;
}

static int
chan_read_exact(struct chan *c, uint8_t *buf, size_t len)
{
	if (c->ssl == NULL)
		return shim_recv_exact(c->fd, buf, len, c->deadline);
	while (len > 0) {
		int r = tls_run(c, TLS_OP_READ, buf, (int)len);

		if (r == 0)
			errno = ECONNRESET;
		if (r <= 0)
			return -1;
		buf += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Sets up TLS on c and runs the handshake. */
static int
tls_start(struct chan *c)
{
	const char *name = shim_conf.servername[0] != '\0' ?
	    shim_conf.servername : shim_conf.gw_host;
	struct sockaddr_storage tmp;
	bool numeric;

	pthread_once(&tls_once, tls_ctx_init);
	if (tls_ctx == NULL) {
		errno = ECONNREFUSED;
		return -1;
	}
	c->ssl = SSL_new(tls_ctx);
	c->in = BIO_new(BIO_s_mem());
	c->out = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->in == NULL || c->out == NULL) {
		BIO_free(c->in);
		BIO_free(c->out);
		errno = ENOMEM;
		return -1;
	}
	/* An empty in BIO means "wait for more", not end of file. */
	BIO_set_mem_eof_return(c->in, -1);
	SSL_set_bio(c->ssl, c->in, c->out);
	SSL_set_connect_state(c->ssl);
	numeric = inet_pton(AF_INET, name, &tmp) == 1 ||
	    inet_pton(AF_INET6, name, &tmp) == 1;
	if (numeric) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name);
	} else {
		SSL_set_tlsext_host_name(c->ssl, name);
		SSL_set1_host(c->ssl, name);
	}
	pthread_mutex_lock(&tls_sess_mu);
	if (tls_sess != NULL)
		(void)SSL_set_session(c->ssl, tls_sess);
	pthread_mutex_unlock(&tls_sess_mu);
	if (tls_run(c, TLS_OP_HANDSHAKE, NULL, 0) <= 0)
		return -1;
	if (SSL_session_reused(c->ssl))
		shim_debug("tls-login: session resumed");
	return 0;
}

/* Our close_notify, then the gateway's. Nothing after it is read. */
static int
tls_finish(struct chan *c)
{
	uint8_t junk[64];
	int r;

	if (tls_run(c, TLS_OP_SHUTDOWN, NULL, 0) == -1)
		return -1;
	while (!(SSL_get_shutdown(c->ssl) & SSL_RECEIVED_SHUTDOWN)) {
		r = tls_run(c, TLS_OP_READ, junk, sizeof(junk));
		if (r == 0)
			break;
		if (r < 0)
			return -1;
		/* Application data inside TLS after the reply: not ours. */
		errno = EPROTO;
		return -1;
	}
	if (BIO_ctrl_pending(c->in) != 0) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

static void
tls_free(struct chan *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);	/* frees both BIOs */
	c->ssl = NULL;
	ERR_clear_error();
}

/* RFC 1929 on c: 0, or -1 with EACCES for a refused login. */
static int
userpass(struct chan *c)
{
	uint8_t msg[SOCKS5_MSG_MAX], st[2], status;
	size_t n, used;

	n = socks5_write_userpass(msg, sizeof(msg), shim_conf.user,
	    shim_conf.password);
	if (n == 0) {
		errno = EINVAL;
		return -1;
	}
	if (chan_write(c, msg, n) == -1) {
		explicit_bzero(msg, sizeof(msg));
		return -1;
	}
	explicit_bzero(msg, sizeof(msg));
	if (chan_read_exact(c, st, 2) == -1)
		return -1;
	if (socks5_parse_userpass_status(st, 2, &status, &used) !=
	    SOCKS5_OK) {
		errno = ECONNREFUSED;
		return -1;
	}
	if (status != 0) {
		shim_debug("gateway refused the login of user %s",
		    shim_conf.user);
		errno = EACCES;
		return -1;
	}
	return 0;
}

/* Reads a whole reply, exactly: VER REP RSV ATYP, then the address. */
static int
read_reply(struct chan *c, uint8_t *rep)
{
	uint8_t buf[SOCKS5_REPLY_MAX + 256];
	struct socks5_addr bnd;
	size_t need, used;

	if (chan_read_exact(c, buf, 5) == -1)
		return -1;
	switch (buf[3]) {
	case SOCKS5_ATYP_IPV4:
		need = 4 + 2 - 1;
		break;
	case SOCKS5_ATYP_IPV6:
		need = 16 + 2 - 1;
		break;
	case SOCKS5_ATYP_DOMAIN:
		need = (size_t)buf[4] + 2;
		break;
	default:
		errno = ECONNREFUSED;
		return -1;
	}
	if (chan_read_exact(c, buf + 5, need) == -1)
		return -1;
	if (socks5_parse_reply(buf, 5 + need, rep, &bnd, &used) !=
	    SOCKS5_OK || used != 5 + need) {
		errno = ECONNREFUSED;
		return -1;
	}
	return 0;
}

int
shim_socks5_handshake(int fd, const struct shim_target *t, int64_t deadline)
{
	struct chan c = { .fd = fd, .deadline = deadline };
	uint8_t msg[SOCKS5_MSG_MAX], m = SOCKS5_METHOD_NONE, rep;
	struct socks5_addr dst;
	size_t n, used;
	int rc = -1;

	switch (shim_conf.method) {
	case SHIM_METHOD_NONE:
		m = SOCKS5_METHOD_NONE;
		break;
	case SHIM_METHOD_USERPASS:
		m = SOCKS5_METHOD_USERPASS;
		break;
	case SHIM_METHOD_TLS_LOGIN:
		m = SOCKS5_METHOD_TLS_LOGIN;
		break;
	}
	memset(&dst, 0, sizeof(dst));
	if (t->name != NULL) {
		dst.atyp = SOCKS5_ATYP_DOMAIN;
		dst.name_len = (uint8_t)strlen(t->name);
		memcpy(dst.u.name, t->name, (size_t)dst.name_len + 1);
		dst.port = t->port;
	} else if (socks5_addr_from_sockaddr(&dst,
	    (const struct sockaddr *)&t->addr) == -1) {
		errno = EAFNOSUPPORT;
		return -1;
	}

	n = socks5_write_greeting(msg, sizeof(msg), &m, 1);
	if (shim_send_all(fd, msg, n, deadline) == -1 ||
	    shim_recv_exact(fd, msg, 2, deadline) == -1)
		return -1;
	if (socks5_parse_method(msg, 2, &rep, &used) != SOCKS5_OK) {
		errno = ECONNREFUSED;
		return -1;
	}
	if (rep != m) {
		shim_debug("gateway refused method 0x%02x", m);
		errno = EACCES;
		return -1;
	}
	if (m == SOCKS5_METHOD_TLS_LOGIN && tls_start(&c) == -1)
		goto out;
	if (m != SOCKS5_METHOD_NONE && userpass(&c) == -1)
		goto out;
	n = socks5_write_request(msg, sizeof(msg), SOCKS5_CMD_CONNECT, &dst);
	if (n == 0) {
		errno = EINVAL;
		goto out;
	}
	if (chan_write(&c, msg, n) == -1 || read_reply(&c, &rep) == -1)
		goto out;
	if (rep != SOCKS5_REP_SUCCEEDED) {
		shim_debug("gateway: %s", socks5_rep_str(rep));
		errno = socks5_errno_from_rep(rep);
		goto out;
	}
	if (c.ssl != NULL && tls_finish(&c) == -1)
		goto out;
	rc = 0;
out:
	if (c.ssl != NULL) {
		int saved = errno;

		tls_free(&c);
		errno = saved;
	}
	return rc;
}
