#include "gateway/metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "gateway/stats.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/http.h"

/* Accepts per wakeup, so a connection flood cannot hold the main loop. */
#define ACCEPT_BURST 16
/* How long accept rests after running out of descriptors. */
#define ACCEPT_BACKOFF 1.

enum mconn_state {
	MCONN_READ = 0,		/* reading the request head */
	MCONN_WRITE,		/* sending the response */
	MCONN_LINGER,		/* SHUT_WR sent; draining until the client's EOF */
};

struct mconn {
	TAILQ_ENTRY(mconn) entry;
	int fd;
	enum mconn_state state;
	ev_io io;
	ev_timer timer;
	size_t in_len;
	size_t head_len;
	size_t body_len;
	size_t off;			/* of head and then body, sent */
	char *body;			/* the response body (malloc), or NULL */
	char head[HTTP_HEAD_MAX];
	uint8_t in[HTTP_REQ_MAX];
};

TAILQ_HEAD(mconn_list, mconn);

static struct {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	ev_timer backoff;
	struct mconn_list conns;
	unsigned n;
} mx = { .fd = -1 };

static void
mconn_close(struct mconn *c)
{
	ev_io_stop(mx.loop, &c->io);
	ev_timer_stop(mx.loop, &c->timer);
	close(c->fd);
	free(c->body);
	TAILQ_REMOVE(&mx.conns, c, entry);
	mx.n--;
	free(c);
}

static void
mconn_watch(struct mconn *c, int events)
{
	ev_io_stop(mx.loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(mx.loop, &c->io);
}

/* Send what is left of the response; at its end, half-close and linger. */
static void
mconn_write(struct mconn *c)
{
	while (c->off < c->head_len + c->body_len) {
		const char *p;
		size_t left;
		ssize_t n;

		if (c->off < c->head_len) {
			p = c->head + c->off;
			left = c->head_len - c->off;
		} else {
			p = c->body + (c->off - c->head_len);
			left = c->body_len - (c->off - c->head_len);
		}
		n = send(c->fd, p, left, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				mconn_watch(c, EV_WRITE);
				return;
			}
			mconn_close(c);
			return;
		}
		c->off += (size_t)n;
	}
	/*
	 * Closing with unread request bytes would send an RST that can
	 * destroy the response in flight: half-close, read until EOF.
	 */
	shutdown(c->fd, SHUT_WR);
	free(c->body);
	c->body = NULL;
	c->state = MCONN_LINGER;
	c->timer.repeat = METRICS_LINGER;
	ev_timer_again(mx.loop, &c->timer);
	mconn_watch(c, EV_READ);
}

/*
 * Queue the response: status with a short text body, or for 200 the
 * metrics (the body of a HEAD request is counted but not sent).
 */
static void
mconn_respond(struct mconn *c, unsigned status, bool head_only)
{
	const char *type = "text/plain; charset=utf-8";
	FILE *f;

	c->body = NULL;
	c->body_len = 0;
	if (status == 200) {
		type = STATS_CONTENT_TYPE;
		if ((f = open_memstream(&c->body, &c->body_len)) == NULL ||
		    stats_write_prometheus(f) == -1 || fclose(f) == EOF) {
			if (f == NULL)
				log_warn("metrics: rendering");
			else
				log_warnx("metrics: rendering failed");
			free(c->body);
			c->body = NULL;
			c->body_len = 0;
			status = 503;
			type = "text/plain; charset=utf-8";
		}
	}
	if (status != 200) {
		int n = asprintf(&c->body, "%u %s\n", status,
		    http_reason(status));

		if (n == -1) {
			c->body = NULL;
			n = 0;
		}
		c->body_len = (size_t)n;
	}
	c->head_len = http_write_head(c->head, sizeof(c->head), status, type,
	    c->body_len);
	if (head_only)
		c->body_len = 0;
	c->off = 0;
	c->state = MCONN_WRITE;
	log_debug("metrics: fd %d: %u", c->fd, status);
	mconn_write(c);
}

/* Read the request; answer once its head is whole (or cannot be). */
static void
mconn_read(struct mconn *c)
{
	struct http_req req;
	size_t used;
	ssize_t n;

	for (;;) {
		n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len,
		    0);
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0) {
		mconn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	switch (http_req_parse(c->in, c->in_len, &req, &used)) {
	case HTTP_AGAIN:
		if (c->in_len == sizeof(c->in))
			mconn_respond(c, 431, false);
		return;
	case HTTP_BAD:
		mconn_respond(c, 400, false);
		return;
	case HTTP_OK:
		break;
	}
	if (req.path_len != 8 || memcmp(req.target, "/metrics", 8) != 0)
		mconn_respond(c, 404, req.method == HTTP_METHOD_HEAD);
	else if (req.method == HTTP_METHOD_OTHER)
		mconn_respond(c, 405, false);
	else
		mconn_respond(c, 200, req.method == HTTP_METHOD_HEAD);
}

/* Drain the client until its EOF, a bounded amount per wakeup. */
static void
mconn_linger(struct mconn *c)
{
	char sink[512];
	ssize_t n;

	for (int i = 0; i < 16; i++) {
		n = recv(c->fd, sink, sizeof(sink), 0);
		if (n > 0 || (n == -1 && errno == EINTR))
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		mconn_close(c);
		return;
	}
}

static void
mconn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct mconn *c = container_of(io, struct mconn, io);

	(void)loop;
	(void)revents;
	switch (c->state) {
	case MCONN_READ:
		mconn_read(c);
		break;
	case MCONN_WRITE:
		mconn_write(c);
		break;
	case MCONN_LINGER:
		mconn_linger(c);
		break;
	}
}

static void
mconn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct mconn *c = container_of(t, struct mconn, timer);

	(void)loop;
	(void)revents;
	log_debug("metrics: fd %d: timed out", c->fd);
	mconn_close(c);
}

/*
 * Make room for one more connection: the oldest that has not sent its
 * request goes first (it is the one holding the place for nothing),
 * else the oldest of all.
 */
static void
mconn_evict(void)
{
	struct mconn *c, *victim = TAILQ_FIRST(&mx.conns);

	TAILQ_FOREACH(c, &mx.conns, entry) {
		if (c->state == MCONN_READ) {
			victim = c;
			break;
		}
	}
	if (victim != NULL) {
		log_debug("metrics: %u connections: closing fd %d", mx.n,
		    victim->fd);
		mconn_close(victim);
	}
}

static void
backoff_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	ev_io_start(loop, &mx.io);
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct mconn *c;
	int fd;

	(void)revents;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			/* Out of descriptors: the listener would stay ready. */
			log_warn("metrics: accept");
			ev_io_stop(loop, io);
			ev_timer_set(&mx.backoff, ACCEPT_BACKOFF, 0.);
			ev_timer_start(loop, &mx.backoff);
			return;
		}
		if (mx.n >= METRICS_CONNS_MAX)
			mconn_evict();
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			log_warn("metrics");
			close(fd);
			continue;
		}
		c->fd = fd;
		c->state = MCONN_READ;
		ev_io_init(&c->io, mconn_cb, fd, EV_READ);
		ev_io_start(loop, &c->io);
		ev_init(&c->timer, mconn_timer_cb);
		c->timer.repeat = METRICS_TIMEOUT;
		ev_timer_again(loop, &c->timer);
		TAILQ_INSERT_TAIL(&mx.conns, c, entry);
		mx.n++;
	}
}

int
metrics_start(struct ev_loop *loop, const struct conf_addr *a, char *err,
    size_t errlen)
{
	int one = 1;

	TAILQ_INIT(&mx.conns);
	mx.loop = loop;
	mx.fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (mx.fd == -1) {
		snprintf(err, errlen, "metrics.listen %s: %s", a->text,
		    strerror(errno));
		return -1;
	}
	(void)setsockopt(mx.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(mx.fd, (const struct sockaddr *)&a->ss, a->len) == -1 ||
	    listen(mx.fd, 64) == -1) {
		snprintf(err, errlen, "metrics.listen %s: %s", a->text,
		    strerror(errno));
		close(mx.fd);
		mx.fd = -1;
		return -1;
	}
	ev_io_init(&mx.io, accept_cb, mx.fd, EV_READ);
	ev_io_start(loop, &mx.io);
	ev_init(&mx.backoff, backoff_cb);
	log_info("metrics listening on %s (GET /metrics)", a->text);
	return 0;
}

void
metrics_stop(void)
{
	struct mconn *c;

	if (mx.fd == -1)
		return;
	while ((c = TAILQ_FIRST(&mx.conns)) != NULL)
		mconn_close(c);
	ev_io_stop(mx.loop, &mx.io);
	ev_timer_stop(mx.loop, &mx.backoff);
	close(mx.fd);
	mx.fd = -1;
}
