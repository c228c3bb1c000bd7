/* api: routes of the node's API and the YAML documents they answer with:
 * NodeStatus, Service (spec + status), SessionList and Error. */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "authguard.h"
#include "db.h"
#include "service.h"
#include "session.h"
#include "prov_api.h"
#include "queue_api.h"
#include "stats_api.h"
#include "tenant_access.h"
#include "yamlw.h"

#define API_VERSION	"mailnode/v1"

static struct api_node_info node_info;

void
api_set_node_info(const struct api_node_info *ni)
{
	node_info = *ni;
}

int
api_parse_request_line(struct api_request *r, const char *line, size_t len)
{
	const char *sp, *q, *end = line + len;
	size_t plen;

	/* No control byte (NUL included) anywhere: fields are C strings and
	 * end up in logs and answers. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			return -1;
	if ((sp = memchr(line, ' ', len)) == NULL || sp == line ||
	    (size_t)(sp - line) >= sizeof(r->method))
		return -1;
	memcpy(r->method, line, (size_t)(sp - line));
	r->method[sp - line] = '\0';
	sp++;
	if (sp >= end || *sp != '/')
		return -1;
	q = memchr(sp, '?', (size_t)(end - sp));
	plen = (size_t)((q ? q : end) - sp);
	if (plen >= sizeof(r->path))
		return -1;
	memcpy(r->path, sp, plen);
	r->path[plen] = '\0';
	r->query[0] = '\0';
	if (q) {
		size_t qlen = (size_t)(end - q - 1);

		if (qlen >= sizeof(r->query))
			return -1;
		memcpy(r->query, q + 1, qlen);
		r->query[qlen] = '\0';
	}
	for (const char *p = r->path; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return -1;
	return 0;
}

int
api_query_get(const char *query, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = query;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);

		if (seg > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t vlen = seg - klen - 1;

			if (vlen >= outlen)
				return -1;
			memcpy(out, p + klen + 1, vlen);
			out[vlen] = '\0';
			return 0;
		}
		p = amp ? amp + 1 : NULL;
	}
	return -1;
}

static void
finish(struct api_request *r, int status)
{
	r->status = status;
	r->reply(r);
}

void
api_reply(struct api_request *r, int status)
{
	finish(r, status);
}

void
api_error_doc(struct buf *out, int status, const char *msg)
{
	struct yamlw w;

	buf_reset(out);
	yamlw_begin(&w, out);
	yamlw_doc(&w);
	yamlw_map(&w);
	yamlw_kstr(&w, "apiVersion", API_VERSION);
	yamlw_kstr(&w, "kind", "Error");
	yamlw_ku64(&w, "code", (uint64_t)status);
	yamlw_kstr(&w, "message", msg);
	yamlw_map_end(&w);
	if (yamlw_end(&w) == -1) {
		buf_reset(out);
		buf_printf(out, "kind: Error\ncode: %d\n", status);
	}
}

void
api_reply_error(struct api_request *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_error_doc(&r->out, status, msg);
	finish(r, status);
}

/* A field kept as canonical JSON, written as YAML. */
static void
write_json_field(struct yamlw *w, const char *key, const char *json)
{
	struct ydoc_stream *st = NULL;
	char err[128];

	if (json == NULL || ydoc_parse(json, strlen(json), &st, err, sizeof(err)) == -1 ||
	    st->ndocs == 0) {
		ydoc_free(st);
		return;
	}
	yamlw_str(w, key);
	yamlw_node(w, st->docs[0]);
	ydoc_free(st);
}

static void
write_service(struct yamlw *w, struct service *s)
{
	size_t i;

	yamlw_doc(w);
	yamlw_map(w);
	yamlw_kstr(w, "apiVersion", API_VERSION);
	yamlw_kstr(w, "kind", "Service");
	yamlw_str(w, "metadata");
	yamlw_map(w);
	yamlw_kstr(w, "name", s->def->name);
	yamlw_map_end(w);

	yamlw_str(w, "spec");
	yamlw_map(w);
	yamlw_kstr(w, "state", s->want_running ? "running" : "stopped");
	write_json_field(w, "access", s->access);
	write_json_field(w, "connections", s->connections);
	for (i = 0; i < settings_ndefs; i++) {
		const struct setting_def *d = &settings_defs[i];
		struct buf v;

		if (!settings_applies(d, s->def->name, service_has_listener(s)))
			continue;
		buf_init(&v, 4096);
		yamlw_str(w, d->key);
		if (settings_format(d, &s->settings, &v) == -1)
			yamlw_null(w);
		else if (d->type == SETTING_ADDRLIST) {
			/* Lists are YAML lists; the text form is comma separated. */
			char *save = NULL, *tok, *copy = strdup(buf_cstr(&v));

			yamlw_seq(w);
			for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
			    tok = strtok_r(NULL, ",", &save))
				yamlw_str(w, tok);
			yamlw_seq_end(w);
			free(copy);
		} else if (d->type == SETTING_BOOL)
			yamlw_bool(w, strcmp(buf_cstr(&v), "true") == 0);
		else if (d->type == SETTING_DURATION)
			yamlw_str(w, buf_cstr(&v));
		else
			yamlw_u64(w, strtoull(buf_cstr(&v), NULL, 10));
		buf_free(&v);
	}
	yamlw_map_end(w);

	yamlw_str(w, "status");
	yamlw_map(w);
	yamlw_kstr(w, "description", s->def->description);
	yamlw_kstr(w, "state", service_state_name(s->state));
	yamlw_ktime(w, "since", s->since);
	if (s->state != SERVICE_RUNNING && s->reason[0])
		yamlw_kstr(w, "reason", s->reason);
	yamlw_kbool(w, "stoppable", s->def->stoppable);
	yamlw_kbool(w, "available", s->handler != NULL);
	yamlw_str(w, "connections");
	yamlw_map(w);
	yamlw_ku64(w, "current", atomic_load(&s->counters.current));
	yamlw_ku64(w, "total", atomic_load(&s->counters.total));
	yamlw_ku64(w, "rejected", atomic_load(&s->counters.rejected));
	if (s->scope) {
		struct access_counts c;

		access_scope_counts(s->scope, &c);
		yamlw_ku64(w, "rejectedByAccess", c.rejected_access);
		yamlw_ku64(w, "rejectedByLimit", c.rejected_limit);
		yamlw_ku64(w, "authFailures", c.auth_failures);
	}
	yamlw_map_end(w);
	yamlw_map_end(w);
	yamlw_map_end(w);
}

static void
access_counts_yaml(struct yamlw *w, const char *name, const struct access_counts *c)
{
	yamlw_map(w);
	yamlw_kstr(w, "name", name);
	yamlw_ku64(w, "current", c->current);
	yamlw_ku64(w, "accepted", c->accepted);
	yamlw_ku64(w, "rejectedByAccess", c->rejected_access);
	yamlw_ku64(w, "rejectedByLimit", c->rejected_limit);
	yamlw_ku64(w, "authFailures", c->auth_failures);
	yamlw_map_end(w);
}

/* GET /v1/access: what the access engine admitted and refused, per
 * service and per tenant (a tenant's token: its own line only). */
static void
reply_access(struct api_request *r)
{
	struct tenant_access_counts *t = NULL;
	struct access_counts c;
	struct yamlw w;
	uint64_t failures, blocks;
	size_t n = 0, i;

	if (tenant_access_snapshot(&t, &n) == -1) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	authguard_totals(&failures, &blocks);
	buf_reset(&r->out);
	yamlw_begin(&w, &r->out);
	yamlw_doc(&w);
	yamlw_map(&w);
	yamlw_kstr(&w, "apiVersion", API_VERSION);
	yamlw_kstr(&w, "kind", "AccessStatus");
	if (!r->scope[0]) {
		yamlw_str(&w, "logins");
		yamlw_map(&w);
		yamlw_ku64(&w, "failures", failures);
		yamlw_ku64(&w, "blocks", blocks);
		yamlw_map_end(&w);
		yamlw_str(&w, "services");
		yamlw_seq(&w);
		for (i = 0; i < services_count(); i++) {
			struct service *s = services_at(i);

			if (!service_has_listener(s) || s->scope == NULL)
				continue;
			access_scope_counts(s->scope, &c);
			access_counts_yaml(&w, s->def->name, &c);
		}
		yamlw_seq_end(&w);
	}
	yamlw_str(&w, "tenants");
	yamlw_seq(&w);
	for (i = 0; i < n; i++)
		if (!r->scope[0] || strcmp(r->scope, t[i].name) == 0)
			access_counts_yaml(&w, t[i].name, &t[i].counts);
	yamlw_seq_end(&w);
	yamlw_map_end(&w);
	free(t);
	if (yamlw_end(&w) == -1) {
		api_reply_error(r, 500, "could not write the answer");
		return;
	}
	finish(r, 200);
}

static void
reply_services(struct api_request *r, struct service *only, int status)
{
	struct yamlw w;
	size_t i;

	buf_reset(&r->out);
	yamlw_begin(&w, &r->out);
	for (i = 0; i < services_count(); i++) {
		struct service *s = services_at(i);

		if (only == NULL || only == s)
			write_service(&w, s);
	}
	if (yamlw_end(&w) == -1) {
		api_reply_error(r, 500, "could not write the answer");
		return;
	}
	finish(r, status);
}

static void
reply_status(struct api_request *r)
{
	struct yamlw w;
	size_t i;

	buf_reset(&r->out);
	yamlw_begin(&w, &r->out);
	yamlw_doc(&w);
	yamlw_map(&w);
	yamlw_kstr(&w, "apiVersion", API_VERSION);
	yamlw_kstr(&w, "kind", "NodeStatus");
	yamlw_str(&w, "node");
	yamlw_map(&w);
	yamlw_kstr(&w, "version", node_info.version);
	yamlw_ktime(&w, "started", node_info.started);
	yamlw_ku64(&w, "uptime", (uint64_t)(time(NULL) - node_info.started));
	yamlw_ku64(&w, "loops", node_info.loops);
	yamlw_ku64(&w, "sessions", sessions_count());
	yamlw_str(&w, "database");
	yamlw_map(&w);
	yamlw_kstr(&w, "mode", node_info.database);
	yamlw_kstr(&w, "status", db_pool_up() ? "up" : "down");
	yamlw_map_end(&w);
	{
		uint64_t depth, bytes, age;

		if (queue_api_figures(&depth, &bytes, &age)) {
			yamlw_str(&w, "queue");
			yamlw_map(&w);
			yamlw_ku64(&w, "depth", depth);
			yamlw_ku64(&w, "bytes", bytes);
			yamlw_ku64(&w, "oldestAge", age);
			yamlw_map_end(&w);
		}
	}
	yamlw_map_end(&w);
	yamlw_str(&w, "services");
	yamlw_seq(&w);
	for (i = 0; i < services_count(); i++) {
		struct service *s = services_at(i);

		yamlw_map(&w);
		yamlw_kstr(&w, "name", s->def->name);
		yamlw_kstr(&w, "state", service_state_name(s->state));
		if (service_has_listener(s))
			yamlw_ku64(&w, "port", s->settings.port);
		if (s->state != SERVICE_RUNNING && s->reason[0])
			yamlw_kstr(&w, "reason", s->reason);
		yamlw_ku64(&w, "current", atomic_load(&s->counters.current));
		yamlw_ku64(&w, "total", atomic_load(&s->counters.total));
		yamlw_ku64(&w, "rejected", atomic_load(&s->counters.rejected));
		yamlw_map_end(&w);
	}
	yamlw_seq_end(&w);
	yamlw_map_end(&w);
	if (yamlw_end(&w) == -1) {
		api_reply_error(r, 500, "could not write the answer");
		return;
	}
	finish(r, 200);
}

/* DELETE /v1/sessions/ID: the session's loop ends it with its protocol's
 * goodbye; the answer says it was asked, the listing shows when it is gone. */
static void
end_session(struct api_request *r, const char *idtext)
{
	struct session_view *v = NULL;
	char *end;
	unsigned long long id;
	size_t n = 0, i;
	bool found = false;

	errno = 0;
	id = strtoull(idtext, &end, 10);
	if (*idtext < '0' || *idtext > '9' || *end != '\0' || errno != 0) {
		api_reply_error(r, 400, "'%s' is not a session id", idtext);
		return;
	}
	if (sessions_snapshot(NULL, r->scope[0] ? r->scope : NULL, &v, &n) == -1) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	for (i = 0; i < n && !found; i++)
		found = v[i].id == id;
	free(v);
	if (!found || session_end(id) == -1) {
		api_reply_error(r, 404, "no live session %llu", id);
		return;
	}
	buf_reset(&r->out);
	buf_printf(&r->out, "apiVersion: %s\nkind: SessionEnd\nid: %llu\nresult: ending\n", API_VERSION, id);
	finish(r, 200);
}

static void
reply_sessions(struct api_request *r)
{
	struct session_view *v = NULL;
	char service[32], tenant[64];
	const char *filter = NULL, *tfilter = NULL;
	struct yamlw w;
	size_t n = 0, i;

	if (api_query_get(r->query, "service", service, sizeof(service)) == 0) {
		if (service_find(service) == NULL) {
			api_reply_error(r, 404, "no service named '%s'", service);
			return;
		}
		filter = service;
	}
	if (api_query_get(r->query, "tenant", tenant, sizeof(tenant)) == 0)
		tfilter = tenant;
	/* A tenant's token sees its own sessions only. */
	if (r->scope[0]) {
		if (tfilter && strcmp(tfilter, r->scope) != 0) {
			api_reply_error(r, 403, "this token is limited to tenant '%s'", r->scope);
			return;
		}
		tfilter = r->scope;
	}
	if (sessions_snapshot(filter, tfilter, &v, &n) == -1) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	buf_reset(&r->out);
	yamlw_begin(&w, &r->out);
	yamlw_doc(&w);
	yamlw_map(&w);
	yamlw_kstr(&w, "apiVersion", API_VERSION);
	yamlw_kstr(&w, "kind", "SessionList");
	yamlw_str(&w, "items");
	yamlw_seq(&w);
	for (i = 0; i < n; i++) {
		yamlw_map(&w);
		yamlw_ku64(&w, "id", v[i].id);
		yamlw_kstr(&w, "service", v[i].service);
		yamlw_kstr(&w, "peer", v[i].peer);
		if (v[i].tenant[0])
			yamlw_kstr(&w, "tenant", v[i].tenant);
		if (v[i].user[0])
			yamlw_kstr(&w, "user", v[i].user);
		yamlw_kstr(&w, "tls", v[i].tls[0] ? v[i].tls : "none");
		yamlw_ktime(&w, "started", v[i].started);
		yamlw_ku64(&w, "bytesIn", v[i].bytes_in);
		yamlw_ku64(&w, "bytesOut", v[i].bytes_out);
		yamlw_map_end(&w);
	}
	yamlw_seq_end(&w);
	yamlw_map_end(&w);
	free(v);
	if (yamlw_end(&w) == -1) {
		api_reply_error(r, 500, "could not write the answer");
		return;
	}
	finish(r, 200);
}

/* POST /v1/services/NAME/ACTION */
static void
service_action(struct api_request *r, struct service *s, const char *action)
{
	char err[512], drain[8];
	int rc;

	if (strcmp(action, "start") == 0)
		rc = service_start(s, err, sizeof(err));
	else if (strcmp(action, "stop") == 0) {
		bool d = true;

		if (api_query_get(r->query, "drain", drain, sizeof(drain)) == 0)
			d = strcmp(drain, "false") != 0 && strcmp(drain, "0") != 0;
		rc = service_stop(s, d, err, sizeof(err));
	} else if (strcmp(action, "restart") == 0)
		rc = service_restart(s, err, sizeof(err));
	else {
		api_reply_error(r, 404, "unknown action '%s': use start, stop or restart", action);
		return;
	}
	if (rc == -1) {
		/* A refused request (admin, no handler) is a conflict; a failed
		 * start is the server's trouble. */
		api_reply_error(r, s->state == SERVICE_FAILED ? 500 : 409, "%s", err);
		return;
	}
	reply_services(r, s, 200);
}

void
api_handle(struct api_request *r)
{
	const char *p = r->path;
	bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;

	buf_init(&r->out, 0);
	/* Services are the node's own: a tenant-limited token cannot see them. */
	if (r->scope[0] && (strncmp(p, "/v1/services", 12) == 0 || strcmp(p, "/v1/status") == 0 ||
	    strncmp(p, "/v1/queue", 9) == 0)) {
		api_reply_error(r, 403, "this token is limited to tenant '%s'", r->scope);
		return;
	}
	if (prov_api_handle(r) || queue_api_handle(r) || stats_api_handle(r))
		return;
	if (strcmp(p, "/v1/status") == 0) {
		if (!get)
			goto method;
		reply_status(r);
		return;
	}
	if (strcmp(p, "/v1/sessions") == 0) {
		if (!get)
			goto method;
		reply_sessions(r);
		return;
	}
	if (strcmp(p, "/v1/access") == 0) {
		if (!get)
			goto method;
		reply_access(r);
		return;
	}
	if (strncmp(p, "/v1/sessions/", 13) == 0) {
		if (strcmp(r->method, "DELETE") != 0)
			goto method;
		end_session(r, p + 13);
		return;
	}
	if (strcmp(p, "/v1/services") == 0) {
		if (!get)
			goto method;
		reply_services(r, NULL, 200);
		return;
	}
	if (strncmp(p, "/v1/services/", 13) == 0) {
		char name[64];
		const char *rest = p + 13, *slash = strchr(rest, '/');
		size_t nlen = slash ? (size_t)(slash - rest) : strlen(rest);
		struct service *s;

		if (nlen == 0 || nlen >= sizeof(name)) {
			api_reply_error(r, 404, "no such service");
			return;
		}
		memcpy(name, rest, nlen);
		name[nlen] = '\0';
		if ((s = service_find(name)) == NULL) {
			api_reply_error(r, 404, "no service named '%s'", name);
			return;
		}
		if (slash == NULL) {
			if (!get)
				goto method;
			reply_services(r, s, 200);
			return;
		}
		if (!post)
			goto method;
		service_action(r, s, slash + 1);
		return;
	}
	api_reply_error(r, 404, "no such resource: %s", p);
	return;
method:
	api_reply_error(r, 405, "%s is not allowed on %s", r->method, p);
}
