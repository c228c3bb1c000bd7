/* prov_api: the provisioning routes of the node's API. Each request becomes
 * a job on a database worker; its answer comes back on the loop that asked.
 *
 *   POST   /v1/apply[?dryRun=true]           YAML stream -> ApplyResult
 *   GET    /v1/KINDS[?tenant=T]              tenants, domains, mailboxes, aliases
 *   GET    /v1/KINDS/NAME
 *   DELETE /v1/KINDS/NAME[?purge=true]
 *   POST   /v1/mailboxes/ADDRESS/password    body "password: ..."
 *   POST   /v1/tokens?tenant=T&description=D (control socket only)
 */
#include "prov_api.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "canon.h"
#include "scram.h"
#include "tenant_access.h"
#include "db.h"
#include "directory.h"
#include "log.h"
#include "password.h"
#include "service.h"
#include "tls_domains.h"
#include "yamlw.h"
#include "ydoc.h"

enum job_kind { JOB_APPLY, JOB_GET, JOB_DELETE, JOB_TOKEN, JOB_PASSWORD };

struct job {
	enum job_kind		 what;
	struct api_request	*r;
	char			 scope[64];	/* "" for all tenants */
	/* apply */
	struct apply_opts	 opts;
	char			*body;
	size_t			 len;
	struct apply_result	 res;
	/* get, delete, password, token */
	enum dir_kind		 kind;
	char			 name[256];
	char			 tenant[64];
	char			 description[256];
	bool			 purge;
	/* answer */
	int			 status;
	struct buf		 out;
};

static void
job_free(struct job *j)
{
	if (j->body) {
		explicit_bzero(j->body, j->len);	/* may hold passwords */
		free(j->body);
	}
	apply_result_free(&j->res);
	buf_free(&j->out);
	free(j);
}

static void
out_error(struct job *j, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
out_error(struct job *j, int status, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j->status = status;
	api_error_doc(&j->out, status, msg);
}

/* An object as the document get returns: what apply takes back unchanged. */
static void
write_object(struct yamlw *w, const struct dir_obj *o)
{
	struct ydoc_stream *st = NULL;
	char err[128];

	yamlw_doc(w);
	yamlw_map(w);
	yamlw_kstr(w, "apiVersion", "mailnode/v1");
	yamlw_kstr(w, "kind", dir_kind_name(o->kind));
	yamlw_str(w, "metadata");
	yamlw_map(w);
	yamlw_kstr(w, "name", o->name);
	if (o->kind != DIR_TENANT)
		yamlw_kstr(w, "tenant", o->tenant);
	yamlw_map_end(w);
	yamlw_str(w, "spec");
	if (ydoc_parse(o->spec, strlen(o->spec), &st, err, sizeof(err)) == 0 && st->ndocs)
		yamlw_node(w, st->docs[0]);
	else {
		yamlw_map(w);
		yamlw_map_end(w);
	}
	ydoc_free(st);
	if (o->kind == DIR_MAILBOX) {
		yamlw_str(w, "status");
		yamlw_map(w);
		yamlw_ku64(w, "usedBytes", o->used_bytes);
		yamlw_ku64(w, "messages", o->messages);
		yamlw_kbool(w, "hasPassword", o->secret != NULL);
		yamlw_map_end(w);
	}
	yamlw_map_end(w);
}

/* Load one object the caller may see; 0 found, 404 unknown, 503 db. */
static int
load_one(MYSQL *m, struct job *j, struct dir_obj **objs, size_t *n)
{
	const char *names[1] = { j->name };
	char err[512];

	*objs = NULL;
	*n = 0;
	if (dir_load(m, j->kind, names, 1, j->scope[0] ? j->scope : NULL, objs, n,
	    err, sizeof(err)) == -1) {
		out_error(j, 503, "database unavailable: %s", err);
		return 503;
	}
	if (*n == 0) {
		/* The same answer whether it does not exist or is another tenant's. */
		out_error(j, 404, "no %s named %s", dir_kind_name(j->kind), j->name);
		return 404;
	}
	return 0;
}

static int
job_run(MYSQL *m, void *arg)
{
	struct job *j = arg;
	struct dir_obj *objs = NULL;
	size_t n = 0, i;
	char err[512];
	struct yamlw w;

	j->status = 200;
	switch (j->what) {
	case JOB_APPLY:
		apply_run(m, j->body, j->len, &j->opts, &j->res);
		j->status = j->res.status;
		return j->status == 503 ? -1 : 0;
	case JOB_GET:
		if (j->name[0]) {
			if (load_one(m, j, &objs, &n) != 0)
				break;
		} else if (dir_load(m, j->kind, NULL, 0, j->scope[0] ? j->scope :
		    j->tenant[0] ? j->tenant : NULL, &objs, &n, err, sizeof(err)) == -1) {
			out_error(j, 503, "database unavailable: %s", err);
			break;
		}
		yamlw_begin(&w, &j->out);
		for (i = 0; i < n; i++)
			if (!j->tenant[0] || strcmp(objs[i].tenant, j->tenant) == 0)
				write_object(&w, &objs[i]);
		if (yamlw_end(&w) == -1)
			out_error(j, 500, "could not write the answer");
		break;
	case JOB_DELETE: {
		uint64_t held = 0;

		if (load_one(m, j, &objs, &n) != 0)
			break;
		if (dir_mail_held(m, &objs[0], &held, err, sizeof(err)) == -1) {
			out_error(j, 503, "database unavailable: %s", err);
			break;
		}
		/* Never lose mail silently. */
		if (held > 0 && !j->purge) {
			out_error(j, 409, "%s %s holds %llu messages; delete it with purge=true to "
			    "remove them too", dir_kind_name(j->kind), j->name, (unsigned long long)held);
			break;
		}
		if (mysql_query(m, "START TRANSACTION") != 0 ||
		    dir_delete(m, &objs[0], err, sizeof(err)) == -1 ||
		    dir_bump_generation(m, err, sizeof(err)) == -1 || mysql_query(m, "COMMIT") != 0) {
			(void)mysql_query(m, "ROLLBACK");
			out_error(j, 503, "nothing was deleted: %s", *err ? err : mysql_error(m));
			break;
		}
		yamlw_begin(&w, &j->out);
		yamlw_doc(&w);
		yamlw_map(&w);
		yamlw_kstr(&w, "apiVersion", "mailnode/v1");
		yamlw_kstr(&w, "kind", "DeleteResult");
		yamlw_kstr(&w, "deleted", dir_kind_name(j->kind));
		yamlw_kstr(&w, "name", j->name);
		yamlw_ku64(&w, "messagesPurged", held);
		yamlw_map_end(&w);
		(void)yamlw_end(&w);
		break;
	}
	case JOB_PASSWORD: {
		char hash[PASSWORD_HASH_MAX];

		if (load_one(m, j, &objs, &n) != 0)
			break;
		if (password_hash(j->body, hash, sizeof(hash), err, sizeof(err)) == -1) {
			out_error(j, 500, "%s", err);
			break;
		}
		free(objs[0].secret);
		objs[0].secret = strdup(hash);
		explicit_bzero(hash, sizeof(hash));
		free(objs[0].scram);
		objs[0].scram = NULL;
		if (scram_keys_make(j->body, hash, sizeof(hash), err, sizeof(err)) == 0)
			objs[0].scram = strdup(hash);
		explicit_bzero(hash, sizeof(hash));
		if (objs[0].secret == NULL || objs[0].scram == NULL || dir_update(m, &objs[0], true, err, sizeof(err)) == -1) {
			out_error(j, 503, "password not changed: %s", err);
			break;
		}
		yamlw_begin(&w, &j->out);
		yamlw_doc(&w);
		yamlw_map(&w);
		yamlw_kstr(&w, "apiVersion", "mailnode/v1");
		yamlw_kstr(&w, "kind", "PasswordResult");
		yamlw_kstr(&w, "mailbox", j->name);
		yamlw_kstr(&w, "scheme", "SHA512-CRYPT");
		yamlw_map_end(&w);
		(void)yamlw_end(&w);
		break;
	}
	case JOB_TOKEN: {
		unsigned char raw[32];
		char token[64], sha[65];
		uint64_t tenant_id = 0;

		if (j->tenant[0]) {
			j->kind = DIR_TENANT;
			snprintf(j->name, sizeof(j->name), "%s", j->tenant);
			if (load_one(m, j, &objs, &n) != 0)
				break;
			tenant_id = objs[0].id;
		}
		if (gnutls_rnd(GNUTLS_RND_KEY, raw, sizeof(raw)) != 0 ||
		    prov_token_encode(raw, sizeof(raw), token, sizeof(token)) == -1 ||
		    prov_token_hash(token, sha) == -1) {
			out_error(j, 500, "cannot make a token");
			break;
		}
		explicit_bzero(raw, sizeof(raw));
		if (dir_token_add(m, sha, tenant_id, j->description, err, sizeof(err)) == -1) {
			out_error(j, 503, "token not stored: %s", err);
			break;
		}
		yamlw_begin(&w, &j->out);
		yamlw_doc(&w);
		yamlw_map(&w);
		yamlw_kstr(&w, "apiVersion", "mailnode/v1");
		yamlw_kstr(&w, "kind", "Token");
		yamlw_kstr(&w, "token", token);
		yamlw_kstr(&w, "tenant", j->tenant[0] ? j->tenant : "*");
		yamlw_kstr(&w, "description", j->description);
		yamlw_map_end(&w);
		(void)yamlw_end(&w);
		explicit_bzero(token, sizeof(token));
		break;
	}
	}
	dir_objs_free(objs, n);
	return 0;
}

/* Bring the running services to what was just stored. Loop 0. */
static void
reconcile_services(struct apply_result *res)
{
	size_t i;

	for (i = 0; i < res->nservices; i++) {
		struct apply_service *as = &res->services[i];
		struct service *s = service_find(as->name);
		bool running;
		char err[512];

		if (s == NULL)
			continue;
		running = s->state == SERVICE_RUNNING;
		s->settings = as->row.settings;
		service_set_rules(s, as->row.access, as->row.connections, false, false);
		if (s->handler && s->handler->reconfigure && running)
			s->handler->reconfigure(s);
		if (as->row.running && !running) {
			if (service_start(s, err, sizeof(err)) == -1)
				log_event(LOG_LVL_WARN, &(struct log_ctx){ .service = s->def->name },
				    "after apply: %s", err);
		} else if (!as->row.running && running) {
			if (service_stop(s, true, err, sizeof(err)) == -1)
				log_event(LOG_LVL_WARN, &(struct log_ctx){ .service = s->def->name },
				    "after apply: %s", err);
		} else if (running && as->rebind && s->settings.restart_on_change) {
			if (service_restart(s, err, sizeof(err)) == -1)
				log_event(LOG_LVL_WARN, &(struct log_ctx){ .service = s->def->name },
				    "after apply: %s", err);
		}
	}
}

static void
job_done(void *arg, int result)
{
	struct job *j = arg;
	struct api_request *r = j->r;

	if (result == -1 && j->status == 200)
		out_error(j, 503, "database unavailable; nothing was changed, try again");
	if (j->what == JOB_APPLY) {
		if (j->res.status == 200 && !j->opts.dry_run) {
			reconcile_services(&j->res);
			/* Tenant rules take effect for the next connection. */
			tenant_access_reload();
			tls_domains_reload();
		}
		buf_reset(&r->out);
		buf_append(&r->out, buf_data(&j->res.out), buf_len(&j->res.out));
		if (result == -1 && buf_len(&j->res.out) == 0)
			buf_append(&r->out, buf_data(&j->out), buf_len(&j->out));
	} else {
		buf_reset(&r->out);
		buf_append(&r->out, buf_data(&j->out), buf_len(&j->out));
	}
	api_reply(r, j->status ? j->status : 503);
	job_free(j);
}

static struct job *
job_new(struct api_request *r, enum job_kind what)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->what = what;
	j->r = r;
	buf_init(&j->out, 0);
	buf_init(&j->res.out, 0);
	snprintf(j->scope, sizeof(j->scope), "%s", r->scope);
	j->opts.scope = j->scope[0] ? j->scope : NULL;
	return j;
}

static void
submit(struct job *j)
{
	if (db_submit(job_run, job_done, j) == -1) {
		api_reply_error(j->r, 503, "database workers unavailable");
		job_free(j);
	}
}

static bool
query_true(const struct api_request *r, const char *key)
{
	char v[8];

	return api_query_get(r->query, key, v, sizeof(v)) == 0 &&
	    (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* "%40" and "+" in names and descriptions that came through a URL. */
static void
url_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '%' && s[1] && s[2]) {
			char hex[3] = { s[1], s[2], 0 };
			char *end;
			long v = strtol(hex, &end, 16);

			if (*end == '\0' && v > 0) {
				*o++ = (char)v;
				s += 2;
				continue;
			}
		}
		*o++ = *s == '+' ? ' ' : *s;
	}
	*o = '\0';
}

bool
prov_api_handle(struct api_request *r)
{
	const char *p = r->path, *rest;
	struct job *j;
	enum dir_kind kind;
	char first[32];
	size_t flen;

	if (strcmp(p, "/v1/apply") == 0) {
		if (strcmp(r->method, "POST") != 0) {
			api_reply_error(r, 405, "use POST with a YAML stream on /v1/apply");
			return true;
		}
		if ((j = job_new(r, JOB_APPLY)) == NULL ||
		    (j->body = malloc(buf_len(r->body) + 1)) == NULL) {
			if (j)
				job_free(j);
			api_reply_error(r, 500, "out of memory");
			return true;
		}
		j->len = buf_len(r->body);
		memcpy(j->body, buf_data(r->body) ? buf_data(r->body) : "", j->len);
		j->body[j->len] = '\0';
		/* The request buffer held the stream, passwords included. */
		if (buf_data(r->body))
			explicit_bzero(buf_data(r->body), buf_len(r->body));
		j->opts.dry_run = query_true(r, "dryRun");
		submit(j);
		return true;
	}
	if (strcmp(p, "/v1/tokens") == 0) {
		if (!r->local) {
			api_reply_error(r, 403, "tokens are made on the node itself: mailnodectl token create");
			return true;
		}
		if (strcmp(r->method, "POST") != 0) {
			api_reply_error(r, 405, "use POST on /v1/tokens");
			return true;
		}
		if ((j = job_new(r, JOB_TOKEN)) == NULL) {
			api_reply_error(r, 500, "out of memory");
			return true;
		}
		if (api_query_get(r->query, "tenant", j->tenant, sizeof(j->tenant)) == 0)
			url_decode(j->tenant);
		if (api_query_get(r->query, "description", j->description, sizeof(j->description)) == 0)
			url_decode(j->description);
		submit(j);
		return true;
	}
	if (strncmp(p, "/v1/", 4) != 0)
		return false;
	rest = p + 4;
	flen = strcspn(rest, "/");
	if (flen == 0 || flen >= sizeof(first))
		return false;
	memcpy(first, rest, flen);
	first[flen] = '\0';
	if (dir_kind_parse(first, &kind) == -1)
		return false;
	rest += flen;
	if ((j = job_new(r, JOB_GET)) == NULL) {
		api_reply_error(r, 500, "out of memory");
		return true;
	}
	j->kind = kind;
	if (*rest == '/') {
		size_t nlen = strcspn(rest + 1, "/");

		if (nlen == 0 || nlen >= sizeof(j->name)) {
			job_free(j);
			api_reply_error(r, 404, "no such %s", dir_kind_name(kind));
			return true;
		}
		memcpy(j->name, rest + 1, nlen);
		j->name[nlen] = '\0';
		url_decode(j->name);
		/* Names are stored lower case. */
		if (canon_lower(j->name, j->name, sizeof(j->name)) == -1) {
			job_free(j);
			api_reply_error(r, 404, "no such %s", dir_kind_name(kind));
			return true;
		}
		rest += 1 + nlen;
	}
	if (api_query_get(r->query, "tenant", j->tenant, sizeof(j->tenant)) == 0) {
		url_decode(j->tenant);
		if (r->scope[0] && strcmp(j->tenant, r->scope) != 0) {
			job_free(j);
			api_reply_error(r, 403, "this token is limited to tenant '%s'", r->scope);
			return true;
		}
	}
	if (strcmp(r->method, "GET") == 0 && *rest == '\0') {
		submit(j);
		return true;
	}
	if (strcmp(r->method, "DELETE") == 0 && *rest == '\0' && j->name[0]) {
		j->what = JOB_DELETE;
		j->purge = query_true(r, "purge");
		submit(j);
		return true;
	}
	if (strcmp(r->method, "POST") == 0 && kind == DIR_MAILBOX && j->name[0] &&
	    strcmp(rest, "/password") == 0) {
		struct ydoc_stream *st = NULL;
		const char *pw;
		char err[256];

		j->what = JOB_PASSWORD;
		if (ydoc_parse(buf_cstr(r->body), buf_len(r->body), &st, err, sizeof(err)) == -1 ||
		    st->ndocs != 1 || (pw = ydoc_str(ydoc_get(st->docs[0], "password"))) == NULL ||
		    strlen(pw) < 8 || strlen(pw) > 1024) {
			ydoc_free(st);
			job_free(j);
			api_reply_error(r, 400, "expected a body 'password: ...' of 8 to 1024 characters");
			return true;
		}
		j->len = strlen(pw);
		j->body = strdup(pw);
		explicit_bzero((char *)pw, strlen(pw));
		ydoc_free(st);
		if (buf_data(r->body))
			explicit_bzero(buf_data(r->body), buf_len(r->body));
		if (j->body == NULL) {
			job_free(j);
			api_reply_error(r, 500, "out of memory");
			return true;
		}
		submit(j);
		return true;
	}
	job_free(j);
	api_reply_error(r, 405, "%s is not allowed on %s", r->method, p);
	return true;
}

int
prov_token_encode(const unsigned char *raw, size_t n, char *out, size_t outlen)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (outlen < 4 + (n * 4 + 2) / 3)
		return -1;
	memcpy(out, "mn_", 3);
	o = 3;
	for (i = 0; i < n; i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = b64[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return 0;
}

int
prov_token_hash(const char *token, char hex[65])
{
	unsigned char d[32];
	size_t i;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), d) != 0)
		return -1;
	for (i = 0; i < sizeof(d); i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return 0;
}
