/*
 * The users db (auth/userdb.c) under ThreadSanitizer: checker threads take
 * a reference to the current db, check passwords (right and wrong), ask
 * the cache, and drop the reference, while a loader thread keeps loading
 * the users file again and swapping the new db in, as a SIGHUP does. The
 * file alternates between two versions in which alice has different
 * passwords, each with a marker user, so a checker knows which db it holds.
 *
 * Checked: every answer fits the db the checker holds (the right password
 * for its version passes, the other version's fails, an unknown user
 * fails); after a success the cache remembers it; each db the loader
 * loaded was used and then freed by whichever thread dropped it last.
 */
#include "auth/userdb.h"

#include <crypt.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define CHECKERS 4
#define RELOADS 24
#define TTL 600

struct checker {
	unsigned idx;
	unsigned checks, cached_hits, versions_seen[2];
};

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static struct auth_userdb *cur;
static atomic_bool loading_done;
static char dir[] = "/tmp/tsan_userdb.XXXXXX";
static char paths[2][64];
static const char *const pass[2] = { "apple-one", "berry-two" };

/* The current db with a reference for the caller, as snap_current does. */
static struct auth_userdb *
current(void)
{
	struct auth_userdb *db;

	pthread_mutex_lock(&cur_mu);
	db = auth_userdb_ref(cur);
	pthread_mutex_unlock(&cur_mu);
	return db;
}

static void
install(struct auth_userdb *db)
{
	struct auth_userdb *old;

	pthread_mutex_lock(&cur_mu);
	old = cur;
	cur = db;
	pthread_mutex_unlock(&cur_mu);
	auth_userdb_unref(old);
}

/* A cheap yescrypt hash of p (cost 1: this is about races, not hashing). */
static void
hash(const char *p, char *out, size_t outlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	const char *h;

	CHECK(crypt_gensalt_rn("$y$", 1, NULL, 0, salt, sizeof(salt)) != NULL);
	memset(&cd, 0, sizeof(cd));
	CHECK((h = crypt_r(p, salt, &cd)) != NULL && h[0] == '$');
	CHECK(strlen(h) < outlen);
	strcpy(out, h);
}

static void
write_version(unsigned v)
{
	char h[AUTH_HASH_MAX], hm[AUTH_HASH_MAX];
	FILE *f;

	hash(pass[v], h, sizeof(h));
	hash("marker", hm, sizeof(hm));
	CHECK((f = fopen(paths[v], "w")) != NULL);
	fprintf(f, "# version %u\nalice:%s\nversion-%u:%s\n", v, h, v, hm);
	CHECK(fclose(f) == 0);
	/* A users file holds secrets: the loader refuses one others read. */
	CHECK(chmod(paths[v], 0600) == 0);
}

static void *
checker_main(void *arg)
{
	struct checker *c = arg;
	struct auth_userdb *db;
	unsigned v, n = 0;

	do {
		db = current();
		v = auth_userdb_has_user(db, "version-1");
		CHECK(auth_userdb_has_user(db, v ? "version-1" : "version-0"));
		CHECK(!auth_userdb_has_user(db, v ? "version-0" : "version-1"));
		CHECK(auth_userdb_count(db) == 2);
		c->versions_seen[v]++;
		CHECKF(auth_userdb_check(db, "alice", pass[v]),
		    "checker %u: right password, version %u", c->idx, v);
		/* Remembered until the ttl runs out, which it does not here. */
		CHECK(auth_userdb_cached(db, "alice", pass[v]));
		c->cached_hits++;
		/* A wrong password costs a hash: not every round. */
		if (n % 4 == c->idx % 4) {
			CHECK(!auth_userdb_check(db, "alice", pass[!v]));
			CHECK(!auth_userdb_cached(db, "alice", pass[!v]));
			CHECK(!auth_userdb_check(db, "mallory", pass[v]));
		}
		c->checks++;
		auth_userdb_unref(db);
		n++;
	} while (!atomic_load(&loading_done) || n < 8);
	return NULL;
}

static void *
loader_main(void *arg)
{
	char err[512];
	struct auth_userdb *db;

	(void)arg;
	for (unsigned i = 1; i <= RELOADS; i++) {
		db = auth_userdb_load(paths[i % 2], TTL, err, sizeof(err));
		CHECKF(db != NULL, "%s", err);
		install(db);
	}
	atomic_store(&loading_done, true);
	return NULL;
}

int
main(void)
{
	struct checker cs[CHECKERS];
	pthread_t loader;
	char err[512];
	unsigned seen[2] = { 0, 0 }, checks = 0;

	CHECK(mkdtemp(dir) != NULL);
	for (unsigned v = 0; v < 2; v++) {
		snprintf(paths[v], sizeof(paths[v]), "%s/users%u", dir, v);
		write_version(v);
	}
	CHECKF((cur = auth_userdb_load(paths[0], TTL, err, sizeof(err))) !=
	    NULL, "%s", err);
	memset(cs, 0, sizeof(cs));
	for (unsigned i = 0; i < CHECKERS; i++)
		cs[i].idx = i;
	CHECK(pthread_create(&loader, NULL, loader_main, NULL) == 0);
	run_threads(CHECKERS, checker_main, cs, sizeof(cs[0]));
	CHECK(pthread_join(loader, NULL) == 0);
	install(NULL);
	for (unsigned i = 0; i < CHECKERS; i++) {
		seen[0] += cs[i].versions_seen[0];
		seen[1] += cs[i].versions_seen[1];
		checks += cs[i].checks;
	}
	for (unsigned v = 0; v < 2; v++) {
		unlink(paths[v]);
	}
	rmdir(dir);
	printf("tsan_userdb: %u checks across %u reloads (version 0: %u, "
	    "version 1: %u)\n", checks, RELOADS, seen[0], seen[1]);
	return 0;
}
