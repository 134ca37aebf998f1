/*
 * The relay: bytes both ways between a client and an upstream socket, with
 * back-pressure (a side is read only while its peer has taken everything
 * read so far) and half-close (EOF on one side becomes shutdown(SHUT_WR) on
 * the other once the buffer is flushed). Buffers come from the worker and
 * are held only while data is in flight, so an idle connection costs no
 * buffer; their size follows the flow (relay.c, dir_learn). With splice,
 * a direction that has filled a buffer goes through a pipe instead, also
 * borrowed from the worker only while bytes sit in it (an idle spliced
 * connection costs no descriptors beyond its two sockets).
 */
#ifndef MPGW_RELAY_H
#define MPGW_RELAY_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct relay;
struct xport;

struct relay_dir {
	struct xport *from;
	struct xport *to;
	ev_io rd;
	ev_io wr;
	uint8_t *buf;		/* buffer mode: worker buffer or NULL */
	unsigned buf_cls;	/* buf's size class (worker.h) */
	unsigned cls;		/* the class the next buffer is taken from */
	bool splicing;		/* splice mode, after a first full buffer */
	size_t off;
	size_t len;
	int pipe[2];		/* splice mode: worker pipe or -1 */
	size_t inpipe;
	bool eof;		/* read side returned 0 */
	bool shut;		/* write side shut down */
	uint64_t bytes;
	struct relay *r;
};

struct relay {
	struct relay_dir up;	/* client -> upstream */
	struct relay_dir down;	/* upstream -> client */
	struct worker *w;
	bool splice;
	ev_tstamp last_active;
	/*
	 * Both directions finished (err 0) or one failed (errno value). The
	 * callee closes both sockets: the direction that ends last leaves
	 * its FIN to that close instead of a shutdown of its own.
	 */
	void (*done)(struct relay *r, int err);
	/*
	 * Optional: called once, when the first direction reaches EOF and
	 * before its half-close is passed on (the connection's last moment
	 * with every path still up).
	 */
	void (*first_eof)(struct relay *r);
	bool eof_seen;
};

/*
 * Start relaying between the client and upstream transports (which stay
 * the caller's and must outlive the relay). first/first_len are client
 * bytes that arrived with the handshake and go upstream first (copied).
 * With use_splice (both transports plain), bytes move through pipes
 * (buffers when none can be had). 0, or -1 with errno.
 */
int relay_start(struct relay *r, struct worker *w, struct xport *client,
    struct xport *upstream, bool use_splice, const uint8_t *first,
    size_t first_len, void (*done)(struct relay *, int));
/* Stop watchers, release buffers and pipes; the fds stay open. */
void relay_stop(struct relay *r);

#endif
