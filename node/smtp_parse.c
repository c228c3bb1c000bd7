/* smtp_parse: SMTP command lines and mailbox addresses, parsed strictly.
 *
 * Everything here works on the bytes a client sent, so every read is
 * bounded by an explicit length (never by a NUL) and every refusal comes
 * with the complete reply. Conventions not spelled out in smtp_parse.h:
 *
 * - On -1 the command struct is all zero but for verb, which is the verb
 *   of the refused line when it was known (SMTP_UNKNOWN otherwise).
 * - Trailing spaces on a line are ignored. The verb is followed by exactly
 *   one space; "MAIL FROM:" and "RCPT TO:" may have one space after the
 *   colon; ESMTP parameters are separated by one or more spaces. Tabs and
 *   all other control bytes refuse the whole line (500 5.5.2).
 * - Replies are at most ~140 bytes: give a reply buffer of at least 256.
 *   Client bytes echoed in a reply (a parameter name) are cut to 64, with
 *   control bytes dropped and non-ASCII bytes shown as '?'.
 * - Addresses in MAIL and RCPT are parsed with UTF-8 allowed and then
 *   checked: non-ASCII is allowed on MAIL only with the SMTPUTF8 parameter,
 *   on RCPT only when offer->smtputf8 is set, else 553 5.6.7 (RFC 6531 3.5).
 *   The session passes smtputf8 for RCPT as "offered and declared on MAIL".
 * - Local part: at most 64 octets as sent (quotes and backslashes
 *   included), never empty (not even ""), stored without its quotes.
 *   Path: at most 256 octets with its angle brackets and any source route.
 * - Domains: ASCII letters are lower-cased; U-labels are kept as sent
 *   (well-formed UTF-8, no C1 controls), not converted to A-labels.
 *   Address literals keep their text (lower-cased, "IPv6:" tag spelled so).
 * - xtext hex escapes are accepted in either case. Decoded ENVID, AUTH and
 *   ORCPT values must be printable (ORCPT utf-8 also UTF-8 text).
 * - cmd->arg: HELO/EHLO one word of printable ASCII; AUTH "MECHANISM" or
 *   "MECHANISM initial-response" (mechanism upper-cased, response checked
 *   as base64 or "="); VRFY/EXPN/HELP text as sent (printable, UTF-8
 *   allowed). NOOP text is ignored and not kept.
 * - A known verb whose extension is not offered (BDAT, AUTH) gets
 *   502 5.5.1; BODY=8BITMIME/BINARYMIME without that extension offered
 *   gets 504 5.5.4 (BODY itself is offered by either extension).
 */
#include "smtp_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>

#define ECHO_MAX	64	/* client bytes echoed in a reply */
#define REPLY_BUF	256
#define ENVID_MAX	100	/* RFC 3461 4.4, after decoding */
#define ORCPT_RAW_MAX	500	/* RFC 3461 4.2 */
#define MECH_MAX	20	/* RFC 4422 3.1 */

/* ---- bytes ---- */

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static unsigned char
to_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static unsigned char
to_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

/* RFC 5322 atext (ASCII part). */
static bool
is_atext(unsigned char c)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~";

	return is_alnum(c) || (c != '\0' && memchr(specials, c, sizeof(specials) - 1) != NULL);
}

static int
hexval(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ASCII case-insensitive comparison of n bytes; the locale plays no part. */
static bool
ieq(const char *a, const char *b, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
			return false;
	return true;
}

/* a[0..n) equals the NUL-terminated word w, ignoring case. */
static bool
ieq_word(const char *a, size_t n, const char *w)
{
	return strlen(w) == n && ieq(a, w, n);
}

/* Length of the well-formed UTF-8 sequence of a non-ASCII character at
 * p (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), or 0.
 * C1 controls (U+0080..U+009F) count as malformed: they are controls. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 len, i;

	if (n == 0 || p[0] < 0x80)
		return 0;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	switch (p[0]) {
	case 0xc2:
		lo = 0xa0;	/* C1 controls */
		break;
	case 0xe0:
		lo = 0xa0;	/* overlong */
		break;
	case 0xed:
		hi = 0x9f;	/* surrogates */
		break;
	case 0xf0:
		lo = 0x90;	/* overlong */
		break;
	case 0xf4:
		hi = 0x8f;	/* above U+10FFFF */
		break;
	default:
		break;
	}
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* Printable ASCII (space included), and well-formed non-control UTF-8
 * when utf8 is allowed. */
static bool
text_ok(const char *s, size_t n, bool utf8)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, l;

	for (i = 0; i < n; ) {
		if (p[i] >= 0x80) {
			if (!utf8 || (l = utf8_len(p + i, n - i)) == 0)
				return false;
			i += l;
			continue;
		}
		if (is_ctl(p[i]))
			return false;
		i++;
	}
	return true;
}

/* 1 to 20 digits that fit in a uint64_t, nothing else. */
static bool
parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t	 v = 0;
	size_t		 i;

	if (n == 0 || n > 20)
		return false;
	for (i = 0; i < n; i++) {
		unsigned	 d;

		if (!is_digit((unsigned char)s[i]))
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* ---- replies ---- */

/* Copy a finished reply, keeping the CRLF at the end even when the buffer
 * is too small for all of it. */
static void
put_reply(char *reply, size_t replylen, const char *buf, size_t n)
{
	if (reply == NULL || replylen == 0)
		return;
	if (n < replylen) {
		memcpy(reply, buf, n);
		reply[n] = '\0';
	} else if (replylen >= 3) {
		memcpy(reply, buf, replylen - 3);
		memcpy(reply + replylen - 3, "\r\n", 3);
	} else
		reply[0] = '\0';
}

/* Reply with text, then up to ECHO_MAX bytes of client input made safe
 * (controls dropped, non-ASCII as '?'), then CRLF. Always -1. */
static int
refuse_echo(char *reply, size_t replylen, const char *text, const char *echo, size_t echolen)
{
	char	 buf[REPLY_BUF];
	size_t	 n, i;

	n = strlen(text);
	if (n > REPLY_BUF - ECHO_MAX - 3)
		n = REPLY_BUF - ECHO_MAX - 3;
	memcpy(buf, text, n);
	for (i = 0; echo != NULL && i < echolen && i < ECHO_MAX; i++) {
		unsigned char	 c = (unsigned char)echo[i];

		if (is_ctl(c))
			continue;
		buf[n++] = c >= 0x80 ? '?' : (char)c;
	}
	buf[n++] = '\r';
	buf[n++] = '\n';
	put_reply(reply, replylen, buf, n);
	return -1;
}

static int
refuse(char *reply, size_t replylen, const char *text)
{
	return refuse_echo(reply, replylen, text, NULL, 0);
}

/* ---- mailboxes ---- */

static int
why_fail(char *why, size_t whylen, const char *msg)
{
	size_t	 n;

	if (why != NULL && whylen > 0) {
		n = strlen(msg);
		if (n >= whylen)
			n = whylen - 1;
		memcpy(why, msg, n);
		why[n] = '\0';
	}
	return -1;
}

/* Inner parsers say why through a static string and return -1. */
static int
set_why(const char **why, const char *msg)
{
	*why = msg;
	return -1;
}

/* A Domain (RFC 5321 4.1.2: hostname labels; U-labels when utf8_ok),
 * written lower-cased to out (dl + 1 bytes) if out is not NULL. */
static int
parse_hostname(const char *d, size_t dl, bool utf8_ok, char *out, bool *utf8,
    const char **why)
{
	const unsigned char	*p = (const unsigned char *)d;
	size_t			 i, lab = 0, l;

	if (dl == 0)
		return set_why(why, "missing domain");
	if (dl > SMTP_DOMAIN_MAX)
		return set_why(why, "domain too long");
	for (i = 0; i < dl; ) {
		if (p[i] == '.') {
			if (lab == 0)
				return set_why(why, "empty domain label");
			if (p[i - 1] == '-')
				return set_why(why, "domain label ends with a hyphen");
			lab = 0;
			if (out != NULL)
				out[i] = '.';
			i++;
			continue;
		}
		if (p[i] >= 0x80) {
			if (!utf8_ok)
				return set_why(why, "non-ASCII domain without SMTPUTF8");
			if ((l = utf8_len(p + i, dl - i)) == 0)
				return set_why(why, "malformed UTF-8 in domain");
			if (out != NULL)
				memcpy(out + i, p + i, l);
			*utf8 = true;
		} else if (p[i] == '-') {
			if (lab == 0)
				return set_why(why, "domain label starts with a hyphen");
			l = 1;
			if (out != NULL)
				out[i] = '-';
		} else if (is_alnum(p[i])) {
			l = 1;
			if (out != NULL)
				out[i] = (char)to_lower(p[i]);
		} else
			return set_why(why, "bad character in domain");
		i += l;
		lab += l;
		if (lab > 63)
			return set_why(why, "domain label too long");
	}
	/* also catches a trailing dot: "example.com." names the root */
	if (lab == 0)
		return set_why(why, "domain ends with a dot");
	if (p[dl - 1] == '-')
		return set_why(why, "domain label ends with a hyphen");
	if (out != NULL)
		out[dl] = '\0';
	return 0;
}

/* An address literal "[...]" with its brackets: IPv4 or IPv6 only. */
static int
parse_literal(const char *d, size_t dl, struct smtp_addr *a, const char **why)
{
	char		 tmp[INET6_ADDRSTRLEN];
	struct in6_addr	 in6;
	struct in_addr	 in4;
	const char	*in;
	size_t		 il, i, o;
	bool		 v6;

	if (dl < 3 || d[dl - 1] != ']')
		return set_why(why, "unterminated address literal");
	in = d + 1;
	il = dl - 2;
	v6 = il >= 5 && ieq(in, "IPv6:", 5);
	if (v6) {
		in += 5;
		il -= 5;
	}
	/* Check the characters ourselves: inet_pton reads to a NUL and would
	 * take a valid prefix of "1.2.3.4\0junk" for the whole. */
	if (il == 0 || il >= sizeof(tmp))
		return set_why(why, "bad address literal");
	for (i = 0; i < il; i++) {
		unsigned char	 c = (unsigned char)in[i];

		if (!(is_digit(c) || c == '.' || (v6 && (c == ':' || hexval(c) >= 0))))
			return set_why(why, v6 ? "bad IPv6 address literal" :
			    "bad or unsupported address literal");
		tmp[i] = (char)to_lower(c);
	}
	tmp[il] = '\0';
	if (v6 ? inet_pton(AF_INET6, tmp, &in6) != 1 : inet_pton(AF_INET, tmp, &in4) != 1)
		return set_why(why, v6 ? "bad IPv6 address literal" : "bad IPv4 address literal");

	o = 0;
	a->domain[o++] = '[';
	if (v6) {
		memcpy(a->domain + o, "IPv6:", 5);
		o += 5;
	}
	memcpy(a->domain + o, tmp, il);
	o += il;
	a->domain[o++] = ']';
	a->domain[o] = '\0';
	a->literal = true;
	return 0;
}

/* Quoted-string local part (RFC 5321 4.1.2, RFC 6531 qtextSMTP); *end is
 * set past the closing quote. */
static int
parse_quoted(const unsigned char *p, size_t n, bool utf8_ok, struct smtp_addr *a,
    size_t *end, const char **why)
{
	size_t	 i = 1, o = 0, l;

	for (;;) {
		if (i >= n)
			return set_why(why, "unterminated quoted string");
		if (i >= SMTP_LOCAL_MAX)	/* the closing quote at 63 at most */
			return set_why(why, "local part too long");
		if (p[i] == '"') {
			i++;
			break;
		}
		if (p[i] == '\\') {
			/* quoted-pairSMTP: backslash and one printable ASCII */
			if (i + 1 >= n || p[i + 1] < 0x20 || p[i + 1] > 0x7e)
				return set_why(why, "bad quoted pair");
			a->local[o++] = (char)p[i + 1];
			i += 2;
			continue;
		}
		if (p[i] >= 0x80) {
			if (!utf8_ok)
				return set_why(why, "non-ASCII local part without SMTPUTF8");
			if ((l = utf8_len(p + i, n - i)) == 0)
				return set_why(why, "malformed UTF-8 in local part");
			memcpy(a->local + o, p + i, l);
			o += l;
			i += l;
			a->utf8 = true;
			continue;
		}
		if (is_ctl(p[i]))
			return set_why(why, "bad character in quoted string");
		a->local[o++] = (char)p[i++];
	}
	if (i > SMTP_LOCAL_MAX)
		return set_why(why, "local part too long");
	/* "" is grammatical but names no mailbox anyone should own */
	if (o == 0)
		return set_why(why, "empty local part");
	a->local[o] = '\0';
	a->local_quoted = true;
	*end = i;
	return 0;
}

/* Dot-string local part: atoms of atext (and UTF-8 when utf8_ok) joined
 * by single dots; *end is set at the first byte that is not part of it. */
static int
parse_dotstring(const unsigned char *p, size_t n, bool utf8_ok, struct smtp_addr *a,
    size_t *end, const char **why)
{
	size_t	 i = 0, l;
	bool	 after_dot = true;	/* at the start, as after a dot */

	while (i < n && p[i] != '@') {
		if (p[i] == '.') {
			if (after_dot)
				return set_why(why, i == 0 ? "local part starts with a dot" :
				    "empty atom in local part");
			after_dot = true;
			l = 1;
		} else if (p[i] >= 0x80) {
			if (!utf8_ok)
				return set_why(why, "non-ASCII local part without SMTPUTF8");
			if ((l = utf8_len(p + i, n - i)) == 0)
				return set_why(why, "malformed UTF-8 in local part");
			a->utf8 = true;
			after_dot = false;
		} else if (is_atext(p[i])) {
			after_dot = false;
			l = 1;
		} else
			return set_why(why, "bad character in local part");
		if (i + l > SMTP_LOCAL_MAX)
			return set_why(why, "local part too long");
		memcpy(a->local + i, p + i, l);
		i += l;
	}
	if (i == 0)
		return set_why(why, "empty local part");
	if (after_dot)
		return set_why(why, "local part ends with a dot");
	a->local[i] = '\0';
	*end = i;
	return 0;
}

int
smtp_parse_mailbox(const char *s, size_t len, bool utf8_ok, struct smtp_addr *a,
    char *why, size_t whylen)
{
	const unsigned char	*p = (const unsigned char *)s;
	const char		*msg = "bad address";
	size_t			 i = 0;
	int			 rc;

	memset(a, 0, sizeof(*a));
	if (s == NULL || len == 0)
		return why_fail(why, whylen, "empty address");
	if (len > SMTP_PATH_MAX - 2)
		return why_fail(why, whylen, "address too long");
	if (p[0] == '"')
		rc = parse_quoted(p, len, utf8_ok, a, &i, &msg);
	else
		rc = parse_dotstring(p, len, utf8_ok, a, &i, &msg);
	if (rc != 0)
		goto bad;
	if (i >= len || p[i] != '@') {
		msg = "missing @domain";
		goto bad;
	}
	i++;
	if (i < len && p[i] == '[')
		rc = parse_literal(s + i, len - i, a, &msg);
	else
		rc = parse_hostname(s + i, len - i, utf8_ok, a->domain, &a->utf8, &msg);
	if (rc != 0)
		goto bad;
	return 0;
bad:
	memset(a, 0, sizeof(*a));
	return why_fail(why, whylen, msg);
}

/* Well-formed Dot-string: no quotes needed to write it. */
static bool
is_dotstring(const char *s, size_t n, bool utf8)
{
	size_t	 i;

	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c == '.' ? s[i - 1] == '.' : !(is_atext(c) || (utf8 && c >= 0x80)))
			return false;
	}
	return true;
}

int
smtp_addr_format(const struct smtp_addr *a, char *out, size_t outlen)
{
	size_t	 ll, dl, o = 0, i;

	if (out == NULL || outlen == 0) {
		errno = ERANGE;
		return -1;
	}
	out[0] = '\0';
	if (a->null)
		return 0;
	if (a->postmaster) {
		if (outlen < sizeof("Postmaster")) {
			errno = ERANGE;
			return -1;
		}
		memcpy(out, "Postmaster", sizeof("Postmaster"));
		return 0;
	}
	ll = strnlen(a->local, sizeof(a->local));
	dl = strnlen(a->domain, sizeof(a->domain));
	/* only what smtp_parse_mailbox could have produced */
	if (ll == 0 || ll == sizeof(a->local) || dl == 0 || dl == sizeof(a->domain) ||
	    !text_ok(a->local, ll, a->utf8)) {
		errno = EINVAL;
		return -1;
	}
	/* worst case: every byte escaped, two quotes, "@", NUL */
	if (is_dotstring(a->local, ll, a->utf8)) {
		if (ll + 1 + dl + 1 > outlen)
			goto range;
		memcpy(out, a->local, ll);
		o = ll;
	} else {
		if (outlen < 2)
			goto range;
		out[o++] = '"';
		for (i = 0; i < ll; i++) {
			if (a->local[i] == '"' || a->local[i] == '\\') {
				if (o + 1 >= outlen)
					goto range;
				out[o++] = '\\';
			}
			if (o + 1 >= outlen)
				goto range;
			out[o++] = a->local[i];
		}
		if (o + 1 >= outlen)
			goto range;
		out[o++] = '"';
		if (o + 1 + dl + 1 > outlen)
			goto range;
	}
	out[o++] = '@';
	memcpy(out + o, a->domain, dl);
	o += dl;
	out[o] = '\0';
	return 0;
range:
	out[0] = '\0';
	errno = ERANGE;
	return -1;
}

/* ---- commands ---- */

struct pctx {
	const struct smtp_offer	*offer;
	struct smtp_cmd		*cmd;
	char			*reply;
	size_t			 replylen;
	bool			 mail;		/* MAIL (else RCPT) */
};

static int
p_refuse(struct pctx *p, const char *text)
{
	return refuse(p->reply, p->replylen, text);
}

static int
bad_value(struct pctx *p, const char *name)
{
	static const char	 prefix[] = "501 5.5.4 Bad value for ";
	char			 text[64];
	size_t			 n, l;

	n = sizeof(prefix) - 1;
	memcpy(text, prefix, n);
	l = strlen(name);	/* our own parameter names, all short */
	if (l > sizeof(text) - n - 1)
		l = sizeof(text) - n - 1;
	memcpy(text + n, name, l);
	text[n + l] = '\0';
	return p_refuse(p, text);
}

static const char *
syntax_of(const struct pctx *p)
{
	return p->mail ? "501 5.5.4 Syntax: MAIL FROM:<address>" :
	    "501 5.5.4 Syntax: RCPT TO:<address>";
}

/* xtext (RFC 3461 4): xchar is 33..126 but "+" and "="; "+XX" is a byte.
 * Writes at most cap bytes and a NUL. */
static int
xtext_decode(const char *s, size_t n, char *out, size_t cap, size_t *outlen)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char	 c = p[i];

		if (c == '+') {
			if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
				return -1;
			c = (unsigned char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
			i += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return -1;
		if (o >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

/* utf-8-addr-xtext / utf-8-addr-unitext (RFC 6533 3): QCHAR, "\x{HEX}"
 * escapes, raw UTF-8 when SMTPUTF8 is offered; "+XX" taken too. */
static int
uxtext_decode(const char *s, size_t n, bool raw_ok, char *out, size_t cap, size_t *outlen)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, o = 0, l, j;

	while (i < n) {
		unsigned char	 enc[4];
		uint32_t	 cp = 0;

		if (p[i] == '\\') {
			if (i + 2 >= n || p[i + 1] != 'x' || p[i + 2] != '{')
				return -1;
			for (j = i + 3; j < n && j < i + 9 && hexval(p[j]) >= 0; j++)
				cp = cp * 16 + (uint32_t)hexval(p[j]);
			if (j == i + 3 || j >= n || p[j] != '}')
				return -1;
			if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
				return -1;
			if (cp < 0x80) {
				enc[0] = (unsigned char)cp;
				l = 1;
			} else if (cp < 0x800) {
				enc[0] = (unsigned char)(0xc0 | (cp >> 6));
				enc[1] = (unsigned char)(0x80 | (cp & 0x3f));
				l = 2;
			} else if (cp < 0x10000) {
				enc[0] = (unsigned char)(0xe0 | (cp >> 12));
				enc[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
				enc[2] = (unsigned char)(0x80 | (cp & 0x3f));
				l = 3;
			} else {
				enc[0] = (unsigned char)(0xf0 | (cp >> 18));
				enc[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
				enc[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
				enc[3] = (unsigned char)(0x80 | (cp & 0x3f));
				l = 4;
			}
			i = j + 1;
		} else if (p[i] == '+') {
			if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
				return -1;
			enc[0] = (unsigned char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
			if (enc[0] >= 0x80)	/* bytes of UTF-8 come raw or as \x{} */
				return -1;
			l = 1;
			i += 3;
		} else if (p[i] >= 0x80) {
			if (!raw_ok || (l = utf8_len(p + i, n - i)) == 0)
				return -1;
			memcpy(enc, p + i, l);
			i += l;
		} else if (p[i] < 33 || p[i] > 126 || p[i] == '=') {
			return -1;
		} else {
			enc[0] = p[i++];
			l = 1;
		}
		if (o + l > cap)
			return -1;
		memcpy(out + o, enc, l);
		o += l;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

static int
param_size(struct pctx *p, const char *v, size_t vl, bool has)
{
	if (!has || !parse_u64(v, vl, &p->cmd->size))
		return bad_value(p, "SIZE");
	return 0;
}

static int
param_body(struct pctx *p, const char *v, size_t vl, bool has)
{
	if (has && ieq_word(v, vl, "7BIT"))
		p->cmd->body = SMTP_BODY_7BIT;
	else if (has && ieq_word(v, vl, "8BITMIME")) {
		if (!p->offer->eightbitmime)
			return p_refuse(p, "504 5.5.4 BODY=8BITMIME not offered");
		p->cmd->body = SMTP_BODY_8BITMIME;
	} else if (has && ieq_word(v, vl, "BINARYMIME")) {
		if (!p->offer->binarymime)
			return p_refuse(p, "504 5.5.4 BODY=BINARYMIME not offered");
		p->cmd->body = SMTP_BODY_BINARYMIME;
	} else
		return bad_value(p, "BODY");
	return 0;
}

static int
param_smtputf8(struct pctx *p, const char *v, size_t vl, bool has)
{
	(void)v;
	(void)vl;
	if (has)
		return bad_value(p, "SMTPUTF8");
	p->cmd->smtputf8 = true;
	return 0;
}

static int
param_ret(struct pctx *p, const char *v, size_t vl, bool has)
{
	if (has && ieq_word(v, vl, "FULL"))
		p->cmd->ret_hdrs = false;
	else if (has && ieq_word(v, vl, "HDRS"))
		p->cmd->ret_hdrs = true;
	else
		return bad_value(p, "RET");
	p->cmd->ret_set = true;
	return 0;
}

static int
param_envid(struct pctx *p, const char *v, size_t vl, bool has)
{
	size_t	 n;

	if (!has || xtext_decode(v, vl, p->cmd->envid, ENVID_MAX, &n) != 0 ||
	    !text_ok(p->cmd->envid, n, false)) {
		p->cmd->envid[0] = '\0';
		return bad_value(p, "ENVID");
	}
	return 0;
}

static int
param_auth(struct pctx *p, const char *v, size_t vl, bool has)
{
	size_t	 n;

	/* "<>" is xtext too and decodes to itself */
	if (!has || xtext_decode(v, vl, p->cmd->auth, SMTP_PATH_MAX, &n) != 0 ||
	    !text_ok(p->cmd->auth, n, false)) {
		p->cmd->auth[0] = '\0';
		return bad_value(p, "AUTH");
	}
	return 0;
}

static int
param_notify(struct pctx *p, const char *v, size_t vl, bool has)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
	} kw[] = {
		{ "NEVER", SMTP_NOTIFY_NEVER }, { "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE }, { "DELAY", SMTP_NOTIFY_DELAY },
	};
	unsigned	 bits = 0, bit;
	size_t		 i = 0, j, k;

	if (!has)
		return bad_value(p, "NOTIFY");
	while (i <= vl) {
		for (j = i; j < vl && v[j] != ','; j++)
			;
		bit = 0;
		for (k = 0; k < sizeof(kw) / sizeof(kw[0]); k++)
			if (ieq_word(v + i, j - i, kw[k].name))
				bit = kw[k].bit;
		if (bit == 0 || (bits & bit) != 0)
			return bad_value(p, "NOTIFY");
		bits |= bit;
		i = j + 1;
	}
	/* NEVER excludes the others (RFC 3461 4.1) */
	if ((bits & SMTP_NOTIFY_NEVER) != 0 && bits != SMTP_NOTIFY_NEVER)
		return bad_value(p, "NOTIFY");
	p->cmd->notify = bits;
	return 0;
}

static int
param_orcpt(struct pctx *p, const char *v, size_t vl, bool has)
{
	struct smtp_cmd	*c = p->cmd;
	const char	*semi, *type;
	size_t		 tl, n, cap;
	int		 rc;
	bool		 utf8;

	if (!has || vl > ORCPT_RAW_MAX || (semi = memchr(v, ';', vl)) == NULL)
		return bad_value(p, "ORCPT");
	tl = (size_t)(semi - v);
	if (ieq_word(v, tl, "rfc822")) {
		type = "rfc822;";
		utf8 = false;
	} else if (ieq_word(v, tl, "utf-8")) {
		type = "utf-8;";
		utf8 = true;
	} else
		return bad_value(p, "ORCPT");
	vl -= tl + 1;
	v = semi + 1;
	tl = strlen(type);
	memcpy(c->orcpt, type, tl);
	/* the decoded address gets what is left: 256 octets, as a path */
	cap = sizeof(c->orcpt) - tl - 1;
	rc = utf8 ? uxtext_decode(v, vl, p->offer->smtputf8, c->orcpt + tl, cap, &n) :
	    xtext_decode(v, vl, c->orcpt + tl, cap, &n);
	if (rc != 0 || n == 0 || !text_ok(c->orcpt + tl, n, utf8)) {
		c->orcpt[0] = '\0';
		return bad_value(p, "ORCPT");
	}
	return 0;
}

enum {
	P_SIZE = 1 << 0, P_BODY = 1 << 1, P_SMTPUTF8 = 1 << 2, P_RET = 1 << 3,
	P_ENVID = 1 << 4, P_AUTH = 1 << 5, P_NOTIFY = 1 << 6, P_ORCPT = 1 << 7,
};

static bool
offers(const struct smtp_offer *o, unsigned bit)
{
	switch (bit) {
	case P_SIZE:
		return o->size;
	case P_BODY:
		return o->eightbitmime || o->binarymime;
	case P_SMTPUTF8:
		return o->smtputf8;
	case P_RET: case P_ENVID: case P_NOTIFY: case P_ORCPT:
		return o->dsn;
	case P_AUTH:
		return o->auth;
	default:
		return false;
	}
}

static const struct param_def {
	const char	*name;
	bool		 mail;		/* a MAIL parameter (else RCPT) */
	unsigned	 bit;
	int		(*parse)(struct pctx *, const char *, size_t, bool);
} params[] = {
	{ "SIZE", true, P_SIZE, param_size },
	{ "BODY", true, P_BODY, param_body },
	{ "SMTPUTF8", true, P_SMTPUTF8, param_smtputf8 },
	{ "RET", true, P_RET, param_ret },
	{ "ENVID", true, P_ENVID, param_envid },
	{ "AUTH", true, P_AUTH, param_auth },
	{ "NOTIFY", false, P_NOTIFY, param_notify },
	{ "ORCPT", false, P_ORCPT, param_orcpt },
};

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool
is_keyword(const char *s, size_t n)
{
	size_t	 i;

	if (n == 0 || !is_alnum((unsigned char)s[0]))
		return false;
	for (i = 1; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* " KEY[=VALUE]" repeated; s is empty or starts with a space. */
static int
parse_params(struct pctx *p, const char *s, size_t n)
{
	const struct param_def	*d;
	const char		*tok, *eq;
	unsigned		 seen = 0;
	size_t			 i = 0, start, tl, kl, k;

	while (i < n) {
		while (i < n && s[i] == ' ')
			i++;
		if (i >= n)
			break;
		start = i;
		while (i < n && s[i] != ' ')
			i++;
		tok = s + start;
		tl = i - start;
		eq = memchr(tok, '=', tl);
		kl = eq != NULL ? (size_t)(eq - tok) : tl;
		if (!is_keyword(tok, kl))
			return p_refuse(p, syntax_of(p));
		d = NULL;
		for (k = 0; k < sizeof(params) / sizeof(params[0]); k++)
			if (ieq_word(tok, kl, params[k].name))
				d = &params[k];
		/* unknown, other verb's, not offered or given twice */
		if (d == NULL || d->mail != p->mail || !offers(p->offer, d->bit) ||
		    (seen & d->bit) != 0)
			return refuse_echo(p->reply, p->replylen,
			    "555 5.5.4 Unsupported parameter ", tok, kl);
		seen |= d->bit;
		if (eq != NULL && tl - kl - 1 == 0)
			return bad_value(p, d->name);
		if (d->parse(p, eq != NULL ? eq + 1 : NULL, eq != NULL ? tl - kl - 1 : 0,
		    eq != NULL) != 0)
			return -1;
	}
	return 0;
}

/* An obsolete source route "@a,@b" (without its colon): checked, dropped. */
static int
parse_route(const char *s, size_t n, struct smtp_addr *a)
{
	const char	*why;
	size_t		 i = 0, j;

	while (i < n) {
		if (s[i] != '@')
			return -1;
		for (j = i + 1; j < n && s[j] != ','; j++)
			;
		if (parse_hostname(s + i + 1, j - i - 1, true, NULL, &a->utf8, &why) != 0)
			return -1;
		if (j == n)
			return 0;
		i = j + 1;
	}
	return -1;	/* empty, or a trailing comma */
}

/* A path from its "<": *used is set past its ">". */
static int
parse_path(const char *s, size_t n, bool forward, struct smtp_addr *a, size_t *used)
{
	const char	*in, *colon;
	size_t		 end, il, rl;
	bool		 quoted = false, utf8 = false;

	/* the closing ">" is the first one outside a quoted string */
	for (end = 1; end < n; end++) {
		if (quoted) {
			if (s[end] == '\\')
				end++;
			else if (s[end] == '"')
				quoted = false;
		} else if (s[end] == '"')
			quoted = true;
		else if (s[end] == '>')
			break;
	}
	if (end >= n || end + 1 > SMTP_PATH_MAX)
		return -1;
	*used = end + 1;
	in = s + 1;
	il = end - 1;
	memset(a, 0, sizeof(*a));
	if (il == 0) {
		if (forward)
			return -1;
		a->null = true;
		return 0;
	}
	if (forward && ieq_word(in, il, "Postmaster")) {
		memcpy(a->local, in, il);
		a->local[il] = '\0';
		a->postmaster = true;
		return 0;
	}
	if (in[0] == '@') {
		/* route domains have no ":", so the first one ends the route */
		if ((colon = memchr(in, ':', il)) == NULL)
			return -1;
		rl = (size_t)(colon - in);
		if (parse_route(in, rl, a) != 0)
			return -1;
		utf8 = a->utf8;
		in += rl + 1;
		il -= rl + 1;
		if (smtp_parse_mailbox(in, il, true, a, NULL, 0) != 0)
			return -1;
		a->had_route = true;
		a->utf8 = a->utf8 || utf8;
		return 0;
	}
	return smtp_parse_mailbox(in, il, true, a, NULL, 0);
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params] */
static int
parse_mail_rcpt(struct pctx *p, const char *s, size_t n)
{
	const char	*kw = p->mail ? "FROM:" : "TO:";
	size_t		 kl = strlen(kw), i, used;
	bool		 utf8_ok;

	if (n < kl || !ieq(s, kw, kl))
		return p_refuse(p, syntax_of(p));
	i = kl;
	if (i < n && s[i] == ' ')
		i++;
	if (i >= n || s[i] != '<')
		return p_refuse(p, syntax_of(p));
	if (parse_path(s + i, n - i, !p->mail, &p->cmd->addr, &used) != 0) {
		memset(&p->cmd->addr, 0, sizeof(p->cmd->addr));
		return p_refuse(p, p->mail ? "501 5.1.7 Bad sender address syntax" :
		    "501 5.1.3 Bad recipient address syntax");
	}
	i += used;
	if (i < n && s[i] != ' ')
		return p_refuse(p, syntax_of(p));
	if (parse_params(p, s + i, n - i) != 0)
		return -1;
	utf8_ok = p->mail ? p->cmd->smtputf8 : p->offer->smtputf8;
	if (p->cmd->addr.utf8 && !utf8_ok)
		return p_refuse(p, p->mail ?
		    "553 5.6.7 Non-ASCII sender address needs SMTPUTF8" :
		    "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8");
	return 0;
}

/* HELO/EHLO: one printable word, loosely a domain or address literal. */
static int
parse_helo(struct pctx *p, const char *s, size_t n, const char *syntax)
{
	size_t	 i;

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return p_refuse(p, syntax);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return p_refuse(p, syntax);
	memcpy(p->cmd->arg, s, n);
	p->cmd->arg[n] = '\0';
	return 0;
}

/* BDAT chunk-size [LAST] (RFC 3030 2) */
static int
parse_bdat(struct pctx *p, const char *s, size_t n)
{
	static const char	 syntax[] = "501 5.5.4 Syntax: BDAT chunk-size [LAST]";
	size_t			 i, j;

	for (i = 0; i < n && s[i] != ' '; i++)
		;
	if (!parse_u64(s, i, &p->cmd->chunk))
		return p_refuse(p, syntax);
	for (j = i; j < n && s[j] == ' '; j++)
		;
	if (j == n)
		return 0;
	if (!ieq_word(s + j, n - j, "LAST"))
		return p_refuse(p, syntax);
	p->cmd->last = true;
	return 0;
}

/* Base64 with padding (RFC 4648 4), or "=" for an empty response. */
static bool
is_base64(const char *s, size_t n)
{
	size_t	 i, pad = 0;

	if (n == 1 && s[0] == '=')
		return true;
	if (n == 0 || n % 4 != 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c == '=') {
			if (i < n - 2)
				return false;
			pad++;
		} else if (pad > 0 || !(is_alnum(c) || c == '+' || c == '/'))
			return false;
	}
	return true;
}

/* AUTH mechanism [initial-response] (RFC 4954 4); the mechanism is stored
 * upper-cased, the response as sent. */
static int
parse_auth(struct pctx *p, const char *s, size_t n)
{
	static const char	 syntax[] = "501 5.5.4 Syntax: AUTH mechanism [initial-response]";
	size_t			 i;

	for (i = 0; i < n && s[i] != ' '; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (!(is_alnum(c) || c == '-' || c == '_'))
			return p_refuse(p, syntax);
		p->cmd->arg[i] = (char)to_upper(c);
	}
	if (i == 0 || i > MECH_MAX) {
		p->cmd->arg[0] = '\0';
		return p_refuse(p, syntax);
	}
	if (i < n && !is_base64(s + i + 1, n - i - 1)) {
		p->cmd->arg[0] = '\0';
		return p_refuse(p, "501 5.5.2 Cannot decode initial response");
	}
	memcpy(p->cmd->arg + i, s + i, n - i);
	p->cmd->arg[n] = '\0';
	return 0;
}

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
} verbs[] = {
	{ "HELO", SMTP_HELO }, { "EHLO", SMTP_EHLO }, { "MAIL", SMTP_MAIL },
	{ "RCPT", SMTP_RCPT }, { "DATA", SMTP_DATA }, { "BDAT", SMTP_BDAT },
	{ "RSET", SMTP_RSET }, { "NOOP", SMTP_NOOP }, { "QUIT", SMTP_QUIT },
	{ "VRFY", SMTP_VRFY }, { "EXPN", SMTP_EXPN }, { "HELP", SMTP_HELP },
	{ "STARTTLS", SMTP_STARTTLS }, { "AUTH", SMTP_AUTH },
};

static int
parse_line(struct pctx *pp, const char *line, size_t len)
{
	struct pctx		 p = *pp;
	struct smtp_cmd		*cmd = p.cmd;
	const char		*arg;
	size_t			 i, vl, al;
	bool			 has_arg;

	if (len > SMTP_LINE_MAX - 2)
		return p_refuse(&p, "500 5.5.6 Line too long");
	for (i = 0; i < len; i++)
		if (is_ctl((unsigned char)line[i]))
			return p_refuse(&p, "500 5.5.2 Bad characters in command");
	while (len > 0 && line[len - 1] == ' ')
		len--;

	for (vl = 0; vl < len && line[vl] != ' '; vl++)
		;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (ieq_word(line, vl, verbs[i].name))
			cmd->verb = verbs[i].verb;
	if (cmd->verb == SMTP_UNKNOWN)
		return p_refuse(&p, "500 5.5.2 Command not recognized");

	/* exactly one space after the verb; the argument keeps the rest */
	has_arg = vl < len;
	arg = has_arg ? line + vl + 1 : line + len;
	al = has_arg ? len - vl - 1 : 0;

	switch (cmd->verb) {
	case SMTP_HELO:
		return parse_helo(&p, arg, al, "501 5.5.4 Syntax: HELO hostname");
	case SMTP_EHLO:
		return parse_helo(&p, arg, al, "501 5.5.4 Syntax: EHLO hostname");
	case SMTP_MAIL:
		p.mail = true;
		return has_arg ? parse_mail_rcpt(&p, arg, al) : p_refuse(&p, syntax_of(&p));
	case SMTP_RCPT:
		return has_arg ? parse_mail_rcpt(&p, arg, al) : p_refuse(&p, syntax_of(&p));
	case SMTP_DATA:
		return has_arg ? p_refuse(&p, "501 5.5.4 Syntax: DATA") : 0;
	case SMTP_RSET:
		return has_arg ? p_refuse(&p, "501 5.5.4 Syntax: RSET") : 0;
	case SMTP_QUIT:
		return has_arg ? p_refuse(&p, "501 5.5.4 Syntax: QUIT") : 0;
	case SMTP_STARTTLS:
		return has_arg ? p_refuse(&p, "501 5.5.4 Syntax: STARTTLS") : 0;
	case SMTP_BDAT:
		if (!p.offer->chunking)
			return p_refuse(&p, "502 5.5.1 Command not available on this service");
		return parse_bdat(&p, arg, al);
	case SMTP_AUTH:
		if (!p.offer->auth)
			return p_refuse(&p, "502 5.5.1 Command not available on this service");
		return parse_auth(&p, arg, al);
	case SMTP_NOOP:
		/* the text is ignored (RFC 5321 4.1.1.9) */
		return 0;
	case SMTP_VRFY:
	case SMTP_EXPN:
	case SMTP_HELP:
		if ((cmd->verb != SMTP_HELP && al == 0) || !text_ok(arg, al, true))
			return p_refuse(&p, cmd->verb == SMTP_VRFY ?
			    "501 5.5.4 Syntax: VRFY address" :
			    cmd->verb == SMTP_EXPN ? "501 5.5.4 Syntax: EXPN list" :
			    "501 5.5.4 Syntax: HELP [topic]");
		memcpy(cmd->arg, arg, al);
		cmd->arg[al] = '\0';
		return 0;
	case SMTP_UNKNOWN:
		break;
	}
	return p_refuse(&p, "500 5.5.2 Command not recognized");
}

int
smtp_parse_command(const char *line, size_t len, const struct smtp_offer *offer,
    struct smtp_cmd *cmd, char *reply, size_t replylen)
{
	static const struct smtp_offer	 none;
	struct pctx			 p;
	enum smtp_verb			 verb;

	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = SMTP_UNKNOWN;
	if (reply != NULL && replylen > 0)
		reply[0] = '\0';
	p.offer = offer != NULL ? offer : &none;
	p.cmd = cmd;
	p.reply = reply;
	p.replylen = replylen;
	p.mail = false;
	if (parse_line(&p, line, line != NULL ? len : 0) == 0)
		return 0;
	/* nothing half-parsed is left for the session to trip over */
	verb = cmd->verb;
	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = verb;
	return -1;
}

void
smtp_hops_feed(struct smtp_hops *h, const char *p, size_t n)
{
	static const char field[] = "received:";
	size_t i;

	for (i = 0; i < n && !h->body; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n') {
			if (h->line_len == 0)
				h->body = true;
			h->line_len = h->matched = 0;
			continue;
		}
		if (c == '\r')
			continue;
		/* Only a field name at the line's start counts, not a folded line. */
		if (h->matched == h->line_len && h->matched < sizeof(field) - 1 &&
		    tolower(c) == field[h->matched] && ++h->matched == sizeof(field) - 1 &&
		    h->received < UINT_MAX)
			h->received++;
		if (h->line_len < UINT_MAX)
			h->line_len++;
	}
}
