/*
 * A client connection from accept() to close: the SOCKS5 handshake, name
 * resolution, the upstream connect (MPTCP, Happy Eyeballs), the reply, the
 * relay and the access-log line. Sessions belong to one worker.
 */
#ifndef MPGW_SESSION_H
#define MPGW_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

struct worker;
struct listener;

/*
 * Take over the accepted socket fd from listener l. On any failure the fd is
 * closed; nothing is returned because the session then lives on its own.
 */
void sess_accept(struct worker *w, struct listener *l, int fd,
    const struct sockaddr *peer, socklen_t peer_len);

/* Close every session of w now (hard stop). */
void sess_close_all(struct worker *w);

/* Sessions open in this process, across workers. */
unsigned sess_count(void);

struct sess_stats {
	unsigned open;
	uint64_t accepted;		/* sessions started since start-up */
	uint64_t convert_replays;	/* replayed Convert messages refused */
};
void sess_stats(struct sess_stats *st);

#endif
