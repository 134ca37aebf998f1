#include "auth/keys.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/linefile.h"

/* Characters of base64 that carry a 32-byte key, padding included. */
#define KEYS_B64_LEN (AUTH_KEY_B64_SIZE - 1)

struct keys_ent {
	struct auth_named id; /* first, for auth_named_sort */
	uint8_t key[AUTH_KEY_LEN];
};

struct auth_keys {
	atomic_uint refs;
	struct keys_ent *ents; /* sorted by name */
	size_t n, cap;
};

/* Value of a standard base64 digit, or -1. */
static int
keys_b64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strictly decode the standard base64 in s[0..len): length a multiple of
 * 4, only alphabet characters, '=' only as the last one or two, and unused
 * bits of the last digit zero (one encoding per byte string). Returns -1
 * if s is not such base64, else the decoded length; the bytes are written
 * to out only when that length is exactly outlen.
 */
static ssize_t
keys_b64_decode(const char *s, size_t len, uint8_t *out, size_t outlen)
{
	size_t pad = 0, declen, o = 0;
	uint32_t acc = 0;
	int d;

	if (len == 0 || len % 4 != 0)
		return -1;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (keys_b64_digit((unsigned char)s[i]) == -1)
			return -1;
	/* The digit before the padding must not carry dropped bits. */
	d = keys_b64_digit((unsigned char)s[len - pad - 1]);
	if ((pad == 1 && (d & 0x3) != 0) || (pad == 2 && (d & 0xf) != 0))
		return -1;
	declen = len / 4 * 3 - pad;
	if (declen != outlen)
		return (ssize_t)declen;
	for (size_t i = 0; i < len - pad; i++) {
		acc = acc << 6 | (uint32_t)keys_b64_digit((unsigned char)s[i]);
		if (i % 4 == 3) {
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	if (pad == 1) {
		out[o++] = (uint8_t)(acc >> 10);
		out[o++] = (uint8_t)(acc >> 2);
	} else if (pad == 2) {
		out[o++] = (uint8_t)(acc >> 4);
	}
	acc = 0;
	return (ssize_t)o;
}

/* Wipe and free k and whatever of it was built. */
static void
keys_free(struct auth_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->ents[i].id.name);
	if (k->ents != NULL)
		explicit_bzero(k->ents, k->n * sizeof(k->ents[0]));
	free(k->ents);
	free(k);
}

/* Append an entry; name[0..nlen) is copied. */
static int
keys_add(struct auth_keys *k, const char *name, size_t nlen,
    const uint8_t key[AUTH_KEY_LEN], unsigned line)
{
	struct keys_ent *e;

	if (k->n == k->cap) {
		size_t ncap = k->cap ? k->cap * 2 : 16;

		/* Not realloc: the old block holds keys and must be wiped. */
		if ((e = calloc(ncap, sizeof(*e))) == NULL)
			return -1;
		if (k->n > 0) {
			memcpy(e, k->ents, k->n * sizeof(*e));
			explicit_bzero(k->ents, k->n * sizeof(*e));
		}
		free(k->ents);
		k->ents = e;
		k->cap = ncap;
	}
	e = &k->ents[k->n];
	if ((e->id.name = strndup(name, nlen)) == NULL)
		return -1;
	memcpy(e->key, key, AUTH_KEY_LEN);
	e->id.line = line;
	k->n++;
	return 0;
}

/*
 * Parse one line (NUL-terminated, right-trimmed, not blank or a comment)
 * into the struct auth_keys at arg. Messages never quote the key field.
 */
static int
keys_parse_line(void *arg, char *line, const char *path, unsigned lineno,
    char *err, size_t errlen)
{
	struct auth_keys *k = arg;
	uint8_t key[AUTH_KEY_LEN];
	const char *name, *b64, *rest;
	size_t nlen, blen;
	ssize_t declen;
	int rc;

	name = line + strspn(line, " \t");
	nlen = strcspn(name, " \t");
	b64 = name + nlen + strspn(name + nlen, " \t");
	blen = strcspn(b64, " \t");
	rest = b64 + blen + strspn(b64 + blen, " \t");
	if (blen == 0 || *rest != '\0') {
		auth_errf(err, errlen, "%s:%u: expected \"name base64key\"",
		    path, lineno);
		goto err_einval;
	}
	if (!auth_linefile_name_ok(name, nlen, ' ')) {
		auth_errf(err, errlen,
		    "%s:%u: bad user name (1-%d bytes, no blanks, control "
		    "characters or leading '#')",
		    path, lineno, AUTH_LINEFILE_NAME_MAX);
		goto err_einval;
	}
	declen = keys_b64_decode(b64, blen, key, sizeof(key));
	if (declen == -1) {
		auth_errf(err, errlen,
		    "%s:%u: user \"%.*s\": key is not valid base64", path,
		    lineno, (int)nlen, name);
		goto err_einval;
	}
	if (declen != AUTH_KEY_LEN) {
		auth_errf(err, errlen,
		    "%s:%u: user \"%.*s\": key is %zd bytes, expected %d", path,
		    lineno, (int)nlen, name, declen, AUTH_KEY_LEN);
		goto err_einval;
	}
	rc = keys_add(k, name, nlen, key, lineno);
	explicit_bzero(key, sizeof(key));
	if (rc == -1)
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
	return rc;
err_einval:
	errno = EINVAL;
	return -1;
}

struct auth_keys *
auth_keys_load(const char *path, char *err, size_t errlen)
{
	struct auth_keys *k;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	atomic_init(&k->refs, 1);
	if (auth_linefile_read(path, keys_parse_line, k, err, errlen) == -1 ||
	    auth_named_sort(
		k->ents, k->n, sizeof(k->ents[0]), path, err, errlen) == -1) {
		int saved = errno;

		keys_free(k);
		errno = saved;
		return NULL;
	}
	return k;
}

struct auth_keys *
auth_keys_ref(struct auth_keys *k)
{
	atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
	return k;
}

void
auth_keys_unref(struct auth_keys *k)
{
	if (k == NULL)
		return;
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1)
		keys_free(k);
}

bool
auth_keys_get(
    const struct auth_keys *k, const char *user, uint8_t key[AUTH_KEY_LEN])
{
	const struct keys_ent *e;

	if (k == NULL || user == NULL)
		return false;
	e = auth_named_find(k->ents, k->n, sizeof(k->ents[0]), user);
	if (e == NULL)
		return false;
	memcpy(key, e->key, AUTH_KEY_LEN);
	return true;
}

size_t
auth_keys_count(const struct auth_keys *k)
{
	return k != NULL ? k->n : 0;
}

int
auth_keys_new(const char *path, const char *user, char *b64_out, size_t b64len,
    char *err, size_t errlen)
{
	unsigned char raw[AUTH_KEY_LEN];
	char b64[AUTH_KEY_B64_SIZE];
	int rc = -1;

	if (b64len < AUTH_KEY_B64_SIZE) {
		auth_errf(err, errlen, "buffer too small for a key");
		errno = ERANGE;
		return -1;
	}
	if (!auth_linefile_name_ok(user, strlen(user), ' ')) {
		auth_errf(err, errlen,
		    "bad user name (1-%d bytes, no blanks, control "
		    "characters or leading '#')",
		    AUTH_LINEFILE_NAME_MAX);
		errno = EINVAL;
		return -1;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		auth_errf(err, errlen, "cannot get random bytes for a key");
		errno = EIO;
		return -1;
	}
	/* 32 bytes are 44 characters with one '=', then a NUL. */
	if (EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw)) !=
	    KEYS_B64_LEN) {
		auth_errf(err, errlen, "cannot encode the key");
		errno = EIO;
		goto out;
	}
	if (auth_linefile_set(path, user, ' ', b64, err, errlen) == -1)
		goto out;
	memcpy(b64_out, b64, sizeof(b64));
	rc = 0;
out:
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(b64, sizeof(b64));
	return rc;
}
