/*
 * Unit tests for the HTTP request codec (proto/http.c): valid heads as
 * Prometheus, curl and HTTP/1.0 clients send them, every prefix of each
 * fed one byte at a time, each malformed field refused at its byte, bytes
 * after the head left alone, and the response head writer.
 *
 * Every parse runs on a heap copy of exactly the bytes offered, so a
 * parser that reads past len trips AddressSanitizer in the asan build.
 */
#include "proto/http.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#define PROM "GET /metrics HTTP/1.1\r\n" \
	"Host: 127.0.0.1:9100\r\n" \
	"User-Agent: Prometheus/2.42.0\r\n" \
	"Accept: application/openmetrics-text;version=1.0.0,application/" \
	"openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;" \
	"q=0.5,*/*;q=0.1\r\n" \
	"Accept-Encoding: gzip\r\n" \
	"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n" \
	"\r\n"

static enum http_res
parse(const char *s, size_t len, struct http_req *r, size_t *used)
{
	uint8_t *p = malloc(len > 0 ? len : 1);
	enum http_res res;

	cr_assert_not_null(p);
	memcpy(p, s, len);
	res = http_req_parse(p, len, r, used);
	/* The target points into the copy: keep it valid for the caller. */
	if (res == HTTP_OK) {
		static uint8_t keep[HTTP_REQ_MAX];

		cr_assert_leq(len, sizeof(keep));
		memcpy(keep, p, len);
		r->target = keep + (r->target - p);
	}
	free(p);
	return res;
}

/*
 * Every proper prefix of s is HTTP_AGAIN and s itself is HTTP_OK with the
 * whole of s used; returns the parse of s.
 */
static struct http_req
every_prefix(const char *s)
{
	size_t len = strlen(s), used = 0;
	struct http_req r;

	for (size_t k = 0; k < len; k++)
		cr_assert_eq(parse(s, k, &r, &used), HTTP_AGAIN,
		    "prefix of %zu bytes of %s", k, s);
	cr_assert_eq(parse(s, len, &r, &used), HTTP_OK, "%s", s);
	cr_assert_eq(used, len);
	return r;
}

static bool
target_is(const struct http_req *r, const char *t)
{
	return r->target_len == strlen(t) &&
	    memcmp(r->target, t, r->target_len) == 0;
}

Test(http, prometheus_scrape)
{
	struct http_req r = every_prefix(PROM);

	cr_assert_eq(r.method, HTTP_METHOD_GET);
	cr_assert(target_is(&r, "/metrics"));
	cr_assert_eq(r.path_len, 8);
	cr_assert_eq(r.minor, 1);
}

Test(http, http10_bare_lf_no_fields)
{
	struct http_req r = every_prefix("GET /metrics HTTP/1.0\n\n");

	cr_assert_eq(r.method, HTTP_METHOD_GET);
	cr_assert_eq(r.minor, 0);
}

Test(http, head_and_query)
{
	struct http_req r = every_prefix("HEAD /metrics?x=1&y HTTP/1.1\r\n"
	    "Host: a\r\n\r\n");

	cr_assert_eq(r.method, HTTP_METHOD_HEAD);
	cr_assert(target_is(&r, "/metrics?x=1&y"));
	cr_assert_eq(r.path_len, 8);
}

Test(http, other_methods_and_targets)
{
	struct http_req r = every_prefix("POST /metrics HTTP/1.1\r\n\r\n");

	cr_assert_eq(r.method, HTTP_METHOD_OTHER);
	r = every_prefix("get /metrics HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.method, HTTP_METHOD_OTHER, "methods are case-sensitive");
	r = every_prefix("GETS / HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.method, HTTP_METHOD_OTHER);
	r = every_prefix("OPTIONS * HTTP/1.1\r\n\r\n");
	cr_assert(target_is(&r, "*"));
	r = every_prefix("GET http://h:1/metrics HTTP/1.1\r\n\r\n");
	cr_assert(target_is(&r, "http://h:1/metrics"));
}

Test(http, field_values)
{
	/* Empty values, tabs, obs-text, a colon in the value. */
	every_prefix("GET / HTTP/1.1\r\nA:\r\nB: \t x:y \t\r\n"
	    "C: caf\xc3\xa9\r\n\r\n");
}

Test(http, bytes_after_head_untouched)
{
	const char *s = "GET / HTTP/1.1\r\n\r\nGET /again HTTP/1.1\r\n\r\n";
	struct http_req r;
	size_t used = 0;

	cr_assert_eq(parse(s, strlen(s), &r, &used), HTTP_OK);
	cr_assert_eq(used, strlen("GET / HTTP/1.1\r\n\r\n"));
}

/*
 * Each malformed head, and the number of bytes after which it must be
 * refused: the parser says HTTP_BAD at the first byte that cannot belong
 * to a valid head, and HTTP_AGAIN for every shorter prefix.
 */
static const struct {
	const char *s;
	size_t bad_at;	/* bytes needed before HTTP_BAD */
} bad[] = {
	{ " GET / HTTP/1.1\r\n\r\n", 1 },		/* empty method */
	{ "G\x01T / HTTP/1.1\r\n\r\n", 2 },		/* CTL in method */
	{ "GET\t/ HTTP/1.1\r\n\r\n", 4 },		/* HTAB, not SP */
	{ "GET  / HTTP/1.1\r\n\r\n", 5 },		/* empty target */
	{ "GET /\x7f HTTP/1.1\r\n\r\n", 6 },		/* DEL in target */
	{ "GET /m\xc3\xa9 HTTP/1.1\r\n\r\n", 7 },	/* non-ASCII target */
	{ "GET /\r\n\r\n", 6 },				/* HTTP/0.9 */
	{ "GET / http/1.1\r\n\r\n", 7 },		/* version case */
	{ "GET / HTTP/2.0\r\n\r\n", 12 },		/* HTTP/2 */
	{ "GET / HTTP/1.x\r\n\r\n", 14 },		/* minor not a digit */
	{ "GET / HTTP/1.10\r\n\r\n", 15 },		/* two digits */
	{ "GET / HTTP/1.1 \r\n\r\n", 15 },		/* trailing blank */
	{ "GET / HTTP/1.1\rX\n\r\n", 16 },		/* CR without LF */
	{ "GET / HTTP/1.1\r\n folded\r\n\r\n", 17 },	/* obs-fold */
	{ "GET / HTTP/1.1\r\n: v\r\n\r\n", 17 },	/* empty field name */
	{ "GET / HTTP/1.1\r\nA B: v\r\n\r\n", 18 },	/* blank in name */
	{ "GET / HTTP/1.1\r\nNoColon\r\n\r\n", 24 },	/* no colon */
	{ "GET / HTTP/1.1\r\nA: \x01\r\n\r\n", 20 },	/* CTL in value */
	{ "GET / HTTP/1.1\r\nA: v\r\r\n\r\n", 22 },	/* CR CR */
	{ "GET / HTTP/1.1\r\n\rX", 18 },		/* blank line CR X */
};

Test(http, malformed_refused_at_its_byte)
{
	for (size_t t = 0; t < sizeof(bad) / sizeof(bad[0]); t++) {
		const char *s = bad[t].s;
		size_t len = strlen(s), used = 0;
		struct http_req r;

		for (size_t k = 0; k < bad[t].bad_at; k++)
			cr_assert_eq(parse(s, k, &r, &used), HTTP_AGAIN,
			    "case %zu: prefix %zu", t, k);
		for (size_t k = bad[t].bad_at; k <= len; k++)
			cr_assert_eq(parse(s, k, &r, &used), HTTP_BAD,
			    "case %zu: prefix %zu", t, k);
	}
}

Test(http, nul_refused)
{
	const char s[] = "GET /a\0b HTTP/1.1\r\n\r\n";
	struct http_req r;
	size_t used;

	cr_assert_eq(parse(s, sizeof(s) - 1, &r, &used), HTTP_BAD);
}

Test(http, write_head)
{
	char out[HTTP_HEAD_MAX];
	size_t n;

	n = http_write_head(out, sizeof(out), 200,
	    "text/plain; version=0.0.4; charset=utf-8", 12);
	cr_assert_eq(n, strlen(out));
	cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	    "Content-Length: 12\r\nConnection: close\r\n\r\n");
	n = http_write_head(out, sizeof(out), 405, NULL, 0);
	cr_assert_str_eq(out, "HTTP/1.1 405 Method Not Allowed\r\n"
	    "Content-Length: 0\r\nAllow: GET, HEAD\r\nConnection: close\r\n"
	    "\r\n");
	cr_assert_eq(n, strlen(out));
	cr_assert_eq(http_write_head(out, 20, 404, NULL, 0), 0);
	cr_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
}
