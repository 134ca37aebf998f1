/*
 * Access rules: each matcher alone and combined, first match wins, deny by
 * user, client, destination, port, domain suffix and command, IPv4-mapped
 * addresses, and the built-in protection of loopback, link-local and the
 * gateway's own addresses. Rules come from real config text through
 * conf_load_stream().
 *
 * Own addresses as the kernel routes them (issue 8, defect 6) are tested
 * in a fresh network namespace per test (tests/unit/netns.h): an address
 * added after the first check, an AnyIP local route, non-local routes,
 * checks on many threads, and failing closed.
 */
#include "auth/rules.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "lib/log.h"
#include "proto/socks5.h"

#include "netns.h"

#define CONNECT SOCKS5_CMD_CONNECT
#define BIND SOCKS5_CMD_BIND

/* Addresses that are neither special nor (checked in setup) this host's. */
#define REMOTE "203.0.113.9"
#define PUBLIC "198.51.100.7"

static struct gw_conf *conf;

/* Numeric address text (IPv4 or IPv6) to a sockaddr. */
static struct sockaddr_storage
addr(const char *s)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		cr_assert_fail("bad address %s in test", s);
	return ss;
}

/* Load config text into conf, replacing what was there. */
static void
load(const char *text)
{
	char err[CONF_ERR_MAX];
	FILE *f;

	cr_assert_not_null(f = fmemopen((void *)text, strlen(text), "r"));
	cr_assert_eq(conf_load_stream(conf, f, "test.ini", err, sizeof(err)), 0,
	    "%s", err);
	fclose(f);
}

/* Check a request and its reason; name is NULL for an IP request. */
static enum conf_action
check_full(const char *client, const char *user, uint8_t cmd, const char *dst,
    const char *name, uint16_t port, const char **why)
{
	struct sockaddr_storage c = addr(client), d = addr(dst);
	struct auth_target t = {(struct sockaddr *)&d, name, port};

	*why = "unset";
	return auth_rules_check(
	    conf, (struct sockaddr *)&c, user, cmd, &t, why);
}

/* Assert that the request gets action for the reason want_why. */
static void
expect(enum conf_action want, const char *want_why, const char *client,
    const char *user, uint8_t cmd, const char *dst, const char *name,
    uint16_t port)
{
	const char *why;
	enum conf_action got;

	got = check_full(client, user, cmd, dst, name, port, &why);
	cr_expect_eq(got, want,
	    "%s as '%s' cmd %u to %s (%s) port %u: got %s "
	    "(%s), want %s (%s)",
	    client, user, cmd, dst, name ? name : "-", port,
	    got == CONF_ALLOW ? "allow" : "deny", why,
	    want == CONF_ALLOW ? "allow" : "deny", want_why);
	cr_expect_str_eq(why, want_why, "%s to %s (%s) port %u", client, dst,
	    name ? name : "-", port);
}

/* auth_addr_is_protected() of address text s. */
static bool
is_protected(const char *s)
{
	struct sockaddr_storage ss = addr(s);

	return auth_addr_is_protected((struct sockaddr *)&ss);
}

/* Is s one of this host's addresses? */
static bool
host_has(const char *s)
{
	struct sockaddr_storage want = addr(s);
	struct ifaddrs *ifa, *i;
	bool found = false;

	cr_assert_eq(getifaddrs(&ifa), 0);
	for (i = ifa; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL ||
		    i->ifa_addr->sa_family != want.ss_family)
			continue;
		if (want.ss_family == AF_INET)
			found =
			    memcmp(&((struct sockaddr_in *)(void *)i->ifa_addr)
					->sin_addr,
				&((struct sockaddr_in *)&want)->sin_addr,
				4) == 0;
		else
			found =
			    memcmp(&((struct sockaddr_in6 *)(void *)i->ifa_addr)
					->sin6_addr,
				&((struct sockaddr_in6 *)&want)->sin6_addr,
				16) == 0;
	}
	freeifaddrs(ifa);
	return found;
}

/*
 * One of this host's own addresses of family fam that is not loopback or
 * link-local, as text into buf; false if there is none.
 */
static bool
own_addr(int fam, char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	cr_assert_eq(getifaddrs(&ifa), 0);
	for (i = ifa; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != fam)
			continue;
		if (fam == AF_INET) {
			struct in_addr *a =
			    &((struct sockaddr_in *)(void *)i->ifa_addr)
				 ->sin_addr;

			if ((ntohl(a->s_addr) >> 24) == 127 ||
			    (ntohl(a->s_addr) >> 16) == 0xa9fe)
				continue;
			found = inet_ntop(AF_INET, a, buf, (socklen_t)len);
		} else {
			struct in6_addr *a =
			    &((struct sockaddr_in6 *)(void *)i->ifa_addr)
				 ->sin6_addr;

			if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a))
				continue;
			found = inet_ntop(AF_INET6, a, buf, (socklen_t)len);
		}
	}
	freeifaddrs(ifa);
	return found;
}

/* A default config, fresh local addresses, and sane test addresses. */
static void
setup(void)
{
	log_set_level(LOG_LVL_ERROR);
	cr_assert_not_null(conf = calloc(1, sizeof(*conf)));
	conf_defaults(conf);
	cr_assert(!host_has(REMOTE) && !host_has(PUBLIC),
	    "this host owns a test address; pick others");
}

/* Free the config. */
static void
teardown(void)
{
	free(conf);
}

TestSuite(rules, .init = setup, .fini = teardown, .timeout = 30);

Test(rules, no_rules_allows_by_default)
{
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 443);
	expect(CONF_ALLOW, "default", REMOTE, "alice", BIND, "2001:db8::1",
	    "example.com", 80);
}

Test(rules, client_cidr)
{
	load("[rule.lan]\naction = deny\nclient = 10.0.0.0/8, fd12::/16\n");
	expect(CONF_DENY, "lan", "10.1.2.3", "", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_DENY, "lan", "fd12:3456::1", "", CONNECT, PUBLIC, NULL, 80);
	expect(
	    CONF_ALLOW, "default", "11.0.0.1", "", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_ALLOW, "default", "fd13::1", "", CONNECT, PUBLIC, NULL, 80);
}

Test(rules, client_mapped_is_ipv4)
{
	load("[rule.lan]\naction = deny\nclient = 10.0.0.0/8\n");
	expect(
	    CONF_DENY, "lan", "::ffff:10.1.2.3", "", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_ALLOW, "default", "::ffff:11.1.2.3", "", CONNECT, PUBLIC,
	    NULL, 80);
	/* Not mapped: a v6 address whose last 32 bits look like 10/8. */
	expect(CONF_ALLOW, "default", "2001:db8::a01:203", "", CONNECT, PUBLIC,
	    NULL, 80);
}

Test(rules, user)
{
	load("[rule.ban]\naction = deny\nuser = mallory, eve\n");
	expect(CONF_DENY, "ban", REMOTE, "mallory", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_DENY, "ban", REMOTE, "eve", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_ALLOW, "default", REMOTE, "Mallory", CONNECT, PUBLIC, NULL,
	    80);
	expect(
	    CONF_ALLOW, "default", REMOTE, "alice", CONNECT, PUBLIC, NULL, 80);
	/* No login: a rule with users does not match. */
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 80);
}

Test(rules, user_rule_never_matches_anonymous)
{
	const char *why;
	struct sockaddr_storage c = addr(REMOTE), d = addr(PUBLIC);
	struct auth_target t = {(struct sockaddr *)&d, NULL, 80};

	load("[rule.staff]\naction = allow\nuser = alice\n"
	     "[rule.rest]\naction = deny\n");
	expect(CONF_ALLOW, "staff", REMOTE, "alice", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_DENY, "rest", REMOTE, "", CONNECT, PUBLIC, NULL, 80);
	/* NULL user means the same as "". */
	cr_expect_eq(auth_rules_check(
			 conf, (struct sockaddr *)&c, NULL, CONNECT, &t, &why),
	    CONF_DENY);
	cr_expect_str_eq(why, "rest");
}

Test(rules, dest_cidr)
{
	load("[rule.net]\naction = deny\n"
	     "dest = 203.0.113.0/24, 2001:db8:bad::/48\n");
	expect(
	    CONF_DENY, "net", REMOTE, "", CONNECT, "203.0.113.200", NULL, 443);
	expect(CONF_DENY, "net", REMOTE, "", CONNECT, "2001:db8:bad::5", NULL,
	    443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, "203.0.114.1", NULL,
	    443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, "2001:db8:bae::5",
	    NULL, 443);
	/* The resolved address counts for domain requests too. */
	expect(CONF_DENY, "net", REMOTE, "", CONNECT, "203.0.113.1",
	    "www.example.org", 443);
}

Test(rules, dest_mapped_is_ipv4)
{
	load("[rule.net]\naction = deny\ndest = 203.0.113.0/24\n");
	expect(CONF_DENY, "net", REMOTE, "", CONNECT, "::ffff:203.0.113.7",
	    NULL, 443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, "::ffff:8.8.8.8",
	    NULL, 443);
}

Test(rules, dest_without_address_never_matches)
{
	const char *why;
	struct sockaddr_storage c = addr(REMOTE);
	struct auth_target t = {NULL, NULL, 0};

	load("[rule.net]\naction = deny\ndest = 0.0.0.0/0, ::/0\n");
	cr_expect_eq(
	    auth_rules_check(conf, (struct sockaddr *)&c, "", BIND, &t, &why),
	    CONF_ALLOW);
	cr_expect_str_eq(why, "default");
}

Test(rules, domain_suffix)
{
	load("[rule.ex]\naction = deny\ndomain = example.com, .Example.NET\n");
	expect(
	    CONF_DENY, "ex", REMOTE, "", CONNECT, PUBLIC, "example.com", 443);
	expect(CONF_DENY, "ex", REMOTE, "", CONNECT, PUBLIC, "www.example.com",
	    443);
	expect(CONF_DENY, "ex", REMOTE, "", CONNECT, PUBLIC, "A.B.EXAMPLE.COM",
	    443);
	expect(
	    CONF_DENY, "ex", REMOTE, "", CONNECT, PUBLIC, "example.com.", 443);
	expect(CONF_DENY, "ex", REMOTE, "", CONNECT, PUBLIC, "mail.example.net",
	    443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC,
	    "badexample.com", 443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC,
	    "example.com.evil.org", 443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, "com", 443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, "xample.com",
	    443);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, "", 443);
}

Test(rules, domain_rule_never_matches_ip_request)
{
	load("[rule.ex]\naction = deny\ndomain = example.com\n");
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 443);
}

Test(rules, port_ranges)
{
	load("[rule.ports]\naction = deny\nport = 25, 6660-6669\n");
	expect(CONF_DENY, "ports", REMOTE, "", CONNECT, PUBLIC, NULL, 25);
	expect(CONF_DENY, "ports", REMOTE, "", CONNECT, PUBLIC, NULL, 6660);
	expect(CONF_DENY, "ports", REMOTE, "", CONNECT, PUBLIC, NULL, 6665);
	expect(CONF_DENY, "ports", REMOTE, "", CONNECT, PUBLIC, NULL, 6669);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 24);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 26);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 6659);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 6670);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 0);
}

Test(rules, commands)
{
	load("[rule.nobind]\naction = deny\ncommand = bind, udp\n");
	expect(CONF_DENY, "nobind", REMOTE, "", BIND, PUBLIC, NULL, 80);
	expect(CONF_DENY, "nobind", REMOTE, "", SOCKS5_CMD_UDP_ASSOCIATE,
	    PUBLIC, NULL, 80);
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, PUBLIC, NULL, 80);
	/* A command byte outside 0..7 matches no command list. */
	expect(CONF_ALLOW, "default", REMOTE, "", 200, PUBLIC, NULL, 80);
}

Test(rules, combined_every_list_must_match)
{
	load("[rule.combo]\naction = deny\nclient = 10.0.0.0/8\nuser = bob\n"
	     "dest = 198.51.100.0/24\ndomain = example.com\nport = 22\n"
	     "command = connect\n");
	expect(CONF_DENY, "combo", "10.0.0.1", "bob", CONNECT, PUBLIC,
	    "ssh.example.com", 22);
	/* Change one thing at a time. */
	expect(CONF_ALLOW, "default", "11.0.0.1", "bob", CONNECT, PUBLIC,
	    "ssh.example.com", 22);
	expect(CONF_ALLOW, "default", "10.0.0.1", "alice", CONNECT, PUBLIC,
	    "ssh.example.com", 22);
	expect(CONF_ALLOW, "default", "10.0.0.1", "bob", CONNECT, "203.0.113.1",
	    "ssh.example.com", 22);
	expect(CONF_ALLOW, "default", "10.0.0.1", "bob", CONNECT, PUBLIC,
	    "ssh.example.org", 22);
	expect(CONF_ALLOW, "default", "10.0.0.1", "bob", CONNECT, PUBLIC, NULL,
	    22);
	expect(CONF_ALLOW, "default", "10.0.0.1", "bob", CONNECT, PUBLIC,
	    "ssh.example.com", 23);
	expect(CONF_ALLOW, "default", "10.0.0.1", "bob", BIND, PUBLIC,
	    "ssh.example.com", 22);
}

Test(rules, first_match_wins)
{
	load("[rule.alice]\naction = allow\nuser = alice\n"
	     "[rule.rest]\naction = deny\n"
	     "[rule.never]\naction = allow\n");
	expect(CONF_ALLOW, "alice", REMOTE, "alice", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_DENY, "rest", REMOTE, "bob", CONNECT, PUBLIC, NULL, 80);

	load("[rule.rest]\naction = deny\n"
	     "[rule.alice]\naction = allow\nuser = alice\n");
	expect(CONF_DENY, "rest", REMOTE, "alice", CONNECT, PUBLIC, NULL, 80);
}

Test(rules, deny_then_allow_narrower_first)
{
	load("[rule.ok]\naction = allow\ndomain = good.example.com\n"
	     "[rule.ex]\naction = deny\ndomain = example.com\n");
	expect(CONF_ALLOW, "ok", REMOTE, "", CONNECT, PUBLIC,
	    "www.good.example.com", 443);
	expect(CONF_DENY, "ex", REMOTE, "", CONNECT, PUBLIC, "bad.example.com",
	    443);
}

Test(rules, builtin_protects_special_addresses)
{
	static const char *const prot[] = {"127.0.0.1", "127.1.2.3", "::1",
	    "::ffff:127.0.0.1", "0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0",
	    "169.254.1.1", "::ffff:169.254.169.254", "fe80::1", "febf::1",
	    "224.0.0.1", "239.255.255.250", "255.255.255.255", "ff02::1",
	    "::ffff:224.0.0.251"};

	for (size_t i = 0; i < sizeof(prot) / sizeof(prot[0]); i++) {
		expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT,
		    prot[i], NULL, 80);
		expect(CONF_DENY, "builtin-protect", "2001:db8::9", "alice",
		    CONNECT, prot[i], "localhost", 80);
		cr_expect(is_protected(prot[i]), "%s", prot[i]);
	}
}

Test(rules, builtin_leaves_ordinary_addresses)
{
	static const char *const open[] = {PUBLIC, "8.8.8.8", "2001:db8::1",
	    "::ffff:8.8.8.8", "1.0.0.0", "126.255.255.255", "128.0.0.0",
	    "169.253.255.255", "169.255.0.0", "223.255.255.255", "fec0::1",
	    "fe7f::1", "::2"};

	for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++) {
		if (host_has(open[i]))
			continue;
		expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, open[i],
		    NULL, 80);
		cr_expect(!is_protected(open[i]), "%s", open[i]);
	}
}

Test(rules, builtin_protects_own_addresses)
{
	char buf[INET6_ADDRSTRLEN + 8], mapped[sizeof(buf) + 8];
	bool any = false;

	if (own_addr(AF_INET, buf, sizeof(buf))) {
		any = true;
		expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, buf,
		    NULL, 22);
		snprintf(mapped, sizeof(mapped), "::ffff:%s", buf);
		expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT,
		    mapped, NULL, 22);
	}
	if (own_addr(AF_INET6, buf, sizeof(buf))) {
		any = true;
		expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, buf,
		    NULL, 22);
	}
	if (!any)
		cr_skip_test("this host has no address beyond loopback and "
			     "link-local");
}

Test(rules, loopback_client_may_reach_protected)
{
	static const char *const lo[] = {
	    "127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"};

	for (size_t i = 0; i < sizeof(lo) / sizeof(lo[0]); i++) {
		expect(CONF_ALLOW, "default", lo[i], "", CONNECT, "127.0.0.1",
		    NULL, 8080);
		expect(CONF_ALLOW, "default", lo[i], "", CONNECT, "::1", NULL,
		    8080);
		expect(CONF_ALLOW, "default", lo[i], "", CONNECT, "fe80::1",
		    NULL, 8080);
	}
	/* A mapped form of a remote address is not loopback. */
	expect(CONF_DENY, "builtin-protect", "::ffff:10.0.0.1", "", CONNECT,
	    "127.0.0.1", NULL, 8080);
}

Test(rules, deny_rule_applies_to_loopback_client)
{
	load("[rule.no8080]\naction = deny\nport = 8080\n");
	expect(CONF_DENY, "no8080", "127.0.0.1", "", CONNECT, "127.0.0.1", NULL,
	    8080);
}

Test(rules, allow_with_dest_opens_protection)
{
	load("[rule.local-web]\naction = allow\ndest = 127.0.0.1/32, ::1\n"
	     "port = 8080\n");
	expect(CONF_ALLOW, "local-web", REMOTE, "", CONNECT, "127.0.0.1", NULL,
	    8080);
	expect(CONF_ALLOW, "local-web", REMOTE, "", CONNECT, "::ffff:127.0.0.1",
	    NULL, 8080);
	expect(CONF_ALLOW, "local-web", "2001:db8::9", "", CONNECT, "::1", NULL,
	    8080);
	/* Outside what the rule names, the protection stays. */
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, "127.0.0.2",
	    NULL, 8080);
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, "127.0.0.1",
	    NULL, 22);
}

Test(rules, catch_all_allow_does_not_open_protection)
{
	load("[rule.all]\naction = allow\n");
	expect(CONF_ALLOW, "all", REMOTE, "", CONNECT, PUBLIC, NULL, 80);
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, "127.0.0.1",
	    NULL, 80);
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, "fe80::1",
	    NULL, 80);
	expect(
	    CONF_ALLOW, "all", "127.0.0.1", "", CONNECT, "127.0.0.1", NULL, 80);
}

Test(rules, narrow_allow_without_dest_does_not_open_protection)
{
	load("[rule.alice]\naction = allow\nuser = alice\n"
	     "client = 203.0.113.0/24\nport = 1-65535\n"
	     "[rule.localhost]\naction = allow\ndomain = localhost\n"
	     "[rule.lo]\naction = allow\ndest = 127.0.0.0/8\n");
	/* The first match decides, and it names no destination. */
	expect(CONF_DENY, "builtin-protect", REMOTE, "alice", CONNECT,
	    "127.0.0.1", NULL, 80);
	expect(CONF_DENY, "builtin-protect", "198.51.100.1", "", CONNECT,
	    "127.0.0.1", "localhost", 80);
	expect(CONF_ALLOW, "lo", "198.51.100.1", "", CONNECT, "127.0.0.1", NULL,
	    80);
}

Test(rules, everything_dest_does_not_open_protection)
{
	load("[rule.world]\naction = allow\ndest = 0.0.0.0/0, ::/0\n");
	expect(CONF_ALLOW, "world", REMOTE, "", CONNECT, PUBLIC, NULL, 80);
	expect(
	    CONF_ALLOW, "world", REMOTE, "", CONNECT, "2001:db8::1", NULL, 80);
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, "127.0.0.1",
	    NULL, 80);
	expect(
	    CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, "::1", NULL, 80);
}

Test(rules, why_may_be_null)
{
	struct sockaddr_storage c = addr(REMOTE), d = addr("127.0.0.1");
	struct auth_target t = {(struct sockaddr *)&d, NULL, 80};

	cr_expect_eq(auth_rules_check(
			 conf, (struct sockaddr *)&c, "", CONNECT, &t, NULL),
	    CONF_DENY);
}

/* A fresh network namespace with a veth pair v0/v1 up and no address. */
static void
ns_with_link(void)
{
	const char *why = netns_skip_reason();

	if (why != NULL)
		cr_skip_test("%s", why);
	netns_enter();
	netns_sh("ip link add v0 type veth peer name v1 && "
	    "ip link set v0 up && ip link set v1 up");
}

Test(rules, own_address_added_after_first_check)
{
	ns_with_link();
	cr_expect(!is_protected("10.77.20.1"));
	expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, "10.77.20.1", NULL,
	    22);
	netns_sh("ip addr add 10.77.20.1/24 brd + dev v0");
	cr_expect(is_protected("10.77.20.1"));
	cr_expect(is_protected("::ffff:10.77.20.1"));
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT, "10.77.20.1",
	    NULL, 22);
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT,
	    "::ffff:10.77.20.1", NULL, 22);
	cr_expect(is_protected("10.77.20.255"), "the link's broadcast address");
	cr_expect(!is_protected("10.77.20.7"), "a neighbour on the link");
	netns_sh("ip -6 addr add fd77:20::1/64 dev v0 nodad");
	netns_wait("ip -6 route show table local fd77:20::1 | grep -q local");
	cr_expect(is_protected("fd77:20::1"));
	expect(CONF_DENY, "builtin-protect", "2001:db8::9", "", CONNECT,
	    "fd77:20::1", NULL, 22);
	cr_expect(!is_protected("fd77:20::2"), "a neighbour on the link");
	netns_sh("ip addr del 10.77.20.1/24 dev v0");
	cr_expect(!is_protected("10.77.20.1"), "removed again");
}

Test(rules, anyip_local_route)
{
	ns_with_link();
	cr_expect(!is_protected("10.77.21.99"));
	netns_sh("ip route add local 10.77.21.0/24 dev lo");
	cr_expect(is_protected("10.77.21.99"));
	cr_expect(is_protected("10.77.21.1"));
	expect(CONF_DENY, "builtin-protect", REMOTE, "", CONNECT,
	    "10.77.21.200", "anyip.example", 443);
	cr_expect(!is_protected("10.77.22.1"), "next to the AnyIP range");
	netns_sh("ip -6 route add local fd77:21::/64 dev lo");
	cr_expect(is_protected("fd77:21::abcd"));
	/* Opening them takes a rule that names them, as for any own one. */
	load("[rule.anyip]\naction = allow\ndest = 10.77.21.0/24\n");
	expect(CONF_ALLOW, "anyip", REMOTE, "", CONNECT, "10.77.21.99", NULL,
	    80);
}

Test(rules, non_local_routes_not_protected)
{
	static const char *const open[] = { "10.77.20.2", "10.77.30.5",
	    "10.77.31.1", "10.77.32.1", "10.77.33.1", PUBLIC, "2001:db8::1" };

	ns_with_link();
	netns_sh("ip addr add 10.77.20.1/24 dev v0 && "
	    "ip route add 10.77.30.0/24 via 10.77.20.2 && "
	    "ip route add unreachable 10.77.31.0/24 && "
	    "ip route add prohibit 10.77.32.0/24 && "
	    "ip route add blackhole 10.77.33.0/24");
	for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++) {
		cr_expect(!is_protected(open[i]), "%s", open[i]);
		expect(CONF_ALLOW, "default", REMOTE, "", CONNECT, open[i],
		    NULL, 80);
	}
}

/* 2000 checks of an own and a neighbour's address; wrong answers. */
static void *
checker(void *arg)
{
	struct sockaddr_storage c = addr(REMOTE), own = addr("10.77.20.1"),
	    other = addr("10.77.20.2");
	struct auth_target t_own = {(struct sockaddr *)&own, NULL, 80};
	struct auth_target t_other = {(struct sockaddr *)&other, NULL, 80};
	long bad = 0;

	(void)arg;
	for (int i = 0; i < 2000; i++) {
		if (auth_rules_check(conf, (struct sockaddr *)&c, "", CONNECT,
			&t_own, NULL) != CONF_DENY)
			bad++;
		if (auth_rules_check(conf, (struct sockaddr *)&c, "", CONNECT,
			&t_other, NULL) != CONF_ALLOW)
			bad++;
	}
	return (void *)bad;
}

Test(rules, checks_on_many_threads)
{
	pthread_t th[4];
	void *bad;

	ns_with_link();
	netns_sh("ip addr add 10.77.20.1/24 dev v0");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, checker, NULL), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pthread_join(th[i], &bad), 0);
		cr_expect_null(bad, "%ld wrong answers", (long)bad);
	}
}

/*
 * With no descriptor left for the netlink socket, a thread that has none
 * yet cannot ask the kernel: every address counts as protected.
 */
static void *
starved(void *arg)
{
	struct rlimit rl, old;
	int fds[64], n = 0;
	bool *res = arg;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl.rlim_cur = 64;
	rl.rlim_max = old.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (n < 64 && (fds[n] = dup(0)) != -1)
		n++;
	res[0] = is_protected("10.77.20.2");
	while (n > 0)
		close(fds[--n]);
	res[1] = is_protected("10.77.20.2");
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	return NULL;
}

Test(rules, fails_closed)
{
	pthread_t th;
	bool res[2];

	ns_with_link();
	netns_sh("ip addr add 10.77.20.1/24 dev v0");
	cr_assert_eq(pthread_create(&th, NULL, starved, res), 0);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_expect(res[0], "no socket for the question: protected");
	cr_expect_not(res[1], "socket again: a neighbour is not protected");
}
