#include "gateway/dial.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "auth/keys.h"
#include "auth/rules.h"
#include "conf/conf.h"
#include "gateway/mpcache.h"
#include "gateway/mptcp.h"
#include "gateway/resolve.h"
#include "gateway/session.h"
#include "gateway/snap.h"
#include "gateway/stats.h"
#include "gateway/worker.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/convert.h"

#define DIAL_MAX_ADDRS RESOLVE_MAX_ADDRS
#define DIAL_MAX_INFLIGHT 4
/* RFC 8305 section 5: "Connection Attempt Delay", recommended 250 ms. */
#define DIAL_STAGGER 0.25

struct dial;

struct dial_attempt {
	int fd;
	bool mptcp;		/* the socket is MPTCP */
	bool cached_no;		/* plain TCP: the cache says no MPTCP there */
	size_t idx;		/* its address in d->addrs */
	ev_io io;
	struct dial *d;
};

/* Upstream connect state, alive from RESOLVE/CONNECT until the reply. */
struct dial {
	struct session *s;		/* the owner */
	size_t n;
	size_t next;
	struct sockaddr_storage addrs[DIAL_MAX_ADDRS];
	socklen_t lens[DIAL_MAX_ADDRS];
	struct dial_attempt att[DIAL_MAX_INFLIGHT];
	ev_timer stagger;
	int last_err;
	/*
	 * upstream.via: the Convert message and the client's first bytes
	 * (what the SYN did not carry is sent once connected), then the
	 * concentrator's reply, read exactly so nothing behind it is taken.
	 */
	size_t out_len;
	size_t out_off;
	size_t in_len;
	uint8_t out[CONV_MSG_MAX + SESS_IN_MAX];
	uint8_t in[CONV_MSG_MAX];
	struct resolve_req *rreq;	/* the lookup in flight, RESOLVE */
};

static void dial_next(struct dial *d);
static void via_start(struct dial *d);
static bool dial_allowed(struct session *s, const struct sockaddr *sa);

/* The session result for a failed connect's errno. */
static enum sess_result
dial_result(int err)
{
	switch (socks5_rep_from_errno(err)) {
	case SOCKS5_REP_NOT_ALLOWED:
		return SESS_RES_DENIED;
	case SOCKS5_REP_REFUSED:
		return SESS_RES_REFUSED;
	case SOCKS5_REP_NET_UNREACHABLE:
		return SESS_RES_NET_UNREACHABLE;
	case SOCKS5_REP_HOST_UNREACHABLE:
		return SESS_RES_HOST_UNREACHABLE;
	case SOCKS5_REP_TTL_EXPIRED:
		return SESS_RES_CONNECT_TIMEOUT;
	default:
		return SESS_RES_CONNECT_FAILED;
	}
}

/* --- RESOLVE ---------------------------------------------------------- */

static void
dial_connect_start(struct dial *d)
{
	sess_set_state(d->s, SESS_CONNECT);
	sess_timer_set(d->s, sess_conf(d->s)->connect_timeout);
	dial_next(d);
}

/* The worker's resolver answered (resolve.c: never inside dial_start). */
static void
dial_resolved(void *arg, const struct resolve_result *res)
{
	struct dial *d = arg;
	struct session *s = d->s;
	char esc[SESS_ESC_MAX];

	d->rreq = NULL;
	switch (res->status) {
	case RESOLVE_OK:
		d->n = res->n;
		memcpy(d->addrs, res->addrs, sizeof(d->addrs));
		memcpy(d->lens, res->lens, sizeof(d->lens));
		dial_connect_start(d);
		sess_process(s);
		return;
	case RESOLVE_UNRESOLVABLE:
		/* No such name, no address, no answer: unreachable, 04. */
		sess_fail(s, SOCKS5_REP_HOST_UNREACHABLE, SESS_RES_NXDOMAIN);
		break;
	case RESOLVE_LIMIT:
		sess_fail(s, SOCKS5_REP_HOST_UNREACHABLE,
		    SESS_RES_RESOLVE_LIMIT);
		break;
	case RESOLVE_FAILED:
		/* The gateway's own trouble (memory, sockets): 01. */
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE,
		    SESS_RES_RESOLVE_FAILED);
		break;
	}
	log_info("session %" PRIu64 ": resolving %s: %s", s->id,
	    log_escape(s->req.dst.u.name, esc, sizeof(esc)), res->msg);
	sess_process(s);
}

void
dial_start(struct session *s)
{
	struct dial *d;

	s->dial_started = ev_now(s->w->loop);
	socks5_addr_format(&s->req.dst, s->target, sizeof(s->target));
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_NO_MEMORY);
		return;
	}
	d->s = s;
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++) {
		d->att[i].fd = -1;
		d->att[i].d = d;
	}
	s->dial = d;
	if (s->snap->conf.via.set) {
		via_start(d);
		return;
	}
	if (s->req.dst.atyp == SOCKS5_ATYP_DOMAIN) {
		struct resolve_req *rr = sess_resolve_dst(s, dial_resolved, d);

		/* NULL: the session failed, and d went with it. */
		if (rr != NULL)
			d->rreq = rr;
		return;
	}
	socks5_addr_to_sockaddr(&s->req.dst, &d->addrs[0], &d->lens[0]);
	d->n = 1;
	dial_connect_start(d);
}

/* --- CONNECT (Happy Eyeballs over MPTCP sockets) ---------------------- */

static void
attempt_close(struct dial *d, struct dial_attempt *a)
{
	ev_io_stop(d->s->w->loop, &a->io);
	if (a->fd != -1)
		close(a->fd);
	a->fd = -1;
}

void
dial_free(struct session *s)
{
	struct dial *d = s->dial;

	if (d == NULL)
		return;
	/* A lookup still out: forget it (and its slot under the cap). */
	if (d->rreq != NULL)
		resolve_cancel(d->rreq);
	ev_timer_stop(s->w->loop, &d->stagger);
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++)
		attempt_close(d, &d->att[i]);
	free(d);
	s->dial = NULL;
}

/*
 * What attempt a's connected socket fd is. Whether the server took MPTCP
 * is known once its SYN-ACK is in.
 */
static enum sess_upstream
dial_upstream(const struct dial_attempt *a, int fd)
{
	if (!a->mptcp)
		return a->cached_no ? SESS_UP_CACHED_NO : SESS_UP_TCP;
	return mptcp_active(fd) ? SESS_UP_MPTCP : SESS_UP_FALLBACK;
}

static void
attempt_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dial_attempt *a = container_of(io, struct dial_attempt, io);
	struct dial *d = a->d;
	struct session *s = d->s;
	socklen_t len = sizeof(int);
	enum sess_upstream up;
	int err = 0, fd;

	(void)revents;
	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		/* The winner: the others and the dial go. */
		ev_io_stop(loop, &a->io);
		fd = a->fd;
		a->fd = -1;
		up = dial_upstream(a, fd);
		/*
		 * Only once MPTCP is known to run: a connection that fell
		 * back to TCP relays 2x faster with an autotuned buffer
		 * (loopback, one stream down: 5.2 vs 2.5 Gbit/s), one that
		 * runs MPTCP 1.4x faster with the fixed one (mptcp.c).
		 */
		if (up == SESS_UP_MPTCP)
			mptcp_tune_upstream(fd);
		if (a->mptcp)
			mpcache_note((const struct sockaddr *)&d->addrs[a->idx],
			    up == SESS_UP_MPTCP, ev_now(loop),
			    sess_conf(s)->mptcp_cache_ttl);
		dial_free(s);
		sess_dialed(s, fd, up);
	} else {
		d->last_err = err;
		attempt_close(d, a);
		dial_next(d);
	}
	sess_process(s);
}

static void
stagger_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct dial *d = container_of(t, struct dial, stagger);
	struct session *s = d->s;

	(void)loop;
	(void)revents;
	dial_next(d);
	sess_process(s);
}

/*
 * May this session reach sa? The access rules decide, per address, after
 * resolution: a name that resolves to a protected address is caught too.
 */
static bool
dial_allowed(struct session *s, const struct sockaddr *sa)
{
	struct auth_target t = {
		.addr = sa,
		.name = s->req.dst.atyp == SOCKS5_ATYP_DOMAIN ?
		    s->req.dst.u.name : NULL,
		.port = s->req.dst.port,
	};

	return sess_rules_allow(s, s->req.cmd, &t, "%s", s->target);
}

/*
 * Start the next connection attempt if an address is left and a slot is
 * free; fail the session when nothing is left and nothing is in flight.
 */
static void
dial_next(struct dial *d)
{
	struct session *s = d->s;
	struct ev_loop *loop = s->w->loop;
	size_t inflight = 0;

	ev_timer_stop(loop, &d->stagger);
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++)
		if (d->att[i].fd != -1)
			inflight++;
	while (d->next < d->n && inflight < DIAL_MAX_INFLIGHT) {
		const struct sockaddr *sa =
		    (const struct sockaddr *)&d->addrs[d->next];
		struct dial_attempt *a = NULL;
		int one = 1;
		bool want;

		if (!dial_allowed(s, sa)) {
			d->last_err = EACCES;
			d->next++;
			continue;
		}
		for (size_t i = 0; i < DIAL_MAX_INFLIGHT && a == NULL; i++)
			if (d->att[i].fd == -1)
				a = &d->att[i];
		a->idx = d->next;
		want = sess_conf(s)->upstream_mptcp;
		a->cached_no = want && sess_conf(s)->mptcp_cache_ttl > 0 &&
		    mpcache_no_mptcp(sa, ev_now(loop));
		want = want && !a->cached_no;
		a->fd = mptcp_socket(sa->sa_family, want, &a->mptcp);
		if (a->fd == -1 && (errno == EMFILE || errno == ENFILE) &&
		    worker_shed_fds(s->w))
			a->fd = mptcp_socket(sa->sa_family, want, &a->mptcp);
		if (a->fd == -1) {
			d->last_err = errno;
			d->next++;
			continue;
		}
		(void)setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (connect(a->fd, sa, d->lens[d->next]) == -1 &&
		    errno != EINPROGRESS) {
			d->last_err = errno;
			d->next++;
			attempt_close(d, a);
			continue;
		}
		d->next++;
		ev_io_init(&a->io, attempt_cb, a->fd, EV_WRITE);
		ev_io_start(loop, &a->io);
		inflight++;
		if (d->next < d->n) {
			ev_timer_init(&d->stagger, stagger_cb, DIAL_STAGGER,
			    0.);
			ev_timer_start(loop, &d->stagger);
		}
		return;
	}
	if (inflight == 0)
		sess_fail(s, socks5_rep_from_errno(d->last_err),
		    dial_result(d->last_err));
}

/* --- the via connector (DESIGN.md section 5) -------------------------- */

/*
 * The Convert message for the concentrator into d->out: Connect for an
 * address, Connect-Name for a name (the concentrator resolves), or the UDP
 * TLV for a UDP association (its datagrams name their own targets), Auth
 * signed with via_user's key, then the client's first bytes. 0, or -1.
 */
static int
via_message(struct dial *d)
{
	struct session *s = d->s;
	const struct gw_conf *c = sess_conf(s);
	struct sockaddr_storage ss;
	struct conv_req req;
	uint8_t key[AUTH_KEY_LEN];
	size_t mac_off;
	socklen_t sslen;
	int rc = -1;

	memset(&req, 0, sizeof(req));
	if (s->req.cmd == SOCKS5_CMD_UDP_ASSOCIATE)
		req.udp = true;
	else if (s->req.dst.atyp == SOCKS5_ATYP_DOMAIN) {
		req.name = s->req.dst.u.name;
		req.port = s->req.dst.port;
	} else {
		(void)socks5_addr_to_sockaddr(&s->req.dst, &ss, &sslen);
		req.addr = (const struct sockaddr *)&ss;
	}
	req.user = c->via_user;
	req.ts = (uint32_t)time(NULL);
	if (getrandom(req.nonce, sizeof(req.nonce), 0) !=
	    (ssize_t)sizeof(req.nonce))
		return -1;
	if (!auth_keys_get(s->snap->via_keys, c->via_user, key))
		return -1;
	d->out_len = conv_write_request(d->out, CONV_MSG_MAX, &req, &mac_off);
	if (d->out_len > 0 && conv_sign(d->out, mac_off, key) == 0)
		rc = 0;
	explicit_bzero(key, sizeof(key));
	if (rc == -1)
		return -1;
	/*
	 * What the client already sent rides in the same SYN; but not a
	 * Convert client's UDP frames, which udp_start() takes from s->in
	 * and relays as datagrams.
	 */
	if (req.udp)
		return 0;
	memcpy(d->out + d->out_len, s->in, s->in_len);
	d->out_len += s->in_len;
	s->up_syn = s->in_len;
	s->in_len = 0;
	return 0;
}

static void via_io_cb(struct ev_loop *loop, ev_io *io, int revents);

/*
 * Open the connection to the next concentrator address, the message in
 * the SYN (TCP Fast Open: with a cookie the kernel has cached, or none
 * when via_tfo_no_cookie says the listener takes cookieless data; on the
 * first contact the SYN asks for a cookie and the message follows the
 * handshake). Fails the session when no address is left.
 */
static void
via_connect(struct dial *d)
{
	struct session *s = d->s;
	const struct gw_conf *c = sess_conf(s);
	struct dial_attempt *a = &d->att[0];
	int one = 1;
	ssize_t n;

	while (d->next < s->snap->n_via) {
		const struct sockaddr *sa = (const struct sockaddr *)
		    &s->snap->via_addrs[d->next];
		socklen_t len = s->snap->via_lens[d->next++];

		d->out_off = 0;
		d->in_len = 0;
		a->fd = mptcp_socket(sa->sa_family, c->upstream_mptcp,
		    &a->mptcp);
		if (a->fd == -1) {
			d->last_err = errno;
			continue;
		}
		if (a->mptcp)
			mptcp_tune_upstream(a->fd);
		(void)setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (c->via_tfo_no_cookie)
			(void)setsockopt(a->fd, IPPROTO_TCP,
			    TCP_FASTOPEN_NO_COOKIE, &one, sizeof(one));
		n = sendto(a->fd, d->out, d->out_len, MSG_FASTOPEN |
		    MSG_NOSIGNAL, sa, len);
		if (n >= 0)
			d->out_off = (size_t)n;
		else if (errno == EOPNOTSUPP &&
		    (connect(a->fd, sa, len) == 0 || errno == EINPROGRESS))
			;	/* no client TFO here: the message follows */
		else if (errno != EINPROGRESS) {
			d->last_err = errno;
			attempt_close(d, a);
			continue;
		}
		ev_io_init(&a->io, via_io_cb, a->fd, EV_WRITE);
		ev_io_start(s->w->loop, &a->io);
		return;
	}
	sess_fail(s, socks5_rep_from_errno(d->last_err),
	    dial_result(d->last_err));
}

/* The concentrator's Error code as a SOCKS5 reply and a result. */
static void
via_refused(struct dial *d, uint8_t code)
{
	struct session *s = d->s;
	uint8_t rep;
	enum sess_result r;

	switch (code) {
	case CONV_ERR_CONNECTION_RESET:
		rep = SOCKS5_REP_REFUSED;
		r = SESS_RES_REFUSED;
		break;
	case CONV_ERR_DEST_UNREACHABLE:
		rep = SOCKS5_REP_HOST_UNREACHABLE;
		r = SESS_RES_HOST_UNREACHABLE;
		break;
	case CONV_ERR_NOT_AUTHORIZED:
		rep = SOCKS5_REP_NOT_ALLOWED;
		r = SESS_RES_VIA_REFUSED;
		break;
	default:
		rep = SOCKS5_REP_GENERAL_FAILURE;
		r = SESS_RES_VIA_REFUSED;
		break;
	}
	log_info("session %" PRIu64 ": %s: concentrator refused %s: %s (%u)",
	    s->id, s->client, s->target, conv_err_str(code), code);
	sess_fail(s, rep, r);
}

/*
 * Read the concentrator's reply, exactly its length: 1 complete (OK or
 * an Error, handled), 0 more to come, -1 failed (session failed).
 */
static int
via_read_reply(struct dial *d)
{
	struct dial_attempt *a = &d->att[0];
	struct conv_reply r;
	size_t want = CONV_HDR_LEN;
	ssize_t n;

	for (;;) {
		if (d->in_len >= CONV_HDR_LEN)
			want = (size_t)d->in[1] * 4;
		if (want < CONV_HDR_LEN || want > sizeof(d->in)) {
			sess_fail(d->s, SOCKS5_REP_GENERAL_FAILURE,
			    SESS_RES_VIA_PROTOCOL);
			return -1;
		}
		if (d->in_len == want)
			break;
		n = recv(a->fd, d->in + d->in_len, want - d->in_len, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			d->last_err = n == 0 ? ECONNRESET : errno;
			sess_fail(d->s, SOCKS5_REP_GENERAL_FAILURE, n == 0 ?
			    SESS_RES_VIA_PROTOCOL : dial_result(errno));
			return -1;
		}
		d->in_len += (size_t)n;
	}
	if (conv_parse_reply(d->in, d->in_len, &r) != CONV_OK) {
		sess_fail(d->s, SOCKS5_REP_GENERAL_FAILURE,
		    SESS_RES_VIA_PROTOCOL);
		return -1;
	}
	if (!r.ok) {
		via_refused(d, r.code);
		return -1;
	}
	return 1;
}

/*
 * The via connection: connected (or failed), the rest of the message
 * sent, then the reply read; on success the socket is the session's
 * upstream, with any bytes behind the reply left in it for the relay.
 */
static void
via_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dial_attempt *a = container_of(io, struct dial_attempt, io);
	struct dial *d = a->d;
	struct session *s = d->s;
	socklen_t len = sizeof(int);
	enum sess_upstream up;
	int err = 0, fd;
	ssize_t n;

	(void)revents;
	if (io->events & EV_WRITE) {
		if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		while (err == 0 && d->out_off < d->out_len) {
			n = send(a->fd, d->out + d->out_off, d->out_len -
			    d->out_off, MSG_NOSIGNAL);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno == EAGAIN)
				return;
			if (n == -1)
				err = errno;
			else
				d->out_off += (size_t)n;
		}
		if (err != 0) {
			d->last_err = err;
			attempt_close(d, a);
			via_connect(d);
			sess_process(s);
			return;
		}
		ev_io_stop(loop, io);
		ev_io_set(io, a->fd, EV_READ);
		ev_io_start(loop, io);
		return;
	}
	switch (via_read_reply(d)) {
	case 0:
		return;
	case -1:
		sess_process(s);
		return;
	default:
		break;
	}
	ev_io_stop(loop, io);
	fd = a->fd;
	a->fd = -1;
	up = dial_upstream(a, fd);
	dial_free(s);
	sess_dialed(s, fd, up);
	sess_process(s);
}

/*
 * Every upstream connection goes to the concentrator. The edge's rules
 * apply first, to the address asked for or, for a name the concentrator
 * will resolve, to the name.
 */
static void
via_start(struct dial *d)
{
	struct session *s = d->s;
	struct sockaddr_storage ss;
	socklen_t sslen;
	bool name = s->req.dst.atyp == SOCKS5_ATYP_DOMAIN;

	if (!name)
		(void)socks5_addr_to_sockaddr(&s->req.dst, &ss, &sslen);
	/* A UDP association's datagrams are judged one by one (udp.c). */
	if (s->req.cmd != SOCKS5_CMD_UDP_ASSOCIATE &&
	    !dial_allowed(s, name ? NULL : (const struct sockaddr *)&ss)) {
		sess_fail(s, SOCKS5_REP_NOT_ALLOWED, SESS_RES_DENIED);
		return;
	}
	if (via_message(d) == -1) {
		log_warnx("session %" PRIu64 ": cannot build the Convert "
		    "message for the concentrator", s->id);
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_SYSTEM_ERROR);
		return;
	}
	sess_set_state(s, SESS_CONNECT);
	sess_timer_set(s, sess_conf(s)->connect_timeout);
	via_connect(d);
}
