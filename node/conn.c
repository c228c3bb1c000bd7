/* conn: listeners shared by all loops and the per-connection state machine
 * (accept -> [TLS handshake] -> open -> input/output ... -> goodbye -> close).
 * A connection is only ever touched by the loop that accepted it; it is freed
 * at one place, conn_settle(), once it is closing and its output is sent. */
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "session.h"
#include "tenant_access.h"
#include "tenant_stats.h"

#define CONN_OUT_HIGH		(1024 * 1024)	/* stop reading while this much is unsent */
#define CONN_FLUSH_GRACE_MS	10000		/* a closing peer gets this long to read */
#define ACCEPT_BATCH		32

struct conn_lwatch {
	struct loop_watch	 w;
	struct conn_listener	*l;
};

struct conn_listener {
	struct service		*svc;
	const struct conn_ops	*ops;
	struct tls_creds	*creds;
	bool			 implicit_tls;
	int			 fds[SETTINGS_MAX_BIND];
	unsigned		 nfds;
	unsigned		 nloops;
	struct conn_lwatch	*watches;	/* [loop * nfds + fd] */
	struct conn		**heads;	/* per loop: its live connections */
	atomic_uint		 refs;		/* 1 while listening + 1 per connection */
	bool			 drain;
	bool			 fds_owned;	/* closed by us once detached */
};

enum conn_phase { CONN_HANDSHAKE, CONN_OPEN, CONN_CLOSING };

struct conn {
	struct session		 sess;
	struct conn_listener	*l;
	struct addr		 peer;
	struct access_hold	 svc_hold, tenant_hold;
	struct loop		*loop;
	struct loop_watch	 watch;
	struct loop_timer	 timer;
	struct tls_conn		*tls;
	struct buf		 in, out;
	enum conn_phase		 phase;
	uint32_t		 events;	/* current epoll interest */
	bool			 in_event;	/* inside conn_event: settle at its end */
	bool			 starttls_pending;
	bool			 opened;	/* ops->open ran: ops->close is owed */
	bool			 peer_gone;	/* nothing more can be sent */
	bool			 hs_want_write;	/* the TLS handshake waits to write */
	bool			 paused;	/* the protocol waits: read nothing more */
	bool			 peer_eof;	/* input ended while paused */
	bool			 want_drained;	/* call ops->drained under CONN_OUT_LOW */
	void			*proto;
	struct conn		*prev, *next;
};

static void conn_settle(struct conn *);
static void conn_flush_out(struct conn *);
static const char *refusal_reply(const struct conn_ops *, enum access_verdict);
static void listener_detach_loop(void *);
static void listener_detached(void *);

static void
listener_unref(struct conn_listener *l)
{
	if (atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	free(l->watches);
	free(l->heads);
	free(l);
}

/* Connection end: the only place a conn is freed. */
static void
conn_free(struct conn *c)
{
	struct conn_listener *l = c->l;
	unsigned li = loop_id(c->loop);

	loop_timer_stop(c->loop, &c->timer);
	loop_watch_del(c->loop, &c->watch);
	if (c->opened && l->ops->close)
		l->ops->close(c);
	session_unregister(&c->sess);
	access_release(&c->tenant_hold);
	access_release(&c->svc_hold);
	if (c->tls)
		tls_conn_free(c->tls);
	close(c->watch.fd);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		l->heads[li] = c->next;
	if (c->next)
		c->next->prev = c->prev;
	service_conn_closed(l->svc);
	free(c);
	listener_unref(l);
}

static void
conn_log(struct conn *c, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
conn_log(struct conn *c, enum log_level lvl, const char *fmt, ...)
{
	struct log_ctx ctx = { .service = c->l->svc->def->name, .session = c->sess.id,
	    .peer = c->sess.peer, .tenant = c->sess.tenant[0] ? c->sess.tenant : NULL };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_event(lvl, &ctx, "%s", msg);
}

static void
conn_abort(struct conn *c)
{
	c->phase = CONN_CLOSING;
	buf_reset(&c->out);
	c->peer_gone = true;
}

static void
conn_idle(struct loop_timer *t)
{
	struct conn *c = t->arg;

	c->in_event = true;	/* settle once, below, not inside the calls */
	if (c->phase == CONN_CLOSING) {
		/* The goodbye could not be delivered in time. */
		conn_abort(c);
	} else {
		conn_log(c, LOG_LVL_INFO, "idle timeout");
		if (c->phase == CONN_OPEN && c->l->ops->goodbye)
			c->l->ops->goodbye(c, true);
		c->phase = CONN_CLOSING;
		loop_timer_start(c->loop, &c->timer, CONN_FLUSH_GRACE_MS);
	}
	c->in_event = false;
	conn_settle(c);
}

static void
conn_touch(struct conn *c)
{
	if (c->phase != CONN_CLOSING)
		loop_timer_start(c->loop, &c->timer, (uint64_t)c->l->svc->settings.timeout * 1000);
}

static void
conn_opened(struct conn *c)
{
	c->phase = CONN_OPEN;
	c->opened = true;
	if (c->l->ops->open(c) == -1)
		conn_close(c);
}

/* The SNI name of a tenant's domain attributes the session to it; a
 * refusal gets the protocol's answer, over TLS, and the end. */
static bool
conn_attribute_sni(struct conn *c)
{
	const char *sni = tls_conn_sni(c->tls);
	char tenant[64];
	enum access_verdict v;
	const char *reply;

	if (c->tenant_hold.scope || sni == NULL || !tenant_access_by_host(sni, tenant, sizeof(tenant)))
		return true;
	if ((v = conn_attribute(c, tenant)) == ACCESS_OK)
		return true;
	c->phase = CONN_OPEN;	/* the reply goes out over TLS */
	if ((reply = refusal_reply(c->l->ops, v)) != NULL)
		conn_write(c, reply, strlen(reply));
	c->phase = CONN_CLOSING;
	return false;
}

/* Drive the TLS handshake one step. */
static void
conn_handshake(struct conn *c)
{
	char desc[64];
	enum tls_status st = tls_conn_handshake(c->tls);

	c->hs_want_write = st == TLS_WANT_WRITE;
	switch (st) {
	case TLS_DONE:
		session_set_tls(&c->sess, tls_conn_describe(c->tls, desc, sizeof(desc)));
		if (!conn_attribute_sni(c))
			return;
		if (!c->opened)
			conn_opened(c);
		else {
			c->phase = CONN_OPEN;
			if (c->l->ops->tls_ready)
				c->l->ops->tls_ready(c);
		}
		return;
	case TLS_WANT_READ:
	case TLS_WANT_WRITE:
		return;
	case TLS_CLOSED:
	case TLS_FAILED:
		conn_log(c, LOG_LVL_INFO, "TLS handshake failed: %s", tls_conn_error(c->tls));
		conn_abort(c);
		return;
	}
}

static int
conn_begin_tls(struct conn *c)
{
	if ((c->tls = tls_conn_server(c->watch.fd, c->l->creds)) == NULL) {
		conn_log(c, LOG_LVL_ERR, "TLS: out of memory");
		conn_abort(c);
		return -1;
	}
	c->phase = CONN_HANDSHAKE;
	/* Bytes that came in clear before the switch are not trusted later. */
	buf_reset(&c->in);
	conn_handshake(c);
	return 0;
}

/* Send what is queued. */
static void
conn_flush(struct conn *c)
{
	size_t queued = buf_len(&c->out);

	conn_flush_out(c);
	if (queued > buf_len(&c->out))
		atomic_fetch_add(&c->sess.bytes_out, queued - buf_len(&c->out));
	if (buf_len(&c->out) == 0 && c->starttls_pending && c->phase == CONN_OPEN) {
		c->starttls_pending = false;
		conn_begin_tls(c);
	}
}

static void
conn_flush_out(struct conn *c)
{
	while (buf_len(&c->out) > 0 && !c->peer_gone) {
		if (c->tls) {
			enum tls_status st = tls_conn_write(c->tls, &c->out);

			if (st == TLS_WANT_WRITE || st == TLS_WANT_READ)
				return;
			if (st != TLS_DONE) {
				conn_abort(c);
				return;
			}
		} else if (buf_write_fd(&c->out, c->watch.fd) == -1) {
			if (errno == EAGAIN)
				return;
			conn_abort(c);
			return;
		}
	}
}

static bool conn_read_more(struct conn *);

/* Read what is there; returns false when the peer is gone. */
static bool
conn_read(struct conn *c)
{
	size_t before = buf_len(&c->in);
	bool alive = conn_read_more(c);

	if (buf_len(&c->in) > before)
		atomic_fetch_add(&c->sess.bytes_in, buf_len(&c->in) - before);
	return alive;
}

static bool
conn_read_more(struct conn *c)
{
	for (;;) {
		if (buf_len(&c->in) >= c->in.max)
			return true;		/* full: let the protocol consume */
		if (c->tls) {
			switch (tls_conn_read(c->tls, &c->in)) {
			case TLS_DONE:
				if (buf_len(&c->in) >= c->in.max)
					return true;
				continue;
			case TLS_WANT_READ:
			case TLS_WANT_WRITE:
				return true;
			case TLS_CLOSED:
				return false;
			case TLS_FAILED:
				conn_log(c, LOG_LVL_INFO, "TLS: %s", tls_conn_error(c->tls));
				return false;
			}
		} else {
			ssize_t r = buf_read_fd(&c->in, c->watch.fd);

			if (r > 0)
				continue;
			if (r == -1 && errno == EAGAIN)
				return true;
			return false;
		}
	}
}

static void
conn_process_input(struct conn *c)
{
	for (;;) {
		bool alive = conn_read(c);
		size_t before = buf_len(&c->in);
		bool was_full = before >= c->in.max;

		if (before > 0) {
			conn_touch(c);
			c->l->ops->input(c);
		}
		if (c->phase != CONN_OPEN || c->starttls_pending)
			return;
		if (c->paused) {
			/* Still note a closed peer: the session ends after its answer. */
			if (!alive)
				c->peer_eof = true;
			return;
		}
		if (!alive) {
			/* End of input: what is queued (the reply to its last
			 * command) is still sent; a peer may close only its
			 * sending half. */
			c->phase = CONN_CLOSING;
			return;
		}
		if (!was_full)
			return;
		if (buf_len(&c->in) == before) {
			/* The protocol must consume or refuse an over-long unit;
			 * a full buffer left alone would stall the session. */
			conn_log(c, LOG_LVL_WARN, "input buffer full and not consumed; closing");
			conn_abort(c);
			return;
		}
		/* A full buffer may hide more decrypted bytes: go round again. */
	}
}

static void
conn_update_interest(struct conn *c)
{
	uint32_t ev = 0;

	if (c->phase == CONN_HANDSHAKE)
		ev = EPOLLIN | (c->hs_want_write ? EPOLLOUT : 0);
	else {
		if (c->phase == CONN_OPEN && !c->starttls_pending && !c->paused &&
		    buf_len(&c->out) < CONN_OUT_HIGH)
			ev |= EPOLLIN;
		/* want_drained: a writable socket brings the protocol back
		 * even when everything was sent already */
		if (buf_len(&c->out) > 0 || (c->want_drained && c->phase == CONN_OPEN))
			ev |= EPOLLOUT;
	}
	if (ev != c->events) {
		if (loop_watch_mod(c->loop, &c->watch, ev) == -1)
			conn_abort(c);
		c->events = ev;
	}
}

/* After anything happened to c: send, switch phase, free when done. */
static void
conn_settle(struct conn *c)
{
	if (c->in_event)
		return;
	conn_flush(c);
	if (c->phase == CONN_CLOSING && (buf_len(&c->out) == 0 || c->peer_gone)) {
		/* TLS ends with a close_notify (RFC 8446 6.1), or clients such as
		 * openssl s_client report a truncated session. Best effort: the
		 * output is sent, so the short record fits the socket buffer. */
		if (c->tls && !c->peer_gone)
			(void)tls_conn_bye(c->tls);
		conn_free(c);
		return;
	}
	/* An idle session keeps no buffer memory: a read reserves 16 KiB, and
	 * ten thousand idle logins must not hold that each. */
	if (buf_len(&c->in) == 0)
		buf_free(&c->in);
	if (buf_len(&c->out) == 0)
		buf_free(&c->out);
	conn_update_interest(c);
}

static void
conn_event(struct loop_watch *w, uint32_t events)
{
	struct conn *c = w->arg;

	c->in_event = true;
	if (events & EPOLLERR)
		conn_abort(c);
	else if (c->phase == CONN_HANDSHAKE)
		conn_handshake(c);
	if (c->phase != CONN_CLOSING || !c->peer_gone) {
		if (events & EPOLLOUT)
			conn_flush(c);
		if (c->want_drained && c->phase == CONN_OPEN && buf_len(&c->out) < CONN_OUT_LOW) {
			c->want_drained = false;
			conn_touch(c);	/* a client reading a long reply is not idle */
			c->l->ops->drained(c);
			/* the reply may be complete: pipelined commands wait in c->in */
			if (buf_len(&c->in) > 0)
				events |= EPOLLIN;
		}
		if (c->phase == CONN_OPEN && !c->paused && (events & (EPOLLIN | EPOLLHUP)))
			conn_process_input(c);
		else if (c->phase == CONN_CLOSING && (events & (EPOLLIN | EPOLLHUP))) {
			/* Closing: drain and drop what the peer still sends. */
			if (!conn_read(c))
				c->peer_gone = true;
			buf_reset(&c->in);
		}
	}
	c->in_event = false;
	conn_settle(c);
}

/* Best effort: the peer learns it either way. */
static void
refuse_with(int fd, const char *reply, bool implicit_tls)
{
	if (reply && !implicit_tls &&
	    send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		/* nothing more to do: the socket closes next */
	}
	close(fd);
}

static const char *
refusal_reply(const struct conn_ops *ops, enum access_verdict v)
{
	return v == ACCESS_DENIED ? ops->deny_reply : ops->limit_reply;
}

/* The session ended from the control API: as a forced stop does. */
static void
conn_end_now(struct session *sess)
{
	struct conn *c = (struct conn *)sess;	/* sess is the first member */

	if (c->phase == CONN_CLOSING)
		return;
	conn_log(c, LOG_LVL_INFO, "ended by the operator");
	c->in_event = true;
	if (c->phase == CONN_OPEN && c->l->ops->goodbye)
		c->l->ops->goodbye(c, false);
	c->phase = CONN_CLOSING;
	loop_timer_start(c->loop, &c->timer, CONN_FLUSH_GRACE_MS);
	c->in_event = false;
	conn_settle(c);
}

static void
conn_accept_one(struct conn_listener *l, int fd, struct sockaddr_storage *ss, socklen_t sl)
{
	struct service *s = l->svc;
	struct loop *loop = loop_current();
	struct conn *c;
	struct addr peer, local;
	struct access_hold svc_hold = { 0 }, tenant_hold = { 0 };
	struct sockaddr_storage ls;
	socklen_t lsl = sizeof(ls);
	char tenant[64] = "";
	enum access_verdict v;

	/* The service's rules, before a byte is read. */
	if (addr_from_sockaddr((struct sockaddr *)ss, sl, &peer) == -1) {
		close(fd);
		return;
	}
	if ((v = access_admit(s->scope, &peer, access_now(), &svc_hold)) != ACCESS_OK) {
		service_conn_rejected(s);
		refuse_with(fd, refusal_reply(l->ops, v), l->implicit_tls);
		return;
	}
	if (atomic_load(&s->counters.current) >= s->settings.max_clients) {
		service_conn_rejected(s);
		access_count_refusal(s->scope, ACCESS_LIMITED);
		access_release(&svc_hold);
		refuse_with(fd, l->ops->busy_reply, l->implicit_tls);
		return;
	}
	/* An address of the node dedicated to a tenant: its rules too. */
	if (getsockname(fd, (struct sockaddr *)&ls, &lsl) == 0 &&
	    addr_from_sockaddr((struct sockaddr *)&ls, lsl, &local) == 0 &&
	    tenant_access_by_local(&local, tenant, sizeof(tenant))) {
		struct access_scope *ts = tenant_access_scope(tenant);

		v = ts ? access_admit(ts, &peer, access_now(), &tenant_hold) : ACCESS_OK;
		access_scope_unref(ts);
		if (v != ACCESS_OK) {
			service_conn_rejected(s);
			access_release(&svc_hold);
			refuse_with(fd, refusal_reply(l->ops, v), l->implicit_tls);
			return;
		}
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		access_release(&tenant_hold);
		access_release(&svc_hold);
		close(fd);
		return;
	}
	/* Replies leave our own buffer whole: Nagle would only hold a reply's
	 * tail back until the client's delayed ACK (40 ms a reply, seen as a
	 * tenfold slower POP3 RETR loop). Best effort. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	atomic_fetch_add(&l->refs, 1);
	c->l = l;
	c->loop = loop;
	c->peer = peer;
	c->svc_hold = svc_hold;
	c->tenant_hold = tenant_hold;
	c->watch.fd = fd;
	c->watch.cb = conn_event;
	c->watch.arg = c;
	c->timer.cb = conn_idle;
	c->timer.arg = c;
	c->sess.svc = s;
	c->sess.loop = loop;
	c->sess.end = conn_end_now;
	if (tenant[0])
		snprintf(c->sess.tenant, sizeof(c->sess.tenant), "%s", tenant);
	buf_init(&c->in, l->ops->max_input ? l->ops->max_input : 65536);
	buf_init(&c->out, 0);
	session_format_peer((struct sockaddr *)ss, sl, c->sess.peer, sizeof(c->sess.peer));
	session_register(&c->sess);
	service_conn_opened(s);
	c->next = l->heads[loop_id(loop)];
	if (c->next)
		c->next->prev = c;
	l->heads[loop_id(loop)] = c;
	c->events = EPOLLIN;
	if (loop_watch_add(loop, &c->watch, EPOLLIN) == -1) {
		c->phase = CONN_CLOSING;
		c->peer_gone = true;
		conn_settle(c);
		return;
	}
	conn_touch(c);
	c->in_event = true;
	if (l->implicit_tls)
		conn_begin_tls(c);
	else
		conn_opened(c);
	c->in_event = false;
	conn_settle(c);
}

static void
conn_accept(struct loop_watch *w, uint32_t events)
{
	struct conn_lwatch *lw = (struct conn_lwatch *)w;
	int i;

	(void)events;
	for (i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				log_event(LOG_LVL_ERR, &(struct log_ctx){ .service = lw->l->svc->def->name },
				    "accept: %s", strerror(errno));
			return;		/* EAGAIN, or a listener being stopped (EINVAL) */
		}
		conn_accept_one(lw->l, fd, &ss, sl);
	}
}

struct conn_listener *
conn_listen(struct service *s, const struct conn_ops *ops, struct tls_creds *creds,
    bool implicit_tls, char *err, size_t errlen)
{
	struct conn_listener *l;
	unsigned i, j;

	if ((implicit_tls && creds == NULL) || ops->open == NULL || ops->input == NULL) {
		snprintf(err, errlen, "listener set up without TLS credentials or handlers");
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto nomem;
	l->svc = s;
	l->ops = ops;
	l->creds = creds;
	l->implicit_tls = implicit_tls;
	l->nloops = loops_count();
	l->nfds = s->nlisten;
	memcpy(l->fds, s->listen_fds, s->nlisten * sizeof(int));
	atomic_init(&l->refs, 1);
	l->fds_owned = true;
	if ((l->watches = calloc((size_t)l->nloops * l->nfds + 1, sizeof(*l->watches))) == NULL ||
	    (l->heads = calloc(l->nloops, sizeof(*l->heads))) == NULL)
		goto nomem;
	/* Every loop watches every listener; EPOLLEXCLUSIVE wakes one of them
	 * per connection instead of all. epoll_ctl is safe across threads. */
	for (i = 0; i < l->nloops; i++)
		for (j = 0; j < l->nfds; j++) {
			struct conn_lwatch *lw = &l->watches[i * l->nfds + j];

			lw->w.fd = l->fds[j];
			lw->w.cb = conn_accept;
			lw->w.arg = lw;
			lw->l = l;
			if (loop_watch_add(loops_get(i), &lw->w, EPOLLIN | EPOLLEXCLUSIVE) == -1) {
				snprintf(err, errlen, "watching the listener: %s", strerror(errno));
				/* Other loops may already wait on it: let each one
				 * let go on its own thread, as a stop does. The
				 * service closes the sockets after this failure. */
				l->fds_owned = false;
				l->drain = true;
				if (loop_broadcast(listener_detach_loop, l, listener_detached, l) == -1)
					log_err("listener: cannot detach; leaking it");
				return NULL;
			}
		}
	return l;
nomem:
	snprintf(err, errlen, "out of memory");
	if (l) {
		free(l->watches);
		free(l->heads);
		free(l);
	}
	return NULL;
}

/* On each loop: forget the listener's watches; end sessions unless draining. */
static void
listener_detach_loop(void *arg)
{
	struct conn_listener *l = arg;
	struct loop *loop = loop_current();
	unsigned i = loop_id(loop), j;
	struct conn *c, *next;

	for (j = 0; j < l->nfds; j++)
		loop_watch_del(loop, &l->watches[i * l->nfds + j].w);
	if (l->drain)
		return;
	for (c = l->heads[i]; c != NULL; c = next) {
		next = c->next;
		c->in_event = true;
		if (c->phase == CONN_OPEN && l->ops->goodbye)
			l->ops->goodbye(c, false);
		conn_close(c);
		loop_timer_start(c->loop, &c->timer, CONN_FLUSH_GRACE_MS);
		c->in_event = false;
		conn_settle(c);
	}
}

static void
listener_detached(void *arg)
{
	struct conn_listener *l = arg;
	unsigned j;

	for (j = 0; l->fds_owned && j < l->nfds; j++)
		close(l->fds[j]);
	listener_unref(l);
}

void
conn_listener_stop(struct conn_listener *l, bool drain)
{
	unsigned j;

	l->drain = drain;
	/* shutdown() takes a listening socket out of LISTEN at once, so the
	 * port can be bound again before the loops have let go of the fd. */
	for (j = 0; j < l->nfds; j++)
		(void)shutdown(l->fds[j], SHUT_RDWR);
	if (loop_broadcast(listener_detach_loop, l, listener_detached, l) == -1) {
		log_err("stopping listener: out of memory");
		for (j = 0; j < l->nfds; j++)
			close(l->fds[j]);
	}
}

struct buf *
conn_input(struct conn *c)
{
	return &c->in;
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->phase == CONN_CLOSING && c->peer_gone)
		return 0;
	if (buf_append(&c->out, p, n) == -1)
		return -1;
	conn_settle(c);
	return 0;
}

int
conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (c->phase == CONN_CLOSING && c->peer_gone)
		return 0;
	va_start(ap, fmt);
	r = buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	if (r == 0)
		conn_settle(c);
	return r;
}

size_t
conn_output_pending(const struct conn *c)
{
	return buf_len(&c->out);
}

void
conn_want_drained(struct conn *c)
{
	c->want_drained = c->l->ops->drained != NULL;
	conn_settle(c);
}

void
conn_pause_input(struct conn *c)
{
	c->paused = true;
	conn_settle(c);
}

void
conn_resume_input(struct conn *c)
{
	size_t before;

	c->paused = false;
	if (c->phase != CONN_OPEN || c->in_event) {
		conn_settle(c);
		return;
	}
	c->in_event = true;
	/* Buffered lines first (the protocol may pause again), then the socket. */
	before = buf_len(&c->in);
	if (before > 0)
		c->l->ops->input(c);
	if (c->phase == CONN_OPEN && !c->paused && !c->starttls_pending) {
		if (c->peer_eof)
			c->phase = CONN_CLOSING;	/* its last commands are answered */
		else
			conn_process_input(c);
	}
	c->in_event = false;
	conn_settle(c);
}

void
conn_close(struct conn *c)
{
	c->phase = CONN_CLOSING;
	conn_settle(c);
}

int
conn_starttls(struct conn *c)
{
	if (c->l->creds == NULL || c->tls != NULL)
		return -1;
	c->starttls_pending = true;
	conn_settle(c);
	return 0;
}

bool
conn_tls_active(const struct conn *c)
{
	return c->tls != NULL && c->phase != CONN_HANDSHAKE;
}

bool
conn_tls_available(const struct conn *c)
{
	return c->l->creds != NULL && c->tls == NULL;
}

const char *
conn_sni(const struct conn *c)
{
	return c->tls ? tls_conn_sni(c->tls) : NULL;
}

void *
conn_proto(const struct conn *c)
{
	return c->proto;
}

void
conn_set_proto(struct conn *c, void *p)
{
	c->proto = p;
}

struct service *
conn_service(const struct conn *c)
{
	return c->l->svc;
}

const char *
conn_peer(const struct conn *c)
{
	return c->sess.peer;
}

uint64_t
conn_id(const struct conn *c)
{
	return c->sess.id;
}

void
conn_set_identity(struct conn *c, const char *tenant, const char *user)
{
	session_set_identity(&c->sess, tenant, user);
}

enum access_verdict
conn_attribute(struct conn *c, const char *tenant)
{
	struct access_scope *ts;
	enum access_verdict v;

	if (tenant == NULL || *tenant == '\0')
		return ACCESS_OK;
	if (c->tenant_hold.scope) {
		if (strcmp(access_scope_name(c->tenant_hold.scope), tenant) == 0)
			return ACCESS_OK;
		if ((ts = tenant_access_scope(tenant)) == NULL)
			return ACCESS_OK;
		v = access_check(ts, &c->peer);
		access_scope_unref(ts);
	} else {
		/* A tenant created a moment ago may not be loaded yet: open. */
		if ((ts = tenant_access_scope(tenant)) == NULL) {
			session_set_identity(&c->sess, tenant, NULL);
			return ACCESS_OK;
		}
		v = access_admit(ts, &c->peer, access_now(), &c->tenant_hold);
		access_scope_unref(ts);
		if (v == ACCESS_OK)
			session_set_identity(&c->sess, tenant, NULL);
	}
	if (v != ACCESS_OK) {
		service_conn_rejected(c->l->svc);
		conn_log(c, LOG_LVL_INFO, "refused by tenant %s: %s", tenant,
		    v == ACCESS_DENIED ? "access rule" : "connection limit");
	}
	return v;
}

const struct addr *
conn_peer_addr(const struct conn *c)
{
	return &c->peer;
}

bool
conn_limits_exempt(const struct conn *c)
{
	return access_exempt(c->l->svc->scope, &c->peer) ||
	    (c->tenant_hold.scope && access_exempt(c->tenant_hold.scope, &c->peer));
}

void
conn_count_auth_failure(struct conn *c, const char *tenant)
{
	struct access_scope *ts;

	access_count_auth_failure(c->l->svc->scope);
	if (c->tenant_hold.scope) {
		access_count_auth_failure(c->tenant_hold.scope);
	} else if (tenant && *tenant && (ts = tenant_access_scope(tenant)) != NULL) {
		/* Not attributed yet (a failed login never is): the account's
		 * tenant still sees the failure in its counters. */
		access_count_auth_failure(ts);
		access_scope_unref(ts);
	}
	tenant_stats_add(tenant, TENANT_STAT_AUTH_FAILURES, 1);
}
