/* fuzz_request_line: libFuzzer target for the control API's request line
 * parser and query lookup (node/api.c). The line comes from any local
 * client; what is accepted must be terminated, start its path with '/',
 * hold no control characters, and put back together give the line again. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define FUZZ_MAXLEN	2048

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* NUL-terminated within its array, with no control character before. */
static bool
clean_field(const char *f, size_t size)
{
	const char *end = memchr(f, '\0', size);

	if (end == NULL)
		return false;
	for (; f < end; f++)
		if ((unsigned char)*f < 0x20 || *f == 0x7f)
			return false;
	return true;
}

static void
fuzz_line(const uint8_t *data, size_t size)
{
	struct api_request r;
	char again[FUZZ_MAXLEN + 8];
	size_t n;

	memset(&r, 0xaa, sizeof(r));
	if (api_parse_request_line(&r, (const char *)data, size) != 0)
		return;
	check(clean_field(r.method, sizeof(r.method)));
	check(clean_field(r.path, sizeof(r.path)));
	check(clean_field(r.query, sizeof(r.query)));
	check(r.method[0] != '\0' && strchr(r.method, ' ') == NULL);
	check(r.path[0] == '/');
	check(strchr(r.path, ' ') == NULL && strchr(r.path, '?') == NULL);

	/* METHOD SP PATH [? QUERY] is the whole line */
	n = (size_t)snprintf(again, sizeof(again), "%s %s", r.method, r.path);
	check(n <= size && memcmp(again, data, n) == 0);
	if (n < size) {
		check(data[n] == '?');
		check(size - n - 1 == strlen(r.query));
		check(memcmp(data + n + 1, r.query, size - n - 1) == 0);
	} else
		check(r.query[0] == '\0');
}

/* Input: one byte of key length, one of output size, the key, the query. */
static void
fuzz_query(const uint8_t *data, size_t size)
{
	char key[256], query[FUZZ_MAXLEN + 1], out[256];
	size_t klen, outlen, vlen;
	const char *seg;

	if (size < 2)
		return;
	klen = data[0] % 32;
	outlen = data[1] % sizeof(out);
	data += 2;
	size -= 2;
	if (klen > size)
		klen = size;
	memcpy(key, data, klen);
	key[klen] = '\0';
	memcpy(query, data + klen, size - klen);
	query[size - klen] = '\0';
	klen = strlen(key);

	memset(out, 0xaa, sizeof(out));
	if (api_query_get(query, key, out, outlen) != 0)
		return;
	check(outlen > 0);
	check(memchr(out, '\0', outlen) != NULL);
	vlen = strlen(out);
	check(vlen < outlen);
	check(strchr(out, '&') == NULL);
	/* the value is a whole segment "key=value" of the query */
	for (seg = query; seg != NULL; seg = strchr(seg, '&') ? strchr(seg, '&') + 1 : NULL)
		if (strncmp(seg, key, klen) == 0 && seg[klen] == '=' &&
		    strncmp(seg + klen + 1, out, vlen) == 0 &&
		    (seg[klen + 1 + vlen] == '&' || seg[klen + 1 + vlen] == '\0'))
			break;
	check(seg != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_MAXLEN)
		size = FUZZ_MAXLEN;
	if (data == NULL)
		data = (const uint8_t *)"";
	fuzz_line(data, size);
	fuzz_query(data, size);
	return 0;
}
