/* fuzz_access: libFuzzer target for the access engine's rule compiler
 * (node/access.c, node/addrset.c). The input is a rules document (the JSON
 * the provisioning API stores) up to a NUL, then addresses one per line;
 * whatever compiles must answer every address exactly as scanning the
 * patterns one by one does. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "addrset.h"

#define MAX_PATTERNS	256

static void
check(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *nul, *line, *save = NULL, err[256];
	const char *pats[MAX_PATTERNS];
	struct addr_pattern parsed[MAX_PATTERNS];
	size_t npats = 0, i;
	struct access_rules *r;
	struct addrset *set;

	if (size > 8192 || (text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	nul = memchr(text, '\0', size);
	/* The rules document: must compile or say why, never crash. */
	if ((r = access_rules_compile(text, nul ? nul + 1 : NULL, err, sizeof(err))) != NULL)
		access_rules_free(r);
	else
		check(err[0] != '\0');
	/* Lines as patterns up to an empty line, then as probes. */
	line = strtok_r(nul ? nul + 1 : text, "\n", &save);
	for (; line && *line != '=' && npats < MAX_PATTERNS; line = strtok_r(NULL, "\n", &save)) {
		if (addr_pattern_parse(line, &parsed[npats], err, sizeof(err)) == 0)
			pats[npats++] = line;
	}
	set = addrset_compile(pats, npats, err, sizeof(err));
	check(set != NULL);
	for (; line; line = strtok_r(NULL, "\n", &save)) {
		struct addr a;
		bool ref = false;

		if (addr_parse(line + (*line == '='), &a) != 0)
			continue;
		for (i = 0; i < npats && !ref; i++)
			ref = addr_pattern_match(&parsed[i], &a);
		check(addrset_contains(set, &a) == ref);
	}
	addrset_free(set);
	free(text);
	return 0;
}
