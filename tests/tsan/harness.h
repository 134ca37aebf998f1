/*
 * What the ThreadSanitizer harnesses in tests/tsan/ share. Each harness is
 * a program (criterion's runner does not run under TSan here) that drives
 * one threaded module from several threads and checks the answers it got:
 * a wrong answer prints "file:line: what" and exits 1; a race is reported
 * by TSan itself, which `make tsan` runs with halt_on_error=1 and
 * exitcode=66.
 */
#ifndef MPGW_TSAN_HARNESS_H
#define MPGW_TSAN_HARNESS_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		exit(1);						\
	}								\
} while (0)

#define CHECKF(c, ...) do {						\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,	\
		    __LINE__, #c);					\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		exit(1);						\
	}								\
} while (0)

/* Start n threads running fn(arg + i * size), then join them all. */
static inline void
run_threads(unsigned n, void *(*fn)(void *), void *arg, size_t size)
{
	pthread_t t[64];

	CHECK(n <= sizeof(t) / sizeof(t[0]));
	for (unsigned i = 0; i < n; i++)
		CHECK(pthread_create(&t[i], NULL, fn,
		    (char *)arg + i * size) == 0);
	for (unsigned i = 0; i < n; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
}

#endif
