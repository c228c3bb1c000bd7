/* db: MariaDB connections and the worker pool that keeps blocking
 * Connector/C calls off the event loops. */
#include "db.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

void
db_conf_free(struct db_conf *c)
{
	free(c->host);
	free(c->socket);
	free(c->user);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->database);
	memset(c, 0, sizeof(*c));
}

int
db_conf_copy(struct db_conf *to, const struct db_conf *from)
{
	memset(to, 0, sizeof(*to));
	to->port = from->port;
	if ((from->host && (to->host = strdup(from->host)) == NULL) ||
	    (from->socket && (to->socket = strdup(from->socket)) == NULL) ||
	    (from->user && (to->user = strdup(from->user)) == NULL) ||
	    (from->password && (to->password = strdup(from->password)) == NULL) ||
	    (from->database && (to->database = strdup(from->database)) == NULL)) {
		db_conf_free(to);
		return -1;
	}
	return 0;
}

int
db_quote(MYSQL *m, struct buf *b, const char *s)
{
	size_t n;

	if (s == NULL)
		return buf_puts(b, "NULL");
	n = strlen(s);
	if (buf_puts(b, "'") == -1 || buf_reserve(b, 2 * n + 1) == -1)
		return -1;
	b->len += mysql_real_escape_string(m, b->data + b->len, s, (unsigned long)n);
	return buf_puts(b, "'");
}

static char *
dup_range(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

int
db_conf_parse(const char *dsn, struct db_conf *c, char *err, size_t errlen)
{
	const char *p, *at, *slash, *q, *hostend, *colon;

	memset(c, 0, sizeof(*c));
	if (strncmp(dsn, "mysql://", 8) != 0 && strncmp(dsn, "mariadb://", 10) != 0) {
		snprintf(err, errlen, "database DSN must start with mysql:// or mariadb://");
		return -1;
	}
	p = strstr(dsn, "://") + 3;
	slash = strchr(p, '/');
	if (slash == NULL || slash[1] == '\0' || slash[1] == '?') {
		snprintf(err, errlen, "database DSN needs a database name: mysql://user@host/NAME");
		return -1;
	}
	/* The last '@' before the path separates credentials: passwords may hold '@'. */
	at = NULL;
	for (q = p; q < slash; q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			c->user = dup_range(p, (size_t)(colon - p));
			c->password = dup_range(colon + 1, (size_t)(at - colon - 1));
		} else
			c->user = dup_range(p, (size_t)(at - p));
		p = at + 1;
	}
	hostend = slash;
	if (hostend < p) {
		snprintf(err, errlen, "database DSN: malformed");
		goto fail;
	}
	colon = memchr(p, ':', (size_t)(hostend - p));
	if (colon) {
		char *end;
		long port = (colon[1] >= '0' && colon[1] <= '9') ? strtol(colon + 1, &end, 10) : 0;

		if (port == 0 || end != hostend || port < 1 || port > 65535) {
			snprintf(err, errlen, "database DSN: bad port");
			goto fail;
		}
		c->port = (unsigned)port;
		hostend = colon;
	}
	if (hostend > p)
		c->host = dup_range(p, (size_t)(hostend - p));
	q = strchr(slash + 1, '?');
	c->database = dup_range(slash + 1, q ? (size_t)(q - slash - 1) : strlen(slash + 1));
	if (q != NULL) {
		if (strncmp(q + 1, "socket=", 7) != 0) {
			snprintf(err, errlen, "database DSN: the only option is ?socket=PATH");
			goto fail;
		}
		c->socket = strdup(q + 8);
	}
	if (c->user == NULL)
		c->user = strdup("mailnode");
	if (c->database == NULL || c->user == NULL || (q && c->socket == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (p = c->database; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_')) {
			snprintf(err, errlen, "database DSN: database name may hold only letters, digits and _");
			goto fail;
		}
	return 0;
fail:
	db_conf_free(c);
	return -1;
}

int
db_exec(MYSQL *m, const char *sql, char *err, size_t errlen)
{
	int status;

	if (mysql_real_query(m, sql, strlen(sql)) != 0)
		goto fail;
	/* Multi-statement strings: walk every result so the connection is clean. */
	do {
		MYSQL_RES *res = mysql_store_result(m);

		if (res)
			mysql_free_result(res);
		else if (mysql_field_count(m) != 0)
			goto fail;
		if ((status = mysql_next_result(m)) > 0)
			goto fail;
	} while (status == 0);
	return 0;
fail:
	snprintf(err, errlen, "%s (MariaDB error %u)", mysql_error(m), mysql_errno(m));
	return -1;
}

MYSQL *
db_connect(const struct db_conf *c, bool create_db, char *err, size_t errlen)
{
	MYSQL *m;
	unsigned timeout = 5, io_timeout = 30;
	char sql[160];

	if ((m = mysql_init(NULL)) == NULL) {
		snprintf(err, errlen, "mysql_init: out of memory");
		return NULL;
	}
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	/* A hung server fails the query instead of holding a worker forever. */
	mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
	mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (mysql_real_connect(m, c->socket ? NULL : (c->host ? c->host : "localhost"),
	    c->user, c->password, NULL, c->port, c->socket,
	    CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS) == NULL)
		goto fail;
	if (create_db) {
		snprintf(sql, sizeof(sql), "CREATE DATABASE IF NOT EXISTS `%s` "
		    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", c->database);
		if (db_exec(m, sql, err, errlen) == -1) {
			mysql_close(m);
			return NULL;
		}
	}
	if (mysql_select_db(m, c->database) != 0)
		goto fail;
	return m;
fail:
	snprintf(err, errlen, "%s (MariaDB error %u)", mysql_error(m), mysql_errno(m));
	mysql_close(m);
	return NULL;
}

/* The pool. */
struct db_job {
	struct db_job	*next;
	db_job_fn	 fn;
	db_done_fn	 done;
	void		*arg;
	struct loop	*origin;
	int		 result;
};

static struct {
	struct db_conf	 conf;
	pthread_t	*threads;
	unsigned	 nthreads;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct db_job	*head, *tail;
	bool		 stopping;
	atomic_bool	 up;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void
db_job_complete(void *arg)
{
	struct db_job *j = arg;

	if (j->done)
		j->done(j->arg, j->result);
	free(j);
}

/* A connection is pinged before a job only when it sat idle this long or
 * its last job met a connection error: a ping before every job would be
 * one more round trip to the server for each of them. */
#define DB_IDLE_PING_MS	1000

static bool
connection_error(MYSQL *m)
{
	unsigned e = mysql_errno(m);

	return e >= 2000 && e < 3000;	/* CR_*: the client's side, e.g. server gone */
}

static void *
db_worker(void *unused)
{
	MYSQL *m = NULL;
	char err[512];
	uint64_t last_used = 0;
	bool suspect = false;

	(void)unused;
	mysql_thread_init();
	for (;;) {
		struct db_job *j;

		pthread_mutex_lock(&pool.lock);
		while (pool.head == NULL && !pool.stopping)
			pthread_cond_wait(&pool.cond, &pool.lock);
		if (pool.head == NULL) {
			pthread_mutex_unlock(&pool.lock);
			break;
		}
		j = pool.head;
		pool.head = j->next;
		if (pool.head == NULL)
			pool.tail = NULL;
		pthread_mutex_unlock(&pool.lock);

		if (m != NULL && (suspect || loop_now_ms() - last_used > DB_IDLE_PING_MS) &&
		    mysql_ping(m) != 0) {
			mysql_close(m);
			m = NULL;
		}
		if (m == NULL && (m = db_connect(&pool.conf, false, err, sizeof(err))) == NULL) {
			if (atomic_exchange(&pool.up, false))
				log_err("database unavailable: %s", err);
			j->result = -1;
		} else {
			if (!atomic_exchange(&pool.up, true))
				log_info("database available");
			j->result = j->fn(m, j->arg);
			suspect = connection_error(m);
			last_used = loop_now_ms();
		}
		if (j->origin == NULL || loop_post(j->origin, db_job_complete, j) == -1)
			db_job_complete(j);
	}
	if (m)
		mysql_close(m);
	mysql_thread_end();
	return NULL;
}

int
db_pool_start(const struct db_conf *c, unsigned n)
{
	unsigned i;

	if (db_conf_copy(&pool.conf, c) == -1)
		return -1;
	pool.stopping = false;
	atomic_store(&pool.up, true);
	if ((pool.threads = calloc(n, sizeof(*pool.threads))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if ((errno = pthread_create(&pool.threads[i], NULL, db_worker, NULL)) != 0) {
			log_err("db pool: pthread_create: %s", strerror(errno));
			break;
		}
		pool.nthreads++;
	}
	return pool.nthreads > 0 ? 0 : -1;
}

int
db_submit(db_job_fn fn, db_done_fn done, void *arg)
{
	struct db_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	j->origin = loop_current();
	pthread_mutex_lock(&pool.lock);
	if (pool.stopping || pool.nthreads == 0) {
		pthread_mutex_unlock(&pool.lock);
		free(j);
		return -1;
	}
	if (pool.tail)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

void
db_pool_stop(void)
{
	unsigned i;

	pthread_mutex_lock(&pool.lock);
	pool.stopping = true;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	/* Workers finish the queued jobs first; their completions are posted
	 * to loops that may have stopped, and are freed with them. */
	for (i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads);
	pool.threads = NULL;
	pool.nthreads = 0;
	db_conf_free(&pool.conf);
}

void
db_pool_mark_down(void)
{
	atomic_store(&pool.up, false);
}

static atomic_uint_fast64_t health_sent;	/* loop_now_ms() of the ping in flight, 0 if none */

bool
db_pool_up(void)
{
	uint64_t sent = atomic_load(&health_sent);

	/* A ping that does not come back means a hung server. */
	if (sent != 0 && loop_now_ms() - sent > 5000)
		return false;
	return atomic_load(&pool.up);
}

static struct loop_timer	health_timer;
static unsigned			health_interval;

static int
health_job(MYSQL *m, void *arg)
{
	(void)arg;
	if (mysql_query(m, "DO 1") != 0) {
		atomic_store(&pool.up, false);
		return -1;
	}
	return 0;
}

static void
health_done(void *arg, int result)
{
	(void)arg;
	(void)result;
	atomic_store(&health_sent, 0);
}

static void
health_tick(struct loop_timer *t)
{
	/* One ping at a time: a hung server must not pile up jobs. */
	if (atomic_load(&health_sent) == 0) {
		atomic_store(&health_sent, loop_now_ms());
		if (db_submit(health_job, health_done, NULL) == -1)
			atomic_store(&health_sent, 0);
	}
	loop_timer_start(loop_current(), t, health_interval);
}

void
db_pool_watch(unsigned interval_ms)
{
	health_interval = interval_ms;
	health_timer.cb = health_tick;
	loop_timer_start(loop_current(), &health_timer, interval_ms);
}
