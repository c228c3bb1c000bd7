/* addr: parsing, formatting and matching of IPv4/IPv6 addresses and of the
 * address patterns used by access rules and connection-limit exemptions.
 *
 * Every address is held in 128-bit form so that one prefix comparison serves
 * both families; IPv4 lives in ::ffff:0:0/96 and IPv4-mapped IPv6 peers are
 * folded into AF_INET, so a rule written as 192.0.2.0/24 also catches a
 * client that reached a dual-stack listener as ::ffff:192.0.2.7.
 *
 * Conventions not spelled out in addr.h:
 * - addr_parse, addr_from_sockaddr, addr_format, addr_pattern_format and
 *   addr_pattern_parse return 0 on success and -1 (errno set) on error.
 * - Inputs longer than ADDR_STRLEN - 1 characters are rejected.
 * - An IPv4 pattern (AF_INET) never matches an IPv6 address and an IPv6
 *   pattern never matches an IPv4 address, so "::*" and "::/0" are "every
 *   IPv6 address"; only "*" matches both families.
 * - A CIDR prefix written after an IPv6-syntax address counts IPv6 bits, one
 *   written after a dotted quad counts IPv4 bits: "::ffff:192.0.2.0/120" is
 *   the same pattern as "192.0.2.0/24".
 * - "2001:db8::*" is rejected as ambiguous (is the "::" one group or six?);
 *   "::*" alone is accepted and means every IPv6 address.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* ::ffff:0:0/96, the IPv4-mapped prefix that IPv4 addresses live in. */
static const uint8_t v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

#define V4_PREFIX_BASE	96	/* IPv4 prefix /n is prefix 96 + n here */

static void
set_err(char *err, size_t errlen, const char *msg)
{
	int	 n;

	if (err == NULL || errlen == 0)
		return;
	n = snprintf(err, errlen, "%s", msg);
	if (n < 0)
		err[0] = '\0';
}

static int
fail(char *err, size_t errlen, const char *msg)
{
	set_err(err, errlen, msg);
	errno = EINVAL;
	return -1;
}

static void
set_v4(struct addr *a, const struct in_addr *in)
{
	a->family = AF_INET;
	memcpy(a->bytes, v4mapped, sizeof(v4mapped));
	memcpy(a->bytes + 12, &in->s_addr, 4);
}

/* Fold IPv4-mapped IPv6 into AF_INET so both spellings compare equal. */
static void
set_v6(struct addr *a, const struct in6_addr *in6)
{
	memcpy(a->bytes, in6->s6_addr, 16);
	if (memcmp(a->bytes, v4mapped, sizeof(v4mapped)) == 0)
		a->family = AF_INET;
	else
		a->family = AF_INET6;
}

/*
 * Parse the address in s[0..len), optionally bracketed IPv6; the copy into a
 * local buffer is what lets callers hand us a slice of a longer string.
 */
static int
parse_addr_text(const char *s, size_t len, struct addr *out, char *err,
    size_t errlen)
{
	char		 buf[ADDR_STRLEN];
	struct in_addr	 in;
	struct in6_addr	 in6;
	bool		 bracketed = false;

	if (len == 0)
		return fail(err, errlen, "empty address");
	if (s[0] == '[' || s[len - 1] == ']') {
		if (len < 2 || s[0] != '[' || s[len - 1] != ']')
			return fail(err, errlen, "unbalanced brackets around "
			    "IPv6 address");
		s++;
		len -= 2;
		bracketed = true;
	}
	if (len == 0)
		return fail(err, errlen, "empty address");
	if (len >= sizeof(buf))
		return fail(err, errlen, "address too long");
	memcpy(buf, s, len);
	buf[len] = '\0';

	if (memchr(buf, ':', len) != NULL) {
		if (inet_pton(AF_INET6, buf, &in6) != 1)
			return fail(err, errlen, "invalid IPv6 address");
		set_v6(out, &in6);
		return 0;
	}
	if (bracketed)
		return fail(err, errlen, "brackets are only allowed around "
		    "IPv6 addresses");
	if (inet_pton(AF_INET, buf, &in) != 1)
		return fail(err, errlen, "invalid IPv4 address (expected four "
		    "numbers 0-255 separated by dots)");
	set_v4(out, &in);
	return 0;
}

/* Length of s, or ADDR_STRLEN if it does not fit the bound we accept. */
static size_t
bounded_len(const char *s)
{
	return strnlen(s, ADDR_STRLEN);
}

int
addr_parse(const char *s, struct addr *out)
{
	size_t	 len;

	if (s == NULL || out == NULL) {
		errno = EINVAL;
		return -1;
	}
	len = bounded_len(s);
	if (len == 0 || len >= ADDR_STRLEN) {
		errno = EINVAL;
		return -1;
	}
	return parse_addr_text(s, len, out, NULL, 0);
}

int
addr_from_sockaddr(const struct sockaddr *sa, socklen_t salen,
    struct addr *out)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	sa_family_t		 fam;

	if (sa == NULL || out == NULL ||
	    salen < (socklen_t)(offsetof(struct sockaddr, sa_family) +
	    sizeof(fam))) {
		errno = EINVAL;
		return -1;
	}
	/* memcpy rather than casts: sa may be any sockaddr buffer. */
	memcpy(&fam, (const char *)sa + offsetof(struct sockaddr, sa_family),
	    sizeof(fam));
	switch (fam) {
	case AF_INET:
		if (salen < (socklen_t)sizeof(sin))
			break;
		memcpy(&sin, sa, sizeof(sin));
		set_v4(out, &sin.sin_addr);
		return 0;
	case AF_INET6:
		if (salen < (socklen_t)sizeof(sin6))
			break;
		memcpy(&sin6, sa, sizeof(sin6));
		set_v6(out, &sin6.sin6_addr);
		return 0;
	default:
		errno = EAFNOSUPPORT;
		return -1;
	}
	errno = EINVAL;
	return -1;
}

socklen_t
addr_to_sockaddr(const struct addr *a, uint16_t port,
    struct sockaddr_storage *ss)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;

	if (a == NULL || ss == NULL)
		return 0;
	memset(ss, 0, sizeof(*ss));
	switch (a->family) {
	case AF_INET:
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		memcpy(&sin.sin_addr.s_addr, a->bytes + 12, 4);
		memcpy(ss, &sin, sizeof(sin));
		return (socklen_t)sizeof(sin);
	case AF_INET6:
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(port);
		memcpy(sin6.sin6_addr.s6_addr, a->bytes, 16);
		memcpy(ss, &sin6, sizeof(sin6));
		return (socklen_t)sizeof(sin6);
	default:
		errno = EAFNOSUPPORT;
		return 0;
	}
}

/* inet_ntop of the family's part of bytes into buf[len]. */
static int
ntop(int family, const uint8_t bytes[16], char *buf, size_t len)
{
	if (buf == NULL || len == 0 || len > (size_t)(socklen_t)-1) {
		errno = EINVAL;
		return -1;
	}
	switch (family) {
	case AF_INET:
		if (inet_ntop(AF_INET, bytes + 12, buf, (socklen_t)len) == NULL)
			return -1;
		return 0;
	case AF_INET6:
		if (inet_ntop(AF_INET6, bytes, buf, (socklen_t)len) == NULL)
			return -1;
		return 0;
	default:
		errno = EAFNOSUPPORT;
		return -1;
	}
}

int
addr_format(const struct addr *a, char *buf, size_t len)
{
	if (a == NULL) {
		errno = EINVAL;
		return -1;
	}
	return ntop(a->family, a->bytes, buf, len);
}

/* Clear every bit of net past the first prefix bits. */
static void
mask_net(uint8_t net[16], unsigned prefix)
{
	unsigned	 i, keep;

	for (i = 0; i < 16; i++) {
		if (prefix >= 8 * (i + 1))
			continue;
		keep = prefix > 8 * i ? prefix - 8 * i : 0;
		net[i] &= (uint8_t)(0xff00u >> keep);
	}
}

/*
 * Finish a pattern: drop host bits ("192.168.0.1/16" is 192.168.0.0/16) and
 * call it IPv4 exactly when the whole of it lies inside ::ffff:0:0/96.
 */
static void
pattern_set(struct addr_pattern *p, const uint8_t net[16], unsigned prefix)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->net, net, 16);
	p->prefix = prefix;
	mask_net(p->net, prefix);
	if (prefix >= V4_PREFIX_BASE &&
	    memcmp(p->net, v4mapped, sizeof(v4mapped)) == 0)
		p->family = AF_INET;
	else
		p->family = AF_INET6;
}

/* Decimal prefix length in s[0..len), at most max. */
static int
parse_prefixlen(const char *s, size_t len, unsigned max, unsigned *out,
    char *err, size_t errlen)
{
	unsigned	 v = 0;
	size_t		 i;

	if (len == 0)
		return fail(err, errlen, "missing prefix length after '/'");
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return fail(err, errlen, "invalid prefix length after "
			    "'/' (expected a decimal number)");
	if (len > 3)
		goto range;
	for (i = 0; i < len; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (v > max)
		goto range;
	*out = v;
	return 0;
 range:
	return fail(err, errlen, max == 32 ?
	    "IPv4 prefix length must be 0 to 32" :
	    "IPv6 prefix length must be 0 to 128");
}

static int
parse_cidr(const char *s, size_t len, const char *slash,
    struct addr_pattern *p, char *err, size_t errlen)
{
	struct addr	 a;
	size_t		 alen = (size_t)(slash - s);
	unsigned	 plen;
	bool		 v6;

	if (alen == 0)
		return fail(err, errlen, "missing address before '/'");
	v6 = memchr(s, ':', alen) != NULL;
	if (parse_addr_text(s, alen, &a, err, errlen) == -1)
		return -1;
	if (parse_prefixlen(slash + 1, len - alen - 1, v6 ? 128 : 32, &plen,
	    err, errlen) == -1)
		return -1;
	pattern_set(p, a.bytes, v6 ? plen : V4_PREFIX_BASE + plen);
	return 0;
}

/*
 * Wildcard patterns: the text split at sep into at most maxparts parts, the
 * leading ones literal and the rest "*". The literal parts are padded with
 * zero parts into a full address for inet_pton, and each literal part fixes
 * bitsper bits of the prefix.
 */
static int
parse_wildcard(const char *s, size_t len, char sep, unsigned maxparts,
    unsigned bitsper, struct addr_pattern *p, char *err, size_t errlen)
{
	char		 buf[2 * ADDR_STRLEN];
	struct in_addr	 in;
	struct in6_addr	 in6;
	struct addr	 a;
	const char	*part, *end, *next;
	size_t		 plen, off = 0;
	unsigned	 nparts = 0, nlit = 0, i;
	bool		 v6 = sep == ':';
	int		 n;

	for (part = s, end = s + len; ; part = next + 1) {
		next = memchr(part, sep, (size_t)(end - part));
		if (next == NULL)
			next = end;
		plen = (size_t)(next - part);
		if (++nparts > maxparts)
			return fail(err, errlen, v6 ?
			    "IPv6 wildcard pattern has more than 8 groups" :
			    "IPv4 wildcard pattern has more than 4 parts");
		if (plen == 1 && part[0] == '*') {
			/* wildcard part: nothing to copy yet */
		} else if (memchr(part, '*', plen) != NULL) {
			return fail(err, errlen, "wildcard '*' must replace a "
			    "whole part of the address, as in 192.168.0.*");
		} else if (nparts > nlit + 1) {
			return fail(err, errlen, "wildcard '*' is only allowed "
			    "in trailing parts, as in 192.168.* or 2001:db8:*");
		} else if (plen == 0) {
			return fail(err, errlen, v6 ?
			    "invalid IPv6 wildcard pattern (empty group)" :
			    "invalid IPv4 wildcard pattern (empty part)");
		} else {
			/* literal part: copy it verbatim for inet_pton */
			if (plen >= sizeof(buf) - off)
				return fail(err, errlen, "address too long");
			memcpy(buf + off, part, plen);
			off += plen;
			buf[off++] = sep;
			nlit++;
		}
		if (next == end)
			break;
	}
	for (i = nlit; i < maxparts; i++) {
		n = snprintf(buf + off, sizeof(buf) - off, "0%c", sep);
		if (n < 0 || (size_t)n >= sizeof(buf) - off)
			return fail(err, errlen, "address too long");
		off += (size_t)n;
	}
	buf[off - 1] = '\0';	/* the separator after the last part */

	if (v6) {
		if (inet_pton(AF_INET6, buf, &in6) != 1)
			return fail(err, errlen, "invalid IPv6 wildcard "
			    "pattern (groups must be 1 to 4 hex digits)");
		set_v6(&a, &in6);
		pattern_set(p, a.bytes, nlit * bitsper);
	} else {
		if (inet_pton(AF_INET, buf, &in) != 1)
			return fail(err, errlen, "invalid IPv4 wildcard "
			    "pattern (parts must be numbers 0-255)");
		set_v4(&a, &in);
		pattern_set(p, a.bytes, V4_PREFIX_BASE + nlit * bitsper);
	}
	return 0;
}

int
addr_pattern_parse(const char *s, struct addr_pattern *p, char *err,
    size_t errlen)
{
	struct addr	 a;
	const char	*slash;
	size_t		 len;
	bool		 v6;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (p == NULL)
		return fail(err, errlen, "no pattern to fill in");
	if (s == NULL || s[0] == '\0')
		return fail(err, errlen, "empty address pattern");
	len = bounded_len(s);
	if (len >= ADDR_STRLEN)
		return fail(err, errlen, "address pattern too long");

	if (len == 1 && s[0] == '*') {
		memset(p, 0, sizeof(*p));
		p->family = AF_UNSPEC;
		p->any = true;
		return 0;
	}

	slash = memchr(s, '/', len);
	v6 = memchr(s, ':', len) != NULL;
	if (memchr(s, '*', len) != NULL) {
		if (slash != NULL)
			return fail(err, errlen, "a wildcard and a prefix "
			    "length cannot be combined");
		if (!v6)
			return parse_wildcard(s, len, '.', 4, 8, p, err,
			    errlen);
		if (len == 3 && memcmp(s, "::*", 3) == 0) {
			memset(a.bytes, 0, sizeof(a.bytes));
			pattern_set(p, a.bytes, 0);
			return 0;
		}
		if (memchr(s, '[', len) != NULL || memchr(s, ']', len) != NULL)
			return fail(err, errlen, "brackets are not allowed in "
			    "wildcard patterns");
		if (memchr(s, '.', len) != NULL)
			return fail(err, errlen, "wildcards are not supported "
			    "in IPv6 addresses with an embedded IPv4 part");
		if (memmem(s, len, "::", 2) != NULL)
			return fail(err, errlen, "'::' cannot be combined with "
			    "a wildcard; write 2001:db8:* or 2001:db8::/32");
		return parse_wildcard(s, len, ':', 8, 16, p, err, errlen);
	}
	if (slash != NULL)
		return parse_cidr(s, len, slash, p, err, errlen);
	if (parse_addr_text(s, len, &a, err, errlen) == -1)
		return -1;
	pattern_set(p, a.bytes, 128);
	return 0;
}

bool
addr_pattern_match(const struct addr_pattern *p, const struct addr *a)
{
	unsigned	 full, rem;
	uint8_t		 mask;

	if (p == NULL || a == NULL)
		return false;
	if (a->family != AF_INET && a->family != AF_INET6)
		return false;
	if (p->any)
		return true;
	if (p->family != a->family || p->prefix > 128)
		return false;
	full = p->prefix / 8;
	rem = p->prefix % 8;
	if (memcmp(p->net, a->bytes, full) != 0)
		return false;
	if (rem == 0)
		return true;
	mask = (uint8_t)(0xff00u >> rem);
	return ((p->net[full] ^ a->bytes[full]) & mask) == 0;
}

int
addr_pattern_format(const struct addr_pattern *p, char *buf, size_t len)
{
	char		 host[INET6_ADDRSTRLEN];
	unsigned	 plen;
	int		 n;

	if (p == NULL || buf == NULL || len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (p->any) {
		n = snprintf(buf, len, "*");
		goto done;
	}
	if (p->prefix > 128 ||
	    (p->family == AF_INET && p->prefix < V4_PREFIX_BASE)) {
		errno = EINVAL;
		return -1;
	}
	if (ntop(p->family, p->net, host, sizeof(host)) == -1)
		return -1;
	if (p->prefix == 128) {
		n = snprintf(buf, len, "%s", host);
		goto done;
	}
	plen = p->family == AF_INET ? p->prefix - V4_PREFIX_BASE : p->prefix;
	n = snprintf(buf, len, "%s/%u", host, plen);
 done:
	if (n < 0 || (size_t)n >= len) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}
