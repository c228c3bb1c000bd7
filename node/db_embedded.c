/* db_embedded: runs a private mariadbd under STATE/db with its socket in
 * STATE/run. It dies with the node (PR_SET_PDEATHSIG) and a leftover server
 * from a node killed with -9 is stopped before a new one starts. */
#include "db_embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

struct db_embedded {
	char	datadir[PATH_MAX];
	char	socket[PATH_MAX];
	char	pidfile[PATH_MAX];
	char	logfile[PATH_MAX];
	pid_t	pid;
	bool	stopping;
	int	restarts;		/* in a row, without a minute of uptime */
	time_t	spawned;
	struct loop_timer respawn;	/* on loop 0 */
};

static const char *const install_db_paths[] = {
	"/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db", NULL
};
static const char *const mariadbd_paths[] = {
	"/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/libexec/mariadbd", NULL
};

static const char *
find_exe(const char *const *paths)
{
	for (; *paths; paths++)
		if (access(*paths, X_OK) == 0)
			return *paths;
	return NULL;
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/* Run argv to completion with output to logfile; returns exit status or -1. */
static int
run_wait(char *const argv[], const char *logfile)
{
	pid_t pid;
	int status, fd;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		if ((fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) != -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* A mariadbd left behind by a node that was killed: stop it first. */
static void
stop_leftover(struct db_embedded *e)
{
	char buf[32];
	FILE *f;
	long pid;
	int i;

	if ((f = fopen(e->pidfile, "r")) == NULL)
		return;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return;
	}
	fclose(f);
	pid = strtol(buf, NULL, 10);
	if (pid <= 1 || kill((pid_t)pid, 0) == -1)
		return;
	log_warn("embedded MariaDB from an earlier run (pid %ld) still runs; stopping it", pid);
	kill((pid_t)pid, SIGTERM);
	for (i = 0; i < 600 && kill((pid_t)pid, 0) == 0; i++)
		usleep(100000);
	if (kill((pid_t)pid, 0) == 0) {
		log_warn("embedded MariaDB pid %ld ignored SIGTERM for 60s; killing it", pid);
		kill((pid_t)pid, SIGKILL);
		usleep(200000);
	}
}

static int
db_embedded_spawn(struct db_embedded *e, char *err, size_t errlen)
{
	const char *exe = find_exe(mariadbd_paths);
	char a_datadir[PATH_MAX + 16], a_socket[PATH_MAX + 16], a_pid[PATH_MAX + 16],
	    a_log[PATH_MAX + 16];
	pid_t parent = getpid();

	if (exe == NULL) {
		snprintf(err, errlen, "mariadbd not found: install the mariadb-server package");
		return -1;
	}
	snprintf(a_datadir, sizeof(a_datadir), "--datadir=%s", e->datadir);
	snprintf(a_socket, sizeof(a_socket), "--socket=%s", e->socket);
	snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", e->pidfile);
	snprintf(a_log, sizeof(a_log), "--log-error=%s", e->logfile);
	char *argv[] = { (char *)exe, "--no-defaults", a_datadir, a_socket, a_pid, a_log,
	    "--skip-networking", "--skip-name-resolve", "--character-set-server=utf8mb4",
	    "--collation-server=utf8mb4_bin", "--innodb-buffer-pool-size=128M",
	    "--innodb-flush-log-at-trx-commit=1", "--max-connections=500",
	    "--skip-log-bin", getuid() == 0 ? "--user=root" : NULL, NULL };

	e->spawned = time(NULL);
	if ((e->pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (e->pid == 0) {
		sigset_t none;

		/* Die with the node, even when it is killed with -9. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		execv(exe, argv);
		_exit(127);
	}
	return 0;
}

static int
wait_ready(struct db_embedded *e, int seconds, char *err, size_t errlen)
{
	struct db_conf c = { .socket = e->socket, .user = "root", .database = "mysql" };
	int i;

	for (i = 0; i < seconds * 10; i++) {
		MYSQL *m;
		int status;
		char cerr[256];

		if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
			e->pid = -1;
			snprintf(err, errlen, "embedded MariaDB exited during start-up; see %s", e->logfile);
			return -1;
		}
		if ((m = db_connect(&c, false, cerr, sizeof(cerr))) != NULL) {
			mysql_close(m);
			return 0;
		}
		usleep(100000);
	}
	snprintf(err, errlen, "embedded MariaDB did not answer within %d s; see %s", seconds, e->logfile);
	return -1;
}

struct db_embedded *
db_embedded_start(const char *state_dir, struct db_conf *conf, char *err, size_t errlen)
{
	struct db_embedded *e;
	char rundir[PATH_MAX], logdir[PATH_MAX], marker[PATH_MAX + 32];
	struct stat st;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->pid = -1;
	if (snprintf(e->datadir, sizeof(e->datadir), "%s/db/data", state_dir) >= (int)sizeof(e->datadir) ||
	    snprintf(rundir, sizeof(rundir), "%s/run", state_dir) >= (int)sizeof(rundir) ||
	    snprintf(logdir, sizeof(logdir), "%s/log", state_dir) >= (int)sizeof(logdir) ||
	    snprintf(e->socket, sizeof(e->socket), "%s/mariadb.sock", rundir) >= 108 ||
	    snprintf(e->pidfile, sizeof(e->pidfile), "%s/mariadb.pid", rundir) >= (int)sizeof(e->pidfile) ||
	    snprintf(e->logfile, sizeof(e->logfile), "%s/mariadb.log", logdir) >= (int)sizeof(e->logfile)) {
		snprintf(err, errlen, "state directory path too long for a unix socket");
		goto fail;
	}
	if (mkdir_p(e->datadir, 0700) == -1 || mkdir_p(rundir, 0700) == -1 ||
	    mkdir_p(logdir, 0700) == -1) {
		snprintf(err, errlen, "creating %s: %s", state_dir, strerror(errno));
		goto fail;
	}
	stop_leftover(e);

	/* First start: a datadir is ours once the install step finished. */
	snprintf(marker, sizeof(marker), "%s/.mailnode-initialized", e->datadir);
	if (stat(marker, &st) == -1) {
		const char *exe = find_exe(install_db_paths);
		char a_datadir[PATH_MAX + 16];
		int fd;

		if (exe == NULL) {
			snprintf(err, errlen, "mariadb-install-db not found: install the mariadb-server package");
			goto fail;
		}
		log_info("initializing embedded MariaDB in %s", e->datadir);
		snprintf(a_datadir, sizeof(a_datadir), "--datadir=%s", e->datadir);
		char *argv[] = { (char *)exe, "--no-defaults", a_datadir,
		    "--auth-root-authentication-method=normal", "--skip-test-db",
		    "--skip-name-resolve", getuid() == 0 ? "--user=root" : NULL, NULL };
		if (run_wait(argv, e->logfile) != 0) {
			snprintf(err, errlen, "mariadb-install-db failed; see %s", e->logfile);
			goto fail;
		}
		if ((fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) == -1 ||
		    fsync(fd) == -1) {
			snprintf(err, errlen, "writing %s: %s", marker, strerror(errno));
			if (fd != -1)
				close(fd);
			goto fail;
		}
		close(fd);
	}
	if (db_embedded_spawn(e, err, errlen) == -1)
		goto fail;
	if (wait_ready(e, 120, err, errlen) == -1)
		goto fail;
	log_info("embedded MariaDB running (pid %ld, socket %s)", (long)e->pid, e->socket);

	memset(conf, 0, sizeof(*conf));
	conf->socket = strdup(e->socket);
	conf->user = strdup("root");
	conf->database = strdup("mailnode");
	if (conf->socket == NULL || conf->user == NULL || conf->database == NULL) {
		db_conf_free(conf);
		snprintf(err, errlen, "out of memory");
		db_embedded_stop(e);
		return NULL;
	}
	return e;
fail:
	if (e->pid > 0) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
	}
	free(e);
	return NULL;
}

pid_t
db_embedded_pid(const struct db_embedded *e)
{
	return e->pid;
}

static void
db_embedded_respawn(struct loop_timer *t)
{
	struct db_embedded *e = t->arg;
	char err[512];

	if (e->stopping || e->pid > 0)
		return;
	log_info("restarting embedded MariaDB (attempt %d)", e->restarts);
	if (db_embedded_spawn(e, err, sizeof(err)) == -1) {
		log_err("embedded MariaDB not restarted: %s", err);
		loop_timer_start(loops_get(0), &e->respawn, 30000);
	}
}

bool
db_embedded_reap(struct db_embedded *e, pid_t pid, int status)
{
	unsigned delay;

	if (pid != e->pid)
		return false;
	e->pid = -1;
	if (e->stopping)
		return true;
	/* A server that ran for a minute starts the backoff afresh. */
	if (time(NULL) - e->spawned >= 60)
		e->restarts = 0;
	e->restarts++;
	db_pool_mark_down();
	delay = e->restarts >= 6 ? 30000 : 500u << (e->restarts - 1);
	log_err("embedded MariaDB exited (%s %d); restarting it in %u ms; see %s",
	    WIFEXITED(status) ? "status" : "signal",
	    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), delay, e->logfile);
	/* The database workers reconnect on their own once it answers; the
	 * services give temporary failures meanwhile. */
	e->respawn.cb = db_embedded_respawn;
	e->respawn.arg = e;
	loop_timer_start(loops_get(0), &e->respawn, delay);
	return true;
}

void
db_embedded_stop(struct db_embedded *e)
{
	int i, status;

	if (e == NULL)
		return;
	e->stopping = true;
	if (loop_timer_armed(&e->respawn) && loops_get(0) != NULL)
		loop_timer_stop(loops_get(0), &e->respawn);
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		for (i = 0; i < 600; i++) {
			pid_t r = waitpid(e->pid, &status, WNOHANG);

			if (r == e->pid || (r == -1 && errno == ECHILD))
				break;
			usleep(100000);
		}
		if (i == 600) {
			log_err("embedded MariaDB did not stop in 60s; killing it");
			kill(e->pid, SIGKILL);
			waitpid(e->pid, &status, 0);
		}
		log_info("embedded MariaDB stopped");
	}
	free(e);
}
