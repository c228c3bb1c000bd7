/* test_addr: unit tests for node/addr.c, the address and access-rule
 * pattern parser/matcher behind service and tenant access control. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"

/* Parse s as an address or fail the test. */
static struct addr
A(const char *s)
{
	struct addr	 a;

	memset(&a, 0, sizeof(a));
	if (addr_parse(s, &a) != 0)
		fail_msg("addr_parse(\"%s\") failed", s);
	return a;
}

/* Parse s as a pattern or fail the test with the parser's reason. */
static struct addr_pattern
P(const char *s)
{
	struct addr_pattern	 p;
	char			 err[128];

	memset(&p, 0, sizeof(p));
	if (addr_pattern_parse(s, &p, err, sizeof(err)) != 0)
		fail_msg("addr_pattern_parse(\"%s\") failed: %s", s, err);
	return p;
}

static bool
matches(const char *pattern, const char *addr)
{
	struct addr_pattern	 p = P(pattern);
	struct addr		 a = A(addr);

	return addr_pattern_match(&p, &a);
}

/* The pattern must be rejected with a reason that contains want. */
static void
assert_reject(const char *s, const char *want)
{
	struct addr_pattern	 p;
	char			 err[128];

	memset(err, 'x', sizeof(err));
	if (addr_pattern_parse(s, &p, err, sizeof(err)) != -1)
		fail_msg("pattern \"%s\" was accepted", s);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	assert_true(strlen(err) > 0);
	assert_null(strchr(err, '\n'));
	if (strstr(err, want) == NULL)
		fail_msg("pattern \"%s\": reason \"%s\" lacks \"%s\"", s, err,
		    want);
}

static void
assert_fmt(const struct addr *a, const char *want)
{
	char	 buf[ADDR_STRLEN];

	assert_int_equal(addr_format(a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
}

static void
assert_pfmt(const char *pattern, const char *want)
{
	struct addr_pattern	 p = P(pattern), q;
	char			 buf[ADDR_STRLEN], err[128];

	assert_int_equal(addr_pattern_format(&p, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	/* the canonical form parses back to the same pattern */
	assert_int_equal(addr_pattern_parse(buf, &q, err, sizeof(err)), 0);
	assert_int_equal(q.family, p.family);
	assert_int_equal(q.any, p.any);
	assert_int_equal(q.prefix, p.prefix);
	assert_memory_equal(q.net, p.net, sizeof(p.net));
}

static void
test_parse_ipv4(void **state)
{
	static const uint8_t want[16] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1
	};
	struct addr	 a;

	(void)state;
	a = A("192.0.2.1");
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, want, 16);
	a = A("0.0.0.0");
	assert_int_equal(a.family, AF_INET);
	a = A("255.255.255.255");
	assert_int_equal(a.bytes[15], 255);

	assert_int_equal(addr_parse("300.1.1.1", &a), -1);
	assert_int_equal(addr_parse("1.2.3", &a), -1);
	assert_int_equal(addr_parse("1.2.3.4.5", &a), -1);
	assert_int_equal(addr_parse("1.2.3.4x", &a), -1);
	assert_int_equal(addr_parse(" 1.2.3.4", &a), -1);
	assert_int_equal(addr_parse("1.2.3.4 ", &a), -1);
	assert_int_equal(addr_parse("[1.2.3.4]", &a), -1);
	assert_int_equal(addr_parse("", &a), -1);
	assert_int_equal(addr_parse(NULL, &a), -1);
	assert_int_equal(addr_parse("192.168.0.*", &a), -1);
	assert_int_equal(addr_parse("1.2.3.4/32", &a), -1);
}

static void
test_parse_ipv6(void **state)
{
	static const uint8_t want[16] = {
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
	};
	struct addr	 a;

	(void)state;
	a = A("2001:db8::1");
	assert_int_equal(a.family, AF_INET6);
	assert_memory_equal(a.bytes, want, 16);
	a = A("[2001:db8::1]");
	assert_int_equal(a.family, AF_INET6);
	assert_memory_equal(a.bytes, want, 16);
	a = A("2001:0DB8:0000:0000:0000:0000:0000:0001");
	assert_memory_equal(a.bytes, want, 16);
	a = A("::");
	assert_int_equal(a.family, AF_INET6);
	a = A("::1");
	assert_int_equal(a.bytes[15], 1);

	assert_int_equal(addr_parse("[2001:db8::1", &a), -1);
	assert_int_equal(addr_parse("2001:db8::1]", &a), -1);
	assert_int_equal(addr_parse("[]", &a), -1);
	assert_int_equal(addr_parse("[", &a), -1);
	assert_int_equal(addr_parse("2001:db8:::1", &a), -1);
	assert_int_equal(addr_parse("2001:db8::1::2", &a), -1);
	assert_int_equal(addr_parse("12345::", &a), -1);
	assert_int_equal(addr_parse("fe80::1%eth0", &a), -1);
	assert_int_equal(addr_parse("::1 ", &a), -1);
}

static void
test_parse_v4mapped(void **state)
{
	struct addr	 a, b;

	(void)state;
	a = A("::ffff:192.0.2.1");
	b = A("192.0.2.1");
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, b.bytes, 16);
	a = A("[::ffff:c000:201]");
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, b.bytes, 16);
	assert_fmt(&a, "192.0.2.1");

	assert_true(matches("192.0.2.0/24", "::ffff:192.0.2.1"));
	assert_true(matches("192.0.2.*", "::ffff:192.0.2.1"));
	assert_true(matches("192.0.2.1", "::ffff:192.0.2.1"));
	assert_true(matches("::ffff:192.0.2.1", "192.0.2.1"));
	assert_false(matches("::*", "::ffff:192.0.2.1"));
	/* IPv4-compatible (deprecated) addresses are plain IPv6 */
	a = A("::192.0.2.1");
	assert_int_equal(a.family, AF_INET6);
	assert_false(matches("192.0.2.0/24", "::192.0.2.1"));
}

static void
test_too_long(void **state)
{
	char		 s[200];
	struct addr	 a;

	(void)state;
	/* 63 characters is the longest accepted; pad a valid address */
	memset(s, 0, sizeof(s));
	memcpy(s, "0000:0000:0000:0000:0000:0000:0000:0001", 39);
	assert_int_equal(addr_parse(s, &a), 0);
	memset(s, '1', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(addr_parse(s, &a), -1);
	assert_reject(s, "too long");
	/* one below the bound is judged on content, at the bound on length */
	memset(s, 0, sizeof(s));
	memset(s, '1', ADDR_STRLEN - 1);
	assert_reject(s, "invalid IPv4");
	s[ADDR_STRLEN - 1] = '1';
	assert_reject(s, "too long");
	memset(s, 0, sizeof(s));
	memset(s, '0', ADDR_STRLEN);
	memcpy(s + ADDR_STRLEN, ".1", 2);
	assert_reject(s, "too long");
}

static void
test_exact(void **state)
{
	struct addr_pattern	 p;

	(void)state;
	p = P("192.0.2.1");
	assert_int_equal(p.family, AF_INET);
	assert_false(p.any);
	assert_int_equal(p.prefix, 128);
	assert_true(matches("192.0.2.1", "192.0.2.1"));
	assert_false(matches("192.0.2.1", "192.0.2.2"));
	assert_false(matches("192.0.2.1", "::ffff:192.0.2.2"));
	assert_false(matches("192.0.2.1", "2001:db8::1"));

	p = P("2001:db8::1");
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(p.prefix, 128);
	assert_true(matches("2001:db8::1", "2001:db8::1"));
	assert_true(matches("[2001:db8::1]", "2001:db8:0::1"));
	assert_false(matches("2001:db8::1", "2001:db8::2"));
	assert_false(matches("::", "0.0.0.0"));
	assert_false(matches("0.0.0.0", "::"));
}

static void
test_wildcard_v4(void **state)
{
	struct addr_pattern	 p, q;

	(void)state;
	p = P("192.168.0.*");
	q = P("192.168.0.0/24");
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.prefix, q.prefix);
	assert_memory_equal(p.net, q.net, 16);
	assert_true(matches("192.168.0.*", "192.168.0.0"));
	assert_true(matches("192.168.0.*", "192.168.0.255"));
	assert_false(matches("192.168.0.*", "192.168.1.0"));
	assert_false(matches("192.168.0.*", "::ffff:c0a8:100"));

	p = P("192.*");
	q = P("192.0.0.0/8");
	assert_int_equal(p.prefix, q.prefix);
	assert_memory_equal(p.net, q.net, 16);
	assert_true(matches("192.*", "192.255.255.255"));
	assert_false(matches("192.*", "193.0.0.0"));
	assert_false(matches("192.*", "191.255.255.255"));

	p = P("10.1.*.*");
	q = P("10.1.0.0/16");
	assert_int_equal(p.prefix, q.prefix);
	assert_memory_equal(p.net, q.net, 16);
	p = P("10.1.*");
	assert_int_equal(p.prefix, q.prefix);
	assert_true(matches("10.1.*.*", "10.1.200.3"));
	assert_false(matches("10.1.*.*", "10.2.0.0"));

	p = P("*.*.*.*");
	q = P("0.0.0.0/0");
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.prefix, q.prefix);
	assert_true(matches("*.*.*.*", "1.2.3.4"));
	assert_false(matches("*.*.*.*", "::1"));
	assert_true(matches("1.2.3.*", "1.2.3.4"));
}

static void
test_wildcard_v6(void **state)
{
	struct addr_pattern	 p, q;

	(void)state;
	p = P("::*");
	assert_int_equal(p.family, AF_INET6);
	assert_false(p.any);
	assert_int_equal(p.prefix, 0);
	assert_true(matches("::*", "::"));
	assert_true(matches("::*", "::1"));
	assert_true(matches("::*", "2001:db8::1"));
	assert_true(matches("::*", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_true(matches("::*", "::ffff:0:1:2"));
	assert_false(matches("::*", "0.0.0.0"));
	assert_false(matches("::*", "192.0.2.1"));
	assert_false(matches("::*", "255.255.255.255"));

	p = P("2001:db8:*");
	q = P("2001:db8::/32");
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(p.prefix, 32);
	assert_int_equal(p.prefix, q.prefix);
	assert_memory_equal(p.net, q.net, 16);
	assert_true(matches("2001:db8:*", "2001:db8::"));
	assert_true(matches("2001:db8:*", "2001:db8:ffff:1::7"));
	assert_false(matches("2001:db8:*", "2001:db9::"));
	assert_false(matches("2001:db8:*", "2001:db7:ffff::"));

	p = P("2001:db8:*:*:*:*:*:*");
	assert_int_equal(p.prefix, 32);
	p = P("fe80:0:0:0:0:0:0:*");
	assert_int_equal(p.prefix, 112);
	assert_true(matches("fe80:0:0:0:0:0:0:*", "fe80::ab"));
	assert_false(matches("fe80:0:0:0:0:0:0:*", "fe80::1:0"));
	p = P("*:*");
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(p.prefix, 0);
	/* the mapped range written as a wildcard is "every IPv4 address" */
	p = P("0:0:0:0:0:ffff:*");
	assert_int_equal(p.family, AF_INET);
	assert_true(matches("0:0:0:0:0:ffff:*", "203.0.113.9"));
}

static void
test_any(void **state)
{
	struct addr_pattern	 p;

	(void)state;
	p = P("*");
	assert_true(p.any);
	assert_int_equal(p.family, AF_UNSPEC);
	assert_true(matches("*", "0.0.0.0"));
	assert_true(matches("*", "192.0.2.1"));
	assert_true(matches("*", "::"));
	assert_true(matches("*", "2001:db8::1"));
	assert_true(matches("*", "::ffff:192.0.2.1"));
}

static void
test_cidr_v4(void **state)
{
	struct addr_pattern	 p;
	static const uint8_t	 net[16] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 0
	};

	(void)state;
	p = P("192.168.0.1/16");
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.prefix, 96 + 16);
	assert_memory_equal(p.net, net, 16);	/* host bits dropped */
	assert_true(matches("192.168.0.1/16", "192.168.0.0"));
	assert_true(matches("192.168.0.1/16", "192.168.0.1"));
	assert_true(matches("192.168.0.1/16", "192.168.255.255"));
	assert_false(matches("192.168.0.1/16", "192.169.0.0"));
	assert_false(matches("192.168.0.1/16", "192.167.255.255"));

	/* a prefix that does not end on a byte boundary */
	assert_true(matches("10.0.0.0/9", "10.127.255.255"));
	assert_false(matches("10.0.0.0/9", "10.128.0.0"));
	assert_true(matches("10.255.0.0/9", "10.128.0.0"));
	assert_true(matches("192.0.2.129/25", "192.0.2.255"));
	assert_false(matches("192.0.2.129/25", "192.0.2.127"));
	assert_true(matches("172.16.0.0/12", "172.31.255.255"));
	assert_false(matches("172.16.0.0/12", "172.32.0.0"));

	/* edges */
	p = P("1.2.3.4/0");
	assert_int_equal(p.prefix, 96);
	assert_true(matches("1.2.3.4/0", "0.0.0.0"));
	assert_true(matches("1.2.3.4/0", "255.255.255.255"));
	assert_false(matches("0.0.0.0/0", "::"));
	assert_false(matches("0.0.0.0/0", "2001:db8::1"));
	p = P("1.2.3.4/32");
	assert_int_equal(p.prefix, 128);
	assert_true(matches("1.2.3.4/32", "1.2.3.4"));
	assert_false(matches("1.2.3.4/32", "1.2.3.5"));
	assert_true(matches("1.2.3.4/31", "1.2.3.5"));
	assert_false(matches("1.2.3.4/31", "1.2.3.6"));
	assert_true(matches("128.0.0.0/1", "255.0.0.1"));
	assert_false(matches("128.0.0.0/1", "127.255.255.255"));

	/* IPv6 spelling of an IPv4 network counts IPv6 bits */
	p = P("::ffff:192.0.2.0/120");
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.prefix, 96 + 24);
	assert_true(matches("::ffff:192.0.2.0/120", "192.0.2.200"));
}

static void
test_cidr_v6(void **state)
{
	struct addr_pattern	 p;

	(void)state;
	p = P("2001:db8::1/32");
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(p.prefix, 32);
	assert_true(matches("2001:db8::/32", "2001:db8::"));
	assert_true(matches("2001:db8::/32",
	    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_false(matches("2001:db8::/32", "2001:db9::"));
	assert_true(matches("[2001:db8::]/48", "2001:db8:0:ffff::1"));
	assert_false(matches("[2001:db8::]/48", "2001:db8:1::1"));
	assert_true(matches("fe80::/10", "febf::1"));
	assert_false(matches("fe80::/10", "fec0::1"));
	assert_true(matches("2001:db8::/127", "2001:db8::1"));
	assert_false(matches("2001:db8::/127", "2001:db8::2"));

	p = P("2001:db8::1/0");
	assert_int_equal(p.prefix, 0);
	assert_true(matches("::/0", "::"));
	assert_true(matches("::/0", "ffff::"));
	assert_false(matches("::/0", "1.2.3.4"));
	p = P("2001:db8::1/128");
	assert_int_equal(p.prefix, 128);
	assert_true(matches("2001:db8::1/128", "2001:db8::1"));
	assert_false(matches("2001:db8::1/128", "2001:db8::"));
	/* an IPv6 range wider than ::ffff:0:0/96 stays IPv6-only, like ::* */
	p = P("::ffff:0:0/95");
	assert_int_equal(p.family, AF_INET6);
	assert_false(matches("::ffff:0:0/95", "1.2.3.4"));
	assert_true(matches("::ffff:0:0/95", "::fffe:1:2"));
}

static void
test_reject(void **state)
{
	struct addr_pattern	 p;

	(void)state;
	assert_reject("", "empty");
	assert_int_equal(addr_pattern_parse(NULL, &p, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_reject("192.168.*.1", "trailing");
	assert_reject("*.1", "trailing");
	assert_reject("2001:*:1", "trailing");
	assert_reject("192.168.0.1*", "whole part");
	assert_reject("19*", "whole part");
	assert_reject("**", "whole part");
	assert_reject("300.1.1.1", "invalid IPv4");
	assert_reject("256.0.0.0", "invalid IPv4");
	assert_reject("1.2.3", "invalid IPv4");
	assert_reject("1.2.3.4.5", "invalid IPv4");
	assert_reject("300.*", "0-255");
	assert_reject("1.2.3.4.*", "more than 4");
	assert_reject("1..*", "empty");
	assert_reject("1.2.3.4/33", "0 to 32");
	assert_reject("1.2.3.4/1000", "0 to 32");
	assert_reject("::1/129", "0 to 128");
	assert_reject("::1/99999999999999999999", "0 to 128");
	assert_reject("1.2.3.4x", "invalid IPv4");
	assert_reject("1.2.3.4 ", "invalid IPv4");
	assert_reject("1.2.3.4/24x", "prefix length");
	assert_reject("1.2.3.4/-1", "prefix length");
	assert_reject("1.2.3.4/+1", "prefix length");
	assert_reject("1.2.3.4/8/8", "prefix length");
	assert_reject("::1x", "invalid IPv6");
	assert_reject("1.2.3.4/", "missing prefix length");
	assert_reject("::/", "missing prefix length");
	assert_reject("/8", "missing address");
	assert_reject("/", "missing address");
	assert_reject("192.168.*/16", "cannot be combined");
	assert_reject("2001:db8::*", "'::'");
	assert_reject("::ffff:1.2.*", "embedded IPv4");
	assert_reject("[2001:db8:*]", "brackets");
	assert_reject("[1.2.3.4]", "brackets");
	assert_reject("[::1", "brackets");
	assert_reject("2001:db8:12345:*", "hex");
	assert_reject("1:2:3:4:5:6:7:8:*", "more than 8");
	assert_reject(":1:*", "empty group");
	assert_reject("* ", "whole part");

	/* err may be omitted or tiny; a one-byte buffer still gets its NUL */
	assert_int_equal(addr_pattern_parse("bogus", &p, NULL, 0), -1);
	{
		char	 e[1] = { 'x' };

		assert_int_equal(addr_pattern_parse("bogus", &p, e, 1), -1);
		assert_int_equal(e[0], '\0');
	}
}

static void
test_format(void **state)
{
	struct addr	 a;
	char		 small[8];

	(void)state;
	a = A("192.0.2.1");
	assert_fmt(&a, "192.0.2.1");
	a = A("2001:0db8:0000:0000:0000:0000:0000:0001");
	assert_fmt(&a, "2001:db8::1");
	a = A("[::1]");
	assert_fmt(&a, "::1");
	a = A("::ffff:10.0.0.1");
	assert_fmt(&a, "10.0.0.1");

	assert_int_equal(addr_format(&a, small, 4), -1);
	a = A("2001:db8::1");
	assert_int_equal(addr_format(&a, small, sizeof(small)), -1);
	a.family = AF_UNIX;
	assert_int_equal(addr_format(&a, small, sizeof(small)), -1);

	assert_pfmt("*", "*");
	assert_pfmt("192.0.2.1", "192.0.2.1");
	assert_pfmt("192.0.2.1/32", "192.0.2.1");
	assert_pfmt("192.168.0.1/16", "192.168.0.0/16");
	assert_pfmt("192.168.0.*", "192.168.0.0/24");
	assert_pfmt("192.*", "192.0.0.0/8");
	assert_pfmt("10.1.*.*", "10.1.0.0/16");
	assert_pfmt("*.*.*.*", "0.0.0.0/0");
	assert_pfmt("0.0.0.0/0", "0.0.0.0/0");
	assert_pfmt("::*", "::/0");
	assert_pfmt("2001:db8:*", "2001:db8::/32");
	assert_pfmt("2001:DB8::7/32", "2001:db8::/32");
	assert_pfmt("[2001:db8::1]", "2001:db8::1");
	assert_pfmt("2001:db8::1/128", "2001:db8::1");
	assert_pfmt("fe80::1/10", "fe80::/10");
	assert_pfmt("::ffff:192.0.2.1", "192.0.2.1");
	assert_pfmt("::ffff:192.0.2.0/120", "192.0.2.0/24");
	assert_pfmt("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");

	{
		struct addr_pattern	 p = P("192.168.0.0/16");

		assert_int_equal(addr_pattern_format(&p, small,
		    sizeof(small)), -1);
		assert_int_equal(errno, ENOSPC);
		p.prefix = 10;	/* an IPv4 pattern cannot be this short */
		assert_int_equal(addr_pattern_format(&p, small,
		    sizeof(small)), -1);
	}
}

static void
test_sockaddr_v4(void **state)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	 sin;
	struct addr		 a = A("192.0.2.1"), b;
	socklen_t		 len;

	(void)state;
	len = addr_to_sockaddr(&a, 2525, &ss);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	memcpy(&sin, &ss, sizeof(sin));
	assert_int_equal(sin.sin_family, AF_INET);
	assert_int_equal(ntohs(sin.sin_port), 2525);
	assert_int_equal(ntohl(sin.sin_addr.s_addr), 0xc0000201);

	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, len, &b),
	    0);
	assert_int_equal(b.family, AF_INET);
	assert_memory_equal(a.bytes, b.bytes, 16);

	/* too short for its family */
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss,
	    len - 1, &b), -1);
	assert_int_equal(addr_from_sockaddr(NULL, len, &b), -1);
}

static void
test_sockaddr_v6(void **state)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in6	 sin6;
	struct sockaddr		 un;
	struct addr		 a = A("2001:db8::1"), b, bad;
	socklen_t		 len;

	(void)state;
	len = addr_to_sockaddr(&a, 993, &ss);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	memcpy(&sin6, &ss, sizeof(sin6));
	assert_int_equal(sin6.sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6.sin6_port), 993);
	assert_memory_equal(sin6.sin6_addr.s6_addr, a.bytes, 16);

	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, len, &b),
	    0);
	assert_int_equal(b.family, AF_INET6);
	assert_memory_equal(a.bytes, b.bytes, 16);
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss,
	    len - 1, &b), -1);

	/* a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d */
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(25);
	assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.7",
	    &sin6.sin6_addr), 1);
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin6,
	    sizeof(sin6), &b), 0);
	assert_int_equal(b.family, AF_INET);
	a = A("198.51.100.7");
	assert_memory_equal(a.bytes, b.bytes, 16);
	assert_fmt(&b, "198.51.100.7");
	assert_true(matches("198.51.100.*", "198.51.100.7"));
	{
		struct addr_pattern	 p = P("198.51.100.0/24");

		assert_true(addr_pattern_match(&p, &b));
	}
	/* and it goes back out as a plain sockaddr_in */
	len = addr_to_sockaddr(&b, 25, &ss);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ss.ss_family, AF_INET);

	/* other families are refused */
	memset(&un, 0, sizeof(un));
	un.sa_family = AF_UNIX;
	assert_int_equal(addr_from_sockaddr(&un, sizeof(un), &b), -1);
	memset(&bad, 0, sizeof(bad));
	bad.family = AF_UNIX;
	assert_int_equal(addr_to_sockaddr(&bad, 25, &ss), 0);
}

static void
test_match_defensive(void **state)
{
	struct addr_pattern	 p = P("*");
	struct addr		 a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.family = AF_UNIX;
	assert_false(addr_pattern_match(&p, &a));
	assert_false(addr_pattern_match(NULL, &a));
	assert_false(addr_pattern_match(&p, NULL));
	p = P("::/0");
	p.prefix = 200;
	a = A("::");
	assert_false(addr_pattern_match(&p, &a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_v4mapped),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_wildcard_v4),
		cmocka_unit_test(test_wildcard_v6),
		cmocka_unit_test(test_any),
		cmocka_unit_test(test_cidr_v4),
		cmocka_unit_test(test_cidr_v6),
		cmocka_unit_test(test_reject),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_sockaddr_v4),
		cmocka_unit_test(test_sockaddr_v6),
		cmocka_unit_test(test_match_defensive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
