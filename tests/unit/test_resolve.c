/*
 * The resolver (gateway/resolve.c) against real DNS servers, each test in
 * its own network and mount namespaces (tests/unit/netns.h) with its own
 * /etc/resolv.conf and /etc/hosts bind-mounted, as `ip netns exec` does:
 *
 * - dnsmasq on 127.0.0.1:53 with its own hosts file: answers, NXDOMAIN,
 *   NODATA, Happy Eyeballs order, the 16-address cap, cancellation;
 * - a black hole (a UDP socket on 127.0.0.2:53 that reads and never
 *   answers): names in /etc/hosts and numeric names are answered while
 *   many lookups hang on it; the per-source cap; a timeout;
 * - a server that answers every query with SERVFAIL or REFUSED.
 *
 * Every wait runs the event loop until the expected callback has come,
 * bounded by a guard timer (a hang fails; no time is measured).
 */
#include "gateway/resolve.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <ev.h>
#include <netdb.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "netns.h"

#define GUARD 20.	/* seconds before a wait gives up (a hang) */

static struct ev_loop *loop;

static void
setup(void)
{
	const char *why = netns_skip_reason();

	if (why != NULL)
		cr_skip_test("%s", why);
	log_set_level(LOG_LVL_ERROR);
	netns_enter();
	cr_assert_not_null(loop = ev_loop_new(EVFLAG_AUTO));
}

static void
teardown(void)
{
	if (loop != NULL)
		ev_loop_destroy(loop);
}

TestSuite(resolve, .init = setup, .fini = teardown, .timeout = 60);

/* --- servers ----------------------------------------------------------- */

static const char dnsmasq_hosts[] =
    "10.77.0.3 v4only.test\n"
    "10.77.0.1 both.test\n"
    "fd77::1 both.test\n"
    "10.77.0.2 both.test\n"
    "fd77::2 both.test\n"
    "10.77.0.4 both.test\n"
    "10.77.0.200 probe.test\n";

/* A DNS query for name, type qtype, id, into buf; its length. */
static size_t
dns_query(uint8_t *buf, size_t cap, const char *name, uint16_t qtype,
    uint16_t id)
{
	size_t n = 12;
	const char *p = name;

	memset(buf, 0, 12);
	buf[0] = id >> 8;
	buf[1] = id & 0xff;
	buf[2] = 0x01;		/* RD */
	buf[5] = 1;		/* QDCOUNT */
	while (*p != '\0') {
		const char *dot = strchr(p, '.');
		size_t l = dot != NULL ? (size_t)(dot - p) : strlen(p);

		cr_assert(n + 1 + l + 5 < cap);
		buf[n++] = (uint8_t)l;
		memcpy(buf + n, p, l);
		n += l;
		p += l + (dot != NULL);
	}
	buf[n++] = 0;
	buf[n++] = qtype >> 8;
	buf[n++] = qtype & 0xff;
	buf[n++] = 0;
	buf[n++] = 1;		/* IN */
	return n;
}

/*
 * The keeper of one dnsmasq (a child of the test process): it runs
 * dnsmasq and kills it when the test process is gone, which it learns
 * from EOF on alive (the test process holds the write end until it
 * exits, however it ends). PR_SET_PDEATHSIG cannot do this: dnsmasq
 * changes its credentials, which clears it, and every run left its
 * dnsmasq behind. The keeper exits 1 if dnsmasq dies first.
 */
static void
keep_dnsmasq(int alive, char *const argv[])
{
	struct pollfd pfd = { .fd = alive, .events = POLLIN };
	pid_t pid;
	int st;

	if ((pid = fork()) == -1)
		_exit(1);
	if (pid == 0) {
		close(alive);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) != 0)
			_exit(1);
		if (poll(&pfd, 1, 100) > 0)
			break;	/* EOF: the test process is gone */
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	_exit(0);
}

/*
 * dnsmasq on 127.0.0.1:53 with dnsmasq_hosts (plus extra lines), NXDOMAIN
 * for any other name under .test, NODATA for nodata.test. It dies with the
 * test process (keep_dnsmasq). Returns once it answers a query.
 */
static void
start_dnsmasq(const char *extra_hosts)
{
	char hosts[4096], path[64], arg[128];
	char *argv[] = { "dnsmasq", "--keep-in-foreground",
	    "--conf-file=/dev/null", "--no-resolv", "--no-hosts", arg,
	    "--local=/test/", "--txt-record=nodata.test,x",
	    "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53",
	    "--user=root", "--pid-file=", "--log-facility=/dev/null", NULL };
	uint8_t q[512], a[512];
	struct sockaddr_in to = { .sin_family = AF_INET,
	    .sin_port = htons(53) };
	struct timeval tv = { 0, 200000 };
	int fd, alive[2];
	pid_t pid;

	snprintf(hosts, sizeof(hosts), "%s%s", dnsmasq_hosts,
	    extra_hosts != NULL ? extra_hosts : "");
	netns_tmpfile(hosts, path, sizeof(path));
	snprintf(arg, sizeof(arg), "--addn-hosts=%s", path);
	/* The write end stays open, unused, until this process exits. */
	cr_assert_eq(pipe2(alive, O_CLOEXEC), 0);
	cr_assert_neq(pid = fork(), -1);
	if (pid == 0) {
		close(alive[1]);
		keep_dnsmasq(alive[0], argv);
	}
	close(alive[0]);
	/* Ready when it answers; a dead dnsmasq fails the wait. */
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	cr_assert_neq(fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), -1);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	for (int i = 0;; i++) {
		size_t n = dns_query(q, sizeof(q), "probe.test", 1, 7);
		int st;

		cr_assert_lt(i, 100, "dnsmasq does not answer");
		cr_assert_eq(waitpid(pid, &st, WNOHANG), 0,
		    "dnsmasq exited (%d)", st);
		sendto(fd, q, n, 0, (struct sockaddr *)&to, sizeof(to));
		if (recv(fd, a, sizeof(a), 0) >= 12)
			break;
	}
	close(fd);
	unlink(path);
}

/*
 * A server on ip:53 that reads every query: answers none (rcode -1) or
 * answers each with that rcode. Counts distinct names asked.
 */
struct hole {
	ev_io io;
	int rcode;
	unsigned queries;
	unsigned n_names;
	char names[128][64];
};

static void
hole_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct hole *h = (struct hole *)w;
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	uint8_t buf[512];
	char name[64] = "";
	size_t off = 12, nl = 0;
	ssize_t n;

	(void)l;
	(void)revents;
	while ((n = recvfrom(w->fd, buf, sizeof(buf), MSG_DONTWAIT,
	    (struct sockaddr *)&from, &flen)) >= 12) {
		h->queries++;
		while (off < (size_t)n && buf[off] != 0 &&
		    off + 1 + buf[off] <= (size_t)n &&
		    nl + buf[off] + 2 < sizeof(name)) {
			if (nl > 0)
				name[nl++] = '.';
			memcpy(name + nl, buf + off + 1, buf[off]);
			nl += buf[off];
			off += 1 + buf[off];
		}
		name[nl] = '\0';
		bool seen = false;
		for (unsigned i = 0; i < h->n_names && !seen; i++)
			seen = strcmp(h->names[i], name) == 0;
		if (!seen && h->n_names < 128)
			strcpy(h->names[h->n_names++], name);
		if (h->rcode >= 0) {
			buf[2] |= 0x80;			/* QR */
			buf[3] = (buf[3] & 0xf0) | (uint8_t)h->rcode;
			sendto(w->fd, buf, (size_t)n, 0,
			    (struct sockaddr *)&from, flen);
		}
		off = 12;
		nl = 0;
		flen = sizeof(from);
	}
}

static struct hole *
start_hole(const char *ip, int rcode)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_port = htons(53) };
	struct hole *h = calloc(1, sizeof(*h));
	int fd;

	cr_assert_not_null(h);
	h->rcode = rcode;
	inet_pton(AF_INET, ip, &sin.sin_addr);
	cr_assert_neq(fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), -1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ev_io_init(&h->io, hole_cb, fd, EV_READ);
	ev_io_start(loop, &h->io);
	return h;
}

static void
stop_hole(struct hole *h)
{
	ev_io_stop(loop, &h->io);
	close(h->io.fd);
	free(h);
}

/* --- results and waiting ----------------------------------------------- */

struct got {
	int calls;
	struct resolve_result res;
};

static void
got_cb(void *arg, const struct resolve_result *res)
{
	struct got *g = arg;

	g->calls++;
	g->res = *res;
}

static void
guard_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)revents;
	*(bool *)t->data = true;
}

/* Run the loop until *n >= want (or the guard fires: a failure). */
static void
wait_for(const int *n, int want, const char *what)
{
	bool expired = false;
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, GUARD, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (*n < want && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	cr_assert_geq(*n, want, "no answer: %s", what);
}

/* As wait_for, on an unsigned counter. */
static void
wait_for_u(const unsigned *n, unsigned want, const char *what)
{
	bool expired = false;
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, GUARD, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (*n < want && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	cr_assert_geq(*n, want, "never reached %u: %s", want, what);
}

/* Run until r has no c-ares query left (cancelled ones included). */
static void
wait_idle(struct resolver *r)
{
	bool expired = false;
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, GUARD, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (resolver_inflight(r) > 0 && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	cr_assert_eq(resolver_inflight(r), 0, "queries still in flight");
}

static struct resolver *
new_resolver(void)
{
	char err[256];
	struct resolver *r = resolver_new(loop, err, sizeof(err));

	cr_assert_not_null(r, "resolver_new: %s", err);
	return r;
}

static struct sockaddr_storage
sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		cr_assert_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

/* Address i of res as text, "ip port". */
static const char *
res_addr(const struct resolve_result *res, size_t i, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	const struct sockaddr *s = (const struct sockaddr *)&res->addrs[i];

	if (s->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)s;

		cr_assert_eq(res->lens[i], sizeof(*s4));
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s %u", ip, ntohs(s4->sin_port));
	} else {
		const struct sockaddr_in6 *s6 = (const void *)s;

		cr_assert_eq(s->sa_family, AF_INET6);
		cr_assert_eq(res->lens[i], sizeof(*s6));
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s %u", ip, ntohs(s6->sin6_port));
	}
	return buf;
}

/* Resolve name, wait for the answer. */
static struct got
lookup(struct resolver *r, const char *name, uint16_t port)
{
	struct got g = { 0 };

	cr_assert_not_null(resolve_start(r, name, port, NULL, 0, got_cb, &g));
	cr_assert_eq(g.calls, 0, "done() ran inside resolve_start()");
	wait_for(&g.calls, 1, name);
	cr_assert_eq(g.calls, 1);
	return g;
}

#define RESOLV_DNSMASQ "nameserver 127.0.0.1\n"
#define RESOLV_HOLE "nameserver 127.0.0.2\noptions timeout:30 attempts:5\n"
#define HOSTS "127.0.0.1 localhost\n10.77.0.9 hosted.test\n" \
    "fd77::9 hosted6.test\n"

/* --- answers ------------------------------------------------------------ */

Test(resolve, dns_answer_with_port)
{
	struct resolver *r;
	struct got g;
	char buf[80];

	netns_etc("resolv.conf", RESOLV_DNSMASQ);
	netns_etc("hosts", HOSTS);
	start_dnsmasq(NULL);
	r = new_resolver();
	g = lookup(r, "v4only.test", 8080);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	cr_assert_eq(g.res.n, 1);
	cr_assert_str_eq(res_addr(&g.res, 0, buf, sizeof(buf)),
	    "10.77.0.3 8080");
	resolver_free(r);
}

Test(resolve, hosts_file_is_the_bind_mounted_one)
{
	struct hole *h;
	struct resolver *r;
	struct got g;
	char buf[80];

	/* A server that never answers: only /etc/hosts can. */
	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	h = start_hole("127.0.0.2", -1);
	r = new_resolver();
	g = lookup(r, "hosted.test", 443);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	cr_assert_eq(g.res.n, 1);
	cr_assert_str_eq(res_addr(&g.res, 0, buf, sizeof(buf)),
	    "10.77.0.9 443");
	g = lookup(r, "HOSTED6.test", 443);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	cr_assert_str_eq(res_addr(&g.res, 0, buf, sizeof(buf)), "fd77::9 443");
	cr_assert_eq(resolver_inflight(r), 0);
	resolver_free(r);
	cr_assert_eq(h->queries, 0, "a hosts-file name went to DNS");
	stop_hole(h);
}

Test(resolve, numeric_names)
{
	/* As getaddrinfo(3) reads them, inet_aton forms included. */
	static const struct {
		const char *name, *want;
	} t[] = {
		{ "192.0.2.7", "192.0.2.7 1" },
		{ "127.1", "127.0.0.1 1" },
		{ "0x7f000001", "127.0.0.1 1" },
		{ "2001:db8::5", "2001:db8::5 1" },
		{ "::ffff:192.0.2.1", "::ffff:192.0.2.1 1" },
	};
	struct hole *h;
	struct resolver *r;
	char buf[80];

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	h = start_hole("127.0.0.2", -1);
	r = new_resolver();
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct got g = lookup(r, t[i].name, 1);

		cr_assert_eq(g.res.status, RESOLVE_OK, "%s: %s", t[i].name,
		    g.res.msg);
		cr_assert_eq(g.res.n, 1);
		cr_assert_str_eq(res_addr(&g.res, 0, buf, sizeof(buf)),
		    t[i].want);
	}
	cr_assert_eq(resolver_inflight(r), 0, "a numeric name went to DNS");
	resolver_free(r);
	cr_assert_eq(h->queries, 0, "a numeric name went to DNS");
	stop_hole(h);
}

Test(resolve, nxdomain_nodata_empty_are_unresolvable)
{
	const char *names[] = { "nx.test", "nodata.test", "" };
	struct resolver *r;

	netns_etc("resolv.conf", RESOLV_DNSMASQ);
	netns_etc("hosts", HOSTS);
	start_dnsmasq(NULL);
	r = new_resolver();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct got g = lookup(r, names[i], 80);

		cr_assert_eq(g.res.status, RESOLVE_UNRESOLVABLE, "%s: %d %s",
		    names[i], g.res.status, g.res.msg);
		cr_assert_eq(g.res.n, 0);
		cr_assert_not_null(g.res.msg);
		cr_assert_gt(strlen(g.res.msg), 0);
	}
	resolver_free(r);
}

Test(resolve, servfail_and_refused_are_unresolvable)
{
	const int rcodes[] = { 2, 5 };

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	for (size_t i = 0; i < 2; i++) {
		struct hole *h = start_hole("127.0.0.2", rcodes[i]);
		struct resolver *r = new_resolver();
		struct got g = lookup(r, "any.example", 80);

		cr_assert_eq(g.res.status, RESOLVE_UNRESOLVABLE,
		    "rcode %d: %d %s", rcodes[i], g.res.status, g.res.msg);
		cr_assert_gt(h->queries, 0);
		resolver_free(r);
		stop_hole(h);
	}
}

Test(resolve, timeout_is_unresolvable)
{
	struct hole *h;
	struct resolver *r;
	struct got g;

	netns_etc("resolv.conf", "nameserver 127.0.0.2\n"
	    "options timeout:1 attempts:1\n");
	netns_etc("hosts", HOSTS);
	h = start_hole("127.0.0.2", -1);
	r = new_resolver();
	g = lookup(r, "slow.example", 80);
	cr_assert_eq(g.res.status, RESOLVE_UNRESOLVABLE, "%d %s", g.res.status,
	    g.res.msg);
	cr_assert_gt(h->queries, 0);
	resolver_free(r);
	stop_hole(h);
}

/* --- order -------------------------------------------------------------- */

/* The family getaddrinfo(3) ranks first for name (the old code's order). */
static int
libc_first_family(const char *name)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int fam;

	cr_assert_eq(getaddrinfo(name, "80", &hints, &res), 0);
	fam = res->ai_family;
	freeaddrinfo(res);
	return fam;
}

static void
check_alternating(const struct resolve_result *res, int first,
    size_t n4, size_t n6)
{
	size_t k4 = 0, k6 = 0;
	int want = first;

	cr_assert_eq(res->n, n4 + n6);
	for (size_t i = 0; i < res->n; i++) {
		int fam = res->addrs[i].ss_family;

		/* Alternate while both have addresses left, then the rest. */
		if (k4 == n4)
			want = AF_INET6;
		else if (k6 == n6)
			want = AF_INET;
		cr_assert_eq(fam, want, "address %zu: family %d, want %d", i,
		    fam, want);
		if (fam == AF_INET)
			k4++;
		else
			k6++;
		want = fam == AF_INET ? AF_INET6 : AF_INET;
	}
}

Test(resolve, happy_eyeballs_order_ipv6_first)
{
	struct resolver *r;
	struct got g;

	/* Only IPv6 is routable, so both rank IPv6 first (RFC 6724 rule 1). */
	netns_sh("ip -6 addr add fd77::100/64 dev lo");
	netns_wait("ip -6 route show table local fd77::100 | grep -q local");
	netns_etc("resolv.conf", RESOLV_DNSMASQ);
	netns_etc("hosts", HOSTS);
	start_dnsmasq(NULL);
	r = new_resolver();
	g = lookup(r, "both.test", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	cr_assert_eq(libc_first_family("both.test"), AF_INET6);
	check_alternating(&g.res, AF_INET6, 3, 2);
	resolver_free(r);
}

Test(resolve, happy_eyeballs_order_ipv4_first)
{
	struct resolver *r;
	struct got g;

	netns_sh("ip addr add 10.77.0.100/24 dev lo");
	netns_etc("resolv.conf", RESOLV_DNSMASQ);
	netns_etc("hosts", HOSTS);
	start_dnsmasq(NULL);
	r = new_resolver();
	g = lookup(r, "both.test", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	cr_assert_eq(libc_first_family("both.test"), AF_INET);
	check_alternating(&g.res, AF_INET, 3, 2);
	resolver_free(r);
}

Test(resolve, at_most_16_addresses)
{
	char extra[2048] = "";
	struct resolver *r;
	struct got g;

	for (int i = 1; i <= 24; i++) {
		char line[64];

		snprintf(line, sizeof(line), "10.77.1.%d many.test\n", i);
		strcat(extra, line);
	}
	netns_etc("resolv.conf", RESOLV_DNSMASQ);
	netns_etc("hosts", HOSTS);
	start_dnsmasq(extra);
	r = new_resolver();
	g = lookup(r, "many.test", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	cr_assert_eq(g.res.n, RESOLVE_MAX_ADDRS);
	for (size_t i = 0; i < g.res.n; i++)
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(memcmp(&g.res.addrs[i], &g.res.addrs[j],
			    g.res.lens[i]), 0, "duplicate address");
	resolver_free(r);
}

/* --- nothing waits behind slow lookups --------------------------------- */

Test(resolve, hosts_and_numeric_answer_while_dns_hangs)
{
	enum { SLOW = 64 };
	static struct got slow[SLOW];
	struct hole *h;
	struct resolver *r;
	struct got g;
	char name[64];

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	h = start_hole("127.0.0.2", -1);
	r = new_resolver();
	for (int i = 0; i < SLOW; i++) {
		snprintf(name, sizeof(name), "slow%d.example", i);
		cr_assert_not_null(resolve_start(r, name, 80, NULL, 0, got_cb,
		    &slow[i]));
	}
	/* Every slow lookup has reached the server: all are in flight. */
	wait_for_u(&h->n_names, SLOW, "the black hole sees every name");
	g = lookup(r, "hosted.test", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	g = lookup(r, "localhost", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	g = lookup(r, "198.51.100.1", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	g = lookup(r, "::1", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	for (int i = 0; i < SLOW; i++)
		cr_assert_eq(slow[i].calls, 0);
	cr_assert_geq(resolver_inflight(r), SLOW);
	/* Freed with lookups open: no done(), nothing leaks (ASan). */
	resolver_free(r);
	for (int i = 0; i < SLOW; i++)
		cr_assert_eq(slow[i].calls, 0);
	stop_hole(h);
}

/* --- cancellation --------------------------------------------------------- */

Test(resolve, cancel_in_flight)
{
	struct resolver *r;
	struct resolve_req *req;
	struct got first = { 0 }, g;

	netns_etc("resolv.conf", RESOLV_DNSMASQ);
	netns_etc("hosts", HOSTS);
	start_dnsmasq(NULL);
	r = new_resolver();
	req = resolve_start(r, "both.test", 80, NULL, 0, got_cb, &first);
	cr_assert_not_null(req);
	cr_assert_gt(resolver_inflight(r), 0);
	resolve_cancel(req);
	/* The loop goes on: another lookup, and dnsmasq's late answer. */
	g = lookup(r, "v4only.test", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	wait_idle(r);
	cr_assert_eq(first.calls, 0, "done() after cancel");
	resolver_free(r);
}

Test(resolve, cancel_answered_not_yet_delivered)
{
	struct resolver *r;
	struct resolve_req *req;
	struct got first = { 0 }, g;

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	r = new_resolver();
	/* Answered inside resolve_start, delivered on the next iteration. */
	req = resolve_start(r, "hosted.test", 80, NULL, 0, got_cb, &first);
	cr_assert_not_null(req);
	resolve_cancel(req);
	g = lookup(r, "192.0.2.1", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK);
	cr_assert_eq(first.calls, 0, "done() after cancel");
	resolver_free(r);
}

/* done() of one request cancels another already answered. */
struct pair {
	struct resolve_req *other;
	int calls;
};

static void
cancel_other_cb(void *arg, const struct resolve_result *res)
{
	struct pair *p = arg;

	(void)res;
	p->calls++;
	if (p->other != NULL)
		resolve_cancel(p->other);
}

Test(resolve, cancel_from_done)
{
	struct resolver *r;
	struct pair a = { 0 }, b = { 0 };
	struct got g;

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	r = new_resolver();
	cr_assert_not_null(resolve_start(r, "192.0.2.1", 80, NULL, 0,
	    cancel_other_cb, &a));
	cr_assert_not_null(a.other = resolve_start(r, "192.0.2.2", 80, NULL,
	    0, cancel_other_cb, &b));
	g = lookup(r, "192.0.2.3", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(b.calls, 0);
	resolver_free(r);
}

/* --- per-source cap ------------------------------------------------------- */

Test(resolve, cap_per_source)
{
	struct sockaddr_storage ca = sa("10.77.5.1"), cb = sa("10.77.5.2");
	struct sockaddr *a = (struct sockaddr *)&ca, *b = (struct sockaddr *)&cb;
	struct got a1 = { 0 }, a2 = { 0 }, a3 = { 0 }, a4 = { 0 }, b1 = { 0 };
	struct got g;
	struct resolve_req *r1;
	struct hole *h;
	struct resolver *r;

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	h = start_hole("127.0.0.2", -1);
	r = new_resolver();
	cr_assert_not_null(r1 = resolve_start(r, "a1.example", 80, a, 2,
	    got_cb, &a1));
	cr_assert_not_null(resolve_start(r, "a2.example", 80, a, 2, got_cb,
	    &a2));
	/* Over the cap: refused at once, without asking anyone. */
	cr_assert_not_null(resolve_start(r, "a3.example", 80, a, 2, got_cb,
	    &a3));
	wait_for(&a3.calls, 1, "a3 refused");
	cr_assert_eq(a3.res.status, RESOLVE_LIMIT, "%d %s", a3.res.status,
	    a3.res.msg);
	cr_assert_eq(a3.res.n, 0);
	/* Another source is not affected. */
	cr_assert_not_null(resolve_start(r, "b1.example", 80, b, 2, got_cb,
	    &b1));
	/* Hosts-file and numeric names never count. */
	memset(&g, 0, sizeof(g));
	cr_assert_not_null(resolve_start(r, "hosted.test", 80, a, 2, got_cb,
	    &g));
	wait_for(&g.calls, 1, "hosted.test at the cap");
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	memset(&g, 0, sizeof(g));
	cr_assert_not_null(resolve_start(r, "192.0.2.1", 80, a, 2, got_cb,
	    &g));
	wait_for(&g.calls, 1, "numeric at the cap");
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	/* A cancelled lookup gives its slot back at once. */
	resolve_cancel(r1);
	cr_assert_not_null(resolve_start(r, "a4.example", 80, a, 2, got_cb,
	    &a4));
	memset(&g, 0, sizeof(g));
	cr_assert_not_null(resolve_start(r, "192.0.2.2", 80, a, 2, got_cb,
	    &g));
	wait_for(&g.calls, 1, "numeric after a4");
	cr_assert_eq(a4.calls, 0, "a4 refused: %s", a4.res.msg);
	wait_for_u(&h->n_names, 4, "a1, a2, b1 and a4 asked");
	cr_assert_eq(a1.calls + a2.calls + b1.calls, 0);
	resolver_free(r);
	stop_hole(h);
}

Test(resolve, cap_counts_ipv6_per_64_and_across_resolvers)
{
	struct sockaddr_storage c1 = sa("2001:db8::1"), c2 = sa("2001:db8::2"),
	    c3 = sa("2001:db8:0:1::1"), c4 = sa("10.77.6.1");
	struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 }, g4 = { 0 },
	    g5 = { 0 };
	struct resolver *r, *r2;
	struct hole *h;

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	h = start_hole("127.0.0.2", -1);
	r = new_resolver();
	r2 = new_resolver();	/* another worker, same loop for the test */
	cr_assert_not_null(resolve_start(r, "x1.example", 80,
	    (struct sockaddr *)&c1, 1, got_cb, &g1));
	cr_assert_not_null(resolve_start(r, "x2.example", 80,
	    (struct sockaddr *)&c2, 1, got_cb, &g2));
	cr_assert_not_null(resolve_start(r, "x3.example", 80,
	    (struct sockaddr *)&c3, 1, got_cb, &g3));
	cr_assert_not_null(resolve_start(r, "x4.example", 80,
	    (struct sockaddr *)&c4, 1, got_cb, &g4));
	cr_assert_not_null(resolve_start(r2, "x5.example", 80,
	    (struct sockaddr *)&c4, 1, got_cb, &g5));
	wait_for(&g2.calls, 1, "same /64 refused");
	wait_for(&g5.calls, 1, "same source on another resolver refused");
	cr_assert_eq(g2.res.status, RESOLVE_LIMIT);
	cr_assert_eq(g5.res.status, RESOLVE_LIMIT);
	wait_for_u(&h->n_names, 3, "x1, x3, x4 asked");
	cr_assert_eq(g1.calls + g3.calls + g4.calls, 0);
	resolver_free(r2);
	resolver_free(r);
	stop_hole(h);
}

/* --- resolv.conf changes ------------------------------------------------- */

Test(resolve, resolv_conf_change_applies_to_new_lookups)
{
	struct got slow = { 0 }, g;
	struct resolve_req *req;
	struct resolver *r;
	struct hole *h;

	netns_etc("resolv.conf", RESOLV_HOLE);
	netns_etc("hosts", HOSTS);
	h = start_hole("127.0.0.2", -1);
	start_dnsmasq(NULL);
	r = new_resolver();
	cr_assert_not_null(req = resolve_start(r, "stuck.example", 80, NULL,
	    0, got_cb, &slow));
	wait_for_u(&h->n_names, 1, "the first lookup reaches the black hole");
	netns_etc_rewrite("resolv.conf", RESOLV_DNSMASQ);
	g = lookup(r, "v4only.test", 80);
	cr_assert_eq(g.res.status, RESOLVE_OK, "%s", g.res.msg);
	/* The old channel still holds the first query. */
	cr_assert_eq(slow.calls, 0);
	cr_assert_geq(resolver_inflight(r), 1);
	resolve_cancel(req);
	resolver_free(r);
	stop_hole(h);
}
