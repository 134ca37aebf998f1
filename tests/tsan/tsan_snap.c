/*
 * The running-config snapshot (gateway/snap.c) under ThreadSanitizer: a
 * reloader thread keeps loading a config (which loads its users and keys
 * files) and installing it, as SIGHUP does, while reader threads take the
 * current snapshot, read it, sometimes keep it across rounds (a long
 * session) or pass an extra reference around, and drop their references.
 *
 * Checked: a reader always sees a whole snapshot of one generation (its
 * config, users and keys agree), holding at least the references it took;
 * the last reference, wherever it is dropped, frees the snapshot and what
 * it loaded (the sanitizer sees the free race with any late reader).
 */
#include "gateway/snap.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/keys.h"
#include "auth/userdb.h"
#include "harness.h"

#define READERS 4
#define RELOADS 40
#define GENS 3

struct reader {
	unsigned idx;
	unsigned reads, kept;
};

static char dir[] = "/tmp/tsan_snap.XXXXXX";
static char conf_path[GENS][80];
static atomic_bool reloading_done;

static void
write_file(const char *path, const char *text)
{
	FILE *f;

	CHECK((f = fopen(path, "w")) != NULL);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
	CHECK(chmod(path, 0600) == 0);
}

/*
 * Generation g: max_sessions = g + 1, a users file with user "gen-g" and a
 * keys file with user "key-g". The hash is a fixed cheap one (of "x",
 * from mkpasswd -m yescrypt -R 1): loading tries it once per generation.
 */
static void
write_gen(unsigned g)
{
	char users[80], keys[80], text[1024];

	snprintf(users, sizeof(users), "%s/users%u", dir, g);
	snprintf(keys, sizeof(keys), "%s/keys%u", dir, g);
	snprintf(conf_path[g], sizeof(conf_path[g]), "%s/mpgw%u.ini", dir, g);
	snprintf(text, sizeof(text), "gen-%u:$y$j75$UrXcB17eSVOzeDVM3mzH40$"
	    "sO4nmxcROyf39QNXp1p5w3SM3CaKEhfbF06uXc/P7U6\n", g);
	write_file(users, text);
	snprintf(text, sizeof(text), "key-%u "
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", g);
	write_file(keys, text);
	snprintf(text, sizeof(text),
	    "[gateway]\nworkers = 1\nmax_sessions = %u\naccess_log = off\n"
	    "[socks5]\nlisten = 127.0.0.1:1080\nmethods = userpass\n"
	    "[auth]\nusers = %s\n[convert]\nkeys = %s\n", g + 1, users, keys);
	write_file(conf_path[g], text);
}

/* Abort unless s is one whole generation. */
static void
check_snap(struct gw_snap *s)
{
	unsigned g;
	char name[16];

	CHECK(s != NULL);
	CHECK(atomic_load(&s->refs) >= 1);
	g = s->conf.max_sessions - 1;
	CHECKF(g < GENS, "max_sessions %u", s->conf.max_sessions);
	snprintf(name, sizeof(name), "gen-%u", g);
	CHECK(s->users != NULL && auth_userdb_has_user(s->users, name));
	CHECK(auth_userdb_count(s->users) == 1);
	snprintf(name, sizeof(name), "key-%u", g);
	CHECK(s->keys != NULL && auth_keys_count(s->keys) == 1);
	{
		uint8_t key[AUTH_KEY_LEN];

		CHECK(auth_keys_get(s->keys, name, key));
	}
}

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct gw_snap *held = NULL, *s, *extra;
	unsigned n = 0;

	do {
		s = snap_current();
		check_snap(s);
		if (n % 5 == r->idx % 5) {
			/* An extra reference, as a pool job holds. */
			extra = snap_ref(s);
			CHECK(atomic_load(&s->refs) >= 2);
			snap_unref(extra);
		}
		if (n % 7 == 0) {
			/* A long session: keep this one for a while. */
			snap_unref(held);
			held = s;
			r->kept++;
		} else
			snap_unref(s);
		if (held != NULL)
			check_snap(held);
		r->reads++;
		n++;
	} while (!atomic_load(&reloading_done) || n < 16);
	snap_unref(held);
	return NULL;
}

static void *
reloader_main(void *arg)
{
	char err[512];
	struct gw_snap *s;

	(void)arg;
	for (unsigned i = 1; i <= RELOADS; i++) {
		s = snap_load(conf_path[i % GENS], err, sizeof(err));
		CHECKF(s != NULL, "%s", err);
		CHECK(atomic_load(&s->refs) == 1);
		snap_install(s);
	}
	atomic_store(&reloading_done, true);
	return NULL;
}

int
main(void)
{
	struct reader rs[READERS];
	pthread_t reloader;
	struct gw_snap *s;
	char err[512], path[96];
	unsigned reads = 0;

	CHECK(mkdtemp(dir) != NULL);
	for (unsigned g = 0; g < GENS; g++)
		write_gen(g);
	CHECKF((s = snap_load(conf_path[0], err, sizeof(err))) != NULL, "%s",
	    err);
	snap_install(s);
	memset(rs, 0, sizeof(rs));
	for (unsigned i = 0; i < READERS; i++)
		rs[i].idx = i;
	CHECK(pthread_create(&reloader, NULL, reloader_main, NULL) == 0);
	run_threads(READERS, reader_main, rs, sizeof(rs[0]));
	CHECK(pthread_join(reloader, NULL) == 0);
	s = snap_current();
	check_snap(s);
	CHECK(s->conf.max_sessions == RELOADS % GENS + 1);
	snap_unref(s);
	snap_install(NULL);
	for (unsigned i = 0; i < READERS; i++)
		reads += rs[i].reads;
	for (unsigned g = 0; g < GENS; g++) {
		unlink(conf_path[g]);
		snprintf(path, sizeof(path), "%s/users%u", dir, g);
		unlink(path);
		snprintf(path, sizeof(path), "%s/keys%u", dir, g);
		unlink(path);
	}
	rmdir(dir);
	printf("tsan_snap: %u reads across %u reloads\n", reads, RELOADS);
	return 0;
}
