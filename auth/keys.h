/*
 * The Convert keys file (DESIGN.md section 4): per-user 32-byte keys for
 * the HMAC-SHA256 of the Auth TLV.
 *
 * The file holds "name base64key" lines (name and key separated by blanks);
 * "#" comments and blank lines are allowed. A name is 1..255 bytes with no
 * blanks or control characters; a key is standard base64 with correct
 * padding that decodes to exactly 32 bytes. Errors name the file and line
 * and never echo key material.
 *
 * A loaded set is immutable and reference counted: a SIGHUP reload builds a
 * new one while live sessions keep the one they started with.
 */
#ifndef MPGW_AUTH_KEYS_H
#define MPGW_AUTH_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes in a key. */
#define AUTH_KEY_LEN 32
/* Size of a buffer for a key in base64 with its NUL (44 + 1). */
#define AUTH_KEY_B64_SIZE 45

struct auth_keys;

/*
 * Load and validate the keys file at path. Returns a set holding one
 * reference, owned by the caller (drop it with auth_keys_unref), or NULL
 * with errno and a "path:line: ..." message in err.
 */
struct auth_keys *auth_keys_load(const char *path, char *err, size_t errlen);

/* Take another reference to k; returns k. Thread-safe. */
struct auth_keys *auth_keys_ref(struct auth_keys *k);

/* Drop a reference; the last one wipes and frees k. NULL is ignored. */
void auth_keys_unref(struct auth_keys *k);

/*
 * Copy user's key into key. Returns false (key untouched) for an unknown
 * user or a NULL k. Thread-safe; the caller wipes key after use.
 */
bool auth_keys_get(
    const struct auth_keys *k, const char *user, uint8_t key[AUTH_KEY_LEN]);

/* Number of users in the file; 0 for NULL. */
size_t auth_keys_count(const struct auth_keys *k);

/*
 * Give user a fresh random key in the keys file at path, adding the line
 * or replacing the user's line atomically (see auth_linefile_set: other
 * lines kept, mode and owner kept, a new file is 0600). On success the key
 * in base64 (what the client sets as MPGW_KEY) is in b64_out, which needs
 * AUTH_KEY_B64_SIZE bytes. Returns 0, or -1 with errno (ERANGE when b64len
 * is too small, EINVAL for a bad name) and a message in err.
 */
int auth_keys_new(const char *path, const char *user, char *b64_out,
    size_t b64len, char *err, size_t errlen);

#endif
