#include "gateway/snap.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/keys.h"
#include "auth/linefile.h"
#include "auth/tls.h"
#include "auth/userdb.h"

static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gw_snap *snap_cur;

/*
 * upstream.via: the keys file must hold via_user's key, and the
 * concentrator's name must resolve (here, once per load, on the main
 * thread: a name that stops resolving fails the next reload, not sessions).
 */
static int
snap_load_via(struct gw_snap *s, char *err, size_t errlen)
{
	const struct conf_via *v = &s->conf.via;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_protocol = IPPROTO_TCP, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	uint8_t key[AUTH_KEY_LEN];
	char port[8];
	int rc;

	if ((s->via_keys = auth_keys_load(s->conf.via_keys, err, errlen)) ==
	    NULL)
		return -1;
	if (!auth_keys_get(s->via_keys, s->conf.via_user, key)) {
		snprintf(err, errlen, "%s: upstream.via_user: %s has no key in "
		    "%s", s->conf.path, s->conf.via_user, s->conf.via_keys);
		goto err_keys;
	}
	explicit_bzero(key, sizeof(key));
	snprintf(port, sizeof(port), "%u", v->port);
	if ((rc = getaddrinfo(v->host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: upstream.via: %s: %s", s->conf.path,
		    v->host, rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		goto err_keys;
	}
	for (ai = res; ai != NULL && s->n_via < SNAP_VIA_MAX; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memcpy(&s->via_addrs[s->n_via], ai->ai_addr, ai->ai_addrlen);
		s->via_lens[s->n_via++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (s->n_via == 0) {
		snprintf(err, errlen, "%s: upstream.via: %s has no IPv4 or IPv6 "
		    "address", s->conf.path, v->host);
		goto err_keys;
	}
	return 0;

err_keys:
	auth_keys_unref(s->via_keys);
	s->via_keys = NULL;
	return -1;
}

/*
 * state.redis's host, resolved once per load on the main thread (hiredis
 * would resolve it on a worker's loop, blocking it): its first IPv4 or
 * IPv6 address, numeric.
 */
static int
snap_resolve_redis(struct gw_snap *s, char *err, size_t errlen)
{
	const struct conf_redis *r = &s->conf.redis;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_protocol = IPPROTO_TCP, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", r->port);
	if ((rc = getaddrinfo(r->host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: state.redis: %s: %s", s->conf.path,
		    r->host, rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    getnameinfo(ai->ai_addr, ai->ai_addrlen, s->redis_ip,
		    sizeof(s->redis_ip), NULL, 0, NI_NUMERICHOST) == 0)
			break;
	freeaddrinfo(res);
	if (ai == NULL) {
		snprintf(err, errlen, "%s: state.redis: %s has no IPv4 or IPv6 "
		    "address", s->conf.path, r->host);
		return -1;
	}
	return 0;
}

/*
 * state.redis's password: from redis_password_file (its first line, the
 * file a secret by its mode, as the users and keys files), or from the
 * URL, which is then a secret too: a config file others may read must
 * not hold it.
 */
static int
snap_load_redis(struct gw_snap *s, char *err, size_t errlen)
{
	const char *path = s->conf.redis_password_file;
	char *line = NULL;
	size_t cap = 0, n;
	struct stat st;
	ssize_t len;
	FILE *f;
	int rc = -1;

	if (!s->conf.redis.set)
		return 0;
	if (snap_resolve_redis(s, err, errlen) == -1)
		return -1;
	if (path[0] == '\0') {
		if (s->conf.redis.password[0] == '\0')
			return 0;
		if (auth_secret_file_check(s->conf.path, err, errlen) == -1) {
			n = strlen(err);
			snprintf(err + n, errlen - n, " (state.redis holds a "
			    "password: put it in state.redis_password_file)");
			return -1;
		}
		memcpy(s->redis_password, s->conf.redis.password,
		    sizeof(s->redis_password));
		return 0;
	}
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "state.redis_password_file: %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == -1) {
		snprintf(err, errlen, "state.redis_password_file: %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (auth_secret_mode_check(path, &st, err, errlen) == -1)
		goto out;
	if ((len = getline(&line, &cap, f)) == -1)
		len = 0;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len == 0 || (size_t)len >= sizeof(s->redis_password) ||
	    memchr(line, '\0', (size_t)len) != NULL) {
		snprintf(err, errlen, "state.redis_password_file: %s: the first "
		    "line must hold the password (1..%zu bytes)", path,
		    sizeof(s->redis_password) - 1);
		goto out;
	}
	memcpy(s->redis_password, line, (size_t)len);
	s->redis_password[len] = '\0';
	rc = 0;
out:
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(f);
	return rc;
}

struct gw_snap *
snap_load(const char *path, char *err, size_t errlen)
{
	struct gw_snap *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		strerror_r(errno, err, errlen);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	if (conf_load(&s->conf, path, err, errlen) == -1)
		goto err_free;
	if (s->conf.users[0] != '\0' && (s->users = auth_userdb_load(
	    s->conf.users, s->conf.auth_cache_ttl, err, errlen)) == NULL)
		goto err_free;
	if (s->conf.tls_cert[0] != '\0' && (s->tls = auth_tls_ctx(&s->conf,
	    err, errlen)) == NULL)
		goto err_users;
	if (s->conf.convert_keys[0] != '\0' && (s->keys = auth_keys_load(
	    s->conf.convert_keys, err, errlen)) == NULL)
		goto err_tls;
	if (s->conf.via.set && snap_load_via(s, err, errlen) == -1)
		goto err_keys;
	if (snap_load_redis(s, err, errlen) == -1)
		goto err_via;
	return s;

err_via:
	auth_keys_unref(s->via_keys);
err_keys:
	auth_keys_unref(s->keys);
err_tls:
	SSL_CTX_free(s->tls);
err_users:
	auth_userdb_unref(s->users);
err_free:
	explicit_bzero(&s->conf.redis, sizeof(s->conf.redis));
	free(s);
	return NULL;
}

void
snap_install(struct gw_snap *s)
{
	struct gw_snap *old;

	pthread_mutex_lock(&snap_mu);
	old = snap_cur;
	snap_cur = s;
	pthread_mutex_unlock(&snap_mu);
	if (old != NULL)
		snap_unref(old);
}

struct gw_snap *
snap_current(void)
{
	struct gw_snap *s;

	pthread_mutex_lock(&snap_mu);
	s = snap_ref(snap_cur);
	pthread_mutex_unlock(&snap_mu);
	return s;
}

struct gw_snap *
snap_ref(struct gw_snap *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void
snap_unref(struct gw_snap *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	auth_userdb_unref(s->users);
	SSL_CTX_free(s->tls);
	auth_keys_unref(s->keys);
	auth_keys_unref(s->via_keys);
	explicit_bzero(s->redis_password, sizeof(s->redis_password));
	explicit_bzero(&s->conf.redis, sizeof(s->conf.redis));
	free(s);
}
