/*
 * linkemu - constant one-way delay (and optional random loss) for the lab.
 *
 * The kernel of the dev machine has no netem, so the lab delays packets in
 * user space: an iptables rule sends every IPv4 packet of one link direction
 * to NFQUEUE number N, and this program holds each packet for --delay-ms
 * before it issues the ACCEPT verdict.  Only metadata is copied
 * (NFQNL_COPY_META): the verdict needs the packet id and nothing else.
 *
 * The delay is constant, so the release order is the arrival order and one
 * NFQNL_MSG_VERDICT_BATCH message ("every packet up to id X") releases all
 * packets that are due at once.  A timerfd armed at the deadline of the
 * oldest held packet wakes the loop; a signalfd turns SIGTERM/SIGINT into a
 * clean exit that first accepts everything still held.
 *
 * lab.sh hooks the queue into mangle PREROUTING of the namespace that
 * receives the packets, not into the sender's OUTPUT chain: a packet held
 * on the sender's side still counts against its socket's TCP small-queue
 * budget (about 1 ms of pacing rate), which throttled a 20 ms link to a few
 * Mbit/s; veth orphans the skb on its way to the peer, so held packets on
 * the receiving side cost the sender nothing, as with netem.
 *
 * The queue is fail-closed (no --queue-bypass, no FAIL_OPEN flag): while no
 * emulator is bound the link drops packets instead of silently losing its
 * delay.  lab.sh starts one emulator per delayed link direction and kills it
 * on "down".
 *
 * usage: linkemu --queue N --delay-ms D [--loss P] [--seed S]
 *                [--maxlen N] [--pidfile FILE] [--quiet]
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define EMU_DEFAULT_MAXLEN	65536
#define EMU_RCVBUF		(16 * 1024 * 1024)
/* Received datagrams per wake-up before due packets get a chance to leave. */
#define EMU_RECV_BURST		64

struct emu_pkt {
	uint32_t	 id;
	uint64_t	 due_ns;
};

struct emu {
	struct mnl_socket	*nl;
	unsigned int		 portid;
	unsigned int		 seq;
	uint16_t		 queue;
	uint64_t		 delay_ns;
	uint64_t		 loss_threshold;	/* of 2^64; 0 = no loss */
	uint64_t		 rng;
	uint32_t		 maxlen;
	bool			 quiet;

	struct emu_pkt		*ring;		/* FIFO of held packets */
	size_t			 cap;
	size_t			 head;
	size_t			 len;

	int			 tfd;
	bool			 timer_armed;
	uint64_t		 timer_due;

	char			*rbuf;
	size_t			 rbuf_len;

	uint64_t		 n_seen;
	uint64_t		 n_accepted;
	uint64_t		 n_dropped;
	uint64_t		 n_early;	/* released early: ring full */
	uint64_t		 n_enobufs;
};

static void
fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	fprintf(stderr, "linkemu: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (saved != 0)
		fprintf(stderr, ": %s", strerror(saved));
	fputc('\n', stderr);
	exit(1);
}

static void
warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
warnx_(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "linkemu: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: linkemu --queue N --delay-ms D [--loss PERCENT] "
	    "[--seed S]\n"
	    "               [--maxlen N] [--pidfile FILE] [--quiet]\n");
	exit(2);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: reproducible loss pattern for a given --seed. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static unsigned long long
parse_ull(const char *s, const char *what, unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max) {
		errno = 0;
		fatal("bad %s: '%s'", what, s);
	}
	return v;
}

/* Delay in milliseconds, fractions allowed ("12.5"). */
static uint64_t
parse_ms(const char *s)
{
	double v;
	char *end;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) ||
	    v > 60000) {
		errno = 0;
		fatal("bad --delay-ms: '%s' (0..60000)", s);
	}
	return (uint64_t)(v * 1e6 + 0.5);
}

static uint64_t
parse_loss(const char *s)
{
	double v;
	char *end;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 100) {
		errno = 0;
		fatal("bad --loss: '%s' (percent, 0..100)", s);
	}
	if (v >= 100)
		return UINT64_MAX;
	/* 2^64 * v / 100 */
	return (uint64_t)(v / 100.0 * 18446744073709551616.0);
}

/*
 * Send one request and, when it asks for an ACK, wait for it.  Packet
 * messages that arrive meanwhile are ignored; a later batch verdict covers
 * them because their ids are lower.
 */
static int
nl_request(struct emu *e, struct nlmsghdr *nlh)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n;
	int rc;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = ++e->seq;
	if (mnl_socket_sendto(e->nl, nlh, nlh->nlmsg_len) == -1)
		return -1;
	for (;;) {
		n = mnl_socket_recvfrom(e->nl, buf, sizeof(buf));
		if (n == -1) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			return -1;
		}
		rc = mnl_cb_run(buf, (size_t)n, e->seq, e->portid, NULL,
		    NULL);
		if (rc == -1) {
			/* Out-of-sequence packet messages: keep waiting. */
			if (errno == EPROTO)
				continue;
			return -1;
		}
		if (rc == MNL_CB_STOP)
			return 0;
	}
}

/* Bind the queue, metadata-only copies, queue length, GSO flag. */
static void
queue_bind(struct emu *e)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	uint32_t flags;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, e->queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	if (nl_request(e, nlh) == -1) {
		/* The kernel says EPERM when another socket holds it. */
		if (errno == EPERM || errno == EBUSY)
			fatal("cannot bind NFQUEUE %u (another program holds "
			    "it in this namespace?)", e->queue);
		fatal("cannot bind NFQUEUE %u", e->queue);
	}

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, e->queue);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_META, 0);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, e->maxlen);
	/*
	 * Without loss, take GSO packets whole: one verdict per super-packet.
	 * With loss, let the kernel segment them so a loss is one segment.
	 */
	flags = e->loss_threshold == 0 ? NFQA_CFG_F_GSO : 0;
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
	if (nl_request(e, nlh) == -1)
		fatal("cannot configure NFQUEUE %u", e->queue);
}

static void
queue_unbind(struct emu *e)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, e->queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
	if (nl_request(e, nlh) == -1)
		warnx_("unbind queue %u: %s", e->queue, strerror(errno));
}

/* One verdict message: single packet, or every packet up to id (batch). */
static void
send_verdict(struct emu *e, uint32_t id, int verdict, bool batch)
{
	char buf[128];
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(buf,
	    batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, e->queue);
	nfq_nlmsg_verdict_put(nlh, (int)id, verdict);
	while (mnl_socket_sendto(e->nl, nlh, nlh->nlmsg_len) == -1) {
		if (errno == EINTR)
			continue;
		/* The packets stay queued; the next batch verdict covers them. */
		warnx_("verdict for id %" PRIu32 ": %s", id, strerror(errno));
		return;
	}
}

/* Release every held packet due at or before t with one batch verdict. */
static void
release_due(struct emu *e, uint64_t t)
{
	size_t n = 0;
	uint32_t last = 0;

	while (e->len > 0 && e->ring[e->head].due_ns <= t) {
		last = e->ring[e->head].id;
		e->head = (e->head + 1) % e->cap;
		e->len--;
		n++;
	}
	if (n == 0)
		return;
	send_verdict(e, last, NF_ACCEPT, true);
	e->n_accepted += n;
}

static void
release_all(struct emu *e)
{
	release_due(e, UINT64_MAX);
}

static void
arm_timer(struct emu *e)
{
	struct itimerspec its;
	uint64_t due;

	if (e->len == 0) {
		if (!e->timer_armed)
			return;
		memset(&its, 0, sizeof(its));
		e->timer_armed = false;
	} else {
		due = e->ring[e->head].due_ns;
		if (e->timer_armed && e->timer_due == due)
			return;
		memset(&its, 0, sizeof(its));
		its.it_value.tv_sec = (time_t)(due / 1000000000u);
		its.it_value.tv_nsec = (long)(due % 1000000000u);
		/* A zero it_value would disarm the timer. */
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
		e->timer_armed = true;
		e->timer_due = due;
	}
	if (timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
		fatal("timerfd_settime");
}

struct recv_ctx {
	struct emu	*e;
	uint64_t	 now;
};

static int
packet_cb(const struct nlmsghdr *nlh, void *data)
{
	struct recv_ctx *rc = data;
	struct emu *e = rc->e;
	struct nlattr *attr[NFQA_MAX + 1];
	struct nfqnl_msg_packet_hdr *ph;
	struct emu_pkt *p;
	uint32_t id;

	memset(attr, 0, sizeof(attr));
	if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL) {
		warnx_("malformed queue message ignored");
		return MNL_CB_OK;
	}
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	e->n_seen++;

	if (e->loss_threshold != 0 &&
	    (e->loss_threshold == UINT64_MAX ||
	    rng_next(&e->rng) < e->loss_threshold)) {
		send_verdict(e, id, NF_DROP, false);
		e->n_dropped++;
		return MNL_CB_OK;
	}
	if (e->delay_ns == 0) {
		send_verdict(e, id, NF_ACCEPT, true);
		e->n_accepted++;
		return MNL_CB_OK;
	}
	if (e->len == e->cap) {
		/* Cannot happen while cap >= kernel maxlen; stay safe. */
		e->n_early++;
		release_due(e, e->ring[e->head].due_ns);
	}
	p = &e->ring[(e->head + e->len) % e->cap];
	p->id = id;
	p->due_ns = rc->now + e->delay_ns;
	e->len++;
	return MNL_CB_OK;
}

/* Drain the socket (bounded), queueing what arrives. */
static void
receive(struct emu *e)
{
	struct recv_ctx rc;
	ssize_t n;
	int i;

	rc.e = e;
	for (i = 0; i < EMU_RECV_BURST; i++) {
		n = recv(mnl_socket_get_fd(e->nl), e->rbuf, e->rbuf_len,
		    MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/*
				 * Notifications were lost; those packets are
				 * still queued and leave with a later batch.
				 */
				if (e->n_enobufs++ == 0)
					warnx_("queue %u: socket buffer "
					    "overrun (ENOBUFS)", e->queue);
				continue;
			}
			fatal("recv");
		}
		rc.now = now_ns();
		if (mnl_cb_run(e->rbuf, (size_t)n, 0, e->portid, packet_cb,
		    &rc) == -1) {
			/* An error reply to a verdict (e.g. ENOENT after a
			 * device went down flushed the queue). */
			if (errno != ENOENT)
				warnx_("queue %u: netlink error: %s",
				    e->queue, strerror(errno));
		}
	}
}

static void
write_pidfile(const char *path)
{
	char tmp[PATH_MAX];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		fatal("pidfile path too long");
	f = fopen(tmp, "w");
	if (f == NULL)
		fatal("open %s", tmp);
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) == EOF)
		fatal("write %s", tmp);
	if (rename(tmp, path) == -1)
		fatal("rename %s", path);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queue",	required_argument, NULL, 'q' },
		{ "delay-ms",	required_argument, NULL, 'd' },
		{ "loss",	required_argument, NULL, 'l' },
		{ "seed",	required_argument, NULL, 's' },
		{ "maxlen",	required_argument, NULL, 'm' },
		{ "pidfile",	required_argument, NULL, 'p' },
		{ "quiet",	no_argument,	   NULL, 'Q' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct emu e;
	struct pollfd pfd[3];
	struct signalfd_siginfo si;
	sigset_t mask;
	const char *pidfile = NULL, *delay_arg = NULL, *loss_arg = "0";
	bool have_queue = false, stop = false;
	uint64_t expirations;
	int c, rcvbuf, sfd;

	memset(&e, 0, sizeof(e));
	e.maxlen = EMU_DEFAULT_MAXLEN;
	e.rng = 0x9E3779B97F4A7C15ULL;
	while ((c = getopt_long(argc, argv, "q:d:l:s:m:p:Qh", opts,
	    NULL)) != -1) {
		switch (c) {
		case 'q':
			e.queue = (uint16_t)parse_ull(optarg, "--queue",
			    65535);
			have_queue = true;
			break;
		case 'd':
			delay_arg = optarg;
			break;
		case 'l':
			loss_arg = optarg;
			break;
		case 's':
			/* xorshift must not start at 0. */
			e.rng = parse_ull(optarg, "--seed", ULLONG_MAX) ^
			    0x9E3779B97F4A7C15ULL;
			if (e.rng == 0)
				e.rng = 1;
			break;
		case 'm':
			e.maxlen = (uint32_t)parse_ull(optarg, "--maxlen",
			    1u << 22);
			if (e.maxlen == 0)
				fatal("--maxlen must be > 0");
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'Q':
			e.quiet = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !have_queue || delay_arg == NULL)
		usage();
	e.delay_ns = parse_ms(delay_arg);
	e.loss_threshold = parse_loss(loss_arg);

	e.cap = e.maxlen;
	e.ring = calloc(e.cap, sizeof(*e.ring));
	e.rbuf_len = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
	e.rbuf = malloc(e.rbuf_len);
	if (e.ring == NULL || e.rbuf == NULL)
		fatal("out of memory");

	/* Signals become readable events; nothing runs in handler context. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1)
		fatal("sigprocmask");
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd == -1)
		fatal("signalfd");
	e.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (e.tfd == -1)
		fatal("timerfd_create");

	e.nl = mnl_socket_open(NETLINK_NETFILTER);
	if (e.nl == NULL)
		fatal("netlink socket");
	if (mnl_socket_bind(e.nl, 0, MNL_SOCKET_AUTOPID) == -1)
		fatal("netlink bind");
	e.portid = mnl_socket_get_portid(e.nl);
	rcvbuf = EMU_RCVBUF;
	if (setsockopt(mnl_socket_get_fd(e.nl), SOL_SOCKET, SO_RCVBUFFORCE,
	    &rcvbuf, sizeof(rcvbuf)) == -1 &&
	    setsockopt(mnl_socket_get_fd(e.nl), SOL_SOCKET, SO_RCVBUF,
	    &rcvbuf, sizeof(rcvbuf)) == -1)
		warnx_("cannot enlarge receive buffer: %s", strerror(errno));
	queue_bind(&e);
	if (pidfile != NULL)
		write_pidfile(pidfile);
	if (!e.quiet)
		fprintf(stderr, "linkemu: queue %u bound, delay %.3f ms, "
		    "loss %s%%, maxlen %" PRIu32 "\n", e.queue,
		    (double)e.delay_ns / 1e6, loss_arg, e.maxlen);

	pfd[0].fd = mnl_socket_get_fd(e.nl);
	pfd[0].events = POLLIN;
	pfd[1].fd = e.tfd;
	pfd[1].events = POLLIN;
	pfd[2].fd = sfd;
	pfd[2].events = POLLIN;
	while (!stop) {
		if (poll(pfd, 3, -1) == -1) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		if (pfd[2].revents & POLLIN) {
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo != SIGHUP)
					stop = true;
			}
		}
		if (pfd[1].revents & POLLIN) {
			/* Only clears readiness; the deadline check is below. */
			if (read(e.tfd, &expirations, sizeof(expirations)) ==
			    -1 && errno != EAGAIN)
				fatal("timerfd read");
			e.timer_armed = false;
		}
		if (pfd[0].revents & (POLLIN | POLLERR))
			receive(&e);
		if (pfd[0].revents & POLLNVAL)
			fatal("netlink socket closed");
		release_due(&e, now_ns());
		arm_timer(&e);
	}

	/* Accept what is held so a stopping emulator loses nothing. */
	release_all(&e);
	queue_unbind(&e);
	mnl_socket_close(e.nl);
	if (pidfile != NULL)
		(void)unlink(pidfile);
	if (!e.quiet)
		fprintf(stderr, "linkemu: queue %u done: %" PRIu64 " seen, %"
		    PRIu64 " accepted, %" PRIu64 " dropped, %" PRIu64
		    " released early, %" PRIu64 " ENOBUFS\n", e.queue,
		    e.n_seen, e.n_accepted, e.n_dropped, e.n_early,
		    e.n_enobufs);
	free(e.ring);
	free(e.rbuf);
	return 0;
}
