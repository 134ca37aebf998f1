/*
 * What the kernel's routing says about a destination address, asked the
 * way `ip route get ADDR` asks: one RTM_GETROUTE request over rtnetlink,
 * in the network namespace of the calling process, so addresses added
 * after start-up and AnyIP local routes ("ip route add local
 * 10.0.0.0/24 dev lo") are seen at once.
 *
 * Each thread keeps one netlink socket (opened on first use, close-on-exec);
 * the kernel answers inside the request's send, so a call never waits.
 * Thread-safe.
 */
#ifndef MPGW_ROUTE_H
#define MPGW_ROUTE_H

#include <sys/socket.h>

/*
 * The route type (RTN_LOCAL, RTN_BROADCAST, RTN_UNICAST, ... from
 * <linux/rtnetlink.h>) the kernel picks for sending to sa, an AF_INET or
 * AF_INET6 address. 0 with *type set; -1 with errno: the kernel's own
 * answer where it has no usable route (ENETUNREACH; EHOSTUNREACH, EACCES
 * and EINVAL for unreachable, prohibit and blackhole routes), or why the
 * question could not be asked (EAFNOSUPPORT for another family, socket
 * errors).
 */
int route_type(const struct sockaddr *sa, unsigned char *type);

#endif
