/* fuzz_autoreply: libFuzzer target for node/autoreply.c. The header of
 * every message delivered to a mailbox with an autoreply is read by it, so
 * any bytes must be survived; the Message-ID and References it keeps must
 * be msg-ids that cannot break the reply's header, and the reply composed
 * from them must have only CRLF-terminated lines of at most 998 octets. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autoreply.h"
#include "buf.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static void
check_ids(const char *s)
{
	for (; *s; s++)
		check((unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const addrs[] = { "alice@demo.test", "team@demo.test" };
	struct autoreply_original o;
	struct autoreply_reply r;
	struct buf out;
	char *s;
	const char *p, *end, *nl;
	time_t t;
	size_t i;

	if (autoreply_inspect((const char *)data, size, addrs, 2, &o) == -1)
		return 0;
	check(o.message_id[0] == '\0' || (o.message_id[0] == '<' &&
	    o.message_id[strlen(o.message_id) - 1] == '>'));
	check_ids(o.message_id);
	for (p = buf_cstr(&o.references); *p; p++)
		check(*p == ' ' || ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f));

	/* The same bytes as subject and body of a reply. */
	if ((s = malloc(size + 1)) == NULL) {
		autoreply_original_free(&o);
		return 0;
	}
	memcpy(s, data, size);
	s[size] = '\0';
	(void)autoreply_time(s, &t);
	(void)autoreply_sender_ok(s);
	buf_init(&out, 0);
	r = (struct autoreply_reply){ .from = "alice@demo.test", .to = "carol@outside.example",
	    .subject = s, .body = s, .host = "node.test", .orig = &o, .now = 0 };
	if (autoreply_compose(&out, &r) == 0) {
		p = buf_data(&out);
		end = p + buf_len(&out);
		for (; p < end; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(end - p));
			check(nl != NULL && nl > p && nl[-1] == '\r');
			check((size_t)(nl - p) <= 999);
			for (i = 0; p + i < nl - 1; i++)
				check(p[i] != '\r' && p[i] != '\0');
		}
	}
	buf_free(&out);
	free(s);
	autoreply_original_free(&o);
	return 0;
}
