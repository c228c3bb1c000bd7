/* tenant_access: a snapshot of every tenant's rules, domains and dedicated
 * addresses is read and compiled on a database worker, then swapped in on
 * loop 0 under a write lock. Scopes outlive snapshots by name, so the
 * counters and per-address windows of a tenant survive a reload. */
#include "tenant_access.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "genwatch.h"
#include "log.h"
#include "ydoc.h"


struct ta_tenant {
	char			 name[64];
	struct access_rules	*rules;		/* compiled on the worker */
	struct access_scope	*scope;
	size_t			 row;		/* position before sorting */
};

struct ta_domain {
	char		*name;
	size_t		 tenant;	/* index into tenants */
};

struct ta_local {
	struct addr	 a;
	size_t		 tenant;
};

struct ta_map {
	struct ta_tenant	*tenants;	/* sorted by name */
	size_t			 ntenants;
	struct ta_domain	*domains;	/* sorted by name */
	size_t			 ndomains;
	struct ta_local		*locals;	/* sorted by address */
	size_t			 nlocals;
};

struct ta_job {
	struct ta_map	*map;
};

static struct {
	pthread_rwlock_t	 lock;
	struct ta_map		*map;
	bool			 loaded;
	struct genwatch		 watch;
} ta = { .lock = PTHREAD_RWLOCK_INITIALIZER };

static void
map_free(struct ta_map *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->ntenants; i++) {
		access_rules_free(m->tenants[i].rules);
		access_scope_unref(m->tenants[i].scope);
	}
	for (i = 0; i < m->ndomains; i++)
		free(m->domains[i].name);
	free(m->tenants);
	free(m->domains);
	free(m->locals);
	free(m);
}

static int
cmp_tenant(const void *a, const void *b)
{
	return strcmp(((const struct ta_tenant *)a)->name, ((const struct ta_tenant *)b)->name);
}

static int
cmp_domain(const void *a, const void *b)
{
	return strcmp(((const struct ta_domain *)a)->name, ((const struct ta_domain *)b)->name);
}

static int
cmp_addr(const struct addr *x, const struct addr *y)
{
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->bytes, y->bytes, sizeof(x->bytes));
}

static int
cmp_local(const void *a, const void *b)
{
	return cmp_addr(&((const struct ta_local *)a)->a, &((const struct ta_local *)b)->a);
}

/* Binary search of name among n sorted names, name_at(i) giving each. */
static ssize_t
find_name(const char *name, size_t n, const char *(*name_at)(const struct ta_map *, size_t),
    const struct ta_map *m)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, name_at(m, mid));

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static const char *
tenant_name_at(const struct ta_map *m, size_t i)
{
	return m->tenants[i].name;
}

static const char *
domain_name_at(const struct ta_map *m, size_t i)
{
	return m->domains[i].name;
}

static ssize_t
find_tenant(const struct ta_map *m, const char *name)
{
	return m ? find_name(name, m->ntenants, tenant_name_at, m) : -1;
}

static ssize_t
find_domain(const struct ta_map *m, const char *name)
{
	return m ? find_name(name, m->ndomains, domain_name_at, m) : -1;
}

static MYSQL_RES *
query(MYSQL *m, const char *sql)
{
	if (mysql_query(m, sql) != 0)
		return NULL;
	return mysql_store_result(m);
}

/* The dedicated addresses of one tenant, from its spec's JSON list. */
static int
add_locals(struct ta_map *map, size_t *cap, size_t tenant, const char *json)
{
	struct ydoc_stream *ys = NULL;
	struct ydoc_node *seq;
	char err[128];
	size_t i;

	if (json == NULL || ydoc_parse(json, strlen(json), &ys, err, sizeof(err)) == -1)
		return json ? -1 : 0;
	seq = ys->ndocs == 1 ? ys->docs[0] : NULL;
	for (i = 0; seq && seq->type == YDOC_SEQ && i < seq->n; i++) {
		struct addr a;

		if (ydoc_str(seq->items[i]) == NULL || addr_parse(ydoc_str(seq->items[i]), &a) == -1)
			continue;
		if (map->nlocals == *cap) {
			size_t n = *cap ? *cap * 2 : 16;
			struct ta_local *l = realloc(map->locals, n * sizeof(*l));

			if (l == NULL) {
				ydoc_free(ys);
				return -1;
			}
			map->locals = l;
			*cap = n;
		}
		map->locals[map->nlocals].a = a;
		map->locals[map->nlocals++].tenant = tenant;
	}
	ydoc_free(ys);
	return 0;
}

/* Worker, once the generation moved: read and compile everything. */
static int
load_job(MYSQL *m, void *arg)
{
	struct ta_job *j = arg;
	struct ta_map *map = NULL;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	size_t i, ncap = 0;

	if ((map = calloc(1, sizeof(*map))) == NULL)
		return -1;
	if ((res = query(m, "SELECT name, JSON_EXTRACT(spec, '$.access'), JSON_EXTRACT(spec, '$.connections'), "
	    "JSON_EXTRACT(spec, '$.addresses') FROM tenants ORDER BY name")) == NULL)
		goto fail;
	if ((map->tenants = calloc(mysql_num_rows(res) + 1, sizeof(*map->tenants))) == NULL)
		goto fail;
	while ((row = mysql_fetch_row(res)) != NULL) {
		struct ta_tenant *t = &map->tenants[map->ntenants];
		char err[256];

		snprintf(t->name, sizeof(t->name), "%s", row[0]);
		t->row = map->ntenants;
		if ((t->rules = access_rules_compile(row[1], row[2], err, sizeof(err))) == NULL) {
			/* Apply validated it; a bad row must not open the tenant. */
			log_event(LOG_LVL_ERR, &(struct log_ctx){ .tenant = t->name },
			    "access rules not loaded: %s", err);
			goto fail;
		}
		if (add_locals(map, &ncap, map->ntenants, row[3]) == -1)
			goto fail;
		map->ntenants++;
	}
	mysql_free_result(res);
	/* ORDER BY uses the collation; the lookups use strcmp. */
	qsort(map->tenants, map->ntenants, sizeof(*map->tenants), cmp_tenant);
	if ((res = query(m, "SELECT d.name, t.name FROM domains d JOIN tenants t ON t.id = d.tenant_id")) == NULL)
		goto fail;
	if ((map->domains = calloc(mysql_num_rows(res) + 1, sizeof(*map->domains))) == NULL)
		goto fail;
	while ((row = mysql_fetch_row(res)) != NULL) {
		ssize_t t = find_tenant(map, row[1]);

		if (t < 0)
			continue;
		if ((map->domains[map->ndomains].name = strdup(row[0])) == NULL)
			goto fail;
		map->domains[map->ndomains++].tenant = (size_t)t;
	}
	mysql_free_result(res);
	res = NULL;
	qsort(map->domains, map->ndomains, sizeof(*map->domains), cmp_domain);
	/* Locals were indexed by row, before the tenants were sorted. */
	if (map->nlocals > 0) {
		size_t *where = calloc(map->ntenants, sizeof(*where));

		if (where == NULL)
			goto fail;
		for (i = 0; i < map->ntenants; i++)
			where[map->tenants[i].row] = i;
		for (i = 0; i < map->nlocals; i++)
			map->locals[i].tenant = where[map->locals[i].tenant];
		free(where);
	}
	j->map = map;
	return 0;
fail:
	if (res)
		mysql_free_result(res);
	map_free(map);
	return -1;
}

static void *
job_new(void *owner)
{
	(void)owner;
	return calloc(1, sizeof(struct ta_job));
}

static void
job_done(void *owner, void *arg, int result)
{
	struct ta_job *j = arg;
	struct ta_map *old;
	size_t i;

	(void)owner;
	if (result == 1 && j->map) {
		struct ta_map *m = j->map;

		/* Keep each tenant's scope (counters, windows) across loads. */
		pthread_rwlock_rdlock(&ta.lock);
		for (i = 0; i < m->ntenants; i++) {
			ssize_t o = find_tenant(ta.map, m->tenants[i].name);

			if (o >= 0) {
				m->tenants[i].scope = ta.map->tenants[o].scope;
				access_scope_ref(m->tenants[i].scope);
			} else
				m->tenants[i].scope = access_scope_new(m->tenants[i].name);
		}
		pthread_rwlock_unlock(&ta.lock);
		for (i = 0; i < m->ntenants; i++) {
			if (m->tenants[i].scope) {
				access_scope_set_rules(m->tenants[i].scope, m->tenants[i].rules);
				m->tenants[i].rules = NULL;
			}
		}
		if (m->nlocals > 0)
			qsort(m->locals, m->nlocals, sizeof(*m->locals), cmp_local);
		pthread_rwlock_wrlock(&ta.lock);
		old = ta.map;
		ta.map = m;
		ta.loaded = true;
		pthread_rwlock_unlock(&ta.lock);
		map_free(old);
		j->map = NULL;
	}
	map_free(j->map);
	free(j);
}

void
tenant_access_start(void)
{
	ta.watch.job_new = job_new;
	ta.watch.load = load_job;
	ta.watch.job_done = job_done;
	genwatch_start(&ta.watch);
}

void
tenant_access_stop(void)
{
	struct ta_map *old;

	if (!ta.watch.started)
		return;
	genwatch_stop(&ta.watch);
	pthread_rwlock_wrlock(&ta.lock);
	old = ta.map;
	ta.map = NULL;
	pthread_rwlock_unlock(&ta.lock);
	map_free(old);
}

void
tenant_access_reload(void)
{
	genwatch_kick(&ta.watch);
}

bool
tenant_access_loaded(void)
{
	return ta.loaded;
}

struct access_scope *
tenant_access_scope(const char *tenant)
{
	struct access_scope *s = NULL;
	ssize_t i;

	if (tenant == NULL || *tenant == '\0')
		return NULL;
	pthread_rwlock_rdlock(&ta.lock);
	if ((i = find_tenant(ta.map, tenant)) >= 0 && (s = ta.map->tenants[i].scope) != NULL)
		access_scope_ref(s);
	pthread_rwlock_unlock(&ta.lock);
	return s;
}

bool
tenant_access_by_host(const char *host, char *tenant, size_t len)
{
	char name[256];
	const char *p;
	size_t i;
	bool found = false;

	if (host == NULL || strlen(host) >= sizeof(name))
		return false;
	for (i = 0; host[i]; i++)
		name[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
	name[i] = '\0';
	pthread_rwlock_rdlock(&ta.lock);
	for (p = name; p && *p && !found; p = strchr(p, '.'), p = p ? p + 1 : NULL) {
		ssize_t d = find_domain(ta.map, p);

		if (d >= 0) {
			snprintf(tenant, len, "%s", ta.map->tenants[ta.map->domains[d].tenant].name);
			found = true;
		}
	}
	pthread_rwlock_unlock(&ta.lock);
	return found;
}

bool
tenant_access_by_local(const struct addr *a, char *tenant, size_t len)
{
	size_t lo = 0, hi;
	bool found = false;

	pthread_rwlock_rdlock(&ta.lock);
	hi = ta.map ? ta.map->nlocals : 0;
	while (lo < hi && !found) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_addr(a, &ta.map->locals[mid].a);

		if (c == 0) {
			snprintf(tenant, len, "%s", ta.map->tenants[ta.map->locals[mid].tenant].name);
			found = true;
		} else if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	pthread_rwlock_unlock(&ta.lock);
	return found;
}

int
tenant_access_snapshot(struct tenant_access_counts **out, size_t *n)
{
	size_t i;

	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&ta.lock);
	if (ta.map && ta.map->ntenants > 0) {
		if ((*out = calloc(ta.map->ntenants, sizeof(**out))) == NULL) {
			pthread_rwlock_unlock(&ta.lock);
			return -1;
		}
		for (i = 0; i < ta.map->ntenants; i++) {
			snprintf((*out)[i].name, sizeof((*out)[i].name), "%s", ta.map->tenants[i].name);
			if (ta.map->tenants[i].scope)
				access_scope_counts(ta.map->tenants[i].scope, &(*out)[i].counts);
		}
		*n = ta.map->ntenants;
	}
	pthread_rwlock_unlock(&ta.lock);
	return 0;
}
