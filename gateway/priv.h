/*
 * Privileges: mpgw starts as root only to bind its listeners (ports below
 * 1024), then becomes gateway.user for good: supplementary groups, group,
 * user, in that order, with no capability left. A reload then reads the
 * config and the files it names as that user, so priv_check_files() proves
 * beforehand that it can.
 */
#ifndef MPGW_PRIV_H
#define MPGW_PRIV_H

#include <stddef.h>

#include "conf/conf.h"

/*
 * Become c's user and group (c->uid, c->gid; c->group empty: the user's
 * own supplementary groups) and prove it cannot be undone: setuid(0) and
 * setgid(0) fail, every uid and gid is the target, no capability is left.
 * Logs what it did. Nothing to do (0) when c->user is empty, or when mpgw
 * already runs as that user and group. Call once every listener is bound
 * and before any thread starts. 0, or -1 with a message in err.
 */
int priv_drop(const struct gw_conf *c, char *err, size_t errlen);

/*
 * Check, as c's user in a child process that drops exactly as
 * priv_drop() would, that the files a SIGHUP reload reads can be read
 * (the config at c->path, auth.users, convert.keys, tls.cert, tls.key,
 * tls.client_ca) and the access log file appended to (or created in its
 * directory). 0 when they can or c->user is empty; -1 with a message in err
 * naming the first file that cannot, or saying why the switch itself is
 * impossible (another user, and mpgw not root).
 */
int priv_check_files(const struct gw_conf *c, char *err, size_t errlen);

#endif
