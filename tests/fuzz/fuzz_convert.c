/*
 * libFuzzer target for the Convert codec (proto/convert.c).
 *
 * For each input, as a request, as a reply and as UDP datagram frames:
 *  - the prefixes, each in a heap block of exactly its size (so ASan sees
 *    any read past len), give AGAIN until one gives the final answer, and
 *    that answer (result, Error code, every parsed field) is the one the
 *    whole input gives;
 *  - a request that parses is written back with conv_write_request and
 *    parses again to the same fields;
 *  - frames parsed one after another stay inside the input, and each one
 *    written back with conv_udp_frame_write is the same bytes.
 * Any disagreement aborts.
 *
 *	clang -std=c11 -D_GNU_SOURCE -I. -g -O1 \
 *	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *	    -o fuzz_convert tests/fuzz/fuzz_convert.c proto/convert.c \
 *	    $(pkg-config --cflags --libs openssl)
 *	./fuzz_convert -max_len=1100 -max_total_time=60
 */
#include "proto/convert.h"

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

/* Offset of p inside buf, or -1 for NULL. */
static long
off_in(const uint8_t *p, const uint8_t *buf)
{
	return p == NULL ? -1 : (long)(p - buf);
}

/* a (parsed from abuf) and b (from bbuf) hold the same request. */
static void
same_msg(const struct conv_msg *a, const uint8_t *abuf,
    const struct conv_msg *b, const uint8_t *bbuf)
{
	CHECK(a->len == b->len);
	CHECK(a->port == b->port);
	CHECK(a->has_connect == b->has_connect);
	CHECK(memcmp(&a->addr, &b->addr, sizeof(a->addr)) == 0);
	CHECK(off_in(a->opts, abuf) == off_in(b->opts, bbuf));
	CHECK(a->opts_len == b->opts_len);
	CHECK(a->has_name == b->has_name);
	CHECK(a->name_len == b->name_len);
	CHECK(strcmp(a->name, b->name) == 0);
	CHECK(a->has_cookie == b->has_cookie);
	CHECK(off_in(a->cookie, abuf) == off_in(b->cookie, bbuf));
	CHECK(a->cookie_len == b->cookie_len);
	CHECK(a->info == b->info);
	CHECK(a->silent == b->silent);
	CHECK(a->has_udp == b->has_udp);
	CHECK(a->has_auth == b->has_auth);
	CHECK(a->user_len == b->user_len);
	CHECK(strcmp(a->user, b->user) == 0);
	CHECK(a->ts == b->ts);
	CHECK(memcmp(a->nonce, b->nonce, sizeof(a->nonce)) == 0);
	CHECK(memcmp(a->mac, b->mac, sizeof(a->mac)) == 0);
	CHECK(a->mac_off == b->mac_off);
}

/* What a parsed request must satisfy on its own. */
static void
sane_msg(const struct conv_msg *m, const uint8_t *buf, size_t size)
{
	CHECK(m->len >= CONV_HDR_LEN && m->len <= CONV_MSG_MAX);
	CHECK(m->len <= size && m->len % 4 == 0);
	if (m->has_udp) {
		/* A UDP association names no target of its own. */
		CHECK(!m->has_name);
		if (m->has_connect) {
			CHECK(m->port == 0 && m->opts_len == 0);
			CHECK(IN6_IS_ADDR_UNSPECIFIED(&m->addr) ||
			    (IN6_IS_ADDR_V4MAPPED(&m->addr) &&
				memcmp(m->addr.s6_addr + 12, "\0\0\0\0", 4) ==
				    0));
		}
	} else {
		CHECK(m->has_connect != m->has_name);
	}
	if (m->has_name)
		CHECK(m->name_len > 0 && strlen(m->name) == m->name_len);
	if (m->has_connect)
		CHECK(m->opts + m->opts_len <= buf + m->len);
	if (m->has_cookie)
		CHECK(m->cookie + m->cookie_len <= buf + m->len);
	if (m->has_auth) {
		CHECK(m->user_len > 0 && strlen(m->user) == m->user_len);
		CHECK(m->mac_off + CONV_MAC_LEN <= m->len);
		CHECK(memcmp(buf + m->mac_off, m->mac, CONV_MAC_LEN) == 0);
	}
}

/* Writes m back and checks it parses to the same fields. */
static void
rewrite(const struct conv_msg *m, const uint8_t *buf)
{
	static const uint8_t key[CONV_KEY_LEN] = {1, 2, 3};
	uint8_t out[CONV_MSG_MAX], err;
	struct sockaddr_in6 sin6;
	struct conv_req req;
	struct conv_msg m2;
	size_t n, mac_off;

	memset(&req, 0, sizeof(req));
	if (m->has_connect) {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(m->port);
		sin6.sin6_addr = m->addr;
		req.addr = (const struct sockaddr *)&sin6;
		req.opts = m->opts;
		req.opts_len = m->opts_len;
	} else if (m->has_name) {
		req.name = m->name;
		req.port = m->port;
	}
	req.udp = m->has_udp;
	if (m->has_cookie) {
		req.cookie = m->cookie;
		req.cookie_len = m->cookie_len;
	}
	req.info = m->info;
	req.silent = m->silent;
	if (m->has_auth) {
		req.user = m->user;
		req.ts = m->ts;
		memcpy(req.nonce, m->nonce, sizeof(req.nonce));
	}
	n = conv_write_request(out, sizeof(out), &req, &mac_off);
	/* Unknown private TLVs are dropped, so it can only get shorter. */
	CHECK(n > 0 && n <= m->len);
	if (m->has_auth)
		memcpy(out + mac_off, m->mac, CONV_MAC_LEN);
	CHECK(conv_parse_request(out, n, &m2, &err) == CONV_OK);
	CHECK(m2.len == n);
	CHECK(m2.port == m->port && m2.has_connect == m->has_connect);
	CHECK(memcmp(&m2.addr, &m->addr, sizeof(m->addr)) == 0);
	CHECK(m2.opts_len == m->opts_len);
	CHECK(m->opts_len == 0 || memcmp(m2.opts, m->opts, m->opts_len) == 0);
	CHECK(strcmp(m2.name, m->name) == 0);
	CHECK(m2.cookie_len == m->cookie_len && m2.has_cookie == m->has_cookie);
	CHECK(m->cookie_len == 0 ||
	    memcmp(m2.cookie, m->cookie, m->cookie_len) == 0);
	CHECK(m2.info == m->info && m2.silent == m->silent);
	CHECK(m2.has_udp == m->has_udp && m2.has_name == m->has_name);
	CHECK(m2.has_auth == m->has_auth && strcmp(m2.user, m->user) == 0);
	CHECK(m2.ts == m->ts);
	CHECK(memcmp(m2.nonce, m->nonce, sizeof(m->nonce)) == 0);
	CHECK(memcmp(m2.mac, m->mac, sizeof(m->mac)) == 0);
	if (m->has_auth) {
		CHECK(m2.mac_off == mac_off);
		/* Only exercised: the verdict depends on the input. */
		(void)conv_verify(buf, m, key);
		CHECK(conv_sign(out, mac_off, key) == 0);
		CHECK(conv_parse_request(out, n, &m2, &err) == CONV_OK);
		CHECK(conv_verify(out, &m2, key));
	}
}

/* The request side. */
static void
fuzz_request(const uint8_t *data, size_t size)
{
	struct conv_msg whole, part;
	uint8_t werr = 0xee, perr = 0xee;
	enum conv_res wr, pr = CONV_AGAIN;
	uint8_t *p;
	size_t k;

	wr = conv_parse_request(data, size, &whole, &werr);
	if (wr == CONV_OK)
		sane_msg(&whole, data, size);
	if (wr != CONV_BAD)
		CHECK(werr == 0xee);
	for (k = 0; k <= size; k++) {
		p = malloc(k > 0 ? k : 1);
		CHECK(p != NULL);
		memcpy(p, data, k);
		pr = conv_parse_request(p, k, &part, &perr);
		if (pr != CONV_AGAIN) {
			CHECK(pr == wr);
			if (pr == CONV_BAD)
				CHECK(perr == werr);
			else
				same_msg(&part, p, &whole, data);
			free(p);
			break;
		}
		free(p);
	}
	CHECK(pr == wr);
	if (wr == CONV_OK)
		rewrite(&whole, data);
}

/* The reply side. */
static void
fuzz_reply(const uint8_t *data, size_t size)
{
	struct conv_reply whole, part;
	enum conv_res wr, pr = CONV_AGAIN;
	uint8_t *p;
	size_t k;

	wr = conv_parse_reply(data, size, &whole);
	if (wr == CONV_OK) {
		CHECK(whole.len <= size && whole.len % 4 == 0);
		CHECK(whole.opts == NULL ||
		    whole.opts + whole.opts_len <= data + whole.len);
	}
	for (k = 0; k <= size; k++) {
		p = malloc(k > 0 ? k : 1);
		CHECK(p != NULL);
		memcpy(p, data, k);
		pr = conv_parse_reply(p, k, &part);
		if (pr != CONV_AGAIN) {
			CHECK(pr == wr);
			if (pr == CONV_OK) {
				CHECK(part.len == whole.len);
				CHECK(part.ok == whole.ok);
				CHECK(part.code == whole.code);
				CHECK(part.value == whole.value);
				CHECK(off_in(part.opts, p) ==
				    off_in(whole.opts, data));
				CHECK(part.opts_len == whole.opts_len);
			}
			free(p);
			break;
		}
		free(p);
	}
	CHECK(pr == wr);
}

/*
 * One frame at data[0..size): every prefix agrees with the whole, as for
 * the messages above. Returns the whole's result, *used on OK.
 */
static enum conv_res
fuzz_one_frame(const uint8_t *data, size_t size, size_t *used)
{
	const uint8_t *wbody = NULL, *pbody;
	size_t wn = 0, wused = 0, pn, pused, k;
	enum conv_res wr, pr = CONV_AGAIN;
	static uint8_t out[CONV_UDP_FRAME_MAX];
	uint8_t *p;

	wr = conv_udp_frame_parse(data, size, &wbody, &wn, &wused);
	if (wr == CONV_OK) {
		CHECK(wbody == data + CONV_UDP_LEN_LEN);
		CHECK(wn >= CONV_UDP_BODY_MIN && wn <= CONV_UDP_BODY_MAX);
		CHECK(wused == CONV_UDP_LEN_LEN + wn && wused <= size);
		CHECK(
		    conv_udp_frame_write(out, sizeof(out), wbody, wn) == wused);
		CHECK(memcmp(out, data, wused) == 0);
	}
	for (k = 0; k <= size; k++) {
		p = malloc(k > 0 ? k : 1);
		CHECK(p != NULL);
		memcpy(p, data, k);
		pr = conv_udp_frame_parse(p, k, &pbody, &pn, &pused);
		if (pr != CONV_AGAIN) {
			CHECK(pr == wr);
			if (pr == CONV_OK)
				CHECK(pbody - p == wbody - data && pn == wn &&
				    pused == wused && k == wused);
			free(p);
			break;
		}
		free(p);
	}
	CHECK(pr == wr);
	*used = wused;
	return wr;
}

/* The bytes as a stream of frames, one after another. */
static void
fuzz_frames(const uint8_t *data, size_t size)
{
	size_t off = 0, used;

	while (fuzz_one_frame(data + off, size - off, &used) == CONV_OK)
		off += used;
}

/* libFuzzer entry point: the same bytes as a request, reply and frames. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_request(data, size);
	fuzz_reply(data, size);
	fuzz_frames(data, size);
	return 0;
}
