/*
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash, fast on
 * short input, for hash tables whose keys a peer chooses. Without the key
 * a peer cannot pick inputs that land in one bucket.
 *
 * Pure: no allocation, no locks, no global state. The key is 16 bytes, read
 * as two little-endian words as the reference implementation does, so the
 * output matches the published test vectors on any host.
 */
#ifndef MPGW_SIPHASH_H
#define MPGW_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* An incremental computation; fed with siphash_update, any split. */
struct siphash {
	uint64_t v0, v1, v2, v3;
	uint64_t m; /* bytes of the current word so far */
	size_t n;   /* bytes fed */
};

/* Start a hash under key. */
void siphash_init(struct siphash *s, const uint8_t key[SIPHASH_KEY_LEN]);

/* Feed p[0..len). */
void siphash_update(struct siphash *s, const void *p, size_t len);

/* The hash of everything fed. s must be started again before reuse. */
uint64_t siphash_final(struct siphash *s);

/* SipHash-2-4 of p[0..len) under key, in one call. */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *p,
    size_t len);

#endif
