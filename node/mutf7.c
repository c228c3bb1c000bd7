/* mutf7: the base64 variant uses ',' for '/', no padding, and '&' ... '-'
 * around each run of UTF-16 units; '&' itself is "&-". */
#include "mutf7.h"

#include <stdbool.h>
#include <stdint.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* One code point from UTF-8; -1 when malformed. */
static int
utf8_next(const unsigned char **pp, uint32_t *cp)
{
	const unsigned char *p = *pp;
	uint32_t c = p[0], min;
	int more, i;

	if (c < 0x80) {
		*cp = c;
		*pp = p + 1;
		return 0;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		more = 1;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		more = 2;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		more = 3;
		c &= 0x07;
		min = 0x10000;
	} else
		return -1;
	for (i = 1; i <= more; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*cp = c;
	*pp = p + more + 1;
	return 0;
}

static int
put_utf8(struct buf *out, uint32_t c)
{
	char u[4];
	size_t n;

	if (c < 0x80) {
		u[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (char)(0xc0 | (c >> 6));
		u[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (char)(0xe0 | (c >> 12));
		u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (c >> 18));
		u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	return buf_append(out, u, n);
}

int
mutf7_encode(const char *utf8, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)utf8;

	while (*p) {
		uint32_t bits = 0;
		int nbits = 0;

		if (*p >= 0x20 && *p <= 0x7e) {
			if (*p == '&' ? buf_puts(out, "&-") == -1 : buf_append(out, p, 1) == -1)
				return -1;
			p++;
			continue;
		}
		if (buf_puts(out, "&") == -1)
			return -1;
		while (*p && !(*p >= 0x20 && *p <= 0x7e)) {
			uint32_t c, units[2];
			int nu, i;

			if (utf8_next(&p, &c) == -1)
				return -1;
			if (c >= 0x10000) {
				c -= 0x10000;
				units[0] = 0xd800 | (c >> 10);
				units[1] = 0xdc00 | (c & 0x3ff);
				nu = 2;
			} else {
				units[0] = c;
				nu = 1;
			}
			for (i = 0; i < nu; i++) {
				bits = (bits << 16) | units[i];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					if (buf_append(out, &b64[(bits >> nbits) & 0x3f], 1) == -1)
						return -1;
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0 && buf_append(out, &b64[(bits << (6 - nbits)) & 0x3f], 1) == -1)
			return -1;
		if (buf_puts(out, "-") == -1)
			return -1;
	}
	(void)buf_cstr(out);
	return 0;
}

int
mutf7_decode(const char *s, size_t len, struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		uint32_t bits = 0, high = 0;
		int nbits = 0;
		bool any = false;

		if (c < 0x20 || c > 0x7e)
			return -1;
		if (c != '&') {
			if (buf_append(out, &c, 1) == -1)
				return -1;
			i++;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			if (buf_puts(out, "&") == -1)
				return -1;
			i++;
			continue;
		}
		for (; i < len && s[i] != '-'; i++) {
			int v = b64val((unsigned char)s[i]);

			if (v < 0)
				return -1;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits >= 16) {
				uint32_t u;

				nbits -= 16;
				u = (bits >> nbits) & 0xffff;
				bits &= (1u << nbits) - 1;
				any = true;
				if (high) {
					if (u < 0xdc00 || u > 0xdfff)
						return -1;
					if (put_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00)) == -1)
						return -1;
					high = 0;
				} else if (u >= 0xd800 && u <= 0xdbff)
					high = u;
				else if (u >= 0xdc00 && u <= 0xdfff)
					return -1;
				else if ((u >= 0x20 && u <= 0x7e) || u == 0)
					return -1;	/* sent as itself, or a NUL no name holds */
				else if (put_utf8(out, u) == -1)
					return -1;
			}
		}
		/* A run ends with '-', holds at least one unit, no half pair,
		 * and its leftover bits (fewer than 6) are zero. */
		if (i >= len || !any || high || nbits >= 6 || bits != 0)
			return -1;
		i++;
		/* Two runs back to back are one run written twice: the encoder
		 * never does that, so a name would have two spellings. */
		if (i + 1 < len && s[i] == '&' && s[i + 1] != '-')
			return -1;
	}
	(void)buf_cstr(out);
	return 0;
}
