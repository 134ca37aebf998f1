/*
 * lib/log.c under ThreadSanitizer: SIGHUP sets the log level on the main
 * thread while workers ask log_enabled() for every line (defect 16: a
 * plain int, a data race).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "lib/log.h"

#define ROUNDS 200000

static atomic_bool stop;

static void *
reader(void *arg)
{
	unsigned long n = 0;

	(void)arg;
	while (!atomic_load(&stop))
		n += log_enabled(LOG_LVL_DEBUG);
	return (void *)n;
}

int
main(void)
{
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, reader, NULL) != 0)
			return 1;
	for (int i = 0; i < ROUNDS; i++)
		log_set_level(i % 2 ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	log_set_level(LOG_LVL_WARN);
	if (log_enabled(LOG_LVL_INFO) || !log_enabled(LOG_LVL_WARN)) {
		fprintf(stderr, "tsan_log: wrong level after the race\n");
		return 1;
	}
	return 0;
}
