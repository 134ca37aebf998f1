#include "gateway/access.h"
#include "lib/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int access_fd = -1;

int
access_open(const char *dest)
{
	int fd, cur = atomic_load(&access_fd);

	if (strcmp(dest, "off") == 0)
		fd = -1;
	else if (strcmp(dest, "stderr") == 0)
		fd = STDERR_FILENO;
	else if ((fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640)) == -1)
		return -1;
	/*
	 * Workers write to the number they loaded without a lock, so a file
	 * descriptor in use is never closed: a new file takes over the old
	 * number (dup3), and a file given up for stderr or off stays open.
	 * Otherwise a worker could write a line into a socket that an
	 * accept() gave the freed number to.
	 */
	if (cur > STDERR_FILENO && fd > STDERR_FILENO) {
		if (dup3(fd, cur, O_CLOEXEC) == -1) {
			close(fd);
			return -1;
		}
		close(fd);
		return 0;
	}
	atomic_store(&access_fd, fd);
	return 0;
}

void
access_close(void)
{
	int old = atomic_exchange(&access_fd, -1);

	if (old > STDERR_FILENO)
		close(old);
}

void
access_write(const struct access_entry *e)
{
	char line[2048], ts[32], user[300], target[300];
	struct timespec now;
	struct tm tm;
	int fd = atomic_load(&access_fd), n;

	if (fd == -1)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ access id=%" PRIu64
	    " client=%s user=%s method=%s target=%s result=%s mptcp=%s"
	    " subflows=%u client_mptcp=%s client_subflows=%u early=%s up=%"
	    PRIu64 " down=%" PRIu64 " duration=%.3f%s\n",
	    ts, now.tv_nsec / 1000000, e->id, e->client,
	    log_escape(e->user, user, sizeof(user)), e->method,
	    log_escape(e->target, target, sizeof(target)), e->result,
	    e->mptcp, e->subflows, e->client_mptcp ? "yes" :
	    "no", e->client_subflows, e->early ? "yes" : "no",
	    e->up, e->down, e->duration, e->extra != NULL ? e->extra : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* Nothing useful to do if the log is full: the session goes on. */
	(void)!write(fd, line, (size_t)n);
}
