/*
 * A small pool of threads for work that blocks: password hashing (crypt_r).
 * The event loops never block; names are resolved on the loops
 * (resolve.c).
 *
 * A job is submitted from a worker's loop thread; work() runs on a pool
 * thread and may touch only the job; done() then runs back on the same loop
 * thread. Jobs run in the order they came. The submitter may cancel a job it no longer wants (its session
 * closed): done() still runs, with job->cancelled set, and must free the job.
 * Cancelling and done() happen on the same thread, so neither needs a lock.
 */
#ifndef MPGW_POOL_H
#define MPGW_POOL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct pool_job;

/* Where finished jobs go: one per event loop. */
struct pool_doneq {
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t mu;
	struct pool_job *head;
	struct pool_job *tail;
};

struct pool_job {
	void (*work)(struct pool_job *job);
	void (*done)(struct pool_job *job);
	atomic_bool cancelled;	/* set on the loop thread; work() is skipped */
	struct pool_doneq *q;
	struct pool_job *next;
};

/* Start n threads (n >= 1). 0, or -1 with errno. */
int pool_start(unsigned n);
/* Finish queued work and join the threads. */
void pool_stop(void);

/* Set up q on loop (started, keeps no reference count on the loop). */
void pool_doneq_init(struct pool_doneq *q, struct ev_loop *loop);
/* Stop q's watcher; run done() of jobs still queued. */
void pool_doneq_fini(struct pool_doneq *q);

/* Queue job; its done() will run on q's loop. */
void pool_submit(struct pool_job *job, struct pool_doneq *q);

#endif
