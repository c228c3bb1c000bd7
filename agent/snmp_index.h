/* snmp_index: the index of mnAccessRuleTable rows (scope type, then the
 * scope's name and the address pattern as length-prefixed strings), read
 * from the OIDs a manager sends and written for the rows we serve. Free of
 * the agent library so tests and fuzz targets use it as it is. */
#ifndef MAILNODE_SNMP_INDEX_H
#define MAILNODE_SNMP_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#define SNMP_INDEX_SCOPE_MAX	63
#define SNMP_INDEX_ADDR_MAX	50
#define SNMP_INDEX_RULE_MAX	(1 + 1 + SNMP_INDEX_SCOPE_MAX + 1 + SNMP_INDEX_ADDR_MAX)

enum { SNMP_SCOPE_SERVICE = 1, SNMP_SCOPE_TENANT = 2 };

/* -1 when the name or pattern is empty, too long or not printable. */
int	 snmp_index_rule_encode(int type, const char *scope, const char *address,
	    unsigned long *out, size_t *len);
/* -1 unless idx is exactly a type (1 or 2) and two printable strings of
 * the allowed lengths. */
int	 snmp_index_rule_decode(const unsigned long *idx, size_t len, int *type,
	    char scope[SNMP_INDEX_SCOPE_MAX + 1], char address[SNMP_INDEX_ADDR_MAX + 1]);
/* Whether the node's access rule parser takes the pattern. */
bool	 snmp_index_pattern_ok(const char *address);

#endif
