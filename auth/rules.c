#include "auth/rules.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "lib/route.h"

/*
 * Does the kernel deliver sa to this host? Asked per check, as `ip route
 * get` asks, so an address added after start-up, an AnyIP local route and
 * an interface's broadcast address all count, in the gateway's network
 * namespace. A question that cannot be asked counts as yes: a
 * protection that fails must fail closed.
 */
static bool
is_local(const struct sockaddr *sa)
{
	unsigned char type;

	if (route_type(sa, &type) == 0)
		return type == RTN_LOCAL || type == RTN_BROADCAST ||
		    type == RTN_ANYCAST;
	switch (errno) {
	case ENETUNREACH:
	case EHOSTUNREACH:
	case EACCES:
	case EINVAL:
		/* No route (or unreachable, prohibit, blackhole): not ours. */
		return false;
	default:
		log_warn("rules: route lookup");
		return true;
	}
}

/* Is IPv4 address a (4 bytes, network order) in a fixed protected range? */
static bool
v4_special(const uint8_t *a)
{
	return a[0] == 0 ||		    /* 0.0.0.0/8 */
	    a[0] == 127 ||		    /* 127/8 */
	    (a[0] == 169 && a[1] == 254) || /* 169.254/16 */
	    (a[0] & 0xf0) == 0xe0 ||	    /* 224/4 */
	    (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255);
}

/* Fixed special ranges first, then the kernel's routes (see rules.h). */
bool
auth_addr_is_protected(const struct sockaddr *sa)
{
	struct sockaddr_storage tmp;
	const struct in6_addr *a6;
	const uint8_t *a4;

	if ((sa = addr_unmap(sa, &tmp)) == NULL)
		return false;
	switch (sa->sa_family) {
	case AF_INET:
		a4 = (const uint8_t *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
		if (v4_special(a4))
			return true;
		break;
	case AF_INET6:
		a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a6) || IN6_IS_ADDR_UNSPECIFIED(a6) ||
		    IN6_IS_ADDR_LINKLOCAL(a6) || IN6_IS_ADDR_MULTICAST(a6))
			return true;
		break;
	default:
		return false;
	}
	return is_local(sa);
}

/*
 * Does any of the n CIDRs in l contain sa? sa is tried as given and, if
 * different, in its unmapped form um, so both "10.0.0.0/8" and
 * "::ffff:10.0.0.0/104" catch ::ffff:10.1.2.3. With wide false, /0
 * prefixes are skipped.
 */
static bool
cidr_any(const struct conf_cidr *l, size_t n, const struct sockaddr *sa,
    const struct sockaddr *um, bool wide)
{
	for (size_t i = 0; i < n; i++) {
		if (!wide && l[i].plen == 0)
			continue;
		if (conf_cidr_match(&l[i], um) ||
		    (sa != um && conf_cidr_match(&l[i], sa)))
			return true;
	}
	return false;
}

/* Is name (maybe with one trailing dot) equal to or below suffix? */
static bool
domain_match(const char *name, const char *suffix)
{
	size_t nlen = strlen(name), slen = strlen(suffix);

	if (nlen > 0 && name[nlen - 1] == '.')
		nlen--;
	if (slen == 0 || nlen < slen)
		return false;
	if (strncasecmp(name + nlen - slen, suffix, slen) != 0)
		return false;
	return nlen == slen || name[nlen - slen - 1] == '.';
}

/* Does rule r match the request? Addresses are given as is and unmapped. */
static bool
rule_match(const struct conf_rule *r, const struct sockaddr *client,
    const struct sockaddr *uclient, const char *user, uint8_t cmd,
    const struct auth_target *t, const struct sockaddr *udst)
{
	bool ok;
	size_t i;

	if (r->n_client > 0 &&
	    !cidr_any(r->client, r->n_client, client, uclient, true))
		return false;
	if (r->n_user > 0) {
		ok = false;
		for (i = 0; i < r->n_user && !ok && user[0] != '\0'; i++)
			ok = strcmp(r->user[i], user) == 0;
		if (!ok)
			return false;
	}
	if (r->n_dst > 0 &&
	    (t->addr == NULL ||
		!cidr_any(r->dst, r->n_dst, t->addr, udst, true)))
		return false;
	if (r->n_domain > 0) {
		ok = false;
		for (i = 0; i < r->n_domain && !ok && t->name != NULL; i++)
			ok = domain_match(t->name, r->domain[i]);
		if (!ok)
			return false;
	}
	if (r->n_port > 0) {
		ok = false;
		for (i = 0; i < r->n_port && !ok; i++)
			ok = t->port >= r->port_lo[i] &&
			    t->port <= r->port_hi[i];
		if (!ok)
			return false;
	}
	if (r->commands != 0 && (cmd > 7 || !(r->commands & (1u << cmd))))
		return false;
	return true;
}

/* First matching rule, then the built-in protection (see rules.h). */
enum conf_action
auth_rules_check(const struct gw_conf *c, const struct sockaddr *client,
    const char *user, uint8_t cmd, const struct auth_target *t,
    const char **why)
{
	struct sockaddr_storage ctmp, dtmp;
	const struct sockaddr *uclient, *udst;
	const struct conf_rule *r;
	const char *dummy;
	bool guarded;

	if (why == NULL)
		why = &dummy;
	if (user == NULL)
		user = "";
	if ((uclient = addr_unmap(client, &ctmp)) == NULL)
		return CONF_DENY;	/* not an IP client: never ours */
	udst = addr_unmap(t->addr, &dtmp);
	guarded = !addr_is_loopback(uclient) && auth_addr_is_protected(t->addr);

	for (size_t i = 0; i < c->n_rules; i++) {
		r = &c->rules[i];
		if (!rule_match(r, client, uclient, user, cmd, t, udst))
			continue;
		switch (r->action) {
		case CONF_DENY:
			*why = r->name;
			return CONF_DENY;
		case CONF_ALLOW:
			/* Only a destination the operator named opens a
			 * protected address; "allow everything" does not. */
			if (guarded &&
			    !cidr_any(r->dst, r->n_dst, t->addr, udst, false)) {
				*why = "builtin-protect";
				return CONF_DENY;
			}
			*why = r->name;
			return CONF_ALLOW;
		}
	}
	if (guarded) {
		*why = "builtin-protect";
		return CONF_DENY;
	}
	*why = "default";
	return CONF_ALLOW;
}
