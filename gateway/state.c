#include "gateway/state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "auth/statekey.h"
#include "auth/throttle.h"
#include "conf/conf.h"
#include "gateway/stats.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/util.h"

#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 5.0
/*
 * A block key with no expiry (set by hand) blocks too; the in-process
 * throttle learns it a minute at a time, then asks again.
 */
#define BLOCK_NO_EXPIRY 60.0

/*
 * The scripts. Redis runs each atomically, so instances that count the
 * same source at once cannot lose a failure or extend a block. A source's
 * failures live in one hash that expires with it: AUTH_THROTTLE_FORGET
 * seconds after its last failure, or when its block ends, so the next
 * count starts clean and a user's old share cannot forgive new failures
 * (the in-process throttle's epochs).
 */

/* KEYS: block, replay. ARGV: ttl. -> {PTTL of block, 1 if new} */
static const char script_replay[] =
    "local b = redis.call('PTTL', KEYS[1])\n"
    "local f = 0\n"
    "if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then\n"
    "  f = 1\n"
    "end\n"
    "return {b, f}\n";

/*
 * KEYS: fail, block. ARGV: user field ("" for none), fail_limit,
 * fail_block, forget. -> {failures, PTTL of block, 1 if this one started it}
 */
static const char script_fail[] =
    "local n = redis.call('HINCRBY', KEYS[1], 'n', 1)\n"
    "if ARGV[1] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[1], 1) end\n"
    "local b = redis.call('PTTL', KEYS[2])\n"
    "if b ~= -2 then\n"
    "  if redis.call('TTL', KEYS[1]) < 0 then\n"
    "    redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "  end\n"
    "  return {n, b, 0}\n"
    "end\n"
    "local lim, blk = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if lim > 0 and blk > 0 and n >= lim then\n"
    "  redis.call('SET', KEYS[2], '1', 'EX', blk)\n"
    "  redis.call('EXPIRE', KEYS[1], blk)\n"
    "  return {n, blk * 1000, 1}\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "return {n, -2, 0}\n";

/*
 * KEYS: fail, block. ARGV: user field. A success takes the user's own
 * failures off the source's count, unless the source is blocked (a block
 * stands: its failures were someone's guesses). -> 0
 */
static const char script_ok[] =
    "local u = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or 0)\n"
    "if u == 0 then return 0 end\n"
    "redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
    "if redis.call('HINCRBY', KEYS[1], 'n', -u) <= 0 then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

enum st_script {
	SCRIPT_REPLAY = 0,
	SCRIPT_FAIL,
	SCRIPT_OK,
};
#define SCRIPT_COUNT (SCRIPT_OK + 1)

static const char *const scripts[SCRIPT_COUNT] = {
	[SCRIPT_REPLAY] = script_replay,
	[SCRIPT_FAIL] = script_fail,
	[SCRIPT_OK] = script_ok,
};

enum st_conn {
	ST_DOWN = 0,		/* waiting out the back-off */
	ST_CONNECTING,		/* connecting, AUTH, SELECT, scripts, PING */
	ST_UP,
};

enum st_op {
	OP_REPLAY = 0,
	OP_BLOCKED,
	OP_FAIL,
	OP_OK,
};

struct state {
	struct ev_loop *loop;
	unsigned idx;
	redisAsyncContext *ac;		/* NULL while down */
	enum st_conn conn;
	/*
	 * One timer: the back-off while down, the handshake's time limit
	 * while connecting, and while up the time since the last answer
	 * when questions are outstanding.
	 */
	ev_timer timer;
	double backoff;
	unsigned outstanding;		/* questions asked, not answered */
	unsigned handshake_left;	/* replies the handshake waits for */
	bool ever_up;
	bool down_logged;		/* this outage was logged */
	char sha[SCRIPT_COUNT][48];	/* SCRIPT LOAD's answers */
	char ip[64];
	uint16_t port;
	unsigned db;
	char user[128];
	char password[256];
	char text[300];			/* redis://HOST:PORT/DB */
};

/* One command in flight: hiredis's privdata. */
struct st_cmd {
	struct state *st;
	struct state_req *r;		/* NULL: nobody waits */
	enum st_op op;
	struct sockaddr_storage client;
};

static void st_connect(struct state *st);

static bool
st_is_throttle(enum st_op op)
{
	switch (op) {
	case OP_REPLAY:
		return false;
	case OP_BLOCKED:
	case OP_FAIL:
	case OP_OK:
		return true;
	}
	return true;
}

static void
st_count_error(enum st_op op)
{
	stats_add(st_is_throttle(op) ? STAT_STATE_THROTTLE_ERRORS :
	    STAT_STATE_REPLAY_ERRORS, 1);
}

/* Arm the timer for after seconds, once. */
static void
st_timer(struct state *st, double after)
{
	ev_timer_stop(st->loop, &st->timer);
	ev_timer_set(&st->timer, after, 0.);
	ev_timer_start(st->loop, &st->timer);
}

/*
 * The connection is gone or unusable (why): forget it, free it unless
 * hiredis does (free_it false: a callback hiredis frees after), and try
 * again after the back-off. Pending questions are answered UNAVAILABLE
 * by hiredis as it frees the context.
 */
static void
st_lost(struct state *st, const char *why, bool free_it)
{
	redisAsyncContext *ac = st->ac;
	bool was_up = st->conn == ST_UP;

	st->ac = NULL;
	st->conn = ST_DOWN;
	if (was_up)
		stats_sub(STAT_STATE_CONNECTED, 1);
	else
		stats_add(STAT_STATE_CONNECT_FAILED, 1);
	if (!st->down_logged) {
		log_warnx("state: worker %u: %s %s: %s: Convert Auth is "
		    "refused (Error 65) and logins use the in-process throttle "
		    "until it is back; retrying (%.1f s, at most %.0f s apart)",
		    st->idx, st->text, was_up ? "lost" : "unreachable", why,
		    st->backoff, BACKOFF_MAX);
		st->down_logged = true;
	} else
		log_debug("state: worker %u: %s: %s", st->idx, st->text, why);
	st_timer(st, st->backoff);
	st->backoff = st->backoff * 2 < BACKOFF_MAX ? st->backoff * 2 :
	    BACKOFF_MAX;
	if (free_it && ac != NULL)
		redisAsyncFree(ac);	/* deferred if inside its callback */
}

/* The handshake is done: questions may go. */
static void
st_ready(struct state *st)
{
	st->conn = ST_UP;
	st->backoff = BACKOFF_FIRST;
	stats_add(STAT_STATE_CONNECTED, 1);
	stats_add(STAT_STATE_CONNECT_OK, 1);
	ev_timer_stop(st->loop, &st->timer);
	if (st->down_logged || !st->ever_up)
		log_info("state: worker %u: connected to %s%s", st->idx,
		    st->text, st->ever_up ? ": shared state is back" : "");
	st->ever_up = true;
	st->down_logged = false;
}

static void
st_handshake_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct state *st = privdata;
	redisReply *rp = reply;
	char why[160];

	if (ac != st->ac || st->conn != ST_CONNECTING)
		return;		/* a context being freed */
	if (rp == NULL)
		return;		/* st_lost() runs from the disconnect */
	if (rp->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "handshake: %.*s", (int)(rp->len <
		    120 ? rp->len : 120), rp->str);
		st_lost(st, why, true);
		return;
	}
	if (--st->handshake_left == 0)
		st_ready(st);
}

/* SCRIPT LOAD's answer: the script's SHA-1, for EVALSHA. */
static void
st_script_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct state *st = ((struct st_cmd *)privdata)->st;
	enum st_op which = ((struct st_cmd *)privdata)->op;
	redisReply *rp = reply;

	free(privdata);
	if (ac != st->ac || st->conn != ST_CONNECTING || rp == NULL)
		return;
	if (rp->type != REDIS_REPLY_STRING || rp->len >= sizeof(st->sha[0])) {
		st_lost(st, rp->type == REDIS_REPLY_ERROR ? rp->str :
		    "SCRIPT LOAD: unexpected reply", true);
		return;
	}
	memcpy(st->sha[which], rp->str, rp->len);
	st->sha[which][rp->len] = '\0';
	if (--st->handshake_left == 0)
		st_ready(st);
}

static void
st_connect_cb(const redisAsyncContext *ac, int status)
{
	struct state *st = ac->data;

	if (status == REDIS_OK || ac != st->ac)
		return;
	/* hiredis frees the context after this returns. */
	st_lost(st, ac->errstr != NULL ? ac->errstr : "connect failed", false);
}

static void
st_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct state *st = ac->data;

	(void)status;
	if (ac != st->ac)
		return;		/* we dropped it ourselves */
	st_lost(st, ac->errstr != NULL && ac->err != 0 ? ac->errstr :
	    "closed by the server", false);
}

/* Queue a handshake command; false if hiredis would not take it. */
static bool
st_hs(struct state *st, redisCallbackFn *fn, void *priv, const char *fmt,
    ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = redisvAsyncCommand(st->ac, fn, priv, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return false;
	st->handshake_left++;
	return true;
}

static void
st_connect(struct state *st)
{
	redisAsyncContext *ac;
	struct st_cmd *sc;

	ac = redisAsyncConnect(st->ip, st->port);
	if (ac == NULL) {
		st_lost(st, "out of memory", false);
		return;
	}
	if (ac->err != 0) {
		char why[128];

		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		st_lost(st, why, false);
		return;
	}
	ac->data = st;
	st->ac = ac;
	st->conn = ST_CONNECTING;
	st->handshake_left = 0;
	if (redisLibevAttach(st->loop, ac) != REDIS_OK ||
	    redisAsyncSetConnectCallback(ac, st_connect_cb) != REDIS_OK ||
	    redisAsyncSetDisconnectCallback(ac, st_disconnect_cb) !=
	    REDIS_OK)
		goto err;
	/* Sent in order once connected; the PING's answer ends it. */
	if (st->password[0] != '\0' && !(st->user[0] != '\0' ?
	    st_hs(st, st_handshake_cb, st, "AUTH %s %s", st->user,
	    st->password) : st_hs(st, st_handshake_cb, st, "AUTH %s",
	    st->password)))
		goto err;
	if (st->db != 0 && !st_hs(st, st_handshake_cb, st, "SELECT %u",
	    st->db))
		goto err;
	for (int i = 0; i < SCRIPT_COUNT; i++) {
		if ((sc = calloc(1, sizeof(*sc))) == NULL)
			goto err;
		sc->st = st;
		sc->op = (enum st_op)i;
		if (!st_hs(st, st_script_cb, sc, "SCRIPT LOAD %s",
		    scripts[i])) {
			free(sc);
			goto err;
		}
	}
	if (!st_hs(st, st_handshake_cb, st, "PING"))
		goto err;
	st_timer(st, STATE_TIMEOUT);
	return;
err:
	st_lost(st, "cannot set up the connection", true);
}

static void
st_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct state *st = container_of(t, struct state, timer);

	(void)loop;
	(void)revents;
	switch (st->conn) {
	case ST_DOWN:
		st_connect(st);
		return;
	case ST_CONNECTING:
		st_lost(st, "no answer to the handshake", true);
		return;
	case ST_UP:
		if (st->outstanding > 0)
			st_lost(st, "no answer in time", true);
		return;
	}
}

/* Keep the answer timer running while questions are outstanding. */
static void
st_answer_timer(struct state *st)
{
	if (st->conn != ST_UP)
		return;
	if (st->outstanding == 0) {
		ev_timer_stop(st->loop, &st->timer);
		return;
	}
	ev_timer_stop(st->loop, &st->timer);
	ev_timer_set(&st->timer, STATE_TIMEOUT, 0.);
	ev_timer_start(st->loop, &st->timer);
}

/* Integer element i of an array reply, into *v; false if not there. */
static bool
st_elem(const redisReply *rp, size_t i, long long *v)
{
	if (rp->type != REDIS_REPLY_ARRAY || rp->elements <= i ||
	    rp->element[i]->type != REDIS_REPLY_INTEGER)
		return false;
	*v = rp->element[i]->integer;
	return true;
}

/* A PTTL answer (-2 no key, -1 no expiry, else ms) as seconds blocked. */
static double
st_block_left(long long pttl)
{
	if (pttl == -2)
		return 0;
	if (pttl < 0)
		return BLOCK_NO_EXPIRY;
	return (double)pttl / 1000.;
}

/* Fill r (or a scratch answer) from rp for op; false if malformed. */
static bool
st_parse(enum st_op op, const redisReply *rp, struct state_req *r)
{
	long long a, b, c;

	switch (op) {
	case OP_REPLAY:
		if (!st_elem(rp, 0, &a) || !st_elem(rp, 1, &b))
			return false;
		r->block_left = st_block_left(a);
		r->fresh = b == 1;
		return true;
	case OP_BLOCKED:
		if (rp->type != REDIS_REPLY_INTEGER)
			return false;
		r->block_left = st_block_left(rp->integer);
		return true;
	case OP_FAIL:
		if (!st_elem(rp, 0, &a) || !st_elem(rp, 1, &b) ||
		    !st_elem(rp, 2, &c))
			return false;
		r->fails = a < 0 ? 0 : a > (long long)~0u ? ~0u : (unsigned)a;
		r->block_left = st_block_left(b);
		r->block_started = c == 1;
		return true;
	case OP_OK:
		return rp->type == REDIS_REPLY_INTEGER;
	}
	return false;
}

static void
st_cmd_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct st_cmd *sc = privdata;
	struct state *st = sc->st;
	struct state_req scratch, *r = sc->r != NULL ? sc->r : &scratch;
	redisReply *rp = reply;
	double now = ev_now(st->loop);
	char why[160];

	memset(&scratch, 0, sizeof(scratch));
	st->outstanding--;
	r->status = STATE_UNAVAILABLE;
	if (rp == NULL) {
		/* The connection went; st_lost() has run or will. */
	} else if (rp->type == REDIS_REPLY_ERROR || !st_parse(sc->op, rp, r)) {
		/* NOSCRIPT, NOAUTH, READONLY, OOM...: start over. */
		snprintf(why, sizeof(why), "%.*s", rp->type ==
		    REDIS_REPLY_ERROR ? (int)(rp->len < 120 ? rp->len : 120) :
		    15, rp->type == REDIS_REPLY_ERROR ? rp->str :
		    "unexpected reply");
		if (ac == st->ac)
			st_lost(st, why, true);
	} else
		r->status = STATE_OK;
	if (r->status != STATE_OK)
		st_count_error(sc->op);
	else if (r->block_left > 0)
		auth_throttle_block((const struct sockaddr *)&sc->client,
		    now + r->block_left, now);
	if (ac == st->ac)
		st_answer_timer(st);
	if (sc->r != NULL)
		sc->r->done(sc->r);
	free(sc);
}

/*
 * Send one command for r (may be NULL) about client. 0, or -1 (down, or
 * hiredis refused it; r untouched, done() will not run).
 */
static int
st_send(struct state *st, enum st_op op, const struct sockaddr *client,
    struct state_req *r, const char *fmt, ...)
{
	struct st_cmd *sc;
	va_list ap;
	int rc;

	stats_add(st_is_throttle(op) ? STAT_STATE_THROTTLE_REQUESTS :
	    STAT_STATE_REPLAY_REQUESTS, 1);
	if (st == NULL || st->conn != ST_UP || st->ac == NULL ||
	    (st->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) != 0)
		goto err;
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		goto err;
	sc->st = st;
	sc->r = r;
	sc->op = op;
	memcpy(&sc->client, client, addr_len(client));
	va_start(ap, fmt);
	rc = redisvAsyncCommand(st->ac, st_cmd_cb, sc, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK) {
		free(sc);
		goto err;
	}
	if (r != NULL) {
		r->cancelled = false;
		r->status = STATE_UNAVAILABLE;
		r->block_left = 0;
		r->fresh = false;
		r->fails = 0;
		r->block_started = false;
	}
	if (st->outstanding++ == 0)
		st_answer_timer(st);
	return 0;
err:
	st_count_error(op);
	return -1;
}

int
state_replay(struct state *st, const char *user, const uint8_t nonce[12],
    unsigned ttl, const struct sockaddr *client, struct state_req *r)
{
	char rkey[AUTH_STATEKEY_MAX], bkey[AUTH_STATEKEY_MAX];

	if (auth_statekey_replay(rkey, user, nonce) == 0 ||
	    auth_statekey_block(bkey, client) == 0) {
		st_count_error(OP_REPLAY);
		return -1;
	}
	return st_send(st, OP_REPLAY, client, r, "EVALSHA %s 2 %s %s %u",
	    st != NULL ? st->sha[SCRIPT_REPLAY] : "", bkey, rkey,
	    ttl > 0 ? ttl : 1);
}

int
state_blocked(struct state *st, const struct sockaddr *client,
    struct state_req *r)
{
	char bkey[AUTH_STATEKEY_MAX];

	if (auth_statekey_block(bkey, client) == 0) {
		st_count_error(OP_BLOCKED);
		return -1;
	}
	return st_send(st, OP_BLOCKED, client, r, "PTTL %s", bkey);
}

int
state_fail(struct state *st, const struct sockaddr *client, const char *user,
    unsigned fail_limit, unsigned fail_block, struct state_req *r)
{
	char fkey[AUTH_STATEKEY_MAX], bkey[AUTH_STATEKEY_MAX];
	char field[AUTH_STATEKEY_MAX] = "";

	if (auth_statekey_fail(fkey, client) == 0 ||
	    auth_statekey_block(bkey, client) == 0 || (user != NULL &&
	    auth_statekey_user(field, user) == 0)) {
		st_count_error(OP_FAIL);
		return -1;
	}
	return st_send(st, OP_FAIL, client, r, "EVALSHA %s 2 %s %s %s %u %u %u",
	    st != NULL ? st->sha[SCRIPT_FAIL] : "", fkey, bkey, field,
	    fail_limit, fail_block, (unsigned)AUTH_THROTTLE_FORGET);
}

int
state_login_ok(struct state *st, const struct sockaddr *client,
    const char *user)
{
	char fkey[AUTH_STATEKEY_MAX], bkey[AUTH_STATEKEY_MAX];
	char field[AUTH_STATEKEY_MAX];

	if (user == NULL || user[0] == '\0')
		return 0;
	if (auth_statekey_fail(fkey, client) == 0 ||
	    auth_statekey_block(bkey, client) == 0 ||
	    auth_statekey_user(field, user) == 0) {
		st_count_error(OP_OK);
		return -1;
	}
	return st_send(st, OP_OK, client, NULL, "EVALSHA %s 2 %s %s %s",
	    st != NULL ? st->sha[SCRIPT_OK] : "", fkey, bkey, field);
}

void
state_cancel(struct state_req **rp)
{
	if (*rp != NULL) {
		(*rp)->cancelled = true;
		*rp = NULL;
	}
}

bool
state_up(const struct state *st)
{
	return st != NULL && st->conn == ST_UP;
}

struct state *
state_new(struct ev_loop *loop, unsigned idx, const struct gw_conf *c,
    const char *ip, const char *password)
{
	struct state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->loop = loop;
	st->idx = idx;
	st->backoff = BACKOFF_FIRST;
	snprintf(st->ip, sizeof(st->ip), "%s", ip);
	st->port = c->redis.port;
	st->db = c->redis.db;
	snprintf(st->user, sizeof(st->user), "%s", c->redis.user);
	snprintf(st->password, sizeof(st->password), "%s",
	    password != NULL ? password : "");
	snprintf(st->text, sizeof(st->text), "%s", c->redis.text);
	stats_add(STAT_STATE_CLIENTS, 1);
	/* The first connect runs on the worker's own thread, once it runs. */
	ev_init(&st->timer, st_timer_cb);
	st_timer(st, 0.);
	return st;
}

void
state_free(struct state *st)
{
	redisAsyncContext *ac;

	if (st == NULL)
		return;
	ev_timer_stop(st->loop, &st->timer);
	if (st->conn == ST_UP)
		stats_sub(STAT_STATE_CONNECTED, 1);
	stats_sub(STAT_STATE_CLIENTS, 1);
	st->conn = ST_DOWN;
	if ((ac = st->ac) != NULL) {
		st->ac = NULL;
		redisAsyncFree(ac);
	}
	explicit_bzero(st->password, sizeof(st->password));
	free(st);
}
