#include "auth/replay.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/*
 * One slot of the open-addressing table (linear probing). tag is the keyed
 * hash of (user, nonce), never 0; 0 marks an empty slot. Its low bits pick
 * the home slot.
 */
struct rp_slot {
	uint64_t tag;
	double expires;
};

/* SipHash state fed one byte at a time. */
struct rp_sip {
	uint64_t v0, v1, v2, v3;
	uint64_t m; /* bytes of the current word so far */
	size_t n;   /* bytes fed */
};

/*
 * The one cache of the process. lock guards everything but the secret,
 * which is written only by init and fini while no check runs.
 */
static struct {
	pthread_mutex_t lock;
	struct rp_slot *slots; /* NULL before init */
	size_t nslots;	       /* a power of two, at least 2 * capacity */
	size_t capacity;       /* most entries held at once */
	size_t used;	       /* entries held, live or not yet reclaimed */
	double clock;	       /* latest now passed in */
	double full_until;     /* no expiry in the table is earlier */
	uint64_t k0, k1;       /* SipHash key */
	uint64_t fresh, replays, full;
} rp = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Rotate x left by b bits. */
static uint64_t
rp_rotl(uint64_t x, unsigned b)
{
	return x << b | x >> (64 - b);
}

/* One SipRound. */
static void
rp_sip_round(struct rp_sip *s)
{
	s->v0 += s->v1;
	s->v1 = rp_rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rp_rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rp_rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rp_rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rp_rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rp_rotl(s->v2, 32);
}

/* Absorb one little-endian message word (c = 2 rounds). */
static void
rp_sip_word(struct rp_sip *s, uint64_t m)
{
	s->v3 ^= m;
	rp_sip_round(s);
	rp_sip_round(s);
	s->v0 ^= m;
}

/* Start SipHash-2-4 under the key (k0, k1). */
static void
rp_sip_init(struct rp_sip *s, uint64_t k0, uint64_t k1)
{
	s->v0 = k0 ^ 0x736f6d6570736575ULL;
	s->v1 = k1 ^ 0x646f72616e646f6dULL;
	s->v2 = k0 ^ 0x6c7967656e657261ULL;
	s->v3 = k1 ^ 0x7465646279746573ULL;
	s->m = 0;
	s->n = 0;
}

/* Feed p[0..len) to s. */
static void
rp_sip_feed(struct rp_sip *s, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		s->m |= (uint64_t)p[i] << (8 * (s->n % 8));
		if (++s->n % 8 == 0) {
			rp_sip_word(s, s->m);
			s->m = 0;
		}
	}
}

/* Finish s (d = 4 rounds) and return the 64-bit hash. */
static uint64_t
rp_sip_final(struct rp_sip *s)
{
	rp_sip_word(s, s->m | (uint64_t)(s->n & 0xff) << 56);
	s->v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		rp_sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/*
 * The tag of (user, nonce): SipHash of nonce || user. The nonce has a
 * fixed length, so the encoding is unambiguous. Never 0.
 */
static uint64_t
rp_tag(const char *user, const uint8_t nonce[AUTH_REPLAY_NONCE_LEN])
{
	struct rp_sip s;
	uint64_t h;

	rp_sip_init(&s, rp.k0, rp.k1);
	rp_sip_feed(&s, nonce, AUTH_REPLAY_NONCE_LEN);
	rp_sip_feed(&s, (const uint8_t *)user, strlen(user));
	h = rp_sip_final(&s);
	return h != 0 ? h : 1;
}

/* Home slot of tag. */
static size_t
rp_home(uint64_t tag)
{
	return (size_t)tag & (rp.nslots - 1);
}

/*
 * Empty slot i and close the gap (backward-shift deletion): later entries
 * of the run move up so every entry stays reachable from its home without
 * crossing an empty slot. Entries only move from after i to i or later
 * positions of the same run. Caller holds the lock.
 */
static void
rp_delete(size_t i)
{
	size_t mask = rp.nslots - 1, j = i, k;

	for (;;) {
		j = (j + 1) & mask;
		if (rp.slots[j].tag == 0)
			break;
		k = rp_home(rp.slots[j].tag);
		/* It may fill the hole unless its home lies in (i, j]. */
		if (i < j ? (k <= i || k > j) : (k <= i && k > j)) {
			rp.slots[i] = rp.slots[j];
			i = j;
		}
	}
	rp.slots[i].tag = 0;
	rp.slots[i].expires = 0;
	rp.used--;
}

/*
 * Reclaim every expired entry and set rp.full_until to the earliest expiry
 * left. Starts right after an empty slot (there is one: the table is at
 * most half full) so that no entry moves into a part already visited.
 * Caller holds the lock.
 */
static void
rp_sweep(void)
{
	size_t mask = rp.nslots - 1, i = 0, left;
	double first = INFINITY;

	while (rp.slots[i].tag != 0)
		i++;
	i = (i + 1) & mask;
	for (left = rp.nslots - 1; left > 0;) {
		if (rp.slots[i].tag != 0 && rp.slots[i].expires <= rp.clock) {
			rp_delete(i); /* look at slot i again */
			continue;
		}
		if (rp.slots[i].tag != 0 && rp.slots[i].expires < first)
			first = rp.slots[i].expires;
		i = (i + 1) & mask;
		left--;
	}
	rp.full_until = first;
}

int
auth_replay_init(size_t capacity)
{
	uint8_t secret[16];
	size_t nslots = 2;
	int rc = -1;

	if (capacity == 0)
		capacity = AUTH_REPLAY_DEFAULT_CAPACITY;
	if (capacity > SIZE_MAX / 4 / sizeof(struct rp_slot)) {
		errno = ENOMEM;
		return -1;
	}
	while (nslots < 2 * capacity)
		nslots *= 2;
	pthread_mutex_lock(&rp.lock);
	if (rp.slots != NULL) {
		errno = EALREADY;
		goto out;
	}
	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		errno = EIO;
		goto out;
	}
	if ((rp.slots = calloc(nslots, sizeof(*rp.slots))) == NULL)
		goto out;
	memcpy(&rp.k0, secret, 8);
	memcpy(&rp.k1, secret + 8, 8);
	rp.nslots = nslots;
	rp.capacity = capacity;
	rp.used = 0;
	rp.clock = -INFINITY;
	rp.full_until = -INFINITY;
	rp.fresh = rp.replays = rp.full = 0;
	rc = 0;
out:
	pthread_mutex_unlock(&rp.lock);
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}

enum auth_replay_res
auth_replay_check(const char *user, const uint8_t nonce[AUTH_REPLAY_NONCE_LEN],
    double now, double expires_at)
{
	enum auth_replay_res res;
	uint64_t tag;
	size_t i;

	tag = rp_tag(user, nonce);
	pthread_mutex_lock(&rp.lock);
	if (rp.slots == NULL) {
		res = AUTH_REPLAY_FULL;
		goto out;
	}
	if (!isfinite(now) || !isfinite(expires_at)) {
		res = AUTH_REPLAY_SEEN;
		rp.replays++;
		goto out;
	}
	if (now > rp.clock)
		rp.clock = now;
	/* Its entry may already be reclaimed: refuse rather than guess. */
	if (expires_at <= rp.clock) {
		res = AUTH_REPLAY_SEEN;
		rp.replays++;
		goto out;
	}
	i = rp_home(tag);
	while (rp.slots[i].tag != 0) {
		if (rp.slots[i].expires <= rp.clock) {
			rp_delete(i); /* look at slot i again */
			continue;
		}
		if (rp.slots[i].tag == tag) {
			res = AUTH_REPLAY_SEEN;
			rp.replays++;
			goto out;
		}
		i = (i + 1) & (rp.nslots - 1);
	}
	if (rp.used >= rp.capacity) {
		/* Until full_until every entry is live: no need to look. */
		if (rp.clock >= rp.full_until)
			rp_sweep();
		if (rp.used >= rp.capacity) {
			res = AUTH_REPLAY_FULL;
			rp.full++;
			goto out;
		}
		/* The sweep moved entries; find the end of the run again. */
		for (i = rp_home(tag); rp.slots[i].tag != 0;
		     i = (i + 1) & (rp.nslots - 1))
			;
	}
	rp.slots[i].tag = tag;
	rp.slots[i].expires = expires_at;
	/* Keep full_until a lower bound of every expiry in the table. */
	if (expires_at < rp.full_until)
		rp.full_until = expires_at;
	rp.used++;
	rp.fresh++;
	res = AUTH_REPLAY_FRESH;
out:
	pthread_mutex_unlock(&rp.lock);
	return res;
}

void
auth_replay_stats(struct auth_replay_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&rp.lock);
	if (rp.slots != NULL) {
		st->fresh = rp.fresh;
		st->replays = rp.replays;
		st->full = rp.full;
		for (size_t i = 0; i < rp.nslots; i++)
			if (rp.slots[i].tag != 0 &&
			    rp.slots[i].expires > rp.clock)
				st->live++;
	}
	pthread_mutex_unlock(&rp.lock);
}

void
auth_replay_fini(void)
{
	pthread_mutex_lock(&rp.lock);
	free(rp.slots);
	rp.slots = NULL;
	rp.nslots = rp.capacity = rp.used = 0;
	rp.fresh = rp.replays = rp.full = 0;
	OPENSSL_cleanse(&rp.k0, sizeof(rp.k0));
	OPENSSL_cleanse(&rp.k1, sizeof(rp.k1));
	pthread_mutex_unlock(&rp.lock);
}
