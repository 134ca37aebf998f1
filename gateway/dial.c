#include "gateway/dial.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/rules.h"
#include "conf/conf.h"
#include "gateway/mptcp.h"
#include "gateway/pool.h"
#include "gateway/session.h"
#include "gateway/worker.h"
#include "lib/log.h"
#include "lib/util.h"

#define DIAL_MAX_ADDRS 16
#define DIAL_MAX_INFLIGHT 4
/* RFC 8305 section 5: "Connection Attempt Delay", recommended 250 ms. */
#define DIAL_STAGGER 0.25

struct dial;

struct dial_attempt {
	int fd;
	bool mptcp;
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
};

static void dial_next(struct dial *d);

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

struct dns_job {
	struct pool_job job;
	struct session *s;
	int gai_err;
	int sys_err;
	size_t n;
	char host[256];
	char port[8];
	struct sockaddr_storage addrs[DIAL_MAX_ADDRS];
	socklen_t lens[DIAL_MAX_ADDRS];
};

/*
 * Resolve on a pool thread with getaddrinfo (so /etc/hosts and nsswitch
 * apply) and order the answers for Happy Eyeballs: alternate families,
 * starting with the family the resolver ranked first (RFC 8305 section 4).
 */
static void
dns_job_work(struct pool_job *job)
{
	struct dns_job *dj = container_of(job, struct dns_job, job);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_protocol = IPPROTO_TCP, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai, *fam[2] = { NULL, NULL };
	int first = -1;

	dj->gai_err = getaddrinfo(dj->host, dj->port, &hints, &res);
	if (dj->gai_err != 0) {
		dj->sys_err = errno;
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (first == -1)
			first = ai->ai_family;
	}
	fam[0] = fam[1] = res;
	while (dj->n < DIAL_MAX_ADDRS) {
		bool any = false;

		for (int k = 0; k < 2 && dj->n < DIAL_MAX_ADDRS; k++) {
			int want = (k == 0) == (first == AF_INET) ? AF_INET :
			    AF_INET6;

			while (fam[k] != NULL && fam[k]->ai_family != want)
				fam[k] = fam[k]->ai_next;
			if (fam[k] == NULL)
				continue;
			memcpy(&dj->addrs[dj->n], fam[k]->ai_addr,
			    fam[k]->ai_addrlen);
			dj->lens[dj->n++] = fam[k]->ai_addrlen;
			fam[k] = fam[k]->ai_next;
			any = true;
		}
		if (!any)
			break;
	}
	freeaddrinfo(res);
}

static void
dial_connect_start(struct dial *d)
{
	sess_set_state(d->s, SESS_CONNECT);
	sess_timer_set(d->s, sess_conf(d->s)->connect_timeout);
	dial_next(d);
}

static void
dns_job_done(struct pool_job *job)
{
	struct dns_job *dj = container_of(job, struct dns_job, job);
	struct session *s = dj->s;
	bool nxdomain;

	if (job->cancelled) {
		free(dj);
		return;
	}
	s->job = NULL;
	if (dj->gai_err != 0 || dj->n == 0) {
		char esc[SESS_ESC_MAX];

		log_info("session %" PRIu64 ": resolving %s: %s", s->id,
		    log_escape(dj->host, esc, sizeof(esc)), dj->gai_err ==
		    EAI_SYSTEM ? strerror(dj->sys_err) : dj->gai_err != 0 ?
		    gai_strerror(dj->gai_err) : "no IPv4/IPv6 address");
		/*
		 * A name that cannot be resolved (no such name, no address,
		 * no answer from the resolver) is an unreachable host, 04;
		 * the gateway's own trouble (memory, system) is 01.
		 */
		nxdomain = dj->gai_err == 0 || dj->gai_err == EAI_NONAME ||
		    dj->gai_err == EAI_NODATA || dj->gai_err == EAI_AGAIN ||
		    dj->gai_err == EAI_FAIL;
		free(dj);
		sess_fail(s, nxdomain ? SOCKS5_REP_HOST_UNREACHABLE :
		    SOCKS5_REP_GENERAL_FAILURE, nxdomain ? SESS_RES_NXDOMAIN :
		    SESS_RES_RESOLVE_FAILED);
		sess_process(s);
		return;
	}
	s->dial->n = dj->n;
	memcpy(s->dial->addrs, dj->addrs, sizeof(dj->addrs));
	memcpy(s->dial->lens, dj->lens, sizeof(dj->lens));
	free(dj);
	dial_connect_start(s->dial);
	sess_process(s);
}

void
dial_start(struct session *s)
{
	struct dial *d;

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
	if (s->req.dst.atyp == SOCKS5_ATYP_DOMAIN) {
		struct dns_job *dj = calloc(1, sizeof(*dj));

		if (dj == NULL) {
			sess_fail(s, SOCKS5_REP_GENERAL_FAILURE,
			    SESS_RES_NO_MEMORY);
			return;
		}
		dj->job.work = dns_job_work;
		dj->job.done = dns_job_done;
		dj->job.slow = true;
		dj->s = s;
		memcpy(dj->host, s->req.dst.u.name, sizeof(dj->host));
		snprintf(dj->port, sizeof(dj->port), "%u", s->req.dst.port);
		s->job = &dj->job;
		sess_set_state(s, SESS_RESOLVE);
		sess_timer_set(s, sess_conf(s)->connect_timeout);
		pool_submit(&dj->job, &s->w->doneq);
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
	ev_timer_stop(s->w->loop, &d->stagger);
	for (size_t i = 0; i < DIAL_MAX_INFLIGHT; i++)
		attempt_close(d, &d->att[i]);
	free(d);
	s->dial = NULL;
}

static void
attempt_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dial_attempt *a = container_of(io, struct dial_attempt, io);
	struct dial *d = a->d;
	struct session *s = d->s;
	socklen_t len = sizeof(int);
	int err = 0, fd;
	bool mptcp;

	(void)revents;
	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		/* The winner: the others and the dial go. */
		ev_io_stop(loop, &a->io);
		fd = a->fd;
		mptcp = a->mptcp;
		a->fd = -1;
		dial_free(s);
		sess_dialed(s, fd, mptcp);
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
	const char *why = NULL;

	if (auth_rules_check(sess_conf(s), (const struct sockaddr *)&s->peer,
	    s->user, s->req.cmd, &t, &why) == CONF_ALLOW)
		return true;
	log_info("session %" PRIu64 ": %s: %s denied by %s", s->id, s->client,
	    s->target, why != NULL ? why : "a rule");
	return false;
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

		if (!dial_allowed(s, sa)) {
			d->last_err = EACCES;
			d->next++;
			continue;
		}
		for (size_t i = 0; i < DIAL_MAX_INFLIGHT && a == NULL; i++)
			if (d->att[i].fd == -1)
				a = &d->att[i];
		a->fd = mptcp_socket(sa->sa_family,
		    sess_conf(s)->upstream_mptcp, &a->mptcp);
		if (a->fd == -1 && (errno == EMFILE || errno == ENFILE) &&
		    worker_shed_fds(s->w))
			a->fd = mptcp_socket(sa->sa_family,
			    sess_conf(s)->upstream_mptcp, &a->mptcp);
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
