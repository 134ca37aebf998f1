/*
 * The relay (gateway/relay.c) driven through relay_start on a real libev
 * loop, between two real socket pairs: the "client" application's socket
 * and the relay's client side, the relay's upstream side and the "server".
 * Every case runs twice, as relayd's regress does: in copy mode over
 * socketpair()s and in splice mode over loopback TCP pairs (splice needs
 * TCP sockets).
 *
 *   - half-close passes on in each direction, and the other direction keeps
 *     working until it closes too; then the relay reports done;
 *   - a slow consumer (SO_RCVBUF 4 KiB, not reading): the relay stops
 *     reading the producer and holds at most one buffer (or pipe) of bytes,
 *     the producer's send queue fills up, and when the consumer reads
 *     again every byte arrives;
 *   - a few MiB each way at once, with early client bytes handed to
 *     relay_start, arrive byte for byte.
 *
 * Two helpers know the relay's signature and insides: start_relay() (the
 * only call of relay_start) and relay_state() (what it holds and moved).
 * A change of relay_start's transport arguments means changing
 * start_relay() only.
 */
#include "gateway/relay.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/transport.h"
#include "gateway/worker.h"
#include "lib/util.h"

#define BUF_SIZE 16384		/* relay buffer (and pipe) size */
#define PRELOAD 4		/* buffers put in the worker's free list */
#define CONSUMER_RCVBUF 4096
#define FLOOD_LIMIT (64u << 20)	/* the producer gives up here: no stall */

enum mode {
	MODE_COPY = 0,		/* buffers, socketpair() */
	MODE_SPLICE,		/* pipes, loopback TCP */
};

/* A deterministic byte stream: both ends of a transfer make the same one. */
struct gen {
	uint64_t s;
	uint64_t word;
	unsigned left;
};

/* One end of a transfer: the client application or the server. */
struct peer {
	struct fix *f;
	int fd;
	ev_io rd, wr;
	struct gen tx, rx;	/* what it sends, what it expects */
	uint64_t to_send, sent;
	uint64_t recvd;
	uint8_t out[65536];
	size_t out_off, out_len;
	size_t wchunk, rchunk;	/* largest write and read */
	bool eagain;		/* the last send found the socket full */
	bool got_eof;
	bool shut;
	bool bad;		/* a byte differed from the stream */
};

struct fix {
	enum mode mode;
	struct worker *w;
	struct relay r;
	int ca, cfd;		/* client application <-> relay client side */
	int ufd, ua;		/* relay upstream side <-> server */
	struct xport cx, ux;	/* the relay's transports: plain */
	void *bufs[PRELOAD];
	struct peer client, server;
	unsigned done_calls;
	int done_err;
	bool check_bounds;	/* check held() after every event */
	size_t max_bytes;	/* the most the relay held at once */
	unsigned max_bufs, max_pipes;
};

static void
gen_init(struct gen *g, uint64_t seed)
{
	g->s = seed * 0x9e3779b97f4a7c15ULL + 1;
	g->left = 0;
}

static uint8_t
gen_byte(struct gen *g)
{
	uint8_t b;

	if (g->left == 0) {
		g->s ^= g->s << 13;
		g->s ^= g->s >> 7;
		g->s ^= g->s << 17;
		g->word = g->s;
		g->left = 8;
	}
	b = (uint8_t)g->word;
	g->word >>= 8;
	g->left--;
	return b;
}

static void
gen_fill(struct gen *g, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = gen_byte(g);
}

/* Whether p[0..n) is what g makes next (and move g past it). */
static bool
gen_check(struct gen *g, const uint8_t *p, size_t n)
{
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		ok &= p[i] == gen_byte(g);
	return ok;
}

static void
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	cr_assert_neq(fl, -1);
	cr_assert_neq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), -1);
}

/*
 * A connected pair: a socketpair() for copy mode, loopback TCP for
 * splice. rcvbuf > 0 sets the first socket's SO_RCVBUF (before connect,
 * so TCP advertises the small window from the start).
 */
static void
make_pair(enum mode mode, int sv[2], int rcvbuf)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int l;

	if (mode == MODE_COPY) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		if (rcvbuf > 0)
			cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF,
			    &rcvbuf, sizeof(rcvbuf)), 0);
	} else {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		cr_assert_neq(l = socket(AF_INET, SOCK_STREAM, 0), -1);
		cr_assert_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
		cr_assert_eq(listen(l, 1), 0);
		cr_assert_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
		cr_assert_neq(sv[0] = socket(AF_INET, SOCK_STREAM, 0), -1);
		if (rcvbuf > 0)
			cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF,
			    &rcvbuf, sizeof(rcvbuf)), 0);
		cr_assert_eq(connect(sv[0], (struct sockaddr *)&sin,
		    sizeof(sin)), 0);
		cr_assert_neq(sv[1] = accept(l, NULL, NULL), -1);
		close(l);
	}
	nonblock(sv[0]);
	nonblock(sv[1]);
}

static void
on_done(struct relay *r, int err)
{
	struct fix *f = container_of(r, struct fix, r);

	f->done_calls++;
	f->done_err = err;
	/* As the session does: done() closes both sockets (relay.h). */
	close(f->cfd);
	close(f->ufd);
	f->cfd = f->ufd = -1;
}

/* The one call of relay_start: the place to adapt to a new signature. */
static void
start_relay(struct fix *f, const uint8_t *first, size_t first_len)
{
	xport_plain(&f->cx, f->cfd);
	xport_plain(&f->ux, f->ufd);
	cr_assert_eq(relay_start(&f->r, f->w, &f->cx, &f->ux,
	    f->mode == MODE_SPLICE, first, first_len, on_done), 0,
	    "relay_start: %s", strerror(errno));
}

/* What one direction of the relay holds. */
struct hold {
	size_t bytes;		/* read but not yet written */
	unsigned bufs;		/* worker buffers borrowed */
	unsigned pipes;		/* worker pipes borrowed */
};

/* What the relay holds and has done, from its insides. */
struct state {
	struct hold up, down;	/* client -> upstream, upstream -> client */
	uint64_t moved_up, moved_down;
	bool reading_upstream;	/* its read watcher on the upstream side */
	bool splice;
};

/*
 * The one reader of struct relay's insides. Checks that every buffer held
 * is one of the worker's (preloaded), so a relay that took more than the
 * pool would be caught.
 */
static void
relay_state(struct fix *f, struct state *st)
{
	const struct relay_dir *d[2] = { &f->r.up, &f->r.down };
	struct hold *h[2] = { &st->up, &st->down };

	for (int i = 0; i < 2; i++) {
		memset(h[i], 0, sizeof(*h[i]));
		if (d[i]->buf != NULL) {
			bool ours = false;

			for (int k = 0; k < PRELOAD; k++)
				ours |= d[i]->buf == f->bufs[k];
			cr_assert(ours, "a buffer not from the worker's pool");
			h[i]->bufs = 1;
		}
		h[i]->pipes = d[i]->pipe[0] != -1;
		h[i]->bytes = d[i]->len - d[i]->off + d[i]->inpipe;
	}
	st->moved_up = f->r.up.bytes;
	st->moved_down = f->r.down.bytes;
	st->reading_upstream = ev_is_active(&f->r.down.rd);
	st->splice = f->r.splice;
	cr_assert_eq(st->up.bufs + st->down.bufs + f->w->n_free_bufs[0], PRELOAD,
	    "buffers held and free do not add up to the %d preloaded",
	    PRELOAD);
}

/* Bytes, buffers and pipes the relay holds in all. */
static size_t
held(struct fix *f, unsigned *nbufs, unsigned *npipes)
{
	struct state st;

	relay_state(f, &st);
	*nbufs = st.up.bufs + st.down.bufs;
	*npipes = st.up.pipes + st.down.pipes;
	return st.up.bytes + st.down.bytes;
}

/* Whether the relay reads from the upstream side now. */
static bool
reading_upstream(struct fix *f)
{
	struct state st;

	relay_state(f, &st);
	return st.reading_upstream;
}

/* Record what the relay holds: never more than a buffer each way. */
static void
check_bounds(struct fix *f)
{
	unsigned nb, np;
	size_t b = held(f, &nb, &np);

	cr_assert_leq(b, 2 * BUF_SIZE);
	cr_assert_leq(nb, 2);
	cr_assert_leq(np, 2);
	if (b > f->max_bytes)
		f->max_bytes = b;
	if (nb > f->max_bufs)
		f->max_bufs = nb;
	if (np > f->max_pipes)
		f->max_pipes = np;
}

static void
setup_fix(struct fix *f, enum mode mode, int consumer_rcvbuf)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	cr_assert_not_null(f->w = calloc(1, sizeof(*f->w)));
	cr_assert_not_null(f->w->loop = ev_loop_new(EVFLAG_AUTO));
	/* One size class: these cases check the borrowing, not the growth. */
	worker_buf_setup(f->w, BUF_SIZE, BUF_SIZE);
	for (int k = 0; k < PRELOAD; k++) {
		cr_assert_not_null(f->bufs[k] = malloc(BUF_SIZE));
		worker_buf_put(f->w, f->bufs[k], 0);
	}
	make_pair(mode, sv, consumer_rcvbuf);
	f->ca = sv[0];
	f->cfd = sv[1];
	make_pair(mode, sv, 0);
	f->ufd = sv[0];
	f->ua = sv[1];
}

/* Free the worker's idle buffers (every class). */
static void
teardown_bufs(struct fix *f)
{
	for (unsigned k = 0; k < WORKER_BUF_CLASSES; k++) {
		while (f->w->free_bufs[k] != NULL) {
			void *next = *(void **)f->w->free_bufs[k];

			free(f->w->free_bufs[k]);
			f->w->free_bufs[k] = next;
		}
		f->w->n_free_bufs[k] = 0;
	}
}

static void
teardown_fix(struct fix *f)
{
	relay_stop(&f->r);
	ev_io_stop(f->w->loop, &f->client.rd);
	ev_io_stop(f->w->loop, &f->client.wr);
	ev_io_stop(f->w->loop, &f->server.rd);
	ev_io_stop(f->w->loop, &f->server.wr);
	close(f->ca);
	if (f->cfd != -1)
		close(f->cfd);
	if (f->ufd != -1)
		close(f->ufd);
	close(f->ua);
	worker_shed_fds(f->w);
	teardown_bufs(f);
	ev_loop_destroy(f->w->loop);
	free(f->w);
}

/* ---- synchronous steps for the half-close cases ---- */

static void
flag_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	*(bool *)io->data = true;
}

/* Run the loop (the relay) until fd has the event ev. */
static void
wait_for(struct fix *f, int fd, int ev)
{
	bool ready = false;
	ev_io io;

	ev_io_init(&io, flag_cb, fd, ev);
	io.data = &ready;
	ev_io_start(f->w->loop, &io);
	while (!ready)
		ev_run(f->w->loop, EVRUN_ONCE);
	ev_io_stop(f->w->loop, &io);
}

static void
send_all(struct fix *f, int fd, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (n == -1 && errno == EAGAIN) {
			wait_for(f, fd, EV_WRITE);
			continue;
		}
		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		off += (size_t)n;
	}
}

/* Read exactly strlen(want) bytes from fd (running the relay) and compare. */
static void
expect_bytes(struct fix *f, int fd, const char *want)
{
	char got[256];
	size_t len = strlen(want), off = 0;

	cr_assert_lt(len, sizeof(got));
	while (off < len) {
		ssize_t n = recv(fd, got + off, len - off, 0);

		if (n == -1 && errno == EAGAIN) {
			wait_for(f, fd, EV_READ);
			continue;
		}
		cr_assert_gt(n, 0, "recv: %s", n == 0 ? "EOF" : strerror(errno));
		off += (size_t)n;
	}
	got[len] = '\0';
	cr_assert_str_eq(got, want);
}

/* fd reaches EOF next (the half-close came through), nothing before. */
static void
expect_eof(struct fix *f, int fd)
{
	char c;
	ssize_t n;

	while ((n = recv(fd, &c, 1, 0)) == -1 && errno == EAGAIN)
		wait_for(f, fd, EV_READ);
	cr_assert_eq(n, 0, "expected EOF, got %zd (%s)", n,
	    n == -1 ? strerror(errno) : "a byte");
}

/* Run the loop until the relay reports done. */
static void
wait_done(struct fix *f)
{
	while (f->done_calls == 0)
		ev_run(f->w->loop, EVRUN_ONCE);
	cr_assert_eq(f->done_calls, 1);
}

/*
 * One side closes its sending half first: the other side gets exactly its
 * bytes then EOF, can still answer through the half-open connection, and
 * the relay is done only when both halves are closed.
 */
static void
half_close(enum mode mode, bool client_first)
{
	struct fix f;
	static const char *const said = "first words, then shutdown";
	static const char *const a1 = "an answer ";
	static const char *const a2 = "after the half-close";
	int first = client_first ? 0 : 1;
	int ends[2][2];		/* [side][0] writes there, [1] reads it */
	struct state st;

	setup_fix(&f, mode, 0);
	ends[0][0] = f.ca;
	ends[0][1] = f.ua;
	ends[1][0] = f.ua;
	ends[1][1] = f.ca;
	start_relay(&f, NULL, 0);

	send_all(&f, ends[first][0], said);
	cr_assert_eq(shutdown(ends[first][0], SHUT_WR), 0);
	expect_bytes(&f, ends[first][1], said);
	expect_eof(&f, ends[first][1]);
	cr_assert_eq(f.done_calls, 0, "done after one half-close");

	/* The other direction still carries data, both ways of chunking. */
	send_all(&f, ends[!first][0], a1);
	expect_bytes(&f, ends[!first][1], a1);
	send_all(&f, ends[!first][0], a2);
	expect_bytes(&f, ends[!first][1], a2);
	cr_assert_eq(f.done_calls, 0);

	cr_assert_eq(shutdown(ends[!first][0], SHUT_WR), 0);
	expect_eof(&f, ends[!first][1]);
	wait_done(&f);
	cr_assert_eq(f.done_err, 0, "done with %s", strerror(f.done_err));
	relay_state(&f, &st);
	cr_assert_eq(client_first ? st.moved_up : st.moved_down, strlen(said));
	cr_assert_eq(client_first ? st.moved_down : st.moved_up,
	    strlen(a1) + strlen(a2));
	cr_assert_eq(st.up.bufs + st.down.bufs + st.up.pipes + st.down.pipes,
	    0u, "done, but holding a buffer or pipe");
	teardown_fix(&f);
}

/* ---- event-driven peers for the bulk cases ---- */

static void
peer_step(struct fix *f)
{
	if (f->check_bounds)
		check_bounds(f);
}

static void
peer_wr_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct peer *p = container_of(io, struct peer, wr);

	(void)revents;
	for (;;) {
		ssize_t n;

		if (p->out_off == p->out_len) {
			size_t k = p->wchunk;

			if (p->sent == p->to_send) {
				ev_io_stop(loop, io);
				if (!p->shut) {
					cr_assert_eq(shutdown(p->fd, SHUT_WR),
					    0);
					p->shut = true;
				}
				break;
			}
			if (k > sizeof(p->out))
				k = sizeof(p->out);
			if (k > p->to_send - p->sent)
				k = (size_t)(p->to_send - p->sent);
			gen_fill(&p->tx, p->out, k);
			p->out_off = 0;
			p->out_len = k;
		}
		n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN) {
			p->eagain = true;
			break;
		}
		cr_assert_gt(n, 0, "peer send: %s", strerror(errno));
		p->eagain = false;
		p->out_off += (size_t)n;
		p->sent += (uint64_t)n;
	}
	peer_step(p->f);
}

static void
peer_rd_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct peer *p = container_of(io, struct peer, rd);
	uint8_t buf[65536];
	ssize_t n;

	(void)revents;
	n = recv(p->fd, buf, p->rchunk, 0);
	if (n == -1 && errno == EAGAIN)
		return;
	cr_assert_geq(n, 0, "peer recv: %s", strerror(errno));
	if (n == 0) {
		p->got_eof = true;
		ev_io_stop(loop, io);
	} else {
		if (!gen_check(&p->rx, buf, (size_t)n))
			p->bad = true;
		p->recvd += (uint64_t)n;
	}
	peer_step(p->f);
}

static void
peer_init(struct fix *f, struct peer *p, int fd, uint64_t tx_seed,
    uint64_t rx_seed, uint64_t to_send, size_t wchunk, size_t rchunk)
{
	p->f = f;
	p->fd = fd;
	gen_init(&p->tx, tx_seed);
	gen_init(&p->rx, rx_seed);
	p->to_send = to_send;
	p->wchunk = wchunk;
	p->rchunk = rchunk;
	ev_io_init(&p->rd, peer_rd_cb, fd, EV_READ);
	ev_io_init(&p->wr, peer_wr_cb, fd, EV_WRITE);
}

/* Whether fd could take more bytes now. */
static bool
writable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT) != 0;
}

/*
 * A few MiB each way at once, the client's first bytes handed to
 * relay_start as early data: every byte arrives, in order, both EOFs
 * pass, the relay counts what it moved and is done without error.
 */
static void
bulk(enum mode mode)
{
	const uint64_t up = 3u << 20, down = (4u << 20) + 12345;
	uint8_t first[1000];
	struct fix f;
	struct state st;
	unsigned nb, np;

	setup_fix(&f, mode, 0);
	f.check_bounds = true;
	peer_init(&f, &f.client, f.ca, 1, 2, up, 7000, 65536);
	peer_init(&f, &f.server, f.ua, 2, 1, down, 65536, 3000);
	/* The client's first bytes came with the handshake. */
	gen_fill(&f.client.tx, first, sizeof(first));
	f.client.sent = sizeof(first);
	start_relay(&f, first, sizeof(first));
	ev_io_start(f.w->loop, &f.client.rd);
	ev_io_start(f.w->loop, &f.client.wr);
	ev_io_start(f.w->loop, &f.server.rd);
	ev_io_start(f.w->loop, &f.server.wr);
	while (!(f.client.got_eof && f.server.got_eof && f.done_calls > 0))
		ev_run(f.w->loop, EVRUN_ONCE);

	cr_assert_eq(f.server.recvd, up);
	cr_assert_eq(f.client.recvd, down);
	cr_assert(!f.server.bad, "upstream got different bytes");
	cr_assert(!f.client.bad, "client got different bytes");
	cr_assert_eq(f.done_calls, 1);
	cr_assert_eq(f.done_err, 0, "done with %s", strerror(f.done_err));
	relay_state(&f, &st);
	cr_assert_eq(st.moved_up, up);
	cr_assert_eq(st.moved_down, down);
	/* Done: nothing held; the mode really was the one asked for. */
	cr_assert_eq(held(&f, &nb, &np), 0u);
	cr_assert_eq(nb + np, 0u);
	if (mode == MODE_SPLICE) {
		cr_assert(st.splice);
		cr_assert_gt(f.w->n_free_pipes, 0, "no pipe was used");
	} else {
		cr_assert(!st.splice);
		cr_assert_eq(f.w->n_free_pipes, 0, "a pipe was used");
		cr_assert_gt(f.max_bufs, 0);
	}
	teardown_fix(&f);
}

/*
 * The client reads nothing and has a 4 KiB receive buffer; the server
 * sends as fast as it can. (A socketpair's queue is bounded by the
 * sender's SO_SNDBUF, so in copy mode the relay's client side takes about
 * 200 KiB before it is full; over TCP the 4 KiB window bounds it.) The relay must stop reading the server once
 * the client side is full, holding at most one buffer (or pipe) of bytes,
 * so the server's send queue fills and its sends fail with EAGAIN long
 * before FLOOD_LIMIT. Then the client reads, slowly, and every byte sent
 * arrives in order.
 */
static void
slow_consumer(enum mode mode)
{
	struct fix f;
	struct state st;
	unsigned nb, np;
	unsigned long spins = 0;
	uint64_t stalled_at, total;
	size_t b;

	setup_fix(&f, mode, CONSUMER_RCVBUF);
	f.check_bounds = true;
	peer_init(&f, &f.client, f.ca, 3, 4, 0, 1, 1000);
	peer_init(&f, &f.server, f.ua, 4, 3, FLOOD_LIMIT, 65536, 1);
	start_relay(&f, NULL, 0);
	ev_io_start(f.w->loop, &f.server.wr);

	/*
	 * Flood until the relay has stopped reading and cannot write, and
	 * the server's socket is full: nothing can move until the client
	 * reads, so this state lasts.
	 */
	while (!(f.server.eagain && !writable(f.ua) &&
	    !reading_upstream(&f) && !writable(f.cfd))) {
		ev_run(f.w->loop, EVRUN_NOWAIT);
		cr_assert_lt(f.server.sent, FLOOD_LIMIT,
		    "the relay kept reading: %ju bytes in without a stall",
		    (uintmax_t)f.server.sent);
		cr_assert_lt(++spins, 10000000ul, "no stall and no progress");
	}
	stalled_at = f.server.sent;
	b = held(&f, &nb, &np);
	cr_log_info("%s: server stalled after %ju bytes; relay holds %zu "
	    "bytes, %u buffers, %u pipes", mode == MODE_COPY ? "copy" :
	    "splice", (uintmax_t)stalled_at, b, nb, np);
	cr_assert_gt(b, 0u, "the relay should hold what the client refused");
	cr_assert_leq(b, BUF_SIZE, "the relay holds more than a buffer");
	cr_assert_leq(nb + np, 1u, "more than one buffer/pipe held");
	relay_state(&f, &st);
	cr_assert(st.up.bufs + st.up.pipes == 0,
	    "the idle direction holds a buffer or pipe");
	if (mode == MODE_SPLICE)
		cr_assert_eq(nb, 0u);
	else
		cr_assert_eq(np, 0u);

	/* More loop rounds change nothing: the server stays stuck. */
	for (int i = 0; i < 1000; i++)
		ev_run(f.w->loop, EVRUN_NOWAIT);
	cr_assert_eq(f.server.sent, stalled_at);
	cr_assert(!reading_upstream(&f));

	/*
	 * The client reads 1000 bytes at a time; the server sends what it
	 * has made already and 1 MiB more.
	 */
	total = stalled_at + (f.server.out_len - f.server.out_off) + (1u << 20);
	f.server.to_send = total;
	ev_io_start(f.w->loop, &f.client.rd);
	while (!(f.client.got_eof && f.done_calls > 0)) {
		ev_run(f.w->loop, EVRUN_ONCE);
		/* The client closes its half once the server's EOF is in. */
		if (f.client.got_eof && !f.client.shut) {
			cr_assert_eq(shutdown(f.ca, SHUT_WR), 0);
			f.client.shut = true;
		}
	}
	cr_assert_eq(f.client.recvd, total);
	cr_assert(!f.client.bad, "client got different bytes");
	cr_assert_eq(f.done_err, 0, "done with %s", strerror(f.done_err));
	cr_assert_leq(f.max_bytes, BUF_SIZE);
	teardown_fix(&f);
}

TestSuite(relay, .timeout = 30);

Test(relay, half_close_client_first_copy)
{
	half_close(MODE_COPY, true);
}

Test(relay, half_close_client_first_splice)
{
	half_close(MODE_SPLICE, true);
}

Test(relay, half_close_upstream_first_copy)
{
	half_close(MODE_COPY, false);
}

Test(relay, half_close_upstream_first_splice)
{
	half_close(MODE_SPLICE, false);
}

Test(relay, slow_consumer_stops_reading_copy)
{
	slow_consumer(MODE_COPY);
}

Test(relay, slow_consumer_stops_reading_splice)
{
	slow_consumer(MODE_SPLICE);
}

Test(relay, bulk_both_ways_byte_exact_copy)
{
	bulk(MODE_COPY);
}

Test(relay, bulk_both_ways_byte_exact_splice)
{
	bulk(MODE_SPLICE);
}

/*
 * Buffers follow the flow (relay.c, dir_learn): with classes of 4, 16 and
 * 64 KiB, a bulk download makes the down direction read 64 KiB at a time;
 * a trickle afterwards brings it back down; an idle direction holds no
 * buffer. In splice mode the bulk direction switched to a pipe after its
 * first full buffer, and every byte still arrives in order.
 */
static void
growth(enum mode mode)
{
	const uint64_t down = 2u << 20;
	struct fix f;
	unsigned top = 0;

	setup_fix(&f, mode, 0);
	/* Drop the one-class setup: 4 KiB first, up to 64 KiB. */
	teardown_bufs(&f);
	worker_buf_setup(f.w, 4096, 65536);
	cr_assert_eq(f.w->buf_classes, 3);
	peer_init(&f, &f.client, f.ca, 1, 2, 0, 1, 65536);
	peer_init(&f, &f.server, f.ua, 2, 1, down, 65536, 65536);
	f.server.shut = true;	/* keeps its write side open when done */
	start_relay(&f, NULL, 0);
	ev_io_start(f.w->loop, &f.client.rd);
	ev_io_start(f.w->loop, &f.server.wr);
	while (f.client.recvd < down) {
		ev_run(f.w->loop, EVRUN_ONCE);
		if (f.r.down.cls > top)
			top = f.r.down.cls;
	}
	cr_assert(!f.client.bad, "client got different bytes");
	if (mode == MODE_SPLICE) {
		/* A pipe took over after the first full buffer. */
		cr_assert(f.r.down.splicing, "bulk never switched to splice");
	} else {
		cr_assert_eq(top, 2, "bulk never read 64 KiB at a time");
		cr_assert_not(f.r.down.splicing);
	}
	/* Idle: nothing held. */
	cr_assert_null(f.r.down.buf);
	cr_assert_eq(f.r.down.pipe[0], -1);
	/* The client's short requests keep the up direction small. */
	send_all(&f, f.ca, "ping");
	expect_bytes(&f, f.ua, "ping");
	cr_assert_eq(f.r.up.cls, 0);
	cr_assert_not(f.r.up.splicing, "a short request went to a pipe");
	cr_assert_null(f.r.up.buf);
	if (mode == MODE_COPY) {
		/* Short answers shrink the down direction back, a class a read. */
		ev_io_stop(f.w->loop, &f.client.rd);
		send_all(&f, f.ua, "pong1");
		expect_bytes(&f, f.ca, "pong1");
		cr_assert_eq(f.r.down.cls, 1);
		send_all(&f, f.ua, "pong2");
		expect_bytes(&f, f.ca, "pong2");
		cr_assert_eq(f.r.down.cls, 0);
	}
	teardown_fix(&f);
}

Test(relay, buffers_grow_with_the_flow_copy)
{
	growth(MODE_COPY);
}

Test(relay, buffers_grow_with_the_flow_splice)
{
	growth(MODE_SPLICE);
}
