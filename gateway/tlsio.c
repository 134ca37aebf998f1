#include "gateway/tlsio.h"

#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/tls.h"

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int
bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
	struct tlsio *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (t->pre_len - t->pre_off > 0) {
		n = (ssize_t)(t->pre_len - t->pre_off);
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(buf, t->pre + t->pre_off, (size_t)n);
		t->pre_off += (size_t)n;
		*got = (size_t)n;
		return 1;
	}
	do
		n = recv(t->fd, buf, len, 0);
	while (n == -1 && errno == EINTR);
	if (n > 0) {
		*got = (size_t)n;
		return 1;
	}
	if (n == -1 && errno == EAGAIN)
		BIO_set_retry_read(b);
	*got = 0;
	return 0;
}

static int
bio_write(BIO *b, const char *buf, size_t len, size_t *put)
{
	struct tlsio *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(t->fd, buf, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n >= 0) {
		*put = (size_t)n;
		return 1;
	}
	if (errno == EAGAIN)
		BIO_set_retry_write(b);
	*put = 0;
	return 0;
}

static long
bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
bio_method_init(void)
{
	bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "mpgw-session");
	if (bio_method == NULL)
		return;
	BIO_meth_set_read_ex(bio_method, bio_read);
	BIO_meth_set_write_ex(bio_method, bio_write);
	BIO_meth_set_ctrl(bio_method, bio_ctrl);
	BIO_meth_set_create(bio_method, bio_create);
}

struct tlsio *
tlsio_new(SSL_CTX *ctx, int fd, const uint8_t *pre, size_t pre_len)
{
	struct tlsio *t;
	BIO *bio;

	pthread_once(&bio_once, bio_method_init);
	if (bio_method == NULL || (t = calloc(1, sizeof(*t) + pre_len)) ==
	    NULL)
		return NULL;
	t->fd = fd;
	memcpy(t->pre, pre, pre_len);
	t->pre_len = pre_len;
	if ((t->ssl = SSL_new(ctx)) == NULL ||
	    (bio = BIO_new(bio_method)) == NULL) {
		SSL_free(t->ssl);
		free(t);
		return NULL;
	}
	BIO_set_data(bio, t);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_accept_state(t->ssl);
	return t;
}

void
tlsio_free(struct tlsio *t)
{
	if (t == NULL)
		return;
	SSL_free(t->ssl);
	free(t);
}

/* Map the outcome of an SSL call that returned rc <= 0 to errno/-1 or 0. */
static ssize_t
tlsio_fail(struct tlsio *t, int rc)
{
	int saved = errno;

	t->want_write = false;
	switch (SSL_get_error(t->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		t->want_write = true;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		/* An error of the socket's own; EOF comes as ZERO_RETURN
		 * (SSL_OP_IGNORE_UNEXPECTED_EOF). */
		if (ERR_peek_error() == 0 && saved == 0)
			return 0;
		errno = saved != 0 ? saved : EPROTO;
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

int
tlsio_handshake(struct tlsio *t, char *why, size_t whylen)
{
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(t->ssl);
	if (rc == 1)
		return 1;
	if (tlsio_fail(t, rc) == -1 && errno == EAGAIN)
		return 0;
	if (SSL_get_verify_result(t->ssl) != X509_V_OK)
		snprintf(why, whylen, "client certificate: %s",
		    X509_verify_cert_error_string(
		    SSL_get_verify_result(t->ssl)));
	else
		auth_tls_error(why, whylen);
	ERR_clear_error();
	return -1;
}

ssize_t
tlsio_read(struct tlsio *t, void *buf, size_t len)
{
	size_t got = 0;
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_read_ex(t->ssl, buf, len, &got);
	if (rc == 1)
		return (ssize_t)got;
	return tlsio_fail(t, 0);
}

ssize_t
tlsio_write(struct tlsio *t, const void *buf, size_t len)
{
	size_t put = 0;
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_write_ex(t->ssl, buf, len, &put);
	if (rc == 1)
		return (ssize_t)put;
	if (tlsio_fail(t, 0) == 0)
		errno = EPIPE;
	return -1;
}

bool
tlsio_pending(const struct tlsio *t)
{
	return SSL_pending(t->ssl) > 0;
}

int
tlsio_close_notify(struct tlsio *t)
{
	int rc;

	if (t->sent_close)
		return 1;
	ERR_clear_error();
	errno = 0;
	rc = SSL_shutdown(t->ssl);
	if (rc >= 0) {
		/* 0: ours is out, theirs not yet read; 1: both done. */
		t->sent_close = true;
		return 1;
	}
	if (tlsio_fail(t, rc) == -1 && errno == EAGAIN)
		return 0;
	return -1;
}

size_t
tlsio_leftover(struct tlsio *t, uint8_t *out, size_t cap)
{
	size_t n = t->pre_len - t->pre_off;

	if (n > cap)
		n = cap;
	memcpy(out, t->pre + t->pre_off, n);
	t->pre_off += n;
	return n;
}
