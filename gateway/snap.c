#include "gateway/snap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/keys.h"
#include "auth/tls.h"
#include "auth/userdb.h"

static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gw_snap *snap_cur;

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
	return s;

err_tls:
	SSL_CTX_free(s->tls);
err_users:
	auth_userdb_unref(s->users);
err_free:
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
	free(s);
}
