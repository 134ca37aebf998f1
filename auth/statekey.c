#include "auth/statekey.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lib/addr.h"

/* Tags keep the two hashes apart, and leave room for another format. */
#define REPLAY_TAG "mpgw-replay-1"
#define USER_TAG "mpgw-user-1"
/* The longest user name a Convert message or RFC 1929 carries. */
#define USER_MAX 255

static void
hex(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/*
 * SHA-256 of the tag (with its NUL), then a and b, into md. b is cut at
 * USER_MAX bytes: no caller passes more. true on success.
 */
static bool
digest(const char *tag, const uint8_t *a, size_t alen, const char *b,
    uint8_t md[EVP_MAX_MD_SIZE])
{
	uint8_t buf[32 + AUTH_STATEKEY_NONCE_LEN + USER_MAX];
	size_t tlen = strlen(tag) + 1, blen = strnlen(b, USER_MAX), n = 0;
	unsigned mdlen = 0;
	bool ok;

	memcpy(buf, tag, tlen);
	n += tlen;
	if (alen > 0)
		memcpy(buf + n, a, alen);
	n += alen;
	memcpy(buf + n, b, blen);
	n += blen;
	ok = EVP_Digest(buf, n, md, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen == 32;
	OPENSSL_cleanse(buf, sizeof(buf));
	return ok;
}

size_t
auth_statekey_replay(char out[AUTH_STATEKEY_MAX], const char *user,
    const uint8_t nonce[AUTH_STATEKEY_NONCE_LEN])
{
	static const char prefix[] = "mpgw:replay:";
	uint8_t md[EVP_MAX_MD_SIZE];

	if (!digest(REPLAY_TAG, nonce, AUTH_STATEKEY_NONCE_LEN, user, md))
		return 0;
	memcpy(out, prefix, sizeof(prefix) - 1);
	hex(out + sizeof(prefix) - 1, md, 16);
	return sizeof(prefix) - 1 + 32;
}

/* prefix and client's source as text ("192.0.2.7", "2001:db8::/64"). */
static size_t
source_key(char out[AUTH_STATEKEY_MAX], const char *prefix,
    const struct sockaddr *client)
{
	uint8_t key[ADDR_KEY_LEN], a6[16] = { 0 };
	char text[INET6_ADDRSTRLEN];
	int n;

	if (!addr_source_key(client, key))
		return 0;
	if (key[0] == 4) {
		if (inet_ntop(AF_INET, key + 1, text, sizeof(text)) == NULL)
			return 0;
		n = snprintf(out, AUTH_STATEKEY_MAX, "%s%s", prefix, text);
	} else {
		memcpy(a6, key + 1, 8);
		if (inet_ntop(AF_INET6, a6, text, sizeof(text)) == NULL)
			return 0;
		n = snprintf(out, AUTH_STATEKEY_MAX, "%s%s/64", prefix, text);
	}
	return n > 0 && n < AUTH_STATEKEY_MAX ? (size_t)n : 0;
}

size_t
auth_statekey_fail(char out[AUTH_STATEKEY_MAX], const struct sockaddr *client)
{
	return source_key(out, "mpgw:fail:", client);
}

size_t
auth_statekey_block(char out[AUTH_STATEKEY_MAX],
    const struct sockaddr *client)
{
	return source_key(out, "mpgw:block:", client);
}

size_t
auth_statekey_user(char out[AUTH_STATEKEY_MAX], const char *user)
{
	uint8_t md[EVP_MAX_MD_SIZE];

	if (!digest(USER_TAG, NULL, 0, user, md))
		return 0;
	out[0] = 'u';
	out[1] = ':';
	hex(out + 2, md, 8);
	return 2 + 16;
}
