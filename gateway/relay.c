#include "gateway/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/transport.h"
#include "gateway/worker.h"
#include "lib/util.h"

static void relay_dir_update(struct relay_dir *d);

/* The direction that is not d. */
static struct relay_dir *
relay_other(struct relay_dir *d)
{
	return d == &d->r->up ? &d->r->down : &d->r->up;
}

static bool
dir_pending(const struct relay_dir *d)
{
	return d->len - d->off > 0 || d->inpipe > 0;
}

/* Hand the direction's buffer back to the worker. */
static void
dir_buf_release(struct relay_dir *d)
{
	if (d->buf == NULL)
		return;
	worker_buf_put(d->r->w, d->buf, d->buf_cls);
	d->buf = NULL;
	d->off = d->len = 0;
}

/* Hand the direction's pipe back to the worker if it is empty. */
static void
dir_pipe_release(struct relay_dir *d)
{
	if (d->pipe[0] == -1)
		return;
	if (d->inpipe == 0)
		worker_pipe_put(d->r->w, d->pipe);
	else {
		/* Bytes nobody will read: the pipe goes with them. */
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
	d->pipe[0] = d->pipe[1] = -1;
	d->inpipe = 0;
}

static void
relay_fail(struct relay *r, int err)
{
	relay_stop(r);
	r->done(r, err == 0 ? EIO : err);
}

static void
relay_check_done(struct relay *r)
{
	if (r->up.shut && r->down.shut) {
		relay_stop(r);
		r->done(r, 0);
	}
}

/*
 * Push what the direction holds to its write side. Returns 0 (all of it, or
 * as much as the socket takes now) or -1 with errno for a failed peer.
 */
static int
dir_flush(struct relay_dir *d)
{
	while (dir_pending(d)) {
		ssize_t n;
		bool from_buf = d->len - d->off > 0;

		/* Buffered bytes (early data) go before anything in the pipe. */
		if (from_buf)
			n = d->to->ops->send(d->to, d->buf + d->off,
			    d->len - d->off);
		else
			n = splice(d->pipe[0], NULL, d->to->fd, NULL, d->inpipe,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		if (from_buf)
			d->off += (size_t)n;
		else
			d->inpipe -= (size_t)n;
	}
	/* An idle direction holds no buffer and no pipe. */
	dir_buf_release(d);
	dir_pipe_release(d);
	return 0;
}

/*
 * Size the direction's next buffer from its last read (the flow it
 * carries): a read that filled the buffer takes the next class up (x4, to
 * upstream.buffer_max), a read of less than a quarter the next one down.
 * A bulk transfer thus reads up to buffer_max per call (what an MPTCP
 * receiver needs: relay_perf.md measured 64 KiB reads at 0.08 of direct
 * MPTCP and 1 MiB reads at 0.57), while a short exchange never takes more
 * than buffer_size. In splice mode the first full buffer also switches
 * the direction to splice: short exchanges move by recv/send (no pipe,
 * two system calls a turn), bulk ones through a pipe.
 */
static void
dir_learn(struct relay_dir *d, size_t n, size_t cap)
{
	struct worker *w = d->r->w;

	if (n == cap) {
		if (d->cls + 1 < w->buf_classes)
			d->cls++;
		if (d->r->splice)
			d->splicing = true;
	} else if (n < cap / 4 && d->cls > 0)
		d->cls--;
}

/* Read once from the direction's read side: 1 data, 0 EOF, -1 error/again. */
static int
dir_fill(struct relay_dir *d)
{
	struct worker *w = d->r->w;
	size_t cap;
	ssize_t n;

	if (d->splicing && d->pipe[0] == -1)
		(void)worker_pipe_get(w, d->pipe);	/* else: a buffer */
	for (;;) {
		if (d->pipe[0] != -1) {
			cap = w->buf_max;
			n = splice(d->from->fd, NULL, d->pipe[1], NULL, cap,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		} else {
			if (d->buf == NULL) {
				if ((d->buf = worker_buf_get(w, d->cls)) ==
				    NULL)
					return -1;
				d->buf_cls = d->cls;
			}
			cap = worker_buf_size(w, d->buf_cls);
			n = d->from->ops->recv(d->from, d->buf, cap);
		}
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n > 0) {
		d->bytes += (uint64_t)n;
		if (d->pipe[0] != -1)
			d->inpipe = (size_t)n;
		else {
			d->off = 0;
			d->len = (size_t)n;
			dir_learn(d, (size_t)n, cap);
		}
		return 1;
	}
	if (n == 0) {
		d->eof = true;
		return 0;
	}
	return -1;
}

/*
 * A TLS read can need the socket writable first (it owes the peer a record,
 * e.g. a KeyUpdate answer): wait for that instead of spinning on EV_READ.
 */
static void
dir_read_wait(struct relay_dir *d)
{
	int ev = xport_wait_events(d->from);

	if ((d->rd.events & (EV_READ | EV_WRITE)) == ev)
		return;
	ev_io_stop(d->r->w->loop, &d->rd);
	ev_io_set(&d->rd, d->from->fd, ev);
	ev_io_start(d->r->w->loop, &d->rd);
}

/*
 * One read per wakeup. Reading again until EAGAIN (up to 4 or 16 reads)
 * measured no better for an MPTCP download on loopback (1 GiB, three
 * interleaved runs each, 2.5-6.1 Gbit/s either way, within the noise),
 * so the loop goes back to epoll and other sessions get their turn.
 */
static void
dir_rd_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct relay_dir *d = container_of(io, struct relay_dir, rd);
	struct relay *r = d->r;
	int rc;

	(void)revents;
	rc = dir_fill(d);
	if (rc != 1) {
		if (rc == -1 && errno != EAGAIN) {
			relay_fail(r, errno);
			return;
		}
		/* EOF, or nothing after all (half a TLS record): hold nothing. */
		if (d->len == 0)
			dir_buf_release(d);
		dir_pipe_release(d);
		if (rc == -1) {
			dir_read_wait(d);
			return;
		}
	} else {
		r->last_active = ev_now(loop);
		dir_read_wait(d);
	}
	if (rc == 1 && dir_flush(d) == -1) {
		relay_fail(r, errno);
		return;
	}
	relay_dir_update(d);
}

static void
dir_wr_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct relay_dir *d = container_of(io, struct relay_dir, wr);

	(void)revents;
	if (dir_pending(d))
		d->r->last_active = ev_now(loop);
	if (dir_flush(d) == -1) {
		relay_fail(d->r, errno);
		return;
	}
	relay_dir_update(d);
}

/*
 * Set the direction's watchers from its state: bytes pending -> wait until
 * the peer can take them (and read no more); empty -> read; EOF and empty ->
 * pass the half-close on and stop.
 */
static void
relay_dir_update(struct relay_dir *d)
{
	struct ev_loop *loop = d->r->w->loop;

	if (dir_pending(d)) {
		ev_io_stop(loop, &d->rd);
		ev_io_start(loop, &d->wr);
		return;
	}
	ev_io_stop(loop, &d->wr);
	if (!d->eof) {
		ev_io_start(loop, &d->rd);
		/* Decrypted bytes in OpenSSL make the socket look idle. */
		if (d->from->ops->pending(d->from))
			ev_feed_event(loop, &d->rd, EV_READ);
		return;
	}
	ev_io_stop(loop, &d->rd);
	if (!d->shut) {
		if (!d->r->eof_seen && d->r->first_eof != NULL) {
			d->r->eof_seen = true;
			d->r->first_eof(d->r);
		}
		/*
		 * TLS: close_notify goes before the FIN, whole; if the socket
		 * is full, finish it when it drains. A failure (peer gone) is
		 * the other direction's to report.
		 */
		if (d->to->ops->close_write(d->to) == 0) {
			ev_io_start(loop, &d->wr);
			return;
		}
		d->shut = true;
		/*
		 * The last direction to end needs no shutdown: the session
		 * closes both sockets at once, and close sends the FIN (the
		 * other side is at EOF, so nothing unread turns it into an
		 * RST). One system call fewer per connection.
		 */
		if (!relay_other(d)->shut)
			shutdown(d->to->fd, SHUT_WR);
	}
	relay_check_done(d->r);
}

static void
dir_init(struct relay *r, struct relay_dir *d, struct xport *from,
    struct xport *to)
{
	memset(d, 0, sizeof(*d));
	d->r = r;
	d->from = from;
	d->to = to;
	d->pipe[0] = d->pipe[1] = -1;
	ev_io_init(&d->rd, dir_rd_cb, from->fd, EV_READ);
	ev_io_init(&d->wr, dir_wr_cb, to->fd, EV_WRITE);
}

static void
dir_release(struct relay *r, struct relay_dir *d)
{
	ev_io_stop(r->w->loop, &d->rd);
	ev_io_stop(r->w->loop, &d->wr);
	dir_buf_release(d);
	dir_pipe_release(d);
}

int
relay_start(struct relay *r, struct worker *w, struct xport *client,
    struct xport *upstream, bool use_splice, const uint8_t *first,
    size_t first_len, void (*done)(struct relay *, int))
{
	r->w = w;
	r->done = done;
	r->last_active = ev_now(w->loop);
	dir_init(r, &r->up, client, upstream);
	dir_init(r, &r->down, upstream, client);
	r->splice = use_splice && xport_is_plain(client) &&
	    xport_is_plain(upstream);

	if (first_len > 0) {
		if (first_len > worker_buf_size(w, 0) ||
		    (r->up.buf = worker_buf_get(w, 0)) == NULL) {
			relay_stop(r);
			errno = ENOMEM;
			return -1;
		}
		r->up.buf_cls = 0;
		memcpy(r->up.buf, first, first_len);
		r->up.len = first_len;
		r->up.bytes = first_len;
	}
	relay_dir_update(&r->up);
	relay_dir_update(&r->down);
	return 0;
}

void
relay_stop(struct relay *r)
{
	if (r->w == NULL)
		return;	/* never started */
	dir_release(r, &r->up);
	dir_release(r, &r->down);
}
