/* test_sendrate: unit tests for node/sendrate.c: the limit holds inside a
 * window, frees up as the window slides, tenants do not share counts, a
 * message given back frees its place, and threads counting at once lose
 * nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>

#include "sendrate.h"

static int
reset(void **state)
{
	(void)state;
	sendrate_reset();
	return 0;
}

/* A start time in the middle of a minute window, as a real clock would be. */
#define T0	(1000ULL * 60 * 1000 + 30 * 1000)

static void
test_limit_within_a_window(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_true(sendrate_allowed("a", 3, 60, T0 + (uint64_t)i));
		assert_true(sendrate_take("a", 3, 60, T0 + (uint64_t)i));
	}
	assert_false(sendrate_allowed("a", 3, 60, T0 + 10));
	assert_false(sendrate_take("a", 3, 60, T0 + 10));
	/* Other tenants and no limit are unaffected. */
	assert_true(sendrate_take("b", 3, 60, T0 + 10));
	assert_true(sendrate_take("a", 0, 60, T0 + 10));
	/* Just past the fixed window's edge the previous one still weighs:
	 * 0.1 s into the next one, 3 * (59.9 / 60) + 1 > 3. */
	assert_false(sendrate_take("a", 3, 60, T0 + 30100));
	/* 45 s into it a quarter of the old window is left: 0.75 + 1 fits,
	 * 0.75 + 2 still fits, 0.75 + 3 does not. */
	assert_true(sendrate_take("a", 3, 60, T0 + 75000));
	assert_true(sendrate_take("a", 3, 60, T0 + 75000));
	assert_false(sendrate_take("a", 3, 60, T0 + 75000));
	/* Two windows later everything is forgotten. */
	for (i = 0; i < 3; i++)
		assert_true(sendrate_take("a", 3, 60, T0 + 150000));
	assert_false(sendrate_take("a", 3, 60, T0 + 150000));
}

static void
test_give_back(void **state)
{
	(void)state;
	assert_true(sendrate_take("a", 1, 3600, T0));
	assert_false(sendrate_allowed("a", 1, 3600, T0 + 5));
	sendrate_give_back("a", T0);
	assert_true(sendrate_take("a", 1, 3600, T0 + 6));
	assert_false(sendrate_take("a", 1, 3600, T0 + 7));
}

static void
test_rate_change_starts_afresh(void **state)
{
	(void)state;
	assert_true(sendrate_take("a", 1, 60, T0));
	assert_false(sendrate_take("a", 1, 60, T0 + 1));
	/* The panel raised it to 2/h: a new window, counted from here. */
	assert_true(sendrate_take("a", 2, 3600, T0 + 2));
	assert_true(sendrate_take("a", 2, 3600, T0 + 3));
	assert_false(sendrate_take("a", 2, 3600, T0 + 4));
}

#define THREADS	4
#define EACH	500

static void *
taker(void *arg)
{
	int *ok = arg, i;

	for (i = 0; i < EACH; i++)
		if (sendrate_take("busy", 1000, 86400, T0))
			(*ok)++;
	return NULL;
}

static void
test_threads_share_one_limit(void **state)
{
	pthread_t t[THREADS];
	int ok[THREADS] = { 0 }, i, sum = 0;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, taker, &ok[i]), 0);
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		sum += ok[i];
	}
	assert_int_equal(sum, 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_limit_within_a_window, reset),
		cmocka_unit_test_setup(test_give_back, reset),
		cmocka_unit_test_setup(test_rate_change_starts_afresh, reset),
		cmocka_unit_test_setup(test_threads_share_one_limit, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
