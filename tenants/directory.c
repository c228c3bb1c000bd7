/* directory: SQL over the tenant directory tables of schemas/002_tenants.sql. */
#include "directory.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"

static const struct {
	const char	*name, *plural, *table, *key;
} kinds[DIR_NKINDS] = {
	[DIR_TENANT] = { "Tenant", "tenants", "tenants", "name" },
	[DIR_DOMAIN] = { "Domain", "domains", "domains", "name" },
	[DIR_MAILBOX] = { "Mailbox", "mailboxes", "mailboxes", "address" },
	[DIR_ALIAS] = { "Alias", "aliases", "aliases", "address" },
};

const char *
dir_kind_name(enum dir_kind k)
{
	return kinds[k].name;
}

const char *
dir_kind_plural(enum dir_kind k)
{
	return kinds[k].plural;
}

int
dir_kind_parse(const char *s, enum dir_kind *k)
{
	int i;

	for (i = 0; i < DIR_NKINDS; i++)
		if (strcmp(s, kinds[i].name) == 0 || strcmp(s, kinds[i].plural) == 0) {
			*k = (enum dir_kind)i;
			return 0;
		}
	return -1;
}

static int
fail_sql(MYSQL *m, char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s (MariaDB error %u)", what, mysql_error(m), mysql_errno(m));
	return -1;
}

void
dir_objs_free(struct dir_obj *o, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(o[i].spec);
		if (o[i].secret) {
			explicit_bzero(o[i].secret, strlen(o[i].secret));
			free(o[i].secret);
		}
		if (o[i].scram) {
			explicit_bzero(o[i].scram, strlen(o[i].scram));
			free(o[i].scram);
		}
	}
	free(o);
}

/* Columns: id, name, tenant name, tenant id, domain id, spec, secret, used, messages. */
static int
select_prefix(struct buf *q, enum dir_kind k)
{
	switch (k) {
	case DIR_TENANT:
		return buf_puts(q, "SELECT t.id, t.name, t.name, t.id, 0, t.spec, NULL, 0, 0 "
		    "FROM tenants t WHERE 1");
	case DIR_DOMAIN:
		return buf_puts(q, "SELECT d.id, d.name, t.name, t.id, d.id, d.spec, d.tls_key, 0, 0 "
		    "FROM domains d JOIN tenants t ON t.id = d.tenant_id WHERE 1");
	case DIR_MAILBOX:
		return buf_puts(q, "SELECT x.id, x.address, t.name, t.id, x.domain_id, x.spec, "
		    "x.password_hash, x.used_bytes, x.messages "
		    "FROM mailboxes x JOIN tenants t ON t.id = x.tenant_id WHERE 1");
	case DIR_ALIAS:
		return buf_puts(q, "SELECT x.id, x.address, t.name, t.id, x.domain_id, x.spec, NULL, 0, 0 "
		    "FROM aliases x JOIN tenants t ON t.id = x.tenant_id WHERE 1");
	}
	return -1;
}

static const char *
key_column(enum dir_kind k)
{
	switch (k) {
	case DIR_TENANT:	return "t.name";
	case DIR_DOMAIN:	return "d.name";
	default:		return "x.address";
	}
}

static int
load_query(MYSQL *m, enum dir_kind k, const char *sql, struct dir_obj **out, size_t *nout,
    char *err, size_t errlen)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	size_t have = *nout, add;
	struct dir_obj *p;

	if (mysql_query(m, sql) != 0 || (res = mysql_store_result(m)) == NULL)
		return fail_sql(m, err, errlen, "reading the directory");
	add = mysql_num_rows(res);
	if (add == 0) {
		mysql_free_result(res);
		return 0;
	}
	if ((p = realloc(*out, (have + add) * sizeof(*p))) == NULL) {
		mysql_free_result(res);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*out = p;
	while ((row = mysql_fetch_row(res)) != NULL) {
		struct dir_obj *o = &p[*nout];

		memset(o, 0, sizeof(*o));
		o->kind = k;
		o->id = strtoull(row[0], NULL, 10);
		snprintf(o->name, sizeof(o->name), "%s", row[1]);
		snprintf(o->tenant, sizeof(o->tenant), "%s", row[2]);
		o->tenant_id = strtoull(row[3], NULL, 10);
		o->domain_id = strtoull(row[4], NULL, 10);
		o->spec = strdup(row[5] ? row[5] : "{}");
		o->secret = row[6] ? strdup(row[6]) : NULL;
		o->used_bytes = strtoull(row[7], NULL, 10);
		o->messages = strtoull(row[8], NULL, 10);
		(*nout)++;
		if (o->spec == NULL || (row[6] && o->secret == NULL)) {
			mysql_free_result(res);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	mysql_free_result(res);
	return 0;
}

int
dir_load(MYSQL *m, enum dir_kind k, const char *const *names, size_t n, const char *tenant,
    struct dir_obj **out, size_t *nout, char *err, size_t errlen)
{
	struct buf q;
	size_t i = 0, chunk;
	int rc = -1;

	buf_init(&q, 0);
	/* Large streams load in chunks so no statement grows without bound. */
	do {
		buf_reset(&q);
		if (select_prefix(&q, k) == -1)
			goto nomem;
		if (tenant && (buf_puts(&q, " AND t.name = ") == -1 || db_quote(m, &q, tenant) == -1))
			goto nomem;
		if (names != NULL) {
			if (n == 0) {
				rc = 0;
				goto done;
			}
			if (buf_printf(&q, " AND %s IN (", key_column(k)) == -1)
				goto nomem;
			for (chunk = 0; i < n && chunk < 1000; i++, chunk++)
				if ((chunk && buf_puts(&q, ",") == -1) || db_quote(m, &q, names[i]) == -1)
					goto nomem;
			if (buf_puts(&q, ")") == -1)
				goto nomem;
		}
		if (buf_printf(&q, " ORDER BY %s", key_column(k)) == -1)
			goto nomem;
		if (load_query(m, k, buf_cstr(&q), out, nout, err, errlen) == -1)
			goto done;
	} while (names != NULL && i < n);
	rc = 0;
	goto done;
nomem:
	snprintf(err, errlen, "out of memory");
done:
	buf_free(&q);
	return rc;
}

int
dir_count(MYSQL *m, enum dir_kind k, uint64_t tenant_id, uint64_t *count, char *err, size_t errlen)
{
	char sql[160];
	MYSQL_RES *res;
	MYSQL_ROW row;

	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s WHERE tenant_id = %" PRIu64,
	    kinds[k].table, tenant_id);
	if (mysql_query(m, sql) != 0 || (res = mysql_store_result(m)) == NULL)
		return fail_sql(m, err, errlen, "counting");
	row = mysql_fetch_row(res);
	*count = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
	mysql_free_result(res);
	return 0;
}

static int
run(MYSQL *m, struct buf *q, char *err, size_t errlen, const char *what)
{
	if (mysql_real_query(m, buf_data(q), buf_len(q)) != 0)
		return fail_sql(m, err, errlen, what);
	return 0;
}

int
dir_insert(MYSQL *m, struct dir_obj *o, char *err, size_t errlen)
{
	struct buf q;
	int rc = -1;

	buf_init(&q, 0);
	switch (o->kind) {
	case DIR_TENANT:
		if (buf_puts(&q, "INSERT INTO tenants (name, spec) VALUES (") == -1 ||
		    db_quote(m, &q, o->name) == -1 || buf_puts(&q, ",") == -1 ||
		    db_quote(m, &q, o->spec) == -1 || buf_puts(&q, ")") == -1)
			goto nomem;
		break;
	case DIR_DOMAIN:
		if (buf_printf(&q, "INSERT INTO domains (tenant_id, name, spec, tls_key) VALUES (%" PRIu64 ",",
		    o->tenant_id) == -1 || db_quote(m, &q, o->name) == -1 || buf_puts(&q, ",") == -1 ||
		    db_quote(m, &q, o->spec) == -1 || buf_puts(&q, ",") == -1 ||
		    (o->secret ? db_quote(m, &q, o->secret) : buf_puts(&q, "NULL")) == -1 ||
		    buf_puts(&q, ")") == -1)
			goto nomem;
		break;
	case DIR_MAILBOX:
	case DIR_ALIAS:
		if (buf_printf(&q, "INSERT INTO %s (tenant_id, domain_id, address, spec%s) VALUES "
		    "(%" PRIu64 ", %" PRIu64 ",", kinds[o->kind].table,
		    o->kind == DIR_MAILBOX ? ", password_hash, scram_sha256" : "", o->tenant_id, o->domain_id) == -1 ||
		    db_quote(m, &q, o->name) == -1 || buf_puts(&q, ",") == -1 ||
		    db_quote(m, &q, o->spec) == -1)
			goto nomem;
		if (o->kind == DIR_MAILBOX && (buf_puts(&q, ",") == -1 ||
		    (o->secret ? db_quote(m, &q, o->secret) : buf_puts(&q, "NULL")) == -1 ||
		    buf_puts(&q, ",") == -1 ||
		    (o->scram ? db_quote(m, &q, o->scram) : buf_puts(&q, "NULL")) == -1))
			goto nomem;
		if (buf_puts(&q, ")") == -1)
			goto nomem;
		break;
	}
	if (run(m, &q, err, errlen, "inserting") == 0) {
		o->id = mysql_insert_id(m);
		rc = 0;
		/* A new mailbox comes with its folders, in the same transaction. */
		if (o->kind == DIR_MAILBOX) {
			buf_reset(&q);
			if (buf_printf(&q, "INSERT INTO folders (mailbox_id, name, special_use, uidvalidity) "
			    "VALUES (%1$" PRIu64 ", 'INBOX', '', UNIX_TIMESTAMP()), "
			    "(%1$" PRIu64 ", 'Sent', '\\\\Sent', UNIX_TIMESTAMP()), "
			    "(%1$" PRIu64 ", 'Drafts', '\\\\Drafts', UNIX_TIMESTAMP()), "
			    "(%1$" PRIu64 ", 'Trash', '\\\\Trash', UNIX_TIMESTAMP()), "
			    "(%1$" PRIu64 ", 'Junk', '\\\\Junk', UNIX_TIMESTAMP()), "
			    "(%1$" PRIu64 ", 'Archive', '\\\\Archive', UNIX_TIMESTAMP())", o->id) == -1)
				goto nomem;
			rc = run(m, &q, err, errlen, "creating the folders");
			buf_reset(&q);
			if (rc == 0 && buf_printf(&q, "INSERT IGNORE INTO subscriptions (mailbox_id, name) "
			    "SELECT mailbox_id, name FROM folders WHERE mailbox_id = %" PRIu64, o->id) == -1)
				goto nomem;
			if (rc == 0)
				rc = run(m, &q, err, errlen, "subscribing the folders");
		}
	}
	goto done;
nomem:
	snprintf(err, errlen, "out of memory");
done:
	buf_free(&q);
	return rc;
}

int
dir_update(MYSQL *m, const struct dir_obj *o, bool set_secret, char *err, size_t errlen)
{
	struct buf q;
	int rc = -1;

	buf_init(&q, 0);
	if (buf_printf(&q, "UPDATE %s SET spec = ", kinds[o->kind].table) == -1 ||
	    db_quote(m, &q, o->spec) == -1)
		goto nomem;
	if (set_secret && (o->kind == DIR_MAILBOX || o->kind == DIR_DOMAIN)) {
		if (buf_printf(&q, ", %s = ", o->kind == DIR_MAILBOX ? "password_hash" : "tls_key") == -1 ||
		    (o->secret ? db_quote(m, &q, o->secret) : buf_puts(&q, "NULL")) == -1)
			goto nomem;
		/* A new password means new SCRAM keys, or none for a migrated hash. */
		if (o->kind == DIR_MAILBOX && (buf_puts(&q, ", scram_sha256 = ") == -1 ||
		    (o->scram ? db_quote(m, &q, o->scram) : buf_puts(&q, "NULL")) == -1))
			goto nomem;
	}
	if (buf_printf(&q, " WHERE id = %" PRIu64, o->id) == -1)
		goto nomem;
	rc = run(m, &q, err, errlen, "updating");
	goto done;
nomem:
	snprintf(err, errlen, "out of memory");
done:
	buf_free(&q);
	return rc;
}

int
dir_delete(MYSQL *m, const struct dir_obj *o, char *err, size_t errlen)
{
	char sql[128];

	/* Foreign keys cascade: a tenant takes its domains, mailboxes and aliases. */
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = %" PRIu64, kinds[o->kind].table, o->id);
	if (mysql_query(m, sql) != 0)
		return fail_sql(m, err, errlen, "deleting");
	return 0;
}

int
dir_mail_held(MYSQL *m, const struct dir_obj *o, uint64_t *messages, char *err, size_t errlen)
{
	char sql[200];
	MYSQL_RES *res;
	MYSQL_ROW row;

	switch (o->kind) {
	case DIR_TENANT:
		snprintf(sql, sizeof(sql), "SELECT COALESCE(SUM(messages), 0) FROM mailboxes "
		    "WHERE tenant_id = %" PRIu64, o->id);
		break;
	case DIR_DOMAIN:
		snprintf(sql, sizeof(sql), "SELECT COALESCE(SUM(messages), 0) FROM mailboxes "
		    "WHERE domain_id = %" PRIu64, o->id);
		break;
	case DIR_MAILBOX:
		*messages = o->messages;
		return 0;
	case DIR_ALIAS:
		*messages = 0;
		return 0;
	}
	if (mysql_query(m, sql) != 0 || (res = mysql_store_result(m)) == NULL)
		return fail_sql(m, err, errlen, "counting mail");
	row = mysql_fetch_row(res);
	*messages = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
	mysql_free_result(res);
	return 0;
}

int
dir_bump_generation(MYSQL *m, char *err, size_t errlen)
{
	if (mysql_query(m, "UPDATE node_meta SET v = v + 1 WHERE k = 'config_generation'") != 0)
		return fail_sql(m, err, errlen, "bumping the configuration generation");
	return 0;
}

int
dir_token_scope(MYSQL *m, const char *sha, char *tenant, size_t tenantlen, char *err, size_t errlen)
{
	struct buf q;
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = -1;

	buf_init(&q, 0);
	if (buf_puts(&q, "SELECT COALESCE(t.name, '') FROM api_tokens k LEFT JOIN tenants t "
	    "ON t.id = k.tenant_id WHERE k.token_sha256 = ") == -1 || db_quote(m, &q, sha) == -1) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (mysql_real_query(m, buf_data(&q), buf_len(&q)) != 0 ||
	    (res = mysql_store_result(m)) == NULL) {
		fail_sql(m, err, errlen, "checking the token");
		goto done;
	}
	row = mysql_fetch_row(res);
	rc = 0;
	if (row) {
		snprintf(tenant, tenantlen, "%s", row[0]);
		rc = 1;
	}
	mysql_free_result(res);
done:
	buf_free(&q);
	return rc;
}

int
dir_token_add(MYSQL *m, const char *sha, uint64_t tenant_id, const char *description,
    char *err, size_t errlen)
{
	struct buf q;
	int rc = -1;

	buf_init(&q, 0);
	if (buf_puts(&q, "INSERT INTO api_tokens (token_sha256, tenant_id, description) VALUES (") == -1 ||
	    db_quote(m, &q, sha) == -1 ||
	    (tenant_id ? buf_printf(&q, ", %" PRIu64 ", ", tenant_id) : buf_puts(&q, ", NULL, ")) == -1 ||
	    db_quote(m, &q, description) == -1 || buf_puts(&q, ")") == -1) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	rc = run(m, &q, err, errlen, "storing the token");
done:
	buf_free(&q);
	return rc;
}
