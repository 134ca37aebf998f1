#include "lib/route.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static _Thread_local int rt_fd = -1;
static _Thread_local uint32_t rt_seq;

/* Ask once; see route.h. */
int
route_type(const struct sockaddr *sa, unsigned char *type)
{
	struct {
		struct nlmsghdr nh;
		struct rtmsg rtm;
		char attrs[RTA_SPACE(16)];
	} req;
	union {
		struct nlmsghdr nh;
		char buf[8192];
	} rep;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK }, from;
	socklen_t flen;
	struct rtattr *rta;
	const void *addr;
	size_t alen;
	ssize_t n;

	switch (sa->sa_family) {
	case AF_INET:
		addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		alen = 4;
		break;
	case AF_INET6:
		addr =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		alen = 16;
		break;
	default:
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (rt_fd == -1 && (rt_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_ROUTE)) == -1)
		return -1;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_type = RTM_GETROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = ++rt_seq;
	req.rtm.rtm_family = sa->sa_family;
	req.rtm.rtm_dst_len = (unsigned char)(alen * 8);
	rta = (struct rtattr *)(void *)((char *)&req +
	    NLMSG_ALIGN(NLMSG_LENGTH(sizeof(req.rtm))));
	rta->rta_type = RTA_DST;
	rta->rta_len = RTA_LENGTH(alen);
	memcpy(RTA_DATA(rta), addr, alen);
	req.nh.nlmsg_len = NLMSG_ALIGN(NLMSG_LENGTH(sizeof(req.rtm))) +
	    RTA_LENGTH(alen);
	while (sendto(rt_fd, &req, req.nh.nlmsg_len, 0,
	    (struct sockaddr *)&kernel, sizeof(kernel)) == -1)
		if (errno != EINTR)
			return -1;

	/*
	 * The kernel queued its answer before sendto() returned. Skip what
	 * an earlier, abandoned call left behind (another sequence number)
	 * and anything not from the kernel (port 0): another process may
	 * send to our port, and must not answer for the kernel.
	 */
	for (;;) {
		struct nlmsghdr *nh;
		size_t left;

		flen = sizeof(from);
		n = recvfrom(rt_fd, &rep, sizeof(rep), MSG_DONTWAIT,
		    (struct sockaddr *)&from, &flen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				errno = EIO;	/* no answer at all */
			return -1;
		}
		if (flen < sizeof(from) || from.nl_pid != 0)
			continue;
		left = (size_t)n;
		for (nh = &rep.nh; NLMSG_OK(nh, left);
		    nh = NLMSG_NEXT(nh, left)) {
			if (nh->nlmsg_seq != req.nh.nlmsg_seq)
				continue;
			if (nh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nh);

				if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)) ||
				    e->error >= 0)
					errno = EPROTO;
				else
					errno = -e->error;
				return -1;
			}
			if (nh->nlmsg_type == RTM_NEWROUTE && nh->nlmsg_len >=
			    NLMSG_LENGTH(sizeof(struct rtmsg))) {
				*type = ((const struct rtmsg *)NLMSG_DATA(nh))
				    ->rtm_type;
				return 0;
			}
		}
	}
}
