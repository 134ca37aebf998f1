/*
 * The names of the shared state's Redis keys ([state] redis, DESIGN.md
 * section 7): pure functions, the same on every instance, so that every
 * gateway sharing a Redis finds the others' entries.
 *
 *	mpgw:replay:<32 hex>	a Convert Auth (user, nonce) seen; string "1"
 *	mpgw:fail:<source>	failed logins from a source; a hash: field "n"
 *				the count, "u:<16 hex>" each user's share
 *	mpgw:block:<source>	the source is refused until the key expires
 *
 * <source> is what the in-process throttle counts (lib/addr.h): an IPv4
 * address ("192.0.2.7", an IPv4-mapped client as IPv4) or an IPv6 /64
 * ("2001:db8:1:2::/64"), readable so that an operator can find and delete
 * a block by hand. User names are hashed: a name typed at a login prompt
 * may be a password typed in the wrong field, and Redis is no place to
 * keep it.
 *
 * The hashes are SHA-256 without a secret, because every instance must
 * compute the same key and the instances share no secret. That is fine
 * here: a replay key is made only for a message whose MAC checked out,
 * and its 96-bit nonce is random, so neither the user nor the nonce can be
 * read back from the key, and nobody without a key can choose what is
 * written. A user tag can be guessed back from a list of likely names by
 * someone who can read the Redis; it reveals no more than which of those
 * names failed to log in from an address.
 */
#ifndef MPGW_AUTH_STATEKEY_H
#define MPGW_AUTH_STATEKEY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room for any key or field below, with its NUL. */
#define AUTH_STATEKEY_MAX 64
/* Bytes in a Convert Auth nonce. */
#define AUTH_STATEKEY_NONCE_LEN 12

/*
 * "mpgw:replay:" and the first 16 bytes, in hex, of SHA-256 over a fixed
 * tag, the nonce and the user name (the nonce has a fixed length, so the
 * encoding is unambiguous). Returns the length written into out (at least
 * AUTH_STATEKEY_MAX bytes), or 0 if hashing failed.
 */
size_t auth_statekey_replay(char out[AUTH_STATEKEY_MAX], const char *user,
    const uint8_t nonce[AUTH_STATEKEY_NONCE_LEN]);

/*
 * "mpgw:fail:<source>" and "mpgw:block:<source>" for client. Return the
 * length written, or 0 for an address with no source (not IPv4 or IPv6).
 */
size_t auth_statekey_fail(char out[AUTH_STATEKEY_MAX],
    const struct sockaddr *client);
size_t auth_statekey_block(char out[AUTH_STATEKEY_MAX],
    const struct sockaddr *client);

/*
 * The hash field of user's failures in a fail key: "u:" and the first 8
 * bytes, in hex, of SHA-256 over a fixed tag and the name. Returns the
 * length written, or 0 if hashing failed.
 */
size_t auth_statekey_user(char out[AUTH_STATEKEY_MAX], const char *user);

#endif
