/* conn: the shared connection machinery of the protocol services, driven
 * over real loopback TCP and real TLS by a small line protocol defined here:
 * greeting, echo, STARTTLS, QUIT, idle and shutdown goodbyes, busy reply. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "service.h"
#include "session.h"

static struct tls_creds	*creds;
static char		 cadir[64], cafile[128];
static pthread_t	 loop_thread;
static unsigned		 port_offset;

/* The test protocol. */
static int
echo_open(struct conn *c)
{
	return conn_printf(c, "+OK hello\r\n");
}

static void
echo_input(struct conn *c)
{
	struct buf *in = conn_input(c);
	size_t eol, len;

	while ((len = buf_line(in, &eol)) > 0 || eol > 0) {
		char line[256];

		snprintf(line, sizeof(line), "%.*s", (int)len, buf_data(in));
		buf_consume(in, eol);
		if (strcmp(line, "QUIT") == 0) {
			conn_printf(c, "+OK bye\r\n");
			conn_close(c);
			return;
		} else if (strcmp(line, "STARTTLS") == 0) {
			conn_printf(c, "+OK go\r\n");
			conn_starttls(c);
			return;
		} else if (strcmp(line, "TLS?") == 0)
			conn_printf(c, "+OK tls=%s\r\n", conn_tls_active(c) ? "yes" : "no");
		else if (strcmp(line, "WHO") == 0) {
			conn_set_identity(c, "t1", "u1@t1.test");
			conn_printf(c, "+OK\r\n");
		} else
			conn_printf(c, "+ECHO %s\r\n", line);
	}
	if (buf_len(in) >= in->max) {
		buf_reset(in);
		conn_printf(c, "-ERR line too long\r\n");
		conn_close(c);
	}
}

static void
echo_goodbye(struct conn *c, bool idle)
{
	conn_printf(c, idle ? "-ERR idle\r\n" : "-ERR shutting down\r\n");
}

static const struct conn_ops echo_ops = {
	.open = echo_open,
	.input = echo_input,
	.goodbye = echo_goodbye,
	.busy_reply = "-ERR busy\r\n",
	.max_input = 1024,
};

static int
echo_start(struct service *s, char *err, size_t errlen)
{
	bool implicit = s->def->tls == SERVICE_TLS_IMPLICIT;

	s->impl = conn_listen(s, &echo_ops, creds, implicit, err, errlen);
	return s->impl ? 0 : -1;
}

static void
echo_stop(struct service *s, bool drain)
{
	conn_listener_stop(s->impl, drain);
	s->impl = NULL;
}

static const struct service_handler echo_handler = { .start = echo_start, .stop = echo_stop };

/* Running control calls on loop 0, as the node does. */
struct call {
	sem_t	 done;
	int	 rc;
	int	 op;		/* 0 start, 1 stop drain, 2 stop now, 3 stop+start */
	struct service *s;
};

static void
run_call(void *arg)
{
	struct call *c = arg;
	char err[256];

	switch (c->op) {
	case 0: c->rc = service_start(c->s, err, sizeof(err)); break;
	case 1: c->rc = service_stop(c->s, true, err, sizeof(err)); break;
	case 2: c->rc = service_stop(c->s, false, err, sizeof(err)); break;
	case 3: c->rc = service_restart(c->s, err, sizeof(err)); break;
	}
	if (c->rc == -1)
		fprintf(stderr, "control call failed: %s\n", err);
	sem_post(&c->done);
}

static int
on_loop0(struct service *s, int op)
{
	struct call c = { .op = op, .s = s };

	sem_init(&c.done, 0, 0);
	assert_int_equal(loop_post(loops_get(0), run_call, &c), 0);
	sem_wait(&c.done);
	sem_destroy(&c.done);
	return c.rc;
}

/* A client. */
static int
dial(unsigned port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

struct client {
	int		 fd;
	struct tls_conn	*tls;
	struct buf	 in;
};

static void
client_init(struct client *cl, int fd)
{
	cl->fd = fd;
	cl->tls = NULL;
	buf_init(&cl->in, 0);
}

static void
client_free(struct client *cl)
{
	if (cl->tls)
		tls_conn_free(cl->tls);
	if (cl->fd != -1)
		close(cl->fd);
	buf_free(&cl->in);
}

static void
client_send(struct client *cl, const char *s)
{
	if (cl->tls) {
		struct buf b;

		buf_init(&b, 0);
		buf_puts(&b, s);
		while (buf_len(&b) > 0)
			assert_int_equal(tls_conn_write(cl->tls, &b), TLS_DONE);
		buf_free(&b);
	} else
		assert_int_equal(write(cl->fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Next line without CRLF, or "<EOF>" when the server closed. */
static const char *
client_line(struct client *cl, char *out, size_t outlen)
{
	size_t eol, len;

	for (;;) {
		len = buf_line(&cl->in, &eol);
		if (eol > 0) {
			snprintf(out, outlen, "%.*s", (int)len, buf_data(&cl->in));
			buf_consume(&cl->in, eol);
			return out;
		}
		if (cl->tls) {
			enum tls_status st = tls_conn_read(cl->tls, &cl->in);

			if (st == TLS_CLOSED || st == TLS_FAILED) {
				if (buf_len(&cl->in) > 0)
					continue;
				snprintf(out, outlen, "<EOF>");
				return out;
			}
		} else {
			ssize_t r = buf_read_fd(&cl->in, cl->fd);

			if (r <= 0) {
				snprintf(out, outlen, r == 0 ? "<EOF>" : "<ERR %s>", strerror(errno));
				return out;
			}
		}
	}
}

static void
client_tls(struct client *cl)
{
	enum tls_status st;

	cl->tls = tls_conn_client(cl->fd, "localhost", cafile);
	assert_non_null(cl->tls);
	while ((st = tls_conn_handshake(cl->tls)) == TLS_WANT_READ || st == TLS_WANT_WRITE)
		;
	assert_int_equal(st, TLS_DONE);
}

#define EXPECT(cl, text) do {						\
	char _l[512];							\
	assert_string_equal(client_line((cl), _l, sizeof(_l)), (text));	\
} while (0)

static bool
wait_for(bool (*pred)(struct service *), struct service *s)
{
	for (int i = 0; i < 500; i++) {
		if (pred(s))
			return true;
		usleep(10000);
	}
	return pred(s);
}

static bool
no_sessions(struct service *s)
{
	return atomic_load(&s->counters.current) == 0;
}

static void *
loops_main(void *unused)
{
	(void)unused;
	loops_run();
	return NULL;
}

static int
setup(void **state)
{
	char err[256];

	(void)state;
	log_init("test_conn", 0, LOG_LVL_WARN);
	snprintf(cadir, sizeof(cadir), "/tmp/mn-conn-XXXXXX");
	assert_non_null(mkdtemp(cadir));
	assert_int_equal(tls_dev_certs_ensure(cadir, err, sizeof(err)), 0);
	snprintf(cafile, sizeof(cafile), "%s/ca.pem", cadir);
	{
		char cert[128], key[128];

		snprintf(cert, sizeof(cert), "%s/server.pem", cadir);
		snprintf(key, sizeof(key), "%s/server-key.pem", cadir);
		assert_non_null(creds = tls_creds_load(cert, key, err, sizeof(err)));
	}
	port_offset = 40000 + (unsigned)(getpid() % 200) * 100;
	services_init(true, port_offset, NULL);
	service_set_handler("pop3", &echo_handler);
	service_set_handler("pop3s", &echo_handler);
	assert_int_equal(loops_init(2), 0);
	assert_int_equal(pthread_create(&loop_thread, NULL, loops_main, NULL), 0);
	return 0;
}

static void
stop_all(void *arg)
{
	services_stop_all();
	sem_post(arg);
}

static int
teardown(void **state)
{
	sem_t done;
	char cmd[128];

	(void)state;
	sem_init(&done, 0, 0);
	loop_post(loops_get(0), stop_all, &done);
	sem_wait(&done);
	usleep(100000);		/* let the loops run the listener's detach */
	loops_stop();
	pthread_join(loop_thread, NULL);
	loops_free();
	tls_creds_free(creds);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cadir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", cadir);
	return 0;
}

static struct service *
started(const char *name)
{
	struct service *s = service_find(name);

	if (s->state != SERVICE_RUNNING)
		assert_int_equal(on_loop0(s, 0), 0);
	return s;
}

static void
test_greet_echo_quit(void **state)
{
	struct service *s = started("pop3");
	struct client cl;
	uint64_t total = atomic_load(&s->counters.total);

	(void)state;
	client_init(&cl, dial(s->settings.port));
	EXPECT(&cl, "+OK hello");
	client_send(&cl, "ping\r\nWHO\r\n");
	EXPECT(&cl, "+ECHO ping");
	EXPECT(&cl, "+OK");
	{
		struct session_view *v;
		size_t n, i;
		bool found = false;

		assert_int_equal(sessions_snapshot("pop3", NULL, &v, &n), 0);
		for (i = 0; i < n; i++)
			if (strcmp(v[i].user, "u1@t1.test") == 0 && strcmp(v[i].tenant, "t1") == 0 &&
			    strncmp(v[i].peer, "127.0.0.1:", 10) == 0)
				found = true;
		free(v);
		assert_true(found);
	}
	client_send(&cl, "QUIT\r\n");
	EXPECT(&cl, "+OK bye");
	EXPECT(&cl, "<EOF>");
	client_free(&cl);
	assert_int_equal(atomic_load(&s->counters.total), total + 1);
	assert_true(wait_for(no_sessions, s));
}

static void
test_half_close_still_gets_reply(void **state)
{
	struct service *s = started("pop3");
	struct client cl;

	(void)state;
	client_init(&cl, dial(s->settings.port));
	EXPECT(&cl, "+OK hello");
	client_send(&cl, "last\r\nQUIT\r\n");
	shutdown(cl.fd, SHUT_WR);
	EXPECT(&cl, "+ECHO last");
	EXPECT(&cl, "+OK bye");
	EXPECT(&cl, "<EOF>");
	client_free(&cl);
}

static void
test_many_sessions_over_loops(void **state)
{
	struct service *s = started("pop3");
	struct client cl[16];
	int i;

	(void)state;
	for (i = 0; i < 16; i++) {
		client_init(&cl[i], dial(s->settings.port));
		EXPECT(&cl[i], "+OK hello");
	}
	assert_int_equal(atomic_load(&s->counters.current), 16);
	for (i = 0; i < 16; i++) {
		char msg[32], want[40];

		snprintf(msg, sizeof(msg), "n%d\r\n", i);
		snprintf(want, sizeof(want), "+ECHO n%d", i);
		client_send(&cl[i], msg);
		EXPECT(&cl[i], want);
	}
	for (i = 0; i < 16; i++)
		client_free(&cl[i]);
	assert_true(wait_for(no_sessions, s));
}

static void
test_max_clients_busy_reply(void **state)
{
	struct service *s = started("pop3");
	struct client a, b, c;
	uint64_t rejected = atomic_load(&s->counters.rejected);

	(void)state;
	assert_true(wait_for(no_sessions, s));
	s->settings.max_clients = 2;
	client_init(&a, dial(s->settings.port));
	EXPECT(&a, "+OK hello");
	client_init(&b, dial(s->settings.port));
	EXPECT(&b, "+OK hello");
	client_init(&c, dial(s->settings.port));
	EXPECT(&c, "-ERR busy");
	EXPECT(&c, "<EOF>");
	assert_int_equal(atomic_load(&s->counters.rejected), rejected + 1);
	client_free(&a);
	client_free(&b);
	client_free(&c);
	s->settings.max_clients = 1000;
	assert_true(wait_for(no_sessions, s));
}

static void
test_idle_timeout(void **state)
{
	struct service *s = started("pop3");
	struct client cl;

	(void)state;
	s->settings.timeout = 1;
	client_init(&cl, dial(s->settings.port));
	EXPECT(&cl, "+OK hello");
	EXPECT(&cl, "-ERR idle");
	EXPECT(&cl, "<EOF>");
	client_free(&cl);
	s->settings.timeout = 600;
}

static void
test_long_line_refused(void **state)
{
	struct service *s = started("pop3");
	struct client cl;
	char big[3000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	client_init(&cl, dial(s->settings.port));
	EXPECT(&cl, "+OK hello");
	client_send(&cl, big);
	EXPECT(&cl, "-ERR line too long");
	{
		/* Closing with the rest of the line unread makes the kernel send
		 * a reset; what matters is that the refusal arrived first. */
		char l[128];
		const char *end = client_line(&cl, l, sizeof(l));

		assert_true(strcmp(end, "<EOF>") == 0 || strstr(end, "reset") != NULL);
	}
	client_free(&cl);
}

static void
test_starttls_discards_pipelined_cleartext(void **state)
{
	struct service *s = started("pop3");
	struct client cl;

	(void)state;
	client_init(&cl, dial(s->settings.port));
	EXPECT(&cl, "+OK hello");
	client_send(&cl, "TLS?\r\n");
	EXPECT(&cl, "+OK tls=no");
	/* A command injected behind STARTTLS in clear must not run under TLS. */
	client_send(&cl, "STARTTLS\r\nINJECTED\r\n");
	EXPECT(&cl, "+OK go");
	client_tls(&cl);
	client_send(&cl, "TLS?\r\n");
	EXPECT(&cl, "+OK tls=yes");
	client_send(&cl, "QUIT\r\n");
	EXPECT(&cl, "+OK bye");
	EXPECT(&cl, "<EOF>");
	client_free(&cl);
}

static void
test_implicit_tls(void **state)
{
	struct service *s = started("pop3s");
	struct client cl;

	(void)state;
	client_init(&cl, dial(s->settings.port));
	client_tls(&cl);
	EXPECT(&cl, "+OK hello");
	client_send(&cl, "TLS?\r\n");
	EXPECT(&cl, "+OK tls=yes");
	client_send(&cl, "STARTTLS\r\n");	/* already TLS: plain echo of refusal */
	EXPECT(&cl, "+OK go");
	client_free(&cl);
}

static void
test_stop_drains_then_restart(void **state)
{
	struct service *s = started("pop3");
	struct client cl, again;

	(void)state;
	client_init(&cl, dial(s->settings.port));
	EXPECT(&cl, "+OK hello");
	assert_int_equal(on_loop0(s, 1), 0);		/* stop, draining */
	assert_int_equal(dial(s->settings.port), -1);	/* port closed at once */
	client_send(&cl, "still\r\n");
	EXPECT(&cl, "+ECHO still");
	/* Start again while the drained session lives on. */
	assert_int_equal(on_loop0(s, 0), 0);
	client_init(&again, dial(s->settings.port));
	EXPECT(&again, "+OK hello");
	client_send(&cl, "QUIT\r\n");
	EXPECT(&cl, "+OK bye");
	client_free(&cl);
	client_free(&again);
	assert_true(wait_for(no_sessions, s));
}

static void
test_stop_now_says_goodbye(void **state)
{
	struct service *s = started("pop3");
	struct client cl;

	(void)state;
	client_init(&cl, dial(s->settings.port));
	EXPECT(&cl, "+OK hello");
	assert_int_equal(on_loop0(s, 2), 0);		/* stop now */
	EXPECT(&cl, "-ERR shutting down");
	EXPECT(&cl, "<EOF>");
	client_free(&cl);
	assert_true(wait_for(no_sessions, s));
	assert_int_equal(on_loop0(s, 3), 0);		/* restart from stopped */
	assert_int_equal(s->state, SERVICE_RUNNING);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greet_echo_quit),
		cmocka_unit_test(test_half_close_still_gets_reply),
		cmocka_unit_test(test_many_sessions_over_loops),
		cmocka_unit_test(test_max_clients_busy_reply),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_long_line_refused),
		cmocka_unit_test(test_starttls_discards_pipelined_cleartext),
		cmocka_unit_test(test_implicit_tls),
		cmocka_unit_test(test_stop_drains_then_restart),
		cmocka_unit_test(test_stop_now_says_goodbye),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
