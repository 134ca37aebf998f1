#include "auth/throttle.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/addr.h"

#define THR_KEY_LEN ADDR_KEY_LEN
#define THR_BUCKETS AUTH_THROTTLE_SLOTS /* a power of two */

/*
 * One source. Links are slot index + 1, so 0 means none and a zeroed
 * table is a valid empty one.
 */
struct thr_entry {
	uint8_t key[THR_KEY_LEN];
	unsigned fails;
	double last;	/* time of the last failure */
	double until;	/* blocked until then; 0 = not blocked */
	uint16_t hnext; /* hash chain, or free list */
	uint16_t newer; /* LRU list by last failure */
	uint16_t older;
};

static pthread_mutex_t thr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct thr_entry thr_tab[AUTH_THROTTLE_SLOTS];
static uint16_t thr_bucket[THR_BUCKETS];
static uint16_t thr_newest, thr_oldest;
static uint16_t thr_free;  /* entries given back */
static unsigned thr_fresh; /* entries [thr_fresh..] never used */
static unsigned thr_tracked;
static uint64_t thr_failures, thr_refusals;
static uint64_t thr_seed;
static bool thr_seeded;

/*
 * The bucket of key. Seeded at first use so that sources cannot be chosen
 * to share a chain (a chain is bounded by the table size anyway).
 */
static unsigned
key_hash(const uint8_t *key)
{
	uint64_t h;

	if (!thr_seeded) {
		if (getrandom(&thr_seed, sizeof(thr_seed), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(thr_seed))
			thr_seed = (uint64_t)time(NULL) ^ (uintptr_t)&thr_seed;
		thr_seeded = true;
	}
	h = 0xcbf29ce484222325ULL ^ thr_seed;
	for (size_t i = 0; i < THR_KEY_LEN; i++) {
		h ^= key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (unsigned)(h & (THR_BUCKETS - 1));
}

/* Take slot i (index + 1) out of the LRU list. */
static void
lru_unlink(uint16_t i)
{
	struct thr_entry *e = &thr_tab[i - 1];

	if (e->newer != 0)
		thr_tab[e->newer - 1].older = e->older;
	else
		thr_newest = e->older;
	if (e->older != 0)
		thr_tab[e->older - 1].newer = e->newer;
	else
		thr_oldest = e->newer;
	e->newer = e->older = 0;
}

/* Put slot i (index + 1) at the newest end of the LRU list. */
static void
lru_push(uint16_t i)
{
	struct thr_entry *e = &thr_tab[i - 1];

	e->newer = 0;
	e->older = thr_newest;
	if (thr_newest != 0)
		thr_tab[thr_newest - 1].newer = i;
	thr_newest = i;
	if (thr_oldest == 0)
		thr_oldest = i;
}

/* Forget slot i (index + 1): off its chain and the LRU, onto the free list. */
static void
drop(uint16_t i)
{
	struct thr_entry *e = &thr_tab[i - 1];
	uint16_t *p = &thr_bucket[key_hash(e->key)];

	while (*p != i)
		p = &thr_tab[*p - 1].hnext;
	*p = e->hnext;
	lru_unlink(i);
	memset(e, 0, sizeof(*e));
	e->hnext = thr_free;
	thr_free = i;
	thr_tracked--;
}

/* Has e run out at time now (block over, or quiet for long enough)? */
static bool
expired(const struct thr_entry *e, double now)
{
	if (e->until > 0)
		return now >= e->until;
	return now - e->last >= AUTH_THROTTLE_FORGET;
}

/* The slot (index + 1) holding key, or 0. */
static uint16_t
find(const uint8_t *key)
{
	uint16_t i;

	for (i = thr_bucket[key_hash(key)]; i != 0; i = thr_tab[i - 1].hnext)
		if (memcmp(thr_tab[i - 1].key, key, THR_KEY_LEN) == 0)
			return i;
	return 0;
}

/*
 * A slot for a new source key, evicting the oldest when the table is
 * full; it is on its chain and the newest in the LRU. Never fails.
 */
static uint16_t
insert(const uint8_t *key)
{
	struct thr_entry *e;
	unsigned h;
	uint16_t i;

	if (thr_free == 0 && thr_fresh == AUTH_THROTTLE_SLOTS)
		drop(thr_oldest);
	if (thr_free != 0) {
		i = thr_free;
		thr_free = thr_tab[i - 1].hnext;
	} else
		i = (uint16_t)++thr_fresh;
	e = &thr_tab[i - 1];
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, THR_KEY_LEN);
	h = key_hash(key);
	e->hnext = thr_bucket[h];
	thr_bucket[h] = i;
	lru_push(i);
	thr_tracked++;
	return i;
}

/* Is client blocked at now? Drops its entry if it has run out. */
bool
auth_throttle_blocked(const struct sockaddr *client, double now)
{
	uint8_t key[THR_KEY_LEN];
	bool blocked = false;
	uint16_t i;

	if (!addr_source_key(client, key))
		return false;
	pthread_mutex_lock(&thr_lock);
	if ((i = find(key)) != 0) {
		if (expired(&thr_tab[i - 1], now))
			drop(i);
		else
			blocked = thr_tab[i - 1].until > 0;
	}
	pthread_mutex_unlock(&thr_lock);
	return blocked;
}

/* The delay for the n-th failure in a row: 0, 0.25, 0.5, 1, ... <= max. */
static double
fail_delay(unsigned n, unsigned max)
{
	double d = 0.25;

	if (n <= 1 || max == 0)
		return 0;
	for (unsigned k = 2; k < n && d < max; k++)
		d *= 2;
	return d < max ? d : max;
}

/* Count a failure, maybe start a block, and return the delay. */
double
auth_throttle_fail(const struct sockaddr *client, unsigned fail_limit,
    unsigned fail_delay_max, unsigned fail_block, double now)
{
	uint8_t key[THR_KEY_LEN];
	struct thr_entry *e;
	double delay;
	uint16_t i;

	pthread_mutex_lock(&thr_lock);
	thr_failures++;
	if (!addr_source_key(client, key)) {
		pthread_mutex_unlock(&thr_lock);
		return 0;
	}
	if ((i = find(key)) != 0 && expired(&thr_tab[i - 1], now)) {
		drop(i);
		i = 0;
	}
	if (i == 0)
		i = insert(key);
	else {
		lru_unlink(i);
		lru_push(i);
	}
	e = &thr_tab[i - 1];
	if (e->fails < ~0u)
		e->fails++;
	e->last = now;
	if (fail_limit > 0 && fail_block > 0 && e->fails >= fail_limit &&
	    e->until == 0)
		e->until = now + fail_block;
	delay = fail_delay(e->fails, fail_delay_max);
	pthread_mutex_unlock(&thr_lock);
	return delay;
}

/* Forget client's source. */
void
auth_throttle_success(const struct sockaddr *client)
{
	uint8_t key[THR_KEY_LEN];
	uint16_t i;

	if (!addr_source_key(client, key))
		return;
	pthread_mutex_lock(&thr_lock);
	if ((i = find(key)) != 0)
		drop(i);
	pthread_mutex_unlock(&thr_lock);
}

/* Copy the counters under the lock. */
void
auth_throttle_stats(struct auth_throttle_stats *st)
{
	pthread_mutex_lock(&thr_lock);
	st->failures = thr_failures;
	st->refusals = thr_refusals;
	st->tracked = thr_tracked;
	pthread_mutex_unlock(&thr_lock);
}

/* Count one refusal. */
void
auth_throttle_count_refusal(void)
{
	pthread_mutex_lock(&thr_lock);
	thr_refusals++;
	pthread_mutex_unlock(&thr_lock);
}
