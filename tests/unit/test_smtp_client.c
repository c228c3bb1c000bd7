/* test_smtp_client: node/smtp_client.c against small scripted SMTP servers
 * running in a thread on 127.0.0.1: what the client sends (commands,
 * parameters, the dot-stuffed message), how it reads replies (multi-line,
 * bounded, malformed), per-recipient verdicts, whole-session failures
 * (greeting, MAIL, DATA, a closed or silent server) and STARTTLS:
 * opportunistic, verified against a CA, and the plain-text retry after a
 * failed handshake. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "smtp_client.h"
#include "smtp_parse.h"
#include "tls.h"

#define SRV_WAIT_MS	10000	/* the server gives up on a stuck test */
#define SRV_LINE_MAX	100000

enum srv_mode {
	SRV_NORMAL,
	SRV_SILENT,		/* accept, never say a word */
	SRV_CLOSE_IN_DATA,	/* 354, read a little of the message, close */
	SRV_BAD_TLS,		/* 220 to STARTTLS, then garbage instead of a handshake */
	SRV_INJECT,		/* 220 to STARTTLS and a reply in the same packet */
};

/* One scripted server; replies are full strings with CRLF, NULL: default. */
struct srv {
	enum srv_mode	 mode;
	const char	*greeting;
	const char	*ehlo;		/* NULL: 502, so the client falls back to HELO */
	const char	*ehlo_tls;	/* after STARTTLS; NULL: "250 ok" */
	const char	*mail;
	const char	*rcpt[8];
	const char	*data;
	const char	*final;
	struct tls_creds *creds;
	int		 nconn;		/* connections to serve (default 1) */
	/* what happened */
	int		 lfd;
	unsigned	 port;
	pthread_t	 th;
	struct buf	 cmds;		/* every command line, "\n"-terminated */
	struct buf	 msg;		/* the raw bytes after 354 up to and with ".\r\n" */
	int		 conns;
	int		 handshakes;
	int		 ndata;
	char		 fail[256];	/* a server-side problem, checked by the test */
};

struct sconn {
	int		 fd;
	struct tls_conn	*tls;
	struct buf	 in, out;
};

static char		 certdir[64], otherdir[64];
static char		 cafile[PATH_MAX], othercafile[PATH_MAX];
static struct tls_creds	*creds;

static const struct smtp_client_timeouts quick = { 5, 5, 5 };

static int
s_wait(struct sconn *c, short ev)
{
	struct pollfd p = { .fd = c->fd, .events = ev };
	int r;

	do
		r = poll(&p, 1, SRV_WAIT_MS);
	while (r == -1 && errno == EINTR);
	return r > 0 ? 0 : -1;
}

static int
s_flush(struct sconn *c)
{
	enum tls_status st;
	ssize_t r;

	while (buf_len(&c->out) > 0) {
		if (c->tls != NULL) {
			st = tls_conn_write(c->tls, &c->out);
			if (st == TLS_WANT_READ || st == TLS_WANT_WRITE) {
				if (s_wait(c, st == TLS_WANT_READ ? POLLIN : POLLOUT) == -1)
					return -1;
			} else if (st != TLS_DONE)
				return -1;
			continue;
		}
		r = send(c->fd, buf_data(&c->out), buf_len(&c->out), MSG_NOSIGNAL);
		if (r > 0)
			buf_consume(&c->out, (size_t)r);
		else if (r == -1 && errno == EAGAIN) {
			if (s_wait(c, POLLOUT) == -1)
				return -1;
		} else
			return -1;
	}
	return 0;
}

static int
s_say(struct sconn *c, const char *s)
{
	if (buf_puts(&c->out, s) == -1)
		return -1;
	return s_flush(c);
}

/* One line with its line end; 0 at EOF or error. */
static size_t
s_line(struct sconn *c, char *line, size_t max)
{
	enum tls_status st;
	size_t n, eol;
	ssize_t r;

	for (;;) {
		n = buf_line(&c->in, &eol);
		if (eol > 0) {
			(void)n;
			if (eol >= max)
				return 0;
			memcpy(line, buf_data(&c->in), eol);
			line[eol] = '\0';
			buf_consume(&c->in, eol);
			return eol;
		}
		if (c->tls != NULL) {
			size_t before = buf_len(&c->in);

			st = tls_conn_read(c->tls, &c->in);
			if (buf_len(&c->in) > before)
				continue;
			if (st == TLS_WANT_READ || st == TLS_WANT_WRITE) {
				if (s_wait(c, st == TLS_WANT_READ ? POLLIN : POLLOUT) == -1)
					return 0;
				continue;
			}
			if (st == TLS_DONE)
				continue;
			return 0;
		}
		r = buf_read_fd(&c->in, c->fd);
		if (r > 0)
			continue;
		if (r == -1 && errno == EAGAIN) {
			if (s_wait(c, POLLIN) == -1)
				return 0;
			continue;
		}
		return 0;
	}
}

static bool
verb(const char *line, const char *v)
{
	return strncasecmp(line, v, strlen(v)) == 0;
}

static void
serve_one(struct srv *sv, struct sconn *c)
{
	static char line[SRV_LINE_MAX];
	enum tls_status st;
	size_t n;
	int nrcpt = 0;

	if (sv->mode == SRV_SILENT) {
		/* Until the client gives up and closes. */
		while (s_line(c, line, sizeof(line)) > 0)
			;
		return;
	}
	if (s_say(c, sv->greeting ? sv->greeting : "220 test.example ESMTP\r\n") == -1)
		return;
	while ((n = s_line(c, line, sizeof(line))) > 0) {
		if (buf_append(&sv->cmds, line, n - 2) == -1 || buf_puts(&sv->cmds, "\n") == -1)
			return;
		if (verb(line, "EHLO ")) {
			if (s_say(c, c->tls != NULL ? (sv->ehlo_tls ? sv->ehlo_tls : "250 ok\r\n") :
			    sv->ehlo ? sv->ehlo : "502 5.5.1 no EHLO here\r\n") == -1)
				return;
		} else if (verb(line, "HELO ")) {
			if (s_say(c, "250 hello\r\n") == -1)
				return;
		} else if (verb(line, "STARTTLS")) {
			if (sv->mode == SRV_INJECT) {
				(void)s_say(c, "220 2.0.0 go ahead\r\n250 injected\r\n");
				(void)s_line(c, line, sizeof(line));	/* until the client closes */
				return;
			}
			if (s_say(c, "220 2.0.0 go ahead\r\n") == -1)
				return;
			if (sv->mode == SRV_BAD_TLS && sv->conns == 1) {
				/* After the ClientHello, so that it is not taken
				 * for bytes that came with the 220. */
				if (s_wait(c, POLLIN) == 0)
					(void)s_say(c, "this is not TLS at all\r\n");
				return;
			}
			if ((c->tls = tls_conn_server(c->fd, sv->creds)) == NULL)
				return;
			while ((st = tls_conn_handshake(c->tls)) != TLS_DONE) {
				if ((st != TLS_WANT_READ && st != TLS_WANT_WRITE) ||
				    s_wait(c, st == TLS_WANT_READ ? POLLIN : POLLOUT) == -1)
					return;
			}
			sv->handshakes++;
		} else if (verb(line, "MAIL FROM:")) {
			nrcpt = 0;
			if (s_say(c, sv->mail ? sv->mail : "250 2.1.0 ok\r\n") == -1)
				return;
		} else if (verb(line, "RCPT TO:")) {
			const char *r = nrcpt < 8 && sv->rcpt[nrcpt] ? sv->rcpt[nrcpt] :
			    "250 2.1.5 ok\r\n";

			nrcpt++;
			if (s_say(c, r) == -1)
				return;
		} else if (verb(line, "DATA")) {
			const char *r = sv->data ? sv->data : "354 go ahead\r\n";

			sv->ndata++;
			if (s_say(c, r) == -1)
				return;
			if (r[0] != '3')
				continue;
			for (;;) {
				if ((n = s_line(c, line, sizeof(line))) == 0)
					return;
				if (buf_append(&sv->msg, line, n) == -1)
					return;
				if (sv->mode == SRV_CLOSE_IN_DATA)
					return;
				if (n == 3 && memcmp(line, ".\r\n", 3) == 0)
					break;
			}
			if (s_say(c, sv->final ? sv->final : "250 2.0.0 queued as X\r\n") == -1)
				return;
		} else if (verb(line, "QUIT")) {
			(void)s_say(c, "221 2.0.0 bye\r\n");
			return;
		} else if (verb(line, "RSET") || verb(line, "NOOP")) {
			if (s_say(c, "250 ok\r\n") == -1)
				return;
		} else if (s_say(c, "500 5.5.2 what?\r\n") == -1)
			return;
	}
}

static void *
serve(void *arg)
{
	struct srv *sv = arg;
	struct pollfd p = { .fd = sv->lfd, .events = POLLIN };
	struct sconn c;
	int i;

	for (i = 0; i < (sv->nconn ? sv->nconn : 1); i++) {
		if (poll(&p, 1, SRV_WAIT_MS) != 1) {
			snprintf(sv->fail, sizeof(sv->fail), "no connection %d", i + 1);
			break;
		}
		memset(&c, 0, sizeof(c));
		if ((c.fd = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
			snprintf(sv->fail, sizeof(sv->fail), "accept: %s", strerror(errno));
			break;
		}
		buf_init(&c.in, 2 * SRV_LINE_MAX);
		buf_init(&c.out, 0);
		sv->conns++;
		serve_one(sv, &c);
		if (c.tls != NULL) {
			(void)tls_conn_bye(c.tls);
			tls_conn_free(c.tls);
		}
		(void)close(c.fd);
		buf_free(&c.in);
		buf_free(&c.out);
	}
	return NULL;
}

static void
srv_start(struct srv *sv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);

	buf_init(&sv->cmds, 0);
	buf_init(&sv->msg, 0);
	if (sv->creds == NULL)
		sv->creds = creds;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((sv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(sv->lfd, 4), 0);
	assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&sin, &sl), 0);
	sv->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&sv->th, NULL, serve, sv), 0);
}

static void
srv_stop(struct srv *sv)
{
	assert_int_equal(pthread_join(sv->th, NULL), 0);
	(void)close(sv->lfd);
}

static void
srv_free(struct srv *sv)
{
	buf_free(&sv->cmds);
	buf_free(&sv->msg);
}

/* A message file holding body. */
static int
body_file(const char *body, size_t len)
{
	char path[] = "/tmp/test_smtp_client.XXXXXX";
	int fd;

	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(write(fd, body, len), (ssize_t)len);
	return fd;
}

struct run {
	struct smtp_client_rcpt	 rcpts[4];
	struct smtp_client_msg	 msg;
	bool			 permanent;
	char			 tls[64];
	char			 err[512];
	int			 rc;
};

static void
run_init(struct run *r, const char *body, size_t nrcpts)
{
	static const char *addrs[] = { "a@dest.example", "b@dest.example",
	    "c@dest.example", "d@dest.example" };
	size_t i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < nrcpts; i++) {
		r->rcpts[i].address = addrs[i];
		r->rcpts[i].orcpt = "";
	}
	r->msg.helo = "mx.ours.example";
	r->msg.sender = "sender@ours.example";
	r->msg.envid = "";
	r->msg.body_fd = body_file(body, strlen(body));
	r->msg.size = strlen(body);
	r->msg.rcpts = r->rcpts;
	r->msg.nrcpts = nrcpts;
}

static void
run_go(struct run *r, struct srv *sv, const char *ca, const struct smtp_client_timeouts *to)
{
	r->rc = smtp_client_send("127.0.0.1", sv->port, ca, to ? to : &quick, &r->msg,
	    &r->permanent, r->tls, sizeof(r->tls), r->err, sizeof(r->err));
	srv_stop(sv);
	(void)close(r->msg.body_fd);
	assert_string_equal(sv->fail, "");
}

static const char *
cmds(struct srv *sv)
{
	return buf_cstr(&sv->cmds);
}

static const char *
msg(struct srv *sv)
{
	return buf_cstr(&sv->msg);
}

static const char ehlo_all[] =
    "250-test.example hello\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-dsn\r\n"
    "250 SMTPUTF8\r\n";

static void
test_clean_delivery(void **state)
{
	struct srv sv = { .ehlo = ehlo_all };
	struct run r;
	const char *body = "Subject: hi\r\n\r\n.leading dot\r\nmiddle\r\n..two\r\n.\r\nend\r\n";

	(void)state;
	srv_start(&sv);
	run_init(&r, body, 2);
	r.msg.envid = "id+1=x y";
	r.msg.ret_hdrs = true;
	r.msg.return_path_prefix = "Return-Path: <sender@ours.example>\r\n";
	r.rcpts[0].notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY;
	r.rcpts[0].orcpt = "rfc822;Joe+x=y@dest.example";
	r.rcpts[1].notify = SMTP_NOTIFY_NEVER;
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_false(r.permanent);
	assert_string_equal(r.tls, "none");
	assert_string_equal(cmds(&sv),
	    "EHLO mx.ours.example\n"
	    "MAIL FROM:<sender@ours.example> SIZE=88 BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx+20y\n"
	    "RCPT TO:<a@dest.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;Joe+2Bx+3Dy@dest.example\n"
	    "RCPT TO:<b@dest.example> NOTIFY=NEVER\n"
	    "DATA\n"
	    "QUIT\n");
	assert_int_equal(strlen(body) + strlen(r.msg.return_path_prefix), 88);
	assert_string_equal(msg(&sv),
	    "Return-Path: <sender@ours.example>\r\n"
	    "Subject: hi\r\n\r\n..leading dot\r\nmiddle\r\n...two\r\n..\r\nend\r\n.\r\n");
	assert_int_equal(r.rcpts[0].code, 250);
	assert_string_equal(r.rcpts[0].enhanced, "2.0.0");
	assert_string_equal(r.rcpts[0].text, "queued as X");
	assert_int_equal(r.rcpts[1].code, 250);
	srv_free(&sv);
}

/* No EHLO: HELO, and no parameters at all. */
static void
test_helo_fallback(void **state)
{
	struct srv sv = { .ehlo = NULL };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	r.msg.envid = "e";
	r.msg.ret_hdrs = true;
	r.rcpts[0].notify = SMTP_NOTIFY_FAILURE;
	r.rcpts[0].orcpt = "rfc822;a@dest.example";
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_string_equal(cmds(&sv),
	    "EHLO mx.ours.example\n"
	    "HELO mx.ours.example\n"
	    "MAIL FROM:<sender@ours.example>\n"
	    "RCPT TO:<a@dest.example>\n"
	    "DATA\n"
	    "QUIT\n");
	assert_int_equal(r.rcpts[0].code, 250);
	srv_free(&sv);
}

static void
test_mixed_rcpts(void **state)
{
	struct srv sv = {
		.ehlo = "250 test.example\r\n",
		.rcpt = { "250 2.1.5 ok\r\n", "450 4.2.1 try later\r\n",
		    "550-5.1.1 no such user\r\n550 5.1.1 really\r\n", "251 will forward\r\n" },
	};
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 4);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(r.rcpts[0].code, 250);
	assert_string_equal(r.rcpts[0].enhanced, "2.0.0");
	assert_int_equal(r.rcpts[1].code, 450);
	assert_string_equal(r.rcpts[1].enhanced, "4.2.1");
	assert_string_equal(r.rcpts[1].text, "try later");
	assert_int_equal(r.rcpts[2].code, 550);
	assert_string_equal(r.rcpts[2].enhanced, "5.1.1");
	assert_string_equal(r.rcpts[2].text, "no such user");
	assert_int_equal(r.rcpts[3].code, 250);	/* the DATA verdict */
	assert_int_equal(sv.ndata, 1);
	srv_free(&sv);
}

static void
test_all_rcpts_refused(void **state)
{
	struct srv sv = {
		.ehlo = "250 test.example\r\n",
		.rcpt = { "550 5.1.1 no\r\n", "452 4.5.3 too many\r\n" },
	};
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 2);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(r.rcpts[0].code, 550);
	assert_int_equal(r.rcpts[1].code, 452);
	assert_int_equal(sv.ndata, 0);
	assert_non_null(strstr(cmds(&sv), "QUIT\n"));
	srv_free(&sv);
}

static void
test_greeting_421(void **state)
{
	struct srv sv = { .greeting = "421 4.3.2 busy\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_non_null(strstr(r.err, "421 4.3.2 busy"));
	assert_int_equal(r.rcpts[0].code, 0);
	assert_string_equal(cmds(&sv), "");	/* no QUIT after 421 */
	srv_free(&sv);
}

static void
test_greeting_554(void **state)
{
	struct srv sv = { .greeting = "554 5.7.1 go away\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_true(r.permanent);
	assert_string_equal(cmds(&sv), "QUIT\n");
	srv_free(&sv);
}

static void
test_mail_5xx(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n", .mail = "553 5.7.1 sender refused\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 2);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_true(r.permanent);
	assert_non_null(strstr(r.err, "MAIL: 553 5.7.1 sender refused"));
	assert_int_equal(r.rcpts[0].code, 0);
	assert_null(strstr(cmds(&sv), "RCPT"));
	srv_free(&sv);
}

static void
test_mail_4xx(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n", .mail = "451 4.3.0 later\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	srv_free(&sv);
}

/* A refusal at the end of data is every accepted recipient's verdict. */
static void
test_data_5xx(void **state)
{
	struct srv sv = {
		.ehlo = "250 x\r\n",
		.rcpt = { "250 ok\r\n", "550 5.1.1 no\r\n" },
		.final = "554 5.6.0 content refused\r\n",
	};
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 2);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_true(r.permanent);
	assert_int_equal(r.rcpts[0].code, 554);
	assert_string_equal(r.rcpts[0].enhanced, "5.6.0");
	assert_int_equal(r.rcpts[1].code, 550);
	srv_free(&sv);
}

static void
test_data_refused_4xx(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n", .data = "451 4.3.0 no DATA now\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_int_equal(r.rcpts[0].code, 451);
	assert_string_equal(msg(&sv), "");
	srv_free(&sv);
}

/* 2xx to DATA makes no sense: give up without a QUIT that could become data. */
static void
test_data_unexpected(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n", .data = "250 sure\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_int_equal(r.rcpts[0].code, 0);
	assert_null(strstr(cmds(&sv), "QUIT"));
	srv_free(&sv);
}

static void
test_starttls_opportunistic(void **state)
{
	struct srv sv = {
		.ehlo = "250-test.example\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
		.ehlo_tls = "250-test.example\r\n250 SIZE\r\n",
	};
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "hello\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(sv.handshakes, 1);
	assert_non_null(strstr(r.tls, "TLS1."));
	/* The second EHLO's extensions count, not the first's. */
	assert_string_equal(cmds(&sv),
	    "EHLO mx.ours.example\n"
	    "STARTTLS\n"
	    "EHLO mx.ours.example\n"
	    "MAIL FROM:<sender@ours.example> SIZE=7\n"
	    "RCPT TO:<a@dest.example>\n"
	    "DATA\n"
	    "QUIT\n");
	assert_string_equal(msg(&sv), "hello\r\n.\r\n");
	assert_int_equal(r.rcpts[0].code, 250);
	srv_free(&sv);
}

static void
test_starttls_verified(void **state)
{
	struct srv sv = { .ehlo = "250-test.example\r\n250 STARTTLS\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "hello\r\n", 1);
	run_go(&r, &sv, cafile, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(sv.handshakes, 1);
	assert_non_null(strstr(r.tls, "TLS1."));
	assert_int_equal(r.rcpts[0].code, 250);
	srv_free(&sv);
}

/* A certificate from another CA: no delivery, and no plain-text retry. */
static void
test_starttls_verify_fails(void **state)
{
	struct srv sv = { .ehlo = "250-test.example\r\n250 STARTTLS\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "hello\r\n", 1);
	run_go(&r, &sv, othercafile, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_int_equal(sv.handshakes, 0);
	assert_int_equal(sv.conns, 1);
	assert_null(strstr(cmds(&sv), "MAIL"));
	assert_non_null(strstr(r.err, "TLS handshake"));
	srv_free(&sv);
}

/* With cafile, a server without STARTTLS does not get the message. */
static void
test_starttls_required(void **state)
{
	struct srv sv = { .ehlo = "250 test.example\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "hello\r\n", 1);
	run_go(&r, &sv, cafile, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_string_equal(cmds(&sv), "EHLO mx.ours.example\nQUIT\n");
	srv_free(&sv);
}

/* Opportunistic: a broken handshake, then one plain connection. */
static void
test_starttls_fallback(void **state)
{
	struct srv sv = {
		.mode = SRV_BAD_TLS, .nconn = 2,
		.ehlo = "250-test.example\r\n250 STARTTLS\r\n",
	};
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "hello\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(sv.conns, 2);
	assert_string_equal(r.tls, "none");
	assert_string_equal(cmds(&sv),
	    "EHLO mx.ours.example\n"
	    "STARTTLS\n"
	    "EHLO mx.ours.example\n"
	    "MAIL FROM:<sender@ours.example>\n"
	    "RCPT TO:<a@dest.example>\n"
	    "DATA\n"
	    "QUIT\n");
	assert_int_equal(r.rcpts[0].code, 250);
	srv_free(&sv);
}

/* Bytes that came with the 220 must not be read as replies under TLS. */
static void
test_starttls_injection(void **state)
{
	struct srv sv = { .mode = SRV_INJECT, .ehlo = "250-test.example\r\n250 STARTTLS\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "hello\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_int_equal(sv.conns, 1);
	assert_non_null(strstr(r.err, "data after the reply to STARTTLS"));
	srv_free(&sv);
}

static void
test_close_in_data(void **state)
{
	struct srv sv = { .mode = SRV_CLOSE_IN_DATA, .ehlo = "250 x\r\n" };
	struct run r;
	char *big;
	size_t i, n = 300000;

	(void)state;
	/* Large enough that the client is still sending when the server goes. */
	assert_non_null(big = malloc(n + 1));
	for (i = 0; i < n; i++)
		big[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : 'x';
	big[n] = '\0';
	srv_start(&sv);
	run_init(&r, big, 1);
	run_go(&r, &sv, NULL, NULL);
	free(big);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_int_equal(r.rcpts[0].code, 0);	/* accepted at RCPT, never delivered */
	srv_free(&sv);
}

static void
test_silent_server(void **state)
{
	static const struct smtp_client_timeouts to = { 5, 1, 1 };
	struct srv sv = { .mode = SRV_SILENT };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, &to);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_non_null(strstr(r.err, "greeting: timed out"));
	srv_free(&sv);
}

/* A host name (verified against the certificate) and an address literal. */
static void
test_host_forms(void **state)
{
	struct srv sv = { .ehlo = "250-x\r\n250 STARTTLS\r\n" }, sv2 = { .ehlo = "250 x\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	r.rc = smtp_client_send("localhost", sv.port, cafile, &quick, &r.msg, &r.permanent,
	    r.tls, sizeof(r.tls), r.err, sizeof(r.err));
	srv_stop(&sv);
	(void)close(r.msg.body_fd);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(sv.handshakes, 1);
	srv_free(&sv);

	srv_start(&sv2);
	run_init(&r, "x\r\n", 1);
	r.rc = smtp_client_send("[127.0.0.1]", sv2.port, NULL, &quick, &r.msg, &r.permanent,
	    r.tls, sizeof(r.tls), r.err, sizeof(r.err));
	srv_stop(&sv2);
	(void)close(r.msg.body_fd);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(r.rcpts[0].code, 250);
	srv_free(&sv2);
}

static void
test_connect_refused(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n" };
	struct run r;
	unsigned port;

	(void)state;
	/* A port that was just free: serve once, then nobody listens. */
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	port = sv.port;
	srv_free(&sv);
	run_init(&r, "x\r\n", 1);
	r.rc = smtp_client_send("127.0.0.1", port, NULL, &quick, &r.msg, &r.permanent,
	    r.tls, sizeof(r.tls), r.err, sizeof(r.err));
	(void)close(r.msg.body_fd);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_non_null(strstr(r.err, "connect"));
}

/* Dots at line starts across file-read blocks, and no final CRLF. */
static void
test_dot_stuffing(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n" };
	struct buf want, body;
	struct run r;
	size_t i;

	(void)state;
	buf_init(&want, 0);
	buf_init(&body, 0);
	for (i = 0; i < 20000; i++) {
		/* Line lengths vary so that dots land on every block offset. */
		assert_int_equal(buf_printf(&body, ".%.*s\r\n", (int)(i % 7), "abcdefg"), 0);
		assert_int_equal(buf_printf(&want, "..%.*s\r\n", (int)(i % 7), "abcdefg"), 0);
	}
	assert_int_equal(buf_puts(&body, "..last"), 0);
	assert_int_equal(buf_puts(&want, "...last\r\n.\r\n"), 0);
	srv_start(&sv);
	run_init(&r, buf_cstr(&body), 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(buf_len(&sv.msg), buf_len(&want));
	assert_memory_equal(buf_data(&sv.msg), buf_data(&want), buf_len(&want));
	buf_free(&want);
	buf_free(&body);
	srv_free(&sv);
}

static void
test_body_ends_cr_or_empty(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n" }, sv2 = { .ehlo = "250 x\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "a\r\nb\r", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_string_equal(msg(&sv), "a\r\nb\r\n.\r\n");
	srv_free(&sv);

	srv_start(&sv2);
	run_init(&r, "", 1);
	run_go(&r, &sv2, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_string_equal(msg(&sv2), ".\r\n");
	srv_free(&sv2);
}

static void
test_size_limit(void **state)
{
	struct srv sv = { .ehlo = "250-x\r\n250-SIZE 10\r\n250 8BITMIME\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "more than ten bytes\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_true(r.permanent);
	assert_string_equal(cmds(&sv), "EHLO mx.ours.example\nQUIT\n");
	srv_free(&sv);
}

static void
test_smtputf8(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n" }, sv2 = { .ehlo = "250-x\r\n250 SMTPUTF8\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	r.msg.smtputf8 = true;
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_true(r.permanent);
	assert_non_null(strstr(r.err, "SMTPUTF8"));
	srv_free(&sv);

	srv_start(&sv2);
	run_init(&r, "x\r\n", 1);
	r.msg.smtputf8 = true;
	r.msg.sender = "j\xc3\xb6rg@ours.example";
	run_go(&r, &sv2, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_non_null(strstr(cmds(&sv2), "MAIL FROM:<j\xc3\xb6rg@ours.example> SMTPUTF8\n"));
	srv_free(&sv2);
}

static void
test_long_line(void **state)
{
	static char ehlo[4000];
	struct srv sv = { .ehlo = ehlo };
	struct run r;

	(void)state;
	memset(ehlo, 'x', sizeof(ehlo));
	memcpy(ehlo, "250-x\r\n250 ", 11);
	memcpy(ehlo + sizeof(ehlo) - 3, "\r\n", 3);
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_false(r.permanent);
	assert_non_null(strstr(r.err, "too long"));
	srv_free(&sv);
}

/* A multi-line reply over 64 KiB in lines that are each fine. */
static void
test_long_reply(void **state)
{
	struct srv sv;
	struct buf e;
	struct run r;
	int i;

	(void)state;
	buf_init(&e, 0);
	for (i = 0; i < 1000; i++)
		assert_int_equal(buf_printf(&e, "250-X-FILLER-%d %070d\r\n", i, 0), 0);
	assert_int_equal(buf_puts(&e, "250 end\r\n"), 0);
	memset(&sv, 0, sizeof(sv));
	sv.ehlo = buf_cstr(&e);
	srv_start(&sv);
	run_init(&r, "x\r\n", 1);
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_TEMPFAIL);
	assert_non_null(strstr(r.err, "reply too long"));
	buf_free(&e);
	srv_free(&sv);
}

static void
test_malformed_replies(void **state)
{
	static const char *bad[] = {
		"hello there\r\n",
		"250-x\r\n251 y\r\n",		/* codes differ */
		"25\r\n",
		"250_x\r\n",
		"650 x\r\n",
	};
	struct srv sv;
	struct run r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&sv, 0, sizeof(sv));
		sv.ehlo = bad[i];
		srv_start(&sv);
		run_init(&r, "x\r\n", 1);
		run_go(&r, &sv, NULL, NULL);
		assert_int_equal(r.rc, SMTPC_TEMPFAIL);
		assert_false(r.permanent);
		assert_non_null(strstr(r.err, "malformed"));
		srv_free(&sv);
	}
}

/* A recipient with a line break is refused here, never sent. */
static void
test_bad_recipient(void **state)
{
	struct srv sv = { .ehlo = "250 x\r\n" };
	struct run r;

	(void)state;
	srv_start(&sv);
	run_init(&r, "x\r\n", 2);
	r.rcpts[0].address = "a@dest.example>\r\nRCPT TO:<evil@x";
	run_go(&r, &sv, NULL, NULL);
	assert_int_equal(r.rc, SMTPC_DONE);
	assert_int_equal(r.rcpts[0].code, 553);
	assert_int_equal(r.rcpts[1].code, 250);
	assert_null(strstr(cmds(&sv), "evil"));
	srv_free(&sv);
}

static void
rm_tree(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		(void)unlink(path);
	}
	(void)closedir(d);
	(void)rmdir(dir);
}

static int
setup(void **state)
{
	char err[256], crt[PATH_MAX], key[PATH_MAX];

	(void)state;
	snprintf(certdir, sizeof(certdir), "/tmp/test_smtp_client.XXXXXX");
	snprintf(otherdir, sizeof(otherdir), "/tmp/test_smtp_client.XXXXXX");
	if (mkdtemp(certdir) == NULL || mkdtemp(otherdir) == NULL)
		return -1;
	if (tls_dev_certs_ensure(certdir, err, sizeof(err)) == -1 ||
	    tls_dev_certs_ensure(otherdir, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	snprintf(cafile, sizeof(cafile), "%s/ca.pem", certdir);
	snprintf(othercafile, sizeof(othercafile), "%s/ca.pem", otherdir);
	snprintf(crt, sizeof(crt), "%s/server.pem", certdir);
	snprintf(key, sizeof(key), "%s/server-key.pem", certdir);
	if ((creds = tls_creds_load(crt, key, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tls_creds_free(creds);
	rm_tree(certdir);
	rm_tree(otherdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_delivery),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_mixed_rcpts),
		cmocka_unit_test(test_all_rcpts_refused),
		cmocka_unit_test(test_greeting_421),
		cmocka_unit_test(test_greeting_554),
		cmocka_unit_test(test_mail_5xx),
		cmocka_unit_test(test_mail_4xx),
		cmocka_unit_test(test_data_5xx),
		cmocka_unit_test(test_data_refused_4xx),
		cmocka_unit_test(test_data_unexpected),
		cmocka_unit_test(test_starttls_opportunistic),
		cmocka_unit_test(test_starttls_verified),
		cmocka_unit_test(test_starttls_verify_fails),
		cmocka_unit_test(test_starttls_required),
		cmocka_unit_test(test_starttls_fallback),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_close_in_data),
		cmocka_unit_test(test_silent_server),
		cmocka_unit_test(test_host_forms),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_body_ends_cr_or_empty),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_long_reply),
		cmocka_unit_test(test_malformed_replies),
		cmocka_unit_test(test_bad_recipient),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
