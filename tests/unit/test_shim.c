/*
 * Unit tests for the client shim's pure parts: the config parser and the
 * environment overrides (client-shim/shimconf.c), the fake-DNS table
 * (client-shim/fakedns.c), and the SOCKS REP -> errno mapping it uses.
 * The two files are compiled in here directly; the hooks themselves are
 * tested with real programs in tests/integration/test_shim.py.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-shim/fakedns.c"
#include "client-shim/shimconf.c"
#include "proto/socks5.h"

static const char *const env_names[] = { "MPGW_GATEWAY", "MPGW_MODE",
	"MPGW_METHOD", "MPGW_USER", "MPGW_PASSWORD", "MPGW_KEY", "MPGW_CA",
	"MPGW_REMOTE_DNS", "MPGW_MPTCP", "MPGW_DEBUG", "MPGW_TIMEOUT",
	"MPGW_SILENT", "MPGW_SERVERNAME", "MPGW_DNS_TABLE",
	"MPGW_TFO_NO_COOKIE" };

static void
clear_env(void)
{
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
}

static int
parse(struct shim_conf *c, const char *text, char *err, size_t errlen)
{
	shim_conf_defaults(c);
	return shim_conf_parse(c, text, strlen(text), "t.ini", err, errlen);
}

/* 32 bytes 0..31 in base64. */
#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

Test(shimconf, defaults)
{
	struct shim_conf c;

	shim_conf_defaults(&c);
	cr_assert_eq(c.mode, SHIM_MODE_EXPLICIT);
	cr_assert_eq(c.method, SHIM_METHOD_NONE);
	cr_assert_str_eq(c.gw_host, "127.0.0.1");
	cr_assert_eq(c.gw_port, 1080);
	cr_assert_eq(c.timeout_ms, 10000);
	cr_assert(c.silent);
	cr_assert(!c.remote_dns && !c.mptcp && !c.debug);
	/* The kernel's Fast Open cookie unless told the gateway needs none. */
	cr_assert(!c.tfo_no_cookie);
	cr_assert_eq(c.fake4.family, AF_INET);
	cr_assert_eq(c.fake4.prefix, 15);
	cr_assert_eq(c.fake6.family, AF_INET6);
	cr_assert_eq(c.fake6.prefix, 18);
}

Test(shimconf, full_file)
{
	struct shim_conf c;
	char err[256] = "";
	const char *text =
	    "; the shim\n"
	    "# another comment\n"
	    "\n"
	    "[shim]\n"
	    "gateway = [::1]:5124   ; inline comment\n"
	    "mode = implicit\n"
	    "method = tls-login\n"
	    "user = alice\n"
	    "password = a;b#c\n"
	    "key = " KEY_B64 "\n"
	    "ca = /etc/mpgw/ca.pem\n"
	    "remote_dns = on\n"
	    "mptcp = yes\n"
	    "tfo_no_cookie = on\n"
	    "fake_net4 = 10.99.0.0/16\n"
	    "fake_net6 = fd99::/64\n"
	    "timeout = 2.5\r\n"
	    "silent = off\n";

	cr_assert_eq(parse(&c, text, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.gw_host, "::1");
	cr_assert_eq(c.gw_port, 5124);
	cr_assert_eq(c.mode, SHIM_MODE_IMPLICIT);
	cr_assert_eq(c.method, SHIM_METHOD_TLS_LOGIN);
	cr_assert_str_eq(c.user, "alice");
	cr_assert_str_eq(c.password, "a;b#c");
	cr_assert(c.has_key);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(c.key[i], i);
	cr_assert_str_eq(c.ca, "/etc/mpgw/ca.pem");
	cr_assert(c.remote_dns && c.mptcp && !c.silent && c.tfo_no_cookie);
	cr_assert_eq(c.fake4.prefix, 16);
	cr_assert_eq(c.fake6.prefix, 64);
	cr_assert_eq(c.timeout_ms, 2500);
}

Test(shimconf, errors_name_the_line)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "[shim]\nbogus = 1\n", "t.ini:2: unknown key \"bogus\"" },
		{ "[shim]\n\nmode = sideways\n", "t.ini:3: mode: bad value" },
		{ "gateway = 1.2.3.4:1\n", "t.ini:1: key outside [shim]" },
		{ "[gateway]\n", "t.ini:1: unknown section [gateway]" },
		{ "[shim]\njunk\n", "t.ini:2: expected key = value" },
		{ "[shim]\ngateway = 1.2.3.4\n", "t.ini:2: gateway: bad value" },
		{ "[shim]\ngateway = 1.2.3.4:0\n", "t.ini:2: gateway" },
		{ "[shim]\ngateway = 1.2.3.4:65536\n", "t.ini:2: gateway" },
		{ "[shim]\nkey = AAAA\n", "t.ini:2: key: not a base64" },
		{ "[shim]\nfake_net4 = 10.0.0.0/24\n", "t.ini:2: fake_net4" },
		{ "[shim]\nfake_net4 = fc00::/18\n", "t.ini:2: fake_net4" },
		{ "[shim]\ntimeout = 0\n", "t.ini:2: timeout" },
		{ "[shim]\nremote_dns = maybe\n", "t.ini:2: remote_dns" },
		{ "[shim]\ndns_table = rel/path\n", "t.ini:2: dns_table" },
	};
	struct shim_conf c;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(parse(&c, cases[i].text, err, sizeof(err)), -1,
		    "case %zu accepted", i);
		cr_assert(strstr(err, cases[i].want) != NULL,
		    "case %zu: got \"%s\", want \"%s\"", i, err, cases[i].want);
	}
}

Test(shimconf, password_never_echoed)
{
	struct shim_conf c;
	char text[600], err[256];

	memset(text, 0, sizeof(text));
	strcpy(text, "[shim]\npassword = ");
	memset(text + strlen(text), 's', 300);
	cr_assert_eq(parse(&c, text, err, sizeof(err)), -1);
	cr_assert(strstr(err, "sss") == NULL, "%s", err);
}

Test(shimconf, env_overrides_file, .init = clear_env)
{
	struct shim_conf c;
	char err[256] = "";

	cr_assert_eq(parse(&c, "[shim]\ngateway = 10.0.0.1:1080\n"
	    "method = none\nremote_dns = on\n", err, sizeof(err)), 0);
	setenv("MPGW_GATEWAY", "192.0.2.7:2080", 1);
	setenv("MPGW_METHOD", "userpass", 1);
	setenv("MPGW_USER", "bob", 1);
	setenv("MPGW_PASSWORD", "pw", 1);
	setenv("MPGW_REMOTE_DNS", "off", 1);
	setenv("MPGW_MPTCP", "on", 1);
	setenv("MPGW_DEBUG", "1", 1);
	setenv("MPGW_TFO_NO_COOKIE", "yes", 1);
	cr_assert_eq(shim_conf_env(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.gw_host, "192.0.2.7");
	cr_assert_eq(c.gw_port, 2080);
	cr_assert_eq(c.method, SHIM_METHOD_USERPASS);
	cr_assert_str_eq(c.user, "bob");
	cr_assert_str_eq(c.password, "pw");
	cr_assert(!c.remote_dns && c.mptcp && c.debug && c.tfo_no_cookie);
	cr_assert_eq(shim_conf_finish(&c, getaddrinfo, freeaddrinfo, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.gw.ss_family, AF_INET);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&c.gw)->sin_port), 2080);
}

Test(shimconf, env_error_names_the_variable, .init = clear_env)
{
	struct shim_conf c;
	char err[256] = "";

	shim_conf_defaults(&c);
	setenv("MPGW_MODE", "both", 1);
	cr_assert_eq(shim_conf_env(&c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "MPGW_MODE") != NULL, "%s", err);
}

Test(shimconf, finish_checks_the_whole, .init = clear_env)
{
	struct shim_conf c;
	char err[256] = "";

	shim_conf_defaults(&c);
	c.mode = SHIM_MODE_IMPLICIT;
	cr_assert_eq(shim_conf_finish(&c, getaddrinfo, freeaddrinfo, err,
	    sizeof(err)), -1);
	cr_assert(strstr(err, "user and key") != NULL, "%s", err);
	shim_conf_defaults(&c);
	c.method = SHIM_METHOD_TLS_LOGIN;
	cr_assert_eq(shim_conf_finish(&c, getaddrinfo, freeaddrinfo, err,
	    sizeof(err)), -1);
	cr_assert(strstr(err, "tls-login needs a user") != NULL, "%s", err);
	shim_conf_defaults(&c);
	cr_assert_eq(shim_conf_set(&c, "gateway", "[2001:db8::1]:443", err,
	    sizeof(err)), 0);
	cr_assert_eq(shim_conf_finish(&c, getaddrinfo, freeaddrinfo, err,
	    sizeof(err)), 0);
	cr_assert_eq(c.gw.ss_family, AF_INET6);
	cr_assert_eq(c.gw_len, sizeof(struct sockaddr_in6));
	cr_assert_eq(ntohs(((struct sockaddr_in6 *)&c.gw)->sin6_port), 443);
}

Test(shimconf, hostport)
{
	char h[64];
	uint16_t p;

	cr_assert_eq(socks5_parse_hostport("gw.example:1080", h, sizeof(h), &p),
	    0);
	cr_assert_str_eq(h, "gw.example");
	cr_assert_eq(p, 1080);
	cr_assert_eq(socks5_parse_hostport("[fe80::1]:9", h, sizeof(h), &p), 0);
	cr_assert_str_eq(h, "fe80::1");
	cr_assert_eq(socks5_parse_hostport("fe80::1:9", h, sizeof(h), &p), -1);
	cr_assert_eq(socks5_parse_hostport(":80", h, sizeof(h), &p), -1);
	cr_assert_eq(socks5_parse_hostport("h:", h, sizeof(h), &p), -1);
	cr_assert_eq(socks5_parse_hostport("h:+80", h, sizeof(h), &p), -1);
	cr_assert_eq(socks5_parse_hostport("[::1]80", h, sizeof(h), &p), -1);
}

Test(shimconf, base64)
{
	uint8_t out[8];

	cr_assert_eq(shim_b64_decode("aGVsbG8=", out, sizeof(out)), 5);
	cr_assert_eq(memcmp(out, "hello", 5), 0);
	cr_assert_eq(shim_b64_decode("aGVsbG8", out, sizeof(out)), 5);
	cr_assert_eq(shim_b64_decode("aGVsbG9=", out, sizeof(out)), -1);
	cr_assert_eq(shim_b64_decode("a", out, sizeof(out)), -1);
	cr_assert_eq(shim_b64_decode("aGV*bG8=", out, sizeof(out)), -1);
	cr_assert_eq(shim_b64_decode("aGVsbG8gd29ybGQ=", out, sizeof(out)),
	    -1);
}

static struct sockaddr_storage
sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr))
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr))
		ss.ss_family = AF_INET6;
	return ss;
}

Test(shimconf, nets)
{
	struct shim_net n;
	struct sockaddr_storage a;

	cr_assert_eq(shim_parse_net("198.19.7.7/15", &n), 0);
	cr_assert_eq(n.addr[0], 198);
	cr_assert_eq(n.addr[1], 18);	/* host bits cleared */
	cr_assert_eq(n.addr[2], 0);
	a = sa("198.19.255.254");
	cr_assert(shim_net_contains(&n, (struct sockaddr *)&a));
	a = sa("198.20.0.1");
	cr_assert(!shim_net_contains(&n, (struct sockaddr *)&a));
	a = sa("fc00::1");
	cr_assert(!shim_net_contains(&n, (struct sockaddr *)&a));
	cr_assert_eq(shim_parse_net("fc00::/18", &n), 0);
	a = sa("fc00:3fff::1");
	cr_assert(shim_net_contains(&n, (struct sockaddr *)&a));
	a = sa("fc00:4000::1");
	cr_assert(!shim_net_contains(&n, (struct sockaddr *)&a));
	cr_assert_eq(shim_parse_net("10.0.0.0/33", &n), -1);
	cr_assert_eq(shim_parse_net("nonsense/8", &n), -1);
	cr_assert_eq(shim_parse_net("10.0.0.0/", &n), -1);
}

/* --- fake DNS ------------------------------------------------------- */

static struct shim_net net4, net6;

static void
nets(void)
{
	shim_parse_net("198.18.0.0/15", &net4);
	shim_parse_net("fc00::/18", &net6);
}

Test(fakedns, same_name_same_slot, .init = nets)
{
	struct shim_fdns d;
	uint32_t a, b, c;
	char name[256];

	cr_assert_eq(shim_fdns_open(&d, NULL), 0);
	cr_assert_eq(shim_fdns_put(&d, "Example.COM.", &a), 0);
	cr_assert_eq(shim_fdns_put(&d, "example.com", &b), 0);
	cr_assert_eq(shim_fdns_put(&d, "other.example", &c), 0);
	cr_assert_eq(a, b);
	cr_assert_neq(a, c);
	cr_assert_eq(shim_fdns_name(&d, a, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "example.com");
	cr_assert_eq(shim_fdns_name(&d, 4000, name, sizeof(name)), -1);
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(shim_fdns_name(&d, a, name, 5), -1);
	cr_assert_eq(shim_fdns_put(&d, "", &a), -1);
	cr_assert_eq(shim_fdns_put(&d, ".", &a), -1);
	shim_fdns_close(&d);
}

Test(fakedns, addresses_both_families, .init = nets)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	char txt[INET6_ADDRSTRLEN];
	socklen_t len;
	uint32_t slot;

	shim_fdns_addr(&net4, 0, 80, &ss, &len);
	cr_assert_eq(len, sizeof(*s4));
	inet_ntop(AF_INET, &s4->sin_addr, txt, sizeof(txt));
	cr_assert_str_eq(txt, "198.18.0.1");
	cr_assert_eq(ntohs(s4->sin_port), 80);
	cr_assert(shim_fdns_slot(&net4, (struct sockaddr *)&ss, &slot));
	cr_assert_eq(slot, 0);
	shim_fdns_addr(&net4, 300, 0, &ss, &len);
	inet_ntop(AF_INET, &s4->sin_addr, txt, sizeof(txt));
	cr_assert_str_eq(txt, "198.18.1.45");
	shim_fdns_addr(&net4, SHIM_FDNS_SLOTS - 1, 0, &ss, &len);
	cr_assert(shim_fdns_slot(&net4, (struct sockaddr *)&ss, &slot));
	cr_assert_eq(slot, SHIM_FDNS_SLOTS - 1);
	shim_fdns_addr(&net6, 300, 443, &ss, &len);
	cr_assert_eq(len, sizeof(*s6));
	inet_ntop(AF_INET6, &s6->sin6_addr, txt, sizeof(txt));
	cr_assert_str_eq(txt, "fc00::12d");
	cr_assert(shim_fdns_slot(&net6, (struct sockaddr *)&ss, &slot));
	cr_assert_eq(slot, 300);
	/* The base itself, other blocks, other families: not ours. */
	ss = sa("198.18.0.0");
	cr_assert(!shim_fdns_slot(&net4, (struct sockaddr *)&ss, &slot));
	ss = sa("198.19.255.255");
	cr_assert(!shim_fdns_slot(&net4, (struct sockaddr *)&ss, &slot));
	ss = sa("10.0.0.1");
	cr_assert(!shim_fdns_slot(&net4, (struct sockaddr *)&ss, &slot));
	ss = sa("fc00:0:0:1::1");
	cr_assert(!shim_fdns_slot(&net6, (struct sockaddr *)&ss, &slot));
	ss = sa("198.18.0.1");
	cr_assert(!shim_fdns_slot(&net6, (struct sockaddr *)&ss, &slot));
}

Test(fakedns, shared_across_fork)
{
	struct shim_fdns d;
	uint32_t slot, again;
	char name[256];
	int st;
	pid_t pid;

	cr_assert_eq(shim_fdns_open(&d, NULL), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		/* The child's name must be visible to the parent... */
		_exit(shim_fdns_put(&d, "child.example", &slot) == 0 &&
		    slot == 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(shim_fdns_name(&d, 0, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "child.example");
	/* ...and the same name gets the same slot in the parent. */
	cr_assert_eq(shim_fdns_put(&d, "CHILD.example", &again), 0);
	cr_assert_eq(again, 0);
	shim_fdns_close(&d);
}

Test(fakedns, file_survives_exec_and_parent_exit)
{
	char dir[] = "/tmp/mpgw-fdns-XXXXXX", path[300], name[256];
	struct shim_fdns a, b;
	uint32_t slot;
	int st, p[2];
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/table", dir);
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		/* A middle process that exits before its child writes. */
		if (fork() == 0) {
			struct shim_fdns c;
			char ok;

			usleep(100000);
			ok = shim_fdns_open(&c, path) == 0 &&
			    shim_fdns_put(&c, "grandchild.example", &slot) ==
			    0 ? 'y' : 'n';
			(void)!write(p[1], &ok, 1);
			_exit(0);
		}
		_exit(0);
	}
	waitpid(pid, &st, 0);
	{
		char ok = 0;

		cr_assert_eq(read(p[0], &ok, 1), 1);
		cr_assert_eq(ok, 'y');
	}
	/* A fresh mapping (as after exec) sees it. */
	cr_assert_eq(shim_fdns_open(&a, path), 0);
	cr_assert_eq(shim_fdns_open(&b, path), 0);
	cr_assert_eq(shim_fdns_put(&a, "grandchild.example", &slot), 0);
	cr_assert_eq(shim_fdns_name(&b, slot, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "grandchild.example");
	cr_assert_eq(shim_fdns_put(&b, "second.example", &slot), 0);
	cr_assert_eq(shim_fdns_name(&a, slot, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "second.example");
	shim_fdns_close(&a);
	shim_fdns_close(&b);
	/* Others may not read it. */
	chmod(path, 0644);
	cr_assert_eq(shim_fdns_open(&a, path), -1);
	cr_assert_eq(errno, EPERM);
	unlink(path);
	rmdir(dir);
}

Test(fakedns, ring_reuses_the_oldest_slot)
{
	struct shim_fdns d;
	uint32_t slot;
	char name[256], want[64];

	cr_assert_eq(shim_fdns_open(&d, NULL), 0);
	for (uint32_t i = 0; i < SHIM_FDNS_SLOTS; i++) {
		snprintf(want, sizeof(want), "h%u.example", i);
		cr_assert_eq(shim_fdns_put(&d, want, &slot), 0);
		cr_assert_eq(slot, i);
	}
	cr_assert_eq(shim_fdns_put(&d, "new.example", &slot), 0);
	cr_assert_eq(slot, 0);
	cr_assert_eq(shim_fdns_name(&d, 0, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "new.example");
	/* The evicted name gets a new slot; every other one is still found. */
	cr_assert_eq(shim_fdns_put(&d, "h0.example", &slot), 0);
	cr_assert_eq(slot, 1);
	for (uint32_t i = 2; i < SHIM_FDNS_SLOTS; i += 997) {
		snprintf(want, sizeof(want), "h%u.example", i);
		cr_assert_eq(shim_fdns_put(&d, want, &slot), 0);
		cr_assert_eq(slot, i, "%s moved to %u", want, slot);
	}
	shim_fdns_close(&d);
}

/* --- REP -> errno --------------------------------------------------- */

Test(shim, rep_to_errno)
{
	static const struct {
		uint8_t rep;
		int err;
	} cases[] = {
		{ SOCKS5_REP_REFUSED, ECONNREFUSED },
		{ SOCKS5_REP_HOST_UNREACHABLE, EHOSTUNREACH },
		{ SOCKS5_REP_NET_UNREACHABLE, ENETUNREACH },
		{ SOCKS5_REP_TTL_EXPIRED, ETIMEDOUT },
		{ SOCKS5_REP_NOT_ALLOWED, EACCES },
		{ SOCKS5_REP_GENERAL_FAILURE, ECONNREFUSED },
		{ SOCKS5_REP_CMD_UNSUPPORTED, ECONNREFUSED },
		{ SOCKS5_REP_ATYP_UNSUPPORTED, ECONNREFUSED },
		{ 0x42, ECONNREFUSED },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_eq(socks5_errno_from_rep(cases[i].rep), cases[i].err,
		    "REP %#x", cases[i].rep);
}
