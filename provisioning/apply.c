/* apply: parse -> validate (schema, references, limits, scope) -> diff ->
 * one transaction -> report. Runs on a database worker thread. */
#include "apply.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"
#include "directory.h"
#include "password.h"
#include "schema.h"
#include "scram.h"
#include "service.h"
#include "tls.h"
#include "yamlw.h"
#include "ydoc.h"

#define MAX_ERRORS	100
#define KIND_SERVICE	DIR_NKINDS	/* the fifth kind, kept outside the directory */

static struct schema *doc_schema;

struct apply_error {
	int		 doc;		/* 1-based; 0: the stream as a whole */
	char		 kind[16];
	char		 name[256];
	char		 path[256];
	unsigned	 line, col;
	char		 message[512];
};

enum action { ACT_CREATE, ACT_UPDATE, ACT_UNCHANGED };

struct item {
	int			 doc;
	int			 kind;		/* enum dir_kind, or KIND_SERVICE */
	char			 name[256];
	char			 tenant[64];
	const struct ydoc_node	*node, *spec, *namenode;
	struct buf		 canon;		/* canonical JSON of the spec */
	struct ydoc_stream	*tree;		/* canon parsed back, for diffs */
	const char		*password;	/* in the request; never stored as is */
	const char		*password_hash;
	const char		*tls_key;
	struct dir_obj		*old;		/* stored version, NULL if new */
	enum action		 action;
	struct buf		 fields;	/* changed fields */
	char			*secret;	/* secret to write, when changed */
	char			*scram;		/* and the SCRAM keys of a plain password */
	bool			 secret_changed;
	uint64_t		 id, tenant_id, domain_id;
	struct service_row	 svc_old, svc_new;
	bool			 svc_rebind;
};

struct run {
	MYSQL			*m;
	const struct apply_opts	*opts;
	struct item		*items;
	size_t			 nitems;
	struct apply_error	 errs[MAX_ERRORS];
	size_t			 nerrs;
	int			 status;
	/* What is stored, per directory kind, sorted by name. */
	struct dir_obj		*stored[DIR_NKINDS];
	size_t			 nstored[DIR_NKINDS];
};

static const char *const kind_names[] = { "Tenant", "Domain", "Mailbox", "Alias", "Service" };

int
apply_init(const char *schema_path, char *err, size_t errlen)
{
	if ((doc_schema = schema_load(schema_path, err, errlen)) == NULL)
		return -1;
	schema_set_format(doc_schema, canon_format, NULL);
	return 0;
}

void
apply_fini(void)
{
	schema_free(doc_schema);
	doc_schema = NULL;
}

static void
add_error(struct run *r, int status, const struct item *it, int doc, const struct ydoc_node *at,
    const char *path, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void
add_error(struct run *r, int status, const struct item *it, int doc, const struct ydoc_node *at,
    const char *path, const char *fmt, ...)
{
	struct apply_error *e;
	va_list ap;

	/* The most telling status wins: a scope violation over a conflict
	 * over a plain validation error. */
	if (status == 403 || r->status == 0 || (status == 409 && r->status == 400))
		r->status = status;
	if (r->nerrs == MAX_ERRORS)
		return;
	e = &r->errs[r->nerrs++];
	memset(e, 0, sizeof(*e));
	e->doc = it ? it->doc : doc;
	if (it) {
		snprintf(e->kind, sizeof(e->kind), "%s", kind_names[it->kind]);
		snprintf(e->name, sizeof(e->name), "%s", it->name);
		if (at == NULL)
			at = it->namenode ? it->namenode : it->node;
	}
	if (at) {
		e->line = at->line;
		e->col = at->col;
	}
	snprintf(e->path, sizeof(e->path), "%s", path ? path : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

static struct dir_obj *
find_stored(struct run *r, enum dir_kind k, const char *name)
{
	size_t lo = 0, hi = r->nstored[k];

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, r->stored[k][mid].name);

		if (c == 0)
			return &r->stored[k][mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static struct item *
find_item(struct run *r, int kind, const char *name)
{
	size_t i;

	for (i = 0; i < r->nitems; i++)
		if (r->items[i].kind == kind && strcmp(r->items[i].name, name) == 0)
			return &r->items[i];
	return NULL;
}

static const char *
domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

static int
cmp_obj(const void *a, const void *b)
{
	return strcmp(((const struct dir_obj *)a)->name, ((const struct dir_obj *)b)->name);
}

/* Phase 1: documents into items; schema errors and what the schema cannot say. */
static void
collect_items(struct run *r, struct ydoc_stream *st)
{
	size_t d;

	for (d = 0; d < st->ndocs; d++) {
		const struct ydoc_node *doc = st->docs[d];
		struct schema_error serr[20];
		size_t n = 0, i;
		struct item *it;
		const char *kind, *name;
		int k;

		if (schema_validate(doc_schema, "#", doc, serr, 20, &n) != 0) {
			const char *kd = ydoc_str(ydoc_get(doc, "kind"));
			const char *nm = ydoc_str(ydoc_get(ydoc_get(doc, "metadata"), "name"));

			if (n == 0) {
				add_error(r, 500, NULL, (int)d + 1, doc, "", "the document schema is broken");
				continue;
			}
			for (i = 0; i < n && r->nerrs < MAX_ERRORS; i++) {
				struct apply_error *e;

				add_error(r, 400, NULL, (int)d + 1, NULL, serr[i].path, "%s", serr[i].message);
				e = &r->errs[r->nerrs - 1];
				e->line = serr[i].line;
				e->col = serr[i].col;
				snprintf(e->kind, sizeof(e->kind), "%s", kd ? kd : "");
				snprintf(e->name, sizeof(e->name), "%s", nm ? nm : "");
			}
			continue;
		}
		kind = ydoc_str(ydoc_get(doc, "kind"));
		for (k = 0; k <= KIND_SERVICE; k++)
			if (strcmp(kind, kind_names[k]) == 0)
				break;
		it = &r->items[r->nitems++];
		memset(it, 0, sizeof(*it));
		buf_init(&it->canon, 0);
		buf_init(&it->fields, 0);
		it->doc = (int)d + 1;
		it->kind = k;
		it->node = doc;
		it->spec = ydoc_get(doc, "spec");
		it->namenode = ydoc_get(ydoc_get(doc, "metadata"), "name");
		name = ydoc_str(it->namenode);
		/* Names of domains and addresses are case-insensitive: keep them lower case. */
		if (canon_lower(name, it->name, sizeof(it->name)) == -1)
			add_error(r, 400, it, 0, NULL, "metadata.name", "name too long");
		if (k == DIR_TENANT)
			snprintf(it->tenant, sizeof(it->tenant), "%.63s", it->name);
		else if (k != KIND_SERVICE)
			snprintf(it->tenant, sizeof(it->tenant), "%s",
			    ydoc_str(ydoc_get(ydoc_get(doc, "metadata"), "tenant")));
		if (k == DIR_MAILBOX) {
			it->password = ydoc_str(ydoc_get(it->spec, "password"));
			it->password_hash = ydoc_str(ydoc_get(it->spec, "passwordHash"));
			if (it->password && it->password_hash)
				add_error(r, 400, it, 0, ydoc_get(it->spec, "passwordHash"), "spec.passwordHash",
				    "give either password or passwordHash, not both");
		}
		if (k == DIR_DOMAIN)
			it->tls_key = ydoc_str(ydoc_get(ydoc_get(it->spec, "tls"), "key"));
	}
}

/* Phase 2: checks within the stream: scope, duplicates. */
static void
check_stream(struct run *r)
{
	size_t i, j;

	for (i = 0; i < r->nitems; i++) {
		struct item *it = &r->items[i];

		if (r->opts->scope != NULL) {
			if (it->kind == KIND_SERVICE)
				add_error(r, 403, it, 0, it->node, "kind",
				    "this token is limited to tenant '%s' and cannot change services",
				    r->opts->scope);
			else if (strcmp(it->tenant, r->opts->scope) != 0)
				add_error(r, 403, it, 0, NULL, it->kind == DIR_TENANT ? "metadata.name" :
				    "metadata.tenant", "this token is limited to tenant '%s'", r->opts->scope);
		}
		for (j = 0; j < i; j++) {
			struct item *o = &r->items[j];
			bool same = o->kind == it->kind && strcmp(o->name, it->name) == 0;
			bool clash = (o->kind == DIR_MAILBOX || o->kind == DIR_ALIAS) &&
			    (it->kind == DIR_MAILBOX || it->kind == DIR_ALIAS) && strcmp(o->name, it->name) == 0;

			if (same || clash) {
				add_error(r, 400, it, 0, NULL, "metadata.name", "%s %s is also document %d of "
				    "this stream", kind_names[it->kind], it->name, o->doc);
				break;
			}
		}
		if (it->kind == KIND_SERVICE && strcmp(it->name, "admin") == 0 &&
		    ydoc_str(ydoc_get(it->spec, "state")) &&
		    strcmp(ydoc_str(ydoc_get(it->spec, "state")), "stopped") == 0)
			add_error(r, 409, it, 0, ydoc_get(it->spec, "state"), "spec.state",
			    "service admin cannot be stopped: the node is managed through it");
	}
}

static int
load_stored(struct run *r, char *err, size_t errlen)
{
	const char **names[DIR_NKINDS] = { 0 };
	size_t n[DIR_NKINDS] = { 0 }, i;
	int k, rc = -1;

	for (k = 0; k < DIR_NKINDS; k++)
		if ((names[k] = calloc(r->nitems * 3 + 1, sizeof(char *))) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
	for (i = 0; i < r->nitems; i++) {
		struct item *it = &r->items[i];
		const char *alias_of;

		if (it->kind == KIND_SERVICE)
			continue;
		names[DIR_TENANT][n[DIR_TENANT]++] = it->tenant;
		switch (it->kind) {
		case DIR_DOMAIN:
			names[DIR_DOMAIN][n[DIR_DOMAIN]++] = it->name;
			if ((alias_of = ydoc_str(ydoc_get(it->spec, "aliasOf"))) != NULL)
				names[DIR_DOMAIN][n[DIR_DOMAIN]++] = alias_of;
			break;
		case DIR_MAILBOX:
		case DIR_ALIAS:
			names[DIR_DOMAIN][n[DIR_DOMAIN]++] = domain_of(it->name);
			/* Addresses are unique across mailboxes and aliases. */
			names[DIR_MAILBOX][n[DIR_MAILBOX]++] = it->name;
			names[DIR_ALIAS][n[DIR_ALIAS]++] = it->name;
			break;
		default:
			break;
		}
	}
	for (k = 0; k < DIR_NKINDS; k++) {
		if (dir_load(r->m, (enum dir_kind)k, names[k], n[k], NULL, &r->stored[k],
		    &r->nstored[k], err, errlen) == -1)
			goto done;
		if (r->nstored[k] > 1)
			qsort(r->stored[k], r->nstored[k], sizeof(struct dir_obj), cmp_obj);
	}
	rc = 0;
done:
	for (k = 0; k < DIR_NKINDS; k++)
		free(names[k]);
	return rc;
}

static bool
tenant_known(struct run *r, const char *tenant)
{
	return find_stored(r, DIR_TENANT, tenant) != NULL || find_item(r, DIR_TENANT, tenant) != NULL;
}

/* The tenant a domain belongs to, stored or in the stream; NULL if none. */
static const char *
domain_tenant(struct run *r, const char *domain, const char **alias_of)
{
	struct item *it = find_item(r, DIR_DOMAIN, domain);
	struct dir_obj *o;

	*alias_of = NULL;
	if (it != NULL) {
		*alias_of = ydoc_str(ydoc_get(it->spec, "aliasOf"));
		return it->tenant;
	}
	if ((o = find_stored(r, DIR_DOMAIN, domain)) != NULL) {
		*alias_of = strstr(o->spec, "\"aliasOf\"") ? "" : NULL;
		return o->tenant;
	}
	return NULL;
}

/* Phase 3: references between objects, ownership, limits. */
static void
check_references(struct run *r)
{
	size_t i;

	for (i = 0; i < r->nitems; i++) {
		struct item *it = &r->items[i];
		const char *owner, *alias_of;
		struct dir_obj *o;

		if (it->kind == KIND_SERVICE || it->kind == DIR_TENANT)
			continue;
		if (!tenant_known(r, it->tenant)) {
			add_error(r, 400, it, 0, ydoc_get(ydoc_get(it->node, "metadata"), "tenant"),
			    "metadata.tenant", "tenant '%s' does not exist (neither stored nor in this "
			    "stream)", it->tenant);
			continue;
		}
		if (it->kind == DIR_DOMAIN) {
			const char *target = ydoc_str(ydoc_get(it->spec, "aliasOf"));

			o = find_stored(r, DIR_DOMAIN, it->name);
			/* Never say whose it is: tenants do not learn of each other. */
			if (o != NULL && strcmp(o->tenant, it->tenant) != 0)
				add_error(r, 409, it, 0, NULL, "metadata.name",
				    "domain %s is already hosted here for another tenant", it->name);
			if (target != NULL) {
				const char *target_alias;

				owner = domain_tenant(r, target, &target_alias);
				if (owner == NULL || strcmp(owner, it->tenant) != 0)
					add_error(r, 400, it, 0, ydoc_get(it->spec, "aliasOf"), "spec.aliasOf",
					    "aliasOf must name a domain of tenant %s", it->tenant);
				else if (target_alias != NULL)
					add_error(r, 400, it, 0, ydoc_get(it->spec, "aliasOf"), "spec.aliasOf",
					    "%s is itself an alias domain", target);
				else if (strcmp(target, it->name) == 0)
					add_error(r, 400, it, 0, ydoc_get(it->spec, "aliasOf"), "spec.aliasOf",
					    "a domain cannot be an alias of itself");
			}
			continue;
		}
		/* Mailboxes and aliases. */
		owner = domain_tenant(r, domain_of(it->name), &alias_of);
		if (owner == NULL || strcmp(owner, it->tenant) != 0) {
			add_error(r, 400, it, 0, NULL, "metadata.name", "domain %s is not a domain of "
			    "tenant %s", domain_of(it->name), it->tenant);
			continue;
		}
		if (alias_of != NULL)
			add_error(r, 400, it, 0, NULL, "metadata.name", "%s is an alias domain: addresses "
			    "live on the domain it is an alias of", domain_of(it->name));
		o = find_stored(r, it->kind == DIR_MAILBOX ? DIR_ALIAS : DIR_MAILBOX, it->name);
		if (o != NULL)
			add_error(r, 409, it, 0, NULL, "metadata.name", "%s is already %s", it->name,
			    it->kind == DIR_MAILBOX ? "an alias" : "a mailbox");
		o = find_stored(r, (enum dir_kind)it->kind, it->name);
		if (o != NULL && strcmp(o->tenant, it->tenant) != 0)
			add_error(r, 409, it, 0, NULL, "metadata.name", "%s belongs to another tenant",
			    it->name);
	}
}

static uint64_t
limit_of(struct run *r, const char *tenant, const char *key, const struct ydoc_node **at)
{
	struct item *t = find_item(r, DIR_TENANT, tenant);
	const struct ydoc_node *limits;
	struct dir_obj *o;
	struct ydoc_stream *st = NULL;
	char err[128];
	uint64_t v = 0;
	const char *s;

	*at = NULL;
	if (t != NULL && t->tree && t->tree->ndocs) {
		limits = ydoc_get(t->tree->docs[0], "limits");
		s = ydoc_str(ydoc_get(limits, key));
		*at = ydoc_get(ydoc_get(t->spec, "limits"), key);
		return s ? strtoull(s, NULL, 10) : 0;
	}
	if ((o = find_stored(r, DIR_TENANT, tenant)) == NULL)
		return 0;
	if (ydoc_parse(o->spec, strlen(o->spec), &st, err, sizeof(err)) == 0 && st->ndocs) {
		s = ydoc_str(ydoc_get(ydoc_get(st->docs[0], "limits"), key));
		v = s ? strtoull(s, NULL, 10) : 0;
	}
	ydoc_free(st);
	return v;
}

static void
check_limits(struct run *r, char *err, size_t errlen)
{
	static const struct { int kind; const char *key, *what; } lims[] = {
		{ DIR_DOMAIN, "domains", "domains" },
		{ DIR_MAILBOX, "mailboxes", "mailboxes" },
		{ DIR_ALIAS, "aliases", "aliases" },
	};
	size_t i, j, l;

	/* Each tenant touched by the stream, once. */
	for (i = 0; i < r->nitems; i++) {
		const char *tenant = r->items[i].tenant;
		bool seen = false;

		if (r->items[i].kind == KIND_SERVICE)
			continue;
		for (j = 0; j < i; j++)
			if (r->items[j].kind != KIND_SERVICE && strcmp(r->items[j].tenant, tenant) == 0)
				seen = true;
		if (seen)
			continue;
		for (l = 0; l < 3; l++) {
			const struct ydoc_node *at;
			uint64_t limit = limit_of(r, tenant, lims[l].key, &at), count = 0;
			struct dir_obj *t = find_stored(r, DIR_TENANT, tenant);
			struct item *over = NULL;

			if (limit == 0)
				continue;
			if (t != NULL && dir_count(r->m, (enum dir_kind)lims[l].kind, t->id, &count,
			    err, errlen) == -1) {
				add_error(r, 503, NULL, 0, NULL, "", "%s", err);
				return;
			}
			for (j = 0; j < r->nitems; j++) {
				struct item *it = &r->items[j];

				if (it->kind != lims[l].kind || strcmp(it->tenant, tenant) != 0 || it->old)
					continue;
				if (++count > limit && over == NULL)
					over = it;
			}
			if (count > limit) {
				if (over != NULL)
					add_error(r, 409, over, 0, NULL, "metadata.name", "tenant %s allows %llu "
					    "%s; with this stream it would have %llu", tenant,
					    (unsigned long long)limit, lims[l].what, (unsigned long long)count);
				else
					add_error(r, 409, find_item(r, DIR_TENANT, tenant), 0, at,
					    "spec.limits", "tenant %s already has %llu %s, more than the "
					    "limit of %llu", tenant, (unsigned long long)count, lims[l].what,
					    (unsigned long long)limit);
			}
		}
	}
}

/* The spec of a service row, in the form get shows and diffs use. */
static int
service_json(const char *name, const struct service_row *row, struct buf *out)
{
	struct service *s = service_find(name);
	struct buf v;
	size_t k;
	int rc = -1;

	buf_init(&v, 0);
	if (buf_puts(out, "{") == -1)
		goto done;
	if (row->access && buf_printf(out, "\"access\":%s,", row->access) == -1)
		goto done;
	for (k = 0; k < settings_ndefs; k++) {
		const struct setting_def *d = &settings_defs[k];

		if (!settings_applies(d, name, service_has_listener(s)))
			continue;
		buf_reset(&v);
		if (settings_format(d, &row->settings, &v) == -1)
			goto done;
		if (buf_printf(out, "\"%s\":", d->key) == -1)
			goto done;
		if (d->type == SETTING_ADDRLIST) {
			char *copy = strdup(buf_cstr(&v)), *save = NULL, *tok;
			bool first = true;

			if (copy == NULL || buf_puts(out, "[") == -1) {
				free(copy);
				goto done;
			}
			for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if ((!first && buf_puts(out, ",") == -1) || canon_json_string(out, tok) == -1) {
					free(copy);
					goto done;
				}
				first = false;
			}
			free(copy);
			if (buf_puts(out, "],") == -1)
				goto done;
		} else if (d->type == SETTING_DURATION) {
			if (canon_json_string(out, buf_cstr(&v)) == -1 || buf_puts(out, ",") == -1)
				goto done;
		} else if (buf_printf(out, "%s,", buf_cstr(&v)) == -1)
			goto done;
		if (strcmp(d->key, "bind") == 0 && row->connections &&
		    buf_printf(out, "\"connections\":%s,", row->connections) == -1)
			goto done;
	}
	if (!service_has_listener(s) && row->connections &&
	    buf_printf(out, "\"connections\":%s,", row->connections) == -1)
		goto done;
	rc = buf_printf(out, "\"state\":\"%s\"}", row->running ? "running" : "stopped");
done:
	buf_free(&v);
	return rc;
}

/* A Service document changes only the settings it names. */
static void
plan_service(struct run *r, struct item *it, char *err, size_t errlen)
{
	const struct ydoc_node *spec = it->spec, *n;
	struct buf old_json, bindtext;
	struct ydoc_stream *a = NULL, *b = NULL;
	size_t k, i;

	buf_init(&old_json, 0);
	buf_init(&bindtext, 512);
	if (service_store_read(r->m, it->name, &it->svc_old, err, errlen) == -1) {
		add_error(r, 503, it, 0, NULL, "", "%s", err);
		goto done;
	}
	it->svc_new = it->svc_old;
	it->svc_new.access = it->svc_old.access ? strdup(it->svc_old.access) : NULL;
	it->svc_new.connections = it->svc_old.connections ? strdup(it->svc_old.connections) : NULL;
	if ((n = ydoc_get(spec, "state")) != NULL)
		it->svc_new.running = strcmp(n->str, "running") == 0;
	for (k = 0; k < settings_ndefs; k++) {
		const struct setting_def *d = &settings_defs[k];
		char why[256];
		const char *text;

		if ((n = ydoc_get(spec, d->key)) == NULL)
			continue;
		if (!settings_applies(d, it->name, service_has_listener(service_find(it->name)))) {
			if (d->only)
				add_error(r, 400, it, 0, n, d->key, "%s is a setting of %s only, not of %s",
				    d->key, d->only, it->name);
			else
				add_error(r, 400, it, 0, n, d->key, "service %s has no listener: %s does not apply",
				    it->name, d->key);
			continue;
		}
		if (n->type == YDOC_SEQ) {
			buf_reset(&bindtext);
			for (i = 0; i < n->n; i++)
				if (buf_printf(&bindtext, "%s%s", i ? "," : "", n->items[i]->str) == -1)
					break;
			text = buf_cstr(&bindtext);
		} else
			text = n->str;
		if (settings_parse(d, text, &it->svc_new.settings, why, sizeof(why)) == -1)
			add_error(r, 400, it, 0, n, d->key, "%s", why);
	}
	if ((n = ydoc_get(spec, "access")) != NULL) {
		struct buf j;

		buf_init(&j, 0);
		if (canon_node_json("Service", n, "access", &j) == 0) {
			free(it->svc_new.access);
			it->svc_new.access = strdup(buf_cstr(&j));
		}
		buf_free(&j);
	}
	if ((n = ydoc_get(spec, "connections")) != NULL) {
		struct buf j;

		buf_init(&j, 0);
		if (canon_node_json("Service", n, "connections", &j) == 0) {
			free(it->svc_new.connections);
			it->svc_new.connections = strdup(buf_cstr(&j));
		}
		buf_free(&j);
	}
	if (service_json(it->name, &it->svc_old, &old_json) == -1 ||
	    service_json(it->name, &it->svc_new, &it->canon) == -1 ||
	    ydoc_parse(buf_cstr(&old_json), buf_len(&old_json), &a, err, errlen) == -1 ||
	    ydoc_parse(buf_cstr(&it->canon), buf_len(&it->canon), &b, err, errlen) == -1) {
		add_error(r, 500, it, 0, NULL, "", "cannot compare the service settings");
		goto done;
	}
	canon_diff(a->docs[0], b->docs[0], &it->fields);
	it->action = buf_len(&it->fields) ? ACT_UPDATE : ACT_UNCHANGED;
	{
		struct service_settings *o = &it->svc_old.settings, *nw = &it->svc_new.settings;

		it->svc_rebind = o->port != nw->port || o->nbind != nw->nbind ||
		    memcmp(o->bind, nw->bind, sizeof(o->bind[0]) * o->nbind) != 0;
	}
done:
	ydoc_free(a);
	ydoc_free(b);
	buf_free(&old_json);
	buf_free(&bindtext);
}

/* A domain's certificate must load with its key (the one in the stream,
 * or the stored one), or every TLS service would skip it later. */
static void
check_tls(struct run *r, struct item *it)
{
	const struct ydoc_node *tls = ydoc_get(it->spec, "tls");
	const char *cert = ydoc_str(ydoc_get(tls, "certificate"));
	const char *key = it->tls_key ? it->tls_key : it->old ? it->old->secret : NULL;
	char why[256];

	if (cert == NULL)
		return;
	if (key == NULL) {
		add_error(r, 400, it, 0, tls, "spec.tls.key",
		    "a certificate needs its private key (none is stored for this domain)");
		return;
	}
	if (tls_pair_check(cert, key, why, sizeof(why)) == -1)
		add_error(r, 400, it, 0, ydoc_get(tls, "certificate"), "spec.tls.certificate",
		    "%s", why);
}

/* Phase 4: compare with what is stored. */
static void
plan(struct run *r, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < r->nitems; i++) {
		struct item *it = &r->items[i];
		struct ydoc_stream *old = NULL;

		if (it->kind == KIND_SERVICE) {
			plan_service(r, it, err, errlen);
			continue;
		}
		it->old = find_stored(r, (enum dir_kind)it->kind, it->name);
		if (it->old && strcmp(it->old->tenant, it->tenant) != 0)
			it->old = NULL;		/* reported as a conflict already */
		if (it->old == NULL) {
			it->action = ACT_CREATE;
		} else {
			if (ydoc_parse(it->old->spec, strlen(it->old->spec), &old, err, errlen) == -1 ||
			    old->ndocs == 0) {
				add_error(r, 500, it, 0, NULL, "", "stored spec unreadable: %s", err);
				ydoc_free(old);
				continue;
			}
			canon_diff(old->docs[0], it->tree->docs[0], &it->fields);
			ydoc_free(old);
		}
		/* Secrets: compare without ever storing or echoing them in clear. */
		if (it->kind == DIR_MAILBOX && it->password) {
			if (it->old == NULL || it->old->secret == NULL ||
			    password_verify(it->password, it->old->secret) != 1)
				it->secret_changed = true;
		} else if (it->kind == DIR_MAILBOX && it->password_hash) {
			if (it->old == NULL || it->old->secret == NULL ||
			    strcmp(it->old->secret, it->password_hash) != 0) {
				it->secret_changed = true;
				it->secret = strdup(it->password_hash);
			}
		} else if (it->kind == DIR_DOMAIN && it->tls_key) {
			if (it->old == NULL || it->old->secret == NULL ||
			    strcmp(it->old->secret, it->tls_key) != 0) {
				it->secret_changed = true;
				it->secret = strdup(it->tls_key);
			}
		}
		if (it->kind == DIR_DOMAIN)
			check_tls(r, it);
		if (it->secret_changed && it->old != NULL)
			buf_printf(&it->fields, "%s%s", buf_len(&it->fields) ? ", " : "",
			    it->kind == DIR_DOMAIN ? "spec.tls.key" : it->password ? "spec.password" :
			    "spec.passwordHash");
		if (it->old != NULL)
			it->action = buf_len(&it->fields) ? ACT_UPDATE : ACT_UNCHANGED;
	}
}

static uint64_t
tenant_id_of(struct run *r, const char *tenant)
{
	struct item *t = find_item(r, DIR_TENANT, tenant);
	struct dir_obj *o;

	if (t != NULL && t->id)
		return t->id;
	o = find_stored(r, DIR_TENANT, tenant);
	return o ? o->id : 0;
}

static uint64_t
domain_id_of(struct run *r, const char *domain)
{
	struct item *d = find_item(r, DIR_DOMAIN, domain);
	struct dir_obj *o;

	if (d != NULL && d->id)
		return d->id;
	o = find_stored(r, DIR_DOMAIN, domain);
	return o ? o->id : 0;
}

/* Phase 5: write, kind by kind so references exist before their users. */
static int
write_all(struct run *r, bool *changed, char *err, size_t errlen)
{
	int kind;
	size_t i;

	*changed = false;
	for (kind = 0; kind <= KIND_SERVICE; kind++) {
		for (i = 0; i < r->nitems; i++) {
			struct item *it = &r->items[i];
			struct dir_obj o;

			if (it->kind != kind || it->action == ACT_UNCHANGED)
				continue;
			*changed = true;
			if (kind == KIND_SERVICE) {
				if (service_store_write(r->m, it->name, &it->svc_new, err, errlen) == -1)
					return -1;
				continue;
			}
			if (it->kind == DIR_MAILBOX && it->password && it->secret_changed) {
				char hash[PASSWORD_HASH_MAX];

				char scram[SCRAM_STORED_MAX];

				if (password_hash(it->password, hash, sizeof(hash), err, errlen) == -1 ||
				    scram_keys_make(it->password, scram, sizeof(scram), err, errlen) == -1)
					return -1;
				if ((it->secret = strdup(hash)) == NULL || (it->scram = strdup(scram)) == NULL) {
					snprintf(err, errlen, "out of memory");
					return -1;
				}
				explicit_bzero(scram, sizeof(scram));
			}
			memset(&o, 0, sizeof(o));
			o.kind = (enum dir_kind)kind;
			snprintf(o.name, sizeof(o.name), "%s", it->name);
			o.spec = (char *)buf_cstr(&it->canon);
			o.secret = it->secret;
			o.scram = it->scram;
			if (it->action == ACT_CREATE) {
				o.tenant_id = tenant_id_of(r, it->tenant);
				if (kind == DIR_MAILBOX || kind == DIR_ALIAS)
					o.domain_id = domain_id_of(r, domain_of(it->name));
				if (dir_insert(r->m, &o, err, errlen) == -1)
					return -1;
				it->id = o.id;
			} else {
				o.id = it->old->id;
				it->id = o.id;
				if (dir_update(r->m, &o, it->secret_changed, err, errlen) == -1)
					return -1;
			}
		}
	}
	if (*changed && dir_bump_generation(r->m, err, errlen) == -1)
		return -1;
	return 0;
}

static void
report(struct run *r, bool applied, struct apply_result *res)
{
	struct yamlw w;
	size_t i, counts[3] = { 0 };
	static const char *const act[] = { "created", "updated", "unchanged" };

	for (i = 0; i < r->nitems && r->nerrs == 0; i++)
		counts[r->items[i].action]++;
	yamlw_begin(&w, &res->out);
	yamlw_doc(&w);
	yamlw_map(&w);
	yamlw_kstr(&w, "apiVersion", "mailnode/v1");
	yamlw_kstr(&w, "kind", "ApplyResult");
	yamlw_kbool(&w, "dryRun", r->opts->dry_run);
	yamlw_kbool(&w, "applied", applied);
	if (r->nerrs == 0) {
		yamlw_str(&w, "summary");
		yamlw_map(&w);
		yamlw_ku64(&w, "created", counts[ACT_CREATE]);
		yamlw_ku64(&w, "updated", counts[ACT_UPDATE]);
		yamlw_ku64(&w, "unchanged", counts[ACT_UNCHANGED]);
		yamlw_map_end(&w);
		yamlw_str(&w, "results");
		yamlw_seq(&w);
		for (i = 0; i < r->nitems; i++) {
			struct item *it = &r->items[i];

			yamlw_map(&w);
			yamlw_kstr(&w, "kind", kind_names[it->kind]);
			yamlw_kstr(&w, "name", it->name);
			if (it->kind != DIR_TENANT && it->kind != KIND_SERVICE)
				yamlw_kstr(&w, "tenant", it->tenant);
			yamlw_kstr(&w, "action", act[it->action]);
			if (it->action == ACT_UPDATE) {
				char *copy = strdup(buf_cstr(&it->fields)), *save = NULL, *tok;

				yamlw_str(&w, "fields");
				yamlw_seq(&w);
				for (tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok;
				    tok = strtok_r(NULL, ", ", &save))
					yamlw_str(&w, tok);
				yamlw_seq_end(&w);
				free(copy);
			}
			yamlw_map_end(&w);
		}
		yamlw_seq_end(&w);
	} else {
		yamlw_str(&w, "errors");
		yamlw_seq(&w);
		for (i = 0; i < r->nerrs; i++) {
			struct apply_error *e = &r->errs[i];

			yamlw_map(&w);
			if (e->doc)
				yamlw_ku64(&w, "document", (uint64_t)e->doc);
			if (e->kind[0])
				yamlw_kstr(&w, "kind", e->kind);
			if (e->name[0])
				yamlw_kstr(&w, "name", e->name);
			if (e->path[0])
				yamlw_kstr(&w, "path", e->path);
			if (e->line) {
				yamlw_ku64(&w, "line", e->line);
				yamlw_ku64(&w, "column", e->col);
			}
			yamlw_kstr(&w, "message", e->message);
			yamlw_map_end(&w);
		}
		yamlw_seq_end(&w);
	}
	yamlw_map_end(&w);
	if (yamlw_end(&w) == -1) {
		buf_reset(&res->out);
		buf_puts(&res->out, "kind: ApplyResult\nmessage: could not write the answer\n");
	}
}

static void
sql_simple(MYSQL *m, const char *sql)
{
	MYSQL_RES *res;

	if (mysql_query(m, sql) == 0 && (res = mysql_store_result(m)) != NULL)
		mysql_free_result(res);
}

void
apply_run(MYSQL *m, const char *yaml, size_t len, const struct apply_opts *opts,
    struct apply_result *res)
{
	struct run r;
	struct ydoc_stream *st = NULL;
	char err[512];
	bool in_tx = false, applied = false, changed = false;
	size_t i;
	int k;

	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	buf_init(&res->out, 0);
	r.m = m;
	r.opts = opts;
	if (ydoc_parse(yaml, len, &st, err, sizeof(err)) == -1) {
		/* err is "line L, column C: what" */
		unsigned line = 0, col = 0;

		if (sscanf(err, "line %u, column %u:", &line, &col) != 2)
			line = col = 0;
		add_error(&r, 400, NULL, 0, NULL, "", "%s", strchr(err, ':') && line ?
		    strchr(err, ':') + 2 : err);
		r.errs[0].line = line;
		r.errs[0].col = col;
		goto out;
	}
	if (st->ndocs == 0) {
		add_error(&r, 400, NULL, 0, NULL, "", "the stream holds no documents");
		goto out;
	}
	if ((r.items = calloc(st->ndocs, sizeof(*r.items))) == NULL) {
		add_error(&r, 500, NULL, 0, NULL, "", "out of memory");
		goto out;
	}
	collect_items(&r, st);
	check_stream(&r);
	for (i = 0; i < r.nitems && r.nerrs == 0; i++) {
		struct item *it = &r.items[i];

		if (it->kind == KIND_SERVICE)
			continue;
		if (canon_spec_json(kind_names[it->kind], it->spec, &it->canon, err, sizeof(err)) == -1 ||
		    ydoc_parse(buf_cstr(&it->canon), buf_len(&it->canon), &it->tree, err, sizeof(err)) == -1)
			add_error(&r, 400, it, 0, it->spec, "spec", "%s", err);
	}
	if (r.nerrs)
		goto out;

	/* One apply at a time across every node of the database. */
	sql_simple(m, "SELECT GET_LOCK('mailnode.apply', 60)");
	if (mysql_query(m, "START TRANSACTION") != 0) {
		add_error(&r, 503, NULL, 0, NULL, "", "database unavailable: %s", mysql_error(m));
		goto out;
	}
	in_tx = true;
	if (load_stored(&r, err, sizeof(err)) == -1) {
		add_error(&r, 503, NULL, 0, NULL, "", "database unavailable: %s", err);
		goto out;
	}
	check_references(&r);
	plan(&r, err, sizeof(err));
	if (r.nerrs == 0)
		check_limits(&r, err, sizeof(err));
	if (r.nerrs || opts->dry_run)
		goto out;
	if (write_all(&r, &changed, err, sizeof(err)) == -1 || mysql_query(m, "COMMIT") != 0) {
		add_error(&r, 503, NULL, 0, NULL, "", "nothing was applied: %s",
		    *err ? err : mysql_error(m));
		goto out;
	}
	in_tx = false;
	applied = true;
	/* Hand the services that changed to the node. */
	for (i = 0; i < r.nitems; i++)
		if (r.items[i].kind == KIND_SERVICE && r.items[i].action == ACT_UPDATE)
			res->nservices++;
	if (res->nservices && (res->services = calloc(res->nservices, sizeof(*res->services))) != NULL) {
		size_t j = 0;

		for (i = 0; i < r.nitems; i++) {
			struct item *it = &r.items[i];

			if (it->kind != KIND_SERVICE || it->action != ACT_UPDATE)
				continue;
			snprintf(res->services[j].name, sizeof(res->services[j].name), "%.31s", it->name);
			res->services[j].row = it->svc_new;
			res->services[j].rebind = it->svc_rebind;
			memset(&it->svc_new, 0, sizeof(it->svc_new));	/* moved */
			j++;
		}
	} else
		res->nservices = 0;
out:
	/* A failed rollback means the connection is gone, and the server
	 * rolls back on its own; the worker reconnects for the next job. */
	if (in_tx)
		(void)mysql_query(m, "ROLLBACK");
	if (r.nitems > 0)
		sql_simple(m, "SELECT RELEASE_LOCK('mailnode.apply')");
	res->status = r.nerrs ? r.status : 200;
	report(&r, applied, res);
	for (i = 0; i < r.nitems; i++) {
		struct item *it = &r.items[i];

		/* The request held plain passwords: do not leave them in memory. */
		if (it->password)
			explicit_bzero((char *)it->password, strlen(it->password));
		buf_free(&it->canon);
		buf_free(&it->fields);
		ydoc_free(it->tree);
		if (it->secret) {
			explicit_bzero(it->secret, strlen(it->secret));
			free(it->secret);
			free(it->scram);
		}
		service_row_free(&it->svc_old);
		service_row_free(&it->svc_new);
	}
	free(r.items);
	for (k = 0; k < DIR_NKINDS; k++)
		dir_objs_free(r.stored[k], r.nstored[k]);
	ydoc_free(st);
}

void
apply_result_free(struct apply_result *res)
{
	size_t i;

	buf_free(&res->out);
	for (i = 0; i < res->nservices; i++)
		service_row_free(&res->services[i].row);
	free(res->services);
	res->services = NULL;
	res->nservices = 0;
}
