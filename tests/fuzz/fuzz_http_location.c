/* fuzz_http_location: libFuzzer target for svc_http_location (node/svc_http.c).
 * Host header and URI come from any client of the plain-HTTP port; the
 * redirect built from them must be one https URL with no byte that could end
 * or split the Location header, and its authority must be the client's host,
 * never something that points elsewhere. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc_http.h"

#define FUZZ_MAXLEN	4096

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* Input: two bytes of https port, a flags byte (bit 0: no URI at all, bit 1:
 * a small output buffer), then HOST '\n' URI. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[FUZZ_MAXLEN + 1], out[2048], want_port[16];
	const char *host, *uri, *auth, *path;
	unsigned port;
	size_t outlen, i;
	uint8_t flags;
	char *nl;

	if (size < 3)
		return 0;
	port = (unsigned)data[0] << 8 | data[1];
	flags = data[2];
	data += 3;
	size -= 3;
	if (size > FUZZ_MAXLEN)
		size = FUZZ_MAXLEN;
	if (size > 0)
		memcpy(in, data, size);
	in[size] = '\0';
	host = in;
	uri = NULL;
	if ((nl = strchr(in, '\n')) != NULL) {
		*nl = '\0';
		uri = nl + 1;
	}
	if (flags & 1)
		uri = NULL;
	outlen = (flags & 2) ? 32 : sizeof(out);

	memset(out, 0xaa, sizeof(out));
	if (svc_http_location(host, uri, port, out, outlen) != 0)
		return 0;
	check(memchr(out, '\0', outlen) != NULL);
	check(strncmp(out, "https://", 8) == 0);
	for (i = 0; out[i] != '\0'; i++)
		check((unsigned char)out[i] > 0x20 && out[i] != 0x7f);

	/* the authority ends where the path begins, and the path is the URI */
	auth = out + 8;
	path = strchr(auth, '/');
	check(path != NULL && path > auth);
	if (uri != NULL && uri[0] == '/')
		check(strcmp(path, uri) == 0);
	else
		check(strcmp(path, "/") == 0);
	/* nothing in the authority can name another host or a user */
	for (i = 0; auth + i < path; i++)
		check(strchr("@\\?#%", auth[i]) == NULL);
	/* the port is the https port, given only when it is not 443 */
	if (port == 443)
		snprintf(want_port, sizeof(want_port), "%s", "");
	else
		snprintf(want_port, sizeof(want_port), ":%u", port);
	check((size_t)(path - auth) > strlen(want_port));
	check(strncmp(path - strlen(want_port), want_port, strlen(want_port)) == 0);
	/* and what is left of the authority is where the Host header began */
	check(strncmp(auth, host, (size_t)(path - auth) - strlen(want_port)) == 0);
	return 0;
}
