/* test_access: the access-control engine (node/addrset.c, node/access.c):
 * pattern sets against a linear reference, each mode, wildcards, CIDR,
 * IPv6 and IPv4-mapped peers, per-address concurrency and the per-minute
 * window, exempt addresses, and rules replaced under open connections. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "addrset.h"

static struct addr
A(const char *s)
{
	struct addr a;

	memset(&a, 0, sizeof(a));
	if (addr_parse(s, &a) != 0)
		fail_msg("addr_parse(\"%s\") failed", s);
	return a;
}

static struct addrset *
S(const char *const *p, size_t n)
{
	char err[256];
	struct addrset *s = addrset_compile(p, n, err, sizeof(err));

	if (s == NULL)
		fail_msg("addrset_compile: %s", err);
	return s;
}

static bool
in(const struct addrset *s, const char *a)
{
	struct addr x = A(a);

	return addrset_contains(s, &x);
}

static void
test_set_forms(void **state)
{
	const char *p[] = { "192.168.0.*", "10.*", "172.16.0.1/12", "2001:db8::/32", "::1", "203.0.113.7" };
	struct addrset *s = S(p, 6);

	(void)state;
	assert_true(in(s, "192.168.0.0"));
	assert_true(in(s, "192.168.0.255"));
	assert_false(in(s, "192.168.1.0"));
	assert_true(in(s, "10.255.255.255"));
	assert_false(in(s, "11.0.0.0"));
	/* CIDR ignores host bits: 172.16.0.0 - 172.31.255.255 */
	assert_true(in(s, "172.16.0.0"));
	assert_true(in(s, "172.31.255.255"));
	assert_false(in(s, "172.32.0.0"));
	assert_false(in(s, "172.15.255.255"));
	assert_true(in(s, "2001:db8:ffff::1"));
	assert_false(in(s, "2001:db9::1"));
	assert_true(in(s, "::1"));
	assert_false(in(s, "::2"));
	assert_true(in(s, "203.0.113.7"));
	assert_false(in(s, "203.0.113.8"));
	/* An IPv4-mapped IPv6 peer is its IPv4 address. */
	assert_true(in(s, "::ffff:192.168.0.9"));
	assert_false(in(s, "::ffff:192.168.1.9"));
	addrset_free(s);
}

static void
test_set_any_and_families(void **state)
{
	const char *star[] = { "*" }, *v6all[] = { "::*" }, *slash16[] = { "192.168.0.1/16" };
	struct addrset *s = S(star, 1), *v6 = S(v6all, 1), *b = S(slash16, 1), *empty = S(NULL, 0);

	(void)state;
	assert_true(in(s, "0.0.0.0"));
	assert_true(in(s, "255.255.255.255"));
	assert_true(in(s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_true(in(v6, "2001:db8::5"));
	assert_false(in(v6, "127.0.0.1"));	/* ::* is every IPv6 peer, not IPv4 */
	assert_true(in(b, "192.168.0.0"));
	assert_true(in(b, "192.168.255.255"));
	assert_false(in(b, "192.169.0.0"));
	assert_false(in(empty, "127.0.0.1"));
	assert_int_equal(addrset_ranges(empty), 0);
	addrset_free(s);
	addrset_free(v6);
	addrset_free(b);
	addrset_free(empty);
}

static void
test_set_merges_and_rejects(void **state)
{
	const char *p[] = { "10.0.0.0/25", "10.0.0.128/25", "10.0.0.5", "10.0.1.*", "10.0.3.0/24" };
	const char *bad[] = { "10.0.0.1", "300.1.2.3" };
	char err[256];
	struct addrset *s = S(p, 5);

	(void)state;
	/* 10.0.0.0-10.0.1.255 merge into one range; 10.0.3.0/24 stays apart. */
	assert_int_equal(addrset_ranges(s), 2);
	assert_true(in(s, "10.0.1.200"));
	assert_false(in(s, "10.0.2.0"));
	assert_true(in(s, "10.0.3.3"));
	addrset_free(s);
	assert_null(addrset_compile(bad, 2, err, sizeof(err)));
	assert_non_null(strstr(err, "address 1 (300.1.2.3)"));
}

/* Tens of thousands of random rules agree with the linear matcher. */
static void
test_set_matches_linear_reference(void **state)
{
	enum { N = 20000, PROBES = 20000 };
	char (*text)[64] = calloc(N, sizeof(*text));
	const char **p = calloc(N, sizeof(*p));
	struct addr_pattern *pat = calloc(N, sizeof(*pat));
	struct addrset *s;
	char err[128];
	size_t i, j;

	(void)state;
	assert_non_null(text);
	srandom(7);
	for (i = 0; i < N; i++) {
		long r = random();

		if (i % 3 == 0)
			snprintf(text[i], 64, "2001:db8:%lx::/%ld", r & 0xffff, 32 + r % 97);
		else
			snprintf(text[i], 64, "%ld.%ld.%ld.0/%ld", r % 256, (r >> 8) % 256, (r >> 16) % 256,
			    8 + (r >> 24) % 25);
		p[i] = text[i];
		assert_int_equal(addr_pattern_parse(text[i], &pat[i], err, sizeof(err)), 0);
	}
	s = S(p, N);
	for (j = 0; j < PROBES; j++) {
		char a[64];
		long r = random();
		struct addr x;
		bool ref = false;

		if (j % 3 == 0)
			snprintf(a, sizeof(a), "2001:db8:%lx::%lx", r & 0xffff, (r >> 16) & 0xffff);
		else
			snprintf(a, sizeof(a), "%ld.%ld.%ld.%ld", r % 256, (r >> 8) % 256, (r >> 16) % 256,
			    (r >> 24) % 256);
		x = A(a);
		for (i = 0; i < N && !ref; i++)
			ref = addr_pattern_match(&pat[i], &x);
		if (addrset_contains(s, &x) != ref)
			fail_msg("%s: set says %d, patterns say %d", a, !ref, ref);
	}
	addrset_free(s);
	free(text);
	free(p);
	free(pat);
}

static struct access_scope *
scope_with(const char *access, const char *conns)
{
	char err[256];
	struct access_scope *s = access_scope_new("t");
	struct access_rules *r = access_rules_compile(access, conns, err, sizeof(err));

	if (r == NULL)
		fail_msg("access_rules_compile: %s", err);
	access_scope_set_rules(s, r);
	return s;
}

static enum access_verdict
admit(struct access_scope *s, const char *a, uint64_t now, struct access_hold *h)
{
	struct addr x = A(a);

	return access_admit(s, &x, now, h);
}

static void
test_modes(void **state)
{
	struct access_scope *deny = scope_with("{\"mode\":\"deny-listed\",\"addresses\":[\"127.0.0.2\",\"::1\"]}", NULL);
	struct access_scope *allow = scope_with("{\"mode\":\"allow-listed\",\"addresses\":[\"127.0.0.*\"]}", NULL);
	struct access_scope *open = scope_with("{\"mode\":\"open\",\"addresses\":[\"127.0.0.2\"]}", NULL);
	struct access_hold h;
	struct access_counts c;

	(void)state;
	assert_int_equal(admit(deny, "127.0.0.2", 0, &h), ACCESS_DENIED);
	assert_null(h.scope);
	assert_int_equal(admit(deny, "::1", 0, &h), ACCESS_DENIED);
	assert_int_equal(admit(deny, "127.0.0.3", 0, &h), ACCESS_OK);
	access_release(&h);
	assert_int_equal(admit(allow, "127.0.0.9", 0, &h), ACCESS_OK);
	access_release(&h);
	assert_int_equal(admit(allow, "127.0.1.1", 0, &h), ACCESS_DENIED);
	/* open ignores its list */
	assert_int_equal(admit(open, "127.0.0.2", 0, &h), ACCESS_OK);
	access_release(&h);
	access_scope_counts(deny, &c);
	assert_int_equal(c.rejected_access, 2);
	assert_int_equal(c.accepted, 1);
	assert_int_equal(c.current, 0);
	access_scope_unref(deny);
	access_scope_unref(allow);
	access_scope_unref(open);
}

static void
test_bad_rules(void **state)
{
	char err[256];

	(void)state;
	assert_null(access_rules_compile("{\"mode\":\"sometimes\"}", NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "sometimes"));
	assert_null(access_rules_compile(NULL, "{\"exempt\":[\"not-an-ip\"]}", err, sizeof(err)));
	assert_non_null(strstr(err, "connections.exempt"));
	assert_null(access_rules_compile(NULL, "{\"maxConcurrent\":-1}", err, sizeof(err)));
}

static void
test_max_concurrent_per_address(void **state)
{
	struct access_scope *s = scope_with(NULL, "{\"maxConcurrent\":2,\"exempt\":[\"127.0.0.9\"]}");
	struct access_hold h[6];
	struct access_counts c;
	int i;

	(void)state;
	assert_int_equal(admit(s, "127.0.0.1", 0, &h[0]), ACCESS_OK);
	assert_int_equal(admit(s, "127.0.0.1", 0, &h[1]), ACCESS_OK);
	assert_int_equal(admit(s, "127.0.0.1", 0, &h[2]), ACCESS_LIMITED);
	/* another address has its own count; an exempt one has none */
	assert_int_equal(admit(s, "127.0.0.2", 0, &h[2]), ACCESS_OK);
	for (i = 3; i < 6; i++)
		assert_int_equal(admit(s, "127.0.0.9", 0, &h[i]), ACCESS_OK);
	access_release(&h[0]);
	assert_int_equal(admit(s, "127.0.0.1", 1, &h[0]), ACCESS_OK);
	access_scope_counts(s, &c);
	assert_int_equal(c.current, 6);
	assert_int_equal(c.rejected_limit, 1);
	for (i = 0; i < 6; i++)
		access_release(&h[i]);
	access_scope_counts(s, &c);
	assert_int_equal(c.current, 0);
	access_scope_unref(s);
}

static void
test_per_minute_window(void **state)
{
	struct access_scope *s = scope_with(NULL, "{\"perIpPerMinute\":3}");
	struct access_hold h;
	int i;

	(void)state;
	/* minute [600, 660): three, then refused */
	for (i = 0; i < 3; i++) {
		assert_int_equal(admit(s, "192.0.2.1", 600 + i, &h), ACCESS_OK);
		access_release(&h);
	}
	assert_int_equal(admit(s, "192.0.2.1", 630, &h), ACCESS_LIMITED);
	assert_int_equal(admit(s, "192.0.2.2", 630, &h), ACCESS_OK);
	access_release(&h);
	/* At 660 the whole previous minute is still inside the window. */
	assert_int_equal(admit(s, "192.0.2.1", 660, &h), ACCESS_LIMITED);
	/* At 700 it weighs 20/60 of 3 = 1: two more fit, not three. */
	assert_int_equal(admit(s, "192.0.2.1", 700, &h), ACCESS_OK);
	access_release(&h);
	assert_int_equal(admit(s, "192.0.2.1", 700, &h), ACCESS_OK);
	access_release(&h);
	assert_int_equal(admit(s, "192.0.2.1", 700, &h), ACCESS_LIMITED);
	/* Two idle minutes later the address starts afresh. */
	for (i = 0; i < 3; i++) {
		assert_int_equal(admit(s, "192.0.2.1", 900, &h), ACCESS_OK);
		access_release(&h);
	}
	access_scope_unref(s);
}

/* A flood from many addresses does not keep memory: stale entries go. */
static void
test_table_forgets_stale_addresses(void **state)
{
	struct access_scope *s = scope_with(NULL, "{\"perIpPerMinute\":1}");
	struct access_hold h;
	char a[32];
	int i;

	(void)state;
	for (i = 0; i < 5000; i++) {
		snprintf(a, sizeof(a), "10.0.%d.%d", i / 256, i % 256);
		assert_int_equal(admit(s, a, 60, &h), ACCESS_OK);
		access_release(&h);
	}
	/* Much later, the same addresses are welcome again. */
	for (i = 0; i < 5000; i++) {
		snprintf(a, sizeof(a), "10.0.%d.%d", i / 256, i % 256);
		assert_int_equal(admit(s, a, 6000, &h), ACCESS_OK);
		access_release(&h);
	}
	assert_int_equal(admit(s, "10.0.0.0", 6001, &h), ACCESS_LIMITED);
	access_scope_unref(s);
}

static void
test_rules_replaced_under_open_connections(void **state)
{
	struct access_scope *s = scope_with(NULL, "{\"maxConcurrent\":1}");
	struct access_hold h, h2;
	char err[256];
	struct access_counts c;

	(void)state;
	assert_int_equal(admit(s, "198.51.100.1", 0, &h), ACCESS_OK);
	access_scope_set_rules(s, access_rules_compile("{\"mode\":\"deny-listed\",\"addresses\":[\"198.51.100.0/24\"]}",
	    NULL, err, sizeof(err)));
	assert_int_equal(admit(s, "198.51.100.2", 0, &h2), ACCESS_DENIED);
	/* The open connection ends normally under the new rules. */
	access_release(&h);
	access_scope_counts(s, &c);
	assert_int_equal(c.current, 0);
	access_scope_set_rules(s, NULL);
	assert_int_equal(admit(s, "198.51.100.2", 0, &h2), ACCESS_OK);
	access_release(&h2);
	access_scope_unref(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_forms),
		cmocka_unit_test(test_set_any_and_families),
		cmocka_unit_test(test_set_merges_and_rejects),
		cmocka_unit_test(test_set_matches_linear_reference),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_bad_rules),
		cmocka_unit_test(test_max_concurrent_per_address),
		cmocka_unit_test(test_per_minute_window),
		cmocka_unit_test(test_table_forgets_stale_addresses),
		cmocka_unit_test(test_rules_replaced_under_open_connections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
