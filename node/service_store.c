/* service_store: the `services` table behind the service units. */
#include "service_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "service.h"

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
		struct service_settings next;

		for (i = 0; i < nfields; i++)
			if (strcmp(fields[i].name, "name") == 0 && row[i])
				s = service_find(row[i]);
		if (s == NULL)
			continue;	/* a service a newer node knows */
		next = s->settings;
		/* Every setting comes through its definition, so a bad value in
		 * the table is caught here rather than used. */
		for (i = 0; i < nfields; i++) {
			for (k = 0; k < settings_ndefs; k++) {
				const struct setting_def *d = &settings_defs[k];
				char why[256];

				if (strcmp(fields[i].name, d->column) != 0 || row[i] == NULL)
					continue;
				if (d->listener_only && !service_has_listener(s))
					continue;
				if (settings_parse(d, row[i], &next, why, sizeof(why)) == -1)
					log_err("service %s: stored %s is invalid, default kept: %s",
					    s->def->name, d->key, why);
			}
		}
		s->settings = next;
	}
	mysql_free_result(res);
	return 0;
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

static void
save_state_done(void *arg, int result)
{
	(void)result;
	free(arg);
}

void
service_store_save_state(struct service *s)
{
	struct save_state *st;

	if (s->state != SERVICE_RUNNING && s->state != SERVICE_STOPPED)
		return;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return;
	/* Service names are our own constants: safe to put in SQL as they are. */
	snprintf(st->name, sizeof(st->name), "%s", s->def->name);
	st->running = s->state == SERVICE_RUNNING;
	if (db_submit(save_state_job, save_state_done, st) == -1)
		free(st);
}
