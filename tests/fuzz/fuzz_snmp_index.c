/* fuzz_snmp_index: the access rule table's index, as a manager's OID gives
 * it to mailnode-snmp. Whatever decodes must encode back to the same
 * sub-identifiers, and the pattern check must not crash on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snmp_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned long idx[160], back[SNMP_INDEX_RULE_MAX];
	char scope[SNMP_INDEX_SCOPE_MAX + 1], addr[SNMP_INDEX_ADDR_MAX + 1];
	size_t n = 0, i, len;
	int type;

	/* A byte is one sub-identifier; 0xff takes the next four bytes as a
	 * large one, so huge lengths and characters are reached too. */
	for (i = 0; i < size && n < sizeof(idx) / sizeof(idx[0]); i++) {
		if (data[i] == 0xff && i + 4 < size) {
			uint32_t v;

			memcpy(&v, data + i + 1, 4);
			idx[n++] = v;
			i += 4;
		} else
			idx[n++] = data[i];
	}
	if (snmp_index_rule_decode(idx, n, &type, scope, addr) == -1)
		return 0;
	if (snmp_index_rule_encode(type, scope, addr, back, &len) != 0 || len != n ||
	    memcmp(back, idx, n * sizeof(idx[0])) != 0)
		abort();
	(void)snmp_index_pattern_ok(addr);
	return 0;
}
