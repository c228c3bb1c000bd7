/* mntable: the generic handler. Rows are found by binary search on their
 * index, so a GETNEXT costs O(log n) whatever the table size. */
#include "mntable.h"

#include <string.h>

#include "set_txn.h"

/* First row whose index is greater than (or, exact, equal to) idx. */
static size_t
row_search(const struct mntable *t, const struct snapshot *s, const oid *idx, size_t idxlen,
    int exact, int *found)
{
	size_t lo = 0, hi = t->rows(s);
	oid ri[MNT_MAX_INDEX];
	size_t rl;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c;

		t->index(s, mid, ri, &rl);
		c = snmp_oid_compare(ri, rl, idx, idxlen);
		if (c == 0 && exact) {
			*found = 1;
			return mid;
		}
		if (c <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
answer_name(const struct mntable *t, netsnmp_variable_list *var, unsigned col, const oid *idx,
    size_t idxlen)
{
	oid name[MAX_OID_LEN];

	memcpy(name, t->entry, t->entrylen * sizeof(oid));
	name[t->entrylen] = col;
	memcpy(name + t->entrylen + 1, idx, idxlen * sizeof(oid));
	snmp_set_var_objid(var, name, t->entrylen + 1 + idxlen);
}

static void
do_get(const struct mntable *t, const struct snapshot *s, netsnmp_request_info *r)
{
	netsnmp_variable_list *var = r->requestvb;
	int found;
	size_t row;

	if (var->name_length <= t->entrylen + 1 ||
	    snmp_oid_compare(var->name, t->entrylen, t->entry, t->entrylen) != 0 ||
	    var->name[t->entrylen] < t->mincol || var->name[t->entrylen] > t->maxcol) {
		netsnmp_set_request_error(NULL, r, SNMP_NOSUCHOBJECT);
		return;
	}
	row = row_search(t, s, var->name + t->entrylen + 1, var->name_length - t->entrylen - 1, 1,
	    &found);
	if (!found || t->get(s, row, (unsigned)var->name[t->entrylen], var) == -1)
		netsnmp_set_request_error(NULL, r, SNMP_NOSUCHINSTANCE);
}

static void
do_getnext(const struct mntable *t, const struct snapshot *s, netsnmp_request_info *r)
{
	netsnmp_variable_list *var = r->requestvb;
	const oid *idx = NULL;
	size_t idxlen = 0, n = t->rows(s), row;
	unsigned col = t->mincol;
	int c = snmp_oid_compare(var->name, var->name_length < t->entrylen ? var->name_length :
	    t->entrylen, t->entry, t->entrylen);
	oid ri[MNT_MAX_INDEX];
	size_t rl;

	if (c > 0)
		return;		/* past us: the agent asks the next subtree */
	if (c == 0 && var->name_length > t->entrylen) {
		if (var->name[t->entrylen] > t->maxcol)
			return;
		if (var->name[t->entrylen] >= t->mincol) {
			col = (unsigned)var->name[t->entrylen];
			idx = var->name + t->entrylen + 1;
			idxlen = var->name_length - t->entrylen - 1;
		}
	}
	for (; col <= t->maxcol; col++, idx = NULL, idxlen = 0) {
		int found;

		row = idx ? row_search(t, s, idx, idxlen, 0, &found) : 0;
		for (; row < n; row++) {
			if (t->get(s, row, col, var) == -1)
				continue;
			t->index(s, row, ri, &rl);
			answer_name(t, var, col, ri, rl);
			return;
		}
	}
}

static int
mntable_handler(netsnmp_mib_handler *handler, netsnmp_handler_registration *reg,
    netsnmp_agent_request_info *reqinfo, netsnmp_request_info *requests)
{
	const struct mntable *t = handler->myvoid;
	const struct snapshot *s;
	netsnmp_request_info *r;
	int err;

	(void)reg;
	switch (reqinfo->mode) {
	case MODE_GET:
	case MODE_GETNEXT:
		s = snapshot_get(1000);
		for (r = requests; r; r = r->next) {
			if (r->processed)
				continue;
			if (reqinfo->mode == MODE_GET)
				do_get(t, s, r);
			else
				do_getnext(t, s, r);
		}
		break;
	case MODE_SET_RESERVE1:
		set_txn_begin(reqinfo);
		s = snapshot_get(1000);
		for (r = requests; r; r = r->next) {
			netsnmp_variable_list *var = r->requestvb;

			if (t->set == NULL) {
				netsnmp_set_request_error(reqinfo, r, SNMP_ERR_NOTWRITABLE);
				continue;
			}
			if (var->name_length <= t->entrylen + 1 ||
			    snmp_oid_compare(var->name, t->entrylen, t->entry, t->entrylen) != 0 ||
			    var->name[t->entrylen] < t->mincol || var->name[t->entrylen] > t->maxcol) {
				netsnmp_set_request_error(reqinfo, r, SNMP_ERR_NOCREATION);
				continue;
			}
			err = t->set(s, var->name + t->entrylen + 1, var->name_length - t->entrylen - 1,
			    (unsigned)var->name[t->entrylen], var);
			if (err != SNMP_ERR_NOERROR)
				netsnmp_set_request_error(reqinfo, r, err);
		}
		break;
	case MODE_SET_RESERVE2:
		if ((err = set_txn_validate(reqinfo)) != SNMP_ERR_NOERROR)
			netsnmp_set_request_error(reqinfo, requests, err);
		break;
	case MODE_SET_ACTION:
		if ((err = set_txn_action(reqinfo)) != SNMP_ERR_NOERROR)
			netsnmp_set_request_error(reqinfo, requests, err);
		break;
	case MODE_SET_UNDO:
		if ((err = set_txn_undo(reqinfo)) != SNMP_ERR_NOERROR)
			netsnmp_set_request_error(reqinfo, requests, err);
		break;
	case MODE_SET_COMMIT:
		set_txn_commit(reqinfo);
		break;
	case MODE_SET_FREE:
		set_txn_abort(reqinfo);
		break;
	default:
		break;
	}
	return SNMP_ERR_NOERROR;
}

int
mntable_register(struct mntable *t)
{
	netsnmp_handler_registration *reg;

	reg = netsnmp_create_handler_registration(t->name, mntable_handler, t->root, t->rootlen,
	    t->set ? HANDLER_CAN_RWRITE : HANDLER_CAN_RONLY);
	if (reg == NULL)
		return -1;
	reg->handler->myvoid = t;
	return netsnmp_register_handler(reg) == MIB_REGISTERED_OK ? 0 : -1;
}

void
mnt_set_u32(netsnmp_variable_list *v, u_char type, uint64_t x)
{
	u_long u = x > 0xffffffffu ? 0xffffffffu : (u_long)x;

	snmp_set_var_typed_value(v, type, &u, sizeof(u));
}

void
mnt_set_c64(netsnmp_variable_list *v, uint64_t x)
{
	struct counter64 c;

	c.high = (u_long)(x >> 32);
	c.low = (u_long)(x & 0xffffffffu);
	snmp_set_var_typed_value(v, ASN_COUNTER64, &c, sizeof(c));
}

void
mnt_set_str(netsnmp_variable_list *v, const char *s)
{
	snmp_set_var_typed_value(v, ASN_OCTET_STR, s, strlen(s));
}

void
mnt_set_int(netsnmp_variable_list *v, long x)
{
	snmp_set_var_typed_value(v, ASN_INTEGER, &x, sizeof(x));
}

/* DateAndTime (SNMPv2-TC), UTC: 8 octets plus direction and offset. */
void
mnt_set_date(netsnmp_variable_list *v, time_t t)
{
	struct tm tm;
	u_char b[11];

	memset(&tm, 0, sizeof(tm));
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	b[0] = (u_char)((tm.tm_year + 1900) >> 8);
	b[1] = (u_char)((tm.tm_year + 1900) & 0xff);
	b[2] = (u_char)(tm.tm_mon + 1);
	b[3] = (u_char)tm.tm_mday;
	b[4] = (u_char)tm.tm_hour;
	b[5] = (u_char)tm.tm_min;
	b[6] = (u_char)tm.tm_sec;
	b[7] = 0;
	b[8] = '+';
	b[9] = 0;
	b[10] = 0;
	snmp_set_var_typed_value(v, ASN_OCTET_STR, b, sizeof(b));
}

int
mnt_want_uint(const netsnmp_variable_list *v, u_char type, uint64_t min, uint64_t max,
    uint64_t *out)
{
	if (v->type != type)
		return SNMP_ERR_WRONGTYPE;
	if (v->val_len != sizeof(long))
		return SNMP_ERR_WRONGLENGTH;
	*out = (uint64_t)*v->val.integer & 0xffffffffu;
	if (*out < min || *out > max)
		return SNMP_ERR_WRONGVALUE;
	return SNMP_ERR_NOERROR;
}

int
mnt_want_int(const netsnmp_variable_list *v, long min, long max, long *out)
{
	if (v->type != ASN_INTEGER)
		return SNMP_ERR_WRONGTYPE;
	if (v->val_len != sizeof(long))
		return SNMP_ERR_WRONGLENGTH;
	*out = *v->val.integer;
	if (*out < min || *out > max)
		return SNMP_ERR_WRONGVALUE;
	return SNMP_ERR_NOERROR;
}
