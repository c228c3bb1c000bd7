/* mntable: one handler for every table (and scalar group) the subagent
 * serves. A table is a sorted list of rows with index OIDs and a getter
 * per column; GET and GETNEXT are answered from the snapshot, SETs are
 * checked and staged per varbind (RESERVE1), validated together (RESERVE2)
 * and applied together (ACTION) by set_txn. A scalar group is a table of
 * one row whose index is .0. */
#ifndef MAILNODE_MNTABLE_H
#define MAILNODE_MNTABLE_H

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>

#include "snapshot.h"

#define MNT_MAX_INDEX	128

struct mntable {
	const char	*name;
	oid		 root[MAX_OID_LEN];	/* registration: the table or group */
	size_t		 rootlen;
	oid		 entry[MAX_OID_LEN];	/* columns hang under this */
	size_t		 entrylen;
	unsigned	 mincol, maxcol;
	size_t	(*rows)(const struct snapshot *);
	/* Index OID of row i; rows are in index order. */
	void	(*index)(const struct snapshot *, size_t row, oid *idx, size_t *len);
	/* Put the value of a column into var; -1: no such column or value. */
	int	(*get)(const struct snapshot *, size_t row, unsigned col, netsnmp_variable_list *);
	/* RESERVE1 of one varbind: check it and stage the change with
	 * set_txn; returns SNMP_ERR_NOERROR or the error. NULL: read-only. */
	int	(*set)(const struct snapshot *, const oid *idx, size_t idxlen, unsigned col,
		    const netsnmp_variable_list *);
};

int	 mntable_register(struct mntable *);
/* Helpers for getters. */
void	 mnt_set_u32(netsnmp_variable_list *, u_char type, uint64_t);
void	 mnt_set_c64(netsnmp_variable_list *, uint64_t);
void	 mnt_set_str(netsnmp_variable_list *, const char *);
void	 mnt_set_int(netsnmp_variable_list *, long);
void	 mnt_set_date(netsnmp_variable_list *, time_t);
/* Helpers for setters: check the type and fetch the value. */
int	 mnt_want_uint(const netsnmp_variable_list *, u_char type, uint64_t min, uint64_t max,
	    uint64_t *out);
int	 mnt_want_int(const netsnmp_variable_list *, long min, long max, long *out);

#endif
