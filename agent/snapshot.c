/* snapshot: reading the node's answers (YAML, through ydoc) into the flat
 * rows the MIB handlers serve. A failed refresh keeps the last rows and
 * marks the node unreachable. */
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_client.h"
#include "snmp_index.h"
#include "ydoc.h"

static struct snapshot	 snap_empty, *snap_cur;
static long		 snap_at_ms = -1;	/* monotonic time of the last refresh */
static long		 snap_retry_ms = -1;	/* no new try before, after a failed one */

/* A node that does not answer must not stall the agent (snmpd gives up on
 * a subagent that is silent for agentXTimeout): reads of the state have a
 * short deadline, and after a failure the next try waits a little. */
#define SNAP_READ_TIMEOUT_MS	1500
#define SNAP_SET_TIMEOUT_MS	4000
#define SNAP_RETRY_MS		3000

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
addrs_free(struct snap_addrs *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->list[i]);
	free(a->list);
	a->list = NULL;
	a->n = 0;
}

static void
snap_free(struct snapshot *s)
{
	size_t i;

	if (s == NULL || s == &snap_empty)
		return;
	for (i = 0; i < s->nservices; i++)
		addrs_free(&s->services[i].access);
	for (i = 0; i < s->ntenants; i++)
		addrs_free(&s->tenants[i].access);
	free(s->services);
	free(s->tenants);
	free(s->rules);
	free(s);
}

const char *
snapshot_mode_name(int mode)
{
	switch (mode) {
	case ACCESS_MODE_DENY:	return "deny-listed";
	case ACCESS_MODE_ALLOW:	return "allow-listed";
	default:		return "open";
	}
}

int
snapshot_mode_parse(const char *s)
{
	if (s && strcmp(s, "deny-listed") == 0)
		return ACCESS_MODE_DENY;
	if (s && strcmp(s, "allow-listed") == 0)
		return ACCESS_MODE_ALLOW;
	return ACCESS_MODE_OPEN;
}

static uint64_t
u64(const struct ydoc_node *n)
{
	const char *s = ydoc_str(n);

	return s ? strtoull(s, NULL, 10) : 0;
}

static bool
truth(const struct ydoc_node *n)
{
	const char *s = ydoc_str(n);

	return s && strcmp(s, "true") == 0;
}

static void
copy_str(char *dst, size_t len, const struct ydoc_node *n)
{
	const char *s = ydoc_str(n);

	snprintf(dst, len, "%s", s ? s : "");
}

static time_t
iso_time(const struct ydoc_node *n)
{
	const char *s = ydoc_str(n);
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL)
		return 0;
	return timegm(&tm);
}

static int
read_access(struct snap_addrs *a, const struct ydoc_node *acc)
{
	const struct ydoc_node *list = ydoc_get(acc, "addresses");
	size_t i;

	a->mode = snapshot_mode_parse(ydoc_str(ydoc_get(acc, "mode")));
	if (list == NULL || list->type != YDOC_SEQ || list->n == 0)
		return 0;
	if ((a->list = calloc(list->n, sizeof(*a->list))) == NULL)
		return -1;
	for (i = 0; i < list->n; i++) {
		const char *s = ydoc_str(list->items[i]);

		if (s == NULL)
			continue;
		if ((a->list[a->n] = strdup(s)) == NULL)
			return -1;
		a->n++;
	}
	return 0;
}

static int
oper_of(const char *s)
{
	if (s == NULL)
		return OPER_STOPPED;
	if (strcmp(s, "running") == 0)
		return OPER_RUNNING;
	if (strcmp(s, "starting") == 0)
		return OPER_STARTING;
	if (strcmp(s, "stopping") == 0)
		return OPER_STOPPING;
	if (strcmp(s, "failed") == 0)
		return OPER_FAILED;
	return OPER_STOPPED;
}

static int
read_services(struct snapshot *s, const struct ydoc_stream *st)
{
	size_t i;

	if ((s->services = calloc(st->ndocs ? st->ndocs : 1, sizeof(*s->services))) == NULL)
		return -1;
	for (i = 0; i < st->ndocs; i++) {
		const struct ydoc_node *d = st->docs[i], *spec = ydoc_get(d, "spec"),
		    *status = ydoc_get(d, "status"), *conns = ydoc_get(status, "connections"),
		    *bind = ydoc_get(spec, "bind");
		struct snap_service *v = &s->services[s->nservices];
		size_t k;

		if (ydoc_str(ydoc_get(d, "kind")) == NULL ||
		    strcmp(ydoc_str(ydoc_get(d, "kind")), "Service") != 0)
			continue;
		v->index = (unsigned)s->nservices + 1;
		copy_str(v->name, sizeof(v->name), ydoc_get(ydoc_get(d, "metadata"), "name"));
		copy_str(v->description, sizeof(v->description), ydoc_get(status, "description"));
		v->oper = oper_of(ydoc_str(ydoc_get(status, "state")));
		v->want_running = ydoc_str(ydoc_get(spec, "state")) &&
		    strcmp(ydoc_str(ydoc_get(spec, "state")), "running") == 0;
		v->available = truth(ydoc_get(status, "available"));
		v->stoppable = truth(ydoc_get(status, "stoppable"));
		v->listener = ydoc_get(spec, "port") != NULL;
		v->port = (uint32_t)u64(ydoc_get(spec, "port"));
		v->max_clients = (uint32_t)u64(ydoc_get(spec, "maxClients"));
		/* "300s": the number of seconds leads. */
		v->timeout = (uint32_t)u64(ydoc_get(spec, "timeout"));
		v->auto_start = truth(ydoc_get(spec, "autoStart"));
		for (k = 0; bind && bind->type == YDOC_SEQ && k < bind->n; k++) {
			size_t used = strlen(v->bind);

			snprintf(v->bind + used, sizeof(v->bind) - used, "%s%s", k ? "," : "",
			    ydoc_str(bind->items[k]) ? ydoc_str(bind->items[k]) : "");
		}
		v->current = u64(ydoc_get(conns, "current"));
		v->total = u64(ydoc_get(conns, "total"));
		v->rejected = u64(ydoc_get(conns, "rejected"));
		v->since = iso_time(ydoc_get(status, "since"));
		if (read_access(&v->access, ydoc_get(spec, "access")) == -1)
			return -1;
		s->nservices++;
	}
	return 0;
}

static int
read_tenants(struct snapshot *s, const struct ydoc_node *doc)
{
	const struct ydoc_node *items = ydoc_get(doc, "items");
	static const char *const limit_keys[LIMIT_COUNT] = {
		"domains", "mailboxes", "aliases", "storage", "messageSize"
	};
	size_t i, k;

	if (items == NULL || items->type != YDOC_SEQ)
		return 0;
	if ((s->tenants = calloc(items->n ? items->n : 1, sizeof(*s->tenants))) == NULL)
		return -1;
	for (i = 0; i < items->n; i++) {
		const struct ydoc_node *t = items->items[i], *lim = ydoc_get(t, "limits");
		struct snap_tenant *v = &s->tenants[s->ntenants];
		uint64_t id = u64(ydoc_get(t, "id"));

		if (id == 0 || id > UINT32_MAX)
			continue;	/* outside the table's index range */
		v->id = (uint32_t)id;
		copy_str(v->name, sizeof(v->name), ydoc_get(t, "name"));
		v->suspended = ydoc_str(ydoc_get(t, "state")) &&
		    strcmp(ydoc_str(ydoc_get(t, "state")), "suspended") == 0;
		for (k = 0; k < LIMIT_COUNT; k++)
			v->limit[k] = u64(ydoc_get(lim, limit_keys[k]));
		v->msgs_in = u64(ydoc_get(t, "messagesIn"));
		v->msgs_out = u64(ydoc_get(t, "messagesOut"));
		v->bytes_in = u64(ydoc_get(t, "bytesIn"));
		v->bytes_out = u64(ydoc_get(t, "bytesOut"));
		v->auth_failures = u64(ydoc_get(t, "authFailures"));
		v->rejected = u64(ydoc_get(t, "rejectedConnections"));
		v->sessions = u64(ydoc_get(t, "currentSessions"));
		v->domains = u64(ydoc_get(t, "domains"));
		v->mailboxes = u64(ydoc_get(t, "mailboxes"));
		v->aliases = u64(ydoc_get(t, "aliases"));
		v->storage_used = u64(ydoc_get(t, "storageUsed"));
		if (read_access(&v->access, ydoc_get(t, "access")) == -1)
			return -1;
		s->ntenants++;
	}
	return 0;
}

static void
read_node(struct snapshot *s, const struct ydoc_node *status, const struct ydoc_node *stats)
{
	const struct ydoc_node *node = ydoc_get(status, "node"), *q = ydoc_get(stats, "queue"),
	    *tr = ydoc_get(stats, "traffic");
	const char *db = ydoc_str(ydoc_get(ydoc_get(node, "database"), "status"));

	copy_str(s->version, sizeof(s->version), ydoc_get(node, "version"));
	s->uptime = u64(ydoc_get(node, "uptime"));
	s->sessions = u64(ydoc_get(node, "sessions"));
	s->db_up = db && strcmp(db, "up") == 0;
	s->generation = u64(ydoc_get(stats, "configGeneration"));
	s->q_messages = u64(ydoc_get(q, "messages"));
	s->q_bytes = u64(ydoc_get(q, "bytes"));
	s->q_oldest = u64(ydoc_get(q, "oldestAge"));
	s->q_held = u64(ydoc_get(q, "held"));
	s->q_deferred = u64(ydoc_get(q, "deferred"));
	s->q_local_rcpts = u64(ydoc_get(q, "localRecipients"));
	s->q_remote_rcpts = u64(ydoc_get(q, "remoteRecipients"));
	s->msgs_in = u64(ydoc_get(tr, "messagesIn"));
	s->bytes_in = u64(ydoc_get(tr, "bytesIn"));
	s->rcpts_in = u64(ydoc_get(tr, "recipientsIn"));
	s->msgs_out = u64(ydoc_get(tr, "messagesOut"));
	s->bytes_out = u64(ydoc_get(tr, "bytesOut"));
	s->rcpts_out = u64(ydoc_get(tr, "recipientsOut"));
	s->login_failures = u64(ydoc_get(ydoc_get(stats, "logins"), "failures"));
}

int
snapshot_rule_index(int type, const char *scope, const char *address, oid *out, size_t *len)
{
	return snmp_index_rule_encode(type, scope, address, out, len);
}

static int
rule_cmp(const void *a, const void *b)
{
	const struct snap_rule *x = a, *y = b;

	return snmp_oid_compare(x->idx, x->idxlen, y->idx, y->idxlen);
}

static int
add_rules(struct snapshot *s, size_t *cap, int type, const char *scope, const struct snap_addrs *a)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		struct snap_rule *r;

		if (s->nrules == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;
			struct snap_rule *p = realloc(s->rules, ncap * sizeof(*p));

			if (p == NULL)
				return -1;
			s->rules = p;
			*cap = ncap;
		}
		r = &s->rules[s->nrules];
		if (snapshot_rule_index(type, scope, a->list[i], r->idx, &r->idxlen) == -1)
			continue;	/* a pattern too long for the index: API only */
		r->type = type;
		r->scope = scope;
		r->address = a->list[i];
		r->mode = a->mode;
		s->nrules++;
	}
	return 0;
}

/* One GET whose answer is parsed; NULL when unreachable or not 200. */
static struct ydoc_stream *
fetch(const char *path, bool *reached)
{
	struct ydoc_stream *st = NULL;
	struct buf out;
	char err[256];
	int status;

	buf_init(&out, 0);
	status = node_request("GET", path, NULL, 0, &out, err, sizeof(err));
	if (status == -1) {
		*reached = false;
		snmp_log(LOG_DEBUG, "mailnode-snmp: %s: %s\n", path, err);
	} else if (status != 200) {
		snmp_log(LOG_WARNING, "mailnode-snmp: %s: status %d\n", path, status);
	} else if (ydoc_parse(buf_cstr(&out), buf_len(&out), &st, err, sizeof(err)) == -1) {
		snmp_log(LOG_WARNING, "mailnode-snmp: %s: %s\n", path, err);
		st = NULL;
	}
	buf_free(&out);
	return st;
}

static struct snapshot *
refresh(void)
{
	struct ydoc_stream *status = NULL, *services = NULL, *stats = NULL, *tenants = NULL;
	struct snapshot *s;
	bool reached = true;
	size_t cap = 0, i;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((status = fetch("/v1/status", &reached)) == NULL || !reached ||
	    (services = fetch("/v1/services", &reached)) == NULL ||
	    (stats = fetch("/v1/stats", &reached)) == NULL ||
	    (tenants = fetch("/v1/stats/tenants", &reached)) == NULL ||
	    status->ndocs < 1 || stats->ndocs < 1 || tenants->ndocs < 1)
		goto fail;
	read_node(s, status->docs[0], stats->docs[0]);
	if (read_services(s, services) == -1 || read_tenants(s, tenants->docs[0]) == -1)
		goto fail;
	for (i = 0; i < s->nservices; i++)
		if (add_rules(s, &cap, 1, s->services[i].name, &s->services[i].access) == -1)
			goto fail;
	for (i = 0; i < s->ntenants; i++)
		if (add_rules(s, &cap, 2, s->tenants[i].name, &s->tenants[i].access) == -1)
			goto fail;
	if (s->nrules > 1)
		qsort(s->rules, s->nrules, sizeof(*s->rules), rule_cmp);
	s->reachable = s->loaded = true;
	ydoc_free(status);
	ydoc_free(services);
	ydoc_free(stats);
	ydoc_free(tenants);
	return s;
fail:
	ydoc_free(status);
	ydoc_free(services);
	ydoc_free(stats);
	ydoc_free(tenants);
	snap_free(s);
	return NULL;
}

const struct snapshot *
snapshot_get(unsigned max_age_ms)
{
	long now = mono_ms();
	struct snapshot *s;

	if (snap_cur == NULL)
		snap_cur = &snap_empty;
	if (snap_at_ms >= 0 && now - snap_at_ms < (long)max_age_ms && max_age_ms > 0)
		return snap_cur;
	if (snap_retry_ms >= 0 && now < snap_retry_ms && max_age_ms > 0)
		return snap_cur;
	snap_at_ms = now;
	node_client_timeout(SNAP_READ_TIMEOUT_MS);
	s = refresh();
	node_client_timeout(SNAP_SET_TIMEOUT_MS);
	if (s != NULL) {
		snap_free(snap_cur);
		snap_cur = s;
		snap_retry_ms = -1;
	} else {
		snap_cur->reachable = false;
		snap_retry_ms = mono_ms() + SNAP_RETRY_MS;
	}
	return snap_cur;
}

void
snapshot_invalidate(void)
{
	snap_at_ms = -1;
	snap_retry_ms = -1;
}

void
snapshot_free_all(void)
{
	snap_free(snap_cur);
	snap_cur = NULL;
	snap_at_ms = -1;
}

const struct snap_service *
snapshot_service_by_index(const struct snapshot *s, unsigned index)
{
	return index >= 1 && index <= s->nservices ? &s->services[index - 1] : NULL;
}

const struct snap_service *
snapshot_service_by_name(const struct snapshot *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nservices; i++)
		if (strcmp(s->services[i].name, name) == 0)
			return &s->services[i];
	return NULL;
}

const struct snap_tenant *
snapshot_tenant_by_id(const struct snapshot *s, uint32_t id)
{
	size_t lo = 0, hi = s->ntenants;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->tenants[mid].id == id)
			return &s->tenants[mid];
		if (s->tenants[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct snap_tenant *
snapshot_tenant_by_name(const struct snapshot *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->ntenants; i++)
		if (strcmp(s->tenants[i].name, name) == 0)
			return &s->tenants[i];
	return NULL;
}
