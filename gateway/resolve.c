#include "gateway/resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "lib/srctab.h"
#include "lib/util.h"

#define RESOLV_CONF "/etc/resolv.conf"

/* --- DNS lookups in flight per source, across all workers ------------- */

/*
 * lib/srctab.h, as gateway/srclimit.c uses it: a source is in the table
 * exactly while it has a lookup in flight, so the table fills only with
 * RESOLVE_SOURCES sources all waiting on DNS at once; one more is refused
 * like a source over its cap.
 */
#define RESOLVE_SOURCES 8192

static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static struct srctab_slot cap_slots[RESOLVE_SOURCES];
static struct srctab cap_tab = SRCTAB_INITIALIZER(cap_slots, ADDR_KEY_LEN);
static unsigned cap_count[RESOLVE_SOURCES];

static pthread_once_t res_once = PTHREAD_ONCE_INIT;
static int res_lib_status;

static void
res_init_once(void)
{
	res_lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* Take one of key's max slots. False when all are taken (or no room). */
static bool
cap_acquire(const uint8_t key[ADDR_KEY_LEN], unsigned max)
{
	bool ok = true;
	int i;

	pthread_mutex_lock(&cap_mu);
	if ((i = srctab_find(&cap_tab, key)) == -1) {
		if ((i = srctab_add(&cap_tab, key)) == -1) {
			ok = false;
			goto out;
		}
		cap_count[i] = 0;
	} else if (cap_count[i] >= max) {
		ok = false;
		goto out;
	}
	cap_count[i]++;
out:
	pthread_mutex_unlock(&cap_mu);
	return ok;
}

static void
cap_release(const uint8_t key[ADDR_KEY_LEN])
{
	int i;

	pthread_mutex_lock(&cap_mu);
	if ((i = srctab_find(&cap_tab, key)) != -1 && --cap_count[i] == 0)
		srctab_del(&cap_tab, i);
	pthread_mutex_unlock(&cap_mu);
}

/* --- c-ares channels on libev ----------------------------------------- */

/* A socket c-ares opened, watched for what it asked. */
struct res_io {
	ev_io io;
	struct res_chan *ch;
	LIST_ENTRY(res_io) link;
};

struct res_chan {
	ares_channel ares;
	struct resolver *r;
	ev_timer tmo;		/* c-ares' next query timeout */
	LIST_HEAD(, res_io) ios;
	unsigned pending;	/* ares_getaddrinfo calls not called back */
	bool retired;		/* replaced after a resolv.conf change */
	LIST_ENTRY(res_chan) link;
};

/*
 * What c-ares calls back with. c-ares cannot cancel one query, so a
 * cancelled request only clears req here and is freed at once; the
 * ticket is freed when c-ares is done with it.
 */
struct res_ticket {
	struct resolve_req *req;	/* NULL once cancelled */
	struct res_chan *ch;
};

struct resolve_req {
	struct resolver *r;
	void (*done)(void *arg, const struct resolve_result *res);
	void *arg;
	struct res_ticket *ticket;	/* while c-ares has the query */
	bool queued;			/* on r->ready, result filled in */
	bool has_key;			/* a source to charge (key, max) */
	bool counted;			/* holds one of key's slots */
	uint8_t key[ADDR_KEY_LEN];
	unsigned max;
	uint16_t port;
	TAILQ_ENTRY(resolve_req) link;
	struct resolve_result res;
	char name[];
};

struct resolver {
	struct ev_loop *loop;
	struct res_chan *files;		/* lookups "f": hosts file, numeric */
	struct res_chan *dns;		/* lookups "b": DNS only */
	LIST_HEAD(, res_chan) retired;	/* old DNS channels still answering */
	struct stat conf_st;		/* resolv.conf as dns was made from */
	TAILQ_HEAD(, resolve_req) ready; /* results not yet delivered */
	unsigned n_ready;
	ev_timer kick;			/* delivers ready results */
	bool freeing;
};

static void chan_after(struct res_chan *ch);

static void
chan_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct res_io *x = container_of(w, struct res_io, io);
	struct res_chan *ch = x->ch;
	ares_socket_t fd = w->fd;

	(void)loop;
	/* x may be freed inside (c-ares closes the socket). */
	ares_process_fd(ch->ares, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	chan_after(ch);
}

static void
chan_tmo_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct res_chan *ch = container_of(t, struct res_chan, tmo);

	(void)loop;
	(void)revents;
	ares_process_fd(ch->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	chan_after(ch);
}

/* c-ares opens, changes or closes a socket: follow it with an ev_io. */
static void
chan_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct res_chan *ch = data;
	struct res_io *x;
	int ev = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	LIST_FOREACH(x, &ch->ios, link)
		if (x->io.fd == fd)
			break;
	if (x != NULL) {
		ev_io_stop(ch->r->loop, &x->io);
		if (ev == 0) {
			LIST_REMOVE(x, link);
			free(x);
			return;
		}
		ev_io_set(&x->io, fd, ev);
	} else {
		if (ev == 0)
			return;
		if ((x = calloc(1, sizeof(*x))) == NULL) {
			/* Its queries still end, by c-ares' timeout. */
			log_warnx("resolver: no memory to watch a DNS socket");
			return;
		}
		x->ch = ch;
		ev_io_init(&x->io, chan_io_cb, fd, ev);
		LIST_INSERT_HEAD(&ch->ios, x, link);
	}
	ev_io_start(ch->r->loop, &x->io);
}

static void
chan_free(struct res_chan *ch)
{
	struct res_io *x;

	/* Calls back every query left with ARES_EDESTRUCTION. */
	ares_destroy(ch->ares);
	while ((x = LIST_FIRST(&ch->ios)) != NULL) {
		ev_io_stop(ch->r->loop, &x->io);
		LIST_REMOVE(x, link);
		free(x);
	}
	ev_timer_stop(ch->r->loop, &ch->tmo);
	free(ch);
}

/*
 * After c-ares ran: free a retired channel with nothing left, else arm the
 * timer for its next timeout.
 */
static void
chan_after(struct res_chan *ch)
{
	struct resolver *r = ch->r;
	struct timeval tv, *tvp;

	if (ch->retired && ch->pending == 0) {
		LIST_REMOVE(ch, link);
		chan_free(ch);
		return;
	}
	ev_timer_stop(r->loop, &ch->tmo);
	if ((tvp = ares_timeout(ch->ares, NULL, &tv)) != NULL) {
		ev_timer_set(&ch->tmo, (ev_tstamp)tvp->tv_sec +
		    (ev_tstamp)tvp->tv_usec / 1e6, 0.);
		ev_timer_start(r->loop, &ch->tmo);
	}
}

/*
 * glibc's "options timeout:N attempts:N" from resolv.conf, which c-ares
 * 1.18 does not read (it would wait 5 s on each of 4 tries, doubling:
 * 75 s for a silent server). Defaults and bounds are glibc's (resolv.h).
 */
static void
resolv_conf_times(int *timeout_ms, int *tries)
{
	char line[512], *p, *tok, *save;
	int timeout = 5, attempts = 2;
	FILE *f;

	if ((f = fopen(RESOLV_CONF, "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "options", 7) != 0 ||
			    !isspace((unsigned char)line[7]))
				continue;
			for (p = line + 7; (tok = strtok_r(p, " \t\r\n",
			    &save)) != NULL; p = NULL) {
				if (strncmp(tok, "timeout:", 8) == 0)
					timeout = atoi(tok + 8);
				else if (strncmp(tok, "attempts:", 9) == 0)
					attempts = atoi(tok + 9);
			}
		}
		fclose(f);
	}
	*timeout_ms = (timeout < 1 ? 1 : timeout > 30 ? 30 : timeout) * 1000;
	*tries = attempts < 1 ? 1 : attempts > 5 ? 5 : attempts;
}

/* A channel that looks names up as lookups says ("f" or "b"). */
static struct res_chan *
chan_new(struct resolver *r, const char *lookups, char *err, size_t errlen)
{
	struct ares_options o;
	struct res_chan *ch;
	int rc;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		snprintf(err, errlen, "resolver: %s", strerror(errno));
		return NULL;
	}
	ch->r = r;
	LIST_INIT(&ch->ios);
	ev_timer_init(&ch->tmo, chan_tmo_cb, 0., 0.);
	memset(&o, 0, sizeof(o));
	o.lookups = (char *)lookups;
	o.sock_state_cb = chan_sock_state;
	o.sock_state_cb_data = ch;
	resolv_conf_times(&o.timeout, &o.tries);
	rc = ares_init_options(&ch->ares, &o, ARES_OPT_LOOKUPS |
	    ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver: %s", ares_strerror(rc));
		free(ch);
		return NULL;
	}
	return ch;
}

/* --- requests ---------------------------------------------------------- */

static void
req_uncount(struct resolve_req *req)
{
	if (req->counted) {
		cap_release(req->key);
		req->counted = false;
	}
}

static void
req_free(struct resolve_req *req)
{
	req_uncount(req);
	free(req);
}

static void
kick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct resolver *r = container_of(t, struct resolver, kick);
	struct resolve_req *req;
	unsigned n = r->n_ready;

	(void)revents;
	/* What done() queues waits for the next round. */
	while (n-- > 0 && (req = TAILQ_FIRST(&r->ready)) != NULL) {
		TAILQ_REMOVE(&r->ready, req, link);
		r->n_ready--;
		req->queued = false;
		req->done(req->arg, &req->res);
		req_free(req);
	}
	if (!TAILQ_EMPTY(&r->ready))
		ev_timer_start(loop, &r->kick);
}

/* Set req's outcome and queue it for done() on a later loop iteration. */
static void
req_finish(struct resolve_req *req, enum resolve_status st, const char *msg)
{
	struct resolver *r = req->r;

	req_uncount(req);
	req->res.status = st;
	req->res.msg = msg;
	if (st != RESOLVE_OK)
		req->res.n = 0;
	TAILQ_INSERT_TAIL(&r->ready, req, link);
	r->n_ready++;
	req->queued = true;
	if (!ev_is_active(&r->kick)) {
		ev_timer_set(&r->kick, 0., 0.);
		ev_timer_start(r->loop, &r->kick);
	}
}

/* Append sa with req's port unless it is there already. */
static void
req_add(struct resolve_req *req, const struct sockaddr *sa, socklen_t len)
{
	struct resolve_result *res = &req->res;
	struct sockaddr_storage *ss = &res->addrs[res->n];

	if (len != addr_len(sa) || len == 0)
		return;
	for (size_t i = 0; i < res->n; i++)
		if (res->lens[i] == len && memcmp(&res->addrs[i], sa, len) == 0)
			return;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, sa, len);
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(req->port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(req->port);
	res->lens[res->n++] = len;
}

/*
 * Order ai's addresses for Happy Eyeballs: families alternate, starting
 * with the family ranked first (RFC 8305 section 4). Returns how many.
 */
static size_t
req_fill(struct resolve_req *req, const struct ares_addrinfo *ai)
{
	const struct ares_addrinfo_node *nd, *fam[2];
	int first = -1;

	req->res.n = 0;
	for (nd = ai->nodes; nd != NULL && first == -1; nd = nd->ai_next)
		if (nd->ai_family == AF_INET || nd->ai_family == AF_INET6)
			first = nd->ai_family;
	if (first == -1)
		return 0;
	fam[0] = fam[1] = ai->nodes;
	while (req->res.n < RESOLVE_MAX_ADDRS) {
		bool any = false;

		for (int k = 0; k < 2 && req->res.n < RESOLVE_MAX_ADDRS; k++) {
			int want = k == 0 ? first : first == AF_INET ?
			    AF_INET6 : AF_INET;

			while (fam[k] != NULL && fam[k]->ai_family != want)
				fam[k] = fam[k]->ai_next;
			if (fam[k] == NULL)
				continue;
			req_add(req, fam[k]->ai_addr, fam[k]->ai_addrlen);
			fam[k] = fam[k]->ai_next;
			any = true;
		}
		if (!any)
			break;
	}
	return req->res.n;
}

/*
 * A c-ares status that ends a lookup, as ours. Everything that says "the
 * name has no usable answer" (as getaddrinfo's EAI_NONAME, EAI_NODATA,
 * EAI_AGAIN, EAI_FAIL) is unresolvable; the rest is our own trouble.
 */
static enum resolve_status
status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ESERVFAIL:
	case ARES_ETIMEOUT:
	case ARES_ECONNREFUSED:
	case ARES_EREFUSED:
	case ARES_EFORMERR:
	case ARES_EBADRESP:
	case ARES_EBADNAME:
	case ARES_ENOTIMP:
	case ARES_EOF:
		return RESOLVE_UNRESOLVABLE;
	default:
		return RESOLVE_FAILED;
	}
}

/*
 * c-ares is done with ticket t: free it (and ai, unless the request still
 * wants it). Returns the request if it is still wanted.
 */
static struct resolve_req *
ticket_end(struct res_ticket *t, struct ares_addrinfo *ai)
{
	struct resolve_req *req = t->req;
	struct res_chan *ch = t->ch;

	ch->pending--;
	free(t);
	if (req != NULL)
		req->ticket = NULL;
	if (req == NULL || ch->r->freeing) {
		if (req != NULL)
			req_free(req);
		if (ai != NULL)
			ares_freeaddrinfo(ai);
		return NULL;
	}
	return req;
}

/* Hand req to channel ch; cb gets the answer (maybe at once). */
static void
req_lookup(struct resolve_req *req, struct res_chan *ch,
    ares_addrinfo_callback cb)
{
	static const struct ares_addrinfo_hints hints = {
		.ai_family = AF_UNSPEC,
	};
	struct res_ticket *t;

	if ((t = malloc(sizeof(*t))) == NULL) {
		req_finish(req, RESOLVE_FAILED, "out of memory");
		return;
	}
	t->req = req;
	t->ch = ch;
	req->ticket = t;
	ch->pending++;
	/* The port is ours to set: no service, no getservbyname. */
	ares_getaddrinfo(ch->ares, req->name, NULL, &hints, cb, t);
	chan_after(ch);
}

static bool
stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * c-ares reads resolv.conf once per channel; glibc notices a change at the
 * next lookup. Do the same: a changed file gets a new channel for new
 * lookups, and the old one is freed when its last query ends.
 */
static void
resolver_conf_check(struct resolver *r)
{
	struct res_chan *nch, *old;
	struct stat st;
	char err[160];

	if (stat(RESOLV_CONF, &st) == -1)
		memset(&st, 0, sizeof(st));
	if (stat_same(&st, &r->conf_st))
		return;
	r->conf_st = st;
	if ((nch = chan_new(r, "b", err, sizeof(err))) == NULL) {
		log_warnx("%s changed, keeping the old settings: %s",
		    RESOLV_CONF, err);
		return;
	}
	old = r->dns;
	r->dns = nch;
	if (old->pending == 0) {
		chan_free(old);
	} else {
		old->retired = true;
		LIST_INSERT_HEAD(&r->retired, old, link);
	}
	log_info("resolver: %s changed, reloaded", RESOLV_CONF);
}

static void
dns_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct resolve_req *req;
	size_t n;

	(void)timeouts;
	if ((req = ticket_end(arg, ai)) == NULL)
		return;
	if (status != ARES_SUCCESS) {
		if (ai != NULL)
			ares_freeaddrinfo(ai);
		req_finish(req, status_of(status), ares_strerror(status));
		return;
	}
	n = ai != NULL ? req_fill(req, ai) : 0;
	if (ai != NULL)
		ares_freeaddrinfo(ai);
	if (n == 0)
		req_finish(req, RESOLVE_UNRESOLVABLE, "no IPv4/IPv6 address");
	else
		req_finish(req, RESOLVE_OK, "ok");
}

/* Not in the hosts file, not numeric: take a slot and ask DNS. */
static void
req_dns(struct resolve_req *req)
{
	struct resolver *r = req->r;

	if (req->has_key) {
		if (!cap_acquire(req->key, req->max)) {
			req_finish(req, RESOLVE_LIMIT,
			    "too many lookups in flight from this source");
			return;
		}
		req->counted = true;
	}
	resolver_conf_check(r);
	req_lookup(req, r->dns, dns_cb);
}

static void
files_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct resolve_req *req;
	size_t n;

	(void)timeouts;
	if ((req = ticket_end(arg, ai)) == NULL)
		return;
	if (status == ARES_SUCCESS) {
		n = ai != NULL ? req_fill(req, ai) : 0;
		if (ai != NULL)
			ares_freeaddrinfo(ai);
		if (n > 0) {
			req_finish(req, RESOLVE_OK, "ok");
			return;
		}
	} else if (ai != NULL) {
		ares_freeaddrinfo(ai);
	}
	if (status == ARES_ENOMEM) {
		req_finish(req, RESOLVE_FAILED, ares_strerror(status));
		return;
	}
	/* Not found, or a hosts file we cannot read: as nsswitch, go on. */
	req_dns(req);
}

/*
 * A numeric name, taken as getaddrinfo(3) takes it (inet_aton forms such
 * as "127.1" included, nothing after the address): answered here, since
 * c-ares 1.18 sends a dotted quad to DNS when both families are asked.
 */
static bool
req_numeric(struct resolve_req *req)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	const char *name = req->name;

	if (name[strspn(name, "0123456789abcdefABCDEFxX.")] == '\0' &&
	    inet_aton(name, &sin.sin_addr) != 0) {
		req_add(req, (struct sockaddr *)&sin, sizeof(sin));
		return true;
	}
	if (inet_pton(AF_INET6, name, &sin6.sin6_addr) == 1) {
		req_add(req, (struct sockaddr *)&sin6, sizeof(sin6));
		return true;
	}
	return false;
}

struct resolve_req *
resolve_start(struct resolver *r, const char *name, uint16_t port,
    const struct sockaddr *client, unsigned max_per_source,
    void (*done)(void *arg, const struct resolve_result *res), void *arg)
{
	size_t len = strlen(name);
	struct resolve_req *req;

	if ((req = calloc(1, sizeof(*req) + len + 1)) == NULL)
		return NULL;
	req->r = r;
	req->done = done;
	req->arg = arg;
	req->port = port;
	req->max = max_per_source;
	req->has_key = client != NULL && max_per_source > 0 &&
	    addr_source_key(client, req->key);
	memcpy(req->name, name, len + 1);
	if (len == 0)
		req_finish(req, RESOLVE_UNRESOLVABLE, "empty name");
	else if (req_numeric(req))
		req_finish(req, RESOLVE_OK, "ok");
	else
		req_lookup(req, r->files, files_cb);
	return req;
}

void
resolve_cancel(struct resolve_req *req)
{
	struct resolver *r = req->r;

	if (req->queued) {
		TAILQ_REMOVE(&r->ready, req, link);
		r->n_ready--;
		if (TAILQ_EMPTY(&r->ready))
			ev_timer_stop(r->loop, &r->kick);
	}
	if (req->ticket != NULL)
		req->ticket->req = NULL;
	req_free(req);
}

unsigned
resolver_inflight(const struct resolver *r)
{
	const struct res_chan *ch;
	unsigned n = r->files->pending + r->dns->pending;

	LIST_FOREACH(ch, &r->retired, link)
		n += ch->pending;
	return n;
}

struct resolver *
resolver_new(struct ev_loop *loop, char *err, size_t errlen)
{
	struct resolver *r;

	pthread_once(&res_once, res_init_once);
	if (res_lib_status != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s",
		    ares_strerror(res_lib_status));
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "resolver: %s", strerror(errno));
		return NULL;
	}
	r->loop = loop;
	LIST_INIT(&r->retired);
	TAILQ_INIT(&r->ready);
	ev_timer_init(&r->kick, kick_cb, 0., 0.);
	/* Before the channel reads it: a change in between reloads once. */
	if (stat(RESOLV_CONF, &r->conf_st) == -1)
		memset(&r->conf_st, 0, sizeof(r->conf_st));
	if ((r->files = chan_new(r, "f", err, errlen)) == NULL)
		goto err_free;
	if ((r->dns = chan_new(r, "b", err, errlen)) == NULL)
		goto err_files;
	return r;

err_files:
	chan_free(r->files);
err_free:
	free(r);
	return NULL;
}

void
resolver_free(struct resolver *r)
{
	struct resolve_req *req;
	struct res_chan *ch;

	if (r == NULL)
		return;
	r->freeing = true;
	while ((req = TAILQ_FIRST(&r->ready)) != NULL) {
		TAILQ_REMOVE(&r->ready, req, link);
		req_free(req);
	}
	ev_timer_stop(r->loop, &r->kick);
	chan_free(r->files);
	chan_free(r->dns);
	while ((ch = LIST_FIRST(&r->retired)) != NULL) {
		LIST_REMOVE(ch, link);
		chan_free(ch);
	}
	free(r);
}
