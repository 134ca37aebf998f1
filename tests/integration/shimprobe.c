/*
 * shimprobe V4 PORT4 V6 PORT6 CHECK...: socket-API checks for the client
 * shim, run under mpgw-run by tests/integration/test_shim.py. The targets
 * serve HTTP "GET /hello" -> "hello\n". Each CHECK prints "ok CHECK" or
 * "FAIL CHECK: why" and the exit status is the number of failures.
 *
 * Compiled by the test at run time: gcc -std=c11 -D_GNU_SOURCE -pthread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_in t4;
static struct sockaddr_in6 t6;
static char why[512];

static bool
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return false;
}

/* Waits for events on a non-blocking fd (10 s). */
static bool
wait_fd(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };

	return poll(&p, 1, 10000) == 1;
}

/* GET /hello on a connected fd (blocking or not): body must be hello. */
static bool
get_hello(int fd)
{
	static const char req[] = "GET /hello HTTP/1.0\r\n\r\n";
	char buf[4096];
	size_t len = 0;
	ssize_t r;

	for (size_t off = 0; off < sizeof(req) - 1;) {
		r = send(fd, req + off, sizeof(req) - 1 - off, MSG_NOSIGNAL);
		if (r == -1 && errno == EAGAIN && wait_fd(fd, POLLOUT))
			continue;
		if (r == -1)
			return fail("send: %s", strerror(errno));
		off += (size_t)r;
	}
	for (;;) {
		r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (r == -1 && errno == EAGAIN && wait_fd(fd, POLLIN))
			continue;
		if (r == -1)
			return fail("recv: %s", strerror(errno));
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	if (len < 6 || strcmp(buf + len - 6, "hello\n") != 0)
		return fail("unexpected answer (%zu bytes): %.80s", len, buf);
	return true;
}

static int
tcp4(int flags)
{
	return socket(AF_INET, SOCK_STREAM | flags, 0);
}

static bool
connect_blocking(int fd, const void *sa, socklen_t len)
{
	if (connect(fd, sa, len) == -1)
		return fail("connect: %s", strerror(errno));
	return true;
}

/* Non-blocking connect the portable way: EINPROGRESS, POLLOUT, SO_ERROR. */
static bool
connect_nb(int fd, const void *sa, socklen_t len)
{
	int e = 0;
	socklen_t l = sizeof(e);

	if (connect(fd, sa, len) == -1) {
		if (errno != EINPROGRESS)
			return fail("connect: %s", strerror(errno));
		if (!wait_fd(fd, POLLOUT))
			return fail("no POLLOUT in 10 s");
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == -1 || e != 0)
		return fail("SO_ERROR %s", strerror(e));
	return true;
}

static bool
check_blocking(void)
{
	int fd = tcp4(0);
	bool ok = connect_blocking(fd, &t4, sizeof(t4)) && get_hello(fd);

	close(fd);
	return ok;
}

static bool
check_nonblocking(void)
{
	int fd = tcp4(SOCK_NONBLOCK);
	bool ok;
	int r = connect(fd, (struct sockaddr *)&t4, sizeof(t4));

	/* The shim documents -1/EINPROGRESS for non-blocking sockets. */
	if (r != -1 || errno != EINPROGRESS) {
		close(fd);
		return fail("connect gave %d/%s, not EINPROGRESS", r,
		    strerror(errno));
	}
	ok = wait_fd(fd, POLLOUT) && connect_nb(fd, &t4, sizeof(t4)) &&
	    (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0 && get_hello(fd);
	if (ok && !(fcntl(fd, F_GETFL) & O_NONBLOCK))
		ok = fail("O_NONBLOCK lost");
	close(fd);
	return ok;
}

static bool
check_refused(void)
{
	struct sockaddr_in closed = t4;
	char c;
	int fd = tcp4(0), r;

	closed.sin_port = htons(1);
	r = connect(fd, (struct sockaddr *)&closed, sizeof(closed));
	if (r == -1) {
		int e = errno;

		close(fd);
		if (e != ECONNREFUSED)
			return fail("errno %s, not ECONNREFUSED", strerror(e));
		return true;
	}
	/* Implicit mode with Silent: the converter resets afterwards. */
	r = (int)recv(fd, &c, 1, 0);
	close(fd);
	if (r == -1 && errno == ECONNRESET)
		return true;
	return fail("connect succeeded, then recv gave %d/%s", r,
	    strerror(errno));
}

static bool
same4(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_family == AF_INET && a->sin_port == b->sin_port &&
	    a->sin_addr.s_addr == b->sin_addr.s_addr;
}

static bool
check_getpeername(void)
{
	struct sockaddr_in got;
	socklen_t l = sizeof(got);
	int fd = tcp4(0);
	bool ok = connect_blocking(fd, &t4, sizeof(t4));

	if (ok && getpeername(fd, (struct sockaddr *)&got, &l) == -1)
		ok = fail("getpeername: %s", strerror(errno));
	if (ok && (l != sizeof(got) || !same4(&got, &t4)))
		ok = fail("getpeername is not the target");
	ok = ok && get_hello(fd);
	close(fd);
	return ok;
}

static int
opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	getsockopt(fd, level, name, &v, &l);
	return v;
}

static bool
check_options(void)
{
	int fd = tcp4(SOCK_CLOEXEC), one = 1;
	bool ok;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	ok = connect_blocking(fd, &t4, sizeof(t4));
	if (ok && opt(fd, IPPROTO_TCP, TCP_NODELAY) == 0)
		ok = fail("TCP_NODELAY lost");
	if (ok && opt(fd, SOL_SOCKET, SO_KEEPALIVE) != 1)
		ok = fail("SO_KEEPALIVE lost");
	if (ok && !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
		ok = fail("FD_CLOEXEC lost");
	if (ok && opt(fd, SOL_SOCKET, SO_DOMAIN) != AF_INET)
		ok = fail("family changed");
	ok = ok && get_hello(fd);
	close(fd);
	return ok;
}

/* bind() before connect: the source address survives. 127.0.0.2, so the
 * gateway still sees a loopback client. */
static bool
check_bind(void)
{
	struct sockaddr_in src = { .sin_family = AF_INET }, got;
	socklen_t l = sizeof(got);
	int fd = tcp4(0);
	bool ok = true;

	src.sin_addr.s_addr = htonl(0x7f000002);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1)
		ok = fail("bind: %s", strerror(errno));
	ok = ok && connect_blocking(fd, &t4, sizeof(t4));
	if (ok && (getsockname(fd, (struct sockaddr *)&got, &l) == -1 ||
	    got.sin_addr.s_addr != src.sin_addr.s_addr))
		ok = fail("bound source address lost");
	ok = ok && get_hello(fd);
	close(fd);
	return ok;
}

static bool
check_ipv6(void)
{
	struct sockaddr_in6 got;
	socklen_t l = sizeof(got);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool ok = connect_blocking(fd, &t6, sizeof(t6));

	if (ok && (getpeername(fd, (struct sockaddr *)&got, &l) == -1 ||
	    got.sin6_family != AF_INET6 || got.sin6_port != t6.sin6_port ||
	    !IN6_ARE_ADDR_EQUAL(&got.sin6_addr, &t6.sin6_addr)))
		ok = fail("getpeername is not the IPv6 target");
	if (ok && opt(fd, SOL_SOCKET, SO_DOMAIN) != AF_INET6)
		ok = fail("family changed");
	ok = ok && get_hello(fd);
	close(fd);
	return ok;
}

static bool
check_v4mapped(void)
{
	struct sockaddr_in6 m = { .sin6_family = AF_INET6,
		.sin6_port = t4.sin_port };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool ok;

	m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&m.sin6_addr.s6_addr[12], &t4.sin_addr, 4);
	ok = connect_blocking(fd, &m, sizeof(m)) && get_hello(fd);
	close(fd);
	return ok;
}

/* The parent of the worker exits at once; the worker reports by pipe. */
static bool
check_fork(void)
{
	int p[2], st;
	char c = 0;
	pid_t pid;

	if (pipe(p) == -1)
		return fail("pipe");
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (fork() == 0) {
			usleep(200000);	/* the middle process is gone */
			c = check_blocking() && check_nonblocking() ? 'y' :
			    'n';
			(void)!write(p[1], &c, 1);
			_exit(0);
		}
		_exit(0);
	}
	close(p[1]);
	waitpid(pid, &st, 0);
	if (read(p[0], &c, 1) != 1)
		c = 0;
	close(p[0]);
	return c == 'y' ? true : fail("grandchild reported %c", c ? c : '?');
}

static void *
thread_main(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5; i++)
		if (!(i % 2 ? check_nonblocking() : check_blocking()))
			return (void *)1;
	return NULL;
}

static bool
check_threads(void)
{
	pthread_t th[8];
	void *r;
	int bad = 0;

	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, thread_main, NULL);
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], &r);
		bad += r != NULL;
	}
	return bad == 0 ? true : fail("%d of 8 threads failed: %s", bad, why);
}

static bool
check_epoll(void)
{
	struct epoll_event ev = { .events = EPOLLOUT }, out;
	int fd = tcp4(SOCK_NONBLOCK), ep = epoll_create1(0), e = 0;
	socklen_t l = sizeof(e);
	bool ok = true;

	ev.data.fd = fd;
	if (connect(fd, (struct sockaddr *)&t4, sizeof(t4)) == -1 &&
	    errno != EINPROGRESS)
		ok = fail("connect: %s", strerror(errno));
	if (ok && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		ok = fail("epoll_ctl: %s", strerror(errno));
	if (ok && epoll_wait(ep, &out, 1, 10000) != 1)
		ok = fail("no EPOLLOUT");
	if (ok && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == -1 ||
	    e != 0))
		ok = fail("SO_ERROR %s", strerror(e));
	ok = ok && get_hello(fd);
	close(ep);
	close(fd);
	return ok;
}

static bool
check_errno(void)
{
	struct sockaddr_in got;
	socklen_t l = sizeof(got);
	int fd = tcp4(0);
	bool ok = true;

	errno = 4242;
	if (connect(fd, (struct sockaddr *)&t4, sizeof(t4)) == -1)
		ok = fail("connect: %s", strerror(errno));
	else if (errno != 4242)
		ok = fail("errno changed to %d by a successful connect",
		    errno);
	errno = 4243;
	if (ok && (getpeername(fd, (struct sockaddr *)&got, &l) == -1 ||
	    errno != 4243))
		ok = fail("errno changed by getpeername");
	ok = ok && get_hello(fd);
	close(fd);
	return ok;
}

static bool
check_fastopen(void)
{
	static const char req[] = "GET /hello HTTP/1.0\r\n\r\n";
	char buf[2048];
	size_t len = 0;
	ssize_t r;
	int fd = tcp4(0);
	bool ok = true;

	r = sendto(fd, req, sizeof(req) - 1, MSG_FASTOPEN | MSG_NOSIGNAL,
	    (struct sockaddr *)&t4, sizeof(t4));
	if (r != (ssize_t)sizeof(req) - 1)
		ok = fail("sendto(MSG_FASTOPEN) gave %zd/%s", r,
		    strerror(errno));
	while (ok && (r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	if (ok && (len < 6 || strcmp(buf + len - 6, "hello\n") != 0))
		ok = fail("answer: %.80s", buf);
	close(fd);
	return ok;
}

static bool
check_dup2(void)
{
	struct sockaddr_in got;
	socklen_t l = sizeof(got);
	int fd = tcp4(0), fd2;
	bool ok = connect_blocking(fd, &t4, sizeof(t4));

	if (ok && (dup2(fd, 200) != 200 ||
	    getpeername(200, (struct sockaddr *)&got, &l) == -1 ||
	    !same4(&got, &t4)))
		ok = fail("getpeername of the dup2 copy");
	close(200);
	close(fd);
	/* The next socket takes the same number: no stale state. */
	fd2 = tcp4(0);
	if (ok && fd2 != fd)
		ok = fail("fd %d, expected reuse of %d", fd2, fd);
	ok = ok && connect_blocking(fd2, &t4, sizeof(t4)) && get_hello(fd2);
	close(fd2);
	return ok;
}

static bool
check_closefrom(void)
{
	struct sockaddr_in other = t4, got;
	socklen_t l = sizeof(got);
	int fd = tcp4(0), fd2;
	bool ok = connect_blocking(fd, &t4, sizeof(t4));

	/* A close the shim cannot see (raw syscall). */
	syscall(SYS_close_range, fd, ~0u, 0);
	fd2 = tcp4(0);
	if (ok && fd2 != fd)
		ok = fail("fd %d, expected reuse of %d", fd2, fd);
	other.sin_port = htons(1);
	/* Unconnected socket on a reused number: ENOTCONN, not the old
	 * target. */
	if (ok && getpeername(fd2, (struct sockaddr *)&got, &l) != -1)
		ok = fail("stale getpeername after close_range");
	ok = ok && connect_blocking(fd2, &t4, sizeof(t4)) && get_hello(fd2);
	close(fd2);
	(void)other;
	return ok;
}

/* MPGW_MPTCP=on: plain TCP sockets come out MPTCP, and still work. */
static bool
check_mptcp(void)
{
	int fd = tcp4(0);
	bool ok = true;

	if (opt(fd, SOL_SOCKET, SO_PROTOCOL) != 262)
		ok = fail("SO_PROTOCOL %d, not IPPROTO_MPTCP",
		    opt(fd, SOL_SOCKET, SO_PROTOCOL));
	ok = ok && connect_blocking(fd, &t4, sizeof(t4)) && get_hello(fd);
	close(fd);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (ok && opt(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_UDP)
		ok = fail("a UDP socket was changed");
	close(fd);
	return ok;
}

static const struct {
	const char *name;
	bool (*fn)(void);
} checks[] = {
	{ "blocking", check_blocking },
	{ "nonblocking", check_nonblocking },
	{ "refused", check_refused },
	{ "getpeername", check_getpeername },
	{ "options", check_options },
	{ "bind", check_bind },
	{ "ipv6", check_ipv6 },
	{ "v4mapped", check_v4mapped },
	{ "fork", check_fork },
	{ "threads", check_threads },
	{ "epoll", check_epoll },
	{ "errno", check_errno },
	{ "fastopen", check_fastopen },
	{ "dup2", check_dup2 },
	{ "closefrom", check_closefrom },
	{ "mptcp", check_mptcp },
};

int
main(int argc, char **argv)
{
	int failed = 0;

	if (argc < 6) {
		fprintf(stderr, "usage: shimprobe V4 PORT4 V6 PORT6 CHECK...\n");
		return 100;
	}
	t4.sin_family = AF_INET;
	t4.sin_port = htons((uint16_t)atoi(argv[2]));
	t6.sin6_family = AF_INET6;
	t6.sin6_port = htons((uint16_t)atoi(argv[4]));
	if (inet_pton(AF_INET, argv[1], &t4.sin_addr) != 1 ||
	    inet_pton(AF_INET6, argv[3], &t6.sin6_addr) != 1) {
		fprintf(stderr, "bad address\n");
		return 100;
	}
	for (int i = 5; i < argc; i++) {
		size_t k;

		for (k = 0; k < sizeof(checks) / sizeof(checks[0]); k++)
			if (strcmp(argv[i], checks[k].name) == 0)
				break;
		if (k == sizeof(checks) / sizeof(checks[0])) {
			fprintf(stderr, "unknown check %s\n", argv[i]);
			return 100;
		}
		why[0] = '\0';
		if (checks[k].fn()) {
			printf("ok %s\n", argv[i]);
		} else {
			printf("FAIL %s: %s\n", argv[i], why);
			failed++;
		}
		fflush(stdout);
	}
	return failed;
}
