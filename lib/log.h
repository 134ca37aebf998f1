/*
 * Logging for the daemon: one line per call to stderr, with a level,
 * printf-checked. log_warn appends strerror(errno); the x variants do not.
 * fatal() and fatalx() are for start-up only: they exit(1).
 */
#ifndef MPGW_LOG_H
#define MPGW_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

void log_set_level(enum log_level lvl);
bool log_enabled(enum log_level lvl);
/* Parse "error", "warn", "info" or "debug"; -1 if none of them. */
int log_level_parse(const char *s);

/*
 * Copy a peer-supplied string (user name, domain) into out, every byte that
 * could break a log line (control, blank, non-ASCII, '\\', '=') written as
 * \\xNN, so a client cannot forge lines or fields. Returns out, or "-"
 * for NULL or empty input.
 */
const char *log_escape(const char *in, char *out, size_t cap);

void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
_Noreturn void fatal(const char *fmt, ...) LOG_PRINTF(1, 2);
_Noreturn void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2);

#endif
