/*
 * TLS on a session's client socket, non-blocking, through a BIO of ours
 * that first hands OpenSSL any bytes that arrived before TLS began (a
 * client may send its ClientHello right behind the SOCKS greeting) and
 * then reads the socket. OpenSSL reads exactly one record at a time here
 * (read_ahead is off), so after a close_notify exchange (method 0x83) no
 * cleartext byte behind it has been swallowed.
 *
 * The read/write calls behave like recv/send: > 0 bytes, 0 EOF (close_notify
 * or TCP EOF), -1 with errno EAGAIN (then want_write says which event to
 * wait for), EPROTO for a TLS failure, or the socket's errno.
 */
#ifndef MPGW_TLSIO_H
#define MPGW_TLSIO_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tlsio {
	SSL *ssl;
	int fd;
	bool want_write;	/* the last EAGAIN waits for writability */
	bool sent_close;	/* our close_notify is out */
	size_t pre_off;
	size_t pre_len;
	uint8_t pre[];		/* raw bytes received before TLS began */
};

/* Server-side TLS on fd; pre/pre_len are already-received raw bytes. */
struct tlsio *tlsio_new(SSL_CTX *ctx, int fd, const uint8_t *pre,
    size_t pre_len);
void tlsio_free(struct tlsio *t);
/* 1 handshake done, 0 again (see want_write), -1 failed (reason in buf). */
int tlsio_handshake(struct tlsio *t, char *why, size_t whylen);
ssize_t tlsio_read(struct tlsio *t, void *buf, size_t len);
ssize_t tlsio_write(struct tlsio *t, const void *buf, size_t len);
/* Decrypted bytes OpenSSL holds that a read will return without I/O. */
bool tlsio_pending(const struct tlsio *t);
/* Send our close_notify: 1 sent, 0 again, -1 failed. */
int tlsio_close_notify(struct tlsio *t);
/* Raw bytes received before TLS began that TLS did not consume. */
size_t tlsio_leftover(struct tlsio *t, uint8_t *out, size_t cap);

#endif
