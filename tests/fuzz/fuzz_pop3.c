/* fuzz_pop3: libFuzzer target for node/pop3_parse.c. The first line of the
 * input is a command line as a client would send it; the rest is a stored
 * message sent back as RETR and as TOP. Whatever the bytes, the response
 * must be well-formed: CRLF lines, no line that is a lone "." before the
 * end, the message restored exactly by un-stuffing, TOP a prefix of it. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "pop3_parse.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* Send msg in pieces of varying size; return the response in out. */
static void
respond(const uint8_t *msg, size_t n, bool top, uint64_t lines, struct buf *out)
{
	struct pop3_stuffer st;
	size_t off = 0, step = 1;

	pop3_stuff_init(&st, top, lines);
	while (off < n && !st.done) {
		size_t k = n - off < step ? n - off : step;
		ssize_t r = pop3_stuff(&st, (const char *)msg + off, k, out);

		check(r >= 0 && (size_t)r <= k);
		check((size_t)r == k || st.done);
		off += (size_t)r;
		step = step * 3 % 97 + 1;
	}
	check(top || off == n);
	check(pop3_stuff_end(&st, out) == 0);
}

/* Undo the response: check its form, and rebuild the message with LF line
 * ends (CR before LF dropped) into plain. */
static void
unstuff(const struct buf *resp, struct buf *plain)
{
	const char *p = buf_data(resp), *end = p + buf_len(resp), *nl;

	check(buf_len(resp) >= 3 && memcmp(end - 3, ".\r\n", 3) == 0);
	check(buf_len(resp) == 3 || (end[-4] == '\n' && end[-5] == '\r'));
	end -= 3;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		check(nl != NULL && nl > p && nl[-1] == '\r');
		if (*p == '.') {
			check(nl - p > 2);	/* a lone "." would end the response */
			check(p[1] == '.');
			p++;
		}
		check(buf_append(plain, p, (size_t)(nl - 1 - p)) == 0);
		check(buf_append(plain, "\n", 1) == 0);
		p = nl + 1;
	}
}

/* The message as unstuff() gives it back: CR LF -> LF, a final LF added. */
static void
normalize(const uint8_t *msg, size_t n, struct buf *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (msg[i] == '\r' && i + 1 < n && msg[i + 1] == '\n')
			continue;
		check(buf_append(out, &msg[i], 1) == 0);
	}
	if (n > 0 && msg[n - 1] != '\n')
		check(buf_append(out, "\n", 1) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = size > 0 ? memchr(data, '\n', size) : NULL;
	size_t cmdlen = nl ? (size_t)(nl - data) : size;
	const uint8_t *msg = nl ? nl + 1 : data + size;
	size_t n = size - (size_t)(msg - data);
	struct pop3_cmd c;
	const char *why = NULL;
	struct buf resp, plain, want;
	uint64_t lines;

	if (pop3_parse((const char *)data, cmdlen, &c, &why) == 0) {
		check(c.name != NULL);
		check(c.arg == NULL || ((const uint8_t *)c.arg >= data &&
		    (const uint8_t *)c.arg + c.arglen <= data + cmdlen));
		check(c.arg2 == NULL || ((const uint8_t *)c.arg2 >= data &&
		    (const uint8_t *)c.arg2 + c.arg2len <= data + cmdlen));
		check(!c.has_msg || c.msg > 0);
	} else
		check(why != NULL && *why != '\0' && strchr(why, '\r') == NULL && strchr(why, '\n') == NULL);

	buf_init(&resp, 0);
	buf_init(&plain, 0);
	buf_init(&want, 0);
	/* RETR gives back exactly the message (line ends made CRLF) */
	respond(msg, n, false, 0, &resp);
	unstuff(&resp, &plain);
	normalize(msg, n, &want);
	/* a CR that ends the message or precedes a non-LF stays a CR */
	check(buf_len(&plain) == buf_len(&want));
	check(buf_len(&plain) == 0 || memcmp(buf_data(&plain), buf_data(&want), buf_len(&plain)) == 0);

	/* TOP gives a prefix of it */
	lines = cmdlen % 5;
	buf_reset(&resp);
	buf_reset(&plain);
	respond(msg, n, true, lines, &resp);
	unstuff(&resp, &plain);
	check(buf_len(&plain) <= buf_len(&want));
	check(buf_len(&plain) == 0 || memcmp(buf_data(&plain), buf_data(&want), buf_len(&plain)) == 0);
	buf_free(&resp);
	buf_free(&plain);
	buf_free(&want);
	return 0;
}
