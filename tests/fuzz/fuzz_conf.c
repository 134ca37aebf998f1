/*
 * libFuzzer target for the config loader: arbitrary bytes as a config file
 * (through fmemopen and conf_load_stream), plus the first line of them as
 * an address and as a prefix. Beyond the sanitizers, a config that loads
 * must keep the invariants the daemon relies on.
 *
 *   clang -std=c11 -D_GNU_SOURCE -I. -g -O1 \
 *       -fsanitize=fuzzer,address,undefined \
 *       tests/fuzz/fuzz_conf.c conf/conf.c lib/log.c \
 *       $(pkg-config --cflags --libs inih) -o build/fuzz_conf
 *   build/fuzz_conf -max_total_time=60 [corpus-dir]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort (a finding) unless s is NUL-terminated within n bytes. */
static void
check_str(const char *s, size_t n)
{
	if (memchr(s, '\0', n) == NULL)
		abort();
}

/* Abort unless a loaded config keeps every bound the header promises. */
static void
check_conf(const struct gw_conf *c)
{
	const struct conf_addr_list *lists[] = { &c->socks5_listen,
	    &c->tls_listen, &c->convert_listen };

	if (c->n_methods < 1 || c->n_methods > CONF_MAX_METHODS ||
	    c->n_rules > CONF_MAX_RULES || c->buffer_size < 4096 ||
	    c->workers > 256 || c->handshake_timeout < 1)
		abort();
	if (c->socks5_listen.n + c->tls_listen.n + c->convert_listen.n == 0)
		abort();
	for (size_t i = 0; i < 3; i++) {
		if (lists[i]->n > CONF_MAX_LISTEN)
			abort();
		for (size_t j = 0; j < lists[i]->n; j++)
			check_str(lists[i]->a[j].text,
			    sizeof(lists[i]->a[j].text));
	}
	check_str(c->access_log, sizeof(c->access_log));
	check_str(c->convert_cookie, sizeof(c->convert_cookie));
	check_str(c->relay, sizeof(c->relay));
	for (size_t i = 0; i < c->n_rules; i++) {
		const struct conf_rule *r = &c->rules[i];

		if (r->n_client > CONF_MAX_RULE_ITEMS ||
		    r->n_user > CONF_MAX_RULE_ITEMS ||
		    r->n_dst > CONF_MAX_RULE_ITEMS ||
		    r->n_domain > CONF_MAX_RULE_ITEMS ||
		    r->n_port > CONF_MAX_RULE_ITEMS || r->name[0] == '\0')
			abort();
		for (size_t j = 0; j < r->n_port; j++)
			if (r->port_lo[j] == 0 || r->port_lo[j] > r->port_hi[j])
				abort();
		for (size_t j = 0; j < r->n_domain; j++)
			check_str(r->domain[j], sizeof(r->domain[j]));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gw_conf c;
	struct conf_addr a;
	struct conf_cidr cidr;
	char err[CONF_ERR_MAX], line[256];
	size_t n;
	FILE *f;

	/* fmemopen refuses a zero-sized buffer on older glibc. */
	if (size == 0)
		return 0;
	if ((f = fmemopen((void *)(uintptr_t)data, size, "r")) == NULL)
		return 0;
	if (conf_load_stream(&c, f, "fuzz.ini", err, sizeof(err)) == 0)
		check_conf(&c);
	else if (strncmp(err, "fuzz.ini", 8) != 0)
		abort();
	fclose(f);

	for (n = 0; n < size && n < sizeof(line) - 1 && data[n] != '\n'; n++)
		line[n] = (char)data[n];
	line[n] = '\0';
	if (conf_parse_addr(line, &a) == 0 &&
	    (a.len == 0 || strcmp(a.text, line) != 0))
		abort();
	if (conf_parse_cidr(line, &cidr) == 0 &&
	    cidr.plen > (cidr.family == AF_INET ? 32 : 128))
		abort();
	return 0;
}
