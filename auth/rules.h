/*
 * Access rules (DESIGN.md section 3): may this client, as this user, run
 * this SOCKS command towards this address and port?
 *
 * The check runs once per candidate upstream address, after DNS, so a name
 * that resolves to several addresses is judged address by address.
 *
 * The [rule.NAME] sections are tried in file order; the first rule whose
 * every non-empty list matches decides (an empty list matches anything):
 *
 *   client   the client address is in any of the prefixes
 *   user     the logged-in user equals one of the names (exact case); a
 *            rule with users never matches a client that did not log in
 *   dest     the address about to be dialled is in any of the prefixes
 *   domain   the name the client asked for equals a suffix or ends with
 *            "." + suffix, ignoring case and one trailing dot
 *            ("example.com" matches "www.example.com", not
 *            "badexample.com"); a rule with domains never matches a
 *            request that named an IP address
 *   port     the destination port is in any of the ranges
 *   command  the SOCKS command is one of them
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d), as client or target, is
 * judged as the IPv4 address a.b.c.d everywhere.
 *
 * When no rule matches the request is allowed, except for the built-in
 * protection: a client that is not itself on loopback (127/8, ::1) may not
 * reach a protected address (see auth_addr_is_protected: loopback,
 * unspecified, link-local, multicast, broadcast and the gateway's own
 * addresses). A matching deny rule always denies. A matching allow rule
 * lifts the protection only if the operator named the destination
 * explicitly: the rule has a dest list and one of its prefixes that is not
 * a /0 contains the address; otherwise the request is denied (why is
 * "builtin-protect") and later rules are not tried. So a catch-all allow
 * rule, an allow rule by user, client, port or domain alone, or "dest =
 * 0.0.0.0/0, ::/0" never opens loopback or the gateway's own addresses to
 * remote clients; "dest = 127.0.0.1/32" does. Deny rules apply to loopback
 * clients as to any other.
 */
#ifndef MPGW_AUTH_RULES_H
#define MPGW_AUTH_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"

/* What a request wants to reach. */
struct auth_target {
	const struct sockaddr *addr; /* the address about to be dialled;
				      * NULL when there is none yet (a
				      * dest list then never matches) */
	const char *name;	     /* the domain the client asked for, or
				      * NULL for an IP request */
	uint16_t port;		     /* host order */
};

/*
 * Decide whether client (its address), authenticated as user ("" or NULL
 * when none), may run SOCKS command cmd towards t under the rules of c.
 * Returns CONF_ALLOW or CONF_DENY. If why is not NULL it is set to the name
 * of the rule that decided (pointing into c, valid as long as c is), or to
 * "default" (no rule matched, allowed) or "builtin-protect" (denied by the
 * built-in protection). Thread-safe.
 */
enum conf_action auth_rules_check(const struct gw_conf *c,
    const struct sockaddr *client, const char *user, uint8_t cmd,
    const struct auth_target *t, const char **why);

/*
 * Is sa an address remote clients may not reach by default: loopback
 * (127/8, ::1), unspecified (0.0.0.0/8, ::), link-local (169.254/16,
 * fe80::/10), multicast (224/4, ff00::/8), 255.255.255.255, an address
 * the kernel delivers to this host (route type local, broadcast or
 * anycast in the gateway's network namespace, asked at each call: every
 * own address whenever it was added, AnyIP local routes, the interfaces'
 * broadcast addresses), or the IPv4-mapped form of any of these? When the
 * kernel cannot be asked, yes. Thread-safe.
 */
bool auth_addr_is_protected(const struct sockaddr *sa);

#endif
