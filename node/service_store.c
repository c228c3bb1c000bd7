/* service_store: the `services` table behind the service units. */
#include "service_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "service.h"

/* A row's settings, each through its definition so a bad stored value is
 * caught (and the value before it kept) rather than used. */
static void
row_settings(const char *name, bool listener, MYSQL_ROW row, MYSQL_FIELD *fields,
    unsigned nfields, struct service_settings *out)
{
	unsigned i;
	size_t k;

	for (i = 0; i < nfields; i++) {
		for (k = 0; k < settings_ndefs; k++) {
			const struct setting_def *d = &settings_defs[k];
			char why[256];

			if (strcmp(fields[i].name, d->column) != 0 || row[i] == NULL)
				continue;
			if (!settings_applies(d, name, listener))
				continue;
			if (settings_parse(d, row[i], out, why, sizeof(why)) == -1)
				log_err("service %s: stored %s is invalid, earlier value kept: %s",
				    name, d->key, why);
		}
	}
}

/* Insert the defaults of a service that has no row yet. */
static int
insert_defaults(MYSQL *m, struct service *s, char *err, size_t errlen)
{
	struct buf sql, bind;
	char esc[1100];
	int rc = -1;

	buf_init(&sql, 0);
	buf_init(&bind, 512);
	if (settings_format(settings_find("bind"), &s->settings, &bind) == -1) {
		snprintf(err, errlen, "formatting bind addresses of %s", s->def->name);
		goto done;
	}
	mysql_real_escape_string(m, esc, buf_cstr(&bind), buf_len(&bind));
	if (buf_printf(&sql, "INSERT IGNORE INTO services (name, state, bind_addrs, port, "
	    "max_clients, idle_timeout, auto_start, restart_on_change) VALUES "
	    "('%s', 'running', '%s', %u, %u, %u, %d, %d)", s->def->name, esc,
	    s->settings.port, s->settings.max_clients, s->settings.timeout,
	    s->settings.auto_start, s->settings.restart_on_change) == -1) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	rc = db_exec(m, buf_cstr(&sql), err, errlen);
done:
	buf_free(&sql);
	buf_free(&bind);
	return rc;
}

int
service_store_load(MYSQL *m, char *err, size_t errlen)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	MYSQL_FIELD *fields;
	unsigned nfields, i;
	size_t k;

	for (k = 0; k < services_count(); k++)
		if (insert_defaults(m, services_at(k), err, errlen) == -1)
			return -1;
	if (mysql_query(m, "SELECT * FROM services") != 0 ||
	    (res = mysql_store_result(m)) == NULL) {
		snprintf(err, errlen, "reading services: %s", mysql_error(m));
		return -1;
	}
	nfields = mysql_num_fields(res);
	fields = mysql_fetch_fields(res);
	while ((row = mysql_fetch_row(res)) != NULL) {
		struct service *s = NULL;

		for (i = 0; i < nfields; i++)
			if (strcmp(fields[i].name, "name") == 0 && row[i])
				s = service_find(row[i]);
		if (s == NULL)
			continue;	/* a service a newer node knows */
		row_settings(s->def->name, service_has_listener(s), row, fields, nfields, &s->settings);
		for (i = 0; i < nfields; i++) {
			if (strcmp(fields[i].name, "access") == 0)
				service_set_rules(s, row[i], NULL, false, true);
			else if (strcmp(fields[i].name, "connections") == 0)
				service_set_rules(s, NULL, row[i], true, false);
		}
	}
	mysql_free_result(res);
	(void)k;
	return 0;
}

int
service_store_read(MYSQL *m, const char *name, struct service_row *r, char *err, size_t errlen)
{
	struct service *s = service_find(name);
	char sql[128];
	MYSQL_RES *res;
	MYSQL_ROW row;
	MYSQL_FIELD *fields;
	unsigned nfields, i;

	memset(r, 0, sizeof(*r));
	if (s == NULL) {
		snprintf(err, errlen, "no service named '%s'", name);
		return -1;
	}
	/* Names are checked against our own list above: safe in SQL. */
	snprintf(sql, sizeof(sql), "SELECT * FROM services WHERE name = '%s'", s->def->name);
	if (mysql_query(m, sql) != 0 || (res = mysql_store_result(m)) == NULL) {
		snprintf(err, errlen, "reading service %s: %s", name, mysql_error(m));
		return -1;
	}
	if ((row = mysql_fetch_row(res)) == NULL) {
		mysql_free_result(res);
		snprintf(err, errlen, "service %s has no row", name);
		return -1;
	}
	nfields = mysql_num_fields(res);
	fields = mysql_fetch_fields(res);
	row_settings(name, service_has_listener(s), row, fields, nfields, &r->settings);
	for (i = 0; i < nfields; i++) {
		if (row[i] == NULL)
			continue;
		if (strcmp(fields[i].name, "state") == 0)
			r->running = strcmp(row[i], "running") == 0;
		else if (strcmp(fields[i].name, "access") == 0)
			r->access = strdup(row[i]);
		else if (strcmp(fields[i].name, "connections") == 0)
			r->connections = strdup(row[i]);
	}
	mysql_free_result(res);
	return 0;
}

int
service_store_write(MYSQL *m, const char *name, const struct service_row *r, char *err, size_t errlen)
{
	struct service *s = service_find(name);
	struct buf q, v;
	size_t k;
	int rc = -1;

	if (s == NULL) {
		snprintf(err, errlen, "no service named '%s'", name);
		return -1;
	}
	buf_init(&q, 0);
	buf_init(&v, 0);
	if (buf_printf(&q, "UPDATE services SET state = '%s'", r->running ? "running" : "stopped") == -1)
		goto nomem;
	for (k = 0; k < settings_ndefs; k++) {
		const struct setting_def *d = &settings_defs[k];

		if (!settings_applies(d, s->def->name, service_has_listener(s)))
			continue;
		buf_reset(&v);
		if (settings_format(d, &r->settings, &v) == -1 ||
		    buf_printf(&q, ", %s = ", d->column) == -1)
			goto nomem;
		/* Durations are stored as seconds, booleans as 0/1. */
		if (d->type == SETTING_DURATION)
			rc = buf_printf(&q, "%u", *(const uint32_t *)((const char *)&r->settings + d->offset));
		else if (d->type == SETTING_BOOL)
			rc = buf_puts(&q, strcmp(buf_cstr(&v), "true") == 0 ? "1" : "0");
		else
			rc = db_quote(m, &q, buf_cstr(&v));
		if (rc == -1)
			goto nomem;
		rc = -1;
	}
	if (buf_puts(&q, ", access = ") == -1 || db_quote(m, &q, r->access) == -1 ||
	    buf_puts(&q, ", connections = ") == -1 || db_quote(m, &q, r->connections) == -1 ||
	    buf_printf(&q, " WHERE name = '%s'", s->def->name) == -1)
		goto nomem;
	if (mysql_real_query(m, buf_data(&q), buf_len(&q)) != 0) {
		snprintf(err, errlen, "writing service %s: %s", name, mysql_error(m));
		goto done;
	}
	rc = 0;
	goto done;
nomem:
	snprintf(err, errlen, "out of memory");
	rc = -1;
done:
	buf_free(&q);
	buf_free(&v);
	return rc;
}

void
service_row_free(struct service_row *r)
{
	free(r->access);
	free(r->connections);
	r->access = r->connections = NULL;
}

struct save_state {
	char	name[32];
	bool	running;
};

static int
save_state_job(MYSQL *m, void *arg)
{
	struct save_state *st = arg;
	char sql[160], err[512];

	snprintf(sql, sizeof(sql), "UPDATE services SET state = '%s' WHERE name = '%s'",
	    st->running ? "running" : "stopped", st->name);
	if (db_exec(m, sql, err, sizeof(err)) == -1) {
		log_err("saving state of service %s: %s", st->name, err);
		return -1;
	}
	return 0;
}

static void save_state_submit(struct service *);

/* One save per service at a time, so two saves can never land out of
 * order on two workers; a change meanwhile is saved right after. */
static void
save_state_done(void *arg, int result)
{
	struct save_state *st = arg;
	struct service *s = service_find(st->name);

	(void)result;
	free(st);
	if (s == NULL)
		return;
	s->save_inflight = false;
	if (s->save_again) {
		s->save_again = false;
		save_state_submit(s);
	}
}

static void
save_state_submit(struct service *s)
{
	struct save_state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return;
	/* Service names are our own constants: safe to put in SQL as they are. */
	snprintf(st->name, sizeof(st->name), "%s", s->def->name);
	st->running = s->want_running;
	s->save_inflight = true;
	if (db_submit(save_state_job, save_state_done, st) == -1) {
		s->save_inflight = false;
		free(st);
	}
}

void
service_store_save_state(struct service *s)
{
	if (s->state != SERVICE_RUNNING && s->state != SERVICE_STOPPED &&
	    s->state != SERVICE_FAILED)
		return;
	if (s->save_inflight) {
		s->save_again = true;
		return;
	}
	save_state_submit(s);
}
