#include "client-shim/shimconf.h"
#include "proto/socks5.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONF_FILE_MAX 65536

static void
errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
shim_conf_defaults(struct shim_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = SHIM_MODE_EXPLICIT;
	c->method = SHIM_METHOD_NONE;
	strcpy(c->gw_host, "127.0.0.1");
	c->gw_port = 1080;
	c->silent = true;
	c->timeout_ms = 10000;
	shim_parse_net("198.18.0.0/15", &c->fake4);
	shim_parse_net("fc00::/18", &c->fake6);
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *yes[] = { "on", "yes", "true", "1" };
	static const char *no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Seconds with an optional "s" or "m" suffix, or "ms" milliseconds;
 * 1 ms .. 1 h. */
static int
parse_timeout(const char *v, unsigned *ms)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (end == v || errno != 0)
		return -1;
	if (strcmp(end, "ms") == 0)
		d /= 1000;
	else if (strcmp(end, "m") == 0)
		d *= 60;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		return -1;
	if (!(d >= 0.001 && d <= 3600))
		return -1;
	*ms = (unsigned)(d * 1000 + 0.5);
	return 0;
}

static int
copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

int
shim_parse_net(const char *s, struct shim_net *n)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long pfx;
	unsigned max;
	char *end;

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	pfx = max;
	if (slash != NULL) {
		errno = 0;
		pfx = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || errno != 0 || pfx > max)
			return -1;
	}
	n->prefix = (unsigned)pfx;
	/* Clear host bits so comparisons and offsets start at the base. */
	for (unsigned i = 0; i < max / 8; i++) {
		unsigned bits = i * 8;

		if (bits >= n->prefix)
			n->addr[i] = 0;
		else if (n->prefix - bits < 8)
			n->addr[i] &= (uint8_t)(0xff << (8 - (n->prefix - bits)));
	}
	return 0;
}

bool
shim_net_contains(const struct shim_net *n, const struct sockaddr *sa)
{
	const uint8_t *a;
	unsigned full, rest;

	if (sa->sa_family != n->family)
		return false;
	if (n->family == AF_INET)
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	else
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	full = n->prefix / 8;
	rest = n->prefix % 8;
	if (memcmp(a, n->addr, full) != 0)
		return false;
	if (rest != 0 && ((a[full] ^ n->addr[full]) &
	    (uint8_t)(0xff << (8 - rest))) != 0)
		return false;
	return true;
}

static int
b64_value(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

long
shim_b64_decode(const char *s, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0, len = strlen(s);

	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value((unsigned char)s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero, or the text was not canonical. */
	if ((acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (long)n;
}

int
shim_conf_set(struct shim_conf *c, const char *key, const char *val,
    char *err, size_t errlen)
{
	if (strcmp(key, "gateway") == 0) {
		if (socks5_parse_hostport(val, c->gw_host, sizeof(c->gw_host),
		    &c->gw_port) == -1)
			goto bad;
		c->gw_len = 0;
	} else if (strcmp(key, "mode") == 0) {
		if (strcmp(val, "explicit") == 0)
			c->mode = SHIM_MODE_EXPLICIT;
		else if (strcmp(val, "implicit") == 0)
			c->mode = SHIM_MODE_IMPLICIT;
		else
			goto bad;
	} else if (strcmp(key, "method") == 0) {
		if (strcmp(val, "none") == 0)
			c->method = SHIM_METHOD_NONE;
		else if (strcmp(val, "userpass") == 0)
			c->method = SHIM_METHOD_USERPASS;
		else if (strcmp(val, "tls-login") == 0)
			c->method = SHIM_METHOD_TLS_LOGIN;
		else
			goto bad;
	} else if (strcmp(key, "user") == 0) {
		if (strlen(val) > 255 || copy_str(c->user, sizeof(c->user),
		    val) == -1)
			goto bad;
	} else if (strcmp(key, "password") == 0) {
		if (strlen(val) > 255 || copy_str(c->password,
		    sizeof(c->password), val) == -1)
			goto bad;
	} else if (strcmp(key, "key") == 0) {
		uint8_t k[SHIM_KEY_LEN + 3];

		if (shim_b64_decode(val, k, sizeof(k)) != SHIM_KEY_LEN) {
			errf(err, errlen, "key: not a base64 32-byte key");
			return -1;
		}
		memcpy(c->key, k, SHIM_KEY_LEN);
		c->has_key = true;
	} else if (strcmp(key, "ca") == 0) {
		if (copy_str(c->ca, sizeof(c->ca), val) == -1)
			goto bad;
	} else if (strcmp(key, "servername") == 0) {
		if (copy_str(c->servername, sizeof(c->servername), val) == -1)
			goto bad;
	} else if (strcmp(key, "remote_dns") == 0) {
		if (parse_bool(val, &c->remote_dns) == -1)
			goto bad;
	} else if (strcmp(key, "mptcp") == 0) {
		if (parse_bool(val, &c->mptcp) == -1)
			goto bad;
	} else if (strcmp(key, "tfo_no_cookie") == 0) {
		if (parse_bool(val, &c->tfo_no_cookie) == -1)
			goto bad;
	} else if (strcmp(key, "silent") == 0) {
		if (parse_bool(val, &c->silent) == -1)
			goto bad;
	} else if (strcmp(key, "debug") == 0) {
		if (parse_bool(val, &c->debug) == -1)
			goto bad;
	} else if (strcmp(key, "fake_net4") == 0) {
		/* At most a /16 so 65536 table slots fit. */
		if (shim_parse_net(val, &c->fake4) == -1 ||
		    c->fake4.family != AF_INET || c->fake4.prefix > 16)
			goto bad;
	} else if (strcmp(key, "fake_net6") == 0) {
		if (shim_parse_net(val, &c->fake6) == -1 ||
		    c->fake6.family != AF_INET6 || c->fake6.prefix > 112)
			goto bad;
	} else if (strcmp(key, "timeout") == 0) {
		if (parse_timeout(val, &c->timeout_ms) == -1)
			goto bad;
	} else if (strcmp(key, "dns_table") == 0) {
		if (val[0] != '/' || copy_str(c->dns_table,
		    sizeof(c->dns_table), val) == -1)
			goto bad;
	} else {
		errf(err, errlen, "unknown key \"%s\"", key);
		return -1;
	}
	return 0;
bad:
	/* Never echo a secret back. */
	if (strcmp(key, "password") == 0)
		errf(err, errlen, "password: longer than 255 bytes");
	else
		errf(err, errlen, "%s: bad value \"%s\"", key, val);
	return -1;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Cuts a ';' or '#' comment that follows white space. */
static void
cut_comment(char *s)
{
	if (*s == '\0')
		return;
	for (char *p = s + 1; *p != '\0'; p++) {
		if ((*p == ';' || *p == '#') && (p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
	}
}

int
shim_conf_parse(struct shim_conf *c, const char *text, size_t len,
    const char *fname, char *err, size_t errlen)
{
	char line[1024], msg[256];
	bool in_shim = false;
	unsigned lineno = 0;
	size_t off = 0;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		char *s, *eq;

		lineno++;
		if (n >= sizeof(line)) {
			errf(err, errlen, "%s:%u: line too long", fname, lineno);
			return -1;
		}
		memcpy(line, text + off, n);
		line[n] = '\0';
		off += n + (nl ? 1 : 0);
		if (memchr(line, '\0', n) != NULL) {
			errf(err, errlen, "%s:%u: NUL byte", fname, lineno);
			return -1;
		}
		s = trim(line);
		if (*s == '\0' || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			cut_comment(s);
			s = trim(s);
			if (strcmp(s, "[shim]") != 0) {
				errf(err, errlen, "%s:%u: unknown section %s "
				    "(only [shim])", fname, lineno, s);
				return -1;
			}
			in_shim = true;
			continue;
		}
		if (!in_shim) {
			errf(err, errlen, "%s:%u: key outside [shim]", fname,
			    lineno);
			return -1;
		}
		eq = strchr(s, '=');
		if (eq == NULL) {
			errf(err, errlen, "%s:%u: expected key = value", fname,
			    lineno);
			return -1;
		}
		*eq = '\0';
		cut_comment(eq + 1);
		if (shim_conf_set(c, trim(s), trim(eq + 1), msg,
		    sizeof(msg)) == -1) {
			errf(err, errlen, "%s:%u: %s", fname, lineno, msg);
			return -1;
		}
	}
	return 0;
}

int
shim_conf_load(struct shim_conf *c, const char *path, char *err,
    size_t errlen)
{
	static char buf[CONF_FILE_MAX];
	size_t len = 0;
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (len < sizeof(buf)) {
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			errf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len == sizeof(buf)) {
		errf(err, errlen, "%s: larger than %d bytes", path,
		    CONF_FILE_MAX - 1);
		return -1;
	}
	return shim_conf_parse(c, buf, len, path, err, errlen);
}

int
shim_conf_env(struct shim_conf *c, char *err, size_t errlen)
{
	static const struct {
		const char *env, *key;
	} map[] = {
		{ "MPGW_GATEWAY", "gateway" },
		{ "MPGW_MODE", "mode" },
		{ "MPGW_METHOD", "method" },
		{ "MPGW_USER", "user" },
		{ "MPGW_PASSWORD", "password" },
		{ "MPGW_KEY", "key" },
		{ "MPGW_CA", "ca" },
		{ "MPGW_SERVERNAME", "servername" },
		{ "MPGW_REMOTE_DNS", "remote_dns" },
		{ "MPGW_MPTCP", "mptcp" },
		{ "MPGW_SILENT", "silent" },
		{ "MPGW_TFO_NO_COOKIE", "tfo_no_cookie" },
		{ "MPGW_TIMEOUT", "timeout" },
		{ "MPGW_DEBUG", "debug" },
		{ "MPGW_DNS_TABLE", "dns_table" },
	};
	char msg[256];

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const char *v = getenv(map[i].env);

		if (v == NULL)
			continue;
		if (shim_conf_set(c, map[i].key, v, msg, sizeof(msg)) == -1) {
			errf(err, errlen, "%s: %s", map[i].env, msg);
			return -1;
		}
	}
	return 0;
}

int
shim_conf_finish(struct shim_conf *c, shim_gai_fn *gai, shim_fai_fn *fai,
    char *err, size_t errlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&c->gw;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&c->gw;
	struct addrinfo hints, *res;
	int rc;

	if (c->mode == SHIM_MODE_IMPLICIT && (c->user[0] == '\0' ||
	    !c->has_key)) {
		errf(err, errlen, "implicit mode needs user and key");
		return -1;
	}
	if (c->mode == SHIM_MODE_EXPLICIT &&
	    c->method != SHIM_METHOD_NONE && c->user[0] == '\0') {
		errf(err, errlen, "method %s needs a user",
		    c->method == SHIM_METHOD_USERPASS ? "userpass" :
		    "tls-login");
		return -1;
	}
	memset(&c->gw, 0, sizeof(c->gw));
	if (inet_pton(AF_INET, c->gw_host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(c->gw_port);
		c->gw_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, c->gw_host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(c->gw_port);
		c->gw_len = sizeof(*sin6);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = gai(c->gw_host, NULL, &hints, &res);
	if (rc != 0) {
		errf(err, errlen, "gateway %s: %s", c->gw_host,
		    gai_strerror(rc));
		return -1;
	}
	memcpy(&c->gw, res->ai_addr, res->ai_addrlen);
	c->gw_len = res->ai_addrlen;
	if (c->gw.ss_family == AF_INET)
		sin->sin_port = htons(c->gw_port);
	else
		sin6->sin6_port = htons(c->gw_port);
	fai(res);
	return 0;
}
