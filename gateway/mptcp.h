/*
 * Linux Multipath TCP: socket creation with TCP fallback, per-connection
 * status, and a start-up report of what the in-kernel path manager will do.
 *
 * The structures are our own copies of the kernel's uapi layout (Debian 12's
 * headers predate the fields we read); the kernel reports how many bytes it
 * filled, and a field is used only when it lies inside that length.
 */
#ifndef MPGW_MPTCP_H
#define MPGW_MPTCP_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

struct mptcp_stat {
	bool mptcp;		/* MPTCP negotiated end to end */
	unsigned subflows;	/* extra subflows (the initial one not counted) */
	bool have_bytes;	/* kernel >= 6.5 reports the next two */
	uint64_t bytes_sent;
	uint64_t bytes_received;
};

/*
 * A non-blocking, close-on-exec stream socket of the family. With want_mptcp,
 * IPPROTO_MPTCP is tried first and plain TCP used if the kernel refuses
 * (EINVAL, EPROTONOSUPPORT, ENOPROTOOPT). *is_mptcp tells which it got.
 * Returns the fd or -1 with errno.
 */
int mptcp_socket(int family, bool want_mptcp, bool *is_mptcp);

/* Fill st for a connected socket: whether MPTCP is in use and subflows. */
void mptcp_stat(int fd, struct mptcp_stat *st);

/*
 * Log at start-up whether MPTCP is enabled in this network namespace, the
 * path manager's limits and endpoints, and warn when no endpoint exists (the
 * upstream will then use a single subflow).
 */
void mptcp_report(void);

#endif
