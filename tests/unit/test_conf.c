/*
 * conf/: defaults, the example config, every error with its line number,
 * the edge values of every value type, addresses, prefixes and rules.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "lib/log.h"
#include "proto/socks5.h"

/* Big enough that it should not live on a test's stack. */
static struct gw_conf conf;
static char tmp_path[64];
static char err[CONF_ERR_MAX];

/*
 * Write len bytes of text to a fresh temporary file and load it into conf.
 * Returns what conf_load() returned; the file name stays in tmp_path.
 */
static int
load_bytes(const char *text, size_t len)
{
	int fd, r;

	strcpy(tmp_path, "/tmp/test_conf.XXXXXX");
	fd = mkstemp(tmp_path);
	cr_assert_neq(fd, -1);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	err[0] = '\0';
	r = conf_load(&conf, tmp_path, err, sizeof(err));
	unlink(tmp_path);
	return r;
}

/* load_bytes() for a C string. */
static int
load(const char *text)
{
	return load_bytes(text, strlen(text));
}

/* Load text, which must succeed. */
static void
load_ok(const char *text)
{
	int r = load(text);

	cr_assert_eq(r, 0, "unexpected error: %s\n--- config:\n%s", err, text);
}

/*
 * Load text, which must fail with exactly "file:line: msg" ("file: msg"
 * when line is 0).
 */
static void
expect_err(const char *text, int line, const char *msg)
{
	char want[CONF_ERR_MAX + 128];

	cr_assert_eq(load(text), -1,
	    "loaded, but expected: %s\n--- config:\n%s", msg, text);
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s", tmp_path, line, msg);
	else
		snprintf(want, sizeof(want), "%s: %s", tmp_path, msg);
	cr_assert_str_eq(err, want, "got:  %s\nwant: %s\n--- config:\n%s",
	    err, want, text);
}

/*
 * The example config's path: conf/ next to this file's tests/unit/ when
 * __FILE__ is absolute or the test runs from the top of the tree, else
 * found by walking up from the working directory (e.g. build/tests/).
 */
static void
example_path(char *out, size_t outlen)
{
	const char *f = __FILE__;
	const char *end = strstr(f, "tests/unit/test_conf.c");
	char up[64] = "";

	cr_assert_not_null(end);
	snprintf(out, outlen, "%.*sconf/mpgw.ini", (int)(end - f), f);
	for (int i = 0; i < 6 && access(out, R_OK) == -1; i++) {
		strcat(up, "../");
		snprintf(out, outlen, "%sconf/mpgw.ini", up);
	}
	cr_assert_eq(access(out, R_OK), 0, "conf/mpgw.ini not found");
}

Test(conf, defaults)
{
	struct gw_conf c;

	conf_defaults(&c);
	cr_assert_eq(c.workers, 0);
	cr_assert_eq(c.log_level, LOG_LVL_INFO);
	cr_assert_str_eq(c.access_log, "stderr");
	cr_assert_eq(c.max_sessions, 0);
	cr_assert_eq(c.max_per_source, 0);
	cr_assert_not(c.allow_open_proxy);
	cr_assert_str_eq(c.user, "");
	cr_assert_str_eq(c.group, "");
	cr_assert_eq(c.n_proxy_from, 0);
	cr_assert_not(c.socks5_proxy_protocol);
	cr_assert_not(c.tls_proxy_protocol);
	cr_assert_not(c.convert_proxy_protocol);
	cr_assert_eq(c.socks5_listen.n, 1);
	cr_assert_str_eq(c.socks5_listen.a[0].text, "127.0.0.1:1080");
	cr_assert_eq(c.socks5_listen.a[0].ss.ss_family, AF_INET);
	cr_assert_eq(c.socks5_listen.a[0].len, sizeof(struct sockaddr_in));
	cr_assert_eq(c.n_methods, 1);
	cr_assert_eq(c.methods[0], SOCKS5_METHOD_NONE);
	cr_assert_eq(c.handshake_timeout, 10);
	cr_assert_eq(c.idle_timeout, 300);
	cr_assert_eq(c.max_udp_associations, 0);
	cr_assert_eq(c.udp_public4.len, 0);
	cr_assert_eq(c.udp_public6.len, 0);
	cr_assert_eq(c.udp_idle_timeout, 120);
	cr_assert_eq(c.bind_timeout, 60);
	cr_assert_eq(c.tls_listen.n, 0);
	cr_assert_str_eq(c.tls_cert, "");
	cr_assert_str_eq(c.tls_key, "");
	cr_assert_str_eq(c.tls_client_ca, "");
	cr_assert_not(c.tls_require_client_cert);
	cr_assert_str_eq(c.users, "");
	cr_assert_not(c.allow_cleartext_password);
	cr_assert_eq(c.fail_limit, 5);
	cr_assert_eq(c.fail_delay_max, 4);
	cr_assert_eq(c.fail_block, 60);
	cr_assert_eq(c.auth_cache_ttl, 300);
	cr_assert_eq(c.convert_listen.n, 0);
	cr_assert(c.convert_require_auth);
	cr_assert_str_eq(c.convert_keys, "");
	cr_assert_str_eq(c.convert_cookie, "");
	cr_assert_eq(c.convert_max_skew, 30);
	cr_assert(c.upstream_mptcp);
	cr_assert_eq(c.connect_timeout, 10);
	cr_assert_eq(c.dns_per_source, 64);
	cr_assert_str_eq(c.relay, "auto");
	cr_assert_eq(c.buffer_size, 16384);
	cr_assert_eq(c.buffer_max, 1048576);
	cr_assert_eq(c.mptcp_cache_ttl, 600);
	cr_assert_not(c.via.set);
	cr_assert_not(c.early_reply);
	cr_assert_eq(c.early_wait_ms, 20);
	cr_assert_eq(c.metrics_listen.len, 0);
	cr_assert_eq(c.n_rules, 0);
}

Test(conf, empty_file_is_defaults)
{
	struct gw_conf d;

	load_ok("");
	conf_defaults(&d);
	strcpy(d.path, tmp_path);
	cr_assert_eq(memcmp(&conf, &d, sizeof(d)), 0);
	load_ok("; only a comment\n\n# and another\n");
}

Test(conf, example_loads_and_states_the_defaults)
{
	struct gw_conf d;
	char path[1024];

	example_path(path, sizeof(path));
	cr_assert_eq(conf_load(&conf, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(conf.path, path);
	/* Every value the example writes out is the default. */
	conf_defaults(&d);
	strcpy(d.path, path);
	cr_assert_eq(memcmp(&conf, &d, sizeof(d)), 0);
}

Test(conf, example_rules_load_when_uncommented)
{
	char path[1024], line[256], text[8192] = "";
	FILE *f;
	static const char *const keys[] = { ";[rule.", ";action ", ";client ",
	    ";user ", ";dest ", ";domain ", ";port ", ";command " };

	example_path(path, sizeof(path));
	cr_assert_not_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *l = line;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strncmp(l, keys[i], strlen(keys[i])) == 0)
				l++;
		cr_assert_lt(strlen(text) + strlen(l), sizeof(text));
		strcat(text, l);
	}
	fclose(f);
	load_ok(text);
	cr_assert_eq(conf.n_rules, 3);
	cr_assert_str_eq(conf.rules[0].name, "no-local");
	cr_assert_eq(conf.rules[0].n_dst, 4);
	cr_assert_str_eq(conf.rules[1].name, "mail");
	cr_assert_eq(conf.rules[1].n_port, 3);
	cr_assert_str_eq(conf.rules[2].name, "lan");
	cr_assert_eq(conf.rules[2].n_user, 2);
}

Test(conf, every_key_is_read)
{
	load_ok("[gateway]\n"
	    "workers = 3\n"
	    "log_level = debug\n"
	    "access_log = /var/log/mpgw.log\n"
	    "max_sessions = 1000\n"
	    "max_per_source = 20\n"
	    "max_udp_associations = 500\n"
	    "allow_open_proxy = yes\n"
	    "user = nobody\n"
	    "group = nogroup\n"
	    "proxy_from = 10.0.0.5, 10.1.0.0/16, fd00::/8\n"
	    "[socks5]\n"
	    "listen = 0.0.0.0:1080, [::]:1080\n"
	    "methods = tls-login, userpass, none\n"
	    "handshake_timeout = 5\n"
	    "idle_timeout = 0\n"
	    "proxy_protocol = yes\n"
	    "udp_public_address = 2001:db8::7, 203.0.113.7\n"
	    "udp_idle_timeout = 5m\n"
	    "bind_timeout = 30\n"
	    "[tls]\n"
	    "listen = 127.0.0.1:1443\n"
	    "cert = /etc/mpgw/cert.pem\n"
	    "key = /etc/mpgw/key.pem\n"
	    "client_ca = /etc/mpgw/ca.pem\n"
	    "require_client_cert = yes\n"
	    "proxy_protocol = on\n"
	    "[auth]\n"
	    "users = /etc/mpgw/users\n"
	    "allow_cleartext_password = on\n"
	    "fail_limit = 3\n"
	    "fail_delay_max = 2\n"
	    "fail_block = 10m\n"
	    "auth_cache_ttl = 0\n"
	    "[convert]\n"
	    "listen = 127.0.0.1:5124\n"
	    "require_auth = no\n"
	    "keys = /etc/mpgw/keys\n"
	    "cookie = s3cret\n"
	    "max_skew = 1m\n"
	    "proxy_protocol = true\n"
	    "[upstream]\n"
	    "mptcp = off\n"
	    "connect_timeout = 20\n"
	    "dns_per_source = 3\n"
	    "relay = splice\n"
	    "buffer_size = 131072\n"
	    "[metrics]\n"
	    "listen = [::1]:9464\n");
	cr_assert_eq(conf.workers, 3);
	cr_assert_eq(conf.log_level, LOG_LVL_DEBUG);
	cr_assert_str_eq(conf.access_log, "/var/log/mpgw.log");
	cr_assert_eq(conf.max_sessions, 1000);
	cr_assert_eq(conf.max_per_source, 20);
	cr_assert(conf.allow_open_proxy);
	cr_assert_str_eq(conf.user, "nobody");
	cr_assert_str_eq(conf.group, "nogroup");
	cr_assert_eq(conf.n_proxy_from, 3);
	cr_assert_eq(conf.proxy_from[1].family, AF_INET);
	cr_assert_eq(conf.proxy_from[1].plen, 16);
	cr_assert_eq(conf.proxy_from[2].family, AF_INET6);
	cr_assert(conf.socks5_proxy_protocol);
	cr_assert(conf.tls_proxy_protocol);
	cr_assert(conf.convert_proxy_protocol);
	cr_assert_eq(conf.socks5_listen.n, 2);
	cr_assert_str_eq(conf.socks5_listen.a[1].text, "[::]:1080");
	cr_assert_eq(conf.n_methods, 3);
	cr_assert_eq(conf.methods[0], SOCKS5_METHOD_TLS_LOGIN);
	cr_assert_eq(conf.methods[1], SOCKS5_METHOD_USERPASS);
	cr_assert_eq(conf.methods[2], SOCKS5_METHOD_NONE);
	cr_assert_eq(conf.handshake_timeout, 5);
	cr_assert_eq(conf.idle_timeout, 0);
	cr_assert_eq(conf.max_udp_associations, 500);
	cr_assert_str_eq(conf.udp_public4.text, "203.0.113.7");
	cr_assert_eq(conf.udp_public4.ss.ss_family, AF_INET);
	cr_assert_str_eq(conf.udp_public6.text, "2001:db8::7");
	cr_assert_eq(conf.udp_public6.ss.ss_family, AF_INET6);
	cr_assert_eq(conf.udp_idle_timeout, 300);
	cr_assert_eq(conf.bind_timeout, 30);
	cr_assert_eq(conf.tls_listen.n, 1);
	cr_assert_str_eq(conf.tls_cert, "/etc/mpgw/cert.pem");
	cr_assert_str_eq(conf.tls_key, "/etc/mpgw/key.pem");
	cr_assert_str_eq(conf.tls_client_ca, "/etc/mpgw/ca.pem");
	cr_assert(conf.tls_require_client_cert);
	cr_assert_str_eq(conf.users, "/etc/mpgw/users");
	cr_assert(conf.allow_cleartext_password);
	cr_assert_eq(conf.fail_limit, 3);
	cr_assert_eq(conf.fail_delay_max, 2);
	cr_assert_eq(conf.fail_block, 600);
	cr_assert_eq(conf.auth_cache_ttl, 0);
	cr_assert_eq(conf.convert_listen.n, 1);
	cr_assert_not(conf.convert_require_auth);
	cr_assert_str_eq(conf.convert_keys, "/etc/mpgw/keys");
	cr_assert_str_eq(conf.convert_cookie, "s3cret");
	cr_assert_eq(conf.convert_max_skew, 60);
	cr_assert_not(conf.upstream_mptcp);
	cr_assert_eq(conf.connect_timeout, 20);
	cr_assert_eq(conf.dns_per_source, 3);
	cr_assert_str_eq(conf.relay, "splice");
	cr_assert_eq(conf.buffer_size, 131072);
	cr_assert_str_eq(conf.metrics_listen.text, "[::1]:9464");
	cr_assert_eq(conf.metrics_listen.ss.ss_family, AF_INET6);
}

/*
 * gateway.user and gateway.group are resolved at load, so that `mpgw -t`
 * names an unknown one. Debian has nobody, nogroup and root on every host.
 */
Test(conf, identity)
{
	struct passwd *pw = getpwnam("nobody");
	struct group *gr = getgrnam("nogroup");
	uid_t nobody_uid;
	gid_t nobody_gid, nogroup_gid;

	cr_assert_not_null(pw, "no user nobody on this host");
	cr_assert_not_null(gr, "no group nogroup on this host");
	nobody_uid = pw->pw_uid;
	nobody_gid = pw->pw_gid;
	nogroup_gid = gr->gr_gid;

	load_ok("[gateway]\nuser = nobody\n");
	cr_assert_str_eq(conf.user, "nobody");
	cr_assert_str_eq(conf.group, "");
	cr_assert_eq(conf.uid, nobody_uid);
	cr_assert_eq(conf.gid, nobody_gid, "the user's primary group");
	load_ok("[gateway]\ngroup = root\nuser = nobody\n");
	cr_assert_eq(conf.uid, nobody_uid);
	cr_assert_eq(conf.gid, 0, "group given before user still wins");
	load_ok("[gateway]\nuser = nobody\ngroup = nogroup\n");
	cr_assert_eq(conf.gid, nogroup_gid);
	load_ok("[gateway]\nuser =\ngroup =\n");
	cr_assert_eq(conf.uid, 0);
	cr_assert_eq(conf.gid, 0);

	expect_err("[gateway]\nuser = mpgw-no-such-user\n", 2,
	    "gateway.user: \"mpgw-no-such-user\" is not a user on this host");
	expect_err("[gateway]\nuser = nobody\n\ngroup = mpgw-no-such-group\n",
	    4, "gateway.group: \"mpgw-no-such-group\" is not a group on this "
	    "host");
	expect_err("[socks5]\nlisten = 127.0.0.1:1080\n[gateway]\n"
	    "group = nogroup\n", 4, "gateway.group: needs gateway.user");
	expect_err("[gateway]\nuser = root\n", 2, "gateway.user: \"root\" is "
	    "uid 0; name an unprivileged user, or leave the key empty to keep "
	    "running as started");
	expect_err("[gateway]\nuser = "
	    "a123456789012345678901234567890123456789012345678901234567890123"
	    "\n", 2, "gateway.user: too long (64 characters, at most 63)");
}

Test(conf, syntax_forms)
{
	/* Indented keys, a BOM, "key: value", CRLF, inline comments. */
	load_ok("\xEF\xBB\xBF[socks5]\r\n"
	    "  handshake_timeout = 7 ; comment\r\n"
	    "\tidle_timeout: 8\r\n"
	    "  [ upstream ]   ; comment\n"
	    "  connect_timeout=9\n");
	cr_assert_eq(conf.handshake_timeout, 7);
	cr_assert_eq(conf.idle_timeout, 8);
	cr_assert_eq(conf.connect_timeout, 9);
	/* A ';' not after a blank is part of the value. */
	load_ok("[convert]\ncookie = a;b\n");
	cr_assert_str_eq(conf.convert_cookie, "a;b");
	load_ok("[convert]\ncookie = ; nothing\n");
	cr_assert_str_eq(conf.convert_cookie, "");
}

Test(conf, unreadable_file)
{
	cr_assert_eq(conf_load(&conf, "/nonexistent/mpgw.ini", err,
	    sizeof(err)), -1);
	cr_assert_str_eq(err, "/nonexistent/mpgw.ini: No such file or "
	    "directory");
	cr_assert_eq(conf_load(&conf, "/tmp", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "/tmp: read error: Is a directory");
}

Test(conf, error_unknown_section)
{
	expect_err("[gateway]\nworkers = 2\n\n[socks]\n", 4,
	    "[socks]: unknown section (gateway, socks5, tls, auth, convert, "
	    "upstream, metrics, state or rule.NAME)");
	/* Found even with no keys in it. */
	expect_err("[tls]\n[nope]\n[auth]\n", 2,
	    "[nope]: unknown section (gateway, socks5, tls, auth, convert, "
	    "upstream, metrics, state or rule.NAME)");
}

Test(conf, error_unknown_key)
{
	expect_err("[socks5]\nlisten = 127.0.0.1:1080\nlisen = 1\n", 3,
	    "socks5.lisen: unknown key");
	/* A key of another section is unknown here. */
	expect_err("[tls]\n\nmptcp = on\n", 3, "tls.mptcp: unknown key");
	expect_err("[rule.a]\naction = deny\nport = 1\nports = 2\n", 4,
	    "rule.a.ports: unknown key");
}

Test(conf, error_bad_value)
{
	expect_err("; x\n[gateway]\n\n\n\n[socks5]\nhandshake_timeout = abc\n",
	    7,
	    "socks5.handshake_timeout: \"abc\" is not a duration (1..3600 s)");
	expect_err("[upstream]\nmptcp = maybe\n", 2,
	    "upstream.mptcp: \"maybe\" "
	    "is not a boolean (yes/no, on/off, true/false, 1/0)");
}

Test(conf, error_key_twice)
{
	expect_err("[upstream]\nrelay = buffer\nmptcp = on\nrelay = splice\n",
	    4, "upstream.relay: given twice (first at line 2)");
	/* The same key in two rules is fine; twice in one rule is not. */
	load_ok("[rule.a]\naction = deny\n[rule.b]\naction = allow\n");
	expect_err("[rule.a]\naction = deny\naction = allow\n", 3,
	    "rule.a.action: given twice (first at line 2)");
}

Test(conf, error_section_twice)
{
	expect_err("[socks5]\nidle_timeout = 1\n[tls]\n[socks5]\n", 4,
	    "[socks5]: section given twice (first at line 1)");
	expect_err("[rule.x]\naction = deny\n[rule.x]\naction = deny\n", 3,
	    "[rule.x]: rule given twice (first at line 1)");
}

Test(conf, error_rule_without_action)
{
	/* Reported at the rule's header, wherever the rule ends. */
	expect_err(
	    "[gateway]\n[rule.r1]\nport = 80\n\n[upstream]\nmptcp = on\n", 2,
	    "[rule.r1]: action is required (allow or deny)");
	expect_err("[rule.ok]\naction = allow\n[rule.last]\nport = 80\n", 3,
	    "[rule.last]: action is required (allow or deny)");
	expect_err("[rule.empty]\n", 1,
	    "[rule.empty]: action is required (allow or deny)");
}

Test(conf, error_bad_rule_name)
{
	expect_err("[rule.]\n", 1, "[rule.]: a rule name is 1..63 letters, "
	    "digits, '-' or '_'");
	expect_err("[socks5]\n[rule.a b]\n", 2, "[rule.a b]: a rule name is "
	    "1..63 letters, digits, '-' or '_'");
	expect_err("[rule]\n", 1, "[rule]: unknown section (gateway, socks5, "
	    "tls, auth, convert, upstream, metrics, state or rule.NAME)");
}

Test(conf, rules_up_to_the_limit)
{
	char text[16384] = "";
	int n = 0;

	for (int i = 0; i < CONF_MAX_RULES; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		    "[rule.r%d]\naction = %s\n", i, i % 2 ? "allow" : "deny");
	load_ok(text);
	cr_assert_eq(conf.n_rules, CONF_MAX_RULES);
	cr_assert_str_eq(conf.rules[63].name, "r63");
	cr_assert_eq(conf.rules[63].line, 127);
	snprintf(text + n, sizeof(text) - (size_t)n,
	    "\n[rule.one-too-many]\naction = deny\n");
	expect_err(text, 2 * CONF_MAX_RULES + 2,
	    "[rule.one-too-many]: more than 64 rules");
}

Test(conf, error_key_outside_section)
{
	expect_err("; comment\nworkers = 2\n[gateway]\n", 2,
	    "workers: key outside a section (add a [section] line above it)");
}

Test(conf, error_syntax)
{
	expect_err("[gateway]\nworkers = 2\njust words\n", 3,
	    "expected \"key = value\" or \"[section]\"");
	expect_err("[gateway]\n= 2\n", 2, "missing key name before '='");
	expect_err(
	    "[gateway\nworkers = 2\n", 1, "missing ']' in section header");
	expect_err("\n[gateway] workers = 2\n", 2,
	    "unexpected text after section header");
}

Test(conf, error_line_too_long)
{
	char text[512];

	/* 199 characters is inih's limit and still loads. */
	snprintf(text, sizeof(text), "[convert]\ncookie = %0190d\n", 0);
	cr_assert_eq(strlen(strchr(text, '\n') + 1), 200);
	load_ok(text);
	cr_assert_eq(strlen(conf.convert_cookie), 190);
	snprintf(text, sizeof(text), "[convert]\ncookie = %0191d\n", 0);
	expect_err(text, 2, "line too long (at most 199 characters)");
}

Test(conf, error_nul_byte)
{
	static const char text[] = "[gateway]\nwork\0ers = 2\n";

	cr_assert_eq(load_bytes(text, sizeof(text) - 1), -1);
	cr_assert(strstr(err, ":2: NUL byte in line") != NULL, "%s", err);
}

Test(conf, stops_at_first_error)
{
	expect_err("[socks5]\nhandshake_timeout = 0\n[bogus]\nfoo\n", 2,
	    "socks5.handshake_timeout: \"0\" is out of range (1..3600 s)");
	expect_err("[socks5]\nfoo\nhandshake_timeout = 0\n", 2,
	    "expected \"key = value\" or \"[section]\"");
}

Test(conf, cross_check_tls_needs_cert)
{
	expect_err("[socks5]\n\nmethods = none, tls\n", 3,
	    "socks5.methods: tls needs tls.cert and tls.key");
	expect_err("[socks5]\nmethods = tls-login\n[auth]\nusers = u\n", 2,
	    "socks5.methods: tls-login needs tls.cert and tls.key");
	expect_err("[tls]\nlisten = 127.0.0.1:1443\n", 2,
	    "tls.listen: needs tls.cert and tls.key");
	expect_err("[tls]\ncert = c.pem\n", 2, "tls.cert: needs tls.key too");
	expect_err("[tls]\n\nkey = k.pem\n", 3, "tls.key: needs tls.cert too");
	load_ok("[tls]\nlisten = 127.0.0.1:1443\ncert = c\nkey = k\n");
}

Test(conf, cross_check_client_cert_needs_ca)
{
	expect_err("[tls]\ncert = c\nkey = k\nrequire_client_cert = yes\n", 4,
	    "tls.require_client_cert: needs tls.client_ca");
	load_ok("[tls]\ncert = c\nkey = k\nrequire_client_cert = yes\n"
	    "client_ca = ca\n");
}

Test(conf, cross_check_passwords_need_users)
{
	expect_err("[socks5]\nmethods = userpass\n", 2,
	    "socks5.methods: userpass needs auth.users");
	expect_err(
	    "[tls]\ncert = c\nkey = k\n[socks5]\nmethods = tls-userpass\n", 5,
	    "socks5.methods: tls-userpass needs auth.users");
	expect_err("[tls]\ncert = c\nkey = k\n[socks5]\nmethods = tls-login\n",
	    5, "socks5.methods: tls-login needs auth.users or tls.client_ca");
	load_ok("[tls]\ncert = c\nkey = k\nclient_ca = ca\n"
	    "[socks5]\nmethods = tls-login\n");
	load_ok("[auth]\nusers = u\n[socks5]\nmethods = userpass\n");
}

Test(conf, cross_check_convert_needs_keys)
{
	expect_err("[convert]\nlisten = 127.0.0.1:5124\n", 2,
	    "convert.listen: needs convert.keys (or convert.require_auth = "
	    "no)");
	load_ok("[convert]\nlisten = 127.0.0.1:5124\nrequire_auth = no\n");
	load_ok("[convert]\nlisten = 127.0.0.1:5124\nkeys = k\n");
	/* Without a listener the keys are not needed. */
	load_ok("[convert]\nrequire_auth = yes\n");
}

Test(conf, cross_check_proxy_protocol_needs_proxy_from)
{
	expect_err("[socks5]\n\nproxy_protocol = yes\n", 3,
	    "socks5.proxy_protocol: needs gateway.proxy_from (the balancers "
	    "that may send the header)");
	expect_err("[gateway]\nproxy_from =\n[tls]\ncert = c\nkey = k\n"
	    "listen = 127.0.0.1:1443\nproxy_protocol = yes\n", 7,
	    "tls.proxy_protocol: needs gateway.proxy_from (the balancers "
	    "that may send the header)");
	expect_err("[convert]\nkeys = k\nlisten = 127.0.0.1:5124\n"
	    "proxy_protocol = yes\n", 4, "convert.proxy_protocol: needs "
	    "gateway.proxy_from (the balancers that may send the header)");
	expect_err("[gateway]\nproxy_from = 10.0.0.0/33\n", 2,
	    "gateway.proxy_from: \"10.0.0.0/33\" is not an address prefix "
	    "(e.g. 10.0.0.0/8, 192.0.2.1, fe80::/10)");
	load_ok("[gateway]\nproxy_from = 127.0.0.1\n[socks5]\n"
	    "proxy_protocol = yes\n");
	cr_assert(conf.socks5_proxy_protocol);
	/* proxy_from alone is harmless: no listener expects a header. */
	load_ok("[gateway]\nproxy_from = 10.0.0.5\n");
	/* The check that a reload runs on the live listeners' setting. */
	conf.n_proxy_from = 0;
	cr_assert_eq(conf_check_proxy_from(&conf, err, sizeof(err)), 0);
	conf.convert_proxy_protocol = true;
	cr_assert_eq(conf_check_proxy_from(&conf, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "convert.proxy_protocol: needs "
	    "gateway.proxy_from (the balancers that may send the header)");
}

Test(conf, cross_check_needs_a_listener)
{
	expect_err("[socks5]\nlisten =\n", 2, "no listener: set socks5.listen, "
	    "tls.listen or convert.listen");
	load_ok("[socks5]\nlisten =\n[convert]\nlisten = 127.0.0.1:5124\n"
	    "keys = k\n");
	cr_assert_eq(conf.socks5_listen.n, 0);
}

Test(conf, cross_check_listeners_differ)
{
	expect_err("[tls]\ncert = c\nkey = k\nlisten = 127.0.0.1:1080\n", 4,
	    "tls.listen: 127.0.0.1:1080 is also in socks5.listen");
	expect_err(
	    "[convert]\nkeys = k\nlisten = 127.0.0.2:1, 127.0.0.1:1080\n", 3,
	    "convert.listen: 127.0.0.1:1080 is also in socks5.listen");
	expect_err("[socks5]\nlisten = [::1]:1\n[tls]\ncert = c\nkey = k\n"
	    "listen = [::1]:2\n[convert]\nkeys = k\nlisten = [::1]:2\n", 9,
	    "convert.listen: [::1]:2 is also in tls.listen");
}

Test(conf, metrics_listen)
{
	load_ok("[metrics]\nlisten = 127.0.0.1:9464\n");
	cr_assert_str_eq(conf.metrics_listen.text, "127.0.0.1:9464");
	cr_assert_eq(conf.metrics_listen.len, sizeof(struct sockaddr_in));
	load_ok("[metrics]\nlisten =\n");
	cr_assert_eq(conf.metrics_listen.len, 0);
	/* Not a client listener: no login needed off loopback. */
	load_ok("[metrics]\nlisten = 0.0.0.0:9464\n");
	expect_err("[metrics]\nlisten = 127.0.0.1:1, 127.0.0.1:2\n", 2,
	    "metrics.listen: \"127.0.0.1:1, 127.0.0.1:2\" is not an address "
	    "(IPv4:port or [IPv6]:port, numeric, port 1..65535; one "
	    "address)");
	expect_err("[metrics]\nlisten = localhost:9464\n", 2,
	    "metrics.listen: \"localhost:9464\" is not an address (IPv4:port "
	    "or [IPv6]:port, numeric, port 1..65535; one address)");
	expect_err("[metrics]\nlisten = 127.0.0.1:0\n", 2,
	    "metrics.listen: \"127.0.0.1:0\" is not an address (IPv4:port or "
	    "[IPv6]:port, numeric, port 1..65535; one address)");
	expect_err("[metrics]\nlisten = 127.0.0.1:9464\nlisten = "
	    "127.0.0.1:9465\n", 3, "metrics.listen: given twice (first at "
	    "line 2)");
	expect_err("[socks5]\nlisten = 127.0.0.1:1080\n\n[metrics]\n"
	    "listen = 127.0.0.1:1080\n", 5, "metrics.listen: 127.0.0.1:1080 "
	    "is also in socks5.listen");
	expect_err("[metrics]\nlisten = [::1]:7\n[convert]\nkeys = k\n"
	    "listen = [::1]:7\n", 2, "metrics.listen: [::1]:7 is also in "
	    "convert.listen");
	expect_err("[metrics]\nport = 1\n", 2, "metrics.port: unknown key");
}

Test(conf, cross_check_open_proxy)
{
	const char *want = "socks5.listen: 0.0.0.0:1080 is not loopback and "
	    "socks5.methods lets clients in without a login; set "
	    "gateway.allow_open_proxy = yes to run an open proxy";

	expect_err("[socks5]\nlisten = 127.0.0.1:1, 0.0.0.0:1080\n", 2, want);
	load_ok("[gateway]\nallow_open_proxy = yes\n"
	    "[socks5]\nlisten = 0.0.0.0:1080\n");
	load_ok("[auth]\nusers = u\n[socks5]\nlisten = 0.0.0.0:1080\n"
	    "methods = userpass\n");
	load_ok(
	    "[socks5]\nlisten = 127.0.0.9:1, [::1]:1, [::ffff:127.0.0.1]:2\n");
	expect_err("[tls]\ncert = c\nkey = k\n[socks5]\nlisten = [::]:1\n"
	    "methods = tls\n", 5, "socks5.listen: [::]:1 is not loopback and "
	    "socks5.methods lets clients in without a login; set "
	    "gateway.allow_open_proxy = yes to run an open proxy");
	/* TLS with a verified client certificate is a login. */
	load_ok(
	    "[tls]\ncert = c\nkey = k\nclient_ca = ca\nrequire_client_cert = "
	    "yes\nlisten = 192.0.2.1:443\n[socks5]\nmethods = tls\n");
	expect_err("[tls]\ncert = c\nkey = k\nlisten = 192.0.2.1:443\n", 4,
	    "tls.listen: 192.0.2.1:443 is not loopback and socks5.methods lets "
	    "clients in without a login; set gateway.allow_open_proxy = yes "
	    "to run an open proxy");
	expect_err("[convert]\nrequire_auth = no\nlisten = 192.0.2.1:5124\n", 3,
	    "convert.listen: 192.0.2.1:5124 is not loopback and "
	    "convert.require_auth = no; set gateway.allow_open_proxy = yes to "
	    "run an open proxy");
	load_ok("[convert]\nkeys = k\nlisten = 192.0.2.1:5124\n");
}

Test(conf, type_bool)
{
	static const char *const yes[] = { "yes", "on", "true", "1", "YES",
	    "On", "TRUE" };
	static const char *const no[] = { "no", "off", "false", "0", "No" };
	static const char *const bad[] = { "2", "y", "n", "yess", "" };
	char text[128], msg[256];

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		snprintf(text, sizeof(text),
		    "[upstream]\nmptcp = off\n"
		    "[tls]\nrequire_client_cert = %s\nclient_ca = ca\n",
		    yes[i]);
		load_ok(text);
		cr_assert(conf.tls_require_client_cert, "%s", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		snprintf(text, sizeof(text), "[upstream]\nmptcp = %s\n", no[i]);
		load_ok(text);
		cr_assert_not(conf.upstream_mptcp, "%s", no[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[auth]\nallow_cleartext_password "
		    "= %s\n", bad[i]);
		snprintf(msg, sizeof(msg), "auth.allow_cleartext_password: "
		    "\"%s\" is not a boolean (yes/no, on/off, true/false, 1/0)",
		    bad[i]);
		expect_err(text, 2, msg);
	}
}

Test(conf, type_unsigned_edges)
{
	load_ok("[gateway]\nmax_sessions = 0\nmax_per_source = 1000000\n");
	cr_assert_eq(conf.max_sessions, 0);
	cr_assert_eq(conf.max_per_source, 1000000);
	expect_err("[gateway]\nmax_sessions = 1000001\n", 2, "gateway."
	    "max_sessions: \"1000001\" is out of range (0..1000000)");
	load_ok("[upstream]\ndns_per_source = 0\n");
	cr_assert_eq(conf.dns_per_source, 0);
	load_ok("[upstream]\ndns_per_source = 1000000\n");
	cr_assert_eq(conf.dns_per_source, 1000000);
	expect_err("[upstream]\ndns_per_source = 1000001\n", 2, "upstream."
	    "dns_per_source: \"1000001\" is out of range (0..1000000)");
	load_ok("[upstream]\nbuffer_size = 4096\n");
	cr_assert_eq(conf.buffer_size, 4096);
	load_ok("[upstream]\nbuffer_size = 4194304\n");
	cr_assert_eq(conf.buffer_size, 4194304);
	cr_assert_eq(conf.buffer_max, 4194304, "raised to buffer_size");
	load_ok("[upstream]\nbuffer_max = 16777216\n");
	cr_assert_eq(conf.buffer_max, 16777216);
	expect_err("[upstream]\nbuffer_size = 65536\nbuffer_max = 16384\n", 3,
	    "upstream.buffer_max: 16384 is below upstream.buffer_size (65536)");
	expect_err("[upstream]\nbuffer_size = 4095\n", 2,
	    "upstream.buffer_size: "
	    "\"4095\" is out of range (4096..4194304)");
	expect_err("[upstream]\nbuffer_size = 4194305\n", 2, "upstream."
	    "buffer_size: \"4194305\" is out of range (4096..4194304)");
	expect_err("[upstream]\nbuffer_size = 99999999999999999999999999\n", 2,
	    "upstream.buffer_size: \"99999999999999999999999999\" is out of "
	    "range (4096..4194304)");
	expect_err("[auth]\nfail_limit = -1\n", 2, "auth.fail_limit: \"-1\" is "
	    "not a number (0..1000)");
	expect_err("[auth]\nfail_limit = +1\n", 2, "auth.fail_limit: \"+1\" is "
	    "not a number (0..1000)");
	expect_err("[auth]\nfail_limit = 0x10\n", 2,
	    "auth.fail_limit: \"0x10\" "
	    "is not a number (0..1000)");
	expect_err("[auth]\nfail_limit =\n", 2,
	    "auth.fail_limit: \"\" is not a "
	    "number (0..1000)");
	load_ok("[auth]\nfail_limit = 1000\n");
	cr_assert_eq(conf.fail_limit, 1000);
	expect_err("[auth]\nfail_limit = 1001\n", 2,
	    "auth.fail_limit: \"1001\" "
	    "is out of range (0..1000)");
}

Test(conf, type_duration_edges)
{
	static const struct {
		const char *v;
		unsigned want;
	} ok[] = {
		{ "1", 1 }, { "3600", 3600 }, { "1s", 1 }, { "3600s", 3600 },
		{ "60m", 3600 }, { "1h", 3600 }, { "2m", 120 }, { "007", 7 },
	};
	static const char *const range[] = { "0", "3601", "61m", "2h", "0s",
	    "99999999999999999999h" };
	static const char *const bad[] = { "abc", "", "s", "1d", "1 s", "1.5",
	    "-1", "1hs", "1H" };
	char text[128], msg[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text),
		    "[socks5]\nhandshake_timeout = %s\n", ok[i].v);
		load_ok(text);
		cr_assert_eq(conf.handshake_timeout, ok[i].want, "%s", ok[i].v);
	}
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		snprintf(text, sizeof(text),
		    "[socks5]\nhandshake_timeout = %s\n", range[i]);
		snprintf(msg, sizeof(msg),
		    "socks5.handshake_timeout: \"%s\" is "
		    "out of range (1..3600 s)",
		    range[i]);
		expect_err(text, 2, msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		    "[socks5]\nhandshake_timeout = %s\n", bad[i]);
		snprintf(msg, sizeof(msg),
		    "socks5.handshake_timeout: \"%s\" is "
		    "not a duration (1..3600 s)",
		    bad[i]);
		expect_err(text, 2, msg);
	}
	load_ok("[socks5]\nidle_timeout = 0\n");
	cr_assert_eq(conf.idle_timeout, 0);
	load_ok("[socks5]\nidle_timeout = 168h\n");
	cr_assert_eq(conf.idle_timeout, 604800);
	expect_err("[socks5]\nidle_timeout = 604801\n", 2,
	    "socks5.idle_timeout: "
	    "\"604801\" is out of range (0..604800 s)");
	load_ok("[auth]\nfail_delay_max = 60\nfail_block = 24h\n");
	expect_err("[auth]\nfail_delay_max = 61\n", 2, "auth.fail_delay_max: "
	    "\"61\" is out of range (0..60 s)");
	expect_err("[convert]\nmax_skew = 0\n", 2, "convert.max_skew: \"0\" is "
	    "out of range (1..3600 s)");
}

Test(conf, type_string_edges)
{
	expect_err("[gateway]\naccess_log =\n", 2,
	    "gateway.access_log: must not be empty");
	load_ok("[gateway]\naccess_log = off\n");
	cr_assert_str_eq(conf.access_log, "off");
	load_ok("[gateway]\naccess_log = relative/log file.txt\n");
	cr_assert_str_eq(conf.access_log, "relative/log file.txt");
	/* Paths need not exist: only the syntax is checked here. */
	load_ok("[auth]\nusers = /nonexistent/users\n");
	load_ok("[convert]\ncookie =\n");
}

Test(conf, type_workers_edges)
{
	load_ok("[gateway]\nworkers = auto\n");
	cr_assert_eq(conf.workers, 0);
	load_ok("[gateway]\nworkers = 1\n");
	cr_assert_eq(conf.workers, 1);
	load_ok("[gateway]\nworkers = 256\n");
	cr_assert_eq(conf.workers, 256);
	expect_err("[gateway]\nworkers = 257\n", 2,
	    "gateway.workers: \"257\" is "
	    "not \"auto\" or a number (1..256)");
	expect_err("[gateway]\nworkers = 0\n", 2,
	    "gateway.workers: \"0\" is not "
	    "\"auto\" or a number (1..256)");
	expect_err("[gateway]\nworkers = AUTO\n", 2,
	    "gateway.workers: \"AUTO\" "
	    "is not \"auto\" or a number (1..256)");
}

Test(conf, type_enums)
{
	static const char *const lv[] = { "error", "warn", "info", "debug" };
	char text[64];

	for (size_t i = 0; i < 4; i++) {
		snprintf(
		    text, sizeof(text), "[gateway]\nlog_level = %s\n", lv[i]);
		load_ok(text);
		cr_assert_eq(conf.log_level, (int)i);
	}
	expect_err("[gateway]\nlog_level = trace\n", 2, "gateway.log_level: "
	    "\"trace\" is not a log level (error, warn, info, debug)");
	load_ok("[upstream]\nrelay = splice\n");
	cr_assert_str_eq(conf.relay, "splice");
	load_ok("[upstream]\nrelay = buffer\n");
	cr_assert_str_eq(conf.relay, "buffer");
	load_ok("[upstream]\nrelay = auto\n");
	cr_assert_str_eq(conf.relay, "auto");
	expect_err("[upstream]\nrelay = zerocopy\n", 2, "upstream.relay: "
	    "\"zerocopy\" is not a relay mode (auto, buffer, splice)");
}

Test(conf, type_methods)
{
	load_ok("[tls]\ncert = c\nkey = k\n[auth]\nusers = u\n[socks5]\n"
	    "methods = tls-login,tls-userpass , tls,userpass,none\n");
	cr_assert_eq(conf.n_methods, 5);
	cr_assert_eq(conf.methods[0], SOCKS5_METHOD_TLS_LOGIN);
	cr_assert_eq(conf.methods[1], SOCKS5_METHOD_TLS_USERPASS);
	cr_assert_eq(conf.methods[2], SOCKS5_METHOD_TLS);
	cr_assert_eq(conf.methods[3], SOCKS5_METHOD_USERPASS);
	cr_assert_eq(conf.methods[4], SOCKS5_METHOD_NONE);
	expect_err("[socks5]\nmethods = none, none\n", 2,
	    "socks5.methods: \"none\" is listed twice");
	expect_err("[socks5]\nmethods = none, gssapi\n", 2, "socks5.methods: "
	    "\"gssapi\" is not a method (none, userpass, tls, tls-userpass, "
	    "tls-login)");
	expect_err("[socks5]\nmethods =\n", 2,
	    "socks5.methods: no method given "
	    "(none, userpass, tls, tls-userpass, tls-login)");
	expect_err("[socks5]\nmethods = none,\n", 2,
	    "socks5.methods: empty item in the list");
	expect_err("[socks5]\nmethods = ,none\n", 2,
	    "socks5.methods: empty item in the list");
}

Test(conf, parse_addr_good)
{
	struct conf_addr a;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.ss;

	cr_assert_eq(conf_parse_addr("127.0.0.1:1080", &a), 0);
	cr_assert_eq(sin->sin_family, AF_INET);
	cr_assert_eq(ntohs(sin->sin_port), 1080);
	cr_assert_eq(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	cr_assert_eq(a.len, sizeof(*sin));
	cr_assert_str_eq(a.text, "127.0.0.1:1080");

	cr_assert_eq(conf_parse_addr(":8080", &a), 0);
	cr_assert_eq(sin->sin_family, AF_INET);
	cr_assert_eq(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	cr_assert_eq(ntohs(sin->sin_port), 8080);

	cr_assert_eq(conf_parse_addr("0.0.0.0:1", &a), 0);
	cr_assert_eq(conf_parse_addr("255.255.255.255:65535", &a), 0);
	cr_assert_eq(ntohs(sin->sin_port), 65535);

	cr_assert_eq(conf_parse_addr("[::1]:1080", &a), 0);
	cr_assert_eq(sin6->sin6_family, AF_INET6);
	cr_assert_eq(ntohs(sin6->sin6_port), 1080);
	cr_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	cr_assert_eq(a.len, sizeof(*sin6));
	cr_assert_str_eq(a.text, "[::1]:1080");

	cr_assert_eq(conf_parse_addr("[::]:443", &a), 0);
	cr_assert(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
	cr_assert_eq(conf_parse_addr("[2001:db8::1:2]:5124", &a), 0);
	cr_assert_eq(conf_parse_addr("[::ffff:192.0.2.1]:80", &a), 0);
	cr_assert(IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr));
	cr_assert_eq(conf_parse_addr("[ffff:ffff:ffff:ffff:ffff:ffff:255.255."
	    "255.255]:65535", &a), 0);
}

Test(conf, parse_addr_bad)
{
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:99999999", "127.0.0.1:80a", "127.0.0.1:-1",
		"127.0.0.1:+80", "127.0.0.1: 80", " 127.0.0.1:80", "::1:80",
		"[::1]80", "[::1]", "[::1]:", "[]:80", "[::1:80", "::1]:80",
		"localhost:80", "1.2.3:80", "127.1:80", "1.2.3.4.5:80",
		"256.0.0.1:80", "[1.2.3.4]:80", "[fe80::1%eth0]:80",
		"[::1]:80:80", "1.2.3.4:80:", ":", ":0",
		"[1111:2222:3333:4444:5555:6666:7777:8888:9999]:80",
		"[0000000000000000000000000000000000000000000000000000::]:80",
	};
	struct conf_addr a;
	char big[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&a, 0xa5, sizeof(a));
		cr_assert_eq(conf_parse_addr(bad[i], &a), -1, "%s", bad[i]);
		cr_assert_eq(a.len, 0, "%s", bad[i]);
	}
	/* text[80] holds 79 characters. */
	memset(big, '0', sizeof(big));
	memcpy(big, "[::", 3);
	strcpy(big + 79 - 7, "1]:1080");
	cr_assert_eq(strlen(big), 79);
	cr_assert_eq(conf_parse_addr(big, &a), -1);
}

Test(conf, address_lists)
{
	load_ok("[gateway]\nallow_open_proxy = yes\n[socks5]\nlisten = "
	    "1.1.1.1:1,1.1.1.1:2, 1.1.1.1:3 ,[::1]:4,:5,[::]:6,10.0.0.1:7,"
	    "10.0.0.1:8\n");
	cr_assert_eq(conf.socks5_listen.n, CONF_MAX_LISTEN);
	cr_assert_str_eq(conf.socks5_listen.a[2].text, "1.1.1.1:3");
	cr_assert_str_eq(conf.socks5_listen.a[7].text, "10.0.0.1:8");
	expect_err("[socks5]\nlisten = 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,"
	    "127.0.0.1:4,127.0.0.1:5,127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,"
	    "127.0.0.1:9\n", 2, "socks5.listen: more than 8 addresses");
	expect_err("[socks5]\nlisten = 127.0.0.1:1, ::1:80\n", 2,
	    "socks5.listen: \"::1:80\" is not an address (IPv4:port or "
	    "[IPv6]:port, numeric, port 1..65535)");
	expect_err("[socks5]\nlisten = localhost:1080\n", 2,
	    "socks5.listen: \"localhost:1080\" is not an address (IPv4:port or "
	    "[IPv6]:port, numeric, port 1..65535)");
	expect_err("[socks5]\nlisten = 127.0.0.1:1, 127.0.0.1:1\n", 2,
	    "socks5.listen: \"127.0.0.1:1\" is listed twice");
	expect_err("[socks5]\nlisten = 127.0.0.1:1,,127.0.0.1:2\n", 2,
	    "socks5.listen: empty item in the list");
	/* Empty means no listener of that kind. */
	load_ok("[socks5]\nlisten = [::1]:1080\n[tls]\nlisten =\n");
	cr_assert_eq(conf.tls_listen.n, 0);
	cr_assert_eq(conf.socks5_listen.n, 1);
}

Test(conf, udp_public_address)
{
	load_ok("[socks5]\nudp_public_address = 198.51.100.1\n");
	cr_assert_str_eq(conf.udp_public4.text, "198.51.100.1");
	cr_assert_eq(conf.udp_public4.len, sizeof(struct sockaddr_in));
	cr_assert_eq(conf.udp_public6.len, 0);
	load_ok("[socks5]\nudp_public_address = 2001:db8::1\n");
	cr_assert_eq(conf.udp_public4.len, 0);
	cr_assert_eq(conf.udp_public6.len, sizeof(struct sockaddr_in6));
	load_ok("[socks5]\nudp_public_address =\n");
	cr_assert_eq(conf.udp_public4.len + conf.udp_public6.len, 0);
	expect_err("[socks5]\nudp_public_address = 1.2.3.4, 5.6.7.8\n", 2,
	    "socks5.udp_public_address: \"5.6.7.8\": one address per family");
	expect_err("[socks5]\nudp_public_address = 1.2.3.4:80\n", 2,
	    "socks5.udp_public_address: \"1.2.3.4:80\" is not an IPv4 or "
	    "IPv6 address (numeric, no port)");
	expect_err("[socks5]\nudp_public_address = ::ffff:1.2.3.4\n", 2,
	    "socks5.udp_public_address: \"::ffff:1.2.3.4\" is not an IPv4 "
	    "or IPv6 address (numeric, no port)");
	expect_err("[socks5]\nudp_public_address = gw.example\n", 2,
	    "socks5.udp_public_address: \"gw.example\" is not an IPv4 or "
	    "IPv6 address (numeric, no port)");
	expect_err("[socks5]\nbind_timeout = 0\n", 2, "socks5.bind_timeout: "
	    "\"0\" is out of range (1..3600 s)");
	load_ok("[socks5]\nudp_idle_timeout = 0\n");
	cr_assert_eq(conf.udp_idle_timeout, 0);
}

Test(conf, parse_cidr)
{
	struct conf_cidr c;
	static const uint8_t net10[4] = { 10, 0, 0, 0 };
	static const uint8_t v6[16] = { 0xfe, 0x80 };
	static const char *const bad[] = { "", "/8", "10.0.0.0/", "10.0.0.0/33",
	    "::/129", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "10/8",
	    "10.0.0.0/0008", "example.com", "[::1]", "::1/1 ", "10.0.0.0/a",
	    "1.2.3.4:80" };

	cr_assert_eq(conf_parse_cidr("10.0.0.0/8", &c), 0);
	cr_assert_eq(c.family, AF_INET);
	cr_assert_eq(c.plen, 8);
	cr_assert_arr_eq(c.addr, net10, 4);
	/* Host bits are cleared. */
	cr_assert_eq(conf_parse_cidr("10.1.2.3/8", &c), 0);
	cr_assert_arr_eq(c.addr, net10, 4);
	cr_assert_eq(conf_parse_cidr("192.0.2.1", &c), 0);
	cr_assert_eq(c.plen, 32);
	cr_assert_eq(conf_parse_cidr("0.0.0.0/0", &c), 0);
	cr_assert_eq(c.plen, 0);
	cr_assert_eq(conf_parse_cidr("10.0.0.0/32", &c), 0);
	cr_assert_eq(conf_parse_cidr("fe80::1/10", &c), 0);
	cr_assert_eq(c.family, AF_INET6);
	cr_assert_eq(c.plen, 10);
	cr_assert_arr_eq(c.addr, v6, 16);
	cr_assert_eq(conf_parse_cidr("::1", &c), 0);
	cr_assert_eq(c.plen, 128);
	cr_assert_eq(conf_parse_cidr("::/0", &c), 0);
	cr_assert_eq(conf_parse_cidr("::/128", &c), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(conf_parse_cidr(bad[i], &c), -1, "%s", bad[i]);
}

/* Fill *sin with a.b.c.d. */
static const struct sockaddr *
v4(struct sockaddr_in *sin, const char *a)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	cr_assert_eq(inet_pton(AF_INET, a, &sin->sin_addr), 1);
	return (const struct sockaddr *)sin;
}

/* Fill *sin6 with an IPv6 address. */
static const struct sockaddr *
v6(struct sockaddr_in6 *sin6, const char *a)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	cr_assert_eq(inet_pton(AF_INET6, a, &sin6->sin6_addr), 1);
	return (const struct sockaddr *)sin6;
}

/* conf_cidr_match() for a prefix given as text. */
static bool
match(const char *cidr, const struct sockaddr *sa)
{
	struct conf_cidr c;

	cr_assert_eq(conf_parse_cidr(cidr, &c), 0, "%s", cidr);
	return conf_cidr_match(&c, sa);
}

Test(conf, cidr_match)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr sun = { .sa_family = AF_UNIX };

	cr_assert(match("10.0.0.0/8", v4(&sin, "10.255.1.2")));
	cr_assert_not(match("10.0.0.0/8", v4(&sin, "11.0.0.0")));
	cr_assert(match("172.16.0.0/12", v4(&sin, "172.31.255.255")));
	cr_assert_not(match("172.16.0.0/12", v4(&sin, "172.32.0.0")));
	cr_assert(match("192.0.2.1", v4(&sin, "192.0.2.1")));
	cr_assert_not(match("192.0.2.1", v4(&sin, "192.0.2.2")));
	cr_assert(match("0.0.0.0/0", v4(&sin, "203.0.113.9")));

	cr_assert(match("fe80::/10", v6(&sin6, "febf::1")));
	cr_assert_not(match("fe80::/10", v6(&sin6, "fec0::1")));
	cr_assert(match("::1", v6(&sin6, "::1")));
	cr_assert_not(match("::1", v6(&sin6, "::2")));
	cr_assert(match("::/0", v6(&sin6, "2001:db8::1")));

	/* An IPv4 prefix applies to IPv4-mapped IPv6 addresses too. */
	cr_assert(match("127.0.0.0/8", v6(&sin6, "::ffff:127.0.0.1")));
	cr_assert_not(match("127.0.0.0/8", v6(&sin6, "::ffff:128.0.0.1")));
	cr_assert(match("0.0.0.0/0", v6(&sin6, "::ffff:1.2.3.4")));
	cr_assert_not(match("0.0.0.0/0", v6(&sin6, "::1")));
	cr_assert_not(match("0.0.0.0/0", v6(&sin6, "::7f00:1")));
	/* An IPv6 prefix does not match IPv4 addresses. */
	cr_assert_not(match("::/0", v4(&sin, "1.2.3.4")));
	cr_assert_not(match("::ffff:0:0/96", v4(&sin, "1.2.3.4")));
	cr_assert(match("::ffff:0:0/96", v6(&sin6, "::ffff:1.2.3.4")));
	cr_assert_not(match("0.0.0.0/0", &sun));
	cr_assert_not(match("::/0", &sun));
}

Test(conf, rules_in_order)
{
	const struct conf_rule *r;

	load_ok("[rule.first]\n"
	    "action = deny\n"
	    "dest = 127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10\n"
	    "\n"
	    "[socks5]\n"
	    "idle_timeout = 1\n"
	    "[rule.second]\n"
	    "command = bind, udp\n"
	    "action = allow\n"
	    "client = 10.0.0.0/8 , 2001:db8::/32\n"
	    "user = alice, bob smith,carol\n"
	    "domain = .Example.COM, internal, a-b_c.d9\n"
	    "port = 80, 8000-8080, 1-65535, 65535\n"
	    "[rule.third]\n"
	    "action = deny\n"
	    "client =\n"
	    "command = connect,connect\n");
	cr_assert_eq(conf.n_rules, 3);
	r = &conf.rules[0];
	cr_assert_str_eq(r->name, "first");
	cr_assert_eq(r->line, 1);
	cr_assert_eq(r->action, CONF_DENY);
	cr_assert_eq(r->n_dst, 4);
	cr_assert_eq(r->dst[1].family, AF_INET6);
	cr_assert_eq(r->dst[3].plen, 10);
	cr_assert_eq(r->n_client + r->n_user + r->n_domain + r->n_port, 0);
	cr_assert_eq(r->commands, 0);

	r = &conf.rules[1];
	cr_assert_str_eq(r->name, "second");
	cr_assert_eq(r->line, 7);
	cr_assert_eq(r->action, CONF_ALLOW);
	cr_assert_eq(r->commands, (1 << SOCKS5_CMD_BIND) |
	    (1 << SOCKS5_CMD_UDP_ASSOCIATE));
	cr_assert_eq(r->n_client, 2);
	cr_assert_eq(r->client[1].plen, 32);
	cr_assert_eq(r->n_user, 3);
	cr_assert_str_eq(r->user[0], "alice");
	cr_assert_str_eq(r->user[1], "bob smith");
	cr_assert_str_eq(r->user[2], "carol");
	cr_assert_eq(r->n_domain, 3);
	cr_assert_str_eq(r->domain[0], "example.com");
	cr_assert_str_eq(r->domain[1], "internal");
	cr_assert_str_eq(r->domain[2], "a-b_c.d9");
	cr_assert_eq(r->n_port, 4);
	cr_assert_eq(r->port_lo[0], 80);
	cr_assert_eq(r->port_hi[0], 80);
	cr_assert_eq(r->port_lo[1], 8000);
	cr_assert_eq(r->port_hi[1], 8080);
	cr_assert_eq(r->port_lo[2], 1);
	cr_assert_eq(r->port_hi[2], 65535);
	cr_assert_eq(r->port_lo[3], 65535);

	r = &conf.rules[2];
	cr_assert_str_eq(r->name, "third");
	cr_assert_eq(r->line, 14);
	cr_assert_eq(r->n_client, 0);
	cr_assert_eq(r->commands, 1 << SOCKS5_CMD_CONNECT);
}

Test(conf, rule_bad_values)
{
	static const struct {
		const char *line;
		const char *msg;
	} bad[] = {
		{ "action = permit",
		    "rule.r.action: \"permit\" is not an action "
		    "(allow, deny)" },
		{ "action = Allow",
		    "rule.r.action: \"Allow\" is not an action "
		    "(allow, deny)" },
		{ "port = 0",
		    "rule.r.port: \"0\" is not a port or range (N or "
		    "N-M, 1..65535)" },
		{ "port = 65536",
		    "rule.r.port: \"65536\" is not a port or range "
		    "(N or N-M, 1..65535)" },
		{ "port = 90-80",
		    "rule.r.port: \"90-80\" is not a port or range "
		    "(N or N-M, 1..65535)" },
		{ "port = 1-65536",
		    "rule.r.port: \"1-65536\" is not a port or "
		    "range (N or N-M, 1..65535)" },
		{ "port = 80-",
		    "rule.r.port: \"80-\" is not a port or range (N "
		    "or N-M, 1..65535)" },
		{ "port = http",
		    "rule.r.port: \"http\" is not a port or range (N "
		    "or N-M, 1..65535)" },
		{ "command = udp-associate",
		    "rule.r.command: \"udp-associate\" "
		    "is not a command (connect, bind, udp)" },
		{ "domain = a..b",
		    "rule.r.domain: \"a..b\" is not a domain "
		    "name" },
		{ "domain = .", "rule.r.domain: \".\" is not a domain name" },
		{ "domain = ..x",
		    "rule.r.domain: \"..x\" is not a domain name" },
		{ "domain = x.", "rule.r.domain: \"x.\" is not a domain name" },
		{ "domain = *.x",
		    "rule.r.domain: \"*.x\" is not a domain name" },
		{ "dest = 10.0.0.0/33",
		    "rule.r.dest: \"10.0.0.0/33\" is not an "
		    "address prefix (e.g. 10.0.0.0/8, 192.0.2.1, fe80::/10)" },
		{ "client = any",
		    "rule.r.client: \"any\" is not an address "
		    "prefix (e.g. 10.0.0.0/8, 192.0.2.1, fe80::/10)" },
		{ "user = a,,b", "rule.r.user: empty item in the list" },
		{ "user = 0123456789012345678901234567890123456789012345678901"
		  "234567890123",
		    "rule.r.user: \"01234567890123456789...\" is "
		    "too long (at most 63 characters)" },
	};
	char text[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[rule.r]\naction = deny\n\n%s\n",
		    bad[i].line);
		if (strncmp(bad[i].line, "action", 6) == 0)
			snprintf(text, sizeof(text), "[rule.r]\n\n\n%s\n",
			    bad[i].line);
		expect_err(text, 4, bad[i].msg);
	}
}

Test(conf, rule_list_limits)
{
	char text[2048], item[32], msg[64];
	int n;

	/* 16 items load, the 17th is refused, in every list. */
	static const char *const keys[] = { "client", "dest", "user", "domain",
	    "port" };

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		n = snprintf(text, sizeof(text),
		    "[rule.r]\naction = allow\n%s = ", keys[k]);
		for (int i = 1; i <= CONF_MAX_RULE_ITEMS; i++) {
			if (strcmp(keys[k], "client") == 0 ||
			    strcmp(keys[k], "dest") == 0)
				snprintf(item, sizeof(item), "%d.0.0.0/8", i);
			else if (strcmp(keys[k], "port") == 0)
				snprintf(item, sizeof(item), "%d", i);
			else
				snprintf(item, sizeof(item), "n%d", i);
			n += snprintf(text + n, sizeof(text) - (size_t)n,
			    "%s%s", i > 1 ? "," : "", item);
		}
		snprintf(text + n, sizeof(text) - (size_t)n, "\n");
		load_ok(text);
		snprintf(text + n, sizeof(text) - (size_t)n, ",17\n");
		snprintf(msg, sizeof(msg), "rule.r.%s: more than 16 items",
		    keys[k]);
		expect_err(text, 3, msg);
	}
}

Test(conf, state_redis)
{
	load_ok("[gateway]\n");
	cr_assert(!conf.redis.set);
	load_ok("[state]\nredis = redis://127.0.0.1:6380\n");
	cr_assert(conf.redis.set);
	cr_assert_str_eq(conf.redis.host, "127.0.0.1");
	cr_assert_eq(conf.redis.port, 6380);
	cr_assert_eq(conf.redis.db, 0);
	cr_assert_str_eq(conf.redis.password, "");
	cr_assert_str_eq(conf.redis.text, "redis://127.0.0.1:6380/0");
	load_ok("[state]\nredis = redis://redis.example.net/3\n");
	cr_assert_str_eq(conf.redis.host, "redis.example.net");
	cr_assert_eq(conf.redis.port, 6379);
	cr_assert_eq(conf.redis.db, 3);
	load_ok("[state]\nredis = redis://[::1]\n");
	cr_assert_str_eq(conf.redis.host, "::1");
	cr_assert_eq(conf.redis.port, 6379);
	cr_assert_str_eq(conf.redis.text, "redis://[::1]:6379/0");
	load_ok("[state]\nredis = redis://[2001:db8::7]:7000/15\n");
	cr_assert_str_eq(conf.redis.host, "2001:db8::7");
	cr_assert_eq(conf.redis.port, 7000);
	cr_assert_eq(conf.redis.db, 15);
	load_ok("[state]\nredis =\n");
	cr_assert(!conf.redis.set);
}

Test(conf, state_redis_credentials)
{
	load_ok("[state]\nredis = redis://:s3cret@10.0.0.5:6379/1\n");
	cr_assert_str_eq(conf.redis.user, "");
	cr_assert_str_eq(conf.redis.password, "s3cret");
	/* The text for logs has no credentials. */
	cr_assert_str_eq(conf.redis.text, "redis://10.0.0.5:6379/1");
	load_ok("[state]\nredis = redis://mpgw:p%40ss%3aw%2Fd@h:1\n");
	cr_assert_str_eq(conf.redis.user, "mpgw");
	cr_assert_str_eq(conf.redis.password, "p@ss:w/d");
	cr_assert_str_eq(conf.redis.host, "h");
	/* An unencoded '@' in the password: the last one ends it. */
	load_ok("[state]\nredis = redis://:a@b@h:1\n");
	cr_assert_str_eq(conf.redis.password, "a@b");
	cr_assert_str_eq(conf.redis.host, "h");
}

Test(conf, state_redis_errors)
{
	const char *bad = "state.redis: not redis://[[USER]:PASSWORD@]HOST"
	    "[:PORT][/DB] (HOST an IPv4 address, [IPv6] or a name)";

	expect_err("[state]\nredis = 127.0.0.1:6379\n", 2, bad);
	expect_err("[state]\nredis = rediss://h:1\n", 2, bad);
	expect_err("[state]\nredis = redis://\n", 2, bad);
	expect_err("[state]\nredis = redis://h:0\n", 2, bad);
	expect_err("[state]\nredis = redis://h:65536\n", 2, bad);
	expect_err("[state]\nredis = redis://::1:6379\n", 2, bad);
	expect_err("[state]\nredis = redis://h:1/x\n", 2, "state.redis: the "
	    "database after '/' must be a number (0..65535)");
	expect_err("[state]\nredis = redis://h:1/\n", 2, "state.redis: the "
	    "database after '/' must be a number (0..65535)");
	expect_err("[state]\nredis = redis://h:1/65536\n", 2, "state.redis: "
	    "the database after '/' must be a number (0..65535)");
	/* The password is never repeated in a message. */
	expect_err("[state]\nredis = redis://s3cret@h:1\n", 2, "state.redis: "
	    "the credentials before '@' must be USER:PASSWORD or :PASSWORD");
	expect_err("[state]\nredis = redis://:@h:1\n", 2, "state.redis: the "
	    "user or password is empty, too long or badly %-encoded");
	expect_err("[state]\nredis = redis://:a%4@h:1\n", 2, "state.redis: "
	    "the user or password is empty, too long or badly %-encoded");
	expect_err("[state]\nredis = redis://:a%00b@h:1\n", 2, "state.redis: "
	    "the user or password is empty, too long or badly %-encoded");
	expect_err("[state]\nredis = redis://h:1\nredis = redis://h:2\n", 3,
	    "state.redis: given twice (first at line 2)");
	expect_err("[state]\nhost = h\n", 2, "state.host: unknown key");
}

Test(conf, state_redis_password_file)
{
	load_ok("[state]\nredis = redis://h:1\nredis_password_file = "
	    "/etc/mpgw/redis.pass\n");
	cr_assert_str_eq(conf.redis_password_file, "/etc/mpgw/redis.pass");
	expect_err("[state]\nredis_password_file = p\n", 2,
	    "state.redis_password_file: needs state.redis");
	expect_err("[state]\nredis = redis://:pw@h:1\nredis_password_file = "
	    "p\n", 3, "state.redis_password_file: state.redis has a password "
	    "already");
}

Test(conf, via_and_early_reply)
{
	load_ok("[socks5]\nearly_reply = yes\nearly_wait = 50ms\n"
	    "[upstream]\nvia = convert://[2001:db8::1]:5124\nvia_user = e\n"
	    "via_keys = /k\nmptcp_cache_ttl = 0\n");
	cr_assert(conf.via.set);
	cr_assert_str_eq(conf.via.host, "2001:db8::1");
	cr_assert_eq(conf.via.port, 5124);
	cr_assert(conf.early_reply);
	cr_assert_eq(conf.early_wait_ms, 50);
	cr_assert_eq(conf.mptcp_cache_ttl, 0);
	load_ok("[upstream]\nvia = convert://concentrator.example:5124\n"
	    "via_user = e\nvia_keys = /k\n");
	cr_assert_str_eq(conf.via.host, "concentrator.example");
	load_ok("[socks5]\nearly_wait = 1s\n");
	cr_assert_eq(conf.early_wait_ms, 1000);
	expect_err("[upstream]\nvia = convert://h\n", 2,
	    "upstream.via: \"convert://h\" is not convert://HOST:PORT (HOST "
	    "an IPv4 address, [IPv6] or a name)");
	expect_err("[upstream]\nvia = socks5://h:1\n", 2,
	    "upstream.via: \"socks5://h:1\" is not convert://HOST:PORT (HOST "
	    "an IPv4 address, [IPv6] or a name)");
	expect_err("[upstream]\nvia_user = e\n", 2,
	    "upstream.via_user: needs upstream.via");
	expect_err("[socks5]\nearly_reply = yes\n", 2,
	    "socks5.early_reply: needs upstream.via");
	expect_err("[socks5]\nearly_wait = 2s\n", 2,
	    "socks5.early_wait: \"2s\" is out of range (0..1000 ms)");
}
