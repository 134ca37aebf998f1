#include "gateway/stats.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auth/replay.h"
#include "auth/throttle.h"
#include "gateway/mptcp.h"
#include "gateway/session.h"
#include "gateway/version.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"

static atomic_uint_fast64_t stats[STAT_COUNT];

static void
cnt_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t
cnt_get(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

uint64_t
stats_add(enum stat_id id, uint64_t n)
{
	return atomic_fetch_add_explicit(&stats[id], n,
	    memory_order_relaxed) + n;
}

void
stats_sub(enum stat_id id, uint64_t n)
{
	atomic_fetch_sub_explicit(&stats[id], n, memory_order_relaxed);
}

uint64_t
stats_get(enum stat_id id)
{
	return cnt_get(&stats[id]);
}

const char *
stats_name(enum stat_id id)
{
	switch (id) {
	case STAT_ACCEPTED:
		return "accepted";
	case STAT_OPEN:
		return "open";
	case STAT_REFUSED_MAX_SESSIONS:
		return "refused_max_sessions";
	case STAT_REFUSED_PER_SOURCE:
		return "refused_per_source";
	case STAT_REFUSED_THROTTLE:
		return "refused_throttle";
	case STAT_REFUSED_RULES:
		return "refused_rules";
	case STAT_REFUSED_PROXY:
		return "refused_proxy";
	case STAT_LOGIN_FAILURES:
		return "login_failures";
	case STAT_CONVERT_REPLAYS:
		return "convert_replays";
	case STAT_BYTES_UP:
		return "bytes_up";
	case STAT_BYTES_DOWN:
		return "bytes_down";
	case STAT_UPSTREAM_MPTCP:
		return "upstream_mptcp";
	case STAT_UPSTREAM_FALLBACK:
		return "upstream_fallback";
	case STAT_UPSTREAM_TCP:
		return "upstream_tcp";
	case STAT_UPSTREAM_CACHED_NO:
		return "upstream_cached_no";
	case STAT_PATH_OVERFLOW:
		return "path_overflow";
	case STAT_STATE_CLIENTS:
		return "state_clients";
	case STAT_STATE_CONNECTED:
		return "state_connected";
	case STAT_STATE_CONNECT_OK:
		return "state_connect_ok";
	case STAT_STATE_CONNECT_FAILED:
		return "state_connect_failed";
	case STAT_STATE_REPLAY_REQUESTS:
		return "state_replay_requests";
	case STAT_STATE_REPLAY_ERRORS:
		return "state_replay_errors";
	case STAT_STATE_THROTTLE_REQUESTS:
		return "state_throttle_requests";
	case STAT_STATE_THROTTLE_ERRORS:
		return "state_throttle_errors";
	case STAT_UDP_OPEN:
		return "udp_open";
	case STAT_REFUSED_UDP_LIMIT:
		return "refused_udp_limit";
	case STAT_UDP_DGRAMS_UP:
		return "udp_datagrams_up";
	case STAT_UDP_DGRAMS_DOWN:
		return "udp_datagrams_down";
	case STAT_UDP_DROP_FRAG:
		return "udp_dropped_frag";
	case STAT_UDP_DROP_SOURCE:
		return "udp_dropped_source";
	case STAT_UDP_DROP_DENIED:
		return "udp_dropped_denied";
	case STAT_UDP_DROP_BAD:
		return "udp_dropped_bad";
	case STAT_UDP_DROP_UNRESOLVED:
		return "udp_dropped_unresolved";
	case STAT_UDP_DROP_CONGESTED:
		return "udp_dropped_congested";
	case STAT_UDP_DROP_UNSOLICITED:
		return "udp_dropped_unsolicited";
	case STAT_UDP_DROP_ERROR:
		return "udp_dropped_error";
	case STAT_BIND_WRONG_PEER:
		return "bind_wrong_peer";
	case STAT_CLIENT_MPTCP:
		return "client_mptcp";
	case STAT_CLIENT_TCP:
		return "client_tcp";
	}
	return "?";
}

/* --- interned label values -------------------------------------------- */

/*
 * A bounded table of label values, appended to under names_mu and read
 * without a lock: a reader sees the count (acquire) only after the value
 * it covers was written (release). Index `cap` is "other".
 */
#define NAME_LEN 24
#define LISTENERS_MAX 4
#define METHODS_MAX 12

struct names {
	atomic_uint n;
	char v[METHODS_MAX][NAME_LEN];
};

static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static struct names listeners, methods;

static unsigned
names_find(struct names *t, unsigned n, const char *s)
{
	for (unsigned i = 0; i < n; i++)
		if (strncmp(t->v[i], s, NAME_LEN) == 0)
			return i;
	return n;
}

/* The index of s in t (at most cap entries), or cap: "other". */
static unsigned
names_index(struct names *t, unsigned cap, const char *s)
{
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire), i;

	if ((i = names_find(t, n, s)) < n)
		return i;
	/* A value too long to keep whole would merge with its prefix. */
	if (strlen(s) >= NAME_LEN)
		return cap;
	pthread_mutex_lock(&names_mu);
	n = atomic_load_explicit(&t->n, memory_order_relaxed);
	if ((i = names_find(t, n, s)) == n && n < cap) {
		strcpy(t->v[n], s);
		atomic_store_explicit(&t->n, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&names_mu);
	return i < cap ? i : cap;
}

static const char *
names_get(struct names *t, unsigned cap, unsigned i)
{
	return i < cap ? t->v[i] : "other";
}

/* --- sessions and logins ---------------------------------------------- */

static atomic_uint_fast64_t sessions[LISTENERS_MAX + 1][METHODS_MAX + 1][SESS_RES_COUNT];
static atomic_uint_fast64_t auth_failures[METHODS_MAX + 1];

void
stats_session_end(const char *listener, const char *method, unsigned result)
{
	unsigned l = names_index(&listeners, LISTENERS_MAX, listener);
	unsigned m = names_index(&methods, METHODS_MAX, method);

	if (result < SESS_RES_COUNT)
		cnt_add(&sessions[l][m][result], 1);
}

void
stats_auth_failed(const char *method)
{
	stats_add(STAT_LOGIN_FAILURES, 1);
	cnt_add(&auth_failures[names_index(&methods, METHODS_MAX, method)], 1);
}

/* --- histograms ------------------------------------------------------- */

/*
 * Times from a loopback connect (tens of microseconds) to a slow dial
 * over a lossy path or a login behind the throttle's delay (seconds).
 */
static const double time_le[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
/* The in-kernel path manager allows at most 8 extra subflows. */
static const double subflow_le[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8 };

#define HIST_BUCKETS_MAX 15

struct hist {
	const double *le;
	size_t n;
	uint64_t unit_den;		/* sum kept in 1/unit_den units */
	atomic_uint_fast64_t count[HIST_BUCKETS_MAX];	/* per bucket; [n] is +Inf */
	atomic_uint_fast64_t sum;
};

static struct hist hists[STAT_H_COUNT] = {
	[STAT_H_CONNECT] = { time_le, nitems(time_le), 1000000000, { 0 }, 0 },
	[STAT_H_REPLY] = { time_le, nitems(time_le), 1000000000, { 0 }, 0 },
	[STAT_H_SUBFLOWS] = { subflow_le, nitems(subflow_le), 1, { 0 }, 0 },
	[STAT_H_CLIENT_SUBFLOWS] = { subflow_le, nitems(subflow_le), 1, { 0 },
	    0 },
};
_Static_assert(nitems(time_le) < HIST_BUCKETS_MAX &&
    nitems(subflow_le) < HIST_BUCKETS_MAX, "histogram buckets");

void
stats_observe(enum stat_hist h, double v)
{
	struct hist *hi = &hists[h];
	size_t i = 0;

	/* A clock that stepped back gives a negative time: count it as 0. */
	if (!(v > 0))
		v = 0;
	while (i < hi->n && v > hi->le[i])
		i++;
	cnt_add(&hi->count[i], 1);
	cnt_add(&hi->sum, (uint64_t)(v * (double)hi->unit_den + 0.5));
}

/* --- per-path bytes --------------------------------------------------- */

struct path_slot {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	atomic_uint_fast64_t sent;
	atomic_uint_fast64_t received;
};

/* [STATS_PATHS_MAX] is "other"; n_paths published as for struct names. */
static struct path_slot paths[STATS_PATHS_MAX + 1];
static atomic_uint n_paths;

/*
 * The address bytes of sa (unmapped) and their family; false if it is
 * not IP or is the unspecified address, which a subflow shows before it
 * is bound and after it is gone: no path to count it for.
 */
static bool
path_key(const struct sockaddr_storage *ss, int *family, uint8_t addr[16])
{
	static const uint8_t zero[16];
	struct sockaddr_storage tmp;
	const struct sockaddr *sa = addr_unmap((const struct sockaddr *)ss,
	    &tmp);

	memset(addr, 0, 16);
	if (sa == NULL)
		return false;
	*family = sa->sa_family;
	if (sa->sa_family == AF_INET)
		memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, 4);
	else
		memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, 16);
	return memcmp(addr, zero, 16) != 0;
}

static unsigned
path_find(unsigned n, int family, const uint8_t addr[16])
{
	for (unsigned i = 0; i < n; i++)
		if (paths[i].family == family &&
		    memcmp(paths[i].addr, addr, 16) == 0)
			return i;
	return n;
}

/*
 * The slot for a subflow's local address, STATS_PATHS_MAX for "other"
 * (the table is full), or -1 when the address names no path.
 */
static int
path_index(const struct sockaddr_storage *local)
{
	unsigned n = atomic_load_explicit(&n_paths, memory_order_acquire), i;
	uint8_t addr[16];
	int family;

	if (!path_key(local, &family, addr))
		return -1;
	if ((i = path_find(n, family, addr)) < n)
		return i;
	pthread_mutex_lock(&names_mu);
	n = atomic_load_explicit(&n_paths, memory_order_relaxed);
	if ((i = path_find(n, family, addr)) == n && n < STATS_PATHS_MAX) {
		paths[n].family = family;
		memcpy(paths[n].addr, addr, 16);
		atomic_store_explicit(&n_paths, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&names_mu);
	return i < STATS_PATHS_MAX ? (int)i : STATS_PATHS_MAX;
}

/* What one connection's subflows have been counted for so far. */
struct stats_paths {
	size_t n;
	struct {
		uint32_t id;
		unsigned slot;
		uint64_t sent;
		uint64_t received;
	} sf[MPTCP_SUBFLOWS_MAX];
};

void
stats_paths_sample(struct stats_paths **pp, const struct mptcp_subflow *sf,
    size_t n)
{
	struct stats_paths *p = *pp, next;

	if (n == 0)
		return;
	if (p == NULL && (p = *pp = calloc(1, sizeof(*p))) == NULL)
		return;
	next.n = 0;
	for (size_t i = 0; i < n && next.n < nitems(next.sf); i++) {
		uint64_t sent = 0, received = 0;
		bool seen = false;
		unsigned slot = 0;
		int k;

		/*
		 * Subflow ids are not reused within a connection; a subflow
		 * keeps the path it was first seen on, even if the kernel
		 * shows its address cleared later.
		 */
		for (size_t j = 0; j < p->n && !seen; j++) {
			if (p->sf[j].id == sf[i].id) {
				slot = p->sf[j].slot;
				sent = p->sf[j].sent;
				received = p->sf[j].received;
				seen = true;
			}
		}
		if (!seen) {
			/* Not bound yet: nothing carried, nothing to note. */
			if ((k = path_index(&sf[i].local)) == -1)
				continue;
			slot = (unsigned)k;
			if (slot == STATS_PATHS_MAX)
				stats_add(STAT_PATH_OVERFLOW, 1);
		}
		if (sf[i].sent > sent) {
			cnt_add(&paths[slot].sent, sf[i].sent - sent);
			sent = sf[i].sent;
		}
		if (sf[i].received > received) {
			cnt_add(&paths[slot].received, sf[i].received -
			    received);
			received = sf[i].received;
		}
		next.sf[next.n].id = sf[i].id;
		next.sf[next.n].slot = slot;
		next.sf[next.n].sent = sent;
		next.sf[next.n].received = received;
		next.n++;
	}
	/* A subflow gone since the last sample was counted then. */
	*p = next;
}

void
stats_paths_free(struct stats_paths **pp)
{
	free(*pp);
	*pp = NULL;
}

/* --- the Prometheus text format --------------------------------------- */

enum fam {
	FAM_NONE = 0,		/* kept for the log line only */
	FAM_BUILD_INFO,
	FAM_STARTED,
	FAM_SESSIONS,
	FAM_OPEN,
	FAM_BYTES,
	FAM_AUTH_FAILURES,
	FAM_REPLAYS,
	FAM_REFUSED,
	FAM_UPSTREAM,
	FAM_SUBFLOWS,
	FAM_PATH_BYTES,
	FAM_PATH_OVERFLOW,
	FAM_CONNECT,
	FAM_REPLY,
	FAM_UDP_OPEN,
	FAM_UDP_DGRAMS,
	FAM_UDP_DROPPED,
	FAM_BIND_WRONG_PEER,
	FAM_CLIENT,
	FAM_CLIENT_SUBFLOWS,
	FAM_STATE_UP,		/* these only with [state] redis: keep last */
	FAM_STATE_CONNECTS,
	FAM_STATE_REQUESTS,
	FAM_STATE_ERRORS,
};
#define FAM_COUNT (FAM_STATE_ERRORS + 1)

static const struct {
	const char *name;
	const char *type;
	const char *help;
} fams[FAM_COUNT] = {
	[FAM_BUILD_INFO] = { "mpgw_build_info", "gauge",
	    "The running mpgw's version; always 1." },
	[FAM_STARTED] = { "mpgw_sessions_started_total", "counter",
	    "Connections admitted as sessions." },
	[FAM_SESSIONS] = { "mpgw_sessions_total", "counter",
	    "Sessions ended, by listener, login method and result (the "
	    "access log's result=)." },
	[FAM_OPEN] = { "mpgw_sessions_open", "gauge", "Sessions open now." },
	[FAM_BYTES] = { "mpgw_bytes_total", "counter",
	    "Bytes relayed, counted when a session ends: up is client to "
	    "target, down is target to client." },
	[FAM_AUTH_FAILURES] = { "mpgw_auth_failures_total", "counter",
	    "Failed logins (password or Convert key), by method." },
	[FAM_REPLAYS] = { "mpgw_convert_replays_total", "counter",
	    "Replayed Convert messages refused." },
	[FAM_REFUSED] = { "mpgw_refused_total", "counter",
	    "Connections refused over max_sessions or max_per_source or "
	    "from a source blocked for failed logins (throttle, logins "
	    "included), connections to a PROXY protocol listener from a "
	    "source not in proxy_from or without a valid header (proxy), "
	    "and target addresses denied by access rules." },
	[FAM_UPSTREAM] = { "mpgw_upstream_connections_total", "counter",
	    "Upstream connections made: mptcp=yes negotiated MPTCP, "
	    "fallback an MPTCP socket that fell back to TCP, no a TCP "
	    "socket." },
	[FAM_SUBFLOWS] = { "mpgw_upstream_subflows", "histogram",
	    "Extra subflows of an MPTCP upstream connection when it closed." },
	[FAM_CLIENT] = { "mpgw_client_connections_total", "counter",
	    "Sessions ended, by their client leg: mptcp=yes an MPTCP client "
	    "on an MPTCP listener, no plain TCP (including an MPTCP client "
	    "that fell back, as a refused Fast Open cookie makes it)." },
	[FAM_CLIENT_SUBFLOWS] = { "mpgw_client_subflows", "histogram",
	    "Extra subflows of an MPTCP client leg when the session ended." },
	[FAM_PATH_BYTES] = { "mpgw_upstream_path_bytes_total", "counter",
	    "Bytes carried by upstream MPTCP subflows, by the subflow's "
	    "local address (MPTCP_FULL_INFO, Linux 6.5+): sent once, "
	    "received in order." },
	[FAM_PATH_OVERFLOW] = { "mpgw_upstream_path_overflow_total",
	    "counter", "Subflows counted as local=\"other\": more local "
	    "addresses than the table holds." },
	[FAM_CONNECT] = { "mpgw_upstream_connect_seconds", "histogram",
	    "Time from the start of a dial (name resolution included) to a "
	    "connected upstream socket." },
	[FAM_REPLY] = { "mpgw_reply_seconds", "histogram",
	    "Time from accept to the queued success reply (SOCKS5 or "
	    "Convert)." },
	[FAM_STATE_UP] = { "mpgw_state_redis_up", "gauge",
	    "1 when every worker is connected to the shared state's Redis; "
	    "0 while any is not (its Convert Auth fails closed, its logins "
	    "use the in-process throttle)." },
	[FAM_STATE_CONNECTS] = { "mpgw_state_redis_connections_total",
	    "counter", "Connection attempts to the shared state's Redis, by "
	    "result: ok (connected, handshake done) or failed." },
	[FAM_STATE_REQUESTS] = { "mpgw_state_requests_total", "counter",
	    "Questions to the shared state's Redis, by op: replay (Convert "
	    "nonces) or throttle (failed logins)." },
	[FAM_STATE_ERRORS] = { "mpgw_state_errors_total", "counter",
	    "Questions Redis did not answer (unreachable, error reply, no "
	    "answer within 1 s), by op: a replay one refuses the Convert "
	    "message (Error 65), a throttle one falls back to the "
	    "in-process throttle." },
	[FAM_UDP_OPEN] = { "mpgw_udp_associations_open", "gauge",
	    "UDP associations open now (SOCKS5 UDP ASSOCIATE and Convert "
	    "UDP)." },
	[FAM_UDP_DGRAMS] = { "mpgw_udp_datagrams_total", "counter",
	    "Datagrams relayed: up is client to destination, down is "
	    "destination to client." },
	[FAM_UDP_DROPPED] = { "mpgw_udp_dropped_total", "counter",
	    "Datagrams dropped, by reason: frag (FRAG != 0), source (not "
	    "from the client), denied (access rules), bad (malformed "
	    "header), unresolved (name), congested (full socket or queue), "
	    "unsolicited (from where the client never sent), error "
	    "(sending failed)." },
	[FAM_BIND_WRONG_PEER] = { "mpgw_bind_wrong_peers_total", "counter",
	    "Connections to a BIND listener from a peer other than the "
	    "expected one (or one the rules deny), closed." },
};

/* Where atomic_uint_fast64_t id goes: its family and its labels ({...}), if any. */
static enum fam
stat_export(enum stat_id id, const char **labels)
{
	*labels = "";
	switch (id) {
	case STAT_ACCEPTED:
		return FAM_STARTED;
	case STAT_OPEN:
		return FAM_OPEN;
	case STAT_REFUSED_MAX_SESSIONS:
		*labels = "{reason=\"max_sessions\"}";
		return FAM_REFUSED;
	case STAT_REFUSED_PER_SOURCE:
		*labels = "{reason=\"per_source\"}";
		return FAM_REFUSED;
	case STAT_REFUSED_THROTTLE:
		*labels = "{reason=\"throttle\"}";
		return FAM_REFUSED;
	case STAT_REFUSED_RULES:
		*labels = "{reason=\"rules\"}";
		return FAM_REFUSED;
	case STAT_REFUSED_PROXY:
		*labels = "{reason=\"proxy\"}";
		return FAM_REFUSED;
	case STAT_LOGIN_FAILURES:
		/* mpgw_auth_failures_total{method} has it by method. */
		return FAM_NONE;
	case STAT_CONVERT_REPLAYS:
		return FAM_REPLAYS;
	case STAT_BYTES_UP:
		*labels = "{direction=\"up\"}";
		return FAM_BYTES;
	case STAT_BYTES_DOWN:
		*labels = "{direction=\"down\"}";
		return FAM_BYTES;
	case STAT_UPSTREAM_MPTCP:
		*labels = "{mptcp=\"yes\"}";
		return FAM_UPSTREAM;
	case STAT_UPSTREAM_FALLBACK:
		*labels = "{mptcp=\"fallback\"}";
		return FAM_UPSTREAM;
	case STAT_UPSTREAM_TCP:
		*labels = "{mptcp=\"no\"}";
		return FAM_UPSTREAM;
	case STAT_UPSTREAM_CACHED_NO:
		*labels = "{mptcp=\"cached-no\"}";
		return FAM_UPSTREAM;
	case STAT_PATH_OVERFLOW:
		return FAM_PATH_OVERFLOW;
	case STAT_STATE_CLIENTS:
	case STAT_STATE_CONNECTED:
		/* mpgw_state_redis_up is made of the two. */
		return FAM_NONE;
	case STAT_STATE_CONNECT_OK:
		*labels = "{result=\"ok\"}";
		return FAM_STATE_CONNECTS;
	case STAT_STATE_CONNECT_FAILED:
		*labels = "{result=\"failed\"}";
		return FAM_STATE_CONNECTS;
	case STAT_STATE_REPLAY_REQUESTS:
		*labels = "{op=\"replay\"}";
		return FAM_STATE_REQUESTS;
	case STAT_STATE_REPLAY_ERRORS:
		*labels = "{op=\"replay\"}";
		return FAM_STATE_ERRORS;
	case STAT_STATE_THROTTLE_REQUESTS:
		*labels = "{op=\"throttle\"}";
		return FAM_STATE_REQUESTS;
	case STAT_STATE_THROTTLE_ERRORS:
		*labels = "{op=\"throttle\"}";
		return FAM_STATE_ERRORS;
	case STAT_UDP_OPEN:
		return FAM_UDP_OPEN;
	case STAT_REFUSED_UDP_LIMIT:
		*labels = "{reason=\"max_udp_associations\"}";
		return FAM_REFUSED;
	case STAT_UDP_DGRAMS_UP:
		*labels = "{direction=\"up\"}";
		return FAM_UDP_DGRAMS;
	case STAT_UDP_DGRAMS_DOWN:
		*labels = "{direction=\"down\"}";
		return FAM_UDP_DGRAMS;
	case STAT_UDP_DROP_FRAG:
		*labels = "{reason=\"frag\"}";
		return FAM_UDP_DROPPED;
	case STAT_UDP_DROP_SOURCE:
		*labels = "{reason=\"source\"}";
		return FAM_UDP_DROPPED;
	case STAT_UDP_DROP_DENIED:
		*labels = "{reason=\"denied\"}";
		return FAM_UDP_DROPPED;
	case STAT_UDP_DROP_BAD:
		*labels = "{reason=\"bad\"}";
		return FAM_UDP_DROPPED;
	case STAT_UDP_DROP_UNRESOLVED:
		*labels = "{reason=\"unresolved\"}";
		return FAM_UDP_DROPPED;
	case STAT_UDP_DROP_CONGESTED:
		*labels = "{reason=\"congested\"}";
		return FAM_UDP_DROPPED;
	case STAT_UDP_DROP_UNSOLICITED:
		*labels = "{reason=\"unsolicited\"}";
		return FAM_UDP_DROPPED;
	case STAT_UDP_DROP_ERROR:
		*labels = "{reason=\"error\"}";
		return FAM_UDP_DROPPED;
	case STAT_BIND_WRONG_PEER:
		return FAM_BIND_WRONG_PEER;
	case STAT_CLIENT_MPTCP:
		*labels = "{mptcp=\"yes\"}";
		return FAM_CLIENT;
	case STAT_CLIENT_TCP:
		*labels = "{mptcp=\"no\"}";
		return FAM_CLIENT;
	}
	return FAM_NONE;
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void
put_value(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void
put_hist(FILE *f, const char *name, struct hist *hi)
{
	uint64_t cum = 0, sum = cnt_get(&hi->sum);

	for (size_t i = 0; i <= hi->n; i++) {
		cum += cnt_get(&hi->count[i]);
		if (i < hi->n)
			fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
			    hi->le[i], cum);
		else
			fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
			    name, cum);
	}
	if (hi->unit_den == 1)
		fprintf(f, "%s_sum %" PRIu64 "\n", name, sum);
	else
		fprintf(f, "%s_sum %" PRIu64 ".%09" PRIu64 "\n", name,
		    sum / hi->unit_den, sum % hi->unit_den);
	fprintf(f, "%s_count %" PRIu64 "\n", name, cum);
}

static void
put_sessions(FILE *f, const char *name)
{
	unsigned nl = atomic_load_explicit(&listeners.n, memory_order_acquire);
	unsigned nm = atomic_load_explicit(&methods.n, memory_order_acquire);

	for (unsigned l = 0; l <= LISTENERS_MAX; l++) {
		if (l >= nl && l < LISTENERS_MAX)
			continue;
		for (unsigned m = 0; m <= METHODS_MAX; m++) {
			if (m >= nm && m < METHODS_MAX)
				continue;
			for (unsigned r = 0; r < SESS_RES_COUNT; r++) {
				uint64_t v = cnt_get(&sessions[l][m][r]);

				if (v == 0)
					continue;
				fprintf(f, "%s{listener=\"", name);
				put_value(f, names_get(&listeners,
				    LISTENERS_MAX, l));
				fputs("\",method=\"", f);
				put_value(f, names_get(&methods, METHODS_MAX,
				    m));
				fprintf(f, "\",result=\"%s\"} %" PRIu64 "\n",
				    sess_result_name((enum sess_result)r), v);
			}
		}
	}
}

static void
put_auth_failures(FILE *f, const char *name)
{
	unsigned nm = atomic_load_explicit(&methods.n, memory_order_acquire);

	for (unsigned m = 0; m <= METHODS_MAX; m++) {
		uint64_t v = cnt_get(&auth_failures[m]);

		if (v == 0 || (m >= nm && m < METHODS_MAX))
			continue;
		fprintf(f, "%s{method=\"", name);
		put_value(f, names_get(&methods, METHODS_MAX, m));
		fprintf(f, "\"} %" PRIu64 "\n", v);
	}
}

static void
put_paths(FILE *f, const char *name)
{
	unsigned n = atomic_load_explicit(&n_paths, memory_order_acquire);
	char a[INET6_ADDRSTRLEN];

	for (unsigned i = 0; i <= STATS_PATHS_MAX; i++) {
		struct path_slot *p = &paths[i];
		uint64_t sent = cnt_get(&p->sent), recv = cnt_get(&p->received);

		if (i == STATS_PATHS_MAX) {
			if (sent == 0 && recv == 0)
				continue;
			strcpy(a, "other");
		} else if (i >= n)
			continue;
		else if (inet_ntop(p->family, p->addr, a, sizeof(a)) == NULL)
			strcpy(a, "?");
		fprintf(f, "%s{local=\"%s\",direction=\"sent\"} %" PRIu64 "\n"
		    "%s{local=\"%s\",direction=\"received\"} %" PRIu64 "\n",
		    name, a, sent, name, a, recv);
	}
}

int
stats_write_prometheus(FILE *f)
{
	bool state = stats_get(STAT_STATE_CLIENTS) > 0;

	for (int fam = FAM_BUILD_INFO; fam < FAM_COUNT; fam++) {
		const char *name = fams[fam].name, *labels;

		if (fam >= FAM_STATE_UP && !state)
			break;	/* no [state] redis: nothing to say */

		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name,
		    fams[fam].help, name, fams[fam].type);
		switch ((enum fam)fam) {
		case FAM_BUILD_INFO:
			fprintf(f, "%s{version=\"%s\"} 1\n", name,
			    MPGW_VERSION);
			break;
		case FAM_SESSIONS:
			put_sessions(f, name);
			break;
		case FAM_AUTH_FAILURES:
			put_auth_failures(f, name);
			break;
		case FAM_SUBFLOWS:
			put_hist(f, name, &hists[STAT_H_SUBFLOWS]);
			break;
		case FAM_PATH_BYTES:
			put_paths(f, name);
			break;
		case FAM_CONNECT:
			put_hist(f, name, &hists[STAT_H_CONNECT]);
			break;
		case FAM_REPLY:
			put_hist(f, name, &hists[STAT_H_REPLY]);
			break;
		case FAM_CLIENT_SUBFLOWS:
			put_hist(f, name, &hists[STAT_H_CLIENT_SUBFLOWS]);
			break;
		case FAM_STATE_UP:
			fprintf(f, "%s %d\n", name, stats_get(STAT_STATE_CONNECTED)
			    >= stats_get(STAT_STATE_CLIENTS) ? 1 : 0);
			break;
		case FAM_NONE:
		case FAM_STARTED:
		case FAM_OPEN:
		case FAM_BYTES:
		case FAM_REPLAYS:
		case FAM_REFUSED:
		case FAM_UPSTREAM:
		case FAM_PATH_OVERFLOW:
		case FAM_STATE_CONNECTS:
		case FAM_STATE_REQUESTS:
		case FAM_STATE_ERRORS:
		case FAM_UDP_OPEN:
		case FAM_UDP_DGRAMS:
		case FAM_UDP_DROPPED:
		case FAM_BIND_WRONG_PEER:
		case FAM_CLIENT:
			for (int id = 0; id < STAT_COUNT; id++)
				if (stat_export((enum stat_id)id, &labels) ==
				    (enum fam)fam)
					fprintf(f, "%s%s %" PRIu64 "\n", name,
					    labels, stats_get((enum stat_id)
					    id));
			break;
		}
	}
	return ferror(f) ? -1 : 0;
}

void
stats_log(void)
{
	struct auth_throttle_stats ts;
	struct auth_replay_stats rs;

	auth_throttle_stats(&ts);
	auth_replay_stats(&rs);
	log_info("stats: sessions open %" PRIu64 ", accepted %" PRIu64
	    "; failed logins %" PRIu64 ", refused connections %" PRIu64
	    " (max_sessions %" PRIu64 ", max_per_source %" PRIu64
	    ", failed logins %" PRIu64 ", PROXY %" PRIu64 "), sources "
	    "tracked %u; convert replays refused %" PRIu64 ", nonces "
	    "remembered %zu; bytes up %" PRIu64 ", down %" PRIu64,
	    stats_get(STAT_OPEN),
	    stats_get(STAT_ACCEPTED), stats_get(STAT_LOGIN_FAILURES),
	    stats_get(STAT_REFUSED_MAX_SESSIONS) +
	    stats_get(STAT_REFUSED_PER_SOURCE) +
	    stats_get(STAT_REFUSED_THROTTLE) +
	    stats_get(STAT_REFUSED_PROXY),
	    stats_get(STAT_REFUSED_MAX_SESSIONS),
	    stats_get(STAT_REFUSED_PER_SOURCE),
	    stats_get(STAT_REFUSED_THROTTLE), stats_get(STAT_REFUSED_PROXY),
	    ts.tracked,
	    stats_get(STAT_CONVERT_REPLAYS), rs.live,
	    stats_get(STAT_BYTES_UP), stats_get(STAT_BYTES_DOWN));
}
