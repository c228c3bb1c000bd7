/* test_spool: node/spool.c against a real MariaDB (the project's embedded
 * server in a temporary directory, migrated with the project's schemas):
 * one message end to end, 200 concurrent commits sharing groups, queue
 * statistics, abort, start-up recovery, and a database outage with its
 * recovery. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "db.h"
#include "db_embedded.h"
#include "log.h"
#include "loop.h"
#include "migrate.h"
#include "spool.h"

/* The spool's group counters (not in its header). */
extern _Atomic uint64_t spool_stat_groups;
extern _Atomic uint64_t spool_stat_msgs;

#define NTHREADS	4
#define PER_THREAD	50
#define NCONC		(NTHREADS * PER_THREAD)
#define WAIT_S		120

static char			 state_dir[32], spool_dir[64];
static struct db_conf		 conf;
static struct db_embedded	*server;
static MYSQL			*check;		/* the test's own connection */
static pthread_t		 loop_thread;
static char			 first_qid[32];
static uint64_t			 committed, committed_bytes;

/* Completions. */
struct result {
	bool	 done;
	int	 ok;
	bool	 on_loop;
	char	 qid[32];
	char	 err[256];
};

static pthread_mutex_t	res_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	res_cond = PTHREAD_COND_INITIALIZER;
static unsigned		ncompleted;

static void
done_cb(void *arg, int ok, const char *id, const char *err)
{
	struct result *r = arg;

	pthread_mutex_lock(&res_lock);
	r->ok = ok;
	r->on_loop = pthread_equal(pthread_self(), loop_thread);
	snprintf(r->qid, sizeof(r->qid), "%s", id ? id : "");
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
	r->done = true;
	ncompleted++;
	pthread_cond_broadcast(&res_cond);
	pthread_mutex_unlock(&res_lock);
}

/* Wait until ncompleted reaches target; false on timeout. */
static bool
wait_completed(unsigned target)
{
	struct timespec until;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&res_lock);
	while (ncompleted < target && ok)
		ok = pthread_cond_timedwait(&res_cond, &res_lock, &until) == 0;
	ok = ncompleted >= target;
	pthread_mutex_unlock(&res_lock);
	return ok;
}

static unsigned
completed_now(void)
{
	unsigned n;

	pthread_mutex_lock(&res_lock);
	n = ncompleted;
	pthread_mutex_unlock(&res_lock);
	return n;
}

/* A commit as a session does it: on its loop. */
struct commit_job {
	struct spool_msg	*m;
	struct spool_envelope	 env;
	struct spool_rcpt	 rcpts[2];
	struct result		*r;
};

static void
commit_on_loop(void *arg)
{
	struct commit_job *j = arg;

	spool_msg_commit(j->m, &j->env, done_cb, j->r);
	free(j);
}

static struct commit_job *
job_new(struct spool_msg *m, struct result *r, const char *sender, const char *rcpt,
    uint64_t mailbox_id)
{
	struct commit_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->m = m;
	j->r = r;
	snprintf(j->env.sender, sizeof(j->env.sender), "%s", sender);
	snprintf(j->env.helo, sizeof(j->env.helo), "client.example");
	snprintf(j->env.peer, sizeof(j->env.peer), "192.0.2.1");
	snprintf(j->rcpts[0].address, sizeof(j->rcpts[0].address), "%s", rcpt);
	j->rcpts[0].mailbox_id = mailbox_id;
	j->env.rcpts = j->rcpts;
	j->env.nrcpts = 1;
	return j;
}

/* A message with body written in small pieces (several write(2) calls). */
static struct spool_msg *
write_msg(const char *body, size_t len)
{
	char err[256];
	struct spool_msg *m = spool_msg_new(err, sizeof(err));
	size_t off;

	if (m == NULL) {
		fprintf(stderr, "spool_msg_new: %s\n", err);
		return NULL;
	}
	for (off = 0; off < len; off += 7)
		if (spool_msg_write(m, body + off, len - off < 7 ? len - off : 7) == -1) {
			spool_msg_abort(m);
			return NULL;
		}
	return m;
}

static int
count_files(const char *sub)
{
	char path[128];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", spool_dir, sub);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static bool
file_exists(const char *sub, const char *name)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s/%s", spool_dir, sub, name);
	return access(path, F_OK) == 0;
}

/* The file msg/<qid> holds exactly body. */
static bool
file_is(const char *qid, const char *body, size_t len)
{
	char path[160], *got;
	struct stat st;
	bool same;
	int fd;

	snprintf(path, sizeof(path), "%s/msg/%s", spool_dir, qid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	if (fstat(fd, &st) == -1 || (size_t)st.st_size != len || (got = malloc(len + 1)) == NULL) {
		close(fd);
		return false;
	}
	same = read(fd, got, len + 1) == (ssize_t)len && memcmp(got, body, len) == 0;
	free(got);
	close(fd);
	return same;
}

static void
make_file(const char *sub, const char *name)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", spool_dir, sub, name);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) != -1);
	assert_int_equal(write(fd, "junk\n", 5), 5);
	assert_int_equal(close(fd), 0);
}

/* The test's connection, renewed after a server restart. */
static MYSQL *
db(void)
{
	char err[256];

	if (check != NULL && mysql_ping(check) != 0) {
		mysql_close(check);
		check = NULL;
	}
	if (check == NULL && (check = db_connect(&conf, false, err, sizeof(err))) == NULL)
		fail_msg("test connection: %s", err);
	return check;
}

/* Rows of a query as one string: fields joined by '|', rows by '\n'. */
static void
rows(const char *sql, char *out, size_t outlen)
{
	MYSQL *m = db();
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	size_t n = 0;

	out[0] = '\0';
	if (mysql_query(m, sql) != 0 || (res = mysql_store_result(m)) == NULL)
		fail_msg("%s: %s", sql, mysql_error(m));
	while ((row = mysql_fetch_row(res)) != NULL) {
		unsigned i, nf = mysql_num_fields(res);

		for (i = 0; i < nf && n < outlen; i++)
			n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? "|" : "",
			    row[i] ? row[i] : "NULL");
		if (n < outlen)
			n += (size_t)snprintf(out + n, outlen - n, "\n");
	}
	mysql_free_result(res);
}

static uint64_t
count_rows(const char *sql)
{
	char out[64];

	rows(sql, out, sizeof(out));
	return strtoull(out, NULL, 10);
}

static void *
loops_main(void *unused)
{
	(void)unused;
	loops_run();
	return NULL;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) == -1)
		fprintf(stderr, "removing %s: %s\n", path, strerror(errno));
	return 0;
}

static int
setup(void **state)
{
	char err[512], dir[PATH_MAX];
	const char *src = getenv("MAILNODE_SOURCE_DIR");
	struct migrate_backend be;
	unsigned count;

	(void)state;
	log_init("test_spool", 0, getenv("SPOOL_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	/* Short: the server's unix socket lives under it (108-byte limit). */
	snprintf(state_dir, sizeof(state_dir), "/tmp/mnsp-XXXXXX");
	if (mkdtemp(state_dir) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	snprintf(spool_dir, sizeof(spool_dir), "%s/spool", state_dir);
	if ((server = db_embedded_start(state_dir, &conf, err, sizeof(err))) == NULL)
		fail_msg("embedded MariaDB: %s", err);
	if ((check = db_connect(&conf, true, err, sizeof(err))) == NULL)
		fail_msg("connect: %s", err);
#ifdef MAILNODE_SCHEMA_DIR
	snprintf(dir, sizeof(dir), "%s", src ? "" : MAILNODE_SCHEMA_DIR);
#else
	dir[0] = '\0';
#endif
	if (src != NULL)
		snprintf(dir, sizeof(dir), "%s/schemas", src);
	if (dir[0] == '\0')
		fail_msg("set MAILNODE_SOURCE_DIR to the source tree");
	migrate_backend_mariadb(&be, check);
	if (migrate_run(dir, &be, &count, err, sizeof(err)) == -1)
		fail_msg("migrations: %s", err);
	if (loops_init(1) == -1)
		fail_msg("loops_init");
	if (pthread_create(&loop_thread, NULL, loops_main, NULL) != 0)
		fail_msg("pthread_create");
	if (spool_init(spool_dir, &conf, err, sizeof(err)) == -1)
		fail_msg("spool_init: %s", err);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	spool_fini();
	loops_stop();
	pthread_join(loop_thread, NULL);
	loops_free();
	if (check != NULL)
		mysql_close(check);
	db_embedded_stop(server);
	db_conf_free(&conf);
	mysql_library_end();
	if (nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == -1)
		fprintf(stderr, "removing %s: %s\n", state_dir, strerror(errno));
	return 0;
}

static void
test_one_message(void **state)
{
	static const char body[] = "From: alice@example.org\r\nTo: bob@example.net\r\n"
	    "Subject: spool\r\n\r\nHello, \xc3\xa9t\xc3\xa9.\r\n";
	struct result r = { 0 };
	struct commit_job *j;
	struct spool_msg *m;
	unsigned before = completed_now();
	char sql[256], out[1024], expect[1024];
	uint64_t id;

	(void)state;
	assert_non_null(m = write_msg(body, sizeof(body) - 1));
	assert_int_equal(spool_msg_size(m), sizeof(body) - 1);
	assert_int_equal(count_files("tmp"), 1);
	assert_non_null(j = job_new(m, &r, "alice@example.org", "bob@example.net", 7));
	snprintf(j->env.envid, sizeof(j->env.envid), "ENV-1");
	j->env.ret_hdrs = true;
	j->env.tenant_id = 42;
	j->rcpts[0].notify = 3;
	snprintf(j->rcpts[0].orcpt, sizeof(j->rcpts[0].orcpt), "rfc822;bob@example.net");
	snprintf(j->rcpts[1].address, sizeof(j->rcpts[1].address), "carol@remote.example");
	j->env.nrcpts = 2;
	assert_int_equal(loop_post(loops_get(0), commit_on_loop, j), 0);
	assert_true(wait_completed(before + 1));

	assert_true(r.done);
	if (!r.ok)
		fail_msg("commit failed: %s", r.err);
	assert_true(r.on_loop);
	assert_int_equal(strlen(r.qid), 26);
	snprintf(first_qid, sizeof(first_qid), "%s", r.qid);
	assert_true(file_is(r.qid, body, sizeof(body) - 1));
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("msg"), 1);
	committed++;
	committed_bytes += sizeof(body) - 1;

	snprintf(sql, sizeof(sql), "SELECT size, sender, tenant_id, helo, peer, envid, ret_hdrs, "
	    "smtputf8, held, id FROM queue_messages WHERE qid = '%s'", r.qid);
	rows(sql, out, sizeof(out));
	snprintf(expect, sizeof(expect), "%zu|alice@example.org|42|client.example|192.0.2.1|ENV-1|1|0|0|",
	    sizeof(body) - 1);
	assert_memory_equal(out, expect, strlen(expect));
	id = strtoull(strrchr(out, '|') + 1, NULL, 10);
	assert_true(id > 0);
	snprintf(sql, sizeof(sql), "SELECT address, mailbox_id, notify, orcpt, state "
	    "FROM queue_recipients WHERE message_id = %" PRIu64 " ORDER BY id", id);
	rows(sql, out, sizeof(out));
	assert_string_equal(out, "bob@example.net|7|3|rfc822;bob@example.net|queued\n"
	    "carol@remote.example|NULL|0||queued\n");
}

/* Four threads as four sessions: half commit from the thread itself, half
 * through the loop. */
static struct result		 conc[NCONC];
static pthread_barrier_t	 barrier;
static atomic_int		 thread_failures;

static size_t
conc_body(unsigned k, char *out, size_t outlen)
{
	size_t len = (size_t)snprintf(out, outlen, "Subject: message %u\r\n\r\n", k);
	size_t extra = k * 37 % 3000;

	/* A body of varying size and content. */
	while (extra-- > 0 && len + 1 < outlen) {
		out[len] = (char)('a' + (k + len) % 26);
		len++;
	}
	return len;
}

static void *
committer(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg, i;
	struct spool_msg *ms[PER_THREAD];
	char body[4096];

	for (i = 0; i < PER_THREAD; i++) {
		unsigned k = t * PER_THREAD + i;

		if ((ms[i] = write_msg(body, conc_body(k, body, sizeof(body)))) == NULL)
			atomic_fetch_add(&thread_failures, 1);
	}
	/* Commit in a burst, all threads at once, so groups form. */
	pthread_barrier_wait(&barrier);
	for (i = 0; i < PER_THREAD; i++) {
		unsigned k = t * PER_THREAD + i;
		char rcpt[64];
		struct commit_job *j;

		if (ms[i] == NULL)
			continue;
		snprintf(rcpt, sizeof(rcpt), "user%u@example.net", k);
		if ((j = job_new(ms[i], &conc[k], "sender@example.org", rcpt, k + 1)) == NULL) {
			spool_msg_abort(ms[i]);
			atomic_fetch_add(&thread_failures, 1);
			continue;
		}
		if (i % 2 == 0) {
			spool_msg_commit(j->m, &j->env, done_cb, j->r);
			free(j);
		} else if (loop_post(loops_get(0), commit_on_loop, j) == -1) {
			spool_msg_abort(ms[i]);
			free(j);
			atomic_fetch_add(&thread_failures, 1);
		}
	}
	return NULL;
}

static int
cmp_result_qid(const void *a, const void *b)
{
	return strcmp(((const struct result *)a)->qid, ((const struct result *)b)->qid);
}

static void
test_concurrent(void **state)
{
	pthread_t th[NTHREADS];
	uint64_t groups0 = atomic_load(&spool_stat_groups), msgs0 = atomic_load(&spool_stat_msgs);
	uint64_t groups, msgs;
	unsigned before = completed_now(), k;
	int msg_files = count_files("msg");
	char body[4096], sql[64];
	struct buf q;
	struct result sorted[NCONC];

	(void)state;
	assert_int_equal(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
	for (k = 0; k < NTHREADS; k++)
		assert_int_equal(pthread_create(&th[k], NULL, committer, (void *)(uintptr_t)k), 0);
	for (k = 0; k < NTHREADS; k++)
		pthread_join(th[k], NULL);
	pthread_barrier_destroy(&barrier);
	assert_int_equal(atomic_load(&thread_failures), 0);
	assert_true(wait_completed(before + NCONC));

	groups = atomic_load(&spool_stat_groups) - groups0;
	msgs = atomic_load(&spool_stat_msgs) - msgs0;
	printf("[ INFO     ] %d messages committed in %" PRIu64 " groups (%.1f per group)\n",
	    NCONC, groups, groups ? (double)msgs / (double)groups : 0.0);
	assert_int_equal(msgs, NCONC);
	assert_true(groups < msgs);

	buf_init(&q, 0);
	assert_int_equal(buf_puts(&q, "SELECT COUNT(*) FROM queue_messages m "
	    "JOIN queue_recipients r ON r.message_id = m.id WHERE m.qid IN ("), 0);
	for (k = 0; k < NCONC; k++) {
		size_t len = conc_body(k, body, sizeof(body));
		char sqlq[256], out[256], expect[256];

		if (!conc[k].ok)
			fail_msg("message %u: %s", k, conc[k].err);
		assert_int_equal(strlen(conc[k].qid), 26);
		/* Done runs on the loop that committed; outside loops, on the spool's thread. */
		assert_int_equal(conc[k].on_loop, (k % PER_THREAD) % 2 == 1);
		assert_true(file_is(conc[k].qid, body, len));
		assert_int_equal(buf_printf(&q, "%s'%s'", k ? "," : "", conc[k].qid), 0);
		committed++;
		committed_bytes += len;
		if (k % 40 == 0) {
			snprintf(sqlq, sizeof(sqlq), "SELECT m.size, r.address, r.mailbox_id FROM "
			    "queue_messages m JOIN queue_recipients r ON r.message_id = m.id "
			    "WHERE m.qid = '%s'", conc[k].qid);
			rows(sqlq, out, sizeof(out));
			snprintf(expect, sizeof(expect), "%zu|user%u@example.net|%u\n", len, k, k + 1);
			assert_string_equal(out, expect);
		}
	}
	assert_int_equal(buf_puts(&q, ")"), 0);
	assert_int_equal(count_rows(buf_cstr(&q)), NCONC);
	buf_free(&q);
	memcpy(sorted, conc, sizeof(sorted));
	qsort(sorted, NCONC, sizeof(*sorted), cmp_result_qid);
	for (k = 1; k < NCONC; k++)
		assert_string_not_equal(sorted[k - 1].qid, sorted[k].qid);
	assert_int_equal(count_files("msg"), msg_files + NCONC);
	assert_int_equal(count_files("tmp"), 0);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM queue_messages");
	assert_int_equal(count_rows(sql), committed);
}

/* Values MariaDB would refuse in strict mode (bad UTF-8, too long for the
 * column, no NUL) are cleaned, so one message cannot fail its group. */
static void
test_bad_strings(void **state)
{
	static const char body[] = "Subject: odd envelope\r\n\r\nz\r\n";
	struct result r = { 0 };
	struct commit_job *j;
	struct spool_msg *m;
	unsigned before = completed_now();
	char sql[256], out[1024];

	(void)state;
	assert_non_null(m = write_msg(body, sizeof(body) - 1));
	assert_non_null(j = job_new(m, &r, "\xffodd\xc3@example.org", "o'neil@example.net", 0));
	memset(j->env.helo, 'h', sizeof(j->env.helo));		/* 256 bytes, no NUL */
	memset(j->env.envid, 'e', sizeof(j->env.envid));
	snprintf(j->env.peer, sizeof(j->env.peer), "\xed\xa0\x80");	/* a surrogate */
	assert_int_equal(loop_post(loops_get(0), commit_on_loop, j), 0);
	assert_true(wait_completed(before + 1));
	if (!r.ok)
		fail_msg("commit failed: %s", r.err);
	committed++;
	committed_bytes += sizeof(body) - 1;
	snprintf(sql, sizeof(sql), "SELECT sender, LENGTH(helo), LENGTH(envid), peer, r.address "
	    "FROM queue_messages m JOIN queue_recipients r ON r.message_id = m.id "
	    "WHERE m.qid = '%s'", r.qid);
	rows(sql, out, sizeof(out));
	assert_string_equal(out, "?odd?@example.org|255|100|???|o'neil@example.net\n");
}

static void
test_stats(void **state)
{
	uint64_t n, bytes, age;
	char err[256], sql[256];

	(void)state;
	if (spool_stats(db(), &n, &bytes, &age, err, sizeof(err)) == -1)
		fail_msg("spool_stats: %s", err);
	assert_int_equal(n, committed);
	assert_int_equal(bytes, committed_bytes);
	assert_true(age < 3600);
	/* Delivered recipients do not count. */
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients r JOIN queue_messages m ON "
	    "m.id = r.message_id SET r.state = 'delivered' WHERE m.qid = '%s'", first_qid);
	assert_int_equal(db_exec(db(), sql, err, sizeof(err)), 0);
	if (spool_stats(db(), &n, &bytes, &age, err, sizeof(err)) == -1)
		fail_msg("spool_stats: %s", err);
	assert_int_equal(n, committed - 1);
	assert_int_equal(db_exec(db(), "UPDATE queue_recipients SET state = 'queued'", err,
	    sizeof(err)), 0);
}

static void
test_abort(void **state)
{
	struct spool_msg *m;
	int msg_files = count_files("msg");

	(void)state;
	assert_int_equal(count_files("tmp"), 0);
	assert_non_null(m = write_msg("abandoned body\r\n", 16));
	assert_int_equal(spool_msg_size(m), 16);
	assert_int_equal(count_files("tmp"), 1);
	spool_msg_abort(m);
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("msg"), msg_files);
}

static void
test_recovery(void **state)
{
	static const char orphan[] = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
	static const char lost[] = "01ARZ3NDEKTSV4RRFFQ69G5FAW";
	char err[512], sql[128];
	int msg_files = count_files("msg");

	(void)state;
	make_file("tmp", "stray");
	make_file("msg", orphan);
	make_file("msg", "README");
	/* A row whose file is gone: reported, never deleted. */
	snprintf(sql, sizeof(sql), "INSERT INTO queue_messages (qid, size, sender) "
	    "VALUES ('%s', 1, '')", lost);
	assert_int_equal(db_exec(db(), sql, err, sizeof(err)), 0);

	spool_fini();
	if (spool_init(spool_dir, &conf, err, sizeof(err)) == -1)
		fail_msg("spool_init: %s", err);
	assert_false(file_exists("tmp", "stray"));
	assert_false(file_exists("msg", orphan));
	assert_true(file_exists("msg", "README"));	/* not a queue file: left alone */
	assert_true(file_exists("msg", first_qid));
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("msg"), msg_files + 1);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'", lost);
	assert_int_equal(count_rows(sql), 1);
	snprintf(sql, sizeof(sql), "DELETE FROM queue_messages WHERE qid = '%s'", lost);
	assert_int_equal(db_exec(db(), sql, err, sizeof(err)), 0);
	snprintf(sql, sizeof(sql), "%s/msg/README", spool_dir);
	assert_int_equal(unlink(sql), 0);
}

static void
commit_one(const char *body, struct result *r)
{
	struct commit_job *j;
	struct spool_msg *m;
	unsigned before = completed_now();

	assert_non_null(m = write_msg(body, strlen(body)));
	assert_non_null(j = job_new(m, r, "", "postmaster@example.net", 1));
	assert_int_equal(loop_post(loops_get(0), commit_on_loop, j), 0);
	assert_true(wait_completed(before + 1));
	assert_true(r->done);
}

static void
test_database_down(void **state)
{
	struct result down = { 0 }, up = { 0 };
	char err[512], sql[256];
	int msg_files = count_files("msg");

	(void)state;
	db_embedded_stop(server);
	server = NULL;
	commit_one("Subject: while down\r\n\r\nx\r\n", &down);
	assert_int_equal(down.ok, 0);
	assert_true(down.err[0] != '\0');
	printf("[ INFO     ] with the database down: %s\n", down.err);
	assert_int_equal(count_files("msg"), msg_files);
	assert_int_equal(count_files("tmp"), 0);

	db_conf_free(&conf);
	if ((server = db_embedded_start(state_dir, &conf, err, sizeof(err))) == NULL)
		fail_msg("restarting MariaDB: %s", err);
	commit_one("Subject: back up\r\n\r\ny\r\n", &up);
	if (!up.ok)
		fail_msg("commit after restart: %s", up.err);
	assert_true(file_is(up.qid, "Subject: back up\r\n\r\ny\r\n", 23));
	assert_int_equal(count_files("msg"), msg_files + 1);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM queue_messages m JOIN queue_recipients r "
	    "ON r.message_id = m.id WHERE m.qid = '%s' AND m.sender = ''", up.qid);
	assert_int_equal(count_rows(sql), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_message),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_database_down),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
