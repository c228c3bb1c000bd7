/* access: compiled rules behind one lock per scope. An admission is a
 * binary search in the rule ranges and one hash lookup of the client's
 * address; the per-minute window is the usual two-bucket estimate (the
 * previous minute weighted by how much of it still lies in the last 60 s),
 * exact enough for a limit and O(1) in memory per address. */
#include "access.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addrset.h"
#include "ydoc.h"

enum access_mode { MODE_OPEN, MODE_DENY_LISTED, MODE_ALLOW_LISTED };

struct access_rules {
	enum access_mode	 mode;
	struct addrset		*list;
	struct addrset		*exempt;
	uint32_t		 max_concurrent;	/* per address; 0: none */
	uint32_t		 per_minute;		/* per address; 0: none */
};

/* One client address seen by a scope. */
struct peer_entry {
	struct addr		 a;
	uint32_t		 current;
	uint32_t		 cur, prev;	/* connections in this and the previous minute */
	uint64_t		 minute;	/* which minute cur counts */
	struct peer_entry	*next;
};

#define TABLE_MIN	64

struct access_scope {
	char			 name[64];
	pthread_mutex_t		 lock;
	struct access_rules	*rules;		/* NULL: open, no limits */
	struct peer_entry	**buckets;
	size_t			 nbuckets, count;
	atomic_uint		 refs;
	atomic_uint_fast64_t	 accepted, rejected_access, rejected_limit, auth_failures, current;
};

/* Rules */

static int
compile_list(const struct ydoc_node *seq, struct addrset **out, const char *what,
    char *err, size_t errlen)
{
	const char **pats = NULL;
	char why[192];
	size_t i, n = seq ? ydoc_count(seq) : 0;

	*out = NULL;
	if (seq && seq->type != YDOC_SEQ) {
		snprintf(err, errlen, "%s: not a list", what);
		return -1;
	}
	if (n > 0 && (pats = calloc(n, sizeof(*pats))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((pats[i] = ydoc_str(seq->items[i])) == NULL) {
			snprintf(err, errlen, "%s: item %zu is not an address", what, i);
			free(pats);
			return -1;
		}
	}
	*out = addrset_compile(pats, n, why, sizeof(why));
	free(pats);
	if (*out == NULL) {
		snprintf(err, errlen, "%s: %s", what, why);
		return -1;
	}
	return 0;
}

static int
get_uint(const struct ydoc_node *map, const char *key, uint32_t *out, char *err, size_t errlen)
{
	const char *s = ydoc_str(ydoc_get(map, key));
	char *end;
	unsigned long v;

	*out = 0;
	if (s == NULL)
		return 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || v > UINT32_MAX) {
		snprintf(err, errlen, "%s: not a count: %s", key, s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static struct ydoc_node *
parse_json(const char *json, struct ydoc_stream **ys, char *err, size_t errlen)
{
	char why[192];

	*ys = NULL;
	if (json == NULL || *json == '\0')
		return NULL;
	if (ydoc_parse(json, strlen(json), ys, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	if ((*ys)->ndocs != 1 || (*ys)->docs[0]->type != YDOC_MAP) {
		snprintf(err, errlen, "not an object");
		return NULL;
	}
	return (*ys)->docs[0];
}

struct access_rules *
access_rules_compile(const char *access_json, const char *connections_json, char *err, size_t errlen)
{
	struct access_rules *r;
	struct ydoc_stream *ya = NULL, *yc = NULL;
	struct ydoc_node *a, *c;
	const char *mode;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	err[0] = '\0';
	a = parse_json(access_json, &ya, err, errlen);
	if (a == NULL && err[0])
		goto fail;
	c = parse_json(connections_json, &yc, err, errlen);
	if (c == NULL && err[0])
		goto fail;
	if (a) {
		mode = ydoc_str(ydoc_get(a, "mode"));
		if (mode == NULL || strcmp(mode, "open") == 0)
			r->mode = MODE_OPEN;
		else if (strcmp(mode, "deny-listed") == 0)
			r->mode = MODE_DENY_LISTED;
		else if (strcmp(mode, "allow-listed") == 0)
			r->mode = MODE_ALLOW_LISTED;
		else {
			snprintf(err, errlen, "access.mode: unknown mode %s", mode);
			goto fail;
		}
		if (compile_list(ydoc_get(a, "addresses"), &r->list, "access.addresses", err, errlen) == -1)
			goto fail;
	}
	if (c) {
		if (get_uint(c, "maxConcurrent", &r->max_concurrent, err, errlen) == -1 ||
		    get_uint(c, "perIpPerMinute", &r->per_minute, err, errlen) == -1 ||
		    compile_list(ydoc_get(c, "exempt"), &r->exempt, "connections.exempt", err, errlen) == -1)
			goto fail;
	}
	ydoc_free(ya);
	ydoc_free(yc);
	return r;
fail:
	ydoc_free(ya);
	ydoc_free(yc);
	access_rules_free(r);
	return NULL;
}

void
access_rules_free(struct access_rules *r)
{
	if (r == NULL)
		return;
	addrset_free(r->list);
	addrset_free(r->exempt);
	free(r);
}

static bool
rules_allow(const struct access_rules *r, const struct addr *a)
{
	if (r == NULL)
		return true;
	switch (r->mode) {
	case MODE_DENY_LISTED:
		return !addrset_contains(r->list, a);
	case MODE_ALLOW_LISTED:
		return addrset_contains(r->list, a);
	case MODE_OPEN:
		break;
	}
	return true;
}

static bool
rules_limit_addresses(const struct access_rules *r)
{
	return r && (r->max_concurrent > 0 || r->per_minute > 0);
}

/* Scopes */

struct access_scope *
access_scope_new(const char *name)
{
	struct access_scope *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	return s;
}

static void
table_clear(struct access_scope *s)
{
	size_t i;

	for (i = 0; i < s->nbuckets; i++) {
		struct peer_entry *e = s->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(s->buckets);
	s->buckets = NULL;
	s->nbuckets = s->count = 0;
}

void
access_scope_ref(struct access_scope *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void
access_scope_unref(struct access_scope *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	table_clear(s);
	access_rules_free(s->rules);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const char *
access_scope_name(const struct access_scope *s)
{
	return s->name;
}

void
access_scope_set_rules(struct access_scope *s, struct access_rules *r)
{
	struct access_rules *old;

	pthread_mutex_lock(&s->lock);
	old = s->rules;
	s->rules = r;
	pthread_mutex_unlock(&s->lock);
	access_rules_free(old);
}

uint64_t
access_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static size_t
addr_hash(const struct addr *a, size_t nbuckets)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	h = (h ^ (uint64_t)a->family) * 1099511628211ULL;
	for (i = 0; i < sizeof(a->bytes); i++)
		h = (h ^ a->bytes[i]) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 32)) & (nbuckets - 1);
}

static bool
same_addr(const struct addr *x, const struct addr *y)
{
	return x->family == y->family && memcmp(x->bytes, y->bytes, sizeof(x->bytes)) == 0;
}

/* Move the window to now's minute. */
static void
entry_roll(struct peer_entry *e, uint64_t minute)
{
	if (minute == e->minute)
		return;
	e->prev = minute == e->minute + 1 ? e->cur : 0;
	e->cur = 0;
	e->minute = minute;
}

/* Nothing open and nothing counted in the last minute: forget it. */
static bool
entry_stale(const struct peer_entry *e, uint64_t minute)
{
	return e->current == 0 && e->minute + 1 < minute;
}

static void
table_grow(struct access_scope *s, uint64_t minute)
{
	size_t n = s->nbuckets ? s->nbuckets * 2 : TABLE_MIN, i;
	struct peer_entry **b;

	/* Drop what is stale first: a flood from many addresses must not
	 * keep memory once it is over. */
	for (i = 0; i < s->nbuckets; i++) {
		struct peer_entry **pp = &s->buckets[i];

		while (*pp) {
			if (entry_stale(*pp, minute)) {
				struct peer_entry *dead = *pp;

				*pp = dead->next;
				free(dead);
				s->count--;
			} else
				pp = &(*pp)->next;
		}
	}
	if (s->nbuckets && s->count < s->nbuckets / 2)
		return;
	if ((b = calloc(n, sizeof(*b))) == NULL)
		return;		/* keep the old table: longer chains, still right */
	for (i = 0; i < s->nbuckets; i++) {
		struct peer_entry *e = s->buckets[i], *next;

		for (; e; e = next) {
			size_t h = addr_hash(&e->a, n);

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

static struct peer_entry *
table_find(struct access_scope *s, const struct addr *a, uint64_t minute, bool create)
{
	struct peer_entry **pp, *e;

	if (s->nbuckets == 0 || (create && s->count >= s->nbuckets)) {
		if (!create)
			return NULL;
		table_grow(s, minute);
		if (s->nbuckets == 0)
			return NULL;
	}
	for (pp = &s->buckets[addr_hash(a, s->nbuckets)]; (e = *pp) != NULL;) {
		if (same_addr(&e->a, a))
			return e;
		if (entry_stale(e, minute)) {
			*pp = e->next;
			free(e);
			s->count--;
			continue;
		}
		pp = &e->next;
	}
	if (!create || (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->a = *a;
	e->minute = minute;
	pp = &s->buckets[addr_hash(a, s->nbuckets)];
	e->next = *pp;
	*pp = e;
	s->count++;
	return e;
}

static bool
rules_exempt(const struct access_rules *r, const struct addr *a)
{
	return r && addrset_contains(r->exempt, a);
}

enum access_verdict
access_admit(struct access_scope *s, const struct addr *peer, uint64_t now, struct access_hold *h)
{
	enum access_verdict v = ACCESS_OK;
	struct access_rules *r;
	struct peer_entry *e = NULL;
	uint64_t minute = now / 60;

	memset(h, 0, sizeof(*h));
	pthread_mutex_lock(&s->lock);
	r = s->rules;
	if (!rules_allow(r, peer))
		v = ACCESS_DENIED;
	else if (rules_limit_addresses(r) && !rules_exempt(r, peer)) {
		if ((e = table_find(s, peer, minute, true)) != NULL) {
			entry_roll(e, minute);
			if (r->max_concurrent && e->current >= r->max_concurrent)
				v = ACCESS_LIMITED;
			/* Connections in the last 60 s: this minute's, plus the
			 * previous minute's share still inside the window. */
			else if (r->per_minute && (uint64_t)e->cur * 60 + (uint64_t)e->prev * (60 - now % 60) >=
			    (uint64_t)r->per_minute * 60)
				v = ACCESS_LIMITED;
		}
	}
	if (v == ACCESS_OK) {
		if (e) {
			e->current++;
			e->cur++;
			h->in_table = true;
		}
		access_scope_ref(s);
		h->scope = s;
		h->peer = *peer;
	}
	pthread_mutex_unlock(&s->lock);
	if (v == ACCESS_OK) {
		atomic_fetch_add(&s->accepted, 1);
		atomic_fetch_add(&s->current, 1);
	} else
		access_count_refusal(s, v);
	return v;
}

enum access_verdict
access_check(struct access_scope *s, const struct addr *peer)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = rules_allow(s->rules, peer);
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		access_count_refusal(s, ACCESS_DENIED);
	return ok ? ACCESS_OK : ACCESS_DENIED;
}

void
access_release(struct access_hold *h)
{
	struct access_scope *s = h->scope;

	if (s == NULL)
		return;
	if (h->in_table) {
		struct peer_entry *e;

		pthread_mutex_lock(&s->lock);
		e = table_find(s, &h->peer, access_now() / 60, false);
		if (e && e->current > 0)
			e->current--;
		pthread_mutex_unlock(&s->lock);
	}
	atomic_fetch_sub(&s->current, 1);
	h->scope = NULL;
	access_scope_unref(s);
}

bool
access_exempt(struct access_scope *s, const struct addr *peer)
{
	bool ex;

	if (s == NULL)
		return false;
	pthread_mutex_lock(&s->lock);
	ex = rules_exempt(s->rules, peer);
	pthread_mutex_unlock(&s->lock);
	return ex;
}

void
access_count_refusal(struct access_scope *s, enum access_verdict v)
{
	if (v == ACCESS_DENIED)
		atomic_fetch_add(&s->rejected_access, 1);
	else if (v == ACCESS_LIMITED)
		atomic_fetch_add(&s->rejected_limit, 1);
}

void
access_count_auth_failure(struct access_scope *s)
{
	if (s)
		atomic_fetch_add(&s->auth_failures, 1);
}

void
access_scope_counts(struct access_scope *s, struct access_counts *c)
{
	c->accepted = atomic_load(&s->accepted);
	c->rejected_access = atomic_load(&s->rejected_access);
	c->rejected_limit = atomic_load(&s->rejected_limit);
	c->auth_failures = atomic_load(&s->auth_failures);
	c->current = atomic_load(&s->current);
}
