/*
 * The Convert keys file: a good file with comments and odd spacing, each
 * malformed line refused with its line number and without echoing the
 * key, duplicates, wrong key lengths, and `mpgw key new` (auth_keys_new)
 * creating and replacing lines atomically with the right mode.
 */
#include "auth/keys.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static char tdir[] = "/tmp/test_keys.XXXXXX";
static char kfile[sizeof(tdir) + 16];

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
	snprintf(kfile, sizeof(kfile), "%s/convert.keys", tdir);
}

static void
teardown(void)
{
	nftw(tdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(keys, .init = setup, .fini = teardown);

/* Replace the file at path with text. */
static void
write_file(const char *path, const char *text)
{
	FILE *f;

	cr_assert_not_null(f = fopen(path, "w"));
	cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	cr_assert_eq(fclose(f), 0);
}

/* The file at path, in a static buffer. */
static const char *
read_file(const char *path)
{
	static char buf[16384];
	size_t n;
	FILE *f;

	cr_assert_not_null(f = fopen(path, "r"), "%s", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* base64 of len bytes all equal to fill, into out (at least 4/3 len + 1). */
static void
b64_of(uint8_t fill, size_t len, char *out)
{
	uint8_t raw[64];

	memset(raw, fill, len);
	EVP_EncodeBlock((unsigned char *)out, raw, (int)len);
}

/* Decode the base64 key in s, which must be 32 bytes, into key. */
static void
b64_decode32(const char *s, uint8_t key[32])
{
	uint8_t buf[48];

	cr_assert_eq(strlen(s), 44, "%s", s);
	cr_assert_eq(EVP_DecodeBlock(buf, (const unsigned char *)s, 44), 33);
	cr_assert_eq(s[43], '=');
	memcpy(key, buf, 32);
}

/* Load kfile, which must fail; err gets the message. */
static void
load_fails(char *err, size_t errlen)
{
	err[0] = '\0';
	errno = 0;
	cr_assert_null(auth_keys_load(kfile, err, errlen));
	cr_assert_eq(errno, EINVAL, "errno %d: %s", errno, err);
}

Test(keys, loads_good_file)
{
	char a[64], b[64], c[64], text[1024], err[512] = "";
	uint8_t key[32], want[32];
	struct auth_keys *k;

	b64_of(0x11, 32, a);
	b64_of(0x22, 32, b);
	b64_of(0xfe, 32, c);
	snprintf(text, sizeof(text),
	    "# Convert keys\n"
	    "\n"
	    "alice %s\n"
	    "   \t\n"
	    "\tbob\t\t%s   \r\n"
	    "  # indented comment\n"
	    "u\xc3\xa9ser!:x %s", /* UTF-8, punctuation, no final newline */
	    a, b, c);
	write_file(kfile, text);
	cr_assert_not_null(
	    k = auth_keys_load(kfile, err, sizeof(err)), "%s", err);
	cr_assert_eq(auth_keys_count(k), 3);

	memset(want, 0x11, 32);
	cr_assert(auth_keys_get(k, "alice", key));
	cr_assert_arr_eq(key, want, 32);
	memset(want, 0x22, 32);
	cr_assert(auth_keys_get(k, "bob", key));
	cr_assert_arr_eq(key, want, 32);
	memset(want, 0xfe, 32);
	cr_assert(auth_keys_get(k, "u\xc3\xa9ser!:x", key));
	cr_assert_arr_eq(key, want, 32);

	memset(key, 0x5a, 32);
	memset(want, 0x5a, 32);
	cr_assert_not(auth_keys_get(k, "carol", key));
	cr_assert_not(auth_keys_get(k, "alic", key));
	cr_assert_not(auth_keys_get(k, "alice ", key));
	cr_assert_not(auth_keys_get(k, "", key));
	cr_assert_arr_eq(key, want, 32, "a miss must leave key alone");
	auth_keys_unref(k);
}

Test(keys, empty_and_comment_only_files)
{
	char err[256] = "";
	struct auth_keys *k;
	uint8_t key[32];

	write_file(kfile, "");
	cr_assert_not_null(k = auth_keys_load(kfile, err, sizeof(err)));
	cr_assert_eq(auth_keys_count(k), 0);
	cr_assert_not(auth_keys_get(k, "alice", key));
	auth_keys_unref(k);

	write_file(kfile, "# nobody yet\n\n");
	cr_assert_not_null(k = auth_keys_load(kfile, err, sizeof(err)));
	cr_assert_eq(auth_keys_count(k), 0);
	auth_keys_unref(k);

	cr_assert_eq(auth_keys_count(NULL), 0);
	cr_assert_not(auth_keys_get(NULL, "alice", key));
	auth_keys_unref(NULL);
}

Test(keys, missing_file)
{
	char err[512] = "";

	errno = 0;
	cr_assert_null(auth_keys_load(kfile, err, sizeof(err)));
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(err, kfile) != NULL, "%s", err);
}

/* One malformed line and what its message must say. */
struct bad_line {
	char line[4400];
	const char *want;
	char secret[64]; /* must not appear in the message ("" = none) */
};

/* Append a case to c[*n]: the line from fmt, its message and secret. */
__attribute__((format(printf, 5, 6))) static void
bad_case(struct bad_line *c, size_t *n, const char *want, const char *secret,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c[*n].line, sizeof(c[*n].line), fmt, ap);
	va_end(ap);
	c[*n].want = want;
	snprintf(c[*n].secret, sizeof(c[*n].secret), "%s", secret);
	(*n)++;
}

/* Every kind of bad line, as line 3 between good lines. */
Test(keys, rejects_bad_lines_with_line)
{
	static struct bad_line c[32];
	static char text[12000];
	char good[64], k31[64], k33[64], urlsafe[64], stray[64];
	char longname[300], longkey[4300], prefix[256], err[1024];
	const char *key = "\"name base64key\"";
	size_t n = 0;

	b64_of(0x33, 32, good); /* ends "MzM=" */
	b64_of(0x44, 31, k31);
	b64_of(0x55, 33, k33);
	/* 0xfb bytes encode to "+/v7": swap in the URL-safe "-_". */
	b64_of(0xfb, 32, urlsafe);
	for (char *p = urlsafe; *p != '\0'; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	/* 'N' before '=' has a low bit set that the padding drops. */
	snprintf(stray, sizeof(stray), "%s", good);
	stray[42] = 'N';
	memset(longname, 'n', 256);
	longname[256] = '\0';
	memset(longkey, 'A', 4200);
	longkey[4200] = '\0';

	bad_case(c, &n, key, "", "alice");
	bad_case(c, &n, key, good, "%s", good);
	bad_case(c, &n, key, good, "carol %s extra", good);
	bad_case(c, &n, key, good, "carol %s %s", good, good);
	bad_case(c, &n, "not valid base64", good + 12, "carol %.10s*%s", good,
	    good + 11);
	bad_case(c, &n, "not valid base64", good + 22, "carol %.20s=%s", good,
	    good + 21);
	bad_case(c, &n, "not valid base64", good + 4, "carol %.43s", good);
	bad_case(c, &n, "not valid base64", good + 4, "carol %s=", good);
	bad_case(c, &n, "not valid base64", good + 4, "carol %s==", good);
	bad_case(c, &n, "not valid base64", urlsafe + 4, "carol %s", urlsafe);
	bad_case(c, &n, "not valid base64", stray + 4, "carol %s", stray);
	bad_case(c, &n, "not valid base64", "", "carol ====");
	bad_case(c, &n, "not valid base64", "", "carol A===");
	bad_case(
	    c, &n, "key is 31 bytes, expected 32", k31 + 4, "carol %s", k31);
	bad_case(
	    c, &n, "key is 33 bytes, expected 32", k33 + 4, "carol %s", k33);
	bad_case(c, &n, "key is 3 bytes, expected 32", "", "carol AAAA");
	bad_case(c, &n, "bad user name", good, "%s %s", longname, good);
	bad_case(c, &n, "bad user name", good, "car\x01ol %s", good);
	bad_case(c, &n, "bad user name", good, "car\x7fol %s", good);
	bad_case(c, &n, "bad user name", good, "car\rol %s", good);
	bad_case(c, &n, "line too long", "", "carol %s", longkey);

	snprintf(prefix, sizeof(prefix), "# keys\nalice %s\n", good);
	for (size_t i = 0; i < n; i++) {
		char where[256];

		snprintf(text, sizeof(text), "%s%s\nbob %s\n", prefix,
		    c[i].line, good);
		write_file(kfile, text);
		load_fails(err, sizeof(err));
		snprintf(where, sizeof(where), "%s:3: ", kfile);
		cr_assert(strncmp(err, where, strlen(where)) == 0,
		    "case %zu: %s", i, err);
		cr_assert(
		    strstr(err, c[i].want) != NULL, "case %zu: %s", i, err);
		if (c[i].secret[0] != '\0')
			cr_assert_null(strstr(err, c[i].secret),
			    "case %zu echoes the key: %s", i, err);
		cr_assert_null(strstr(err, "AAAA"), "case %zu: %s", i, err);
	}
}

Test(keys, nul_byte_is_refused)
{
	char good[64], text[256], want[256], err[512];
	size_t len;
	FILE *f;

	b64_of(0x66, 32, good);
	len = (size_t)snprintf(text, sizeof(text), "alice %s\nbo", good);
	text[len++] = '\0';
	len += (size_t)snprintf(text + len, sizeof(text) - len, "b %s\n", good);
	cr_assert_not_null(f = fopen(kfile, "w"));
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	load_fails(err, sizeof(err));
	snprintf(want, sizeof(want), "%s:2: NUL byte", kfile);
	cr_assert_str_eq(err, want);
}

Test(keys, byte_order_mark_is_refused)
{
	char good[64], text[256], want[256], err[512];
	struct auth_keys *k;

	/* Issue 8 defect 10: it would join the first user's name. */
	b64_of(0x66, 32, good);
	snprintf(text, sizeof(text), "\xef\xbb\xbf" "alice %s\n", good);
	write_file(kfile, text);
	load_fails(err, sizeof(err));
	snprintf(want, sizeof(want), "%s:1: the file starts with a UTF-8 "
	    "byte-order mark (EF BB BF)", kfile);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
	/* Not the file's first bytes: a (UTF-8) name like any other. */
	snprintf(text, sizeof(text), "alice %s\n\xef\xbb\xbf" "bob %s\n",
	    good, good);
	write_file(kfile, text);
	cr_assert_not_null(k = auth_keys_load(kfile, err, sizeof(err)), "%s",
	    err);
	auth_keys_unref(k);
}

Test(keys, duplicate_names)
{
	char a[64], b[64], text[1024], want[512], err[512];

	b64_of(0x01, 32, a);
	b64_of(0x02, 32, b);
	snprintf(text, sizeof(text),
	    "alice %s\nbob %s\n# again\nbob %s\nalice %s\n", a, b, a, b);
	write_file(kfile, text);
	load_fails(err, sizeof(err));
	snprintf(want, sizeof(want),
	    "%s:4: user \"bob\": duplicate (first on line 2)", kfile);
	cr_assert_str_eq(err, want);
	cr_assert_null(strstr(err, a));
	cr_assert_null(strstr(err, b));
}

Test(keys, key_lengths_31_and_33)
{
	char k[64], text[256], want[512], err[512];

	b64_of(0x77, 31, k);
	cr_assert_eq(strlen(k), 44); /* same length as a good key */
	snprintf(text, sizeof(text), "short %s\n", k);
	write_file(kfile, text);
	load_fails(err, sizeof(err));
	snprintf(want, sizeof(want),
	    "%s:1: user \"short\": key is 31 bytes, expected 32", kfile);
	cr_assert_str_eq(err, want);

	b64_of(0x77, 33, k);
	cr_assert_eq(strlen(k), 44);
	snprintf(text, sizeof(text), "long %s\n", k);
	write_file(kfile, text);
	load_fails(err, sizeof(err));
	snprintf(want, sizeof(want),
	    "%s:1: user \"long\": key is 33 bytes, expected 32", kfile);
	cr_assert_str_eq(err, want);
}

Test(keys, new_creates_then_replaces)
{
	char b64[AUTH_KEY_B64_SIZE], b64_2[AUTH_KEY_B64_SIZE], other[64];
	char want[1024], text[1024], err[512] = "";
	uint8_t printed[32], got[32];
	struct auth_keys *k;
	struct stat st;
	mode_t old;

	/* A new file is private whatever the umask. */
	old = umask(0);
	cr_assert_eq(
	    auth_keys_new(kfile, "alice", b64, sizeof(b64), err, sizeof(err)),
	    0, "%s", err);
	umask(old);
	cr_assert_eq(stat(kfile, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o",
	    (unsigned)(st.st_mode & 07777));
	snprintf(want, sizeof(want), "alice %s\n", b64);
	cr_assert_str_eq(read_file(kfile), want);

	cr_assert_not_null(
	    k = auth_keys_load(kfile, err, sizeof(err)), "%s", err);
	b64_decode32(b64, printed);
	cr_assert(auth_keys_get(k, "alice", got));
	cr_assert_arr_eq(got, printed, 32);
	auth_keys_unref(k);

	/* Replacing keeps comments, other users, mode and line order. */
	b64_of(0x99, 32, other);
	snprintf(text, sizeof(text), "# ops\nalice %s\n\nbob\t%s\n# end", b64,
	    other);
	write_file(kfile, text);
	cr_assert_eq(chmod(kfile, 0640), 0);
	cr_assert_eq(auth_keys_new(kfile, "alice", b64_2, sizeof(b64_2), err,
			 sizeof(err)),
	    0, "%s", err);
	cr_assert_str_neq(b64, b64_2);
	snprintf(want, sizeof(want), "# ops\nalice %s\n\nbob\t%s\n# end\n",
	    b64_2, other);
	cr_assert_str_eq(read_file(kfile), want);
	cr_assert_eq(stat(kfile, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);

	/* A tab-separated line is the user's line too. */
	cr_assert_eq(
	    auth_keys_new(kfile, "bob", b64, sizeof(b64), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "# ops\nalice %s\n\nbob %s\n# end\n",
	    b64_2, b64);
	cr_assert_str_eq(read_file(kfile), want);

	/* A new user is appended. */
	cr_assert_eq(auth_keys_new(kfile, "carol", other, sizeof(other), err,
			 sizeof(err)),
	    0);
	cr_assert_not_null(
	    k = auth_keys_load(kfile, err, sizeof(err)), "%s", err);
	cr_assert_eq(auth_keys_count(k), 3);
	b64_decode32(b64_2, printed);
	cr_assert(auth_keys_get(k, "alice", got));
	cr_assert_arr_eq(got, printed, 32);
	b64_decode32(b64, printed);
	cr_assert(auth_keys_get(k, "bob", got));
	cr_assert_arr_eq(got, printed, 32);
	b64_decode32(other, printed);
	cr_assert(auth_keys_get(k, "carol", got));
	cr_assert_arr_eq(got, printed, 32);
	auth_keys_unref(k);
}

Test(keys, new_mends_duplicates_and_follows_symlink)
{
	char b64[AUTH_KEY_B64_SIZE], a[64], want[512], text[512], link[128];
	char err[512] = "";
	struct stat st;

	b64_of(0x12, 32, a);
	snprintf(text, sizeof(text), "alice %s\nbob %s\nalice %s\n", a, a, a);
	write_file(kfile, text);
	snprintf(link, sizeof(link), "%s/link", tdir);
	cr_assert_eq(symlink("convert.keys", link), 0);
	cr_assert_eq(
	    auth_keys_new(link, "alice", b64, sizeof(b64), err, sizeof(err)), 0,
	    "%s", err);
	snprintf(want, sizeof(want), "alice %s\nbob %s\n", b64, a);
	cr_assert_str_eq(read_file(kfile), want);
	cr_assert_eq(lstat(link, &st), 0);
	cr_assert(S_ISLNK(st.st_mode));
}

Test(keys, new_refuses_bad_input)
{
	char b64[AUTH_KEY_B64_SIZE], small[AUTH_KEY_B64_SIZE - 1], before[512];
	char longname[300], err[512];
	const char *bad[] = {"", "a b", "a\tb", "a\nb", "#alice", "a\x7f"};

	b64_of(0x21, 32, b64);
	snprintf(before, sizeof(before), "alice %s\n", b64);
	write_file(kfile, before);

	errno = 0;
	cr_assert_eq(
	    auth_keys_new(kfile, "bob", small, sizeof(small), err, sizeof(err)),
	    -1);
	cr_assert_eq(errno, ERANGE);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert_eq(auth_keys_new(kfile, bad[i], b64, sizeof(b64), err,
				 sizeof(err)),
		    -1, "name %zu", i);
		cr_assert_eq(errno, EINVAL);
		cr_assert(strstr(err, "bad user name") != NULL, "%s", err);
	}
	memset(longname, 'x', 256);
	longname[256] = '\0';
	cr_assert_eq(
	    auth_keys_new(kfile, longname, b64, sizeof(b64), err, sizeof(err)),
	    -1);
	cr_assert_str_eq(read_file(kfile), before);

	longname[255] = '\0';
	cr_assert_eq(
	    auth_keys_new(kfile, longname, b64, sizeof(b64), err, sizeof(err)),
	    0, "%s", err);

	errno = 0;
	cr_assert_eq(auth_keys_new("/nonexistent/dir/keys", "bob", b64,
			 sizeof(b64), err, sizeof(err)),
	    -1);
	cr_assert_eq(errno, ENOENT);
}

Test(keys, reference_outlives_first_owner)
{
	char b64[AUTH_KEY_B64_SIZE], err[512] = "";
	struct auth_keys *k, *k2;
	uint8_t key[32], want[32];

	cr_assert_eq(
	    auth_keys_new(kfile, "alice", b64, sizeof(b64), err, sizeof(err)),
	    0);
	cr_assert_not_null(k = auth_keys_load(kfile, err, sizeof(err)));
	k2 = auth_keys_ref(k);
	cr_assert_eq(k2, k);
	auth_keys_unref(k);
	b64_decode32(b64, want);
	cr_assert(auth_keys_get(k2, "alice", key));
	cr_assert_arr_eq(key, want, 32);
	auth_keys_unref(k2);
}
