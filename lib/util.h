/*
 * Small helpers every layer may use: container_of (from an embedded member
 * back to its struct, the way libev watchers find their owner) and the
 * element count of an array.
 */
#ifndef MPGW_UTIL_H
#define MPGW_UTIL_H

#include <stddef.h>

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#endif
