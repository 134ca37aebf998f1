/*
 * libFuzzer target for the users and keys files: the shared line reader
 * (auth/linefile.c) and both loaders on top of it (auth_userdb_load,
 * auth_keys_load). The input is written to a memfd and each reads it by
 * path, as the daemon reads the real files.
 *
 * Beyond the sanitizers, it aborts unless:
 *   - the reader hands out only lines that are NUL-terminated, no longer
 *     than the bytes it read, right-trimmed, not blank and not comments, in
 *     increasing line order within the file's line count;
 *   - every error names the file ("path:..." or "path: ...");
 *   - a loaded db or key set holds no more entries than the reader gave
 *     lines, and the name on its first entry line is found in it.
 *
 * Checking a hash costs one crypt(3) per kind of hash at load, and the
 * cost parameters are in the input: "$6$rounds=999999999$" would take
 * minutes and be reported as a hang that is not a parser bug. So crypt_r
 * is wrapped (-Wl,--wrap=crypt_r): the real one runs for the cheap cost
 * settings the seed corpus uses, any other setting gets libxcrypt's
 * failure token, which the loader must refuse cleanly.
 *
 *   make -C tests/fuzz	(builds ../../build-fuzz/fuzz_linefile)
 *   build-fuzz/fuzz_linefile NEW_DIR tests/fuzz/corpus/fuzz_linefile
 */
#include <crypt.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/keys.h"
#include "auth/linefile.h"
#include "auth/userdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
char *__real_crypt_r(const char *, const char *, struct crypt_data *);
char *__wrap_crypt_r(const char *, const char *, struct crypt_data *);

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		abort();						\
	}								\
} while (0)

/* Cost settings crypt_r may really run: each takes a millisecond or so. */
static const char *const cheap[] = {
	"$y$j75$", "$gy$j75$", "$7$BU..../....", "$6$rounds=1000$",
	"$5$rounds=1000$", "$2b$05$", "$2y$05$",
};

char *
__wrap_crypt_r(const char *phrase, const char *setting, struct crypt_data *cd)
{
	bool ok = false;

	for (size_t i = 0; i < sizeof(cheap) / sizeof(cheap[0]); i++)
		ok = ok || strncmp(setting, cheap[i], strlen(cheap[i])) == 0;
	/* sha-crypt without rounds= is 5000 rounds: cheap too. */
	if ((strncmp(setting, "$6$", 3) == 0 ||
	    strncmp(setting, "$5$", 3) == 0) &&
	    strncmp(setting + 3, "rounds=", 7) != 0)
		ok = true;
	if (ok)
		return __real_crypt_r(phrase, setting, cd);
	strcpy(cd->output, "*0");
	return cd->output;
}

struct seen {
	const uint8_t *data;
	size_t size;
	unsigned lines;		/* in the file */
	unsigned given;		/* handed to the callback */
	unsigned last;
	char first[300];	/* first entry line */
};

static bool
blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The line reader's callback: check what it was handed. */
static int
on_line(void *arg, char *line, const char *path, unsigned lineno, char *err,
    size_t errlen)
{
	struct seen *s = arg;
	size_t len = strlen(line), i = 0;

	(void)path;
	(void)err;
	(void)errlen;
	CHECK(lineno > s->last && lineno <= s->lines);
	CHECK(len > 0 && len <= s->size);
	CHECK(!blank(line[len - 1]) && line[len - 1] != '\r' &&
	    line[len - 1] != '\n');
	while (blank(line[i]))
		i++;
	CHECK(line[i] != '\0' && line[i] != '#');
	if (s->given == 0)
		snprintf(s->first, sizeof(s->first), "%s", line + i);
	s->last = lineno;
	s->given++;
	return 0;
}

/* Abort unless err starts with path. */
static void
check_err(const char *err, const char *path)
{
	size_t n = strlen(path);

	CHECK(strncmp(err, path, n) == 0 && (err[n] == ':'));
}

/* The name that starts s, up to the first byte of stop (or a blank). */
static void
first_name(const char *s, const char *stop, char *out, size_t cap)
{
	size_t n = strcspn(s, stop);

	if (n >= cap)
		n = cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct seen s = { data, size, 1, 0, 0, "" };
	struct auth_userdb *db;
	struct auth_keys *k;
	char err[8192], name[300];
	uint8_t key[AUTH_KEY_LEN];

	if (fd == -1) {
		CHECK((fd = memfd_create("fuzz-linefile", MFD_CLOEXEC)) != -1);
		CHECK(fchmod(fd, 0600) == 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(size == 0 || pwrite(fd, data, size, 0) == (ssize_t)size);
	for (size_t i = 0; i + 1 < size; i++)
		s.lines += data[i] == '\n';

	if (auth_linefile_read(path, on_line, &s, err, sizeof(err)) == -1)
		check_err(err, path);

	if ((db = auth_userdb_load(path, 0, err, sizeof(err))) != NULL) {
		CHECK(auth_userdb_count(db) <= s.given);
		if (s.given > 0) {
			first_name(s.first, ":", name, sizeof(name));
			CHECK(auth_userdb_has_user(db, name));
		}
		CHECK(!auth_userdb_has_user(db, ""));
		auth_userdb_unref(db);
	} else
		check_err(err, path);

	if ((k = auth_keys_load(path, err, sizeof(err))) != NULL) {
		CHECK(auth_keys_count(k) <= s.given);
		if (s.given > 0) {
			first_name(s.first, " \t", name, sizeof(name));
			CHECK(auth_keys_get(k, name, key));
		}
		auth_keys_unref(k);
	} else
		check_err(err, path);
	return 0;
}
