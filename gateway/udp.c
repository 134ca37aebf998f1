#include "gateway/udp.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth/rules.h"
#include "conf/conf.h"
#include "gateway/dial.h"
#include "gateway/resolve.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "gateway/worker.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/convert.h"
#include "proto/socks5.h"

/* Datagrams per recvmmsg/sendmmsg, and batches per wakeup (fairness). */
#define UDP_BATCH 16
#define UDP_ROUNDS 8
/*
 * Room in front of a received datagram for what goes before it on the way
 * out: a frame's length (2) and the relay's SOCKS5 header for an IPv6
 * source (22).
 */
#define UDP_HEADROOM 32
/* The largest datagram taken: the 16-bit UDP length's limit. */
#define UDP_DGRAM_MAX 65535
#define UDP_SLOT (UDP_HEADROOM + UDP_DGRAM_MAX)
/* Recent destinations (a power of two), and names, per association. */
#define UDP_DESTS 256
#define UDP_NAMES 16
/* How long a name's answer (or its failure) is used. */
#define UDP_NAME_TTL 60.
/* Datagrams waiting for their name, payload bytes and headers. */
#define UDP_HELD_MAX (64 * 1024)
/* A stream side's input: one whole frame at least, and room to read on. */
#define UDP_STREAM_IN (CONV_UDP_FRAME_MAX + 16 * 1024)
/*
 * Frames waiting for room in a stream's connection (its send buffer
 * starts small and grows with the congestion window): at least one whole
 * frame; beyond this, datagrams are dropped.
 */
#define UDP_STREAM_OUT (2 * CONV_UDP_FRAME_MAX)
/* Socket buffers asked for (the kernel caps them at rmem_max/wmem_max). */
#define UDP_SOCKBUF (1024 * 1024)

enum udp_drop {
	UDP_DROP_FRAG = 0,
	UDP_DROP_SOURCE,
	UDP_DROP_DENIED,
	UDP_DROP_BAD,
	UDP_DROP_UNRESOLVED,
	UDP_DROP_CONGESTED,
	UDP_DROP_UNSOLICITED,
	UDP_DROP_ERROR,
};
#define UDP_DROP_COUNT (UDP_DROP_ERROR + 1)

enum udp_dir {
	UDP_UP = 0,		/* client -> destination */
	UDP_DOWN,		/* destination -> client */
};

/* Datagrams about to go out through one socket (sendmmsg). */
struct udp_out {
	unsigned n;
	struct mmsghdr m[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_storage to[UDP_BATCH];
	uint32_t plen[UDP_BATCH];	/* payload bytes, for the counters */
};

/* Frames about to go out on a stream (one sendmsg). */
struct udp_fout {
	unsigned n;
	struct udp_stream *st;
	struct iovec iov[UDP_BATCH];
	uint32_t plen[UDP_BATCH];
};

/*
 * A worker's datagram buffers: what one callback receives, and what it
 * sends; every callback sends all it queued before it returns, so one set
 * serves every association of the worker.
 */
struct udp_wbuf {
	struct mmsghdr in[UDP_BATCH];
	struct iovec iniov[UDP_BATCH];
	struct sockaddr_storage from[UDP_BATCH];
	struct udp_out dg[2];		/* up: [family v4, v6]; down: [client] */
	struct udp_fout fr;
	uint8_t data[UDP_BATCH][UDP_SLOT];
};

/* Frames over a TCP connection (plain: a Convert or via connection). */
struct udp_stream {
	struct udp_assoc *a;
	enum udp_dir dir;		/* where the frames read here go */
	int fd;
	ev_io io;
	uint8_t *in;			/* UDP_STREAM_IN bytes */
	size_t in_len;
	uint8_t *out;			/* UDP_STREAM_OUT: frames not yet sent */
	size_t out_off;			/* sent up to here */
	size_t out_len;			/* 0: nothing waits */
};

/* A destination the client sent to: its rule verdict, and replies welcome. */
struct udp_dest {
	uint8_t family;			/* AF_INET, AF_INET6; 0: empty */
	bool allowed;
	uint16_t port;
	uint16_t name;			/* 1 + the name it was reached by, 0: none */
	uint16_t gen;			/* that name's generation */
	uint8_t addr[16];
};

enum udp_name_state {
	UDP_NAME_EMPTY = 0,
	UDP_NAME_PENDING,
	UDP_NAME_OK,
	UDP_NAME_FAILED,
};

struct udp_name {
	struct udp_assoc *a;
	enum udp_name_state state;
	uint16_t gen;			/* bumped when the slot is reused */
	ev_tstamp expires;
	struct resolve_req *rreq;
	struct sockaddr_storage addr;	/* port 0 */
	char name[256];
};

/* In front of each held datagram's payload. */
struct udp_held {
	uint16_t name;			/* index into names */
	uint16_t port;
	uint32_t len;
};

struct udp_assoc {
	struct session *s;
	struct worker *w;
	bool started;			/* SESS_UDP: datagrams flow */
	bool counted;			/* holds a slot of STAT_UDP_OPEN */
	bool ended;			/* close the session when the callback ends */
	enum sess_result end_result;
	/* Client side: a UDP socket (SOCKS5) or frames on s->cfd (Convert). */
	int cfd;
	ev_io crd;
	ev_io ctl;			/* SOCKS5: the control connection */
	struct sockaddr_storage client;	/* where datagrams come from, as the
					 * socket reports it */
	bool pinned;			/* client's port known */
	struct udp_stream cst;
	bool client_stream;
	/* Upstream side: own UDP sockets, or frames on s->ufd (via). */
	int ofd[2];			/* AF_INET, AF_INET6; -1 until used */
	ev_io ord[2];
	struct udp_stream ust;
	bool up_stream;
	struct udp_dest dests[UDP_DESTS];
	struct udp_name names[UDP_NAMES];
	uint8_t *held;			/* UDP_HELD_MAX, allocated on first use */
	size_t held_len;
	ev_tstamp last_active;
	/* Counters; stats.c gets what is new at the end of each callback. */
	uint64_t dgrams[2], bytes[2], drops[UDP_DROP_COUNT];
	unsigned dests_seen;
	uint64_t synced_dgrams[2], synced_drops[UDP_DROP_COUNT];
};

static const char *
udp_drop_name(enum udp_drop d)
{
	switch (d) {
	case UDP_DROP_FRAG:
		return "frag";
	case UDP_DROP_SOURCE:
		return "source";
	case UDP_DROP_DENIED:
		return "denied";
	case UDP_DROP_BAD:
		return "bad";
	case UDP_DROP_UNRESOLVED:
		return "unresolved";
	case UDP_DROP_CONGESTED:
		return "congested";
	case UDP_DROP_UNSOLICITED:
		return "unsolicited";
	case UDP_DROP_ERROR:
		return "error";
	}
	return "?";
}

static enum stat_id
udp_drop_stat(enum udp_drop d)
{
	switch (d) {
	case UDP_DROP_FRAG:
		return STAT_UDP_DROP_FRAG;
	case UDP_DROP_SOURCE:
		return STAT_UDP_DROP_SOURCE;
	case UDP_DROP_DENIED:
		return STAT_UDP_DROP_DENIED;
	case UDP_DROP_BAD:
		return STAT_UDP_DROP_BAD;
	case UDP_DROP_UNRESOLVED:
		return STAT_UDP_DROP_UNRESOLVED;
	case UDP_DROP_CONGESTED:
		return STAT_UDP_DROP_CONGESTED;
	case UDP_DROP_UNSOLICITED:
		return STAT_UDP_DROP_UNSOLICITED;
	case UDP_DROP_ERROR:
		return STAT_UDP_DROP_ERROR;
	}
	return STAT_UDP_DROP_ERROR;
}

static void
udp_drop(struct udp_assoc *a, enum udp_drop d, uint64_t n)
{
	a->drops[d] += n;
}

/* End the association once the running callback is done with it. */
static void
udp_end(struct udp_assoc *a, enum sess_result r)
{
	if (!a->ended) {
		a->ended = true;
		a->end_result = r;
	}
}

static struct udp_wbuf *
udp_wbuf(struct worker *w)
{
	if (w->udp_buf == NULL)
		w->udp_buf = calloc(1, sizeof(struct udp_wbuf));
	return w->udp_buf;
}

void
udp_worker_free(struct worker *w)
{
	free(w->udp_buf);
	w->udp_buf = NULL;
}

/* --- watchers --------------------------------------------------------- */

/* Watch fd for events on io (0: stop), restarting it only on a change. */
static void
udp_watch_fd(struct ev_loop *loop, ev_io *io, int fd, int events)
{
	if (ev_is_active(io) && io->fd == fd &&
	    (io->events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(loop, io);
	if (fd == -1 || events == 0)
		return;
	ev_io_set(io, fd, events);
	ev_io_start(loop, io);
}

/*
 * Set every watcher from the state: a stream with the rest of a frame to
 * send waits for writability, and the datagram side feeding it is not
 * read meanwhile (its socket buffer, then the kernel, drop what comes).
 */
static void
udp_watch(struct udp_assoc *a)
{
	struct ev_loop *loop = a->w->loop;
	bool up_full = a->up_stream && a->ust.out_len > 0;
	bool down_full = a->client_stream && a->cst.out_len > 0;

	if (!a->started)
		return;
	udp_watch_fd(loop, &a->crd, a->cfd, up_full ? 0 : EV_READ);
	for (int i = 0; i < 2; i++)
		udp_watch_fd(loop, &a->ord[i], a->ofd[i], down_full ? 0 :
		    EV_READ);
	if (a->client_stream)
		udp_watch_fd(loop, &a->cst.io, a->cst.fd, EV_READ |
		    (a->cst.out_len > 0 ? EV_WRITE : 0));
	else
		udp_watch_fd(loop, &a->ctl, a->s->cfd,
		    xport_wait_events(&a->s->cx));
	if (a->up_stream)
		udp_watch_fd(loop, &a->ust.io, a->ust.fd, EV_READ |
		    (a->ust.out_len > 0 ? EV_WRITE : 0));
}

/* Hand what is new in the counters to stats.c. */
static void
udp_sync(struct udp_assoc *a)
{
	for (int d = 0; d < 2; d++) {
		if (a->dgrams[d] == a->synced_dgrams[d])
			continue;
		stats_add(d == UDP_UP ? STAT_UDP_DGRAMS_UP :
		    STAT_UDP_DGRAMS_DOWN, a->dgrams[d] - a->synced_dgrams[d]);
		a->synced_dgrams[d] = a->dgrams[d];
	}
	for (int i = 0; i < UDP_DROP_COUNT; i++) {
		if (a->drops[i] == a->synced_drops[i])
			continue;
		stats_add(udp_drop_stat((enum udp_drop)i), a->drops[i] -
		    a->synced_drops[i]);
		a->synced_drops[i] = a->drops[i];
	}
}

/* The end of every callback: counters, watchers, or the close. */
static void
udp_finish(struct udp_assoc *a)
{
	struct session *s = a->s;

	udp_sync(a);
	if (a->ended) {
		sess_set_result(s, a->end_result);
		sess_close(s);
		return;
	}
	udp_watch(a);
}

/* --- sending ---------------------------------------------------------- */

/*
 * Send the datagrams queued in o through fd. A message the kernel refuses
 * (EMSGSIZE, an unreachable network) is dropped and the rest go on; a full
 * socket drops what is left.
 */
static void
udp_out_flush(struct udp_assoc *a, struct udp_out *o, int fd,
    enum udp_dir dir)
{
	unsigned off = 0;
	int r;

	while (off < o->n) {
		r = sendmmsg(fd, o->m + off, o->n - off, MSG_DONTWAIT);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS) {
				udp_drop(a, UDP_DROP_CONGESTED, o->n - off);
				break;
			}
			log_debug("session %" PRIu64 ": udp send: %s",
			    a->s->id, strerror(errno));
			udp_drop(a, UDP_DROP_ERROR, 1);
			off++;
			continue;
		}
		for (unsigned i = off; i < off + (unsigned)r; i++) {
			a->dgrams[dir]++;
			a->bytes[dir] += o->plen[i];
		}
		off += (unsigned)r;
	}
	o->n = 0;
}

/* Queue a datagram for fd's batch in o; a full batch goes out first. */
static void
udp_out_add(struct udp_assoc *a, struct udp_out *o, int fd,
    enum udp_dir dir, const struct sockaddr *to, const uint8_t *p,
    size_t len, size_t plen)
{
	struct msghdr *mh;

	if (o->n == UDP_BATCH)
		udp_out_flush(a, o, fd, dir);
	memcpy(&o->to[o->n], to, addr_len(to));
	o->iov[o->n].iov_base = (void *)(uintptr_t)p;
	o->iov[o->n].iov_len = len;
	o->plen[o->n] = (uint32_t)plen;
	mh = &o->m[o->n].msg_hdr;
	memset(mh, 0, sizeof(*mh));
	mh->msg_name = &o->to[o->n];
	mh->msg_namelen = addr_len(to);
	mh->msg_iov = &o->iov[o->n];
	mh->msg_iovlen = 1;
	o->n++;
}

/*
 * Keep n bytes of frames for when the connection takes more: false if
 * they do not fit (the datagram is dropped).
 */
static bool
udp_stream_keep(struct udp_stream *st, const uint8_t *p, size_t n)
{
	if (st->out == NULL && (st->out = malloc(UDP_STREAM_OUT)) == NULL)
		return false;
	if (UDP_STREAM_OUT - st->out_len < n && st->out_off > 0) {
		memmove(st->out, st->out + st->out_off, st->out_len -
		    st->out_off);
		st->out_len -= st->out_off;
		st->out_off = 0;
	}
	if (UDP_STREAM_OUT - st->out_len < n)
		return false;
	memcpy(st->out + st->out_len, p, n);
	st->out_len += n;
	return true;
}

/*
 * Send the frames queued in f with one sendmsg. What the connection does
 * not take waits in the stream's own buffer (the rest of a frame must go
 * for the stream to stay whole; whole frames while there is room), and
 * the datagram side feeding it pauses until it is out (udp_watch).
 */
static void
udp_fout_flush(struct udp_assoc *a, struct udp_fout *f)
{
	struct udp_stream *st = f->st;
	struct msghdr mh;
	enum udp_dir dir = st == &a->ust ? UDP_UP : UDP_DOWN;
	size_t left;
	ssize_t n;
	unsigned i;

	if (f->n == 0)
		return;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = f->iov;
	mh.msg_iovlen = f->n;
	do
		n = sendmsg(st->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EAGAIN) {
		udp_end(a, errno == ECONNRESET ? SESS_RES_RESET :
		    SESS_RES_RELAY_ERROR);
		f->n = 0;
		return;
	}
	left = n == -1 ? 0 : (size_t)n;
	for (i = 0; i < f->n; i++) {
		if (left >= f->iov[i].iov_len)
			left -= f->iov[i].iov_len;
		else if (!udp_stream_keep(st, (uint8_t *)f->iov[i].iov_base +
		    left, f->iov[i].iov_len - left)) {
			if (left > 0) {
				/* Cannot happen: the buffer holds a frame. */
				udp_end(a, SESS_RES_NO_MEMORY);
				break;
			}
			udp_drop(a, UDP_DROP_CONGESTED, 1);
			continue;
		} else
			left = 0;
		/* Sent, or kept to be sent. */
		a->dgrams[dir]++;
		a->bytes[dir] += f->plen[i];
	}
	f->n = 0;
}

/*
 * Queue the frame whose body (SOCKS5 UDP header and payload) is
 * body[0..len); the two bytes before body are the frame's length (the
 * buffers leave room for them).
 */
static void
udp_frame_add(struct udp_assoc *a, struct udp_stream *st, uint8_t *body,
    size_t len, size_t plen)
{
	struct udp_fout *f = &((struct udp_wbuf *)a->w->udp_buf)->fr;
	enum udp_dir dir = st == &a->ust ? UDP_UP : UDP_DOWN;

	if (a->ended) {
		udp_drop(a, UDP_DROP_ERROR, 1);
		return;
	}
	(void)conv_udp_frame_len(body - CONV_UDP_LEN_LEN, len);
	if (f->n > 0 && f->st != st)
		udp_fout_flush(a, f);
	if (f->n == UDP_BATCH)
		udp_fout_flush(a, f);
	if (st->out_len > 0) {
		/* The connection is full: behind what already waits. */
		if (udp_stream_keep(st, body - CONV_UDP_LEN_LEN,
		    CONV_UDP_LEN_LEN + len)) {
			a->dgrams[dir]++;
			a->bytes[dir] += plen;
		} else
			udp_drop(a, UDP_DROP_CONGESTED, 1);
		return;
	}
	f->st = st;
	f->iov[f->n].iov_base = body - CONV_UDP_LEN_LEN;
	f->iov[f->n].iov_len = CONV_UDP_LEN_LEN + len;
	f->plen[f->n] = (uint32_t)plen;
	f->n++;
}

/* Everything queued in the worker's buffers goes out. */
static void
udp_flush(struct udp_assoc *a, enum udp_dir dir)
{
	struct udp_wbuf *wb = a->w->udp_buf;

	udp_fout_flush(a, &wb->fr);
	if (dir == UDP_UP) {
		for (int i = 0; i < 2; i++)
			if (wb->dg[i].n > 0)
				udp_out_flush(a, &wb->dg[i], a->ofd[i], UDP_UP);
	} else if (wb->dg[0].n > 0)
		udp_out_flush(a, &wb->dg[0], a->cfd, UDP_DOWN);
}

/* Send more of the frames a stream keeps; when all are out, reading resumes. */
static void
udp_stream_drain(struct udp_assoc *a, struct udp_stream *st)
{
	ssize_t n;

	while (st->out_off < st->out_len) {
		n = send(st->fd, st->out + st->out_off, st->out_len -
		    st->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1) {
			udp_end(a, errno == ECONNRESET ? SESS_RES_RESET :
			    SESS_RES_RELAY_ERROR);
			return;
		}
		st->out_off += (size_t)n;
	}
	st->out_off = st->out_len = 0;
}

/* --- destinations and rules ------------------------------------------- */

static size_t
udp_dest_hash(int family, const uint8_t *addr, uint16_t port)
{
	size_t n = family == AF_INET ? 4 : 16;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ addr[i]) * 16777619u;
	h = (h ^ (port & 0xff)) * 16777619u;
	h = (h ^ (port >> 8)) * 16777619u;
	return h & (UDP_DESTS - 1);
}

/* The family, address bytes and port of an unmapped sockaddr. */
static const uint8_t *
udp_sa_key(const struct sockaddr *sa, uint16_t *port)
{
	const struct sockaddr_in *sin = (const void *)sa;
	const struct sockaddr_in6 *sin6 = (const void *)sa;

	if (sa->sa_family == AF_INET) {
		*port = ntohs(sin->sin_port);
		return (const uint8_t *)&sin->sin_addr;
	}
	*port = ntohs(sin6->sin6_port);
	return sin6->sin6_addr.s6_addr;
}

static bool
udp_dest_is(const struct udp_dest *d, int family, const uint8_t *addr,
    uint16_t port)
{
	return d->family == family && d->port == port &&
	    memcmp(d->addr, addr, family == AF_INET ? 4 : 16) == 0;
}

/* A reply from sa (unmapped): did the client send there? */
static bool
udp_dest_known(const struct udp_assoc *a, const struct sockaddr *sa)
{
	const uint8_t *addr;
	uint16_t port;

	addr = udp_sa_key(sa, &port);
	return udp_dest_is(&a->dests[udp_dest_hash(sa->sa_family, addr,
	    port)], sa->sa_family, addr, port);
}

/*
 * May the client send to sa (unmapped, with its port), reached by name
 * (NULL: an address)? The access rules for command udp decide, with the
 * built-in protection; the verdict is kept in the destination's slot (a
 * slot holds the last destination that hashed to it).
 */
static bool
udp_dest_allowed(struct udp_assoc *a, const struct sockaddr *sa,
    const struct udp_name *name)
{
	struct session *s = a->s;
	struct auth_target t = { .addr = sa, .name = NULL };
	struct udp_dest *d;
	const uint8_t *addr;
	uint16_t port, ni = 0, gen = 0;
	char text[ADDR_STR_MAX];

	addr = udp_sa_key(sa, &port);
	t.port = port;
	if (name != NULL) {
		ni = (uint16_t)(1 + (name - a->names));
		gen = name->gen;
		t.name = name->name;
	}
	d = &a->dests[udp_dest_hash(sa->sa_family, addr, port)];
	if (udp_dest_is(d, sa->sa_family, addr, port) && d->name == ni &&
	    d->gen == gen)
		return d->allowed;
	memset(d, 0, sizeof(*d));
	d->family = (uint8_t)sa->sa_family;
	d->port = port;
	d->name = ni;
	d->gen = gen;
	memcpy(d->addr, addr, sa->sa_family == AF_INET ? 4 : 16);
	d->allowed = sess_rules_allow(s, SOCKS5_CMD_UDP_ASSOCIATE, &t,
	    "udp to %s", addr_format(sa, text, sizeof(text)));
	a->dests_seen++;
	return d->allowed;
}

/*
 * The edge (upstream.via): the concentrator resolves names, so a name is
 * judged by itself (rules with domain or port lists, no address); an
 * address as above.
 */
static bool
udp_edge_allowed(struct udp_assoc *a, const struct socks5_addr *dst)
{
	struct session *s = a->s;
	struct auth_target t = {
		.addr = NULL,
		.name = dst->u.name,
		.port = dst->port,
	};
	struct sockaddr_storage ss, tmp;
	const struct sockaddr *sa;
	const char *why = NULL;
	socklen_t len;

	if (dst->atyp != SOCKS5_ATYP_DOMAIN) {
		(void)socks5_addr_to_sockaddr(dst, &ss, &len);
		sa = addr_unmap((const struct sockaddr *)&ss, &tmp);
		return sa != NULL && udp_dest_allowed(a, sa, NULL);
	}
	return auth_rules_check(sess_conf(s), (const struct sockaddr *)&s->peer,
	    s->user, SOCKS5_CMD_UDP_ASSOCIATE, &t, &why) == CONF_ALLOW;
}

/* --- up: client to destination ---------------------------------------- */

/* The socket for family (AF_INET or AF_INET6), opened on first use. */
static int
udp_out_socket(struct udp_assoc *a, int family)
{
	int i = family == AF_INET ? 0 : 1, fd, one = 1, sz = UDP_SOCKBUF;

	if (a->ofd[i] != -1)
		return a->ofd[i];
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 && (errno == EMFILE || errno == ENFILE) &&
	    worker_shed_fds(a->w))
		fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd == -1) {
		log_warn("session %" PRIu64 ": udp socket", a->s->id);
		return -1;
	}
	if (family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	a->ofd[i] = fd;
	return fd;
}

/* A payload for sa (unmapped, with its port), reached by name or not. */
static void
udp_up_send(struct udp_assoc *a, const struct sockaddr *sa,
    const struct udp_name *name, const uint8_t *p, size_t len)
{
	struct udp_wbuf *wb = a->w->udp_buf;
	int fd, i = sa->sa_family == AF_INET ? 0 : 1;

	if (!udp_dest_allowed(a, sa, name)) {
		udp_drop(a, UDP_DROP_DENIED, 1);
		return;
	}
	if ((fd = udp_out_socket(a, sa->sa_family)) == -1) {
		udp_drop(a, UDP_DROP_ERROR, 1);
		return;
	}
	udp_out_add(a, &wb->dg[i], fd, UDP_UP, sa, p, len, len);
}

static void udp_name_resolved(void *arg, const struct resolve_result *res);

/* A free name slot: empty, expired, else the one expiring first. */
static struct udp_name *
udp_name_slot(struct udp_assoc *a)
{
	struct udp_name *best = NULL;

	for (size_t i = 0; i < UDP_NAMES; i++) {
		struct udp_name *n = &a->names[i];

		if (n->state == UDP_NAME_EMPTY)
			return n;
		if (n->state == UDP_NAME_PENDING)
			continue;
		if (best == NULL || n->expires < best->expires)
			best = n;
	}
	return best;
}

/* Keep a datagram until its name is resolved; false if there is no room. */
static bool
udp_hold(struct udp_assoc *a, const struct udp_name *n, uint16_t port,
    const uint8_t *p, size_t len)
{
	struct udp_held h = {
		.name = (uint16_t)(n - a->names),
		.port = port,
		.len = (uint32_t)len,
	};

	if (a->held == NULL && (a->held = malloc(UDP_HELD_MAX)) == NULL)
		return false;
	if (UDP_HELD_MAX - a->held_len < sizeof(h) ||
	    UDP_HELD_MAX - a->held_len - sizeof(h) < len)
		return false;
	memcpy(a->held + a->held_len, &h, sizeof(h));
	memcpy(a->held + a->held_len + sizeof(h), p, len);
	a->held_len += sizeof(h) + len;
	return true;
}

/* The name's address with port, unmapped, into ss. */
static const struct sockaddr *
udp_name_addr(const struct udp_name *n, uint16_t port,
    struct sockaddr_storage *ss)
{
	memcpy(ss, &n->addr, sizeof(*ss));
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	return (const struct sockaddr *)ss;
}

/* A payload for a name: its cached address, or held while it resolves. */
static void
udp_up_name(struct udp_assoc *a, const struct socks5_addr *dst,
    const uint8_t *p, size_t len)
{
	struct session *s = a->s;
	ev_tstamp now = ev_now(a->w->loop);
	struct sockaddr_storage ss;
	struct udp_name *n = NULL;

	for (size_t i = 0; i < UDP_NAMES && n == NULL; i++)
		if (a->names[i].state != UDP_NAME_EMPTY &&
		    strcmp(a->names[i].name, dst->u.name) == 0)
			n = &a->names[i];
	if (n != NULL && n->state != UDP_NAME_PENDING && n->expires <= now)
		n = NULL;	/* stale: look it up again in this slot */
	if (n != NULL) {
		switch (n->state) {
		case UDP_NAME_OK:
			udp_up_send(a, udp_name_addr(n, dst->port, &ss), n, p,
			    len);
			return;
		case UDP_NAME_FAILED:
			udp_drop(a, UDP_DROP_UNRESOLVED, 1);
			return;
		case UDP_NAME_PENDING:
			if (!udp_hold(a, n, dst->port, p, len))
				udp_drop(a, UDP_DROP_CONGESTED, 1);
			return;
		case UDP_NAME_EMPTY:
			break;
		}
	}
	if ((n = udp_name_slot(a)) == NULL) {
		/* Every slot has a lookup out. */
		udp_drop(a, UDP_DROP_UNRESOLVED, 1);
		return;
	}
	memset(&n->addr, 0, sizeof(n->addr));
	n->a = a;
	n->gen++;
	n->state = UDP_NAME_PENDING;
	memcpy(n->name, dst->u.name, sizeof(n->name));
	if (!udp_hold(a, n, dst->port, p, len)) {
		n->state = UDP_NAME_EMPTY;
		udp_drop(a, UDP_DROP_CONGESTED, 1);
		return;
	}
	n->rreq = resolve_start(a->w->resolver, n->name, 0,
	    (const struct sockaddr *)&s->peer, sess_conf(s)->dns_per_source,
	    udp_name_resolved, n);
	if (n->rreq == NULL) {
		n->state = UDP_NAME_FAILED;
		n->expires = now + 1;
	}
}

/*
 * A datagram from the client: body[0..len) is its SOCKS5 UDP header and
 * payload, with room before it for a frame's length.
 */
static void
udp_up_datagram(struct udp_assoc *a, uint8_t *body, size_t len)
{
	struct socks5_udp_hdr h;
	struct sockaddr_storage ss, tmp;
	const struct sockaddr *sa;
	socklen_t sslen;
	size_t hl;

	if (socks5_parse_udp_hdr(body, len, &h, &hl) != SOCKS5_OK) {
		udp_drop(a, UDP_DROP_BAD, 1);
		return;
	}
	if (h.frag != 0) {
		/* RFC 1928 section 7: no reassembly here, so MUST drop. */
		udp_drop(a, UDP_DROP_FRAG, 1);
		return;
	}
	if (a->up_stream) {
		if (!udp_edge_allowed(a, &h.addr)) {
			udp_drop(a, UDP_DROP_DENIED, 1);
			return;
		}
		udp_frame_add(a, &a->ust, body, len, len - hl);
		return;
	}
	if (h.addr.atyp == SOCKS5_ATYP_DOMAIN) {
		udp_up_name(a, &h.addr, body + hl, len - hl);
		return;
	}
	(void)socks5_addr_to_sockaddr(&h.addr, &ss, &sslen);
	sa = addr_unmap((const struct sockaddr *)&ss, &tmp);
	udp_up_send(a, sa, NULL, body + hl, len - hl);
}

/* The worker's resolver answered for a name: send what waited for it. */
static void
udp_name_resolved(void *arg, const struct resolve_result *res)
{
	struct udp_name *n = arg;
	struct udp_assoc *a = n->a;
	struct sockaddr_storage ss;
	char esc[SESS_ESC_MAX];
	uint16_t idx = (uint16_t)(n - a->names);
	size_t off, keep = 0;
	struct udp_held h;

	n->rreq = NULL;
	n->expires = ev_now(a->w->loop) + UDP_NAME_TTL;
	if (res->status == RESOLVE_OK && res->n > 0 &&
	    addr_unmap((const struct sockaddr *)&res->addrs[0], &ss) != NULL) {
		/* The first in the resolver's order (RFC 6724). */
		n->state = UDP_NAME_OK;
		memcpy(&n->addr, &ss, sizeof(n->addr));
	} else {
		n->state = UDP_NAME_FAILED;
		log_info("session %" PRIu64 ": udp: resolving %s: %s",
		    a->s->id, log_escape(n->name, esc, sizeof(esc)), res->msg);
	}
	for (off = 0; off < a->held_len; off += sizeof(h) + h.len) {
		memcpy(&h, a->held + off, sizeof(h));
		if (h.name != idx)
			continue;
		if (n->state == UDP_NAME_OK)
			udp_up_send(a, udp_name_addr(n, h.port, &ss), n,
			    a->held + off + sizeof(h), h.len);
		else
			udp_drop(a, UDP_DROP_UNRESOLVED, 1);
	}
	udp_flush(a, UDP_UP);
	/* Keep only the datagrams of other names, in their order. */
	for (off = 0; off < a->held_len; off += sizeof(h) + h.len) {
		memcpy(&h, a->held + off, sizeof(h));
		if (h.name == idx)
			continue;
		memmove(a->held + keep, a->held + off, sizeof(h) + h.len);
		keep += sizeof(h) + h.len;
	}
	a->held_len = keep;
	udp_finish(a);
}

/* Is from (as the client socket reports it) the client? Pins its port. */
static bool
udp_from_client(struct udp_assoc *a, const struct sockaddr *from)
{
	struct sockaddr_storage t1, t2;
	const struct sockaddr *f = addr_unmap(from, &t1);
	const struct sockaddr *c = addr_unmap((const struct sockaddr *)
	    &a->s->peer, &t2);
	const uint8_t *fa, *ca;
	uint16_t fp, cp;

	if (f == NULL || c == NULL || f->sa_family != c->sa_family)
		return false;
	fa = udp_sa_key(f, &fp);
	ca = udp_sa_key(c, &cp);
	if (memcmp(fa, ca, f->sa_family == AF_INET ? 4 : 16) != 0)
		return false;
	if (!a->pinned) {
		memcpy(&a->client, from, addr_len(from));
		a->pinned = true;
		return true;
	}
	c = addr_unmap((const struct sockaddr *)&a->client, &t2);
	(void)udp_sa_key(c, &cp);
	return fp == cp;
}

/* Prepare the worker's receive batch: slot i's payload at its headroom. */
static void
udp_in_prepare(struct udp_wbuf *wb)
{
	for (int i = 0; i < UDP_BATCH; i++) {
		wb->iniov[i].iov_base = wb->data[i] + UDP_HEADROOM;
		wb->iniov[i].iov_len = UDP_DGRAM_MAX;
		memset(&wb->in[i].msg_hdr, 0, sizeof(wb->in[i].msg_hdr));
		wb->in[i].msg_hdr.msg_name = &wb->from[i];
		wb->in[i].msg_hdr.msg_namelen = sizeof(wb->from[i]);
		wb->in[i].msg_hdr.msg_iov = &wb->iniov[i];
		wb->in[i].msg_hdr.msg_iovlen = 1;
	}
}

/*
 * Read a batch from fd: the number of datagrams, 0 when there are none,
 * -1 when the socket failed.
 */
static int
udp_in_read(struct udp_wbuf *wb, int fd)
{
	int n;

	udp_in_prepare(wb);
	do
		n = recvmmsg(fd, wb->in, UDP_BATCH, MSG_DONTWAIT, NULL);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN)
		return 0;
	return n;
}

static void
udp_client_sock_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct udp_assoc *a = container_of(io, struct udp_assoc, crd);
	struct udp_wbuf *wb = a->w->udp_buf;
	int n = UDP_BATCH;

	(void)revents;
	for (int round = 0; round < UDP_ROUNDS && n == UDP_BATCH; round++) {
		if (a->ended || (a->up_stream && a->ust.out_len > 0))
			break;
		if ((n = udp_in_read(wb, a->cfd)) == -1) {
			/* An ICMP error for a datagram to the client. */
			log_debug("session %" PRIu64 ": udp client socket: %s",
			    a->s->id, strerror(errno));
			break;
		}
		if (n > 0)
			a->last_active = ev_now(loop);
		for (int i = 0; i < n; i++) {
			const struct sockaddr *from = (const struct sockaddr *)
			    &wb->from[i];

			if (!udp_from_client(a, from)) {
				udp_drop(a, UDP_DROP_SOURCE, 1);
				continue;
			}
			if (wb->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
				udp_drop(a, UDP_DROP_BAD, 1);
				continue;
			}
			udp_up_datagram(a, wb->data[i] + UDP_HEADROOM,
			    wb->in[i].msg_len);
		}
		udp_flush(a, UDP_UP);
	}
	udp_finish(a);
}

/* --- down: destination to client -------------------------------------- */

/*
 * A datagram for the client: body[0..len) is the SOCKS5 UDP header naming
 * its source and the payload (plen bytes), with room for a frame's length
 * before it.
 */
static void
udp_down_datagram(struct udp_assoc *a, uint8_t *body, size_t len,
    size_t plen)
{
	struct udp_wbuf *wb = a->w->udp_buf;

	if (a->client_stream) {
		udp_frame_add(a, &a->cst, body, len, plen);
		return;
	}
	if (!a->pinned) {
		/* No datagram from the client yet: nowhere to send it. */
		udp_drop(a, UDP_DROP_UNSOLICITED, 1);
		return;
	}
	udp_out_add(a, &wb->dg[0], a->cfd, UDP_DOWN,
	    (const struct sockaddr *)&a->client, body, len, plen);
}

/* Replies on our socket number i (0: IPv4, 1: IPv6) for the client. */
static void
udp_up_sock_read(struct udp_assoc *a, int i)
{
	struct udp_wbuf *wb = a->w->udp_buf;
	uint8_t hdr[SOCKS5_REPLY_MAX];
	int n = UDP_BATCH;

	for (int round = 0; round < UDP_ROUNDS && n == UDP_BATCH; round++) {
		if (a->ended || (a->client_stream && a->cst.out_len > 0))
			break;
		if ((n = udp_in_read(wb, a->ofd[i])) == -1) {
			log_debug("session %" PRIu64 ": udp socket: %s",
			    a->s->id, strerror(errno));
			break;
		}
		if (n > 0)
			a->last_active = ev_now(a->w->loop);
		for (int k = 0; k < n; k++) {
			struct sockaddr_storage tmp;
			const struct sockaddr *from = addr_unmap(
			    (const struct sockaddr *)&wb->from[k], &tmp);
			uint8_t *p = wb->data[k] + UDP_HEADROOM;
			size_t hl;

			if (from == NULL || !udp_dest_known(a, from)) {
				udp_drop(a, UDP_DROP_UNSOLICITED, 1);
				continue;
			}
			if (wb->in[k].msg_hdr.msg_flags & MSG_TRUNC) {
				udp_drop(a, UDP_DROP_BAD, 1);
				continue;
			}
			/* The source goes in front, in the headroom. */
			hl = socks5_write_udp_hdr_sa(hdr, sizeof(hdr), from);
			memcpy(p - hl, hdr, hl);
			udp_down_datagram(a, p - hl, hl + wb->in[k].msg_len,
			    wb->in[k].msg_len);
		}
		udp_flush(a, UDP_DOWN);
	}
	udp_finish(a);
}

static void
udp_up_sock4_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	udp_up_sock_read(container_of(io, struct udp_assoc, ord[0]), 0);
}

static void
udp_up_sock6_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	udp_up_sock_read(container_of(io, struct udp_assoc, ord[1]), 1);
}

/* --- streams (Convert UDP, via) --------------------------------------- */

/* A frame's body read from a stream, going the stream's way. */
static void
udp_stream_frame(struct udp_assoc *a, struct udp_stream *st, uint8_t *body,
    size_t len)
{
	struct socks5_udp_hdr h;
	size_t hl;

	if (st->dir == UDP_UP) {
		udp_up_datagram(a, body, len);
		return;
	}
	/* From the concentrator: what the client gets, checked first. */
	if (socks5_parse_udp_hdr(body, len, &h, &hl) != SOCKS5_OK ||
	    h.frag != 0) {
		udp_drop(a, UDP_DROP_BAD, 1);
		return;
	}
	udp_down_datagram(a, body, len, len - hl);
}

/*
 * Read frames: each whole one goes its way, what is sent is sent, and a
 * partial frame moves to the front of the buffer for the next read.
 */
static void
udp_stream_read(struct udp_assoc *a, struct udp_stream *st)
{
	const uint8_t *body;
	size_t n, used, off;
	ssize_t r;
	bool more = true;

	for (int round = 0; round < UDP_ROUNDS && more && !a->ended;
	    round++) {
		r = recv(st->fd, st->in + st->in_len, UDP_STREAM_IN -
		    st->in_len, MSG_DONTWAIT);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == 0) {
			udp_end(a, st->dir == UDP_UP ? SESS_RES_OK :
			    SESS_RES_UPSTREAM_CLOSED);
			more = false;
		} else if (r == -1 && errno == EAGAIN) {
			more = false;
		} else if (r == -1) {
			udp_end(a, errno == ECONNRESET ? SESS_RES_RESET :
			    SESS_RES_RELAY_ERROR);
			return;
		} else {
			st->in_len += (size_t)r;
			a->last_active = ev_now(a->w->loop);
		}
		for (off = 0;;) {
			enum conv_res cr = conv_udp_frame_parse(st->in + off,
			    st->in_len - off, &body, &n, &used);

			if (cr == CONV_AGAIN)
				break;
			if (cr == CONV_BAD) {
				/* The stream is out of step: nothing after
				 * this can be trusted. */
				udp_end(a, st->dir == UDP_UP ?
				    SESS_RES_CONVERT_MALFORMED :
				    SESS_RES_VIA_PROTOCOL);
				break;
			}
			udp_stream_frame(a, st, st->in + off + CONV_UDP_LEN_LEN,
			    n);
			off += used;
		}
		udp_flush(a, st->dir);
		memmove(st->in, st->in + off, st->in_len - off);
		st->in_len -= off;
	}
}

static void
udp_stream_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct udp_stream *st = container_of(io, struct udp_stream, io);
	struct udp_assoc *a = st->a;

	(void)loop;
	if (revents & EV_WRITE)
		udp_stream_drain(a, st);
	if ((revents & EV_READ) && !a->ended)
		udp_stream_read(a, st);
	udp_finish(a);
}

/* The SOCKS5 control connection: bytes are ignored, its end ends us. */
static void
udp_ctl_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct udp_assoc *a = container_of(io, struct udp_assoc, ctl);
	struct session *s = a->s;
	uint8_t sink[512];
	ssize_t n;

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		n = s->cx.ops->recv(&s->cx, sink, sizeof(sink));
		if (n > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		/* RFC 1928 section 7: the association ends with it. */
		udp_end(a, n == 0 ? SESS_RES_OK : errno == ECONNRESET ?
		    SESS_RES_OK : SESS_RES_CLIENT_ERROR);
		break;
	}
	udp_finish(a);
}

/* --- setting up -------------------------------------------------------- */

static void
udp_stream_init(struct udp_assoc *a, struct udp_stream *st, int fd,
    enum udp_dir dir)
{
	st->a = a;
	st->dir = dir;
	st->fd = fd;
	ev_io_init(&st->io, udp_stream_cb, -1, 0);
}

/*
 * A new association for s, counted against max_udp_associations and
 * checked against the rules for command udp with no destination (a rule
 * that denies udp to a client or user, whatever the target). NULL when it
 * may not or cannot be: the session has been failed.
 */
static struct udp_assoc *
udp_new(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	struct auth_target t = { .addr = NULL, .name = NULL, .port = 0 };
	struct udp_assoc *a;

	if (!sess_rules_allow(s, SOCKS5_CMD_UDP_ASSOCIATE, &t,
	    "udp associate")) {
		sess_fail(s, SOCKS5_REP_NOT_ALLOWED, SESS_RES_DENIED);
		return NULL;
	}
	if (udp_wbuf(s->w) == NULL || (a = calloc(1, sizeof(*a))) == NULL) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_NO_MEMORY);
		return NULL;
	}
	a->s = s;
	a->w = s->w;
	a->cfd = a->ofd[0] = a->ofd[1] = -1;
	ev_io_init(&a->crd, udp_client_sock_cb, -1, 0);
	ev_io_init(&a->ctl, udp_ctl_cb, -1, 0);
	ev_io_init(&a->ord[0], udp_up_sock4_cb, -1, 0);
	ev_io_init(&a->ord[1], udp_up_sock6_cb, -1, 0);
	udp_stream_init(a, &a->cst, s->cfd, UDP_UP);
	udp_stream_init(a, &a->ust, -1, UDP_DOWN);
	s->udp = a;
	/* Gateway-wide, so one counter for all workers. */
	a->counted = true;
	if (stats_add(STAT_UDP_OPEN, 1) > c->max_udp_associations &&
	    c->max_udp_associations > 0) {
		stats_add(STAT_REFUSED_UDP_LIMIT, 1);
		log_info("session %" PRIu64 ": %s: udp associate refused: "
		    "max_udp_associations (%u) reached", s->id, s->client,
		    c->max_udp_associations);
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_UDP_LIMIT);
		return NULL;
	}
	return a;
}

/*
 * The client's UDP socket, bound on the address the control connection
 * arrived on, so the client reaches it the way it reached us.
 */
static int
udp_open_client(struct udp_assoc *a)
{
	struct session *s = a->s;
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	int sz = UDP_SOCKBUF;

	if (getsockname(s->cfd, (struct sockaddr *)&local, &len) == -1)
		return -1;
	if (local.ss_family == AF_INET)
		((struct sockaddr_in *)&local)->sin_port = 0;
	else if (local.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&local)->sin6_port = 0;
	else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	a->cfd = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (a->cfd == -1)
		return -1;
	(void)setsockopt(a->cfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	(void)setsockopt(a->cfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (bind(a->cfd, (struct sockaddr *)&local, len) == -1)
		return -1;
	/*
	 * DST.PORT named: that port only, from the control connection's IP
	 * (whatever DST.ADDR says: PySocks sends the name "0").
	 */
	if (s->req.dst.port != 0) {
		memcpy(&a->client, &s->peer, sizeof(a->client));
		if (a->client.ss_family == AF_INET)
			((struct sockaddr_in *)&a->client)->sin_port =
			    htons(s->req.dst.port);
		else
			((struct sockaddr_in6 *)&a->client)->sin6_port =
			    htons(s->req.dst.port);
		a->pinned = true;
	}
	return 0;
}

/*
 * Reply success with BND: the client socket's address, or the configured
 * public address of its family (behind NAT), with its port.
 */
static void
udp_reply(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	struct udp_assoc *a = s->udp;
	struct sockaddr_storage bnd, tmp;
	const struct sockaddr *u;
	const struct conf_addr *pub;
	socklen_t len = sizeof(bnd);
	uint16_t port;

	if (a->client_stream) {
		s->front->reply_ok(s, NULL);
		return;
	}
	if (getsockname(a->cfd, (struct sockaddr *)&bnd, &len) == -1 ||
	    (u = addr_unmap((struct sockaddr *)&bnd, &tmp)) == NULL) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_SYSTEM_ERROR);
		return;
	}
	(void)udp_sa_key(u, &port);
	pub = u->sa_family == AF_INET ? &c->udp_public4 : &c->udp_public6;
	if (pub->len > 0) {
		memcpy(&tmp, &pub->ss, pub->len);
		if (tmp.ss_family == AF_INET)
			((struct sockaddr_in *)&tmp)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&tmp)->sin6_port = htons(port);
		u = (const struct sockaddr *)&tmp;
	}
	s->front->reply_ok(s, u);
}

/* The association is set up on the client's side: answer, or reach on. */
static void
udp_proceed(struct session *s, struct udp_assoc *a)
{
	if (sess_conf(s)->via.set) {
		/* The association rides one connection to the concentrator. */
		a->up_stream = true;
		dial_start(s);
		return;
	}
	udp_reply(s);
}

void
udp_request(struct session *s)
{
	struct udp_assoc *a;

	socks5_addr_format(&s->req.dst, s->target, sizeof(s->target));
	if ((a = udp_new(s)) == NULL)
		return;
	if (udp_open_client(a) == -1) {
		log_warn("session %" PRIu64 ": udp client socket", s->id);
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_SYSTEM_ERROR);
		return;
	}
	udp_proceed(s, a);
}

void
udp_convert(struct session *s)
{
	struct udp_assoc *a;

	memset(&s->req, 0, sizeof(s->req));
	s->req.cmd = SOCKS5_CMD_UDP_ASSOCIATE;
	if ((a = udp_new(s)) == NULL)
		return;
	a->client_stream = true;
	udp_proceed(s, a);
}

void
udp_dialed(struct session *s)
{
	s->udp->ust.fd = s->ufd;
	udp_reply(s);
}

void
udp_start(struct session *s)
{
	const struct gw_conf *c = sess_conf(s);
	struct udp_assoc *a = s->udp;

	sess_watch_client(s, 0);
	sess_set_state(s, SESS_UDP);
	a->started = true;
	a->last_active = ev_now(s->w->loop);
	if (c->udp_idle_timeout > 0)
		sess_timer_set(s, c->udp_idle_timeout);
	else
		ev_timer_stop(s->w->loop, &s->timer);
	if ((a->client_stream && (a->cst.in = malloc(UDP_STREAM_IN)) ==
	    NULL) || (a->up_stream && (a->ust.in = malloc(UDP_STREAM_IN)) ==
	    NULL)) {
		sess_set_result(s, SESS_RES_NO_MEMORY);
		sess_close(s);
		return;
	}
	if (a->client_stream) {
		/* Frames that came with the Convert message. */
		memcpy(a->cst.in, s->in, s->in_len);
		a->cst.in_len = s->in_len;
	}
	sess_input_done(s);
	udp_watch(a);
	if (a->client_stream && a->cst.in_len > 0)
		ev_feed_event(s->w->loop, &a->cst.io, EV_READ);
}

void
udp_timer(struct session *s)
{
	struct udp_assoc *a = s->udp;
	ev_tstamp idle = sess_conf(s)->udp_idle_timeout;
	ev_tstamp left = a->last_active + idle - ev_now(s->w->loop);

	if (left > 0.001) {
		sess_timer_set(s, left);
		return;
	}
	sess_set_result(s, SESS_RES_IDLE_TIMEOUT);
	sess_close(s);
}

const char *
udp_access(struct session *s, char *buf, size_t cap, uint64_t *up,
    uint64_t *down)
{
	struct udp_assoc *a = s->udp;
	struct udp_held h;
	size_t off;
	int n;

	/* Datagrams still waiting for their name never went out. */
	for (off = 0; off < a->held_len; off += sizeof(h) + h.len) {
		memcpy(&h, a->held + off, sizeof(h));
		udp_drop(a, UDP_DROP_UNRESOLVED, 1);
	}
	a->held_len = 0;
	*up = a->bytes[UDP_UP];
	*down = a->bytes[UDP_DOWN];
	n = snprintf(buf, cap, " command=udp dgrams_up=%" PRIu64
	    " dgrams_down=%" PRIu64 " dests=%u", a->dgrams[UDP_UP],
	    a->dgrams[UDP_DOWN], a->dests_seen);
	off = n < 0 ? 0 : (size_t)n;
	for (int i = 0; i < UDP_DROP_COUNT && off < cap; i++) {
		n = snprintf(buf + off, cap - off, " drop_%s=%" PRIu64,
		    udp_drop_name((enum udp_drop)i), a->drops[i]);
		off += n < 0 ? 0 : (size_t)n;
	}
	return buf;
}

void
udp_free(struct session *s)
{
	struct udp_assoc *a = s->udp;
	struct ev_loop *loop = s->w->loop;

	if (a == NULL)
		return;
	udp_sync(a);
	ev_io_stop(loop, &a->crd);
	ev_io_stop(loop, &a->ctl);
	ev_io_stop(loop, &a->cst.io);
	ev_io_stop(loop, &a->ust.io);
	for (int i = 0; i < 2; i++) {
		ev_io_stop(loop, &a->ord[i]);
		if (a->ofd[i] != -1)
			close(a->ofd[i]);
	}
	if (a->cfd != -1)
		close(a->cfd);
	for (size_t i = 0; i < UDP_NAMES; i++)
		if (a->names[i].rreq != NULL)
			resolve_cancel(a->names[i].rreq);
	if (a->counted)
		stats_sub(STAT_UDP_OPEN, 1);
	free(a->held);
	free(a->cst.in);
	free(a->cst.out);
	free(a->ust.in);
	free(a->ust.out);
	free(a);
	s->udp = NULL;
}
