/*
 * A worker: one thread, one libev loop, its own SO_REUSEPORT listening
 * sockets, and the sessions it accepted. Nothing here is touched by another
 * worker; the main thread talks to a worker only through its ev_async.
 */
#ifndef MPGW_WORKER_H
#define MPGW_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conf/conf.h"
#include "gateway/pool.h"
#include "gateway/resolve.h"

enum listener_kind {
	LISTENER_SOCKS5 = 0,
	LISTENER_SOCKS5_TLS,
	LISTENER_CONVERT,
};

struct worker;

struct listener {
	int fd;
	enum listener_kind kind;
	bool proxy;			/* connections start with a PROXY header */
	struct conf_addr addr;
	ev_io io;
	struct worker *w;
};

#define WORKER_MAX_LISTENERS (3 * CONF_MAX_LISTEN)
#define WORKER_FREE_PIPES 16
/* Relay buffer sizes: buffer_size, x4, x16, ... up to buffer_max. */
#define WORKER_BUF_CLASSES 8

struct session;
struct state;
TAILQ_HEAD(session_list, session);

struct worker {
	unsigned idx;
	pthread_t thread;
	struct ev_loop *loop;
	size_t n_listeners;
	struct listener listeners[WORKER_MAX_LISTENERS];
	ev_timer accept_backoff;	/* after EMFILE/ENFILE */
	ev_tstamp backoff;		/* its current length */
	ev_tstamp backoff_last;		/* when it last started */
	ev_tstamp backoff_warned;	/* when it was last logged */
	ev_async wake;			/* from the main thread */
	atomic_int command;		/* enum worker_cmd */
	struct pool_doneq doneq;
	struct resolver *resolver;	/* name lookups on this loop */
	struct state *state;		/* [state] redis; NULL: in-process */
	struct session_list sessions;
	unsigned n_sessions;
	bool draining;
	atomic_bool exited;		/* the loop has returned */
	/*
	 * Relay buffers not in use, kept for reuse, by size class: class k
	 * holds buf_min << 2k bytes (the last class buf_max).
	 */
	void *free_bufs[WORKER_BUF_CLASSES];
	unsigned n_free_bufs[WORKER_BUF_CLASSES];
	size_t buf_min;			/* upstream.buffer_size */
	size_t buf_max;			/* upstream.buffer_max */
	unsigned buf_classes;		/* classes in use, 1..WORKER_BUF_CLASSES */
	/* udp.c's datagram buffers, from the first UDP association on. */
	void *udp_buf;
	/* Empty splice pipes not in use, kept for reuse. */
	int free_pipes[WORKER_FREE_PIPES][2];
	unsigned n_free_pipes;
};

enum worker_cmd {
	WORKER_CMD_NONE = 0,
	WORKER_CMD_DRAIN,	/* stop accepting; exit when sessions are gone */
	WORKER_CMD_STOP,	/* close every session now and exit */
};

/*
 * Create worker w's listening sockets from the config (each an MPTCP
 * socket where the kernel allows, SO_REUSEPORT). 0, or -1 with a message
 * in err.
 */
int worker_init(struct worker *w, unsigned idx, const struct gw_conf *c,
    char *err, size_t errlen);
int worker_start(struct worker *w);
/* Have every worker send a on loop when its event loop returns. */
void worker_notify_exit(struct ev_loop *loop, ev_async *a);
void worker_command(struct worker *w, enum worker_cmd cmd);
/* Join the thread and free everything the worker owns. */
void worker_join(struct worker *w);
/* Release what is left after the pool has stopped. */
void worker_fini(struct worker *w);

/* Set w's buffer classes from buffer_size min and buffer_max max. */
void worker_buf_setup(struct worker *w, size_t min, size_t max);
/* The size of class k's buffers (k < w->buf_classes). */
size_t worker_buf_size(const struct worker *w, unsigned k);
/* A relay buffer of class k, and its return (NULL: out of memory). */
void *worker_buf_get(struct worker *w, unsigned k);
void worker_buf_put(struct worker *w, void *buf, unsigned k);
/* An empty non-blocking pipe for splice (0, or -1 with errno), and its return. */
int worker_pipe_get(struct worker *w, int p[2]);
void worker_pipe_put(struct worker *w, const int p[2]);
/*
 * Out of descriptors: close the pooled pipes so a socket can be had.
 * Returns true if any was closed (worth trying again).
 */
bool worker_shed_fds(struct worker *w);

#endif
