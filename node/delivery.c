/* delivery: one runner thread with its own MariaDB connection. Exactly once
 * comes from the transaction: a link made twice (after a crash) is the same
 * file, and a recipient marked delivered is never taken again. */
#include "delivery.h"

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

#include "autoreply.h"
#include "buf.h"
#include "log.h"
#include "store.h"

#define DELIVERY_BATCH		100
#define DELIVERY_POLL_MS	5000
#define DELIVERY_RETRY_S	300	/* a failed local delivery is tried again after this */

static struct {
	char		 spool_msg[PATH_MAX];
	char		 mail_root[PATH_MAX];
	struct db_conf	 conf;
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	bool		 running, stopping, kicked;
	struct service	*svc;
} d = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

struct due {
	uint64_t	 rcpt_id, message_id, mailbox_id, size;
	char		 qid[32];
	char		 sender[520];
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

/* The body in the mailbox's directory: a hard link to the spool file (one
 * copy on disk however many local recipients), or a copy across devices. */
static int
place_body(const struct due *x, char *rel, size_t rellen, char *err, size_t errlen)
{
	char dir[PATH_MAX], src[PATH_MAX], dst[PATH_MAX];

	if (snprintf(rel, rellen, "%" PRIu64 "/%s", x->mailbox_id, x->qid) >= (int)rellen ||
	    snprintf(dir, sizeof(dir), "%s/%" PRIu64, d.mail_root, x->mailbox_id) >= (int)sizeof(dir) ||
	    snprintf(src, sizeof(src), "%s/%s", d.spool_msg, x->qid) >= (int)sizeof(src) ||
	    snprintf(dst, sizeof(dst), "%s/%s", d.mail_root, rel) >= (int)sizeof(dst)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	if (mkdir_fsync(dir, d.mail_root) == -1) {
		snprintf(err, errlen, "mkdir %.300s: %s", dir, strerror(errno));
		return -1;
	}
	if (link(src, dst) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "link %.300s: %s", dst, strerror(errno));
		return -1;
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

static int
deliver_one(MYSQL *m, const struct due *x, char *err, size_t errlen)
{
	char rel[128], sql[2600], esc_rel[260], esc_sender[1100];
	MYSQL_RES *res;
	MYSQL_ROW row;
	uint64_t folder, modseq;
	unsigned uid;

	if (place_body(x, rel, sizeof(rel), err, errlen) == -1)
		return -1;
	mysql_real_escape_string(m, esc_rel, rel, strlen(rel));
	mysql_real_escape_string(m, esc_sender, x->sender, strnlen(x->sender, 512));
	if (q(m, "START TRANSACTION") == -1)
		goto sqlfail;
	/* A mailbox made before folders existed gets its INBOX now. */
	snprintf(sql, sizeof(sql), "INSERT IGNORE INTO folders (mailbox_id, name, uidvalidity) "
	    "VALUES (%" PRIu64 ", 'INBOX', UNIX_TIMESTAMP())", x->mailbox_id);
	if (q(m, sql) == -1)
		goto sqlfail;
	snprintf(sql, sizeof(sql), "SELECT id, uidnext, highestmodseq FROM folders WHERE mailbox_id = %" PRIu64
	    " AND name = 'INBOX' FOR UPDATE", x->mailbox_id);
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
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
	    folder, uid, esc_rel, x->size, esc_sender, x->qid, modseq);
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
		    ", messages = messages + 1 WHERE id = %" PRIu64, x->size, x->mailbox_id);
		if (q(m, sql) == -1)
			goto sqlfail;
	}
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET state = 'delivered', attempts = "
	    "attempts + 1, last_error = '' WHERE id = %" PRIu64, x->rcpt_id);
	if (q(m, sql) == -1 || q(m, "COMMIT") == -1)
		goto sqlfail;
	cache_structure(m, folder, uid, rel);
	autoreply_after_delivery(m, x->mailbox_id, x->sender, d.mail_root, rel);	/* autoreply branch */
	return 0;
sqlfail:
	snprintf(err, errlen, "%s", mysql_error(m));
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
	char path[PATH_MAX + 64], sql[200];

	if (q(m, "SELECT m.id, m.qid FROM queue_messages m WHERE NOT EXISTS (SELECT 1 FROM "
	    "queue_recipients r WHERE r.message_id = m.id AND r.state IN ('queued', 'deferred')) "
	    "LIMIT 500") == -1 || (res = mysql_store_result(m)) == NULL)
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
	}
	mysql_free_result(res);
}

static size_t
fetch_due(MYSQL *m, struct due *out, size_t max)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char sql[600];
	size_t n = 0;

	snprintf(sql, sizeof(sql), "SELECT r.id, m.id, r.mailbox_id, m.size, m.qid, m.sender "
	    "FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id "
	    "WHERE r.state IN ('queued', 'deferred') AND r.mailbox_id IS NOT NULL AND m.held = FALSE "
	    "AND r.next_attempt <= NOW() ORDER BY r.id LIMIT %zu", max);
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return 0;
	while ((row = mysql_fetch_row(res)) != NULL && n < max) {
		out[n].rcpt_id = strtoull(row[0], NULL, 10);
		out[n].message_id = strtoull(row[1], NULL, 10);
		out[n].mailbox_id = strtoull(row[2], NULL, 10);
		out[n].size = strtoull(row[3], NULL, 10);
		snprintf(out[n].qid, sizeof(out[n].qid), "%s", row[4]);
		snprintf(out[n].sender, sizeof(out[n].sender), "%s", row[5]);
		n++;
	}
	mysql_free_result(res);
	return n;
}

static void
defer(MYSQL *m, const struct due *x, const char *why)
{
	char sql[1400], esc[1100];

	mysql_real_escape_string(m, esc, why, strnlen(why, 500));
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET state = 'deferred', attempts = "
	    "attempts + 1, next_attempt = NOW() + INTERVAL %d SECOND, last_error = '%s' "
	    "WHERE id = %" PRIu64, DELIVERY_RETRY_S, esc, x->rcpt_id);
	if (q(m, sql) == -1)
		log_err("delivery: cannot defer %s: %s", x->qid, mysql_error(m));
}

static void *
runner(void *unused)
{
	struct due *batch = calloc(DELIVERY_BATCH, sizeof(*batch));
	MYSQL *m = NULL;
	char err[512];

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
		do {
			n = fetch_due(m, batch, DELIVERY_BATCH);
			for (i = 0; i < n; i++) {
				if (deliver_one(m, &batch[i], err, sizeof(err)) == -1) {
					log_err("delivery of %s to mailbox %" PRIu64 " deferred: %s",
					    batch[i].qid, batch[i].mailbox_id, err);
					defer(m, &batch[i], err);
				} else
					log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = "spool" },
					    "delivered %s to mailbox %" PRIu64, batch[i].qid, batch[i].mailbox_id);
			}
			/* Remote recipients: handed to other servers (blocking, here). */
			n += remote_deliver_due(m);
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
	    snprintf(d.mail_root, sizeof(d.mail_root), "%s", mail_root) >= (int)sizeof(d.mail_root)) {
		snprintf(err, errlen, "mail root path too long");
		return -1;
	}
	if (mkdir_fsync(d.mail_root, NULL) == -1) {
		snprintf(err, errlen, "mail root %s: %s", d.mail_root, strerror(errno));
		return -1;
	}
	if (db_conf_copy(&d.conf, c) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	remote_init(rc, d.spool_msg);
	return 0;
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
	return 0;
}

/* The runner finishes the delivery in hand (a transaction), then stops. */
static void
runner_stop(struct service *s, bool drain)
{
	(void)s;
	(void)drain;
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
