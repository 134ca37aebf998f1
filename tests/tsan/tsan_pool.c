/*
 * The thread pool (gateway/pool.c) under ThreadSanitizer: LOOPS event-loop
 * threads, each with its own done queue, submit quick and longer jobs,
 * submit more from done() as sessions do, and cancel some right after
 * submitting and some later, while the pool threads may be running them.
 *
 * Checked: every job's done() runs exactly once, on the thread of the loop
 * that submitted it; a job that was not cancelled had its work() done with
 * the right result.
 */
#include "gateway/pool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "lib/util.h"

#define THREADS 3	/* pool threads */
#define LOOPS 4		/* event loops submitting */
#define FIRST 64	/* jobs each loop submits at start */
#define CHAIN 3		/* a done() submits another job this many times */

struct job {
	struct pool_job pj;
	struct loop *l;
	unsigned idx;		/* in its loop's table */
	unsigned gen;		/* how many jobs came before it in its chain */
	uint64_t in, out;
	bool ran;		/* work() ran (written on a pool thread) */
	bool longer;		/* work() sleeps a little, as a password hash */
};

struct loop {
	unsigned idx;
	pthread_t self;
	struct ev_loop *loop;
	struct pool_doneq q;
	ev_async keep;		/* holds the loop open until every done() */
	unsigned submitted, done, cancelled;
	unsigned done_count[FIRST * (CHAIN + 1)];
	struct job *live[FIRST * (CHAIN + 1)];	/* submitted, not done */
	uint64_t rng;
};

static struct loop loops[LOOPS];

static uint64_t
rnd(struct loop *l)
{
	l->rng ^= l->rng << 13;
	l->rng ^= l->rng >> 7;
	l->rng ^= l->rng << 17;
	return l->rng;
}

static uint64_t
expect(uint64_t in)
{
	return in * 0x9e3779b97f4a7c15ULL ^ (in >> 7);
}

/* On a pool thread: the job's answer, after a little while for some. */
static void
job_work(struct pool_job *pj)
{
	struct job *j = container_of(pj, struct job, pj);
	struct timespec ts = { 0, 200 * 1000 };

	if (j->longer)
		nanosleep(&ts, NULL);
	j->out = expect(j->in);
	j->ran = true;
}

static void job_done(struct pool_job *pj);

/* Submit job number idx of loop l (on l's thread). */
static void
submit(struct loop *l, unsigned idx, unsigned gen)
{
	struct job *j;

	CHECK((j = calloc(1, sizeof(*j))) != NULL);
	j->l = l;
	j->idx = idx;
	j->gen = gen;
	j->in = rnd(l);
	j->pj.work = job_work;
	j->pj.done = job_done;
	j->longer = rnd(l) % 3 == 0;
	l->live[idx] = j;
	l->submitted++;
	pool_submit(&j->pj, &l->q);
	/* A session that closes at once: cancel before the pool gets to it. */
	if (rnd(l) % 5 == 0)
		atomic_store(&j->pj.cancelled, true);
}

/* On l's loop thread, once per job. */
static void
job_done(struct pool_job *pj)
{
	struct job *j = container_of(pj, struct job, pj);
	struct loop *l = j->l;
	unsigned victim;

	CHECK(pthread_equal(pthread_self(), l->self));
	CHECK(l->live[j->idx] == j);
	l->live[j->idx] = NULL;
	l->done_count[j->idx]++;
	l->done++;
	if (atomic_load(&pj->cancelled))
		l->cancelled++;
	else
		CHECKF(j->ran && j->out == expect(j->in), "loop %u job %u",
		    l->idx, j->idx);
	/* A later session closing: cancel a job the pool may be running. */
	victim = (unsigned)(rnd(l) % (FIRST * (CHAIN + 1)));
	if (l->live[victim] != NULL && rnd(l) % 4 == 0)
		atomic_store(&l->live[victim]->pj.cancelled, true);
	/* A resolved name leads to a password check, and so on. */
	if (j->gen < CHAIN)
		submit(l, j->idx + FIRST, j->gen + 1);
	free(j);
	if (l->done == FIRST * (CHAIN + 1))
		ev_async_stop(l->loop, &l->keep);
}

static void
keep_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void *
loop_main(void *arg)
{
	struct loop *l = arg;

	l->self = pthread_self();
	l->rng = 0x1234567ULL * (l->idx + 1);
	CHECK((l->loop = ev_loop_new(EVFLAG_AUTO)) != NULL);
	pool_doneq_init(&l->q, l->loop);
	ev_async_init(&l->keep, keep_cb);
	ev_async_start(l->loop, &l->keep);
	for (unsigned i = 0; i < FIRST; i++)
		submit(l, i, 0);
	ev_run(l->loop, 0);
	pool_doneq_fini(&l->q);
	ev_loop_destroy(l->loop);
	return NULL;
}

int
main(void)
{
	unsigned cancelled = 0;

	CHECK(pool_start(THREADS) == 0);
	for (unsigned i = 0; i < LOOPS; i++)
		loops[i].idx = i;
	run_threads(LOOPS, loop_main, loops, sizeof(loops[0]));
	pool_stop();
	for (unsigned i = 0; i < LOOPS; i++) {
		struct loop *l = &loops[i];

		CHECK(l->submitted == FIRST * (CHAIN + 1));
		CHECK(l->done == l->submitted);
		for (unsigned k = 0; k < l->submitted; k++)
			CHECKF(l->done_count[k] == 1, "loop %u job %u: %u",
			    i, k, l->done_count[k]);
		cancelled += l->cancelled;
	}
	/* The cancellations must have happened, or nothing was tested. */
	CHECK(cancelled > 0);
	printf("tsan_pool: %u jobs on %u loops, %u cancelled\n",
	    LOOPS * FIRST * (CHAIN + 1), LOOPS, cancelled);
	return 0;
}
