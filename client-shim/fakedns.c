#include "client-shim/fakedns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FDNS_MAGIC 0x6d7067772d646e73ull	/* "mpgw-dns" */
#define FDNS_VERSION 1
#define FDNS_BUCKETS (2 * 65536u)		/* power of two, > 2 * slots */

struct fdns_entry {
	uint32_t hash;
	uint8_t len;				/* 0 = unused */
	char name[256];
};

struct fdns_table {
	uint64_t magic;
	uint32_t version;
	uint32_t nslots;
	pthread_mutex_t lock;
	uint32_t next;				/* next slot to hand out */
	uint32_t buckets[FDNS_BUCKETS];		/* 0 empty, else slot + 1 */
	struct fdns_entry e[SHIM_FDNS_SLOTS];
};

void
shim_fdns_default_path(char *out, size_t cap)
{
	snprintf(out, cap, "/dev/shm/mpgw-dns-%u", (unsigned)geteuid());
}

static int
table_init(struct fdns_table *t)
{
	pthread_mutexattr_t ma;
	int rc;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(&t->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	t->version = FDNS_VERSION;
	t->nslots = SHIM_FDNS_SLOTS;
	t->next = 0;
	__atomic_store_n(&t->magic, FDNS_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static struct fdns_table *
map_fd(int fd)
{
	void *p = mmap(NULL, sizeof(struct fdns_table),
	    PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int
open_existing(struct shim_fdns *d, const char *path)
{
	struct stat st;
	int fd, saved;

	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto err_close;
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0 ||
	    st.st_size != (off_t)sizeof(struct fdns_table)) {
		errno = EPERM;
		goto err_close;
	}
	d->t = map_fd(fd);
	if (d->t == NULL)
		goto err_close;
	close(fd);
	if (__atomic_load_n(&d->t->magic, __ATOMIC_ACQUIRE) != FDNS_MAGIC ||
	    d->t->version != FDNS_VERSION || d->t->nslots != SHIM_FDNS_SLOTS) {
		shim_fdns_close(d);
		errno = EPROTO;
		return -1;
	}
	return 0;
err_close:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Builds a table under a temporary name and links it into place, so no
 * process ever maps a half-initialised one. */
static int
create_new(struct shim_fdns *d, const char *path)
{
	char tmp[SHIM_PATH_MAX + 32];
	int fd, rc;

	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1)
		return -1;
	if (ftruncate(fd, (off_t)sizeof(struct fdns_table)) == -1 ||
	    (d->t = map_fd(fd)) == NULL) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (table_init(d->t) == -1) {
		shim_fdns_close(d);
		unlink(tmp);
		return -1;
	}
	rc = link(tmp, path);
	unlink(tmp);
	if (rc == -1) {
		shim_fdns_close(d);
		if (errno == EEXIST)
			return open_existing(d, path);
		return -1;
	}
	return 0;
}

int
shim_fdns_open(struct shim_fdns *d, const char *path)
{
	void *p;

	d->t = NULL;
	if (path == NULL) {
		p = mmap(NULL, sizeof(struct fdns_table),
		    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -1;
		d->t = p;
		if (table_init(d->t) == -1) {
			shim_fdns_close(d);
			return -1;
		}
		return 0;
	}
	if (strlen(path) >= SHIM_PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (open_existing(d, path) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	return create_new(d, path);
}

void
shim_fdns_close(struct shim_fdns *d)
{
	if (d->t != NULL)
		munmap(d->t, sizeof(struct fdns_table));
	d->t = NULL;
}

static void
table_lock(struct fdns_table *t)
{
	/* A holder that died mid-update leaves at worst one stale entry. */
	if (pthread_mutex_lock(&t->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&t->lock);
}

static void
table_unlock(struct fdns_table *t)
{
	pthread_mutex_unlock(&t->lock);
}

/* FNV-1a. */
static uint32_t
name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

/* Lower-cases name into out and drops one trailing dot: length or -1. */
static int
normalise(const char *name, char out[256])
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > 255)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		out[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
	}
	out[n] = '\0';
	return (int)n;
}

/* Removes slot's bucket by backward-shift deletion (linear probing). */
static void
bucket_remove(struct fdns_table *t, uint32_t slot)
{
	uint32_t mask = FDNS_BUCKETS - 1;
	uint32_t i = t->e[slot].hash & mask, j, k;

	while (t->buckets[i] != slot + 1) {
		if (t->buckets[i] == 0)
			return;
		i = (i + 1) & mask;
	}
	j = i;
	for (;;) {
		t->buckets[i] = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (t->buckets[j] == 0)
				return;
			k = t->e[t->buckets[j] - 1].hash & mask;
			/* Move j back to i unless k lies cyclically in (i, j]. */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		t->buckets[i] = t->buckets[j];
		i = j;
	}
}

int
shim_fdns_put(struct shim_fdns *d, const char *name, uint32_t *slot)
{
	struct fdns_table *t = d->t;
	uint32_t mask = FDNS_BUCKETS - 1, h, i, s;
	char norm[256];
	int n;

	if ((n = normalise(name, norm)) == -1) {
		errno = EINVAL;
		return -1;
	}
	h = name_hash(norm, (size_t)n);
	table_lock(t);
	for (i = h & mask; t->buckets[i] != 0; i = (i + 1) & mask) {
		struct fdns_entry *e = &t->e[t->buckets[i] - 1];

		if (e->hash == h && e->len == n &&
		    memcmp(e->name, norm, (size_t)n) == 0) {
			*slot = t->buckets[i] - 1;
			table_unlock(t);
			return 0;
		}
	}
	s = t->next;
	t->next = (s + 1) % t->nslots;
	if (t->e[s].len != 0)
		bucket_remove(t, s);
	t->e[s].hash = h;
	memcpy(t->e[s].name, norm, (size_t)n + 1);
	t->e[s].len = (uint8_t)n;
	for (i = h & mask; t->buckets[i] != 0; i = (i + 1) & mask)
		;
	t->buckets[i] = s + 1;
	table_unlock(t);
	*slot = s;
	return 0;
}

int
shim_fdns_name(struct shim_fdns *d, uint32_t slot, char *out, size_t cap)
{
	struct fdns_table *t = d->t;
	int rc = -1;

	if (slot >= SHIM_FDNS_SLOTS) {
		errno = ENOENT;
		return -1;
	}
	table_lock(t);
	if (t->e[slot].len == 0) {
		errno = ENOENT;
	} else if ((size_t)t->e[slot].len >= cap) {
		errno = ERANGE;
	} else {
		memcpy(out, t->e[slot].name, (size_t)t->e[slot].len + 1);
		rc = 0;
	}
	table_unlock(t);
	return rc;
}

/* Adds off to the big-endian number a[0..n). */
static void
add_be(uint8_t *a, size_t n, uint32_t off)
{
	uint32_t carry = off;

	for (size_t i = n; i-- > 0 && carry != 0;) {
		uint32_t v = a[i] + (carry & 0xff);

		a[i] = (uint8_t)v;
		carry = (carry >> 8) + (v >> 8);
	}
}

void
shim_fdns_addr(const struct shim_net *net, uint32_t slot, uint16_t port,
    struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (net->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		uint8_t *a = (uint8_t *)&sin->sin_addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(a, net->addr, 4);
		add_be(a, 4, slot + 1);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(sin6->sin6_addr.s6_addr, net->addr, 16);
		add_be(sin6->sin6_addr.s6_addr, 16, slot + 1);
		*len = sizeof(*sin6);
	}
}

bool
shim_fdns_slot(const struct shim_net *net, const struct sockaddr *sa,
    uint32_t *slot)
{
	const uint8_t *a;
	uint32_t off;
	size_t n;

	if (net->family == 0 || !shim_net_contains(net, sa))
		return false;
	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		n = 4;
	} else {
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		n = 16;
	}
	/* The prefix is at most n*8-16 bits, so the offset is in the
	 * last 32 bits; every byte above them must equal the base. */
	for (size_t i = 0; i < n - 4; i++)
		if (a[i] != net->addr[i])
			return false;
	off = ((uint32_t)a[n - 4] << 24 | (uint32_t)a[n - 3] << 16 |
	    (uint32_t)a[n - 2] << 8 | a[n - 1]) -
	    ((uint32_t)net->addr[n - 4] << 24 |
	    (uint32_t)net->addr[n - 3] << 16 |
	    (uint32_t)net->addr[n - 2] << 8 | net->addr[n - 1]);
	if (off == 0 || off > SHIM_FDNS_SLOTS)
		return false;
	*slot = off - 1;
	return true;
}
