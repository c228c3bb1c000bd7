/* fuzz_scram: libFuzzer target for the SCRAM-SHA-256 server (node/scram.c),
 * which reads what a client sends before it has proved anything. The input
 * is the client's first message, a NUL, then its final message; neither
 * may crash the exchange, and a final message that did not come from the
 * password must never be accepted. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scram.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scram_keys keys;
	static int ready;
	struct scram_server *s;
	const char *nul;
	char user[256], err[128];
	struct buf out;

	if (!ready) {
		char stored[SCRAM_STORED_MAX];

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
	return 0;
}
