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
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
 * One subflow of an MPTCP connection, from MPTCP_FULL_INFO (Linux 6.5+).
 * The byte counts are the subflow's TCP counters: sent is payload sent
 * once (tcpi_bytes_sent less tcpi_bytes_retrans: retransmissions on the
 * subflow are not counted again, data the scheduler reinjects on another
 * subflow is counted on both); received is tcpi_bytes_received, the
 * in-order bytes the subflow took, plus 1 for the peer's FIN.
 */
struct mptcp_subflow {
	uint32_t id;			/* unique within the connection */
	struct sockaddr_storage local;	/* AF_UNSPEC if the kernel gave none */
	uint64_t sent;
	uint64_t received;
};
/* Initial subflow plus the path manager's maximum of 8 extra ones. */
#define MPTCP_SUBFLOWS_MAX 12

/*
 * A non-blocking, close-on-exec stream socket of the family. With want_mptcp,
 * IPPROTO_MPTCP is tried first and plain TCP used if the kernel refuses
 * (EINVAL, EPROTONOSUPPORT, ENOPROTOOPT). *is_mptcp tells which it got.
 * Returns the fd or -1 with errno.
 */
int mptcp_socket(int family, bool want_mptcp, bool *is_mptcp);

/*
 * Settings for an upstream MPTCP socket, before it connects: a fixed
 * receive buffer (see mptcp.c for why).
 */
void mptcp_tune_upstream(int fd);

/* Fill st for a connected socket: whether MPTCP is in use and subflows. */
void mptcp_stat(int fd, struct mptcp_stat *st);
/* Is MPTCP in use on the connected socket fd (not fallen back to TCP)? */
bool mptcp_active(int fd);
/*
 * The subflows of the MPTCP connection fd, at most max into out. Returns
 * how many were filled, or -1 with errno when the kernel cannot say
 * (before 6.5; a socket that fell back to TCP answers ENOPROTOOPT).
 */
int mptcp_subflows(int fd, struct mptcp_subflow *out, size_t max);

/*
 * Log at start-up whether MPTCP is enabled in this network namespace, the
 * path manager's limits and endpoints, and warn when no endpoint exists (the
 * upstream will then use a single subflow).
 */
void mptcp_report(void);

#endif
