/* fuzz_mutf7: libFuzzer target for node/mutf7.c. Folder names come from
 * IMAP clients as modified UTF-7; whatever decodes must encode back to the
 * very same bytes (one canonical form per name), and whatever UTF-8 is
 * valid must survive encode -> decode unchanged. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf utf8, enc, back;
	char *s;

	buf_init(&utf8, 0);
	buf_init(&enc, 0);
	buf_init(&back, 0);

	/* modified UTF-7 in: decode -> encode reproduces the input */
	if (mutf7_decode((const char *)data, size, &utf8) == 0) {
		check(memchr(buf_cstr(&utf8), '\0', buf_len(&utf8)) == NULL);
		check(mutf7_encode(buf_cstr(&utf8), &enc) == 0);
		check(buf_len(&enc) == size && memcmp(buf_data(&enc), data, size) == 0);
	}

	/* UTF-8 in: encode -> decode gives it back, and the encoding is
	 * printable ASCII */
	if ((s = malloc(size + 1)) == NULL)
		goto done;
	memcpy(s, data, size);
	s[size] = '\0';
	buf_reset(&enc);
	if (mutf7_encode(s, &enc) == 0) {
		size_t i;

		for (i = 0; i < buf_len(&enc); i++)
			check(buf_data(&enc)[i] >= 0x20 && buf_data(&enc)[i] <= 0x7e);
		check(mutf7_decode(buf_data(&enc), buf_len(&enc), &back) == 0);
		check(buf_len(&back) == strlen(s) && memcmp(buf_data(&back), s, buf_len(&back)) == 0);
	}
	free(s);
done:
	buf_free(&utf8);
	buf_free(&enc);
	buf_free(&back);
	return 0;
}
