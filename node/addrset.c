/* addrset: patterns become [lo, hi] ranges per family, sorted and merged
 * once at compile time; membership is a binary search. IPv4 ranges are
 * kept on 32 bits, IPv6 ranges on 128 bits as two 64-bit halves. */
#include "addrset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct u128 {
	uint64_t hi, lo;
};

struct range4 {
	uint32_t lo, hi;
};

struct range6 {
	struct u128 lo, hi;
};

struct addrset {
	struct range4	*v4;
	size_t		 n4;
	struct range6	*v6;
	size_t		 n6;
};

static uint32_t
load32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint64_t
load64(const uint8_t *b)
{
	return (uint64_t)load32(b) << 32 | load32(b + 4);
}

static int
cmp128(struct u128 a, struct u128 b)
{
	if (a.hi != b.hi)
		return a.hi < b.hi ? -1 : 1;
	if (a.lo != b.lo)
		return a.lo < b.lo ? -1 : 1;
	return 0;
}

/* a + 1 would not overflow and equals b: the ranges touch. */
static bool
next128(struct u128 a, struct u128 b)
{
	struct u128 n = a;

	if (++n.lo == 0) {
		if (++n.hi == 0)
			return false;
	}
	return cmp128(n, b) == 0;
}

static int
cmp_range4(const void *a, const void *b)
{
	const struct range4 *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int
cmp_range6(const void *a, const void *b)
{
	const struct range6 *x = a, *y = b;

	return cmp128(x->lo, y->lo);
}

static void
add_range4(struct addrset *s, uint32_t net, unsigned bits)
{
	uint32_t mask = bits == 0 ? 0 : UINT32_MAX << (32 - bits);

	s->v4[s->n4].lo = net & mask;
	s->v4[s->n4].hi = (net & mask) | ~mask;
	s->n4++;
}

static void
add_range6(struct addrset *s, const uint8_t net[16], unsigned bits)
{
	struct u128 v = { load64(net), load64(net + 8) }, m;

	if (bits == 0)
		m = (struct u128){ 0, 0 };
	else if (bits <= 64)
		m = (struct u128){ UINT64_MAX << (64 - bits), 0 };
	else if (bits < 128)
		m = (struct u128){ UINT64_MAX, UINT64_MAX << (128 - bits) };
	else
		m = (struct u128){ UINT64_MAX, UINT64_MAX };
	s->v6[s->n6].lo = (struct u128){ v.hi & m.hi, v.lo & m.lo };
	s->v6[s->n6].hi = (struct u128){ (v.hi & m.hi) | ~m.hi, (v.lo & m.lo) | ~m.lo };
	s->n6++;
}

static void
merge4(struct addrset *s)
{
	size_t i, o = 0;

	if (s->n4 == 0)
		return;
	qsort(s->v4, s->n4, sizeof(*s->v4), cmp_range4);
	for (i = 1; i < s->n4; i++) {
		struct range4 *cur = &s->v4[o];

		if (s->v4[i].lo <= cur->hi || (cur->hi != UINT32_MAX && s->v4[i].lo == cur->hi + 1)) {
			if (s->v4[i].hi > cur->hi)
				cur->hi = s->v4[i].hi;
		} else
			s->v4[++o] = s->v4[i];
	}
	s->n4 = o + 1;
}

static void
merge6(struct addrset *s)
{
	size_t i, o = 0;

	if (s->n6 == 0)
		return;
	qsort(s->v6, s->n6, sizeof(*s->v6), cmp_range6);
	for (i = 1; i < s->n6; i++) {
		struct range6 *cur = &s->v6[o];

		if (cmp128(s->v6[i].lo, cur->hi) <= 0 || next128(cur->hi, s->v6[i].lo)) {
			if (cmp128(s->v6[i].hi, cur->hi) > 0)
				cur->hi = s->v6[i].hi;
		} else
			s->v6[++o] = s->v6[i];
	}
	s->n6 = o + 1;
}

struct addrset *
addrset_compile(const char *const *patterns, size_t n, char *err, size_t errlen)
{
	struct addrset *s;
	size_t i;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto nomem;
	/* "*" adds one range to each family: room for two per pattern is
	 * more than enough, and n is bounded by the schema. */
	if (n > 0 && ((s->v4 = calloc(n, sizeof(*s->v4))) == NULL ||
	    (s->v6 = calloc(n, sizeof(*s->v6))) == NULL))
		goto nomem;
	for (i = 0; i < n; i++) {
		struct addr_pattern p;
		char why[128];

		if (addr_pattern_parse(patterns[i], &p, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "address %zu (%s): %s", i, patterns[i], why);
			goto fail;
		}
		if (p.any) {
			static const uint8_t zero[16];

			add_range4(s, 0, 0);
			add_range6(s, zero, 0);
		} else if (p.family == AF_INET)
			add_range4(s, load32(p.net + 12), p.prefix > 96 ? p.prefix - 96 : 0);
		else
			add_range6(s, p.net, p.prefix);
	}
	merge4(s);
	merge6(s);
	return s;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	addrset_free(s);
	return NULL;
}

void
addrset_free(struct addrset *s)
{
	if (s == NULL)
		return;
	free(s->v4);
	free(s->v6);
	free(s);
}

bool
addrset_contains(const struct addrset *s, const struct addr *a)
{
	size_t lo = 0, hi;

	if (s == NULL || a == NULL)
		return false;
	if (a->family == AF_INET) {
		uint32_t x = load32(a->bytes + 12);

		hi = s->n4;
		while (lo < hi) {	/* first range with lo > x */
			size_t mid = lo + (hi - lo) / 2;

			if (s->v4[mid].lo <= x)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo > 0 && x <= s->v4[lo - 1].hi;
	}
	if (a->family == AF_INET6) {
		struct u128 x = { load64(a->bytes), load64(a->bytes + 8) };

		hi = s->n6;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (cmp128(s->v6[mid].lo, x) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo > 0 && cmp128(x, s->v6[lo - 1].hi) <= 0;
	}
	return false;
}

size_t
addrset_ranges(const struct addrset *s)
{
	return s ? s->n4 + s->n6 : 0;
}
