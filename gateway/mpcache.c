#include "gateway/mpcache.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "lib/addr.h"
#include "lib/srctab.h"

#define MPCACHE_SHARDS 16
#define MPCACHE_SHARD_CAP (MPCACHE_CAPACITY / MPCACHE_SHARDS)
/* family, address (16), port (2) */
#define MPCACHE_KEY_LEN 19

struct mpcache_shard {
	pthread_mutex_t mu;
	struct srctab tab;
	struct srctab_slot slots[MPCACHE_SHARD_CAP];
	double until[MPCACHE_SHARD_CAP];
};

static struct mpcache_shard mpc_shards[MPCACHE_SHARDS];
static pthread_once_t mpc_once = PTHREAD_ONCE_INIT;

static void
mpc_init(void)
{
	for (size_t i = 0; i < MPCACHE_SHARDS; i++) {
		struct mpcache_shard *sh = &mpc_shards[i];

		pthread_mutex_init(&sh->mu, NULL);
		sh->tab = (struct srctab)SRCTAB_INITIALIZER(sh->slots,
		    MPCACHE_KEY_LEN);
	}
}

/* The key of dst (v4-mapped as IPv4) and its shard; NULL for no IP. */
static struct mpcache_shard *
mpc_key(const struct sockaddr *dst, uint8_t key[MPCACHE_KEY_LEN])
{
	struct sockaddr_storage ss;
	const struct sockaddr *u = addr_unmap(dst, &ss);

	if (u == NULL)
		return NULL;
	memset(key, 0, MPCACHE_KEY_LEN);
	key[0] = (uint8_t)u->sa_family;
	if (u->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)u;

		memcpy(key + 1, &sin->sin_addr, 4);
		memcpy(key + 17, &sin->sin_port, 2);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)u;

		memcpy(key + 1, &sin6->sin6_addr, 16);
		memcpy(key + 17, &sin6->sin6_port, 2);
	}
	pthread_once(&mpc_once, mpc_init);
	return &mpc_shards[srctab_hash(key, MPCACHE_KEY_LEN) %
	    MPCACHE_SHARDS];
}

bool
mpcache_no_mptcp(const struct sockaddr *dst, double now)
{
	uint8_t key[MPCACHE_KEY_LEN];
	struct mpcache_shard *sh = mpc_key(dst, key);
	bool no = false;
	int i;

	if (sh == NULL)
		return false;
	pthread_mutex_lock(&sh->mu);
	if ((i = srctab_find(&sh->tab, key)) != -1) {
		if (now < sh->until[i])
			no = true;
		else
			srctab_del(&sh->tab, i);	/* re-probe */
	}
	pthread_mutex_unlock(&sh->mu);
	return no;
}

void
mpcache_note(const struct sockaddr *dst, bool mptcp, double now,
    unsigned ttl)
{
	uint8_t key[MPCACHE_KEY_LEN];
	struct mpcache_shard *sh = mpc_key(dst, key);
	int i;

	if (sh == NULL || ttl == 0)
		return;
	pthread_mutex_lock(&sh->mu);
	i = srctab_find(&sh->tab, key);
	if (mptcp) {
		if (i != -1)
			srctab_del(&sh->tab, i);
	} else {
		if (i != -1)
			srctab_touch(&sh->tab, i);
		else if ((i = srctab_add(&sh->tab, key)) == -1) {
			/* Full: the destination heard of longest ago goes. */
			srctab_del(&sh->tab, srctab_oldest(&sh->tab));
			i = srctab_add(&sh->tab, key);
		}
		sh->until[i] = now + ttl;
	}
	pthread_mutex_unlock(&sh->mu);
}

unsigned
mpcache_count(void)
{
	unsigned n = 0;

	pthread_once(&mpc_once, mpc_init);
	for (size_t i = 0; i < MPCACHE_SHARDS; i++) {
		pthread_mutex_lock(&mpc_shards[i].mu);
		n += srctab_count(&mpc_shards[i].tab);
		pthread_mutex_unlock(&mpc_shards[i].mu);
	}
	return n;
}
