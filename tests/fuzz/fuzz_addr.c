/* fuzz_addr: libFuzzer target for node/addr.c. Access rules come from the
 * provisioning API, so the parsers must survive any bytes, and whatever they
 * accept must format and re-parse to the same value and match itself. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

/* Longer than ADDR_STRLEN so the length limit gets exercised too. */
#define FUZZ_MAXLEN	(4 * ADDR_STRLEN)

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static bool
same_addr(const struct addr *a, const struct addr *b)
{
	return a->family == b->family &&
	    memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

static bool
same_pattern(const struct addr_pattern *p, const struct addr_pattern *q)
{
	return p->family == q->family && p->any == q->any &&
	    p->prefix == q->prefix &&
	    memcmp(p->net, q->net, sizeof(p->net)) == 0;
}

static void
fuzz_address(const char *s)
{
	struct sockaddr_storage	 ss;
	struct addr_pattern	 p;
	struct addr		 a, b;
	char			 buf[ADDR_STRLEN], err[128];
	socklen_t		 sl;

	if (addr_parse(s, &a) != 0)
		return;
	check(a.family == AF_INET || a.family == AF_INET6);

	/* format -> parse gives the same address */
	check(addr_format(&a, buf, sizeof(buf)) == 0);
	check(memchr(buf, '\0', sizeof(buf)) != NULL);
	check(addr_parse(buf, &b) == 0);
	check(same_addr(&a, &b));

	/* through a sockaddr and back */
	sl = addr_to_sockaddr(&a, 25, &ss);
	check(sl != 0);
	check(addr_from_sockaddr((struct sockaddr *)&ss, sl, &b) == 0);
	check(same_addr(&a, &b));

	/* every address is also an exact pattern that matches it alone */
	check(addr_pattern_parse(s, &p, err, sizeof(err)) == 0);
	check(!p.any && p.prefix == 128 && p.family == a.family);
	check(addr_pattern_match(&p, &a));
	b = a;
	b.bytes[15] ^= 1;
	check(!addr_pattern_match(&p, &b));
}

static void
fuzz_pattern(const char *s)
{
	struct addr_pattern	 p, q;
	struct addr		 a;
	char			 buf[ADDR_STRLEN], err[128];
	size_t			 i;

	memset(err, 'x', sizeof(err));
	if (addr_pattern_parse(s, &p, err, sizeof(err)) != 0) {
		/* a failure always explains itself on one line */
		check(memchr(err, '\0', sizeof(err)) != NULL);
		check(err[0] != '\0');
		check(strchr(err, '\n') == NULL);
		return;
	}
	check(p.prefix <= 128);
	if (p.any) {
		check(p.family == AF_UNSPEC);
		memset(&a, 0, sizeof(a));
		a.family = AF_INET6;
		check(addr_pattern_match(&p, &a));
		a.family = AF_INET;
		check(addr_pattern_match(&p, &a));
	} else {
		check(p.family == AF_INET || p.family == AF_INET6);
		check(p.family != AF_INET || p.prefix >= 96);
		/* host bits are always cleared */
		for (i = p.prefix; i < 128; i++)
			check((p.net[i / 8] & (0x80u >> (i % 8))) == 0);

		/* the pattern matches its own network address... */
		a.family = p.family;
		memcpy(a.bytes, p.net, sizeof(a.bytes));
		check(addr_pattern_match(&p, &a));
		/* ...and the last address of its range */
		for (i = p.prefix; i < 128; i++)
			a.bytes[i / 8] |= (uint8_t)(0x80u >> (i % 8));
		check(addr_pattern_match(&p, &a));
		/* but never an address of the other family */
		a.family = p.family == AF_INET ? AF_INET6 : AF_INET;
		check(!addr_pattern_match(&p, &a));
		/* nor one that differs inside the prefix */
		if (p.prefix > 0) {
			a.family = p.family;
			memcpy(a.bytes, p.net, sizeof(a.bytes));
			i = p.prefix - 1;
			a.bytes[i / 8] ^= (uint8_t)(0x80u >> (i % 8));
			check(!addr_pattern_match(&p, &a));
		}
	}

	/* format -> parse gives the same pattern */
	check(addr_pattern_format(&p, buf, sizeof(buf)) == 0);
	check(memchr(buf, '\0', sizeof(buf)) != NULL);
	check(addr_pattern_parse(buf, &q, err, sizeof(err)) == 0);
	check(same_pattern(&p, &q));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	 s[FUZZ_MAXLEN + 1];

	if (size > FUZZ_MAXLEN)
		size = FUZZ_MAXLEN;
	if (size > 0)	/* data may be NULL for the empty input */
		memcpy(s, data, size);
	s[size] = '\0';

	fuzz_address(s);
	fuzz_pattern(s);
	return 0;
}
