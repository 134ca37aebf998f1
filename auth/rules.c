#include "auth/rules.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"
#include "lib/log.h"

/* One of the gateway's own addresses, IPv4 ones in the first 4 bytes. */
struct local_addr {
	int family;
	uint8_t addr[16];
};

/* The gateway's own addresses; replaced whole by a refresh. */
static pthread_rwlock_t local_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct local_addr *local_list;
static size_t local_n;
static bool local_loaded;

/*
 * Copy the address bytes of sa (already unmapped) into la. Returns false
 * for a family other than AF_INET or AF_INET6.
 */
static bool
to_local(const struct sockaddr *sa, struct local_addr *la)
{
	memset(la, 0, sizeof(*la));
	switch (sa->sa_family) {
	case AF_INET:
		la->family = AF_INET;
		memcpy(la->addr,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    4);
		return true;
	case AF_INET6:
		la->family = AF_INET6;
		memcpy(la->addr,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    16);
		return true;
	default:
		return false;
	}
}

/*
 * Append sa (unmapped first) to the list *l of *n entries with room for
 * *cap, growing it. 0, or -1 with errno.
 */
static int
local_add(
    struct local_addr **l, size_t *n, size_t *cap, const struct sockaddr *sa)
{
	struct sockaddr_storage tmp;
	struct local_addr la, *nl;
	size_t ncap;

	if ((sa = addr_unmap(sa, &tmp)) == NULL || !to_local(sa, &la))
		return 0;
	for (size_t i = 0; i < *n; i++)
		if (memcmp(&(*l)[i], &la, sizeof(la)) == 0)
			return 0;
	if (*n == *cap) {
		ncap = *cap == 0 ? 16 : *cap * 2;
		nl = realloc(*l, ncap * sizeof(*nl));
		if (nl == NULL)
			return -1;
		*l = nl;
		*cap = ncap;
	}
	(*l)[(*n)++] = la;
	return 0;
}

/* Swap in a fresh list of this host's addresses (see rules.h). */
int
auth_rules_local_refresh(void)
{
	struct ifaddrs *ifa, *i;
	struct local_addr *l = NULL, *old;
	size_t n = 0, cap = 0;
	int saved;

	if (getifaddrs(&ifa) == -1) {
		log_warn("getifaddrs");
		return -1;
	}
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (local_add(&l, &n, &cap, i->ifa_addr) == -1)
			goto err_free;
		if (i->ifa_broadaddr != NULL &&
		    (i->ifa_flags & IFF_BROADCAST) &&
		    local_add(&l, &n, &cap, i->ifa_broadaddr) == -1)
			goto err_free;
	}
	freeifaddrs(ifa);

	pthread_rwlock_wrlock(&local_lock);
	old = local_list;
	local_list = l;
	local_n = n;
	local_loaded = true;
	pthread_rwlock_unlock(&local_lock);
	free(old);
	log_debug("rules: %zu local addresses", n);
	return 0;

err_free:
	saved = errno;
	freeifaddrs(ifa);
	free(l);
	errno = saved;
	log_warn("rules: local addresses");
	return -1;
}

/* Is la one of the gateway's own addresses? Loads the list on first use. */
static bool
is_local(const struct local_addr *la)
{
	bool found = false, loaded;

	pthread_rwlock_rdlock(&local_lock);
	loaded = local_loaded;
	pthread_rwlock_unlock(&local_lock);
	if (!loaded)
		(void)auth_rules_local_refresh();

	pthread_rwlock_rdlock(&local_lock);
	for (size_t i = 0; i < local_n && !found; i++)
		found = local_list[i].family == la->family &&
		    memcmp(local_list[i].addr, la->addr, 16) == 0;
	pthread_rwlock_unlock(&local_lock);
	return found;
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

/* Fixed special ranges first, then this host's addresses (see rules.h). */
bool
auth_addr_is_protected(const struct sockaddr *sa)
{
	struct sockaddr_storage tmp;
	struct local_addr la;
	struct in6_addr a6;

	if ((sa = addr_unmap(sa, &tmp)) == NULL || !to_local(sa, &la))
		return false;
	if (la.family == AF_INET) {
		if (v4_special(la.addr))
			return true;
	} else {
		memcpy(&a6, la.addr, sizeof(a6));
		if (IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
		    IN6_IS_ADDR_LINKLOCAL(&a6) || IN6_IS_ADDR_MULTICAST(&a6))
			return true;
	}
	return is_local(&la);
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
