#include "auth/userdb.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "auth/linefile.h"

#define UDB_CACHE_SLOTS 1024 /* a power of two */
#define UDB_CACHE_PROBE 8
#define UDB_SECRET_LEN 32
#define UDB_KEY_LEN 32

/* Names are checked by auth_linefile_name_ok, which has its own limit. */
_Static_assert(
    AUTH_USER_MAX == AUTH_LINEFILE_NAME_MAX, "user name limits differ");

struct udb_user {
	struct auth_named
	    id; /* first; name is "name\0hash\0", one allocation */
	char *hash;
	size_t kindlen; /* bytes of hash naming method and cost */
};

struct udb_slot {
	uint8_t key[UDB_KEY_LEN];
	uint64_t expires; /* CLOCK_MONOTONIC ns; 0 means empty */
};

struct auth_userdb {
	atomic_uint refs;
	struct udb_user *users; /* sorted by name */
	size_t nusers, cap;
	char *dummy; /* what unknown users are hashed against */
	uint64_t ttl_ns;
	EVP_MAC_CTX *mac;     /* keyed HMAC-SHA256; NULL when ttl is 0 */
	pthread_mutex_t lock; /* guards cache */
	struct udb_slot cache[UDB_CACHE_SLOTS];
};

enum udb_form {
	UDB_FORM_PARAMS = 0, /* $id$params$salt$hash */
	UDB_FORM_SHA,	     /* $id$[rounds=N$]salt$hash */
	UDB_FORM_BCRYPT,     /* $id$NN$ salt+hash */
	UDB_FORM_SCRYPT,     /* $7$ params salt$hash */
};

struct udb_method {
	const char *prefix;
	const char *name;
	enum udb_form form;
	size_t hashlen;
};

static const struct udb_method udb_methods[] = {
    {"$y$", "yescrypt", UDB_FORM_PARAMS, 43},
    {"$gy$", "gost-yescrypt", UDB_FORM_PARAMS, 43},
    {"$7$", "scrypt", UDB_FORM_SCRYPT, 43},
    {"$6$", "sha512crypt", UDB_FORM_SHA, 86},
    {"$5$", "sha256crypt", UDB_FORM_SHA, 43},
    {"$2b$", "bcrypt", UDB_FORM_BCRYPT, 53},
    {"$2y$", "bcrypt", UDB_FORM_BCRYPT, 53},
};

enum udb_hash_res {
	UDB_HASH_OK = 0,
	UDB_HASH_FOREIGN, /* plaintext, DES, MD5, empty, ... */
	UDB_HASH_MALFORMED,
	UDB_HASH_UNSUPPORTED, /* this libcrypt refuses the method */
};

/* Is c in crypt's base64 alphabet [./0-9A-Za-z]? */
static bool
udb_b64(char c)
{
	return c == '.' || c == '/' || (c >= '0' && c <= '9') ||
	    (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Length of the run of base64 characters at s. */
static size_t
udb_b64_span(const char *s)
{
	size_t n = 0;

	while (udb_b64(s[n]))
		n++;
	return n;
}

/*
 * Check that h is a complete crypt(3) hash of a method we accept and that
 * this libcrypt takes it. On UDB_HASH_OK, *kindlen is the length of the
 * prefix naming method and cost (hashes sharing it cost the same to check)
 * and *m the method. *m is also set for MALFORMED and UNSUPPORTED.
 */
static enum udb_hash_res
udb_hash_parse(const char *h, const struct udb_method **m, size_t *kindlen)
{
	const char *p, *kind_end;
	size_t n;

	*m = NULL;
	for (size_t i = 0; i < sizeof(udb_methods) / sizeof(udb_methods[0]);
	     i++) {
		if (strncmp(h, udb_methods[i].prefix,
			strlen(udb_methods[i].prefix)) == 0) {
			*m = &udb_methods[i];
			break;
		}
	}
	if (*m == NULL)
		return UDB_HASH_FOREIGN;
	kind_end = p = h + strlen((*m)->prefix);

	switch ((*m)->form) {
	case UDB_FORM_PARAMS:
		if ((n = udb_b64_span(p)) == 0 || p[n] != '$')
			return UDB_HASH_MALFORMED;
		kind_end = p += n + 1;
		if ((n = udb_b64_span(p)) == 0 || p[n] != '$')
			return UDB_HASH_MALFORMED;
		p += n + 1;
		break;
	case UDB_FORM_SHA:
		if (strncmp(p, "rounds=", 7) == 0) {
			p += 7;
			n = strspn(p, "0123456789");
			if (n == 0 || n > 10 || p[n] != '$')
				return UDB_HASH_MALFORMED;
			p += n + 1;
		}
		kind_end = p;
		if ((n = udb_b64_span(p)) == 0 || n > 16 || p[n] != '$')
			return UDB_HASH_MALFORMED;
		p += n + 1;
		break;
	case UDB_FORM_BCRYPT:
		if (strspn(p, "0123456789") != 2 || p[2] != '$')
			return UDB_HASH_MALFORMED;
		kind_end = p += 3;
		break;
	case UDB_FORM_SCRYPT:
		/* N, r and p are 1 + 5 + 5 base64 characters. */
		if (udb_b64_span(p) < 11)
			return UDB_HASH_MALFORMED;
		kind_end = p += 11;
		if ((n = udb_b64_span(p)) == 0 || p[n] != '$')
			return UDB_HASH_MALFORMED;
		p += n + 1;
		break;
	}
	if (strlen(p) != (*m)->hashlen || udb_b64_span(p) != (*m)->hashlen)
		return UDB_HASH_MALFORMED;
	/*
	 * Our table is the policy; libxcrypt calls sha256crypt "legacy" but
	 * the design accepts it.
	 */
	switch (crypt_checksalt(h)) {
	case CRYPT_SALT_OK:
	case CRYPT_SALT_METHOD_LEGACY:
		break;
	default:
		return UDB_HASH_UNSUPPORTED;
	}
	*kindlen = (size_t)(kind_end - h);
	return UDB_HASH_OK;
}

/*
 * Hash pass with setting (a full hash or a salt string) and compare the
 * result with expect (NULL: compare with nothing, still doing the work).
 * Blocking. The crypt_data is ~32 KiB, so it goes on the heap and is wiped
 * because it held the password.
 */
static bool
udb_crypt_matches(const char *pass, const char *setting, const char *expect)
{
	struct crypt_data *cd;
	const char *out;
	size_t len;
	bool ok = false;

	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return false;
	out = crypt_r(pass, setting, cd);
	if (expect != NULL && out != NULL && out[0] == '$') {
		len = strlen(out);
		ok = len == strlen(expect) &&
		    CRYPTO_memcmp(out, expect, len) == 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/*
 * Try hash's method and cost once: crypt_checksalt() accepts unknown cost
 * parameters, which crypt_r() then refuses at every login. Blocking.
 */
static bool
udb_hash_usable(const char *hash, size_t kindlen)
{
	struct crypt_data *cd;
	const char *out;
	bool ok;

	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return false;
	out = crypt_r("", hash, cd);
	ok = out != NULL && out[0] == '$' && strlen(out) == strlen(hash) &&
	    strncmp(out, hash, kindlen) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/*
 * Explain a hash of user's that udb_hash_parse() refused, as
 * "path:line: ..." when path is not NULL. The hash is not echoed.
 */
static void
udb_hash_err(char *err, size_t errlen, const char *path, unsigned line,
    const char *user, enum udb_hash_res res, const struct udb_method *m)
{
	char where[4200] = "";

	if (path != NULL)
		snprintf(where, sizeof(where), "%s:%u: ", path, line);
	switch (res) {
	case UDB_HASH_OK:
		break;
	case UDB_HASH_FOREIGN:
		auth_errf(err, errlen,
		    "%suser \"%s\": not a crypt(3) hash "
		    "(use mkpasswd -m yescrypt)",
		    where, user);
		break;
	case UDB_HASH_MALFORMED:
		auth_errf(err, errlen, "%suser \"%s\": malformed %s hash",
		    where, user, m->name);
		break;
	case UDB_HASH_UNSUPPORTED:
		auth_errf(err, errlen,
		    "%suser \"%s\": %s hashes are not "
		    "supported by this libcrypt",
		    where, user, m->name);
		break;
	}
}

/* CLOCK_MONOTONIC now, in nanoseconds. */
static uint64_t
udb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Cache key for (user, pass): HMAC-SHA256 under the db's secret of
 * user || 0x00 || pass, fed in pieces so the password is never copied.
 * User names hold no NUL, so the encoding is unambiguous.
 */
static bool
udb_key(struct auth_userdb *db, const char *user, const char *pass,
    uint8_t key[UDB_KEY_LEN])
{
	EVP_MAC_CTX *c;
	size_t outl = 0;
	bool ok;

	if ((c = EVP_MAC_CTX_dup(db->mac)) == NULL)
		return false;
	ok = EVP_MAC_update(c, (const unsigned char *)user, strlen(user)) &&
	    EVP_MAC_update(c, (const unsigned char *)"", 1) &&
	    EVP_MAC_update(c, (const unsigned char *)pass, strlen(pass)) &&
	    EVP_MAC_final(c, key, &outl, UDB_KEY_LEN) && outl == UDB_KEY_LEN;
	EVP_MAC_CTX_free(c);
	return ok;
}

/* Index of the first slot key may live in. */
static size_t
udb_slot0(const uint8_t key[UDB_KEY_LEN])
{
	return ((size_t)key[0] | (size_t)key[1] << 8) & (UDB_CACHE_SLOTS - 1);
}

/* Is key remembered and unexpired at now? Caller holds db->lock. */
static bool
udb_cache_lookup(
    struct auth_userdb *db, const uint8_t key[UDB_KEY_LEN], uint64_t now)
{
	size_t s0 = udb_slot0(key);

	for (size_t i = 0; i < UDB_CACHE_PROBE; i++) {
		struct udb_slot *sl =
		    &db->cache[(s0 + i) & (UDB_CACHE_SLOTS - 1)];

		if (sl->expires > now &&
		    CRYPTO_memcmp(sl->key, key, UDB_KEY_LEN) == 0)
			return true;
	}
	return false;
}

/*
 * Remember key until now + ttl. Reuses the key's own slot, else an empty
 * or expired one, else overwrites the one that expires soonest in the
 * probe window. Caller holds db->lock.
 */
static void
udb_cache_insert(
    struct auth_userdb *db, const uint8_t key[UDB_KEY_LEN], uint64_t now)
{
	size_t s0 = udb_slot0(key);
	struct udb_slot *victim = NULL;

	for (size_t i = 0; i < UDB_CACHE_PROBE; i++) {
		struct udb_slot *sl =
		    &db->cache[(s0 + i) & (UDB_CACHE_SLOTS - 1)];

		if (sl->expires != 0 &&
		    CRYPTO_memcmp(sl->key, key, UDB_KEY_LEN) == 0) {
			victim = sl;
			break;
		}
		if (victim == NULL ||
		    (victim->expires > now && sl->expires < victim->expires))
			victim = sl;
	}
	memcpy(victim->key, key, UDB_KEY_LEN);
	victim->expires = now + db->ttl_ns;
}

/* The user named user, or NULL. The result belongs to db. */
static const struct udb_user *
udb_find(const struct auth_userdb *db, const char *user)
{
	return auth_named_find(
	    db->users, db->nusers, sizeof(db->users[0]), user);
}

/* Free db and whatever of it was built. */
static void
udb_free(struct auth_userdb *db)
{
	for (size_t i = 0; i < db->nusers; i++)
		free(db->users[i].id.name);
	free(db->users);
	free(db->dummy);
	EVP_MAC_CTX_free(db->mac);
	pthread_mutex_destroy(&db->lock);
	explicit_bzero(db->cache, sizeof(db->cache));
	free(db);
}

/* Key db->mac with a fresh random secret. */
static int
udb_mac_init(struct auth_userdb *db)
{
	unsigned char secret[UDB_SECRET_LEN];
	OSSL_PARAM params[2];
	EVP_MAC *mac;
	int ok;

	if (RAND_bytes(secret, sizeof(secret)) != 1)
		return -1;
	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return -1;
	db->mac = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);
	if (db->mac == NULL)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = EVP_MAC_init(db->mac, secret, sizeof(secret), params);
	OPENSSL_cleanse(secret, sizeof(secret));
	return ok ? 0 : -1;
}

/* Append a user parsed from one line; name and hash are copied. */
static int
udb_add(struct auth_userdb *db, const char *name, size_t nlen, const char *hash,
    unsigned line, size_t kindlen)
{
	struct udb_user *u;
	size_t hlen = strlen(hash);
	char *mem;

	if (db->nusers == db->cap) {
		size_t ncap = db->cap ? db->cap * 2 : 16;

		if ((u = reallocarray(db->users, ncap, sizeof(*u))) == NULL)
			return -1;
		db->users = u;
		db->cap = ncap;
	}
	if ((mem = malloc(nlen + 1 + hlen + 1)) == NULL)
		return -1;
	memcpy(mem, name, nlen);
	mem[nlen] = '\0';
	memcpy(mem + nlen + 1, hash, hlen + 1);
	u = &db->users[db->nusers++];
	u->id.name = mem;
	u->hash = mem + nlen + 1;
	u->id.line = line;
	u->kindlen = kindlen;
	return 0;
}

/*
 * Parse one line (NUL-terminated, right-trimmed, not blank or a comment)
 * into the struct auth_userdb at arg.
 */
static int
udb_parse_line(void *arg, char *line, const char *path, unsigned lineno,
    char *err, size_t errlen)
{
	struct auth_userdb *db = arg;
	const struct udb_method *m;
	enum udb_hash_res res;
	size_t nlen, kindlen = 0;
	char *colon;

	/* Do not echo the line: it might be a pasted password. */
	if ((colon = strchr(line, ':')) == NULL) {
		auth_errf(
		    err, errlen, "%s:%u: expected name:hash", path, lineno);
		goto err_einval;
	}
	nlen = (size_t)(colon - line);
	if (!auth_linefile_name_ok(line, nlen, ':')) {
		auth_errf(err, errlen,
		    "%s:%u: bad user name (1-%d bytes, "
		    "no ':', blanks or control characters)",
		    path, lineno, AUTH_USER_MAX);
		goto err_einval;
	}
	*colon = '\0';
	res = udb_hash_parse(colon + 1, &m, &kindlen);
	if (res != UDB_HASH_OK) {
		udb_hash_err(err, errlen, path, lineno, line, res, m);
		goto err_einval;
	}
	if (udb_add(db, line, nlen, colon + 1, lineno, kindlen) == -1) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
err_einval:
	errno = EINVAL;
	return -1;
}

/*
 * Try each method-and-cost in the file once, and pick the hash unknown
 * users are checked against: one of the most common kind, so that a check
 * for a made-up name costs what most real checks cost.
 */
static int
udb_kinds(struct auth_userdb *db, const char *path, char *err, size_t errlen)
{
	struct kind {
		size_t user, count;
	} * kinds;
	size_t nkinds = 0, best = 0;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];

	if (db->nusers == 0) {
		/* Nothing to hide; still make unknown names cost a hash. */
		if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) ==
		    NULL)
			return -1;
		return (db->dummy = strdup(salt)) == NULL ? -1 : 0;
	}
	if ((kinds = calloc(db->nusers, sizeof(*kinds))) == NULL)
		return -1;
	for (size_t i = 0; i < db->nusers; i++) {
		const struct udb_user *u = &db->users[i];
		size_t k;

		for (k = 0; k < nkinds; k++) {
			const struct udb_user *v = &db->users[kinds[k].user];

			if (v->kindlen == u->kindlen &&
			    memcmp(v->hash, u->hash, u->kindlen) == 0)
				break;
		}
		if (k == nkinds) {
			if (!udb_hash_usable(u->hash, u->kindlen)) {
				auth_errf(err, errlen,
				    "%s:%u: user \"%s\": "
				    "libcrypt cannot use this hash (%.*s)",
				    path, u->id.line, u->id.name,
				    (int)u->kindlen, u->hash);
				free(kinds);
				errno = EINVAL;
				return -1;
			}
			kinds[nkinds++].user = i;
		}
		if (++kinds[k].count > kinds[best].count)
			best = k;
	}
	db->dummy = strdup(db->users[kinds[best].user].hash);
	free(kinds);
	return db->dummy == NULL ? -1 : 0;
}

struct auth_userdb *
auth_userdb_load(const char *path, unsigned cache_ttl, char *err, size_t errlen)
{
	struct auth_userdb *db;

	if ((db = calloc(1, sizeof(*db))) == NULL) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	atomic_init(&db->refs, 1);
	if ((errno = pthread_mutex_init(&db->lock, NULL)) != 0) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		free(db);
		return NULL;
	}
	db->ttl_ns = (uint64_t)cache_ttl * 1000000000u;
	if (cache_ttl > 0 && udb_mac_init(db) == -1) {
		auth_errf(
		    err, errlen, "%s: cannot set up the login cache", path);
		errno = EIO;
		goto err_free;
	}
	if (auth_linefile_read(path, udb_parse_line, db, err, errlen) == -1)
		goto err_free;
	if (udb_kinds(db, path, err, errlen) == -1) {
		if (errno != EINVAL)
			auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto err_free;
	}
	if (auth_named_sort(db->users, db->nusers, sizeof(db->users[0]), path,
		err, errlen) == -1)
		goto err_free;
	return db;
err_free:
	udb_free(db);
	return NULL;
}

struct auth_userdb *
auth_userdb_ref(struct auth_userdb *db)
{
	atomic_fetch_add_explicit(&db->refs, 1, memory_order_relaxed);
	return db;
}

void
auth_userdb_unref(struct auth_userdb *db)
{
	if (db == NULL)
		return;
	if (atomic_fetch_sub_explicit(&db->refs, 1, memory_order_acq_rel) == 1)
		udb_free(db);
}

bool
auth_userdb_check(struct auth_userdb *db, const char *user, const char *pass)
{
	uint8_t key[UDB_KEY_LEN];
	const struct udb_user *u;
	bool have_key = false, hit, ok;

	if (db == NULL || user == NULL || pass == NULL)
		return false;
	if (db->mac != NULL && udb_key(db, user, pass, key)) {
		have_key = true;
		pthread_mutex_lock(&db->lock);
		hit = udb_cache_lookup(db, key, udb_now());
		pthread_mutex_unlock(&db->lock);
		if (hit)
			return true;
	}
	/* An unknown name is hashed too, so timing does not tell. */
	u = udb_find(db, user);
	ok = udb_crypt_matches(
	    pass, u != NULL ? u->hash : db->dummy, u != NULL ? u->hash : NULL);
	if (ok && have_key) {
		pthread_mutex_lock(&db->lock);
		udb_cache_insert(db, key, udb_now());
		pthread_mutex_unlock(&db->lock);
	}
	return ok;
}

bool
auth_userdb_cached(struct auth_userdb *db, const char *user, const char *pass)
{
	uint8_t key[UDB_KEY_LEN];
	bool hit;

	if (db == NULL || user == NULL || pass == NULL || db->mac == NULL)
		return false;
	if (!udb_key(db, user, pass, key))
		return false;
	pthread_mutex_lock(&db->lock);
	hit = udb_cache_lookup(db, key, udb_now());
	pthread_mutex_unlock(&db->lock);
	return hit;
}

bool
auth_userdb_has_user(const struct auth_userdb *db, const char *user)
{
	return db != NULL && user != NULL && udb_find(db, user) != NULL;
}

size_t
auth_userdb_count(const struct auth_userdb *db)
{
	return db != NULL ? db->nusers : 0;
}

int
auth_hash_password(const char *pass, char *out, size_t outlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int rc = -1;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL)
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	h = crypt_r(pass, salt, cd);
	if (h == NULL || h[0] != '$')
		errno = EINVAL;
	else if (strlen(h) >= outlen)
		errno = ERANGE;
	else {
		memcpy(out, h, strlen(h) + 1);
		rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

int
auth_userdb_set(const char *path, const char *user, const char *hash, char *err,
    size_t errlen)
{
	const struct udb_method *m;
	enum udb_hash_res res;
	size_t kindlen = 0;

	if (!auth_linefile_name_ok(user, strlen(user), ':')) {
		auth_errf(err, errlen,
		    "bad user name (1-%d bytes, no ':', blanks, "
		    "control characters or leading '#')",
		    AUTH_USER_MAX);
		errno = EINVAL;
		return -1;
	}
	if ((res = udb_hash_parse(hash, &m, &kindlen)) != UDB_HASH_OK) {
		udb_hash_err(err, errlen, NULL, 0, user, res, m);
		errno = EINVAL;
		return -1;
	}
	if (strlen(hash) >= AUTH_HASH_MAX || !udb_hash_usable(hash, kindlen)) {
		auth_errf(err, errlen,
		    "user \"%s\": libcrypt cannot use this "
		    "hash",
		    user);
		errno = EINVAL;
		return -1;
	}
	return auth_linefile_set(path, user, ':', hash, err, errlen);
}
