/* migrate: scan numbered SQL files and apply the ones the database lacks. */
#include "migrate.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "db.h"
#include "log.h"

#define MIGRATION_MAX_SIZE	(4 * 1024 * 1024)

void
migrate_list_free(struct migration *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].path);
	}
	free(m);
}

static int
cmp_migration(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return x->version < y->version ? -1 : x->version > y->version;
}

/* "NNN_name.sql" with at least one digit and a name of [a-z0-9_-]. */
static int
parse_name(const char *name, unsigned *version)
{
	const char *p = name;
	unsigned long v = 0;
	size_t len = strlen(name);

	if (len < 6 || strcmp(name + len - 4, ".sql") != 0)
		return -1;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 999999)
			return -1;
		p++;
	}
	if (*p != '_' || p + 1 == name + len - 4)
		return -1;
	for (p++; p < name + len - 4; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return -1;
	if (v == 0)
		return -1;
	*version = (unsigned)v;
	return 0;
}

int
migrate_scan(const char *dir, struct migration **out, size_t *n, char *err, size_t errlen)
{
	struct migration *list = NULL;
	size_t count = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;

	*out = NULL;
	*n = 0;
	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "migrations directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned v;
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (parse_name(de->d_name, &v) == -1) {
			snprintf(err, errlen, "migration file %s: name must be NNN_name.sql "
			    "(version from 1, name of a-z, 0-9, _ and -)", de->d_name);
			goto fail;
		}
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct migration *p = realloc(list, ncap * sizeof(*p));

			if (p == NULL)
				goto nomem;
			list = p;
			cap = ncap;
		}
		list[count].version = v;
		list[count].name = strdup(de->d_name);
		list[count].path = NULL;
		if (list[count].name == NULL ||
		    asprintf(&list[count].path, "%s/%s", dir, de->d_name) == -1) {
			free(list[count].name);
			goto nomem;
		}
		count++;
	}
	closedir(d);
	d = NULL;
	if (count > 1)
		qsort(list, count, sizeof(*list), cmp_migration);
	for (i = 1; i < count; i++)
		if (list[i].version == list[i - 1].version) {
			snprintf(err, errlen, "migrations %s and %s have the same version %u",
			    list[i - 1].name, list[i].name, list[i].version);
			goto fail;
		}
	*out = list;
	*n = count;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	if (d)
		closedir(d);
	migrate_list_free(list, count);
	return -1;
}

static int
read_file(const char *path, struct buf *b, char *err, size_t errlen)
{
	FILE *f;
	char chunk[8192];
	size_t r;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(b, chunk, r) == -1) {
			snprintf(err, errlen, "%s: larger than %d bytes", path, MIGRATION_MAX_SIZE);
			fclose(f);
			return -1;
		}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

int
migrate_run(const char *dir, const struct migrate_backend *be, unsigned *count,
    char *err, size_t errlen)
{
	struct migration *list = NULL;
	unsigned *applied = NULL;
	size_t n = 0, napplied = 0, i, j;
	struct buf sql;
	int rc = -1;

	*count = 0;
	buf_init(&sql, MIGRATION_MAX_SIZE);
	if (migrate_scan(dir, &list, &n, err, errlen) == -1)
		goto done;
	if (be->applied(be->ctx, &applied, &napplied, err, errlen) == -1)
		goto done;
	/* A version the files do not have means a newer node ran here. */
	for (j = 0; j < napplied; j++) {
		bool known = false;

		for (i = 0; i < n; i++)
			if (list[i].version == applied[j])
				known = true;
		if (!known) {
			snprintf(err, errlen, "the database has schema version %u, which this "
			    "node does not know: it was migrated by a newer node", applied[j]);
			goto done;
		}
	}
	for (i = 0; i < n; i++) {
		bool done_before = false;

		for (j = 0; j < napplied; j++)
			if (applied[j] == list[i].version)
				done_before = true;
		if (done_before)
			continue;
		buf_reset(&sql);
		if (read_file(list[i].path, &sql, err, errlen) == -1)
			goto done;
		if (be->apply(be->ctx, &list[i], buf_cstr(&sql), err, errlen) == -1)
			goto done;
		log_info("schema migration %s applied", list[i].name);
		(*count)++;
	}
	rc = 0;
done:
	buf_free(&sql);
	free(applied);
	migrate_list_free(list, n);
	return rc;
}

/* MariaDB backend. */
static int
mariadb_applied(void *ctx, unsigned **versions, size_t *n, char *err, size_t errlen)
{
	MYSQL *m = ctx;
	MYSQL_RES *res;
	MYSQL_ROW row;
	unsigned *v;
	size_t i = 0;

	*versions = NULL;
	*n = 0;
	if (db_exec(m, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version INT UNSIGNED NOT NULL PRIMARY KEY,"
	    " name VARCHAR(255) NOT NULL,"
	    " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
	    ") ENGINE=InnoDB", err, errlen) == -1)
		return -1;
	if (mysql_query(m, "SELECT version FROM schema_migrations ORDER BY version") != 0 ||
	    (res = mysql_store_result(m)) == NULL) {
		snprintf(err, errlen, "reading schema_migrations: %s", mysql_error(m));
		return -1;
	}
	if ((v = calloc(mysql_num_rows(res) + 1, sizeof(*v))) == NULL) {
		mysql_free_result(res);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while ((row = mysql_fetch_row(res)) != NULL)
		v[i++] = (unsigned)strtoul(row[0], NULL, 10);
	mysql_free_result(res);
	*versions = v;
	*n = i;
	return 0;
}

static int
mariadb_apply(void *ctx, const struct migration *mg, const char *sql, char *err, size_t errlen)
{
	MYSQL *m = ctx;
	char rec[700], e[512];
	char name[256 * 2 + 1];

	/* DDL commits implicitly in MariaDB, so a migration must be safe to run
	 * again if the node dies between its statements and the record below
	 * (CREATE ... IF NOT EXISTS and the like). */
	if (db_exec(m, sql, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "migration %s: %s", mg->name, e);
		return -1;
	}
	mysql_real_escape_string(m, name, mg->name, strnlen(mg->name, 255));
	snprintf(rec, sizeof(rec), "INSERT INTO schema_migrations (version, name) VALUES (%u, '%s')",
	    mg->version, name);
	if (db_exec(m, rec, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "recording migration %s: %s", mg->name, e);
		return -1;
	}
	return 0;
}

void
migrate_backend_mariadb(struct migrate_backend *be, MYSQL *m)
{
	be->applied = mariadb_applied;
	be->apply = mariadb_apply;
	be->ctx = m;
}
