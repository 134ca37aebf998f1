#include "gateway/transport.h"

#include <ev.h>
#include <sys/socket.h>

#include "gateway/tlsio.h"

static ssize_t
plain_recv(struct xport *x, void *buf, size_t len)
{
	return recv(x->fd, buf, len, 0);
}

static ssize_t
plain_send(struct xport *x, const void *buf, size_t len)
{
	return send(x->fd, buf, len, MSG_NOSIGNAL);
}

static int
plain_close_write(struct xport *x)
{
	(void)x;
	return 1;
}

static bool
plain_false(const struct xport *x)
{
	(void)x;
	return false;
}

static const struct xport_ops plain_ops = {
	.recv = plain_recv,
	.send = plain_send,
	.close_write = plain_close_write,
	.pending = plain_false,
	.want_write = plain_false,
};

static ssize_t
tls_recv(struct xport *x, void *buf, size_t len)
{
	return tlsio_read(x->tls, buf, len);
}

static ssize_t
tls_send(struct xport *x, const void *buf, size_t len)
{
	return tlsio_write(x->tls, buf, len);
}

static int
tls_close_write(struct xport *x)
{
	return tlsio_close_notify(x->tls);
}

static bool
tls_pending(const struct xport *x)
{
	return tlsio_pending(x->tls);
}

static bool
tls_want_write(const struct xport *x)
{
	return x->tls->want_write;
}

static const struct xport_ops tls_ops = {
	.recv = tls_recv,
	.send = tls_send,
	.close_write = tls_close_write,
	.pending = tls_pending,
	.want_write = tls_want_write,
};

void
xport_plain(struct xport *x, int fd)
{
	x->ops = &plain_ops;
	x->fd = fd;
	x->tls = NULL;
}

void
xport_tls(struct xport *x, struct tlsio *t)
{
	x->ops = &tls_ops;
	x->fd = t->fd;
	x->tls = t;
}

bool
xport_is_plain(const struct xport *x)
{
	return x->ops == &plain_ops;
}

int
xport_wait_events(const struct xport *x)
{
	return x->ops->want_write(x) ? EV_WRITE : EV_READ;
}
