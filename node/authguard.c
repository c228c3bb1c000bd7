/* authguard: two small hash tables (addresses, accounts) of failure counts
 * with a decaying window, behind one mutex: a failed login is rare next to
 * everything else a loop does, and the tables stay bounded by dropping
 * entries whose window and block are over. */
#include "authguard.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NBUCKETS	4096
#define MAX_ENTRIES	200000	/* beyond this, new keys are not tracked */

struct entry {
	char		 key[264];	/* "a:<address bytes>" or "u:<account>" */
	size_t		 keylen;
	uint32_t	 fails;
	uint64_t	 first;		/* start of the current window */
	uint64_t	 blocked_until;
	struct entry	*next;
};

static struct {
	pthread_mutex_t	 lock;
	struct entry	*buckets[NBUCKETS];
	size_t		 count;
	uint64_t	 failures, blocks;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static size_t
hash(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29)) % NBUCKETS;
}

static size_t
key_addr(const struct addr *a, char *k)
{
	k[0] = 'a';
	k[1] = (char)a->family;
	memcpy(k + 2, a->bytes, sizeof(a->bytes));
	return 2 + sizeof(a->bytes);
}

static size_t
key_account(const char *account, char *k, size_t klen)
{
	size_t i, n = strlen(account);

	if (n + 2 > klen)
		n = klen - 2;
	k[0] = 'u';
	k[1] = ':';
	for (i = 0; i < n; i++)	/* accounts are case-insensitive addresses */
		k[2 + i] = (char)(account[i] >= 'A' && account[i] <= 'Z' ? account[i] + 32 : account[i]);
	return n + 2;
}

static bool
entry_done(const struct entry *e, uint64_t now)
{
	return e->blocked_until <= now && e->first + AUTHGUARD_WINDOW_S <= now;
}

static struct entry *
find(const char *k, size_t n, uint64_t now, bool create)
{
	struct entry **pp = &g.buckets[hash(k, n)], *e;

	while ((e = *pp) != NULL) {
		if (e->keylen == n && memcmp(e->key, k, n) == 0)
			break;
		if (entry_done(e, now)) {
			*pp = e->next;
			free(e);
			g.count--;
			continue;
		}
		pp = &e->next;
	}
	if (e) {
		if (e->first + AUTHGUARD_WINDOW_S <= now) {	/* a new window */
			e->fails = 0;
			e->first = now;
		}
		return e;
	}
	if (!create || g.count >= MAX_ENTRIES || (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->key, k, n);
	e->keylen = n;
	e->first = now;
	e->next = g.buckets[hash(k, n)];
	g.buckets[hash(k, n)] = e;
	g.count++;
	return e;
}

enum authguard_verdict
authguard_check(const struct addr *a, const char *account, bool exempt, uint64_t now)
{
	char k[sizeof(((struct entry *)0)->key)];
	size_t n;
	struct entry *e;
	enum authguard_verdict v = AUTHGUARD_OK;

	if (exempt)
		return AUTHGUARD_OK;
	pthread_mutex_lock(&g.lock);
	n = key_addr(a, k);
	if ((e = find(k, n, now, false)) != NULL && e->blocked_until > now)
		v = AUTHGUARD_IP_BLOCKED;
	else if (account && *account) {
		n = key_account(account, k, sizeof(k));
		if ((e = find(k, n, now, false)) != NULL && e->blocked_until > now)
			v = AUTHGUARD_ACCOUNT_BLOCKED;
	}
	pthread_mutex_unlock(&g.lock);
	return v;
}

static void
count_failure(struct entry *e, uint32_t threshold, uint64_t now)
{
	if (e == NULL)
		return;
	e->fails++;
	if (e->fails >= threshold && e->blocked_until <= now) {
		e->blocked_until = now + AUTHGUARD_BLOCK_S;
		g.blocks++;
	}
}

uint32_t
authguard_failed(const struct addr *a, const char *account, bool exempt, uint64_t now)
{
	char k[sizeof(((struct entry *)0)->key)];
	size_t n;
	struct entry *e;
	uint64_t delay;

	pthread_mutex_lock(&g.lock);
	g.failures++;
	if (exempt) {
		pthread_mutex_unlock(&g.lock);
		return AUTHGUARD_STEP_MS;
	}
	n = key_addr(a, k);
	e = find(k, n, now, true);
	count_failure(e, AUTHGUARD_IP_BLOCK, now);
	delay = (uint64_t)AUTHGUARD_STEP_MS * (e ? e->fails : 1);
	if (account && *account) {
		n = key_account(account, k, sizeof(k));
		count_failure(find(k, n, now, true), AUTHGUARD_ACCOUNT_BLOCK, now);
	}
	pthread_mutex_unlock(&g.lock);
	return delay > AUTHGUARD_MAX_DELAY_MS ? AUTHGUARD_MAX_DELAY_MS : (uint32_t)delay;
}

void
authguard_succeeded(const struct addr *a, const char *account)
{
	char k[sizeof(((struct entry *)0)->key)];
	size_t n;
	struct entry *e;

	(void)a;	/* an address's failures stay: one good login among many bad */
	if (account == NULL || *account == '\0')
		return;
	pthread_mutex_lock(&g.lock);
	n = key_account(account, k, sizeof(k));
	if ((e = find(k, n, 0, false)) != NULL)
		e->fails = 0;
	pthread_mutex_unlock(&g.lock);
}

void
authguard_totals(uint64_t *failures, uint64_t *blocks)
{
	pthread_mutex_lock(&g.lock);
	*failures = g.failures;
	*blocks = g.blocks;
	pthread_mutex_unlock(&g.lock);
}
