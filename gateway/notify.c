#include "gateway/notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Longest message; systemd reads up to its pipe buffer, we need far less. */
#define NOTIFY_MAX 4096

/*
 * Fill *sun from the variable's value. The abstract name is the bytes
 * after the '@', not NUL-terminated, so the length counts only them.
 * 0, or -1 with errno EINVAL.
 */
static int
notify_addr(const char *name, struct sockaddr_un *sun, socklen_t *len)
{
	size_t n = strlen(name);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if ((name[0] != '/' && name[0] != '@') || n < 2 ||
	    n >= sizeof(sun->sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sun->sun_path, name, n);
	if (name[0] == '@')
		sun->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (name[0] == '@' ? 0 : 1));
	return 0;
}

int
notify_send(const char *fmt, ...)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	char msg[NOTIFY_MAX];
	va_list ap;
	ssize_t sent;
	int fd, n, saved;

	if (name == NULL || name[0] == '\0')
		return 0;
	if (notify_addr(name, &sun, &len) == -1)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg)) {
		errno = EMSGSIZE;
		return -1;
	}
	/*
	 * A fresh socket each time, as sd_notify does: a connected one
	 * would break when the manager re-executes itself. Messages are rare.
	 */
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL,
	    (const struct sockaddr *)&sun, len);
	saved = errno;
	close(fd);
	if (sent == -1) {
		errno = saved;
		return -1;
	}
	return 0;
}

int
notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return notify_send("RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	    (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}
