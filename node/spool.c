/* spool: durable acceptance of messages. Sessions write a body to
 * spool/tmp/<random>; spool_msg_commit hands it to one commit thread, which
 * takes everything pending as a group: fdatasync and rename each file to
 * spool/msg/<qid>, one fsync of msg/, one MariaDB transaction for all the
 * rows, then done() on each session's loop. A message is acknowledged only
 * after both its file and its rows are durable, so recovery at start-up can
 * remove whatever was never acknowledged: everything in tmp/, and files in
 * msg/ whose row never committed. */
#include "spool.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "utf8.h"

#define QID_LEN		26
#define TMPNAME_LEN	32		/* hex of 16 random bytes */
#define SQL_CHUNK	(1024 * 1024)	/* well under any max_allowed_packet */
#define IN_CHUNK	1000		/* qids per IN (...) list */

struct spool_msg {
	struct spool_msg	*next;
	int			 fd;		/* -1 once closed */
	char			 tmpname[TMPNAME_LEN + 1];
	char			 qid[QID_LEN + 1];
	bool			 renamed;	/* the file is msg/<qid> now */
	bool			 broken;	/* a write failed; err says why */
	uint64_t		 size;
	uint64_t		 id;		/* queue_messages.id */
	struct spool_envelope	 env;		/* rcpts owned */
	spool_done_fn		 done;
	void			*arg;
	struct loop		*origin;
	int			 ok;
	char			 err[256];
};

static struct {
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct spool_msg	*head, *tail;	/* pending commits */
	bool			 started;	/* the thread exists */
	bool			 running;	/* it still takes commits */
	bool			 stopping;
	bool			 db_down;	/* logged once per outage */
	pthread_t		 thread;
	int			 dir_fd, tmp_fd, msg_fd;
	char			 dir[PATH_MAX];
	char			 node[84];	/* spool_node() */
	char			 mine[120];	/* spool_mine_sql() */
	struct db_conf		 conf;
	MYSQL			*db;		/* the commit thread's */
} sp = {
	.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
	.dir_fd = -1, .tmp_fd = -1, .msg_fd = -1,
	.mine = "(m.spool = '')",
};

/* Not in the header: read by the unit test through extern declarations. */
_Atomic uint64_t spool_stat_groups;
_Atomic uint64_t spool_stat_msgs;

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static int
fill_random(void *p, size_t n)
{
	ssize_t r;

	do
		r = getrandom(p, n, 0);
	while (r == -1 && errno == EINTR);
	if (r != (ssize_t)n) {
		if (r >= 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/* 48-bit ms timestamp + 80 random bits in Crockford base32 (as ULID):
 * names sort by acceptance time and never collide in practice. */
static int
make_qid(char out[QID_LEN + 1])
{
	unsigned char b[16];
	struct timespec ts;
	uint64_t ms;
	int i, k;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return -1;
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	if (fill_random(b + 6, 10) == -1)
		return -1;
	/* 26 digits of 5 bits cover 130 bits: the first has 2 leading zeros. */
	for (i = 0; i < QID_LEN; i++) {
		unsigned v = 0;

		for (k = 0; k < 5; k++) {
			int pos = i * 5 + k - 2;

			v <<= 1;
			if (pos >= 0)
				v |= (b[pos / 8] >> (7 - pos % 8)) & 1u;
		}
		out[i] = crockford[v];
	}
	out[QID_LEN] = '\0';
	return 0;
}

static bool
is_qid(const char *s)
{
	size_t i;

	for (i = 0; i < QID_LEN; i++)
		if (s[i] == '\0' || strchr(crockford, s[i]) == NULL)
			return false;
	return s[QID_LEN] == '\0';
}

/* Append s as a quoted SQL string. Invalid UTF-8 becomes '?' and the value
 * is cut (at a character boundary) to the column's size: in strict mode one
 * bad value would otherwise fail the whole group's transaction. */
static int
put_str(struct buf *b, MYSQL *db, const char *s, size_t cap, size_t colmax)
{
	char clean[600], esc[2 * sizeof(clean) + 1];
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strnlen(s, cap), i = 0, n = 0;

	if (colmax >= sizeof(clean))
		colmax = sizeof(clean) - 1;
	while (i < len) {
		size_t k = utf8_seq(p + i, len - i);

		if (k == 0) {
			if (n + 1 > colmax)
				break;
			clean[n++] = '?';
			i++;
			continue;
		}
		if (n + k > colmax)
			break;
		memcpy(clean + n, p + i, k);
		n += k;
		i += k;
	}
	clean[n] = '\0';
	if (mysql_real_escape_string(db, esc, clean, (unsigned long)n) == (unsigned long)-1)
		return -1;
	return buf_printf(b, "'%s'", esc);
}

/* Completion on the loop that committed (or here without one). */
static void
msg_complete(void *arg)
{
	struct spool_msg *m = arg;

	m->done(m->arg, m->ok, m->ok ? m->qid : NULL, m->ok ? NULL : m->err);
	free(m->env.rcpts);
	free(m);
}

static void
msg_finish(struct spool_msg *m)
{
	if (m->origin == NULL || loop_post(m->origin, msg_complete, m) == -1)
		msg_complete(m);
}

/* Close and remove the message's file wherever it is now. */
static void
msg_remove_file(struct spool_msg *m)
{
	int r;

	if (m->fd != -1 && close(m->fd) == -1)
		log_warn("spool: close %s: %s", m->tmpname, strerror(errno));
	m->fd = -1;
	if (m->renamed)
		r = unlinkat(sp.msg_fd, m->qid, 0);
	else
		r = unlinkat(sp.tmp_fd, m->tmpname, 0);
	if (r == -1 && errno != ENOENT)
		log_warn("spool: removing %s/%s/%s: %s", sp.dir, m->renamed ? "msg" : "tmp",
		    m->renamed ? m->qid : m->tmpname, strerror(errno));
}

/* Fail m: its file is removed unless keep (an outcome we cannot know). */
static void
msg_fail(struct spool_msg *m, const char *err, bool keep)
{
	m->ok = 0;
	if (m->err[0] == '\0' && err != NULL)
		snprintf(m->err, sizeof(m->err), "%s", err);
	if (!keep)
		msg_remove_file(m);
	msg_finish(m);
}

struct spool_msg *
spool_msg_new(char *err, size_t errlen)
{
	static const char hex[] = "0123456789abcdef";
	struct spool_msg *m;
	unsigned char rnd[TMPNAME_LEN / 2];
	int i, j;

	if (sp.tmp_fd == -1) {
		snprintf(err, errlen, "spool not started");
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->fd = -1;
	/* O_EXCL: a name clash (or a planted link) is retried, never shared. */
	for (i = 0; i < 4 && m->fd == -1; i++) {
		if (fill_random(rnd, sizeof(rnd)) == -1)
			goto fail;
		for (j = 0; j < (int)sizeof(rnd); j++) {
			m->tmpname[2 * j] = hex[rnd[j] >> 4];
			m->tmpname[2 * j + 1] = hex[rnd[j] & 15];
		}
		m->tmpname[TMPNAME_LEN] = '\0';
		m->fd = openat(sp.tmp_fd, m->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd == -1 && errno != EEXIST)
			goto fail;
	}
	if (m->fd == -1)
		goto fail;
	return m;
fail:
	snprintf(err, errlen, "spool file in %s/tmp: %s", sp.dir, strerror(errno));
	free(m);
	return NULL;
}

int
spool_msg_write(struct spool_msg *m, const void *data, size_t n)
{
	const char *p = data;

	if (m->broken) {
		errno = EIO;
		return -1;
	}
	while (n > 0) {
		ssize_t w = write(m->fd, p, n);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			m->broken = true;
			snprintf(m->err, sizeof(m->err), "writing spool file: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
		m->size += (uint64_t)w;
	}
	return 0;
}

uint64_t
spool_msg_size(const struct spool_msg *m)
{
	return m->size;
}

void
spool_msg_abort(struct spool_msg *m)
{
	if (m == NULL)
		return;
	msg_remove_file(m);
	free(m);
}

void
spool_msg_commit(struct spool_msg *m, const struct spool_envelope *env, spool_done_fn done,
    void *arg)
{
	m->done = done;
	m->arg = arg;
	/* Outside a loop thread (tests, tools) done runs on the commit thread. */
	m->origin = loop_current();
	m->env = *env;
	m->env.rcpts = NULL;
	m->env.nrcpts = 0;
	if (m->broken)
		goto fail;
	if (env->nrcpts == 0) {
		snprintf(m->err, sizeof(m->err), "no recipients");
		goto fail;
	}
	if ((m->env.rcpts = calloc(env->nrcpts, sizeof(*env->rcpts))) == NULL) {
		snprintf(m->err, sizeof(m->err), "out of memory");
		goto fail;
	}
	memcpy(m->env.rcpts, env->rcpts, env->nrcpts * sizeof(*env->rcpts));
	m->env.nrcpts = env->nrcpts;
	if (make_qid(m->qid) == -1) {
		snprintf(m->err, sizeof(m->err), "queue id: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_lock(&sp.lock);
	if (!sp.running) {
		pthread_mutex_unlock(&sp.lock);
		snprintf(m->err, sizeof(m->err), "spool not running");
		goto fail;
	}
	m->next = NULL;
	if (sp.tail)
		sp.tail->next = m;
	else
		sp.head = m;
	sp.tail = m;
	pthread_cond_signal(&sp.cond);
	pthread_mutex_unlock(&sp.lock);
	return;
fail:
	msg_fail(m, NULL, false);
}

/* MariaDB's client-side errors (2000-2999): the connection broke, so the
 * server may or may not have run what was sent last. */
static bool
client_error(unsigned e)
{
	return e >= 2000 && e < 3000;
}

static int
query(MYSQL *db, const char *sql, size_t len, char *err, size_t errlen)
{
	if (len == 0)
		len = strlen(sql);
	if (mysql_real_query(db, sql, (unsigned long)len) != 0) {
		snprintf(err, errlen, "%s (MariaDB error %u)", mysql_error(db), mysql_errno(db));
		return -1;
	}
	return 0;
}

/* A live connection for the group, reconnecting after the server went away. */
static int
db_ready(char *err, size_t errlen)
{
	if (sp.db != NULL && mysql_ping(sp.db) != 0) {
		mysql_close(sp.db);
		sp.db = NULL;
	}
	if (sp.db == NULL && (sp.db = db_connect(&sp.conf, false, err, errlen)) == NULL) {
		if (!sp.db_down)
			log_err("spool: database unavailable: %s", err);
		sp.db_down = true;
		return -1;
	}
	if (sp.db_down)
		log_info("spool: database available again");
	sp.db_down = false;
	return 0;
}

static int
cmp_msg_qid(const void *a, const void *b)
{
	const struct spool_msg *const *x = a, *const *y = b;

	return strcmp((*x)->qid, (*y)->qid);
}

static int
cmp_key_qid(const void *key, const void *elem)
{
	const struct spool_msg *const *y = elem;

	return strcmp(key, (*y)->qid);
}

/* "'Q1','Q2',..." for v[from..to): qids are base32, nothing to escape. */
static int
put_qids(struct buf *b, struct spool_msg **v, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++)
		if (buf_printf(b, "%s'%s'", i > from ? "," : "", v[i]->qid) == -1)
			return -1;
	return 0;
}

static int
put_msg_row(struct buf *b, MYSQL *db, const struct spool_msg *m)
{
	const struct spool_envelope *e = &m->env;

	if (buf_printf(b, "('%s',%" PRIu64 ",", m->qid, m->size) == -1 ||
	    put_str(b, db, e->sender, sizeof(e->sender), 512) == -1)
		return -1;
	if (e->tenant_id != 0 ? buf_printf(b, ",%" PRIu64 ",", e->tenant_id) : buf_puts(b, ",NULL,"))
		return -1;
	if (put_str(b, db, e->helo, sizeof(e->helo), 255) == -1 || buf_puts(b, ",") == -1 ||
	    put_str(b, db, e->peer, sizeof(e->peer), 80) == -1 || buf_puts(b, ",") == -1 ||
	    put_str(b, db, e->envid, sizeof(e->envid), 100) == -1 ||
	    buf_printf(b, ",%d,%d,'%s')", e->ret_hdrs ? 1 : 0, e->smtputf8 ? 1 : 0, sp.node) == -1)
		return -1;
	return 0;
}

static int
put_rcpt_row(struct buf *b, MYSQL *db, uint64_t message_id, const struct spool_rcpt *r)
{
	if (buf_printf(b, "(%" PRIu64 ",", message_id) == -1 ||
	    put_str(b, db, r->address, sizeof(r->address), 512) == -1)
		return -1;
	if (r->mailbox_id != 0 ? buf_printf(b, ",%" PRIu64 ",", r->mailbox_id) : buf_puts(b, ",NULL,"))
		return -1;
	/* notify is TINYINT UNSIGNED: DSN bits fit, anything else is dropped. */
	if (buf_printf(b, "%u,", r->notify & 0xffu) == -1 ||
	    put_str(b, db, r->orcpt, sizeof(r->orcpt), 264) == -1 || buf_puts(b, ")") == -1)
		return -1;
	return 0;
}

/* Fill each message's id from its row (read inside the transaction, so it
 * does not depend on auto-increment lock modes or Galera's offsets). v must
 * be sorted by qid. */
static int
read_ids(MYSQL *db, struct spool_msg **v, size_t n, struct buf *b, char *err, size_t errlen)
{
	size_t from, i;

	for (from = 0; from < n; from += IN_CHUNK) {
		size_t to = n - from > IN_CHUNK ? from + IN_CHUNK : n;
		MYSQL_RES *res;
		MYSQL_ROW row;

		buf_reset(b);
		if (buf_puts(b, "SELECT qid, id FROM queue_messages WHERE qid IN (") == -1 ||
		    put_qids(b, v, from, to) == -1 || buf_puts(b, ")") == -1) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (query(db, buf_data(b), buf_len(b), err, errlen) == -1)
			return -1;
		if ((res = mysql_store_result(db)) == NULL) {
			snprintf(err, errlen, "%s (MariaDB error %u)", mysql_error(db), mysql_errno(db));
			return -1;
		}
		while ((row = mysql_fetch_row(res)) != NULL) {
			struct spool_msg **hit;

			if (row[0] == NULL || row[1] == NULL)
				continue;
			hit = bsearch(row[0], v + from, to - from, sizeof(*v), cmp_key_qid);
			if (hit != NULL)
				(*hit)->id = strtoull(row[1], NULL, 10);
		}
		mysql_free_result(res);
	}
	for (i = 0; i < n; i++)
		if (v[i]->id == 0) {
			snprintf(err, errlen, "queue row of %s missing after insert", v[i]->qid);
			return -1;
		}
	return 0;
}

/* Run the statement in b when it is big enough or the last row is in. */
static int
flush_insert(MYSQL *db, struct buf *b, bool last, char *err, size_t errlen)
{
	if (buf_len(b) == 0 || (!last && buf_len(b) < SQL_CHUNK))
		return 0;
	if (query(db, buf_data(b), buf_len(b), err, errlen) == -1)
		return -1;
	buf_reset(b);
	return 0;
}

/* One transaction for the whole group. *ambiguous is set when COMMIT was
 * sent but its answer lost: the rows may be there or not. */
static int
insert_group(MYSQL *db, struct spool_msg **v, size_t n, bool *ambiguous, char *err, size_t errlen)
{
	static const char msg_head[] = "INSERT INTO queue_messages "
	    "(qid, size, sender, tenant_id, helo, peer, envid, ret_hdrs, smtputf8, spool) VALUES ";
	static const char rcpt_head[] = "INSERT INTO queue_recipients "
	    "(message_id, address, mailbox_id, notify, orcpt) VALUES ";
	struct buf b;
	size_t i, j;

	*ambiguous = false;
	buf_init(&b, 0);
	if (query(db, "START TRANSACTION", 0, err, errlen) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		if ((buf_len(&b) == 0 ? buf_puts(&b, msg_head) : buf_puts(&b, ",")) == -1 ||
		    put_msg_row(&b, db, v[i]) == -1)
			goto oom;
		if (flush_insert(db, &b, i + 1 == n, err, errlen) == -1)
			goto fail;
	}
	qsort(v, n, sizeof(*v), cmp_msg_qid);
	if (read_ids(db, v, n, &b, err, errlen) == -1)
		goto fail;
	buf_reset(&b);
	for (i = 0; i < n; i++)
		for (j = 0; j < v[i]->env.nrcpts; j++) {
			bool last = i + 1 == n && j + 1 == v[i]->env.nrcpts;

			if ((buf_len(&b) == 0 ? buf_puts(&b, rcpt_head) : buf_puts(&b, ",")) == -1 ||
			    put_rcpt_row(&b, db, v[i]->id, &v[i]->env.rcpts[j]) == -1)
				goto oom;
			if (flush_insert(db, &b, last, err, errlen) == -1)
				goto fail;
		}
	if (query(db, "COMMIT", 0, err, errlen) == -1) {
		*ambiguous = client_error(mysql_errno(db));
		goto fail;
	}
	buf_free(&b);
	return 0;
oom:
	snprintf(err, errlen, "out of memory building the queue insert");
fail:
	buf_free(&b);
	return -1;
}

/* After an ambiguous COMMIT: 1 if every row of the group is there. */
static int
verify_group(struct spool_msg **v, size_t n)
{
	char err[256];
	struct buf b;
	size_t from, found = 0;
	int rc = -1;

	if (db_ready(err, sizeof(err)) == -1)
		return -1;
	buf_init(&b, 0);
	for (from = 0; from < n; from += IN_CHUNK) {
		size_t to = n - from > IN_CHUNK ? from + IN_CHUNK : n;
		MYSQL_RES *res;
		MYSQL_ROW row;

		buf_reset(&b);
		if (buf_puts(&b, "SELECT COUNT(*) FROM queue_messages WHERE qid IN (") == -1 ||
		    put_qids(&b, v, from, to) == -1 || buf_puts(&b, ")") == -1)
			goto fail;
		if (query(sp.db, buf_data(&b), buf_len(&b), err, sizeof(err)) == -1 ||
		    (res = mysql_store_result(sp.db)) == NULL)
			goto fail;
		if ((row = mysql_fetch_row(res)) != NULL && row[0] != NULL)
			found += strtoull(row[0], NULL, 10);
		mysql_free_result(res);
	}
	rc = found == n ? 1 : 0;
fail:
	buf_free(&b);
	return rc;
}

/* Make a group durable: files first (data, rename, directory), then rows. */
static void
spool_group(struct spool_msg *list)
{
	struct spool_msg **v = NULL, *m, *next;
	size_t n = 0, ngood = 0, i;
	char err[512] = "";
	bool ambiguous = false;

	for (m = list; m != NULL; m = m->next)
		n++;
	if ((v = calloc(n, sizeof(*v))) == NULL) {
		for (m = list; m != NULL; m = next) {
			next = m->next;
			msg_fail(m, "out of memory", false);
		}
		return;
	}
	for (m = list, i = 0; m != NULL; m = m->next)
		v[i++] = m;
	/* With the database away nothing could commit: skip the disk flushes. */
	if (db_ready(err, sizeof(err)) == -1) {
		ngood = n;
		goto fail;
	}

	/* Each file on its own: a failure here is that message's alone. */
	for (i = 0; i < n; i++) {
		m = v[i];
		if (fdatasync(m->fd) == -1) {
			snprintf(m->err, sizeof(m->err), "fdatasync: %s", strerror(errno));
			msg_fail(m, NULL, false);
			continue;
		}
		if (close(m->fd) == -1) {
			m->fd = -1;
			snprintf(m->err, sizeof(m->err), "close: %s", strerror(errno));
			msg_fail(m, NULL, false);
			continue;
		}
		m->fd = -1;
		if (renameat2(sp.tmp_fd, m->tmpname, sp.msg_fd, m->qid, RENAME_NOREPLACE) == -1 &&
		    ((errno != EINVAL && errno != ENOSYS) ||
		    renameat(sp.tmp_fd, m->tmpname, sp.msg_fd, m->qid) == -1)) {
			snprintf(m->err, sizeof(m->err), "rename to msg/%s: %s", m->qid, strerror(errno));
			msg_fail(m, NULL, false);
			continue;
		}
		m->renamed = true;
		v[ngood++] = m;
	}
	if (ngood == 0)
		goto out;
	/* One directory flush makes every rename of the group durable. */
	if (fsync(sp.msg_fd) == -1) {
		snprintf(err, sizeof(err), "fsync of the msg directory: %s", strerror(errno));
		goto fail;
	}
	if (insert_group(sp.db, v, ngood, &ambiguous, err, sizeof(err)) == -1) {
		if (ambiguous) {
			/* Answer lost: believe only rows we can see. Otherwise
			 * keep the files (a duplicate beats a loss); start-up
			 * recovery removes those whose rows never committed. */
			mysql_close(sp.db);
			sp.db = NULL;
			if (verify_group(v, ngood) == 1)
				goto ok;
			log_warn("spool: outcome of a commit of %zu messages unknown (%s); "
			    "files kept for recovery", ngood, err);
		} else if (mysql_rollback(sp.db) != 0) {
			mysql_close(sp.db);
			sp.db = NULL;
		}
		goto fail;
	}
ok:
	atomic_fetch_add(&spool_stat_groups, 1);
	atomic_fetch_add(&spool_stat_msgs, ngood);
	log_debug("spool: group of %zu committed (%" PRIu64 " groups, %" PRIu64 " messages in all)",
	    ngood, atomic_load(&spool_stat_groups), atomic_load(&spool_stat_msgs));
	for (i = 0; i < ngood; i++) {
		m = v[i];
		log_debug("spool: %s accepted, %" PRIu64 " bytes, %zu recipients",
		    m->qid, m->size, m->env.nrcpts);
		m->ok = 1;
		msg_finish(m);
	}
	goto out;
fail:
	log_warn("spool: %zu messages not accepted: %s", ngood, err);
	for (i = 0; i < ngood; i++)
		msg_fail(v[i], err, ambiguous);
out:
	free(v);
}

static void *
spool_thread(void *unused)
{
	sigset_t all;

	(void)unused;
	/* Signals are the main thread's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (mysql_thread_init() != 0)
		log_warn("spool: mysql_thread_init failed");
	for (;;) {
		struct spool_msg *group;

		pthread_mutex_lock(&sp.lock);
		while (sp.head == NULL && !sp.stopping)
			pthread_cond_wait(&sp.cond, &sp.lock);
		/* Everything that piled up while the last group flushed. */
		group = sp.head;
		sp.head = sp.tail = NULL;
		if (group == NULL)
			sp.running = false;
		pthread_mutex_unlock(&sp.lock);
		if (group == NULL)
			break;
		spool_group(group);
	}
	mysql_thread_end();
	return NULL;
}

/* Names in a directory (not . and ..); *names and each name malloc'ed. */
static int
list_dir(int dfd, char ***names, size_t *n)
{
	char **list = NULL, **grown;
	size_t count = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	*names = NULL;
	*n = 0;
	if ((fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 64;
			if ((grown = realloc(list, cap * sizeof(*list))) == NULL)
				goto fail;
			list = grown;
		}
		if ((list[count] = strdup(de->d_name)) == NULL)
			goto fail;
		count++;
		errno = 0;
	}
	if (errno != 0)
		goto fail;
	if (closedir(d) == -1)
		log_warn("spool: closedir: %s", strerror(errno));
	*names = list;
	*n = count;
	return 0;
fail:
	if (errno == 0)
		errno = ENOMEM;
	fd = errno;
	while (count > 0)
		free(list[--count]);
	free(list);
	(void)closedir(d);	/* the error that matters is saved */
	errno = fd;
	return -1;
}

static void
free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Before the thread runs: drop what was never acknowledged, report rows
 * whose file is gone. */
static int
recover(MYSQL *db, char *err, size_t errlen)
{
	char **names = NULL, **keep = NULL;
	size_t n = 0, nkeep = 0, i, from, removed = 0, missing = 0;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	struct buf b;

	buf_init(&b, 0);
	/* tmp/: bodies still being received when the node stopped. */
	if (list_dir(sp.tmp_fd, &names, &n) == -1) {
		snprintf(err, errlen, "reading %s/tmp: %s", sp.dir, strerror(errno));
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (unlinkat(sp.tmp_fd, names[i], 0) == -1) {
			snprintf(err, errlen, "removing %s/tmp/%s: %s", sp.dir, names[i], strerror(errno));
			goto fail;
		}
		removed++;
	}
	/* No directory flush after removals: should one come back after a
	 * crash, the next start removes it again. */
	if (removed > 0)
		log_info("spool: removed %zu unfinished files from %s/tmp", removed, sp.dir);
	free_names(names, n);
	names = NULL;

	/* msg/: a file without its row was renamed but never committed. */
	if (list_dir(sp.msg_fd, &names, &n) == -1) {
		snprintf(err, errlen, "reading %s/msg: %s", sp.dir, strerror(errno));
		goto fail;
	}
	if ((keep = calloc(n + 1, sizeof(*keep))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (!is_qid(names[i])) {
			log_warn("spool: %s/msg/%s is not a queue file; left alone", sp.dir, names[i]);
			continue;
		}
		keep[nkeep++] = names[i];
	}
	qsort(keep, nkeep, sizeof(*keep), cmp_str);
	removed = 0;
	for (from = 0; from < nkeep; from += IN_CHUNK) {
		size_t to = nkeep - from > IN_CHUNK ? from + IN_CHUNK : nkeep;
		bool *found;

		buf_reset(&b);
		if (buf_puts(&b, "SELECT qid FROM queue_messages WHERE qid IN (") == -1) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		for (i = from; i < to; i++)
			if (buf_printf(&b, "%s'%s'", i > from ? "," : "", keep[i]) == -1) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
		if (buf_puts(&b, ")") == -1) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (query(db, buf_data(&b), buf_len(&b), err, errlen) == -1)
			goto fail;
		if ((res = mysql_store_result(db)) == NULL) {
			snprintf(err, errlen, "%s (MariaDB error %u)", mysql_error(db), mysql_errno(db));
			goto fail;
		}
		if ((found = calloc(to - from, sizeof(*found))) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		while ((row = mysql_fetch_row(res)) != NULL) {
			char **hit;

			if (row[0] != NULL &&
			    (hit = bsearch(&row[0], keep + from, to - from, sizeof(*keep), cmp_str)) != NULL)
				found[hit - (keep + from)] = true;
		}
		mysql_free_result(res);
		res = NULL;
		for (i = from; i < to; i++) {
			if (found[i - from])
				continue;
			if (unlinkat(sp.msg_fd, keep[i], 0) == -1) {
				snprintf(err, errlen, "removing %s/msg/%s: %s", sp.dir, keep[i],
				    strerror(errno));
				free(found);
				goto fail;
			}
			log_debug("spool: removed %s/msg/%s: no queue row (never acknowledged)",
			    sp.dir, keep[i]);
			keep[i][0] = '\0';
			removed++;
		}
		free(found);
	}
	/* Drop the removed names; what stays is still sorted for bsearch. */
	for (i = 0, from = 0; i < nkeep; i++)
		if (keep[i][0] != '\0')
			keep[from++] = keep[i];
	nkeep = from;
	if (removed > 0)
		log_info("spool: removed %zu uncommitted files from %s/msg", removed, sp.dir);

	/* Rows whose body is gone cannot be delivered: an operator must know.
	 * Other nodes' rows have their files in their own spools. */
	buf_reset(&b);
	if (buf_printf(&b, "SELECT m.qid FROM queue_messages m WHERE %s", sp.mine) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (query(db, buf_data(&b), buf_len(&b), err, errlen) == -1)
		goto fail;
	if ((res = mysql_use_result(db)) == NULL) {
		snprintf(err, errlen, "%s (MariaDB error %u)", mysql_error(db), mysql_errno(db));
		goto fail;
	}
	while ((row = mysql_fetch_row(res)) != NULL) {
		if (row[0] == NULL ||
		    bsearch(&row[0], keep, nkeep, sizeof(*keep), cmp_str) != NULL)
			continue;
		log_err("spool: queue message %s has no file %s/msg/%s", row[0], sp.dir, row[0]);
		missing++;
	}
	if (mysql_errno(db) != 0) {
		snprintf(err, errlen, "%s (MariaDB error %u)", mysql_error(db), mysql_errno(db));
		goto fail;
	}
	mysql_free_result(res);
	res = NULL;
	if (missing > 0)
		log_err("spool: %zu queued messages have lost their files", missing);
	free(keep);
	free_names(names, n);
	buf_free(&b);
	return 0;
fail:
	if (res != NULL)
		mysql_free_result(res);
	free(keep);
	free_names(names, n);
	buf_free(&b);
	return -1;
}

/* mkdirat that also flushes the parent when it created the directory, so a
 * crash cannot lose the directory that holds accepted messages. */
static int
make_dir(int parent, const char *name, int *fd)
{
	int r = mkdirat(parent, name, 0700);

	if (r == -1 && errno != EEXIST)
		return -1;
	if (r == 0 && fsync(parent) == -1)
		return -1;
	return (*fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ? -1 : 0;
}

/* The spool directory itself; when created, its parent (reached through
 * "..", where the new entry really is) is flushed too. */
static int
open_spool_dir(const char *path)
{
	int r = mkdir(path, 0700), pfd, e;

	if (r == -1 && errno != EEXIST)
		return -1;
	if ((sp.dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (r == 0) {
		if ((pfd = openat(sp.dir_fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
			return -1;
		if (fsync(pfd) == -1) {
			e = errno;
			close(pfd);
			errno = e;
			return -1;
		}
		if (close(pfd) == -1)
			return -1;
	}
	return 0;
}

static void
close_dirs(void)
{
	int *fds[] = { &sp.tmp_fd, &sp.msg_fd, &sp.dir_fd };
	size_t i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] != -1 && close(*fds[i]) == -1)
			log_warn("spool: closing a directory of %s: %s", sp.dir, strerror(errno));
		*fds[i] = -1;
	}
}

/* Our name in the queue: the host and (FNV-1a) the spool directory, so
 * two nodes on one host with their own state directories differ too. */
static void
name_node(const char *dir)
{
	char host[65];
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */
	size_t i;

	if (gethostname(host, sizeof(host) - 1) == -1)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i]; i++)
		if (!isalnum((unsigned char)host[i]) && host[i] != '.' && host[i] != '-' && host[i] != '_')
			host[i] = '_';	/* the name goes into SQL as it is */
	for (; *dir; dir++)
		h = (h ^ (unsigned char)*dir) * 1099511628211ULL;
	snprintf(sp.node, sizeof(sp.node), "%s:%016" PRIx64, host, h);
	snprintf(sp.mine, sizeof(sp.mine), "(m.spool = '%s' OR m.spool = '')", sp.node);
}

const char *
spool_node(void)
{
	return sp.node;
}

const char *
spool_mine_sql(void)
{
	return sp.mine;
}

int
spool_init(const char *spool_dir, const struct db_conf *conf, char *err, size_t errlen)
{
	if (sp.started) {
		snprintf(err, errlen, "spool already started");
		return -1;
	}
	if (snprintf(sp.dir, sizeof(sp.dir), "%s", spool_dir) >= (int)sizeof(sp.dir)) {
		snprintf(err, errlen, "spool directory path too long");
		return -1;
	}
	if (db_conf_copy(&sp.conf, conf) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	name_node(sp.dir);
	if (open_spool_dir(spool_dir) == -1 ||
	    make_dir(sp.dir_fd, "tmp", &sp.tmp_fd) == -1 ||
	    make_dir(sp.dir_fd, "msg", &sp.msg_fd) == -1) {
		snprintf(err, errlen, "spool directory %s: %s", spool_dir, strerror(errno));
		goto fail;
	}
	if ((sp.db = db_connect(&sp.conf, false, err, errlen)) == NULL)
		goto fail;
	if (recover(sp.db, err, errlen) == -1)
		goto fail;
	sp.stopping = false;
	sp.running = true;
	sp.db_down = false;
	if ((errno = pthread_create(&sp.thread, NULL, spool_thread, NULL)) != 0) {
		sp.running = false;
		snprintf(err, errlen, "spool: pthread_create: %s", strerror(errno));
		goto fail;
	}
	sp.started = true;
	log_info("spool: %s ready", sp.dir);
	return 0;
fail:
	if (sp.db != NULL)
		mysql_close(sp.db);
	sp.db = NULL;
	close_dirs();
	db_conf_free(&sp.conf);
	return -1;
}

void
spool_fini(void)
{
	if (!sp.started)
		return;
	pthread_mutex_lock(&sp.lock);
	sp.stopping = true;
	pthread_cond_broadcast(&sp.cond);
	pthread_mutex_unlock(&sp.lock);
	/* The thread commits what is pending before it exits. */
	if ((errno = pthread_join(sp.thread, NULL)) != 0)
		log_err("spool: pthread_join: %s", strerror(errno));
	sp.started = false;
	if (sp.db != NULL)
		mysql_close(sp.db);
	sp.db = NULL;
	close_dirs();
	db_conf_free(&sp.conf);
}

int
spool_stats(MYSQL *db, uint64_t *messages, uint64_t *bytes, uint64_t *oldest_age,
    char *err, size_t errlen)
{
	static const char sql[] =
	    "SELECT COUNT(*), COALESCE(SUM(m.size), 0), "
	    "COALESCE(TIMESTAMPDIFF(SECOND, MIN(m.received_at), NOW()), 0) "
	    "FROM queue_messages m WHERE EXISTS (SELECT 1 FROM queue_recipients r "
	    "WHERE r.message_id = m.id AND r.state IN ('queued', 'deferred'))";
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	long long age;

	*messages = *bytes = *oldest_age = 0;
	if (query(db, sql, sizeof(sql) - 1, err, errlen) == -1)
		goto fail;
	if ((res = mysql_store_result(db)) == NULL || (row = mysql_fetch_row(res)) == NULL ||
	    row[0] == NULL || row[1] == NULL || row[2] == NULL) {
		snprintf(err, errlen, "queue statistics: %s", mysql_errno(db) ? mysql_error(db) : "no row");
		goto fail;
	}
	*messages = strtoull(row[0], NULL, 10);
	*bytes = strtoull(row[1], NULL, 10);
	age = strtoll(row[2], NULL, 10);
	/* A clock set back makes the oldest message look young, not negative. */
	*oldest_age = age > 0 ? (uint64_t)age : 0;
	mysql_free_result(res);
	return 0;
fail:
	if (res != NULL)
		mysql_free_result(res);
	return -1;
}
