/* sendrate: a sliding window per tenant, estimated from two fixed windows
 * (the current one and the one before, weighted by how much of it still
 * overlaps the last per seconds): O(1) memory per tenant whatever the rate,
 * at most one message off at the window edges. One mutex: it is taken
 * twice per message, next to an fsync and a commit. */
#include "sendrate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SR_BUCKETS	256

struct sr_entry {
	struct sr_entry	*next;
	char		 name[64];
	uint64_t	 per_ms;	/* the window length the counts are for */
	uint64_t	 window;	/* index of the current fixed window */
	uint64_t	 cur, prev;	/* messages in it and in the one before */
};

static pthread_mutex_t	 sr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sr_entry	*sr_table[SR_BUCKETS];

static unsigned
sr_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % SR_BUCKETS;
}

/* Called with sr_lock held. */
static struct sr_entry *
sr_find(const char *tenant, bool create)
{
	unsigned h = sr_hash(tenant);
	struct sr_entry *e;

	for (e = sr_table[h]; e; e = e->next)
		if (strcmp(e->name, tenant) == 0)
			return e;
	if (!create || strlen(tenant) >= sizeof(e->name) || (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->name, tenant, strlen(tenant) + 1);
	e->next = sr_table[h];
	sr_table[h] = e;
	return e;
}

/* Move e's windows on to now; a new rate length starts afresh. */
static void
sr_roll(struct sr_entry *e, uint64_t per_ms, uint64_t now_ms)
{
	uint64_t w = now_ms / per_ms;

	if (e->per_ms != per_ms) {
		e->per_ms = per_ms;
		e->cur = e->prev = 0;
		e->window = w;
		return;
	}
	if (w == e->window)
		return;
	e->prev = w == e->window + 1 ? e->cur : 0;
	e->cur = 0;
	e->window = w;
}

/* Does one more fit? Integer form of prev * (1 - elapsed/per) + cur + 1 <= count. */
static bool
sr_fits(const struct sr_entry *e, uint32_t count, uint64_t now_ms)
{
	uint64_t left = e->per_ms - (now_ms - e->window * e->per_ms);

	return e->prev * left + (e->cur + 1) * e->per_ms <= (uint64_t)count * e->per_ms;
}

static bool
sr_check(const char *tenant, uint32_t count, uint32_t per_s, uint64_t now_ms, bool take)
{
	struct sr_entry *e;
	bool ok;

	if (count == 0 || per_s == 0 || tenant == NULL || *tenant == '\0')
		return true;
	pthread_mutex_lock(&sr_lock);
	if ((e = sr_find(tenant, true)) == NULL) {
		/* No memory for the counter: refuse, as the limit is not kept. */
		pthread_mutex_unlock(&sr_lock);
		return false;
	}
	sr_roll(e, (uint64_t)per_s * 1000, now_ms);
	ok = sr_fits(e, count, now_ms);
	if (ok && take)
		e->cur++;
	pthread_mutex_unlock(&sr_lock);
	return ok;
}

bool
sendrate_allowed(const char *tenant, uint32_t count, uint32_t per_s, uint64_t now_ms)
{
	return sr_check(tenant, count, per_s, now_ms, false);
}

bool
sendrate_take(const char *tenant, uint32_t count, uint32_t per_s, uint64_t now_ms)
{
	return sr_check(tenant, count, per_s, now_ms, true);
}

void
sendrate_give_back(const char *tenant, uint64_t taken_ms)
{
	struct sr_entry *e;

	if (tenant == NULL || *tenant == '\0')
		return;
	pthread_mutex_lock(&sr_lock);
	if ((e = sr_find(tenant, false)) != NULL && e->per_ms) {
		uint64_t w = taken_ms / e->per_ms;

		if (w == e->window && e->cur > 0)
			e->cur--;
		else if (w + 1 == e->window && e->prev > 0)
			e->prev--;
	}
	pthread_mutex_unlock(&sr_lock);
}

void
sendrate_reset(void)
{
	size_t i;

	pthread_mutex_lock(&sr_lock);
	for (i = 0; i < SR_BUCKETS; i++)
		while (sr_table[i]) {
			struct sr_entry *e = sr_table[i];

			sr_table[i] = e->next;
			free(e);
		}
	pthread_mutex_unlock(&sr_lock);
}
