#include "auth/replay.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lib/siphash.h"

/*
 * One slot of the open-addressing table (linear probing). tag is the keyed
 * hash of (user, nonce), never 0; 0 marks an empty slot. Its low bits pick
 * the home slot.
 */
struct rp_slot {
	uint64_t tag;
	double expires;
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
	uint8_t key[SIPHASH_KEY_LEN];
	uint64_t fresh, replays, full, stale;
} rp = {.lock = PTHREAD_MUTEX_INITIALIZER};

/*
 * The tag of (user, nonce): SipHash of nonce || user. The nonce has a
 * fixed length, so the encoding is unambiguous. Never 0.
 */
static uint64_t
rp_tag(const char *user, const uint8_t nonce[AUTH_REPLAY_NONCE_LEN])
{
	struct siphash s;
	uint64_t h;

	siphash_init(&s, rp.key);
	siphash_update(&s, nonce, AUTH_REPLAY_NONCE_LEN);
	siphash_update(&s, user, strlen(user));
	h = siphash_final(&s);
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
	if (RAND_bytes(rp.key, sizeof(rp.key)) != 1) {
		errno = EIO;
		goto out;
	}
	if ((rp.slots = calloc(nslots, sizeof(*rp.slots))) == NULL)
		goto out;
	rp.nslots = nslots;
	rp.capacity = capacity;
	rp.used = 0;
	rp.clock = -INFINITY;
	rp.full_until = -INFINITY;
	rp.fresh = rp.replays = rp.full = rp.stale = 0;
	rc = 0;
out:
	if (rc == -1 && rp.slots == NULL)
		OPENSSL_cleanse(rp.key, sizeof(rp.key));
	pthread_mutex_unlock(&rp.lock);
	return rc;
}

/*
 * Test tag and remember it until expires_at, which is after rp.clock.
 * Caller holds the lock and has set up the table.
 */
static enum auth_replay_res
rp_check_locked(uint64_t tag, double expires_at)
{
	size_t i;

	i = rp_home(tag);
	while (rp.slots[i].tag != 0) {
		if (rp.slots[i].expires <= rp.clock) {
			rp_delete(i); /* look at slot i again */
			continue;
		}
		if (rp.slots[i].tag == tag) {
			rp.replays++;
			return AUTH_REPLAY_SEEN;
		}
		i = (i + 1) & (rp.nslots - 1);
	}
	if (rp.used >= rp.capacity) {
		/* Until full_until every entry is live: no need to look. */
		if (rp.clock >= rp.full_until)
			rp_sweep();
		if (rp.used >= rp.capacity) {
			rp.full++;
			return AUTH_REPLAY_FULL;
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
	return AUTH_REPLAY_FRESH;
}

enum auth_replay_res
auth_replay_check(const char *user, const uint8_t nonce[AUTH_REPLAY_NONCE_LEN],
    double now, double expires_at)
{
	enum auth_replay_res res;
	uint64_t tag;

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
	res = rp_check_locked(tag, expires_at);
out:
	pthread_mutex_unlock(&rp.lock);
	return res;
}

enum auth_replay_msg
auth_replay_check_msg(const char *user,
    const uint8_t nonce[AUTH_REPLAY_NONCE_LEN], uint32_t ts, double now,
    unsigned max_skew)
{
	enum auth_replay_msg res = AUTH_REPLAY_MSG_FULL;
	uint64_t tag;

	tag = rp_tag(user, nonce);
	pthread_mutex_lock(&rp.lock);
	if (rp.slots == NULL)
		goto out;
	if (!isfinite(now)) {
		res = AUTH_REPLAY_MSG_STALE;
		rp.stale++;
		goto out;
	}
	if (now > rp.clock)
		rp.clock = now;
	/*
	 * The window is judged on the cache's clock, the one entries expire
	 * against: timely here means its entry would still be live.
	 */
	if (rp.clock - ts >= max_skew || (double)ts - rp.clock >= max_skew) {
		res = AUTH_REPLAY_MSG_STALE;
		rp.stale++;
		goto out;
	}
	switch (rp_check_locked(tag, (double)ts + max_skew)) {
	case AUTH_REPLAY_FRESH:
		res = AUTH_REPLAY_MSG_FRESH;
		break;
	case AUTH_REPLAY_SEEN:
		res = AUTH_REPLAY_MSG_SEEN;
		break;
	case AUTH_REPLAY_FULL:
		res = AUTH_REPLAY_MSG_FULL;
		break;
	}
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
		st->stale = rp.stale;
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
	rp.fresh = rp.replays = rp.full = rp.stale = 0;
	OPENSSL_cleanse(rp.key, sizeof(rp.key));
	pthread_mutex_unlock(&rp.lock);
}
