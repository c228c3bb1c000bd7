/* svc_http: libmicrohttpd daemons on the node's own listening sockets,
 * polled from loop 0 through MHD's epoll descriptor. One instance per start;
 * a stopped instance may keep draining its sessions after the service has
 * moved on. */
#include "svc_http.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "session.h"

struct http_daemon {
	struct MHD_Daemon	*mhd;
	struct loop_watch	 watch;
	struct loop_timer	 timer;
	struct http_instance	*inst;
};

struct http_instance {
	struct service		*svc;
	struct http_daemon	 d[SETTINGS_MAX_BIND];
	unsigned		 nd;
	unsigned		 live;		/* daemons not yet stopped */
	bool			 draining;
};

struct http_conn {
	struct session		 sess;
	struct http_instance	*inst;
};

static void http_daemon_poll(struct http_daemon *);

static bool
host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':';
}

int
svc_http_location(const char *host, const char *uri, unsigned https_port,
    char *out, size_t outlen)
{
	char name[256];
	size_t len;
	const char *end;
	bool v6 = false;
	int n;

	if (host == NULL || *host == '\0')
		return -1;
	if (*host == '[') {
		/* IPv6 literal: keep the brackets, drop a port after them. */
		if ((end = strchr(host, ']')) == NULL)
			return -1;
		len = (size_t)(end - host) + 1;
		v6 = true;
	} else {
		end = strchr(host, ':');
		len = end ? (size_t)(end - host) : strlen(host);
	}
	if (len == 0 || len >= sizeof(name))
		return -1;
	memcpy(name, host, len);
	name[len] = '\0';
	for (size_t i = v6 ? 1 : 0; i < (v6 ? len - 1 : len); i++)
		if (!host_char_ok(name[i]) || (!v6 && name[i] == ':'))
			return -1;
	if (uri == NULL || uri[0] != '/')
		uri = "/";
	for (const char *p = uri; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return -1;
	if (https_port == 443)
		n = snprintf(out, outlen, "https://%s%s", name, uri);
	else
		n = snprintf(out, outlen, "https://%s:%u%s", name, https_port, uri);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Per request: the raw URI (query included, which the access handler does
 * not get) and whether the handler has been called once. */
struct http_req {
	bool	called;
	char	uri[];
};

static void *
http_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct http_req *r;
	size_t len = strlen(uri ? uri : "/");

	(void)cls;
	(void)c;
	if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL)
		return NULL;
	memcpy(r->uri, uri ? uri : "/", len + 1);
	return r;
}

static void
http_request_done(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*req_cls);
	*req_cls = NULL;
}

static enum MHD_Result
queue_text(struct MHD_Connection *c, unsigned code, const char *body, const char *location)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	if (MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8") == MHD_NO ||
	    (location && MHD_add_response_header(r, "Location", location) == MHD_NO)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct service *https = service_find("https");
	struct http_req *req = *req_cls;
	const char *host;
	char location[2048], body[2200];

	(void)url;
	(void)method;
	(void)version;
	(void)upload;
	(void)cls;
	if (req == NULL)
		return MHD_NO;		/* out of memory: drop the connection */
	/* MHD closes the connection after a response queued in the first
	 * call, so answer from the second one to keep the session alive. */
	if (!req->called) {
		req->called = true;
		return MHD_YES;
	}
	/* Bodies are not wanted; swallow them so keep-alive stays in sync. */
	if (*upload_size != 0) {
		*upload_size = 0;
		return MHD_YES;
	}
	host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (svc_http_location(host, req->uri, https ? https->settings.port : 443,
	    location, sizeof(location)) == -1)
		return queue_text(c, MHD_HTTP_BAD_REQUEST,
		    "400 Bad Request: a valid Host header is required\n", NULL);
	snprintf(body, sizeof(body), "Webmail is served over HTTPS: %s\n", location);
	return queue_text(c, MHD_HTTP_MOVED_PERMANENTLY, body, location);
}

static enum MHD_Result
http_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	struct http_instance *inst = cls;
	struct service *s = inst->svc;

	(void)sa;
	(void)len;
	if (atomic_load(&s->counters.current) >= s->settings.max_clients) {
		service_conn_rejected(s);
		return MHD_NO;
	}
	return MHD_YES;
}

static void
http_notify(void *cls, struct MHD_Connection *c, void **socket_cls,
    enum MHD_ConnectionNotificationCode code)
{
	struct http_instance *inst = cls;
	struct http_conn *hc;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci;

		if ((hc = calloc(1, sizeof(*hc))) == NULL)
			return;
		hc->inst = inst;
		hc->sess.svc = inst->svc;
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		session_format_peer(ci ? ci->client_addr : NULL,
		    sizeof(struct sockaddr_storage), hc->sess.peer, sizeof(hc->sess.peer));
		session_register(&hc->sess);
		service_conn_opened(inst->svc);
		*socket_cls = hc;
	} else if ((hc = *socket_cls) != NULL) {
		session_unregister(&hc->sess);
		service_conn_closed(hc->inst->svc);
		free(hc);
		*socket_cls = NULL;
	}
}

static void
http_daemon_stop(struct http_daemon *d)
{
	struct http_instance *inst = d->inst;
	struct loop *l = loop_current();

	if (d->mhd == NULL)
		return;
	loop_watch_del(l, &d->watch);
	loop_timer_stop(l, &d->timer);
	MHD_stop_daemon(d->mhd);	/* closes the remaining connections */
	d->mhd = NULL;
	if (--inst->live == 0 && inst->draining) {
		log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = inst->svc->def->name },
		    "last sessions of the stopped instance ended");
		free(inst);
	}
}

static void
http_daemon_poll(struct http_daemon *d)
{
	struct loop *l = loop_current();
	MHD_UNSIGNED_LONG_LONG timeout;
	const union MHD_DaemonInfo *info;

	if (MHD_run(d->mhd) == MHD_NO)
		log_event(LOG_LVL_WARN, &(struct log_ctx){ .service = d->inst->svc->def->name },
		    "MHD_run failed");
	if (d->inst->draining) {
		info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (info == NULL || info->num_connections == 0) {
			http_daemon_stop(d);
			return;
		}
	}
	if (MHD_get_timeout(d->mhd, &timeout) == MHD_YES)
		loop_timer_start(l, &d->timer, (uint64_t)timeout);
	else
		loop_timer_stop(l, &d->timer);
}

static void
http_daemon_ready(struct loop_watch *w, uint32_t events)
{
	(void)events;
	http_daemon_poll(w->arg);
}

static void
http_daemon_timeout(struct loop_timer *t)
{
	http_daemon_poll(t->arg);
}

static int
http_start(struct service *s, char *err, size_t errlen)
{
	struct http_instance *inst;
	unsigned i;

	if ((inst = calloc(1, sizeof(*inst))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	inst->svc = s;
	for (i = 0; i < s->nlisten; i++) {
		struct http_daemon *d = &inst->d[i];
		const union MHD_DaemonInfo *info;

		d->inst = inst;
		d->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
		    http_accept, inst, http_handle, inst,
		    MHD_OPTION_LISTEN_SOCKET, s->listen_fds[i],
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->settings.timeout,
		    MHD_OPTION_NOTIFY_CONNECTION, http_notify, inst,
		    MHD_OPTION_URI_LOG_CALLBACK, http_uri_log, NULL,
		    MHD_OPTION_NOTIFY_COMPLETED, http_request_done, NULL,
		    MHD_OPTION_END);
		if (d->mhd == NULL) {
			snprintf(err, errlen, "libmicrohttpd could not start on the listener");
			goto fail;
		}
		inst->nd++;
		inst->live++;
		info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
		d->watch.fd = info ? info->epoll_fd : -1;
		d->watch.cb = http_daemon_ready;
		d->watch.arg = d;
		d->timer.cb = http_daemon_timeout;
		d->timer.arg = d;
		if (d->watch.fd == -1 || loop_watch_add(loop_current(), &d->watch, EPOLLIN) == -1) {
			snprintf(err, errlen, "cannot poll the HTTP daemon");
			goto fail;
		}
	}
	s->impl = inst;
	return 0;
fail:
	/* The service closes the listening sockets; MHD must not keep them. */
	for (i = 0; i < inst->nd; i++) {
		if (inst->d[i].mhd == NULL)
			continue;
		(void)MHD_quiesce_daemon(inst->d[i].mhd);
		loop_watch_del(loop_current(), &inst->d[i].watch);
		MHD_stop_daemon(inst->d[i].mhd);
	}
	free(inst);
	return -1;
}

static void
http_stop(struct service *s, bool drain)
{
	struct http_instance *inst = s->impl;
	unsigned i, nd;

	s->impl = NULL;
	if (inst == NULL)
		return;
	nd = inst->nd;	/* inst is freed when its last daemon stops */
	inst->draining = true;
	/* Close the listeners now: the port is free for a restart at once. */
	for (i = 0; i < inst->nd; i++) {
		int fd = MHD_quiesce_daemon(inst->d[i].mhd);

		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	for (i = 0; i < nd; i++) {
		struct http_daemon *d = &inst->d[i];

		if (drain && d->mhd != NULL) {
			const union MHD_DaemonInfo *info =
			    MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

			if (info != NULL && info->num_connections > 0)
				continue;	/* stops itself once idle */
		}
		http_daemon_stop(d);
	}
}

const struct service_handler svc_http_redirect = {
	.start = http_start,
	.stop = http_stop,
	/* maxClients is read at every accept; a new timeout needs a restart. */
	.reconfigure = NULL,
};
