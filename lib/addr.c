#include "lib/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

const struct sockaddr *
addr_unmap(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)out;

	if (sa == NULL)
		return NULL;
	memset(out, 0, sizeof(*out));
	switch (sa->sa_family) {
	case AF_INET:
		memcpy(out, sa, sizeof(struct sockaddr_in));
		return (const struct sockaddr *)out;
	case AF_INET6:
		/* A copy: sa need not be aligned for the larger struct. */
		memcpy(&sin6, sa, sizeof(sin6));
		if (!IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			memcpy(out, &sin6, sizeof(sin6));
			return (const struct sockaddr *)out;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = sin6.sin6_port;
		memcpy(&sin->sin_addr, sin6.sin6_addr.s6_addr + 12, 4);
		return (const struct sockaddr *)out;
	default:
		return NULL;
	}
}

socklen_t
addr_len(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

bool
addr_is_loopback(const struct sockaddr *sa)
{
	struct sockaddr_storage ss;
	const struct sockaddr *u = addr_unmap(sa, &ss);

	if (u == NULL)
		return false;
	if (u->sa_family == AF_INET)
		return ((const uint8_t *)&((const struct sockaddr_in *)(const
		    void *)u)->sin_addr)[0] == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const
	    void *)u)->sin6_addr);
}

const char *
addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	const struct sockaddr *u = addr_unmap(sa, &ss);
	char host[INET6_ADDRSTRLEN];

	if (cap == 0)
		return out;
	if (u == NULL) {
		snprintf(out, cap, "?");
	} else if (u->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)u;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)u;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, ntohs(sin6->sin6_port));
	}
	return out;
}

bool
addr_source_key(const struct sockaddr *sa, uint8_t key[ADDR_KEY_LEN])
{
	struct sockaddr_storage ss;
	const struct sockaddr *u = addr_unmap(sa, &ss);

	memset(key, 0, ADDR_KEY_LEN);
	if (u == NULL)
		return false;
	if (u->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)(const void *)u)
		    ->sin_addr, 4);
	} else {
		/* One IPv6 client usually owns a /64: count it as one source. */
		key[0] = 6;
		memcpy(key + 1, ((const struct sockaddr_in6 *)(const void *)u)
		    ->sin6_addr.s6_addr, 8);
	}
	return true;
}
