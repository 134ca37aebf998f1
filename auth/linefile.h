/*
 * The small "name<sep>value" files the auth module keeps: the users file
 * ("name:hash") and the Convert keys file ("name key"), and the helpers
 * their readers share.
 *
 * Both formats allow "#" comments and blank lines, one entry per line, the
 * name first. An edit rewrites the whole file into a temporary file in the
 * same directory, fsyncs it and renames it over the old one, so a reader
 * (a SIGHUP reload) sees either the old file or the new one, never half.
 */
#ifndef MPGW_AUTH_LINEFILE_H
#define MPGW_AUTH_LINEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Longest name in either file. */
#define AUTH_LINEFILE_NAME_MAX 255

/*
 * The leading member of an entry loaded from a file: its name (owned by the
 * entry) and the line that defined it.
 */
struct auth_named {
	char *name;
	unsigned line;
};

/* Write a message into err (which may be NULL). Keeps errno. */
__attribute__((format(printf, 3, 4))) void auth_errf(
    char *err, size_t errlen, const char *fmt, ...);

/*
 * Is s[0..len) a name that can start a line separated by sep: 1..255
 * bytes, no sep, blank or control character, and not starting with '#'?
 */
bool auth_linefile_name_ok(const char *s, size_t len, char sep);

/*
 * May the file st describes hold a secret (a password hash, a key)? Any
 * access for others, or write access for the group, is refused: -1 with
 * EACCES and "path: mode 0644: ..." in err. A group-readable file passes
 * with a loud warning in the log (the usual way for a daemon that drops to
 * a group to read its secrets, but worth saying, as ssh does for an
 * "UNPROTECTED PRIVATE KEY FILE"). Returns 0 otherwise.
 */
int auth_secret_mode_check(const char *path, const struct stat *st,
    char *err, size_t errlen);

/*
 * auth_secret_mode_check for the file at path (symlinks followed), for
 * secrets another library opens by name (tls.key). -1 with errno and a
 * message also when path cannot be stat'ed.
 */
int auth_secret_file_check(const char *path, char *err, size_t errlen);

/*
 * Read the file at path and call parse for each line that is not blank or
 * a comment, in file order, with the line right-trimmed of blanks and CR
 * and NUL-terminated. Both formats hold secrets, so the file must pass
 * auth_secret_mode_check first. A file that starts with a UTF-8 byte-order
 * mark, a line longer than 4096 bytes or one holding a NUL byte is refused
 * with "path:line: ..." and EINVAL. parse returns 0,
 * or -1 with errno and a message in err, which stops the read. The line
 * buffer is wiped: it may hold secrets. Returns 0, or -1 with errno and a
 * message.
 */
int auth_linefile_read(const char *path,
    int (*parse)(void *arg, char *line, const char *path, unsigned lineno,
	char *err, size_t errlen),
    void *arg, char *err, size_t errlen);

/*
 * Sort the n entries at base, each size bytes and starting with a struct
 * auth_named, by name (then line), and refuse a name that appears twice,
 * reporting the earliest line that repeats one. Returns 0, or -1 with
 * EINVAL and a "path:line: ..." message in err.
 */
int auth_named_sort(void *base, size_t n, size_t size, const char *path,
    char *err, size_t errlen);

/*
 * The entry named name among the n sorted by auth_named_sort at base, or
 * NULL. The result points into base.
 */
const void *auth_named_find(
    const void *base, size_t n, size_t size, const char *name);

/*
 * Give name the value value in the file at path: replace the line that
 * defines name (every one, if the file repeats it), or append a line, and
 * keep every other line byte for byte. A line defines name when, after
 * leading blanks, it starts with name followed by sep (by any blank when
 * sep is a blank).
 *
 * name must pass auth_linefile_name_ok and value must not contain a
 * newline. The caller checks anything more specific first. A symlink at
 * path is followed and its target replaced; an existing file keeps its
 * mode and owner, a new file gets mode 0600. Buffers that held the file are
 * wiped: it may hold keys. Returns 0, or -1 with errno and a message in err
 * (value is never echoed).
 */
int auth_linefile_set(const char *path, const char *name, char sep,
    const char *value, char *err, size_t errlen);

#endif
