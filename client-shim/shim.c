/*
 * libmpgw.so core: initialisation, the real libc functions, per-fd state
 * and the socket-level hooks (DESIGN.md section 5; the algorithm follows
 * research/preload_shims.md section 9).
 *
 * The app's own socket is connected to the gateway and the handshake runs
 * on it, so its options, bind() address, O_NONBLOCK and FD_CLOEXEC are
 * untouched and no descriptor is ever swapped. The shim remembers, per fd,
 * the socket's inode and the address the app asked for; getpeername()
 * returns that address. The inode is checked on every use, because closes
 * inside libc (closefrom's fallback, posix_spawn) do not pass through us.
 *
 * Non-blocking connect (both modes): when the fd is non-blocking the call
 * returns -1/EINPROGRESS once the gateway leg is set up, so the app's
 * poll/epoll + SO_ERROR path runs as for a direct connect. In explicit mode
 * the handshake itself runs inside connect() (bounded by the timeout), so
 * the fd is already connected and writable when the app polls; in implicit
 * mode the kernel is still completing the handshake of a SYN that carries
 * the Convert message, and errors arrive through SO_ERROR.
 */
#include "client-shim/shim.h"

#include "lib/addr.h"
#include "proto/convert.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef TCP_FASTOPEN_NO_COOKIE
#define TCP_FASTOPEN_NO_COOKIE 34
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* glibc declares the sockaddr arguments as a transparent union. */
#ifdef __SOCKADDR_ALLTYPES
#define SA_IN(a) ((a).__sockaddr__)
#else
#define SA_IN(a) (a)
#endif

#define FDTAB_MAX (1u << 20)
#define IOV_MAX_SHIM 64

struct shim_real shim_real;
struct shim_conf shim_conf;
struct shim_fdns shim_fdns;

struct fd_state {
	uint64_t ino;			/* 0 = not ours */
	socklen_t len;
	struct sockaddr_in6 peer;	/* big enough for sockaddr_in too */
};

static struct fd_state *fdtab;
static size_t fdtab_n;
static bool conf_ok;
static bool mptcp_refused;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static __thread int in_shim __attribute__((tls_model("initial-exec")));

/* --- logging and small helpers ---------------------------------------- */

static void vlog(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

static void
vlog(const char *fmt, va_list ap)
{
	char buf[512];
	int n, m;

	n = snprintf(buf, sizeof(buf), "mpgw[%ld]: ", (long)getpid());
	if (n < 0)
		return;
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(STDERR_FILENO, buf, (size_t)n);
}

void
shim_debug(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (!shim_conf.debug)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
	errno = saved;
}

void
shim_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
	errno = saved;
}

int64_t
shim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
shim_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - shim_now_ms();
		int r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 1)
			return 0;
	}
}

int
shim_send_all(int fd, const void *buf, size_t len, int64_t deadline)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t r = shim_real.sendto(fd, p, len,
		    MSG_NOSIGNAL | MSG_DONTWAIT, NULL, 0);

		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (shim_wait(fd, POLLOUT, deadline) == -1)
				return -1;
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int
shim_recv_exact(int fd, void *buf, size_t len, int64_t deadline)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t r = recv(fd, p, len, MSG_DONTWAIT);

		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (shim_wait(fd, POLLIN, deadline) == -1)
				return -1;
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* --- initialisation --------------------------------------------------- */

static void *
sym(const char *name, void *self, bool required)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == self && self != NULL) {
		shim_warn("dlsym(%s) found the hook itself", name);
		abort();
	}
	if (p == NULL && required) {
		shim_warn("dlsym(%s): not found", name);
		abort();
	}
	return p;
}

/* Idempotent; racing threads store the same pointers. */
static void
resolve_syms(void)
{
	static int done;

	if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		return;
	in_shim++;
	shim_real.socket = sym("socket", (void *)socket, true);
	shim_real.connect = sym("connect", (void *)connect, true);
	shim_real.sendto = sym("sendto", (void *)sendto, true);
	shim_real.sendmsg = sym("sendmsg", (void *)sendmsg, true);
	shim_real.getpeername = sym("getpeername", (void *)getpeername, true);
	shim_real.close = sym("close", (void *)close, true);
	shim_real.close_range = sym("close_range", NULL, false);
	shim_real.closefrom = sym("closefrom", NULL, false);
	shim_real.dup2 = sym("dup2", (void *)dup2, true);
	shim_real.dup3 = sym("dup3", (void *)dup3, true);
	shim_real.getaddrinfo = sym("getaddrinfo", (void *)getaddrinfo, true);
	shim_real.freeaddrinfo = sym("freeaddrinfo", (void *)freeaddrinfo,
	    true);
	shim_real.getnameinfo = sym("getnameinfo", (void *)getnameinfo, true);
	shim_real.gethostbyname = sym("gethostbyname", NULL, true);
	shim_real.gethostbyname2 = sym("gethostbyname2", NULL, true);
	shim_real.gethostbyname_r = sym("gethostbyname_r", NULL, true);
	shim_real.gethostbyname2_r = sym("gethostbyname2_r", NULL, true);
	shim_real.gethostbyaddr = sym("gethostbyaddr", NULL, true);
	shim_real.gethostbyaddr_r = sym("gethostbyaddr_r", NULL, true);
	in_shim--;
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

static void
fdtab_init(void)
{
	struct rlimit rl;
	size_t n = 65536;
	void *p;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t m = rl.rlim_max > rl.rlim_cur ? rl.rlim_max :
		    rl.rlim_cur;

		if (m == RLIM_INFINITY || m > FDTAB_MAX)
			m = FDTAB_MAX;
		if (m > n)
			n = (size_t)m;
	}
	/* Untouched pages cost nothing. */
	p = mmap(NULL, n * sizeof(struct fd_state), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return;
	fdtab = p;
	fdtab_n = n;
}

static void
do_init(void)
{
	char err[512], path[SHIM_PATH_MAX];
	const char *cfg;

	in_shim++;
	shim_conf_defaults(&shim_conf);
	cfg = getenv("MPGW_CONFIG");
	if (cfg != NULL && cfg[0] != '\0' &&
	    shim_conf_load(&shim_conf, cfg, err, sizeof(err)) == -1)
		goto bad;
	if (shim_conf_env(&shim_conf, err, sizeof(err)) == -1 ||
	    shim_conf_finish(&shim_conf, shim_real.getaddrinfo,
	    shim_real.freeaddrinfo, err, sizeof(err)) == -1)
		goto bad;
	fdtab_init();
	if (shim_conf.remote_dns) {
		if (shim_conf.dns_table[0] != '\0')
			snprintf(path, sizeof(path), "%s", shim_conf.dns_table);
		else
			shim_fdns_default_path(path, sizeof(path));
		if (shim_fdns_open(&shim_fdns, path) == -1) {
			shim_warn("fake-DNS table %s: %s; names resolved in "
			    "this process are not shared with exec'd "
			    "programs", path, strerror(errno));
			if (shim_fdns_open(&shim_fdns, NULL) == -1)
				shim_conf.remote_dns = false;
		}
	}
	conf_ok = true;
	shim_debug("active: %s mode, method %s, gateway %s:%u, remote_dns "
	    "%s, mptcp %s, tfo_no_cookie %s",
	    shim_conf.mode == SHIM_MODE_IMPLICIT ? "implicit" : "explicit",
	    shim_conf.method == SHIM_METHOD_NONE ? "none" :
	    shim_conf.method == SHIM_METHOD_USERPASS ? "userpass" :
	    "tls-login", shim_conf.gw_host, shim_conf.gw_port,
	    shim_conf.remote_dns ? "on" : "off",
	    shim_conf.mptcp ? "on" : "off",
	    shim_conf.tfo_no_cookie ? "on" : "off");
	in_shim--;
	return;
bad:
	/* Fail closed: connections that would be proxied get EACCES. */
	shim_warn("configuration: %s; proxied connections will fail", err);
	in_shim--;
}

__attribute__((constructor)) static void
shim_ctor(void)
{
	int saved = errno;

	resolve_syms();
	pthread_once(&init_once, do_init);
	errno = saved;
}

bool
shim_active(void)
{
	resolve_syms();
	if (in_shim)
		return false;
	pthread_once(&init_once, do_init);
	return true;
}

bool
shim_remote_dns(void)
{
	return shim_active() && conf_ok && shim_conf.remote_dns &&
	    shim_fdns.t != NULL;
}

void
shim_enter(void)
{
	in_shim++;
}

void
shim_leave(void)
{
	in_shim--;
}

/* --- per-fd state ----------------------------------------------------- */

static uint64_t
fd_ino(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode))
		return 0;
	return (uint64_t)st.st_ino;
}

static void
fd_record(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct fd_state *s;
	uint64_t ino;

	if (fd < 0 || (size_t)fd >= fdtab_n || (ino = fd_ino(fd)) == 0)
		return;
	s = &fdtab[fd];
	__atomic_store_n(&s->ino, 0, __ATOMIC_RELEASE);
	if (len > sizeof(s->peer))
		len = sizeof(s->peer);
	memcpy(&s->peer, sa, len);
	s->len = len;
	__atomic_store_n(&s->ino, ino, __ATOMIC_RELEASE);
}

/* Copies fd's state into *out if it is ours and still the same socket. */
static bool
fd_lookup(int fd, struct fd_state *out)
{
	uint64_t ino;

	if (fd < 0 || (size_t)fd >= fdtab_n)
		return false;
	ino = __atomic_load_n(&fdtab[fd].ino, __ATOMIC_ACQUIRE);
	if (ino == 0)
		return false;
	*out = fdtab[fd];
	if (fd_ino(fd) != ino) {
		__atomic_compare_exchange_n(&fdtab[fd].ino, &ino, 0, false,
		    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

static void
fd_forget(int fd)
{
	if (fd >= 0 && (size_t)fd < fdtab_n &&
	    __atomic_load_n(&fdtab[fd].ino, __ATOMIC_RELAXED) != 0)
		__atomic_store_n(&fdtab[fd].ino, 0, __ATOMIC_RELEASE);
}

static void
fd_forget_range(unsigned first, unsigned last)
{
	if (fdtab_n == 0)
		return;
	if (last >= fdtab_n)
		last = (unsigned)fdtab_n - 1;
	for (unsigned fd = first; fd <= last && fd >= first; fd++)
		fd_forget((int)fd);
}

/* --- classification --------------------------------------------------- */

enum route {
	ROUTE_PASS = 0,		/* not ours: the real call */
	ROUTE_PROXY,		/* redirect to the gateway */
	ROUTE_AGAIN,		/* already ours: the real call to the gateway */
	ROUTE_FAIL,		/* fail with t->err */
};

/* Loopback and the unspecified address never go through the gateway. */
static bool
is_loopback_or_any(const struct sockaddr *sa)
{
	if (addr_is_loopback(sa))
		return true;
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const
	    void *)sa)->sin6_addr);
}

static bool
same_endpoint(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
	    IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
}

/* What a connect-like call on fd to sa should do. *dom gets the socket's
 * family; on ROUTE_FAIL *err the errno. */
static enum route
classify(int fd, const struct sockaddr *sa, socklen_t len,
    struct shim_target *t, int *dom, int *err)
{
	struct sockaddr_storage gw;
	struct fd_state st;
	int type, proto;
	socklen_t ol = sizeof(int);
	uint32_t slot;

	if (sa == NULL || len < sizeof(sa_family_t))
		return ROUTE_PASS;
	if (!(sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) &&
	    !(sa->sa_family == AF_INET6 &&
	    len >= sizeof(struct sockaddr_in6)))
		return ROUTE_PASS;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol) == -1 ||
	    type != SOCK_STREAM)
		return ROUTE_PASS;
	ol = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &ol) == -1 ||
	    (proto != 0 && proto != IPPROTO_TCP && proto != IPPROTO_MPTCP))
		return ROUTE_PASS;
	ol = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, dom, &ol) == -1 ||
	    *dom != sa->sa_family)
		return ROUTE_PASS;
	memset(t, 0, sizeof(*t));
	(void)addr_unmap(sa, &t->addr);
	t->port = ntohs(((const struct sockaddr_in *)&t->addr)->sin_port);
	if (is_loopback_or_any((struct sockaddr *)&t->addr))
		return ROUTE_PASS;
	(void)addr_unmap((const struct sockaddr *)&shim_conf.gw, &gw);
	if (conf_ok && same_endpoint((struct sockaddr *)&t->addr,
	    (struct sockaddr *)&gw))
		return ROUTE_PASS;
	if (!conf_ok) {
		*err = EACCES;
		return ROUTE_FAIL;
	}
	if (fd_lookup(fd, &st))
		return ROUTE_AGAIN;
	if (shim_conf.remote_dns && shim_fdns.t != NULL &&
	    (shim_fdns_slot(&shim_conf.fake4, (struct sockaddr *)&t->addr,
	    &slot) || shim_fdns_slot(&shim_conf.fake6,
	    (struct sockaddr *)&t->addr, &slot))) {
		if (shim_fdns_name(&shim_fdns, slot, t->name_buf,
		    sizeof(t->name_buf)) == -1) {
			shim_debug("fd %d: fake address with no name", fd);
			*err = EHOSTUNREACH;
			return ROUTE_FAIL;
		}
		t->name = t->name_buf;
	}
	return ROUTE_PROXY;
}

/* The gateway's address in the socket's family (v4-mapped for an IPv4
 * gateway on an AF_INET6 socket). -1 if it cannot be reached from dom. */
static int
gw_for(int fd, int dom, struct sockaddr_storage *out, socklen_t *len)
{
	const struct sockaddr *gw = (const struct sockaddr *)&shim_conf.gw;

	memset(out, 0, sizeof(*out));
	if (dom == gw->sa_family) {
		memcpy(out, gw, shim_conf.gw_len);
		*len = shim_conf.gw_len;
		return 0;
	}
	if (dom == AF_INET6 && gw->sa_family == AF_INET) {
		const struct sockaddr_in *g4 = (const void *)gw;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		int off = 0;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = g4->sin_port;
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6->sin6_addr.s6_addr[12], &g4->sin_addr, 4);
		*len = sizeof(*s6);
		/* A mapped address needs IPV6_V6ONLY off. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		return 0;
	}
	return -1;
}

static void
fmt_target(const struct shim_target *t, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr *sa = (const struct sockaddr *)&t->addr;

	if (t->name != NULL) {
		snprintf(out, cap, "%s:%u", t->name, t->port);
		return;
	}
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    a, sizeof(a));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->
		    sin6_addr, a, sizeof(a));
	snprintf(out, cap, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
	    t->port);
}

/* After a failure: back to an unconnected socket, so the app may retry. */
static void
disconnect(int fd)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };

	shim_real.connect(fd, &sa, sizeof(sa));
}

static int
so_error(int fd)
{
	int e = 0;
	socklen_t l = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == -1)
		return errno;
	return e;
}

/* Waits until fd's connect completes: 0 or -1 with its errno. */
static int
wait_connected(int fd, int64_t deadline)
{
	int e;

	if (shim_wait(fd, POLLOUT, deadline) == -1)
		return -1;
	if ((e = so_error(fd)) != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

/* --- the two modes ---------------------------------------------------- */

/*
 * Explicit mode: connect fd (non-blocking here) to the gateway and run the
 * SOCKS5 handshake, all before the deadline. 0 or -1/errno.
 */
static int
explicit_connect(int fd, const struct sockaddr *gw, socklen_t gwlen,
    const struct shim_target *t, int64_t deadline)
{
	if (shim_real.connect(fd, gw, gwlen) == -1 && errno != EINPROGRESS)
		return -1;
	if (wait_connected(fd, deadline) == -1)
		return -1;
	return shim_socks5_handshake(fd, t, deadline);
}

/*
 * Implicit mode: the Convert message, then app data (iov, may be empty),
 * in the SYN. *sent gets the bytes of app data the kernel took. With
 * wait (blocking app fd) returns only once the connection is established.
 * 0 or -1/errno.
 */
static int
implicit_connect(int fd, const struct sockaddr *gw, socklen_t gwlen,
    const struct shim_target *t, const struct iovec *iov, size_t iovcnt,
    int flags, bool wait, ssize_t *sent, int64_t deadline)
{
	uint8_t hdr[CONV_MSG_MAX];
	struct iovec v[IOV_MAX_SHIM + 1];
	struct msghdr m;
	ssize_t n, r;
	size_t queued;
	int one = 1;

	*sent = 0;
	if ((n = shim_convert_build(t, hdr, sizeof(hdr))) == -1)
		return -1;
	/*
	 * Cookieless SYN data only when the gateway takes it: refused, it
	 * makes the kernel fall an MPTCP connection back to TCP. Without it
	 * the kernel asks for a cookie and uses it from then on.
	 */
	if (shim_conf.tfo_no_cookie)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, &one,
		    sizeof(one));
	if (iovcnt > IOV_MAX_SHIM)
		iovcnt = 0;	/* header alone; the caller sends the rest */
	v[0].iov_base = hdr;
	v[0].iov_len = (size_t)n;
	for (size_t i = 0; i < iovcnt; i++)
		v[i + 1] = iov[i];
	memset(&m, 0, sizeof(m));
	m.msg_name = (void *)gw;
	m.msg_namelen = gwlen;
	m.msg_iov = v;
	m.msg_iovlen = iovcnt + 1;
	r = shim_real.sendmsg(fd, &m, (flags & ~MSG_DONTWAIT) | MSG_FASTOPEN |
	    MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r == -1 && errno == EINPROGRESS) {
		/* No cookie and no cookie-less mode: nothing was queued. */
		queued = 0;
	} else if (r == -1 && errno == EOPNOTSUPP) {
		shim_debug("fd %d: no TCP Fast Open; connect, then send", fd);
		if (shim_real.connect(fd, gw, gwlen) == -1 &&
		    errno != EINPROGRESS)
			return -1;
		queued = 0;
	} else if (r == -1) {
		return -1;
	} else {
		queued = (size_t)r;
	}
	if (queued < (size_t)n) {
		if (wait_connected(fd, deadline) == -1 ||
		    shim_send_all(fd, hdr + queued, (size_t)n - queued,
		    deadline) == -1)
			return -1;
	} else {
		*sent = (ssize_t)(queued - (size_t)n);
		if (wait && wait_connected(fd, deadline) == -1)
			return -1;
	}
	return 0;
}

/*
 * The connect-like entry for both connect() and sendto/sendmsg with
 * MSG_FASTOPEN. iov/flags carry app data (iov NULL for connect).
 * Returns what the hooked call returns: connect: 0 or -1; send: bytes.
 */
static ssize_t
redirect(int fd, const struct sockaddr *sa, socklen_t len,
    const struct msghdr *app, int flags, bool is_send)
{
	struct sockaddr_storage gw;
	struct shim_target t;
	socklen_t gwlen;
	int dom = 0, err = 0, fl, saved = errno;
	bool nb;
	ssize_t sent = 0, r;
	int64_t deadline;
	char what[300];

	switch (classify(fd, sa, len, &t, &dom, &err)) {
	case ROUTE_PASS:
		errno = saved;
		return -2;
	case ROUTE_FAIL:
		errno = err;
		return -1;
	case ROUTE_AGAIN:
		if (gw_for(fd, dom, &gw, &gwlen) == -1)
			return -2;
		if (is_send) {
			struct msghdr m = *app;

			m.msg_name = NULL;
			m.msg_namelen = 0;
			return shim_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
		}
		return shim_real.connect(fd, (struct sockaddr *)&gw, gwlen);
	case ROUTE_PROXY:
		break;
	}
	fmt_target(&t, what, sizeof(what));
	if (gw_for(fd, dom, &gw, &gwlen) == -1) {
		shim_debug("fd %d -> %s: an IPv4 socket cannot reach the IPv6 "
		    "gateway", fd, what);
		errno = ENETUNREACH;
		return -1;
	}
	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	nb = (fl & O_NONBLOCK) != 0;
	if (!nb && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	shim_enter();
	deadline = shim_now_ms() + shim_conf.timeout_ms;
	if (shim_conf.mode == SHIM_MODE_IMPLICIT)
		r = implicit_connect(fd, (struct sockaddr *)&gw, gwlen, &t,
		    is_send ? app->msg_iov : NULL,
		    is_send ? app->msg_iovlen : 0, is_send ? flags : 0,
		    !nb, &sent, deadline);
	else
		r = explicit_connect(fd, (struct sockaddr *)&gw, gwlen, &t,
		    deadline);
	err = errno;
	shim_leave();
	if (r == -1) {
		shim_debug("fd %d -> %s: %s", fd, what, strerror(err));
		disconnect(fd);
		if (!nb)
			fcntl(fd, F_SETFL, fl);
		if (err == EINPROGRESS)
			err = ETIMEDOUT;
		/* Implicit mode: a reset during connect is the gateway's
		 * refusal (Silent), so say what a direct connect would. */
		if (err == ECONNRESET && shim_conf.mode == SHIM_MODE_IMPLICIT)
			err = ECONNREFUSED;
		errno = err;
		return -1;
	}
	if (!nb)
		fcntl(fd, F_SETFL, fl);
	fd_record(fd, sa, len);
	shim_debug("fd %d -> %s via %s:%u", fd, what, shim_conf.gw_host,
	    shim_conf.gw_port);
	if (is_send) {
		struct msghdr m = *app;

		if (sent > 0 || app->msg_iovlen == 0) {
			errno = saved;
			return sent;
		}
		/* The app data did not ride in the SYN: send it now. */
		m.msg_name = NULL;
		m.msg_namelen = 0;
		r = shim_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    shim_conf.mode == SHIM_MODE_IMPLICIT && nb)
			errno = EINPROGRESS;
		return r;
	}
	if (nb) {
		errno = EINPROGRESS;
		return -1;
	}
	errno = saved;
	return 0;
}

/* --- hooks ------------------------------------------------------------ */

SHIM_EXPORT int
connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	ssize_t r;

	if (!shim_active())
		return shim_real.connect(fd, SA_IN(addr), len);
	r = redirect(fd, SA_IN(addr), len, NULL, 0, false);
	if (r == -2)
		return shim_real.connect(fd, SA_IN(addr), len);
	return (int)r;
}

extern __typeof(connect) __connect
    __attribute__((alias("connect"), visibility("default")));

SHIM_EXPORT ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t r;

	if (!shim_active() || !(flags & MSG_FASTOPEN) || msg == NULL ||
	    msg->msg_name == NULL)
		return shim_real.sendmsg(fd, msg, flags);
	r = redirect(fd, msg->msg_name, msg->msg_namelen, msg, flags, true);
	if (r == -2)
		return shim_real.sendmsg(fd, msg, flags);
	return r;
}

SHIM_EXPORT ssize_t
sendto(int fd, const void *buf, size_t len, int flags,
    __CONST_SOCKADDR_ARG addr, socklen_t alen)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m;
	ssize_t r;

	if (!shim_active() || !(flags & MSG_FASTOPEN) || SA_IN(addr) == NULL)
		return shim_real.sendto(fd, buf, len, flags, SA_IN(addr), alen);
	memset(&m, 0, sizeof(m));
	m.msg_name = (void *)SA_IN(addr);
	m.msg_namelen = alen;
	m.msg_iov = &iov;
	m.msg_iovlen = len > 0 ? 1 : 0;
	r = redirect(fd, SA_IN(addr), alen, &m, flags, true);
	if (r == -2)
		return shim_real.sendto(fd, buf, len, flags, SA_IN(addr), alen);
	return r;
}

SHIM_EXPORT int
getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct fd_state st;
	int saved = errno;

	shim_active();
	if (SA_IN(addr) == NULL || len == NULL || !fd_lookup(fd, &st))
		return shim_real.getpeername(fd, SA_IN(addr), len);
	/* Still connected? Otherwise the kernel's ENOTCONN is the answer. */
	{
		struct sockaddr_storage tmp;
		socklen_t tl = sizeof(tmp);

		if (shim_real.getpeername(fd, (struct sockaddr *)&tmp,
		    &tl) == -1)
			return -1;
	}
	memcpy(SA_IN(addr), &st.peer, *len < st.len ? *len : st.len);
	*len = st.len;
	errno = saved;
	return 0;
}

SHIM_EXPORT int
socket(int domain, int type, int protocol)
{
	int fd, saved = errno;

	if (!shim_active() || !conf_ok || !shim_conf.mptcp ||
	    __atomic_load_n(&mptcp_refused, __ATOMIC_RELAXED) ||
	    (domain != AF_INET && domain != AF_INET6) ||
	    (type & 0xf) != SOCK_STREAM ||
	    (protocol != 0 && protocol != IPPROTO_TCP))
		return shim_real.socket(domain, type, protocol);
	fd = shim_real.socket(domain, type, IPPROTO_MPTCP);
	if (fd != -1) {
		errno = saved;
		return fd;
	}
	if (errno == EPROTONOSUPPORT || errno == ENOPROTOOPT ||
	    errno == EINVAL || errno == EAFNOSUPPORT) {
		shim_debug("MPTCP sockets refused (%s); plain TCP",
		    strerror(errno));
		__atomic_store_n(&mptcp_refused, true, __ATOMIC_RELAXED);
	}
	errno = saved;
	return shim_real.socket(domain, type, protocol);
}

SHIM_EXPORT int
close(int fd)
{
	resolve_syms();
	fd_forget(fd);
	return shim_real.close(fd);
}

SHIM_EXPORT int
close_range(unsigned first, unsigned last, int flags)
{
	resolve_syms();
	if (!(flags & CLOSE_RANGE_CLOEXEC))
		fd_forget_range(first, last);
	if (shim_real.close_range != NULL)
		return shim_real.close_range(first, last, flags);
	return (int)syscall(SYS_close_range, first, last, flags);
}

SHIM_EXPORT void
closefrom(int low)
{
	resolve_syms();
	if (low >= 0)
		fd_forget_range((unsigned)low, ~0u);
	if (shim_real.closefrom != NULL)
		shim_real.closefrom(low);
	else
		syscall(SYS_close_range, (unsigned)low, ~0u, 0);
}

static void
after_dup(int oldfd, int newfd)
{
	struct fd_state st;

	if (oldfd == newfd)
		return;
	if (fd_lookup(oldfd, &st))
		fd_record(newfd, (struct sockaddr *)&st.peer, st.len);
	else
		fd_forget(newfd);
}

SHIM_EXPORT int
dup2(int oldfd, int newfd)
{
	int r, saved;

	resolve_syms();
	r = shim_real.dup2(oldfd, newfd);
	if (r != -1) {
		saved = errno;
		after_dup(oldfd, newfd);
		errno = saved;
	}
	return r;
}

SHIM_EXPORT int
dup3(int oldfd, int newfd, int flags)
{
	int r, saved;

	resolve_syms();
	r = shim_real.dup3(oldfd, newfd, flags);
	if (r != -1) {
		saved = errno;
		after_dup(oldfd, newfd);
		errno = saved;
	}
	return r;
}
