/* snmp_index: length-prefixed strings in OIDs (RFC 2578 7.7 for a
 * variable-length OCTET STRING index), each sub-identifier one character. */
#include "snmp_index.h"

#include <stdio.h>
#include <string.h>

#include "access.h"

static bool
printable(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

int
snmp_index_rule_encode(int type, const char *scope, const char *address, unsigned long *out,
    size_t *len)
{
	size_t ns = strlen(scope), na = strlen(address), i, k = 0;

	if ((type != SNMP_SCOPE_SERVICE && type != SNMP_SCOPE_TENANT) || ns < 1 ||
	    ns > SNMP_INDEX_SCOPE_MAX || na < 1 || na > SNMP_INDEX_ADDR_MAX ||
	    !printable(scope, ns) || !printable(address, na))
		return -1;
	out[k++] = (unsigned long)type;
	out[k++] = ns;
	for (i = 0; i < ns; i++)
		out[k++] = (unsigned char)scope[i];
	out[k++] = na;
	for (i = 0; i < na; i++)
		out[k++] = (unsigned char)address[i];
	*len = k;
	return 0;
}

/* One length-prefixed string at *p; advances past it. */
static int
take_string(const unsigned long **p, size_t *left, size_t max, char *out)
{
	size_t n, i;

	if (*left < 1 || (*p)[0] < 1 || (*p)[0] > max || *left - 1 < (*p)[0])
		return -1;
	n = (*p)[0];
	for (i = 0; i < n; i++) {
		unsigned long c = (*p)[1 + i];

		if (c < 0x21 || c > 0x7e)
			return -1;
		out[i] = (char)c;
	}
	out[n] = '\0';
	*p += 1 + n;
	*left -= 1 + n;
	return 0;
}

int
snmp_index_rule_decode(const unsigned long *idx, size_t len, int *type,
    char scope[SNMP_INDEX_SCOPE_MAX + 1], char address[SNMP_INDEX_ADDR_MAX + 1])
{
	const unsigned long *p = idx + 1;
	size_t left;

	if (len < 1 || (idx[0] != SNMP_SCOPE_SERVICE && idx[0] != SNMP_SCOPE_TENANT))
		return -1;
	left = len - 1;
	if (take_string(&p, &left, SNMP_INDEX_SCOPE_MAX, scope) == -1 ||
	    take_string(&p, &left, SNMP_INDEX_ADDR_MAX, address) == -1 || left != 0)
		return -1;
	*type = (int)idx[0];
	return 0;
}

bool
snmp_index_pattern_ok(const char *address)
{
	struct access_rules *r;
	char json[128], err[128];
	size_t i;

	/* Only pattern characters: nothing that could break out of the JSON. */
	for (i = 0; address[i]; i++)
		if (strchr("0123456789abcdefABCDEF.:*/", address[i]) == NULL)
			return false;
	if (i == 0 || i > SNMP_INDEX_ADDR_MAX)
		return false;
	snprintf(json, sizeof(json), "{\"mode\":\"deny-listed\",\"addresses\":[\"%s\"]}", address);
	if ((r = access_rules_compile(json, NULL, err, sizeof(err))) == NULL)
		return false;
	access_rules_free(r);
	return true;
}
