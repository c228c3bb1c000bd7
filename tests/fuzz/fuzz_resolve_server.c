/* fuzz_resolve_server: libFuzzer target for the --dns-server parser in
 * node/resolve.c: whatever it accepts is one entry in normal form that
 * parses again to itself; whatever it refuses leaves the list as it was. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resolve.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct resolve_conf c, again;
	char spec[128], err[128];

	if (size >= sizeof(spec))
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	memset(&c, 0, sizeof(c));
	if (resolve_add_server(&c, spec, err, sizeof(err)) == -1) {
		check(c.servers[0] == '\0' && err[0] != '\0');
		return 0;
	}
	check(strlen(c.servers) < sizeof(c.servers) && strchr(c.servers, ',') == NULL);
	/* The normal form is a fixed point of the parser. */
	memset(&again, 0, sizeof(again));
	check(resolve_add_server(&again, c.servers, err, sizeof(err)) == 0);
	check(strcmp(again.servers, c.servers) == 0);
	return 0;
}
