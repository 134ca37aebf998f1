/*
 * gateway/mptcp.c against the running kernel: MPTCP_FULL_INFO as read by
 * mptcp_subflows() on a real loopback connection. Skipped where the
 * kernel has no MPTCP (or no MPTCP_FULL_INFO, before Linux 6.5).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/mptcp.h"

/* A connected pair over 127.0.0.1: *c the client, *s the accepted one. */
static bool
pair(int proto, int *c, int *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int l;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((l = socket(AF_INET, SOCK_STREAM, proto)) == -1)
		return false;
	cr_assert_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	*c = socket(AF_INET, SOCK_STREAM, proto);
	cr_assert_neq(*c, -1);
	cr_assert_eq(connect(*c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	*s = accept(l, NULL, NULL);
	cr_assert_neq(*s, -1);
	close(l);
	return true;
}

/* Read exactly n bytes from fd. */
static void
read_n(int fd, size_t n)
{
	char buf[4096];

	while (n > 0) {
		ssize_t k = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));

		cr_assert_gt(k, 0);
		n -= (size_t)k;
	}
}

Test(mptcp, full_info_counts_subflow_bytes)
{
	struct mptcp_subflow sf[MPTCP_SUBFLOWS_MAX];
	char data[5000];
	int c, s, n;
	const struct sockaddr_in *sin;

	if (!pair(IPPROTO_MPTCP, &c, &s))
		cr_skip_test("no MPTCP sockets here: %s", strerror(errno));
	cr_assert(mptcp_active(c), "loopback MPTCP fell back");
	memset(data, 'x', sizeof(data));
	cr_assert_eq(write(c, data, sizeof(data)), (ssize_t)sizeof(data));
	read_n(s, sizeof(data));
	cr_assert_eq(write(s, data, 300), 300);
	read_n(c, 300);
	n = mptcp_subflows(c, sf, MPTCP_SUBFLOWS_MAX);
	if (n == -1 && (errno == EOPNOTSUPP || errno == ENOPROTOOPT ||
	    errno == EINVAL))
		cr_skip_test("no MPTCP_FULL_INFO (Linux < 6.5): %s",
		    strerror(errno));
	cr_assert_eq(n, 1, "subflows: %d (%s)", n, strerror(errno));
	cr_assert_eq(sf[0].local.ss_family, AF_INET);
	sin = (const struct sockaddr_in *)&sf[0].local;
	cr_assert_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	/* The peer's 300 bytes were read, so they are in bytes_received. */
	cr_assert_eq(sf[0].received, 300);
	/* Sent once; the read on the other end does not wait for the ACK. */
	cr_assert_eq(sf[0].sent, sizeof(data));
	/* Room for none: the count, nothing written. */
	cr_assert_eq(mptcp_subflows(c, sf, 0), 0);
	close(c);
	close(s);
}

Test(mptcp, plain_tcp_has_no_subflows)
{
	struct mptcp_subflow sf[MPTCP_SUBFLOWS_MAX];
	int c, s;

	cr_assert(pair(IPPROTO_TCP, &c, &s));
	cr_assert(!mptcp_active(c));
	cr_assert_eq(mptcp_subflows(c, sf, MPTCP_SUBFLOWS_MAX), -1);
	close(c);
	close(s);
}
