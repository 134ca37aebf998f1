/*
 * Users file and password checks: every accepted hash kind with the right
 * and a wrong password, refusal of bad entries with their line, the cache
 * of successful checks, concurrent checks and the atomic `passwd` update.
 * Hashes are made at test time with mkpasswd (Debian's whois package) and
 * auth_hash_password().
 */
#include "auth/userdb.h"

#include <criterion/criterion.h>

#include <crypt.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tdir[] = "/tmp/test_userdb.XXXXXX";
static char users[sizeof(tdir) + 16];

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
setup(void)
{
	/* The loader refuses secret files that others may read. */
	umask(077);
	cr_assert_not_null(mkdtemp(tdir));
	snprintf(users, sizeof(users), "%s/users", tdir);
}

static void
teardown(void)
{
	nftw(tdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(userdb, .init = setup, .fini = teardown, .timeout = 120);

/* Hash pass with `mkpasswd -m method` into out. */
static void
mkpasswd(const char *method, const char *pass, char *out, size_t outlen)
{
	char cmd[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "mkpasswd -m %s '%s'", method, pass);
	cr_assert_not_null(p = popen(cmd, "r"));
	cr_assert_not_null(
	    fgets(out, (int)outlen, p), "%s printed nothing", cmd);
	cr_assert_eq(pclose(p), 0, "%s failed", cmd);
	out[strcspn(out, "\n")] = '\0';
	cr_assert_eq(out[0], '$', "%s: %s", cmd, out);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f;

	cr_assert_not_null(f = fopen(path, "w"));
	cr_assert_eq(fputs(text, f) >= 0, true);
	cr_assert_eq(fclose(f), 0);
}

static char *
read_file(const char *path)
{
	static char buf[16384];
	FILE *f;
	size_t n;

	cr_assert_not_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static struct auth_userdb *
load_ok(unsigned ttl)
{
	char err[512] = "";
	struct auth_userdb *db;

	db = auth_userdb_load(users, ttl, err, sizeof(err));
	cr_assert_not_null(db, "load failed: %s", err);
	return db;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * CPU time of this thread: what a hash costs, whatever else the machine
 * is doing (wall-clock time would make the test depend on the load).
 */
static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A file with alice (yescrypt) and bob (sha512crypt). */
static void
write_alice_bob(void)
{
	char ya[AUTH_HASH_MAX], sb[AUTH_HASH_MAX], text[1024];

	mkpasswd("yescrypt", "alice-pw", ya, sizeof(ya));
	mkpasswd("sha512crypt", "bob-pw", sb, sizeof(sb));
	snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", ya, sb);
	write_file(users, text);
}

Test(userdb, checks_each_hash_kind)
{
	static const struct {
		const char *user, *method, *pass;
	} kinds[] = {
	    {"y", "yescrypt", "pw-y"},
	    {"s512", "sha512crypt", "pw-6"},
	    {"s256", "sha256crypt", "pw-5"},
	    {"bc", "bcrypt", "pw-2b"},
	    {"sc", "scrypt", "pw-7"},
	    {"gy", "gost-yescrypt", "pw-gy"},
	};
	size_t nk = sizeof(kinds) / sizeof(kinds[0]);
	char text[4096] = "# mpgw users\n\n   \n", h[AUTH_HASH_MAX];
	struct auth_userdb *db;

	for (size_t i = 0; i < nk; i++) {
		mkpasswd(kinds[i].method, kinds[i].pass, h, sizeof(h));
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
		    "%s:%s\n", kinds[i].user, h);
	}
	cr_assert_eq(auth_hash_password("pw-ours", h, sizeof(h)), 0);
	/* Trailing blanks and a CRLF ending are tolerated. */
	snprintf(text + strlen(text), sizeof(text) - strlen(text),
	    "  # indented comment\nours:%s \r\n", h);
	write_file(users, text);

	db = load_ok(0);
	cr_assert_eq(auth_userdb_count(db), nk + 1);
	for (size_t i = 0; i < nk; i++) {
		cr_assert(auth_userdb_has_user(db, kinds[i].user));
		cr_assert(auth_userdb_check(db, kinds[i].user, kinds[i].pass),
		    "%s: right password refused", kinds[i].method);
		cr_assert_not(auth_userdb_check(db, kinds[i].user, "wrong"),
		    "%s: wrong password accepted", kinds[i].method);
		/* Another user's password is wrong too. */
		cr_assert_not(auth_userdb_check(
		    db, kinds[i].user, kinds[(i + 1) % nk].pass));
	}
	cr_assert(auth_userdb_check(db, "ours", "pw-ours"));
	cr_assert_not(auth_userdb_check(db, "ours", "pw-ours "));
	cr_assert_not(auth_userdb_check(db, "ours", ""));
	cr_assert_not(auth_userdb_has_user(db, "nobody"));
	cr_assert_not(auth_userdb_check(db, "nobody", "pw-y"));
	cr_assert_not(auth_userdb_check(db, "", ""));
	auth_userdb_unref(db);
}

Test(userdb, empty_file_knows_nobody)
{
	struct auth_userdb *db;

	write_file(users, "# nobody yet\n");
	db = load_ok(60);
	cr_assert_eq(auth_userdb_count(db), 0);
	cr_assert_not(auth_userdb_has_user(db, "alice"));
	cr_assert_not(auth_userdb_check(db, "alice", "x"));
	cr_assert_not(auth_userdb_cached(db, "alice", "x"));
	auth_userdb_unref(db);
}

/* Copy tmpl to out with "@G" replaced by good and "@B" by bad. */
static void
expand(char *out, size_t outlen, const char *tmpl, const char *good,
    const char *bad)
{
	size_t n = 0;

	for (const char *p = tmpl; *p != '\0'; p++) {
		const char *ins = NULL;

		if (p[0] == '@' && p[1] == 'G')
			ins = good;
		else if (p[0] == '@' && p[1] == 'B')
			ins = bad;
		if (ins != NULL) {
			cr_assert_lt(n + strlen(ins), outlen);
			memcpy(out + n, ins, strlen(ins));
			n += strlen(ins);
			p++;
		} else {
			cr_assert_lt(n + 1, outlen);
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

Test(userdb, rejects_bad_entries_with_line)
{
	char y[AUTH_HASH_MAX], badcost[AUTH_HASH_MAX], trunc[AUTH_HASH_MAX];
	char text[2048], want[512], err[512];
	const char *sep;

	mkpasswd("yescrypt", "pw", y, sizeof(y));
	/* $y$j9T$salt$hash: same salt and hash, cost field libcrypt refuses. */
	sep = strchr(y + 3, '$');
	snprintf(badcost, sizeof(badcost), "$y$zzzz%s", sep);
	snprintf(trunc, sizeof(trunc), "%.*s", (int)strlen(y) - 1, y);

	struct {
		const char *tmpl; /* @G is a good hash, @B the bad one */
		const char *bad;
		const char *want; /* after "users:" */
	} cases[] = {
	    {"# c\nalice:@G\nbob:@B\n", "hunter2",
		"3: user \"bob\": not a crypt(3) hash (use mkpasswd -m "
		"yescrypt)"},
	    {"\nalice:@B\nbob:@G\n", "$1$3g7S0xvE$R4wQuXU75voxxCbE3Fx1q0",
		"2: user \"alice\": not a crypt(3) hash"},
	    {"alice:@G\nbob:@B\n", "", "2: user \"bob\": not a crypt(3) hash"},
	    {"alice:@B\n", "qDF4DuTgmMFHM",
		"1: user \"alice\": not a crypt(3) hash"},
	    {"alice:@B\n",
		"$2a$05$eMC6LYoCvkPK89ZnL38Zf.HIiFG3uKjtgzdpX"
		"IS2q0LJb58ZRIW6G",
		"1: user \"alice\": not a crypt(3)"},
	    {"alice:@G\n#\nbob@B\n", "", "3: expected name:hash"},
	    {"alice:@G\nbob:@G\nalice:@G\nbob:@G\n", "",
		"3: user \"alice\": duplicate (first on line 1)"},
	    {"alice:@B\n", trunc, "1: user \"alice\": malformed yescrypt hash"},
	    {"alice:@B\n", "$y$j9T$abc",
		"1: user \"alice\": malformed yescrypt hash"},
	    {"alice:@G # note\n", "",
		"1: user \"alice\": malformed yescrypt hash"},
	    {"alice:@G\n\n\ncarol:@B\n", badcost,
		"4: user \"carol\": libcrypt cannot use this hash"},
	    {" alice:@G\n", "", "1: bad user name"},
	    {"ok:@G\n:@G\n", "", "2: bad user name"},
	    {"a b:@G\n", "", "1: bad user name"},
	    /* Issue 8 defect 10: a BOM would join the first name. */
	    {"\xef\xbb\xbf" "alice:@G\n", "",
		"1: the file starts with a UTF-8 byte-order mark"},
	    {"\xef\xbb\xbf# users\nalice:@G\n", "",
		"1: the file starts with a UTF-8 byte-order mark"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expand(text, sizeof(text), cases[i].tmpl, y, cases[i].bad);
		write_file(users, text);
		err[0] = '\0';
		cr_assert_null(auth_userdb_load(users, 60, err, sizeof(err)),
		    "case %zu loaded", i);
		snprintf(want, sizeof(want), "%s:%s", users, cases[i].want);
		cr_assert(strncmp(err, want, strlen(want)) == 0,
		    "case %zu: got \"%s\", want \"%s\"", i, err, want);
		cr_assert_null(strstr(err, "hunter2"), "password echoed");
	}

	cr_assert_null(
	    auth_userdb_load("/nonexistent/users", 60, err, sizeof(err)));
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(err, "/nonexistent/users: ") == err, "%s", err);
}

Test(userdb, remembers_success_until_ttl)
{
	struct auth_userdb *db;
	double t0, t1, first, second;

	write_alice_bob();
	db = load_ok(1);
	cr_assert_not(auth_userdb_cached(db, "alice", "alice-pw"));

	t0 = now_s();
	t1 = cpu_s();
	cr_assert(auth_userdb_check(db, "alice", "alice-pw"));
	first = cpu_s() - t1;
	cr_assert(auth_userdb_cached(db, "alice", "alice-pw"));
	cr_assert_not(auth_userdb_cached(db, "alice", "wrong"));
	cr_assert_not(auth_userdb_cached(db, "alice", "alice-pw "));
	cr_assert_not(auth_userdb_cached(db, "bob", "alice-pw"));
	cr_assert_not(auth_userdb_cached(db, "bob", "bob-pw"));
	/* "a" + "b\0c" must not collide with "ab" + "c". */
	cr_assert_not(auth_userdb_cached(db, "alic", "ealice-pw"));

	/* The second check is served from the cache, not by a hash. */
	t1 = cpu_s();
	cr_assert(auth_userdb_check(db, "alice", "alice-pw"));
	second = cpu_s() - t1;
	cr_assert(second * 4 < first,
	    "cached check took %.1f ms CPU, first %.1f ms", second * 1e3,
	    first * 1e3);
	cr_assert_not(auth_userdb_check(db, "alice", "wrong"));

	/* The entry was made after t0, so it expires no sooner than t0 + 1. */
	while (
	    auth_userdb_cached(db, "alice", "alice-pw") && now_s() - t0 < 60) {
		struct timespec ts = {0, 20 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	t1 = now_s();
	cr_assert_not(auth_userdb_cached(db, "alice", "alice-pw"));
	/* Not before the ttl; how long after it depends on the machine. */
	cr_assert_geq(t1 - t0, 1.0);

	cr_assert(auth_userdb_check(db, "alice", "alice-pw"));
	cr_assert(auth_userdb_cached(db, "alice", "alice-pw"));
	auth_userdb_unref(db);
}

Test(userdb, failures_are_not_remembered)
{
	struct auth_userdb *db;

	write_alice_bob();
	db = load_ok(60);
	cr_assert_not(auth_userdb_check(db, "alice", "wrong"));
	cr_assert_not(auth_userdb_cached(db, "alice", "wrong"));
	cr_assert_not(auth_userdb_cached(db, "alice", "alice-pw"));
	cr_assert_not(auth_userdb_check(db, "mallory", "alice-pw"));
	cr_assert_not(auth_userdb_cached(db, "mallory", "alice-pw"));
	auth_userdb_unref(db);
}

Test(userdb, fresh_load_has_empty_cache)
{
	struct auth_userdb *a, *b;

	write_alice_bob();
	a = load_ok(60);
	cr_assert(auth_userdb_check(a, "bob", "bob-pw"));
	cr_assert(auth_userdb_cached(a, "bob", "bob-pw"));
	b = load_ok(60);
	cr_assert_not(auth_userdb_cached(b, "bob", "bob-pw"));
	cr_assert(auth_userdb_cached(a, "bob", "bob-pw"));
	auth_userdb_unref(a);
	auth_userdb_unref(b);
}

Test(userdb, ttl_zero_disables_cache)
{
	struct auth_userdb *db;

	write_alice_bob();
	db = load_ok(0);
	cr_assert(auth_userdb_check(db, "alice", "alice-pw"));
	cr_assert_not(auth_userdb_cached(db, "alice", "alice-pw"));
	auth_userdb_unref(db);
}

/* Fastest of three checks of user with a wrong password. */
static double
best_time(struct auth_userdb *db, const char *user)
{
	double best = 1e9, t;

	for (int i = 0; i < 3; i++) {
		t = cpu_s();
		cr_assert_not(auth_userdb_check(db, user, "wrong"));
		t = cpu_s() - t;
		if (t < best)
			best = t;
	}
	return best;
}

Test(userdb, unknown_user_costs_a_hash)
{
	struct auth_userdb *db;
	double known, unknown;

	write_alice_bob();
	db = load_ok(0);
	known = best_time(db, "alice");
	unknown = best_time(db, "nobody");
	cr_assert(unknown * 2 > known, "unknown %.2f ms, known %.2f ms",
	    unknown * 1e3, known * 1e3);
	auth_userdb_unref(db);
}

struct worker {
	struct auth_userdb *db;
	int id, wrong;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 3; i++) {
		/* Each thread asks a different mix, in a different order. */
		switch ((w->id + i) % 3) {
		case 0:
			w->wrong +=
			    !auth_userdb_check(w->db, "alice", "alice-pw");
			w->wrong += auth_userdb_check(w->db, "bob", "alice-pw");
			break;
		case 1:
			w->wrong += !auth_userdb_check(w->db, "bob", "bob-pw");
			w->wrong +=
			    auth_userdb_check(w->db, "nobody", "bob-pw");
			break;
		case 2:
			w->wrong += auth_userdb_check(w->db, "alice", "bob-pw");
			w->wrong += !auth_userdb_has_user(w->db, "bob");
			break;
		}
		w->wrong += auth_userdb_cached(w->db, "alice", "bob-pw");
	}
	auth_userdb_unref(w->db);
	return NULL;
}

static void
run_threads(unsigned ttl)
{
	struct worker w[8];
	pthread_t t[8];
	struct auth_userdb *db;

	db = load_ok(ttl);
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){auth_userdb_ref(db), i, 0};
		cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	/* The threads hold their own references. */
	auth_userdb_unref(db);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_assert_eq(w[i].wrong, 0, "thread %d: %d wrong answers", i,
		    w[i].wrong);
	}
}

Test(userdb, concurrent_checks_agree)
{
	write_alice_bob();
	run_threads(0);
	run_threads(60);
}

Test(userdb, reference_outlives_first_owner)
{
	struct auth_userdb *db, *ref;

	write_alice_bob();
	db = load_ok(60);
	ref = auth_userdb_ref(db);
	cr_assert_eq(ref, db);
	auth_userdb_unref(db);
	cr_assert(auth_userdb_check(ref, "alice", "alice-pw"));
	auth_userdb_unref(ref);
	auth_userdb_unref(NULL);
}

Test(userdb, hash_password_makes_yescrypt)
{
	char a[AUTH_HASH_MAX], b[AUTH_HASH_MAX], small[20];
	struct crypt_data *cd;

	cr_assert_eq(auth_hash_password("s3cret", a, sizeof(a)), 0);
	cr_assert_eq(auth_hash_password("s3cret", b, sizeof(b)), 0);
	cr_assert(strncmp(a, "$y$", 3) == 0, "%s", a);
	cr_assert_str_neq(a, b, "salt not random");
	cr_assert_not_null(cd = calloc(1, sizeof(*cd)));
	cr_assert_str_eq(crypt_r("s3cret", a, cd), a);
	free(cd);
	errno = 0;
	cr_assert_eq(auth_hash_password("s3cret", small, sizeof(small)), -1);
	cr_assert_eq(errno, ERANGE);
}

Test(userdb, set_replaces_line_and_keeps_rest)
{
	char h[AUTH_HASH_MAX], old[4096], want[8192], err[512] = "";
	const char *now;
	struct auth_userdb *db;
	struct stat st;
	char *bobline, *end;

	write_alice_bob();
	/* Keep a comment and alice's line exactly; bob's line is replaced. */
	snprintf(old, sizeof(old), "# staff\n%s\n# end", read_file(users));
	write_file(users, old);
	cr_assert_eq(chmod(users, 0640), 0);

	cr_assert_eq(auth_hash_password("bob-new", h, sizeof(h)), 0);
	cr_assert_eq(
	    auth_userdb_set(users, "bob", h, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(bobline = strstr(old, "bob:"));
	end = strchr(bobline, '\n');
	snprintf(want, sizeof(want), "%.*sbob:%s%s\n", (int)(bobline - old),
	    old, h, end);
	now = read_file(users);
	cr_assert_str_eq(now, want);
	cr_assert_eq(stat(users, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640, "mode %o",
	    (unsigned)(st.st_mode & 07777));

	db = load_ok(0);
	cr_assert(auth_userdb_check(db, "bob", "bob-new"));
	cr_assert_not(auth_userdb_check(db, "bob", "bob-pw"));
	cr_assert(auth_userdb_check(db, "alice", "alice-pw"));
	auth_userdb_unref(db);

	/* Adding a user appends a line and leaves the rest alone. */
	strcpy(old, read_file(users));
	cr_assert_eq(
	    auth_userdb_set(users, "carol", h, err, sizeof(err)), 0, "%s", err);
	snprintf(want, sizeof(want), "%scarol:%s\n", old, h);
	cr_assert_str_eq(read_file(users), want);
	cr_assert_eq(stat(users, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
}

Test(userdb, set_mends_duplicates)
{
	char h[AUTH_HASH_MAX], text[2048], want[2048], err[512] = "";

	cr_assert_eq(auth_hash_password("pw", h, sizeof(h)), 0);
	snprintf(text, sizeof(text), "alice:%s\nbob:%s\nalice:%s\n", h, h, h);
	write_file(users, text);
	cr_assert_eq(auth_userdb_set(users, "alice", h, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "alice:%s\nbob:%s\n", h, h);
	cr_assert_str_eq(read_file(users), want);
}

Test(userdb, set_creates_private_file)
{
	char h[AUTH_HASH_MAX], want[1024], err[512] = "";
	struct stat st;
	mode_t old;

	cr_assert_eq(auth_hash_password("pw", h, sizeof(h)), 0);
	old = umask(0);
	cr_assert_eq(
	    auth_userdb_set(users, "dave", h, err, sizeof(err)), 0, "%s", err);
	umask(old);
	snprintf(want, sizeof(want), "dave:%s\n", h);
	cr_assert_str_eq(read_file(users), want);
	cr_assert_eq(stat(users, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
}

Test(userdb, set_refuses_bad_input)
{
	char h[AUTH_HASH_MAX], err[512] = "", before[4096];

	write_alice_bob();
	strcpy(before, read_file(users));
	cr_assert_eq(auth_hash_password("pw", h, sizeof(h)), 0);

	cr_assert_eq(
	    auth_userdb_set(users, "bob", "hunter2", err, sizeof(err)), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(err, "not a crypt(3) hash") != NULL, "%s", err);
	cr_assert_null(strstr(err, "hunter2"));
	cr_assert_eq(auth_userdb_set(users, "a:b", h, err, sizeof(err)), -1);
	cr_assert_eq(auth_userdb_set(users, "", h, err, sizeof(err)), -1);
	cr_assert_eq(
	    auth_userdb_set(users, "bob", "$y$j9T$abc", err, sizeof(err)), -1);
	cr_assert_str_eq(read_file(users), before);
	cr_assert_eq(
	    auth_userdb_set("/nonexistent/users", "bob", h, err, sizeof(err)),
	    -1);
}
