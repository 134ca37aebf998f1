/*
 * auth/linefile: the secret-file mode check shared by the users file, the
 * Convert keys file and tls.key (refused when others have any access or
 * the group may write; a warning for a group-readable file), the reader
 * refusing such a file before reading a line, and a UTF-8 byte-order mark
 * at the start of a file refused at line 1.
 */
#include "auth/linefile.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tdir[] = "/tmp/test_linefile.XXXXXX";
static char path[sizeof(tdir) + 16];

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
	cr_assert_not_null(mkdtemp(tdir));
	snprintf(path, sizeof(path), "%s/secret", tdir);
}

static void
teardown(void)
{
	nftw(tdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(linefile, .init = setup, .fini = teardown);

/* Write text to path with mode (whatever the umask). */
static void
write_mode(const char *text, mode_t mode)
{
	FILE *f;

	cr_assert_not_null(f = fopen(path, "w"));
	cr_assert(fputs(text, f) >= 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

/* Count the lines parse is called with. */
static int
count_line(void *arg, char *line, const char *p, unsigned lineno, char *err,
    size_t errlen)
{
	(void)line;
	(void)p;
	(void)lineno;
	(void)err;
	(void)errlen;
	(*(unsigned *)arg)++;
	return 0;
}

Test(linefile, secret_modes)
{
	static const struct {
		mode_t mode;
		int rc;
		const char *why; /* in the message when refused */
	} cases[] = {
		{0600, 0, NULL},
		{0400, 0, NULL},
		{0640, 0, NULL},  /* warned about */
		{0440, 0, NULL},  /* warned about */
		{0700, 0, NULL},
		{0644, -1, "accessible by others"},
		{0604, -1, "accessible by others"},
		{0602, -1, "accessible by others"},
		{0601, -1, "accessible by others"},
		{0666, -1, "accessible by others"},
		{0620, -1, "writable by its group"},
		{0660, -1, "writable by its group"},
		{04600, 0, NULL},
	};
	char err[512], want[600];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_mode("alice x\n", cases[i].mode);
		err[0] = '\0';
		errno = 0;
		cr_expect_eq(auth_secret_file_check(path, err, sizeof(err)),
		    cases[i].rc, "mode %04o: %s", (unsigned)cases[i].mode, err);
		if (cases[i].rc == 0)
			continue;
		cr_expect_eq(errno, EACCES);
		snprintf(want, sizeof(want), "%s: mode %04o: ", path,
		    (unsigned)cases[i].mode);
		cr_expect_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
		cr_expect_not_null(strstr(err, cases[i].why), "%s", err);
		cr_expect_not_null(strstr(err, "chmod 600"), "%s", err);
	}
}

Test(linefile, missing_file)
{
	char err[512];

	errno = 0;
	cr_expect_eq(auth_secret_file_check("/nonexistent/key", err,
			 sizeof(err)),
	    -1);
	cr_expect_eq(errno, ENOENT);
	cr_expect_not_null(strstr(err, "/nonexistent/key"), "%s", err);
}

Test(linefile, reader_refuses_unprotected_file)
{
	char err[512] = "";
	unsigned n = 0;

	write_mode("alice x\nbob y\n", 0644);
	errno = 0;
	cr_expect_eq(auth_linefile_read(path, count_line, &n, err,
			 sizeof(err)),
	    -1);
	cr_expect_eq(errno, EACCES);
	cr_expect_eq(n, 0, "no line read from a refused file");
	cr_expect_not_null(strstr(err, "mode 0644"), "%s", err);

	chmod(path, 0640);
	cr_expect_eq(auth_linefile_read(path, count_line, &n, err,
			 sizeof(err)),
	    0, "%s", err);
	cr_expect_eq(n, 2);
}

Test(linefile, symlink_judged_by_its_target)
{
	char link[sizeof(path) + 8], err[512];

	write_mode("alice x\n", 0644);
	snprintf(link, sizeof(link), "%s.lnk", path);
	cr_assert_eq(symlink(path, link), 0);
	cr_expect_eq(auth_secret_file_check(link, err, sizeof(err)), -1);
	chmod(path, 0600);
	cr_expect_eq(auth_secret_file_check(link, err, sizeof(err)), 0, "%s",
	    err);
}

Test(linefile, byte_order_mark_refused_at_line_1)
{
	static const char *const texts[] = {
		"\xef\xbb\xbf" "alice x\n",
		"\xef\xbb\xbf" "# comment\nalice x\n",
		"\xef\xbb\xbf\n",
		"\xef\xbb\xbf",
	};
	char err[512], want[600];
	unsigned n;

	snprintf(want, sizeof(want), "%s:1: the file starts with a UTF-8 "
	    "byte-order mark (EF BB BF)", path);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		write_mode(texts[i], 0600);
		n = 0;
		errno = 0;
		cr_expect_eq(auth_linefile_read(path, count_line, &n, err,
				 sizeof(err)),
		    -1, "case %zu", i);
		cr_expect_eq(errno, EINVAL, "case %zu", i);
		cr_expect_eq(n, 0, "case %zu", i);
		cr_expect_eq(strncmp(err, want, strlen(want)), 0,
		    "case %zu: %s", i, err);
	}
	/* Only the first bytes of the file: elsewhere it is text. */
	write_mode("alice x\n\xef\xbb\xbf" "bob y\n", 0600);
	n = 0;
	cr_expect_eq(auth_linefile_read(path, count_line, &n, err,
			 sizeof(err)),
	    0, "%s", err);
	cr_expect_eq(n, 2);
	/* Two of its three bytes are not a BOM. */
	write_mode("\xef\xbb" "alice x\n", 0600);
	n = 0;
	cr_expect_eq(auth_linefile_read(path, count_line, &n, err,
			 sizeof(err)),
	    0, "%s", err);
}
