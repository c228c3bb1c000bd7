/* node_client: blocking requests over the control socket, bounded by a
 * timeout so a stuck node cannot hang the subagent (snmpd would time it
 * out anyway). */
#include "node_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NODE_ANSWER_MAX	(64u * 1024 * 1024)

static char	sock_path[108];
static int	timeout_ms = 5000;

void
node_client_init(const char *path, int ms)
{
	snprintf(sock_path, sizeof(sock_path), "%s", path);
	timeout_ms = ms;
}

void
node_client_timeout(int ms)
{
	timeout_ms = ms;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Wait until fd is ready for events or the deadline passes. */
static int
wait_fd(int fd, short events, long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long left = deadline - now_ms();
	int r;

	if (left <= 0)
		return -1;
	while ((r = poll(&p, 1, (int)left)) == -1 && errno == EINTR)
		;
	return r > 0 ? 0 : -1;
}

int
node_request(const char *method, const char *path, const char *body, size_t bodylen,
    struct buf *out, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct buf req;
	long deadline = now_ms() + timeout_ms;
	size_t off = 0, nl;
	char *end;
	long status;
	int fd;

	buf_reset(out);
	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket path too long");
		return -1;
	}
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, errlen, "%s: %s", sock_path, strerror(errno));
		close(fd);
		return -1;
	}
	buf_init(&req, 0);
	if (buf_printf(&req, "%s %s\n", method, path) == -1 ||
	    (bodylen > 0 && buf_append(&req, body, bodylen) == -1)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while (off < buf_len(&req)) {
		ssize_t n = write(fd, buf_data(&req) + off, buf_len(&req) - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline) == 0)
			continue;
		snprintf(err, errlen, "sending to the node: %s", n == -1 ? strerror(errno) : "timeout");
		goto fail;
	}
	/* The node reads the request up to our end of input. */
	if (shutdown(fd, SHUT_WR) == -1) {
		snprintf(err, errlen, "shutdown: %s", strerror(errno));
		goto fail;
	}
	for (;;) {
		ssize_t n;

		if (buf_len(out) > NODE_ANSWER_MAX) {
			snprintf(err, errlen, "answer too large");
			goto fail;
		}
		if ((n = buf_read_fd(out, fd)) > 0)
			continue;
		if (n == 0)
			break;
		if (errno == EAGAIN && wait_fd(fd, POLLIN, deadline) == 0)
			continue;
		snprintf(err, errlen, "reading the node's answer: %s",
		    errno == EAGAIN ? "timeout" : strerror(errno));
		goto fail;
	}
	close(fd);
	buf_free(&req);
	/* "STATUS\n" then the YAML. */
	nl = strcspn(buf_cstr(out), "\n");
	status = strtol(buf_cstr(out), &end, 10);
	if (nl >= buf_len(out) || end != buf_data(out) + nl || status < 100 || status > 599) {
		snprintf(err, errlen, "malformed answer from the node");
		return -1;
	}
	buf_consume(out, nl + 1);
	return (int)status;
fail:
	close(fd);
	buf_free(&req);
	return -1;
}
