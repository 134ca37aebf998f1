/*
 * libFuzzer target for the PROXY protocol codec (proto/proxyproto.c).
 *
 * For each input:
 *  - the prefixes, each in a heap block of exactly its size (so ASan sees
 *    any read past len), give AGAIN until one gives the final answer, and
 *    that answer (result, *used, every field, where tlvs points) is the one
 *    the whole input gives;
 *  - an accepted header is no longer than the caps (107 for v1, PP_HDR_MAX
 *    for v2), its TLVs lie inside it, and pp_tlv_find stays inside them;
 *  - an accepted header written back (pp_write_v1, pp_write_v2) parses to
 *    the same addresses; a TCP4 line comes back byte for byte;
 *  - the input also drives the writers: a header built from its bytes
 *    (version, command, families, addresses, ports, TLVs) parses to exactly
 *    what was written.
 * Any disagreement aborts.
 *
 *	clang -std=c11 -D_GNU_SOURCE -I. -g -O1 \
 *	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *	    -o fuzz_proxyproto tests/fuzz/fuzz_proxyproto.c \
 *	    proto/proxyproto.c lib/addr.c
 *	./fuzz_proxyproto -max_len=1200 -max_total_time=60
 */
#include "proto/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lib/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(                                               \
			    stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);    \
			abort();                                               \
		}                                                              \
	} while (0)

/* Longer inputs only repeat what a header this long already tests. */
#define FUZZ_MAX (PP_HDR_MAX + 64)

/* a (parsed from abuf) and b (from bbuf) are the same header. */
static void
same_hdr(const struct pp_hdr *a, const uint8_t *abuf, const struct pp_hdr *b,
    const uint8_t *bbuf)
{
	CHECK(a->version == b->version && a->cmd == b->cmd);
	CHECK(a->fam == b->fam && a->proto == b->proto);
	CHECK(a->has_addr == b->has_addr && a->addr_len == b->addr_len);
	if (a->has_addr) {
		CHECK(memcmp(&a->src, &b->src, a->addr_len) == 0);
		CHECK(memcmp(&a->dst, &b->dst, a->addr_len) == 0);
	}
	CHECK((a->tlvs == NULL) == (b->tlvs == NULL));
	if (a->tlvs != NULL)
		CHECK(a->tlvs - abuf == b->tlvs - bbuf);
	CHECK(a->tlvs_len == b->tlvs_len);
}

/* Whether two parsed AF_INET/AF_INET6 addresses are one, after unmapping. */
static bool
same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct sockaddr_storage ua, ub;
	const struct sockaddr *pa, *pb;

	pa = addr_unmap((const struct sockaddr *)a, &ua);
	pb = addr_unmap((const struct sockaddr *)b, &ub);
	if (pa == NULL || pb == NULL || pa->sa_family != pb->sa_family)
		return false;
	return memcmp(pa, pb, addr_len(pa)) == 0;
}

/* What an accepted header h of used bytes at buf must satisfy. */
static void
sane(const struct pp_hdr *h, const uint8_t *buf, size_t used)
{
	const uint8_t *val;
	size_t vlen;
	int type;

	CHECK(h->version == 1 || h->version == 2);
	CHECK(used <= (h->version == 1 ? PP_V1_MAX : PP_HDR_MAX));
	CHECK(h->cmd == PP_CMD_LOCAL || h->cmd == PP_CMD_PROXY);
	if (h->version == 1)
		CHECK(h->cmd == PP_CMD_PROXY && h->tlvs == NULL);
	if (h->has_addr) {
		CHECK(h->cmd == PP_CMD_PROXY);
		CHECK(h->fam == PP_FAM_INET || h->fam == PP_FAM_INET6);
		CHECK(h->src.ss_family == h->dst.ss_family);
		CHECK(
		    h->addr_len == addr_len((const struct sockaddr *)&h->src));
	}
	if (h->tlvs != NULL) {
		CHECK(h->tlvs > buf && h->tlvs_len > 0);
		CHECK(h->tlvs + h->tlvs_len == buf + used);
	} else {
		CHECK(h->tlvs_len == 0);
	}
	for (type = 0; type < 256; type++)
		if (pp_tlv_find(h, (uint8_t)type, &val, &vlen))
			CHECK(val >= h->tlvs &&
			    vlen <= (size_t)(h->tlvs + h->tlvs_len - val));
}

/* Writes an accepted header back and parses it again. */
static void
rewrite(const struct pp_hdr *h, const uint8_t *buf, size_t used)
{
	uint8_t out[PP_HDR_MAX];
	struct pp_hdr h2;
	size_t n, u2;

	if (h->version == 1) {
		n = pp_write_v1(out, sizeof(out),
		    h->has_addr ? (const struct sockaddr *)&h->src : NULL,
		    (const struct sockaddr *)&h->dst);
		CHECK(n > 0 && pp_parse(out, n, &h2, &u2) == PP_OK && u2 == n);
		CHECK(h2.has_addr == h->has_addr);
		if (!h->has_addr)
			return;
		CHECK(same_ip(&h->src, &h2.src) && same_ip(&h->dst, &h2.dst));
		/* TCP4 has one spelling: the line comes back unchanged. */
		if (h->fam == PP_FAM_INET)
			CHECK(n == used && memcmp(out, buf, n) == 0);
		return;
	}
	n = pp_write_v2(out, sizeof(out), h->cmd,
	    h->proto == PP_PROTO_DGRAM ? PP_PROTO_DGRAM : PP_PROTO_STREAM,
	    h->has_addr ? (const struct sockaddr *)&h->src : NULL,
	    (const struct sockaddr *)&h->dst, h->has_addr ? h->tlvs : NULL,
	    h->has_addr ? h->tlvs_len : 0);
	CHECK(n > 0 && n <= used);
	CHECK(pp_parse(out, n, &h2, &u2) == PP_OK && u2 == n);
	CHECK(h2.cmd == h->cmd && h2.has_addr == h->has_addr);
	if (!h->has_addr)
		return;
	CHECK(same_ip(&h->src, &h2.src) && same_ip(&h->dst, &h2.dst));
	CHECK(h2.proto == h->proto && h2.tlvs_len == h->tlvs_len);
	CHECK(h->tlvs_len == 0 || memcmp(h2.tlvs, h->tlvs, h->tlvs_len) == 0);
	/* Two v4-mapped addresses are written as INET; else the same bytes. */
	if (h2.fam == h->fam) {
		CHECK(n == used && memcmp(out, buf, n) == 0);
		same_hdr(&h2, out, h, buf);
	} else {
		CHECK(h->fam == PP_FAM_INET6 && h2.fam == PP_FAM_INET);
	}
}

/* pp_parse on the whole input and on every prefix, as described on top. */
static void
fuzz_parse(const uint8_t *data, size_t size)
{
	struct pp_hdr whole, part;
	size_t wused = 0, pused;
	enum pp_res wr, pr = PP_AGAIN;
	uint8_t *p;
	size_t k;

	wr = pp_parse(data, size, &whole, &wused);
	if (wr == PP_OK) {
		CHECK(wused >= 1 && wused <= size);
		sane(&whole, data, wused);
	}
	for (k = 0; k <= size; k++) {
		p = malloc(k > 0 ? k : 1);
		CHECK(p != NULL);
		memcpy(p, data, k);
		pr = pp_parse(p, k, &part, &pused);
		if (pr != PP_AGAIN) {
			CHECK(pr == wr);
			if (pr == PP_OK) {
				CHECK(pused == wused && k == wused);
				same_hdr(&part, p, &whole, data);
			}
			free(p);
			break;
		}
		free(p);
	}
	CHECK(pr == wr);
	if (wr == PP_OK)
		rewrite(&whole, data, wused);
}

/* Fills ss from 16 address bytes and a port for family (AF_INET: 4). */
static void
make_ip(struct sockaddr_storage *ss, int family, const uint8_t *a,
    const uint8_t *port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a, 4);
		memcpy(&sin->sin_port, port, 2);
	} else {
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, a, 16);
		memcpy(&sin6->sin6_port, port, 2);
	}
}

/*
 * The input as a recipe: byte 0 picks version, command, protocol and the
 * families; then 2 * (16 address + 2 port) bytes; the rest becomes TLVs.
 */
static void
fuzz_write(const uint8_t *data, size_t size)
{
	static const int fams[4] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
	struct sockaddr_storage s, d, us, ud;
	uint8_t tlvs[PP_HDR_MAX], out[PP_HDR_MAX];
	struct pp_hdr h;
	size_t off, t = 0, n, used, vlen;
	uint8_t cmd, proto, want;
	int sf, df;

	if (size < 37)
		return;
	cmd = data[0] & 1 ? PP_CMD_PROXY : PP_CMD_LOCAL;
	proto = data[0] & 2 ? PP_PROTO_DGRAM : PP_PROTO_STREAM;
	sf = fams[(data[0] >> 2) & 3];
	df = fams[(data[0] >> 4) & 3];
	memset(&s, 0, sizeof(s));
	memset(&d, 0, sizeof(d));
	if (sf == AF_UNIX || df == AF_UNIX) {
		struct sockaddr_un *su = (struct sockaddr_un *)&s;
		struct sockaddr_un *du = (struct sockaddr_un *)&d;

		su->sun_family = (sa_family_t)sf;
		du->sun_family = (sa_family_t)df;
		memcpy(su->sun_path, data + 1, 16);
		memcpy(du->sun_path, data + 19, 16);
	} else {
		if (sf != AF_UNSPEC)
			make_ip(&s, sf, data + 1, data + 17);
		if (df != AF_UNSPEC)
			make_ip(&d, df, data + 19, data + 35);
	}
	/* TLVs: type, a length byte (capped by what is left), the value. */
	for (off = 37; size - off >= 2; off += 2 + vlen) {
		vlen = data[off + 1];
		if (vlen > size - off - 2)
			vlen = size - off - 2;
		n = pp_write_tlv(tlvs + t, sizeof(tlvs) - t, data[off],
		    data + off + 2, vlen);
		if (n == 0)
			break;
		t += n;
	}

	if (data[0] & 0x40) {
		n = pp_write_v1(out, sizeof(out),
		    sf == AF_UNSPEC ? NULL : (struct sockaddr *)&s,
		    df == AF_UNSPEC ? NULL : (struct sockaddr *)&d);
		CHECK(n > 0 && pp_parse(out, n, &h, &used) == PP_OK);
		CHECK(used == n && h.version == 1 && h.cmd == PP_CMD_PROXY);
		want = (sf == AF_INET || sf == AF_INET6) &&
		    (df == AF_INET || df == AF_INET6);
		CHECK(h.has_addr == want);
		if (want)
			CHECK(same_ip(&h.src, &s) && same_ip(&h.dst, &d));
		return;
	}
	n = pp_write_v2(out, sizeof(out), cmd, proto,
	    sf == AF_UNSPEC ? NULL : (struct sockaddr *)&s,
	    df == AF_UNSPEC ? NULL : (struct sockaddr *)&d, tlvs, t);
	if (n == 0) {
		/* Only a header above the cap is refused. */
		CHECK(16 + 216 + t > PP_HDR_MAX);
		return;
	}
	CHECK(pp_parse(out, n, &h, &used) == PP_OK && used == n);
	CHECK(h.version == 2 && h.cmd == cmd);
	want = PP_FAM_UNSPEC;
	if (cmd == PP_CMD_PROXY && sf == AF_UNIX && df == AF_UNIX)
		want = PP_FAM_UNIX;
	else if (cmd == PP_CMD_PROXY && (sf == AF_INET || sf == AF_INET6) &&
	    (df == AF_INET || df == AF_INET6))
		want = addr_unmap((struct sockaddr *)&s, &us)->sa_family ==
			    AF_INET &&
			addr_unmap((struct sockaddr *)&d, &ud)->sa_family ==
			    AF_INET
		    ? PP_FAM_INET
		    : PP_FAM_INET6;
	CHECK(h.fam == want);
	CHECK(h.has_addr == (h.fam == PP_FAM_INET || h.fam == PP_FAM_INET6));
	if (h.has_addr)
		CHECK(same_ip(&h.src, &s) && same_ip(&h.dst, &d));
	if (h.fam != PP_FAM_UNSPEC) {
		CHECK(h.proto == proto && h.tlvs_len == t);
		CHECK(t == 0 || memcmp(h.tlvs, tlvs, t) == 0);
	}
}

/* libFuzzer entry point: the bytes as a header, then as a recipe. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_MAX)
		size = FUZZ_MAX;
	fuzz_parse(data, size);
	fuzz_write(data, size);
	return 0;
}
