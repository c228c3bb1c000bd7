/* Fuzz target: the SMTP client's reading of server replies. A loopback
 * listener answers each connection with the fuzz input and closes; the
 * client must end with a verdict for every recipient, codes in range, and
 * reply text free of control bytes, whatever the server said. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "smtp_client.h"

static int		 listener = -1;
static unsigned		 port;
/* The current input, copied so a connection still being served never reads
 * what libFuzzer freed; every connection is waited for before returning. */
static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 idle = PTHREAD_COND_INITIALIZER;
static uint8_t		*reply;
static size_t		 reply_len;
static unsigned		 busy;
static int		 body_fd = -1;

static void *
serve(void *unused)
{
	(void)unused;
	for (;;) {
		int c = accept(listener, NULL, NULL);
		size_t off = 0, len;
		uint8_t *copy;

		if (c == -1)
			continue;
		pthread_mutex_lock(&lock);
		busy++;
		len = reply_len;
		copy = malloc(len + 1);
		if (copy)
			memcpy(copy, reply, len);
		pthread_mutex_unlock(&lock);
		while (copy && off < len) {
			ssize_t w = send(c, copy + off, len - off, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
		shutdown(c, SHUT_WR);
		/* Swallow what the client sends until it hangs up. */
		{
			char sink[4096];

			while (recv(c, sink, sizeof(sink), 0) > 0)
				;
		}
		close(c);
		free(copy);
		pthread_mutex_lock(&lock);
		busy--;
		pthread_cond_broadcast(&idle);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static void
setup(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	pthread_t t;
	static const char body[] = "Subject: fuzz\r\n\r\n.dot line\r\nbody\r\n";

	log_init("fuzz_smtp_client", 0, LOG_LVL_ERR);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	if ((listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(listener, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(listener, 8) == -1 ||
	    getsockname(listener, (struct sockaddr *)&sin, &sl) == -1)
		abort();
	port = ntohs(sin.sin_port);
	if ((body_fd = memfd_create("body", MFD_CLOEXEC)) == -1 ||
	    write(body_fd, body, sizeof(body) - 1) != (ssize_t)(sizeof(body) - 1) ||
	    pthread_create(&t, NULL, serve, NULL) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_client_rcpt rc[3] = {
		{ .address = "a@example.test", .orcpt = "" },
		{ .address = "b@example.test", .notify = 6, .orcpt = "rfc822;b@example.test" },
		{ .address = "c@example.test", .orcpt = "" },
	};
	struct smtp_client_msg m = { .helo = "fuzz.test", .sender = "s@example.test", .envid = "",
	    .body_fd = body_fd, .size = 40, .rcpts = rc, .nrcpts = 3 };
	struct smtp_client_timeouts to = { 1, 1, 1 };
	char tls[64], err[256];
	bool permanent = false;
	int r;
	size_t i;

	if (listener == -1)
		setup();
	if (size > 65536)
		return 0;
	pthread_mutex_lock(&lock);
	free(reply);
	if ((reply = malloc(size + 1)) == NULL)
		abort();
	memcpy(reply, data, size);
	reply_len = size;
	pthread_mutex_unlock(&lock);
	r = smtp_client_send("127.0.0.1", port, NULL, &to, &m, &permanent, tls, sizeof(tls),
	    err, sizeof(err));
	/* The client hung up: let the server side finish with it. */
	pthread_mutex_lock(&lock);
	while (busy > 0)
		pthread_cond_wait(&idle, &lock);
	pthread_mutex_unlock(&lock);
	if (r != SMTPC_DONE && r != SMTPC_TEMPFAIL)
		abort();
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	for (i = 0; i < 3; i++) {
		const char *p;

		if (rc[i].code != 0 && (rc[i].code < 200 || rc[i].code > 599))
			abort();
		if (r == SMTPC_TEMPFAIL && rc[i].code >= 200 && rc[i].code < 300)
			abort();	/* never "delivered" when the session failed */
		for (p = rc[i].enhanced; *p; p++)
			if (!((*p >= '0' && *p <= '9') || *p == '.'))
				abort();
		for (p = rc[i].text; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
	}
	return 0;
}
