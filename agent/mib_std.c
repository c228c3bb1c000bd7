/* mib_std: NETWORK-SERVICES-MIB applTable (RFC 2788), a row per service,
 * and MTA-MIB mtaTable and mtaGroupTable (RFC 2789) for the spool, whose
 * applIndex is the spool service's. Columns the node has no figures for
 * are left out rather than answered with made-up values. */
#include <string.h>

#include "mib_mailnode.h"
#include "mib_oids.h"
#include "mntable.h"

static time_t agent_started;

/* TimeStamp: hundredths of a second since the subagent started (its
 * sysUpTime), 0 for anything before. */
static uint64_t
timestamp(time_t t)
{
	return t > agent_started ? (uint64_t)(t - agent_started) * 100 : 0;
}

/* Counter32 values wrap like counters do. */
static void
c32(netsnmp_variable_list *v, uint64_t x)
{
	mnt_set_u32(v, ASN_COUNTER, x & 0xffffffffu);
}

/* applTable */
static size_t
appl_rows(const struct snapshot *s)
{
	return s->nservices;
}

static void
appl_index(const struct snapshot *s, size_t row, oid *idx, size_t *len)
{
	idx[0] = s->services[row].index;
	*len = 1;
}

static int
appl_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	const struct snap_service *x = &s->services[row];

	switch (col) {
	case 2: mnt_set_str(v, x->name); return 0;			/* applName */
	case 3: mnt_set_str(v, ""); return 0;				/* applDirectoryName */
	case 4: mnt_set_str(v, s->version); return 0;			/* applVersion */
	case 5:								/* applUptime */
		mnt_set_u32(v, ASN_TIMETICKS, x->oper == OPER_RUNNING ? timestamp(x->since) : 0);
		return 0;
	case 6:								/* applOperStatus */
		mnt_set_int(v, x->oper == OPER_RUNNING ? 1 : x->oper == OPER_STOPPING ? 6 : 2);
		return 0;
	case 7: mnt_set_u32(v, ASN_TIMETICKS, timestamp(x->since)); return 0; /* applLastChange */
	case 8: mnt_set_u32(v, ASN_GAUGE, x->current); return 0;	/* applInboundAssociations */
	case 10: c32(v, x->total); return 0;				/* ...AccumulatedInbound... */
	case 14: c32(v, x->rejected); return 0;				/* applRejectedInbound... */
	case 16: mnt_set_str(v, x->description); return 0;		/* applDescription */
	}
	return -1;
}

/* The spool is the MTA of MTA-MIB. */
static const struct snap_service *
spool(const struct snapshot *s)
{
	return snapshot_service_by_name(s, "spool");
}

static size_t
mta_rows(const struct snapshot *s)
{
	return spool(s) ? 1 : 0;
}

static void
mta_index(const struct snapshot *s, size_t row, oid *idx, size_t *len)
{
	(void)row;
	idx[0] = spool(s)->index;
	*len = 1;
}

static void
group_index(const struct snapshot *s, size_t row, oid *idx, size_t *len)
{
	(void)row;
	idx[0] = spool(s)->index;
	idx[1] = 1;	/* one group: the spool's queue */
	*len = 2;
}

static int
mta_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	(void)row;
	switch (col) {
	case 1: c32(v, s->msgs_in); return 0;				/* mtaReceivedMessages */
	case 2: mnt_set_u32(v, ASN_GAUGE, s->q_messages); return 0;	/* mtaStoredMessages */
	case 3: c32(v, s->msgs_out); return 0;				/* mtaTransmittedMessages */
	case 4: c32(v, s->bytes_in / 1024); return 0;			/* mtaReceivedVolume (K) */
	case 5: mnt_set_u32(v, ASN_GAUGE, (s->q_bytes + 1023) / 1024); return 0;
	case 6: c32(v, s->bytes_out / 1024); return 0;			/* mtaTransmittedVolume */
	case 7: c32(v, s->rcpts_in); return 0;				/* mtaReceivedRecipients */
	case 8: mnt_set_u32(v, ASN_GAUGE, s->q_local_rcpts + s->q_remote_rcpts); return 0;
	case 9: c32(v, s->rcpts_out); return 0;				/* mtaTransmittedRecipients */
	}
	return -1;
}

static int
group_get(const struct snapshot *s, size_t row, unsigned col, netsnmp_variable_list *v)
{
	switch (col) {
	case 2: return mta_get(s, row, 1, v);		/* mtaGroupReceivedMessages */
	case 4: return mta_get(s, row, 2, v);		/* mtaGroupStoredMessages */
	case 5: return mta_get(s, row, 3, v);		/* mtaGroupTransmittedMessages */
	case 6: return mta_get(s, row, 4, v);		/* mtaGroupReceivedVolume */
	case 7: return mta_get(s, row, 5, v);		/* mtaGroupStoredVolume */
	case 8: return mta_get(s, row, 6, v);		/* mtaGroupTransmittedVolume */
	case 9: return mta_get(s, row, 7, v);		/* mtaGroupReceivedRecipients */
	case 10: return mta_get(s, row, 8, v);		/* mtaGroupStoredRecipients */
	case 11: return mta_get(s, row, 9, v);		/* mtaGroupTransmittedRecipients */
	case 12: mnt_set_u32(v, ASN_GAUGE, s->q_oldest); return 0; /* mtaGroupOldestMessageStored */
	case 25: mnt_set_str(v, "spool"); return 0;	/* mtaGroupName */
	}
	return -1;
}

static struct mntable tables[] = {
	{ .name = "applTable", .root = { 1, 3, 6, 1, 2, 1, 27, 1 }, .rootlen = 8,
	  .entry = { APPL_ENTRY }, .entrylen = 9, .mincol = 2, .maxcol = 16,
	  .rows = appl_rows, .index = appl_index, .get = appl_get },
	{ .name = "mtaTable", .root = { 1, 3, 6, 1, 2, 1, 28, 1 }, .rootlen = 8,
	  .entry = { MTA_ENTRY }, .entrylen = 9, .mincol = 1, .maxcol = 9,
	  .rows = mta_rows, .index = mta_index, .get = mta_get },
	{ .name = "mtaGroupTable", .root = { 1, 3, 6, 1, 2, 1, 28, 2 }, .rootlen = 8,
	  .entry = { MTA_GROUP_ENTRY }, .entrylen = 9, .mincol = 2, .maxcol = 25,
	  .rows = mta_rows, .index = group_index, .get = group_get },
};

int
mib_std_register(time_t started)
{
	size_t i;

	agent_started = started;
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (mntable_register(&tables[i]) == -1) {
			snmp_log(LOG_ERR, "mailnode-snmp: cannot register %s\n", tables[i].name);
			return -1;
		}
	return 0;
}
