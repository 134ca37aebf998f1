#include "gateway/srclimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "lib/addr.h"

/*
 * Open addressing with linear probing and backward-shift deletion, so no
 * tombstones pile up. A slot is in use while its count is above zero.
 */
#define SRC_SLOTS 8192

struct src_slot {
	uint8_t addr[ADDR_KEY_LEN];	/* addr_source_key() */
	unsigned count;
};

static pthread_mutex_t src_mu = PTHREAD_MUTEX_INITIALIZER;
static struct src_slot src_table[SRC_SLOTS];
static unsigned src_used;

static size_t
src_hash(const uint8_t key[ADDR_KEY_LEN])
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (int i = 0; i < ADDR_KEY_LEN; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return (size_t)(h % SRC_SLOTS);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t
src_find(const uint8_t key[ADDR_KEY_LEN])
{
	size_t i = src_hash(key);

	while (src_table[i].count > 0 && memcmp(src_table[i].addr, key, ADDR_KEY_LEN))
		i = (i + 1) % SRC_SLOTS;
	return i;
}

bool
srclimit_acquire(const struct sockaddr *sa, unsigned max)
{
	uint8_t key[ADDR_KEY_LEN];
	size_t i;
	bool ok = true;

	if (max == 0)
		return true;
	if (!addr_source_key(sa, key))
		return true;	/* not an IP source: nothing to count */
	pthread_mutex_lock(&src_mu);
	i = src_find(key);
	if (src_table[i].count == 0) {
		if (src_used >= SRC_SLOTS - 1) {
			/* Every slot busy: too many sources to count. */
			ok = false;
			goto out;
		}
		memcpy(src_table[i].addr, key, ADDR_KEY_LEN);
		src_used++;
	} else if (src_table[i].count >= max) {
		ok = false;
		goto out;
	}
	src_table[i].count++;
out:
	pthread_mutex_unlock(&src_mu);
	return ok;
}

void
srclimit_release(const struct sockaddr *sa)
{
	uint8_t key[ADDR_KEY_LEN];
	size_t i, j;

	if (!addr_source_key(sa, key))
		return;
	pthread_mutex_lock(&src_mu);
	i = src_find(key);
	if (src_table[i].count == 0 || --src_table[i].count > 0)
		goto out;
	src_used--;
	/* Pull later members of the probe run back over the hole. */
	for (j = (i + 1) % SRC_SLOTS; src_table[j].count > 0;
	    j = (j + 1) % SRC_SLOTS) {
		size_t home = src_hash(src_table[j].addr);

		if ((j > i && (home <= i || home > j)) ||
		    (j < i && home <= i && home > j)) {
			src_table[i] = src_table[j];
			src_table[j].count = 0;
			i = j;
		}
	}
out:
	pthread_mutex_unlock(&src_mu);
}
