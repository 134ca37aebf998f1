#include "gateway/snap.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/keys.h"
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
	return s;

err_keys:
	auth_keys_unref(s->keys);
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
	auth_keys_unref(s->via_keys);
	free(s);
}
