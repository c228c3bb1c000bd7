/* addrset: a list of address patterns compiled into sorted, disjoint
 * ranges, so asking whether an address is in a list of tens of thousands
 * of rules costs one binary search. */
#ifndef MAILNODE_ADDRSET_H
#define MAILNODE_ADDRSET_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

struct addrset;

/* Compile n patterns (the syntax of addr_pattern_parse). On a bad pattern
 * returns NULL with its index and reason in err. An empty list is valid. */
struct addrset	*addrset_compile(const char *const *patterns, size_t n, char *err, size_t errlen);
void		 addrset_free(struct addrset *);
bool		 addrset_contains(const struct addrset *, const struct addr *);
/* Disjoint ranges after merging (what the set costs to search). */
size_t		 addrset_ranges(const struct addrset *);

#endif
