/* fuzz_mime: libFuzzer target for node/mime.c. Every message that arrives
 * by SMTP or APPEND goes through the parser, so it must survive any bytes;
 * what it prints must be well-formed IMAP, and every section range the
 * index gives must lie inside the message. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* The output is one parenthesized list of NIL, numbers, quoted strings and
 * literals, as an IMAP client would read it. */
static void
check_imap_list(const char *s, size_t n)
{
	size_t i = 0, depth = 0, len;
	bool top_done = false, after_item = false;	/* a space only between items */

	while (i < n) {
		check(!top_done);
		if (s[i] == ' ') {
			check(depth > 0 && after_item);
			after_item = false;
			i++;
			continue;
		}
		after_item = true;
		if (s[i] == '(') {
			depth++;
			i++;
			after_item = false;
		} else if (s[i] == ')') {
			check(depth > 0);
			depth--;
			i++;
			if (depth == 0)
				top_done = true;
		} else if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++) {
				check(s[i] != '\r' && s[i] != '\n' && (unsigned char)s[i] < 0x80 && s[i] != '\0');
				if (s[i] == '\\') {
					i++;
					check(i < n && (s[i] == '"' || s[i] == '\\'));
				}
			}
			check(i < n);
			i++;
		} else if (s[i] == '{') {
			for (len = 0, i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
				len = len * 10 + (size_t)(s[i] - '0');
			check(i + 3 <= n && s[i] == '}' && s[i + 1] == '\r' && s[i + 2] == '\n');
			i += 3;
			check(len <= n - i);
			i += len;
		} else if (s[i] >= '0' && s[i] <= '9') {
			while (i < n && s[i] >= '0' && s[i] <= '9')
				i++;
		} else {
			check(n - i >= 3 && memcmp(s + i, "NIL", 3) == 0);
			i += 3;
		}
	}
	check(top_done && depth == 0);
}

static void
check_section(const char *index, const char *section, size_t size)
{
	size_t off, len;

	if (mime_index_section(index, section, &off, &len) == 0)
		check(off <= size && len <= size - off);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const suffix[] = { "", ".MIME", ".HEADER", ".TEXT" };
	struct mime_message *m;
	struct buf out;
	char sec[32];
	size_t a, b, c, k;

	if (mime_parse((const char *)data, size, &m) == -1)
		return 0;
	buf_init(&out, 0);
	check(mime_envelope(m, &out) == 0);
	check_imap_list(buf_data(&out), buf_len(&out));
	buf_reset(&out);
	check(mime_bodystructure(m, false, &out) == 0);
	check_imap_list(buf_data(&out), buf_len(&out));
	buf_reset(&out);
	check(mime_bodystructure(m, true, &out) == 0);
	check_imap_list(buf_data(&out), buf_len(&out));
	buf_reset(&out);
	check(mime_index_encode(m, &out) == 0);
	mime_free(m);

	{
		const char *idx = buf_cstr(&out);
		size_t off, len;

		/* the whole message is the whole input */
		check(mime_index_section(idx, "", &off, &len) == 0 && off == 0 && len == size);
		check(mime_index_section(idx, "HEADER", &off, &len) == 0 && off == 0 && len <= size);
		check_section(idx, "TEXT", size);
		for (a = 1; a <= 3; a++)
			for (k = 0; k < 4; k++) {
				snprintf(sec, sizeof(sec), "%zu%s", a, suffix[k]);
				check_section(idx, sec, size);
				for (b = 1; b <= 3; b++) {
					snprintf(sec, sizeof(sec), "%zu.%zu%s", a, b, suffix[k]);
					check_section(idx, sec, size);
					for (c = 1; c <= 3; c++) {
						snprintf(sec, sizeof(sec), "%zu.%zu.%zu%s", a, b, c, suffix[k]);
						check_section(idx, sec, size);
					}
				}
			}
	}
	buf_free(&out);

	/* the index reader gets damaged text too */
	if (size < 4096) {
		char *s = malloc(size + 1);

		check(s != NULL);
		memcpy(s, data, size);
		s[size] = '\0';
		(void)mime_index_section(s, "1.2", &a, &b);
		(void)mime_index_section(s, "1.HEADER", &a, &b);
		free(s);
	}
	return 0;
}
