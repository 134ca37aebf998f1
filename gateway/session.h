/*
 * A client connection from accept() to close. The core (session.c) owns
 * the lifecycle: the state setter, the client watcher and its input and
 * output buffers, the one timer, the relay and close with its access-log
 * line. A front end (front_socks5.c, front_convert.c) runs the handshake
 * states and writes the replies through struct front_ops; admit.c decides
 * whether a connection or a login may go ahead; dial.c reaches the target.
 * Sessions belong to one worker and are touched only on its loop thread.
 *
 * This header is for those gateway modules; the rest of the daemon uses
 * sess_accept(), sess_close_all() and stats.h.
 */
#ifndef MPGW_SESSION_H
#define MPGW_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "gateway/admit.h"
#include "gateway/mptcp.h"
#include "gateway/relay.h"
#include "gateway/transport.h"
#include "proto/socks5.h"

struct bind_wait;
struct dial;
struct gw_snap;
struct listener;
struct pool_job;
struct state_req;
struct stats_paths;
struct tlsio;
struct udp_assoc;
struct worker;

/* Enough for a greeting, an RFC 1929 message and a request back to back. */
#define SESS_IN_MAX 1280
/* A peer-supplied name (255 bytes) escaped for a log line. */
#define SESS_ESC_MAX (4 * 255 + 1)

enum sess_state {
	SESS_PROXY = 0,		/* PROXY listener: the header, not yet admitted */
	SESS_GREETING,		/* SOCKS5: method selection */
	SESS_TLS,		/* SOCKS5: TLS handshake (methods 0x8x, TLS listener) */
	SESS_AUTH,		/* SOCKS5: RFC 1929 inside or outside TLS */
	SESS_REQUEST,		/* SOCKS5: the request */
	SESS_CONVERT,		/* Convert: the message (RFC 8803) */
	SESS_RESOLVE,		/* dial: name resolution */
	SESS_CONNECT,		/* dial: connection attempts */
	SESS_REPLY,		/* the success reply is being sent */
	SESS_EARLY,		/* replied early: waiting briefly for first bytes */
	SESS_TLS_CLOSE,		/* SOCKS5 0x83: close_notify both ways */
	SESS_RELAY,		/* bytes both ways */
	SESS_HOLD,		/* a failure reply held back (login throttle) */
	SESS_CLOSING,		/* a failure reply is being sent */
	SESS_LINGER,		/* SHUT_WR sent; draining the client until EOF */
	SESS_UDP,		/* UDP ASSOCIATE: datagrams both ways (udp.c) */
	SESS_BIND_WAIT,		/* BIND: first reply sent, waiting for the peer */
};

/*
 * Why a session ended, one token each in the access log (`result=`). The
 * name table in session.c is a switch without default: a new value without
 * a name does not build.
 */
enum sess_result {
	SESS_RES_OK = 0,
	SESS_RES_BAD_GREETING,
	SESS_RES_NO_ACCEPTABLE_METHOD,
	SESS_RES_BAD_AUTH_MESSAGE,
	SESS_RES_AUTH_FAILED,
	SESS_RES_THROTTLED,
	SESS_RES_BAD_REQUEST,
	SESS_RES_BAD_COMMAND,
	SESS_RES_DENIED,
	SESS_RES_NXDOMAIN,
	SESS_RES_RESOLVE_FAILED,
	SESS_RES_RESOLVE_TIMEOUT,
	SESS_RES_RESOLVE_LIMIT,
	SESS_RES_REFUSED,
	SESS_RES_NET_UNREACHABLE,
	SESS_RES_HOST_UNREACHABLE,
	SESS_RES_CONNECT_TIMEOUT,
	SESS_RES_CONNECT_FAILED,
	SESS_RES_VIA_REFUSED,
	SESS_RES_VIA_PROTOCOL,
	SESS_RES_CLIENT_CLOSED,
	SESS_RES_CLIENT_ERROR,
	SESS_RES_CLIENT_GONE,
	SESS_RES_RESET,
	SESS_RES_RELAY_ERROR,
	SESS_RES_HANDSHAKE_TIMEOUT,
	SESS_RES_IDLE_TIMEOUT,
	SESS_RES_SHUTDOWN,
	SESS_RES_NO_MEMORY,
	SESS_RES_SYSTEM_ERROR,
	SESS_RES_TLS_SETUP_FAILED,
	SESS_RES_TLS_HANDSHAKE_FAILED,
	SESS_RES_TLS_CLOSE_FAILED,
	SESS_RES_TLS_LOGIN_PROTOCOL,
	SESS_RES_CONVERT_MALFORMED,
	SESS_RES_CONVERT_NO_COOKIE,
	SESS_RES_CONVERT_BAD_COOKIE,
	SESS_RES_CONVERT_NO_AUTH,
	SESS_RES_CONVERT_UNKNOWN_USER,
	SESS_RES_CONVERT_BAD_MAC,
	SESS_RES_CONVERT_STALE,
	SESS_RES_CONVERT_REPLAY,
	SESS_RES_CONVERT_REPLAY_CACHE_FULL,
	SESS_RES_CONVERT_BAD_ADDRESS,
	SESS_RES_STATE_UNAVAILABLE,	/* Convert Auth: no answer from Redis */
	SESS_RES_UDP_LIMIT,
	SESS_RES_UPSTREAM_CLOSED,
	SESS_RES_BIND_TIMEOUT,
};
#define SESS_RES_COUNT (SESS_RES_BIND_TIMEOUT + 1)

/* What an upstream connection turned out to be. */
enum sess_upstream {
	SESS_UP_TCP = 0,	/* a plain TCP socket (upstream.mptcp off) */
	SESS_UP_MPTCP,		/* MPTCP, and the server took it */
	SESS_UP_FALLBACK,	/* an MPTCP socket the server answered in TCP */
	SESS_UP_CACHED_NO,	/* plain TCP: the server is known not to take MPTCP */
};

struct session;

/*
 * A front end: the protocol a listener speaks to its clients. step() runs
 * the front's handshake states (those the core does not own) over s->in
 * and returns 1 when it made progress (run again), 0 when it waits (for
 * input, a pool job or I/O of its own), -1 when the session was closed.
 * The reply hooks queue bytes with sess_queue() and set the next state.
 */
struct front_ops {
	const char *name;		/* "socks5", "convert": metrics label */
	enum sess_state first;		/* the state a new session starts in */
	/* Optional: the session was just accepted. */
	void (*start)(struct session *s);
	int (*step)(struct session *s);
	/* Connected upstream, bnd its local address: reply, -> SESS_REPLY. */
	void (*reply_ok)(struct session *s, const struct sockaddr *bnd);
	/* Failed with SOCKS5 reply code rep: reply, -> SESS_CLOSING. */
	void (*reply_fail)(struct session *s, uint8_t rep);
	/*
	 * The success reply is out: start the relay (sess_start_relay) and
	 * return -1, or move on to a state of the front's and return 1.
	 */
	int (*after_reply)(struct session *s);
	/* The method for the access log. */
	const char *(*method)(const struct session *s);
};

extern const struct front_ops front_socks5;
extern const struct front_ops front_socks5_tls;
extern const struct front_ops front_convert;

struct session {
	TAILQ_ENTRY(session) entry;
	uint64_t id;
	struct worker *w;
	struct gw_snap *snap;
	const struct front_ops *front;
	struct admit_slot admit;	/* what admission took, given back at close */
	enum sess_state state;
	enum sess_result result;
	bool upstream_mptcp;		/* upstream socket was created MPTCP */
	enum sess_upstream upstream;	/* what the upstream connection is */
	bool silent;			/* Convert Silent TLV: no reply, RST on failure */
	bool reset;			/* CLOSING: close with an RST, at once */
	bool login_unproven;		/* a failed login before the handshake completed */
	bool early;			/* success replied before dialling (early_reply) */
	bool cert_user;			/* user named by a client certificate */
	uint8_t method;			/* SOCKS5 method chosen */
	uint16_t client_proto;		/* the client socket's SO_PROTOCOL; 0 = not asked */
	int cfd;
	int ufd;
	struct xport cx;		/* client transport: plain or TLS */
	struct xport ux;		/* upstream transport (plain) */
	struct tlsio *tls;		/* client side TLS, while it lasts */
	ev_io cio;
	ev_timer timer;
	ev_timer kick;			/* front_convert: see cv_start() */
	ev_tstamp started;
	ev_tstamp dial_started;		/* dial_start(), for the connect time */
	struct pool_job *job;		/* outstanding, owned by the pool */
	struct state_req *sreq;		/* a question to the shared state */
	struct dial *dial;
	struct udp_assoc *udp;		/* UDP ASSOCIATE (udp.c), or NULL */
	struct bind_wait *bind;		/* BIND while it waits (bind.c), or NULL */
	struct relay relay;
	struct mptcp_stat mst;		/* upstream leg's MPTCP state, merged */
	struct mptcp_stat cmst;		/* client leg's (an MPTCP client) */
	uint64_t up_syn;		/* client bytes sent in the via SYN */
	struct stats_paths *paths;	/* per-path bytes counted so far */
	char client[64];
	char user[256];
	char target[300];
	struct sockaddr_storage peer;
	struct socks5_request req;
	/*
	 * The client's handshake bytes: SESS_IN_MAX of them, only until the
	 * relay starts (sess_input_done), so an idle relayed connection does
	 * not keep them.
	 */
	uint8_t *in;
	size_t in_len;
	size_t out_off;
	size_t out_len;
	uint8_t out[SOCKS5_REPLY_MAX + 4];
};

/*
 * Take over the accepted socket fd from listener l. On any failure the fd
 * is closed; nothing is returned because the session then lives on its own.
 */
void sess_accept(struct worker *w, struct listener *l, int fd,
    const struct sockaddr *peer, socklen_t peer_len);
/* Close every session of w now (hard stop). */
void sess_close_all(struct worker *w);

/*
 * The session has passed admission with its client's address in s->peer
 * (at accept, or after a PROXY header): count it as started and hand it
 * to its front end's first state. Waits for input; the caller runs
 * sess_process() if it is not inside it.
 */
void sess_admitted(struct session *s);

/* --- for the front ends, admit.c and dial.c --------------------------- */

const struct gw_conf *sess_conf(const struct session *s);
void sess_set_state(struct session *s, enum sess_state st);
/* Re-arm the session timer to fire after this many seconds. */
void sess_timer_set(struct session *s, ev_tstamp after);
/* Watch the client socket for these events (0: none). */
void sess_watch_client(struct session *s, int events);
/* Queue handshake bytes for the client (sent by the core). */
void sess_queue(struct session *s, const uint8_t *p, size_t n);
/* Drop n bytes of parsed input from the front of s->in. */
void sess_consume(struct session *s, size_t n);
/* Record why the session ends; the first reason given wins. */
void sess_set_result(struct session *s, enum sess_result r);
/* The token for the access log. */
const char *sess_result_name(enum sess_result r);
/*
 * Fail the session with SOCKS5 reply code rep (the front translates it):
 * cancels any job and dial, queues the reply, -> SESS_CLOSING. The caller
 * runs sess_process() (or is inside it).
 */
void sess_fail(struct session *s, uint8_t rep, enum sess_result r);
struct auth_target;
/*
 * The access rules for command cmd and target t, from this client: true
 * if allowed; else counted (mpgw_refused_total{reason="rules"}) and logged
 * as "WHAT denied by RULE", WHAT made from fmt only then.
 */
bool sess_rules_allow(struct session *s, uint8_t cmd,
    const struct auth_target *t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
struct resolve_result;
/*
 * Resolve the request's domain name (dial.c, bind.c): the session waits in
 * SESS_RESOLVE under the connect timeout until done(arg, res). Returns the
 * handle to cancel, or NULL after failing the session, which frees
 * s->dial: a caller whose arg is the dial must not touch it then.
 */
struct resolve_req *sess_resolve_dst(struct session *s,
    void (*done)(void *arg, const struct resolve_result *res), void *arg);
/* The handshake is over: wipe and free s->in (the relay took its bytes). */
void sess_input_done(struct session *s);
/* dial.c: the upstream socket fd is connected, and is what up says. */
void sess_dialed(struct session *s, int fd, enum sess_upstream up);
/* The success reply is out: hand the connection to the relay. */
void sess_start_relay(struct session *s);
/*
 * socks5.early_reply: answer success now (BND 0.0.0.0:0), wait up to
 * early_wait for the client's first bytes, then dial with them in the
 * SYN; a failure after that resets the client.
 */
void sess_reply_early(struct session *s);
/*
 * Fail by resetting the client connection: no reply, an RST (Convert's
 * Silent TLV). -> SESS_CLOSING, which then closes at once.
 */
void sess_reset(struct session *s);
/* Run the state machine over pending input and output. */
void sess_process(struct session *s);
/*
 * Log the session, release everything and free it. A session still in
 * SESS_PROXY was never admitted: it is freed without an access-log line
 * or a result (its refusal, if any, was counted by admit.c).
 */
void sess_close(struct session *s);
/* How long a failed session waits for the client to read its reply. */
#define SESS_LINGER_TIME 2.0
/*
 * Cancel an outstanding pool job and shared-state question (their done()
 * will free them).
 */
void sess_cancel_job(struct session *s);

#endif
