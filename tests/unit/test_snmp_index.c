/* test_snmp_index: unit tests for agent/snmp_index.c, the access rule
 * table's index as managers send it: round trips, and every malformed
 * index refused (wrong type, lengths that run past the end or stop short,
 * characters that are not printable). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "snmp_index.h"

static void
test_round_trip(void **state)
{
	unsigned long idx[SNMP_INDEX_RULE_MAX];
	char scope[SNMP_INDEX_SCOPE_MAX + 1], addr[SNMP_INDEX_ADDR_MAX + 1];
	size_t len;
	int type;

	(void)state;
	assert_int_equal(snmp_index_rule_encode(2, "acme", "192.0.2.0/24", idx, &len), 0);
	assert_int_equal(len, 1 + 1 + 4 + 1 + 12);
	assert_int_equal(idx[0], 2);
	assert_int_equal(idx[1], 4);
	assert_int_equal(idx[2], 'a');
	assert_int_equal(idx[6], 12);
	assert_int_equal(snmp_index_rule_decode(idx, len, &type, scope, addr), 0);
	assert_int_equal(type, 2);
	assert_string_equal(scope, "acme");
	assert_string_equal(addr, "192.0.2.0/24");
}

static void
test_encode_refuses_what_does_not_fit(void **state)
{
	unsigned long idx[SNMP_INDEX_RULE_MAX];
	char long_name[80];
	size_t len;

	(void)state;
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(snmp_index_rule_encode(3, "smtp", "10.0.0.1", idx, &len), -1);
	assert_int_equal(snmp_index_rule_encode(1, "", "10.0.0.1", idx, &len), -1);
	assert_int_equal(snmp_index_rule_encode(1, long_name, "10.0.0.1", idx, &len), -1);
	assert_int_equal(snmp_index_rule_encode(1, "smtp", long_name, idx, &len), -1);
	assert_int_equal(snmp_index_rule_encode(1, "sm tp", "10.0.0.1", idx, &len), -1);
}

static void
test_decode_refuses_malformed(void **state)
{
	char scope[SNMP_INDEX_SCOPE_MAX + 1], addr[SNMP_INDEX_ADDR_MAX + 1];
	int type;
	/* type, "a", "1" */
	unsigned long ok[] = { 1, 1, 'a', 1, '1' };
	unsigned long bad_type[] = { 3, 1, 'a', 1, '1' };
	unsigned long past_end[] = { 1, 1, 'a', 5, '1' };
	unsigned long trailing[] = { 1, 1, 'a', 1, '1', 7 };
	unsigned long zero_len[] = { 1, 0, 1, '1' };
	unsigned long control[] = { 1, 1, 10, 1, '1' };
	unsigned long huge[] = { 2, 0xffffffffUL, 'a' };
	unsigned long wide[] = { 2, 1, 0x141, 1, '1' };

	(void)state;
	assert_int_equal(snmp_index_rule_decode(ok, 5, &type, scope, addr), 0);
	assert_int_equal(snmp_index_rule_decode(ok, 0, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(ok, 4, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(bad_type, 5, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(past_end, 5, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(trailing, 6, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(zero_len, 4, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(control, 5, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(huge, 3, &type, scope, addr), -1);
	assert_int_equal(snmp_index_rule_decode(wide, 5, &type, scope, addr), -1);
}

static void
test_patterns_checked_by_the_node_parser(void **state)
{
	(void)state;
	assert_true(snmp_index_pattern_ok("10.0.0.1"));
	assert_true(snmp_index_pattern_ok("192.168.0.*"));
	assert_true(snmp_index_pattern_ok("2001:db8::/32"));
	assert_false(snmp_index_pattern_ok("10.0.0.0/99"));
	assert_false(snmp_index_pattern_ok("10.0.0.1\",\"x"));
	assert_false(snmp_index_pattern_ok("example.org"));
	assert_false(snmp_index_pattern_ok(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_encode_refuses_what_does_not_fit),
		cmocka_unit_test(test_decode_refuses_malformed),
		cmocka_unit_test(test_patterns_checked_by_the_node_parser),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
