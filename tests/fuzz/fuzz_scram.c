/* fuzz_scram: libFuzzer target for the SCRAM-SHA-256 server (node/scram.c)
 * and its SASL framing (node/sasl_scram.c), which read what a client sends
 * before it has proved anything. The input is the client's first message, a
 * NUL, then its final message; neither may crash the exchange, and a final
 * message that did not come from the password must never be accepted. The
 * same bytes, cut at NULs, are also fed as base64 responses to the SASL
 * steps, which must never log anybody in. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl_scram.h"
#include "scram.h"

/* Up to four responses, as a client would send them, through the steps. */
static void
sasl_steps(const uint8_t *data, size_t size, const char *stored)
{
	struct login_result known = { .ok = true, .mailbox_id = 1, .tenant_id = 1 }, r;
	struct sasl_scram *x;
	struct buf out;
	size_t off = 0;
	int i;
	bool more = true;

	if ((x = sasl_scram_new()) == NULL)
		return;
	buf_init(&out, 0);
	for (i = 0; i < 4 && more && off <= size; i++) {
		const uint8_t *nul = memchr(data + off, '\0', size - off);
		size_t len = nul ? (size_t)(nul - (data + off)) : size - off;

		switch (sasl_scram_step(x, (const char *)data + off, len, &out)) {
		case SASL_SCRAM_LOOKUP:
			if (sasl_scram_keys(x, stored, &known, &out) == -1)
				more = false;
			break;
		case SASL_SCRAM_CHALLENGE:
			break;
		case SASL_SCRAM_DONE:
			/* No input knows the random nonce: nobody is proved. */
			sasl_scram_result(x, &r);
			if (r.ok || r.disabled)
				abort();
			more = false;
			break;
		case SASL_SCRAM_MALFORMED:
		case SASL_SCRAM_CANCELLED:
			more = false;
			break;
		}
		if (nul == NULL)
			break;
		off += len + 1;
	}
	sasl_scram_free(x);
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scram_keys keys;
	static char stored[SCRAM_STORED_MAX];
	static int ready;
	struct scram_server *s;
	const char *nul;
	char user[256], err[128];
	struct buf out;

	if (!ready) {
		if (scram_keys_make("fuzz password", stored, sizeof(stored), err, sizeof(err)) == -1 ||
		    scram_keys_parse(stored, &keys) == -1)
			abort();
		ready = 1;
	}
	if ((s = scram_server_new()) == NULL)
		return 0;
	buf_init(&out, 0);
	nul = memchr(data, '\0', size);
	if (scram_server_client_first(s, (const char *)data, nul ? (size_t)(nul - (const char *)data) : size,
	    user, sizeof(user), err, sizeof(err)) == 0 && scram_server_first(s, &keys, &out) == 0 && nul) {
		const char *fin = nul + 1;
		size_t flen = size - (size_t)(fin - (const char *)data);

		/* The server nonce is random: no input can carry a valid proof. */
		if (scram_server_client_final(s, fin, flen, &out, err, sizeof(err)) == 1)
			abort();
	}
	scram_server_free(s);
	buf_free(&out);
	sasl_steps(data, size, stored);
	return 0;
}
