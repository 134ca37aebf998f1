/*
 * A fixed-capacity table of short keys, for state kept per client source
 * (gateway/srclimit.c: sessions per source; auth/throttle.c: failed logins
 * per source and per source and user). Clients choose their addresses, so
 * buckets are picked by SipHash under a random per-process secret: nobody
 * outside the process can aim keys at one chain.
 *
 * The table holds keys only. Each entry is an index in [0, cap), stable
 * while the entry lives; the caller keeps its values in an array of its own
 * indexed the same way. Entries are also kept in a list by age (srctab_add
 * and srctab_touch make one the newest), so a caller that may forget can
 * evict srctab_oldest(); one that must not simply refuses when srctab_add
 * says the table is full.
 *
 * Storage is the caller's (static arrays, no allocation, a zeroed table is
 * valid) and so is the locking: no function here locks, so each table needs
 * its owner's mutex around every call. srctab_hash() is thread-safe.
 */
#ifndef MPGW_SRCTAB_H
#define MPGW_SRCTAB_H

#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

/* Longest key: a source key (9 bytes) and a 64-bit tag, with room. */
#define SRCTAB_KEY_MAX 24

/* One entry and one bucket head. Links are index + 1, so 0 means none. */
struct srctab_slot {
	uint8_t key[SRCTAB_KEY_MAX];
	uint32_t head;	/* first entry of bucket (this slot's index) */
	uint32_t hnext; /* next on the bucket's chain, or on the free list */
	uint32_t newer; /* age list */
	uint32_t older;
};

struct srctab {
	struct srctab_slot *slots;
	uint32_t cap;	  /* entries, and buckets */
	uint32_t key_len; /* bytes compared and hashed, <= SRCTAB_KEY_MAX */
	uint32_t used;
	uint32_t fresh; /* slots [fresh, cap) never used */
	uint32_t free;	/* slots given back */
	uint32_t newest, oldest;
};

/* A static table over the array slots (of any size) with keys of klen. */
#define SRCTAB_INITIALIZER(slotarr, klen)                                   \
	{                                                                   \
		.slots = (slotarr), .cap = (uint32_t)nitems(slotarr),       \
		.key_len = (klen),                                          \
	}

/* The index of the entry for key, or -1. */
int srctab_find(const struct srctab *t, const uint8_t *key);

/*
 * Add key, which must not be in t, as the newest entry. Returns its index,
 * or -1 when the table is full (the caller may srctab_del(t,
 * srctab_oldest(t)) and try again).
 */
int srctab_add(struct srctab *t, const uint8_t *key);

/* Forget entry i; its index may be handed out again. */
void srctab_del(struct srctab *t, int i);

/* Make entry i the newest. */
void srctab_touch(struct srctab *t, int i);

/* The index of the oldest entry, or -1 when t is empty. */
int srctab_oldest(const struct srctab *t);

/* The key of entry i (key_len bytes). */
const uint8_t *srctab_key(const struct srctab *t, int i);

/* Entries held. */
unsigned srctab_count(const struct srctab *t);

/*
 * SipHash-2-4 of p[0..len) under the process's secret (made at first use
 * from getrandom), e.g. to turn a peer-supplied name into a fixed-size key
 * part. Thread-safe.
 */
uint64_t srctab_hash(const void *p, size_t len);

#endif
