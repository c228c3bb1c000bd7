/* tenant_stats: live traffic counters per tenant (messages and bytes in
 * and out, failed logins) and for the whole node, kept in memory since the
 * node started. Safe to call from every loop and worker thread. */
#ifndef MAILNODE_TENANT_STATS_H
#define MAILNODE_TENANT_STATS_H

#include <stddef.h>
#include <stdint.h>

enum tenant_stat {
	TENANT_STAT_MSGS_IN,		/* messages accepted (250 to DATA/BDAT) */
	TENANT_STAT_BYTES_IN,
	TENANT_STAT_RCPTS_IN,		/* their recipients */
	TENANT_STAT_MSGS_OUT,		/* messages handed over to another server */
	TENANT_STAT_BYTES_OUT,
	TENANT_STAT_RCPTS_OUT,		/* recipients that server accepted */
	TENANT_STAT_AUTH_FAILURES,	/* failed logins to the tenant's mailboxes */
	TENANT_STAT_RATE_REFUSALS,	/* submissions refused by limits.sendRate */
	TENANT_STAT_COUNT
};

struct tenant_stats_row {
	char		name[64];
	uint64_t	v[TENANT_STAT_COUNT];
};

/* Add n to a counter of tenant and to the node's total; tenant NULL or ""
 * counts in the total only (mail or logins no tenant owns). */
void	 tenant_stats_add(const char *tenant, enum tenant_stat, uint64_t n);
/* The counters of one tenant (zeros when it has none yet). */
void	 tenant_stats_get(const char *tenant, uint64_t v[TENANT_STAT_COUNT]);
/* The node's totals. */
void	 tenant_stats_totals(uint64_t v[TENANT_STAT_COUNT]);
/* Every tenant with counters, in name order; caller frees. */
int	 tenant_stats_snapshot(struct tenant_stats_row **, size_t *);
/* Forget everything (unit tests). */
void	 tenant_stats_reset(void);
/* The API name of a counter ("messagesIn"). */
const char *tenant_stats_name(enum tenant_stat);

#endif
