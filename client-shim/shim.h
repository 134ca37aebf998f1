/*
 * Internal interface of libmpgw.so, the LD_PRELOAD client shim
 * (DESIGN.md section 5). Everything here has hidden visibility; only the
 * hooked libc functions are exported (SHIM_EXPORT).
 *
 *   shim.c      init, the real libc functions, the per-fd table, the
 *               socket/connect/sendto/sendmsg/getpeername/close/dup hooks
 *   explicit.c  SOCKS5 on the app's fd (none, userpass, tls-login)
 *   implicit.c  the Convert message in the SYN
 *   dnshooks.c  remote DNS: fake addresses from fakedns.c
 */
#ifndef MPGW_SHIM_H
#define MPGW_SHIM_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "client-shim/fakedns.h"
#include "client-shim/shimconf.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/* The next definitions of what we hook, from dlsym(RTLD_NEXT). */
struct shim_real {
	int (*socket)(int, int, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*sendto)(int, const void *, size_t, int,
	    const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int);
	void (*closefrom)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
	    struct addrinfo **);
	void (*freeaddrinfo)(struct addrinfo *);
	int (*getnameinfo)(const struct sockaddr *, socklen_t, char *,
	    socklen_t, char *, socklen_t, int);
	struct hostent *(*gethostbyname)(const char *);
	struct hostent *(*gethostbyname2)(const char *, int);
	int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t,
	    struct hostent **, int *);
	int (*gethostbyname2_r)(const char *, int, struct hostent *, char *,
	    size_t, struct hostent **, int *);
	struct hostent *(*gethostbyaddr)(const void *, socklen_t, int);
	int (*gethostbyaddr_r)(const void *, socklen_t, int, struct hostent *,
	    char *, size_t, struct hostent **, int *);
};

extern struct shim_real shim_real;
extern struct shim_conf shim_conf;
extern struct shim_fdns shim_fdns;

/*
 * Whether the shim is configured and may act in this thread (initialised,
 * config valid, not inside the shim already). Resolves the real functions
 * first in any case, so callers may always use shim_real afterwards.
 */
bool shim_active(void);
/* shim_active(), a valid config, and remote DNS on with a table. */
bool shim_remote_dns(void);
/* Marks this thread as inside the shim (hooks then pass through). */
void shim_enter(void);
void shim_leave(void);

/* MPGW_DEBUG logging with write(2); no malloc, no stdio. */
void shim_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Always printed (config errors and the like). */
void shim_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t shim_now_ms(void);
/*
 * Waits for events on fd until the deadline (shim_now_ms based),
 * restarting on EINTR. 0 when ready, -1 with ETIMEDOUT or poll's errno.
 */
int shim_wait(int fd, short events, int64_t deadline);
/* Sends all of buf (MSG_NOSIGNAL), waiting while the fd is full: 0/-1. */
int shim_send_all(int fd, const void *buf, size_t len, int64_t deadline);
/* Reads exactly len bytes, never more: 0, or -1 (ECONNRESET on EOF). */
int shim_recv_exact(int fd, void *buf, size_t len, int64_t deadline);

/*
 * What the app asked to reach: an address, or (remote DNS) a name and port.
 */
struct shim_target {
	struct sockaddr_storage addr;	/* unmapped: AF_INET or AF_INET6 */
	const char *name;		/* NULL or the fake address's name */
	char name_buf[256];
	uint16_t port;			/* host order */
};

/*
 * The SOCKS5 handshake on fd, which is connected to the gateway (or
 * becoming so: the caller passes it non-blocking). 0, or -1 with errno
 * for connect() (REP mapped, ETIMEDOUT, EACCES for a failed login).
 */
int shim_socks5_handshake(int fd, const struct shim_target *t,
    int64_t deadline);

/*
 * Writes the Convert request for t into out (cap >= 1020): length, or -1
 * with errno (EINVAL if it cannot be built, EIO if signing failed).
 */
ssize_t shim_convert_build(const struct shim_target *t, uint8_t *out,
    size_t cap);

/* Whether name must be resolved for real (numeric, localhost, in
 * /etc/hosts, our own host name). */
bool shim_dns_passthrough(const char *name);

#endif
