/* mailnoded: the mail node daemon. Starts (or reaches) MariaDB, applies the
 * schema migrations, loads the services' settings, opens the control socket,
 * starts the services and runs one event loop per core until told to stop. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "apply.h"
#include "control.h"
#include "db.h"
#include "db_embedded.h"
#include "delivery.h"
#include "log.h"
#include "loop.h"
#include "migrate.h"
#include "queue_api.h"
#include "tenant_access.h"
#include "service.h"
#include "service_store.h"
#include "settings.h"
#include "svc_admin.h"
#include "imap_session.h"
#include "pop3_session.h"
#include "smtp_session.h"
#include "store.h"
#include "spool.h"
#include "svc_http.h"
#include "tls.h"
#include "tls_domains.h"

struct options {
	const char	*state_dir;
	const char	*mail_root;	/* NULL: STATE/mail */
	const char	*database;	/* DSN; NULL for the embedded server */
	const char	*schema_dir;
	bool		 dev;
	unsigned	 port_offset;
	unsigned	 loops;
	unsigned	 db_workers;
	enum log_level	 log_level;
	bool		 syslog;
	struct remote_conf remote;
};

static struct db_embedded	*embedded;
static struct tls_creds		*node_tls;
static struct loop_watch	 sigwatch = { .fd = -1 };

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mailnoded [--state-dir DIR] [--dev] [--port-offset N] [--database DSN]\n"
	    "                 [--mail-root DIR] [--schema-dir DIR] [--loops N] [--log-level LEVEL]\n"
	    "                 [--no-syslog]\n"
	    "  --state-dir DIR    database, mail, TLS material, logs, sockets (default ./var)\n"
	    "  --mail-root DIR    message bodies (default STATE/mail); nodes sharing a\n"
	    "                     database must share it too (see docs/architecture.md)\n"
	    "  --dev              development ports (25xx, 21xx, ...) bound to 127.0.0.1\n"
	    "  --port-offset N    add N to every default port (first start only)\n"
	    "  --database DSN     external MariaDB, mysql://user:pass@host:port/db;\n"
	    "                     also from $MAILNODE_DATABASE; default: embedded server\n"
	    "  --loops N          event loops (default: one per core)\n"
	    "  --db-workers N     threads running the sessions' database work, each with its\n"
	    "                     own connection (default 8, at most 64)\n"
	    "  --relay-host H:P   hand all remote mail to this smarthost (also $MAILNODE_RELAY_HOST)\n"
	    "                     instead of the recipient domains' MX hosts\n"
	    "  --queue-lifetime S seconds a message may wait before it bounces (default 5 days)\n"
	    "  --retry-min S      first retry delay, doubled per attempt up to 4h (default 300)\n"
	    "  --delay-warning S  tell the sender once when mail has waited S seconds\n"
	    "                     (RFC 3464 delayed; default 4 hours, 0: never)\n"
	    "  --remote-workers N threads handing mail to other servers (default 4); at most\n"
	    "                     2 of them talk to one destination at a time\n"
	    "  --route D=H:P      hand mail for domain D to H:P instead of its MX hosts or the\n"
	    "                     relay host (repeatable, up to 16)\n"
	    "  --dns-server A:P   ask this name server (an IP, [IPv6], port 53 by default)\n"
	    "                     instead of resolv.conf's (repeatable, up to 4)\n"
	    "  --dns-timeout S    bound on one MX or address lookup, all tries (default 30)\n"
	    "  --mx-port N        port of MX hosts and of domains without MX (default 25)\n"
	    "  --log-level L      error, warn, info or debug (default info)\n"
	    "  --settings-markdown  print the service settings reference and exit\n");
	exit(2);
}

/* host:port of a smarthost that takes all remote mail. */
static void
set_relay(struct options *o, const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port = 25;

	if (colon != NULL) {
		port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port < 1 || port > 65535 || colon == s) {
			fprintf(stderr, "mailnoded: relay host must be HOST or HOST:PORT\n");
			usage();
		}
	}
	if ((size_t)(colon ? colon - s : (long)strlen(s)) >= sizeof(o->remote.relay_host)) {
		fprintf(stderr, "mailnoded: relay host name too long\n");
		usage();
	}
	snprintf(o->remote.relay_host, sizeof(o->remote.relay_host), "%.*s",
	    (int)(colon ? colon - s : (long)strlen(s)), s);
	o->remote.relay_port = (unsigned)port;
}

/* domain=host:port: where one domain's mail goes. */
static void
add_route(struct options *o, const char *s)
{
	const char *eq = strchr(s, '='), *colon = strrchr(s, ':');
	struct remote_route *r;
	char *end;
	long port;
	size_t i;

	if (o->remote.nroutes >= REMOTE_ROUTES_MAX) {
		fprintf(stderr, "mailnoded: at most %d routes\n", REMOTE_ROUTES_MAX);
		usage();
	}
	if (eq == NULL || eq == s || colon == NULL || colon < eq || colon == eq + 1 ||
	    (size_t)(eq - s) >= sizeof(r->domain) || (size_t)(colon - eq - 1) >= sizeof(r->host)) {
		fprintf(stderr, "mailnoded: a route is DOMAIN=HOST:PORT\n");
		usage();
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535) {
		fprintf(stderr, "mailnoded: bad port in route '%s'\n", s);
		usage();
	}
	r = &o->remote.routes[o->remote.nroutes++];
	for (i = 0; i < (size_t)(eq - s); i++)
		r->domain[i] = (char)tolower((unsigned char)s[i]);
	r->domain[i] = '\0';
	snprintf(r->host, sizeof(r->host), "%.*s", (int)(colon - eq - 1), eq + 1);
	r->port = (unsigned)port;
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "database", required_argument, NULL, 'd' },
		{ "mail-root", required_argument, NULL, 'o' },
		{ "schema-dir", required_argument, NULL, 'm' },
		{ "dev", no_argument, NULL, 'D' },
		{ "port-offset", required_argument, NULL, 'p' },
		{ "loops", required_argument, NULL, 'l' },
		{ "db-workers", required_argument, NULL, 'j' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "no-syslog", no_argument, NULL, 'S' },
		{ "settings-markdown", no_argument, NULL, 'M' },
		{ "relay-host", required_argument, NULL, 'R' },
		{ "queue-lifetime", required_argument, NULL, 'T' },
		{ "retry-min", required_argument, NULL, 'r' },
		{ "delay-warning", required_argument, NULL, 'W' },
		{ "remote-workers", required_argument, NULL, 'w' },
		{ "route", required_argument, NULL, 'X' },
		{ "dns-server", required_argument, NULL, 'N' },
		{ "dns-timeout", required_argument, NULL, 'O' },
		{ "mx-port", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct buf doc;
	char *end, why[128];
	long v;
	int ch;

	o->state_dir = "./var";
	o->database = getenv("MAILNODE_DATABASE");
	o->schema_dir = MAILNODE_SCHEMA_DIR;
	o->log_level = LOG_LVL_INFO;
	o->syslog = true;
	o->remote.lifetime = 5 * 86400;
	o->remote.retry_min = 300;
	o->remote.retry_max = 4 * 3600;
	o->remote.timeout = 300;
	o->remote.delay_warning = 4 * 3600;
	o->db_workers = 8;
	o->remote.workers = 4;
	o->remote.per_dest = 2;
	o->remote.mx_port = 25;
	o->remote.dns.timeout_s = RESOLVE_TIMEOUT_DEFAULT;
	if (getenv("MAILNODE_RELAY_HOST"))
		set_relay(o, getenv("MAILNODE_RELAY_HOST"));
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': o->state_dir = optarg; break;
		case 'd': o->database = optarg; break;
		case 'o': o->mail_root = optarg; break;
		case 'm': o->schema_dir = optarg; break;
		case 'D': o->dev = true; break;
		case 'S': o->syslog = false; break;
		case 'R': set_relay(o, optarg); break;
		case 'X': add_route(o, optarg); break;
		case 'N':
			if (resolve_add_server(&o->remote.dns, optarg, why, sizeof(why)) == -1) {
				fprintf(stderr, "mailnoded: --dns-server '%s': %s\n", optarg, why);
				usage();
			}
			break;
		case 'O':
		case 'P':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < 1 || v > (ch == 'O' ? 3600 : 65535)) {
				fprintf(stderr, "mailnoded: bad %s '%s'\n", ch == 'O' ?
				    "number of seconds" : "port", optarg);
				usage();
			}
			if (ch == 'O')
				o->remote.dns.timeout_s = (unsigned)v;
			else
				o->remote.mx_port = (unsigned)v;
			break;
		case 'W':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < 0 || v > 100 * 86400) {
				fprintf(stderr, "mailnoded: bad number of seconds '%s'\n", optarg);
				usage();
			}
			o->remote.delay_warning = (unsigned)v;
			break;
		case 'j':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < 1 || v > 64) {
				fprintf(stderr, "mailnoded: database workers must be 1 to 64\n");
				usage();
			}
			o->db_workers = (unsigned)v;
			break;
		case 'w':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < 1 || v > REMOTE_WORKERS_MAX) {
				fprintf(stderr, "mailnoded: remote workers must be 1 to %d\n",
				    REMOTE_WORKERS_MAX);
				usage();
			}
			o->remote.workers = (unsigned)v;
			break;
		case 'T':
		case 'r':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < 1 || v > 100 * 86400) {
				fprintf(stderr, "mailnoded: bad number of seconds '%s'\n", optarg);
				usage();
			}
			if (ch == 'T')
				o->remote.lifetime = (unsigned)v;
			else
				o->remote.retry_min = (unsigned)v;
			break;
		case 'M':
			/* docs/settings.md is this output: one definition, one doc. */
			buf_init(&doc, 0);
			if (services_doc_markdown(&doc) == -1 || buf_puts(&doc, "\n") == -1 ||
			    settings_doc_markdown(&doc) == -1 ||
			    fwrite(buf_data(&doc), 1, buf_len(&doc), stdout) != buf_len(&doc))
				exit(1);
			buf_free(&doc);
			exit(0);
		case 'p':
		case 'l':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < 0 || v > (ch == 'p' ? 60000 : 256)) {
				fprintf(stderr, "mailnoded: bad number '%s'\n", optarg);
				usage();
			}
			if (ch == 'p')
				o->port_offset = (unsigned)v;
			else
				o->loops = (unsigned)v;
			break;
		case 'L':
			if (strcmp(optarg, "error") == 0) o->log_level = LOG_LVL_ERR;
			else if (strcmp(optarg, "warn") == 0) o->log_level = LOG_LVL_WARN;
			else if (strcmp(optarg, "info") == 0) o->log_level = LOG_LVL_INFO;
			else if (strcmp(optarg, "debug") == 0) o->log_level = LOG_LVL_DEBUG;
			else usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
}

static int
make_dir(const char *base, const char *sub, char *out, size_t outlen)
{
	if (snprintf(out, outlen, "%s%s%s", base, sub ? "/" : "", sub ? sub : "") >= (int)outlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir(out, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/* Blocking start-up work on the database: migrations and service rows. */
static int
prepare_database(const struct db_conf *conf, const char *schema_dir, char *err, size_t errlen)
{
	struct migrate_backend be;
	unsigned applied;
	MYSQL *m;
	MYSQL_RES *res;
	int rc = -1;

	if ((m = db_connect(conf, true, err, errlen)) == NULL)
		return -1;
	/* Nodes sharing one database migrate one at a time. */
	if (mysql_query(m, "SELECT GET_LOCK('mailnode.migrate', 120)") != 0 ||
	    (res = mysql_store_result(m)) == NULL) {
		snprintf(err, errlen, "taking the migration lock: %s", mysql_error(m));
		goto done;
	}
	mysql_free_result(res);
	migrate_backend_mariadb(&be, m);
	if (migrate_run(schema_dir, &be, &applied, err, errlen) == -1)
		goto unlock;
	log_info("database schema up to date (%u migration%s applied now)", applied,
	    applied == 1 ? "" : "s");
	if (service_store_load(m, err, errlen) == -1)
		goto unlock;
	rc = 0;
unlock:
	if (mysql_query(m, "SELECT RELEASE_LOCK('mailnode.migrate')") == 0)
		mysql_free_result(mysql_store_result(m));
done:
	mysql_close(m);
	return rc;
}

static void
shutdown_noop(void *arg)
{
	(void)arg;
}

static void
shutdown_loops(void *arg)
{
	(void)arg;
	loops_stop();
}

/* Services stop while the loops still run (their listeners are let go by
 * every loop); the loops stop once every loop has passed that point. */
static void
begin_shutdown(void)
{
	static bool started;

	if (started)
		return;
	started = true;
	services_stop_all();
	if (loop_broadcast(shutdown_noop, NULL, shutdown_loops, NULL) == -1)
		loops_stop();
}

static void
on_signal(struct loop_watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			log_info("signal %s: stopping", si.ssi_signo == SIGINT ? "INT" : "TERM");
			begin_shutdown();
			break;
		case SIGCHLD: {
			pid_t pid;
			int status;

			while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
				if (embedded == NULL || !db_embedded_reap(embedded, pid, status))
					log_debug("child %ld exited", (long)pid);
			break;
		}
		default:
			break;
		}
	}
}

static int
watch_signals(char *err, size_t errlen)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (sigwatch.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		return -1;
	}
	sigwatch.cb = on_signal;
	if (loop_watch_add(loops_get(0), &sigwatch, EPOLLIN) == -1) {
		snprintf(err, errlen, "watching signals: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void
write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) == EOF)
		log_warn("pid file %s: %s", path, strerror(errno));
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	struct db_conf conf = { 0 };
	char dir[PATH_MAX], path[PATH_MAX], err[1024];
	struct api_node_info info;
	long ncpu;
	int rc = 1;
	bool loops_ready = false, pool_ready = false, spool_ready = false;

	parse_options(argc, argv, &o);
	log_init("mailnoded", o.syslog, o.log_level);
	signal(SIGPIPE, SIG_IGN);

	if (make_dir(o.state_dir, NULL, dir, sizeof(dir)) == -1 ||
	    make_dir(o.state_dir, "run", dir, sizeof(dir)) == -1 ||
	    make_dir(o.state_dir, "log", dir, sizeof(dir)) == -1 ||
	    (o.mail_root == NULL && make_dir(o.state_dir, "mail", dir, sizeof(dir)) == -1) ||
	    (o.mail_root != NULL && make_dir(o.mail_root, NULL, dir, sizeof(dir)) == -1)) {
		log_err("state directory %s: %s", dir, strerror(errno));
		return 1;
	}
	/* Block the signals before any thread or child exists so all inherit it. */
	if (o.loops == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		o.loops = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	if (loops_init(o.loops) == -1) {
		log_err("cannot create the event loops");
		return 1;
	}
	loops_ready = true;
	if (watch_signals(err, sizeof(err)) == -1)
		goto fail;

	snprintf(path, sizeof(path), "%s/mailnode-v1.schema.yaml", o.schema_dir);
	if (apply_init(path, err, sizeof(err)) == -1)
		goto fail;
	snprintf(path, sizeof(path), "%s/tls", o.state_dir);
	if (tls_dev_certs_ensure(path, err, sizeof(err)) == -1)
		goto fail;
	{
		char cert[PATH_MAX + 16], key[PATH_MAX + 16];

		snprintf(cert, sizeof(cert), "%s/server.pem", path);
		snprintf(key, sizeof(key), "%s/server-key.pem", path);
		if (svc_admin_load_tls(cert, key, err, sizeof(err)) == -1)
			goto fail;
		if ((node_tls = tls_creds_load(cert, key, err, sizeof(err))) == NULL)
			goto fail;
		smtp_set_tls(node_tls);
		imap_set_tls(node_tls);
		pop3_set_tls(node_tls);
	}

	if (o.database != NULL) {
		if (db_conf_parse(o.database, &conf, err, sizeof(err)) == -1)
			goto fail;
	} else if ((embedded = db_embedded_start(o.state_dir, &conf, err, sizeof(err))) == NULL)
		goto fail;

	services_init(o.dev, o.port_offset, service_store_save_state);
	service_set_handler("http", &svc_http_redirect);
	service_set_handler("admin", &svc_admin_api);
	service_set_handler("smtp", &smtp_inbound);
	service_set_handler("submission", &smtp_submission);
	service_set_handler("smtps", &smtp_submission);
	service_set_handler("spool", &delivery_runner);
	service_set_handler("imap", &imap_service);
	service_set_handler("imaps", &imap_service);
	service_set_handler("pop3", &pop3_service);
	service_set_handler("pop3s", &pop3_service);
	if (prepare_database(&conf, o.schema_dir, err, sizeof(err)) == -1)
		goto fail;
	/* Jobs wait on the server (round trips, commits) and hash passwords:
	 * more threads than cores keep the loops' work moving. */
	if (db_pool_start(&conf, o.db_workers) == -1) {
		snprintf(err, sizeof(err), "cannot start the database workers");
		goto fail;
	}
	pool_ready = true;
	db_pool_watch(2000);
	snprintf(path, sizeof(path), "%s/spool", o.state_dir);
	if (spool_init(path, &conf, err, sizeof(err)) == -1)
		goto fail;
	spool_ready = true;
	{
		char mail[PATH_MAX + 8];

		if (o.mail_root != NULL)
			snprintf(mail, sizeof(mail), "%s", o.mail_root);
		else
			snprintf(mail, sizeof(mail), "%s/mail", o.state_dir);
		if (delivery_init(path, mail, &conf, &o.remote, err, sizeof(err)) == -1)
			goto fail;
		if (store_init(mail) == -1) {
			snprintf(err, sizeof(err), "mail root path too long");
			goto fail;
		}
	}
	queue_api_init(path);
	queue_api_watch(2000);
	tenant_access_start();
	tls_domains_start(node_tls);

	snprintf(path, sizeof(path), "%s/run/control.sock", o.state_dir);
	if (control_start(path, err, sizeof(err)) == -1)
		goto fail;
	info = (struct api_node_info){ .version = MAILNODE_VERSION, .started = time(NULL),
	    .loops = o.loops, .database = embedded ? "embedded" : "external",
	    .state_dir = o.state_dir };
	api_set_node_info(&info);

	services_autostart();
	snprintf(path, sizeof(path), "%s/run/mailnoded.pid", o.state_dir);
	write_pidfile(path);
	log_info("mailnoded %s ready: %u loops, control socket %s/run/control.sock",
	    MAILNODE_VERSION, o.loops, o.state_dir);

	rc = loops_run() == 0 ? 0 : 1;

	services_stop_all();
	control_stop();
	tenant_access_stop();
	tls_domains_stop();
	(void)unlink(path);
	log_info("mailnoded stopped");
	goto out;
fail:
	log_err("%s", err);
out:
	delivery_fini();
	if (spool_ready)
		spool_fini();
	if (pool_ready)
		db_pool_stop();
	if (sigwatch.fd != -1)
		close(sigwatch.fd);
	if (loops_ready)
		loops_free();
	db_embedded_stop(embedded);
	db_conf_free(&conf);
	apply_fini();
	svc_admin_free_tls();
	tls_creds_free(node_tls);
	return rc;
}
