#include "lib/siphash.h"

/* Rotate x left by b bits, 0 < b < 64. */
static uint64_t
sip_rotl(uint64_t x, unsigned b)
{
	return x << b | x >> (64 - b);
}

/* One SipRound. */
static void
sip_round(struct siphash *s)
{
	s->v0 += s->v1;
	s->v1 = sip_rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = sip_rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = sip_rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = sip_rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = sip_rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = sip_rotl(s->v2, 32);
}

/* Absorb one little-endian message word (c = 2 rounds). */
static void
sip_word(struct siphash *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

/* The little-endian word at p, whatever the host's byte order. */
static uint64_t
sip_load64(const uint8_t *p)
{
	uint64_t w = 0;

	for (int i = 7; i >= 0; i--)
		w = w << 8 | p[i];
	return w;
}

void
siphash_init(struct siphash *s, const uint8_t key[SIPHASH_KEY_LEN])
{
	uint64_t k0 = sip_load64(key), k1 = sip_load64(key + 8);

	s->v0 = k0 ^ 0x736f6d6570736575ULL;
	s->v1 = k1 ^ 0x646f72616e646f6dULL;
	s->v2 = k0 ^ 0x6c7967656e657261ULL;
	s->v3 = k1 ^ 0x7465646279746573ULL;
	s->m = 0;
	s->n = 0;
}

void
siphash_update(struct siphash *s, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++) {
		s->m |= (uint64_t)b[i] << (8 * (s->n % 8));
		if (++s->n % 8 == 0) {
			sip_word(s, s->m);
			s->m = 0;
		}
	}
}

/* The last word carries the length mod 256 in its top byte (d = 4). */
uint64_t
siphash_final(struct siphash *s)
{
	sip_word(s, s->m | (uint64_t)(s->n & 0xff) << 56);
	s->v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

uint64_t
siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *p, size_t len)
{
	struct siphash s;

	siphash_init(&s, key);
	siphash_update(&s, p, len);
	return siphash_final(&s);
}
