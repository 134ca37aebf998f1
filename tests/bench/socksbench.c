/*
 * socksbench - libev load generator and target server for mpgw benchmarks.
 *
 * One binary is both ends, so every server (direct, mpgw, Dante, microsocks)
 * is measured with the same client against the same target:
 *
 *   socksbench --serve HOST:PORT [--mptcp] [--tfo] [-j N]
 *   socksbench --proxy none|socks5|convert [--gw HOST:PORT] --target HOST:PORT
 *       [--user U --pass P] [--key BASE64] [--silent] [--mptcp] [--no-tfo]
 *       [--tfo-no-cookie]
 *       [-j N] [--timeout S] [--time-limit S] [--label L] --mode MODE ...
 *
 *   --mode throughput --streams N --bytes B --dir up|down
 *   --mode connrate   --concurrency C (--duration S | --count N)
 *                     [--resp-bytes R]
 *   --mode hold       --conns N [--concurrency C] [--hold-secs S]
 *   --mode ttfb       --count N [--resp-bytes R]
 *
 *   socksbench udp ...   UDP ASSOCIATE datagram rate and latency, and a
 *                        UDP echo target (udpbench.c)
 *
 * Output: one line of key=value pairs on stdout (mode proxy conns bytes
 * seconds mbps cps p50_us p99_us p999_us errors, then mode extras), and
 * human-readable text on stderr. In hold mode the line is printed as soon
 * as every connection has been tried (held= says how many work), then the
 * connections are kept open until SIGTERM/SIGINT, --hold-secs, or EOF on
 * stdin when stdin is a pipe or a terminal.
 *
 * Target protocol (the --serve side). The client speaks first with an
 * 8-byte header:
 *
 *   0      1                                                   8
 *   +------+---------------------------------------------------+
 *   |  OP  |  LEN: unsigned 56-bit integer, network byte order |
 *   +------+---------------------------------------------------+
 *
 *   'U' upload:   LEN bytes follow from the client; once all have arrived
 *                 the server answers the 8 bytes 'u' LEN.
 *   'D' download: the server sends LEN bytes.
 *   'P' ping:     8 <= LEN <= 65536; the server answers LEN bytes at once:
 *                 'p' LEN, then LEN - 8 filler bytes.
 *   'Q' quit:     as 'P' (the answer starts with 'q'), then the server
 *                 closes the connection.
 *
 * After its answer to U, D or P the server waits for the next header on the
 * same connection; EOF there closes it. connrate and ttfb use 'Q' and wait
 * for the server's FIN, so TIME-WAIT stays on listening ports instead of
 * eating the ephemeral ports that the client and the proxies' upstream
 * sockets share on loopback (Dante binds before it connects and fails once
 * they run out); hold uses 'P'. The client must not send the next header
 * before it has read the whole answer; any other OP, a bad LEN, or bytes
 * arriving while the server is answering close the connection. Filler and
 * upload bytes are not checked (they cost CPU the relay should get).
 *
 * Convert (RFC 8803, DESIGN.md section 4): the Convert message (Connect to
 * --target, Silent with --silent, Auth last when --key is given) goes in the
 * SYN with sendto(MSG_FASTOPEN) on a non-blocking socket (with
 * --tfo-no-cookie, TCP_FASTOPEN_NO_COOKIE: for a listener with
 * convert.tfo_no_cookie; else the kernel fetches a cookie on the first
 * connection and uses it after); in every mode but throughput the
 * 8-byte application header rides in the SYN behind it. Without --silent
 * the Convert reply (header + Extended TCP Header) is read and checked
 * before the application answer. syn_data= counts connections whose SYN
 * data the peer acknowledged (TCP_INFO TCPI_OPT_SYN_DATA).
 *
 * Every load loop is bounded: per-connection --timeout (default 10 s),
 * a whole-run --time-limit, and counts/durations given on the command line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/convert.h"
#include "proto/socks5.h"
#include "tests/bench/udpbench.h"

#ifndef TCPI_OPT_SYN_DATA
#define TCPI_OPT_SYN_DATA 32
#endif

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

#define HDR_LEN 8
#define LEN_MAX ((UINT64_C(1) << 56) - 1)
#define PING_MIN 8
#define PING_MAX 65536
#define PAT_LEN (256 * 1024)
#define RBUF_LEN (256 * 1024)
#define READS_PER_EVENT 16
#define ACCEPTS_PER_EVENT 64
#define LAT_MAX_PER_WORKER (4u << 20)
#define WORKERS_MAX 64
#define CL_OUT_MAX (CONV_MSG_MAX + HDR_LEN + 4)
#define CL_IN_MAX (CONV_MSG_MAX + 4)
#define BACKOFF_S 0.001

enum proxy_kind {
	PROXY_NONE = 0,
	PROXY_SOCKS5,
	PROXY_CONVERT,
};

enum bench_mode {
	MODE_SERVE = 0,
	MODE_THROUGHPUT,
	MODE_CONNRATE,
	MODE_HOLD,
	MODE_TTFB,
};

enum err_kind {
	ERR_CONNECT = 0,
	ERR_SOCKS,
	ERR_CONVERT,
	ERR_APP,
	ERR_IO,
	ERR_EOF,
	ERR_TIMEOUT,
	ERR_LIMIT,
	ERR_KINDS,
};

static const char *const err_names[ERR_KINDS] = {
	[ERR_CONNECT] = "connect",
	[ERR_SOCKS] = "socks",
	[ERR_CONVERT] = "convert",
	[ERR_APP] = "app",
	[ERR_IO] = "io",
	[ERR_EOF] = "eof",
	[ERR_TIMEOUT] = "timeout",
	[ERR_LIMIT] = "time-limit",
};

enum cl_state {
	CL_FREE = 0,		/* slot unused */
	CL_CONNECTING,		/* waiting for connect() to finish */
	CL_GREET,		/* SOCKS5 greeting sent, method expected */
	CL_AUTH,		/* RFC 1929 sent, status expected */
	CL_REQUEST,		/* CONNECT sent, reply expected */
	CL_CONV_REPLY,		/* Convert reply expected */
	CL_READY,		/* relayed, waiting for the go (throughput) */
	CL_APP,			/* application request/answer */
	CL_DRAIN,		/* whole answer read, waiting for EOF */
	CL_HELD,		/* hold mode: answered one ping, idle */
	CL_BACKOFF,		/* failed; slot reused after BACKOFF_S */
};

enum srv_state {
	SRV_HDR = 0,
	SRV_UPLOAD,
	SRV_SEND,
};

/* Command line, filled once by main and read-only afterwards. */
struct opts {
	enum bench_mode mode;
	enum proxy_kind proxy;
	const char *serve;
	const char *gw;
	const char *target;
	const char *user;
	const char *pass;
	const char *label;
	bool have_key;
	uint8_t key[CONV_KEY_LEN];
	bool silent;
	bool mptcp;
	bool tfo;		/* serve: TCP_FASTOPEN on the listener */
	bool no_tfo;		/* client: connect, then send Convert */
	bool tfo_no_cookie;	/* client: SYN data without a cookie */
	unsigned threads;
	unsigned streams;
	uint64_t bytes;
	bool up;
	unsigned concurrency;
	double duration;
	uint64_t count;
	unsigned conns;
	double hold_secs;
	unsigned resp_bytes;
	double timeout;
	double time_limit;
	/* resolved */
	struct sockaddr_storage gw_sa;
	socklen_t gw_len;
	struct sockaddr_storage tgt_sa;	/* numeric/resolved --target */
	socklen_t tgt_len;
	bool tgt_is_name;
	struct socks5_addr tgt_s5;
	char tgt_name[256];
	uint16_t tgt_port;
};

struct stats {
	uint64_t ok;
	uint64_t errors;
	uint64_t err_kind[ERR_KINDS];
	uint64_t bytes;
	uint64_t syn_data;
	uint64_t tfo_fallback;
	_Atomic uint64_t held;
	_Atomic uint64_t dropped;
	uint64_t *lat;		/* ns */
	size_t nlat;
	size_t cap_lat;
	char first_err[160];
};

struct worker;

/* One client connection (a slot that is reused in connrate/ttfb). */
struct cl_conn {
	ev_io io;
	ev_timer timer;
	struct worker *wk;
	int fd;
	int events;
	enum cl_state st;
	bool tfo;		/* data went to sendto(MSG_FASTOPEN) */
	bool app_in_syn;	/* the application header was queued with it */
	bool started;		/* throughput: transfer begun */
	bool want_eof;		/* 'Q': the server closes after it */
	uint64_t t_start;	/* ns: before socket() */
	uint64_t t_first;	/* ns: first application answer byte */
	uint8_t out[CL_OUT_MAX];
	size_t out_len;
	size_t out_off;
	uint64_t tx_left;	/* filler bytes after out */
	uint8_t in[CL_IN_MAX];
	size_t in_len;
	uint8_t expect[HDR_LEN];	/* first answer bytes to check */
	size_t expect_len;
	size_t expect_off;
	uint64_t rx_left;	/* answer bytes still due */
	uint64_t rx_total;
};

/* One thread with its own loop: client slots or a listening socket. */
struct worker {
	struct ev_loop *loop;
	pthread_t thr;
	unsigned id;
	ev_async stop_w;
	ev_timer limit_w;
	ev_idle go_w;
	struct stats st;
	uint8_t *rbuf;
	/* client */
	struct cl_conn *conns;
	size_t nconns;
	size_t *free_idx;
	size_t nfree;
	size_t max_inflight;
	size_t inflight;
	uint64_t to_start;	/* count-bounded modes */
	uint64_t deadline;	/* ns, duration-bounded connrate */
	bool by_time;
	bool stopping;
	bool ready_sent;
	size_t nready;		/* throughput */
	size_t nfinished;
	uint64_t t0;
	uint64_t t1;
	uint32_t nonce_hi;
	uint64_t nonce_ctr;
	/* server */
	int lfd;
	ev_io accept_w;
	ev_timer accept_backoff_w;
	uint64_t accepted;
	uint64_t active;
};

/* One server-side connection of --serve. */
struct srv_conn {
	ev_io io;
	struct worker *wk;
	int fd;
	int events;
	enum srv_state st;
	uint8_t hdr[HDR_LEN];
	size_t hdr_got;
	uint64_t len;
	uint64_t left;
	uint8_t out[HDR_LEN];
	size_t out_len;
	size_t out_off;
	bool quit;		/* close once the answer is sent */
};

static struct opts g = {
	.threads = 1,
	.streams = 1,
	.bytes = UINT64_C(1) << 30,
	.concurrency = 0,
	.conns = 1000,
	.resp_bytes = 64,
	.timeout = 10,
	.time_limit = 0,
};
static uint8_t pattern[PAT_LEN];
static struct worker workers[WORKERS_MAX];
static int done_efd = -1;	/* workers post 1 here when done (or ready) */
static pthread_barrier_t go_barrier;

static void cl_pump(struct cl_conn *c);
static void cl_open(struct cl_conn *c);
static void wk_fill(struct worker *wk);
static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Monotonic clock in nanoseconds. */
static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints a message to stderr and exits with status 2 (start-up only). */
static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("socksbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Writes op and a 56-bit length as the 8-byte target header. */
static void
put_hdr(uint8_t out[HDR_LEN], uint8_t op, uint64_t len)
{
	int i;

	out[0] = op;
	for (i = 7; i >= 1; i--) {
		out[i] = (uint8_t)(len & 0xff);
		len >>= 8;
	}
}

/* Reads the 56-bit length of an 8-byte target header. */
static uint64_t
get_hdr_len(const uint8_t in[HDR_LEN])
{
	uint64_t v = 0;
	int i;

	for (i = 1; i < HDR_LEN; i++)
		v = (v << 8) | in[i];
	return v;
}

/* Tells the main thread one worker is done (or, in hold mode, ready). */
static void
post_done(void)
{
	uint64_t one = 1;

	while (write(done_efd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

/* Resolves "host:port" to the first TCP address; returns 0 or -1. */
static int
resolve(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	char port[8];
	uint16_t p;
	struct addrinfo hints, *res;

	if (socks5_parse_hostport(s, host, sizeof(host), &p) == -1)
		return -1;
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Parses "123", "64K", "10M", "2G" (binary multiples). Returns 0 or -1. */
static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mul = UINT64_C(1) << 10;
		break;
	case 'm': case 'M':
		mul = UINT64_C(1) << 20;
		break;
	case 'g': case 'G':
		mul = UINT64_C(1) << 30;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > LEN_MAX / mul)
		return -1;
	*out = (uint64_t)v * mul;
	return 0;
}

/* Parses a non-negative number of seconds; exits on a bad value. */
static double
parse_secs(const char *name, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= 0) || v > 1e6)
		die("bad %s '%s'", name, s);
	return v;
}

/* Parses an unsigned number in [lo, hi]; exits on a bad value. */
static unsigned long
parse_num(const char *name, const char *s, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		die("bad %s '%s' (%lu..%lu)", name, s, lo, hi);
	return v;
}

/* Decodes a base64 Convert key into g.key; exits unless it is 32 bytes. */
static void
parse_key(const char *b64)
{
	uint8_t buf[96];
	size_t n = strlen(b64), pad = 0;
	int r;

	if (n == 0 || n % 4 != 0 || n > 64)
		die("--key: expected base64 of %d bytes", CONV_KEY_LEN);
	if (b64[n - 1] == '=')
		pad++;
	if (b64[n - 2] == '=')
		pad++;
	r = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
	if (r == -1 || (size_t)r - pad != CONV_KEY_LEN)
		die("--key: expected base64 of %d bytes", CONV_KEY_LEN);
	memcpy(g.key, buf, CONV_KEY_LEN);
	g.have_key = true;
	OPENSSL_cleanse(buf, sizeof(buf));
}

/* Raises RLIMIT_NOFILE's soft limit to the hard limit. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* --- statistics ------------------------------------------------------- */

/* Appends one latency sample (ns); samples beyond the cap are dropped. */
static void
stats_lat(struct stats *s, uint64_t ns)
{
	if (s->nlat == s->cap_lat) {
		size_t cap = s->cap_lat ? s->cap_lat * 2 : 4096;
		uint64_t *p;

		if (cap > LAT_MAX_PER_WORKER)
			cap = LAT_MAX_PER_WORKER;
		if (cap == s->cap_lat)
			return;
		p = realloc(s->lat, cap * sizeof(*p));
		if (p == NULL)
			return;
		s->lat = p;
		s->cap_lat = cap;
	}
	s->lat[s->nlat++] = ns;
}

/* qsort comparator for uint64_t. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q (0..1) of sorted v[0..n), in microseconds. */
static double
pct_us(const uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(q * (double)n + 0.999999);
	if (i == 0)
		i = 1;
	if (i > n)
		i = n;
	return (double)v[i - 1] / 1000.0;
}

/* --- client connections ----------------------------------------------- */

/* Switches the connection's watcher to events ev (EV_READ or EV_WRITE). */
static void
cl_want(struct cl_conn *c, int ev)
{
	if (c->events == ev && ev_is_active(&c->io))
		return;
	ev_io_stop(c->wk->loop, &c->io);
	ev_io_set(&c->io, c->fd, ev);
	ev_io_start(c->wk->loop, &c->io);
	c->events = ev;
}

/* Closes the connection's socket and stops its watchers. */
static void
cl_close(struct cl_conn *c)
{
	ev_io_stop(c->wk->loop, &c->io);
	ev_timer_stop(c->wk->loop, &c->timer);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->events = 0;
}

/* Returns a slot to its worker's free list. */
static void
cl_release(struct cl_conn *c)
{
	struct worker *wk = c->wk;

	c->st = CL_FREE;
	wk->free_idx[wk->nfree++] = (size_t)(c - wk->conns);
}

/* Whether the worker may start another connection now. */
static bool
wk_may_start(struct worker *wk)
{
	if (wk->stopping)
		return false;
	if (wk->by_time)
		return now_ns() < wk->deadline;
	return wk->to_start > 0;
}

/* Called when a throughput stream ended (done or failed). */
static void
wk_stream_finished(struct worker *wk)
{
	wk->nfinished++;
	if (wk->nfinished == wk->nconns) {
		wk->t1 = now_ns();
		ev_break(wk->loop, EVBREAK_ALL);
	}
}

/* Counts one readied or failed stream; all of them schedule the go. */
static void
wk_stream_ready(struct worker *wk)
{
	wk->nready++;
	if (wk->nready == wk->nconns)
		ev_idle_start(wk->loop, &wk->go_w);
}

/*
 * Checks whether a count-bounded worker has nothing left in flight; then
 * hold mode reports ready and the other modes stop their loop.
 */
static void
wk_check_end(struct worker *wk)
{
	if (wk_may_start(wk) || wk->inflight > 0)
		return;
	if (g.mode == MODE_HOLD) {
		if (!wk->ready_sent) {
			wk->ready_sent = true;
			wk->t1 = now_ns();
			post_done();
		}
		return;
	}
	ev_break(wk->loop, EVBREAK_ALL);
}

/*
 * Records a failure of kind k (errno err, or 0) with a message, closes the
 * socket and lets the mode decide what happens to the slot.
 */
static void
cl_fail(struct cl_conn *c, enum err_kind k, int err, const char *what)
{
	struct worker *wk = c->wk;
	enum cl_state was = c->st;

	if (was == CL_HELD) {
		atomic_fetch_sub(&wk->st.held, 1);
		atomic_fetch_add(&wk->st.dropped, 1);
	}
	wk->st.errors++;
	wk->st.err_kind[k]++;
	if (wk->st.first_err[0] == '\0')
		snprintf(wk->st.first_err, sizeof(wk->st.first_err),
		    "%s: %s%s%s", err_names[k], what, err ? ": " : "",
		    err ? strerror(err) : "");
	cl_close(c);
	switch (g.mode) {
	case MODE_THROUGHPUT:
		c->st = CL_FREE;
		if (c->started)
			wk_stream_finished(wk);
		else if (was != CL_READY)
			wk_stream_ready(wk);	/* READY ones counted */
		return;
	case MODE_HOLD:
		if (was == CL_HELD) {
			cl_release(c);
			return;
		}
		break;
	case MODE_CONNRATE:
	case MODE_TTFB:
		break;
	case MODE_SERVE:
		return;
	}
	/* Keep the slot busy a moment so an instant error cannot spin. */
	c->st = CL_BACKOFF;
	ev_timer_set(&c->timer, BACKOFF_S, 0);
	ev_timer_start(wk->loop, &c->timer);
}

/* Sets what the application answer must look like for request op/len. */
static void
cl_set_expect(struct cl_conn *c, uint8_t op, uint64_t len)
{
	c->expect_off = 0;
	c->rx_total = 0;
	switch (op) {
	case 'U':
		put_hdr(c->expect, 'u', len);
		c->expect_len = HDR_LEN;
		c->rx_left = HDR_LEN;
		break;
	case 'D':
		c->expect_len = 0;
		c->rx_left = len;
		break;
	default:
		put_hdr(c->expect, op == 'Q' ? 'q' : 'p', len);
		c->expect_len = HDR_LEN;
		c->rx_left = len;
		break;
	}
	c->want_eof = op == 'Q';
}

/*
 * Queues the application request of the current mode at the end of out
 * (after a Convert message, if any) and sets the expected answer.
 */
static void
cl_queue_app(struct cl_conn *c)
{
	uint8_t op = 'P';
	uint64_t len = PING_MIN;

	switch (g.mode) {
	case MODE_THROUGHPUT:
		op = g.up ? 'U' : 'D';
		len = g.bytes;
		break;
	case MODE_HOLD:
		op = 'P';
		len = PING_MIN;
		break;
	case MODE_CONNRATE:
	case MODE_TTFB:
	case MODE_SERVE:
		op = 'Q';
		len = g.resp_bytes;
		break;
	}
	put_hdr(c->out + c->out_len, op, len);
	c->out_len += HDR_LEN;
	c->tx_left = op == 'U' ? len : 0;
	cl_set_expect(c, op, len);
	c->t_first = 0;
}

/* Starts the application exchange on a relayed connection. */
static void
cl_app_start(struct cl_conn *c)
{
	c->out_len = c->out_off = 0;
	cl_queue_app(c);
	c->st = CL_APP;
}

/*
 * The connection is relayed end to end (SOCKS reply or Convert reply seen,
 * or direct). Throughput streams wait for the go; others start at once.
 */
static void
cl_relayed(struct cl_conn *c)
{
	if (g.mode == MODE_THROUGHPUT) {
		ev_timer_stop(c->wk->loop, &c->timer);
		c->st = CL_READY;
		c->in_len = 0;
		wk_stream_ready(c->wk);
		return;
	}
	cl_app_start(c);
}

/*
 * The whole application answer has arrived: record it and move the slot on.
 * The connection is closed or idle afterwards; callers stop pumping.
 */
static void
cl_app_done(struct cl_conn *c)
{
	struct worker *wk = c->wk;
	uint64_t t = now_ns();

	wk->st.ok++;
	switch (g.mode) {
	case MODE_THROUGHPUT:
		wk->st.bytes += g.bytes;
		cl_close(c);
		c->st = CL_FREE;
		wk_stream_finished(wk);
		return;
	case MODE_HOLD:
		ev_timer_stop(wk->loop, &c->timer);
		c->st = CL_HELD;
		atomic_fetch_add(&wk->st.held, 1);
		wk->inflight--;
		cl_want(c, EV_READ);
		wk_fill(wk);
		wk_check_end(wk);
		return;
	case MODE_TTFB:
		stats_lat(&wk->st, c->t_first - c->t_start);
		break;
	case MODE_CONNRATE:
		stats_lat(&wk->st, t - c->t_start);
		break;
	case MODE_SERVE:
		break;
	}
	wk->st.bytes += c->rx_total;
	cl_close(c);
	if (wk_may_start(wk)) {
		if (!wk->by_time)
			wk->to_start--;
		cl_open(c);
		return;
	}
	wk->inflight--;
	cl_release(c);
	wk_check_end(wk);
}

/*
 * Consumes n application answer bytes. Returns true if the caller may keep
 * pumping, false if the connection finished or failed.
 */
static bool
cl_app_input(struct cl_conn *c, const uint8_t *p, size_t n)
{
	if (c->t_first == 0)
		c->t_first = now_ns();
	if (n > c->rx_left) {
		cl_fail(c, ERR_APP, 0, "more answer bytes than asked for");
		return false;
	}
	if (c->expect_off < c->expect_len) {
		size_t k = c->expect_len - c->expect_off;

		if (k > n)
			k = n;
		if (memcmp(c->expect + c->expect_off, p, k) != 0) {
			cl_fail(c, ERR_APP, 0, "wrong answer header");
			return false;
		}
		c->expect_off += k;
	}
	c->rx_left -= n;
	c->rx_total += n;
	if (c->rx_left == 0) {
		if (c->want_eof) {
			c->st = CL_DRAIN;
			return true;
		}
		cl_app_done(c);
		return false;
	}
	return true;
}

/* Drops the first used bytes of the handshake input buffer. */
static void
cl_consume(struct cl_conn *c, size_t used)
{
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
}

/*
 * Parses handshake input in c->in for the current state. Returns true if
 * the caller may keep pumping, false if the connection finished or failed.
 */
static bool
cl_handshake_input(struct cl_conn *c)
{
	uint8_t v, rep;
	size_t used;
	struct socks5_addr bnd;
	struct conv_reply r;
	char msg[96];

	for (;;) {
		switch (c->st) {
		case CL_GREET:
			switch (socks5_parse_method(c->in, c->in_len, &v,
			    &used)) {
			case SOCKS5_AGAIN:
				return true;
			case SOCKS5_BAD:
				cl_fail(c, ERR_SOCKS, 0, "bad method reply");
				return false;
			case SOCKS5_OK:
				break;
			}
			cl_consume(c, used);
			if (v == SOCKS5_METHOD_USERPASS && g.user != NULL) {
				c->out_len = socks5_write_userpass(c->out,
				    sizeof(c->out), g.user, g.pass);
				c->st = CL_AUTH;
			} else if (v == SOCKS5_METHOD_NONE && g.user == NULL) {
				c->out_len = socks5_write_request(c->out,
				    sizeof(c->out), SOCKS5_CMD_CONNECT,
				    &g.tgt_s5);
				c->st = CL_REQUEST;
			} else {
				snprintf(msg, sizeof(msg),
				    "server chose method 0x%02x", v);
				cl_fail(c, ERR_SOCKS, 0, msg);
				return false;
			}
			c->out_off = 0;
			return true;
		case CL_AUTH:
			switch (socks5_parse_userpass_status(c->in, c->in_len,
			    &v, &used)) {
			case SOCKS5_AGAIN:
				return true;
			case SOCKS5_BAD:
				cl_fail(c, ERR_SOCKS, 0, "bad auth reply");
				return false;
			case SOCKS5_OK:
				break;
			}
			cl_consume(c, used);
			if (v != 0) {
				cl_fail(c, ERR_SOCKS, 0, "login refused");
				return false;
			}
			c->out_len = socks5_write_request(c->out,
			    sizeof(c->out), SOCKS5_CMD_CONNECT, &g.tgt_s5);
			c->out_off = 0;
			c->st = CL_REQUEST;
			return true;
		case CL_REQUEST:
			switch (socks5_parse_reply(c->in, c->in_len, &rep,
			    &bnd, &used)) {
			case SOCKS5_AGAIN:
				return true;
			case SOCKS5_BAD:
				cl_fail(c, ERR_SOCKS, 0, "bad CONNECT reply");
				return false;
			case SOCKS5_OK:
				break;
			}
			cl_consume(c, used);
			if (rep != SOCKS5_REP_SUCCEEDED) {
				snprintf(msg, sizeof(msg), "CONNECT: %s",
				    socks5_rep_str(rep));
				cl_fail(c, ERR_SOCKS, 0, msg);
				return false;
			}
			if (c->in_len > 0) {
				cl_fail(c, ERR_SOCKS, 0,
				    "data before the request");
				return false;
			}
			cl_relayed(c);
			return true;
		case CL_CONV_REPLY:
			switch (conv_parse_reply(c->in, c->in_len, &r)) {
			case CONV_AGAIN:
				if (c->in_len == sizeof(c->in)) {
					cl_fail(c, ERR_CONVERT, 0,
					    "reply too long");
					return false;
				}
				return true;
			case CONV_BAD:
				cl_fail(c, ERR_CONVERT, 0, "bad reply");
				return false;
			case CONV_OK:
				break;
			}
			if (!r.ok) {
				snprintf(msg, sizeof(msg), "Error TLV %u (%s)",
				    r.code, conv_err_str(r.code));
				cl_fail(c, ERR_CONVERT, 0, msg);
				return false;
			}
			cl_consume(c, r.len);
			if (!c->app_in_syn) {
				if (c->in_len > 0) {
					cl_fail(c, ERR_CONVERT, 0,
					    "data before the request");
					return false;
				}
				cl_relayed(c);
				return true;
			}
			c->st = CL_APP;
			if (c->in_len > 0) {
				size_t n = c->in_len;

				c->in_len = 0;
				return cl_app_input(c, c->in, n);
			}
			return true;
		case CL_FREE:
		case CL_CONNECTING:
		case CL_READY:
		case CL_APP:
		case CL_DRAIN:
		case CL_HELD:
		case CL_BACKOFF:
			return true;
		}
	}
}

/*
 * Sends what is queued: out, then tx_left filler bytes. Returns 1 when all
 * is sent, 0 when the socket is full, -1 on error (errno set).
 */
static int
cl_flush(struct cl_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		c->out_off += (size_t)n;
	}
	while (c->tx_left > 0) {
		size_t want = c->tx_left < PAT_LEN ? (size_t)c->tx_left :
		    PAT_LEN;

		n = write(c->fd, pattern, want);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		c->tx_left -= (uint64_t)n;
	}
	return 1;
}

/*
 * Drives one connection as far as it can go without blocking: flush what
 * is queued, then read and parse what the state expects.
 */
static void
cl_pump(struct cl_conn *c)
{
	struct worker *wk = c->wk;
	int reads = 0, r;
	ssize_t n = 0;

	for (;;) {
		if (c->fd == -1)
			return;
		r = cl_flush(c);
		if (r == -1) {
			cl_fail(c, ERR_IO, errno, "write");
			return;
		}
		if (r == 0) {
			cl_want(c, EV_WRITE);
			return;
		}
		if (reads++ == READS_PER_EVENT) {
			cl_want(c, EV_READ);
			return;
		}
		switch (c->st) {
		case CL_APP:
			n = read(c->fd, wk->rbuf, RBUF_LEN);
			break;
		case CL_GREET:
		case CL_AUTH:
		case CL_REQUEST:
		case CL_CONV_REPLY:
			n = read(c->fd, c->in + c->in_len,
			    sizeof(c->in) - c->in_len);
			break;
		case CL_DRAIN:
			n = read(c->fd, c->in, sizeof(c->in));
			if (n == 0) {
				cl_app_done(c);
				return;
			}
			if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
				cl_want(c, EV_READ);
				return;
			}
			cl_fail(c, n == -1 ? ERR_IO : ERR_APP,
			    n == -1 ? errno : 0,
			    n == -1 ? "read" : "data after the answer");
			return;
		case CL_READY:
		case CL_HELD:
			/* Idle: anything but EAGAIN means trouble. */
			n = read(c->fd, c->in, sizeof(c->in));
			if (n == -1 && errno == EAGAIN) {
				cl_want(c, EV_READ);
				return;
			}
			cl_fail(c, n == 0 ? ERR_EOF : ERR_IO,
			    n == -1 ? errno : 0, n == -1 ? "read" :
			    n == 0 ? "closed while idle" :
			    "data while idle");
			return;
		case CL_FREE:
		case CL_CONNECTING:
		case CL_BACKOFF:
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				cl_want(c, EV_READ);
				return;
			}
			cl_fail(c, ERR_IO, errno, "read");
			return;
		}
		if (n == 0) {
			cl_fail(c, ERR_EOF, 0, c->st == CL_APP ?
			    "closed before the whole answer" :
			    "closed during the handshake");
			return;
		}
		if (c->st == CL_APP) {
			if (!cl_app_input(c, wk->rbuf, (size_t)n))
				return;
		} else {
			c->in_len += (size_t)n;
			if (!cl_handshake_input(c))
				return;
		}
	}
}

/* Counts SYN data the peer acknowledged (TCP Fast Open worked). */
static void
cl_check_syn_data(struct cl_conn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
		return;
	if (ti.tcpi_options & TCPI_OPT_SYN_DATA)
		c->wk->st.syn_data++;
}

/* connect() finished: go on with the handshake the proxy kind needs. */
static void
cl_connected(struct cl_conn *c)
{
	if (c->tfo)
		cl_check_syn_data(c);
	switch (g.proxy) {
	case PROXY_NONE:
		cl_relayed(c);
		break;
	case PROXY_SOCKS5:
		c->st = CL_GREET;
		break;
	case PROXY_CONVERT:
		if (!g.silent)
			c->st = CL_CONV_REPLY;
		else if (c->app_in_syn)
			c->st = CL_APP;
		else
			cl_relayed(c);
		break;
	}
	if (c->fd != -1 && c->st != CL_READY)
		cl_pump(c);
}

/* Writes the Convert message for the target into c->out; 0 or -1. */
static int
cl_write_convert(struct cl_conn *c)
{
	struct worker *wk = c->wk;
	struct conv_req req;
	size_t mac_off = 0;
	uint32_t hi = wk->nonce_hi;
	uint64_t ctr = wk->nonce_ctr++;

	memset(&req, 0, sizeof(req));
	if (g.tgt_is_name) {
		req.name = g.tgt_name;
		req.port = g.tgt_port;
	} else {
		req.addr = (const struct sockaddr *)&g.tgt_sa;
	}
	req.silent = g.silent;
	if (g.have_key) {
		req.user = g.user;
		req.ts = (uint32_t)time(NULL);
		memcpy(req.nonce, &hi, 4);
		memcpy(req.nonce + 4, &ctr, 8);
	}
	c->out_len = conv_write_request(c->out, sizeof(c->out) - HDR_LEN,
	    &req, &mac_off);
	if (c->out_len == 0)
		return -1;
	if (g.have_key && conv_sign(c->out, mac_off, g.key) == -1)
		return -1;
	return 0;
}

/*
 * Opens a new connection in slot c: socket, first bytes, non-blocking
 * connect (or sendto(MSG_FASTOPEN) for Convert) and the per-connection
 * timeout.
 */
static void
cl_open(struct cl_conn *c)
{
	struct worker *wk = c->wk;
	const struct sockaddr *sa;
	socklen_t salen;
	int one = 1, fd;
	ssize_t n;

	c->t_start = now_ns();
	c->t_first = 0;
	c->out_len = c->out_off = 0;
	c->tx_left = 0;
	c->in_len = 0;
	c->tfo = c->app_in_syn = c->started = false;
	c->st = CL_CONNECTING;
	c->events = 0;
	if (g.proxy == PROXY_NONE) {
		sa = (const struct sockaddr *)&g.tgt_sa;
		salen = g.tgt_len;
	} else {
		sa = (const struct sockaddr *)&g.gw_sa;
		salen = g.gw_len;
	}
	ev_timer_set(&c->timer, g.timeout, 0);
	ev_timer_start(wk->loop, &c->timer);
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    g.mptcp ? IPPROTO_MPTCP : 0);
	c->fd = fd;
	if (fd == -1) {
		cl_fail(c, ERR_CONNECT, errno, "socket");
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_set(&c->io, fd, EV_WRITE);

	switch (g.proxy) {
	case PROXY_NONE:
		break;
	case PROXY_SOCKS5: {
		uint8_t m = g.user != NULL ? SOCKS5_METHOD_USERPASS :
		    SOCKS5_METHOD_NONE;

		c->out_len = socks5_write_greeting(c->out, sizeof(c->out), &m,
		    1);
		break;
	}
	case PROXY_CONVERT:
		if (cl_write_convert(c) == -1) {
			cl_fail(c, ERR_CONVERT, 0, "cannot build the message");
			return;
		}
		if (g.mode != MODE_THROUGHPUT) {
			cl_queue_app(c);
			c->app_in_syn = true;
		}
		if (g.no_tfo)
			break;
		if (g.tfo_no_cookie)
			(void)setsockopt(fd, IPPROTO_TCP,
			    TCP_FASTOPEN_NO_COOKIE, &one, sizeof(one));
		n = sendto(fd, c->out, c->out_len, MSG_FASTOPEN, sa, salen);
		if (n >= 0 || errno == EINPROGRESS) {
			/* EINPROGRESS: no cookie yet, nothing was queued. */
			c->out_off = n >= 0 ? (size_t)n : 0;
			c->tfo = true;
			cl_want(c, EV_WRITE);
			return;
		}
		if (errno != EOPNOTSUPP && errno != EPROTONOSUPPORT) {
			cl_fail(c, ERR_CONNECT, errno, "sendto(MSG_FASTOPEN)");
			return;
		}
		wk->st.tfo_fallback++;
		break;
	}
	if (connect(fd, sa, salen) == -1) {
		if (errno != EINPROGRESS) {
			cl_fail(c, ERR_CONNECT, errno, "connect");
			return;
		}
		cl_want(c, EV_WRITE);
		return;
	}
	cl_connected(c);
}

/* libev: socket event on a client connection. */
static void
cl_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct cl_conn *c = container_of(w, struct cl_conn, io);
	int err = 0;
	socklen_t len = sizeof(err);

	(void)loop;
	(void)revents;
	if (c->st == CL_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			cl_fail(c, ERR_CONNECT, err, "connect");
			return;
		}
		cl_connected(c);
		return;
	}
	cl_pump(c);
}

/* libev: per-connection timeout, or the end of a failed slot's backoff. */
static void
cl_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cl_conn *c = container_of(w, struct cl_conn, timer);
	struct worker *wk = c->wk;

	(void)loop;
	(void)revents;
	if (c->st != CL_BACKOFF) {
		cl_fail(c, ERR_TIMEOUT, 0, "no progress within --timeout");
		return;
	}
	wk->inflight--;
	cl_release(c);
	wk_fill(wk);
	wk_check_end(wk);
}

/* Opens connections while the mode allows and slots are free. */
static void
wk_fill(struct worker *wk)
{
	struct cl_conn *c;

	while (wk->inflight < wk->max_inflight && wk->nfree > 0 &&
	    wk_may_start(wk)) {
		c = &wk->conns[wk->free_idx[--wk->nfree]];
		wk->inflight++;
		if (!wk->by_time)
			wk->to_start--;
		cl_open(c);
	}
}

/* libev idle: every throughput stream is relayed; start them together. */
static void
wk_go_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct worker *wk = container_of(w, struct worker, go_w);
	size_t i;

	(void)revents;
	ev_idle_stop(loop, w);
	if (g.threads > 1)
		pthread_barrier_wait(&go_barrier);
	wk->t0 = now_ns();
	for (i = 0; i < wk->nconns; i++) {
		struct cl_conn *c = &wk->conns[i];

		if (c->st != CL_READY)
			continue;
		c->started = true;
		cl_app_start(c);
	}
	/* Streams that failed before the go are already finished. */
	wk->nfinished = 0;
	for (i = 0; i < wk->nconns; i++)
		if (!wk->conns[i].started)
			wk->nfinished++;
	if (wk->nfinished == wk->nconns) {
		wk->t1 = wk->t0;
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	for (i = 0; i < wk->nconns; i++)
		if (wk->conns[i].started)
			cl_pump(&wk->conns[i]);
}

/* libev async: the main thread asks this worker to stop now. */
static void
wk_stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct worker *wk = container_of(w, struct worker, stop_w);

	(void)revents;
	wk->stopping = true;
	ev_break(loop, EVBREAK_ALL);
}

/* libev timer: --time-limit reached; count what is in flight as errors. */
static void
wk_limit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct worker *wk = container_of(w, struct worker, limit_w);
	size_t i;

	(void)revents;
	wk->stopping = true;
	if (wk->st.first_err[0] == '\0')
		snprintf(wk->st.first_err, sizeof(wk->st.first_err),
		    "%s: run exceeded --time-limit", err_names[ERR_LIMIT]);
	for (i = 0; i < wk->nconns; i++) {
		struct cl_conn *c = &wk->conns[i];

		switch (c->st) {
		case CL_CONNECTING:
		case CL_GREET:
		case CL_AUTH:
		case CL_REQUEST:
		case CL_CONV_REPLY:
		case CL_READY:
		case CL_APP:
		case CL_DRAIN:
			wk->st.errors++;
			wk->st.err_kind[ERR_LIMIT]++;
			if (c->st == CL_APP && g.mode == MODE_THROUGHPUT)
				wk->st.bytes += g.up ? 0 : c->rx_total;
			cl_close(c);
			c->st = CL_FREE;
			break;
		case CL_FREE:
		case CL_HELD:
		case CL_BACKOFF:
			break;
		}
	}
	if (wk->t1 == 0)
		wk->t1 = now_ns();
	if (g.mode == MODE_HOLD) {
		if (!wk->ready_sent) {
			wk->ready_sent = true;
			post_done();
		}
		return;
	}
	ev_break(loop, EVBREAK_ALL);
}

/* Thread body of a client worker: set up slots, run the loop. */
static void *
wk_client_main(void *arg)
{
	struct worker *wk = arg;
	size_t i;

	wk->t0 = now_ns();
	if (g.mode == MODE_THROUGHPUT) {
		for (i = 0; i < wk->nconns; i++) {
			wk->inflight++;
			cl_open(&wk->conns[i]);
		}
	} else {
		wk_fill(wk);
		wk_check_end(wk);
	}
	ev_run(wk->loop, 0);
	if (wk->t1 == 0)
		wk->t1 = now_ns();
	if (g.mode != MODE_HOLD || !wk->ready_sent)
		post_done();
	return NULL;
}

/* --- the target server (--serve) -------------------------------------- */

/* Closes and frees a server connection. */
static void
srv_close(struct srv_conn *s)
{
	ev_io_stop(s->wk->loop, &s->io);
	close(s->fd);
	s->wk->active--;
	free(s);
}

/* Switches a server connection's watcher to events ev. */
static void
srv_want(struct srv_conn *s, int ev)
{
	if (s->events == ev)
		return;
	ev_io_stop(s->wk->loop, &s->io);
	ev_io_set(&s->io, s->fd, ev);
	ev_io_start(s->wk->loop, &s->io);
	s->events = ev;
}

/*
 * Consumes n bytes from the client. Returns 0, or -1 on a protocol
 * violation (the caller closes).
 */
static int
srv_input(struct srv_conn *s, const uint8_t *p, size_t n)
{
	while (n > 0) {
		switch (s->st) {
		case SRV_HDR: {
			size_t k = HDR_LEN - s->hdr_got;

			if (k > n)
				k = n;
			memcpy(s->hdr + s->hdr_got, p, k);
			s->hdr_got += k;
			p += k;
			n -= k;
			if (s->hdr_got < HDR_LEN)
				break;
			s->hdr_got = 0;
			s->len = get_hdr_len(s->hdr);
			s->out_len = s->out_off = 0;
			switch (s->hdr[0]) {
			case 'U':
				s->left = s->len;
				s->st = SRV_UPLOAD;
				if (s->len == 0) {
					put_hdr(s->out, 'u', 0);
					s->out_len = HDR_LEN;
					s->st = SRV_SEND;
				}
				break;
			case 'D':
				s->left = s->len;
				s->st = SRV_SEND;
				break;
			case 'P':
			case 'Q':
				if (s->len < PING_MIN || s->len > PING_MAX)
					return -1;
				s->quit = s->hdr[0] == 'Q';
				put_hdr(s->out, s->quit ? 'q' : 'p', s->len);
				s->out_len = HDR_LEN;
				s->left = s->len - HDR_LEN;
				s->st = SRV_SEND;
				break;
			default:
				return -1;
			}
			break;
		}
		case SRV_UPLOAD: {
			size_t k = s->left < n ? (size_t)s->left : n;

			s->left -= k;
			p += k;
			n -= k;
			if (s->left == 0) {
				put_hdr(s->out, 'u', s->len);
				s->out_len = HDR_LEN;
				s->out_off = 0;
				s->st = SRV_SEND;
			}
			break;
		}
		case SRV_SEND:
			return -1;
		}
	}
	return 0;
}

/*
 * Sends the pending answer. Returns 1 when done, 0 when the socket is
 * full, -1 on error.
 */
static int
srv_flush(struct srv_conn *s)
{
	ssize_t n;

	while (s->out_off < s->out_len) {
		n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		s->out_off += (size_t)n;
	}
	while (s->left > 0) {
		size_t want = s->left < PAT_LEN ? (size_t)s->left : PAT_LEN;

		n = write(s->fd, pattern, want);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		s->left -= (uint64_t)n;
	}
	s->st = SRV_HDR;
	return 1;
}

/* libev: socket event on a server connection. */
static void
srv_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct srv_conn *s = container_of(w, struct srv_conn, io);
	int reads;
	ssize_t n;

	(void)loop;
	(void)revents;
	for (reads = 0; reads < READS_PER_EVENT; reads++) {
		if (s->st == SRV_SEND) {
			switch (srv_flush(s)) {
			case -1:
				srv_close(s);
				return;
			case 0:
				srv_want(s, EV_WRITE);
				return;
			default:
				break;
			}
			if (s->quit) {
				srv_close(s);
				return;
			}
		}
		n = read(s->fd, s->wk->rbuf, RBUF_LEN);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				srv_want(s, EV_READ);
				return;
			}
			srv_close(s);
			return;
		}
		if (n == 0 || srv_input(s, s->wk->rbuf, (size_t)n) == -1) {
			srv_close(s);
			return;
		}
	}
	srv_want(s, s->st == SRV_SEND ? EV_WRITE : EV_READ);
}

/* libev timer: retry accepting after running out of descriptors. */
static void
srv_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct worker *wk = container_of(w, struct worker, accept_backoff_w);

	(void)revents;
	ev_io_start(loop, &wk->accept_w);
}

/* libev: new connections on the listening socket. */
static void
srv_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct worker *wk = container_of(w, struct worker, accept_w);
	struct srv_conn *s;
	int fd, i, one = 1;

	(void)revents;
	for (i = 0; i < ACCEPTS_PER_EVENT; i++) {
		fd = accept4(wk->lfd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Back off instead of spinning on EMFILE. */
				ev_io_stop(loop, w);
				ev_timer_set(&wk->accept_backoff_w, 0.1, 0);
				ev_timer_start(loop, &wk->accept_backoff_w);
			}
			return;
		}
		s = calloc(1, sizeof(*s));
		if (s == NULL) {
			close(fd);
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		s->wk = wk;
		s->fd = fd;
		s->st = SRV_HDR;
		s->events = EV_READ;
		ev_io_init(&s->io, srv_io_cb, fd, EV_READ);
		ev_io_start(loop, &s->io);
		wk->accepted++;
		wk->active++;
	}
}

/* Creates a listening socket for the --serve address; exits on failure. */
static int
srv_listen(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd, one = 1, qlen = 4096;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    g.mptcp ? IPPROTO_MPTCP : 0);
	if (fd == -1)
		die("socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		die("SO_REUSEADDR: %s", strerror(errno));
	if (g.threads > 1 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)) == -1)
		die("SO_REUSEPORT: %s", strerror(errno));
	if (g.tfo && setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen,
	    sizeof(qlen)) == -1)
		fprintf(stderr, "socksbench: TCP_FASTOPEN: %s\n",
		    strerror(errno));
	if (bind(fd, (const struct sockaddr *)ss, len) == -1)
		die("bind %s: %s", g.serve, strerror(errno));
	if (listen(fd, 4096) == -1)
		die("listen: %s", strerror(errno));
	return fd;
}

/* Thread body of a server worker. */
static void *
wk_server_main(void *arg)
{
	struct worker *wk = arg;

	ev_run(wk->loop, 0);
	return NULL;
}

/* --- main ------------------------------------------------------------- */

/* Prints the usage text to f. */
static void
usage(FILE *f)
{
	fputs(
"usage: socksbench --serve HOST:PORT [--mptcp] [--tfo] [-j N]\n"
"       socksbench --proxy none|socks5|convert [--gw HOST:PORT]\n"
"           --target HOST:PORT [--user U --pass P] [--key BASE64]\n"
"           [--silent] [--mptcp] [--no-tfo | --tfo-no-cookie] [-j N]\n"
"           [--timeout S]\n"
"           [--time-limit S] [--label L] --mode MODE [mode options]\n"
"  --mode throughput --streams N --bytes B[K|M|G] --dir up|down\n"
"  --mode connrate --concurrency C (--duration S | --count N)\n"
"                  [--resp-bytes R]\n"
"  --mode hold --conns N [--concurrency C] [--hold-secs S]\n"
"  --mode ttfb --count N [--resp-bytes R]\n", f);
}

/* Fills g from the command line; exits on a bad option. */
static void
parse_args(int argc, char **argv)
{
	enum {
		O_SERVE = 256, O_PROXY, O_GW, O_TARGET, O_USER, O_PASS, O_KEY,
		O_SILENT, O_MPTCP, O_TFO, O_NO_TFO, O_TFO_NO_COOKIE, O_MODE, O_STREAMS,
		O_BYTES, O_DIR, O_CONC, O_DURATION, O_COUNT, O_CONNS,
		O_HOLD_SECS, O_RESP, O_TIMEOUT, O_TIME_LIMIT, O_LABEL,
	};
	static const struct option lo[] = {
		{ "serve", required_argument, NULL, O_SERVE },
		{ "proxy", required_argument, NULL, O_PROXY },
		{ "gw", required_argument, NULL, O_GW },
		{ "target", required_argument, NULL, O_TARGET },
		{ "user", required_argument, NULL, O_USER },
		{ "pass", required_argument, NULL, O_PASS },
		{ "key", required_argument, NULL, O_KEY },
		{ "silent", no_argument, NULL, O_SILENT },
		{ "mptcp", no_argument, NULL, O_MPTCP },
		{ "tfo", no_argument, NULL, O_TFO },
		{ "no-tfo", no_argument, NULL, O_NO_TFO },
		{ "tfo-no-cookie", no_argument, NULL, O_TFO_NO_COOKIE },
		{ "mode", required_argument, NULL, O_MODE },
		{ "streams", required_argument, NULL, O_STREAMS },
		{ "bytes", required_argument, NULL, O_BYTES },
		{ "dir", required_argument, NULL, O_DIR },
		{ "concurrency", required_argument, NULL, O_CONC },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "count", required_argument, NULL, O_COUNT },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "hold-secs", required_argument, NULL, O_HOLD_SECS },
		{ "resp-bytes", required_argument, NULL, O_RESP },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "time-limit", required_argument, NULL, O_TIME_LIMIT },
		{ "label", required_argument, NULL, O_LABEL },
		{ "threads", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = NULL, *proxy = "none", *key = NULL;
	int ch;

	while ((ch = getopt_long(argc, argv, "j:h", lo, NULL)) != -1) {
		switch (ch) {
		case O_SERVE: g.serve = optarg; break;
		case O_PROXY: proxy = optarg; break;
		case O_GW: g.gw = optarg; break;
		case O_TARGET: g.target = optarg; break;
		case O_USER: g.user = optarg; break;
		case O_PASS: g.pass = optarg; break;
		case O_KEY: key = optarg; break;
		case O_SILENT: g.silent = true; break;
		case O_MPTCP: g.mptcp = true; break;
		case O_TFO: g.tfo = true; break;
		case O_NO_TFO: g.no_tfo = true; break;
		case O_TFO_NO_COOKIE: g.tfo_no_cookie = true; break;
		case O_MODE: mode = optarg; break;
		case O_STREAMS:
			g.streams = (unsigned)parse_num("--streams", optarg, 1,
			    100000);
			break;
		case O_BYTES:
			if (parse_size(optarg, &g.bytes) == -1)
				die("bad --bytes '%s'", optarg);
			break;
		case O_DIR:
			if (strcmp(optarg, "up") == 0)
				g.up = true;
			else if (strcmp(optarg, "down") == 0)
				g.up = false;
			else
				die("bad --dir '%s' (up, down)", optarg);
			break;
		case O_CONC:
			g.concurrency = (unsigned)parse_num("--concurrency",
			    optarg, 1, 1000000);
			break;
		case O_DURATION:
			g.duration = parse_secs("--duration", optarg);
			break;
		case O_COUNT:
			g.count = parse_num("--count", optarg, 1, 1000000000);
			break;
		case O_CONNS:
			g.conns = (unsigned)parse_num("--conns", optarg, 1,
			    1000000);
			break;
		case O_HOLD_SECS:
			g.hold_secs = parse_secs("--hold-secs", optarg);
			break;
		case O_RESP:
			g.resp_bytes = (unsigned)parse_num("--resp-bytes",
			    optarg, PING_MIN, PING_MAX);
			break;
		case O_TIMEOUT:
			g.timeout = parse_secs("--timeout", optarg);
			break;
		case O_TIME_LIMIT:
			g.time_limit = parse_secs("--time-limit", optarg);
			break;
		case O_LABEL: g.label = optarg; break;
		case 'j':
			g.threads = (unsigned)parse_num("-j", optarg, 1,
			    WORKERS_MAX);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc)
		die("unexpected argument '%s'", argv[optind]);
	if (key != NULL)
		parse_key(key);
	if (g.timeout <= 0)
		die("--timeout must be positive");

	if (g.serve != NULL) {
		g.mode = MODE_SERVE;
		if (resolve(g.serve, &g.gw_sa, &g.gw_len) == -1)
			die("cannot resolve --serve %s", g.serve);
		return;
	}
	if (mode == NULL)
		die("--mode or --serve is required");
	if (strcmp(mode, "throughput") == 0)
		g.mode = MODE_THROUGHPUT;
	else if (strcmp(mode, "connrate") == 0)
		g.mode = MODE_CONNRATE;
	else if (strcmp(mode, "hold") == 0)
		g.mode = MODE_HOLD;
	else if (strcmp(mode, "ttfb") == 0)
		g.mode = MODE_TTFB;
	else
		die("bad --mode '%s'", mode);
	if (strcmp(proxy, "none") == 0)
		g.proxy = PROXY_NONE;
	else if (strcmp(proxy, "socks5") == 0)
		g.proxy = PROXY_SOCKS5;
	else if (strcmp(proxy, "convert") == 0)
		g.proxy = PROXY_CONVERT;
	else
		die("bad --proxy '%s' (none, socks5, convert)", proxy);

	if (g.target == NULL)
		die("--target is required");
	if (g.proxy != PROXY_NONE) {
		if (g.gw == NULL)
			die("--gw is required with --proxy %s", proxy);
		if (resolve(g.gw, &g.gw_sa, &g.gw_len) == -1)
			die("cannot resolve --gw %s", g.gw);
	}
	if (g.proxy == PROXY_SOCKS5 && g.user != NULL && g.pass == NULL)
		die("--user needs --pass");
	if (g.have_key && g.user == NULL)
		die("--key needs --user");
	if (g.silent && g.proxy != PROXY_CONVERT)
		die("--silent is for --proxy convert");
	if (socks5_parse_hostport(g.target, g.tgt_name, sizeof(g.tgt_name),
	    &g.tgt_port) == -1)
		die("bad --target '%s'", g.target);
	memset(&g.tgt_s5, 0, sizeof(g.tgt_s5));
	{
		struct sockaddr_in *sin = (struct sockaddr_in *)&g.tgt_sa;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&g.tgt_sa;

		memset(&g.tgt_sa, 0, sizeof(g.tgt_sa));
		if (inet_pton(AF_INET, g.tgt_name, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons(g.tgt_port);
			g.tgt_len = sizeof(*sin);
		} else if (inet_pton(AF_INET6, g.tgt_name,
		    &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(g.tgt_port);
			g.tgt_len = sizeof(*sin6);
		} else {
			g.tgt_is_name = true;
		}
	}
	if (g.tgt_is_name) {
		/* Proxies resolve names; direct connections need it here. */
		size_t n = strlen(g.tgt_name);

		g.tgt_s5.atyp = SOCKS5_ATYP_DOMAIN;
		g.tgt_s5.name_len = (uint8_t)n;
		memcpy(g.tgt_s5.u.name, g.tgt_name, n + 1);
		g.tgt_s5.port = g.tgt_port;
		if (g.proxy == PROXY_NONE && resolve(g.target, &g.tgt_sa,
		    &g.tgt_len) == -1)
			die("cannot resolve --target %s", g.target);
	} else if (socks5_addr_from_sockaddr(&g.tgt_s5,
	    (const struct sockaddr *)&g.tgt_sa) == -1) {
		die("bad --target '%s'", g.target);
	}

	switch (g.mode) {
	case MODE_THROUGHPUT:
		if (g.streams < g.threads)
			g.threads = g.streams;
		if (g.time_limit == 0)
			g.time_limit = 300;
		break;
	case MODE_CONNRATE:
		if (g.concurrency == 0)
			g.concurrency = 64;
		if (g.count == 0 && g.duration == 0)
			g.duration = 5;
		if (g.concurrency < g.threads)
			g.threads = g.concurrency;
		if (g.time_limit == 0)
			g.time_limit = (g.duration > 0 ? g.duration : 600) +
			    g.timeout + 5;
		break;
	case MODE_HOLD:
		if (g.concurrency == 0)
			g.concurrency = 128;
		if (g.conns < g.threads)
			g.threads = g.conns;
		if (g.time_limit == 0)
			g.time_limit = 300;
		break;
	case MODE_TTFB:
		if (g.count == 0)
			g.count = 100;
		g.concurrency = 1;
		g.threads = 1;
		if (g.time_limit == 0)
			g.time_limit = 600;
		break;
	case MODE_SERVE:
		break;
	}
}

/* Share of total for worker i of n (the first ones get the remainder). */
static uint64_t
share(uint64_t total, unsigned i, unsigned n)
{
	return total / n + (i < total % n ? 1 : 0);
}

/* Sets up worker i for the client modes. */
static void
wk_client_init(struct worker *wk, unsigned i)
{
	size_t j, nslots = 0;

	switch (g.mode) {
	case MODE_THROUGHPUT:
		nslots = share(g.streams, i, g.threads);
		wk->max_inflight = nslots;
		break;
	case MODE_HOLD:
		nslots = share(g.conns, i, g.threads);
		wk->to_start = nslots;
		wk->max_inflight = share(g.concurrency, i, g.threads);
		if (wk->max_inflight == 0)
			wk->max_inflight = 1;
		break;
	case MODE_CONNRATE:
	case MODE_TTFB:
	case MODE_SERVE:
		nslots = share(g.concurrency, i, g.threads);
		wk->max_inflight = nslots;
		if (g.count > 0) {
			wk->to_start = share(g.count, i, g.threads);
		} else {
			wk->by_time = true;
			wk->deadline = now_ns() +
			    (uint64_t)(g.duration * 1e9);
		}
		break;
	}
	wk->nconns = nslots;
	wk->conns = calloc(nslots, sizeof(*wk->conns));
	wk->free_idx = calloc(nslots, sizeof(*wk->free_idx));
	if (wk->conns == NULL || wk->free_idx == NULL)
		die("out of memory for %zu connections", nslots);
	for (j = 0; j < nslots; j++) {
		struct cl_conn *c = &wk->conns[j];

		c->wk = wk;
		c->fd = -1;
		ev_init(&c->io, cl_io_cb);
		ev_init(&c->timer, cl_timer_cb);
		wk->free_idx[nslots - 1 - j] = j;
	}
	wk->nfree = nslots;
	if (getrandom(&wk->nonce_hi, sizeof(wk->nonce_hi), 0) == -1)
		wk->nonce_hi = (uint32_t)now_ns() ^ (uint32_t)getpid();
	wk->nonce_hi ^= i;
	ev_init(&wk->go_w, wk_go_cb);
	ev_timer_init(&wk->limit_w, wk_limit_cb, g.time_limit, 0);
	ev_timer_start(wk->loop, &wk->limit_w);
}

/*
 * Waits for n posts on done_efd (workers done, or ready in hold mode).
 * Returns true if a signal came first.
 */
static bool
wait_workers(int sfd, unsigned n)
{
	struct pollfd pf[2];
	uint64_t v;
	unsigned got = 0;

	while (got < n) {
		pf[0].fd = sfd;
		pf[0].events = POLLIN;
		pf[1].fd = done_efd;
		pf[1].events = POLLIN;
		if (poll(pf, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			(void)read(sfd, &si, sizeof(si));
			return true;
		}
		if ((pf[1].revents & POLLIN) &&
		    read(done_efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			got += (unsigned)v;
	}
	return false;
}

/* Holds until SIGTERM/SIGINT, --hold-secs, or EOF on a pipe/tty stdin. */
static void
hold_wait(int sfd)
{
	struct pollfd pf[2];
	struct stat sb;
	bool watch_stdin;
	uint64_t end = g.hold_secs > 0 ?
	    now_ns() + (uint64_t)(g.hold_secs * 1e9) : 0;
	char buf[256];

	watch_stdin = g.hold_secs == 0 && fstat(0, &sb) == 0 &&
	    (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode) || isatty(0));
	for (;;) {
		int ms = -1, nfd = 1;

		if (end != 0) {
			uint64_t t = now_ns();

			if (t >= end)
				return;
			ms = (int)((end - t) / 1000000) + 1;
		}
		pf[0].fd = sfd;
		pf[0].events = POLLIN;
		if (watch_stdin) {
			pf[1].fd = 0;
			pf[1].events = POLLIN;
			nfd = 2;
		}
		if (poll(pf, (nfds_t)nfd, ms) == -1) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pf[0].revents & POLLIN)
			return;
		if (nfd == 2 && pf[1].revents) {
			if (read(0, buf, sizeof(buf)) <= 0)
				return;
		}
	}
}

/* Name of the proxy kind for the result line. */
static const char *
proxy_name(void)
{
	switch (g.proxy) {
	case PROXY_NONE:
		return "none";
	case PROXY_SOCKS5:
		return "socks5";
	case PROXY_CONVERT:
		return g.silent ? "convert-silent" : "convert";
	}
	return "?";
}

/* Name of the mode for the result line. */
static const char *
mode_name(void)
{
	switch (g.mode) {
	case MODE_THROUGHPUT:
		return "throughput";
	case MODE_CONNRATE:
		return "connrate";
	case MODE_HOLD:
		return "hold";
	case MODE_TTFB:
		return "ttfb";
	case MODE_SERVE:
		return "serve";
	}
	return "?";
}

/* Merges the workers' statistics and prints the result line and text. */
static void
report(bool interrupted)
{
	struct stats t;
	uint64_t tmin = UINT64_MAX, tmax = 0, *lat = NULL;
	size_t i, k, nlat = 0;
	double secs, mbps = 0, cps = 0, p50, p99, p999;
	const char *first_err = "";

	memset(&t, 0, sizeof(t));
	for (i = 0; i < g.threads; i++) {
		struct worker *wk = &workers[i];

		t.ok += wk->st.ok;
		t.errors += wk->st.errors;
		for (k = 0; k < ERR_KINDS; k++)
			t.err_kind[k] += wk->st.err_kind[k];
		t.bytes += wk->st.bytes;
		t.syn_data += wk->st.syn_data;
		t.tfo_fallback += wk->st.tfo_fallback;
		t.held += atomic_load(&wk->st.held);
		t.dropped += atomic_load(&wk->st.dropped);
		nlat += wk->st.nlat;
		if (wk->t0 < tmin)
			tmin = wk->t0;
		if (wk->t1 > tmax)
			tmax = wk->t1;
		if (first_err[0] == '\0')
			first_err = wk->st.first_err;
	}
	if (nlat > 0 && (lat = malloc(nlat * sizeof(*lat))) != NULL) {
		nlat = 0;
		for (i = 0; i < g.threads; i++) {
			memcpy(lat + nlat, workers[i].st.lat,
			    workers[i].st.nlat * sizeof(*lat));
			nlat += workers[i].st.nlat;
		}
		qsort(lat, nlat, sizeof(*lat), cmp_u64);
	} else {
		nlat = 0;
	}
	secs = tmax > tmin ? (double)(tmax - tmin) / 1e9 : 0;
	p50 = pct_us(lat, nlat, 0.50);
	p99 = pct_us(lat, nlat, 0.99);
	p999 = pct_us(lat, nlat, 0.999);
	if (secs > 0) {
		mbps = (double)t.bytes * 8 / secs / 1e6;
		cps = (double)t.ok / secs;
	}
	if (g.mode == MODE_THROUGHPUT || g.mode == MODE_HOLD)
		cps = 0;
	if (g.mode != MODE_THROUGHPUT)
		mbps = 0;

	printf("mode=%s proxy=%s conns=%" PRIu64 " bytes=%" PRIu64
	    " seconds=%.3f mbps=%.1f cps=%.1f p50_us=%.1f p99_us=%.1f"
	    " p999_us=%.1f errors=%" PRIu64, mode_name(), proxy_name(),
	    g.mode == MODE_HOLD ? (uint64_t)g.conns : t.ok, t.bytes, secs,
	    mbps, cps, p50, p99, p999, t.errors);
	switch (g.mode) {
	case MODE_THROUGHPUT:
		printf(" streams=%u dir=%s", g.streams, g.up ? "up" : "down");
		break;
	case MODE_CONNRATE:
		printf(" concurrency=%u", g.concurrency);
		break;
	case MODE_HOLD:
		printf(" held=%" PRIu64, (uint64_t)t.held);
		break;
	case MODE_TTFB:
	case MODE_SERVE:
		break;
	}
	if (g.proxy == PROXY_CONVERT)
		printf(" syn_data=%" PRIu64 " tfo_fallback=%" PRIu64,
		    t.syn_data, t.tfo_fallback);
	if (g.mptcp)
		printf(" mptcp=1");
	if (g.label != NULL)
		printf(" label=%s", g.label);
	if (interrupted)
		printf(" interrupted=1");
	putchar('\n');
	fflush(stdout);

	fprintf(stderr, "socksbench: %s via %s to %s: %" PRIu64 " ok, %"
	    PRIu64 " errors in %.3f s", mode_name(), proxy_name(), g.target,
	    t.ok, t.errors, secs);
	switch (g.mode) {
	case MODE_THROUGHPUT:
		fprintf(stderr, ", %.1f Mbit/s over %u stream(s)\n", mbps,
		    g.streams);
		break;
	case MODE_CONNRATE:
		fprintf(stderr, ", %.0f conn/s, latency p50 %.1f us p99 %.1f"
		    " us p99.9 %.1f us\n", cps, p50, p99, p999);
		break;
	case MODE_TTFB:
		fprintf(stderr, ", ttfb p50 %.1f us p99 %.1f us\n", p50, p99);
		break;
	case MODE_HOLD:
		fprintf(stderr, ", holding %" PRIu64 " of %u connections\n",
		    (uint64_t)t.held, g.conns);
		break;
	case MODE_SERVE:
		fputc('\n', stderr);
		break;
	}
	if (t.errors > 0) {
		fprintf(stderr, "socksbench: errors:");
		for (k = 0; k < ERR_KINDS; k++)
			if (t.err_kind[k] > 0)
				fprintf(stderr, " %s=%" PRIu64, err_names[k],
				    t.err_kind[k]);
		fprintf(stderr, "; first: %s\n", first_err);
	}
	if (g.proxy == PROXY_CONVERT && !g.no_tfo)
		fprintf(stderr, "socksbench: SYN data acknowledged on %" PRIu64
		    " connection(s)%s\n", t.syn_data, t.syn_data == 0 ?
		    " (no Fast Open: check net.ipv4.tcp_fastopen on both "
		    "ends)" : "");
	free(lat);
}

/* Connections the workers hold right now. */
static uint64_t
total_held(void)
{
	uint64_t h = 0;
	unsigned i;

	for (i = 0; i < g.threads; i++)
		h += atomic_load(&workers[i].st.held);
	return h;
}

/* Runs the --serve target server until SIGTERM/SIGINT. */
static int
run_server(int sfd)
{
	unsigned i;
	uint64_t accepted = 0;
	struct pollfd pf;

	for (i = 0; i < g.threads; i++) {
		struct worker *wk = &workers[i];

		wk->lfd = srv_listen(&g.gw_sa, g.gw_len);
		ev_io_init(&wk->accept_w, srv_accept_cb, wk->lfd, EV_READ);
		ev_io_start(wk->loop, &wk->accept_w);
		ev_timer_init(&wk->accept_backoff_w, srv_backoff_cb, 0.1, 0);
		ev_async_init(&wk->stop_w, wk_stop_cb);
		ev_async_start(wk->loop, &wk->stop_w);
	}
	fprintf(stderr, "socksbench: serving on %s (%u thread(s)%s%s)\n",
	    g.serve, g.threads, g.mptcp ? ", MPTCP" : "",
	    g.tfo ? ", TCP_FASTOPEN" : "");
	for (i = 0; i < g.threads; i++)
		if (pthread_create(&workers[i].thr, NULL, wk_server_main,
		    &workers[i]) != 0)
			die("pthread_create failed");
	pf.fd = sfd;
	pf.events = POLLIN;
	while (poll(&pf, 1, -1) == -1 && errno == EINTR)
		;
	for (i = 0; i < g.threads; i++)
		ev_async_send(workers[i].loop, &workers[i].stop_w);
	for (i = 0; i < g.threads; i++) {
		pthread_join(workers[i].thr, NULL);
		accepted += workers[i].accepted;
	}
	fprintf(stderr, "socksbench: server stopped after %" PRIu64
	    " connection(s)\n", accepted);
	return 0;
}

int
main(int argc, char **argv)
{
	sigset_t ss;
	int sfd;
	unsigned i;
	bool interrupted;

	/* `socksbench udp ...`: datagrams (udpbench.c). */
	if (argc > 1 && strcmp(argv[1], "udp") == 0)
		return sb_udp_main(argc - 1, argv + 1);
	parse_args(argc, argv);
	raise_nofile();
	for (i = 0; i < PAT_LEN; i++)
		pattern[i] = (uint8_t)('a' + i % 26);

	/* Signals go to the main thread only, through a signalfd. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &ss, NULL) != 0)
		die("pthread_sigmask failed");
	sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	if (sfd == -1)
		die("signalfd: %s", strerror(errno));
	done_efd = eventfd(0, EFD_CLOEXEC);
	if (done_efd == -1)
		die("eventfd: %s", strerror(errno));

	for (i = 0; i < g.threads; i++) {
		workers[i].id = i;
		workers[i].lfd = -1;
		workers[i].loop = ev_loop_new(EVFLAG_AUTO);
		workers[i].rbuf = malloc(RBUF_LEN);
		if (workers[i].loop == NULL || workers[i].rbuf == NULL)
			die("cannot create event loop");
	}
	if (g.mode == MODE_SERVE)
		return run_server(sfd);

	if (g.threads > 1 &&
	    pthread_barrier_init(&go_barrier, NULL, g.threads) != 0)
		die("pthread_barrier_init failed");
	for (i = 0; i < g.threads; i++) {
		wk_client_init(&workers[i], i);
		ev_async_init(&workers[i].stop_w, wk_stop_cb);
		ev_async_start(workers[i].loop, &workers[i].stop_w);
	}
	for (i = 0; i < g.threads; i++)
		if (pthread_create(&workers[i].thr, NULL, wk_client_main,
		    &workers[i]) != 0)
			die("pthread_create failed");

	interrupted = wait_workers(sfd, g.threads);
	if (g.mode == MODE_HOLD) {
		if (!interrupted) {
			report(false);
			hold_wait(sfd);
		}
		for (i = 0; i < g.threads; i++)
			ev_async_send(workers[i].loop, &workers[i].stop_w);
		for (i = 0; i < g.threads; i++)
			pthread_join(workers[i].thr, NULL);
		if (interrupted)
			report(true);
		else
			fprintf(stderr, "socksbench: released %" PRIu64
			    " held connection(s)\n", total_held());
		return 0;
	}
	if (interrupted)
		for (i = 0; i < g.threads; i++)
			ev_async_send(workers[i].loop, &workers[i].stop_w);
	for (i = 0; i < g.threads; i++)
		pthread_join(workers[i].thr, NULL);
	report(interrupted);
	return 0;
}
