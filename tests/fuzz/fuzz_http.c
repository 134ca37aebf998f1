/*
 * libFuzzer target for the HTTP request codec (proto/http.c).
 *
 * For each input:
 *  - the prefixes, each in a heap block of exactly its size (so ASan sees
 *    any read past len), give HTTP_AGAIN until one gives the final
 *    answer, and that answer (result, *used, every field) is the one the
 *    whole input gives;
 *  - an accepted head lies inside the input, ends with its blank line,
 *    and its target lies inside its request line.
 * Any disagreement aborts.
 *
 *	clang -std=c11 -D_GNU_SOURCE -I. -g -O1 \
 *	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *	    -o fuzz_http tests/fuzz/fuzz_http.c proto/http.c
 *	./fuzz_http -max_len=4096 -max_total_time=60
 */
#include "proto/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(                                               \
			    stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);    \
			abort();                                               \
		}                                                              \
	} while (0)

/* What an accepted head of used bytes at buf must satisfy. */
static void
sane(const struct http_req *r, const uint8_t *buf, size_t used)
{
	CHECK(used >= 14 && buf[used - 1] == '\n');
	CHECK(buf[used - 2] == '\n' ||
	    (buf[used - 2] == '\r' && buf[used - 3] == '\n'));
	CHECK(r->target > buf && r->target_len > 0);
	CHECK(r->target + r->target_len < buf + used);
	CHECK(memchr(buf, '\n', (size_t)(r->target - buf)) == NULL);
	CHECK(r->path_len <= r->target_len && r->minor <= 9);
	CHECK(r->method == HTTP_METHOD_GET || r->method == HTTP_METHOD_HEAD ||
	    r->method == HTTP_METHOD_OTHER);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req whole, part;
	size_t wused = 0, pused = 0;
	enum http_res wr, pr = HTTP_AGAIN;

	if (size > HTTP_REQ_MAX)
		size = HTTP_REQ_MAX;
	wr = http_req_parse(data, size, &whole, &wused);
	if (wr == HTTP_OK) {
		CHECK(wused <= size);
		sane(&whole, data, wused);
	}
	for (size_t k = 0; k <= size; k++) {
		uint8_t *p = malloc(k > 0 ? k : 1);

		CHECK(p != NULL);
		memcpy(p, data, k);
		pr = http_req_parse(p, k, &part, &pused);
		if (pr != HTTP_AGAIN) {
			CHECK(pr == wr);
			if (pr == HTTP_OK) {
				CHECK(pused == wused && k == wused);
				CHECK(part.method == whole.method);
				CHECK(part.target - p == whole.target - data);
				CHECK(part.target_len == whole.target_len);
				CHECK(part.path_len == whole.path_len);
				CHECK(part.minor == whole.minor);
			}
			free(p);
			break;
		}
		free(p);
	}
	CHECK(pr == wr);
	return 0;
}
