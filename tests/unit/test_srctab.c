/*
 * lib/srctab: add, find, delete and reuse of indices; a full table refuses
 * and its age list names the entry to evict; touch reorders; keys compare
 * over key_len bytes only; a long random run agrees with a simple model;
 * and the bucket hash is keyed with a secret that differs per process.
 */
#include "lib/srctab.h"

#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KLEN 9

/* Key number n. */
static const uint8_t *
k(uint32_t n)
{
	static uint8_t key[SRCTAB_KEY_MAX];

	memset(key, 0, sizeof(key));
	key[0] = 4;
	memcpy(key + 1, &n, sizeof(n));
	return key;
}

Test(srctab, add_find_del)
{
	static struct srctab_slot slots[16];
	struct srctab t = SRCTAB_INITIALIZER(slots, KLEN);
	int a, b;

	cr_expect_eq(srctab_find(&t, k(1)), -1);
	cr_expect_eq(srctab_oldest(&t), -1);
	cr_assert_neq(a = srctab_add(&t, k(1)), -1);
	cr_assert_neq(b = srctab_add(&t, k(2)), -1);
	cr_expect_neq(a, b);
	cr_expect(a >= 0 && a < 16 && b >= 0 && b < 16);
	cr_expect_eq(srctab_find(&t, k(1)), a);
	cr_expect_eq(srctab_find(&t, k(2)), b);
	cr_expect_eq(memcmp(srctab_key(&t, a), k(1), KLEN), 0);
	cr_expect_eq(srctab_count(&t), 2);
	srctab_del(&t, a);
	cr_expect_eq(srctab_find(&t, k(1)), -1);
	cr_expect_eq(srctab_find(&t, k(2)), b);
	cr_expect_eq(srctab_count(&t), 1);
	/* The freed index is handed out again. */
	cr_expect_eq(srctab_add(&t, k(3)), a);
}

Test(srctab, full_refuses_and_oldest_makes_room)
{
	static struct srctab_slot slots[64];
	struct srctab t = SRCTAB_INITIALIZER(slots, KLEN);
	int idx[64];

	for (uint32_t n = 0; n < 64; n++)
		cr_assert_neq(idx[n] = srctab_add(&t, k(n)), -1, "key %u", n);
	cr_expect_eq(srctab_add(&t, k(64)), -1);
	cr_expect_eq(srctab_count(&t), 64);
	/* Every entry is still there: a full table forgets nothing. */
	for (uint32_t n = 0; n < 64; n++)
		cr_expect_eq(srctab_find(&t, k(n)), idx[n], "key %u", n);
	/* Key 0 is the oldest until touched; then key 1 is. */
	cr_expect_eq(srctab_oldest(&t), idx[0]);
	srctab_touch(&t, idx[0]);
	cr_expect_eq(srctab_oldest(&t), idx[1]);
	srctab_del(&t, srctab_oldest(&t));
	cr_expect_eq(srctab_add(&t, k(64)), idx[1]);
	cr_expect_eq(srctab_find(&t, k(1)), -1);
	cr_expect_eq(srctab_oldest(&t), idx[2]);
}

Test(srctab, touch_orders_by_age)
{
	static struct srctab_slot slots[8];
	struct srctab t = SRCTAB_INITIALIZER(slots, KLEN);
	int idx[5];

	for (uint32_t n = 0; n < 5; n++)
		idx[n] = srctab_add(&t, k(n));
	srctab_touch(&t, idx[2]);
	srctab_touch(&t, idx[0]);
	srctab_touch(&t, idx[0]); /* already the newest */
	/* Age order now: 1, 3, 4, 2, 0. */
	static const int want[] = {1, 3, 4, 2, 0};
	for (size_t j = 0; j < 5; j++) {
		cr_expect_eq(srctab_oldest(&t), idx[want[j]], "step %zu", j);
		srctab_del(&t, srctab_oldest(&t));
	}
	cr_expect_eq(srctab_oldest(&t), -1);
	cr_expect_eq(srctab_count(&t), 0);
}

Test(srctab, compares_key_len_bytes_only)
{
	static struct srctab_slot slots[8];
	struct srctab t = SRCTAB_INITIALIZER(slots, 4);
	uint8_t a[SRCTAB_KEY_MAX] = {1, 2, 3, 4, 5};
	uint8_t b[SRCTAB_KEY_MAX] = {1, 2, 3, 4, 6};
	uint8_t c[SRCTAB_KEY_MAX] = {1, 2, 3, 5, 5};
	int i;

	cr_assert_neq(i = srctab_add(&t, a), -1);
	cr_expect_eq(srctab_find(&t, b), i);
	cr_expect_eq(srctab_find(&t, c), -1);
}

Test(srctab, one_slot_table)
{
	static struct srctab_slot slots[1];
	struct srctab t = SRCTAB_INITIALIZER(slots, KLEN);

	cr_expect_eq(srctab_add(&t, k(7)), 0);
	cr_expect_eq(srctab_add(&t, k(8)), -1);
	srctab_del(&t, 0);
	cr_expect_eq(srctab_add(&t, k(8)), 0);
	cr_expect_eq(srctab_find(&t, k(8)), 0);
	cr_expect_eq(srctab_find(&t, k(7)), -1);
}

/* A long random run against a model: present[n] and the age order. */
Test(srctab, agrees_with_model)
{
	enum { CAP = 97, KEYS = 300, STEPS = 200000 };
	static struct srctab_slot slots[CAP];
	struct srctab t = SRCTAB_INITIALIZER(slots, KLEN);
	static int where[KEYS];	   /* index, or -1 */
	static uint64_t stamp[KEYS]; /* age: larger is newer */
	uint64_t clock = 0;
	unsigned held = 0;

	srandom(12345);
	for (int n = 0; n < KEYS; n++)
		where[n] = -1;
	for (int step = 0; step < STEPS; step++) {
		uint32_t n = (uint32_t)(random() % KEYS);
		int op = (int)(random() % 4);
		int i = srctab_find(&t, k(n));

		cr_assert_eq(i, where[n], "step %d key %u", step, n);
		if (i == -1 && op != 3) {
			i = srctab_add(&t, k(n));
			if (held == CAP) {
				cr_assert_eq(i, -1, "step %d", step);
				/* Evict the model's oldest, as a caller would. */
				int old = -1;
				for (int m = 0; m < KEYS; m++)
					if (where[m] != -1 && (old == -1 ||
					    stamp[m] < stamp[old]))
						old = m;
				cr_assert_eq(srctab_oldest(&t), where[old]);
				srctab_del(&t, where[old]);
				where[old] = -1;
				held--;
				i = srctab_add(&t, k(n));
			}
			cr_assert_neq(i, -1);
			for (int m = 0; m < KEYS; m++)
				cr_assert(where[m] != i, "index %d reused live",
				    i);
			where[n] = i;
			stamp[n] = ++clock;
			held++;
		} else if (i != -1 && op == 3) {
			srctab_del(&t, i);
			where[n] = -1;
			held--;
		} else if (i != -1) {
			srctab_touch(&t, i);
			stamp[n] = ++clock;
		}
		cr_assert_eq(srctab_count(&t), held);
	}
}

/* The hash of a fixed key in a child that has not hashed before. */
static uint64_t
hash_in_child(void)
{
	uint64_t h = 0;
	int fd[2], st;
	pid_t pid;

	cr_assert_eq(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		h = srctab_hash("192.0.2.1", 9);
		_exit(write(fd[1], &h, sizeof(h)) == sizeof(h) ? 0 : 1);
	}
	cr_assert_neq(pid, -1);
	close(fd[1]);
	cr_assert_eq(read(fd[0], &h, sizeof(h)), (ssize_t)sizeof(h));
	close(fd[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return h;
}

Test(srctab, hash_secret_differs_per_process)
{
	/* Equal by chance with probability 2^-64 per pair. */
	uint64_t a = hash_in_child(), b = hash_in_child(), c = hash_in_child();

	cr_expect(a != b && b != c && a != c);
	/* Within one process the hash is a function. */
	cr_expect_eq(srctab_hash("x", 1), srctab_hash("x", 1));
	cr_expect_neq(srctab_hash("x", 1), srctab_hash("y", 1));
}
