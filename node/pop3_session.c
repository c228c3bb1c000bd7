/* pop3_session: one POP3 session per connection (RFC 1939 with CAPA,
 * RESP-CODES, PIPELINING, UIDL, TOP, STLS and SASL PLAIN and SCRAM-SHA-256),
 * driven by conn.
 * The maildrop is the mailbox's INBOX: loaded once at login on a database
 * worker, deletions applied in one store call at QUIT. Messages go out in
 * pieces as the connection drains, never whole in memory. */
#include "pop3_session.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "access.h"
#include "authguard.h"
#include "conn.h"
#include "db.h"
#include "log.h"
#include "lookup.h"
#include "loop.h"
#include "pop3_parse.h"
#include "sasl_scram.h"
#include "scram.h"
#include "store.h"

#define POP3_MAX_ERRORS		20	/* bad commands before we hang up */
#define POP3_MAX_AUTH_FAILS	3
#define POP3_READ_CHUNK		(64 * 1024)

static struct tls_creds	*pop3_tls;

enum pop3_state { ST_AUTHORIZATION, ST_TRANSACTION, ST_UPDATE };
enum pop3_in {
	IN_LINE,	/* reading commands */
	IN_AUTH,	/* waiting for a SASL response line (SCRAM's or PLAIN's) */
	IN_WAIT,	/* a job or the failed-login delay is running */
	IN_STREAM	/* RETR or TOP is going out */
};

struct pop3_msg {
	uint32_t	 uid;
	uint64_t	 size;
	char		*path;
	bool		 deleted;	/* DELE: removed at QUIT */
	bool		 retrieved;	/* RETR: \Seen at QUIT */
};

struct pop3_sess {
	struct conn		*conn;		/* NULL once the connection is gone */
	unsigned		 pending;	/* jobs in flight (at most one) */
	enum pop3_state		 state;
	enum pop3_in		 in;
	bool			 skip_line;	/* discarding the rest of an over-long line */
	bool			 closing;	/* conn_close was called: read nothing more */
	unsigned		 errors, auth_fails;
	char			 user[POP3_ARG_MAX + 1];
	bool			 have_user;
	struct sasl_scram	*scram;		/* a SCRAM exchange (else IN_AUTH is PLAIN's) */
	struct loop_timer	 timer;		/* slows answers to failed logins */
	uint64_t		 mailbox_id, locked_id;
	char			 address[256];
	/* the maildrop */
	uint64_t		 folder_id;
	uint32_t		 uidvalidity;
	struct pop3_msg		*msgs;
	size_t			 n;
	/* RETR/TOP in progress */
	int			 fd;		/* the worker's while a piece is read */
	size_t			 stream_msg;
	bool			 stream_top;
	struct pop3_stuffer	 stuff;
};

enum job_kind { JOB_LOGIN, JOB_LOAD, JOB_QUIT, JOB_READ, JOB_SCRAM };

struct pop3_job {
	enum job_kind		 kind;
	struct pop3_sess	*s;
	/* JOB_LOGIN and JOB_SCRAM */
	char			 user[POP3_ARG_MAX + 1];
	char			 password[POP3_ARG_MAX + 1];
	char			 scram[SCRAM_STORED_MAX];	/* the user's SCRAM keys */
	struct login_result	 login;
	/* JOB_LOAD */
	uint64_t		 mailbox_id, folder_id;
	uint32_t		 uidvalidity;
	struct pop3_msg		*msgs;
	size_t			 n;
	/* JOB_QUIT */
	uint32_t		*dele, *seen;
	size_t			 ndele, nseen, removed;
	bool			 close_after;	/* end the session once answered */
	/* JOB_READ */
	const char		*path;
	struct buf		 out;		/* the piece, transformed */
	int			 read_errno;
	bool			 opened, open_failed, finished;
};

static void pop3_input(struct conn *);
static void submit(struct pop3_sess *, struct pop3_job *);
static void after_scram_lookup(struct pop3_sess *, struct pop3_job *, int);

void
pop3_set_tls(struct tls_creds *creds)
{
	pop3_tls = creds;
}

/* --- one POP3 session per maildrop on this node (RFC 1939 8) ---------- */

static pthread_mutex_t	 drop_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t		*drop_locked;
static size_t		 drop_n, drop_cap;

static bool
maildrop_lock(uint64_t id)
{
	bool ok = true;
	size_t i;

	pthread_mutex_lock(&drop_mu);
	for (i = 0; i < drop_n; i++)
		if (drop_locked[i] == id)
			ok = false;
	if (ok && drop_n == drop_cap) {
		size_t ncap = drop_cap ? drop_cap * 2 : 64;
		uint64_t *v = realloc(drop_locked, ncap * sizeof(*v));

		if (v == NULL)
			ok = false;
		else {
			drop_locked = v;
			drop_cap = ncap;
		}
	}
	if (ok)
		drop_locked[drop_n++] = id;
	pthread_mutex_unlock(&drop_mu);
	return ok;
}

static void
maildrop_unlock(uint64_t id)
{
	size_t i;

	pthread_mutex_lock(&drop_mu);
	for (i = 0; i < drop_n; i++)
		if (drop_locked[i] == id) {
			drop_locked[i] = drop_locked[--drop_n];
			break;
		}
	pthread_mutex_unlock(&drop_mu);
}

/* --- session helpers ------------------------------------------------- */

static void
sess_log(struct pop3_sess *s, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
sess_log(struct pop3_sess *s, enum log_level lvl, const char *fmt, ...)
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
reply(struct pop3_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct pop3_sess *s, const char *fmt, ...)
{
	char line[600];
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
msgs_free(struct pop3_msg *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i].path);
	free(v);
}

static void
stream_end(struct pop3_sess *s)
{
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
}

/* End the session once what is queued is sent; pipelined commands after
 * this point are not read. */
static void
sess_close(struct pop3_sess *s)
{
	s->closing = true;
	conn_close(s->conn);
}

static void
sess_free(struct pop3_sess *s)
{
	stream_end(s);
	if (s->locked_id)
		maildrop_unlock(s->locked_id);
	msgs_free(s->msgs, s->n);
	explicit_bzero(s->user, sizeof(s->user));
	sasl_scram_free(s->scram);
	free(s);
}

static void
job_free(struct pop3_job *j)
{
	explicit_bzero(j->password, sizeof(j->password));
	explicit_bzero(j->scram, sizeof(j->scram));
	buf_free(&j->out);
	msgs_free(j->msgs, j->n);
	free(j->dele);
	free(j->seen);
	free(j);
}

/* A protocol error: counted, and too many end the session. */
static void
err(struct pop3_sess *s, const char *why)
{
	reply(s, "-ERR %s", why);
	if (++s->errors >= POP3_MAX_ERRORS) {
		reply(s, "-ERR Too many errors, closing");
		sess_close(s);
	}
}

static bool
plaintext_ok(struct pop3_sess *s)
{
	return conn_tls_active(s->conn) || conn_service(s->conn)->settings.allow_plaintext_auth;
}

static void
capa(struct pop3_sess *s)
{
	reply(s, "+OK Capability list follows");
	reply(s, "CAPA");
	reply(s, "TOP");
	reply(s, "UIDL");
	reply(s, "RESP-CODES");
	reply(s, "AUTH-RESP-CODE");
	reply(s, "PIPELINING");
	if (s->state == ST_AUTHORIZATION) {
		if (plaintext_ok(s)) {
			reply(s, "USER");
			reply(s, "SASL PLAIN SCRAM-SHA-256");
		}
		if (conn_tls_available(s->conn) && !conn_tls_active(s->conn))
			reply(s, "STLS");
	}
	reply(s, "IMPLEMENTATION mailnode");
	reply(s, ".");
}

/* The message numbered msg, alive; NULL after the error reply. */
static struct pop3_msg *
message(struct pop3_sess *s, uint32_t msg)
{
	if (msg == 0 || msg > s->n) {
		err(s, "No such message");
		return NULL;
	}
	if (s->msgs[msg - 1].deleted) {
		reply(s, "-ERR Message %" PRIu32 " is deleted", msg);
		return NULL;
	}
	return &s->msgs[msg - 1];
}

static void
drop_totals(struct pop3_sess *s, size_t *count, uint64_t *octets)
{
	size_t i;

	*count = 0;
	*octets = 0;
	for (i = 0; i < s->n; i++)
		if (!s->msgs[i].deleted) {
			(*count)++;
			*octets += s->msgs[i].size;
		}
}

/* --- RETR and TOP: the file goes out a piece at a time ----------------
 * Each piece is read and transformed on a worker, so no file access waits
 * on the loop; the next piece is asked for while the connection's output
 * has room (conn_want_drained otherwise). */

static void
stream_next(struct pop3_sess *s)
{
	struct pop3_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		sess_log(s, LOG_LVL_ERR, "out of memory sending a message");
		sess_close(s);
		return;
	}
	j->kind = JOB_READ;
	j->path = s->msgs[s->stream_msg].path;
	submit(s, j);
}

static void
pop3_drained(struct conn *conn)
{
	struct pop3_sess *s = conn_proto(conn);

	if (s != NULL && s->in == IN_STREAM && s->pending == 0)
		stream_next(s);
}

static void
send_message(struct pop3_sess *s, uint32_t msg, bool top, uint64_t lines)
{
	if (message(s, msg) == NULL)
		return;
	s->stream_msg = msg - 1;
	s->stream_top = top;
	pop3_stuff_init(&s->stuff, top, lines);
	s->in = IN_STREAM;
	stream_next(s);
}

/* On the worker: open the file for the first piece, read and transform
 * one piece into j->out. The session's stream state is the job's while it
 * runs. */
static void
read_piece(struct pop3_job *j)
{
	struct pop3_sess *s = j->s;
	char *chunk;
	ssize_t r;

	if (s->fd == -1) {
		if ((s->fd = open(j->path, O_RDONLY | O_CLOEXEC)) == -1) {
			j->read_errno = errno;
			j->open_failed = true;
			return;
		}
		j->opened = true;
	}
	if ((chunk = malloc(POP3_READ_CHUNK)) == NULL) {
		j->read_errno = ENOMEM;
		return;
	}
	do
		r = s->stuff.done ? 0 : read(s->fd, chunk, POP3_READ_CHUNK);
	while (r == -1 && errno == EINTR);
	if (r == -1)
		j->read_errno = errno;
	else if ((r > 0 && pop3_stuff(&s->stuff, chunk, (size_t)r, &j->out) == -1) ||
	    ((r == 0 || s->stuff.done) && pop3_stuff_end(&s->stuff, &j->out) == -1))
		j->read_errno = ENOMEM;
	else
		j->finished = r == 0 || s->stuff.done;
	free(chunk);
}

/* Back on the loop with a piece. */
static void
piece_done(struct pop3_sess *s, struct pop3_job *j)
{
	struct pop3_msg *m = &s->msgs[s->stream_msg];

	if (j->open_failed) {
		sess_log(s, LOG_LVL_ERR, "message uid %" PRIu32 ": %s", m->uid, strerror(j->read_errno));
		reply(s, "-ERR [SYS/TEMP] The message cannot be read now");
		s->in = IN_LINE;
		conn_resume_input(s->conn);
		return;
	}
	if (j->opened) {
		if (s->stream_top)
			reply(s, "+OK Top of message follows");
		else {
			reply(s, "+OK %" PRIu64 " octets", m->size);
			m->retrieved = true;
		}
	}
	if (j->read_errno != 0 ||
	    conn_write(s->conn, buf_data(&j->out) ? buf_data(&j->out) : "", buf_len(&j->out)) == -1) {
		/* Part of the message is out: the client must not take it as whole. */
		sess_log(s, LOG_LVL_ERR, "sending message uid %" PRIu32 " failed: %s", m->uid,
		    strerror(j->read_errno ? j->read_errno : ENOMEM));
		sess_close(s);
		return;
	}
	if (j->finished) {
		stream_end(s);
		s->in = IN_LINE;
		conn_resume_input(s->conn);
	} else if (conn_output_pending(s->conn) < CONN_OUT_LOW)
		stream_next(s);
	else
		conn_want_drained(s->conn);
}

/* --- database jobs ---------------------------------------------------- */

static int
load_maildrop(MYSQL *m, struct pop3_job *j)
{
	struct store_snapshot snap;
	struct store_fetch_row *rows = NULL;
	uint32_t *uids = NULL;
	size_t nrows = 0, i;
	int rc;

	memset(&snap, 0, sizeof(snap));
	rc = store_folder_snapshot(m, j->mailbox_id, "INBOX", false, &snap);
	if (rc == STORE_NOTFOUND)
		return 0;	/* no INBOX: an empty maildrop */
	if (rc != STORE_OK)
		return -1;
	j->folder_id = snap.folder.id;
	j->uidvalidity = snap.folder.uidvalidity;
	if (snap.n > 0) {
		if ((uids = calloc(snap.n, sizeof(*uids))) == NULL)
			goto fail;
		for (i = 0; i < snap.n; i++)
			uids[i] = snap.msgs[i].uid;
		if (store_fetch_rows(m, j->mailbox_id, j->folder_id, uids, snap.n, false, &rows, &nrows) != STORE_OK)
			goto fail;
	}
	if (nrows > 0 && (j->msgs = calloc(nrows, sizeof(*j->msgs))) == NULL)
		goto fail;
	for (i = 0; i < nrows; i++) {
		j->msgs[i].uid = rows[i].uid;
		j->msgs[i].size = rows[i].size;
		j->msgs[i].path = rows[i].path;
		rows[i].path = NULL;
		j->n++;
	}
	store_fetch_rows_free(rows, nrows);
	free(uids);
	store_snapshot_free(&snap);
	return 0;
fail:
	store_fetch_rows_free(rows, nrows);
	free(uids);
	store_snapshot_free(&snap);
	return -1;
}

/* UPDATE state: remove what DELE marked (quota given back by the store),
 * then flag what RETR read as \Seen for IMAP. */
static int
update_maildrop(MYSQL *m, struct pop3_job *j)
{
	uint32_t *gone = NULL;

	if (j->ndele > 0) {
		if (store_expunge(m, j->mailbox_id, j->folder_id, j->dele, j->ndele, false, &gone,
		    &j->removed) != STORE_OK)
			return -1;
		free(gone);
	}
	if (j->nseen > 0) {
		struct store_flag_req fr = { STORE_FLAGS_ADD, STORE_F_SEEN, "", 0, j->seen, j->nseen };
		struct store_flag_result res;

		if (store_flags(m, j->mailbox_id, j->folder_id, &fr, &res) == STORE_OK)
			store_flag_result_free(&res);
	}
	return 0;
}

static int
job_run(MYSQL *m, void *arg)
{
	struct pop3_job *j = arg;

	switch (j->kind) {
	case JOB_LOGIN:
		lookup_login(m, j->user, j->password, &j->login);
		explicit_bzero(j->password, sizeof(j->password));
		return j->login.tempfail ? -1 : 0;
	case JOB_SCRAM:
		lookup_scram(m, j->user, j->scram, sizeof(j->scram), &j->login);
		return j->login.tempfail ? -1 : 0;
	case JOB_LOAD:
		return load_maildrop(m, j);
	case JOB_QUIT:
		return update_maildrop(m, j);
	case JOB_READ:
		(void)m;
		read_piece(j);
		return 0;	/* a file's trouble is not the database's */
	}
	return -1;
}

/* Back on the loop. */

static void
login_delay_done(struct loop_timer *t)
{
	struct pop3_sess *s = t->arg;

	if (s->conn == NULL) {
		if (s->pending == 0)
			sess_free(s);
		return;
	}
	reply(s, "-ERR [AUTH] Authentication failed");
	if (s->auth_fails >= POP3_MAX_AUTH_FAILS) {
		reply(s, "-ERR Too many failed logins, closing");
		sess_close(s);
		return;
	}
	s->in = IN_LINE;
	conn_resume_input(s->conn);
}

/* The one place a login is decided: the password (lookup_login), the
 * account's state, the tenant's access rules and limits, then the maildrop
 * lock. Returns false when the session keeps waiting (the delay), or when
 * the next job was submitted (submit resumes input itself when that
 * fails). */
static bool
login_done(struct pop3_sess *s, struct pop3_job *j, int result)
{
	struct login_result *r = &j->login;
	struct pop3_job *load;
	uint64_t delay;

	if (result == -1) {
		reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later");
		return true;
	}
	if (r->disabled) {
		/* The right password: saying why is safe. */
		sess_log(s, LOG_LVL_INFO, "login refused: %s suspended", r->address);
		reply(s, "-ERR [SYS/PERM] Login suspended for this account");
		return true;
	}
	if (!r->ok) {
		s->auth_fails++;
		conn_count_auth_failure(s->conn, r->tenant);
		sess_log(s, LOG_LVL_INFO, "login failed");
		/* The refusal comes after a delay: a second per failure in this
		 * session, or longer when this address (across sessions and
		 * protocols) has been failing. */
		delay = authguard_failed(conn_peer_addr(s->conn), j->user, conn_limits_exempt(s->conn),
		    access_now());
		if (delay < 1000ULL * s->auth_fails)
			delay = 1000ULL * s->auth_fails;
		s->in = IN_WAIT;
		s->timer.cb = login_delay_done;
		s->timer.arg = s;
		loop_timer_start(loop_current(), &s->timer, delay);
		return false;
	}
	authguard_succeeded(conn_peer_addr(s->conn), j->user);
	/* The login's tenant: its access rules and limits apply now. */
	switch (conn_attribute(s->conn, r->tenant)) {
	case ACCESS_OK:
		break;
	case ACCESS_DENIED:
		reply(s, "-ERR [SYS/PERM] Access from your address is refused by your domain");
		j->close_after = true;
		return true;
	case ACCESS_LIMITED:
		reply(s, "-ERR [SYS/TEMP] Too many connections for your domain, try again later");
		j->close_after = true;
		return true;
	}
	if (!maildrop_lock(r->mailbox_id)) {
		sess_log(s, LOG_LVL_INFO, "login %s: maildrop in use", r->address);
		reply(s, "-ERR [IN-USE] Another POP3 session holds this mailbox");
		return true;
	}
	s->locked_id = r->mailbox_id;
	s->mailbox_id = r->mailbox_id;
	snprintf(s->address, sizeof(s->address), "%s", r->address);
	conn_set_identity(s->conn, r->tenant, r->address);
	if ((load = calloc(1, sizeof(*load))) == NULL) {
		reply(s, "-ERR [SYS/TEMP] Out of memory, try again later");
		maildrop_unlock(s->locked_id);
		s->locked_id = 0;
		return true;
	}
	load->kind = JOB_LOAD;
	load->mailbox_id = r->mailbox_id;
	submit(s, load);
	return false;
}

static void
load_done(struct pop3_sess *s, struct pop3_job *j, int result)
{
	size_t count;
	uint64_t octets;

	if (result == -1) {
		sess_log(s, LOG_LVL_WARN, "login %s: maildrop unavailable", s->address);
		reply(s, "-ERR [SYS/TEMP] Mailbox unavailable, try again later");
		maildrop_unlock(s->locked_id);
		s->locked_id = 0;
		return;
	}
	s->state = ST_TRANSACTION;
	s->folder_id = j->folder_id;
	s->uidvalidity = j->uidvalidity;
	s->msgs = j->msgs;
	s->n = j->n;
	j->msgs = NULL;
	j->n = 0;
	drop_totals(s, &count, &octets);
	sess_log(s, LOG_LVL_INFO, "login %s, %zu messages", s->address, count);
	reply(s, "+OK Logged in, %zu messages (%" PRIu64 " octets)", count, octets);
}

static void
job_done(void *arg, int result)
{
	struct pop3_job *j = arg;
	struct pop3_sess *s = j->s;
	bool resume = true;

	s->pending--;
	if (s->conn == NULL) {
		if (s->pending == 0 && !loop_timer_armed(&s->timer))
			sess_free(s);
		job_free(j);
		return;
	}
	if (j->kind == JOB_READ) {
		piece_done(s, j);
		job_free(j);
		return;
	}
	s->in = IN_LINE;
	switch (j->kind) {
	case JOB_LOGIN:
		if (!login_done(s, j, result))
			resume = false;
		break;
	case JOB_SCRAM:
		after_scram_lookup(s, j, result);
		break;
	case JOB_LOAD:
		load_done(s, j, result);
		break;
	case JOB_READ:
		break;
	case JOB_QUIT:
		if (result == -1) {
			sess_log(s, LOG_LVL_WARN, "QUIT: deleted messages not removed (store unavailable)");
			reply(s, "-ERR [SYS/TEMP] Deleted messages were not removed, try again later");
		} else
			reply(s, "+OK Bye, %zu messages deleted", j->removed);
		j->close_after = true;
		break;
	}
	if (j->close_after) {
		/* last: closing may free the session */
		job_free(j);
		sess_close(s);
		return;
	}
	job_free(j);
	if (resume)
		conn_resume_input(s->conn);
}

static void
submit(struct pop3_sess *s, struct pop3_job *j)
{
	j->s = s;
	if (j->kind != JOB_READ)
		s->in = IN_WAIT;
	conn_pause_input(s->conn);
	if (db_submit(job_run, job_done, j) == -1) {
		if (j->kind == JOB_READ && s->fd != -1) {
			/* mid-message: nothing more can be said */
			job_free(j);
			sess_close(s);
			return;
		}
		if (j->kind == JOB_QUIT) {
			reply(s, "-ERR [SYS/TEMP] Deleted messages were not removed, try again later");
			job_free(j);
			sess_close(s);
			return;
		}
		reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		if (j->kind == JOB_SCRAM) {
			sasl_scram_free(s->scram);
			s->scram = NULL;
		}
		if (j->kind == JOB_LOAD && s->locked_id) {
			maildrop_unlock(s->locked_id);
			s->locked_id = 0;
		}
		job_free(j);
		s->in = IN_LINE;
		conn_resume_input(s->conn);
		return;
	}
	s->pending++;
}

/* A login job for user (JOB_LOGIN or JOB_SCRAM), unless too many failed
 * logins from this address or for this account say not now: NULL after
 * the reply. */
static struct pop3_job *
login_job(struct pop3_sess *s, enum job_kind kind, const char *user)
{
	struct pop3_job *j;

	switch (authguard_check(conn_peer_addr(s->conn), user, conn_limits_exempt(s->conn), access_now())) {
	case AUTHGUARD_OK:
		break;
	case AUTHGUARD_IP_BLOCKED:
		reply(s, "-ERR [SYS/TEMP] Too many failed logins from your address, try again later");
		return NULL;
	case AUTHGUARD_ACCOUNT_BLOCKED:
		reply(s, "-ERR [SYS/TEMP] Too many failed logins for this account, try again later");
		return NULL;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		reply(s, "-ERR [SYS/TEMP] Out of memory, try again later");
		return NULL;
	}
	j->kind = kind;
	snprintf(j->user, sizeof(j->user), "%s", user);
	return j;
}

static void
start_login(struct pop3_sess *s, const char *user, size_t ulen, const char *pass, size_t plen)
{
	struct pop3_job *j;
	char account[POP3_ARG_MAX + 1];

	if (ulen > POP3_ARG_MAX || plen > POP3_ARG_MAX) {
		reply(s, "-ERR [AUTH] Authentication failed");
		return;
	}
	memcpy(account, user, ulen);
	account[ulen] = '\0';
	if ((j = login_job(s, JOB_LOGIN, account)) == NULL)
		return;
	memcpy(j->password, pass, plen);
	submit(s, j);
}

static void
quit(struct pop3_sess *s)
{
	struct pop3_job *j;
	size_t i;

	if (s->state == ST_AUTHORIZATION) {
		reply(s, "+OK Bye");
		sess_close(s);
		return;
	}
	s->state = ST_UPDATE;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (s->n > 0 && ((j->dele = calloc(s->n, sizeof(uint32_t))) == NULL ||
	    (j->seen = calloc(s->n, sizeof(uint32_t))) == NULL))) {
		if (j)
			job_free(j);
		reply(s, "-ERR [SYS/TEMP] Out of memory; nothing was deleted");
		sess_close(s);
		return;
	}
	j->kind = JOB_QUIT;
	j->mailbox_id = s->mailbox_id;
	j->folder_id = s->folder_id;
	for (i = 0; i < s->n; i++) {
		if (s->msgs[i].deleted)
			j->dele[j->ndele++] = s->msgs[i].uid;
		else if (s->msgs[i].retrieved)
			j->seen[j->nseen++] = s->msgs[i].uid;
	}
	submit(s, j);
}

/* PLAIN (RFC 4616): [authzid] NUL authcid NUL password, base64. */
static void
auth_plain(struct pop3_sess *s, const char *b64, size_t len)
{
	gnutls_datum_t src = { (unsigned char *)b64, (unsigned)len }, dst = { NULL, 0 };
	const char *user, *pass;
	size_t n;

	if (len == 1 && b64[0] == '*') {
		reply(s, "-ERR Authentication cancelled");
		return;
	}
	if (len == 0 || (len == 1 && b64[0] == '=') || gnutls_base64_decode2(&src, &dst) != 0) {
		if (dst.data) {
			explicit_bzero(dst.data, dst.size);
			gnutls_free(dst.data);
		}
		err(s, "Cannot decode the PLAIN response");
		return;
	}
	n = dst.size;
	user = memchr(dst.data, '\0', n);
	pass = user ? memchr(user + 1, '\0', n - (size_t)(user + 1 - (const char *)dst.data)) : NULL;
	if (user == NULL || pass == NULL || (user != (const char *)dst.data &&
	    ((size_t)(user - (const char *)dst.data) != (size_t)(pass - user - 1) ||
	    memcmp(dst.data, user + 1, (size_t)(pass - user - 1)) != 0))) {
		/* no authcid or password, or acting for another user */
		err(s, "Malformed PLAIN response");
	} else
		start_login(s, user + 1, (size_t)(pass - user - 1), pass + 1,
		    n - (size_t)(pass + 1 - (const char *)dst.data));
	explicit_bzero(dst.data, dst.size);
	gnutls_free(dst.data);
}

/* An exchange that ends here, with the reply given. */
static void
scram_abort(struct pop3_sess *s, const char *text)
{
	sasl_scram_free(s->scram);
	s->scram = NULL;
	s->in = IN_LINE;
	reply(s, "-ERR %s", text);
}

/* The outcome goes the way a checked password does (login_done: delays,
 * the account's state, the tenant's rules, the maildrop). */
static void
scram_login(struct pop3_sess *s)
{
	struct pop3_job *j = calloc(1, sizeof(*j));
	bool close;

	if (j == NULL) {
		scram_abort(s, "[SYS/TEMP] Out of memory, try again later");
		return;
	}
	j->kind = JOB_LOGIN;
	snprintf(j->user, sizeof(j->user), "%s", sasl_scram_user(s->scram));
	sasl_scram_result(s->scram, &j->login);
	sasl_scram_free(s->scram);
	s->scram = NULL;
	s->in = IN_LINE;
	if (!login_done(s, j, 0)) {
		job_free(j);
		return;
	}
	close = j->close_after;
	job_free(j);
	if (close)
		sess_close(s);
}

/* A challenge; our signature too, answered with an empty line (RFC 5034
 * 4: no additional data with +OK). */
static void
scram_challenge(struct pop3_sess *s, const struct buf *out)
{
	s->in = IN_AUTH;
	reply(s, "+ %.*s", (int)buf_len(out), buf_data(out));
}

/* The client's next SCRAM response (RFC 5034, RFC 7677). */
static void
scram_step(struct pop3_sess *s, const char *b64, size_t len)
{
	struct pop3_job *j;
	struct buf out;

	buf_init(&out, 0);
	switch (sasl_scram_step(s->scram, b64, len, &out)) {
	case SASL_SCRAM_MALFORMED:
		scram_abort(s, "Malformed SCRAM message");
		break;
	case SASL_SCRAM_CANCELLED:
		scram_abort(s, "Authentication cancelled");
		break;
	case SASL_SCRAM_LOOKUP:
		if ((j = login_job(s, JOB_SCRAM, sasl_scram_user(s->scram))) == NULL) {
			sasl_scram_free(s->scram);
			s->scram = NULL;
		} else
			submit(s, j);
		break;
	case SASL_SCRAM_CHALLENGE:
		scram_challenge(s, &out);
		break;
	case SASL_SCRAM_DONE:
		scram_login(s);
		break;
	}
	buf_free(&out);
}

/* The keys, or none: an unknown user goes on and fails at the proof. */
static void
after_scram_lookup(struct pop3_sess *s, struct pop3_job *j, int result)
{
	struct buf out;

	buf_init(&out, 0);
	if (result == -1 || sasl_scram_keys(s->scram, j->scram, &j->login, &out) == -1)
		scram_abort(s, "[SYS/TEMP] Temporary authentication failure, try again later");
	else
		scram_challenge(s, &out);
	buf_free(&out);
}

static void
auth_line(struct pop3_sess *s, const char *line, size_t len)
{
	s->in = IN_LINE;
	if (s->scram)
		scram_step(s, line, len);
	else
		auth_plain(s, line, len);
}

/* An over-long line where a SASL response was due: the exchange ends. */
static void
auth_end(struct pop3_sess *s)
{
	sasl_scram_free(s->scram);
	s->scram = NULL;
	s->in = IN_LINE;
}

static void
list_or_uidl(struct pop3_sess *s, const struct pop3_cmd *c)
{
	bool uidl = c->verb == POP3_UIDL;
	struct pop3_msg *m;
	size_t i, count;
	uint64_t octets;

	if (c->has_msg) {
		if ((m = message(s, c->msg)) == NULL)
			return;
		if (uidl)
			reply(s, "+OK %" PRIu32 " %" PRIu32 ".%" PRIu32, c->msg, s->uidvalidity, m->uid);
		else
			reply(s, "+OK %" PRIu32 " %" PRIu64, c->msg, m->size);
		return;
	}
	drop_totals(s, &count, &octets);
	if (uidl)
		reply(s, "+OK Unique-ID listing follows");
	else
		reply(s, "+OK %zu messages (%" PRIu64 " octets)", count, octets);
	for (i = 0; i < s->n; i++) {
		if (s->msgs[i].deleted)
			continue;
		if (uidl)
			reply(s, "%zu %" PRIu32 ".%" PRIu32, i + 1, s->uidvalidity, s->msgs[i].uid);
		else
			reply(s, "%zu %" PRIu64, i + 1, s->msgs[i].size);
	}
	reply(s, ".");
}

static void
command(struct pop3_sess *s, const char *line, size_t len)
{
	struct pop3_cmd c;
	const char *why;
	struct pop3_msg *m;
	size_t count, i;
	uint64_t octets;
	bool scram;

	if (pop3_parse(line, len, &c, &why) == -1) {
		err(s, why);
		return;
	}
	switch (c.verb) {
	case POP3_CAPA:
		capa(s);
		return;
	case POP3_QUIT:
		quit(s);
		return;
	case POP3_NOOP:
		if (s->state != ST_TRANSACTION)
			err(s, "NOOP is valid only after login");
		else
			reply(s, "+OK");
		return;
	case POP3_USER: case POP3_PASS: case POP3_APOP: case POP3_AUTH: case POP3_STLS:
		if (s->state != ST_AUTHORIZATION) {
			err(s, "Already logged in");
			return;
		}
		break;
	default:
		if (s->state != ST_TRANSACTION) {
			char why2[64];

			snprintf(why2, sizeof(why2), "%s is valid only after login", c.name);
			err(s, why2);
			return;
		}
		break;
	}

	switch (c.verb) {
	case POP3_STLS:
		if (conn_tls_active(s->conn))
			err(s, "Already under TLS");
		else if (!conn_tls_available(s->conn))
			err(s, "STLS is not available on this service");
		else {
			/* The reply goes out in clear, then the handshake; what
			 * was pipelined after STLS is dropped (RFC 2595 4), so
			 * read nothing more until TLS is up. */
			reply(s, "+OK Begin TLS negotiation");
			s->have_user = false;
			s->in = IN_WAIT;
			if (conn_starttls(s->conn) == -1)
				sess_close(s);
		}
		return;
	case POP3_USER:
		if (!plaintext_ok(s)) {
			err(s, "[AUTH] Plaintext authentication is not allowed before STLS");
			return;
		}
		memcpy(s->user, c.arg, c.arglen);
		s->user[c.arglen] = '\0';
		s->have_user = true;
		reply(s, "+OK Send the password");
		return;
	case POP3_PASS:
		if (!plaintext_ok(s)) {
			err(s, "[AUTH] Plaintext authentication is not allowed before STLS");
			return;
		}
		if (!s->have_user) {
			err(s, "USER first");
			return;
		}
		s->have_user = false;
		start_login(s, s->user, strlen(s->user), c.arg, c.arglen);
		return;
	case POP3_APOP:
		err(s, "APOP is not offered; use USER/PASS or AUTH PLAIN over TLS");
		return;
	case POP3_AUTH:
		if (c.arg == NULL) {	/* the mechanisms, as clients probe with */
			reply(s, "+OK");
			reply(s, "PLAIN");
			reply(s, "SCRAM-SHA-256");
			reply(s, ".");
			return;
		}
		scram = c.arglen == 13 && strncasecmp(c.arg, "SCRAM-SHA-256", 13) == 0;
		if (!scram && (c.arglen != 5 || strncasecmp(c.arg, "PLAIN", 5) != 0)) {
			err(s, "Unsupported authentication mechanism");
			return;
		}
		/* SCRAM sends no password, but the mail would go in clear. */
		if (!plaintext_ok(s)) {
			err(s, "[AUTH] Plaintext authentication is not allowed before STLS");
			return;
		}
		if (scram && (s->scram = sasl_scram_new()) == NULL) {
			reply(s, "-ERR [SYS/TEMP] Out of memory, try again later");
			return;
		}
		if (c.arg2 != NULL) {
			if (scram)
				scram_step(s, c.arg2, c.arg2len);
			else
				auth_plain(s, c.arg2, c.arg2len);
		} else {
			reply(s, "+ ");
			s->in = IN_AUTH;
		}
		return;
	case POP3_STAT:
		drop_totals(s, &count, &octets);
		reply(s, "+OK %zu %" PRIu64, count, octets);
		return;
	case POP3_LIST:
	case POP3_UIDL:
		list_or_uidl(s, &c);
		return;
	case POP3_RETR:
		send_message(s, c.msg, false, 0);
		return;
	case POP3_TOP:
		send_message(s, c.msg, true, c.lines);
		return;
	case POP3_DELE:
		if ((m = message(s, c.msg)) == NULL)
			return;
		m->deleted = true;
		reply(s, "+OK Message %" PRIu32 " deleted", c.msg);
		return;
	case POP3_RSET:
		for (i = 0; i < s->n; i++)
			s->msgs[i].deleted = false;
		drop_totals(s, &count, &octets);
		reply(s, "+OK Maildrop has %zu messages (%" PRIu64 " octets)", count, octets);
		return;
	case POP3_CAPA: case POP3_QUIT: case POP3_NOOP:
		return;		/* answered above */
	}
}

static void
pop3_input(struct conn *conn)
{
	struct pop3_sess *s = conn_proto(conn);
	struct buf *in = conn_input(conn);
	char line[POP3_LINE_MAX + 1];
	size_t eol, len;

	while (s->conn != NULL && !s->closing && (s->in == IN_LINE || s->in == IN_AUTH) &&
	    s->state != ST_UPDATE) {
		len = buf_line(in, &eol);
		if (eol == 0) {
			if (buf_len(in) >= in->max) {
				buf_consume(in, buf_len(in));
				if (!s->skip_line) {
					if (s->in == IN_AUTH)
						auth_end(s);
					err(s, "Line too long");
				}
				s->skip_line = true;
			}
			return;
		}
		if (s->skip_line) {	/* the end of an over-long line, already answered */
			s->skip_line = false;
			buf_consume(in, eol);
			continue;
		}
		if (len > POP3_LINE_MAX) {	/* fits the buffer only with a bare LF */
			buf_consume(in, eol);
			if (s->in == IN_AUTH)
				auth_end(s);
			err(s, "Line too long");
			continue;
		}
		memcpy(line, buf_data(in), len);
		line[len] = '\0';
		buf_consume(in, eol);
		if (s->in == IN_AUTH)
			auth_line(s, line, len);
		else
			command(s, line, len);
		explicit_bzero(line, len);
	}
}

static int
pop3_open(struct conn *conn)
{
	struct pop3_sess *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		(void)conn_printf(conn, "-ERR [SYS/TEMP] Service not available\r\n");
		return -1;
	}
	s->conn = conn;
	s->state = ST_AUTHORIZATION;
	s->in = IN_LINE;
	s->fd = -1;
	conn_set_proto(conn, s);
	return conn_printf(conn, "+OK mailnode POP3 ready\r\n");
}

static void
pop3_tls_ready(struct conn *conn)
{
	struct pop3_sess *s = conn_proto(conn);

	if (s != NULL && s->in == IN_WAIT && s->pending == 0)
		s->in = IN_LINE;
}

static void
pop3_goodbye(struct conn *conn, bool idle)
{
	struct pop3_sess *s = conn_proto(conn);

	/* In the middle of a message nothing more can be said. */
	if (s != NULL && s->in == IN_STREAM)
		return;
	if (idle)
		(void)conn_printf(conn, "-ERR Autologout; idle for too long\r\n");
	else
		(void)conn_printf(conn, "-ERR [SYS/TEMP] Server shutting down\r\n");
}

static void
pop3_close(struct conn *conn)
{
	struct pop3_sess *s = conn_proto(conn);

	if (s == NULL)
		return;
	s->conn = NULL;
	if (loop_timer_armed(&s->timer))
		loop_timer_stop(loop_current(), &s->timer);
	/* A job still holds it: it is freed when the job answers. Without
	 * QUIT nothing is deleted (RFC 1939 6). */
	if (s->pending == 0)
		sess_free(s);
}

static const struct conn_ops pop3_ops = {
	.open = pop3_open,
	.input = pop3_input,
	.tls_ready = pop3_tls_ready,
	.goodbye = pop3_goodbye,
	.close = pop3_close,
	.drained = pop3_drained,
	.busy_reply = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
	.deny_reply = "-ERR [AUTH] Access from your address is refused\r\n",
	.limit_reply = "-ERR [IN-USE] Too many connections from your address, try again later\r\n",
	.max_input = POP3_LINE_MAX + 2,
};

static int
pop3_start(struct service *s, char *errbuf, size_t errlen)
{
	bool implicit = s->def->tls == SERVICE_TLS_IMPLICIT;

	if (implicit && pop3_tls == NULL) {
		snprintf(errbuf, errlen, "no TLS certificate for %s", s->def->name);
		return -1;
	}
	s->impl = conn_listen(s, &pop3_ops, pop3_tls, implicit, errbuf, errlen);
	return s->impl ? 0 : -1;
}

static void
pop3_stop(struct service *s, bool drain)
{
	conn_listener_stop(s->impl, drain);
	s->impl = NULL;
}

const struct service_handler pop3_service = {
	.start = pop3_start,
	.stop = pop3_stop,
	.reconfigure = NULL,
};
