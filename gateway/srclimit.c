#include "gateway/srclimit.h"

#include <pthread.h>
#include <stdint.h>

#include "lib/addr.h"
#include "lib/srctab.h"

/* A source stays in the table exactly while its count is above zero. */
static pthread_mutex_t src_mu = PTHREAD_MUTEX_INITIALIZER;
static struct srctab_slot src_slots[SRCLIMIT_SOURCES];
static struct srctab src_tab = SRCTAB_INITIALIZER(src_slots, ADDR_KEY_LEN);
static unsigned src_count[SRCLIMIT_SOURCES];

bool
srclimit_acquire(const struct sockaddr *sa, unsigned max)
{
	uint8_t key[ADDR_KEY_LEN];
	bool ok = true;
	int i;

	if (max == 0)
		return true;
	if (!addr_source_key(sa, key))
		return true; /* not an IP source: nothing to count */
	pthread_mutex_lock(&src_mu);
	if ((i = srctab_find(&src_tab, key)) == -1) {
		/* Every slot is an open session's: too many sources. */
		if ((i = srctab_add(&src_tab, key)) == -1) {
			ok = false;
			goto out;
		}
		src_count[i] = 0;
	} else if (src_count[i] >= max) {
		ok = false;
		goto out;
	}
	src_count[i]++;
out:
	pthread_mutex_unlock(&src_mu);
	return ok;
}

void
srclimit_release(const struct sockaddr *sa)
{
	uint8_t key[ADDR_KEY_LEN];
	int i;

	if (!addr_source_key(sa, key))
		return;
	pthread_mutex_lock(&src_mu);
	if ((i = srctab_find(&src_tab, key)) != -1 && --src_count[i] == 0)
		srctab_del(&src_tab, i);
	pthread_mutex_unlock(&src_mu);
}

unsigned
srclimit_sources(void)
{
	unsigned n;

	pthread_mutex_lock(&src_mu);
	n = srctab_count(&src_tab);
	pthread_mutex_unlock(&src_mu);
	return n;
}
