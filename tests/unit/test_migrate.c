/* test_migrate: unit tests for node/migrate.c, the schema migration runner,
 * over an in-memory backend: version order, each migration exactly once,
 * a failure that stops the run and is retried next time, file names that
 * are refused, and databases migrated by a newer node. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"

#define MAXV	32

/* The "database": what is recorded as applied, and what was run. */
struct memdb {
	unsigned	 recorded[MAXV];
	size_t		 nrecorded;
	unsigned	 ran[MAXV];		/* versions passed to apply, in order */
	char		*sql[MAXV];		/* the SQL each one got */
	size_t		 nran;
	unsigned	 fail_version;		/* apply of this one fails */
	bool		 fail_applied;		/* reading the record fails */
};

struct fixture {
	char		 dir[64];
	struct memdb	 db;
	struct migrate_backend be;
};

static int
mem_applied(void *ctx, unsigned **versions, size_t *n, char *err, size_t errlen)
{
	struct memdb *db = ctx;

	*versions = NULL;
	*n = 0;
	if (db->fail_applied) {
		snprintf(err, errlen, "connection lost");
		return -1;
	}
	if ((*versions = calloc(db->nrecorded + 1, sizeof(**versions))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(*versions, db->recorded, db->nrecorded * sizeof(**versions));
	*n = db->nrecorded;
	return 0;
}

static int
mem_apply(void *ctx, const struct migration *m, const char *sql, char *err, size_t errlen)
{
	struct memdb *db = ctx;

	assert_true(db->nran < MAXV);
	db->ran[db->nran] = m->version;
	assert_non_null(db->sql[db->nran] = strdup(sql));
	db->nran++;
	if (m->version == db->fail_version) {
		snprintf(err, errlen, "migration %s: You have an error in your SQL syntax",
		    m->name);
		return -1;
	}
	assert_true(db->nrecorded < MAXV);
	db->recorded[db->nrecorded++] = m->version;
	return 0;
}

/* Forget what ran (the record stays). */
static void
forget_runs(struct memdb *db)
{
	size_t i;

	for (i = 0; i < db->nran; i++)
		free(db->sql[i]);
	db->nran = 0;
}

static void
put(const struct fixture *fx, const char *name, const char *content)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs(content, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
put_dir(const struct fixture *fx, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	assert_int_equal(mkdir(path, 0700), 0);
}

static void
remove_file(const struct fixture *fx, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	assert_int_equal(unlink(path), 0);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/mailnode-migrate-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	fx->be.applied = mem_applied;
	fx->be.apply = mem_apply;
	fx->be.ctx = &fx->db;
	*state = fx;
	return 0;
}

/* Remove the directory and whatever a test left in it. */
static void
rm_tree(const char *dir)
{
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(path);
		else
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	forget_runs(&fx->db);
	rm_tree(fx->dir);
	free(fx);
	return 0;
}

static void
test_scan_version_order(void **state)
{
	struct fixture *fx = *state;
	struct migration *list;
	char err[256], path[PATH_MAX];
	size_t n;

	/* by name these sort 001, 10, 2: by version they are 1, 2, 10 */
	put(fx, "10_c.sql", "C;");
	put(fx, "2_b-two.sql", "B;");
	put(fx, "001_a.sql", "A;");
	put(fx, "011_d_0.sql", "D;");
	assert_int_equal(migrate_scan(fx->dir, &list, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_int_equal(list[0].version, 1);
	assert_string_equal(list[0].name, "001_a.sql");
	snprintf(path, sizeof(path), "%s/001_a.sql", fx->dir);
	assert_string_equal(list[0].path, path);
	assert_int_equal(list[1].version, 2);
	assert_string_equal(list[1].name, "2_b-two.sql");
	assert_int_equal(list[2].version, 10);
	assert_string_equal(list[2].name, "10_c.sql");
	assert_int_equal(list[3].version, 11);
	migrate_list_free(list, n);
}

/* What the empty-directory checks found, run in a child so that a crash
 * (a sanitizer abort included) is a failed test, not a lost test run. */
static int
scan_empty_child(struct fixture *fx)
{
	struct migration *list = (struct migration *)1;
	char err[256];
	size_t n = 99;
	unsigned count = 99;

	if (migrate_scan(fx->dir, &list, &n, err, sizeof(err)) != 0)
		return 2;
	if (n != 0)
		return 3;
	migrate_list_free(list, n);
	if (migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)) != 0)
		return 4;
	if (count != 0 || fx->db.nran != 0)
		return 5;
	return 0;
}

static void
test_scan_empty(void **state)
{
	struct fixture *fx = *state;
	int status;
	pid_t pid;

	/* no migrations at all (a directory of README files) is no error */
	put(fx, "README", "none yet");
	fflush(NULL);
	assert_true((pid = fork()) != -1);
	if (pid == 0)
		_exit(scan_empty_child(fx));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("scanning an empty directory crashed (signal %d)", WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("scanning an empty directory failed (step %d; 1 is a "
		    "sanitizer report)", WEXITSTATUS(status));
}

static void
test_run_in_order_once(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	unsigned count = 99;

	put(fx, "010_third.sql", "CREATE TABLE c (id INT);\n");
	put(fx, "002_second.sql", "CREATE TABLE b (id INT);\n");
	put(fx, "001_first.sql", "CREATE TABLE a (id INT);\n");
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 3);
	assert_int_equal(fx->db.nran, 3);
	assert_int_equal(fx->db.ran[0], 1);
	assert_int_equal(fx->db.ran[1], 2);
	assert_int_equal(fx->db.ran[2], 10);
	/* each got its own file's SQL, whole */
	assert_string_equal(fx->db.sql[0], "CREATE TABLE a (id INT);\n");
	assert_string_equal(fx->db.sql[1], "CREATE TABLE b (id INT);\n");
	assert_string_equal(fx->db.sql[2], "CREATE TABLE c (id INT);\n");
	assert_int_equal(fx->db.nrecorded, 3);

	/* a second run finds nothing to do */
	forget_runs(&fx->db);
	count = 99;
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 0);
	assert_int_equal(fx->db.nran, 0);

	/* a new file is the only one run next time */
	put(fx, "011_fourth.sql", "ALTER TABLE c ADD x INT;");
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	assert_int_equal(fx->db.nran, 1);
	assert_int_equal(fx->db.ran[0], 11);
	assert_string_equal(fx->db.sql[0], "ALTER TABLE c ADD x INT;");
}

static void
test_run_skips_applied(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	unsigned count;

	put(fx, "001_a.sql", "A;");
	put(fx, "002_b.sql", "B;");
	put(fx, "003_c.sql", "C;");
	/* recorded out of order, with a gap: only the gap runs */
	fx->db.recorded[0] = 3;
	fx->db.recorded[1] = 1;
	fx->db.nrecorded = 2;
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	assert_int_equal(fx->db.nran, 1);
	assert_int_equal(fx->db.ran[0], 2);
	assert_string_equal(fx->db.sql[0], "B;");
}

static void
test_run_failure_stops(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	unsigned count = 99;

	put(fx, "001_a.sql", "A;");
	put(fx, "002_b.sql", "B;");
	put(fx, "003_c.sql", "C;");
	fx->db.fail_version = 2;
	err[0] = '\0';
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), -1);
	/* the backend's reason comes through, naming the migration */
	assert_non_null(strstr(err, "002_b.sql"));
	assert_non_null(strstr(err, "SQL syntax"));
	assert_int_equal(count, 1);
	assert_int_equal(fx->db.nran, 2);	/* 003 was never tried */
	assert_int_equal(fx->db.ran[1], 2);
	assert_int_equal(fx->db.nrecorded, 1);
	assert_int_equal(fx->db.recorded[0], 1);

	/* once fixed, the next run retries the failed one and goes on */
	forget_runs(&fx->db);
	fx->db.fail_version = 0;
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 2);
	assert_int_equal(fx->db.nran, 2);
	assert_int_equal(fx->db.ran[0], 2);
	assert_int_equal(fx->db.ran[1], 3);
	assert_int_equal(fx->db.nrecorded, 3);
}

static void
test_bad_names(void **state)
{
	static const char *const names[] = { "1.sql", "abc_x.sql", "000_x.sql",
	    "001_X.sql", "001_.sql", "_x.sql", "001x.sql", "001-x.sql",
	    "001_a b.sql", "001_a.b.sql", "1234567_x.sql", "-1_x.sql" };
	struct fixture *fx = *state;
	struct migration *list;
	char err[256];
	size_t i, n;
	unsigned count;

	put(fx, "001_good.sql", "A;");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		put(fx, names[i], "X;");
		memset(err, 0, sizeof(err));
		n = 99;
		list = (struct migration *)1;
		if (migrate_scan(fx->dir, &list, &n, err, sizeof(err)) != -1)
			fail_msg("migration file name '%s' was accepted", names[i]);
		assert_null(list);
		assert_int_equal(n, 0);
		if (strstr(err, names[i]) == NULL)
			fail_msg("error for '%s' does not name it: %s", names[i], err);
		assert_non_null(strstr(err, "NNN_name.sql"));

		/* and nothing at all is applied from such a directory */
		assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), -1);
		assert_int_equal(count, 0);
		assert_int_equal(fx->db.nran, 0);
		remove_file(fx, names[i]);
	}
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
}

static void
test_good_names(void **state)
{
	struct fixture *fx = *state;
	struct migration *list;
	char err[256];
	size_t n;

	/* the widest accepted forms */
	put(fx, "999999_a-z_0-9.sql", "A;");
	put(fx, "7_x.sql", "B;");
	assert_int_equal(migrate_scan(fx->dir, &list, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].version, 7);
	assert_int_equal(list[1].version, 999999);
	migrate_list_free(list, n);
}

static void
test_duplicate_versions(void **state)
{
	struct fixture *fx = *state;
	struct migration *list;
	char err[256];
	size_t n;
	unsigned count;

	put(fx, "001_init.sql", "A;");
	put(fx, "002_users.sql", "B;");
	put(fx, "02_users_again.sql", "C;");
	assert_int_equal(migrate_scan(fx->dir, &list, &n, err, sizeof(err)), -1);
	assert_null(list);
	assert_non_null(strstr(err, "002_users.sql"));
	assert_non_null(strstr(err, "02_users_again.sql"));
	assert_non_null(strstr(err, "same version 2"));
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), -1);
	assert_int_equal(fx->db.nran, 0);
}

static void
test_unknown_db_version(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	unsigned count = 99;

	put(fx, "001_a.sql", "A;");
	put(fx, "002_b.sql", "B;");
	fx->db.recorded[0] = 1;
	fx->db.recorded[1] = 7;
	fx->db.nrecorded = 2;
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "schema version 7"));
	assert_non_null(strstr(err, "newer node"));
	/* 002 is not applied on top of a schema this node does not know */
	assert_int_equal(count, 0);
	assert_int_equal(fx->db.nran, 0);
}

static void
test_ignores_other_files(void **state)
{
	struct fixture *fx = *state;
	struct migration *list;
	char err[256];
	size_t n;
	unsigned count;

	put(fx, "001_a.sql", "A;");
	put(fx, "README", "not SQL");
	put(fx, "README.md", "# migrations");
	put(fx, "001_a.sql.bak", "old");
	put(fx, "002_b.txt", "text");
	put(fx, "003_c.sql~", "editor backup");
	put(fx, "sql", "no dot");
	put_dir(fx, "archive");
	assert_int_equal(migrate_scan(fx->dir, &list, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "001_a.sql");
	migrate_list_free(list, n);
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	assert_string_equal(fx->db.sql[0], "A;");
}

static void
test_missing_dir(void **state)
{
	struct fixture *fx = *state;
	struct migration *list;
	char err[256], path[PATH_MAX];
	size_t n;
	unsigned count = 99;

	snprintf(path, sizeof(path), "%s/nosuch", fx->dir);
	assert_int_equal(migrate_scan(path, &list, &n, err, sizeof(err)), -1);
	assert_null(list);
	assert_int_equal(n, 0);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, strerror(ENOENT)));
	assert_int_equal(migrate_run(path, &fx->be, &count, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_int_equal(count, 0);
	assert_int_equal(fx->db.nran, 0);
}

static void
test_backend_read_fails(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	unsigned count = 99;

	put(fx, "001_a.sql", "A;");
	fx->db.fail_applied = true;
	assert_int_equal(migrate_run(fx->dir, &fx->be, &count, err, sizeof(err)), -1);
	assert_string_equal(err, "connection lost");
	assert_int_equal(count, 0);
	assert_int_equal(fx->db.nran, 0);
}

/* The real schema directory obeys the rules the runner enforces. */
static void
test_shipped_schemas(void **state)
{
	struct migration *list;
	char err[256];
	size_t n;

	(void)state;
	if (migrate_scan(MAILNODE_SCHEMA_DIR, &list, &n, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(n >= 1);
	assert_int_equal(list[0].version, 1);
	migrate_list_free(list, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan_version_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_in_order_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_skips_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_failure_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_db_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ignores_other_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_read_fails, setup, teardown),
		cmocka_unit_test(test_shipped_schemas),
	};

	log_init("test_migrate", 0, LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
