#include "conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/socks5.h"

/*
 * The schema is the table conf_cmds below: one row per key, naming its
 * section, the setter that parses the value, where the value goes (an
 * offset into struct gw_conf, or into struct conf_rule for [rule.NAME]
 * keys) and the range the setter enforces. inih splits the file into
 * (section, key, value); we feed it through our own line reader so that we
 * know the line number, see every section header (inih reports none of
 * them), and stop at the first error.
 */

enum conf_sect {
	SECT_NONE = 0,
	SECT_GATEWAY,
	SECT_SOCKS5,
	SECT_TLS,
	SECT_AUTH,
	SECT_CONVERT,
	SECT_UPSTREAM,
	SECT_METRICS,
	SECT_STATE,
	SECT_RULE,
};

static const char *const sect_names[] = {
	[SECT_NONE] = "",
	[SECT_GATEWAY] = "gateway",
	[SECT_SOCKS5] = "socks5",
	[SECT_TLS] = "tls",
	[SECT_AUTH] = "auth",
	[SECT_CONVERT] = "convert",
	[SECT_UPSTREAM] = "upstream",
	[SECT_METRICS] = "metrics",
	[SECT_STATE] = "state",
	[SECT_RULE] = "rule",
};

/* Room for a quoted, shortened copy of a value in an error message. */
#define QUOTE_MAX 72
/* Longest duration or number accepted before it is called out of range. */
#define NUM_CAP 1000000000000UL

struct conf_cmd {
	enum conf_sect sect;
	const char *key;
	/*
	 * Parse value v into the field(s) this row locates inside base (a
	 * struct gw_conf, or a struct conf_rule for rule keys). 0, or -1 with
	 * what is wrong in why (without the "section.key: " prefix).
	 */
	int (*set)(const struct conf_cmd *cmd, void *base, const char *v,
	    char *why, size_t whylen);
	size_t off;		/* the field, or a list's count */
	size_t off2;		/* a list's array, where there is one */
	unsigned long min;	/* range, or string length bounds */
	unsigned long max;
};

/*
 * Write s into out (QUOTE_MAX bytes) in double quotes for an error message,
 * shortened with "..." and with control characters shown as '?'. Returns out.
 */
static const char *
quote(char *out, const char *s)
{
	size_t i = 0, len = strlen(s), lim = QUOTE_MAX - 6;

	out[i++] = '"';
	for (size_t k = 0; k < len && k < lim; k++) {
		unsigned char ch = (unsigned char)s[k];

		out[i++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (len > lim) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i++] = '"';
	out[i] = '\0';
	return out;
}

/*
 * Parse a run of decimal digits filling all of s (no sign, no blanks) into
 * *v, saturating at NUM_CAP so that huge numbers read as out of range rather
 * than as garbage. 0, or -1 if s is not all digits.
 */
static int
parse_digits(const char *s, size_t len, unsigned long *v)
{
	unsigned long n = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (n < NUM_CAP)
			n = n * 10 + (unsigned long)(s[i] - '0');
	}
	*v = n > NUM_CAP ? NUM_CAP : n;
	return 0;
}

/* A port: decimal 1..65535. 0 or -1. */
static int
parse_port(const char *s, size_t len, uint16_t *port)
{
	unsigned long v;

	if (len > 5 || parse_digits(s, len, &v) == -1 || v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/*
 * Copy the next comma-separated item of *sp into item (at most itemlen - 1
 * bytes, blanks trimmed) and move *sp past it; *sp is NULL after the last
 * item. 1 with an item, 0 at the end, -1 (why filled) for an empty item or
 * one that does not fit.
 */
static int
next_item(const char **sp, char *item, size_t itemlen, char *why,
    size_t whylen)
{
	const char *s = *sp, *e, *end;
	size_t len;

	if (s == NULL)
		return 0;
	end = strchr(s, ',');
	*sp = end != NULL ? end + 1 : NULL;
	if (end == NULL)
		end = s + strlen(s);
	while (s < end && isspace((unsigned char)*s))
		s++;
	e = end;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	len = (size_t)(e - s);
	if (len == 0) {
		snprintf(why, whylen, "empty item in the list");
		return -1;
	}
	if (len >= itemlen) {
		snprintf(why, whylen, "\"%.*s...\" is too long (at most %zu "
		    "characters)", len < 20 ? (int)len : 20, s, itemlen - 1);
		return -1;
	}
	memcpy(item, s, len);
	item[len] = '\0';
	return 1;
}

/* Where a list starts for next_item: NULL for an empty value. */
static const char *
list_start(const char *v)
{
	return *v == '\0' ? NULL : v;
}

/* The field at offset off inside base (a table row's destination). */
static void *
field(void *base, size_t off)
{
	return (char *)base + off;
}

/* Booleans: yes/no, on/off, true/false, 1/0, any case. */
static int
set_bool(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };
	bool *dst = field(base, cmd->off);
	char q[QUOTE_MAX];

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*dst = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*dst = false;
			return 0;
		}
	}
	snprintf(why, whylen, "%s is not a boolean (yes/no, on/off, "
	    "true/false, 1/0)", quote(q, v));
	return -1;
}

/* A decimal number in cmd's range. */
static int
set_uint(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	unsigned *dst = field(base, cmd->off);
	unsigned long n;
	char q[QUOTE_MAX];

	if (parse_digits(v, strlen(v), &n) == -1) {
		snprintf(why, whylen, "%s is not a number (%lu..%lu)",
		    quote(q, v), cmd->min, cmd->max);
		return -1;
	}
	if (n < cmd->min || n > cmd->max) {
		snprintf(why, whylen, "%s is out of range (%lu..%lu)",
		    quote(q, v), cmd->min, cmd->max);
		return -1;
	}
	*dst = (unsigned)n;
	return 0;
}

/* Seconds, or a number with an s, m or h suffix, in cmd's range of seconds. */
static int
set_duration(const struct conf_cmd *cmd, void *base, const char *v,
    char *why, size_t whylen)
{
	unsigned *dst = field(base, cmd->off);
	size_t len = strlen(v);
	unsigned long n, mul = 1;
	char q[QUOTE_MAX];

	if (len > 0) {
		switch (v[len - 1]) {
		case 's':
			len--;
			break;
		case 'm':
			mul = 60;
			len--;
			break;
		case 'h':
			mul = 3600;
			len--;
			break;
		default:
			break;
		}
	}
	if (parse_digits(v, len, &n) == -1) {
		snprintf(why, whylen, "%s is not a duration (%lu..%lu s)",
		    quote(q, v), cmd->min, cmd->max);
		return -1;
	}
	n = n > NUM_CAP / mul ? NUM_CAP : n * mul;
	if (n < cmd->min || n > cmd->max) {
		snprintf(why, whylen, "%s is out of range (%lu..%lu s)",
		    quote(q, v), cmd->min, cmd->max);
		return -1;
	}
	*dst = (unsigned)n;
	return 0;
}

/* A string or path of cmd->min..cmd->max bytes; files are not opened here. */
static int
set_string(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	char *dst = field(base, cmd->off);
	size_t len = strlen(v);

	if (len < cmd->min) {
		snprintf(why, whylen, "must not be empty");
		return -1;
	}
	if (len > cmd->max) {
		snprintf(why, whylen, "too long (%zu characters, at most %lu)",
		    len, cmd->max);
		return -1;
	}
	memcpy(dst, v, len + 1);
	return 0;
}

/* True if a and b are the same family, address and port. */
static bool
addr_eq(const struct conf_addr *a, const struct conf_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* A comma-separated list of listen addresses; empty means none. */
static int
set_addrs(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	struct conf_addr_list *dst = field(base, cmd->off);
	struct conf_addr_list l;
	const char *sp = list_start(v);
	char item[sizeof(l.a[0].text)], q[QUOTE_MAX];
	int r;

	memset(&l, 0, sizeof(l));
	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		if (l.n == CONF_MAX_LISTEN) {
			snprintf(why, whylen, "more than %d addresses",
			    CONF_MAX_LISTEN);
			return -1;
		}
		if (conf_parse_addr(item, &l.a[l.n]) == -1) {
			snprintf(why, whylen, "%s is not an address (IPv4:port "
			    "or [IPv6]:port, numeric, port 1..65535)",
			    quote(q, item));
			return -1;
		}
		for (size_t i = 0; i < l.n; i++) {
			if (addr_eq(&l.a[i], &l.a[l.n])) {
				snprintf(why, whylen, "%s is listed twice",
				    quote(q, item));
				return -1;
			}
		}
		l.n++;
	}
	if (r == -1)
		return -1;
	*dst = l;
	return 0;
}

/* One listen address; empty means none (len 0). */
static int
set_addr(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	struct conf_addr *dst = field(base, cmd->off);
	struct conf_addr a;
	char q[QUOTE_MAX];

	memset(&a, 0, sizeof(a));
	if (*v != '\0' && conf_parse_addr(v, &a) == -1) {
		snprintf(why, whylen, "%s is not an address (IPv4:port or "
		    "[IPv6]:port, numeric, port 1..65535; one address)",
		    quote(q, v));
		return -1;
	}
	*dst = a;
	return 0;
}

/* Method names in preference order; at least one, none twice. */
static int
set_methods(const struct conf_cmd *cmd, void *base, const char *v,
    char *why, size_t whylen)
{
	size_t *np = field(base, cmd->off);
	uint8_t *dst = field(base, cmd->off2);
	uint8_t m[CONF_MAX_METHODS];
	size_t n = 0;
	const char *sp = list_start(v);
	char item[32], q[QUOTE_MAX];
	int r, code;

	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		if ((code = socks5_method_parse(item)) == -1) {
			snprintf(why, whylen, "%s is not a method (none, "
			    "userpass, tls, tls-userpass, tls-login)",
			    quote(q, item));
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (m[i] == code) {
				snprintf(why, whylen, "%s is listed twice",
				    quote(q, item));
				return -1;
			}
		}
		if (n == CONF_MAX_METHODS) {
			snprintf(why, whylen, "more than %d methods",
			    CONF_MAX_METHODS);
			return -1;
		}
		m[n++] = (uint8_t)code;
	}
	if (r == -1)
		return -1;
	if (n == 0) {
		snprintf(why, whylen, "no method given (none, userpass, tls, "
		    "tls-userpass, tls-login)");
		return -1;
	}
	memcpy(dst, m, n);
	*np = n;
	return 0;
}

/* error, warn, info or debug. */
static int
set_log_level(const struct conf_cmd *cmd, void *base, const char *v,
    char *why, size_t whylen)
{
	int *dst = field(base, cmd->off);
	int lvl = log_level_parse(v);
	char q[QUOTE_MAX];

	if (lvl == -1) {
		snprintf(why, whylen, "%s is not a log level (error, warn, "
		    "info, debug)", quote(q, v));
		return -1;
	}
	*dst = lvl;
	return 0;
}

/* "auto" (stored as 0: one worker per core) or cmd->min..cmd->max. */
static int
set_workers(const struct conf_cmd *cmd, void *base, const char *v,
    char *why, size_t whylen)
{
	unsigned *dst = field(base, cmd->off);
	unsigned long n;
	char q[QUOTE_MAX];

	if (strcmp(v, "auto") == 0) {
		*dst = 0;
		return 0;
	}
	if (parse_digits(v, strlen(v), &n) == -1 || n < cmd->min ||
	    n > cmd->max) {
		snprintf(why, whylen, "%s is not \"auto\" or a number "
		    "(%lu..%lu)", quote(q, v), cmd->min, cmd->max);
		return -1;
	}
	*dst = (unsigned)n;
	return 0;
}

/* "auto", "buffer" or "splice". */
static int
set_relay(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	char *dst = field(base, cmd->off);
	char q[QUOTE_MAX];

	if (strcmp(v, "auto") != 0 && strcmp(v, "buffer") != 0 &&
	    strcmp(v, "splice") != 0) {
		snprintf(why, whylen, "%s is not a relay mode (auto, buffer, "
		    "splice)", quote(q, v));
		return -1;
	}
	/* Every name fits struct gw_conf's relay[16]. */
	strcpy(dst, v);
	return 0;
}

/* allow or deny. */
static int
set_action(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	enum conf_action *dst = field(base, cmd->off);
	char q[QUOTE_MAX];

	if (strcmp(v, "allow") == 0)
		*dst = CONF_ALLOW;
	else if (strcmp(v, "deny") == 0)
		*dst = CONF_DENY;
	else {
		snprintf(why, whylen, "%s is not an action (allow, deny)",
		    quote(q, v));
		return -1;
	}
	return 0;
}

/*
 * A list of prefixes ("10.0.0.0/8, ::1"). What an empty one means is the
 * key's: everything for a rule's, nobody for gateway.proxy_from.
 */
static int
set_cidrs(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	size_t *np = field(base, cmd->off);
	struct conf_cidr *dst = field(base, cmd->off2);
	struct conf_cidr l[CONF_MAX_RULE_ITEMS];
	size_t n = 0;
	const char *sp = list_start(v);
	char item[INET6_ADDRSTRLEN + 8], q[QUOTE_MAX];
	int r;

	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		if (n == CONF_MAX_RULE_ITEMS) {
			snprintf(why, whylen, "more than %d items",
			    CONF_MAX_RULE_ITEMS);
			return -1;
		}
		if (conf_parse_cidr(item, &l[n]) == -1) {
			snprintf(why, whylen, "%s is not an address prefix "
			    "(e.g. 10.0.0.0/8, 192.0.2.1, fe80::/10)",
			    quote(q, item));
			return -1;
		}
		n++;
	}
	if (r == -1)
		return -1;
	memcpy(dst, l, n * sizeof(l[0]));
	*np = n;
	return 0;
}

/* User names (as in the users file or a certificate's CN). */
static int
set_users(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	struct conf_rule *ru = base;
	char l[CONF_MAX_RULE_ITEMS][sizeof(ru->user[0])], item[sizeof(l[0])];
	size_t n = 0;
	const char *sp = list_start(v);
	int r;

	(void)cmd;
	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		if (n == CONF_MAX_RULE_ITEMS) {
			snprintf(why, whylen, "more than %d items",
			    CONF_MAX_RULE_ITEMS);
			return -1;
		}
		memcpy(l[n++], item, sizeof(item));
	}
	if (r == -1)
		return -1;
	memcpy(ru->user, l, n * sizeof(l[0]));
	ru->n_user = n;
	return 0;
}

/*
 * Lower-case domain s in place and drop one leading dot ("*.x" is not
 * needed: every entry is a suffix). 0, or -1 if it is not a domain name.
 */
static int
norm_domain(char *s)
{
	size_t len;
	char *p;

	if (s[0] == '.')
		memmove(s, s + 1, strlen(s));
	len = strlen(s);
	if (len == 0 || s[len - 1] == '.')
		return -1;
	for (p = s; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '.' && (p == s || p[-1] == '.'))
			return -1;
		if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.')
			return -1;
		*p = (char)tolower(ch);
	}
	return 0;
}

/* Domain suffixes: "example.com" matches it and every name below it. */
static int
set_domains(const struct conf_cmd *cmd, void *base, const char *v,
    char *why, size_t whylen)
{
	struct conf_rule *ru = base;
	char l[CONF_MAX_RULE_ITEMS][sizeof(ru->domain[0])], item[sizeof(l[0])];
	char q[QUOTE_MAX];
	size_t n = 0;
	const char *sp = list_start(v);
	int r;

	(void)cmd;
	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		if (n == CONF_MAX_RULE_ITEMS) {
			snprintf(why, whylen, "more than %d items",
			    CONF_MAX_RULE_ITEMS);
			return -1;
		}
		quote(q, item);
		if (norm_domain(item) == -1) {
			snprintf(why, whylen, "%s is not a domain name", q);
			return -1;
		}
		memcpy(l[n++], item, sizeof(item));
	}
	if (r == -1)
		return -1;
	memcpy(ru->domain, l, n * sizeof(l[0]));
	ru->n_domain = n;
	return 0;
}

/* Destination ports: "N" or "N-M", 1..65535, N <= M. */
static int
set_ports(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	struct conf_rule *ru = base;
	uint16_t lo[CONF_MAX_RULE_ITEMS], hi[CONF_MAX_RULE_ITEMS];
	size_t n = 0;
	const char *sp = list_start(v), *dash;
	char item[16], q[QUOTE_MAX];
	int r;

	(void)cmd;
	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		if (n == CONF_MAX_RULE_ITEMS) {
			snprintf(why, whylen, "more than %d items",
			    CONF_MAX_RULE_ITEMS);
			return -1;
		}
		dash = strchr(item, '-');
		if (dash == NULL) {
			if (parse_port(item, strlen(item), &lo[n]) == -1)
				goto bad;
			hi[n] = lo[n];
		} else if (parse_port(item, (size_t)(dash - item), &lo[n]) ==
		    -1 || parse_port(dash + 1, strlen(dash + 1), &hi[n]) ==
		    -1 || lo[n] > hi[n])
			goto bad;
		n++;
	}
	if (r == -1)
		return -1;
	memcpy(ru->port_lo, lo, n * sizeof(lo[0]));
	memcpy(ru->port_hi, hi, n * sizeof(hi[0]));
	ru->n_port = n;
	return 0;
bad:
	snprintf(why, whylen, "%s is not a port or range (N or N-M, "
	    "1..65535)", quote(q, item));
	return -1;
}

/* SOCKS commands: connect, bind, udp; stored as bits (1 << code). */
static int
set_commands(const struct conf_cmd *cmd, void *base, const char *v,
    char *why, size_t whylen)
{
	uint8_t *dst = field(base, cmd->off);
	uint8_t bits = 0;
	const char *sp = list_start(v);
	char item[16], q[QUOTE_MAX];
	int r;

	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		if (strcmp(item, "connect") == 0)
			bits |= 1u << SOCKS5_CMD_CONNECT;
		else if (strcmp(item, "bind") == 0)
			bits |= 1u << SOCKS5_CMD_BIND;
		else if (strcmp(item, "udp") == 0)
			bits |= 1u << SOCKS5_CMD_UDP_ASSOCIATE;
		else {
			snprintf(why, whylen, "%s is not a command (connect, "
			    "bind, udp)", quote(q, item));
			return -1;
		}
	}
	if (r == -1)
		return -1;
	*dst = bits;
	return 0;
}

/* Milliseconds: "20", "20ms" or "1s". */
static int
set_msec(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	unsigned *dst = field(base, cmd->off);
	size_t len = strlen(v);
	unsigned long n, mul = 1;
	char q[QUOTE_MAX];

	if (len > 2 && strcmp(v + len - 2, "ms") == 0)
		len -= 2;
	else if (len > 1 && v[len - 1] == 's') {
		mul = 1000;
		len--;
	}
	if (parse_digits(v, len, &n) == -1) {
		snprintf(why, whylen, "%s is not a duration (%lu..%lu ms)",
		    quote(q, v), cmd->min, cmd->max);
		return -1;
	}
	n = n > NUM_CAP / mul ? NUM_CAP : n * mul;
	if (n < cmd->min || n > cmd->max) {
		snprintf(why, whylen, "%s is out of range (%lu..%lu ms)",
		    quote(q, v), cmd->min, cmd->max);
		return -1;
	}
	*dst = (unsigned)n;
	return 0;
}

/*
 * udp_public_address: at most one IPv4 and one IPv6 address, numeric, no
 * port (the association's own port goes with it). Empty: none.
 */
static int
set_public_addrs(const struct conf_cmd *cmd, void *base, const char *v,
    char *why, size_t whylen)
{
	struct conf_addr *v4 = field(base, cmd->off);
	struct conf_addr *v6 = field(base, cmd->off2);
	struct conf_addr a4, a6, *a;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	const char *sp = list_start(v);
	char item[INET6_ADDRSTRLEN], q[QUOTE_MAX];
	int r;

	memset(&a4, 0, sizeof(a4));
	memset(&a6, 0, sizeof(a6));
	while ((r = next_item(&sp, item, sizeof(item), why, whylen)) == 1) {
		sin = (struct sockaddr_in *)&a4.ss;
		sin6 = (struct sockaddr_in6 *)&a6.ss;
		if (inet_pton(AF_INET, item, &sin->sin_addr) == 1) {
			a = &a4;
			a->ss.ss_family = AF_INET;
			a->len = sizeof(*sin);
		} else if (inet_pton(AF_INET6, item, &sin6->sin6_addr) == 1 &&
		    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			a = &a6;
			a->ss.ss_family = AF_INET6;
			a->len = sizeof(*sin6);
		} else {
			snprintf(why, whylen, "%s is not an IPv4 or IPv6 "
			    "address (numeric, no port)", quote(q, item));
			return -1;
		}
		if (a->text[0] != '\0') {
			snprintf(why, whylen, "%s: one address per family",
			    quote(q, item));
			return -1;
		}
		snprintf(a->text, sizeof(a->text), "%s", item);
	}
	if (r == -1)
		return -1;
	*v4 = a4;
	*v6 = a6;
	return 0;
}

/* "convert://HOST:PORT" (HOST: IPv4, [IPv6] or a name), or empty: none. */
static int
set_via(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	static const char scheme[] = "convert://";
	struct conf_via *dst = field(base, cmd->off);
	char q[QUOTE_MAX];

	memset(dst, 0, sizeof(*dst));
	if (v[0] == '\0')
		return 0;
	if (strncmp(v, scheme, sizeof(scheme) - 1) != 0 ||
	    strlen(v) >= sizeof(dst->text) ||
	    socks5_parse_hostport(v + sizeof(scheme) - 1, dst->host,
	    sizeof(dst->host), &dst->port) == -1) {
		memset(dst, 0, sizeof(*dst));
		snprintf(why, whylen, "%s is not convert://HOST:PORT (HOST an "
		    "IPv4 address, [IPv6] or a name)", quote(q, v));
		return -1;
	}
	strcpy(dst->text, v);
	dst->set = true;
	return 0;
}

/*
 * Decode %XX escapes in the len bytes at s into out (cap bytes with the
 * NUL). 0, or -1 for a bad escape, a NUL byte or too long a result.
 */
static int
url_decode(const char *s, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned ch = (unsigned char)s[i];

		if (ch == '%') {
			unsigned v = 0;

			if (len - i < 3)
				return -1;
			for (size_t k = 1; k <= 2; k++) {
				unsigned c = (unsigned char)s[i + k];

				v <<= 4;
				if (c >= '0' && c <= '9')
					v |= c - '0';
				else if (c >= 'a' && c <= 'f')
					v |= c - 'a' + 10;
				else if (c >= 'A' && c <= 'F')
					v |= c - 'A' + 10;
				else
					return -1;
			}
			ch = v;
			i += 2;
		}
		if (ch == 0 || n + 1 >= cap)
			return -1;
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return 0;
}

/*
 * "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]", or empty: none. The
 * message never repeats the value: it may hold a password.
 */
static int
set_redis(const struct conf_cmd *cmd, void *base, const char *v, char *why,
    size_t whylen)
{
	static const char scheme[] = "redis://";
	struct conf_redis *dst = field(base, cmd->off);
	char hostport[272];
	const char *p, *at, *colon, *slash, *hp;
	size_t hplen;
	unsigned long db = 0;

	memset(dst, 0, sizeof(*dst));
	if (v[0] == '\0')
		return 0;
	if (strncmp(v, scheme, sizeof(scheme) - 1) != 0)
		goto bad;
	p = v + sizeof(scheme) - 1;
	/* A password may hold '@' only %-encoded: the last one ends it. */
	if ((at = strrchr(p, '@')) != NULL) {
		if ((colon = memchr(p, ':', (size_t)(at - p))) == NULL) {
			snprintf(why, whylen, "the credentials before '@' must "
			    "be USER:PASSWORD or :PASSWORD");
			goto fail;
		}
		if (url_decode(p, (size_t)(colon - p), dst->user,
		    sizeof(dst->user)) == -1 || url_decode(colon + 1,
		    (size_t)(at - colon - 1), dst->password,
		    sizeof(dst->password)) == -1 || dst->password[0] == '\0') {
			snprintf(why, whylen, "the user or password is empty, "
			    "too long or badly %%-encoded");
			goto fail;
		}
		p = at + 1;
	}
	hp = p;
	if ((slash = strchr(p, '/')) != NULL) {
		if (parse_digits(slash + 1, strlen(slash + 1), &db) == -1 ||
		    db > 65535) {
			snprintf(why, whylen, "the database after '/' must be a "
			    "number (0..65535)");
			goto fail;
		}
		hplen = (size_t)(slash - p);
	} else
		hplen = strlen(p);
	/* No port: Redis's own, 6379. A bare IPv6 address is refused. */
	if (hplen == 0 || hplen > 262)
		goto bad;
	if ((hp[0] == '[' && hp[hplen - 1] == ']') ||
	    (hp[0] != '[' && memchr(hp, ':', hplen) == NULL))
		snprintf(hostport, sizeof(hostport), "%.*s:6379", (int)hplen,
		    hp);
	else
		snprintf(hostport, sizeof(hostport), "%.*s", (int)hplen, hp);
	if (socks5_parse_hostport(hostport, dst->host, sizeof(dst->host),
	    &dst->port) == -1)
		goto bad;
	dst->db = (unsigned)db;
	snprintf(dst->text, sizeof(dst->text), "redis://%s/%u", hostport,
	    dst->db);
	dst->set = true;
	return 0;
bad:
	snprintf(why, whylen, "not redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
	    "(HOST an IPv4 address, [IPv6] or a name)");
fail:
	explicit_bzero(dst, sizeof(*dst));
	return -1;
}

#define GW(m) offsetof(struct gw_conf, m)
#define RU(m) offsetof(struct conf_rule, m)
#define GW_LEN(m) (sizeof(((struct gw_conf *)0)->m) - 1)

static const struct conf_cmd conf_cmds[] = {
	{ SECT_GATEWAY, "workers", set_workers, GW(workers), 0, 1, 256 },
	{ SECT_GATEWAY, "log_level", set_log_level, GW(log_level), 0, 0, 0 },
	{ SECT_GATEWAY, "access_log", set_string, GW(access_log), 0, 1,
	    GW_LEN(access_log) },
	{ SECT_GATEWAY, "max_sessions", set_uint, GW(max_sessions), 0, 0,
	    1000000 },
	{ SECT_GATEWAY, "max_per_source", set_uint, GW(max_per_source), 0, 0,
	    1000000 },
	{ SECT_GATEWAY, "max_udp_associations", set_uint,
	    GW(max_udp_associations), 0, 0, 1000000 },
	{ SECT_GATEWAY, "allow_open_proxy", set_bool, GW(allow_open_proxy), 0,
	    0, 0 },
	{ SECT_GATEWAY, "user", set_string, GW(user), 0, 0, GW_LEN(user) },
	{ SECT_GATEWAY, "group", set_string, GW(group), 0, 0, GW_LEN(group) },
	{ SECT_GATEWAY, "proxy_from", set_cidrs, GW(n_proxy_from),
	    GW(proxy_from), 0, 0 },

	{ SECT_SOCKS5, "listen", set_addrs, GW(socks5_listen), 0, 0, 0 },
	{ SECT_SOCKS5, "methods", set_methods, GW(n_methods), GW(methods), 0,
	    0 },
	{ SECT_SOCKS5, "handshake_timeout", set_duration,
	    GW(handshake_timeout), 0, 1, 3600 },
	{ SECT_SOCKS5, "idle_timeout", set_duration, GW(idle_timeout), 0, 0,
	    604800 },
	{ SECT_SOCKS5, "early_reply", set_bool, GW(early_reply), 0, 0, 0 },
	{ SECT_SOCKS5, "early_wait", set_msec, GW(early_wait_ms), 0, 0, 1000 },
	{ SECT_SOCKS5, "proxy_protocol", set_bool, GW(socks5_proxy_protocol),
	    0, 0, 0 },
	{ SECT_SOCKS5, "udp_public_address", set_public_addrs, GW(udp_public4),
	    GW(udp_public6), 0, 0 },
	{ SECT_SOCKS5, "udp_idle_timeout", set_duration, GW(udp_idle_timeout),
	    0, 0, 604800 },
	{ SECT_SOCKS5, "bind_timeout", set_duration, GW(bind_timeout), 0, 1,
	    3600 },

	{ SECT_TLS, "listen", set_addrs, GW(tls_listen), 0, 0, 0 },
	{ SECT_TLS, "cert", set_string, GW(tls_cert), 0, 0, GW_LEN(tls_cert) },
	{ SECT_TLS, "key", set_string, GW(tls_key), 0, 0, GW_LEN(tls_key) },
	{ SECT_TLS, "client_ca", set_string, GW(tls_client_ca), 0, 0,
	    GW_LEN(tls_client_ca) },
	{ SECT_TLS, "require_client_cert", set_bool,
	    GW(tls_require_client_cert), 0, 0, 0 },
	{ SECT_TLS, "proxy_protocol", set_bool, GW(tls_proxy_protocol), 0, 0,
	    0 },

	{ SECT_AUTH, "users", set_string, GW(users), 0, 0, GW_LEN(users) },
	{ SECT_AUTH, "allow_cleartext_password", set_bool,
	    GW(allow_cleartext_password), 0, 0, 0 },
	{ SECT_AUTH, "fail_limit", set_uint, GW(fail_limit), 0, 0, 1000 },
	{ SECT_AUTH, "fail_delay_max", set_duration, GW(fail_delay_max), 0, 0,
	    60 },
	{ SECT_AUTH, "fail_block", set_duration, GW(fail_block), 0, 0,
	    86400 },
	{ SECT_AUTH, "auth_cache_ttl", set_duration, GW(auth_cache_ttl), 0, 0,
	    86400 },

	{ SECT_CONVERT, "listen", set_addrs, GW(convert_listen), 0, 0, 0 },
	{ SECT_CONVERT, "require_auth", set_bool, GW(convert_require_auth), 0,
	    0, 0 },
	{ SECT_CONVERT, "keys", set_string, GW(convert_keys), 0, 0,
	    GW_LEN(convert_keys) },
	{ SECT_CONVERT, "cookie", set_string, GW(convert_cookie), 0, 0,
	    GW_LEN(convert_cookie) },
	{ SECT_CONVERT, "max_skew", set_duration, GW(convert_max_skew), 0, 1,
	    3600 },
	{ SECT_CONVERT, "tfo_no_cookie", set_bool, GW(convert_tfo_no_cookie),
	    0, 0, 0 },
	{ SECT_CONVERT, "proxy_protocol", set_bool, GW(convert_proxy_protocol),
	    0, 0, 0 },

	{ SECT_UPSTREAM, "mptcp", set_bool, GW(upstream_mptcp), 0, 0, 0 },
	{ SECT_UPSTREAM, "connect_timeout", set_duration, GW(connect_timeout),
	    0, 1, 3600 },
	{ SECT_UPSTREAM, "dns_per_source", set_uint, GW(dns_per_source), 0, 0,
	    1000000 },
	{ SECT_UPSTREAM, "relay", set_relay, GW(relay), 0, 0, 0 },
	{ SECT_UPSTREAM, "buffer_size", set_uint, GW(buffer_size), 0, 4096,
	    4194304 },
	{ SECT_UPSTREAM, "buffer_max", set_uint, GW(buffer_max), 0, 4096,
	    16777216 },
	{ SECT_UPSTREAM, "mptcp_cache_ttl", set_duration, GW(mptcp_cache_ttl),
	    0, 0, 86400 },
	{ SECT_UPSTREAM, "via", set_via, GW(via), 0, 0, 0 },
	{ SECT_UPSTREAM, "via_user", set_string, GW(via_user), 0, 0,
	    GW_LEN(via_user) },
	{ SECT_UPSTREAM, "via_keys", set_string, GW(via_keys), 0, 0,
	    GW_LEN(via_keys) },
	{ SECT_UPSTREAM, "via_tfo_no_cookie", set_bool, GW(via_tfo_no_cookie),
	    0, 0, 0 },

	{ SECT_METRICS, "listen", set_addr, GW(metrics_listen), 0, 0, 0 },

	{ SECT_STATE, "redis", set_redis, GW(redis), 0, 0, 0 },
	{ SECT_STATE, "redis_password_file", set_string,
	    GW(redis_password_file), 0, 0, GW_LEN(redis_password_file) },

	{ SECT_RULE, "action", set_action, RU(action), 0, 0, 0 },
	{ SECT_RULE, "client", set_cidrs, RU(n_client), RU(client), 0, 0 },
	{ SECT_RULE, "user", set_users, 0, 0, 0, 0 },
	{ SECT_RULE, "dest", set_cidrs, RU(n_dst), RU(dst), 0, 0 },
	{ SECT_RULE, "domain", set_domains, 0, 0, 0, 0 },
	{ SECT_RULE, "port", set_ports, 0, 0, 0, 0 },
	{ SECT_RULE, "command", set_commands, RU(commands), 0, 0, 0 },
};

#define N_CMDS (sizeof(conf_cmds) / sizeof(conf_cmds[0]))

struct parse {
	struct gw_conf *c;
	FILE *f;
	const char *name;	/* the file name for messages */
	char *err;
	size_t errlen;
	int lineno;		/* of the line inih is working on */
	bool failed;
	int err_line;
	enum conf_sect sect;
	char sect_name[80];	/* as written, e.g. "rule.lan" */
	int sect_line;
	struct conf_rule *rule;	/* when sect is SECT_RULE */
	int sect_seen[SECT_RULE];	/* line each section began, 0 = none */
	int key_line[N_CMDS];	/* line each key was set on, 0 = default */
};

/*
 * Record the first error as "name:line: message" ("name: message" when line
 * is 0). Later errors are dropped: the loader reports the first one only.
 */
static void __attribute__((format(printf, 3, 4)))
fail(struct parse *p, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->failed)
		return;
	p->failed = true;
	p->err_line = line;
	if (p->err == NULL || p->errlen == 0)
		return;
	if (line > 0)
		n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->name);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Index of the row for key in sect, or -1. */
static int
cmd_find(enum conf_sect sect, const char *key)
{
	for (size_t i = 0; i < N_CMDS; i++)
		if (conf_cmds[i].sect == sect &&
		    strcmp(conf_cmds[i].key, key) == 0)
			return (int)i;
	return -1;
}

/* The line key of sect was set on, 0 if it kept its default. */
static int
key_line(const struct parse *p, enum conf_sect sect, const char *key)
{
	int i = cmd_find(sect, key);

	return i == -1 ? 0 : p->key_line[i];
}

/*
 * End the current section: a rule must have said what it does. Reported
 * at the rule's header line, since that is the line to fix.
 */
static void
sect_close(struct parse *p)
{
	if (p->sect == SECT_RULE && key_line(p, SECT_RULE, "action") == 0)
		fail(p, p->sect_line, "[%s]: action is required (allow or "
		    "deny)", p->sect_name);
	p->sect = SECT_NONE;
	p->rule = NULL;
}

/* True if s is a usable rule name: letters, digits, '-', '_'. */
static bool
rule_name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* Start section name (blanks trimmed) at the current line. */
static void
sect_open(struct parse *p, const char *name, size_t len)
{
	struct gw_conf *c = p->c;

	sect_close(p);
	if (p->failed)
		return;
	while (len > 0 && isspace((unsigned char)*name)) {
		name++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)name[len - 1]))
		len--;
	if (len >= sizeof(p->sect_name)) {
		fail(p, p->lineno, "section name too long");
		return;
	}
	memcpy(p->sect_name, name, len);
	p->sect_name[len] = '\0';
	p->sect_line = p->lineno;

	if (strncmp(p->sect_name, "rule.", 5) == 0) {
		const char *rn = p->sect_name + 5;

		if (!rule_name_ok(rn) ||
		    strlen(rn) >= sizeof(c->rules[0].name)) {
			fail(p, p->lineno, "[%s]: a rule name is 1..%zu "
			    "letters, digits, '-' or '_'", p->sect_name,
			    sizeof(c->rules[0].name) - 1);
			return;
		}
		for (size_t i = 0; i < c->n_rules; i++) {
			if (strcmp(c->rules[i].name, rn) == 0) {
				fail(p, p->lineno, "[%s]: rule given twice "
				    "(first at line %d)", p->sect_name,
				    c->rules[i].line);
				return;
			}
		}
		if (c->n_rules == CONF_MAX_RULES) {
			fail(p, p->lineno, "[%s]: more than %d rules",
			    p->sect_name, CONF_MAX_RULES);
			return;
		}
		p->rule = &c->rules[c->n_rules++];
		memset(p->rule, 0, sizeof(*p->rule));
		strcpy(p->rule->name, rn);
		p->rule->line = p->lineno;
		p->sect = SECT_RULE;
		for (size_t i = 0; i < N_CMDS; i++)
			if (conf_cmds[i].sect == SECT_RULE)
				p->key_line[i] = 0;
		return;
	}
	for (int s = SECT_GATEWAY; s < SECT_RULE; s++) {
		if (strcmp(p->sect_name, sect_names[s]) != 0)
			continue;
		if (p->sect_seen[s] != 0) {
			fail(p, p->lineno, "[%s]: section given twice (first "
			    "at line %d)", p->sect_name, p->sect_seen[s]);
			return;
		}
		p->sect_seen[s] = p->lineno;
		p->sect = (enum conf_sect)s;
		return;
	}
	fail(p, p->lineno, "[%.64s]: unknown section (gateway, socks5, tls, "
	    "auth, convert, upstream, metrics, state or rule.NAME)",
	    p->sect_name);
}

/*
 * Where inih would end a name (at one of chars) or cut an inline comment
 * (a ';' after a blank): the same scan as inih's, so that our view of a
 * line matches its.
 */
static const char *
scan_to(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s != '\0' && strchr(chars, *s) == NULL &&
	    !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

/*
 * Look at a line before inih does. Leading blanks (and a BOM) are removed,
 * because inih would take an indented line after a key as a continuation
 * of that key's value. Section headers are handled here, since inih does
 * not report them; a line that is neither a comment, a header nor
 * "key = value" is refused here with a clearer message than inih's.
 * 0, or -1 after fail().
 */
static int
check_line(struct parse *p, char *line)
{
	char *s = line;
	const char *end, *rest;

	if (p->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (isspace((unsigned char)*s))
		s++;
	if (s != line)
		memmove(line, s, strlen(s) + 1);
	if (*line == '\0' || *line == ';' || *line == '#')
		return 0;
	if (*line == '[') {
		end = scan_to(line + 1, "]");
		if (*end != ']') {
			fail(p, p->lineno, "missing ']' in section header");
			return -1;
		}
		for (rest = end + 1; isspace((unsigned char)*rest); rest++)
			;
		if (*rest != '\0' && *rest != ';') {
			fail(p, p->lineno, "unexpected text after section "
			    "header");
			return -1;
		}
		sect_open(p, line + 1, (size_t)(end - line - 1));
		return p->failed ? -1 : 0;
	}
	end = scan_to(line, "=:");
	if (*end != '=' && *end != ':') {
		fail(p, p->lineno, "expected \"key = value\" or \"[section]\"");
		return -1;
	}
	return 0;
}

/*
 * inih's line reader: one physical line per call (so inih's line count is
 * ours), refusing lines longer than inih's buffer instead of letting it
 * split them, and NUL bytes. NULL at the end or after the first error,
 * which stops the parse.
 */
static char *
conf_reader(char *buf, int num, void *arg)
{
	struct parse *p = arg;
	size_t n = 0, cap = num > 1 ? (size_t)num - 1 : 0;
	int ch;

	if (p->failed)
		return NULL;
	while ((ch = getc(p->f)) != EOF && ch != '\n') {
		if (n == cap) {
			fail(p, p->lineno + 1, "line too long (at most %zu "
			    "characters)", cap);
			return NULL;
		}
		if (ch == '\0') {
			fail(p, p->lineno + 1, "NUL byte in line");
			return NULL;
		}
		buf[n++] = (char)ch;
	}
	if (ch == EOF && ferror(p->f)) {
		fail(p, 0, "read error: %s", strerror(errno));
		return NULL;
	}
	if (ch == EOF && n == 0)
		return NULL;
	buf[n] = '\0';
	p->lineno++;
	if (check_line(p, buf) == -1)
		return NULL;
	return buf;
}

/* inih's handler: one "key = value" line of the current section. */
static int
conf_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct parse *p = arg;
	char why[CONF_ERR_MAX];
	void *base;
	int i;

	(void)section;	/* we track sections ourselves, untruncated */
	if (p->failed)
		return 0;
	if (*name == '\0') {
		fail(p, p->lineno, "missing key name before '='");
		return 0;
	}
	if (p->sect == SECT_NONE) {
		fail(p, p->lineno, "%.64s: key outside a section (add a "
		    "[section] line above it)", name);
		return 0;
	}
	if ((i = cmd_find(p->sect, name)) == -1) {
		fail(p, p->lineno, "%s.%.64s: unknown key", p->sect_name, name);
		return 0;
	}
	if (p->key_line[i] != 0) {
		fail(p, p->lineno, "%s.%s: given twice (first at line %d)",
		    p->sect_name, name, p->key_line[i]);
		return 0;
	}
	p->key_line[i] = p->lineno;
	base = p->sect == SECT_RULE ? (void *)p->rule : (void *)p->c;
	why[0] = '\0';
	if (conf_cmds[i].set(&conf_cmds[i], base, value, why,
	    sizeof(why)) == -1) {
		fail(p, p->lineno, "%s.%s: %s", p->sect_name, name, why);
		return 0;
	}
	return 1;
}

/* True if c->methods holds m. */
static bool
has_method(const struct gw_conf *c, uint8_t m)
{
	for (size_t i = 0; i < c->n_methods; i++)
		if (c->methods[i] == m)
			return true;
	return false;
}

/*
 * The first non-loopback address of l, if a client could use a listener
 * there without logging in; NULL otherwise.
 */
static const struct conf_addr *
open_addr(const struct conf_addr_list *l, bool unauthenticated)
{
	if (!unauthenticated)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (!addr_is_loopback((const struct sockaddr *)&l->a[i].ss))
			return &l->a[i];
	return NULL;
}

/* A listen address of b that a also has, or NULL. */
static const struct conf_addr *
addr_overlap(const struct conf_addr_list *a, const struct conf_addr_list *b)
{
	for (size_t i = 0; i < a->n; i++)
		for (size_t j = 0; j < b->n; j++)
			if (addr_eq(&a->a[i], &b->a[j]))
				return &b->a[j];
	return NULL;
}

enum open_listener {
	OPEN_NONE = 0,
	OPEN_SOCKS5,
	OPEN_TLS,
	OPEN_CONVERT,
};

/*
 * Which kind of listener, if any, lets clients in without a login on a
 * non-loopback address (*a) while gateway.allow_open_proxy is off.
 */
static enum open_listener
conf_open_listener(const struct gw_conf *c, const struct conf_addr **a)
{
	bool socks_open, tls_open;

	if (c->allow_open_proxy)
		return OPEN_NONE;
	/*
	 * TLS without a verified client certificate identifies nobody; a
	 * required certificate makes the tls method, and anything inside the
	 * TLS listener, a login.
	 */
	socks_open = has_method(c, SOCKS5_METHOD_NONE) ||
	    (has_method(c, SOCKS5_METHOD_TLS) && !c->tls_require_client_cert);
	tls_open = has_method(c, SOCKS5_METHOD_NONE) &&
	    !c->tls_require_client_cert;
	if ((*a = open_addr(&c->socks5_listen, socks_open)) != NULL)
		return OPEN_SOCKS5;
	if ((*a = open_addr(&c->tls_listen, tls_open)) != NULL)
		return OPEN_TLS;
	if ((*a = open_addr(&c->convert_listen, !c->convert_require_auth)) !=
	    NULL)
		return OPEN_CONVERT;
	return OPEN_NONE;
}

static const char *
open_message(enum open_listener open, const struct conf_addr *a, char *buf,
    size_t cap)
{
	switch (open) {
	case OPEN_NONE:
		buf[0] = '\0';
		break;
	case OPEN_SOCKS5:
	case OPEN_TLS:
		snprintf(buf, cap, "%s.listen: %s is not loopback and "
		    "socks5.methods lets clients in without a login; set "
		    "gateway.allow_open_proxy = yes to run an open proxy",
		    open == OPEN_TLS ? "tls" : "socks5", a->text);
		break;
	case OPEN_CONVERT:
		snprintf(buf, cap, "convert.listen: %s is not loopback and "
		    "convert.require_auth = no; set gateway.allow_open_proxy = "
		    "yes to run an open proxy", a->text);
		break;
	}
	return buf;
}

/*
 * The first section whose listeners expect a PROXY header although
 * gateway.proxy_from names no balancer, or SECT_NONE.
 */
static enum conf_sect
proxy_without_from(const struct gw_conf *c)
{
	if (c->n_proxy_from > 0)
		return SECT_NONE;
	if (c->socks5_proxy_protocol)
		return SECT_SOCKS5;
	if (c->tls_proxy_protocol)
		return SECT_TLS;
	if (c->convert_proxy_protocol)
		return SECT_CONVERT;
	return SECT_NONE;
}

static const char *
proxy_message(enum conf_sect sect, char *buf, size_t len)
{
	snprintf(buf, len, "%s.proxy_protocol: needs gateway.proxy_from (the "
	    "balancers that may send the header)", sect_names[sect]);
	return buf;
}

int
conf_check_proxy_from(const struct gw_conf *c, char *err, size_t errlen)
{
	enum conf_sect sect = proxy_without_from(c);

	if (sect == SECT_NONE)
		return 0;
	proxy_message(sect, err, errlen);
	return -1;
}

int
conf_check_open_proxy(const struct gw_conf *c, char *err, size_t errlen)
{
	const struct conf_addr *a;
	enum open_listener open = conf_open_listener(c, &a);

	if (open == OPEN_NONE)
		return 0;
	open_message(open, a, err, errlen);
	return -1;
}

/* Room for one passwd or group entry from NSS (getpwnam_r, getgrnam_r). */
#define NSS_BUF 16384

/*
 * Resolve gateway.user and gateway.group into c->uid and c->gid, so that an
 * unknown name fails `mpgw -t` at its line rather than the start-up after
 * the listeners are bound.
 */
static void
check_identity(struct parse *p)
{
	struct gw_conf *c = p->c;
	char buf[NSS_BUF], q[QUOTE_MAX];
	struct passwd pw, *pwp;
	struct group gr, *grp;
	int ul = key_line(p, SECT_GATEWAY, "user");
	int gl = key_line(p, SECT_GATEWAY, "group");
	int e;

	if (c->user[0] == '\0') {
		if (c->group[0] != '\0')
			fail(p, gl, "gateway.group: needs gateway.user");
		return;
	}
	if ((e = getpwnam_r(c->user, &pw, buf, sizeof(buf), &pwp)) != 0) {
		fail(p, ul, "gateway.user: looking up %s: %s", quote(q, c->user),
		    strerror(e));
		return;
	}
	if (pwp == NULL) {
		fail(p, ul, "gateway.user: %s is not a user on this host",
		    quote(q, c->user));
		return;
	}
	if (pw.pw_uid == 0) {
		fail(p, ul, "gateway.user: %s is uid 0; name an unprivileged "
		    "user, or leave the key empty to keep running as started",
		    quote(q, c->user));
		return;
	}
	c->uid = pw.pw_uid;
	c->gid = pw.pw_gid;
	if (c->group[0] == '\0')
		return;
	if ((e = getgrnam_r(c->group, &gr, buf, sizeof(buf), &grp)) != 0) {
		fail(p, gl, "gateway.group: looking up %s: %s",
		    quote(q, c->group), strerror(e));
		return;
	}
	if (grp == NULL) {
		fail(p, gl, "gateway.group: %s is not a group on this host",
		    quote(q, c->group));
		return;
	}
	c->gid = gr.gr_gid;
}

/*
 * Checks across keys, each reported at the line of the key that asks for
 * the missing one (or the file name alone where every key was a default).
 */
static void
cross_check(struct parse *p)
{
	const struct gw_conf *c = p->c;
	const struct conf_addr *a;
	int ml = key_line(p, SECT_SOCKS5, "methods");
	bool cert = c->tls_cert[0] != '\0', key = c->tls_key[0] != '\0';
	enum open_listener open;
	char err[CONF_ERR_MAX];
	enum conf_sect ps;

	if (cert != key) {
		fail(p, key_line(p, SECT_TLS, cert ? "cert" : "key"),
		    "tls.%s: needs tls.%s too", cert ? "cert" : "key",
		    cert ? "key" : "cert");
		return;
	}
	for (size_t i = 0; i < c->n_methods; i++) {
		uint8_t m = c->methods[i];

		bool tls = m == SOCKS5_METHOD_TLS ||
		    m == SOCKS5_METHOD_TLS_USERPASS ||
		    m == SOCKS5_METHOD_TLS_LOGIN;

		if (tls && !cert) {
			fail(p, ml, "socks5.methods: %s needs tls.cert and "
			    "tls.key", socks5_method_name(m));
			return;
		}
		if ((m == SOCKS5_METHOD_USERPASS ||
		    m == SOCKS5_METHOD_TLS_USERPASS) && c->users[0] == '\0') {
			fail(p, ml, "socks5.methods: %s needs auth.users",
			    socks5_method_name(m));
			return;
		}
		if (m == SOCKS5_METHOD_TLS_LOGIN && c->users[0] == '\0' &&
		    c->tls_client_ca[0] == '\0') {
			fail(p, ml, "socks5.methods: tls-login needs "
			    "auth.users or tls.client_ca");
			return;
		}
	}
	if (c->tls_listen.n > 0 && !cert) {
		fail(p, key_line(p, SECT_TLS, "listen"), "tls.listen: needs "
		    "tls.cert and tls.key");
		return;
	}
	if (c->tls_require_client_cert && c->tls_client_ca[0] == '\0') {
		fail(p, key_line(p, SECT_TLS, "require_client_cert"),
		    "tls.require_client_cert: needs tls.client_ca");
		return;
	}
	if ((ps = proxy_without_from(c)) != SECT_NONE) {
		fail(p, key_line(p, ps, "proxy_protocol"), "%s",
		    proxy_message(ps, err, sizeof(err)));
		return;
	}
	if (c->convert_listen.n > 0 && c->convert_require_auth &&
	    c->convert_keys[0] == '\0') {
		fail(p, key_line(p, SECT_CONVERT, "listen"), "convert.listen: "
		    "needs convert.keys (or convert.require_auth = no)");
		return;
	}
	if (c->buffer_max < c->buffer_size) {
		/* Only buffer_size given: buffers start and stay at it. */
		if (key_line(p, SECT_UPSTREAM, "buffer_max") == 0)
			p->c->buffer_max = c->buffer_size;
		else {
			fail(p, key_line(p, SECT_UPSTREAM, "buffer_max"),
			    "upstream.buffer_max: %u is below "
			    "upstream.buffer_size (%u)", c->buffer_max,
			    c->buffer_size);
			return;
		}
	}
	if (c->via.set && (c->via_user[0] == '\0' || c->via_keys[0] == '\0')) {
		fail(p, key_line(p, SECT_UPSTREAM, "via"), "upstream.via: "
		    "needs upstream.via_user and upstream.via_keys");
		return;
	}
	if (!c->via.set && (c->via_user[0] != '\0' || c->via_keys[0] !=
	    '\0')) {
		fail(p, key_line(p, SECT_UPSTREAM, c->via_user[0] != '\0' ?
		    "via_user" : "via_keys"), "upstream.%s: needs upstream.via",
		    c->via_user[0] != '\0' ? "via_user" : "via_keys");
		return;
	}
	if (c->early_reply && !c->via.set) {
		fail(p, key_line(p, SECT_SOCKS5, "early_reply"),
		    "socks5.early_reply: needs upstream.via");
		return;
	}
	if (c->socks5_listen.n + c->tls_listen.n + c->convert_listen.n == 0) {
		fail(p, key_line(p, SECT_SOCKS5, "listen"), "no listener: set "
		    "socks5.listen, tls.listen or convert.listen");
		return;
	}
	if ((a = addr_overlap(&c->socks5_listen, &c->tls_listen)) != NULL) {
		fail(p, key_line(p, SECT_TLS, "listen"), "tls.listen: %s is "
		    "also in socks5.listen", a->text);
		return;
	}
	if ((a = addr_overlap(&c->socks5_listen, &c->convert_listen)) !=
	    NULL) {
		fail(p, key_line(p, SECT_CONVERT, "listen"), "convert.listen: "
		    "%s is also in socks5.listen", a->text);
		return;
	}
	if ((a = addr_overlap(&c->tls_listen, &c->convert_listen)) != NULL) {
		fail(p, key_line(p, SECT_CONVERT, "listen"), "convert.listen: "
		    "%s is also in tls.listen", a->text);
		return;
	}
	if (c->metrics_listen.len > 0) {
		const struct conf_addr_list *all[] = { &c->socks5_listen,
		    &c->tls_listen, &c->convert_listen };
		static const char *const names[] = { "socks5", "tls",
		    "convert" };

		for (size_t i = 0; i < nitems(all); i++) {
			for (size_t j = 0; j < all[i]->n; j++) {
				if (!addr_eq(&c->metrics_listen, &all[i]->a[j]))
					continue;
				fail(p, key_line(p, SECT_METRICS, "listen"),
				    "metrics.listen: %s is also in %s.listen",
				    c->metrics_listen.text, names[i]);
				return;
			}
		}
	}
	if (c->redis_password_file[0] != '\0' && !c->redis.set) {
		fail(p, key_line(p, SECT_STATE, "redis_password_file"),
		    "state.redis_password_file: needs state.redis");
		return;
	}
	if (c->redis_password_file[0] != '\0' && c->redis.password[0] !=
	    '\0') {
		fail(p, key_line(p, SECT_STATE, "redis_password_file"),
		    "state.redis_password_file: state.redis has a password "
		    "already");
		return;
	}
	if ((open = conf_open_listener(c, &a)) != OPEN_NONE) {
		fail(p, key_line(p, open == OPEN_CONVERT ? SECT_CONVERT :
		    open == OPEN_TLS ? SECT_TLS : SECT_SOCKS5, "listen"), "%s",
		    open_message(open, a, err, sizeof(err)));
		return;
	}
	check_identity(p);
}

void
conf_defaults(struct gw_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->workers = 0;
	c->log_level = LOG_LVL_INFO;
	strcpy(c->access_log, "stderr");
	c->socks5_listen.n = 1;
	(void)conf_parse_addr("127.0.0.1:1080", &c->socks5_listen.a[0]);
	c->n_methods = 1;
	c->methods[0] = SOCKS5_METHOD_NONE;
	c->handshake_timeout = 10;
	c->idle_timeout = 300;
	c->udp_idle_timeout = 120;
	c->bind_timeout = 60;
	c->fail_limit = 5;
	c->fail_delay_max = 4;
	c->fail_block = 60;
	c->auth_cache_ttl = 300;
	c->convert_require_auth = true;
	c->early_wait_ms = 20;
	c->mptcp_cache_ttl = 600;
	c->convert_max_skew = 30;
	c->upstream_mptcp = true;
	c->connect_timeout = 10;
	/* A browser keeps up to 32 connections per proxy: room for two. */
	c->dns_per_source = 64;
	strcpy(c->relay, "auto");
	c->buffer_size = 16384;
	c->buffer_max = 1048576;
}

int
conf_load_stream(struct gw_conf *c, FILE *f, const char *name, char *err,
    size_t errlen)
{
	struct parse p;
	int r;

	conf_defaults(c);
	memset(&p, 0, sizeof(p));
	p.c = c;
	p.f = f;
	p.name = name;
	p.err = err;
	p.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (strlen(name) >= sizeof(c->path)) {
		fail(&p, 0, "file name too long");
		return -1;
	}
	strcpy(c->path, name);

	r = ini_parse_stream(conf_reader, &p, conf_handler, &p);
	/*
	 * check_line() refuses every line inih would; this is a safety net
	 * for an inih whose rules differ, keeping whichever error came first.
	 */
	if (r > 0 && (!p.failed || r < p.err_line)) {
		p.failed = false;
		fail(&p, r, "syntax error (inih)");
	} else if (r < 0)
		fail(&p, 0, "out of memory");
	if (!p.failed)
		sect_close(&p);
	if (!p.failed)
		cross_check(&p);
	return p.failed ? -1 : 0;
}

int
conf_load(struct gw_conf *c, const char *path, char *err, size_t errlen)
{
	FILE *f;
	int r;

	if ((f = fopen(path, "r")) == NULL) {
		conf_defaults(c);
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	r = conf_load_stream(c, f, path, err, errlen);
	fclose(f);
	return r;
}

int
conf_parse_addr(const char *s, struct conf_addr *a)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	char host[INET6_ADDRSTRLEN];
	const char *h, *he, *port;
	size_t len = strlen(s), hlen;
	uint16_t pn;
	bool v6;

	memset(a, 0, sizeof(*a));
	if (len >= sizeof(a->text))
		return -1;
	if (s[0] == '[') {
		if ((he = strchr(s, ']')) == NULL || he[1] != ':')
			return -1;
		h = s + 1;
		port = he + 2;
		v6 = true;
	} else {
		if ((port = strrchr(s, ':')) == NULL)
			return -1;
		h = s;
		he = port++;
		v6 = false;
	}
	hlen = (size_t)(he - h);
	if (hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (parse_port(port, strlen(port), &pn) == -1)
		goto bad;
	if (v6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(pn);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			goto bad;
		a->len = sizeof(*sin6);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(pn);
		if (hlen == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			goto bad;
		a->len = sizeof(*sin);
	}
	memcpy(a->text, s, len + 1);
	return 0;
bad:
	memset(a, 0, sizeof(*a));
	return -1;
}

int
conf_parse_cidr(const char *s, struct conf_cidr *c)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned long plen, maxlen;

	memset(c, 0, sizeof(*c));
	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		maxlen = 128;
	} else
		goto bad;
	plen = maxlen;
	if (slash != NULL && (strlen(slash + 1) > 3 ||
	    parse_digits(slash + 1, strlen(slash + 1), &plen) == -1 ||
	    plen > maxlen))
		goto bad;
	c->plen = (uint8_t)plen;
	/* "192.168.1.7/24" means the network: clear the host bits. */
	for (unsigned long bit = plen; bit < maxlen; bit++)
		c->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	return 0;
bad:
	memset(c, 0, sizeof(*c));
	return -1;
}

/* True if the first plen bits of a and b agree. */
static bool
prefix_eq(const uint8_t *a, const uint8_t *b, unsigned plen)
{
	unsigned full = plen / 8, rest = plen % 8;
	uint8_t mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff00u >> rest);
	return (a[full] & mask) == (b[full] & mask);
}

bool
conf_cidr_match(const struct conf_cidr *c, const struct sockaddr *sa)
{
	struct sockaddr_storage tmp;
	const struct sockaddr *u;

	/*
	 * An IPv4 prefix also matches ::ffff:a.b.c.d, which is how a
	 * dual-stack socket sees IPv4 clients; an IPv6 prefix sees the
	 * address as given.
	 */
	if (c->family == AF_INET) {
		if ((u = addr_unmap(sa, &tmp)) == NULL || u->sa_family != AF_INET)
			return false;
		return prefix_eq(c->addr, (const uint8_t *)&((const struct
		    sockaddr_in *)(const void *)u)->sin_addr, c->plen);
	}
	if (sa->sa_family != AF_INET6)
		return false;
	return prefix_eq(c->addr, ((const struct sockaddr_in6 *)(const void *)
	    sa)->sin6_addr.s6_addr, c->plen);
}

