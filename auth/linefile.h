/*
 * Atomic edits of the small "name<sep>value" files the auth module keeps:
 * the users file ("name:hash") and the Convert keys file ("name key").
 *
 * Both formats allow "#" comments and blank lines, one entry per line, the
 * name first. An edit rewrites the whole file into a temporary file in the
 * same directory, fsyncs it and renames it over the old one, so a reader
 * (a SIGHUP reload) sees either the old file or the new one, never half.
 */
#ifndef MPGW_AUTH_LINEFILE_H
#define MPGW_AUTH_LINEFILE_H

#include <stddef.h>

/*
 * Give name the value value in the file at path: replace the line that
 * defines name (every one, if the file repeats it), or append a line, and
 * keep every other line byte for byte. A line defines name when, after
 * leading blanks, it starts with name followed by sep (by any blank when
 * sep is a blank).
 *
 * name must be 1..255 bytes of printable non-blank characters without sep
 * and must not start with '#'; value must not contain a newline. The caller
 * checks anything more specific first. A symlink at path is followed and its
 * target replaced; an existing file keeps its mode and owner, a new file
 * gets mode 0600. Buffers that held the file are wiped: it may hold keys.
 * Returns 0, or -1 with errno and a message in err (value is never echoed).
 */
int auth_linefile_set(const char *path, const char *name, char sep,
    const char *value, char *err, size_t errlen);

#endif
