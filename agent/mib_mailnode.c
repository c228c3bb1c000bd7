/* mib_mailnode: MAILNODE-MIB. Getters read the snapshot; setters check one
 * varbind and stage its change (set_txn), with the bounds of node/settings.c
 * for service settings. */
#include "mib_mailnode.h"

#include <stdio.h>
#include <string.h>

#include "mib_oids.h"
#include "mntable.h"
#include "set_txn.h"
#include "snmp_index.h"
#include "settings.h"
#include "traps.h"

static size_t
one_row(const struct snapshot *s)
{
	(void)s;
	return 1;
}

static void
scalar_index(const struct snapshot *s, size_t row, oid *idx, size_t *len)
{
	(void)s;
	(void)row;
	idx[0] = 0;
	*len = 1;
}

static bool
scalar_ok(const oid *idx, size_t idxlen)
{
	return idxlen == 1 && idx[0] == 0;
}

static uint64_t
kib_up(uint64_t bytes)
{
	return (bytes + 1023) / 1024;
}

/* mnNode */
static int
node_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	(void)row;
	switch (col) {
	case 1: mnt_set_str(v, s->version); return 0;
	case 2: mnt_set_u32(v, ASN_TIMETICKS, s->uptime * 100); return 0;
	case 3: mnt_set_u32(v, ASN_UNSIGNED, s->generation & 0xffffffffu); return 0;	/* wraps */
	case 4: mnt_set_int(v, s->db_up ? 1 : 2); return 0;
	case 5: mnt_set_u32(v, ASN_GAUGE, s->sessions); return 0;
	case 6: mnt_set_int(v, s->reachable ? 1 : 2); return 0;
	}
	return -1;
}

/* mnQueue */
static int
queue_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	(void)row;
	switch (col) {
	case 1: mnt_set_u32(v, ASN_GAUGE, s->q_messages); return 0;
	case 2: mnt_set_u32(v, ASN_GAUGE, kib_up(s->q_bytes)); return 0;
	case 3: mnt_set_u32(v, ASN_GAUGE, s->q_oldest); return 0;
	case 4: mnt_set_u32(v, ASN_GAUGE, s->q_deferred); return 0;
	case 5: mnt_set_u32(v, ASN_GAUGE, s->q_held); return 0;
	}
	return -1;
}

/* mnThresholds: column n is threshold n-1. */
static int
thr_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	(void)s;
	(void)row;
	if (col < 1 || col > TRAPS_NTHRESHOLDS)
		return -1;
	mnt_set_u32(v, ASN_UNSIGNED, traps_threshold(col - 1));
	return 0;
}

static int
thr_set(const struct snapshot *s, const oid *idx, size_t idxlen, unsigned col,
    const netsnmp_variable_list *v)
{
	static const uint64_t lo[TRAPS_NTHRESHOLDS] = { 0, 0, 1, 0 };
	static const uint64_t hi[TRAPS_NTHRESHOLDS] = { 0xffffffffu, 0xffffffffu, 3600, 100 };
	uint64_t x;
	int err;

	(void)s;
	if (!scalar_ok(idx, idxlen))
		return SNMP_ERR_NOCREATION;
	if ((err = mnt_want_uint(v, ASN_UNSIGNED, lo[col - 1], hi[col - 1], &x)) != SNMP_ERR_NOERROR)
		return err;
	return set_txn_threshold(col - 1, (uint32_t)x) == 0 ? SNMP_ERR_NOERROR :
	    SNMP_ERR_RESOURCEUNAVAILABLE;
}

/* mnServiceTable */
static size_t
svc_rows(const struct snapshot *s)
{
	return s->nservices;
}

static void
svc_index(const struct snapshot *s, size_t row, oid *idx, size_t *len)
{
	idx[0] = s->services[row].index;
	*len = 1;
}

static int
svc_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	const struct snap_service *x = &s->services[row];

	switch (col) {
	case 2: mnt_set_str(v, x->name); return 0;
	case 3: mnt_set_str(v, x->description); return 0;
	case 4: mnt_set_int(v, x->oper); return 0;
	case 5: mnt_set_int(v, x->want_running ? 1 : 2); return 0;
	case 6: mnt_set_str(v, x->bind); return 0;
	case 7: mnt_set_u32(v, ASN_UNSIGNED, x->port); return 0;
	case 8: mnt_set_u32(v, ASN_UNSIGNED, x->max_clients); return 0;
	case 9: mnt_set_u32(v, ASN_UNSIGNED, x->timeout); return 0;
	case 10: mnt_set_int(v, x->auto_start ? 1 : 2); return 0;
	case 11: mnt_set_u32(v, ASN_GAUGE, x->current); return 0;
	case 12: mnt_set_c64(v, x->total); return 0;
	case 13: mnt_set_c64(v, x->rejected); return 0;
	case 14: mnt_set_date(v, x->since); return 0;
	case 15: mnt_set_int(v, x->access.mode); return 0;
	}
	return -1;
}

/* A numeric setting of a service with its bounds from settings_defs. */
static int
svc_setting(const struct snap_service *x, const char *key, const netsnmp_variable_list *v)
{
	const struct setting_def *d = settings_find(key);
	uint64_t val;
	int err;

	if (d == NULL)
		return SNMP_ERR_GENERR;
	if ((err = mnt_want_uint(v, ASN_UNSIGNED, d->min, d->max, &val)) != SNMP_ERR_NOERROR)
		return err;
	if (d->listener_only && !x->listener)
		return SNMP_ERR_INCONSISTENTVALUE;
	return set_txn_u64(TXN_SERVICE, x->name, key, val) == 0 ? SNMP_ERR_NOERROR :
	    SNMP_ERR_RESOURCEUNAVAILABLE;
}

static int
svc_set(const struct snapshot *s, const oid *idx, size_t idxlen, unsigned col,
    const netsnmp_variable_list *v)
{
	const struct snap_service *x;
	long n;
	int err, rc = 0;

	if (idxlen != 1 || (x = snapshot_service_by_index(s, (unsigned)idx[0])) == NULL)
		return SNMP_ERR_NOCREATION;
	switch (col) {
	case 5:
		if ((err = mnt_want_int(v, 1, 2, &n)) != SNMP_ERR_NOERROR)
			return err;
		/* admin cannot stop; a service without its protocol cannot start. */
		if ((n == 2 && !x->stoppable) || (n == 1 && !x->available))
			return SNMP_ERR_INCONSISTENTVALUE;
		rc = set_txn_str(TXN_SERVICE, x->name, "state", n == 1 ? "running" : "stopped");
		break;
	case 7:
		return svc_setting(x, "port", v);
	case 8:
		return svc_setting(x, "maxClients", v);
	case 9:
		return svc_setting(x, "timeout", v);
	case 10:
		if ((err = mnt_want_int(v, 1, 2, &n)) != SNMP_ERR_NOERROR)
			return err;
		rc = set_txn_bool(TXN_SERVICE, x->name, "autoStart", n == 1);
		break;
	case 15:
		if ((err = mnt_want_int(v, 1, 3, &n)) != SNMP_ERR_NOERROR)
			return err;
		if (!x->listener)
			return SNMP_ERR_INCONSISTENTVALUE;
		rc = set_txn_mode(TXN_SERVICE, x->name, (int)n);
		break;
	default:
		return SNMP_ERR_NOTWRITABLE;
	}
	return rc == 0 ? SNMP_ERR_NOERROR : SNMP_ERR_RESOURCEUNAVAILABLE;
}

/* mnTenantTable */
static size_t
ten_rows(const struct snapshot *s)
{
	return s->ntenants;
}

static void
ten_index(const struct snapshot *s, size_t row, oid *idx, size_t *len)
{
	idx[0] = s->tenants[row].id;
	*len = 1;
}

static int
ten_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	const struct snap_tenant *t = &s->tenants[row];

	switch (col) {
	case 2: mnt_set_str(v, t->name); return 0;
	case 3: mnt_set_int(v, t->suspended ? 2 : 1); return 0;
	case 4: mnt_set_u32(v, ASN_UNSIGNED, t->limit[LIMIT_DOMAINS]); return 0;
	case 5: mnt_set_u32(v, ASN_UNSIGNED, t->limit[LIMIT_MAILBOXES]); return 0;
	case 6: mnt_set_u32(v, ASN_UNSIGNED, t->limit[LIMIT_ALIASES]); return 0;
	case 7: mnt_set_u32(v, ASN_UNSIGNED, t->limit[LIMIT_STORAGE] / (1024 * 1024)); return 0;
	case 8: mnt_set_u32(v, ASN_UNSIGNED, t->limit[LIMIT_MESSAGE_SIZE] / 1024); return 0;
	case 9: mnt_set_c64(v, t->msgs_in); return 0;
	case 10: mnt_set_c64(v, t->msgs_out); return 0;
	case 11: mnt_set_c64(v, t->bytes_in); return 0;
	case 12: mnt_set_c64(v, t->bytes_out); return 0;
	case 13: mnt_set_c64(v, t->rejected); return 0;
	case 14: mnt_set_c64(v, t->auth_failures); return 0;
	case 15: mnt_set_u32(v, ASN_GAUGE, t->mailboxes); return 0;
	case 16: mnt_set_u32(v, ASN_GAUGE, kib_up(t->storage_used)); return 0;
	case 17: mnt_set_u32(v, ASN_GAUGE, t->sessions); return 0;
	case 18: mnt_set_u32(v, ASN_GAUGE, t->domains); return 0;
	case 19: mnt_set_int(v, t->access.mode); return 0;
	}
	return -1;
}

static int
ten_set(const struct snapshot *s, const oid *idx, size_t idxlen, unsigned col,
    const netsnmp_variable_list *v)
{
	/* Columns 4..8: the limit, its bound, and bytes per unit. */
	static const struct { const char *key; uint64_t max, unit; } lim[] = {
		{ "limits.domains", 1000000, 1 }, { "limits.mailboxes", 10000000, 1 },
		{ "limits.aliases", 10000000, 1 }, { "limits.storage", 0xffffffffu, 1024 * 1024 },
		{ "limits.messageSize", 0xffffffffu, 1024 },
	};
	const struct snap_tenant *t;
	uint64_t x;
	long n;
	int err, rc;

	if (idxlen != 1 || idx[0] > 0xffffffffu ||
	    (t = snapshot_tenant_by_id(s, (uint32_t)idx[0])) == NULL)
		return SNMP_ERR_NOCREATION;
	switch (col) {
	case 3:
		if ((err = mnt_want_int(v, 1, 2, &n)) != SNMP_ERR_NOERROR)
			return err;
		rc = set_txn_str(TXN_TENANT, t->name, "state", n == 1 ? "active" : "suspended");
		break;
	case 4: case 5: case 6: case 7: case 8:
		if ((err = mnt_want_uint(v, ASN_UNSIGNED, 0, lim[col - 4].max, &x)) != SNMP_ERR_NOERROR)
			return err;
		rc = set_txn_u64(TXN_TENANT, t->name, lim[col - 4].key, x * lim[col - 4].unit);
		break;
	case 19:
		if ((err = mnt_want_int(v, 1, 3, &n)) != SNMP_ERR_NOERROR)
			return err;
		rc = set_txn_mode(TXN_TENANT, t->name, (int)n);
		break;
	default:
		return SNMP_ERR_NOTWRITABLE;
	}
	return rc == 0 ? SNMP_ERR_NOERROR : SNMP_ERR_RESOURCEUNAVAILABLE;
}

/* mnAccessRuleTable */
static size_t
rule_rows(const struct snapshot *s)
{
	return s->nrules;
}

static void
rule_index(const struct snapshot *s, size_t row, oid *idx, size_t *len)
{
	memcpy(idx, s->rules[row].idx, s->rules[row].idxlen * sizeof(oid));
	*len = s->rules[row].idxlen;
}

static int
rule_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	switch (col) {
	case 4: mnt_set_int(v, s->rules[row].mode); return 0;
	case 5: mnt_set_int(v, 1); return 0;	/* active */
	}
	return -1;
}

static int
rule_set(const struct snapshot *s, const oid *idx, size_t idxlen, unsigned col,
    const netsnmp_variable_list *v)
{
	char scope[SNMP_INDEX_SCOPE_MAX + 1], addr[SNMP_INDEX_ADDR_MAX + 1];
	enum txn_rule_op op;
	long n;
	int err, type;

	if (col != 5)
		return SNMP_ERR_NOTWRITABLE;
	if (snmp_index_rule_decode(idx, idxlen, &type, scope, addr) == -1)
		return SNMP_ERR_NOCREATION;
	if ((err = mnt_want_int(v, 1, 6, &n)) != SNMP_ERR_NOERROR)
		return err;
	switch (n) {
	case 1: op = RULE_ACTIVE; break;
	case 4: op = RULE_CREATE; break;
	case 6: op = RULE_DESTROY; break;
	default: return SNMP_ERR_WRONGVALUE;	/* createAndWait, notInService, notReady */
	}
	if (type == SNMP_SCOPE_SERVICE) {
		const struct snap_service *x = snapshot_service_by_name(s, scope);

		if (x == NULL)
			return SNMP_ERR_INCONSISTENTNAME;
		if (!x->listener)
			return SNMP_ERR_INCONSISTENTVALUE;
	} else if (snapshot_tenant_by_name(s, scope) == NULL)
		return SNMP_ERR_INCONSISTENTNAME;
	if (op == RULE_CREATE && !snmp_index_pattern_ok(addr))
		return SNMP_ERR_WRONGVALUE;
	return set_txn_rule(type == SNMP_SCOPE_SERVICE ? TXN_SERVICE : TXN_TENANT, scope, addr, op) == 0 ?
	    SNMP_ERR_NOERROR : SNMP_ERR_RESOURCEUNAVAILABLE;
}

static struct mntable tables[] = {
	{ .name = "mnNode", .root = { MN_NODE }, .entry = { MN_NODE }, .mincol = 1, .maxcol = 6,
	  .rows = one_row, .index = scalar_index, .get = node_get },
	{ .name = "mnServiceTable", .root = { MN_OBJECTS, 2 }, .entry = { MN_SERVICE_ENTRY },
	  .mincol = 2, .maxcol = 15, .rows = svc_rows, .index = svc_index, .get = svc_get,
	  .set = svc_set },
	{ .name = "mnTenantTable", .root = { MN_OBJECTS, 3 }, .entry = { MN_TENANT_ENTRY },
	  .mincol = 2, .maxcol = 19, .rows = ten_rows, .index = ten_index, .get = ten_get,
	  .set = ten_set },
	{ .name = "mnAccessRuleTable", .root = { MN_OBJECTS, 4 }, .entry = { MN_ACCESS_ENTRY },
	  .mincol = 4, .maxcol = 5, .rows = rule_rows, .index = rule_index, .get = rule_get,
	  .set = rule_set },
	{ .name = "mnQueue", .root = { MN_QUEUE }, .entry = { MN_QUEUE }, .mincol = 1, .maxcol = 5,
	  .rows = one_row, .index = scalar_index, .get = queue_get },
	{ .name = "mnThresholds", .root = { MN_THRESHOLDS }, .entry = { MN_THRESHOLDS },
	  .mincol = 1, .maxcol = TRAPS_NTHRESHOLDS, .rows = one_row, .index = scalar_index,
	  .get = thr_get, .set = thr_set },
};

static size_t
oid_len(const oid *o)
{
	static const oid base[] = { MAILNODE_ENTERPRISE_OID };
	size_t n = OID_LENGTH(base);

	/* Our OIDs are the enterprise arc plus a few non-zero arcs. */
	while (n < MAX_OID_LEN && o[n] != 0)
		n++;
	return n;
}

int
mib_mailnode_register(void)
{
	size_t i;

	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		tables[i].rootlen = oid_len(tables[i].root);
		tables[i].entrylen = oid_len(tables[i].entry);
		if (mntable_register(&tables[i]) == -1) {
			snmp_log(LOG_ERR, "mailnode-snmp: cannot register %s\n", tables[i].name);
			return -1;
		}
	}
	return 0;
}
