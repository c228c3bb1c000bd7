/* control: the unix-socket transport of the node's API, run on loop 0. */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "buf.h"
#include "log.h"
#include "loop.h"

struct control_conn {
	struct loop_watch	 watch;
	struct buf		 in, out;
	struct api_request	*req;	/* while its answer is pending */
	struct control_conn	*prev, *next;
};

static struct loop_watch	 listener = { .fd = -1 };
static char			 sock_path[108];
static struct control_conn	*conns;

static void
conn_free(struct control_conn *c)
{
	loop_watch_del(loops_get(0), &c->watch);
	close(c->watch.fd);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	/* A reply still on its way finds no transport and frees the request. */
	if (c->req)
		c->req->transport = NULL;
	free(c);
}

static void
conn_flush(struct control_conn *c)
{
	while (buf_len(&c->out) > 0) {
		if (buf_write_fd(&c->out, c->watch.fd) == -1) {
			if (errno == EAGAIN) {
				if (loop_watch_mod(loops_get(0), &c->watch, EPOLLOUT) == -1)
					conn_free(c);
				return;
			}
			conn_free(c);
			return;
		}
	}
	conn_free(c);
}

static void
control_reply(struct api_request *r)
{
	struct control_conn *c = r->transport;

	if (c == NULL) {
		buf_free(&r->out);
		free(r);
		return;
	}
	if (buf_printf(&c->out, "%d\n", r->status) == -1 ||
	    buf_append(&c->out, buf_data(&r->out), buf_len(&r->out)) == -1) {
		conn_free(c);
		return;
	}
	buf_free(&r->out);
	free(r);
	c->req = NULL;
	conn_flush(c);
}

static void
conn_request(struct control_conn *c)
{
	struct api_request *r;
	size_t eol, len;

	len = buf_line(&c->in, &eol);
	if (eol == 0) {
		/* No newline at all: the whole input is the request line. */
		len = buf_len(&c->in);
		eol = len;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		conn_free(c);
		return;
	}
	if (api_parse_request_line(r, buf_data(&c->in), len) == -1) {
		free(r);
		if (buf_puts(&c->out, "400\napiVersion: mailnode/v1\nkind: Error\ncode: 400\n"
		    "message: 'bad request line: expected METHOD /path'\n") == -1) {
			conn_free(c);
			return;
		}
		conn_flush(c);
		return;
	}
	buf_consume(&c->in, eol);
	r->body = &c->in;
	r->local = true;	/* the socket is 0600: the node's own admin */
	r->reply = control_reply;
	r->transport = c;
	c->req = r;
	/* Stop watching input; the answer comes through control_reply. */
	if (loop_watch_mod(loops_get(0), &c->watch, 0) == -1) {
		conn_free(c);
		return;
	}
	api_handle(r);
}

static void
conn_event(struct loop_watch *w, uint32_t events)
{
	struct control_conn *c = w->arg;
	ssize_t r;

	if (events & EPOLLOUT) {
		conn_flush(c);
		return;
	}
	for (;;) {
		r = buf_read_fd(&c->in, w->fd);
		if (r > 0)
			continue;
		if (r == 0) {
			conn_request(c);
			return;
		}
		if (errno == EAGAIN)
			return;
		if (errno == ENOBUFS)
			log_warn("control: request over %d bytes refused", CONTROL_MAX_REQUEST);
		conn_free(c);
		return;
	}
}

static void
control_accept(struct loop_watch *w, uint32_t events)
{
	(void)events;
	for (;;) {
		struct control_conn *c;
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR)
				log_err("control: accept: %s", strerror(errno));
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		buf_init(&c->in, CONTROL_MAX_REQUEST);
		buf_init(&c->out, 0);
		c->watch.fd = fd;
		c->watch.cb = conn_event;
		c->watch.arg = c;
		c->next = conns;
		if (conns)
			conns->prev = c;
		conns = c;
		if (loop_watch_add(loops_get(0), &c->watch, EPOLLIN) == -1)
			conn_free(c);
	}
}

int
control_start(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	snprintf(sock_path, sizeof(sock_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	(void)unlink(path);	/* a socket left by a node that was killed */
	old = umask(0177);	/* born 0600: no window where others may connect */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	umask(old);
	if (chmod(path, 0600) == -1 || listen(fd, 64) == -1) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	listener.fd = fd;
	listener.cb = control_accept;
	if (loop_watch_add(loops_get(0), &listener, EPOLLIN) == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	close(fd);
	listener.fd = -1;
	return -1;
}

void
control_stop(void)
{
	if (listener.fd != -1) {
		loop_watch_del(loops_get(0), &listener);
		close(listener.fd);
		listener.fd = -1;
		(void)unlink(sock_path);
	}
	while (conns)
		conn_free(conns);
}
