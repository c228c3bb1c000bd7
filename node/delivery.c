/* delivery: the local runner, one thread with its own MariaDB connection
 * (remote recipients are remote.c's workers'). Exactly once comes from the
 * transaction: a link made twice (after a crash) is the same file, and a
 * recipient marked delivered is never taken again. Mailboxes link to
 * spool/local/<qid>, the body with a Return-Path line on top, written once
 * per message; it goes when the message leaves the queue, and what a crash
 * leaves there is cleared when the runner starts. */
#include "delivery.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "autoreply.h"
#include "buf.h"
#include "log.h"
#include "smtp_parse.h"
#include "spool.h"
#include "store.h"

#define DELIVERY_BATCH		100
#define DELIVERY_POLL_MS	5000

static struct {
	char		 spool_msg[PATH_MAX];
	char		 spool_local[PATH_MAX];	/* bodies with Return-Path, linked into mailboxes */
	char		 mail_root[PATH_MAX];
	struct db_conf	 conf;
	struct remote_conf rconf;	/* lifetime, delay warning: as for remote mail */
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	bool		 running, stopping, kicked;
	struct service	*svc;
} d = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

struct due {
	uint64_t	 rcpt_id, message_id, mailbox_id, size, attempts, age;
	char		 qid[32];
	char		 sender[520];
	char		 address[520], orcpt[270], envid[104];
	unsigned	 notify;
	bool		 ret_hdrs, warned;
	bool		 autoreply;	/* the mailbox has one: worth autoreply's look */
};

static int fsync_dir(const char *);

/* Create path if missing; a new directory's name is made durable in its
 * parent, or a crash could take it (and the mail linked into it) away. */
static int
mkdir_fsync(const char *path, const char *parent)
{
	if (mkdir(path, 0700) == 0)
		return parent ? fsync_dir(parent) : 0;
	return errno == EEXIST ? 0 : -1;
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
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* spool/local/<qid>: "Return-Path: <sender>" (RFC 5321 4.4: the delivering
 * server records the reverse-path) and the body, made once per message and
 * durable (data, then its name) before a mailbox links to it. Its size is
 * what the mailbox stores and counts. */
static int
local_copy(const struct due *x, char *path, size_t pathlen, uint64_t *size, char *err,
    size_t errlen)
{
	char src[PATH_MAX + 64], tmp[PATH_MAX + 64], chunk[16384];
	struct buf hdr;
	struct stat st;
	ssize_t n;
	size_t i;
	int in = -1, out = -1;

	if (snprintf(path, pathlen, "%s/%s", d.spool_local, x->qid) >= (int)pathlen ||
	    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", d.spool_local, x->qid) >= (int)sizeof(tmp) ||
	    snprintf(src, sizeof(src), "%s/%s", d.spool_msg, x->qid) >= (int)sizeof(src)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	if (stat(path, &st) == 0) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "stat %.300s: %s", path, strerror(errno));
		return -1;
	}
	buf_init(&hdr, 0);
	if (buf_puts(&hdr, "Return-Path: <") == -1)
		goto nomem;
	/* The parser let no control characters in; a line break here would
	 * forge headers, so be sure. */
	for (i = 0; x->sender[i]; i++)
		if (buf_printf(&hdr, "%c", (unsigned char)x->sender[i] < 0x20 ||
		    x->sender[i] == 0x7f ? '?' : x->sender[i]) == -1)
			goto nomem;
	if (buf_puts(&hdr, ">\r\n") == -1)
		goto nomem;
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "open %.300s: %s", src, strerror(errno));
		goto fail;
	}
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen, "create %.300s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (write_all(out, buf_data(&hdr), buf_len(&hdr)) == -1)
		goto wfail;
	while ((n = read(in, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "read %.300s: %s", src, strerror(errno));
			goto fail;
		}
		if (write_all(out, chunk, (size_t)n) == -1)
			goto wfail;
	}
	if (fdatasync(out) == -1 || fstat(out, &st) == -1)
		goto wfail;
	if (close(out) == -1) {
		out = -1;
		goto wfail;
	}
	out = -1;
	if (rename(tmp, path) == -1 || fsync_dir(d.spool_local) == -1) {
		snprintf(err, errlen, "rename %.300s: %s", path, strerror(errno));
		goto fail;
	}
	close(in);
	buf_free(&hdr);
	*size = (uint64_t)st.st_size;
	return 0;
wfail:
	snprintf(err, errlen, "write %.300s: %s", tmp, strerror(errno));
	goto fail;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	if (in != -1)
		close(in);
	if (out != -1) {
		close(out);
		(void)unlink(tmp);
	}
	buf_free(&hdr);
	return -1;
}

/* mail-root branch: a mail root on another filesystem than the spool (a
 * shared one) cannot take a link: copy, durable before its name appears. A
 * copy's name is made only by rename, so one that exists is whole. */
static int
copy_body(const char *src, const char *dst, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 8], chunk[16384];
	int in = -1, out = -1;
	ssize_t n;

	if (access(dst, F_OK) == 0)
		return 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", dst) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		goto fail;
	while ((n = read(in, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || write_all(out, chunk, (size_t)n) == -1)
			goto fail;
	}
	if (fdatasync(out) == -1)
		goto fail;
	if (close(out) == -1) {
		out = -1;
		goto fail;
	}
	out = -1;
	if (rename(tmp, dst) == -1)
		goto fail;
	close(in);
	return 0;
fail:
	snprintf(err, errlen, "copy to %.300s: %s", dst, strerror(errno));
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	(void)unlink(tmp);
	return -1;
}

/* The body in the mailbox's directory: a hard link to the local copy (one
 * file on disk however many local recipients), or a copy across filesystems. */
static int
place_body(const struct due *x, char *rel, size_t rellen, uint64_t *size, char *err, size_t errlen)
{
	char dir[PATH_MAX], src[PATH_MAX + 64], dst[PATH_MAX];

	if (snprintf(rel, rellen, "%" PRIu64 "/%s", x->mailbox_id, x->qid) >= (int)rellen ||
	    snprintf(dir, sizeof(dir), "%s/%" PRIu64, d.mail_root, x->mailbox_id) >= (int)sizeof(dir) ||
	    snprintf(dst, sizeof(dst), "%s/%s", d.mail_root, rel) >= (int)sizeof(dst)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	if (local_copy(x, src, sizeof(src), size, err, errlen) == -1)
		return -1;
	if (mkdir_fsync(dir, d.mail_root) == -1) {
		snprintf(err, errlen, "mkdir %.300s: %s", dir, strerror(errno));
		return -1;
	}
	if (link(src, dst) == -1 && errno != EEXIST) {
		if (errno == EXDEV) {	/* mail-root branch */
			if (copy_body(src, dst, err, errlen) == -1)
				return -1;
		} else {
			snprintf(err, errlen, "link %.300s: %s", dst, strerror(errno));
			return -1;
		}
	}
	/* The name must be durable before the row that points to it. */
	if (fsync_dir(dir) == -1) {
		snprintf(err, errlen, "fsync %.300s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int
q(MYSQL *m, const char *sql)
{
	return mysql_real_query(m, sql, strlen(sql)) == 0 ? 0 : -1;
}

/* IMAP serves ENVELOPE and BODYSTRUCTURE from the row: parse the message
 * once, now that it is delivered. Best effort: a row without it is parsed
 * at its first FETCH. */
static void
cache_structure(MYSQL *m, uint64_t folder, unsigned uid, const char *rel)
{
	char path[PATH_MAX + 200];

	snprintf(path, sizeof(path), "%s/%s", d.mail_root, rel);
	if (store_cache_structure(m, folder, uid, path) == -1)
		log_warn("delivery: structure of %s not cached: parsed at first use", rel);
}

/* Lock the mailbox's INBOX row, making it first for a mailbox made before
 * folders existed. The lock comes before any insert: an INSERT IGNORE that
 * finds the row takes a shared lock, and two deliveries (two runners, two
 * nodes) upgrading theirs to exclusive deadlock each other. */
static MYSQL_RES *
lock_inbox(MYSQL *m, uint64_t mailbox_id)
{
	char sql[256];
	MYSQL_RES *res;

	snprintf(sql, sizeof(sql), "SELECT id, uidnext, highestmodseq FROM folders WHERE mailbox_id = %"
	    PRIu64 " AND name = 'INBOX' FOR UPDATE", mailbox_id);
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return NULL;
	if (mysql_num_rows(res) > 0)
		return res;
	mysql_free_result(res);
	snprintf(sql, sizeof(sql), "INSERT IGNORE INTO folders (mailbox_id, name, uidvalidity) "
	    "VALUES (%" PRIu64 ", 'INBOX', UNIX_TIMESTAMP())", mailbox_id);
	if (q(m, sql) == -1)
		return NULL;
	snprintf(sql, sizeof(sql), "SELECT id, uidnext, highestmodseq FROM folders WHERE mailbox_id = %"
	    PRIu64 " AND name = 'INBOX' FOR UPDATE", mailbox_id);
	if (q(m, sql) == -1)
		return NULL;
	return mysql_store_result(m);
}

/* 0 delivered; -1 failed (err says why); -2 the transaction lost a lock
 * conflict (deadlock, lock wait timeout) and can be tried again now. */
static int
deliver_one(MYSQL *m, const struct due *x, char *err, size_t errlen)
{
	char rel[128], sql[2600], esc_rel[260], esc_sender[1100];
	MYSQL_RES *res;
	MYSQL_ROW row;
	uint64_t folder, modseq, size;
	unsigned uid, e;

	if (place_body(x, rel, sizeof(rel), &size, err, errlen) == -1)
		return -1;
	mysql_real_escape_string(m, esc_rel, rel, strlen(rel));
	mysql_real_escape_string(m, esc_sender, x->sender, strnlen(x->sender, 512));
	if (q(m, "START TRANSACTION") == -1 || (res = lock_inbox(m, x->mailbox_id)) == NULL)
		goto sqlfail;
	if ((row = mysql_fetch_row(res)) == NULL) {
		mysql_free_result(res);
		snprintf(err, errlen, "mailbox %" PRIu64 " has no INBOX", x->mailbox_id);
		goto fail;
	}
	folder = strtoull(row[0], NULL, 10);
	uid = (unsigned)strtoul(row[1], NULL, 10);
	modseq = strtoull(row[2], NULL, 10) + 1;	/* IMAP CONDSTORE: new mail is a change */
	mysql_free_result(res);
	snprintf(sql, sizeof(sql), "INSERT INTO messages (folder_id, uid, file, size, return_path, "
	    "queue_qid, modseq) VALUES (%" PRIu64 ", %u, '%s', %" PRIu64 ", '%s', '%s', %" PRIu64 ")",
	    folder, uid, esc_rel, size, esc_sender, x->qid, modseq);
	if (q(m, sql) == -1) {
		/* Already there: an earlier run committed it and died after. */
		if (mysql_errno(m) != 1062)
			goto sqlfail;
	} else {
		snprintf(sql, sizeof(sql), "UPDATE folders SET uidnext = uidnext + 1, "
		    "highestmodseq = %" PRIu64 " WHERE id = %" PRIu64, modseq, folder);
		if (q(m, sql) == -1)
			goto sqlfail;
		snprintf(sql, sizeof(sql), "UPDATE mailboxes SET used_bytes = used_bytes + %" PRIu64
		    ", messages = messages + 1 WHERE id = %" PRIu64, size, x->mailbox_id);
		if (q(m, sql) == -1)
			goto sqlfail;
	}
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET state = 'delivered', attempts = "
	    "attempts + 1, last_error = '' WHERE id = %" PRIu64, x->rcpt_id);
	if (q(m, sql) == -1 || q(m, "COMMIT") == -1)
		goto sqlfail;
	cache_structure(m, folder, uid, rel);
	/* Only mailboxes that have one: no query per delivery for the rest. */
	if (x->autoreply)
		autoreply_after_delivery(m, x->mailbox_id, x->sender, d.mail_root, rel);
	return 0;
sqlfail:
	snprintf(err, errlen, "%s", mysql_error(m));
	e = mysql_errno(m);
	(void)q(m, "ROLLBACK");
	return e == 1213 || e == 1205 ? -2 : -1;	/* ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT */
fail:
	(void)q(m, "ROLLBACK");
	return -1;
}

/* A message whose recipients are all done leaves the queue and the spool. */
static void
retire_done(MYSQL *m)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char path[PATH_MAX + 64], sql[600];

	/* Ours only: another node's file is in its own spool. */
	snprintf(sql, sizeof(sql), "SELECT m.id, m.qid FROM queue_messages m WHERE %s AND NOT EXISTS "
	    "(SELECT 1 FROM queue_recipients r WHERE r.message_id = m.id AND r.state IN ('queued', "
	    "'deferred')) LIMIT 500", spool_mine_sql());
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return;
	while ((row = mysql_fetch_row(res)) != NULL) {
		snprintf(sql, sizeof(sql), "DELETE FROM queue_messages WHERE id = %s", row[0]);
		if (q(m, sql) == -1)
			break;
		/* The row is gone first: a spool file without a row is removed
		 * at the next start, a row without a file would be an error. */
		snprintf(path, sizeof(path), "%s/%s", d.spool_msg, row[1]);
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("delivery: unlink %s: %s", path, strerror(errno));
		snprintf(path, sizeof(path), "%s/%s", d.spool_local, row[1]);
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("delivery: unlink %s: %s", path, strerror(errno));
	}
	mysql_free_result(res);
}

static size_t
fetch_due(MYSQL *m, struct due *out, size_t max)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char sql[1400];
	size_t n = 0;

	snprintf(sql, sizeof(sql), "SELECT r.id, m.id, r.mailbox_id, m.size, m.qid, m.sender, "
	    "r.attempts, TIMESTAMPDIFF(SECOND, m.received_at, NOW()), r.address, r.orcpt, r.notify, "
	    "r.warned, m.envid, m.ret_hdrs, JSON_EXTRACT(x.spec, '$.autoreply') IS NOT NULL "
	    "FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id "
	    "LEFT JOIN mailboxes x ON x.id = r.mailbox_id "
	    "WHERE r.state IN ('queued', 'deferred') AND r.mailbox_id IS NOT NULL AND m.held = FALSE "
	    "AND r.next_attempt <= NOW() AND %s ORDER BY r.id LIMIT %zu", spool_mine_sql(), max);
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return 0;
	while ((row = mysql_fetch_row(res)) != NULL && n < max) {
		struct due *x = &out[n++];

		memset(x, 0, sizeof(*x));
		x->rcpt_id = strtoull(row[0], NULL, 10);
		x->message_id = strtoull(row[1], NULL, 10);
		x->mailbox_id = strtoull(row[2], NULL, 10);
		x->size = strtoull(row[3], NULL, 10);
		snprintf(x->qid, sizeof(x->qid), "%s", row[4]);
		snprintf(x->sender, sizeof(x->sender), "%s", row[5]);
		x->attempts = strtoull(row[6], NULL, 10);
		x->age = row[7] ? strtoull(row[7], NULL, 10) : 0;
		snprintf(x->address, sizeof(x->address), "%s", row[8]);
		snprintf(x->orcpt, sizeof(x->orcpt), "%s", row[9]);
		x->notify = (unsigned)strtoul(row[10], NULL, 10);
		x->warned = strcmp(row[11], "1") == 0;
		snprintf(x->envid, sizeof(x->envid), "%s", row[12]);
		x->ret_hdrs = strcmp(row[13], "1") == 0;
		x->autoreply = row[14] != NULL && strcmp(row[14], "1") == 0;
	}
	mysql_free_result(res);
	return n;
}

/* A report to the sender about one local recipient: 1 queued or nobody to
 * tell, -1 not now. */
static int
report(MYSQL *m, const struct due *x, enum bounce_action action, const char *why)
{
	char diag[700], err[256] = "";
	struct bounce_rcpt br = { .address = x->address, .orcpt = x->orcpt,
	    .status = action == BOUNCE_DELIVERED ? "2.0.0" : "4.4.7", .diagnostic = diag };
	struct bounce_info bi = { .qid = x->qid, .sender = x->sender, .envid = x->envid,
	    .ret_hdrs = x->ret_hdrs || action != BOUNCE_FAILED, .spool_msg_dir = d.spool_msg,
	    .rcpts = &br, .nrcpts = 1, .action = action };

	if (action == BOUNCE_DELAYED)
		bi.retry_until = time(NULL) + (time_t)(d.rconf.lifetime - x->age);
	snprintf(diag, sizeof(diag), "x-mailnode; %s", why);
	if (bounce_queue(m, &bi, err, sizeof(err)) == -1) {
		log_warn("delivery: report for %s not queued: %s", x->qid, err);
		return -1;
	}
	return 1;
}

/* A local delivery that failed: tried again with the remote backoff, a
 * delay report once past the delay warning (if NOTIFY allows: none given
 * counts as FAILURE,DELAY, one of the two readings RFC 3461 4.1 allows), and at the end of the queue lifetime
 * failed and reported. */
static void
defer(MYSQL *m, const struct due *x, const char *why)
{
	char sql[1500], esc[1100], last[600];
	bool give_up = x->age >= d.rconf.lifetime, reported = true;

	if (give_up) {
		snprintf(last, sizeof(last), "gave up after %" PRIu64 " seconds: %.400s", x->age, why);
		why = last;
		if (!x->notify || (x->notify & SMTP_NOTIFY_FAILURE))
			reported = report(m, x, BOUNCE_FAILED, why) == 1;
	}
	mysql_real_escape_string(m, esc, why, strnlen(why, 500));
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET state = '%s', attempts = "
	    "attempts + 1, next_attempt = NOW() + INTERVAL %" PRIu64 " SECOND, last_error = '%s' "
	    "WHERE id = %" PRIu64, give_up && reported ? "failed" : "deferred",
	    give_up ? (uint64_t)d.rconf.retry_min : remote_backoff(x->attempts), esc, x->rcpt_id);
	if (q(m, sql) == -1) {
		log_err("delivery: cannot defer %s: %s", x->qid, mysql_error(m));
		return;
	}
	if (!give_up && d.rconf.delay_warning > 0 && !x->warned &&
	    x->age >= d.rconf.delay_warning &&
	    (x->notify == 0 || (x->notify & SMTP_NOTIFY_DELAY)) &&
	    report(m, x, BOUNCE_DELAYED, why) == 1) {
		snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET warned = TRUE WHERE id = %"
		    PRIu64, x->rcpt_id);
		if (q(m, sql) == -1)
			log_warn("delivery: delay report for %s not marked: %s", x->qid, mysql_error(m));
	}
}

static bool
is_qid_name(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++)
		if (!isalnum((unsigned char)name[i]))
			return false;
	return i > 0 && i < 32;
}

/* spool/local after a crash: a half-written copy, or a copy whose message
 * left the queue before it was removed. */
static void
recover_local(MYSQL *m)
{
	DIR *dir = opendir(d.spool_local);
	struct dirent *de;
	char path[PATH_MAX + 300], sql[400];
	MYSQL_RES *res;
	bool queued;

	if (dir == NULL) {
		log_warn("delivery: %s: %s", d.spool_local, strerror(errno));
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		queued = false;
		if (is_qid_name(de->d_name)) {
			snprintf(sql, sizeof(sql), "SELECT 1 FROM queue_messages WHERE qid = '%s'", de->d_name);
			if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
				break;	/* next start */
			queued = mysql_num_rows(res) > 0;
			mysql_free_result(res);
		}
		if (queued)
			continue;
		snprintf(path, sizeof(path), "%s/%s", d.spool_local, de->d_name);
		if (unlink(path) == -1)
			log_warn("delivery: unlink %s: %s", path, strerror(errno));
		else
			log_debug("delivery: removed %s: left by an earlier run", path);
	}
	closedir(dir);
}

static void *
runner(void *unused)
{
	struct due *batch = calloc(DELIVERY_BATCH, sizeof(*batch));
	MYSQL *m = NULL;
	char err[512];
	bool recovered = false;

	(void)unused;
	mysql_thread_init();
	while (batch != NULL) {
		size_t n, i;

		pthread_mutex_lock(&d.lock);
		while (!d.stopping && !d.kicked && d.running) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += DELIVERY_POLL_MS / 1000;
			if (pthread_cond_timedwait(&d.cond, &d.lock, &until) == ETIMEDOUT)
				break;
		}
		d.kicked = false;
		if (d.stopping) {
			pthread_mutex_unlock(&d.lock);
			break;
		}
		pthread_mutex_unlock(&d.lock);

		if (m != NULL && mysql_ping(m) != 0) {
			mysql_close(m);
			m = NULL;
		}
		if (m == NULL && (m = db_connect(&d.conf, false, err, sizeof(err))) == NULL) {
			log_warn("delivery: database unavailable: %s", err);
			continue;
		}
		if (!recovered) {
			recover_local(m);
			recovered = true;
		}
		do {
			n = fetch_due(m, batch, DELIVERY_BATCH);
			for (i = 0; i < n; i++) {
				int rc, tries = 0;

				/* A lost lock conflict is no reason to wait a retry
				 * interval: the other side has committed by now. */
				while ((rc = deliver_one(m, &batch[i], err, sizeof(err))) == -2 && ++tries < 5)
					continue;
				if (rc != 0) {
					log_err("delivery of %s to mailbox %" PRIu64 " deferred: %s",
					    batch[i].qid, batch[i].mailbox_id, err);
					defer(m, &batch[i], err);
				} else {
					log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = "spool" },
					    "delivered %s to mailbox %" PRIu64, batch[i].qid, batch[i].mailbox_id);
					/* NOTIFY=SUCCESS: best effort, the mail is in. */
					if (batch[i].notify & SMTP_NOTIFY_SUCCESS)
						(void)report(m, &batch[i], BOUNCE_DELIVERED,
						    "250 delivered to the mailbox");
				}
			}
			retire_done(m);
		} while (n >= DELIVERY_BATCH && !d.stopping);
	}
	free(batch);
	if (m)
		mysql_close(m);
	mysql_thread_end();
	return NULL;
}

int
delivery_init(const char *spool_dir, const char *mail_root, const struct db_conf *c,
    const struct remote_conf *rc, char *err, size_t errlen)
{
	if (snprintf(d.spool_msg, sizeof(d.spool_msg), "%s/msg", spool_dir) >= (int)sizeof(d.spool_msg) ||
	    snprintf(d.spool_local, sizeof(d.spool_local), "%s/local", spool_dir) >=
	    (int)sizeof(d.spool_local) ||
	    snprintf(d.mail_root, sizeof(d.mail_root), "%s", mail_root) >= (int)sizeof(d.mail_root)) {
		snprintf(err, errlen, "mail root path too long");
		return -1;
	}
	if (mkdir_fsync(d.mail_root, NULL) == -1) {
		snprintf(err, errlen, "mail root %s: %s", d.mail_root, strerror(errno));
		return -1;
	}
	if (mkdir_fsync(d.spool_local, spool_dir) == -1) {
		snprintf(err, errlen, "%s: %s", d.spool_local, strerror(errno));
		return -1;
	}
	if (db_conf_copy(&d.conf, c) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d.rconf = *rc;
	/* The leases this node takes carry the spool's name for it. */
	remote_init(rc, d.spool_msg, spool_node());
	return 0;
}

static void runner_stop(struct service *, bool);

/* After a hand-over: the local runner retires what is finished. */
static void
kick_local(void)
{
	pthread_mutex_lock(&d.lock);
	d.kicked = true;
	pthread_cond_signal(&d.cond);
	pthread_mutex_unlock(&d.lock);
}

static int
runner_start(struct service *s, char *err, size_t errlen)
{
	pthread_mutex_lock(&d.lock);
	d.stopping = false;
	d.running = true;
	d.kicked = true;	/* look at once: mail may be waiting */
	d.svc = s;
	pthread_mutex_unlock(&d.lock);
	if ((errno = pthread_create(&d.thread, NULL, runner, NULL)) != 0) {
		snprintf(err, errlen, "delivery thread: %s", strerror(errno));
		d.running = false;
		return -1;
	}
	if (remote_start(&d.conf, kick_local, err, errlen) == -1) {
		runner_stop(s, false);
		return -1;
	}
	return 0;
}

/* The runner finishes the delivery in hand (a transaction), then stops;
 * remote workers give up their hand-overs at once (the mail stays queued). */
static void
runner_stop(struct service *s, bool drain)
{
	(void)s;
	(void)drain;
	remote_stop();
	pthread_mutex_lock(&d.lock);
	if (!d.running) {
		pthread_mutex_unlock(&d.lock);
		return;
	}
	d.stopping = true;
	pthread_cond_signal(&d.cond);
	pthread_mutex_unlock(&d.lock);
	if ((errno = pthread_join(d.thread, NULL)) != 0)
		log_err("delivery thread: join: %s", strerror(errno));
	d.running = false;
}

void
delivery_kick(void)
{
	pthread_mutex_lock(&d.lock);
	d.kicked = true;
	pthread_cond_signal(&d.cond);
	pthread_mutex_unlock(&d.lock);
	remote_kick();
}

void
delivery_fini(void)
{
	runner_stop(NULL, false);
	db_conf_free(&d.conf);
}

const struct service_handler delivery_runner = {
	.start = runner_start,
	.stop = runner_stop,
	.reconfigure = NULL,
};
