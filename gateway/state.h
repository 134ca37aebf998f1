/*
 * The shared state ([state] redis, DESIGN.md section 7): the Convert replay
 * cache and the failed-login throttle kept in one Redis for every instance
 * that names it, so a captured Convert message replayed to another
 * instance is refused there, and failed logins anywhere count towards one
 * block. Keys are named by auth/statekey.h.
 *
 * Each worker has its own connection (hiredis on the worker's own libev
 * loop): a question never blocks a loop, and its answer comes back on the
 * thread that asked. Each operation is one command, a Lua script where it
 * reads and writes several keys, so it is atomic in Redis and costs one
 * round trip. The scripts are loaded when the connection is made.
 *
 * When Redis cannot be reached, answers with an error or does not answer
 * within STATE_TIMEOUT, the connection is dropped and made again after a
 * back-off (0.1 s, doubling, at most 5 s); meanwhile every question fails
 * at once. What a failure means is the caller's: Convert Auth fails
 * closed, the throttle falls back to the in-process one.
 *
 * Everything here runs on the worker's loop thread; only the counters
 * (stats.h) are shared.
 */
#ifndef MPGW_STATE_H
#define MPGW_STATE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct gw_conf;
struct state;

/* Seconds a question may wait for its answer, and a connection for Redis. */
#define STATE_TIMEOUT 1.0

enum state_status {
	STATE_OK = 0,		/* Redis answered */
	STATE_UNAVAILABLE,	/* no answer: unreachable, error or timeout */
};

/*
 * A question, embedded in the caller's own struct (container_of gets back
 * to it), like a pool job. done() runs exactly once, on the loop thread,
 * never from inside the call that asked; it also runs for a cancelled
 * question (cancelled is then set), and must free what holds r.
 */
struct state_req {
	void (*done)(struct state_req *r);
	bool cancelled;
	enum state_status status;
	/* The answer, when status is STATE_OK: */
	double block_left;	/* seconds the source stays blocked; 0: not */
	bool fresh;		/* replay: the nonce was not seen before */
	unsigned fails;		/* fail: the source's failures, every instance's */
	bool block_started;	/* fail: this failure started the block */
};

/*
 * A client for w's loop (idx: the worker, for logs) to the Redis of c at
 * the numeric address ip, with password (NULL or "": none). It connects
 * once that loop runs. NULL with errno (ENOMEM).
 */
struct state *state_new(struct ev_loop *loop, unsigned idx,
    const struct gw_conf *c, const char *ip, const char *password);
/* Close the connection (pending questions are answered UNAVAILABLE), free. */
void state_free(struct state *st);
/* Is the connection up (questions go to Redis)? */
bool state_up(const struct state *st);

/*
 * The questions. Each returns 0 when asked (done() will run), or -1 when
 * Redis is not reachable now (nothing will run; counted as an error).
 *
 * state_replay: is Convert Auth (user, nonce) new? Remembers it for ttl
 * seconds (SET NX EX) and tells whether client's source is blocked.
 * state_blocked: is client's source blocked for failed logins?
 * state_fail: count a failed login by client as user (NULL: none named);
 * fail_limit failures from the source block it for fail_block seconds.
 * r may be NULL when nobody waits. A block the answer reports is learnt
 * by the in-process throttle (auth_throttle_block) whoever asked.
 * state_login_ok: a successful login by client as user forgives that
 * user's own failures at the source, unless it is blocked; nobody waits.
 */
int state_replay(struct state *st, const char *user, const uint8_t nonce[12],
    unsigned ttl, const struct sockaddr *client, struct state_req *r);
int state_blocked(struct state *st, const struct sockaddr *client,
    struct state_req *r);
int state_fail(struct state *st, const struct sockaddr *client,
    const char *user, unsigned fail_limit, unsigned fail_block,
    struct state_req *r);
int state_login_ok(struct state *st, const struct sockaddr *client,
    const char *user);

/* The owner no longer wants the answer to *rp (if any): cancel, forget. */
void state_cancel(struct state_req **rp);

#endif
