/* store: folders and messages in MariaDB, bodies as files under the mail
 * root. Every change that other sessions must see bumps the folder's
 * highestmodseq and stamps the rows (or the expunged tombstones) with it,
 * so any session on any node can ask what changed since it last looked. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "lookup.h"
#include "mime.h"

static char	 mail_root[PATH_MAX];

int
store_init(const char *root)
{
	if (snprintf(mail_root, sizeof(mail_root), "%s", root) >= (int)sizeof(mail_root))
		return -1;
	return 0;
}

const char *
store_mail_root(void)
{
	return mail_root;
}

/* SQL helpers. */

/* A failed statement is logged (a duplicate key is an answer, not trouble). */
static int
sq_len(MYSQL *m, const char *sql, size_t len)
{
	if (mysql_real_query(m, sql, len) == 0)
		return 0;
	if (mysql_errno(m) != 1062)
		log_warn("store: %s (%.80s)", mysql_error(m), sql);
	return -1;
}

static int
sq(MYSQL *m, struct buf *b)
{
	return sq_len(m, buf_data(b), buf_len(b));
}

static int
sqs(MYSQL *m, const char *sql)
{
	return sq_len(m, sql, strlen(sql));
}

static void
rollback(MYSQL *m)
{
	(void)sqs(m, "ROLLBACK");
}

static MYSQL_RES *
sq_res(MYSQL *m, struct buf *b)
{
	if (sq(m, b) == -1)
		return NULL;
	return mysql_store_result(m);
}

static char *
xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int64_t
parse_i64(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

static uint64_t
parse_u64(const char *s)
{
	return s ? strtoull(s, NULL, 10) : 0;
}

/* "uid IN (...)" for ascending uids, as ranges so "1:*" stays short. */
static int
sql_uid_set(struct buf *b, const char *col, const uint32_t *uids, size_t n)
{
	size_t i = 0, j;
	bool first = true;

	if (buf_puts(b, "(") == -1)
		return -1;
	if (n == 0)
		return buf_puts(b, "FALSE)");
	while (i < n) {
		j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (buf_printf(b, "%s%s BETWEEN %u AND %u", first ? "" : " OR ", col, uids[i], uids[j]) == -1)
			return -1;
		first = false;
		i = j + 1;
	}
	return buf_puts(b, ")");
}

bool
store_folder_name_ok(const char *name, char *out)
{
	size_t len = strlen(name), i;

	if (len == 0 || len > STORE_NAME_MAX || name[0] == '/' || name[len - 1] == '/')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == '/' && name[i + 1] == '/')
			return false;
		if (c >= 0x80) {
			/* Well-formed UTF-8 only (the column is utf8mb4). */
			size_t k, more = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;

			if (more == 0 || (c >= 0xf0 && c > 0xf4))
				return false;
			for (k = 1; k <= more; k++)
				if (((unsigned char)name[i + k] & 0xc0) != 0x80)
					return false;
			i += more;
		}
	}
	/* INBOX is case-insensitive, also as the first level of a path. */
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/')) {
		memcpy(out, "INBOX", 5);
		memcpy(out + 5, name + 5, len - 5 + 1);
	} else
		memcpy(out, name, len + 1);
	return true;
}

/* The folder's id, locking its row when for_update. 0 when missing, -1 db. */
static int
folder_lookup(MYSQL *m, uint64_t mailbox_id, const char *name, bool for_update, uint64_t *id,
    uint32_t *uidvalidity, uint32_t *uidnext, uint64_t *modseq)
{
	struct buf b;
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = -1;

	buf_init(&b, 0);
	if (buf_printf(&b, "SELECT id, uidvalidity, uidnext, highestmodseq FROM folders WHERE "
	    "mailbox_id = %" PRIu64 " AND name = ", mailbox_id) == -1 || db_quote(m, &b, name) == -1 ||
	    (for_update && buf_puts(&b, " FOR UPDATE") == -1))
		goto out;
	if ((res = sq_res(m, &b)) == NULL)
		goto out;
	if ((row = mysql_fetch_row(res)) == NULL)
		rc = 0;
	else {
		*id = parse_u64(row[0]);
		if (uidvalidity)
			*uidvalidity = (uint32_t)parse_u64(row[1]);
		if (uidnext)
			*uidnext = (uint32_t)parse_u64(row[2]);
		if (modseq)
			*modseq = parse_u64(row[3]);
		rc = 1;
	}
	mysql_free_result(res);
out:
	buf_free(&b);
	return rc;
}

/* Lock a folder of this mailbox by id and take the next modseq. */
static int
folder_bump(MYSQL *m, uint64_t mailbox_id, uint64_t folder_id, uint64_t *modseq, uint32_t *uidnext,
    uint32_t *uidvalidity)
{
	char sql[256];
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = STORE_ERROR;

	snprintf(sql, sizeof(sql), "SELECT highestmodseq, uidnext, uidvalidity FROM folders WHERE id = %"
	    PRIu64 " AND mailbox_id = %" PRIu64 " FOR UPDATE", folder_id, mailbox_id);
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return STORE_ERROR;
	if ((row = mysql_fetch_row(res)) == NULL)
		rc = STORE_NOTFOUND;
	else {
		*modseq = parse_u64(row[0]) + 1;
		if (uidnext)
			*uidnext = (uint32_t)parse_u64(row[1]);
		if (uidvalidity)
			*uidvalidity = (uint32_t)parse_u64(row[2]);
		rc = STORE_OK;
	}
	mysql_free_result(res);
	if (rc != STORE_OK)
		return rc;
	snprintf(sql, sizeof(sql), "UPDATE folders SET highestmodseq = %" PRIu64 " WHERE id = %" PRIu64,
	    *modseq, folder_id);
	return sqs(m, sql) == -1 ? STORE_ERROR : STORE_OK;
}

/* Folders. */

int
store_folder_list(MYSQL *m, uint64_t mailbox_id, struct store_folder **out, size_t *n)
{
	char sql[700];
	MYSQL_RES *res;
	MYSQL_ROW row;
	struct store_folder *f = NULL;
	size_t i = 0, rows;

	*out = NULL;
	*n = 0;
	snprintf(sql, sizeof(sql), "SELECT f.id, f.name, f.special_use, s.name IS NOT NULL, f.uidvalidity, "
	    "f.uidnext, f.highestmodseq FROM folders f LEFT JOIN subscriptions s ON s.mailbox_id = "
	    "f.mailbox_id AND s.name = f.name WHERE f.mailbox_id = %1$" PRIu64 " UNION ALL "
	    "SELECT 0, s.name, '', 1, 0, 0, 0 FROM subscriptions s WHERE s.mailbox_id = %1$" PRIu64
	    " AND NOT EXISTS (SELECT 1 FROM folders f WHERE f.mailbox_id = s.mailbox_id AND f.name = s.name) "
	    "ORDER BY 2", mailbox_id);
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return STORE_ERROR;
	rows = mysql_num_rows(res);
	if (rows > 0 && (f = calloc(rows, sizeof(*f))) == NULL) {
		mysql_free_result(res);
		return STORE_ERROR;
	}
	while ((row = mysql_fetch_row(res)) != NULL && i < rows) {
		f[i].id = parse_u64(row[0]);
		snprintf(f[i].name, sizeof(f[i].name), "%s", row[1]);
		snprintf(f[i].special_use, sizeof(f[i].special_use), "%s", row[2]);
		f[i].subscribed = row[3] && row[3][0] == '1';
		f[i].uidvalidity = (uint32_t)parse_u64(row[4]);
		f[i].uidnext = (uint32_t)parse_u64(row[5]);
		f[i].highestmodseq = parse_u64(row[6]);
		i++;
	}
	mysql_free_result(res);
	*out = f;
	*n = i;
	return STORE_OK;
}

/* Insert one folder; STORE_EXISTS when it is there. */
static int
folder_insert(MYSQL *m, uint64_t mailbox_id, const char *name, const char *special_use)
{
	struct buf b;
	int rc = STORE_ERROR;

	buf_init(&b, 0);
	/* A new uidvalidity from the mailbox's counter, which only grows: the
	 * clock, or one past the last handed out (or past the folders made
	 * with the mailbox, before the counter had a row). The row stays
	 * locked to the end of the caller's transaction. */
	if (buf_printf(&b, "INSERT INTO folder_uidvalidity (mailbox_id, last) SELECT %1$" PRIu64
	    ", GREATEST(UNIX_TIMESTAMP(), COALESCE(MAX(uidvalidity), 0) + 1) FROM folders WHERE mailbox_id = %1$"
	    PRIu64 " ON DUPLICATE KEY UPDATE last = GREATEST(last + 1, UNIX_TIMESTAMP())", mailbox_id) == -1 ||
	    sq(m, &b) == -1)
		goto out;
	buf_reset(&b);
	if (buf_printf(&b, "INSERT INTO folders (mailbox_id, name, special_use, uidvalidity) SELECT %"
	    PRIu64 ", ", mailbox_id) == -1 || db_quote(m, &b, name) == -1 ||
	    buf_puts(&b, ", ") == -1 || db_quote(m, &b, special_use ? special_use : "") == -1 ||
	    buf_printf(&b, ", last FROM folder_uidvalidity WHERE mailbox_id = %" PRIu64, mailbox_id) == -1)
		goto out;
	if (sq(m, &b) == -1) {
		rc = mysql_errno(m) == 1062 ? STORE_EXISTS : STORE_ERROR;
		goto out;
	}
	buf_reset(&b);
	if (buf_printf(&b, "INSERT IGNORE INTO subscriptions (mailbox_id, name) VALUES (%" PRIu64 ", ",
	    mailbox_id) == -1 || db_quote(m, &b, name) == -1 || buf_puts(&b, ")") == -1 || sq(m, &b) == -1)
		goto out;
	rc = STORE_OK;
out:
	buf_free(&b);
	return rc;
}

int
store_folder_create(MYSQL *m, uint64_t mailbox_id, const char *name, const char *special_use)
{
	char canon[STORE_NAME_MAX + 1], parent[STORE_NAME_MAX + 1];
	char *slash;
	int rc;

	if (!store_folder_name_ok(name, canon))
		return STORE_INVALID;
	if (sqs(m, "START TRANSACTION") == -1)
		return STORE_ERROR;
	if ((rc = folder_insert(m, mailbox_id, canon, special_use)) != STORE_OK)
		goto fail;
	/* Missing parents come into being too (RFC 3501 6.3.3). */
	memcpy(parent, canon, sizeof(parent));
	while ((slash = strrchr(parent, '/')) != NULL) {
		*slash = '\0';
		rc = folder_insert(m, mailbox_id, parent, NULL);
		if (rc == STORE_EXISTS)
			break;
		if (rc != STORE_OK)
			goto fail;
	}
	if (sqs(m, "COMMIT") == -1)
		return STORE_ERROR;
	return STORE_OK;
fail:
	rollback(m);
	return rc;
}

/* Unlink body files after their rows are gone (a crash between leaves an
 * unreferenced file, never a row without its body). */
static void
unlink_files(char **files, size_t n)
{
	char path[PATH_MAX * 2];
	size_t i;

	for (i = 0; i < n; i++) {
		if (files[i] == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", mail_root, files[i]);
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("store: unlink %s: %s", path, strerror(errno));
	}
}

static void
free_files(char **files, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(files[i]);
	free(files);
}

/* Collect files and size of the messages matching where (inside a
 * transaction, rows locked). */
static int
collect_messages(MYSQL *m, struct buf *where, char ***files, size_t *nfiles, uint64_t *bytes,
    uint32_t **uids)
{
	struct buf b;
	MYSQL_RES *res;
	MYSQL_ROW row;
	size_t rows, i = 0;
	int rc = STORE_ERROR;

	*files = NULL;
	*nfiles = 0;
	*bytes = 0;
	if (uids)
		*uids = NULL;
	buf_init(&b, 0);
	if (buf_puts(&b, "SELECT file, size, uid FROM messages WHERE ") == -1 ||
	    buf_append(&b, buf_data(where), buf_len(where)) == -1 ||
	    buf_puts(&b, " ORDER BY uid FOR UPDATE") == -1 || (res = sq_res(m, &b)) == NULL)
		goto out;
	rows = mysql_num_rows(res);
	if (rows > 0 && ((*files = calloc(rows, sizeof(char *))) == NULL ||
	    (uids && (*uids = calloc(rows, sizeof(uint32_t))) == NULL))) {
		mysql_free_result(res);
		free(*files);
		*files = NULL;
		goto out;
	}
	while ((row = mysql_fetch_row(res)) != NULL && i < rows) {
		(*files)[i] = xstrdup(row[0]);
		*bytes += parse_u64(row[1]);
		if (uids)
			(*uids)[i] = (uint32_t)parse_u64(row[2]);
		i++;
	}
	*nfiles = i;
	mysql_free_result(res);
	rc = STORE_OK;
out:
	buf_free(&b);
	return rc;
}

static int
quota_release(MYSQL *m, uint64_t mailbox_id, uint64_t bytes, size_t count)
{
	char sql[300];

	if (count == 0)
		return 0;
	snprintf(sql, sizeof(sql), "UPDATE mailboxes SET used_bytes = GREATEST(CAST(used_bytes AS SIGNED) - %"
	    PRIu64 ", 0), messages = GREATEST(CAST(messages AS SIGNED) - %zu, 0) WHERE id = %" PRIu64,
	    bytes, count, mailbox_id);
	return sqs(m, sql);
}

/* "name LIKE '<name>/%'" with the name's LIKE wildcards escaped. */
static int
children_like(MYSQL *m, struct buf *b, const char *name)
{
	if (buf_puts(b, "name LIKE CONCAT(REPLACE(REPLACE(REPLACE(") == -1 || db_quote(m, b, name) == -1)
		return -1;
	return buf_puts(b, ", '\\\\', '\\\\\\\\'), '%', '\\\\%'), '_', '\\\\_'), '/%')");
}

int
store_folder_delete(MYSQL *m, uint64_t mailbox_id, const char *name)
{
	char canon[STORE_NAME_MAX + 1];
	struct buf b;
	char **files = NULL;
	size_t nfiles = 0;
	uint64_t id, bytes;
	int rc = STORE_ERROR, r;
	MYSQL_RES *res;

	if (!store_folder_name_ok(name, canon))
		return STORE_NOTFOUND;
	if (strcmp(canon, "INBOX") == 0)
		return STORE_FORBIDDEN;
	buf_init(&b, 0);
	if (sqs(m, "START TRANSACTION") == -1)
		goto out;
	if ((r = folder_lookup(m, mailbox_id, canon, true, &id, NULL, NULL, NULL)) != 1) {
		rc = r == 0 ? STORE_NOTFOUND : STORE_ERROR;
		goto fail;
	}
	/* A folder with children stays (we have no \Noselect folders). */
	if (buf_printf(&b, "SELECT 1 FROM folders WHERE mailbox_id = %" PRIu64 " AND ", mailbox_id) == -1 ||
	    children_like(m, &b, canon) == -1 || buf_puts(&b, " LIMIT 1") == -1)
		goto fail;
	if ((res = sq_res(m, &b)) == NULL)
		goto fail;
	r = mysql_num_rows(res) > 0;
	mysql_free_result(res);
	if (r) {
		rc = STORE_INVALID;
		goto fail;
	}
	buf_reset(&b);
	if (buf_printf(&b, "folder_id = %" PRIu64, id) == -1 ||
	    collect_messages(m, &b, &files, &nfiles, &bytes, NULL) != STORE_OK)
		goto fail;
	buf_reset(&b);
	if (buf_printf(&b, "DELETE FROM folders WHERE id = %" PRIu64, id) == -1 || sq(m, &b) == -1 ||
	    quota_release(m, mailbox_id, bytes, nfiles) == -1 || sqs(m, "COMMIT") == -1)
		goto fail;
	unlink_files(files, nfiles);
	rc = STORE_OK;
	goto out;
fail:
	rollback(m);
out:
	free_files(files, nfiles);
	buf_free(&b);
	return rc;
}

/* UPDATE [IGNORE] table SET name = to + rest WHERE name is from or under it
 * (character positions, not bytes: names are UTF-8). */
static int
rename_sql(MYSQL *m, struct buf *b, const char *table, uint64_t mailbox_id, const char *from, const char *to)
{
	if (buf_printf(b, "UPDATE %s SET name = CONCAT(", table) == -1 || db_quote(m, b, to) == -1 ||
	    buf_puts(b, ", SUBSTRING(name, CHAR_LENGTH(") == -1 || db_quote(m, b, from) == -1 ||
	    buf_printf(b, ") + 1)) WHERE mailbox_id = %" PRIu64 " AND (name = ", mailbox_id) == -1 ||
	    db_quote(m, b, from) == -1 || buf_puts(b, " OR ") == -1 || children_like(m, b, from) == -1)
		return -1;
	return buf_puts(b, ")");
}

int
store_folder_rename(MYSQL *m, uint64_t mailbox_id, const char *from, const char *to)
{
	char cf[STORE_NAME_MAX + 1], ct[STORE_NAME_MAX + 1], parent[STORE_NAME_MAX + 1], *slash;
	struct buf b;
	uint64_t id, nid, modseq;
	uint32_t uidnext, nuidnext;
	int rc = STORE_ERROR, r;

	if (!store_folder_name_ok(from, cf))
		return STORE_NOTFOUND;
	if (!store_folder_name_ok(to, ct))
		return STORE_INVALID;
	if (strcmp(ct, "INBOX") == 0 || strcmp(cf, ct) == 0)
		return STORE_EXISTS;
	/* Not under itself: its children would have to move into themselves. */
	if (strncmp(ct, cf, strlen(cf)) == 0 && ct[strlen(cf)] == '/')
		return STORE_INVALID;
	buf_init(&b, 0);
	if (sqs(m, "START TRANSACTION") == -1)
		goto out;
	if ((r = folder_lookup(m, mailbox_id, cf, true, &id, NULL, &uidnext, NULL)) != 1) {
		rc = r == 0 ? STORE_NOTFOUND : STORE_ERROR;
		goto fail;
	}
	if ((r = folder_lookup(m, mailbox_id, ct, false, &nid, NULL, NULL, NULL)) != 0) {
		rc = r == 1 ? STORE_EXISTS : STORE_ERROR;
		goto fail;
	}
	if (strcmp(cf, "INBOX") == 0) {
		/* Move INBOX's messages into a new folder; INBOX stays. */
		if ((rc = folder_insert(m, mailbox_id, ct, NULL)) != STORE_OK ||
		    (r = folder_lookup(m, mailbox_id, ct, true, &nid, NULL, &nuidnext, NULL)) != 1) {
			if (rc == STORE_OK)
				rc = STORE_ERROR;
			goto fail;
		}
		rc = STORE_ERROR;
		if (folder_bump(m, mailbox_id, id, &modseq, NULL, NULL) != STORE_OK)
			goto fail;
		buf_reset(&b);
		/* Tombstones in INBOX for the sessions that have it open. */
		if (buf_printf(&b, "INSERT IGNORE INTO expunged (folder_id, uid, modseq) SELECT folder_id, uid, %"
		    PRIu64 " FROM messages WHERE folder_id = %" PRIu64, modseq, id) == -1 || sq(m, &b) == -1)
			goto fail;
		buf_reset(&b);
		/* The new folder's uids start at 1 (a new uidvalidity), in order. */
		if (buf_printf(&b, "UPDATE messages m JOIN (SELECT id, ROW_NUMBER() OVER (ORDER BY uid) AS n "
		    "FROM messages WHERE folder_id = %" PRIu64 ") r ON r.id = m.id SET m.folder_id = %" PRIu64
		    ", m.uid = r.n, m.modseq = 1", id, nid) == -1 || sq(m, &b) == -1)
			goto fail;
		buf_reset(&b);
		if (buf_printf(&b, "UPDATE folders SET uidnext = 1 + (SELECT COUNT(*) FROM messages WHERE "
		    "folder_id = %1$" PRIu64 ") WHERE id = %1$" PRIu64, nid) == -1 || sq(m, &b) == -1)
			goto fail;
	} else {
		/* The folder and its children get the new prefix. */
		buf_reset(&b);
		if (rename_sql(m, &b, "folders", mailbox_id, cf, ct) == -1 || sq(m, &b) == -1) {
			rc = mysql_errno(m) == 1062 ? STORE_EXISTS : mysql_errno(m) == 1406 ? STORE_INVALID :
			    STORE_ERROR;
			goto fail;
		}
		/* Subscriptions follow the folder. */
		buf_reset(&b);
		if (rename_sql(m, &b, "IGNORE subscriptions", mailbox_id, cf, ct) == -1 || sq(m, &b) == -1)
			goto fail;
	}
	/* Missing parents of the new name. */
	memcpy(parent, ct, sizeof(parent));
	while ((slash = strrchr(parent, '/')) != NULL) {
		*slash = '\0';
		r = folder_insert(m, mailbox_id, parent, NULL);
		if (r == STORE_EXISTS)
			break;
		if (r != STORE_OK)
			goto fail;
	}
	if (sqs(m, "COMMIT") == -1)
		goto fail;
	rc = STORE_OK;
	goto out;
fail:
	rollback(m);
out:
	buf_free(&b);
	return rc;
}

int
store_folder_subscribe(MYSQL *m, uint64_t mailbox_id, const char *name, bool on)
{
	char canon[STORE_NAME_MAX + 1];
	struct buf b;
	int rc = STORE_ERROR;

	if (!store_folder_name_ok(name, canon))
		return STORE_INVALID;
	buf_init(&b, 0);
	if (on) {
		if (buf_printf(&b, "INSERT IGNORE INTO subscriptions (mailbox_id, name) VALUES (%" PRIu64 ", ",
		    mailbox_id) == -1 || db_quote(m, &b, canon) == -1 || buf_puts(&b, ")") == -1)
			goto out;
	} else if (buf_printf(&b, "DELETE FROM subscriptions WHERE mailbox_id = %" PRIu64 " AND name = ",
	    mailbox_id) == -1 || db_quote(m, &b, canon) == -1)
		goto out;
	if (sq(m, &b) == 0)
		rc = STORE_OK;
out:
	buf_free(&b);
	return rc;
}

int
store_folder_status(MYSQL *m, uint64_t mailbox_id, const char *name, struct store_status *st)
{
	char canon[STORE_NAME_MAX + 1];
	struct buf b;
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = STORE_ERROR;

	memset(st, 0, sizeof(*st));
	if (!store_folder_name_ok(name, canon))
		return STORE_NOTFOUND;
	buf_init(&b, 0);
	if (buf_printf(&b, "SELECT f.uidnext, f.uidvalidity, f.highestmodseq, COUNT(m.id), "
	    "COALESCE(SUM(m.uid >= f.recent_uid), 0), COALESCE(SUM((m.sysflags & %d) = 0), 0), "
	    "COALESCE(SUM((m.sysflags & %d) <> 0), 0), COALESCE(SUM(m.size), 0) FROM folders f "
	    "LEFT JOIN messages m ON m.folder_id = f.id WHERE f.mailbox_id = %" PRIu64 " AND f.name = ",
	    STORE_F_SEEN, STORE_F_DELETED, mailbox_id) == -1 || db_quote(m, &b, canon) == -1 ||
	    buf_puts(&b, " GROUP BY f.id") == -1 || (res = sq_res(m, &b)) == NULL)
		goto out;
	if ((row = mysql_fetch_row(res)) == NULL)
		rc = STORE_NOTFOUND;
	else {
		st->uidnext = (uint32_t)parse_u64(row[0]);
		st->uidvalidity = (uint32_t)parse_u64(row[1]);
		st->highestmodseq = parse_u64(row[2]);
		st->messages = (uint32_t)parse_u64(row[3]);
		st->recent = (uint32_t)parse_u64(row[4]);
		st->unseen = (uint32_t)parse_u64(row[5]);
		st->deleted = (uint32_t)parse_u64(row[6]);
		st->size = parse_u64(row[7]);
		rc = STORE_OK;
	}
	mysql_free_result(res);
out:
	buf_free(&b);
	return rc;
}

/* Messages. */

static void free_msgs(struct store_msg *, size_t);

static int
load_msgs(MYSQL_RES *res, struct store_msg **out, size_t *n)
{
	MYSQL_ROW row;
	size_t rows = mysql_num_rows(res), i = 0;
	struct store_msg *v = NULL;

	*out = NULL;
	*n = 0;
	if (rows > 0 && (v = calloc(rows, sizeof(*v))) == NULL)
		return -1;
	/* uid, sysflags, keywords, modseq, size, internal_date */
	while ((row = mysql_fetch_row(res)) != NULL && i < rows) {
		v[i].uid = (uint32_t)parse_u64(row[0]);
		v[i].flags = (uint8_t)(parse_u64(row[1]) & STORE_F_ALL);
		if (row[2] && row[2][0] && (v[i].keywords = strdup(row[2])) == NULL)
			goto fail;
		v[i].modseq = parse_u64(row[3]);
		v[i].size = parse_u64(row[4]);
		v[i].internal_date = parse_i64(row[5]);
		i++;
	}
	*out = v;
	*n = i;
	return 0;
fail:
	/* calloc'd: the entries not reached hold NULL keywords. */
	free_msgs(v, rows);
	return -1;
}

static void
free_msgs(struct store_msg *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].keywords);
	free(v);
}

#define MSG_COLS "uid, sysflags, keywords, modseq, size, UNIX_TIMESTAMP(internal_date)"

int
store_folder_snapshot(MYSQL *m, uint64_t mailbox_id, const char *name, bool claim_recent,
    struct store_snapshot *s)
{
	char canon[STORE_NAME_MAX + 1], sql[300];
	struct buf b;
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = STORE_ERROR;

	memset(s, 0, sizeof(*s));
	if (!store_folder_name_ok(name, canon))
		return STORE_NOTFOUND;
	buf_init(&b, 0);
	if (sqs(m, "START TRANSACTION") == -1)
		goto out;
	if (buf_printf(&b, "SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_uid, "
	    "keywords FROM folders WHERE mailbox_id = %" PRIu64 " AND name = ", mailbox_id) == -1 ||
	    db_quote(m, &b, canon) == -1 || (claim_recent && buf_puts(&b, " FOR UPDATE") == -1) ||
	    (res = sq_res(m, &b)) == NULL)
		goto fail;
	if ((row = mysql_fetch_row(res)) == NULL) {
		mysql_free_result(res);
		rc = STORE_NOTFOUND;
		goto fail;
	}
	s->folder.id = parse_u64(row[0]);
	snprintf(s->folder.name, sizeof(s->folder.name), "%s", row[1]);
	snprintf(s->folder.special_use, sizeof(s->folder.special_use), "%s", row[2]);
	s->folder.uidvalidity = (uint32_t)parse_u64(row[3]);
	s->folder.uidnext = (uint32_t)parse_u64(row[4]);
	s->folder.highestmodseq = parse_u64(row[5]);
	s->recent_from = (uint32_t)parse_u64(row[6]);
	s->keywords = strdup(row[7] ? row[7] : "");
	mysql_free_result(res);
	if (s->keywords == NULL)
		goto fail;
	if (!claim_recent)
		s->recent_from = UINT32_MAX;	/* EXAMINE claims nothing */
	snprintf(sql, sizeof(sql), "SELECT " MSG_COLS " FROM messages WHERE folder_id = %" PRIu64
	    " ORDER BY uid", s->folder.id);
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		goto fail;
	if (load_msgs(res, &s->msgs, &s->n) == -1) {
		mysql_free_result(res);
		goto fail;
	}
	mysql_free_result(res);
	if (claim_recent && s->recent_from < s->folder.uidnext) {
		snprintf(sql, sizeof(sql), "UPDATE folders SET recent_uid = %u WHERE id = %" PRIu64,
		    s->folder.uidnext, s->folder.id);
		if (sqs(m, sql) == -1)
			goto fail;
	}
	if (sqs(m, "COMMIT") == -1)
		goto fail;
	rc = STORE_OK;
	goto out;
fail:
	rollback(m);
	store_snapshot_free(s);
out:
	buf_free(&b);
	return rc;
}

void
store_snapshot_free(struct store_snapshot *s)
{
	free_msgs(s->msgs, s->n);
	free(s->keywords);
	s->msgs = NULL;
	s->keywords = NULL;
	s->n = 0;
}

int
store_changes(MYSQL *m, uint64_t mailbox_id, uint64_t folder_id, uint64_t since_modseq,
    uint32_t since_uid, struct store_changes *c)
{
	char sql[400];
	MYSQL_RES *res;
	MYSQL_ROW row;
	size_t rows, i = 0;

	memset(c, 0, sizeof(*c));
	snprintf(sql, sizeof(sql), "SELECT uidnext, highestmodseq, keywords FROM folders WHERE id = %"
	    PRIu64 " AND mailbox_id = %" PRIu64, folder_id, mailbox_id);
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return STORE_ERROR;
	if ((row = mysql_fetch_row(res)) == NULL) {
		mysql_free_result(res);
		c->gone = true;
		return STORE_OK;
	}
	c->uidnext = (uint32_t)parse_u64(row[0]);
	c->highestmodseq = parse_u64(row[1]);
	c->keywords = strdup(row[2] ? row[2] : "");
	mysql_free_result(res);
	if (c->keywords == NULL)
		return STORE_ERROR;
	if (c->highestmodseq <= since_modseq && c->uidnext <= since_uid)
		return STORE_OK;	/* the common case of an idle poll: one cheap query */
	snprintf(sql, sizeof(sql), "SELECT " MSG_COLS " FROM messages WHERE folder_id = %" PRIu64
	    " AND (modseq > %" PRIu64 " OR uid >= %u) ORDER BY uid", folder_id, since_modseq, since_uid);
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		goto fail;
	if (load_msgs(res, &c->msgs, &c->n) == -1) {
		mysql_free_result(res);
		goto fail;
	}
	mysql_free_result(res);
	snprintf(sql, sizeof(sql), "SELECT uid FROM expunged WHERE folder_id = %" PRIu64 " AND modseq > %"
	    PRIu64 " ORDER BY uid", folder_id, since_modseq);
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		goto fail;
	rows = mysql_num_rows(res);
	if (rows > 0 && (c->expunged = calloc(rows, sizeof(uint32_t))) == NULL) {
		mysql_free_result(res);
		goto fail;
	}
	while ((row = mysql_fetch_row(res)) != NULL && i < rows)
		c->expunged[i++] = (uint32_t)parse_u64(row[0]);
	c->nexpunged = i;
	mysql_free_result(res);
	return STORE_OK;
fail:
	store_changes_free(c);
	return STORE_ERROR;
}

static int
cmp_state(const void *a, const void *b)
{
	const struct store_folder_state *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int
store_folders_state(MYSQL *m, struct store_folder_state *v, size_t n)
{
	struct buf b;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	size_t i;
	int rc = STORE_ERROR;

	if (n == 0)
		return STORE_OK;
	qsort(v, n, sizeof(*v), cmp_state);
	for (i = 0; i < n; i++)
		v[i].uidnext = 0;
	buf_init(&b, 0);
	if (buf_puts(&b, "SELECT id, uidnext, highestmodseq FROM folders WHERE id IN (") == -1)
		goto out;
	for (i = 0; i < n; i++)
		if (buf_printf(&b, "%s%" PRIu64, i ? "," : "", v[i].id) == -1)
			goto out;
	if (buf_puts(&b, ")") == -1 || (res = sq_res(m, &b)) == NULL)
		goto out;
	while ((row = mysql_fetch_row(res)) != NULL) {
		struct store_folder_state key = { .id = parse_u64(row[0]) }, *f;

		f = bsearch(&key, v, n, sizeof(*v), cmp_state);
		/* Duplicates are adjacent: fill them all. */
		while (f && f > v && f[-1].id == key.id)
			f--;
		for (; f && f < v + n && f->id == key.id; f++) {
			f->uidnext = (uint32_t)parse_u64(row[1]);
			f->highestmodseq = parse_u64(row[2]);
		}
	}
	rc = STORE_OK;
out:
	if (res)
		mysql_free_result(res);
	buf_free(&b);
	return rc;
}

void
store_changes_free(struct store_changes *c)
{
	free_msgs(c->msgs, c->n);
	free(c->expunged);
	free(c->keywords);
	memset(c, 0, sizeof(*c));
}

/* Keyword list arithmetic on space separated atoms (case-insensitive, as
 * IMAP compares flags). */
static bool
kw_has(const char *list, const char *kw, size_t kwlen)
{
	const char *p = list;

	while (p && *p) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == kwlen && strncasecmp(p, kw, len) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

/* out = base op kws; -1 when the result is too long. */
static int
kw_apply(const char *base, enum store_flag_op op, const char *kws, struct buf *out)
{
	const char *p;

	buf_reset(out);
	if (op == STORE_FLAGS_SET)
		base = "";
	for (p = base; p && *p;) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len > 0 && !(op == STORE_FLAGS_REMOVE && kw_has(kws, p, len)) &&
		    (buf_len(out) > 0 && buf_puts(out, " ") == -1))
			return -1;
		if (len > 0 && !(op == STORE_FLAGS_REMOVE && kw_has(kws, p, len)) &&
		    buf_append(out, p, len) == -1)
			return -1;
		p = e ? e + 1 : NULL;
	}
	if (op != STORE_FLAGS_REMOVE) {
		for (p = kws; p && *p;) {
			const char *e = strchr(p, ' ');
			size_t len = e ? (size_t)(e - p) : strlen(p);

			if (len > 0 && !kw_has(buf_cstr(out), p, len)) {
				if ((buf_len(out) > 0 && buf_puts(out, " ") == -1) ||
				    buf_append(out, p, len) == -1)
					return -1;
			}
			p = e ? e + 1 : NULL;
		}
	}
	(void)buf_cstr(out);
	return buf_len(out) > STORE_KEYWORDS_MAX ? -1 : 0;
}

/* Add keywords to the folder's list of known keywords. */
static int
folder_add_keywords(MYSQL *m, uint64_t folder_id, const char *kws)
{
	char sql[200];
	MYSQL_RES *res;
	MYSQL_ROW row;
	struct buf now, q;
	int rc = -1;

	if (kws == NULL || *kws == '\0')
		return 0;
	snprintf(sql, sizeof(sql), "SELECT keywords FROM folders WHERE id = %" PRIu64, folder_id);
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return -1;
	row = mysql_fetch_row(res);
	buf_init(&now, 0);
	buf_init(&q, 0);
	if (row == NULL || kw_apply(row[0] ? row[0] : "", STORE_FLAGS_ADD, kws, &now) == -1)
		goto out;
	if (strcmp(buf_cstr(&now), row[0] ? row[0] : "") == 0) {
		rc = 0;
		goto out;
	}
	if (buf_puts(&q, "UPDATE folders SET keywords = ") == -1 || db_quote(m, &q, buf_cstr(&now)) == -1 ||
	    buf_printf(&q, " WHERE id = %" PRIu64, folder_id) == -1 || sq(m, &q) == -1)
		goto out;
	rc = 0;
out:
	mysql_free_result(res);
	buf_free(&now);
	buf_free(&q);
	return rc;
}

int
store_flags(MYSQL *m, uint64_t mailbox_id, uint64_t folder_id, const struct store_flag_req *r,
    struct store_flag_result *out)
{
	struct buf b, kw;
	MYSQL_RES *res = NULL;
	size_t i, changed = 0;
	uint64_t modseq = 0;
	int rc = STORE_ERROR;

	memset(out, 0, sizeof(*out));
	buf_init(&b, 0);
	buf_init(&kw, 0);
	if (sqs(m, "START TRANSACTION") == -1)
		goto out;
	/* The folder row first: it serializes writers and gives the modseq. */
	if ((rc = folder_bump(m, mailbox_id, folder_id, &modseq, NULL, NULL)) != STORE_OK)
		goto fail;
	rc = STORE_ERROR;
	if (buf_printf(&b, "SELECT " MSG_COLS " FROM messages WHERE folder_id = %" PRIu64 " AND ",
	    folder_id) == -1 || sql_uid_set(&b, "uid", r->uids, r->n) == -1 ||
	    buf_puts(&b, " ORDER BY uid FOR UPDATE") == -1 || (res = sq_res(m, &b)) == NULL)
		goto fail;
	if (load_msgs(res, &out->msgs, &out->n) == -1)
		goto fail;
	if (out->n > 0 && (out->failed = calloc(out->n, sizeof(uint32_t))) == NULL)
		goto fail;
	for (i = 0; i < out->n; i++) {
		struct store_msg *x = &out->msgs[i];
		uint8_t nf;
		const char *oldkw = x->keywords ? x->keywords : "";

		if (r->unchangedsince && x->modseq > r->unchangedsince) {
			out->failed[out->nfailed++] = x->uid;
			continue;
		}
		nf = r->op == STORE_FLAGS_SET ? r->flags : r->op == STORE_FLAGS_ADD ?
		    (uint8_t)(x->flags | r->flags) : (uint8_t)(x->flags & ~r->flags);
		if (kw_apply(oldkw, r->op, r->keywords ? r->keywords : "", &kw) == -1) {
			rc = STORE_INVALID;
			goto fail;
		}
		if (nf == x->flags && strcmp(buf_cstr(&kw), oldkw) == 0)
			continue;
		buf_reset(&b);
		if (buf_printf(&b, "UPDATE messages SET sysflags = %u, modseq = %" PRIu64 ", keywords = ",
		    nf, modseq) == -1 || db_quote(m, &b, buf_cstr(&kw)) == -1 ||
		    buf_printf(&b, " WHERE folder_id = %" PRIu64 " AND uid = %u", folder_id, x->uid) == -1 ||
		    sq(m, &b) == -1)
			goto fail;
		x->flags = nf;
		x->modseq = modseq;
		free(x->keywords);
		x->keywords = buf_len(&kw) ? strdup(buf_cstr(&kw)) : NULL;
		if (buf_len(&kw) && x->keywords == NULL)
			goto fail;
		changed++;
	}
	if (r->op != STORE_FLAGS_REMOVE && folder_add_keywords(m, folder_id, r->keywords) == -1)
		goto fail;
	if (changed == 0 && (r->op == STORE_FLAGS_REMOVE || r->keywords == NULL || *r->keywords == '\0')) {
		/* Nothing changed: no modseq spent. */
		rollback(m);
		out->highestmodseq = modseq - 1;
		rc = STORE_OK;
		goto out;
	}
	if (sqs(m, "COMMIT") == -1)
		goto fail;
	out->highestmodseq = modseq;
	rc = STORE_OK;
	goto out;
fail:
	rollback(m);
	store_flag_result_free(out);
out:
	if (res)
		mysql_free_result(res);
	buf_free(&b);
	buf_free(&kw);
	return rc;
}

void
store_flag_result_free(struct store_flag_result *r)
{
	free_msgs(r->msgs, r->n);
	free(r->failed);
	memset(r, 0, sizeof(*r));
}

/* Inside a transaction with the folder locked at modseq: delete the rows
 * of where, leave tombstones, give the quota back. */
static int
expunge_locked(MYSQL *m, uint64_t mailbox_id, uint64_t folder_id, uint64_t modseq, struct buf *where,
    char ***files, size_t *nfiles, uint32_t **uids)
{
	struct buf b;
	uint64_t bytes;
	size_t i;
	int rc = STORE_ERROR;

	if (collect_messages(m, where, files, nfiles, &bytes, uids) != STORE_OK)
		return STORE_ERROR;
	if (*nfiles == 0)
		return STORE_OK;
	buf_init(&b, 0);
	if (buf_puts(&b, "INSERT INTO expunged (folder_id, uid, modseq) VALUES ") == -1)
		goto out;
	for (i = 0; i < *nfiles; i++)
		if (buf_printf(&b, "%s(%" PRIu64 ", %u, %" PRIu64 ")", i ? ", " : "", folder_id,
		    (*uids)[i], modseq) == -1)
			goto out;
	if (buf_puts(&b, " ON DUPLICATE KEY UPDATE modseq = VALUES(modseq)") == -1 || sq(m, &b) == -1)
		goto out;
	buf_reset(&b);
	if (buf_puts(&b, "DELETE FROM messages WHERE ") == -1 ||
	    buf_append(&b, buf_data(where), buf_len(where)) == -1 || sq(m, &b) == -1 ||
	    quota_release(m, mailbox_id, bytes, *nfiles) == -1)
		goto out;
	rc = STORE_OK;
out:
	buf_free(&b);
	return rc;
}

int
store_expunge(MYSQL *m, uint64_t mailbox_id, uint64_t folder_id, const uint32_t *uids, size_t n,
    bool only_deleted, uint32_t **out, size_t *nout)
{
	struct buf where;
	char **files = NULL;
	size_t nfiles = 0;
	uint32_t *gone = NULL;
	uint64_t modseq;
	int rc = STORE_ERROR;

	if (out)
		*out = NULL;
	if (nout)
		*nout = 0;
	buf_init(&where, 0);
	if (buf_printf(&where, "folder_id = %" PRIu64, folder_id) == -1 ||
	    (only_deleted && buf_printf(&where, " AND (sysflags & %d) <> 0", STORE_F_DELETED) == -1) ||
	    (uids && (buf_puts(&where, " AND ") == -1 || sql_uid_set(&where, "uid", uids, n) == -1)))
		goto out;
	if (sqs(m, "START TRANSACTION") == -1)
		goto out;
	if ((rc = folder_bump(m, mailbox_id, folder_id, &modseq, NULL, NULL)) != STORE_OK)
		goto fail;
	rc = STORE_ERROR;
	if (expunge_locked(m, mailbox_id, folder_id, modseq, &where, &files, &nfiles, &gone) != STORE_OK)
		goto fail;
	if (nfiles == 0) {
		rollback(m);	/* no modseq spent on nothing */
		rc = STORE_OK;
		goto out;
	}
	if (sqs(m, "COMMIT") == -1)
		goto fail;
	unlink_files(files, nfiles);
	if (out) {
		*out = gone;
		gone = NULL;
	}
	if (nout)
		*nout = nfiles;
	rc = STORE_OK;
	goto out;
fail:
	rollback(m);
out:
	free(gone);
	free_files(files, nfiles);
	buf_free(&where);
	return rc;
}

static int
mailbox_quota(MYSQL *m, uint64_t mailbox_id, bool lock, uint64_t *used, uint64_t *limit, uint64_t *count)
{
	char sql[300];
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = STORE_ERROR;

	snprintf(sql, sizeof(sql), "SELECT used_bytes, JSON_VALUE(spec, '$.quota'), messages FROM mailboxes "
	    "WHERE id = %" PRIu64 "%s", mailbox_id, lock ? " FOR UPDATE" : "");
	if (sqs(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return STORE_ERROR;
	if ((row = mysql_fetch_row(res)) != NULL) {
		*used = parse_u64(row[0]);
		*limit = 0;
		if (row[1] != NULL)
			(void)lookup_size(row[1], limit);
		if (count)
			*count = parse_u64(row[2]);
		rc = STORE_OK;
	} else
		rc = STORE_NOTFOUND;
	mysql_free_result(res);
	return rc;
}

int
store_quota(MYSQL *m, uint64_t mailbox_id, uint64_t *used, uint64_t *limit, uint64_t *messages)
{
	return mailbox_quota(m, mailbox_id, false, used, limit, messages);
}

/* A fresh file name in the mailbox's directory. */
static int
new_file_name(uint64_t mailbox_id, char *rel, size_t len)
{
	unsigned char r[8];
	struct timespec ts;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (snprintf(rel, len, "%" PRIu64 "/S%llx.%02x%02x%02x%02x%02x%02x%02x%02x", mailbox_id,
	    (unsigned long long)ts.tv_sec, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) >= (int)len)
		return -1;
	return 0;
}

static int
fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd == -1)
		return -1;
	r = fsync(fd);
	if (close(fd) == -1)
		r = -1;
	return r;
}

static int
ensure_dir(uint64_t mailbox_id)
{
	char dir[PATH_MAX + 32];

	snprintf(dir, sizeof(dir), "%s/%" PRIu64, mail_root, mailbox_id);
	if (mkdir(dir, 0700) == 0)
		return fsync_dir(mail_root);
	return errno == EEXIST ? 0 : -1;
}

/* Write data to a new file under the mail root, durably. */
static int
write_body(uint64_t mailbox_id, const char *data, size_t len, char *rel, size_t rellen)
{
	char path[PATH_MAX * 2], tmp[PATH_MAX * 2 + 8], dir[PATH_MAX + 32];
	size_t done = 0;
	int fd;

	if (ensure_dir(mailbox_id) == -1 || new_file_name(mailbox_id, rel, rellen) == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", mail_root, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(dir, sizeof(dir), "%s/%" PRIu64, mail_root, mailbox_id);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1)
		return -1;
	while (done < len) {
		ssize_t w = write(fd, data + done, len - done);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		done += (size_t)w;
	}
	if (fdatasync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1 || fsync_dir(dir) == -1)
		goto fail;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	return -1;
}

static void
unlink_rel(const char *rel)
{
	char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s", mail_root, rel);
	(void)unlink(path);
}

static void
keywords_text(const char *kws, char *out, size_t len)
{
	snprintf(out, len, "%s", kws ? kws : "");
}

/* The structure FETCH serves, computed once per message. */
struct structure {
	struct buf	 env, body, bs, idx;
};

static void
structure_free(struct structure *st)
{
	buf_free(&st->env);
	buf_free(&st->body);
	buf_free(&st->bs);
	buf_free(&st->idx);
}

static int
structure_compute(const char *data, size_t len, struct structure *st)
{
	struct mime_message *msg = NULL;
	int rc = -1;

	buf_init(&st->env, 0);
	buf_init(&st->body, 0);
	buf_init(&st->bs, 0);
	buf_init(&st->idx, 0);
	if (mime_parse(data ? data : "", len, &msg) == -1)
		return -1;
	if (mime_envelope(msg, &st->env) == 0 && mime_bodystructure(msg, false, &st->body) == 0 &&
	    mime_bodystructure(msg, true, &st->bs) == 0 && mime_index_encode(msg, &st->idx) == 0)
		rc = 0;
	mime_free(msg);
	(void)buf_cstr(&st->env);
	(void)buf_cstr(&st->body);
	(void)buf_cstr(&st->bs);
	(void)buf_cstr(&st->idx);
	return rc;
}

/* "UPDATE messages SET envelope = ..., ... WHERE" for one message. */
static int
structure_save(MYSQL *m, uint64_t folder_id, uint32_t uid, struct structure *st)
{
	struct buf b;
	int rc = -1;

	buf_init(&b, 0);
	if (buf_puts(&b, "UPDATE messages SET envelope = ") == 0 && db_quote(m, &b, buf_cstr(&st->env)) == 0 &&
	    buf_puts(&b, ", body_basic = ") == 0 && db_quote(m, &b, buf_cstr(&st->body)) == 0 &&
	    buf_puts(&b, ", body_structure = ") == 0 && db_quote(m, &b, buf_cstr(&st->bs)) == 0 &&
	    buf_puts(&b, ", mime_index = ") == 0 && db_quote(m, &b, buf_cstr(&st->idx)) == 0 &&
	    buf_printf(&b, " WHERE folder_id = %" PRIu64 " AND uid = %u", folder_id, uid) == 0 &&
	    sq(m, &b) == 0)
		rc = 0;
	buf_free(&b);
	return rc;
}

int
store_append(MYSQL *m, uint64_t mailbox_id, const char *folder, const struct store_append_req *r,
    uint32_t *uidvalidity, uint32_t *uid)
{
	char canon[STORE_NAME_MAX + 1], rel[128], kws[STORE_KEYWORDS_MAX + 1], date[64];
	struct buf b;
	uint64_t fid, modseq, used, limit;
	uint32_t uidnext, uv;
	int rc = STORE_ERROR, r2;
	bool written = false, have_structure = false;
	struct structure st;

	if (!store_folder_name_ok(folder, canon))
		return STORE_NOTFOUND;
	if (r->keywords && strlen(r->keywords) > STORE_KEYWORDS_MAX)
		return STORE_INVALID;
	keywords_text(r->keywords, kws, sizeof(kws));
	buf_init(&b, 0);
	/* Refuse early when the folder is missing or the quota is spent. */
	if ((r2 = folder_lookup(m, mailbox_id, canon, false, &fid, NULL, NULL, NULL)) != 1) {
		rc = r2 == 0 ? STORE_NOTFOUND : STORE_ERROR;
		goto out;
	}
	if (write_body(mailbox_id, r->data, r->len, rel, sizeof(rel)) == -1) {
		log_err("store: writing a message for mailbox %" PRIu64 ": %s", mailbox_id, strerror(errno));
		goto out;
	}
	written = true;
	have_structure = structure_compute(r->data, r->len, &st) == 0;
	if (sqs(m, "START TRANSACTION") == -1)
		goto fail;
	if ((rc = mailbox_quota(m, mailbox_id, true, &used, &limit, NULL)) != STORE_OK)
		goto fail;
	if (limit > 0 && used + r->len > limit) {
		rc = STORE_OVERQUOTA;
		goto fail;
	}
	rc = STORE_ERROR;
	if ((r2 = folder_bump(m, mailbox_id, fid, &modseq, &uidnext, &uv)) != STORE_OK) {
		rc = r2;
		goto fail;
	}
	if (r->internal_date > 0)
		snprintf(date, sizeof(date), "FROM_UNIXTIME(%" PRId64 ")", r->internal_date);
	else
		snprintf(date, sizeof(date), "NOW()");
	if (buf_printf(&b, "INSERT INTO messages (folder_id, uid, file, size, internal_date, sysflags, "
	    "modseq, keywords, queue_qid) VALUES (%" PRIu64 ", %u, ", fid, uidnext) == -1 ||
	    db_quote(m, &b, rel) == -1 ||
	    buf_printf(&b, ", %zu, %s, %u, %" PRIu64 ", ", r->len, date, r->flags & STORE_F_ALL, modseq) == -1 ||
	    db_quote(m, &b, kws) == -1 || buf_puts(&b, ", '')") == -1)
		goto fail;
	if (sq(m, &b) == -1)
		goto fail;
	buf_reset(&b);
	if (buf_printf(&b, "UPDATE folders SET uidnext = %u WHERE id = %" PRIu64, uidnext + 1, fid) == -1 ||
	    sq(m, &b) == -1)
		goto fail;
	buf_reset(&b);
	if (buf_printf(&b, "UPDATE mailboxes SET used_bytes = used_bytes + %zu, messages = messages + 1 "
	    "WHERE id = %" PRIu64, r->len, mailbox_id) == -1 || sq(m, &b) == -1)
		goto fail;
	if (folder_add_keywords(m, fid, kws) == -1)
		goto fail;
	/* Parsed once, now; FETCH serves ENVELOPE and BODYSTRUCTURE from the row. */
	if (have_structure && structure_save(m, fid, uidnext, &st) == -1)
		goto fail;
	if (sqs(m, "COMMIT") == -1)
		goto fail;
	*uidvalidity = uv;
	*uid = uidnext;
	rc = STORE_OK;
	goto out;
fail:
	rollback(m);
	if (written)
		unlink_rel(rel);
out:
	if (have_structure)
		structure_free(&st);
	buf_free(&b);
	return rc;
}

int
store_copy(MYSQL *m, uint64_t mailbox_id, uint64_t src_folder, const char *dst,
    const uint32_t *uids, size_t n, bool move, struct store_copy_result *out)
{
	char canon[STORE_NAME_MAX + 1], **files = NULL, **made = NULL;
	struct buf b;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	uint64_t dst_id, dst_modseq, src_modseq = 0, used, limit, bytes = 0;
	uint32_t uidnext;
	size_t rows, i, nmade = 0, nfiles = 0;
	int rc = STORE_ERROR, r;

	memset(out, 0, sizeof(*out));
	if (!store_folder_name_ok(dst, canon))
		return STORE_NOTFOUND;
	buf_init(&b, 0);
	if (sqs(m, "START TRANSACTION") == -1)
		goto out;
	/* Lock order: the source folder first, then the destination (same
	 * order as everyone: by purpose, source before destination). */
	if (move && (r = folder_bump(m, mailbox_id, src_folder, &src_modseq, NULL, NULL)) != STORE_OK) {
		rc = r;
		goto fail;
	}
	if ((r = folder_lookup(m, mailbox_id, canon, false, &dst_id, NULL, NULL, NULL)) != 1) {
		rc = r == 0 ? STORE_NOTFOUND : STORE_ERROR;
		goto fail;
	}
	if ((r = folder_bump(m, mailbox_id, dst_id, &dst_modseq, &uidnext, &out->dst_uidvalidity)) != STORE_OK) {
		rc = r;
		goto fail;
	}
	if (buf_printf(&b, "SELECT m.uid, m.file, m.size, m.sysflags, m.keywords, UNIX_TIMESTAMP(m.internal_date), "
	    "m.return_path, m.envelope, m.body_basic, m.body_structure, m.mime_index FROM messages m JOIN folders f "
	    "ON f.id = m.folder_id WHERE f.mailbox_id = %" PRIu64 " AND m.folder_id = %" PRIu64 " AND ",
	    mailbox_id, src_folder) == -1 || sql_uid_set(&b, "m.uid", uids, n) == -1 ||
	    buf_puts(&b, " ORDER BY m.uid FOR UPDATE") == -1 || (res = sq_res(m, &b)) == NULL)
		goto fail;
	rows = mysql_num_rows(res);
	if (rows == 0) {
		rollback(m);
		rc = STORE_OK;
		goto out;
	}
	if ((out->src_uids = calloc(rows, sizeof(uint32_t))) == NULL ||
	    (out->dst_uids = calloc(rows, sizeof(uint32_t))) == NULL ||
	    (made = calloc(rows, sizeof(char *))) == NULL)
		goto fail;
	if (!move && ensure_dir(mailbox_id) == -1)
		goto fail;
	while ((row = mysql_fetch_row(res)) != NULL && out->n < rows) {
		char rel[128], src[PATH_MAX * 2], to[PATH_MAX * 2];
		const char *file = row[1];

		if (!move) {
			/* A copy is one more name for the same immutable file. */
			if (new_file_name(mailbox_id, rel, sizeof(rel)) == -1)
				goto fail;
			snprintf(src, sizeof(src), "%s/%s", mail_root, row[1]);
			snprintf(to, sizeof(to), "%s/%s", mail_root, rel);
			if (link(src, to) == -1) {
				log_err("store: link %s: %s", to, strerror(errno));
				goto fail;
			}
			if ((made[nmade++] = strdup(rel)) == NULL)
				goto fail;
			file = rel;
			bytes += parse_u64(row[2]);
		}
		buf_reset(&b);
		if (buf_printf(&b, "INSERT INTO messages (folder_id, uid, file, size, sysflags, keywords, "
		    "internal_date, return_path, modseq, envelope, body_basic, body_structure, mime_index) "
		    "VALUES (%" PRIu64 ", %u, ", dst_id, uidnext) == -1 || db_quote(m, &b, file) == -1 ||
		    buf_printf(&b, ", %s, %s, ", row[2], row[3]) == -1 || db_quote(m, &b, row[4]) == -1 ||
		    buf_printf(&b, ", FROM_UNIXTIME(%s), ", row[5]) == -1 || db_quote(m, &b, row[6]) == -1 ||
		    buf_printf(&b, ", %" PRIu64 ", ", dst_modseq) == -1 || db_quote(m, &b, row[7]) == -1 ||
		    buf_puts(&b, ", ") == -1 || db_quote(m, &b, row[8]) == -1 || buf_puts(&b, ", ") == -1 ||
		    db_quote(m, &b, row[9]) == -1 || buf_puts(&b, ", ") == -1 || db_quote(m, &b, row[10]) == -1 ||
		    buf_puts(&b, ")") == -1 || sq(m, &b) == -1)
			goto fail;
		buf_reset(&b);
		if (folder_add_keywords(m, dst_id, row[4]) == -1)
			goto fail;
		out->src_uids[out->n] = (uint32_t)parse_u64(row[0]);
		out->dst_uids[out->n] = uidnext++;
		out->n++;
	}
	mysql_free_result(res);
	res = NULL;
	buf_reset(&b);
	if (buf_printf(&b, "UPDATE folders SET uidnext = %u WHERE id = %" PRIu64, uidnext, dst_id) == -1 ||
	    sq(m, &b) == -1)
		goto fail;
	if (move) {
		/* The rows moved with their files: drop the sources without
		 * unlinking or giving back quota (the bytes stay in use). */
		buf_reset(&b);
		if (buf_puts(&b, "INSERT INTO expunged (folder_id, uid, modseq) SELECT folder_id, uid, ") == -1 ||
		    buf_printf(&b, "%" PRIu64 " FROM messages WHERE folder_id = %" PRIu64 " AND ", src_modseq,
		    src_folder) == -1 || sql_uid_set(&b, "uid", out->src_uids, out->n) == -1 ||
		    buf_puts(&b, " ON DUPLICATE KEY UPDATE modseq = VALUES(modseq)") == -1 || sq(m, &b) == -1)
			goto fail;
		buf_reset(&b);
		if (buf_printf(&b, "DELETE FROM messages WHERE folder_id = %" PRIu64 " AND ", src_folder) == -1 ||
		    sql_uid_set(&b, "uid", out->src_uids, out->n) == -1 || sq(m, &b) == -1)
			goto fail;
	} else {
		if ((rc = mailbox_quota(m, mailbox_id, true, &used, &limit, NULL)) != STORE_OK)
			goto fail;
		if (limit > 0 && used + bytes > limit) {
			rc = STORE_OVERQUOTA;
			goto fail;
		}
		rc = STORE_ERROR;
		buf_reset(&b);
		if (buf_printf(&b, "UPDATE mailboxes SET used_bytes = used_bytes + %" PRIu64 ", messages = "
		    "messages + %zu WHERE id = %" PRIu64, bytes, out->n, mailbox_id) == -1 || sq(m, &b) == -1)
			goto fail;
	}
	if (sqs(m, "COMMIT") == -1)
		goto fail;
	if (!move && nmade > 0) {
		char dir[PATH_MAX + 32];

		/* The new names must survive a crash as the rows do. */
		snprintf(dir, sizeof(dir), "%s/%" PRIu64, mail_root, mailbox_id);
		if (fsync_dir(dir) == -1)
			log_warn("store: fsync %s: %s", dir, strerror(errno));
	}
	rc = STORE_OK;
	goto out;
fail:
	rollback(m);
	for (i = 0; i < nmade; i++)
		unlink_rel(made[i]);
	store_copy_result_free(out);
out:
	if (res)
		mysql_free_result(res);
	for (i = 0; i < nmade; i++)
		free(made[i]);
	free(made);
	free_files(files, nfiles);
	buf_free(&b);
	return rc;
}

void
store_copy_result_free(struct store_copy_result *r)
{
	free(r->src_uids);
	free(r->dst_uids);
	memset(r, 0, sizeof(*r));
}

int
store_read_body(const char *path, uint64_t off, uint64_t len, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int rc = -1;

	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto out;
	if (off >= (uint64_t)st.st_size) {
		rc = 0;
		goto out;
	}
	if (len > (uint64_t)st.st_size - off)
		len = (uint64_t)st.st_size - off;
	if (buf_reserve(out, (size_t)len) == -1)
		goto out;
	while (len > 0) {
		ssize_t r = pread(fd, out->data + out->len, (size_t)len, (off_t)off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out;
		out->len += (size_t)r;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static char *
full_path(const char *rel)
{
	size_t len = strlen(mail_root) + strlen(rel) + 2;
	char *p = malloc(len);

	if (p)
		snprintf(p, len, "%s/%s", mail_root, rel);
	return p;
}

int
store_cache_structure(MYSQL *m, uint64_t folder_id, uint32_t uid, const char *path)
{
	struct structure st;
	struct buf data;
	int rc = -1;

	buf_init(&data, 0);
	if (store_read_body(path, 0, UINT64_MAX, &data) == 0 &&
	    structure_compute(buf_data(&data), buf_len(&data), &st) == 0) {
		rc = structure_save(m, folder_id, uid, &st);
		structure_free(&st);
	}
	buf_free(&data);
	return rc;
}

/* A row stored without its structure (mail from before it was kept):
 * parse the body now and keep the result for next time. */
static int
fill_structure(MYSQL *m, uint64_t folder_id, struct store_fetch_row *f)
{
	struct structure st;
	struct buf data;
	int rc = -1;

	buf_init(&data, 0);
	if (store_read_body(f->path, 0, UINT64_MAX, &data) == -1 ||
	    structure_compute(buf_data(&data), buf_len(&data), &st) == -1)
		goto out;
	free(f->envelope);
	free(f->body);
	free(f->bodystructure);
	free(f->index);
	f->envelope = strdup(buf_cstr(&st.env));
	f->body = strdup(buf_cstr(&st.body));
	f->bodystructure = strdup(buf_cstr(&st.bs));
	f->index = strdup(buf_cstr(&st.idx));
	/* A failed save only means parsing again next time. */
	(void)structure_save(m, folder_id, f->uid, &st);
	structure_free(&st);
	rc = f->envelope && f->body && f->bodystructure && f->index ? 0 : -1;
out:
	buf_free(&data);
	return rc;
}

int
store_fetch_rows(MYSQL *m, uint64_t mailbox_id, uint64_t folder_id, const uint32_t *uids, size_t n,
    bool want_meta, struct store_fetch_row **out, size_t *nout)
{
	struct buf b;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	struct store_fetch_row *v = NULL;
	size_t rows, i = 0;
	int rc = STORE_ERROR;

	*out = NULL;
	*nout = 0;
	buf_init(&b, 0);
	if (buf_printf(&b, "SELECT m.uid, m.sysflags, m.keywords, m.modseq, m.size, "
	    "UNIX_TIMESTAMP(m.internal_date), m.file, m.mime_index%s FROM messages m JOIN folders f "
	    "ON f.id = m.folder_id WHERE f.mailbox_id = %" PRIu64 " AND m.folder_id = %" PRIu64 " AND ",
	    want_meta ? ", m.envelope, m.body_basic, m.body_structure" : "",
	    mailbox_id, folder_id) == -1 || sql_uid_set(&b, "m.uid", uids, n) == -1 ||
	    buf_puts(&b, " ORDER BY m.uid") == -1 || (res = sq_res(m, &b)) == NULL)
		goto out;
	rows = mysql_num_rows(res);
	if (rows > 0 && (v = calloc(rows, sizeof(*v))) == NULL)
		goto out;
	while ((row = mysql_fetch_row(res)) != NULL && i < rows) {
		struct store_fetch_row *f = &v[i++];

		f->uid = (uint32_t)parse_u64(row[0]);
		f->flags = (uint8_t)(parse_u64(row[1]) & STORE_F_ALL);
		f->keywords = row[2] && row[2][0] ? strdup(row[2]) : NULL;
		f->modseq = parse_u64(row[3]);
		f->size = parse_u64(row[4]);
		f->internal_date = parse_i64(row[5]);
		if ((f->path = full_path(row[6])) == NULL)
			goto fail;
		/* The index (small) also lets SEARCH and SORT read only headers. */
		if (row[7] != NULL && (f->index = strdup(row[7])) == NULL)
			goto fail;
		if (want_meta) {
			f->envelope = xstrdup(row[8]);
			f->body = xstrdup(row[9]);
			f->bodystructure = xstrdup(row[10]);
			if ((f->envelope == NULL || f->body == NULL || f->bodystructure == NULL ||
			    f->index == NULL) && fill_structure(m, folder_id, f) == -1)
				goto fail;
		}
	}
	*out = v;
	*nout = i;
	v = NULL;
	rc = STORE_OK;
	goto out;
fail:
	store_fetch_rows_free(v, i);
	v = NULL;
out:
	if (res)
		mysql_free_result(res);
	buf_free(&b);
	return rc;
}

void
store_fetch_rows_free(struct store_fetch_row *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].keywords);
		free(v[i].path);
		free(v[i].envelope);
		free(v[i].body);
		free(v[i].bodystructure);
		free(v[i].index);
	}
	free(v);
}
