#include "gateway/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/mptcp.h"
#include "gateway/session.h"
#include "gateway/state.h"
#include "gateway/udp.h"
#include "lib/log.h"
#include "lib/util.h"

/* Connections taken per accept event, so one busy listener cannot starve. */
#define ACCEPT_BURST 64
/* How long accept() rests after running out of descriptors, at first. */
#define ACCEPT_BACKOFF 0.1
#define ACCEPT_BACKOFF_MAX 1.6
#define LISTEN_BACKLOG 1024
/* Idle relay buffer bytes a worker keeps for reuse, per size class. */
#define FREE_BUF_BYTES (4u << 20)

/*
 * A listening socket for a, MPTCP if the kernel allows (plain TCP clients
 * are accepted by it too). SO_REUSEPORT lets every worker have its own.
 */
static int
listener_socket(const struct conf_addr *a, enum listener_kind kind,
    const struct gw_conf *c, char *err, size_t errlen)
{
	bool mptcp;
	int fd, one = 1, qlen = LISTEN_BACKLOG;

	fd = mptcp_socket(a->ss.ss_family, true, &mptcp);
	if (fd == -1)
		goto err;
	/* Accepted sockets inherit TCP_NODELAY: one call here, none per client. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		goto err_close;
	/*
	 * The Convert listener takes data in the SYN (TCP Fast Open); with
	 * convert.tfo_no_cookie a client needs no TFO cookie first.
	 */
	if (kind == LISTENER_CONVERT && (setsockopt(fd, IPPROTO_TCP,
	    TCP_FASTOPEN, &qlen, sizeof(qlen)) == -1 || (c->convert_tfo_no_cookie &&
	    setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, &one,
	    sizeof(one)) == -1)))
		goto err_close;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1)
		goto err_close;
	return fd;

err_close:
	{
		int saved = errno;
		close(fd);
		errno = saved;
	}
err:
	snprintf(err, errlen, "listen on %s: %s", a->text, strerror(errno));
	return -1;
}

static void
listeners_set(struct worker *w, bool on)
{
	for (size_t i = 0; i < w->n_listeners; i++) {
		if (on)
			ev_io_start(w->loop, &w->listeners[i].io);
		else
			ev_io_stop(w->loop, &w->listeners[i].io);
	}
}

/*
 * Out of descriptors or memory: spinning on a full table helps nobody.
 * Stop accepting on every listener of this worker for a while, longer
 * each time it happens again at once (up to ACCEPT_BACKOFF_MAX), and warn
 * at most once a second.
 */
static void
accept_pause(struct worker *w, struct listener *l)
{
	ev_tstamp now = ev_now(w->loop);

	if (now - w->backoff_last > 2 * w->backoff)
		w->backoff = ACCEPT_BACKOFF;
	else if (w->backoff < ACCEPT_BACKOFF_MAX)
		w->backoff *= 2;
	w->backoff_last = now;
	if (now - w->backoff_warned >= 1.0) {
		log_warn("accept on %s (pausing %.1f s)", l->addr.text,
		    w->backoff);
		w->backoff_warned = now;
	}
	listeners_set(w, false);
	ev_timer_stop(w->loop, &w->accept_backoff);
	ev_timer_set(&w->accept_backoff, w->backoff, 0.);
	ev_timer_start(w->loop, &w->accept_backoff);
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct listener *l = container_of(io, struct listener, io);
	struct worker *w = l->w;

	(void)loop;
	(void)revents;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			switch (errno) {
			case EINTR:
			case ECONNABORTED:
				continue;
			case EAGAIN:
				return;
			case EMFILE:
			case ENFILE:
				if (worker_shed_fds(w))
					continue;
				/* FALLTHROUGH */
			case ENOBUFS:
			case ENOMEM:
				accept_pause(w, l);
				return;
			default:
				log_warn("accept on %s", l->addr.text);
				return;
			}
		}
		sess_accept(w, l, fd, (struct sockaddr *)&ss, len);
	}
}

static void
backoff_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = container_of(t, struct worker, accept_backoff);

	(void)loop;
	(void)revents;
	if (!w->draining)
		listeners_set(w, true);
}

static void
wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = container_of(a, struct worker, wake);

	(void)revents;
	switch ((enum worker_cmd)atomic_load(&w->command)) {
	case WORKER_CMD_NONE:
		return;
	case WORKER_CMD_DRAIN:
		w->draining = true;
		listeners_set(w, false);
		ev_timer_stop(loop, &w->accept_backoff);
		if (w->n_sessions == 0)
			ev_break(loop, EVBREAK_ALL);
		return;
	case WORKER_CMD_STOP:
		w->draining = true;
		listeners_set(w, false);
		ev_timer_stop(loop, &w->accept_backoff);
		sess_close_all(w);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
}

static int
worker_add_listeners(struct worker *w, const struct gw_conf *c,
    const struct conf_addr_list *l, enum listener_kind kind, bool proxy,
    char *err, size_t errlen)
{
	for (size_t i = 0; i < l->n; i++) {
		struct listener *ls = &w->listeners[w->n_listeners];
		int fd = listener_socket(&l->a[i], kind, c, err, errlen);

		if (fd == -1)
			return -1;
		ls->fd = fd;
		ls->kind = kind;
		ls->proxy = proxy;
		ls->addr = l->a[i];
		ls->w = w;
		ev_io_init(&ls->io, accept_cb, fd, EV_READ);
		w->n_listeners++;
	}
	return 0;
}

int
worker_init(struct worker *w, unsigned idx, const struct gw_conf *c,
    char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->idx = idx;
	worker_buf_setup(w, c->buffer_size, c->buffer_max);
	TAILQ_INIT(&w->sessions);
	atomic_init(&w->command, WORKER_CMD_NONE);
	if ((w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK)) == NULL) {
		snprintf(err, errlen, "cannot make an event loop");
		return -1;
	}
	if ((w->resolver = resolver_new(w->loop, err, errlen)) == NULL)
		goto err_fini;
	if (worker_add_listeners(w, c, &c->socks5_listen, LISTENER_SOCKS5,
	    c->socks5_proxy_protocol, err, errlen) == -1 ||
	    worker_add_listeners(w, c, &c->tls_listen, LISTENER_SOCKS5_TLS,
	    c->tls_proxy_protocol, err, errlen) == -1 ||
	    worker_add_listeners(w, c, &c->convert_listen, LISTENER_CONVERT,
	    c->convert_proxy_protocol, err, errlen) == -1)
		goto err_fini;
	ev_timer_init(&w->accept_backoff, backoff_cb, ACCEPT_BACKOFF, 0.);
	ev_async_init(&w->wake, wake_cb);
	ev_async_start(w->loop, &w->wake);
	pool_doneq_init(&w->doneq, w->loop);
	listeners_set(w, true);
	return 0;

err_fini:
	for (size_t i = 0; i < w->n_listeners; i++)
		close(w->listeners[i].fd);
	resolver_free(w->resolver);
	w->resolver = NULL;
	ev_loop_destroy(w->loop);
	w->loop = NULL;
	return -1;
}

static struct ev_loop *exit_loop;
static ev_async *exit_async;

void
worker_notify_exit(struct ev_loop *loop, ev_async *a)
{
	exit_loop = loop;
	exit_async = a;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	ev_run(w->loop, 0);
	atomic_store(&w->exited, true);
	if (exit_async != NULL)
		ev_async_send(exit_loop, exit_async);
	return NULL;
}

int
worker_start(struct worker *w)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);

	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

void
worker_command(struct worker *w, enum worker_cmd cmd)
{
	atomic_store(&w->command, cmd);
	ev_async_send(w->loop, &w->wake);
}

void
worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
	/* A drain that was cut short leaves sessions: close them here. */
	sess_close_all(w);
	for (size_t i = 0; i < w->n_listeners; i++) {
		ev_io_stop(w->loop, &w->listeners[i].io);
		close(w->listeners[i].fd);
	}
	w->n_listeners = 0;
}

void
worker_fini(struct worker *w)
{
	pool_doneq_fini(&w->doneq);
	resolver_free(w->resolver);
	w->resolver = NULL;
	state_free(w->state);
	w->state = NULL;
	ev_async_stop(w->loop, &w->wake);
	worker_shed_fds(w);
	udp_worker_free(w);
	for (unsigned k = 0; k < WORKER_BUF_CLASSES; k++) {
		while (w->free_bufs[k] != NULL) {
			void *next = *(void **)w->free_bufs[k];

			free(w->free_bufs[k]);
			w->free_bufs[k] = next;
		}
		w->n_free_bufs[k] = 0;
	}
	ev_loop_destroy(w->loop);
	w->loop = NULL;
}

void
worker_buf_setup(struct worker *w, size_t min, size_t max)
{
	size_t sz = min;

	w->buf_min = min;
	w->buf_max = max < min ? min : max;
	w->buf_classes = 1;
	while (sz < w->buf_max && w->buf_classes < WORKER_BUF_CLASSES) {
		sz <<= 2;
		w->buf_classes++;
	}
}

size_t
worker_buf_size(const struct worker *w, unsigned k)
{
	size_t sz = w->buf_min << (2 * k);

	return sz > w->buf_max ? w->buf_max : sz;
}

void *
worker_buf_get(struct worker *w, unsigned k)
{
	void *b = w->free_bufs[k];

	if (b == NULL)
		return malloc(worker_buf_size(w, k));
	w->free_bufs[k] = *(void **)b;
	w->n_free_bufs[k]--;
	return b;
}

int
worker_pipe_get(struct worker *w, int p[2])
{
	if (w->n_free_pipes > 0) {
		w->n_free_pipes--;
		p[0] = w->free_pipes[w->n_free_pipes][0];
		p[1] = w->free_pipes[w->n_free_pipes][1];
		return 0;
	}
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1) {
		p[0] = p[1] = -1;
		return -1;
	}
	/*
	 * Best effort: a pipe as large as the largest relay buffer. A
	 * direction splices only once it has filled a buffer (relay.c), so
	 * pipes serve bulk transfers.
	 */
	(void)fcntl(p[1], F_SETPIPE_SZ, (int)w->buf_max);
	return 0;
}

void
worker_pipe_put(struct worker *w, const int p[2])
{
	if (w->n_free_pipes >= WORKER_FREE_PIPES) {
		close(p[0]);
		close(p[1]);
		return;
	}
	w->free_pipes[w->n_free_pipes][0] = p[0];
	w->free_pipes[w->n_free_pipes][1] = p[1];
	w->n_free_pipes++;
}

bool
worker_shed_fds(struct worker *w)
{
	bool any = w->n_free_pipes > 0;

	while (w->n_free_pipes > 0) {
		w->n_free_pipes--;
		close(w->free_pipes[w->n_free_pipes][0]);
		close(w->free_pipes[w->n_free_pipes][1]);
	}
	return any;
}

void
worker_buf_put(struct worker *w, void *buf, unsigned k)
{
	/* At most FREE_BUF_BYTES idle per class, and a few of any size. */
	size_t keep = FREE_BUF_BYTES / worker_buf_size(w, k);

	if (w->n_free_bufs[k] >= (keep < 2 ? 2 : keep)) {
		free(buf);
		return;
	}
	*(void **)buf = w->free_bufs[k];
	w->free_bufs[k] = buf;
	w->n_free_bufs[k]++;
}
