/* bounce: compose a multipart/report (RFC 6522) with a message/delivery-status
 * part (RFC 3464) and the original message or its headers, and queue it. */
#include "bounce.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "lookup.h"
#include "spool.h"

#define BOUNCE_RETURN_MAX	(256 * 1024)	/* of the original, when returned whole */

struct wait {
	sem_t	 done;
	int	 ok;
	char	 err[256];
};

static void
committed(void *arg, int ok, const char *id, const char *err)
{
	struct wait *w = arg;

	(void)id;
	w->ok = ok;
	snprintf(w->err, sizeof(w->err), "%s", err ? err : "");
	sem_post(&w->done);
}

/* The original message (its first BOUNCE_RETURN_MAX bytes). */
static int
append_original(struct buf *out, const char *path)
{
	char chunk[8192];
	ssize_t n;
	size_t total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd == -1)
		return buf_puts(out, "(the original message is no longer available)\r\n");
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 && total < BOUNCE_RETURN_MAX) {
		if (buf_append(out, chunk, (size_t)n) == -1) {
			rc = -1;
			break;
		}
		total += (size_t)n;
	}
	close(fd);
	return rc;
}

static int
compose(struct buf *m, const struct bounce_info *b, const char *host)
{
	char date[64], boundary[64], until[64] = "", path[PATH_MAX + 64];
	bool delayed = b->action == BOUNCE_DELAYED;
	static const char *const action[] = { "failed", "delayed", "delivered", "relayed" };
	static const char *const subject[] = { "Undelivered Mail Returned to Sender",
	    "Delayed Mail (still being retried)", "Successful Mail Delivery Report",
	    "Relayed Mail Delivery Report" };
	static const char *const intro[] = {
	    "Your message could not be delivered to the following recipients:",
	    "Your message has not been delivered yet to the following recipients.\r\n"
	    "It stays queued and will be tried again; you do not need to send it again.",
	    "Your message was delivered to the following recipients:",
	    "Your message was handed to a server that sends no delivery reports,\r\n"
	    "for the following recipients; you will hear no more from us about it:" };
	unsigned ai = (unsigned)b->action < 4 ? (unsigned)b->action : 0;
	time_t now = time(NULL);
	struct tm tm;
	size_t i, mark;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (delayed && b->retry_until > 0) {
		localtime_r(&b->retry_until, &tm);
		strftime(until, sizeof(until), "%a, %d %b %Y %H:%M:%S %z", &tm);
	}
	snprintf(boundary, sizeof(boundary), "%s/%s", b->qid, host);
	if (buf_printf(m, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\nSubject: %s\r\nDate: %s\r\n"
	    "Message-ID: <%s.%s@%s>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n"
	    "\r\nThis is a MIME-encapsulated message.\r\n\r\n--%s\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "This is the mail system at %s.\r\n\r\n%s\r\n\r\n",
	    host, b->sender, subject[ai], date, b->qid, action[ai], host,
	    boundary, boundary, host, intro[ai]) == -1)
		return -1;
	if (delayed && until[0] && buf_printf(m, "Delivery will be attempted until %s.\r\n\r\n",
	    until) == -1)
		return -1;
	for (i = 0; i < b->nrcpts; i++)
		if (buf_printf(m, "<%s>: %s\r\n", b->rcpts[i].address, b->rcpts[i].diagnostic) == -1)
			return -1;
	if (buf_printf(m, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\nX-Mailnode-Queue-ID: %s\r\n", boundary, host, b->qid) == -1)
		return -1;
	if (b->envid && *b->envid && buf_printf(m, "Original-Envelope-Id: %s\r\n", b->envid) == -1)
		return -1;
	for (i = 0; i < b->nrcpts; i++) {
		const struct bounce_rcpt *r = &b->rcpts[i];

		if (buf_printf(m, "\r\nFinal-Recipient: rfc822; %s\r\n", r->address) == -1 ||
		    (r->orcpt && *r->orcpt && buf_printf(m, "Original-Recipient: %s\r\n", r->orcpt) == -1) ||
		    buf_printf(m, "Action: %s\r\nStatus: %s\r\nDiagnostic-Code: %s\r\n",
		    action[ai], r->status, r->diagnostic) == -1 ||
		    (delayed && until[0] && buf_printf(m, "Will-Retry-Until: %s\r\n", until) == -1))
			return -1;
	}
	if (buf_printf(m, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
	    b->ret_hdrs ? "text/rfc822-headers" : "message/rfc822") == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", b->spool_msg_dir, b->qid);
	mark = buf_len(m);
	if (append_original(m, path) == -1)
		return -1;
	if (b->ret_hdrs) {
		/* Keep only the header section of what was appended. */
		const char *start = buf_data(m) + mark;
		const char *end = memmem(start, buf_len(m) - mark, "\r\n\r\n", 4);

		if (end != NULL)
			m->len = m->off + mark + (size_t)(end - start) + 2;
	}
	if (buf_len(m) >= 2 && memcmp(buf_data(m) + buf_len(m) - 2, "\r\n", 2) != 0 &&
	    buf_puts(m, "\r\n") == -1)
		return -1;
	return buf_printf(m, "--%s--\r\n", boundary);
}

int
bounce_send(MYSQL *db, const char *to, const char *text, size_t textlen, char *err, size_t errlen)
{
	char host[256] = "localhost", local[256], domain[256];
	const char *at;
	struct rcpt_result rr;
	struct spool_rcpt *rcpts = NULL;
	struct spool_envelope env;
	struct spool_msg *msg = NULL;
	struct wait w;
	size_t i, n = 0;
	int rc = -1;

	if (to == NULL || *to == '\0')
		return 0;
	if ((at = strrchr(to, '@')) == NULL || at == to ||
	    (size_t)(at - to) >= sizeof(local) || strlen(at + 1) >= sizeof(domain))
		return 0;
	memcpy(local, to, (size_t)(at - to));
	local[at - to] = '\0';
	for (i = 0; at[1 + i]; i++)
		domain[i] = (char)tolower((unsigned char)at[1 + i]);
	domain[i] = '\0';
	if (gethostname(host, sizeof(host) - 1) == -1)
		snprintf(host, sizeof(host), "localhost");

	/* Where the message goes: a mailbox here, or back out. */
	lookup_recipient(db, local, domain, "", 0, &rr);
	if (rr.verdict == RCPT_TEMPFAIL) {
		snprintf(err, errlen, "%s", rr.why);
		free(rr.targets);
		return -1;
	}
	if (rr.verdict == RCPT_NOT_HOSTED) {
		if ((rcpts = calloc(1, sizeof(*rcpts))) == NULL)
			goto nomem;
		snprintf(rcpts[0].address, sizeof(rcpts[0].address), "%s", to);
		n = 1;
	} else if (rr.verdict == RCPT_OK && rr.ntargets > 0) {
		if ((rcpts = calloc(rr.ntargets, sizeof(*rcpts))) == NULL)
			goto nomem;
		for (i = 0; i < rr.ntargets; i++) {
			snprintf(rcpts[i].address, sizeof(rcpts[i].address), "%s", rr.targets[i].address);
			rcpts[i].mailbox_id = rr.targets[i].mailbox_id;
		}
		n = rr.ntargets;
	} else {
		/* A local address that no longer exists: nobody to tell. */
		free(rr.targets);
		return 0;
	}
	free(rr.targets);
	rr.targets = NULL;

	if ((msg = spool_msg_new(err, errlen)) == NULL)
		goto out;
	if (spool_msg_write(msg, text, textlen) == -1) {
		snprintf(err, errlen, "writing the message: %s", strerror(errno));
		spool_msg_abort(msg);
		goto out;
	}
	memset(&env, 0, sizeof(env));
	snprintf(env.helo, sizeof(env.helo), "%s", host);
	snprintf(env.peer, sizeof(env.peer), "local");
	env.tenant_id = rr.tenant_id;
	env.rcpts = rcpts;
	env.nrcpts = n;
	/* Off the loops, the commit's answer comes on the spool's thread. */
	memset(&w, 0, sizeof(w));
	sem_init(&w.done, 0, 0);
	spool_msg_commit(msg, &env, committed, &w);
	while (sem_wait(&w.done) == -1 && errno == EINTR)
		;
	sem_destroy(&w.done);
	if (!w.ok) {
		snprintf(err, errlen, "%s", w.err);
		goto out;
	}
	rc = 1;
out:
	free(rcpts);
	return rc;
nomem:
	snprintf(err, errlen, "out of memory");
	free(rr.targets);
	free(rcpts);
	return -1;
}

int
bounce_queue(MYSQL *db, const struct bounce_info *b, char *err, size_t errlen)
{
	char host[256] = "localhost";
	struct buf m;
	int rc;

	/* No bounce of a bounce: the null reverse-path gets nothing back. */
	if (b->sender == NULL || *b->sender == '\0')
		return 0;
	if (gethostname(host, sizeof(host) - 1) == -1)
		snprintf(host, sizeof(host), "localhost");
	buf_init(&m, 0);
	if (compose(&m, b, host) == -1) {
		snprintf(err, errlen, "out of memory");
		buf_free(&m);
		return -1;
	}
	rc = bounce_send(db, b->sender, buf_data(&m), buf_len(&m), err, errlen);
	buf_free(&m);
	return rc;
}
