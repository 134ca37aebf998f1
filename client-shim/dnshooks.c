/*
 * Remote DNS (remote_dns = on): names get fake addresses from fake_net4 /
 * fake_net6 (fakedns.c) and the gateway resolves them; connect() maps a
 * fake address back to its name (ATYP 3 in explicit mode, Connect-Name in
 * implicit mode).
 *
 * Passed to the real resolver: numeric strings, NULL nodes,
 * AI_NUMERICHOST, localhost and *.localhost, this host's name, names
 * listed in /etc/hosts, and anything that is not a plausible host name.
 * Families: AF_INET6 gets a fake IPv6 address, AF_INET and AF_UNSPEC a
 * fake IPv4 one (one answer, so no happy-eyeballs race to a second one).
 *
 * Result lists are laid out as glibc's own (each addrinfo with its
 * sockaddr in one malloc block, the canonical name in another), so even a
 * list that reaches the real freeaddrinfo is freed correctly; ours are
 * also remembered and freed here.
 */
#include "client-shim/shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/addr.h"

#define AI_REGISTRY 256
#define HOSTS_LINE_MAX 1024

static struct addrinfo *ai_registry[AI_REGISTRY];

/* --- which names are ours --------------------------------------------- */

static bool
plausible_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 254)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
		    !(ch >= '0' && ch <= '9') && ch != '-' && ch != '.' &&
		    ch != '_')
			return false;
	}
	return s[0] != '.';
}

static bool
name_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

/* Whether a line of /etc/hosts names name (fields after the address). */
static bool
hosts_line_has(char *line, const char *name)
{
	char *p = line, *tok;
	bool first = true;

	if ((tok = strchr(p, '#')) != NULL)
		*tok = '\0';
	while (*p != '\0') {
		size_t n;

		p += strspn(p, " \t\r");
		n = strcspn(p, " \t\r");
		if (n == 0)
			break;
		if (!first && name_eq(p, n, name))
			return true;
		first = false;
		p += n;
	}
	return false;
}

/* Streams /etc/hosts line by line (no stdio, no malloc). */
static bool
in_etc_hosts(const char *name)
{
	char buf[4096], line[HOSTS_LINE_MAX];
	size_t ll = 0;
	bool found = false, skip = false;
	ssize_t r;
	int fd;

	fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return false;
	while (!found && (r = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r && !found; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				else
					skip = true;
				continue;
			}
			line[ll] = '\0';
			if (!skip)
				found = hosts_line_has(line, name);
			ll = 0;
			skip = false;
		}
	}
	if (!found && ll > 0 && !skip) {
		line[ll] = '\0';
		found = hosts_line_has(line, name);
	}
	shim_real.close(fd);
	return found;
}

bool
shim_dns_passthrough(const char *name)
{
	char host[256], a6[16];
	struct in_addr a4;
	size_t n = strlen(name);
	const char *pct;

	if (!plausible_name(name))
		return true;
	if (inet_aton(name, &a4) != 0)
		return true;
	pct = strchr(name, '%');
	if (strchr(name, ':') != NULL || pct != NULL ||
	    inet_pton(AF_INET6, name, a6) == 1)
		return true;
	if (name_eq(name, n, "localhost") ||
	    (n > 10 && (strcasecmp(name + n - 10, ".localhost") == 0 ||
	    strcasecmp(name + n - 11, ".localhost.") == 0)))
		return true;
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if (name_eq(name, n, host))
			return true;
	}
	return in_etc_hosts(name);
}

/* Also resolves the real functions, so call it before using them. */
static bool
want_fake(const char *name)
{
	return shim_remote_dns() && name != NULL && !shim_dns_passthrough(name);
}

/* The slot's fake address for family af, or -1. */
static int
fake_for(const char *name, int af, uint16_t port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	uint32_t slot;

	if (shim_fdns_put(&shim_fdns, name, &slot) == -1)
		return -1;
	shim_fdns_addr(af == AF_INET6 ? &shim_conf.fake6 : &shim_conf.fake4,
	    slot, port, ss, len);
	shim_debug("resolve %s -> fake slot %u", name, slot);
	return 0;
}

/* The name behind a fake address (sa may be v4-mapped), or false. */
static bool
name_of(const struct sockaddr *sa, char *out, size_t cap)
{
	struct sockaddr_storage u;
	uint32_t slot;

	if ((sa = addr_unmap(sa, &u)) == NULL)
		return false;
	if (!shim_fdns_slot(&shim_conf.fake4, sa, &slot) &&
	    !shim_fdns_slot(&shim_conf.fake6, sa, &slot))
		return false;
	return shim_fdns_name(&shim_fdns, slot, out, cap) == 0;
}

/* --- getaddrinfo ------------------------------------------------------ */

static void
registry_add(struct addrinfo *ai)
{
	for (size_t i = 0; i < AI_REGISTRY; i++) {
		struct addrinfo *none = NULL;

		if (__atomic_compare_exchange_n(&ai_registry[i], &none, ai,
		    false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return;
	}
}

static bool
registry_take(struct addrinfo *ai)
{
	for (size_t i = 0; i < AI_REGISTRY; i++) {
		struct addrinfo *p = ai;

		if (__atomic_load_n(&ai_registry[i], __ATOMIC_RELAXED) == ai &&
		    __atomic_compare_exchange_n(&ai_registry[i], &p, NULL,
		    false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return true;
	}
	return false;
}

static void
free_chain(struct addrinfo *ai)
{
	while (ai != NULL) {
		struct addrinfo *next = ai->ai_next;

		free(ai->ai_canonname);
		free(ai);
		ai = next;
	}
}

/* The port of service for socktype: 0 or an EAI_ code. */
static int
service_port(const char *service, int socktype, int flags, uint16_t *port)
{
	struct servent se, *r = NULL;
	char buf[1024], *end;
	unsigned long v;

	*port = 0;
	if (service == NULL)
		return 0;
	v = strtoul(service, &end, 10);
	if (service[0] != '\0' && *end == '\0') {
		if (v > 65535)
			return EAI_SERVICE;
		*port = (uint16_t)v;
		return 0;
	}
	if (flags & AI_NUMERICSERV)
		return EAI_NONAME;
	if (getservbyname_r(service, socktype == SOCK_DGRAM ? "udp" : "tcp",
	    &se, buf, sizeof(buf), &r) != 0 || r == NULL)
		return EAI_SERVICE;
	*port = ntohs((uint16_t)se.s_port);
	return 0;
}

static struct addrinfo *
ai_new(const struct sockaddr_storage *ss, socklen_t len, int socktype,
    int proto)
{
	struct addrinfo *ai = calloc(1, sizeof(*ai) +
	    sizeof(struct sockaddr_in6));

	if (ai == NULL)
		return NULL;
	ai->ai_family = ss->ss_family;
	ai->ai_socktype = socktype;
	ai->ai_protocol = proto;
	ai->ai_addrlen = len;
	ai->ai_addr = (struct sockaddr *)(ai + 1);
	memcpy(ai->ai_addr, ss, len);
	return ai;
}

SHIM_EXPORT int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static const struct {
		int socktype, proto;
	} kinds[] = {
		{ SOCK_STREAM, IPPROTO_TCP },
		{ SOCK_DGRAM, IPPROTO_UDP },
		{ SOCK_RAW, 0 },
	};
	struct addrinfo *head = NULL, **tail = &head;
	struct sockaddr_storage ss;
	socklen_t len;
	int fam = hints ? hints->ai_family : AF_UNSPEC;
	int st = hints ? hints->ai_socktype : 0;
	int proto = hints ? hints->ai_protocol : 0;
	int flags = hints ? hints->ai_flags : 0;
	int saved = errno, rc;
	uint16_t port;

	if (!want_fake(node) || (flags & AI_NUMERICHOST) ||
	    (fam != AF_UNSPEC && fam != AF_INET && fam != AF_INET6) ||
	    (st != 0 && st != SOCK_STREAM && st != SOCK_DGRAM &&
	    st != SOCK_RAW))
		return shim_real.getaddrinfo(node, service, hints, res);
	if ((rc = service_port(service, st, flags, &port)) != 0)
		return rc;
	shim_enter();
	rc = fake_for(node, fam == AF_INET6 ? AF_INET6 : AF_INET, port, &ss,
	    &len);
	shim_leave();
	if (rc == -1)
		return EAI_FAIL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct addrinfo *ai;

		if (st != 0 && st != kinds[i].socktype)
			continue;
		if (st == 0 && service != NULL && kinds[i].socktype == SOCK_RAW)
			continue;
		ai = ai_new(&ss, len, kinds[i].socktype,
		    proto != 0 ? proto : kinds[i].proto);
		if (ai == NULL) {
			free_chain(head);
			return EAI_MEMORY;
		}
		*tail = ai;
		tail = &ai->ai_next;
	}
	if ((flags & AI_CANONNAME) && head != NULL &&
	    (head->ai_canonname = strdup(node)) == NULL) {
		free_chain(head);
		return EAI_MEMORY;
	}
	registry_add(head);
	*res = head;
	errno = saved;
	return 0;
}

SHIM_EXPORT void
freeaddrinfo(struct addrinfo *ai)
{
	if (ai != NULL && registry_take(ai)) {
		free_chain(ai);
		return;
	}
	if (shim_real.freeaddrinfo == NULL)
		shim_active();
	shim_real.freeaddrinfo(ai);
}

SHIM_EXPORT int
getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
    socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
	char name[256];
	size_t n;
	int rc = 0;

	if (!shim_remote_dns() || sa == NULL || host == NULL || hostlen == 0 ||
	    (flags & NI_NUMERICHOST) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    salen < (sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6)) ||
	    !name_of(sa, name, sizeof(name)))
		return shim_real.getnameinfo(sa, salen, host, hostlen, serv,
		    servlen, flags);
	n = strlen(name);
	if (n >= hostlen)
		return EAI_OVERFLOW;
	memcpy(host, name, n + 1);
	if (serv != NULL && servlen > 0)
		rc = shim_real.getnameinfo(sa, salen, NULL, 0, serv, servlen,
		    flags);
	return rc;
}

/* --- gethostby* ------------------------------------------------------- */

/*
 * Lays out a hostent for name and one address in buf:
 * aliases[1], addr_list[2], the address, the name. 0 or ERANGE.
 */
static int
fill_hostent(struct hostent *he, char *buf, size_t buflen, const char *name,
    int af, const void *addr)
{
	size_t alen = af == AF_INET6 ? 16 : 4, nlen = strlen(name) + 1;
	size_t need = 3 * sizeof(char *) + 16 + nlen;
	uintptr_t pad = (sizeof(char *) - ((uintptr_t)buf %
	    sizeof(char *))) % sizeof(char *);
	char **ptrs;
	char *a, *nm;

	if (buflen < pad + need)
		return ERANGE;
	ptrs = (char **)(void *)(buf + pad);
	a = (char *)(ptrs + 3);
	nm = a + 16;
	memcpy(a, addr, alen);
	memcpy(nm, name, nlen);
	ptrs[0] = NULL;			/* aliases */
	ptrs[1] = a;			/* addr_list */
	ptrs[2] = NULL;
	he->h_name = nm;
	he->h_aliases = &ptrs[0];
	he->h_addrtype = af;
	he->h_length = (int)alen;
	he->h_addr_list = &ptrs[1];
	return 0;
}

static const void *
sa_addr(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return &((const struct sockaddr_in *)ss)->sin_addr;
	return &((const struct sockaddr_in6 *)ss)->sin6_addr;
}

static int
fake_hostent(const char *name, int af, struct hostent *he, char *buf,
    size_t buflen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc;

	shim_enter();
	rc = fake_for(name, af, 0, &ss, &len);
	shim_leave();
	if (rc == -1)
		return EAGAIN;
	return fill_hostent(he, buf, buflen, name, af, sa_addr(&ss));
}

static __thread struct hostent tl_he;
static __thread char tl_buf[3 * sizeof(char *) + 16 + 256 + 8];

SHIM_EXPORT int
gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
    size_t buflen, struct hostent **result, int *h_errnop)
{
	int rc;

	if (!want_fake(name) || (af != AF_INET && af != AF_INET6))
		return shim_real.gethostbyname2_r(name, af, ret, buf, buflen,
		    result, h_errnop);
	*result = NULL;
	if ((rc = fake_hostent(name, af, ret, buf, buflen)) != 0) {
		if (h_errnop != NULL)
			*h_errnop = rc == ERANGE ? NETDB_INTERNAL : TRY_AGAIN;
		return rc;
	}
	*result = ret;
	if (h_errnop != NULL)
		*h_errnop = 0;
	return 0;
}

SHIM_EXPORT int
gethostbyname_r(const char *name, struct hostent *ret, char *buf,
    size_t buflen, struct hostent **result, int *h_errnop)
{
	if (!want_fake(name))
		return shim_real.gethostbyname_r(name, ret, buf, buflen,
		    result, h_errnop);
	return gethostbyname2_r(name, AF_INET, ret, buf, buflen, result,
	    h_errnop);
}

SHIM_EXPORT struct hostent *
gethostbyname2(const char *name, int af)
{
	if (!want_fake(name) || (af != AF_INET && af != AF_INET6))
		return shim_real.gethostbyname2(name, af);
	if (fake_hostent(name, af, &tl_he, tl_buf, sizeof(tl_buf)) != 0) {
		h_errno = TRY_AGAIN;
		return NULL;
	}
	return &tl_he;
}

SHIM_EXPORT struct hostent *
gethostbyname(const char *name)
{
	if (!want_fake(name))
		return shim_real.gethostbyname(name);
	return gethostbyname2(name, AF_INET);
}

/* The name behind a fake address given as gethostbyaddr takes it. */
static bool
addr_name(const void *addr, socklen_t len, int type, char *name, size_t cap)
{
	struct sockaddr_storage ss;

	if (!shim_remote_dns() || addr == NULL)
		return false;
	memset(&ss, 0, sizeof(ss));
	if (type == AF_INET && len == 4) {
		ss.ss_family = AF_INET;
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, addr, 4);
	} else if (type == AF_INET6 && len == 16) {
		ss.ss_family = AF_INET6;
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, addr, 16);
	} else {
		return false;
	}
	return name_of((struct sockaddr *)&ss, name, cap);
}

SHIM_EXPORT int
gethostbyaddr_r(const void *addr, socklen_t len, int type,
    struct hostent *ret, char *buf, size_t buflen, struct hostent **result,
    int *h_errnop)
{
	char name[256];
	int rc;

	if (!addr_name(addr, len, type, name, sizeof(name)))
		return shim_real.gethostbyaddr_r(addr, len, type, ret, buf,
		    buflen, result, h_errnop);
	*result = NULL;
	if ((rc = fill_hostent(ret, buf, buflen, name, type, addr)) != 0) {
		if (h_errnop != NULL)
			*h_errnop = NETDB_INTERNAL;
		return rc;
	}
	*result = ret;
	if (h_errnop != NULL)
		*h_errnop = 0;
	return 0;
}

SHIM_EXPORT struct hostent *
gethostbyaddr(const void *addr, socklen_t len, int type)
{
	char name[256];

	if (!addr_name(addr, len, type, name, sizeof(name)))
		return shim_real.gethostbyaddr(addr, len, type);
	if (fill_hostent(&tl_he, tl_buf, sizeof(tl_buf), name, type,
	    addr) != 0) {
		h_errno = NETDB_INTERNAL;
		return NULL;
	}
	return &tl_he;
}
