/* service: the service units, their listeners and their state machine
 * (stopped -> starting -> running -> stopped, or failed with a reason). */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access.h"
#include "log.h"

static const struct service_def service_defs[] = {
	{ "smtp", "SMTP: inbound mail (MX) for hosted domains", 25, 2525, 300, 1000,
	  SERVICE_TLS_STARTTLS, true, "the SMTP work, issue 4" },
	{ "submission", "Authenticated sending; STARTTLS before AUTH", 587, 2587, 300, 1000,
	  SERVICE_TLS_STARTTLS, true, "the SMTP work, issue 4" },
	{ "smtps", "Submission over implicit TLS", 465, 2465, 300, 1000,
	  SERVICE_TLS_IMPLICIT, true, "the SMTP work, issue 4" },
	{ "pop3", "POP3 with STLS", 110, 2110, 600, 1000,
	  SERVICE_TLS_STARTTLS, true, "the IMAP/POP3 work, issue 5" },
	{ "pop3s", "POP3 over implicit TLS", 995, 2995, 600, 1000,
	  SERVICE_TLS_IMPLICIT, true, "the IMAP/POP3 work, issue 5" },
	{ "imap", "IMAP with STARTTLS", 143, 2143, 1800, 10000,
	  SERVICE_TLS_STARTTLS, true, "the IMAP/POP3 work, issue 5" },
	{ "imaps", "IMAP over implicit TLS", 993, 2993, 1800, 10000,
	  SERVICE_TLS_IMPLICIT, true, "the IMAP/POP3 work, issue 5" },
	{ "http", "Webmail over HTTP: redirects every request to https", 80, 2080, 60, 1000,
	  SERVICE_TLS_NONE, true, NULL },
	{ "https", "Webmail over HTTPS", 443, 2443, 300, 1000,
	  SERVICE_TLS_IMPLICIT, true, "the webmail work" },
	{ "admin", "Provisioning API over HTTPS; cannot be stopped", 8443, 2444, 60, 100,
	  SERVICE_TLS_IMPLICIT, false, "the provisioning API, issue 3" },
	{ "ldap", "Read-only directory of tenant address books", 389, 2389, 300, 1000,
	  SERVICE_TLS_STARTTLS, true, "the LDAP directory work" },
	{ "spool", "Queue runner: delivers queued mail into local mailboxes", 0, 0, 300, 100,
	  SERVICE_TLS_NONE, true, "the SMTP work, issue 4" },
	{ "indexing", "Full-text indexer behind IMAP SEARCH and webmail search", 0, 0, 300, 10,
	  SERVICE_TLS_NONE, true, "the indexing work" },
	{ "imap-retrieval", "Fetch mail from external IMAP accounts", 0, 0, 300, 100,
	  SERVICE_TLS_NONE, true, "the retrieval work" },
	{ "pop-retrieval", "Fetch mail from external POP3 accounts", 0, 0, 300, 100,
	  SERVICE_TLS_NONE, true, "the retrieval work" },
};
#define NSERVICES	(sizeof(service_defs) / sizeof(service_defs[0]))

static struct service		services[NSERVICES];
static service_change_fn	on_change;

void
services_init(bool dev_ports, unsigned port_offset, service_change_fn fn)
{
	size_t i;

	on_change = fn;
	for (i = 0; i < NSERVICES; i++) {
		struct service *s = &services[i];
		const struct service_def *d = &service_defs[i];

		memset(s, 0, sizeof(*s));
		s->def = d;
		s->scope = access_scope_new(d->name);
		s->state = SERVICE_STOPPED;
		s->since = time(NULL);
		s->settings.port = (dev_ports ? d->dev_port : d->port) + port_offset;
		s->settings.timeout = d->timeout;
		s->settings.max_clients = d->max_clients;
		s->settings.auto_start = true;
		s->settings.restart_on_change = true;
		/* Dev nodes listen on loopback only; production on every address. */
		if (addr_parse(dev_ports ? "127.0.0.1" : "0.0.0.0", &s->settings.bind[0]) == 0)
			s->settings.nbind = 1;
		if (d->port == 0)
			s->settings.port = 0;
		snprintf(s->reason, sizeof(s->reason), "not started yet");
	}
}

size_t
services_count(void)
{
	return NSERVICES;
}

struct service *
services_at(size_t i)
{
	return i < NSERVICES ? &services[i] : NULL;
}

struct service *
service_find(const char *name)
{
	size_t i;

	for (i = 0; i < NSERVICES; i++)
		if (strcmp(services[i].def->name, name) == 0)
			return &services[i];
	return NULL;
}

const char *
service_state_name(enum service_state st)
{
	switch (st) {
	case SERVICE_STOPPED:	return "stopped";
	case SERVICE_STARTING:	return "starting";
	case SERVICE_RUNNING:	return "running";
	case SERVICE_STOPPING:	return "stopping";
	case SERVICE_FAILED:	return "failed";
	}
	return "unknown";
}

void
service_set_handler(const char *name, const struct service_handler *h)
{
	struct service *s = service_find(name);

	if (s != NULL)
		s->handler = h;
}

bool
service_has_listener(const struct service *s)
{
	return s->def->port != 0;
}

static void
service_set_state(struct service *s, enum service_state st, const char *reason)
{
	struct log_ctx ctx = { .service = s->def->name };

	s->state = st;
	s->since = time(NULL);
	snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
	log_event(st == SERVICE_FAILED ? LOG_LVL_ERR : LOG_LVL_INFO, &ctx,
	    "state %s%s%s", service_state_name(st), reason && *reason ? ": " : "",
	    reason ? reason : "");
	if (on_change)
		on_change(s);
}

static void
service_close_listeners(struct service *s)
{
	unsigned i;

	for (i = 0; i < s->nlisten; i++)
		if (s->listen_fds[i] != -1)
			close(s->listen_fds[i]);
	s->nlisten = 0;
}

static int
service_open_listeners(struct service *s, char *err, size_t errlen)
{
	unsigned i;

	s->nlisten = 0;
	for (i = 0; i < s->settings.nbind; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		char a[ADDR_STRLEN];
		int fd, one = 1;

		if (addr_format(&s->settings.bind[i], a, sizeof(a)) == -1)
			snprintf(a, sizeof(a), "?");
		sl = addr_to_sockaddr(&s->settings.bind[i], (uint16_t)s->settings.port, &ss);
		if (sl == 0) {
			snprintf(err, errlen, "bind %s: bad address", a);
			goto fail;
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			snprintf(err, errlen, "socket for %s: %s", a, strerror(errno));
			goto fail;
		}
		s->listen_fds[s->nlisten++] = fd;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
		    (ss.ss_family == AF_INET6 &&
		    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)) {
			snprintf(err, errlen, "setsockopt on %s: %s", a, strerror(errno));
			goto fail;
		}
		if (bind(fd, (struct sockaddr *)&ss, sl) == -1) {
			snprintf(err, errlen, "bind %s%s%s:%u: %s",
			    ss.ss_family == AF_INET6 ? "[" : "", a,
			    ss.ss_family == AF_INET6 ? "]" : "", s->settings.port, strerror(errno));
			goto fail;
		}
		if (listen(fd, 511) == -1) {
			snprintf(err, errlen, "listen on %s:%u: %s", a, s->settings.port, strerror(errno));
			goto fail;
		}
	}
	return 0;
fail:
	service_close_listeners(s);
	return -1;
}

int
service_start(struct service *s, char *err, size_t errlen)
{
	char why[256];

	if (s->state == SERVICE_RUNNING || s->state == SERVICE_STARTING)
		return 0;
	s->want_running = true;
	if (s->handler == NULL) {
		snprintf(err, errlen, "service %s cannot start: this build has no "
		    "protocol handler for it yet (it comes with %s)", s->def->name,
		    s->def->handler_issue);
		return -1;
	}
	service_set_state(s, SERVICE_STARTING, NULL);
	if (service_has_listener(s) && service_open_listeners(s, why, sizeof(why)) == -1)
		goto fail;
	if (s->handler->start(s, why, sizeof(why)) == -1) {
		service_close_listeners(s);
		goto fail;
	}
	service_set_state(s, SERVICE_RUNNING, NULL);
	return 0;
fail:
	service_set_state(s, SERVICE_FAILED, why);
	snprintf(err, errlen, "service %s failed to start: %s", s->def->name, why);
	return -1;
}

int
service_stop(struct service *s, bool drain, char *err, size_t errlen)
{
	if (!s->def->stoppable) {
		snprintf(err, errlen, "service %s cannot be stopped: the node is "
		    "managed through it", s->def->name);
		return -1;
	}
	s->want_running = false;
	if (s->state == SERVICE_STOPPED)
		return 0;
	if (s->state == SERVICE_FAILED) {
		service_set_state(s, SERVICE_STOPPED, "stopped by request");
		return 0;
	}
	service_set_state(s, SERVICE_STOPPING, NULL);
	/* The handler closes the listening sockets it was given; we only
	 * forget them so a later start binds afresh. */
	s->handler->stop(s, drain);
	s->nlisten = 0;
	service_set_state(s, SERVICE_STOPPED, "stopped by request");
	return 0;
}

int
service_restart(struct service *s, char *err, size_t errlen)
{
	if (!s->def->stoppable && s->state == SERVICE_RUNNING) {
		snprintf(err, errlen, "service %s cannot be restarted: the node is "
		    "managed through it", s->def->name);
		return -1;
	}
	if (service_stop(s, true, err, errlen) == -1)
		return -1;
	return service_start(s, err, errlen);
}

void
services_autostart(void)
{
	size_t i;

	for (i = 0; i < NSERVICES; i++) {
		struct service *s = &services[i];
		char err[512];

		s->want_running = s->settings.auto_start || !s->def->stoppable;
		if (!s->settings.auto_start && s->def->stoppable) {
			snprintf(s->reason, sizeof(s->reason), "autoStart is off");
			continue;
		}
		if (s->handler == NULL) {
			snprintf(s->reason, sizeof(s->reason), "no protocol handler in this "
			    "build yet (comes with %s)", s->def->handler_issue);
			continue;
		}
		/* service_start logs and records the failure itself. */
		(void)service_start(s, err, sizeof(err));
	}
}

void
services_stop_all(void)
{
	size_t i;

	for (i = 0; i < NSERVICES; i++) {
		struct service *s = &services[i];

		if (s->state == SERVICE_RUNNING && s->handler != NULL) {
			s->handler->stop(s, false);
			s->nlisten = 0;
			s->state = SERVICE_STOPPED;
		}
	}
}

void
service_set_rules(struct service *s, const char *access, const char *connections,
    bool keep_access, bool keep_connections)
{
	if (!keep_access) {
		free(s->access);
		s->access = access ? strdup(access) : NULL;
	}
	if (!keep_connections) {
		free(s->connections);
		s->connections = connections ? strdup(connections) : NULL;
	}
	if (s->scope) {
		char err[256];
		struct access_rules *r = access_rules_compile(s->access, s->connections, err, sizeof(err));

		/* Apply validated them; if they still do not compile, the old
		 * rules stay rather than opening the service. */
		if (r == NULL)
			log_event(LOG_LVL_ERR, &(struct log_ctx){ .service = s->def->name },
			    "access rules not applied: %s", err);
		else
			access_scope_set_rules(s->scope, r);
	}
}

void
service_conn_opened(struct service *s)
{
	atomic_fetch_add(&s->counters.current, 1);
	atomic_fetch_add(&s->counters.total, 1);
}

void
service_conn_closed(struct service *s)
{
	atomic_fetch_sub(&s->counters.current, 1);
}

void
service_conn_rejected(struct service *s)
{
	atomic_fetch_add(&s->counters.rejected, 1);
}

int
services_doc_markdown(struct buf *out)
{
	size_t i;

	if (buf_puts(out, "| service | port | dev port | TLS | timeout | maxClients | can stop | what |\n"
	    "|---|---|---|---|---|---|---|---|\n") == -1)
		return -1;
	for (i = 0; i < NSERVICES; i++) {
		const struct service_def *d = &service_defs[i];
		const char *tls = d->tls == SERVICE_TLS_IMPLICIT ? "implicit" :
		    d->tls == SERVICE_TLS_STARTTLS ? "STARTTLS" : "-";

		int r;

		if (d->port)
			r = buf_printf(out, "| `%s` | %u | %u | %s | %us | %u | %s | %s |\n", d->name,
			    d->port, d->dev_port, tls, d->timeout, d->max_clients,
			    d->stoppable ? "yes" : "no", d->description);
		else
			r = buf_printf(out, "| `%s` | - | - | - | - | - | %s | %s |\n", d->name,
			    d->stoppable ? "yes" : "no", d->description);
		if (r == -1)
			return -1;
	}
	return 0;
}
