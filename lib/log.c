#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Set on SIGHUP by the main thread while workers read it. */
static _Atomic int log_max = LOG_LVL_INFO;

static const char *const log_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void
log_set_level(enum log_level lvl)
{
	atomic_store_explicit(&log_max, (int)lvl, memory_order_relaxed);
}

bool
log_enabled(enum log_level lvl)
{
	return (int)lvl <= atomic_load_explicit(&log_max, memory_order_relaxed);
}

int
log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(s, log_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (in == NULL || in[0] == '\0' || cap < 5)
		return "-";
	for (; *in != '\0' && cap - o > 4; in++) {
		unsigned char c = (unsigned char)*in;

		if (c > 0x20 && c < 0x7f && c != '\\' && c != '=') {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	out[o] = '\0';
	return out;
}

/*
 * Format the whole line first and emit it with one fputs so that lines from
 * different worker threads never interleave.
 */
static void __attribute__((format(printf, 3, 0)))
log_vline(enum log_level lvl, int err, const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n;

	if (!log_enabled(lvl))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s: ",
	    ts.tv_nsec / 1000000, log_names[lvl]);
	if (n < (int)sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (err != 0 && n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
		    strerror(err));
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n] = '\n';
	line[n + 1] = '\0';
	fputs(line, stderr);
}

#define LOG_FN(name, lvl, with_errno)                \
	void name(const char *fmt, ...)              \
	{                                            \
		int saved = errno;                   \
		va_list ap;                          \
		va_start(ap, fmt);                   \
		log_vline(lvl, with_errno ? saved : 0, fmt, ap); \
		va_end(ap);                          \
		errno = saved;                       \
	}

LOG_FN(log_warn, LOG_LVL_WARN, true)
LOG_FN(log_warnx, LOG_LVL_WARN, false)
LOG_FN(log_error, LOG_LVL_ERROR, false)
LOG_FN(log_info, LOG_LVL_INFO, false)
LOG_FN(log_debug, LOG_LVL_DEBUG, false)

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
