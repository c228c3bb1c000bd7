/* mailnodectl: the local admin's client of the node's control socket.
 * Sends one request ("METHOD /path" + YAML body), prints the answer as a
 * table or, with -o yaml, as the YAML documents the node sent. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "ydoc.h"

#define EXIT_REFUSED	1	/* the node answered with an error */
#define EXIT_USAGE	2
#define EXIT_UNREACHED	3	/* no node on the socket */

static const char *sock_path;
static bool yaml_out;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mailnodectl [-s SOCKET | --state-dir DIR] [-o yaml] COMMAND\n"
	    "commands:\n"
	    "  status                         node, database and every service\n"
	    "  services                       every service with its settings\n"
	    "  service show NAME              one service\n"
	    "  service start NAME             start a service\n"
	    "  service stop NAME [--now]      stop accepting; --now also ends its sessions\n"
	    "  service restart NAME           stop (draining) and start again\n"
	    "  sessions [--service NAME] [--tenant NAME]\n"
	    "                                 live sessions\n"
	    "  session kill ID                end a session (its protocol's goodbye)\n"
	    "  access                         admitted and refused connections, per service and tenant\n"
	    "  stats [tenants]                monitoring figures (YAML): node and queue, or per tenant\n"
	    "  apply -f FILE [--dry-run]      apply a YAML stream (- for standard input)\n"
	    "  get KIND [NAME] [--tenant T]   stored documents: tenants, domains, mailboxes,\n"
	    "                                 aliases, services\n"
	    "  delete KIND NAME [--purge]     delete; --purge also removes the mail it holds\n"
	    "  passwd ADDRESS                 set a mailbox password (read from standard input)\n"
	    "  queue [list]                   queued messages\n"
	    "  queue show|retry|hold|release|delete ID\n"
	    "                                 one message; delete removes its mail for good\n"
	    "  token create [--tenant T] [--description D]\n"
	    "                                 an admin API token (shown once)\n"
	    "The socket defaults to $MAILNODE_CONTROL or ./var/run/control.sock.\n");
	exit(EXIT_USAGE);
}

/* One round trip; sends payload (may be NULL), fills status and body. */
static int
request(const char *method, const char *path, const struct buf *payload, int *status,
    struct buf *body)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct buf out, in;
	size_t eol, len;
	int fd = -1, rc = -1;
	ssize_t r;

	buf_init(&out, 0);
	buf_init(&in, 64 * 1024 * 1024);
	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "mailnodectl: socket path too long: %s\n", sock_path);
		goto done;
	}
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "mailnodectl: cannot reach the node at %s: %s\n"
		    "  (is mailnoded running? ./run up starts the dev node)\n",
		    sock_path, strerror(errno));
		rc = -2;
		goto done;
	}
	if (buf_printf(&out, "%s %s\n", method, path) == -1 ||
	    (payload && buf_append(&out, buf_data(payload), buf_len(payload)) == -1))
		goto done;
	while (buf_len(&out) > 0)
		if (buf_write_fd(&out, fd) == -1) {
			fprintf(stderr, "mailnodectl: sending: %s\n", strerror(errno));
			goto done;
		}
	if (shutdown(fd, SHUT_WR) == -1)
		goto done;
	while ((r = buf_read_fd(&in, fd)) > 0)
		;
	if (r == -1) {
		fprintf(stderr, "mailnodectl: reading the answer: %s\n", strerror(errno));
		goto done;
	}
	len = buf_line(&in, &eol);
	if (eol == 0 || len == 0 || len > 3) {
		fprintf(stderr, "mailnodectl: the node closed the connection without an answer\n");
		goto done;
	}
	*status = atoi(buf_data(&in));
	buf_consume(&in, eol);
	if (buf_append(body, buf_data(&in), buf_len(&in)) == -1)
		goto done;
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	buf_free(&out);
	buf_free(&in);
	return rc;
}

static const char *
get_str(const struct ydoc_node *n, const char *key)
{
	const char *s = ydoc_str(ydoc_get(n, key));

	return s ? s : "";
}

static const char *
get_path(const struct ydoc_node *n, const char *a, const char *b)
{
	return get_str(ydoc_get(n, a), b);
}

static void
print_status(const struct ydoc_stream *st)
{
	const struct ydoc_node *doc = st->ndocs ? st->docs[0] : NULL;
	const struct ydoc_node *node = ydoc_get(doc, "node"), *svcs = ydoc_get(doc, "services");
	size_t i;

	printf("mailnode %s, up %ss, %s loops, %s sessions; database %s (%s)\n",
	    get_str(node, "version"), get_str(node, "uptime"), get_str(node, "loops"),
	    get_str(node, "sessions"), get_path(node, "database", "mode"),
	    get_path(node, "database", "status"));
	if (ydoc_get(node, "queue"))
		printf("queue: %s messages, %s bytes, oldest %ss\n", get_path(node, "queue", "depth"),
		    get_path(node, "queue", "bytes"), get_path(node, "queue", "oldestAge"));
	printf("\n");
	printf("%-15s %-9s %6s %8s %8s %8s  %s\n", "SERVICE", "STATE", "PORT",
	    "CURRENT", "TOTAL", "REJECTED", "REASON");
	for (i = 0; svcs && svcs->type == YDOC_SEQ && i < svcs->n; i++) {
		const struct ydoc_node *s = svcs->items[i];
		const char *port = get_str(s, "port");

		printf("%-15s %-9s %6s %8s %8s %8s  %s\n", get_str(s, "name"),
		    get_str(s, "state"), *port ? port : "-", get_str(s, "current"),
		    get_str(s, "total"), get_str(s, "rejected"), get_str(s, "reason"));
	}
}

static void
print_services(const struct ydoc_stream *st)
{
	size_t i, j;

	printf("%-15s %-9s %-24s %6s %8s %8s %-5s %-7s\n", "SERVICE", "STATE", "BIND",
	    "PORT", "MAXCLI", "TIMEOUT", "AUTO", "RESTART");
	for (i = 0; i < st->ndocs; i++) {
		const struct ydoc_node *d = st->docs[i], *spec = ydoc_get(d, "spec");
		const struct ydoc_node *bind = ydoc_get(spec, "bind");
		char binds[128] = "-";
		size_t n = 0;
		const char *port = get_str(spec, "port");

		for (j = 0; bind && bind->type == YDOC_SEQ && j < bind->n; j++) {
			int w = snprintf(binds + n, sizeof(binds) - n, "%s%s", j ? "," : "",
			    ydoc_str(bind->items[j]) ? ydoc_str(bind->items[j]) : "?");

			if (w < 0 || (size_t)w >= sizeof(binds) - n)
				break;
			n += (size_t)w;
		}
		printf("%-15s %-9s %-24s %6s %8s %8s %-5s %-7s\n",
		    get_path(d, "metadata", "name"), get_path(d, "status", "state"), binds,
		    *port ? port : "-", *get_str(spec, "maxClients") ? get_str(spec, "maxClients") : "-",
		    *get_str(spec, "timeout") ? get_str(spec, "timeout") : "-",
		    get_str(spec, "autoStart"), get_str(spec, "restartOnChange"));
		if (strcmp(get_path(d, "status", "state"), "running") != 0 &&
		    *get_path(d, "status", "reason"))
			printf("  %s\n", get_path(d, "status", "reason"));
	}
}

static void
print_sessions(const struct ydoc_stream *st)
{
	const struct ydoc_node *items = st->ndocs ? ydoc_get(st->docs[0], "items") : NULL;
	size_t i;

	printf("%-8s %-12s %-28s %-12s %-24s %-20s %-20s %10s %10s\n", "ID", "SERVICE", "PEER", "TENANT",
	    "USER", "TLS", "STARTED", "IN", "OUT");
	for (i = 0; items && items->type == YDOC_SEQ && i < items->n; i++) {
		const struct ydoc_node *s = items->items[i];

		printf("%-8s %-12s %-28s %-12s %-24s %-20s %-20s %10s %10s\n", get_str(s, "id"),
		    get_str(s, "service"), get_str(s, "peer"),
		    *get_str(s, "tenant") ? get_str(s, "tenant") : "-",
		    *get_str(s, "user") ? get_str(s, "user") : "-", get_str(s, "tls"),
		    get_str(s, "started"), get_str(s, "bytesIn"), get_str(s, "bytesOut"));
	}
}

static void
print_access_list(const struct ydoc_node *items, const char *title)
{
	size_t i;

	if (items == NULL || items->type != YDOC_SEQ)
		return;
	printf("%-24s %8s %10s %10s %10s %10s\n", title, "CURRENT", "ACCEPTED", "DENIED", "LIMITED",
	    "AUTHFAIL");
	for (i = 0; i < items->n; i++) {
		const struct ydoc_node *s = items->items[i];

		printf("%-24s %8s %10s %10s %10s %10s\n", get_str(s, "name"), get_str(s, "current"),
		    get_str(s, "accepted"), get_str(s, "rejectedByAccess"), get_str(s, "rejectedByLimit"),
		    get_str(s, "authFailures"));
	}
}

static void
print_access(const struct ydoc_stream *st)
{
	const struct ydoc_node *d = st->ndocs ? st->docs[0] : NULL;

	if (d == NULL)
		return;
	if (ydoc_get(d, "logins"))
		printf("failed logins %s, blocks %s\n", get_path(d, "logins", "failures"),
		    get_path(d, "logins", "blocks"));
	print_access_list(ydoc_get(d, "services"), "SERVICE");
	print_access_list(ydoc_get(d, "tenants"), "TENANT");
}

static void
print_session_end(const struct ydoc_stream *st)
{
	if (st->ndocs)
		printf("session %s: %s\n", get_str(st->docs[0], "id"), get_str(st->docs[0], "result"));
}

/* Names on the command line go into a request path: keep them plain. */
static bool
valid_word(const char *s)
{
	if (*s == '\0' || strlen(s) > 254)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || strchr("/?&%#", *s) != NULL)
			return false;
	return true;
}

static void
url_encode(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-_.~@", c))
			buf_append(b, s, 1);
		else
			buf_printf(b, "%%%02X", c);
	}
}

static int
read_input(const char *file, struct buf *b)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	char chunk[65536];
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "mailnodectl: %s: %s\n", file, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(b, chunk, n) == -1) {
			fprintf(stderr, "mailnodectl: %s: larger than 64 MiB\n", file);
			if (f != stdin)
				fclose(f);
			return -1;
		}
	if (f != stdin)
		fclose(f);
	return 0;
}

/* The new password from standard input (one line), sent as YAML. */
static int
read_password(struct buf *b)
{
	char line[1100];
	size_t n;

	if (isatty(0))
		fprintf(stderr, "new password: ");
	if (fgets(line, sizeof(line), stdin) == NULL) {
		fprintf(stderr, "mailnodectl: no password on standard input\n");
		return -1;
	}
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n < 8) {
		fprintf(stderr, "mailnodectl: a password has at least 8 characters\n");
		explicit_bzero(line, sizeof(line));
		return -1;
	}
	if (buf_puts(b, "password: ") == -1 || buf_append(b, "\"", 1) == -1) {
		explicit_bzero(line, sizeof(line));
		return -1;
	}
	/* A double-quoted YAML scalar: escape what would end or bend it. */
	for (size_t i = 0; i < n; i++) {
		if ((line[i] == '"' || line[i] == '\\') && buf_append(b, "\\", 1) == -1)
			break;
		if (buf_append(b, &line[i], 1) == -1)
			break;
	}
	explicit_bzero(line, sizeof(line));
	return buf_puts(b, "\"\n");
}

static void
print_message(const struct ydoc_stream *st)
{
	const struct ydoc_node *d = st->ndocs ? st->docs[0] : NULL;
	const char *kind = get_str(d, "kind");

	if (strcmp(kind, "Token") == 0)
		printf("%s\n(tenant %s; shown once: store it now)\n", get_str(d, "token"),
		    get_str(d, "tenant"));
	else if (strcmp(kind, "DeleteResult") == 0)
		printf("deleted %s %s (%s messages purged)\n", get_str(d, "deleted"),
		    get_str(d, "name"), get_str(d, "messagesPurged"));
	else if (strcmp(kind, "PasswordResult") == 0)
		printf("password of %s set (%s)\n", get_str(d, "mailbox"), get_str(d, "scheme"));
}

static void
print_queue(const struct ydoc_stream *st)
{
	const struct ydoc_node *items = st->ndocs ? ydoc_get(st->docs[0], "items") : NULL;
	size_t i;

	printf("%-26s %-10s %-5s %-8s %-21s %s\n", "ID", "SIZE", "HELD", "PENDING", "RECEIVED", "SENDER");
	for (i = 0; items && items->type == YDOC_SEQ && i < items->n; i++) {
		const struct ydoc_node *m = items->items[i];

		printf("%-26s %-10s %-5s %-8s %-21s %s\n", get_str(m, "id"), get_str(m, "size"),
		    get_str(m, "held"), get_str(m, "pending"), get_str(m, "received"), get_str(m, "sender"));
	}
}

static void
print_queue_message(const struct ydoc_stream *st)
{
	const struct ydoc_node *d = st->ndocs ? st->docs[0] : NULL, *m = ydoc_get(d, "message");
	const struct ydoc_node *rc = ydoc_get(m, "recipients");
	size_t i;

	if (strcmp(get_str(d, "kind"), "QueueDeleted") == 0) {
		printf("deleted %s\n", get_str(d, "id"));
		return;
	}
	printf("%s from %s, %s bytes, received %s%s\n", get_str(m, "id"), get_str(m, "sender"),
	    get_str(m, "size"), get_str(m, "received"),
	    strcmp(get_str(m, "held"), "true") == 0 ? ", held" : "");
	for (i = 0; rc && rc->type == YDOC_SEQ && i < rc->n; i++) {
		const struct ydoc_node *r = rc->items[i];

		printf("  %-40s %-6s %-9s attempts %s, next %s%s%s\n", get_str(r, "address"),
		    get_str(r, "delivery"), get_str(r, "state"), get_str(r, "attempts"),
		    get_str(r, "nextAttempt"), *get_str(r, "lastError") ? ": " : "", get_str(r, "lastError"));
	}
}

static void
print_apply(const struct ydoc_stream *st)
{
	const struct ydoc_node *d = st->ndocs ? st->docs[0] : NULL;
	const struct ydoc_node *res = ydoc_get(d, "results"), *errs = ydoc_get(d, "errors");
	size_t i, j;

	for (i = 0; errs && errs->type == YDOC_SEQ && i < errs->n; i++) {
		const struct ydoc_node *e = errs->items[i];

		fprintf(stderr, "error: ");
		if (*get_str(e, "document"))
			fprintf(stderr, "document %s", get_str(e, "document"));
		if (*get_str(e, "kind"))
			fprintf(stderr, " (%s %s)", get_str(e, "kind"), get_str(e, "name"));
		if (*get_str(e, "line"))
			fprintf(stderr, " at line %s, column %s", get_str(e, "line"), get_str(e, "column"));
		if (*get_str(e, "path"))
			fprintf(stderr, ", %s", get_str(e, "path"));
		fprintf(stderr, ": %s\n", get_str(e, "message"));
	}
	if (errs) {
		fprintf(stderr, "nothing was applied\n");
		return;
	}
	for (i = 0; res && res->type == YDOC_SEQ && i < res->n; i++) {
		const struct ydoc_node *r = res->items[i], *f = ydoc_get(r, "fields");

		printf("%-9s %-8s %s", get_str(r, "action"), get_str(r, "kind"), get_str(r, "name"));
		for (j = 0; f && f->type == YDOC_SEQ && j < f->n; j++)
			printf("%s%s", j ? ", " : " (", ydoc_str(f->items[j]));
		printf("%s\n", f && f->n ? ")" : "");
	}
	printf("%s: %s created, %s updated, %s unchanged\n",
	    strcmp(get_str(d, "dryRun"), "true") == 0 ? "dry run, nothing changed" : "applied",
	    get_path(d, "summary", "created"), get_path(d, "summary", "updated"),
	    get_path(d, "summary", "unchanged"));
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "output", required_argument, NULL, 'o' },
		{ "service", required_argument, NULL, 'v' },
		{ "now", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *service_filter = NULL, *cmd, *method = "GET", *file = NULL, *tenant = NULL,
	    *description = NULL;
	bool dry_run = false, purge = false;
	struct buf payload;
	char path[512], statedir_sock[4096];
	void (*print)(const struct ydoc_stream *) = NULL;
	struct ydoc_stream *st = NULL;
	struct buf body;
	bool now = false;
	int ch, status = 0, r, rc;

	buf_init(&payload, 64 * 1024 * 1024);
	sock_path = getenv("MAILNODE_CONTROL");
	if (sock_path == NULL)
		sock_path = "./var/run/control.sock";
	/* "+" stops at the first command word so its own flags come after. */
	while ((ch = getopt_long(argc, argv, "+s:o:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': sock_path = optarg; break;
		case 'S':
			snprintf(statedir_sock, sizeof(statedir_sock), "%s/run/control.sock", optarg);
			sock_path = statedir_sock;
			break;
		case 'o':
			if (strcmp(optarg, "yaml") != 0)
				usage();
			yaml_out = true;
			break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	cmd = argv[0];
	/* Flags after the command words. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--now") == 0)
			now = true;
		else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && strcmp(argv[i + 1], "yaml") == 0) {
			yaml_out = true;
			i++;
		} else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc)
			service_filter = argv[++i];
		else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
			tenant = argv[++i];
		else if (strcmp(argv[i], "--description") == 0 && i + 1 < argc)
			description = argv[++i];
		else if (strcmp(argv[i], "--dry-run") == 0)
			dry_run = true;
		else if (strcmp(argv[i], "--purge") == 0)
			purge = true;
		else if (argv[i][0] == '-')
			usage();
	}

	if (strcmp(cmd, "status") == 0 && argc == 1) {
		snprintf(path, sizeof(path), "/v1/status");
		print = print_status;
	} else if (strcmp(cmd, "services") == 0 && argc == 1) {
		snprintf(path, sizeof(path), "/v1/services");
		print = print_services;
	} else if (strcmp(cmd, "sessions") == 0) {
		if ((service_filter && !valid_word(service_filter)) || (tenant && !valid_word(tenant)))
			usage();
		snprintf(path, sizeof(path), "/v1/sessions%s%s%s%s%s", service_filter || tenant ? "?" : "",
		    service_filter ? "service=" : "", service_filter ? service_filter : "",
		    service_filter && tenant ? "&" : "", "");
		if (tenant) {
			size_t used = strlen(path);

			snprintf(path + used, sizeof(path) - used, "tenant=%s", tenant);
		}
		print = print_sessions;
	} else if (strcmp(cmd, "session") == 0 && argc == 3 && strcmp(argv[1], "kill") == 0) {
		if (strspn(argv[2], "0123456789") != strlen(argv[2]) || argv[2][0] == '\0')
			usage();
		method = "DELETE";
		snprintf(path, sizeof(path), "/v1/sessions/%s", argv[2]);
		print = print_session_end;
	} else if (strcmp(cmd, "access") == 0 && argc == 1) {
		snprintf(path, sizeof(path), "/v1/access");
		print = print_access;
	} else if (strcmp(cmd, "stats") == 0 &&
	    (argc == 1 || (argc == 2 && strcmp(argv[1], "tenants") == 0))) {
		snprintf(path, sizeof(path), "%s", argc == 1 ? "/v1/stats" : "/v1/stats/tenants");
		yaml_out = true;	/* the figures as the SNMP subagent reads them */
	} else if (strcmp(cmd, "service") == 0 && argc >= 3) {
		const char *action = argv[1], *name = argv[2];

		if (strchr(name, '/') || strchr(name, '?') || strchr(name, ' '))
			usage();
		print = print_services;
		if (strcmp(action, "show") == 0)
			snprintf(path, sizeof(path), "/v1/services/%s", name);
		else if (strcmp(action, "start") == 0 || strcmp(action, "restart") == 0 ||
		    strcmp(action, "stop") == 0) {
			method = "POST";
			snprintf(path, sizeof(path), "/v1/services/%s/%s%s", name, action,
			    now && strcmp(action, "stop") == 0 ? "?drain=false" : "");
		} else
			usage();
	} else if (strcmp(cmd, "apply") == 0 && file != NULL) {
		method = "POST";
		snprintf(path, sizeof(path), "/v1/apply%s", dry_run ? "?dryRun=true" : "");
		if (read_input(file, &payload) == -1)
			return EXIT_USAGE;
		print = print_apply;
	} else if (strcmp(cmd, "get") == 0 && argc >= 2 && argv[1][0] != '-') {
		const char *name = argc >= 3 && argv[2][0] != '-' ? argv[2] : NULL;

		if (!valid_word(argv[1]) || (name && !valid_word(name)) || (tenant && !valid_word(tenant)))
			usage();
		snprintf(path, sizeof(path), "/v1/%s%s%s%s%s", argv[1], name ? "/" : "", name ? name : "",
		    tenant ? "?tenant=" : "", tenant ? tenant : "");
		/* get prints the documents themselves: they are what apply takes. */
		yaml_out = true;
	} else if (strcmp(cmd, "delete") == 0 && argc >= 3 && valid_word(argv[1]) && valid_word(argv[2])) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/v1/%s/%s%s", argv[1], argv[2], purge ? "?purge=true" : "");
		print = print_message;
	} else if (strcmp(cmd, "passwd") == 0 && argc >= 2 && valid_word(argv[1])) {
		method = "POST";
		snprintf(path, sizeof(path), "/v1/mailboxes/%s/password", argv[1]);
		if (read_password(&payload) == -1)
			return EXIT_USAGE;
		print = print_message;
	} else if (strcmp(cmd, "queue") == 0 && (argc == 1 || strcmp(argv[1], "list") == 0)) {
		snprintf(path, sizeof(path), "/v1/queue");
		print = print_queue;
	} else if (strcmp(cmd, "queue") == 0 && argc >= 3 && valid_word(argv[2])) {
		const char *op = argv[1];

		print = print_queue_message;
		if (strcmp(op, "show") == 0)
			snprintf(path, sizeof(path), "/v1/queue/%s", argv[2]);
		else if (strcmp(op, "delete") == 0) {
			method = "DELETE";
			snprintf(path, sizeof(path), "/v1/queue/%s", argv[2]);
		} else if (strcmp(op, "retry") == 0 || strcmp(op, "hold") == 0 || strcmp(op, "release") == 0) {
			method = "POST";
			snprintf(path, sizeof(path), "/v1/queue/%s/%s", argv[2], op);
		} else
			usage();
	} else if (strcmp(cmd, "token") == 0 && argc >= 2 && strcmp(argv[1], "create") == 0) {
		struct buf q;

		buf_init(&q, sizeof(path));
		method = "POST";
		if (tenant && !valid_word(tenant))
			usage();
		buf_puts(&q, "/v1/tokens");
		if (tenant)
			buf_printf(&q, "?tenant=%s", tenant);
		if (description) {
			buf_puts(&q, tenant ? "&description=" : "?description=");
			url_encode(&q, description);
		}
		snprintf(path, sizeof(path), "%s", buf_cstr(&q));
		buf_free(&q);
		print = print_message;
	} else
		usage();

	buf_init(&body, 0);
	r = request(method, path, buf_len(&payload) ? &payload : NULL, &status, &body);
	if (buf_len(&payload))
		explicit_bzero(buf_data(&payload), buf_len(&payload));
	buf_free(&payload);
	if (r == -2) {
		buf_free(&body);
		return EXIT_UNREACHED;
	}
	if (r == -1) {
		buf_free(&body);
		return EXIT_REFUSED;
	}
	rc = status >= 200 && status < 300 ? 0 : EXIT_REFUSED;
	if (yaml_out) {
		fwrite(buf_data(&body), 1, buf_len(&body), stdout);
		buf_free(&body);
		return rc;
	}
	{
		char err[512];

		if (ydoc_parse(buf_cstr(&body), buf_len(&body), &st, err, sizeof(err)) == -1) {
			fprintf(stderr, "mailnodectl: the node's answer is not YAML (%s)\n", err);
			buf_free(&body);
			return EXIT_REFUSED;
		}
	}
	if (rc != 0 && st->ndocs && ydoc_get(st->docs[0], "errors") != NULL)
		print_apply(st);
	else if (rc != 0) {
		const char *msg = st->ndocs ? ydoc_str(ydoc_get(st->docs[0], "message")) : NULL;

		fprintf(stderr, "mailnodectl: %s (%d)\n", msg ? msg : "request refused", status);
	} else
		print(st);
	ydoc_free(st);
	buf_free(&body);
	return rc;
}
