/* smtp_client: the SMTP client of the queue runner (RFC 5321), one message
 * per call, to one host (an MX or a relay), with opportunistic or verified
 * STARTTLS (RFC 3207), SIZE, 8BITMIME, SMTPUTF8 and DSN parameters.
 *
 * It runs on a remote worker's own thread, so it blocks; every wait is a
 * poll() with a deadline on a non-blocking socket (the name lookup too,
 * in resolve.c), which gives exact timeouts for plain and TLS connections
 * alike. One command, one reply: no
 * pipelining, which keeps error handling per recipient simple.
 *
 * Replies are bounded (a line, a whole multi-line reply); anything that does
 * not parse as a reply ends the session as a temporary failure. */
#include "smtp_client.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "resolve.h"
#include "smtp_parse.h"
#include "tls.h"

#define SC_LINE_MAX	2048		/* one reply line, CRLF included */
#define SC_REPLY_MAX	65536		/* one whole multi-line reply */
#define SC_IN_MAX	16384		/* read buffer; lines are consumed as they come */
#define SC_OUT_BLOCK	32768		/* the message goes out in blocks of about this */
#define SC_FILE_CHUNK	16384
#define SC_QUIT_MAX_S	30		/* nobody needs the reply to QUIT for long */

/* Extensions from the EHLO reply that change what we send. */
#define EXT_STARTTLS	0x01
#define EXT_SIZE	0x02
#define EXT_8BITMIME	0x04
#define EXT_SMTPUTF8	0x08
#define EXT_DSN		0x10

struct reply {
	int	 code;
	char	 enhanced[16];
	char	 text[256];
};

struct sc {
	const char	*host;		/* as given, brackets removed */
	const struct smtp_client_timeouts *to;
	int		 fd;
	int		 cancel_fd;	/* -1: none */
	struct tls_conn	*tls;
	struct buf	 in, out;
	unsigned	 ext;		/* EXT_* of the last EHLO */
	uint64_t	 size_max;	/* SIZE limit, 0: none announced */
	const char	*phase;		/* for error messages: "greeting", "RCPT", ... */
	char		 peer[300];	/* "[addr]:port" of the connection */
	bool		 broken;	/* I/O or protocol error: no QUIT, no close_notify */
	bool		 quiet;		/* errors while closing do not replace err */
	char		*err;
	size_t		 errlen;
};

/* Dot-stuffing state carried across the blocks of the message. */
struct stuff {
	bool	 bol;			/* next byte starts a line */
	char	 prev2, prev1;		/* last two bytes sent */
};

static void
vseterr(struct sc *s, bool broken, const char *fmt, va_list ap)
{
	char msg[512];

	if (broken)
		s->broken = true;
	if (s->quiet || s->errlen == 0)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(s->err, s->errlen, "%s: %s: %s", s->peer, s->phase, msg);
}

/* An I/O or protocol error: the session cannot go on, not even to QUIT. */
static void
seterr(struct sc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
seterr(struct sc *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vseterr(s, true, fmt, ap);
	va_end(ap);
}

/* Our own verdict on a sound session (too large, no SMTPUTF8): QUIT politely. */
static void
refuse(struct sc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
refuse(struct sc *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vseterr(s, false, fmt, ap);
	va_end(ap);
}

/* The server refused: its reply is the error. A 421 means it is closing. */
static void
reply_err(struct sc *s, const struct reply *rp)
{
	if (rp->code == 421)
		s->broken = true;
	if (s->quiet || s->errlen == 0)
		return;
	snprintf(s->err, s->errlen, "%s: %s: %d %s%s%s", s->peer, s->phase, rp->code,
	    rp->enhanced, rp->enhanced[0] != '\0' ? " " : "", rp->text);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail on Linux; a zero time would only
	 * shorten the wait. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
deadline_in(unsigned seconds)
{
	return now_ms() + (int64_t)seconds * 1000;
}

/* Wait until the socket is ready for events, or fail at the deadline. */
static int
wait_fd(struct sc *s, short events, int64_t deadline)
{
	struct pollfd pfd[2] = { { .fd = s->fd, .events = events },
	    { .fd = s->cancel_fd, .events = POLLIN } };
	int64_t left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0) {
			seterr(s, "timed out");
			return -1;
		}
		r = poll(pfd, s->cancel_fd != -1 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0 && s->cancel_fd != -1 && pfd[1].revents != 0) {
			seterr(s, "given up: the node is stopping");
			return -1;
		}
		if (r > 0)
			return 0;	/* POLLERR and POLLHUP too: the I/O call says what */
		if (r == -1 && errno != EINTR) {
			seterr(s, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

/* Send everything in out, each wait bounded by timeout_s. */
static int
flush(struct sc *s, unsigned timeout_s)
{
	int64_t deadline = deadline_in(timeout_s);
	enum tls_status st;
	ssize_t r;

	while (buf_len(&s->out) > 0) {
		if (s->tls != NULL) {
			st = tls_conn_write(s->tls, &s->out);
			if (st == TLS_DONE)
				continue;
			if (st == TLS_WANT_READ || st == TLS_WANT_WRITE) {
				if (wait_fd(s, st == TLS_WANT_READ ? POLLIN : POLLOUT,
				    deadline) == -1)
					return -1;
				continue;
			}
			seterr(s, "%s", st == TLS_CLOSED ? "connection closed" :
			    tls_conn_error(s->tls));
			return -1;
		}
		/* MSG_NOSIGNAL: a server that went away must not SIGPIPE us. */
		r = send(s->fd, buf_data(&s->out), buf_len(&s->out), MSG_NOSIGNAL);
		if (r > 0) {
			buf_consume(&s->out, (size_t)r);
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(s, POLLOUT, deadline) == -1)
				return -1;
			continue;
		}
		seterr(s, "send: %s", r == 0 ? "nothing sent" : strerror(errno));
		return -1;
	}
	return 0;
}

/* Read at least one more byte into in. */
static int
fill(struct sc *s, int64_t deadline)
{
	enum tls_status st;
	size_t before;
	ssize_t r;

	for (;;) {
		if (buf_len(&s->in) >= SC_IN_MAX) {
			seterr(s, "read buffer full");
			return -1;
		}
		if (s->tls != NULL) {
			before = buf_len(&s->in);
			st = tls_conn_read(s->tls, &s->in);
			/* TLS_CLOSED may come with the peer's last bytes. */
			if (buf_len(&s->in) > before)
				return 0;
			if (st == TLS_WANT_READ || st == TLS_WANT_WRITE) {
				if (wait_fd(s, st == TLS_WANT_READ ? POLLIN : POLLOUT,
				    deadline) == -1)
					return -1;
				continue;
			}
			if (st == TLS_DONE)
				continue;
			seterr(s, "%s", st == TLS_CLOSED ? "connection closed" :
			    tls_conn_error(s->tls));
			return -1;
		}
		r = buf_read_fd(&s->in, s->fd);
		if (r > 0)
			return 0;
		if (r == 0) {
			seterr(s, "connection closed");
			return -1;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wait_fd(s, POLLIN, deadline) == -1)
				return -1;
			continue;
		}
		seterr(s, "read: %s", strerror(errno));
		return -1;
	}
}

/* One line without its line end into line[SC_LINE_MAX + 1], NUL-terminated. */
static int
read_line(struct sc *s, int64_t deadline, char *line, size_t *lenp)
{
	size_t n, eol;

	for (;;) {
		n = buf_line(&s->in, &eol);
		if (eol > 0) {
			if (eol > SC_LINE_MAX) {
				seterr(s, "reply line too long");
				return -1;
			}
			memcpy(line, buf_data(&s->in), n);
			line[n] = '\0';
			buf_consume(&s->in, eol);
			*lenp = n;
			return 0;
		}
		if (buf_len(&s->in) >= SC_LINE_MAX) {
			seterr(s, "reply line too long");
			return -1;
		}
		if (fill(s, deadline) == -1)
			return -1;
	}
}

/* Reply text goes to logs and bounces: no control bytes. */
static void
sanitize(char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			p[i] = '?';
}

static size_t
digits(const char *p, size_t max)
{
	size_t n = 0;

	while (n < max && p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

/* Split "5.1.1 text" (RFC 3463: class.subject.detail, class matching the
 * reply's) into enhanced and text. */
static void
reply_text(struct reply *rp, const char *t)
{
	size_t a, b;

	rp->enhanced[0] = '\0';
	if (t[0] != '0' + rp->code / 100 || t[1] != '.')
		goto text;
	a = digits(t + 2, 4);
	if (a == 0 || a > 3 || t[2 + a] != '.')
		goto text;
	b = digits(t + 3 + a, 4);
	if (b == 0 || b > 3 || (t[3 + a + b] != ' ' && t[3 + a + b] != '\0'))
		goto text;
	snprintf(rp->enhanced, sizeof(rp->enhanced), "%.*s", (int)(3 + a + b), t);
	t += 3 + a + b;
	while (*t == ' ')
		t++;
text:
	/* Truncated on purpose: the first 255 bytes are plenty for a bounce. */
	snprintf(rp->text, sizeof(rp->text), "%.*s", (int)sizeof(rp->text) - 1, t);
}

/* One EHLO keyword line: "SIZE 10240000", "STARTTLS", ... */
static void
ehlo_line(struct sc *s, const char *l)
{
	size_t kw = strcspn(l, " ");
	const char *arg = l + kw;
	unsigned long long v;
	char *end;

	while (*arg == ' ')
		arg++;
	if (kw == 8 && strncasecmp(l, "STARTTLS", kw) == 0)
		s->ext |= EXT_STARTTLS;
	else if (kw == 8 && strncasecmp(l, "8BITMIME", kw) == 0)
		s->ext |= EXT_8BITMIME;
	else if (kw == 8 && strncasecmp(l, "SMTPUTF8", kw) == 0)
		s->ext |= EXT_SMTPUTF8;
	else if (kw == 3 && strncasecmp(l, "DSN", kw) == 0)
		s->ext |= EXT_DSN;
	else if (kw == 4 && strncasecmp(l, "SIZE", kw) == 0) {
		s->ext |= EXT_SIZE;
		/* "SIZE" alone or "SIZE 0": no fixed limit (RFC 1870). */
		errno = 0;
		v = strtoull(arg, &end, 10);
		s->size_max = (*arg >= '0' && *arg <= '9' && *end == '\0' && errno == 0) ?
		    (uint64_t)v : 0;
	}
}

/* Read one reply, multi-line or not. ehlo: collect the extensions. */
static int
read_reply(struct sc *s, unsigned timeout_s, struct reply *rp, bool ehlo)
{
	int64_t deadline = deadline_in(timeout_s);
	char line[SC_LINE_MAX + 1];
	size_t len, total = 0;
	bool first = true, more;
	int code;

	memset(rp, 0, sizeof(*rp));
	if (ehlo) {
		s->ext = 0;
		s->size_max = 0;
	}
	do {
		if (read_line(s, deadline, line, &len) == -1)
			return -1;
		total += len + 2;
		if (total > SC_REPLY_MAX) {
			seterr(s, "reply too long");
			return -1;
		}
		if (len < 3 || digits(line, 3) != 3 || line[0] < '2' || line[0] > '5' ||
		    (len > 3 && line[3] != ' ' && line[3] != '-')) {
			seterr(s, "malformed reply");
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (!first && code != rp->code) {
			seterr(s, "malformed reply: %d within %d", code, rp->code);
			return -1;
		}
		more = len > 3 && line[3] == '-';
		sanitize(line, len);
		if (first) {
			rp->code = code;
			reply_text(rp, len > 3 ? line + 4 : "");
		} else if (ehlo)
			ehlo_line(s, len > 3 ? line + 4 : "");
		first = false;
	} while (more);
	return 0;
}

/* Queue one command line (CRLF added) and send it. */
static int
send_line(struct sc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
send_line(struct sc *s, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	if (r == -1 || buf_puts(&s->out, "\r\n") == -1) {
		seterr(s, "out of memory");
		return -1;
	}
	return flush(s, s->to->command_s);
}

/* A command, its reply. */
static int
command(struct sc *s, struct reply *rp, bool ehlo, const char *line)
{
	if (send_line(s, "%s", line) == -1)
		return -1;
	return read_reply(s, s->to->command_s, rp, ehlo);
}

/* Nothing a server could read as a line end or a second command. */
static bool
clean(const char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* xtext (RFC 3461 4): printable ASCII except '+' and '=', the rest +HH. */
static int
put_xtext(struct buf *b, const char *p)
{
	unsigned char c;
	int r;

	for (; *p != '\0'; p++) {
		c = (unsigned char)*p;
		if (c < '!' || c > '~' || c == '+' || c == '=')
			r = buf_printf(b, "+%02X", c);
		else
			r = buf_append(b, &c, 1);
		if (r == -1)
			return -1;
	}
	return 0;
}

static void
set_result(struct smtp_client_rcpt *r, const struct reply *rp)
{
	r->code = rp->code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", rp->enhanced);
	snprintf(r->text, sizeof(r->text), "%s", rp->text);
}

static int
connect_one(struct sc *s, const struct sockaddr *sa, socklen_t salen)
{
	char addr[256], port[16];
	socklen_t sl = sizeof(int);
	int soerr = 0;

	if (getnameinfo(sa, salen, addr, sizeof(addr), port,
	    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(s->peer, sizeof(s->peer), "[%s]:%s", addr, port);
	s->phase = "connect";
	s->broken = false;
	s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		seterr(s, "socket: %s", strerror(errno));
		return -1;
	}
	/* Commands and the data's last piece go out whole: no Nagle wait. */
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (connect(s->fd, sa, salen) == -1) {
		/* EINTR: the connect goes on in the background, like EINPROGRESS. */
		if (errno != EINPROGRESS && errno != EINTR) {
			seterr(s, "%s", strerror(errno));
			goto fail;
		}
		if (wait_fd(s, POLLOUT, deadline_in(s->to->connect_s)) == -1)
			goto fail;
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1) {
			seterr(s, "getsockopt: %s", strerror(errno));
			goto fail;
		}
		if (soerr != 0) {
			seterr(s, "%s", strerror(soerr));
			goto fail;
		}
	}
	return 0;
fail:
	(void)close(s->fd);	/* nothing was sent; nothing to lose */
	s->fd = -1;
	return -1;
}

/* QUIT unless the session is broken, then close. Keeps err. */
static void
close_session(struct sc *s)
{
	struct reply rp;
	unsigned t;

	if (s->fd == -1)
		return;
	if (!s->broken) {
		s->quiet = true;
		s->phase = "QUIT";
		t = s->to->command_s < SC_QUIT_MAX_S ? s->to->command_s : SC_QUIT_MAX_S;
		if (send_line(s, "QUIT") == 0)
			(void)read_reply(s, t, &rp, false);	/* the verdicts are in */
		if (s->tls != NULL && !s->broken)
			(void)tls_conn_bye(s->tls);	/* best effort, once */
		s->quiet = false;
	}
	tls_conn_free(s->tls);
	s->tls = NULL;
	(void)close(s->fd);	/* a socket: nothing buffered that close could lose */
	s->fd = -1;
	buf_reset(&s->in);
	buf_reset(&s->out);
	s->ext = 0;
	s->size_max = 0;
}

/* Connect to the first address that greets with 2xx. */
static int
open_session(struct sc *s, const struct resolve_addrs *res, bool *permanent)
{
	struct reply rp;
	size_t i;

	for (i = 0; i < res->n; i++) {
		bool last = i + 1 == res->n;

		*permanent = false;
		/* The last address's failure is the caller's to log. */
		if (connect_one(s, (const struct sockaddr *)&res->addr[i], res->len[i]) == -1) {
			if (!last)
				log_info("smtp_client: %s", s->err);
			continue;
		}
		s->phase = "greeting";
		if (read_reply(s, s->to->command_s, &rp, false) == 0) {
			if (rp.code / 100 == 2)
				return 0;
			reply_err(s, &rp);
			*permanent = rp.code / 100 == 5;
		}
		if (!last)
			log_info("smtp_client: %s", s->err);
		close_session(s);
	}
	return -1;
}

/* EHLO, or HELO when EHLO is not understood. */
static int
greet(struct sc *s, const char *helo)
{
	char line[SC_LINE_MAX];
	struct reply rp;

	s->phase = "EHLO";
	snprintf(line, sizeof(line), "EHLO %s", helo);
	if (command(s, &rp, true, line) == -1)
		return -1;
	if (rp.code / 100 == 2)
		return 0;
	s->ext = 0;
	s->size_max = 0;
	if (rp.code / 100 != 5) {
		reply_err(s, &rp);
		return -1;
	}
	s->phase = "HELO";
	snprintf(line, sizeof(line), "HELO %s", helo);
	if (command(s, &rp, false, line) == -1)
		return -1;
	if (rp.code / 100 == 2)
		return 0;
	reply_err(s, &rp);
	return -1;
}

/* STARTTLS and the handshake; EHLO again is the caller's. Without cafile a
 * refusal leaves the session in plain text (s->tls stays NULL). */
static int
starttls(struct sc *s, const char *cafile, bool *tls_failed, char *tls_desc,
    size_t tls_desc_len)
{
	enum tls_status st;
	struct reply rp;
	int64_t deadline;

	s->phase = "STARTTLS";
	if (command(s, &rp, false, "STARTTLS") == -1)
		return -1;
	if (rp.code != 220) {
		if (cafile != NULL || rp.code == 421) {
			reply_err(s, &rp);
			return -1;
		}
		log_info("smtp_client: %s: STARTTLS refused (%d), going on without TLS",
		    s->peer, rp.code);
		return 0;
	}
	/* Bytes after the 220 came before TLS and must not be taken as
	 * replies inside it (the STARTTLS command injection of 2011). */
	if (buf_len(&s->in) > 0) {
		seterr(s, "data after the reply to STARTTLS");
		return -1;
	}
	if ((s->tls = tls_conn_client(s->fd, s->host, cafile)) == NULL) {
		seterr(s, "out of memory");
		return -1;
	}
	deadline = deadline_in(s->to->command_s);
	for (;;) {
		st = tls_conn_handshake(s->tls);
		if (st == TLS_DONE)
			break;
		/* A failed or timed-out handshake: without cafile the caller
		 * tries once more in plain text. */
		*tls_failed = true;
		if (st == TLS_WANT_READ || st == TLS_WANT_WRITE) {
			if (wait_fd(s, st == TLS_WANT_READ ? POLLIN : POLLOUT, deadline) == -1)
				return -1;
			*tls_failed = false;
			continue;
		}
		seterr(s, "TLS handshake: %s", st == TLS_CLOSED ? "connection closed" :
		    tls_conn_error(s->tls));
		return -1;
	}
	if (tls_desc_len > 0)
		tls_conn_describe(s->tls, tls_desc, tls_desc_len);
	return 0;
}

/* Append p[0..n) dot-stuffed (RFC 5321 4.5.2). */
static int
stuff_append(struct buf *out, struct stuff *st, const char *p, size_t n)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		if (st->bol && p[i] == '.') {
			if (buf_append(out, p + start, i - start) == -1 ||
			    buf_append(out, ".", 1) == -1)
				return -1;
			start = i;
		}
		st->bol = p[i] == '\n';
	}
	if (buf_append(out, p + start, n - start) == -1)
		return -1;
	if (n >= 2) {
		st->prev2 = p[n - 2];
		st->prev1 = p[n - 1];
	} else if (n == 1) {
		st->prev2 = st->prev1;
		st->prev1 = p[0];
	}
	return 0;
}

/* The prefix and the file, dot-stuffed, CRLF-terminated, then ".". */
static int
send_body(struct sc *s, const struct smtp_client_msg *m)
{
	struct stuff st = { .bol = true, .prev2 = '\r', .prev1 = '\n' };
	char chunk[SC_FILE_CHUNK];
	const char *tail;
	off_t off = 0;
	ssize_t r;

	if (m->return_path_prefix != NULL &&
	    stuff_append(&s->out, &st, m->return_path_prefix,
	    strlen(m->return_path_prefix)) == -1)
		goto nomem;
	for (;;) {
		r = pread(m->body_fd, chunk, sizeof(chunk), off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			/* Our side: say so, but it stays a temporary failure. */
			seterr(s, "reading the message file: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		off += r;
		if (stuff_append(&s->out, &st, chunk, (size_t)r) == -1)
			goto nomem;
		if (buf_len(&s->out) >= SC_OUT_BLOCK && flush(s, s->to->data_s) == -1)
			return -1;
	}
	if (st.prev2 == '\r' && st.prev1 == '\n')
		tail = ".\r\n";
	else if (st.prev1 == '\r')
		tail = "\n.\r\n";
	else
		tail = "\r\n.\r\n";
	if (buf_puts(&s->out, tail) == -1)
		goto nomem;
	return flush(s, s->to->data_s);
nomem:
	seterr(s, "out of memory");
	return -1;
}

static int
mail_from(struct sc *s, const struct smtp_client_msg *m, bool *permanent)
{
	uint64_t total = m->size;
	struct reply rp;

	s->phase = "MAIL";
	if (m->return_path_prefix != NULL)
		total += strlen(m->return_path_prefix);
	if (m->smtputf8 && !(s->ext & EXT_SMTPUTF8)) {
		refuse(s, "the message needs SMTPUTF8, which the server does not offer");
		*permanent = true;
		return -1;
	}
	if ((s->ext & EXT_SIZE) && s->size_max > 0 && total > s->size_max) {
		refuse(s, "message size %" PRIu64 " exceeds the server's limit %" PRIu64,
		    total, s->size_max);
		*permanent = true;
		return -1;
	}
	if (buf_printf(&s->out, "MAIL FROM:<%s>", m->sender) == -1 ||
	    ((s->ext & EXT_SIZE) && buf_printf(&s->out, " SIZE=%" PRIu64, total) == -1) ||
	    ((s->ext & EXT_8BITMIME) && buf_puts(&s->out, " BODY=8BITMIME") == -1) ||
	    (m->smtputf8 && buf_puts(&s->out, " SMTPUTF8") == -1) ||
	    ((s->ext & EXT_DSN) && m->ret_hdrs && buf_puts(&s->out, " RET=HDRS") == -1) ||
	    ((s->ext & EXT_DSN) && m->envid != NULL && m->envid[0] != '\0' &&
	    (buf_puts(&s->out, " ENVID=") == -1 || put_xtext(&s->out, m->envid) == -1)) ||
	    buf_puts(&s->out, "\r\n") == -1) {
		seterr(s, "out of memory");
		return -1;
	}
	if (flush(s, s->to->command_s) == -1 ||
	    read_reply(s, s->to->command_s, &rp, false) == -1)
		return -1;
	if (rp.code / 100 == 2)
		return 0;
	reply_err(s, &rp);
	*permanent = rp.code / 100 == 5;
	return -1;
}

/* RCPT for r; its verdict in r. 1: accepted, 0: refused, -1: session failed. */
static int
rcpt_to(struct sc *s, struct smtp_client_rcpt *r)
{
	static const struct reply bad = { 553, "5.1.3", "bad recipient address (control characters)" };
	const char *semi;
	struct reply rp;
	int n = 0;

	s->phase = "RCPT";
	if (r->address == NULL || !clean(r->address)) {
		set_result(r, &bad);
		return 0;
	}
	if (buf_printf(&s->out, "RCPT TO:<%s>", r->address) == -1)
		goto nomem;
	if ((s->ext & EXT_DSN) && r->notify != 0) {
		if (r->notify & SMTP_NOTIFY_NEVER)
			n = buf_puts(&s->out, " NOTIFY=NEVER");
		else
			n = buf_printf(&s->out, " NOTIFY=%s%s%s%s%s",
			    r->notify & SMTP_NOTIFY_SUCCESS ? "SUCCESS" : "",
			    (r->notify & SMTP_NOTIFY_SUCCESS) &&
			    (r->notify & (SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY)) ? "," : "",
			    r->notify & SMTP_NOTIFY_FAILURE ? "FAILURE" : "",
			    (r->notify & SMTP_NOTIFY_FAILURE) &&
			    (r->notify & SMTP_NOTIFY_DELAY) ? "," : "",
			    r->notify & SMTP_NOTIFY_DELAY ? "DELAY" : "");
		if (n == -1)
			goto nomem;
	}
	/* ORCPT=addr-type;xtext; an address type that is not a plain atom
	 * is dropped rather than sent broken (the parameter is optional). */
	if ((s->ext & EXT_DSN) && r->orcpt != NULL && r->orcpt[0] != '\0' &&
	    (semi = strchr(r->orcpt, ';')) != NULL && semi > r->orcpt &&
	    strspn(r->orcpt, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") ==
	    (size_t)(semi - r->orcpt)) {
		if (buf_printf(&s->out, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt) == -1 ||
		    put_xtext(&s->out, semi + 1) == -1)
			goto nomem;
	}
	if (buf_puts(&s->out, "\r\n") == -1)
		goto nomem;
	if (flush(s, s->to->command_s) == -1 ||
	    read_reply(s, s->to->command_s, &rp, false) == -1)
		return -1;
	log_debug("smtp_client: %s: RCPT TO:<%s>: %d %s %s", s->peer, r->address,
	    rp.code, rp.enhanced, rp.text);
	if (rp.code / 100 == 3) {
		seterr(s, "unexpected reply %d", rp.code);
		return -1;
	}
	set_result(r, &rp);
	return rp.code / 100 == 2;
nomem:
	seterr(s, "out of memory");
	return -1;
}

/* Give the DATA verdict to every recipient RCPT accepted. */
static void
data_verdict(struct smtp_client_msg *m, const bool *accepted, const struct reply *rp)
{
	size_t i;

	for (i = 0; i < m->nrcpts; i++)
		if (accepted[i])
			set_result(&m->rcpts[i], rp);
}

/* MAIL, RCPT each, DATA. */
static int
transaction(struct sc *s, struct smtp_client_msg *m, bool *permanent)
{
	bool *accepted = NULL;
	size_t i, naccepted = 0;
	struct reply rp;
	int rc = SMTPC_TEMPFAIL, r;

	if ((accepted = calloc(m->nrcpts, sizeof(*accepted))) == NULL) {
		seterr(s, "out of memory");
		goto fail;
	}
	if (mail_from(s, m, permanent) == -1)
		goto fail;
	for (i = 0; i < m->nrcpts; i++) {
		if ((r = rcpt_to(s, &m->rcpts[i])) == -1)
			goto fail;
		accepted[i] = r == 1;
		naccepted += r == 1;
	}
	if (naccepted == 0) {
		rc = SMTPC_DONE;	/* every recipient has its refusal */
		goto fail;
	}
	s->phase = "DATA";
	if (command(s, &rp, false, "DATA") == -1)
		goto fail;
	if (rp.code != 354) {
		if (rp.code / 100 != 4 && rp.code / 100 != 5) {
			/* Who knows what state the server is in: no QUIT. */
			seterr(s, "unexpected reply %d", rp.code);
			goto fail;
		}
		data_verdict(m, accepted, &rp);
		reply_err(s, &rp);
		*permanent = rp.code / 100 == 5;
		goto fail;
	}
	s->phase = "message";
	if (send_body(s, m) == -1)
		goto fail;
	s->phase = "end of data";
	if (read_reply(s, s->to->data_s, &rp, false) == -1)
		goto fail;
	if (rp.code / 100 == 3) {
		seterr(s, "unexpected reply %d", rp.code);
		goto fail;
	}
	data_verdict(m, accepted, &rp);
	if (rp.code / 100 == 2)
		rc = SMTPC_DONE;
	else {
		reply_err(s, &rp);
		*permanent = rp.code / 100 == 5;
	}
fail:
	free(accepted);
	return rc;
}

/* One session: connect, greet, STARTTLS, the transaction, QUIT. */
static int
attempt(struct sc *s, const struct resolve_addrs *res, struct smtp_client_msg *m,
    const char *cafile, bool use_tls, bool *permanent, bool *tls_failed,
    char *tls_desc, size_t tls_desc_len)
{
	int rc = SMTPC_TEMPFAIL;

	if (open_session(s, res, permanent) == -1)
		return SMTPC_TEMPFAIL;
	if (greet(s, m->helo) == -1)
		goto fail;
	if (use_tls && (s->ext & EXT_STARTTLS)) {
		if (starttls(s, cafile, tls_failed, tls_desc, tls_desc_len) == -1)
			goto fail;
		/* RFC 3207 4.2: forget what the server said before TLS. */
		if (s->tls != NULL && greet(s, m->helo) == -1)
			goto fail;
	} else if (cafile != NULL) {
		refuse(s, "STARTTLS required (verified TLS) but not offered");
		goto fail;
	}
	m->dsn_offered = (s->ext & EXT_DSN) != 0;
	rc = transaction(s, m, permanent);
fail:
	close_session(s);
	return rc;
}

/* "[192.0.2.1]" and "[IPv6:2001:db8::1]" are address literals (RFC 5321 4.1.3). */
static int
host_name(const char *host, char *out, size_t outlen)
{
	size_t len = strlen(host);
	int n;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
		if (len > 5 && strncasecmp(host, "IPv6:", 5) == 0) {
			host += 5;
			len -= 5;
		}
	}
	n = snprintf(out, outlen, "%.*s", (int)len, host);
	return n < 0 || (size_t)n >= outlen || len == 0 ? -1 : 0;
}

int
smtp_client_send(const char *host, unsigned port, const char *cafile,
    const struct smtp_client_timeouts *to, struct smtp_client_msg *m, bool *permanent,
    char *tls_desc, size_t tls_desc_len, char *err, size_t errlen)
{
	struct resolve_addrs *res = NULL;
	struct resolve *own = NULL, *rv;
	char name[SMTP_DOMAIN_MAX + 1], why[300];
	bool tls_failed = false;
	size_t i, ok = 0, later = 0, failed = 0;
	int rc = SMTPC_TEMPFAIL;
	struct sc s;

	*permanent = false;
	if (tls_desc_len > 0)
		snprintf(tls_desc, tls_desc_len, "none");
	if (errlen > 0)
		err[0] = '\0';
	memset(&s, 0, sizeof(s));
	s.fd = -1;
	s.cancel_fd = m != NULL && m->cancel_fd != NULL ? *m->cancel_fd : -1;
	s.to = to;
	s.err = err;
	s.errlen = errlen;
	s.phase = "setup";
	buf_init(&s.in, SC_IN_MAX);
	buf_init(&s.out, 0);	/* bounded by how we fill it: a command, a block */
	snprintf(s.peer, sizeof(s.peer), "%s:%u", host != NULL ? host : "?", port);
	for (i = 0; m != NULL && i < m->nrcpts; i++) {
		m->rcpts[i].code = 0;
		m->rcpts[i].enhanced[0] = '\0';
		m->rcpts[i].text[0] = '\0';
	}
	if (host == NULL || to == NULL || m == NULL || m->rcpts == NULL || m->nrcpts == 0 ||
	    port == 0 || port > 65535) {
		seterr(&s, "invalid arguments");
		goto fail;
	}
	if (m->helo == NULL || m->helo[0] == '\0' || !clean(m->helo) ||
	    strchr(m->helo, ' ') != NULL) {
		seterr(&s, "invalid HELO name");
		goto fail;
	}
	if (m->sender == NULL || !clean(m->sender) ||
	    (m->envid != NULL && !clean(m->envid))) {
		seterr(&s, "invalid sender or envelope id");
		*permanent = true;	/* the same next time */
		goto fail;
	}
	if (host_name(host, name, sizeof(name)) == -1) {
		seterr(&s, "invalid host name");
		goto fail;
	}
	s.host = name;
	s.phase = "resolve";
	if ((res = malloc(sizeof(*res))) == NULL) {
		seterr(&s, "out of memory");
		goto fail;
	}
	if ((rv = m->resolver) == NULL && (rv = own = resolve_new(NULL, why, sizeof(why))) == NULL) {
		seterr(&s, "%s", why);
		goto fail;
	}
	if (resolve_host(rv, name, port, s.cancel_fd, res, why, sizeof(why)) == -1) {
		seterr(&s, "%s", why);
		goto fail;
	}
	rc = attempt(&s, res, m, cafile, true, permanent, &tls_failed, tls_desc,
	    tls_desc_len);
	if (rc != SMTPC_DONE && tls_failed && cafile == NULL) {
		/* Opportunistic TLS must not make mail undeliverable. */
		log_info("smtp_client: %s; once more without TLS", err);
		*permanent = false;
		if (errlen > 0)
			err[0] = '\0';
		rc = attempt(&s, res, m, NULL, false, permanent, &tls_failed, tls_desc,
		    tls_desc_len);
	}
fail:
	if (rc != SMTPC_DONE) {
		/* Accepted at RCPT but never delivered: not a 2xx. */
		for (i = 0; m != NULL && i < m->nrcpts; i++)
			if (m->rcpts[i].code / 100 == 2) {
				m->rcpts[i].code = 0;
				m->rcpts[i].enhanced[0] = '\0';
				m->rcpts[i].text[0] = '\0';
			}
		log_info("smtp_client: %s%s", err, *permanent ? " (permanent)" : "");
	} else {
		for (i = 0; i < m->nrcpts; i++) {
			ok += m->rcpts[i].code / 100 == 2;
			later += m->rcpts[i].code / 100 == 4;
			failed += m->rcpts[i].code / 100 == 5;
		}
		log_info("smtp_client: %s tls=%s: %zu delivered, %zu deferred, %zu failed",
		    s.peer, tls_desc_len > 0 ? tls_desc : "?", ok, later, failed);
	}
	free(res);
	resolve_free(own);
	buf_free(&s.in);
	buf_free(&s.out);
	return rc;
}
