#include "gateway/pool.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lib/util.h"

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static struct pool_job *pool_head, *pool_tail;
static pthread_t *pool_threads;
static unsigned pool_n;
static bool pool_stopping;

/* The oldest queued job, or NULL. Called with pool_mu held. */
static struct pool_job *
pool_take(void)
{
	struct pool_job *job = pool_head;

	if (job != NULL) {
		pool_head = job->next;
		if (pool_head == NULL)
			pool_tail = NULL;
	}
	return job;
}

static void
doneq_push(struct pool_doneq *q, struct pool_job *job)
{
	pthread_mutex_lock(&q->mu);
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	pthread_mutex_unlock(&q->mu);
	ev_async_send(q->loop, &q->async);
}

static void *
pool_main(void *arg)
{
	struct pool_job *job;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&pool_mu);
		while ((job = pool_take()) == NULL && !(pool_stopping &&
		    pool_head == NULL))
			pthread_cond_wait(&pool_cv, &pool_mu);
		pthread_mutex_unlock(&pool_mu);
		if (job == NULL)
			return NULL;
		/* Its session is gone: do not hash for nobody. */
		if (!atomic_load(&job->cancelled))
			job->work(job);
		doneq_push(job->q, job);
	}
}

int
pool_start(unsigned n)
{
	pool_threads = calloc(n, sizeof(*pool_threads));
	if (pool_threads == NULL)
		return -1;
	pool_stopping = false;
	for (pool_n = 0; pool_n < n; pool_n++) {
		int rc = pthread_create(&pool_threads[pool_n], NULL, pool_main,
		    NULL);
		if (rc != 0) {
			pool_stop();
			errno = rc;
			return -1;
		}
	}
	return 0;
}

void
pool_stop(void)
{
	pthread_mutex_lock(&pool_mu);
	pool_stopping = true;
	pthread_cond_broadcast(&pool_cv);
	pthread_mutex_unlock(&pool_mu);
	for (unsigned i = 0; i < pool_n; i++)
		pthread_join(pool_threads[i], NULL);
	free(pool_threads);
	pool_threads = NULL;
	pool_n = 0;
}

void
pool_submit(struct pool_job *job, struct pool_doneq *q)
{
	atomic_store(&job->cancelled, false);
	job->q = q;
	job->next = NULL;
	pthread_mutex_lock(&pool_mu);
	if (pool_tail != NULL)
		pool_tail->next = job;
	else
		pool_head = job;
	pool_tail = job;
	pthread_cond_signal(&pool_cv);
	pthread_mutex_unlock(&pool_mu);
}

/* Run done() for every finished job queued for this loop. */
static void
doneq_drain(struct pool_doneq *q)
{
	struct pool_job *job, *next;

	pthread_mutex_lock(&q->mu);
	job = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mu);
	for (; job != NULL; job = next) {
		next = job->next;
		job->done(job);
	}
}

static void
doneq_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct pool_doneq *q = container_of(w, struct pool_doneq, async);

	(void)loop;
	(void)revents;
	doneq_drain(q);
}

void
pool_doneq_init(struct pool_doneq *q, struct ev_loop *loop)
{
	q->loop = loop;
	q->head = q->tail = NULL;
	pthread_mutex_init(&q->mu, NULL);
	ev_async_init(&q->async, doneq_cb);
	ev_async_start(loop, &q->async);
	/* The async watcher alone must not keep a draining loop alive. */
	ev_unref(loop);
}

void
pool_doneq_fini(struct pool_doneq *q)
{
	ev_ref(q->loop);
	ev_async_stop(q->loop, &q->async);
	doneq_drain(q);
	pthread_mutex_destroy(&q->mu);
}
