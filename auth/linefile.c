#include "auth/linefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "lib/log.h"

#define LF_LINE_MAX 4096

void
auth_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = saved;
}

/* Is c a blank as the file formats see it? */
static bool
lf_blank(char c)
{
	return c == ' ' || c == '\t';
}

bool
auth_linefile_name_ok(const char *s, size_t len, char sep)
{
	if (len == 0 || len > AUTH_LINEFILE_NAME_MAX || s[0] == '#')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f || c == (unsigned char)sep)
			return false;
	}
	return true;
}

/* Length of s[0..len) without trailing blanks, CR and newline. */
static size_t
lf_rtrim(const char *s, size_t len)
{
	while (len > 0 &&
	    (lf_blank(s[len - 1]) || s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	return len;
}

/* Is s[0..len) (already right-trimmed) blank or a comment? */
static bool
lf_skip_line(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && lf_blank(s[i]))
		i++;
	return i == len || s[i] == '#';
}

int
auth_secret_mode_check(const char *path, const struct stat *st, char *err,
    size_t errlen)
{
	unsigned mode = (unsigned)st->st_mode & 07777;

	if ((st->st_mode & (S_IRWXO | S_IWGRP)) != 0) {
		auth_errf(err, errlen,
		    "%s: mode %04o: a secret file must not be %s by %s; "
		    "refusing it (chmod 600, or 640 for the gateway's group)",
		    path, mode, (st->st_mode & S_IRWXO) != 0 ? "accessible" :
		    "writable", (st->st_mode & S_IRWXO) != 0 ? "others" :
		    "its group");
		errno = EACCES;
		return -1;
	}
	if ((st->st_mode & S_IRGRP) != 0)
		log_warnx("UNPROTECTED SECRET FILE: %s: mode %04o: readable by "
		    "its group (gid %u); fine only if that group is the "
		    "gateway's own, else chmod 600", path, mode,
		    (unsigned)st->st_gid);
	return 0;
}

int
auth_secret_file_check(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return auth_secret_mode_check(path, &st, err, errlen);
}

int
auth_linefile_read(const char *path,
    int (*parse)(void *arg, char *line, const char *path, unsigned lineno,
	char *err, size_t errlen),
    void *arg, char *err, size_t errlen)
{
	char *line = NULL;
	size_t linecap = 0, len;
	unsigned lineno = 0;
	struct stat st;
	ssize_t n;
	FILE *f;
	int rc = -1;

	if ((f = fopen(path, "re")) == NULL) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == -1) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (auth_secret_mode_check(path, &st, err, errlen) == -1)
		goto out;
	while ((n = getline(&line, &linecap, f)) != -1) {
		lineno++;
		/* Some editors write one; it would join the first name. */
		if (lineno == 1 && n >= 3 &&
		    memcmp(line, "\xef\xbb\xbf", 3) == 0) {
			auth_errf(err, errlen, "%s:1: the file starts with a "
			    "UTF-8 byte-order mark (EF BB BF); save it without "
			    "one", path);
			goto err_einval;
		}
		if (n > LF_LINE_MAX) {
			auth_errf(
			    err, errlen, "%s:%u: line too long", path, lineno);
			goto err_einval;
		}
		if (memchr(line, '\0', (size_t)n) != NULL) {
			auth_errf(err, errlen, "%s:%u: NUL byte", path, lineno);
			goto err_einval;
		}
		len = lf_rtrim(line, (size_t)n);
		if (lf_skip_line(line, len))
			continue;
		line[len] = '\0';
		if (parse(arg, line, path, lineno, err, errlen) == -1)
			goto out;
	}
	if (ferror(f)) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
err_einval:
	errno = EINVAL;
out:
	if (line != NULL)
		explicit_bzero(line, linecap);
	free(line);
	fclose(f);
	return rc;
}

/* The entry at index i of base, entries size bytes each. */
static const struct auth_named *
lf_named_at(const void *base, size_t size, size_t i)
{
	return (const struct auth_named *)((const char *)base + i * size);
}

/* qsort order for entries: by name, then by line. */
static int
lf_named_cmp(const void *a, const void *b)
{
	const struct auth_named *ea = a, *eb = b;
	int r = strcmp(ea->name, eb->name);

	if (r != 0)
		return r;
	return ea->line < eb->line ? -1 : ea->line > eb->line;
}

/* bsearch comparison of a name with an entry. */
static int
lf_find_cmp(const void *key, const void *elem)
{
	const struct auth_named *e = elem;

	return strcmp(key, e->name);
}

int
auth_named_sort(void *base, size_t n, size_t size, const char *path, char *err,
    size_t errlen)
{
	const struct auth_named *e, *dup = NULL, *first = NULL;
	size_t run = 0;

	if (n == 0)
		return 0;
	qsort(base, n, size, lf_named_cmp);
	for (size_t i = 1; i < n; i++) {
		e = lf_named_at(base, size, i);
		if (strcmp(e->name, lf_named_at(base, size, run)->name) != 0) {
			run = i;
			continue;
		}
		/* Report the earliest line that repeats a name. */
		if (dup == NULL || e->line < dup->line) {
			dup = e;
			first = lf_named_at(base, size, run);
		}
	}
	if (dup != NULL) {
		auth_errf(err, errlen,
		    "%s:%u: user \"%s\": duplicate (first on line %u)", path,
		    dup->line, dup->name, first->line);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

const void *
auth_named_find(const void *base, size_t n, size_t size, const char *name)
{
	if (n == 0)
		return NULL;
	return bsearch(name, base, n, size, lf_find_cmp);
}

/* Free a buffer that may have held secrets. */
static void
lf_wipe_free(char *buf, size_t len)
{
	if (buf != NULL)
		explicit_bzero(buf, len);
	free(buf);
}

/* Write all of buf to fd. */
static int
lf_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read the whole of fd into a malloc'd buffer the caller wipes and frees;
 * *lenp gets the length, *capp the allocated size.
 */
static char *
lf_slurp(int fd, size_t *lenp, size_t *capp)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0, ncap;
	ssize_t n;
	int saved;

	for (;;) {
		if (cap - len < 4096) {
			ncap = cap ? cap * 2 : 8192;
			/* Not realloc: the old block would be freed unwiped. */
			if ((nb = malloc(ncap)) == NULL)
				goto err_free;
			if (len > 0)
				memcpy(nb, buf, len);
			lf_wipe_free(buf, cap);
			buf = nb;
			cap = ncap;
		}
		if ((n = read(fd, buf + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			goto err_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*lenp = len;
	*capp = cap;
	return buf;
err_free:
	saved = errno;
	lf_wipe_free(buf, cap);
	errno = saved;
	return NULL;
}

/* Does the line s[0..len) (newline included, if any) define name? */
static bool
lf_line_is(const char *s, size_t len, const char *name, size_t nlen, char sep)
{
	while (len > 0 && lf_blank(*s)) {
		s++;
		len--;
	}
	if (len <= nlen || memcmp(s, name, nlen) != 0)
		return false;
	return s[nlen] == sep || (lf_blank(sep) && lf_blank(s[nlen]));
}

/*
 * Write old (the current file, may be empty) to fd with name's line
 * replaced by line, or line appended. A repeated entry for name is
 * dropped, which also mends a file that had one.
 */
static int
lf_write_new(int fd, const char *old, size_t oldlen, const char *name, char sep,
    const char *line)
{
	size_t off = 0, nlen = strlen(name), len;
	const char *eol;
	bool done = false;

	while (off < oldlen) {
		eol = memchr(old + off, '\n', oldlen - off);
		len = eol != NULL ? (size_t)(eol - (old + off)) + 1
				  : oldlen - off;
		if (lf_line_is(old + off, len, name, nlen, sep)) {
			if (!done && lf_write_all(fd, line, strlen(line)) == -1)
				return -1;
			done = true;
		} else {
			if (lf_write_all(fd, old + off, len) == -1)
				return -1;
			if (eol == NULL && lf_write_all(fd, "\n", 1) == -1)
				return -1;
		}
		off += len;
	}
	if (!done && lf_write_all(fd, line, strlen(line)) == -1)
		return -1;
	return 0;
}

/* fsync the directory holding path so the rename is durable. */
static void
lf_sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return;
	/* Best effort: the new file is already in place. */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	(void)fsync(fd);
	close(fd);
}

int
auth_linefile_set(const char *path, const char *name, char sep,
    const char *value, char *err, size_t errlen)
{
	struct stat st;
	char *real, *tmp = NULL, *old = NULL, *line = NULL;
	const char *target;
	size_t oldlen = 0, oldcap = 0, linelen = 0, tmplen;
	bool have_old = false;
	int fd, saved, rc = -1;

	if (!auth_linefile_name_ok(name, strlen(name), sep)) {
		auth_errf(err, errlen,
		    "bad name (1-%d bytes, no '%c', blanks, control "
		    "characters or leading '#')",
		    AUTH_LINEFILE_NAME_MAX, sep);
		errno = EINVAL;
		return -1;
	}
	if (strpbrk(value, "\r\n") != NULL) {
		auth_errf(
		    err, errlen, "\"%s\": value contains a line break", name);
		errno = EINVAL;
		return -1;
	}
	linelen = strlen(name) + 1 + strlen(value) + 2;
	if ((line = malloc(linelen)) == NULL) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(line, linelen, "%s%c%s\n", name, sep, value);

	/* Replace the file a symlink points at, not the link. */
	if ((real = realpath(path, NULL)) == NULL && errno != ENOENT) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	target = real != NULL ? real : path;

	if ((fd = open(target, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT) {
			auth_errf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
	} else {
		have_old = fstat(fd, &st) != -1 &&
		    (old = lf_slurp(fd, &oldlen, &oldcap)) != NULL;
		close(fd);
		if (!have_old) {
			auth_errf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
	}

	tmplen = strlen(target) + sizeof(".tmpXXXXXX");
	if ((tmp = malloc(tmplen)) == NULL) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	snprintf(tmp, tmplen, "%s.tmpXXXXXX", target);
	/* mkostemp creates the file 0600, so it is never readable by others. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		auth_errf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (have_old) {
		if (fchmod(fd, st.st_mode & 07777) == -1 ||
		    (fchown(fd, st.st_uid, st.st_gid) == -1 &&
			errno != EPERM)) {
			auth_errf(err, errlen, "%s: %s", tmp, strerror(errno));
			goto err_unlink;
		}
	}
	if (lf_write_new(fd, old, oldlen, name, sep, line) == -1 ||
	    fsync(fd) == -1) {
		auth_errf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto err_unlink;
	}
	if (close(fd) == -1) {
		fd = -1;
		auth_errf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto err_unlink;
	}
	fd = -1;
	if (rename(tmp, target) == -1) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto err_unlink;
	}
	lf_sync_dir(target);
	rc = 0;
	goto out;
err_unlink:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = saved;
out:
	saved = errno;
	free(tmp);
	lf_wipe_free(old, oldcap);
	lf_wipe_free(line, linelen);
	free(real);
	errno = saved;
	return rc;
}
