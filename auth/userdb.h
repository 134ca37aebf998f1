/*
 * The users file and password checks (DESIGN.md section 3).
 *
 * The file holds "name:hash" lines; "#" comments and blank lines are
 * allowed. Hashes are crypt(3) strings ($y$ yescrypt, $gy$, $7$ scrypt,
 * $6$ sha512crypt, $5$ sha256crypt, $2b$/$2y$ bcrypt) as printed by
 * `mkpasswd -m yescrypt`; plaintext, DES and MD5 entries are refused with
 * file:line.
 *
 * A loaded db is immutable apart from its cache of successful checks and is
 * reference counted: a SIGHUP reload builds a new db (with an empty cache)
 * while live sessions and pool threads keep the one they started with.
 */
#ifndef MPGW_AUTH_USERDB_H
#define MPGW_AUTH_USERDB_H

#include <stdbool.h>
#include <stddef.h>

/* Longest user name (RFC 1929 ULEN is one byte). */
#define AUTH_USER_MAX 255
/* Enough for any hash auth_hash_password() makes (libcrypt's
 * CRYPT_OUTPUT_SIZE). */
#define AUTH_HASH_MAX 384

struct auth_userdb;

/*
 * Load and validate the users file at path. Successful checks are
 * remembered for cache_ttl seconds (0 disables the cache). Returns a db
 * holding one reference, owned by the caller (drop it with
 * auth_userdb_unref), or NULL with a "path:line: ..." message in err.
 */
struct auth_userdb *auth_userdb_load(
    const char *path, unsigned cache_ttl, char *err, size_t errlen);

/* Take another reference to db; returns db. Thread-safe. */
struct auth_userdb *auth_userdb_ref(struct auth_userdb *db);

/* Drop a reference; the last one frees db. NULL is ignored. Thread-safe. */
void auth_userdb_unref(struct auth_userdb *db);

/*
 * Check user's password. BLOCKING (one crypt(3) hash, tens of ms for
 * yescrypt): call it from a pool thread, never from an event loop.
 * Thread-safe. An unknown user costs the same hash work as a known one.
 * A success is remembered for the db's cache ttl.
 */
bool auth_userdb_check(
    struct auth_userdb *db, const char *user, const char *pass);

/*
 * Non-blocking: true if a successful auth_userdb_check() of exactly this
 * user and password is remembered and not expired. Safe on an event-loop
 * thread.
 */
bool auth_userdb_cached(
    struct auth_userdb *db, const char *user, const char *pass);

/* Is user in the file? */
bool auth_userdb_has_user(const struct auth_userdb *db, const char *user);

/* Number of users in the file. */
size_t auth_userdb_count(const struct auth_userdb *db);

/*
 * Make a yescrypt hash of pass with a fresh random salt into out (outlen
 * bytes, AUTH_HASH_MAX is enough). Blocking. Returns 0, or -1 with errno
 * (ERANGE if out is too small).
 */
int auth_hash_password(const char *pass, char *out, size_t outlen);

/*
 * Add user with hash to the users file at path, or replace its line,
 * keeping every other line as it is. The file is replaced atomically
 * (temporary file in the same directory, fsync, rename) and keeps its mode
 * and owner; a new file gets mode 0600 (auth_linefile_set). Returns 0, or
 * -1 with errno and a message in err.
 */
int auth_userdb_set(const char *path, const char *user, const char *hash,
    char *err, size_t errlen);

#endif
