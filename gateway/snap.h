/*
 * The running configuration: the parsed config plus what was loaded from
 * the files it names (users, keys, TLS contexts) and the concentrator's
 * addresses (upstream.via, resolved at load). A session takes a
 * reference when it starts and keeps that snapshot to the end, so a SIGHUP
 * reload never changes the rules under a live session.
 */
#ifndef MPGW_SNAP_H
#define MPGW_SNAP_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "conf/conf.h"

struct auth_keys;
struct auth_userdb;

#define SNAP_VIA_MAX 4

struct gw_snap {
	atomic_int refs;
	struct gw_conf conf;
	struct auth_userdb *users;	/* NULL when auth.users is empty */
	SSL_CTX *tls;			/* NULL when tls.cert is empty */
	struct auth_keys *keys;		/* NULL when convert.keys is empty */
	/* upstream.via: the concentrator's addresses and the signing keys. */
	struct auth_keys *via_keys;	/* NULL when upstream.via is empty */
	size_t n_via;
	struct sockaddr_storage via_addrs[SNAP_VIA_MAX];
	socklen_t via_lens[SNAP_VIA_MAX];
	/* state.redis: its address (resolved at load) and its password. */
	char redis_ip[64];
	char redis_password[256];
};

/*
 * Build a snapshot from the config file at path. NULL with a message in err
 * (file:line where there is one) if anything fails to load.
 */
struct gw_snap *snap_load(const char *path, char *err, size_t errlen);
/* Make s (or none: NULL) the current snapshot; takes the caller's reference. */
void snap_install(struct gw_snap *s);
/* The current snapshot, with a reference for the caller. */
struct gw_snap *snap_current(void);
struct gw_snap *snap_ref(struct gw_snap *s);
void snap_unref(struct gw_snap *s);

#endif
