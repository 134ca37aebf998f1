/*
 * A connection's byte transport: plain TCP or TLS behind one ops table,
 * chosen when the connection's transport changes (TLS starts after method
 * selection, or from the first byte on the TLS listener; method 0x83 goes
 * back to plain after its close_notify exchange). Callers read and write
 * through x->ops and never ask which one it is (nginx's c->recv idea).
 *
 * recv and send behave like recv(2)/send(2): > 0 bytes, 0 EOF, -1 with
 * errno (EAGAIN: wait for xport_wait_events()). close_write finishes the
 * write side before the caller's shutdown(SHUT_WR): 1 done, 0 again, -1
 * failed. pending says whether a read returns bytes without any I/O
 * (decrypted bytes held by OpenSSL never wake a watcher).
 */
#ifndef MPGW_TRANSPORT_H
#define MPGW_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tlsio;
struct xport;

struct xport_ops {
	ssize_t (*recv)(struct xport *x, void *buf, size_t len);
	ssize_t (*send)(struct xport *x, const void *buf, size_t len);
	int (*close_write)(struct xport *x);
	bool (*pending)(const struct xport *x);
	/* After EAGAIN: does the transport wait for writability? */
	bool (*want_write)(const struct xport *x);
};

struct xport {
	const struct xport_ops *ops;
	int fd;
	struct tlsio *tls;	/* TLS only; owned by the caller */
};

/* Plain TCP on fd. */
void xport_plain(struct xport *x, int fd);
/* TLS through t (on t's fd). */
void xport_tls(struct xport *x, struct tlsio *t);
/* Does x move bytes in the clear (so splice may be used on its fd)? */
bool xport_is_plain(const struct xport *x);
/* EV_READ or EV_WRITE: what a read or handshake that said EAGAIN waits for. */
int xport_wait_events(const struct xport *x);

#endif
