#include "auth/throttle.h"

#include <pthread.h>
#include <string.h>

#include "lib/addr.h"
#include "lib/srctab.h"

/* A (source, user) key: the source key, then the user's 64-bit tag. */
#define THR_PAIR_KEY_LEN (ADDR_KEY_LEN + 8)

/* A source. */
struct thr_src {
	unsigned fails;
	double last;	/* time of the last failure */
	double until;	/* blocked until then; 0 = not blocked */
	uint64_t epoch; /* which life of this source's entry */
};

/* One user's failures at a source. */
struct thr_pair {
	unsigned fails;
	double last;
	uint64_t epoch; /* the source entry's epoch they were counted in */
};

/*
 * Values live beside their srctab entries, same index. A pair counts only
 * while its epoch is its source entry's: once the source is forgotten
 * (block over, quiet spell, evicted) old pairs must not forgive failures
 * counted afresh.
 */
static pthread_mutex_t thr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct srctab_slot thr_src_slots[AUTH_THROTTLE_SLOTS];
static struct srctab thr_srcs =
    SRCTAB_INITIALIZER(thr_src_slots, ADDR_KEY_LEN);
static struct thr_src thr_src[AUTH_THROTTLE_SLOTS];
static struct srctab_slot thr_pair_slots[AUTH_THROTTLE_SLOTS];
static struct srctab thr_pairs =
    SRCTAB_INITIALIZER(thr_pair_slots, THR_PAIR_KEY_LEN);
static struct thr_pair thr_pair[AUTH_THROTTLE_SLOTS];
static uint64_t thr_epoch;
static uint64_t thr_failures, thr_refusals;

/* Has source e run out at time now (block over, or quiet for long enough)? */
static bool
src_expired(const struct thr_src *e, double now)
{
	if (e->until > 0)
		return now >= e->until;
	return now - e->last >= AUTH_THROTTLE_FORGET;
}

/* The live entry of source key at now, or -1; drops it if it ran out. */
static int
src_find(const uint8_t *key, double now)
{
	int i;

	if ((i = srctab_find(&thr_srcs, key)) != -1 &&
	    src_expired(&thr_src[i], now)) {
		srctab_del(&thr_srcs, i);
		i = -1;
	}
	return i;
}

/* The pair key of source key and user. */
static void
pair_key(uint8_t out[THR_PAIR_KEY_LEN], const uint8_t *key, const char *user)
{
	uint64_t tag = srctab_hash(user, strlen(user));

	memcpy(out, key, ADDR_KEY_LEN);
	memcpy(out + ADDR_KEY_LEN, &tag, sizeof(tag));
}

/* The live entry of a pair whose source entry is src, or -1. */
static int
pair_find(const uint8_t *pkey, const struct thr_src *src, double now)
{
	int i;

	if ((i = srctab_find(&thr_pairs, pkey)) != -1 &&
	    (thr_pair[i].epoch != src->epoch ||
		now - thr_pair[i].last >= AUTH_THROTTLE_FORGET)) {
		srctab_del(&thr_pairs, i);
		i = -1;
	}
	return i;
}

/* Add key to t, evicting its oldest entry when it is full. */
static int
add_evicting(struct srctab *t, const uint8_t *key)
{
	int i;

	if ((i = srctab_add(t, key)) == -1) {
		srctab_del(t, srctab_oldest(t));
		i = srctab_add(t, key);
	}
	return i;
}

bool
auth_throttle_blocked(const struct sockaddr *client, double now)
{
	uint8_t key[ADDR_KEY_LEN];
	bool blocked = false;
	int i;

	if (!addr_source_key(client, key))
		return false;
	pthread_mutex_lock(&thr_lock);
	if ((i = src_find(key, now)) != -1)
		blocked = thr_src[i].until > 0;
	pthread_mutex_unlock(&thr_lock);
	return blocked;
}

double
auth_throttle_delay(unsigned n, unsigned max)
{
	double d = 0.25;

	if (n <= 1 || max == 0)
		return 0;
	for (unsigned k = 2; k < n && d < max; k++)
		d *= 2;
	return d < max ? d : max;
}

double
(auth_throttle_fail)(const struct sockaddr *client, const char *user,
    unsigned fail_limit, unsigned fail_delay_max, unsigned fail_block,
    double now)
{
	uint8_t key[ADDR_KEY_LEN], pkey[THR_PAIR_KEY_LEN];
	struct thr_src *e;
	double delay;
	int i, p;

	pthread_mutex_lock(&thr_lock);
	thr_failures++;
	if (!addr_source_key(client, key)) {
		pthread_mutex_unlock(&thr_lock);
		return 0;
	}
	if ((i = src_find(key, now)) == -1) {
		i = add_evicting(&thr_srcs, key);
		memset(&thr_src[i], 0, sizeof(thr_src[i]));
		thr_src[i].epoch = ++thr_epoch;
	} else
		srctab_touch(&thr_srcs, i);
	e = &thr_src[i];
	if (e->fails < ~0u)
		e->fails++;
	e->last = now;
	if (fail_limit > 0 && fail_block > 0 && e->fails >= fail_limit &&
	    e->until == 0)
		e->until = now + fail_block;
	delay = auth_throttle_delay(e->fails, fail_delay_max);

	if (user != NULL) {
		pair_key(pkey, key, user);
		if ((p = pair_find(pkey, e, now)) == -1) {
			p = add_evicting(&thr_pairs, pkey);
			memset(&thr_pair[p], 0, sizeof(thr_pair[p]));
			thr_pair[p].epoch = e->epoch;
		} else
			srctab_touch(&thr_pairs, p);
		if (thr_pair[p].fails < ~0u)
			thr_pair[p].fails++;
		thr_pair[p].last = now;
	}
	pthread_mutex_unlock(&thr_lock);
	return delay;
}

void
(auth_throttle_success)(const struct sockaddr *client, const char *user,
    double now)
{
	uint8_t key[ADDR_KEY_LEN], pkey[THR_PAIR_KEY_LEN];
	struct thr_src *e;
	unsigned forgiven;
	int i, p;

	if (user == NULL || !addr_source_key(client, key))
		return;
	pthread_mutex_lock(&thr_lock);
	if ((i = src_find(key, now)) == -1)
		goto out; /* nothing counted against the source */
	e = &thr_src[i];
	pair_key(pkey, key, user);
	if ((p = pair_find(pkey, e, now)) == -1)
		goto out; /* nothing counted against this user */
	forgiven = thr_pair[p].fails;
	srctab_del(&thr_pairs, p);
	/* A block stands: its failures were someone's guesses. */
	if (e->until > 0)
		goto out;
	e->fails -= forgiven < e->fails ? forgiven : e->fails;
	if (e->fails == 0)
		srctab_del(&thr_srcs, i);
out:
	pthread_mutex_unlock(&thr_lock);
}

void
auth_throttle_block(const struct sockaddr *client, double until, double now)
{
	uint8_t key[ADDR_KEY_LEN];
	int i;

	if (!(until > now) || !addr_source_key(client, key))
		return;
	pthread_mutex_lock(&thr_lock);
	if ((i = src_find(key, now)) == -1) {
		i = add_evicting(&thr_srcs, key);
		memset(&thr_src[i], 0, sizeof(thr_src[i]));
		thr_src[i].epoch = ++thr_epoch;
		thr_src[i].last = now;
	} else
		srctab_touch(&thr_srcs, i);
	if (thr_src[i].until < until)
		thr_src[i].until = until;
	pthread_mutex_unlock(&thr_lock);
}

void
auth_throttle_stats(struct auth_throttle_stats *st)
{
	pthread_mutex_lock(&thr_lock);
	st->failures = thr_failures;
	st->refusals = thr_refusals;
	st->tracked = srctab_count(&thr_srcs);
	st->pairs = srctab_count(&thr_pairs);
	pthread_mutex_unlock(&thr_lock);
}

void
auth_throttle_count_refusal(void)
{
	pthread_mutex_lock(&thr_lock);
	thr_refusals++;
	pthread_mutex_unlock(&thr_lock);
}
