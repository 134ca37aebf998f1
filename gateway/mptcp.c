#include "gateway/mptcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"

#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif
#define MPTCP_SO_INFO 1
#define MPTCP_SO_FULL_INFO 4
#ifndef TCP_IS_MPTCP
#define TCP_IS_MPTCP 43
#endif

/* struct mptcp_info as of Linux 6.10 (uapi/linux/mptcp.h). */
struct mptcp_info_v610 {
	uint8_t subflows;
	uint8_t add_addr_signal;
	uint8_t add_addr_accepted;
	uint8_t subflows_max;
	uint8_t add_addr_signal_max;
	uint8_t add_addr_accepted_max;
	uint32_t flags;
	uint32_t token;
	uint64_t write_seq;
	uint64_t snd_una;
	uint64_t rcv_nxt;
	uint8_t local_addr_used;
	uint8_t local_addr_max;
	uint8_t csum_enabled;
	uint32_t retransmits;
	uint64_t bytes_retrans;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t bytes_acked;
	uint8_t subflows_total;
	uint8_t reserved[3];
	uint32_t last_data_sent;
	uint32_t last_data_recv;
	uint32_t last_ack_recv;
};

#define INFO_HAS(len, field) \
	((size_t)(len) >= offsetof(struct mptcp_info_v610, field) + \
	    sizeof(((struct mptcp_info_v610 *)0)->field))

/*
 * struct mptcp_full_info as of Linux 6.5 (uapi/linux/mptcp.h): the caller
 * says how big its array elements are and how many it has room for; the
 * kernel writes back the element sizes it used (the smaller of ours and
 * its own, which is then the stride) and the real subflow count.
 */
struct mptcp_full_info_v65 {
	uint32_t size_tcpinfo_kernel;	/* must be 0, set by the kernel */
	uint32_t size_tcpinfo_user;
	uint32_t size_sfinfo_kernel;	/* must be 0, set by the kernel */
	uint32_t size_sfinfo_user;
	uint32_t num_subflows;		/* must be 0, set by the kernel */
	uint32_t size_arrays_user;
	uint64_t subflow_info;		/* user pointer, __aligned_u64 */
	uint64_t tcp_info;		/* user pointer */
	struct mptcp_info_v610 mptcp_info;
};
/* The kernel refuses a shorter option (MIN_FULL_INFO_OPTLEN_SIZE). */
#define FULL_INFO_MIN offsetof(struct mptcp_full_info_v65, mptcp_info)
_Static_assert(FULL_INFO_MIN == 40, "mptcp_full_info layout");

/*
 * struct mptcp_subflow_info (6.5): the subflow id, then the local and
 * remote addresses as two __kernel_sockaddr_storage (128 bytes, 8-aligned,
 * like glibc's sockaddr_storage).
 */
struct mptcp_subflow_info_v65 {
	uint32_t id;
	struct sockaddr_storage local;
	struct sockaddr_storage remote;
};
_Static_assert(offsetof(struct mptcp_subflow_info_v65, local) == 8 &&
    sizeof(struct mptcp_subflow_info_v65) == 264, "mptcp_subflow_info layout");

/*
 * struct tcp_info (uapi/linux/tcp.h) up to tcpi_bytes_retrans (Linux
 * 4.19); the two bit-field bytes are read as whole bytes, never used.
 */
struct tcp_info_v419 {
	uint8_t state, ca_state, retransmits, probes, backoff, options;
	uint8_t wscale, rate_flags;
	uint32_t rto, ato, snd_mss, rcv_mss;
	uint32_t unacked, sacked, lost, retrans, fackets;
	uint32_t last_data_sent, last_ack_sent, last_data_recv, last_ack_recv;
	uint32_t pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd;
	uint32_t advmss, reordering, rcv_rtt, rcv_space, total_retrans;
	uint64_t pacing_rate, max_pacing_rate;
	uint64_t bytes_acked, bytes_received;
	uint32_t segs_out, segs_in, notsent_bytes, min_rtt;
	uint32_t data_segs_in, data_segs_out;
	uint64_t delivery_rate, busy_time, rwnd_limited, sndbuf_limited;
	uint32_t delivered, delivered_ce;
	uint64_t bytes_sent, bytes_retrans;
};
_Static_assert(offsetof(struct tcp_info_v419, bytes_received) == 128 &&
    offsetof(struct tcp_info_v419, bytes_sent) == 200 &&
    sizeof(struct tcp_info_v419) == 216, "tcp_info layout");

#define TI_HAS(len, field) \
	((size_t)(len) >= offsetof(struct tcp_info_v419, field) + \
	    sizeof(((struct tcp_info_v419 *)0)->field))

int
mptcp_socket(int family, bool want_mptcp, bool *is_mptcp)
{
	int fd;

	*is_mptcp = false;
	if (want_mptcp) {
		fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    IPPROTO_MPTCP);
		if (fd != -1) {
			*is_mptcp = true;
			return fd;
		}
		if (errno != EINVAL && errno != EPROTONOSUPPORT &&
		    errno != ENOPROTOOPT && errno != EOPNOTSUPP &&
		    errno != EPERM && errno != EACCES)
			return -1;
	}
	return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    IPPROTO_TCP);
}

/*
 * A fixed 4 MiB receive buffer instead of autotuning. Measured on this
 * kernel (6.18), two tiers, 2 x 10 Mbit/s, 5 ms links: an MPTCP connection
 * opened with TCP Fast Open and an autotuned receive buffer loses data at
 * the MPTCP level (MPTcpExtNoDSSInWindow at the receiver) and stalls on
 * 200 ms MPTCP retransmission timeouts; 16 MiB downloads took 100-140 s
 * instead of 7.3 s in 2 of 5 runs, with or without mpgw in the path
 * (a plain MPTCP client with MSG_FASTOPEN showed the same). With the
 * buffer fixed, 8 of 8 ran at line rate and no MPTCP retransmission was
 * counted. On loopback the same setting took the MPTCP relay from 0.08 to
 * 0.53 of direct MPTCP (shared/research/relay_perf.md). It is a limit, not
 * an allocation: memory is used only by data the relay has not read.
 */
#define MPTCP_UPSTREAM_RCVBUF (4 << 20)

void
mptcp_tune_upstream(int fd)
{
	int rb = MPTCP_UPSTREAM_RCVBUF;

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
}

void
mptcp_stat(int fd, struct mptcp_stat *st)
{
	struct mptcp_info_v610 info;
	socklen_t len;
	int v = 0;

	memset(st, 0, sizeof(*st));
	len = sizeof(v);
	if (getsockopt(fd, IPPROTO_TCP, TCP_IS_MPTCP, &v, &len) == 0) {
		st->mptcp = v != 0;
		if (!st->mptcp)
			return;		/* TCP, or MPTCP fallen back to it */
	}
	memset(&info, 0, sizeof(info));
	len = sizeof(info);
	if (getsockopt(fd, SOL_MPTCP, MPTCP_SO_INFO, &info, &len) == -1)
		return;
	/* Kernels without TCP_IS_MPTCP answer MPTCP_INFO only if in use. */
	st->mptcp = true;
	if (INFO_HAS(len, subflows))
		st->subflows = info.subflows;
	if (INFO_HAS(len, bytes_received)) {
		st->have_bytes = true;
		st->bytes_sent = info.bytes_sent;
		st->bytes_received = info.bytes_received;
	}
}

bool
mptcp_active(int fd)
{
	struct mptcp_info_v610 info;
	socklen_t len = sizeof(int);
	int v = 0;

	if (getsockopt(fd, IPPROTO_TCP, TCP_IS_MPTCP, &v, &len) == 0)
		return v != 0;
	len = sizeof(info);
	return getsockopt(fd, SOL_MPTCP, MPTCP_SO_INFO, &info, &len) == 0;
}

int
mptcp_subflows(int fd, struct mptcp_subflow *out, size_t max)
{
	struct mptcp_subflow_info_v65 sfi[MPTCP_SUBFLOWS_MAX];
	struct tcp_info_v419 ti[MPTCP_SUBFLOWS_MAX];
	struct mptcp_full_info_v65 mfi;
	socklen_t len = sizeof(mfi);
	size_t n, sf_size, ti_size;

	if (max > MPTCP_SUBFLOWS_MAX)
		max = MPTCP_SUBFLOWS_MAX;
	memset(&mfi, 0, sizeof(mfi));
	mfi.size_tcpinfo_user = sizeof(ti[0]);
	mfi.size_sfinfo_user = sizeof(sfi[0]);
	mfi.size_arrays_user = (uint32_t)max;
	mfi.subflow_info = (uint64_t)(uintptr_t)sfi;
	mfi.tcp_info = (uint64_t)(uintptr_t)ti;
	if (getsockopt(fd, SOL_MPTCP, MPTCP_SO_FULL_INFO, &mfi, &len) == -1)
		return -1;
	if (len < FULL_INFO_MIN) {
		errno = EPROTO;
		return -1;
	}
	/* Elements lie at the sizes the kernel used: those are the strides. */
	sf_size = mfi.size_sfinfo_user;
	ti_size = mfi.size_tcpinfo_user;
	if (sf_size > sizeof(sfi[0]) || ti_size > sizeof(ti[0])) {
		errno = EPROTO;
		return -1;
	}
	n = mfi.num_subflows < max ? mfi.num_subflows : max;
	for (size_t i = 0; i < n; i++) {
		struct mptcp_subflow_info_v65 sf;
		struct tcp_info_v419 t;

		memset(&sf, 0, sizeof(sf));
		memset(&t, 0, sizeof(t));
		memcpy(&sf, (const uint8_t *)sfi + i * sf_size, sf_size);
		memcpy(&t, (const uint8_t *)ti + i * ti_size, ti_size);
		memset(&out[i], 0, sizeof(out[i]));
		if (sf_size >= offsetof(struct mptcp_subflow_info_v65, id) +
		    sizeof(sf.id))
			out[i].id = sf.id;
		if (sf_size >= offsetof(struct mptcp_subflow_info_v65, remote))
			out[i].local = sf.local;
		if (TI_HAS(ti_size, bytes_received))
			out[i].received = t.bytes_received;
		if (TI_HAS(ti_size, bytes_retrans) &&
		    t.bytes_sent >= t.bytes_retrans)
			out[i].sent = t.bytes_sent - t.bytes_retrans;
	}
	return (int)n;
}

/* --- path manager report over generic netlink ------------------------ */

#define PM_FAMILY "mptcp_pm"
enum {
	PM_CMD_GET_ADDR = 3,
	PM_CMD_GET_LIMITS = 6,
	PM_ATTR_ADDR = 1,
	PM_ATTR_RCV_ADD_ADDRS = 2,
	PM_ATTR_SUBFLOWS = 3,
	PM_ADDR_FAMILY = 1,
	PM_ADDR_ID = 2,
	PM_ADDR_ADDR4 = 3,
	PM_ADDR_ADDR6 = 4,
	PM_ADDR_PORT = 5,
	PM_ADDR_FLAGS = 6,
	PM_ADDR_IF_IDX = 7,
	PM_FLAG_SIGNAL = 1 << 0,
	PM_FLAG_SUBFLOW = 1 << 1,
	PM_FLAG_BACKUP = 1 << 2,
	PM_FLAG_FULLMESH = 1 << 3,
};

struct nl_req {
	struct nlmsghdr nh;
	struct genlmsghdr gh;
	uint8_t attrs[64];
};

static int
nl_send(int fd, uint16_t type, uint16_t flags, uint8_t cmd,
    const void *attr, size_t attrlen)
{
	struct nl_req req;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + (uint32_t)attrlen;
	req.nh.nlmsg_type = type;
	req.nh.nlmsg_flags = NLM_F_REQUEST | flags;
	req.nh.nlmsg_seq = 1;
	req.gh.cmd = cmd;
	req.gh.version = 1;
	if (attrlen > sizeof(req.attrs))
		return -1;
	if (attrlen > 0)
		memcpy(req.attrs, attr, attrlen);
	return send(fd, &req, req.nh.nlmsg_len, 0) == -1 ? -1 : 0;
}

/* Walk the attributes in [p, p + len), calling fn for each. */
static void
nla_walk(const uint8_t *p, size_t len,
    void (*fn)(uint16_t type, const uint8_t *v, size_t vlen, void *arg),
    void *arg)
{
	while (len >= NLA_HDRLEN) {
		const struct nlattr *a = (const struct nlattr *)(const void *)p;
		size_t alen = a->nla_len, step = NLA_ALIGN(alen);

		if (alen < NLA_HDRLEN || alen > len)
			return;
		fn(a->nla_type & NLA_TYPE_MASK, p + NLA_HDRLEN,
		    alen - NLA_HDRLEN, arg);
		if (step >= len)
			return;
		p += step;
		len -= step;
	}
}

static void
family_id_attr(uint16_t type, const uint8_t *v, size_t vlen, void *arg)
{
	if (type == CTRL_ATTR_FAMILY_ID && vlen >= 2)
		memcpy(arg, v, 2);
}

struct pm_endpoint {
	char addr[INET6_ADDRSTRLEN];
	char ifname[IF_NAMESIZE];
	uint32_t flags;
	unsigned id;
	unsigned port;
};

static void
endpoint_attr(uint16_t type, const uint8_t *v, size_t vlen, void *arg)
{
	struct pm_endpoint *ep = arg;
	uint32_t u32;
	int32_t idx;

	switch (type) {
	case PM_ADDR_ADDR4:
		if (vlen >= 4)
			inet_ntop(AF_INET, v, ep->addr, sizeof(ep->addr));
		break;
	case PM_ADDR_ADDR6:
		if (vlen >= 16)
			inet_ntop(AF_INET6, v, ep->addr, sizeof(ep->addr));
		break;
	case PM_ADDR_ID:
		if (vlen >= 1)
			ep->id = v[0];
		break;
	case PM_ADDR_PORT:
		if (vlen >= 2) {
			uint16_t p;
			memcpy(&p, v, 2);
			ep->port = p;
		}
		break;
	case PM_ADDR_FLAGS:
		if (vlen >= 4) {
			memcpy(&u32, v, 4);
			ep->flags = u32;
		}
		break;
	case PM_ADDR_IF_IDX:
		if (vlen >= 4) {
			memcpy(&idx, v, 4);
			if (idx > 0)
				if_indextoname((unsigned)idx, ep->ifname);
		}
		break;
	default:
		break;
	}
}

struct pm_report {
	unsigned endpoints;
	unsigned subflow_eps;
	int subflows_limit;
	int add_addr_limit;
};

static void
pm_attr(uint16_t type, const uint8_t *v, size_t vlen, void *arg)
{
	struct pm_report *r = arg;
	struct pm_endpoint ep;
	uint32_t u32;

	switch (type) {
	case PM_ATTR_ADDR:
		memset(&ep, 0, sizeof(ep));
		nla_walk(v, vlen, endpoint_attr, &ep);
		r->endpoints++;
		if (ep.flags & (PM_FLAG_SUBFLOW | PM_FLAG_FULLMESH))
			r->subflow_eps++;
		log_info("mptcp: endpoint id %u %s%s%s%s%s%s%s", ep.id,
		    ep.addr[0] ? ep.addr : "?", ep.ifname[0] ? " dev " : "",
		    ep.ifname,
		    (ep.flags & PM_FLAG_SIGNAL) ? " signal" : "",
		    (ep.flags & PM_FLAG_SUBFLOW) ? " subflow" : "",
		    (ep.flags & PM_FLAG_BACKUP) ? " backup" : "",
		    (ep.flags & PM_FLAG_FULLMESH) ? " fullmesh" : "");
		break;
	case PM_ATTR_SUBFLOWS:
		if (vlen >= 4) {
			memcpy(&u32, v, 4);
			r->subflows_limit = (int)u32;
		}
		break;
	case PM_ATTR_RCV_ADD_ADDRS:
		if (vlen >= 4) {
			memcpy(&u32, v, 4);
			r->add_addr_limit = (int)u32;
		}
		break;
	default:
		break;
	}
}

/*
 * Read netlink answers until NLMSG_DONE (dumps) or one message (plain
 * requests), handing the generic-netlink payload of each to fn.
 */
static int
nl_collect(int fd, bool dump,
    void (*fn)(uint16_t, const uint8_t *, size_t, void *), void *arg)
{
	uint8_t buf[8192];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		size_t len;
		struct nlmsghdr *nh;

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		len = (size_t)n;
		for (nh = (struct nlmsghdr *)(void *)buf; NLMSG_OK(nh, len);
		    nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nh);
				if (e->error == 0)
					return 0;
				errno = -e->error;
				return -1;
			}
			if (nh->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
				continue;
			nla_walk((const uint8_t *)NLMSG_DATA(nh) + GENL_HDRLEN,
			    nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), fn, arg);
			if (!dump)
				return 0;
		}
	}
}

void
mptcp_report(void)
{
	struct pm_report r = { .subflows_limit = -1, .add_addr_limit = -1 };
	uint8_t attr[NLA_HDRLEN + NLA_ALIGN(sizeof(PM_FAMILY))];
	struct nlattr *na = (struct nlattr *)(void *)attr;
	uint16_t famid = 0;
	char enabled = '?';
	int fd;
	FILE *f;

	if ((f = fopen("/proc/sys/net/mptcp/enabled", "r")) != NULL) {
		enabled = (char)fgetc(f);
		fclose(f);
	}
	if (enabled != '1') {
		log_warnx("mptcp: net.mptcp.enabled is %s in this network "
		    "namespace: upstream connections will be plain TCP",
		    enabled == '?' ? "unavailable" : "0");
		return;
	}
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd == -1) {
		log_warn("mptcp: netlink");
		return;
	}
	memset(attr, 0, sizeof(attr));
	na->nla_type = CTRL_ATTR_FAMILY_NAME;
	na->nla_len = NLA_HDRLEN + sizeof(PM_FAMILY);
	memcpy(attr + NLA_HDRLEN, PM_FAMILY, sizeof(PM_FAMILY));
	if (nl_send(fd, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, attr,
	    sizeof(attr)) == -1 ||
	    nl_collect(fd, false, family_id_attr, &famid) == -1 || famid == 0) {
		log_warn("mptcp: path manager not reachable over netlink");
		close(fd);
		return;
	}
	if (nl_send(fd, famid, 0, PM_CMD_GET_LIMITS, NULL, 0) == -1 ||
	    nl_collect(fd, false, pm_attr, &r) == -1)
		log_warn("mptcp: reading path manager limits");
	if (nl_send(fd, famid, NLM_F_DUMP, PM_CMD_GET_ADDR, NULL, 0) == -1 ||
	    nl_collect(fd, true, pm_attr, &r) == -1)
		log_warn("mptcp: reading path manager endpoints");
	close(fd);
	log_info("mptcp: enabled; path manager limits: subflows %d, "
	    "add_addr_accepted %d; %u endpoint(s), %u for extra subflows",
	    r.subflows_limit, r.add_addr_limit, r.endpoints, r.subflow_eps);
	if (r.subflow_eps == 0)
		log_warnx("mptcp: no 'subflow' endpoint: upstream connections "
		    "will use one subflow unless the server announces more "
		    "addresses (see README, \"MPTCP endpoints\")");
	else if (r.subflows_limit == 0)
		log_warnx("mptcp: subflows limit is 0: endpoints are unused "
		    "(ip mptcp limits set subflows N)");
	if (r.add_addr_limit > 0)
		log_warnx("mptcp: add_addr_accepted %d: servers can make this "
		    "gateway join any address they announce, loopback and "
		    "internal ones included; a gateway with subflow endpoints "
		    "needs none (ip mptcp limits set add_addr_accepted 0; see "
		    "README, \"MPTCP endpoints\")", r.add_addr_limit);
}
