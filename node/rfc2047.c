/* rfc2047: decoding of encoded words in header values. Each word is
 * decoded into a small bounded buffer first, so a bad one is copied raw. */
#include "rfc2047.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>

#include "utf8.h"

enum cs { CS_UTF8, CS_ASCII, CS_LATIN1, CS_OTHER };

static enum cs
charset_of(const char *s, size_t n)
{
	static const struct { const char *name; enum cs cs; } known[] = {
		{ "utf-8", CS_UTF8 }, { "utf8", CS_UTF8 },
		{ "us-ascii", CS_ASCII }, { "ascii", CS_ASCII },
		{ "iso-8859-1", CS_LATIN1 }, { "iso_8859-1", CS_LATIN1 }, { "latin1", CS_LATIN1 },
	};
	const char *star = memchr(s, '*', n);	/* RFC 2231 language suffix */
	size_t i;

	if (star)
		n = (size_t)(star - s);
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i].name) == n && strncasecmp(s, known[i].name, n) == 0)
			return known[i].cs;
	return CS_OTHER;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decoded bytes of the word's text into out (room for n bytes); their count or -1. */
static long
decode_q(const char *t, size_t n, unsigned char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (t[i] == '_')
			out[o++] = ' ';
		else if (t[i] == '=') {
			int hi, lo;

			if (i + 2 >= n || (hi = hexval((unsigned char)t[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)t[i + 2])) < 0)
				return -1;
			out[o++] = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else
			out[o++] = (unsigned char)t[i];
	}
	return (long)o;
}

/* Strict base64 (GnuTLS): padding as RFC 2045 has it, no stray bytes. */
static long
decode_b(const char *t, size_t n, unsigned char *out)
{
	gnutls_datum_t in = { (unsigned char *)t, (unsigned)n }, res = { NULL, 0 };
	long o = -1;

	if (n == 0)
		return 0;
	if (gnutls_base64_decode2(&in, &res) == 0 && res.size <= n) {
		memcpy(out, res.data, res.size);
		o = (long)res.size;
	}
	gnutls_free(res.data);
	return o;
}

/* Can the decoded bytes of a word stand in for it? No controls (no NUL
 * or line break smuggled into a value) and valid in their charset. */
static bool
usable(enum cs cs, const unsigned char *d, size_t n)
{
	size_t i, k;

	if (cs == CS_OTHER)
		return false;
	for (i = 0; i < n; i += k) {
		k = 1;
		if (d[i] < 0x20 || d[i] == 0x7f)
			return false;
		if (d[i] < 0x80)
			continue;
		if (cs == CS_UTF8 && (k = utf8_seq(d + i, n - i)) == 0)
			return false;
		if (cs == CS_ASCII || (cs == CS_LATIN1 && d[i] < 0xa0))
			return false;	/* 8 bit in ASCII, C1 controls */
	}
	return true;
}

static int
put_utf8(enum cs cs, const unsigned char *d, size_t n, struct buf *out)
{
	size_t i;

	if (cs != CS_LATIN1)
		return buf_append(out, d, n);
	for (i = 0; i < n; i++) {
		unsigned char two[2] = { (unsigned char)(0xc0 | d[i] >> 6),
		    (unsigned char)(0x80 | (d[i] & 0x3f)) };

		if (buf_append(out, d[i] < 0x80 ? d + i : two, d[i] < 0x80 ? 1 : 2) == -1)
			return -1;
	}
	return 0;
}

/* An encoded word at p (n bytes left)? Its length, the charset and text. */
static size_t
word_at(const char *p, size_t n, const char **cs, size_t *cslen, char *enc, const char **t,
    size_t *tlen)
{
	size_t i = 2, lim = n < RFC2047_WORD_MAX ? n : RFC2047_WORD_MAX;

	if (lim < 8 || p[0] != '=' || p[1] != '?')
		return 0;
	*cs = p + 2;
	while (i < lim && p[i] != '?' && p[i] > ' ' && p[i] < 0x7f)
		i++;
	if (i == 2 || i + 3 >= lim || p[i] != '?')
		return 0;
	*cslen = i - 2;
	if ((p[i + 1] != 'B' && p[i + 1] != 'b' && p[i + 1] != 'Q' && p[i + 1] != 'q') || p[i + 2] != '?')
		return 0;
	*enc = (char)(p[i + 1] | 0x20);
	i += 3;
	*t = p + i;
	while (i + 1 < lim && !(p[i] == '?' && p[i + 1] == '=')) {
		if (p[i] <= ' ' || p[i] >= 0x7f || p[i] == '?')
			return 0;
		i++;
	}
	if (i + 1 >= lim)
		return 0;
	*tlen = (size_t)(p + i - *t);
	return i + 2;
}

int
rfc2047_decode(const char *value, size_t len, struct buf *out)
{
	unsigned char tmp[RFC2047_WORD_MAX];
	size_t i = 0, pending_ws = 0;
	bool last_word = false;

	while (i < len) {
		const char *cs, *t;
		size_t cslen, tlen, wl;
		char enc;

		if (value[i] == ' ' || value[i] == '\t') {
			size_t j = i;

			while (j < len && (value[j] == ' ' || value[j] == '\t'))
				j++;
			/* Held back: it goes if a decoded word follows a decoded word. */
			pending_ws = j - i;
			i = j;
			if (i < len)
				continue;
			break;
		}
		wl = word_at(value + i, len - i, &cs, &cslen, &enc, &t, &tlen);
		if (wl > 0) {
			long dn = enc == 'q' ? decode_q(t, tlen, tmp) : decode_b(t, tlen, tmp);
			enum cs c = charset_of(cs, cslen);
			bool ok = dn >= 0 && usable(c, tmp, (size_t)dn);

			/* White space between two decoded words goes. */
			if (pending_ws > 0 && !(ok && last_word) &&
			    buf_append(out, value + i - pending_ws, pending_ws) == -1)
				return -1;
			if ((ok ? put_utf8(c, tmp, (size_t)dn, out) : buf_append(out, value + i, wl)) == -1)
				return -1;
			pending_ws = 0;
			last_word = ok;
			i += wl;
			continue;
		}
		if (pending_ws > 0 && buf_append(out, value + i - pending_ws, pending_ws) == -1)
			return -1;
		pending_ws = 0;
		last_word = false;
		/* Up to the next white space or '=': one token of plain text. */
		do {
			if (buf_append(out, value + i, 1) == -1)
				return -1;
			i++;
		} while (i < len && value[i] != ' ' && value[i] != '\t' && value[i] != '=');
	}
	if (pending_ws > 0 && buf_append(out, value + len - pending_ws, pending_ws) == -1)
		return -1;
	(void)buf_cstr(out);
	return 0;
}
