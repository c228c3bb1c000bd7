/* tenant_stats: per-tenant traffic counters in a hash table under one
 * mutex; they change once per message or failed login, so one lock is
 * cheap next to the work that bumps them. */
#include "tenant_stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TS_BUCKETS	1024

struct ts_entry {
	struct ts_entry	*next;
	char		 name[64];
	uint64_t	 v[TENANT_STAT_COUNT];
};

static pthread_mutex_t	 ts_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ts_entry	*ts_table[TS_BUCKETS];
static size_t		 ts_count;
static uint64_t		 ts_total[TENANT_STAT_COUNT];

static const char *const ts_names[TENANT_STAT_COUNT] = {
	"messagesIn", "bytesIn", "recipientsIn", "messagesOut", "bytesOut",
	"recipientsOut", "authFailures", "sendRateRefusals"
};

const char *
tenant_stats_name(enum tenant_stat s)
{
	return (unsigned)s < TENANT_STAT_COUNT ? ts_names[s] : "?";
}

static unsigned
ts_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % TS_BUCKETS;
}

/* Called with ts_lock held. */
static struct ts_entry *
ts_find(const char *tenant, int create)
{
	unsigned h = ts_hash(tenant);
	struct ts_entry *e;

	for (e = ts_table[h]; e; e = e->next)
		if (strcmp(e->name, tenant) == 0)
			return e;
	if (!create || strlen(tenant) >= sizeof(e->name) || (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->name, tenant, strlen(tenant) + 1);
	e->next = ts_table[h];
	ts_table[h] = e;
	ts_count++;
	return e;
}

void
tenant_stats_add(const char *tenant, enum tenant_stat s, uint64_t n)
{
	struct ts_entry *e;

	if ((unsigned)s >= TENANT_STAT_COUNT)
		return;
	pthread_mutex_lock(&ts_lock);
	ts_total[s] += n;
	if (tenant && *tenant && (e = ts_find(tenant, 1)) != NULL)
		e->v[s] += n;
	pthread_mutex_unlock(&ts_lock);
}

void
tenant_stats_get(const char *tenant, uint64_t v[TENANT_STAT_COUNT])
{
	struct ts_entry *e;

	pthread_mutex_lock(&ts_lock);
	if ((e = ts_find(tenant, 0)) != NULL)
		memcpy(v, e->v, sizeof(e->v));
	else
		memset(v, 0, sizeof(e->v));
	pthread_mutex_unlock(&ts_lock);
}

void
tenant_stats_totals(uint64_t v[TENANT_STAT_COUNT])
{
	pthread_mutex_lock(&ts_lock);
	memcpy(v, ts_total, sizeof(ts_total));
	pthread_mutex_unlock(&ts_lock);
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tenant_stats_row *)a)->name,
	    ((const struct tenant_stats_row *)b)->name);
}

int
tenant_stats_snapshot(struct tenant_stats_row **out, size_t *n)
{
	struct ts_entry *e;
	size_t i, k = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&ts_lock);
	if (ts_count == 0) {
		pthread_mutex_unlock(&ts_lock);
		return 0;
	}
	if ((*out = calloc(ts_count, sizeof(**out))) == NULL) {
		pthread_mutex_unlock(&ts_lock);
		return -1;
	}
	for (i = 0; i < TS_BUCKETS; i++)
		for (e = ts_table[i]; e; e = e->next) {
			memcpy((*out)[k].name, e->name, sizeof(e->name));
			memcpy((*out)[k].v, e->v, sizeof(e->v));
			k++;
		}
	pthread_mutex_unlock(&ts_lock);
	qsort(*out, k, sizeof(**out), row_cmp);
	*n = k;
	return 0;
}

void
tenant_stats_reset(void)
{
	size_t i;

	pthread_mutex_lock(&ts_lock);
	for (i = 0; i < TS_BUCKETS; i++)
		while (ts_table[i]) {
			struct ts_entry *e = ts_table[i];

			ts_table[i] = e->next;
			free(e);
		}
	ts_count = 0;
	memset(ts_total, 0, sizeof(ts_total));
	pthread_mutex_unlock(&ts_lock);
}
