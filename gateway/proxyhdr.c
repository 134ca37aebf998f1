#include "gateway/proxyhdr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "gateway/admit.h"
#include "gateway/session.h"
#include "gateway/worker.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "proto/proxyproto.h"

/* s->in holds the header while it arrives. */
_Static_assert(PP_HDR_MAX <= SESS_IN_MAX, "s->in cannot hold a PROXY header");

bool
proxyhdr_sender_ok(const struct gw_conf *c, const struct sockaddr *peer,
    double now)
{
	for (size_t i = 0; i < c->n_proxy_from; i++)
		if (conf_cidr_match(&c->proxy_from[i], peer))
			return true;
	admit_refuse_proxy(peer, "not in gateway.proxy_from", now);
	return false;
}

/* Refuse s (still in SESS_PROXY, so never admitted) and close it. */
static int
proxyhdr_refuse(struct session *s, const char *why)
{
	admit_refuse_proxy((const struct sockaddr *)&s->peer, why,
	    ev_now(s->w->loop));
	sess_close(s);
	return -1;
}

void
proxyhdr_timeout(struct session *s)
{
	(void)proxyhdr_refuse(s, "no complete header within "
	    "socks5.handshake_timeout");
}

/* Are a and b the same address and port (a v4-mapped one as IPv4)? */
static bool
proxyhdr_same(const struct sockaddr *a, const struct sockaddr *b)
{
	struct sockaddr_storage ua, ub;
	const struct sockaddr *x = addr_unmap(a, &ua), *y = addr_unmap(b, &ub);
	const struct sockaddr_in *x4 = (const void *)x, *y4 = (const void *)y;
	const struct sockaddr_in6 *x6 = (const void *)x, *y6 = (const void *)y;

	if (x == NULL || y == NULL || x->sa_family != y->sa_family)
		return false;
	if (x->sa_family == AF_INET)
		return x4->sin_port == y4->sin_port &&
		    x4->sin_addr.s_addr == y4->sin_addr.s_addr;
	return x6->sin6_port == y6->sin6_port && memcmp(&x6->sin6_addr,
	    &y6->sin6_addr, sizeof(x6->sin6_addr)) == 0;
}

/*
 * Does h name the connection it came on (source its peer, destination its
 * local end)? Then no client is being relayed: it is the balancer's own
 * connection, as a v2 LOCAL would say. HAProxy's v1 health checks (and
 * its v2 ones with PROXY) look like that. A relayed client cannot: it
 * connected to the balancer, not to this socket's address.
 */
static bool
proxyhdr_names_itself(const struct session *s, const struct pp_hdr *h)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);

	return proxyhdr_same((const struct sockaddr *)&h->src,
	    (const struct sockaddr *)&s->peer) && getsockname(s->cfd,
	    (struct sockaddr *)&local, &len) == 0 && proxyhdr_same(
	    (const struct sockaddr *)&h->dst, (const struct sockaddr *)&local);
}

/*
 * A whole header h: the client it names becomes the session's, which then
 * faces the per-source admission.
 */
static int
proxyhdr_done(struct session *s, const struct pp_hdr *h)
{
	char from[ADDR_STR_MAX];

	if (h->cmd == PP_CMD_LOCAL || (h->version == 1 && !h->has_addr) ||
	    (h->has_addr && proxyhdr_names_itself(s, h))) {
		/*
		 * The balancer's own connection, a health check: v2 LOCAL,
		 * v1 UNKNOWN (which the spec once advised for checks), or
		 * a header naming this very connection. The balancer
		 * learns that we are up by the accept; nothing to serve,
		 * nothing to count.
		 */
		log_debug("session %" PRIu64 ": %s: PROXY v%u %s: a health "
		    "check, closing", s->id, s->client, h->version,
		    h->cmd == PP_CMD_LOCAL ? "LOCAL" : h->has_addr ?
		    "naming its own connection" : "UNKNOWN");
		sess_close(s);
		return -1;
	}
	if (!h->has_addr) {
		/*
		 * PROXY over AF_UNSPEC or AF_UNIX: the balancer cannot say
		 * who the client is, and rules and limits need to know.
		 */
		return proxyhdr_refuse(s, "the header names no client IP "
		    "address");
	}
	memcpy(from, s->client, sizeof(from));
	memset(&s->peer, 0, sizeof(s->peer));
	(void)addr_unmap((const struct sockaddr *)&h->src, &s->peer);
	addr_format((const struct sockaddr *)&s->peer, s->client,
	    sizeof(s->client));
	if (!admit_source(sess_conf(s), (const struct sockaddr *)&s->peer,
	    ev_now(s->w->loop), &s->admit)) {
		sess_close(s);
		return -1;
	}
	log_debug("session %" PRIu64 ": PROXY v%u from %s: client %s", s->id,
	    h->version, from, s->client);
	sess_admitted(s);
	return 1;
}

int
proxyhdr_step(struct session *s)
{
	char why[128];
	struct pp_hdr h;
	size_t used = 0, want = 0;
	ssize_t n;

	/*
	 * Peek at what is there, behind the part of the header already
	 * taken into s->in; then take off the socket only bytes of the
	 * header. Until the header is whole, everything peeked is header
	 * (pp_parse() says PP_BAD at the first byte that is not), so it
	 * all goes into s->in and the next peek sees only new bytes.
	 */
	if (s->in_len >= PP_HDR_MAX)	/* pp_parse() would have said BAD */
		return proxyhdr_refuse(s, "header too long");
	do
		n = recv(s->cfd, s->in + s->in_len, PP_HDR_MAX - s->in_len,
		    MSG_PEEK);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN)
		return 0;
	if (n == -1) {
		snprintf(why, sizeof(why), "reading the header: %s",
		    strerror(errno));
		return proxyhdr_refuse(s, why);
	}
	if (n == 0)
		return proxyhdr_refuse(s, "closed before a complete header");
	switch (pp_parse(s->in, s->in_len + (size_t)n, &h, &used)) {
	case PP_BAD:
		return proxyhdr_refuse(s, "not a valid PROXY v1 or v2 header");
	case PP_AGAIN:
		want = (size_t)n;
		break;
	case PP_OK:
		want = used - s->in_len;
		break;
	}
	do
		n = recv(s->cfd, s->in + s->in_len, want, 0);
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		/* The bytes were just peeked: only an error takes them. */
		snprintf(why, sizeof(why), "reading the header: %s", n == 0 ?
		    "closed" : strerror(errno));
		return proxyhdr_refuse(s, why);
	}
	s->in_len += (size_t)n;
	if (used == 0 || s->in_len < used)
		return 0;
	/* h points into s->in (its TLVs), which the front now reuses. */
	s->in_len = 0;
	return proxyhdr_done(s, &h);
}
