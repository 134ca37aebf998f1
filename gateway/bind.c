#include "gateway/bind.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/rules.h"
#include "conf/conf.h"
#include "gateway/mptcp.h"
#include "gateway/resolve.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "gateway/worker.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"

/* Connections the kernel may queue while we look at them. */
#define BIND_BACKLOG 8

struct bind_wait {
	struct session *s;
	int lfd;
	bool mptcp;			/* the listener is an MPTCP socket */
	bool any;			/* DST.ADDR was zero: no expected peer */
	ev_io io;
	struct resolve_req *rreq;
	struct sockaddr_storage expect;	/* DST.ADDR, unmapped */
	uint64_t wrong;			/* other peers closed */
};

/* Is sa (unmapped) 0.0.0.0 or ::? */
static bool
bind_is_zero(const struct sockaddr *sa)
{
	static const uint8_t zero[16];

	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr == 0;
	return memcmp(((const struct sockaddr_in6 *)(const void *)sa)->
	    sin6_addr.s6_addr, zero, 16) == 0;
}

/* Do a and b (unmapped) hold the same IP address, ports aside? */
static bool
bind_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)->
		    sin_addr.s_addr == ((const struct sockaddr_in *)
		    (const void *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->
	    sin6_addr, &((const struct sockaddr_in6 *)(const void *)b)->
	    sin6_addr, 16) == 0;
}

static void
bind_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* May the client, by the rules for command bind, deal with sa (or none)? */
static bool
bind_allowed(struct session *s, const struct sockaddr *sa, const char *what)
{
	struct auth_target t = {
		.addr = sa,
		.name = s->req.dst.atyp == SOCKS5_ATYP_DOMAIN ?
		    s->req.dst.u.name : NULL,
		.port = s->req.dst.port,
	};
	char text[ADDR_STR_MAX];

	return sess_rules_allow(s, SOCKS5_CMD_BIND, &t, "bind %s %s", what,
	    sa != NULL ? addr_format(sa, text, sizeof(text)) : s->target);
}

/* The session result for errno err, as its SOCKS5 reply code says. */
static enum sess_result
bind_result(int err)
{
	switch (socks5_rep_from_errno(err)) {
	case SOCKS5_REP_NET_UNREACHABLE:
		return SESS_RES_NET_UNREACHABLE;
	case SOCKS5_REP_HOST_UNREACHABLE:
		return SESS_RES_HOST_UNREACHABLE;
	default:
		return SESS_RES_SYSTEM_ERROR;
	}
}

/*
 * The local address the kernel would send to sa from (its route's source),
 * port 0, into out: 0, or -1 with errno (ENETUNREACH: no route).
 */
static int
bind_route_source(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	struct sockaddr_storage tmp;
	socklen_t len = sizeof(tmp);
	int fd, rc = -1, save;

	fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	/* A UDP connect only picks the route: nothing is sent. */
	if (connect(fd, sa, addr_len(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&tmp, &len) == 0 &&
	    addr_unmap((const struct sockaddr *)&tmp, out) != NULL)
		rc = 0;
	save = errno;
	close(fd);
	errno = save;
	return rc;
}

static void bind_accept_cb(struct ev_loop *loop, ev_io *io, int revents);

/*
 * Listen for the peer sa (unmapped; zero: any), send the first reply,
 * -> SESS_BIND_WAIT; or fail the session.
 */
static void
bind_listen(struct bind_wait *b, const struct sockaddr *sa)
{
	struct session *s = b->s;
	const struct gw_conf *c = sess_conf(s);
	struct sockaddr_storage local, bnd;
	socklen_t len = sizeof(local);
	uint8_t reply[SOCKS5_REPLY_MAX];

	b->any = bind_is_zero(sa);
	if (!bind_allowed(s, b->any ? NULL : sa, "for")) {
		sess_fail(s, SOCKS5_REP_NOT_ALLOWED, SESS_RES_DENIED);
		return;
	}
	memcpy(&b->expect, sa, addr_len(sa));
	if (b->any) {
		/* No peer named: where the client reached us. */
		if (getsockname(s->cfd, (struct sockaddr *)&bnd, &len) == -1 ||
		    addr_unmap((const struct sockaddr *)&bnd, &local) ==
		    NULL) {
			sess_fail(s, SOCKS5_REP_GENERAL_FAILURE,
			    SESS_RES_SYSTEM_ERROR);
			return;
		}
	} else if (bind_route_source(sa, &local) == -1) {
		log_info("session %" PRIu64 ": %s: bind for %s: no route: %s",
		    s->id, s->client, s->target, strerror(errno));
		sess_fail(s, socks5_rep_from_errno(errno), bind_result(errno));
		return;
	}
	bind_set_port(&local, 0);
	b->lfd = mptcp_socket(local.ss_family, c->upstream_mptcp, &b->mptcp);
	if (b->lfd == -1 || bind(b->lfd, (struct sockaddr *)&local,
	    addr_len((struct sockaddr *)&local)) == -1 ||
	    listen(b->lfd, BIND_BACKLOG) == -1 ||
	    getsockname(b->lfd, (struct sockaddr *)&bnd, &len) == -1) {
		log_warn("session %" PRIu64 ": bind listener", s->id);
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_SYSTEM_ERROR);
		return;
	}
	ev_io_init(&b->io, bind_accept_cb, b->lfd, EV_READ);
	ev_io_start(s->w->loop, &b->io);
	sess_queue(s, reply, socks5_write_reply(reply, SOCKS5_REP_SUCCEEDED,
	    (const struct sockaddr *)&bnd));
	sess_set_state(s, SESS_BIND_WAIT);
	sess_timer_set(s, c->bind_timeout);
}

static void
bind_resolved(void *arg, const struct resolve_result *res)
{
	struct bind_wait *b = arg;
	struct session *s = b->s;
	struct sockaddr_storage tmp;
	const struct sockaddr *sa;

	b->rreq = NULL;
	if (s->state != SESS_RESOLVE)
		return;		/* timed out meanwhile */
	if (res->status != RESOLVE_OK || res->n == 0 ||
	    (sa = addr_unmap((const struct sockaddr *)&res->addrs[0], &tmp)) ==
	    NULL)
		sess_fail(s, res->status == RESOLVE_FAILED ?
		    SOCKS5_REP_GENERAL_FAILURE : SOCKS5_REP_HOST_UNREACHABLE,
		    res->status == RESOLVE_FAILED ? SESS_RES_RESOLVE_FAILED :
		    res->status == RESOLVE_LIMIT ? SESS_RES_RESOLVE_LIMIT :
		    SESS_RES_NXDOMAIN);
	else
		bind_listen(b, sa);
	sess_process(s);
}

void
bind_request(struct session *s)
{
	struct sockaddr_storage ss, tmp;
	struct bind_wait *b;
	socklen_t len;

	socks5_addr_format(&s->req.dst, s->target, sizeof(s->target));
	if (sess_conf(s)->via.set) {
		/* The peer would have to reach the concentrator: not done. */
		sess_fail(s, SOCKS5_REP_CMD_UNSUPPORTED, SESS_RES_BAD_COMMAND);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		sess_fail(s, SOCKS5_REP_GENERAL_FAILURE, SESS_RES_NO_MEMORY);
		return;
	}
	b->s = s;
	b->lfd = -1;
	s->bind = b;
	if (s->req.dst.atyp == SOCKS5_ATYP_DOMAIN) {
		b->rreq = sess_resolve_dst(s, bind_resolved, b);
		return;
	}
	(void)socks5_addr_to_sockaddr(&s->req.dst, &ss, &len);
	bind_listen(b, addr_unmap((const struct sockaddr *)&ss, &tmp));
}

/* Stop listening: the peer is here, or the wait is over. */
static void
bind_close_listener(struct bind_wait *b)
{
	ev_io_stop(b->s->w->loop, &b->io);
	if (b->lfd != -1)
		close(b->lfd);
	b->lfd = -1;
}

/* Is the connection from peer (unmapped) the one the client waits for? */
static bool
bind_peer_ok(struct bind_wait *b, const struct sockaddr *peer)
{
	if (!b->any)
		return bind_same_ip(peer, (const struct sockaddr *)&b->expect);
	return bind_allowed(b->s, peer, "peer");
}

static void
bind_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct bind_wait *b = container_of(io, struct bind_wait, io);
	struct session *s = b->s;
	struct sockaddr_storage peer, tmp;
	const struct sockaddr *u;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char text[ADDR_STR_MAX];
	socklen_t len;
	int fd, one = 1, proto = 0;

	(void)loop;
	(void)revents;
	for (;;) {
		len = sizeof(peer);
		fd = accept4(b->lfd, (struct sockaddr *)&peer, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn("session %" PRIu64 ": bind accept",
				    s->id);
			return;
		}
		u = addr_unmap((const struct sockaddr *)&peer, &tmp);
		if (u != NULL && bind_peer_ok(b, u))
			break;
		/* Not the peer: away with it, at once, and wait on. */
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		b->wrong++;
		stats_add(STAT_BIND_WRONG_PEER, 1);
		log_info("session %" PRIu64 ": %s: bind for %s: connection "
		    "from %s refused", s->id, s->client, s->target,
		    u != NULL ? addr_format(u, text, sizeof(text)) : "?");
	}
	bind_close_listener(b);
	len = sizeof(proto);
	s->upstream_mptcp = b->mptcp && getsockopt(fd, SOL_SOCKET,
	    SO_PROTOCOL, &proto, &len) == 0 && proto == IPPROTO_MPTCP;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->ufd = fd;
	xport_plain(&s->ux, fd);
	sess_timer_set(s, sess_conf(s)->handshake_timeout);
	/* The second reply: who connected. */
	s->front->reply_ok(s, u);
	sess_process(s);
}

void
bind_timer(struct session *s)
{
	bind_close_listener(s->bind);
	log_info("session %" PRIu64 ": %s: bind for %s: no connection in "
	    "%u s", s->id, s->client, s->target, sess_conf(s)->bind_timeout);
	sess_fail(s, SOCKS5_REP_TTL_EXPIRED, SESS_RES_BIND_TIMEOUT);
	sess_process(s);
}

const char *
bind_access(const struct session *s, char *buf, size_t cap)
{
	snprintf(buf, cap, " command=bind wrong_peers=%" PRIu64,
	    s->bind != NULL ? s->bind->wrong : 0);
	return buf;
}

void
bind_free(struct session *s)
{
	struct bind_wait *b = s->bind;

	if (b == NULL)
		return;
	bind_close_listener(b);
	if (b->rreq != NULL)
		resolve_cancel(b->rreq);
	free(b);
	s->bind = NULL;
}
