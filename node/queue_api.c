/* queue_api: the mail queue through the node's API, for the node's own
 * admin (control socket, all-tenant tokens):
 *
 *   GET    /v1/queue                  QueueList: every queued message
 *   GET    /v1/queue/QID              one message with its recipients
 *   POST   /v1/queue/QID/retry        deliver now (deferred recipients too)
 *   POST   /v1/queue/QID/hold         keep it from delivery
 *   POST   /v1/queue/QID/release      let it be delivered again
 *   DELETE /v1/queue/QID              remove it (the mail is gone: explicit only)
 */
#include "queue_api.h"

#include <ctype.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "delivery.h"
#include "log.h"
#include "loop.h"
#include "spool.h"
#include "yamlw.h"

enum qop { QOP_LIST, QOP_SHOW, QOP_RETRY, QOP_HOLD, QOP_RELEASE, QOP_DELETE };

struct qjob {
	enum qop		 op;
	struct api_request	*r;
	char			 qid[32];
	int			 status;
	struct buf		 out;
};

static char spool_msg_dir[PATH_MAX];

void
queue_api_init(const char *spool_dir)
{
	snprintf(spool_msg_dir, sizeof(spool_msg_dir), "%s/msg", spool_dir);
}

static void
error_doc(struct qjob *j, int status, const char *msg)
{
	j->status = status;
	api_error_doc(&j->out, status, msg);
}

static int
exec(MYSQL *m, const char *sql)
{
	return mysql_real_query(m, sql, strlen(sql)) == 0 ? 0 : -1;
}

static void
write_message(struct yamlw *w, MYSQL_ROW row, MYSQL *m, bool with_rcpts)
{
	yamlw_map(w);
	yamlw_kstr(w, "id", row[0]);
	yamlw_kstr(w, "sender", row[1][0] ? row[1] : "<>");
	yamlw_ku64(w, "size", strtoull(row[2], NULL, 10));
	yamlw_kstr(w, "received", row[3]);
	yamlw_kbool(w, "held", strcmp(row[4], "1") == 0);
	yamlw_ku64(w, "pending", strtoull(row[5], NULL, 10));
	/* The node whose spool holds the file and which alone delivers it. */
	yamlw_kstr(w, "node", row[6][0] ? row[6] : "any");
	if (with_rcpts) {
		char sql[256];
		MYSQL_RES *res;
		MYSQL_ROW r;

		snprintf(sql, sizeof(sql), "SELECT r.address, r.state, r.attempts, r.next_attempt, "
		    "r.last_error, r.mailbox_id IS NOT NULL FROM queue_recipients r JOIN queue_messages m "
		    "ON m.id = r.message_id WHERE m.qid = '%s' ORDER BY r.id", row[0]);
		yamlw_str(w, "recipients");
		yamlw_seq(w);
		if (exec(m, sql) == 0 && (res = mysql_store_result(m)) != NULL) {
			while ((r = mysql_fetch_row(res)) != NULL) {
				yamlw_map(w);
				yamlw_kstr(w, "address", r[0]);
				yamlw_kstr(w, "delivery", strcmp(r[5], "1") == 0 ? "local" : "remote");
				yamlw_kstr(w, "state", r[1]);
				yamlw_ku64(w, "attempts", strtoull(r[2], NULL, 10));
				yamlw_kstr(w, "nextAttempt", r[3]);
				if (r[4][0])
					yamlw_kstr(w, "lastError", r[4]);
				yamlw_map_end(w);
			}
			mysql_free_result(res);
		}
		yamlw_seq_end(w);
	}
	yamlw_map_end(w);
}

#define MSG_COLUMNS "SELECT m.qid, m.sender, m.size, m.received_at, m.held, " \
	"(SELECT COUNT(*) FROM queue_recipients r WHERE r.message_id = m.id AND " \
	"r.state IN ('queued', 'deferred')), m.spool FROM queue_messages m"

static int
qjob_run(MYSQL *m, void *arg)
{
	struct qjob *j = arg;
	struct yamlw w;
	MYSQL_RES *res;
	MYSQL_ROW row;
	char sql[512];

	j->status = 200;
	switch (j->op) {
	case QOP_LIST:
		if (exec(m, MSG_COLUMNS " ORDER BY m.id LIMIT 10000") == -1 ||
		    (res = mysql_store_result(m)) == NULL)
			return -1;
		yamlw_begin(&w, &j->out);
		yamlw_doc(&w);
		yamlw_map(&w);
		yamlw_kstr(&w, "apiVersion", "mailnode/v1");
		yamlw_kstr(&w, "kind", "QueueList");
		yamlw_str(&w, "items");
		yamlw_seq(&w);
		while ((row = mysql_fetch_row(res)) != NULL)
			write_message(&w, row, m, false);
		yamlw_seq_end(&w);
		yamlw_map_end(&w);
		mysql_free_result(res);
		(void)yamlw_end(&w);
		return 0;
	default:
		break;
	}
	/* One message: qid is checked to be [0-9A-Z]{26} before we get here. */
	snprintf(sql, sizeof(sql), MSG_COLUMNS " WHERE m.qid = '%s'", j->qid);
	if (exec(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return -1;
	if ((row = mysql_fetch_row(res)) == NULL) {
		mysql_free_result(res);
		error_doc(j, 404, "no queued message with that id");
		return 0;
	}
	switch (j->op) {
	case QOP_RETRY:
		snprintf(sql, sizeof(sql), "UPDATE queue_recipients r JOIN queue_messages m ON "
		    "m.id = r.message_id SET r.next_attempt = NOW(), r.state = IF(r.state = 'deferred', "
		    "'queued', r.state) WHERE m.qid = '%s' AND r.state IN ('queued', 'deferred')", j->qid);
		break;
	case QOP_HOLD:
	case QOP_RELEASE:
		snprintf(sql, sizeof(sql), "UPDATE queue_messages SET held = %s WHERE qid = '%s'",
		    j->op == QOP_HOLD ? "TRUE" : "FALSE", j->qid);
		break;
	case QOP_DELETE:
		snprintf(sql, sizeof(sql), "DELETE FROM queue_messages WHERE qid = '%s'", j->qid);
		break;
	default:
		sql[0] = '\0';
		break;
	}
	if (sql[0] && exec(m, sql) == -1) {
		mysql_free_result(res);
		return -1;
	}
	if (j->op == QOP_DELETE) {
		char path[PATH_MAX + 40];

		/* The row went first: a file without a row is swept at start. */
		snprintf(path, sizeof(path), "%s/%s", spool_msg_dir, j->qid);
		(void)unlink(path);
		log_info("queue: message %s deleted by the admin", j->qid);
	}
	mysql_free_result(res);
	snprintf(sql, sizeof(sql), MSG_COLUMNS " WHERE m.qid = '%s'", j->qid);
	yamlw_begin(&w, &j->out);
	yamlw_doc(&w);
	yamlw_map(&w);
	yamlw_kstr(&w, "apiVersion", "mailnode/v1");
	yamlw_kstr(&w, "kind", j->op == QOP_DELETE ? "QueueDeleted" : "QueueMessage");
	if (j->op == QOP_DELETE)
		yamlw_kstr(&w, "id", j->qid);
	else if (exec(m, sql) == 0 && (res = mysql_store_result(m)) != NULL) {
		if ((row = mysql_fetch_row(res)) != NULL) {
			yamlw_str(&w, "message");
			write_message(&w, row, m, true);
		}
		mysql_free_result(res);
	}
	yamlw_map_end(&w);
	(void)yamlw_end(&w);
	return 0;
}

static void
qjob_done(void *arg, int result)
{
	struct qjob *j = arg;
	struct api_request *r = j->r;

	if (result == -1) {
		api_reply_error(r, 503, "database unavailable; try again");
	} else {
		if (j->op == QOP_RETRY || j->op == QOP_RELEASE)
			delivery_kick();
		buf_reset(&r->out);
		buf_append(&r->out, buf_data(&j->out), buf_len(&j->out));
		api_reply(r, j->status);
	}
	buf_free(&j->out);
	free(j);
}

static bool
valid_qid(const char *s, size_t n)
{
	size_t i;

	if (n != 26)
		return false;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !isupper((unsigned char)s[i]))
			return false;
	return true;
}

bool
queue_api_handle(struct api_request *r)
{
	const char *p = r->path, *rest, *slash;
	struct qjob *j;
	size_t n;

	if (strcmp(p, "/v1/queue") != 0 && strncmp(p, "/v1/queue/", 10) != 0)
		return false;
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		api_reply_error(r, 500, "out of memory");
		return true;
	}
	j->r = r;
	buf_init(&j->out, 0);
	if (strcmp(p, "/v1/queue") == 0) {
		if (strcmp(r->method, "GET") != 0)
			goto method;
		j->op = QOP_LIST;
		goto submit;
	}
	rest = p + 10;
	slash = strchr(rest, '/');
	n = slash ? (size_t)(slash - rest) : strlen(rest);
	if (!valid_qid(rest, n)) {
		buf_free(&j->out);
		free(j);
		api_reply_error(r, 404, "no queued message with that id");
		return true;
	}
	memcpy(j->qid, rest, n);
	if (slash == NULL && strcmp(r->method, "GET") == 0)
		j->op = QOP_SHOW;
	else if (slash == NULL && strcmp(r->method, "DELETE") == 0)
		j->op = QOP_DELETE;
	else if (slash && strcmp(r->method, "POST") == 0 && strcmp(slash, "/retry") == 0)
		j->op = QOP_RETRY;
	else if (slash && strcmp(r->method, "POST") == 0 && strcmp(slash, "/hold") == 0)
		j->op = QOP_HOLD;
	else if (slash && strcmp(r->method, "POST") == 0 && strcmp(slash, "/release") == 0)
		j->op = QOP_RELEASE;
	else
		goto method;
submit:
	if (db_submit(qjob_run, qjob_done, j) == -1) {
		buf_free(&j->out);
		free(j);
		api_reply_error(r, 503, "database workers unavailable");
	}
	return true;
method:
	buf_free(&j->out);
	free(j);
	api_reply_error(r, 405, "%s is not allowed on %s", r->method, p);
	return true;
}

/* Figures for status, kept fresh by a timer. */
static atomic_uint_fast64_t	fig_depth, fig_bytes, fig_age;
static atomic_bool		fig_known, fig_busy;
static struct loop_timer	fig_timer;
static unsigned			fig_interval;

static int
figures_job(MYSQL *m, void *arg)
{
	uint64_t d, b, a;
	char err[256];

	(void)arg;
	if (spool_stats(m, &d, &b, &a, err, sizeof(err)) == -1)
		return -1;
	atomic_store(&fig_depth, d);
	atomic_store(&fig_bytes, b);
	atomic_store(&fig_age, a);
	atomic_store(&fig_known, true);
	return 0;
}

static void
figures_done(void *arg, int result)
{
	(void)arg;
	(void)result;
	atomic_store(&fig_busy, false);
}

static void
figures_tick(struct loop_timer *t)
{
	if (!atomic_exchange(&fig_busy, true) && db_submit(figures_job, figures_done, NULL) == -1)
		atomic_store(&fig_busy, false);
	loop_timer_start(loop_current(), t, fig_interval);
}

void
queue_api_watch(unsigned interval_ms)
{
	fig_interval = interval_ms;
	fig_timer.cb = figures_tick;
	loop_timer_start(loop_current(), &fig_timer, 1);
}

bool
queue_api_figures(uint64_t *depth, uint64_t *bytes, uint64_t *oldest_age)
{
	*depth = atomic_load(&fig_depth);
	*bytes = atomic_load(&fig_bytes);
	*oldest_age = atomic_load(&fig_age);
	return atomic_load(&fig_known);
}
