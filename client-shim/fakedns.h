/*
 * The remote-DNS fake-address table (DESIGN.md section 5).
 *
 * A name gets a slot; slot s stands for the address base + s + 1 in both
 * fake blocks (fake_net4 and fake_net6), so the app may ask for either
 * family and the shim maps the address back to the name at connect time.
 *
 * The table is a file-backed shared mapping (default /dev/shm/mpgw-dns-UID,
 * one per user, mode 0600) so it survives fork, exec, the parent exiting,
 * and apps that close every descriptor: it is mapped once and its fd closed
 * at once. A robust process-shared mutex guards it. When all slots are used
 * the oldest one is reused (a ring), so a long-lived address may in the end
 * name another host; 65534 names are a lot for one user.
 */
#ifndef MPGW_FAKEDNS_H
#define MPGW_FAKEDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "client-shim/shimconf.h"

#define SHIM_FDNS_SLOTS 65534u

struct fdns_table;

struct shim_fdns {
	struct fdns_table *t;		/* NULL when not open */
};

/* The per-user default path, /dev/shm/mpgw-dns-UID. */
void shim_fdns_default_path(char *out, size_t cap);

/*
 * Maps the table at path, creating it if missing (atomically: built under
 * a temporary name, then linked). path NULL maps an anonymous shared table
 * (fork only). A file owned by another user, readable by others, or of the
 * wrong size is refused. 0 or -1 with errno.
 */
int shim_fdns_open(struct shim_fdns *d, const char *path);
void shim_fdns_close(struct shim_fdns *d);

/* The slot of name (case-folded, one trailing dot dropped), allocating one
 * if needed. 0, or -1 (EINVAL for an empty or too long name). */
int shim_fdns_put(struct shim_fdns *d, const char *name, uint32_t *slot);

/* The name in slot; 0 or -1 (ENOENT) if the slot is unused. */
int shim_fdns_name(struct shim_fdns *d, uint32_t slot, char *out, size_t cap);

/* The fake address of slot in net, with port (host order). */
void shim_fdns_addr(const struct shim_net *net, uint32_t slot, uint16_t port,
    struct sockaddr_storage *ss, socklen_t *len);

/* Whether sa is a fake address of net; *slot then says which. */
bool shim_fdns_slot(const struct shim_net *net, const struct sockaddr *sa,
    uint32_t *slot);

#endif
