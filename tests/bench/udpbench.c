/*
 * socksbench udp - datagram rate and latency through a SOCKS5 UDP
 * ASSOCIATE (or direct), against a UDP echo target of its own:
 *
 *   socksbench udp --serve HOST:PORT
 *   socksbench udp --proxy none|socks5 [--gw HOST:PORT] --target HOST:PORT
 *       --mode rate|latency --size BYTES [--duration S] [--count N]
 *       [--window W] [--time-limit S] [--label L]
 *
 * --serve: echoes every datagram to its sender (recvmmsg/sendmmsg, one
 * thread), until SIGTERM/SIGINT.
 *
 * rate: keeps --window (128) numbered datagrams of --size payload bytes in
 * flight for --duration (3 s), sending one for each echo (recvmmsg and
 * sendmmsg batches). A window that gets no echo for 50 ms is written off
 * as lost and refilled, so a drop costs 50 ms, not the run. Reports the
 * echoed datagrams per second (pps), the payload Mbit/s one way, and the
 * datagrams sent but never echoed (lost).
 *
 * latency: one datagram at a time, --count (2000) of them, each awaited at
 * most 1 s: round-trip p50/p99/p999 in microseconds.
 *
 * Through socks5 the client associates with 0.0.0.0:0 (method none), sends
 * to the reply's BND (the --gw host if BND is 0.0.0.0) with the 10-byte
 * SOCKS5 UDP header (IPv4 target) in front, and checks the header of every
 * echo. Output: one key=value line on stdout, as socksbench's other modes.
 * Everything is bounded: --time-limit (30 s) stops a run.
 */
#include "tests/bench/udpbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/socks5.h"

#define UB_BATCH 64
#define UB_MAX 65536
#define UB_STALL_NS (50 * 1000000ull)

struct ub_args {
	const char *serve, *proxy, *gw, *target, *label, *mode;
	unsigned size, window, count;
	double duration, time_limit;
};

static volatile sig_atomic_t ub_stop;

static void ub_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
ub_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "socksbench udp: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static uint64_t
ub_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
ub_on_signal(int sig)
{
	(void)sig;
	ub_stop = 1;
}

/* "host:port" or "[v6]:port" into ss; 0 or -1. */
static int
ub_resolve(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	uint16_t port;
	struct addrinfo hints, *ai;

	if (socks5_parse_hostport(s, host, sizeof(host), &port) == -1)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	return 0;
}

static void
ub_bufs(int fd)
{
	int sz = 4 << 20;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

/* --- the echo target --------------------------------------------------- */

static int
ub_serve(const struct ub_args *a)
{
	static uint8_t bufs[UB_BATCH][UB_MAX];
	struct sockaddr_storage ss, from[UB_BATCH];
	struct mmsghdr m[UB_BATCH];
	struct iovec iov[UB_BATCH];
	socklen_t len;
	uint64_t echoed = 0;
	int fd, n, k;

	if (ub_resolve(a->serve, &ss, &len) == -1)
		ub_die("bad --serve %s", a->serve);
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&ss, len) == -1)
		ub_die("cannot bind %s", a->serve);
	ub_bufs(fd);
	fprintf(stderr, "socksbench udp: echoing on %s\n", a->serve);
	while (!ub_stop) {
		for (int i = 0; i < UB_BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = UB_MAX;
			memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
			m[i].msg_hdr.msg_name = &from[i];
			m[i].msg_hdr.msg_namelen = sizeof(from[i]);
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(fd, m, UB_BATCH, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;
		for (int i = 0; i < n; i++)
			iov[i].iov_len = m[i].msg_len;
		for (int off = 0; off < n; off += k > 0 ? k : 1) {
			k = sendmmsg(fd, m + off, (unsigned)(n - off), 0);
			if (k > 0)
				echoed += (uint64_t)k;
		}
	}
	fprintf(stderr, "socksbench udp: echoed %" PRIu64 " datagram(s)\n",
	    echoed);
	return 0;
}

/* --- the client --------------------------------------------------------- */

static void
ub_read_exact(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = recv(fd, p + got, n - got, 0);
		if (r <= 0)
			ub_die("%s", "proxy closed the control connection");
		got += (size_t)r;
	}
}

/*
 * SOCKS5 UDP ASSOCIATE (method none) on a new control connection to gw;
 * the relay's address into relay. Returns the control socket.
 */
static int
ub_associate(const struct sockaddr_storage *gw, socklen_t gwlen,
    struct sockaddr_storage *relay, socklen_t *rlen)
{
	static const uint8_t greet[] = { 5, 1, 0 };
	static const uint8_t req[] = { 5, 3, 0, 1, 0, 0, 0, 0, 0, 0 };
	uint8_t buf[SOCKS5_REPLY_MAX], rep;
	struct socks5_addr bnd;
	size_t used, n = 4;
	int fd = socket(gw->ss_family, SOCK_STREAM, 0);

	if (fd == -1 || connect(fd, (const struct sockaddr *)gw, gwlen) == -1)
		ub_die("%s", "cannot connect to --gw");
	if (send(fd, greet, sizeof(greet), 0) != (ssize_t)sizeof(greet))
		ub_die("%s", "send failed");
	ub_read_exact(fd, buf, 2);
	if (buf[0] != 5 || buf[1] != 0)
		ub_die("%s", "proxy refused method none");
	if (send(fd, req, sizeof(req), 0) != (ssize_t)sizeof(req))
		ub_die("%s", "send failed");
	ub_read_exact(fd, buf, 4);
	n = buf[3] == SOCKS5_ATYP_IPV6 ? 22 : 10;
	ub_read_exact(fd, buf + 4, n - 4);
	if (socks5_parse_reply(buf, n, &rep, &bnd, &used) != SOCKS5_OK ||
	    rep != 0)
		ub_die("%s", "UDP ASSOCIATE refused");
	if (socks5_addr_to_sockaddr(&bnd, relay, rlen) == -1)
		ub_die("%s", "BND is not an address");
	/* BND 0.0.0.0: the relay is where the control connection went. */
	if (relay->ss_family == AF_INET &&
	    ((struct sockaddr_in *)relay)->sin_addr.s_addr == 0 &&
	    gw->ss_family == AF_INET)
		((struct sockaddr_in *)relay)->sin_addr =
		    ((const struct sockaddr_in *)gw)->sin_addr;
	return fd;
}

static int
ub_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
ub_pct(const uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(q * (double)n + 0.999999);
	if (i > 0)
		i--;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

struct ub_client {
	int fd;
	size_t hlen;			/* SOCKS5 UDP header, 0 direct */
	uint8_t hdr[SOCKS5_UDP_HDR_MAX];
	size_t len;			/* header + payload */
	uint8_t out[UB_BATCH][UB_MAX];
	uint8_t in[UB_BATCH][UB_MAX];
};

/* The sequence number in an echo, or -1 for one that is not ours. */
static int64_t
ub_seq(const struct ub_client *c, const uint8_t *p, size_t n)
{
	uint32_t seq;

	if (n != c->len || memcmp(p, c->hdr, c->hlen) != 0)
		return -1;
	memcpy(&seq, p + c->hlen, 4);
	return ntohl(seq);
}

static void
ub_fill(struct ub_client *c, int i, uint32_t seq)
{
	uint32_t be = htonl(seq);

	memcpy(c->out[i] + c->hlen, &be, 4);
}

static int
ub_rate(struct ub_client *c, const struct ub_args *a, const char *proxy)
{
	struct mmsghdr sm[UB_BATCH], rm[UB_BATCH];
	struct iovec siov[UB_BATCH], riov[UB_BATCH];
	uint64_t sent = 0, echoed = 0, bad = 0, inflight = 0, last_echo;
	uint64_t start = ub_now(), end, stop_at, t;
	struct pollfd pf = { .fd = c->fd, .events = POLLIN };
	double secs;
	int n;

	end = start + (uint64_t)(a->duration * 1e9);
	stop_at = start + (uint64_t)(a->time_limit * 1e9);
	last_echo = start;
	for (int i = 0; i < UB_BATCH; i++) {
		memset(c->out[i], '.', c->len);
		memcpy(c->out[i], c->hdr, c->hlen);
		siov[i].iov_base = c->out[i];
		siov[i].iov_len = c->len;
		memset(&sm[i], 0, sizeof(sm[i]));
		sm[i].msg_hdr.msg_iov = &siov[i];
		sm[i].msg_hdr.msg_iovlen = 1;
		riov[i].iov_base = c->in[i];
		riov[i].iov_len = UB_MAX;
		memset(&rm[i], 0, sizeof(rm[i]));
		rm[i].msg_hdr.msg_iov = &riov[i];
		rm[i].msg_hdr.msg_iovlen = 1;
	}
	while (!ub_stop && (t = ub_now()) < end && t < stop_at) {
		while (inflight < a->window) {
			unsigned k = a->window - (unsigned)inflight;

			if (k > UB_BATCH)
				k = UB_BATCH;
			for (unsigned i = 0; i < k; i++)
				ub_fill(c, (int)i, (uint32_t)(sent + i));
			n = sendmmsg(c->fd, sm, k, MSG_DONTWAIT);
			if (n <= 0)
				break;
			sent += (uint64_t)n;
			inflight += (uint64_t)n;
		}
		(void)poll(&pf, 1, 5);
		n = recvmmsg(c->fd, rm, UB_BATCH, MSG_DONTWAIT, NULL);
		t = ub_now();
		for (int i = 0; i < n; i++) {
			if (ub_seq(c, c->in[i], rm[i].msg_len) < 0) {
				bad++;
				continue;
			}
			echoed++;
			if (inflight > 0)
				inflight--;
			last_echo = t;
		}
		/* A window that stopped coming back: lost; start again. */
		if (inflight > 0 && t - last_echo > UB_STALL_NS) {
			inflight = 0;
			last_echo = t;
		}
	}
	secs = (double)(ub_now() - start) / 1e9;
	/* Echoes still on their way count; bounded drain. */
	t = ub_now();
	while (ub_now() - t < 200000000ull) {
		(void)poll(&pf, 1, 20);
		n = recvmmsg(c->fd, rm, UB_BATCH, MSG_DONTWAIT, NULL);
		for (int i = 0; i < n; i++)
			if (ub_seq(c, c->in[i], rm[i].msg_len) >= 0)
				echoed++;
		if (n <= 0 && echoed >= sent)
			break;
	}
	printf("mode=udp-rate proxy=%s size=%u seconds=%.3f sent=%" PRIu64
	    " echoed=%" PRIu64 " lost=%" PRIu64 " bad=%" PRIu64 " pps=%.0f"
	    " mbps=%.1f window=%u label=%s\n", proxy, a->size, secs, sent,
	    echoed, sent > echoed ? sent - echoed : 0, bad,
	    (double)echoed / secs, (double)echoed * a->size * 8 / secs / 1e6,
	    a->window, a->label);
	fprintf(stderr, "socksbench udp: %s rate, %u bytes: %.0f datagrams/s, "
	    "%" PRIu64 " of %" PRIu64 " lost\n", a->label, a->size,
	    (double)echoed / secs, sent > echoed ? sent - echoed : 0, sent);
	return 0;
}

static int
ub_latency(struct ub_client *c, const struct ub_args *a, const char *proxy)
{
	uint64_t *rtt = calloc(a->count, sizeof(*rtt));
	uint64_t t0, stop_at = ub_now() + (uint64_t)(a->time_limit * 1e9);
	struct pollfd pf = { .fd = c->fd, .events = POLLIN };
	size_t got = 0, lost = 0;
	ssize_t n;

	if (rtt == NULL)
		ub_die("%s", "out of memory");
	memset(c->out[0], '.', c->len);
	memcpy(c->out[0], c->hdr, c->hlen);
	for (uint32_t i = 0; i < a->count && !ub_stop && ub_now() < stop_at;
	    i++) {
		ub_fill(c, 0, i);
		t0 = ub_now();
		if (send(c->fd, c->out[0], c->len, 0) == -1) {
			lost++;
			continue;
		}
		for (;;) {
			int left = (int)((t0 + 1000000000ull - ub_now()) /
			    1000000);

			if (left <= 0 || poll(&pf, 1, left) <= 0) {
				lost++;
				break;
			}
			n = recv(c->fd, c->in[0], UB_MAX, MSG_DONTWAIT);
			if (n > 0 && ub_seq(c, c->in[0], (size_t)n) == i) {
				rtt[got++] = ub_now() - t0;
				break;
			}
		}
	}
	qsort(rtt, got, sizeof(*rtt), ub_cmp);
	printf("mode=udp-latency proxy=%s size=%u count=%u echoed=%zu "
	    "lost=%zu p50_us=%.1f p99_us=%.1f p999_us=%.1f label=%s\n", proxy,
	    a->size, a->count, got, lost, ub_pct(rtt, got, 0.50),
	    ub_pct(rtt, got, 0.99), ub_pct(rtt, got, 0.999), a->label);
	free(rtt);
	return 0;
}

static int
ub_client(const struct ub_args *a)
{
	static struct ub_client c;
	struct sockaddr_storage gw, target, relay;
	socklen_t gwlen, tlen, rlen;
	struct socks5_addr dst;
	int ctl = -1, rc;
	bool socks = strcmp(a->proxy, "socks5") == 0;

	if (!socks && strcmp(a->proxy, "none") != 0)
		ub_die("--proxy %s: none or socks5", a->proxy);
	if (a->target == NULL || ub_resolve(a->target, &target, &tlen) == -1)
		ub_die("bad --target %s", a->target ? a->target : "(none)");
	if (a->size < 4 || a->size > 60000)
		ub_die("%s", "--size: 4..60000");
	c.hlen = 0;
	if (socks) {
		if (a->gw == NULL || ub_resolve(a->gw, &gw, &gwlen) == -1)
			ub_die("bad --gw %s", a->gw ? a->gw : "(none)");
		ctl = ub_associate(&gw, gwlen, &relay, &rlen);
		if (socks5_addr_from_sockaddr(&dst,
		    (const struct sockaddr *)&target) == -1)
			ub_die("%s", "bad target");
		c.hlen = socks5_write_udp_hdr_sa(c.hdr, sizeof(c.hdr),
		    (const struct sockaddr *)&target);
	} else {
		relay = target;
		rlen = tlen;
	}
	c.len = c.hlen + a->size;
	c.fd = socket(relay.ss_family, SOCK_DGRAM, 0);
	if (c.fd == -1 || connect(c.fd, (struct sockaddr *)&relay, rlen) == -1)
		ub_die("%s", "cannot set up the UDP socket");
	ub_bufs(c.fd);
	rc = strcmp(a->mode, "latency") == 0 ? ub_latency(&c, a, a->proxy) :
	    ub_rate(&c, a, a->proxy);
	close(c.fd);
	if (ctl != -1)
		close(ctl);
	return rc;
}

int
sb_udp_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "serve", required_argument, NULL, 's' },
		{ "proxy", required_argument, NULL, 'p' },
		{ "gw", required_argument, NULL, 'g' },
		{ "target", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 'z' },
		{ "duration", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'c' },
		{ "window", required_argument, NULL, 'w' },
		{ "time-limit", required_argument, NULL, 'T' },
		{ "label", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct ub_args a = {
		.proxy = "none", .label = "-", .mode = "rate", .size = 64,
		.window = 128, .count = 2000, .duration = 3, .time_limit = 30,
	};
	struct sigaction sa;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': a.serve = optarg; break;
		case 'p': a.proxy = optarg; break;
		case 'g': a.gw = optarg; break;
		case 't': a.target = optarg; break;
		case 'm': a.mode = optarg; break;
		case 'z': a.size = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': a.duration = strtod(optarg, NULL); break;
		case 'c': a.count = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': a.window = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'T': a.time_limit = strtod(optarg, NULL); break;
		case 'l': a.label = optarg; break;
		default:
			ub_die("%s", "usage: socksbench udp --serve H:P | "
			    "--proxy none|socks5 [--gw H:P] --target H:P "
			    "--mode rate|latency --size N [--duration S] "
			    "[--count N] [--window W] [--time-limit S] "
			    "[--label L]");
		}
	}
	if (a.window == 0 || a.window > 4096 || a.count == 0 ||
	    a.duration <= 0 || a.time_limit <= 0)
		ub_die("%s", "bad --window, --count, --duration or --time-limit");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ub_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (a.serve != NULL)
		return ub_serve(&a);
	if (strcmp(a.mode, "rate") != 0 && strcmp(a.mode, "latency") != 0)
		ub_die("--mode %s: rate or latency", a.mode);
	return ub_client(&a);
}
