/*
 * libFuzzer target for the client shim's config parser
 * (client-shim/shimconf.c): arbitrary bytes as a shim.ini, then the first
 * line of them as an address block and as a base64 key.
 *
 * Beyond the sanitizers, it aborts unless:
 *   - a config that parses keeps every bound the shim relies on (strings
 *     terminated inside their arrays, known mode and method, fake networks
 *     of the right family and size, a timeout of 1 ms .. 1 h, dns_table
 *     empty or absolute), and shim_conf_finish either accepts it or says
 *     why (names are not resolved: the resolver given here fails);
 *   - an error names "fuzz.ini:LINE:" and never echoes a password;
 *   - a parsed address block contains its own base address, and a decoded
 *     key fits the buffer it was given.
 *
 *   make -C tests/fuzz	(builds ../../build-fuzz/fuzz_shimconf)
 *   build-fuzz/fuzz_shimconf NEW_DIR tests/fuzz/corpus/fuzz_shimconf
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-shim/shimconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		abort();						\
	}								\
} while (0)

#define TERMINATED(a) CHECK(memchr((a), '\0', sizeof(a)) != NULL)

/* No name is resolved while fuzzing. */
static int
no_gai(const char *host, const char *serv, const struct addrinfo *hints,
    struct addrinfo **res)
{
	(void)host;
	(void)serv;
	(void)hints;
	*res = NULL;
	return EAI_NONAME;
}

static void
no_fai(struct addrinfo *ai)
{
	(void)ai;
	abort();	/* nothing was allocated */
}

static void
check_net(const struct shim_net *n, int family, unsigned max_prefix)
{
	struct sockaddr_storage ss;

	CHECK(n->family == family && n->prefix <= max_prefix);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, n->addr, 4);
	else
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, n->addr, 16);
	CHECK(shim_net_contains(n, (struct sockaddr *)&ss));
}

static void
check_conf(struct shim_conf *c)
{
	char err[512];

	TERMINATED(c->gw_host);
	TERMINATED(c->user);
	TERMINATED(c->password);
	TERMINATED(c->ca);
	TERMINATED(c->servername);
	TERMINATED(c->dns_table);
	CHECK(c->gw_host[0] != '\0');
	CHECK(c->mode == SHIM_MODE_EXPLICIT || c->mode == SHIM_MODE_IMPLICIT);
	CHECK(c->method == SHIM_METHOD_NONE ||
	    c->method == SHIM_METHOD_USERPASS ||
	    c->method == SHIM_METHOD_TLS_LOGIN);
	check_net(&c->fake4, AF_INET, 16);
	check_net(&c->fake6, AF_INET6, 112);
	CHECK(c->timeout_ms >= 1 && c->timeout_ms <= 3600 * 1000);
	CHECK(c->dns_table[0] == '\0' || c->dns_table[0] == '/');
	err[0] = '\0';
	if (shim_conf_finish(c, no_gai, no_fai, err, sizeof(err)) == 0)
		CHECK(c->gw_len > 0 && c->gw_len <= sizeof(c->gw));
	else
		CHECK(err[0] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct shim_conf c;
	struct shim_net net;
	char err[512], line[256];
	uint8_t key[64];
	const char *p;
	long n;
	size_t len;

	shim_conf_defaults(&c);
	err[0] = '\0';
	if (shim_conf_parse(&c, (const char *)data, size, "fuzz.ini", err,
	    sizeof(err)) == 0)
		check_conf(&c);
	else {
		CHECK(strncmp(err, "fuzz.ini:", 9) == 0);
		CHECK(err[9] >= '1' && err[9] <= '9');
		/* The one message about a password says nothing of it. */
		if ((p = strchr(err + 9, ':')) != NULL &&
		    strncmp(p, ": password:", 11) == 0)
			CHECK(strcmp(p + 2,
			    "password: longer than 255 bytes") == 0);
	}

	for (len = 0; len < size && len < sizeof(line) - 1 &&
	    data[len] != '\n'; len++)
		line[len] = (char)data[len];
	line[len] = '\0';
	if (shim_parse_net(line, &net) == 0)
		check_net(&net, net.family, net.family == AF_INET ? 32 : 128);
	n = shim_b64_decode(line, key, 8);
	CHECK(n >= -1 && n <= 8);
	n = shim_b64_decode(line, key, sizeof(key));
	CHECK(n >= -1 && n <= (long)sizeof(key));
	return 0;
}
