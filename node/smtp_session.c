/* smtp_session: one SMTP session per connection, driven by conn. Lookups
 * (recipients, logins, sender ownership) run on the database workers while
 * the session pauses its input, so pipelined commands wait their turn and
 * the loop never blocks. */
#include "smtp_session.h"

#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "authguard.h"
#include "conn.h"
#include "delivery.h"
#include "db.h"
#include "log.h"
#include "lookup.h"
#include "loop.h"
#include "sasl_scram.h"
#include "scram.h"
#include "sendrate.h"
#include "smtp_parse.h"
#include "spool.h"
#include "tenant_stats.h"

#define SMTP_MAX_MESSAGE	(64ULL * 1024 * 1024)	/* node-wide SIZE */
#define SMTP_MAX_RCPTS		1000
#define SMTP_MAX_ERRORS		20	/* bad commands before we hang up */
#define SMTP_MAX_AUTH_FAILS	3
#define SMTP_INPUT_MAX		65536
#define SMTP_MAX_HOPS		50	/* Received: fields before we call it a loop */

static struct tls_creds	*smtp_tls;
static char		 hostname[256];

enum smtp_state {
	ST_COMMAND,		/* reading commands */
	ST_AUTH_PLAIN,		/* waiting for the PLAIN response line */
	ST_AUTH_USER,		/* LOGIN: user name line */
	ST_AUTH_PASS,		/* LOGIN: password line */
	ST_AUTH_SCRAM,		/* SCRAM: the client's next response */
	ST_DATA,		/* reading a DATA body */
	ST_BDAT,		/* reading a BDAT chunk */
	ST_WAIT			/* a lookup or the spool is working */
};

struct smtp_sess {
	struct conn		*conn;		/* NULL once the connection is gone */
	unsigned		 pending;	/* jobs in flight: the session outlives them */
	bool			 submission;
	enum smtp_state		 state;
	bool			 greeted, esmtp;
	char			 helo[256];
	bool			 authed;
	char			 login[256];
	uint64_t		 login_tenant;
	char			 login_tenant_name[64];
	char			 auth_user[256];
	struct sasl_scram	*scram;		/* a SCRAM exchange in progress */
	unsigned		 errors, auth_fails;
	bool			 skip_line;	/* discarding the rest of an over-long line */
	struct loop_timer	 delay;		/* slows answers to failed logins */
	/* The transaction. */
	bool			 in_mail;
	struct smtp_cmd		 mail;
	char			 sender[512];
	struct spool_rcpt	*rcpts;
	size_t			 nrcpts;
	uint64_t		 size_limit;	/* smallest limit among the recipients' tenants */
	struct send_policy	 policy;	/* the login tenant's limits, read at MAIL */
	uint64_t		 rate_taken;	/* when sendrate counted this message; 0 not */
	struct smtp_hops	 hops;
	uint64_t		 tenant_id;
	char			 tenant_name[64];	/* the first recipient's tenant */
	struct spool_msg	*msg;
	bool			 line_start;
	bool			 too_big, write_error;
	uint64_t		 bdat_left;
	bool			 bdat_last, bdat_used;
	uint64_t		 committing_size;	/* for the log line of the commit */
};

static void smtp_input(struct conn *);

void
smtp_set_tls(struct tls_creds *creds)
{
	smtp_tls = creds;
}

static void
sess_log(struct smtp_sess *s, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
sess_log(struct smtp_sess *s, enum log_level lvl, const char *fmt, ...)
{
	struct log_ctx ctx = { 0 };
	char msg[512];
	va_list ap;

	if (s->conn) {
		ctx.service = conn_service(s->conn)->def->name;
		ctx.session = conn_id(s->conn);
		ctx.peer = conn_peer(s->conn);
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_event(lvl, &ctx, "%s", msg);
}

static void
reply(struct smtp_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct smtp_sess *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (s->conn == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	(void)conn_write(s->conn, line, (size_t)n);
}

static void
reset_transaction(struct smtp_sess *s)
{
	if (s->msg) {
		spool_msg_abort(s->msg);
		s->msg = NULL;
	}
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->in_mail = false;
	s->size_limit = 0;
	memset(&s->policy, 0, sizeof(s->policy));
	memset(&s->hops, 0, sizeof(s->hops));
	s->tenant_id = 0;
	s->tenant_name[0] = '\0';
	s->too_big = s->write_error = false;
	s->bdat_left = 0;
	s->bdat_last = s->bdat_used = false;
	s->sender[0] = '\0';
}

static void
sess_free(struct smtp_sess *s)
{
	reset_transaction(s);
	explicit_bzero(s->auth_user, sizeof(s->auth_user));
	sasl_scram_free(s->scram);
	free(s);
}

static bool
tls_active(struct smtp_sess *s)
{
	return s->conn && conn_tls_active(s->conn);
}

/* Tell what we offer: EHLO's list and the parser's idea of it must agree. */
static struct smtp_offer
offer(struct smtp_sess *s)
{
	struct smtp_offer o = { .size = true, .eightbitmime = true, .smtputf8 = true, .dsn = true,
	    .chunking = true, .binarymime = false, .auth = s->submission };

	/* Inside a transaction, non-ASCII addresses only if MAIL said SMTPUTF8. */
	if (s->in_mail && !s->mail.smtputf8)
		o.smtputf8 = false;
	return o;
}

static void
cmd_ehlo(struct smtp_sess *s, const struct smtp_cmd *c)
{
	bool esmtp = c->verb == SMTP_EHLO;

	reset_transaction(s);
	s->greeted = true;
	s->esmtp = esmtp;
	snprintf(s->helo, sizeof(s->helo), "%.255s", c->arg);
	if (!esmtp) {
		reply(s, "250 %s", hostname);
		return;
	}
	reply(s, "250-%s Hello %s [%s]", hostname, s->helo, conn_peer(s->conn));
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu", (unsigned long long)SMTP_MAX_MESSAGE);
	reply(s, "250-8BITMIME");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-SMTPUTF8");
	reply(s, "250-CHUNKING");
	if (conn_tls_available(s->conn))
		reply(s, "250-STARTTLS");
	/* AUTH is offered only under TLS: passwords never travel in clear. */
	if (s->submission && tls_active(s))
		reply(s, "250-AUTH PLAIN LOGIN SCRAM-SHA-256");
	reply(s, "250 DSN");
}

/* Jobs on the database workers. */
enum job_kind { JOB_RCPT, JOB_LOGIN, JOB_SENDER, JOB_SCRAM };

struct smtp_job {
	enum job_kind		 kind;
	struct smtp_sess	*s;
	char			 local[SMTP_LOCAL_MAX * 4 + 1];
	char			 domain[SMTP_DOMAIN_MAX + 1];
	char			 sender[512];
	char			 address[512];
	char			 password[1024];
	uint64_t		 size;
	unsigned		 notify;
	char			 orcpt[264];
	struct rcpt_result	 rcpt;
	struct login_result	 login;
	struct send_policy	 policy;
	char			 scram[SCRAM_STORED_MAX];
	int			 may_send;
	char			 why[256];
};

static int
job_run(MYSQL *m, void *arg)
{
	struct smtp_job *j = arg;

	switch (j->kind) {
	case JOB_RCPT:
		lookup_recipient(m, j->local, j->domain, j->sender, j->size, &j->rcpt);
		return j->rcpt.verdict == RCPT_TEMPFAIL ? -1 : 0;
	case JOB_LOGIN:
		lookup_login(m, j->address, j->password, &j->login);
		explicit_bzero(j->password, sizeof(j->password));
		return j->login.tempfail ? -1 : 0;
	case JOB_SENDER:
		j->may_send = lookup_may_send(m, j->address, j->sender, &j->policy, j->why, sizeof(j->why));
		return j->may_send == -1 ? -1 : 0;
	case JOB_SCRAM:
		lookup_scram(m, j->address, j->scram, sizeof(j->scram), &j->login);
		return j->login.tempfail ? -1 : 0;
	}
	return -1;
}

static void
after_rcpt(struct smtp_sess *s, struct smtp_job *j, int result)
{
	struct rcpt_result *r = &j->rcpt;
	size_t i;

	if (result == -1 || r->verdict == RCPT_TEMPFAIL) {
		reply(s, "451 4.3.0 Temporary failure looking up the recipient, try again later");
		return;
	}
	switch (r->verdict) {
	case RCPT_OK:
		break;
	case RCPT_NOT_HOSTED:
		if (!s->authed) {
			reply(s, "554 5.7.1 <%s@%s>: Relay access denied", j->local, j->domain);
			return;
		}
		/* Our own user sending out: a remote recipient. */
		if (r->ntargets == 0) {
			struct rcpt_target *t = calloc(1, sizeof(*t));

			if (t == NULL) {
				reply(s, "452 4.3.1 Insufficient system resources");
				return;
			}
			snprintf(t->address, sizeof(t->address), "%.255s@%.255s", j->local, j->domain);
			r->targets = t;
			r->ntargets = 1;
		}
		break;
	case RCPT_UNKNOWN:
		reply(s, "550 5.1.1 <%s@%s>: Recipient address rejected: User unknown", j->local, j->domain);
		return;
	case RCPT_DISABLED:
		reply(s, "550 5.2.1 <%s@%s>: %s, not accepting messages", j->local, j->domain,
		    r->whole_tenant ? "The recipient's domain is suspended" : "Mailbox disabled");
		return;
	case RCPT_PAUSED:
		reply(s, "450 4.2.1 <%s@%s>: %s temporarily not accepting messages", j->local, j->domain,
		    r->whole_tenant ? "The recipient's domain is" : "Mailbox");
		return;
	case RCPT_FULL:
		reply(s, "552 5.2.2 <%s@%s>: %s", j->local, j->domain,
		    r->whole_tenant ? "Mailbox full: the domain's storage is used up" : "Mailbox full");
		return;
	case RCPT_LOOP:
		reply(s, "554 5.4.6 <%s@%s>: Mail loop: the aliases of this address lead back to themselves",
		    j->local, j->domain);
		return;
	case RCPT_BLOCKED_SENDER:
		reply(s, "550 5.7.1 <%s@%s>: Sender refused by the recipient's domain", j->local, j->domain);
		return;
	case RCPT_TOO_BIG:
		reply(s, "552 5.3.4 Message size exceeds the recipient's limit");
		return;
	case RCPT_TEMPFAIL:
		return;
	}
	if (s->nrcpts + r->ntargets > SMTP_MAX_RCPTS) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	/* Inbound mail is the recipient tenant's: its rules decide. */
	if (!s->authed && r->tenant[0] && s->conn) {
		switch (conn_attribute(s->conn, r->tenant)) {
		case ACCESS_OK:
			break;
		case ACCESS_DENIED:
			reply(s, "550 5.7.1 <%s@%s>: Access from your address is refused by this domain",
			    j->local, j->domain);
			return;
		case ACCESS_LIMITED:
			reply(s, "450 4.7.0 <%s@%s>: Too many connections to this domain from your address, "
			    "try again later", j->local, j->domain);
			return;
		}
	}
	{
		struct spool_rcpt *p = realloc(s->rcpts, (s->nrcpts + r->ntargets) * sizeof(*p));

		if (p == NULL) {
			reply(s, "452 4.3.1 Insufficient system resources");
			return;
		}
		s->rcpts = p;
	}
	for (i = 0; i < r->ntargets; i++) {
		struct spool_rcpt *sr = &s->rcpts[s->nrcpts++];

		memset(sr, 0, sizeof(*sr));
		snprintf(sr->address, sizeof(sr->address), "%s", r->targets[i].address);
		sr->mailbox_id = r->targets[i].mailbox_id;
		sr->notify = j->notify;
		snprintf(sr->orcpt, sizeof(sr->orcpt), "%s", j->orcpt);
	}
	if (r->size_limit && (s->size_limit == 0 || r->size_limit < s->size_limit))
		s->size_limit = r->size_limit;
	if (s->tenant_id == 0) {
		s->tenant_id = r->tenant_id;
		snprintf(s->tenant_name, sizeof(s->tenant_name), "%s", r->tenant);
	}
	reply(s, "250 2.1.5 Ok");
}

static void
after_login_reply(struct loop_timer *t)
{
	struct smtp_sess *s = t->arg;

	if (s->conn == NULL) {
		if (s->pending == 0)
			sess_free(s);
		return;
	}
	reply(s, "535 5.7.8 Authentication credentials invalid");
	if (s->auth_fails >= SMTP_MAX_AUTH_FAILS) {
		reply(s, "421 4.7.0 %s Too many failed logins, closing", hostname);
		conn_close(s->conn);
		return;
	}
	s->state = ST_COMMAND;
	conn_resume_input(s->conn);
}

static void
close_now(struct loop_timer *t)
{
	struct smtp_sess *s = t->arg;

	if (s->conn)
		conn_close(s->conn);
	else if (s->pending == 0)
		sess_free(s);
}

/* End the session once the caller is done with it (a job's completion
 * still uses s after this returns). */
static void
close_soon(struct smtp_sess *s)
{
	s->delay.cb = close_now;
	s->delay.arg = s;
	loop_timer_start(loop_current(), &s->delay, 0);
}

static bool
after_login(struct smtp_sess *s, struct smtp_job *j, int result)
{
	if (result == -1) {
		reply(s, "454 4.7.0 Temporary authentication failure, try again later");
		return true;
	}
	if (j->login.ok) {
		authguard_succeeded(conn_peer_addr(s->conn), j->address);
		/* The login's tenant: its access rules and limits apply now. */
		switch (conn_attribute(s->conn, j->login.tenant)) {
		case ACCESS_OK:
			break;
		case ACCESS_DENIED:
			reply(s, "554 5.7.1 Access from your address is refused by your domain");
			close_soon(s);
			return false;
		case ACCESS_LIMITED:
			reply(s, "421 4.7.0 %s Too many connections for your domain, try again later", hostname);
			close_soon(s);
			return false;
		}
		s->authed = true;
		snprintf(s->login, sizeof(s->login), "%s", j->login.address);
		s->login_tenant = j->login.tenant_id;
		snprintf(s->login_tenant_name, sizeof(s->login_tenant_name), "%s", j->login.tenant);
		conn_set_identity(s->conn, j->login.tenant, j->login.address);
		sess_log(s, LOG_LVL_INFO, "login %s", j->login.address);
		reply(s, "235 2.7.0 Authentication successful");
		return true;
	}
	s->auth_fails++;
	conn_count_auth_failure(s->conn, j->login.tenant);
	sess_log(s, LOG_LVL_INFO, "login failed%s", j->login.disabled ? " (account suspended)" : "");
	/* The refusal comes after a delay that grows with the failures from
	 * this address (across sessions), so guessing stays slow. */
	s->delay.cb = after_login_reply;
	s->delay.arg = s;
	loop_timer_start(loop_current(), &s->delay, authguard_failed(conn_peer_addr(s->conn), j->address,
	    conn_limits_exempt(s->conn), access_now()));
	return false;
}

/* The user's SCRAM keys (or none: the exchange goes on and fails at the
 * proof, so an unknown user looks like a wrong password). */
static void
after_scram_lookup(struct smtp_sess *s, struct smtp_job *j, int result)
{
	struct buf out;

	buf_init(&out, 0);
	if (result == -1 || sasl_scram_keys(s->scram, j->scram, &j->login, &out) == -1) {
		sasl_scram_free(s->scram);
		s->scram = NULL;
		reply(s, "454 4.7.0 Temporary authentication failure, try again later");
	} else {
		reply(s, "334 %.*s", (int)buf_len(&out), buf_data(&out));
		s->state = ST_AUTH_SCRAM;
	}
	explicit_bzero(j->scram, sizeof(j->scram));
	buf_free(&out);
}

static void
rate_refused(struct smtp_sess *s, const struct send_policy *p)
{
	tenant_stats_add(s->login_tenant_name, TENANT_STAT_RATE_REFUSALS, 1);
	sess_log(s, LOG_LVL_INFO, "%s over its sending rate of %" PRIu32 " per %" PRIu32 " s",
	    s->login_tenant_name, p->rate_count, p->rate_per);
	reply(s, "450 4.7.0 Sending rate exceeded: your domain may send %" PRIu32 " messages per %s, "
	    "try again later", p->rate_count, p->rate_per == 1 ? "second" : p->rate_per == 60 ? "minute" :
	    p->rate_per == 3600 ? "hour" : "day");
}

static void
after_sender(struct smtp_sess *s, struct smtp_job *j, int result)
{
	if (result == -1) {
		reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	if (j->may_send != 1) {
		reply(s, "553 5.7.1 <%s>: Sender address rejected: %s", j->sender, j->why);
		return;
	}
	/* The sender's tenant limits its own users, wherever the mail goes. */
	if (j->policy.size_limit && s->mail.size > j->policy.size_limit) {
		reply(s, "552 5.3.4 Message size exceeds your domain's limit of %" PRIu64 " bytes",
		    j->policy.size_limit);
		return;
	}
	if (!sendrate_allowed(s->login_tenant_name, j->policy.rate_count, j->policy.rate_per,
	    loop_now_ms())) {
		rate_refused(s, &j->policy);
		return;
	}
	s->policy = j->policy;
	s->in_mail = true;
	snprintf(s->sender, sizeof(s->sender), "%s", j->sender);
	reply(s, "250 2.1.0 Ok");
}

static void
job_done(void *arg, int result)
{
	struct smtp_job *j = arg;
	struct smtp_sess *s = j->s;
	bool resume = true;

	s->pending--;
	if (s->conn == NULL) {
		/* The client left while we looked: nothing to answer. */
		if (s->pending == 0 && !loop_timer_armed(&s->delay))
			sess_free(s);
		goto done;
	}
	s->state = ST_COMMAND;
	switch (j->kind) {
	case JOB_RCPT:
		after_rcpt(s, j, result);
		break;
	case JOB_LOGIN:
		if (!after_login(s, j, result)) {
			s->state = ST_WAIT;
			resume = false;
		}
		break;
	case JOB_SENDER:
		after_sender(s, j, result);
		break;
	case JOB_SCRAM:
		after_scram_lookup(s, j, result);
		break;
	}
	if (resume)
		conn_resume_input(s->conn);
done:
	free(j->rcpt.targets);
	explicit_bzero(j, sizeof(*j));
	free(j);
}

static void
submit(struct smtp_sess *s, struct smtp_job *j)
{
	j->s = s;
	s->state = ST_WAIT;
	conn_pause_input(s->conn);
	if (db_submit(job_run, job_done, j) == -1) {
		free(j);
		s->state = ST_COMMAND;
		reply(s, "451 4.3.0 Temporary failure, try again later");
		conn_resume_input(s->conn);
		return;
	}
	s->pending++;
}

static void
cmd_mail(struct smtp_sess *s, const struct smtp_cmd *c)
{
	char addr[512];

	if (!s->greeted) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_mail) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->submission && !s->authed) {
		reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (c->size > SMTP_MAX_MESSAGE) {
		reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	if (smtp_addr_format(&c->addr, addr, sizeof(addr)) == -1) {
		reply(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	s->mail = *c;
	if (s->submission) {
		struct smtp_job *j = calloc(1, sizeof(*j));

		if (j == NULL) {
			reply(s, "451 4.3.1 Insufficient system resources");
			return;
		}
		j->kind = JOB_SENDER;
		snprintf(j->address, sizeof(j->address), "%s", s->login);
		snprintf(j->sender, sizeof(j->sender), "%s", addr);
		submit(s, j);
		return;
	}
	s->in_mail = true;
	snprintf(s->sender, sizeof(s->sender), "%s", addr);
	reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct smtp_sess *s, const struct smtp_cmd *c)
{
	struct smtp_job *j;

	if (!s->in_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpts >= SMTP_MAX_RCPTS) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (c->addr.postmaster) {
		/* No node-wide postmaster mailbox exists yet to take it. */
		reply(s, "550 5.1.1 <Postmaster>: give a domain, e.g. postmaster@example.com");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		reply(s, "452 4.3.1 Insufficient system resources");
		return;
	}
	j->kind = JOB_RCPT;
	snprintf(j->local, sizeof(j->local), "%s", c->addr.local);
	snprintf(j->domain, sizeof(j->domain), "%s", c->addr.domain);
	snprintf(j->sender, sizeof(j->sender), "%s", s->sender);
	j->size = s->mail.size;
	j->notify = c->notify;
	snprintf(j->orcpt, sizeof(j->orcpt), "%s", c->orcpt);
	/* An address literal or a quoted local part is never one of ours. */
	if (c->addr.literal || c->addr.local_quoted) {
		j->rcpt.verdict = RCPT_NOT_HOSTED;
		s->state = ST_COMMAND;
		after_rcpt(s, j, 0);
		free(j->rcpt.targets);
		free(j);
		return;
	}
	submit(s, j);
}

/* The trace header every accepted message gets, first line of the body. */
static int
write_received(struct smtp_sess *s)
{
	char date[64], line[1400], first[600] = "";
	time_t now = time(NULL);
	struct tm tm;
	const char *with;
	int n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (s->mail.smtputf8)
		with = s->authed ? (tls_active(s) ? "UTF8SMTPSA" : "UTF8SMTPA") :
		    (tls_active(s) ? "UTF8SMTPS" : "UTF8SMTP");
	else if (!s->esmtp)
		with = "SMTP";
	else
		with = s->authed ? (tls_active(s) ? "ESMTPSA" : "ESMTPA") :
		    (tls_active(s) ? "ESMTPS" : "ESMTP");
	if (s->nrcpts == 1)
		snprintf(first, sizeof(first), "\r\n\tfor <%s>", s->rcpts[0].address);
	n = snprintf(line, sizeof(line), "Received: from %s (%s)\r\n\tby %s (mailnode) with %s "
	    "id S%" PRIu64 "%s;\r\n\t%s\r\n", s->helo, conn_peer(s->conn), hostname, with,
	    conn_id(s->conn), first, date);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	return spool_msg_write(s->msg, line, (size_t)n);
}

static bool
begin_message(struct smtp_sess *s)
{
	char err[256];

	if ((s->msg = spool_msg_new(err, sizeof(err))) == NULL) {
		sess_log(s, LOG_LVL_ERR, "spool: %s", err);
		reply(s, "451 4.3.0 Temporary failure storing the message, try again later");
		return false;
	}
	s->line_start = true;
	if (write_received(s) == -1)
		s->write_error = true;
	return true;
}

/* Count an accepted message for its tenant: the sender's on submission,
 * the first recipient's on the MX. */
static void
smtp_count_accepted(struct smtp_sess *s)
{
	const char *t = s->submission ? s->login_tenant_name : s->tenant_name;

	tenant_stats_add(t, TENANT_STAT_MSGS_IN, 1);
	tenant_stats_add(t, TENANT_STAT_BYTES_IN, s->committing_size);
	tenant_stats_add(t, TENANT_STAT_RCPTS_IN, s->nrcpts);
}

static void
committed(void *arg, int ok, const char *id, const char *err)
{
	struct smtp_sess *s = arg;

	s->pending--;
	s->msg = NULL;		/* the spool's now */
	if (s->conn == NULL) {
		if (!ok && s->rate_taken)
			sendrate_give_back(s->login_tenant_name, s->rate_taken);
		/* Gone before the answer: had it been 250, the client will
		 * retry and the message may arrive twice, never zero times. */
		if (s->pending == 0)
			sess_free(s);
		return;
	}
	if (ok) {
		sess_log(s, LOG_LVL_INFO, "queued %s: %zu recipients, %" PRIu64 " bytes", id,
		    s->nrcpts, s->committing_size);
		reply(s, "250 2.0.0 Ok: queued as %s", id);
		smtp_count_accepted(s);
		delivery_kick();
	} else {
		if (s->rate_taken)
			sendrate_give_back(s->login_tenant_name, s->rate_taken);
		sess_log(s, LOG_LVL_ERR, "not queued: %s", err ? err : "spool failure");
		reply(s, "451 4.3.0 Temporary failure storing the message, try again later");
	}
	reset_transaction(s);
	s->state = ST_COMMAND;
	conn_resume_input(s->conn);
}

static void
end_message(struct smtp_sess *s)
{
	struct spool_envelope env;
	uint64_t size = spool_msg_size(s->msg);

	s->rate_taken = 0;
	if (s->too_big || (s->size_limit && size > s->size_limit)) {
		reply(s, "552 5.3.4 Message size exceeds %s", s->too_big ? "fixed maximum message size" :
		    "the recipient's limit");
		reset_transaction(s);
		return;
	}
	if (s->policy.size_limit && size > s->policy.size_limit) {
		reply(s, "552 5.3.4 Message size exceeds your domain's limit of %" PRIu64 " bytes",
		    s->policy.size_limit);
		reset_transaction(s);
		return;
	}
	if (s->hops.received > SMTP_MAX_HOPS) {
		sess_log(s, LOG_LVL_INFO, "refused: %u Received: fields, a mail loop", s->hops.received);
		reply(s, "554 5.4.6 Too many hops (%u Received: header fields): mail loop", s->hops.received);
		reset_transaction(s);
		return;
	}
	if (s->write_error) {
		reply(s, "451 4.3.0 Temporary failure storing the message, try again later");
		reset_transaction(s);
		return;
	}
	if (s->submission) {
		/* Counted now, before the commit, so parallel sessions of one
		 * tenant cannot all pass; given back if the spool fails. */
		uint64_t now = loop_now_ms();

		if (!sendrate_take(s->login_tenant_name, s->policy.rate_count, s->policy.rate_per, now)) {
			rate_refused(s, &s->policy);
			reset_transaction(s);
			return;
		}
		if (s->policy.rate_count)
			s->rate_taken = now ? now : 1;
	}
	memset(&env, 0, sizeof(env));
	snprintf(env.sender, sizeof(env.sender), "%s", s->sender);
	env.tenant_id = s->submission ? s->login_tenant : s->tenant_id;
	snprintf(env.helo, sizeof(env.helo), "%s", s->helo);
	snprintf(env.peer, sizeof(env.peer), "%s", conn_peer(s->conn));
	snprintf(env.envid, sizeof(env.envid), "%s", s->mail.envid);
	env.ret_hdrs = s->mail.ret_hdrs;
	env.smtputf8 = s->mail.smtputf8;
	env.rcpts = s->rcpts;
	env.nrcpts = s->nrcpts;
	s->committing_size = size;
	s->state = ST_WAIT;
	s->pending++;
	conn_pause_input(s->conn);
	spool_msg_commit(s->msg, &env, committed, s);
}

static void
body_write(struct smtp_sess *s, const char *p, size_t n)
{
	if (s->too_big || s->write_error || n == 0)
		return;
	if (spool_msg_size(s->msg) + n > SMTP_MAX_MESSAGE) {
		s->too_big = true;	/* keep reading to the end, keep nothing */
		return;
	}
	smtp_hops_feed(&s->hops, p, n);
	if (spool_msg_write(s->msg, p, n) == -1)
		s->write_error = true;
}

/* DATA: dot-unstuff lines until the lone ".". Returns true when ended. */
static bool
data_input(struct smtp_sess *s)
{
	struct buf *in = conn_input(s->conn);
	size_t eol, len;

	for (;;) {
		const char *p = buf_data(in);

		len = buf_line(in, &eol);
		if (eol == 0) {
			/* No line end yet: a full buffer is passed on as it is. */
			if (buf_len(in) >= SMTP_INPUT_MAX / 2) {
				size_t n = buf_len(in);

				if (s->line_start && p[0] == '.') {
					p++;
					n--;
				}
				body_write(s, p, n);
				buf_consume(in, buf_len(in));
				s->line_start = false;
			}
			return false;
		}
		if (s->line_start && len == 1 && p[0] == '.') {
			buf_consume(in, eol);
			return true;
		}
		if (s->line_start && len > 0 && p[0] == '.') {
			p++;
			len--;
		}
		body_write(s, p, len);
		body_write(s, "\r\n", 2);	/* lines end in CRLF in the stored message */
		buf_consume(in, eol);
		s->line_start = true;
	}
}

/* BDAT: take exactly the chunk's octets. Returns true when the chunk is in. */
static bool
bdat_input(struct smtp_sess *s)
{
	struct buf *in = conn_input(s->conn);
	size_t n = buf_len(in);

	if (n > s->bdat_left)
		n = (size_t)s->bdat_left;
	body_write(s, buf_data(in), n);
	buf_consume(in, n);
	s->bdat_left -= n;
	return s->bdat_left == 0;
}

static void
bdat_chunk_done(struct smtp_sess *s)
{
	s->state = ST_COMMAND;
	if (s->bdat_last) {
		end_message(s);
		return;
	}
	reply(s, "250 2.0.0 %" PRIu64 " octets received", spool_msg_size(s->msg));
}

static void
cmd_data(struct smtp_sess *s, const struct smtp_cmd *c)
{
	if (!s->in_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpts == 0) {
		reply(s, "554 5.5.1 Error: no valid recipients");
		/* A BDAT's octets follow its command whatever we answer: skip them. */
		if (c->verb == SMTP_BDAT) {
			s->bdat_left = c->chunk;
			s->too_big = true;
			s->state = ST_BDAT;
		}
		return;
	}
	if (c->verb == SMTP_DATA) {
		if (s->bdat_used) {
			reply(s, "503 5.5.1 Error: DATA after BDAT");
			return;
		}
		if (!begin_message(s))
			return;
		reply(s, "354 End data with <CR><LF>.<CR><LF>");
		s->state = ST_DATA;
		return;
	}
	if (s->msg == NULL && !begin_message(s)) {
		s->bdat_left = c->chunk;
		s->too_big = true;
		s->state = ST_BDAT;
		return;
	}
	s->bdat_used = true;
	s->bdat_left = c->chunk;
	s->bdat_last = c->last;
	s->state = ST_BDAT;
}

static int
b64_decode(const char *in, char *out, size_t outlen, size_t *n)
{
	gnutls_datum_t src = { (unsigned char *)in, (unsigned)strlen(in) }, dst = { NULL, 0 };

	if (*in == '\0' || gnutls_base64_decode2(&src, &dst) != 0)
		return -1;
	if (dst.size >= outlen) {
		explicit_bzero(dst.data, dst.size);
		gnutls_free(dst.data);
		return -1;
	}
	memcpy(out, dst.data, dst.size);
	out[dst.size] = '\0';
	*n = dst.size;
	explicit_bzero(dst.data, dst.size);
	gnutls_free(dst.data);
	return 0;
}

static void
auth_check(struct smtp_sess *s, const char *user, const char *password)
{
	struct smtp_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	switch (authguard_check(conn_peer_addr(s->conn), user, conn_limits_exempt(s->conn), access_now())) {
	case AUTHGUARD_OK:
		break;
	case AUTHGUARD_IP_BLOCKED:
		free(j);
		reply(s, "454 4.7.0 Too many failed logins from your address, try again later");
		return;
	case AUTHGUARD_ACCOUNT_BLOCKED:
		free(j);
		reply(s, "454 4.7.0 Too many failed logins for this account, try again later");
		return;
	}
	j->kind = JOB_LOGIN;
	snprintf(j->address, sizeof(j->address), "%s", user);
	snprintf(j->password, sizeof(j->password), "%s", password);
	submit(s, j);
}

/* PLAIN: authzid NUL authcid NUL password. */
static void
auth_plain(struct smtp_sess *s, const char *b64)
{
	char raw[1100];
	size_t n;
	const char *authz, *user, *pass;

	if (strcmp(b64, "*") == 0) {
		reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (b64_decode(b64, raw, sizeof(raw), &n) == -1) {
		reply(s, "501 5.5.2 Cannot decode the response");
		return;
	}
	authz = raw;
	user = memchr(raw, '\0', n);
	pass = user ? memchr(user + 1, '\0', n - (size_t)(user + 1 - raw)) : NULL;
	if (user == NULL || pass == NULL || (*authz && strcmp(authz, user + 1) != 0)) {
		explicit_bzero(raw, sizeof(raw));
		reply(s, "501 5.5.2 Malformed PLAIN response");
		return;
	}
	auth_check(s, user + 1, pass + 1);
	explicit_bzero(raw, sizeof(raw));
}

static void scram_login_done(struct smtp_sess *);

static void
scram_abort(struct smtp_sess *s, const char *text)
{
	sasl_scram_free(s->scram);
	s->scram = NULL;
	s->state = ST_COMMAND;
	reply(s, "%s", text);
}

/* The client's next SCRAM response: its first message has the user looked
 * up (a database job); our signature goes back for a right proof, and the
 * login takes effect after the client's empty answer to it. */
static void
scram_step(struct smtp_sess *s, const char *b64)
{
	const char *user;
	struct smtp_job *j;
	struct buf out;

	buf_init(&out, 0);
	switch (sasl_scram_step(s->scram, b64, strlen(b64), &out)) {
	case SASL_SCRAM_MALFORMED:
		scram_abort(s, "501 5.5.2 Malformed SCRAM message");
		break;
	case SASL_SCRAM_CANCELLED:
		scram_abort(s, "501 5.0.0 Authentication cancelled");
		break;
	case SASL_SCRAM_LOOKUP:
		user = sasl_scram_user(s->scram);
		switch (authguard_check(conn_peer_addr(s->conn), user, conn_limits_exempt(s->conn),
		    access_now())) {
		case AUTHGUARD_OK:
			break;
		case AUTHGUARD_IP_BLOCKED:
			scram_abort(s, "454 4.7.0 Too many failed logins from your address, try again later");
			goto out;
		case AUTHGUARD_ACCOUNT_BLOCKED:
			scram_abort(s, "454 4.7.0 Too many failed logins for this account, try again later");
			goto out;
		}
		if ((j = calloc(1, sizeof(*j))) == NULL) {
			scram_abort(s, "454 4.7.0 Temporary authentication failure");
			break;
		}
		j->kind = JOB_SCRAM;
		snprintf(j->address, sizeof(j->address), "%s", user);
		submit(s, j);
		break;
	case SASL_SCRAM_CHALLENGE:
		reply(s, "334 %.*s", (int)buf_len(&out), buf_data(&out));
		s->state = ST_AUTH_SCRAM;
		break;
	case SASL_SCRAM_DONE:
		scram_login_done(s);
		break;
	}
out:
	buf_free(&out);
}

/* As a checked password would: through after_login, with its delays. */
static void
scram_login_done(struct smtp_sess *s)
{
	struct smtp_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		sasl_scram_free(s->scram);
		s->scram = NULL;
		reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	sasl_scram_result(s->scram, &j->login);
	snprintf(j->address, sizeof(j->address), "%s", sasl_scram_user(s->scram));
	sasl_scram_free(s->scram);
	s->scram = NULL;
	if (!after_login(s, j, 0)) {
		s->state = ST_WAIT;
		conn_pause_input(s->conn);
	}
	free(j);
}

static void
cmd_auth(struct smtp_sess *s, const struct smtp_cmd *c)
{
	char mech[32], *init;
	size_t mlen;

	if (!s->submission) {
		reply(s, "502 5.5.1 AUTH not available on this port; use submission");
		return;
	}
	if (!tls_active(s)) {
		reply(s, "538 5.7.11 Encryption required: STARTTLS first");
		return;
	}
	if (!s->greeted) {
		reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->authed) {
		reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_mail) {
		reply(s, "503 5.5.1 Error: AUTH not allowed during a mail transaction");
		return;
	}
	mlen = strcspn(c->arg, " ");
	if (mlen == 0 || mlen >= sizeof(mech)) {
		reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, c->arg, mlen);
	mech[mlen] = '\0';
	init = c->arg[mlen] == ' ' ? (char *)c->arg + mlen + 1 : NULL;
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (init != NULL && *init) {
			auth_plain(s, strcmp(init, "=") == 0 ? "" : init);
			return;
		}
		s->state = ST_AUTH_PLAIN;
		reply(s, "334 ");
		return;
	}
	if (strcasecmp(mech, "LOGIN") == 0) {
		if (init != NULL && *init) {
			size_t n;

			if (b64_decode(init, s->auth_user, sizeof(s->auth_user), &n) == -1) {
				reply(s, "501 5.5.2 Cannot decode the response");
				return;
			}
			s->state = ST_AUTH_PASS;
			reply(s, "334 UGFzc3dvcmQ6");
			return;
		}
		s->state = ST_AUTH_USER;
		reply(s, "334 VXNlcm5hbWU6");
		return;
	}
	if (strcasecmp(mech, "SCRAM-SHA-256") == 0) {
		if ((s->scram = sasl_scram_new()) == NULL) {
			reply(s, "454 4.7.0 Temporary authentication failure");
			return;
		}
		if (init != NULL && *init) {
			scram_step(s, init);
			return;
		}
		s->state = ST_AUTH_SCRAM;
		reply(s, "334 ");
		return;
	}
	reply(s, "504 5.5.4 Unrecognized authentication mechanism");
}

static void
auth_line(struct smtp_sess *s, const char *line)
{
	char pass[1100];
	size_t n;
	enum smtp_state st = s->state;

	s->state = ST_COMMAND;
	if (strcmp(line, "*") == 0) {
		explicit_bzero(s->auth_user, sizeof(s->auth_user));
		sasl_scram_free(s->scram);
		s->scram = NULL;
		reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (st == ST_AUTH_SCRAM) {
		scram_step(s, line);
		return;
	}
	if (st == ST_AUTH_PLAIN) {
		auth_plain(s, line);
		return;
	}
	if (st == ST_AUTH_USER) {
		if (b64_decode(line, s->auth_user, sizeof(s->auth_user), &n) == -1) {
			reply(s, "501 5.5.2 Cannot decode the response");
			return;
		}
		s->state = ST_AUTH_PASS;
		reply(s, "334 UGFzc3dvcmQ6");
		return;
	}
	if (b64_decode(line, pass, sizeof(pass), &n) == -1) {
		explicit_bzero(s->auth_user, sizeof(s->auth_user));
		reply(s, "501 5.5.2 Cannot decode the response");
		return;
	}
	auth_check(s, s->auth_user, pass);
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(s->auth_user, sizeof(s->auth_user));
}

static void
command(struct smtp_sess *s, const char *line, size_t len)
{
	struct smtp_cmd *c;
	struct smtp_offer o = offer(s);
	char err[256];

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		reply(s, "451 4.3.1 Insufficient system resources");
		return;
	}
	if (smtp_parse_command(line, len, &o, c, err, sizeof(err)) == -1) {
		(void)conn_write(s->conn, err, strlen(err));
		if (++s->errors >= SMTP_MAX_ERRORS) {
			reply(s, "421 4.7.0 %s Too many errors, closing", hostname);
			conn_close(s->conn);
		}
		free(c);
		return;
	}
	switch (c->verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		cmd_ehlo(s, c);
		break;
	case SMTP_MAIL:
		cmd_mail(s, c);
		break;
	case SMTP_RCPT:
		cmd_rcpt(s, c);
		break;
	case SMTP_DATA:
	case SMTP_BDAT:
		cmd_data(s, c);
		break;
	case SMTP_RSET:
		reset_transaction(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_QUIT:
		reply(s, "221 2.0.0 Bye");
		conn_close(s->conn);
		break;
	case SMTP_VRFY:
		reply(s, "252 2.5.0 Cannot VRFY user, but will accept the message and attempt delivery");
		break;
	case SMTP_EXPN:
		reply(s, "502 5.5.1 EXPN not available");
		break;
	case SMTP_HELP:
		reply(s, "214 2.0.0 See RFC 5321; this is mailnode");
		break;
	case SMTP_STARTTLS:
		if (tls_active(s))
			reply(s, "503 5.5.1 Error: TLS already active");
		else if (!conn_tls_available(s->conn))
			reply(s, "454 4.7.0 TLS not available");
		else {
			reply(s, "220 2.0.0 Ready to start TLS");
			/* RFC 3207: everything learnt before is forgotten. */
			reset_transaction(s);
			s->greeted = s->esmtp = false;
			s->helo[0] = '\0';
			(void)conn_starttls(s->conn);
		}
		break;
	case SMTP_AUTH:
		cmd_auth(s, c);
		break;
	case SMTP_UNKNOWN:
		reply(s, "500 5.5.2 Error: command not recognized");
		break;
	}
	free(c);
}

static void
smtp_input(struct conn *conn)
{
	struct smtp_sess *s = conn_proto(conn);
	struct buf *in = conn_input(conn);
	size_t eol, len;

	while (s->conn != NULL) {
		if (s->state == ST_WAIT)
			return;
		if (s->state == ST_DATA) {
			if (!data_input(s))
				return;
			s->state = ST_COMMAND;
			end_message(s);
			continue;
		}
		if (s->state == ST_BDAT) {
			if (!bdat_input(s))
				return;
			if (s->msg == NULL) {
				/* The chunk of a refused BDAT: dropped. */
				s->state = ST_COMMAND;
				s->too_big = false;
				continue;
			}
			bdat_chunk_done(s);
			continue;
		}
		len = buf_line(in, &eol);
		if (eol == 0) {
			if (buf_len(in) >= in->max) {
				buf_consume(in, buf_len(in));
				if (!s->skip_line)
					reply(s, "500 5.5.6 Error: line too long");
				s->skip_line = true;
			}
			return;
		}
		if (s->skip_line) {
			s->skip_line = false;
			buf_consume(in, eol);
			continue;
		}
		if (len > SMTP_LINE_MAX - 2) {
			buf_consume(in, eol);
			reply(s, "500 5.5.6 Error: line too long");
			continue;
		}
		{
			char line[SMTP_LINE_MAX];

			memcpy(line, buf_data(in), len);
			line[len] = '\0';
			buf_consume(in, eol);
			if (s->state == ST_AUTH_PLAIN || s->state == ST_AUTH_USER ||
			    s->state == ST_AUTH_PASS || s->state == ST_AUTH_SCRAM) {
				auth_line(s, line);
				explicit_bzero(line, sizeof(line));
			} else
				command(s, line, len);
		}
	}
}

static int
smtp_open(struct conn *conn, bool submission)
{
	struct smtp_sess *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		(void)conn_printf(conn, "421 4.3.2 %s Service not available\r\n", hostname);
		return -1;
	}
	s->conn = conn;
	s->submission = submission;
	s->state = ST_COMMAND;
	conn_set_proto(conn, s);
	return conn_printf(conn, "220 %s ESMTP mailnode\r\n", hostname);
}

static int
open_inbound(struct conn *conn)
{
	return smtp_open(conn, false);
}

static int
open_submission(struct conn *conn)
{
	return smtp_open(conn, true);
}

static void
smtp_goodbye(struct conn *conn, bool idle)
{
	if (idle)
		(void)conn_printf(conn, "421 4.4.2 %s Error: timeout exceeded\r\n", hostname);
	else
		(void)conn_printf(conn, "421 4.3.2 %s Service shutting down, try again later\r\n", hostname);
}

static void
smtp_close(struct conn *conn)
{
	struct smtp_sess *s = conn_proto(conn);

	if (s == NULL)
		return;
	s->conn = NULL;
	if (loop_timer_armed(&s->delay)) {
		loop_timer_stop(loop_current(), &s->delay);
	}
	/* A lookup or the spool still holds it: it is freed when they answer. */
	if (s->pending == 0)
		sess_free(s);
}

static const struct conn_ops inbound_ops = {
	.open = open_inbound,
	.input = smtp_input,
	.goodbye = smtp_goodbye,
	.close = smtp_close,
	.busy_reply = "421 4.7.0 Too many connections, try again later\r\n",
	.deny_reply = "554 5.7.1 Access denied\r\n",
	.limit_reply = "421 4.7.0 Too many connections from your address, try again later\r\n",
	.max_input = SMTP_INPUT_MAX,
};

static const struct conn_ops submission_ops = {
	.open = open_submission,
	.input = smtp_input,
	.goodbye = smtp_goodbye,
	.close = smtp_close,
	.busy_reply = "421 4.7.0 Too many connections, try again later\r\n",
	.deny_reply = "554 5.7.1 Access denied\r\n",
	.limit_reply = "421 4.7.0 Too many connections from your address, try again later\r\n",
	.max_input = SMTP_INPUT_MAX,
};

static int
smtp_start(struct service *s, const struct conn_ops *ops, char *err, size_t errlen)
{
	bool implicit = s->def->tls == SERVICE_TLS_IMPLICIT;

	if (hostname[0] == '\0' && gethostname(hostname, sizeof(hostname) - 1) == -1)
		snprintf(hostname, sizeof(hostname), "localhost");
	if (implicit && smtp_tls == NULL) {
		snprintf(err, errlen, "no TLS certificate for %s", s->def->name);
		return -1;
	}
	s->impl = conn_listen(s, ops, smtp_tls, implicit, err, errlen);
	return s->impl ? 0 : -1;
}

static int
inbound_start(struct service *s, char *err, size_t errlen)
{
	return smtp_start(s, &inbound_ops, err, errlen);
}

static int
submission_start(struct service *s, char *err, size_t errlen)
{
	return smtp_start(s, &submission_ops, err, errlen);
}

static void
smtp_stop(struct service *s, bool drain)
{
	conn_listener_stop(s->impl, drain);
	s->impl = NULL;
}

const struct service_handler smtp_inbound = {
	.start = inbound_start,
	.stop = smtp_stop,
	.reconfigure = NULL,
};

const struct service_handler smtp_submission = {
	.start = submission_start,
	.stop = smtp_stop,
	.reconfigure = NULL,
};
