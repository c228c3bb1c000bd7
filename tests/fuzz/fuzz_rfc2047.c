/* fuzz_rfc2047: libFuzzer target for node/rfc2047.c. Header values come
 * from any sender; decoding must stay in bounds, never grow past twice the
 * input, never bring in a NUL or line break the input did not have, and
 * keep valid UTF-8 valid. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rfc2047.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static bool
valid_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t len, k;
		uint32_t cp;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			len = 2, cp = p[i] & 0x1f;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			len = 3, cp = p[i] & 0x0f;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			len = 4, cp = p[i] & 0x07;
		else
			return false;
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += len;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out;
	const unsigned char *o;

	buf_init(&out, 0);
	check(rfc2047_decode((const char *)data, size, &out) == 0);
	o = (const unsigned char *)buf_data(&out);
	check(buf_len(&out) <= 2 * size);
	if (memchr(data, '\0', size) == NULL)
		check(buf_len(&out) == 0 || memchr(o, '\0', buf_len(&out)) == NULL);
	if (memchr(data, '\n', size) == NULL)
		check(buf_len(&out) == 0 || memchr(o, '\n', buf_len(&out)) == NULL);
	if (memchr(data, '\r', size) == NULL)
		check(buf_len(&out) == 0 || memchr(o, '\r', buf_len(&out)) == NULL);
	if (valid_utf8(data, size))
		check(valid_utf8(o, buf_len(&out)));
	/* Without "=?" there is nothing to decode. */
	if (size < 2 || memmem(data, size, "=?", 2) == NULL)
		check(buf_len(&out) == size && (size == 0 || memcmp(o, data, size) == 0));
	buf_free(&out);
	return 0;
}
