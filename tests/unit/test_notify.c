/*
 * gateway/notify: the NOTIFY_SOCKET datagrams, to a path and to an
 * abstract name, as a service manager would receive them.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gateway/notify.h"

static char sock_path[108];

/*
 * A datagram socket bound to name (a path, or "@..." for the abstract
 * namespace), with a receive timeout so that a missing message fails the
 * test instead of hanging it. NOTIFY_SOCKET is set to name.
 */
static int
listen_at(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert_neq(fd, -1);
	cr_assert_lt(n, sizeof(sun.sun_path));
	memcpy(sun.sun_path, name, n);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)), 0,
	    "bind %s: %s", name, strerror(errno));
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)),
	    0);
	cr_assert_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	return fd;
}

/* The next datagram on fd as a string. */
static void
next_msg(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, 0);

	cr_assert_geq(n, 0, "no message: %s", strerror(errno));
	buf[n] = '\0';
}

static void
fini_path(void)
{
	if (sock_path[0] != '\0')
		unlink(sock_path);
}

Test(notify, without_the_variable_does_nothing)
{
	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(notify_send("READY=1"), 0);
	cr_assert_eq(setenv("NOTIFY_SOCKET", "", 1), 0);
	cr_assert_eq(notify_send("READY=1"), 0);
}

Test(notify, to_a_path, .fini = fini_path)
{
	char buf[512];
	int fd;

	snprintf(sock_path, sizeof(sock_path), "/tmp/test_notify.%d",
	    (int)getpid());
	unlink(sock_path);
	fd = listen_at(sock_path);
	cr_assert_eq(notify_send("READY=1\nSTATUS=running: %u worker(s)", 2u),
	    0, "%s", strerror(errno));
	next_msg(fd, buf, sizeof(buf));
	cr_assert_str_eq(buf, "READY=1\nSTATUS=running: 2 worker(s)");
	cr_assert_eq(notify_send("STOPPING=1"), 0);
	next_msg(fd, buf, sizeof(buf));
	cr_assert_str_eq(buf, "STOPPING=1");
	close(fd);
}

Test(notify, to_an_abstract_name)
{
	char name[64], buf[512];
	int fd;

	snprintf(name, sizeof(name), "@mpgw/test_notify/%d", (int)getpid());
	fd = listen_at(name);
	cr_assert_eq(notify_send("READY=1"), 0, "%s", strerror(errno));
	next_msg(fd, buf, sizeof(buf));
	cr_assert_str_eq(buf, "READY=1");
	close(fd);
}

Test(notify, reloading_carries_the_monotonic_time)
{
	char name[64], buf[512], *end;
	struct timespec ts;
	uint64_t before, after, usec;
	int fd;

	snprintf(name, sizeof(name), "@mpgw/test_notify_reload/%d",
	    (int)getpid());
	fd = listen_at(name);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	before = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	cr_assert_eq(notify_reloading(), 0, "%s", strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	after = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	next_msg(fd, buf, sizeof(buf));
	cr_assert_eq(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27), 0,
	    "%s", buf);
	usec = strtoull(buf + 27, &end, 10);
	cr_assert_eq(*end, '\0', "%s", buf);
	cr_assert(usec >= before && usec <= after,
	    "%" PRIu64 " not in [%" PRIu64 ", %" PRIu64 "]", usec, before,
	    after);
	close(fd);
}

Test(notify, bad_names_and_no_listener)
{
	char longname[200];

	cr_assert_eq(setenv("NOTIFY_SOCKET", "relative/path", 1), 0);
	errno = 0;
	cr_assert_eq(notify_send("READY=1"), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(setenv("NOTIFY_SOCKET", "@", 1), 0);
	cr_assert_eq(notify_send("READY=1"), -1);
	cr_assert_eq(errno, EINVAL);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(setenv("NOTIFY_SOCKET", longname, 1), 0);
	cr_assert_eq(notify_send("READY=1"), -1);
	cr_assert_eq(errno, EINVAL);
	/* A name nobody listens on: the error reaches the caller. */
	cr_assert_eq(setenv("NOTIFY_SOCKET", "/nonexistent/mpgw-notify", 1),
	    0);
	cr_assert_eq(notify_send("READY=1"), -1);
	cr_assert_eq(errno, ENOENT);
}
