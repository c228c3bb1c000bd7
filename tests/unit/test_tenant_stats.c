/* test_tenant_stats: unit tests for node/tenant_stats.c: counts per tenant
 * and in the node's total, no count lost when loop threads add at once,
 * listings in name order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenant_stats.h"

static int
reset(void **state)
{
	(void)state;
	tenant_stats_reset();
	return 0;
}

static void
test_counts_per_tenant_and_total(void **state)
{
	uint64_t v[TENANT_STAT_COUNT], t[TENANT_STAT_COUNT];

	(void)state;
	tenant_stats_add("acme", TENANT_STAT_MSGS_IN, 1);
	tenant_stats_add("acme", TENANT_STAT_BYTES_IN, 1500);
	tenant_stats_add("globex", TENANT_STAT_BYTES_IN, 200);
	tenant_stats_add("", TENANT_STAT_AUTH_FAILURES, 3);	/* nobody's mailbox */
	tenant_stats_add(NULL, TENANT_STAT_MSGS_IN, 1);
	tenant_stats_get("acme", v);
	assert_int_equal(v[TENANT_STAT_MSGS_IN], 1);
	assert_int_equal(v[TENANT_STAT_BYTES_IN], 1500);
	assert_int_equal(v[TENANT_STAT_AUTH_FAILURES], 0);
	tenant_stats_get("unknown", v);
	assert_int_equal(v[TENANT_STAT_BYTES_IN], 0);
	tenant_stats_totals(t);
	assert_int_equal(t[TENANT_STAT_MSGS_IN], 2);
	assert_int_equal(t[TENANT_STAT_BYTES_IN], 1700);
	assert_int_equal(t[TENANT_STAT_AUTH_FAILURES], 3);
	assert_string_equal(tenant_stats_name(TENANT_STAT_BYTES_OUT), "bytesOut");
}

static void
test_snapshot_in_name_order(void **state)
{
	struct tenant_stats_row *rows;
	size_t n, i;
	char name[16];

	(void)state;
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "t%04zu", (i * 7919) % 3000);
		tenant_stats_add(name, TENANT_STAT_MSGS_OUT, i + 1);
	}
	assert_int_equal(tenant_stats_snapshot(&rows, &n), 0);
	assert_int_equal(n, 3000);
	for (i = 1; i < n; i++)
		assert_true(strcmp(rows[i - 1].name, rows[i].name) < 0);
	assert_string_equal(rows[0].name, "t0000");
	assert_int_equal(rows[0].v[TENANT_STAT_MSGS_OUT], 1);
	free(rows);
}

#define THREADS	4
#define ADDS	20000

static void *
adder(void *arg)
{
	const char *const names[] = { "a", "b", "c" };
	int i;

	(void)arg;
	for (i = 0; i < ADDS; i++)
		tenant_stats_add(names[i % 3], TENANT_STAT_RCPTS_IN, 1);
	return NULL;
}

static void
test_threads_lose_nothing(void **state)
{
	pthread_t th[THREADS];
	uint64_t v[TENANT_STAT_COUNT], sum = 0;
	const char *const names[] = { "a", "b", "c" };
	int i;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, adder, NULL), 0);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (i = 0; i < 3; i++) {
		tenant_stats_get(names[i], v);
		sum += v[TENANT_STAT_RCPTS_IN];
	}
	assert_int_equal(sum, THREADS * ADDS);
	tenant_stats_totals(v);
	assert_int_equal(v[TENANT_STAT_RCPTS_IN], THREADS * ADDS);
}

static void
test_long_name_counts_in_total_only(void **state)
{
	char name[100];
	uint64_t v[TENANT_STAT_COUNT];
	struct tenant_stats_row *rows;
	size_t n;

	(void)state;
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	tenant_stats_add(name, TENANT_STAT_MSGS_IN, 1);
	tenant_stats_totals(v);
	assert_int_equal(v[TENANT_STAT_MSGS_IN], 1);
	assert_int_equal(tenant_stats_snapshot(&rows, &n), 0);
	assert_int_equal(n, 0);
	free(rows);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counts_per_tenant_and_total, reset),
		cmocka_unit_test_setup(test_snapshot_in_name_order, reset),
		cmocka_unit_test_setup(test_threads_lose_nothing, reset),
		cmocka_unit_test_setup(test_long_name_counts_in_total_only, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
