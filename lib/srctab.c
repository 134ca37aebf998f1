#include "lib/srctab.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/siphash.h"

static pthread_once_t st_once = PTHREAD_ONCE_INIT;
static uint8_t st_secret[SIPHASH_KEY_LEN];

/*
 * Fill the secret from getrandom. It can only fail on a kernel without the
 * call (before 3.17); then the clocks and the pid still make it differ
 * between processes, which is the property that matters here (the chains
 * stay bounded by the table size either way).
 */
static void
st_seed(void)
{
	struct timespec ts[2];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(st_secret)) {
		n = getrandom(st_secret + got, sizeof(st_secret) - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			break;
		got += (size_t)n;
	}
	if (got == sizeof(st_secret))
		return;
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	clock_gettime(CLOCK_MONOTONIC, &ts[1]);
	for (size_t i = 0; i < sizeof(st_secret); i++)
		st_secret[i] ^= ((const uint8_t *)ts)[i % sizeof(ts)] ^
		    (uint8_t)(getpid() >> (i % 4 * 8));
}

uint64_t
srctab_hash(const void *p, size_t len)
{
	pthread_once(&st_once, st_seed);
	return siphash24(st_secret, p, len);
}

/* The bucket of key. */
static uint32_t
st_bucket(const struct srctab *t, const uint8_t *key)
{
	return (uint32_t)(srctab_hash(key, t->key_len) % t->cap);
}

int
srctab_find(const struct srctab *t, const uint8_t *key)
{
	uint32_t i;

	for (i = t->slots[st_bucket(t, key)].head; i != 0;
	     i = t->slots[i - 1].hnext)
		if (memcmp(t->slots[i - 1].key, key, t->key_len) == 0)
			return (int)(i - 1);
	return -1;
}

/* Take slot i (index + 1) out of the age list. */
static void
st_unlink(struct srctab *t, uint32_t i)
{
	struct srctab_slot *e = &t->slots[i - 1];

	if (e->newer != 0)
		t->slots[e->newer - 1].older = e->older;
	else
		t->newest = e->older;
	if (e->older != 0)
		t->slots[e->older - 1].newer = e->newer;
	else
		t->oldest = e->newer;
	e->newer = e->older = 0;
}

/* Put slot i (index + 1) at the newest end of the age list. */
static void
st_push(struct srctab *t, uint32_t i)
{
	struct srctab_slot *e = &t->slots[i - 1];

	e->newer = 0;
	e->older = t->newest;
	if (t->newest != 0)
		t->slots[t->newest - 1].newer = i;
	t->newest = i;
	if (t->oldest == 0)
		t->oldest = i;
}

int
srctab_add(struct srctab *t, const uint8_t *key)
{
	struct srctab_slot *e;
	uint32_t b, i;

	if (t->free != 0) {
		i = t->free;
		t->free = t->slots[i - 1].hnext;
	} else if (t->fresh < t->cap)
		i = ++t->fresh;
	else
		return -1;
	e = &t->slots[i - 1];
	memcpy(e->key, key, t->key_len);
	b = st_bucket(t, key);
	e->hnext = t->slots[b].head;
	t->slots[b].head = i;
	st_push(t, i);
	t->used++;
	return (int)(i - 1);
}

void
srctab_del(struct srctab *t, int idx)
{
	uint32_t i = (uint32_t)idx + 1;
	struct srctab_slot *e = &t->slots[i - 1];
	uint32_t *p = &t->slots[st_bucket(t, e->key)].head;

	while (*p != i)
		p = &t->slots[*p - 1].hnext;
	*p = e->hnext;
	st_unlink(t, i);
	e->hnext = t->free;
	t->free = i;
	t->used--;
}

void
srctab_touch(struct srctab *t, int idx)
{
	st_unlink(t, (uint32_t)idx + 1);
	st_push(t, (uint32_t)idx + 1);
}

int
srctab_oldest(const struct srctab *t)
{
	return (int)t->oldest - 1;
}

const uint8_t *
srctab_key(const struct srctab *t, int i)
{
	return t->slots[i].key;
}

unsigned
srctab_count(const struct srctab *t)
{
	return t->used;
}
