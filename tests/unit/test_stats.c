/*
 * gateway/stats.c: the registry's labeled counters, histograms and
 * per-path bytes as the Prometheus text format shows them. Criterion runs
 * each test in its own process, so each starts from zero. When promtool
 * (Debian's prometheus package) is installed, the output of each test is
 * also checked with `promtool check metrics`.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/mptcp.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "gateway/version.h"

static char *text;

/* Render the metrics into text (freed by the next call). */
static const char *
render(void)
{
	size_t len;
	FILE *f;

	free(text);
	f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	cr_assert_eq(stats_write_prometheus(f), 0);
	cr_assert_eq(fclose(f), 0);
	return text;
}

/* The output holds this exact line. */
static void
has_line(const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	cr_assert_not_null(strstr(render(), want), "no line \"%s\" in:\n%s",
	    line, text);
}

static void
lacks(const char *s)
{
	cr_assert_null(strstr(render(), s), "\"%s\" in:\n%s", s, text);
}

/* promtool's own lint of the current output, where it is installed. */
static void
promtool_check(void)
{
	const char *out = render();
	FILE *p;

	if (system("command -v promtool >/dev/null 2>&1") != 0)
		return;
	p = popen("promtool check metrics", "w");
	cr_assert_not_null(p);
	fputs(out, p);
	cr_assert_eq(pclose(p), 0, "promtool check metrics failed on:\n%s",
	    out);
}

static struct mptcp_subflow
subflow(uint32_t id, const char *local, uint64_t sent, uint64_t received)
{
	struct mptcp_subflow sf;
	struct sockaddr_in *sin = (struct sockaddr_in *)&sf.local;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sf.local;

	memset(&sf, 0, sizeof(sf));
	sf.id = id;
	sf.sent = sent;
	sf.received = received;
	if (inet_pton(AF_INET, local, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		cr_assert_eq(inet_pton(AF_INET6, local, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	sin->sin_port = htons(40000 + id);
	return sf;
}

Test(stats, plain_counters_and_build_info)
{
	stats_add(STAT_ACCEPTED, 3);
	stats_add(STAT_OPEN, 2);
	stats_add(STAT_BYTES_UP, 100);
	stats_add(STAT_REFUSED_THROTTLE, 1);
	stats_add(STAT_REFUSED_PROXY, 2);
	stats_add(STAT_UPSTREAM_FALLBACK, 4);
	has_line("mpgw_build_info{version=\"" MPGW_VERSION "\"} 1");
	has_line("mpgw_sessions_started_total 3");
	has_line("mpgw_sessions_open 2");
	has_line("mpgw_bytes_total{direction=\"up\"} 100");
	has_line("mpgw_bytes_total{direction=\"down\"} 0");
	has_line("mpgw_refused_total{reason=\"throttle\"} 1");
	has_line("mpgw_refused_total{reason=\"max_sessions\"} 0");
	has_line("mpgw_refused_total{reason=\"rules\"} 0");
	has_line("mpgw_refused_total{reason=\"proxy\"} 2");
	has_line("mpgw_upstream_connections_total{mptcp=\"fallback\"} 4");
	has_line("mpgw_upstream_connections_total{mptcp=\"yes\"} 0");
	has_line("# TYPE mpgw_sessions_open gauge");
	has_line("# TYPE mpgw_upstream_path_bytes_total counter");
	promtool_check();
}

Test(stats, sessions_by_listener_method_result)
{
	stats_session_end("socks5", "none", SESS_RES_OK);
	stats_session_end("socks5", "none", SESS_RES_OK);
	stats_session_end("socks5", "-", SESS_RES_BAD_GREETING);
	stats_session_end("convert", "convert", SESS_RES_CONVERT_REPLAY);
	stats_auth_failed("userpass");
	stats_auth_failed("userpass");
	stats_auth_failed("convert");
	has_line("mpgw_sessions_total{listener=\"socks5\",method=\"none\","
	    "result=\"ok\"} 2");
	has_line("mpgw_sessions_total{listener=\"socks5\",method=\"-\","
	    "result=\"bad-greeting\"} 1");
	has_line("mpgw_sessions_total{listener=\"convert\",method=\"convert\","
	    "result=\"convert-replay\"} 1");
	has_line("mpgw_auth_failures_total{method=\"userpass\"} 2");
	has_line("mpgw_auth_failures_total{method=\"convert\"} 1");
	/* Combinations never seen are not invented. */
	lacks("listener=\"convert\",method=\"none\"");
	cr_assert_eq(stats_get(STAT_LOGIN_FAILURES), 3);
	promtool_check();
}

Test(stats, label_table_full_counts_as_other)
{
	char name[32];

	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		stats_session_end("socks5", name, SESS_RES_OK);
	}
	/* Longer than a table entry: never cut to a prefix. */
	stats_session_end("socks5", "a-method-name-much-too-long-to-keep",
	    SESS_RES_OK);
	has_line("mpgw_sessions_total{listener=\"socks5\",method=\"m11\","
	    "result=\"ok\"} 1");
	/* 12 methods kept (m0..m11); m12..m19 and the long one are other. */
	has_line("mpgw_sessions_total{listener=\"socks5\",method=\"other\","
	    "result=\"ok\"} 9");
	lacks("m12");
	promtool_check();
}

Test(stats, histograms_cumulative)
{
	stats_observe(STAT_H_CONNECT, 0.0001);
	stats_observe(STAT_H_CONNECT, 0.003);
	stats_observe(STAT_H_CONNECT, 0.003);
	stats_observe(STAT_H_CONNECT, 42);
	stats_observe(STAT_H_CONNECT, -1);	/* a clock step: counted as 0 */
	has_line("mpgw_upstream_connect_seconds_bucket{le=\"0.0005\"} 2");
	has_line("mpgw_upstream_connect_seconds_bucket{le=\"0.0025\"} 2");
	has_line("mpgw_upstream_connect_seconds_bucket{le=\"0.005\"} 4");
	has_line("mpgw_upstream_connect_seconds_bucket{le=\"10\"} 4");
	has_line("mpgw_upstream_connect_seconds_bucket{le=\"+Inf\"} 5");
	has_line("mpgw_upstream_connect_seconds_sum 42.006100000");
	has_line("mpgw_upstream_connect_seconds_count 5");
	stats_observe(STAT_H_SUBFLOWS, 0);
	stats_observe(STAT_H_SUBFLOWS, 1);
	stats_observe(STAT_H_SUBFLOWS, 1);
	has_line("mpgw_upstream_subflows_bucket{le=\"0\"} 1");
	has_line("mpgw_upstream_subflows_bucket{le=\"1\"} 3");
	has_line("mpgw_upstream_subflows_sum 2");
	has_line("mpgw_reply_seconds_count 0");
	promtool_check();
}

/*
 * Two samples of one connection (the relay's first EOF, then close): each
 * subflow counts with its larger reading, once; a subflow gone by the
 * second sample keeps what the first saw.
 */
Test(stats, paths_two_samples_counted_once)
{
	struct stats_paths *p = NULL;
	struct mptcp_subflow a[2] = {
		subflow(1, "10.77.3.2", 100, 5000),
		subflow(2, "10.77.4.2", 10, 3000),
	};
	struct mptcp_subflow b[1] = {
		subflow(1, "10.77.3.2", 150, 5001),
	};

	stats_paths_sample(&p, a, 2);
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.3.2\","
	    "direction=\"received\"} 5000");
	stats_paths_sample(&p, b, 1);
	stats_paths_sample(&p, b, 1);
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.3.2\","
	    "direction=\"sent\"} 150");
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.3.2\","
	    "direction=\"received\"} 5001");
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.4.2\","
	    "direction=\"sent\"} 10");
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.4.2\","
	    "direction=\"received\"} 3000");
	stats_paths_free(&p);
	cr_assert_null(p);

	/* A second connection over the same addresses adds to them. */
	stats_paths_sample(&p, b, 1);
	stats_paths_free(&p);
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.3.2\","
	    "direction=\"sent\"} 300");
	promtool_check();
}

/*
 * The kernel lists a subflow that is not bound yet with 0.0.0.0, and may
 * show a closed one that way too: neither makes a path of its own.
 */
Test(stats, paths_unspecified_address)
{
	struct stats_paths *p = NULL;
	struct mptcp_subflow s1[2] = {
		subflow(1, "10.77.3.2", 12, 1000),
		subflow(2, "0.0.0.0", 0, 0),
	};
	struct mptcp_subflow s2[2] = {
		subflow(1, "0.0.0.0", 12, 1500),
		subflow(2, "10.77.4.2", 0, 700),
	};

	stats_paths_sample(&p, s1, 2);
	stats_paths_sample(&p, s2, 2);
	stats_paths_free(&p);
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.3.2\","
	    "direction=\"received\"} 1500");
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.4.2\","
	    "direction=\"received\"} 700");
	lacks("0.0.0.0");
	lacks("{local=\"other\"");
}

Test(stats, paths_v4_mapped_and_v6)
{
	struct stats_paths *p = NULL;
	struct mptcp_subflow sf[2] = {
		subflow(1, "::ffff:10.77.3.2", 1, 2),
		subflow(2, "2001:db8::2", 3, 4),
	};

	stats_paths_sample(&p, sf, 2);
	stats_paths_free(&p);
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.3.2\","
	    "direction=\"received\"} 2");
	has_line("mpgw_upstream_path_bytes_total{local=\"2001:db8::2\","
	    "direction=\"sent\"} 3");
}

Test(stats, paths_table_full_counts_as_other)
{
	char a[32];

	for (int i = 0; i < STATS_PATHS_MAX + 3; i++) {
		struct stats_paths *p = NULL;
		struct mptcp_subflow sf;

		snprintf(a, sizeof(a), "10.77.%d.%d", i / 200, 1 + i % 200);
		sf = subflow(1, a, 10, 20);
		stats_paths_sample(&p, &sf, 1);
		/* The same subflow again: not a second overflow. */
		sf.sent = 11;
		stats_paths_sample(&p, &sf, 1);
		stats_paths_free(&p);
	}
	has_line("mpgw_upstream_path_bytes_total{local=\"10.77.0.64\","
	    "direction=\"sent\"} 11");
	lacks("local=\"10.77.0.65\"");
	has_line("mpgw_upstream_path_bytes_total{local=\"other\","
	    "direction=\"sent\"} 33");
	has_line("mpgw_upstream_path_bytes_total{local=\"other\","
	    "direction=\"received\"} 60");
	has_line("mpgw_upstream_path_overflow_total 3");
	promtool_check();
}

#define THREADS 4
#define ROUNDS 20000

static void *
hammer(void *arg)
{
	char m[8];

	snprintf(m, sizeof(m), "m%d", (int)(uintptr_t)arg % 2);
	for (int i = 0; i < ROUNDS; i++) {
		stats_session_end("socks5", m, SESS_RES_OK);
		stats_observe(STAT_H_REPLY, 0.001);
	}
	return NULL;
}

/* Workers count in parallel, first sightings of a label included. */
Test(stats, concurrent_counts_exact)
{
	pthread_t t[THREADS];
	char line[128];

	for (uintptr_t i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int m = 0; m < 2; m++) {
		snprintf(line, sizeof(line), "mpgw_sessions_total{listener="
		    "\"socks5\",method=\"m%d\",result=\"ok\"} %d", m,
		    THREADS / 2 * ROUNDS);
		has_line(line);
	}
	snprintf(line, sizeof(line), "mpgw_reply_seconds_count %d",
	    THREADS * ROUNDS);
	has_line(line);
	lacks("method=\"other\"");
}
