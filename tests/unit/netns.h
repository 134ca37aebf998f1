/*
 * For unit tests that need a network of their own: the calling test
 * process (criterion runs each test in its own) moves into a new network
 * namespace with only loopback up, and a new mount namespace in which
 * files can be bind-mounted over /etc/NAME, as `ip netns exec` does with
 * /etc/netns/NS/NAME. Nothing outside the process sees any of it. Needs
 * root; netns_skip_reason() says why a test cannot run.
 */
#ifndef MPGW_TEST_NETNS_H
#define MPGW_TEST_NETNS_H

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Why netns tests cannot run here, or NULL. */
static inline const char *
netns_skip_reason(void)
{
	if (geteuid() != 0)
		return "needs root (network and mount namespaces)";
	return NULL;
}

/* Enter fresh network and mount namespaces; bring lo up. */
static inline void
netns_enter(void)
{
	struct ifreq ifr;
	int fd;

	cr_assert_eq(unshare(CLONE_NEWNET | CLONE_NEWNS), 0, "unshare: %s",
	    strerror(errno));
	/* Our bind mounts must not leak back into the host's namespace. */
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0,
	    "mount --make-rprivate /: %s", strerror(errno));
	cr_assert_neq(fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), -1);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0, "lo up: %s",
	    strerror(errno));
	close(fd);
}

/* Write text to a fresh file; its path into path (PATH_MAX). */
static inline void
netns_tmpfile(const char *text, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "/tmp/mpgw-test-XXXXXX");
	cr_assert_neq(fd = mkstemp(path), -1, "mkstemp: %s", strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, 0644), 0);
	close(fd);
}

/*
 * Show text as /etc/NAME to this process (a bind mount, as `ip netns
 * exec` does). The backing file is unlinked at once: the mount keeps it.
 */
static inline void
netns_etc(const char *name, const char *text)
{
	char src[64], dst[64];

	netns_tmpfile(text, src, sizeof(src));
	snprintf(dst, sizeof(dst), "/etc/%s", name);
	cr_assert_eq(mount(src, dst, NULL, MS_BIND, NULL), 0,
	    "bind %s on %s: %s", src, dst, strerror(errno));
	unlink(src);
}

/* Replace the contents of a file bind-mounted with netns_etc(). */
static inline void
netns_etc_rewrite(const char *name, const char *text)
{
	char dst[64];
	int fd;

	snprintf(dst, sizeof(dst), "/etc/%s", name);
	cr_assert_neq(fd = open(dst, O_WRONLY | O_TRUNC | O_CLOEXEC), -1,
	    "%s: %s", dst, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Run a shell command (ip, ...) in the test's namespaces; must succeed. */
static inline void
netns_sh(const char *cmd)
{
	int rc = system(cmd);

	cr_assert_eq(rc, 0, "%s: exit %d", cmd, rc);
}

/*
 * Run cmd until it succeeds, for at most five seconds. The kernel finishes
 * some changes on a workqueue (an IPv6 address's local route waits for the
 * link watch and DAD work even with nodad), so a test that needs the result
 * waits for it to be visible first.
 */
static inline void
netns_wait(const char *cmd)
{
	struct timespec nap = {0, 10 * 1000 * 1000};

	for (int i = 0; i < 500; i++) {
		if (system(cmd) == 0)
			return;
		nanosleep(&nap, NULL);
	}
	cr_assert_fail("%s: still failing after 5 s", cmd);
}

#endif
