/* httpd: one libmicrohttpd daemon per listening socket, driven by loop 0.
 * Each start makes an instance; a stopped instance may go on draining its
 * sessions after the service has started a new one. */
#include "httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "access.h"
#include "log.h"
#include "loop.h"
#include "session.h"

struct httpd_instance;

struct httpd_daemon {
	struct MHD_Daemon	*mhd;
	struct loop_watch	 watch;
	struct loop_timer	 timer;
	struct httpd_instance	*inst;
};

struct httpd_instance {
	struct service		*svc;
	struct httpd_ops	 ops;
	struct httpd_daemon	 d[SETTINGS_MAX_BIND];
	unsigned		 nd;
	unsigned		 live;		/* daemons not yet stopped */
	bool			 draining;
	/* Admitted by the accept policy, taken by the connection MHD makes
	 * next: both run on loop 0, one after the other. */
	struct access_hold	 pending;
};

struct httpd_conn {
	struct session		 sess;
	struct httpd_instance	*inst;
	struct access_hold	 hold;
};

static void *
httpd_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct httpd_instance *inst = cls;
	struct httpd_req *r;
	size_t len = strlen(uri ? uri : "/");

	(void)c;
	if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL)
		return NULL;
	memcpy(r->uri, uri ? uri : "/", len + 1);
	buf_init(&r->body, inst->ops.max_body);
	return r;
}

static void
httpd_request_done(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct httpd_req *r = *req_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r == NULL)
		return;
	if (r->app && r->free_app)
		r->free_app(r->app);
	if (buf_len(&r->body))
		explicit_bzero(buf_data(&r->body), buf_len(&r->body));	/* may hold secrets */
	buf_free(&r->body);
	free(r);
	*req_cls = NULL;
}

enum MHD_Result
httpd_respond(struct MHD_Connection *c, unsigned code, const char *type, const char *body,
    size_t len, const char *hdr_name, const char *hdr_value)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	if (MHD_add_response_header(r, "Content-Type", type) == MHD_NO ||
	    (hdr_name && MHD_add_response_header(r, hdr_name, hdr_value) == MHD_NO)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
httpd_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	struct httpd_instance *inst = cls;
	struct service *s = inst->svc;
	struct addr peer;

	/* A hold MHD never turned into a connection. */
	access_release(&inst->pending);
	if (addr_from_sockaddr(sa, len, &peer) == -1 ||
	    access_admit(s->scope, &peer, access_now(), &inst->pending) != ACCESS_OK) {
		service_conn_rejected(s);
		return MHD_NO;
	}
	if (atomic_load(&s->counters.current) >= s->settings.max_clients) {
		service_conn_rejected(s);
		access_count_refusal(s->scope, ACCESS_LIMITED);
		access_release(&inst->pending);
		return MHD_NO;
	}
	return MHD_YES;
}

static void
httpd_notify(void *cls, struct MHD_Connection *c, void **socket_cls,
    enum MHD_ConnectionNotificationCode code)
{
	struct httpd_instance *inst = cls;
	struct httpd_conn *hc;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci;

		if ((hc = calloc(1, sizeof(*hc))) == NULL)
			return;
		hc->inst = inst;
		hc->hold = inst->pending;
		memset(&inst->pending, 0, sizeof(inst->pending));
		hc->sess.svc = inst->svc;
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		session_format_peer(ci ? ci->client_addr : NULL,
		    sizeof(struct sockaddr_storage), hc->sess.peer, sizeof(hc->sess.peer));
		if (inst->ops.tls_cert_pem)
			snprintf(hc->sess.tls, sizeof(hc->sess.tls), "TLS");
		session_register(&hc->sess);
		service_conn_opened(inst->svc);
		*socket_cls = hc;
	} else if ((hc = *socket_cls) != NULL) {
		session_unregister(&hc->sess);
		service_conn_closed(hc->inst->svc);
		access_release(&hc->hold);
		free(hc);
		*socket_cls = NULL;
	}
}

static void
httpd_daemon_stop(struct httpd_daemon *d)
{
	struct httpd_instance *inst = d->inst;
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
		access_release(&inst->pending);
		free(inst);
	}
}

static void
httpd_daemon_poll(struct httpd_daemon *d)
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
			httpd_daemon_stop(d);
			return;
		}
	}
	if (MHD_get_timeout(d->mhd, &timeout) == MHD_YES)
		loop_timer_start(l, &d->timer, (uint64_t)timeout);
	else
		loop_timer_stop(l, &d->timer);
}

static void
httpd_daemon_ready(struct loop_watch *w, uint32_t events)
{
	(void)events;
	httpd_daemon_poll(w->arg);
}

static void
httpd_daemon_timeout(struct loop_timer *t)
{
	httpd_daemon_poll(t->arg);
}

int
httpd_start(struct service *s, const struct httpd_ops *ops, char *err, size_t errlen)
{
	struct httpd_instance *inst;
	unsigned i, flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if ((inst = calloc(1, sizeof(*inst))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	inst->svc = s;
	inst->ops = *ops;
	if (ops->tls_cert_pem)
		flags |= MHD_USE_TLS;
	if (ops->suspend_resume)
		flags |= MHD_ALLOW_SUSPEND_RESUME;
	for (i = 0; i < s->nlisten; i++) {
		struct httpd_daemon *d = &inst->d[i];
		const union MHD_DaemonInfo *info;

		d->inst = inst;
		if (ops->tls_cert_pem)
			d->mhd = MHD_start_daemon(flags, 0, httpd_accept, inst, ops->handler, ops->handler_cls,
			    MHD_OPTION_LISTEN_SOCKET, s->listen_fds[i],
			    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->settings.timeout,
			    MHD_OPTION_NOTIFY_CONNECTION, httpd_notify, inst,
			    MHD_OPTION_URI_LOG_CALLBACK, httpd_uri_log, inst,
			    MHD_OPTION_NOTIFY_COMPLETED, httpd_request_done, NULL,
			    MHD_OPTION_HTTPS_MEM_CERT, ops->tls_cert_pem,
			    MHD_OPTION_HTTPS_MEM_KEY, ops->tls_key_pem,
			    MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1",
			    MHD_OPTION_END);
		else
			d->mhd = MHD_start_daemon(flags, 0, httpd_accept, inst, ops->handler, ops->handler_cls,
			    MHD_OPTION_LISTEN_SOCKET, s->listen_fds[i],
			    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->settings.timeout,
			    MHD_OPTION_NOTIFY_CONNECTION, httpd_notify, inst,
			    MHD_OPTION_URI_LOG_CALLBACK, httpd_uri_log, inst,
			    MHD_OPTION_NOTIFY_COMPLETED, httpd_request_done, NULL,
			    MHD_OPTION_END);
		if (d->mhd == NULL) {
			snprintf(err, errlen, "libmicrohttpd could not start on the listener");
			goto fail;
		}
		inst->nd++;
		inst->live++;
		info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
		d->watch.fd = info ? info->epoll_fd : -1;
		d->watch.cb = httpd_daemon_ready;
		d->watch.arg = d;
		d->timer.cb = httpd_daemon_timeout;
		d->timer.arg = d;
		if (d->watch.fd == -1 || loop_watch_add(loop_current(), &d->watch, EPOLLIN) == -1) {
			snprintf(err, errlen, "cannot poll the HTTP daemon");
			goto fail;
		}
		/* A TLS daemon may already hold work (MHD's own timers): poll once. */
		httpd_daemon_poll(d);
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
		loop_timer_stop(loop_current(), &inst->d[i].timer);
		MHD_stop_daemon(inst->d[i].mhd);
	}
	access_release(&inst->pending);
	free(inst);
	return -1;
}

void
httpd_stop(struct service *s, bool drain)
{
	struct httpd_instance *inst = s->impl;
	unsigned i, nd;

	s->impl = NULL;
	if (inst == NULL)
		return;
	nd = inst->nd;	/* inst is freed when its last daemon stops */
	inst->draining = true;
	/* Close the listeners now: the port is free for a restart at once. */
	for (i = 0; i < nd; i++) {
		int fd = MHD_quiesce_daemon(inst->d[i].mhd);

		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	for (i = 0; i < nd; i++) {
		struct httpd_daemon *d = &inst->d[i];

		if (drain && d->mhd != NULL) {
			const union MHD_DaemonInfo *info =
			    MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

			if (info != NULL && info->num_connections > 0)
				continue;	/* stops itself once idle */
		}
		httpd_daemon_stop(d);
	}
}

void
httpd_resume(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci, *di;
	struct httpd_conn *hc;
	unsigned i;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	di = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
	MHD_resume_connection(c);
	if (ci == NULL || di == NULL || (hc = ci->socket_context) == NULL)
		return;
	for (i = 0; i < hc->inst->nd; i++)
		if (hc->inst->d[i].mhd == di->daemon) {
			httpd_daemon_poll(&hc->inst->d[i]);
			return;
		}
}
