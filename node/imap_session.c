/* imap_session: commands are assembled on the loop (line by line, with their
 * literals), parsed, and run as one job on a database worker that builds
 * the whole reply. While a job runs, the session's input is paused and only
 * the worker touches the selected-folder state; the loop writes the reply
 * when the job is done. An idle session holds only this struct and its
 * selected folder's uid list (4 bytes per message). */
#include "imap_session.h"

#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "access.h"
#include "authguard.h"
#include "buf.h"
#include "conn.h"
#include "db.h"
#include "imap_parse.h"
#include "imap_search.h"
#include "log.h"
#include "loop.h"
#include "lookup.h"
#include "mime.h"
#include "mutf7.h"
#include "sasl_scram.h"
#include "scram.h"
#include "store.h"

#define IMAP_LINE_MAX		(64 * 1024)		/* a command line without its literals */
#define IMAP_LITERAL_MAX	(64 * 1024)		/* a string literal (names, search strings) */
#define IMAP_APPEND_MAX		(64 * 1024 * 1024)	/* the message of an APPEND */
#define IMAP_COMMAND_MAX	(1024 * 1024)		/* any other command with its literals */
#define IMAP_MAX_AUTH_FAILS	3
#define IMAP_MAX_ERRORS		20			/* BAD replies before the session is ended */
#define IMAP_IDLE_POLL_MS	1000			/* IDLE looks for changes this often */
#define IMAP_AUTH_LINE_MAX	4096
#define IMAP_FETCH_BATCH	1000			/* messages per FETCH job without text */
#define IMAP_FETCH_BATCH_TEXT	50			/* ... and with message text */
#define IMAP_OUT_HIGH		(1024 * 1024)		/* a FETCH waits while this much is unsent */

static struct tls_creds	*imap_tls;

enum imap_state { ST_NOAUTH, ST_AUTH, ST_SELECTED };
enum imap_in { IN_LINE, IN_LITERAL, IN_AUTH, IN_IDLE, IN_WAIT };

struct uid_run {
	uint32_t	 first, count;
	uint32_t	 before;	/* messages in the runs before this one */
};

struct imap_selected {
	uint64_t	 folder_id;
	char		*name;		/* UTF-8 */
	bool		 readonly;
	uint32_t	 uidvalidity, uidnext, recent_from;
	uint64_t	 highestmodseq;
	/* The folder's uids as runs of consecutive ones: a folder with few
	 * expunges costs a few runs, not 4 bytes per message. */
	struct uid_run	*runs;
	size_t		 nruns, cap;
	size_t		 n;		/* messages; the sequence number is index + 1 */
};

struct imap_sess {
	struct conn		*conn;		/* NULL once the connection is gone */
	unsigned		 pending;	/* jobs in flight (at most one) */
	enum imap_state		 state;
	enum imap_in		 in;
	struct buf		 cmd;		/* the command being assembled; freed between commands */
	uint64_t		 literal_left;
	bool			 literal_discard;	/* an over-limit non-synchronizing literal */
	bool			 cmd_too_big;
	bool			 skip_line;
	char			 wait_tag[IMAP_TAG_MAX + 1];	/* AUTHENTICATE or IDLE */
	struct sasl_scram	*scram;		/* a SCRAM exchange (else IN_AUTH is PLAIN's) */
	bool			 idle_done;
	uint64_t		 mailbox_id, tenant_id;
	char			*login;
	unsigned		 auth_fails, errors;
	bool			 condstore;
	struct loop_timer	 timer;		/* failed-login delay */
	struct imap_selected	*sel;
	struct imap_sess	*idle_prev, *idle_next;	/* in its loop's IDLE watch */
	struct imap_job		*cont;		/* a FETCH waiting for the output to drain */
	bool			 watched;
	bool			 closing;	/* said BYE: read no further commands */
};

/* Sessions in IDLE are watched per loop by one query a second for all
 * their folders (not one per session); a session whose folder moved then
 * fetches its changes. */
struct idle_watch {
	struct imap_sess	*head;
	struct loop_timer	 timer;
	bool			 busy;		/* a query is with the database */
};
static struct idle_watch	*idle_watches;	/* one per loop */
static unsigned			 idle_nwatches;

struct idle_job {
	struct loop			*loop;
	struct store_folder_state	*v;
	size_t				 n;
};

enum job_kind { JOB_LOGIN, JOB_COMMAND, JOB_POLL, JOB_SCRAM };

struct imap_job {
	enum job_kind		 kind;
	struct imap_sess	*s;
	struct imap_cmd		 cmd;
	struct buf		 text;		/* the command's text (APPEND's message is in it) */
	struct buf		 out;		/* the reply, built on the worker */
	bool			 tagged;	/* out ends with the tagged reply */
	bool			 close_after;
	/* FETCH runs in batches: the reply of each is sent before the next. */
	uint32_t		*uids;
	size_t			 nuids, next;
	bool			 resolved, more;
	/* JOB_LOGIN and JOB_SCRAM */
	char			 tag[IMAP_TAG_MAX + 1];
	char			 user[256];
	char			 password[1024];
	char			 scram[SCRAM_STORED_MAX];	/* the user's SCRAM keys */
	struct login_result	 login;
};

static void imap_input(struct conn *);
static void submit(struct imap_sess *, struct imap_job *);
static void fetch_continue(struct imap_sess *, struct imap_job *);

void
imap_set_tls(struct tls_creds *creds)
{
	imap_tls = creds;
}

static void
sess_log(struct imap_sess *s, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
sess_log(struct imap_sess *s, enum log_level lvl, const char *fmt, ...)
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
reply(struct imap_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct imap_sess *s, const char *fmt, ...)
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
selected_free(struct imap_selected *sel)
{
	if (sel == NULL)
		return;
	free(sel->runs);
	free(sel->name);
	free(sel);
}

static void
sess_close(struct imap_sess *s)
{
	s->closing = true;
	if (s->conn)
		conn_close(s->conn);
}

static void
sess_free(struct imap_sess *s)
{
	selected_free(s->sel);
	buf_free(&s->cmd);
	free(s->login);
	sasl_scram_free(s->scram);
	free(s);
}

static void
job_free(struct imap_job *j)
{
	/* A LOGIN's text holds the password. */
	if ((j->cmd.verb == IMAP_LOGIN || j->cmd.verb == IMAP_AUTHENTICATE) && j->text.data)
		explicit_bzero(j->text.data, j->text.cap);
	free(j->uids);
	imap_cmd_free(&j->cmd);
	buf_free(&j->text);
	buf_free(&j->out);
	explicit_bzero(j->password, sizeof(j->password));
	explicit_bzero(j->scram, sizeof(j->scram));
	free(j);
}

static bool
plaintext_ok(struct imap_sess *s)
{
	return s->conn && (conn_tls_active(s->conn) || conn_service(s->conn)->settings.allow_plaintext_auth);
}

static const char *
capabilities(struct imap_sess *s)
{
	bool tls = s->conn && conn_tls_active(s->conn);

	if (s->state == ST_NOAUTH) {
		if (tls)
			return "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN AUTH=SCRAM-SHA-256";
		if (plaintext_ok(s))	/* the admin allows passwords in clear */
			return "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE STARTTLS AUTH=PLAIN AUTH=SCRAM-SHA-256";
		if (s->conn && conn_tls_available(s->conn))
			return "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE STARTTLS LOGINDISABLED";
		return "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE LOGINDISABLED";
	}
	return "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE SPECIAL-USE "
	    "LIST-EXTENDED LIST-STATUS QUOTA CONDSTORE ESEARCH SORT UNSELECT CHILDREN CREATE-SPECIAL-USE "
	    "STATUS=SIZE";
}

/* Output helpers (used on workers, on the job's buffer). */

static int
put_string(struct buf *b, const char *s, size_t len)
{
	size_t i;
	bool literal = len > 1024;

	for (i = 0; i < len && !literal; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
			literal = true;
	}
	if (literal)
		return buf_printf(b, "{%zu}\r\n", len) == -1 ? -1 : buf_append(b, s, len);
	if (buf_puts(b, "\"") == -1)
		return -1;
	for (i = 0; i < len; i++) {
		if ((s[i] == '"' || s[i] == '\\') && buf_puts(b, "\\") == -1)
			return -1;
		if (buf_append(b, s + i, 1) == -1)
			return -1;
	}
	return buf_puts(b, "\"");
}

static int
put_mailbox(struct buf *b, const char *utf8)
{
	struct buf enc;
	int rc;

	buf_init(&enc, 0);
	rc = mutf7_encode(utf8, &enc);
	if (rc == 0)
		rc = put_string(b, buf_data(&enc) ? buf_data(&enc) : "", buf_len(&enc));
	buf_free(&enc);
	return rc;
}

static int
put_flags(struct buf *b, uint8_t flags, const char *keywords, bool recent)
{
	static const struct { uint8_t bit; const char *name; } sys[] = {
		{ STORE_F_SEEN, "\\Seen" }, { STORE_F_ANSWERED, "\\Answered" },
		{ STORE_F_FLAGGED, "\\Flagged" }, { STORE_F_DELETED, "\\Deleted" },
		{ STORE_F_DRAFT, "\\Draft" },
	};
	bool first = true;
	size_t i;

	if (buf_puts(b, "(") == -1)
		return -1;
	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if (flags & sys[i].bit) {
			if (buf_printf(b, "%s%s", first ? "" : " ", sys[i].name) == -1)
				return -1;
			first = false;
		}
	if (recent) {
		if (buf_printf(b, "%s\\Recent", first ? "" : " ") == -1)
			return -1;
		first = false;
	}
	if (keywords && *keywords) {
		if (buf_printf(b, "%s%s", first ? "" : " ", keywords) == -1)
			return -1;
	}
	return buf_puts(b, ")");
}

/* A sorted uid list as a compact sequence set ("1:3,7"). */
static int
put_set(struct buf *b, const uint32_t *v, size_t n)
{
	size_t i = 0, j;

	while (i < n) {
		j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (buf_printf(b, "%s%u", i ? "," : "", v[i]) == -1)
			return -1;
		if (j > i && buf_printf(b, ":%u", v[j]) == -1)
			return -1;
		i = j + 1;
	}
	return 0;
}

static void
tagged(struct imap_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tagged(struct imap_job *j, const char *fmt, ...)
{
	va_list ap;

	if (buf_printf(&j->out, "%s ", j->cmd.tag) == -1)
		return;
	va_start(ap, fmt);
	(void)buf_vprintf(&j->out, fmt, ap);
	va_end(ap);
	(void)buf_puts(&j->out, "\r\n");
	j->tagged = true;
}

static void
store_fail(struct imap_job *j, int rc, const char *what)
{
	switch (rc) {
	case STORE_NOTFOUND:
		tagged(j, "NO [NONEXISTENT] No such folder");
		break;
	case STORE_EXISTS:
		tagged(j, "NO [ALREADYEXISTS] The folder already exists");
		break;
	case STORE_OVERQUOTA:
		tagged(j, "NO [OVERQUOTA] Quota exceeded");
		break;
	case STORE_INVALID:
		tagged(j, "NO [CANNOT] %s refused", what);
		break;
	case STORE_FORBIDDEN:
		tagged(j, "NO [CANNOT] %s is not allowed on INBOX", what);
		break;
	default:
		tagged(j, "NO [UNAVAILABLE] Temporary failure, try again later");
		break;
	}
}

/* A client's (modified UTF-7) mailbox name as the store's UTF-8; a
 * trailing delimiter is dropped. false when it cannot be a name. */
static bool
decode_name(const char *in, char *out, size_t outlen)
{
	struct buf b;
	bool ok;
	size_t len = strlen(in);

	buf_init(&b, STORE_NAME_MAX * 4);
	while (len > 1 && in[len - 1] == '/')
		len--;
	ok = mutf7_decode(in, len, &b) == 0 && buf_len(&b) > 0 && buf_len(&b) < outlen &&
	    memchr(buf_data(&b), '\0', buf_len(&b)) == NULL;
	if (ok)
		memcpy(out, buf_cstr(&b), buf_len(&b) + 1);
	buf_free(&b);
	return ok;
}

/* Selected-folder state (worker side while a job runs). */

/* The run holding index idx (idx < n). */
static const struct uid_run *
run_of_index(const struct imap_selected *sel, size_t idx)
{
	size_t lo = 0, hi = sel->nruns;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (sel->runs[mid].before <= idx)
			lo = mid;
		else
			hi = mid;
	}
	return &sel->runs[lo];
}

/* The first run whose last uid is >= uid (nruns if none). */
static size_t
run_at_or_after(const struct imap_selected *sel, uint32_t uid)
{
	size_t lo = 0, hi = sel->nruns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct uid_run *r = &sel->runs[mid];

		if ((uint64_t)r->first + r->count - 1 < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t
sel_max_uid(const struct imap_selected *sel)
{
	const struct uid_run *r;

	if (sel->nruns == 0)
		return 0;
	r = &sel->runs[sel->nruns - 1];
	return r->first + r->count - 1;
}

static ssize_t
uid_index(const struct imap_selected *sel, uint32_t uid)
{
	size_t k = run_at_or_after(sel, uid);

	if (k == sel->nruns || sel->runs[k].first > uid)
		return -1;
	return (ssize_t)(sel->runs[k].before + (uid - sel->runs[k].first));
}

/* Index of the first message with a uid >= uid (n if none). */
static size_t
lower_bound(const struct imap_selected *sel, uint32_t uid)
{
	size_t k = run_at_or_after(sel, uid);

	if (k == sel->nruns)
		return sel->n;
	if (sel->runs[k].first >= uid)
		return sel->runs[k].before;
	return sel->runs[k].before + (uid - sel->runs[k].first);
}

/* Append the uids of indexes [a, b) to v. */
static void
sel_uids(const struct imap_selected *sel, size_t a, size_t b, uint32_t *v)
{
	const struct uid_run *r;
	size_t idx = a;

	if (a >= b)
		return;
	r = run_of_index(sel, a);
	while (idx < b) {
		uint32_t off = (uint32_t)(idx - r->before);

		for (; off < r->count && idx < b; off++, idx++)
			*v++ = r->first + off;
		r++;
	}
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The uids a set names (ascending, unique, existing). -1: a sequence
 * number past the end (BAD), -2: out of memory. */
static int
resolve_set(const struct imap_selected *sel, const struct imap_seqset *set, bool uid,
    uint32_t **out, size_t *nout)
{
	uint32_t *v = NULL;
	size_t n = 0, cap = 0, i, k;

	*out = NULL;
	*nout = 0;
	for (i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo, hi = set->r[i].hi;
		size_t a, b;

		if (uid) {
			uint32_t max = sel_max_uid(sel);

			if (lo == IMAP_SEQ_STAR)
				lo = max;
			if (hi == IMAP_SEQ_STAR)
				hi = max;
			if (lo > hi) {
				uint32_t t = lo;

				lo = hi;
				hi = t;
			}
			a = lower_bound(sel, lo);
			b = hi == UINT32_MAX ? sel->n : lower_bound(sel, hi + 1);
		} else {
			/* "1:*" in an empty folder names nothing; it is no error. */
			if ((lo == IMAP_SEQ_STAR || hi == IMAP_SEQ_STAR) && sel->n == 0)
				continue;
			if (lo == IMAP_SEQ_STAR)
				lo = (uint32_t)sel->n;
			if (hi == IMAP_SEQ_STAR)
				hi = (uint32_t)sel->n;
			if (lo > hi) {
				uint32_t t = lo;

				lo = hi;
				hi = t;
			}
			if (hi > sel->n || lo == 0) {
				free(v);
				return -1;
			}
			a = lo - 1;
			b = hi;
		}
		if (b <= a)
			continue;
		if (n + (b - a) > cap) {
			size_t ncap = (n + (b - a)) * 2;
			uint32_t *p = realloc(v, ncap * sizeof(*v));

			if (p == NULL) {
				free(v);
				return -2;
			}
			v = p;
			cap = ncap;
		}
		sel_uids(sel, a, b, v + n);
		n += b - a;
	}
	if (n > 1 && set->n > 1) {
		qsort(v, n, sizeof(*v), cmp_u32);
		for (i = 1, k = 1; i < n; i++)
			if (v[i] != v[k - 1])
				v[k++] = v[i];
		n = k;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* Add a uid above every uid the view has. */
static int
sel_append(struct imap_selected *sel, uint32_t uid)
{
	struct uid_run *last = sel->nruns ? &sel->runs[sel->nruns - 1] : NULL;

	if (last && (uint64_t)last->first + last->count == uid) {
		last->count++;
		sel->n++;
		return 0;
	}
	if (sel->nruns == sel->cap) {
		size_t ncap = sel->cap ? sel->cap * 2 : 4;
		struct uid_run *p = realloc(sel->runs, ncap * sizeof(*p));

		if (p == NULL)
			return -1;
		sel->runs = p;
		sel->cap = ncap;
	}
	sel->runs[sel->nruns++] = (struct uid_run){ uid, 1, (uint32_t)sel->n };
	sel->n++;
	return 0;
}

/* Remove the given uids (ascending) from the view, announcing each with
 * its sequence number at the time (RFC 3501 7.4.1). The runs are cut
 * where messages went; -1 only when memory for the new runs is lacking
 * (the view is then left as it was). */
static int
sel_expunge(struct imap_selected *sel, const uint32_t *gone, size_t ngone, struct buf *out)
{
	struct uid_run *nr;
	size_t cap = sel->nruns + ngone + 1, nn = 0, g = 0, k, removed = 0;
	uint32_t before = 0;

	if ((nr = calloc(cap, sizeof(*nr))) == NULL)
		return -1;
	for (k = 0; k < sel->nruns; k++) {
		const struct uid_run *r = &sel->runs[k];
		uint64_t cur = r->first, end = (uint64_t)r->first + r->count;

		while (g < ngone && gone[g] < cur)
			g++;
		while (g < ngone && gone[g] < end) {
			uint32_t u = gone[g];

			if (u > cur) {
				nr[nn++] = (struct uid_run){ (uint32_t)cur, (uint32_t)(u - cur), before };
				before += (uint32_t)(u - cur);
			}
			(void)buf_printf(out, "* %" PRIu64 " EXPUNGE\r\n",
			    (uint64_t)r->before + (u - r->first) + 1 - removed);
			removed++;
			cur = (uint64_t)u + 1;
			while (g < ngone && gone[g] < cur)
				g++;
		}
		if (cur < end) {
			nr[nn++] = (struct uid_run){ (uint32_t)cur, (uint32_t)(end - cur), before };
			before += (uint32_t)(end - cur);
		}
	}
	free(sel->runs);
	sel->runs = nr;
	sel->nruns = nn;
	sel->cap = cap;
	sel->n -= removed;
	return 0;
}

static size_t
recent_count(const struct imap_selected *sel)
{
	return sel->n - lower_bound(sel, sel->recent_from);
}

/* Tell the session what other sessions (and delivery) changed. */
static int
notify_changes(MYSQL *m, struct imap_job *j, bool allow_expunge)
{
	struct imap_sess *s = j->s;
	struct imap_selected *sel = s->sel;
	struct store_changes c;
	size_t i, before;
	bool held_expunge = false;
	uint32_t old_next;

	if (sel == NULL)
		return 0;
	if (store_changes(m, s->mailbox_id, sel->folder_id, sel->highestmodseq, sel->uidnext, &c) != STORE_OK)
		return -1;
	if (c.gone) {
		(void)buf_puts(&j->out, "* BYE The selected folder was deleted or renamed\r\n");
		j->close_after = true;
		store_changes_free(&c);
		return 0;
	}
	old_next = sel->uidnext;
	if (c.nexpunged > 0) {
		bool any = false;

		for (i = 0; i < c.nexpunged && !any; i++)
			any = uid_index(sel, c.expunged[i]) >= 0;
		/* Held back (reported later) when not allowed now. */
		if (any && (!allow_expunge || sel_expunge(sel, c.expunged, c.nexpunged, &j->out) == -1))
			held_expunge = true;
	}
	/* Flag changes of messages the session knows. */
	for (i = 0; i < c.n; i++) {
		struct store_msg *x = &c.msgs[i];
		ssize_t at;

		if (x->uid >= old_next || (at = uid_index(sel, x->uid)) < 0)
			continue;
		(void)buf_printf(&j->out, "* %zd FETCH (UID %u FLAGS ", at + 1, x->uid);
		(void)put_flags(&j->out, x->flags, x->keywords, x->uid >= sel->recent_from);
		if (s->condstore)
			(void)buf_printf(&j->out, " MODSEQ (%" PRIu64 ")", x->modseq);
		(void)buf_puts(&j->out, ")\r\n");
	}
	/* New mail. */
	before = sel->n;
	for (i = 0; i < c.n; i++) {
		uint32_t uid = c.msgs[i].uid;

		if (uid >= old_next && (sel->n == 0 || uid > sel_max_uid(sel)) && sel_append(sel, uid) == -1)
			break;
	}
	if (sel->n != before) {
		(void)buf_printf(&j->out, "* %zu EXISTS\r\n", sel->n);
		(void)buf_printf(&j->out, "* %zu RECENT\r\n", recent_count(sel));
	}
	if (c.uidnext > sel->uidnext)
		sel->uidnext = c.uidnext;
	if (sel->n > 0 && sel_max_uid(sel) >= sel->uidnext)
		sel->uidnext = sel_max_uid(sel) + 1;
	if (!held_expunge)
		sel->highestmodseq = c.highestmodseq;
	store_changes_free(&c);
	return 0;
}

/* Commands on the worker. */

static int
exec_select(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_cmd *c = &j->cmd;
	struct store_snapshot snap;
	struct imap_selected *sel;
	char name[STORE_NAME_MAX + 1];
	bool readonly = c->verb == IMAP_EXAMINE;
	size_t i, first_unseen = 0;
	int rc;

	if (s->sel) {
		selected_free(s->sel);
		s->sel = NULL;
		s->state = ST_AUTH;
		(void)buf_puts(&j->out, "* OK [CLOSED] Previous folder closed\r\n");
	}
	if (!decode_name(c->s1, name, sizeof(name))) {
		tagged(j, "NO [NONEXISTENT] No such folder");
		return 0;
	}
	if ((rc = store_folder_snapshot(m, s->mailbox_id, name, !readonly, &snap)) != STORE_OK) {
		store_fail(j, rc, "SELECT");
		return rc == STORE_ERROR ? -1 : 0;
	}
	if ((sel = calloc(1, sizeof(*sel))) == NULL || (sel->name = strdup(snap.folder.name)) == NULL) {
		selected_free(sel);
		store_snapshot_free(&snap);
		tagged(j, "NO [SERVERBUG] Out of memory");
		return 0;
	}
	sel->folder_id = snap.folder.id;
	sel->readonly = readonly;
	sel->uidvalidity = snap.folder.uidvalidity;
	sel->uidnext = snap.folder.uidnext;
	sel->highestmodseq = snap.folder.highestmodseq;
	sel->recent_from = snap.recent_from;
	for (i = 0; i < snap.n; i++) {
		if (sel_append(sel, snap.msgs[i].uid) == -1) {
			selected_free(sel);
			store_snapshot_free(&snap);
			tagged(j, "NO [SERVERBUG] Out of memory");
			return 0;
		}
		if (first_unseen == 0 && !(snap.msgs[i].flags & STORE_F_SEEN))
			first_unseen = i + 1;
	}
	if (c->condstore)
		s->condstore = true;
	(void)buf_printf(&j->out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s%s)\r\n",
	    *snap.keywords ? " " : "", snap.keywords);
	/* In a read-only folder nothing may change; otherwise keywords may
	 * be created too (\*). */
	if (readonly)
		(void)buf_puts(&j->out, "* OK [PERMANENTFLAGS ()] Read-only folder\r\n");
	else
		(void)buf_printf(&j->out, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s%s \\*)] "
		    "Flags permitted\r\n", *snap.keywords ? " " : "", snap.keywords);
	(void)buf_printf(&j->out, "* %zu EXISTS\r\n* %zu RECENT\r\n", sel->n, recent_count(sel));
	if (first_unseen)
		(void)buf_printf(&j->out, "* OK [UNSEEN %zu] First unseen\r\n", first_unseen);
	(void)buf_printf(&j->out, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n"
	    "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n", sel->uidvalidity, sel->uidnext, sel->highestmodseq);
	store_snapshot_free(&snap);
	s->sel = sel;
	s->state = ST_SELECTED;
	tagged(j, "OK [%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
	    readonly ? "EXAMINE" : "SELECT");
	return 0;
}

/* '*' matches anything, '%' anything but the delimiter. Dynamic
 * programming over (pattern, name): no backtracking blow-up whatever the
 * wildcards. */
#define LIST_PATTERN_MAX	1024
static bool
list_match(const char *pat, const char *name)
{
	size_t plen = strlen(pat), nlen = strlen(name), i, j;
	bool prev[STORE_NAME_MAX + 2], cur[STORE_NAME_MAX + 2];

	if (plen > LIST_PATTERN_MAX || nlen > STORE_NAME_MAX)
		return false;
	/* prev[j]: pat[0..i) matches name[0..j) */
	prev[0] = true;
	for (j = 1; j <= nlen; j++)
		prev[j] = false;
	for (i = 0; i < plen; i++) {
		char p = pat[i];

		cur[0] = (p == '*' || p == '%') && prev[0];
		for (j = 1; j <= nlen; j++) {
			if (p == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (p == '%')
				cur[j] = prev[j] || (cur[j - 1] && name[j - 1] != '/');
			else
				cur[j] = prev[j - 1] && name[j - 1] == p;
		}
		memcpy(prev, cur, (nlen + 1) * sizeof(bool));
	}
	return prev[nlen];
}

static bool
has_children(const struct store_folder *f, size_t n, size_t i)
{
	size_t len = strlen(f[i].name), k;

	for (k = 0; k < n; k++)
		if (f[k].id != 0 && strncmp(f[k].name, f[i].name, len) == 0 && f[k].name[len] == '/')
			return true;
	return false;
}

static bool
has_subscribed_child(const struct store_folder *f, size_t n, size_t i)
{
	size_t len = strlen(f[i].name), k;

	for (k = 0; k < n; k++)
		if (f[k].subscribed && strncmp(f[k].name, f[i].name, len) == 0 && f[k].name[len] == '/')
			return true;
	return false;
}

static void
put_status(struct buf *out, const char *name, const struct store_status *st, unsigned items)
{
	bool first = true;

	(void)buf_puts(out, "* STATUS ");
	(void)put_mailbox(out, name);
	(void)buf_puts(out, " (");
#define ITEM(bit, fmt, v) \
	if (items & (bit)) { (void)buf_printf(out, "%s" fmt, first ? "" : " ", v); first = false; }
	ITEM(IMAP_ST_MESSAGES, "MESSAGES %u", st->messages);
	ITEM(IMAP_ST_RECENT, "RECENT %u", st->recent);
	ITEM(IMAP_ST_UIDNEXT, "UIDNEXT %u", st->uidnext);
	ITEM(IMAP_ST_UIDVALIDITY, "UIDVALIDITY %u", st->uidvalidity);
	ITEM(IMAP_ST_UNSEEN, "UNSEEN %u", st->unseen);
	ITEM(IMAP_ST_HIGHESTMODSEQ, "HIGHESTMODSEQ %" PRIu64, st->highestmodseq);
	ITEM(IMAP_ST_SIZE, "SIZE %" PRIu64, st->size);
#undef ITEM
	(void)buf_puts(out, ")\r\n");
}

static int
exec_list(MYSQL *m, struct imap_job *j)
{
	struct imap_cmd *c = &j->cmd;
	struct store_folder *f;
	size_t n, i, p;
	char ref[STORE_NAME_MAX + 1] = "";
	char **pats;
	bool lsub = c->verb == IMAP_LSUB, subscribed_only = lsub || (c->list_select & IMAP_LS_SUBSCRIBED);
	bool ret_sub = subscribed_only || (c->list_return & IMAP_LR_SUBSCRIBED);
	int rc;

	if (c->npatterns == 1 && c->patterns[0][0] == '\0') {
		/* LIST "" "": the hierarchy delimiter and root. */
		(void)buf_printf(&j->out, "* %s (\\Noselect) \"/\" \"\"\r\n", lsub ? "LSUB" : "LIST");
		tagged(j, "OK %s completed", lsub ? "LSUB" : "LIST");
		return 0;
	}
	if (*c->s1 && !decode_name(c->s1, ref, sizeof(ref))) {
		tagged(j, "OK %s completed", lsub ? "LSUB" : "LIST");
		return 0;
	}
	if (*c->s1 && c->s1[strlen(c->s1) - 1] == '/' && strlen(ref) + 1 < sizeof(ref))
		memcpy(ref + strlen(ref), "/", 2);
	if ((rc = store_folder_list(m, j->s->mailbox_id, &f, &n)) != STORE_OK) {
		store_fail(j, rc, "LIST");
		return -1;
	}
	if ((pats = calloc(c->npatterns, sizeof(char *))) == NULL) {
		free(f);
		tagged(j, "NO [SERVERBUG] Out of memory");
		return 0;
	}
	for (p = 0; p < c->npatterns; p++) {
		struct buf b;

		buf_init(&b, 0);
		if (buf_puts(&b, ref) == -1 || mutf7_decode(c->patterns[p], strlen(c->patterns[p]), &b) == -1) {
			buf_free(&b);
			continue;	/* a pattern that is not modified UTF-7 matches nothing */
		}
		pats[p] = strdup(buf_cstr(&b));
		buf_free(&b);
		if (pats[p] && strncasecmp(pats[p], "INBOX", 5) == 0 &&
		    (pats[p][5] == '\0' || pats[p][5] == '/' || pats[p][5] == '*' || pats[p][5] == '%'))
			memcpy(pats[p], "INBOX", 5);
	}
	for (i = 0; i < n; i++) {
		bool match = false, first = true, childinfo;

		for (p = 0; p < c->npatterns && !match; p++)
			match = pats[p] && list_match(pats[p], f[i].name);
		if (!match)
			continue;
		/* RECURSIVEMATCH: a parent whose child is subscribed is listed
		 * with CHILDINFO (RFC 5258 3.5). */
		childinfo = !lsub && (c->list_select & IMAP_LS_RECURSIVEMATCH) &&
		    (c->list_select & IMAP_LS_SUBSCRIBED) && has_subscribed_child(f, n, i);
		if (subscribed_only && !f[i].subscribed && !childinfo)
			continue;
		if (f[i].id == 0 && !subscribed_only)
			continue;
		if ((c->list_select & IMAP_LS_SPECIALUSE) && f[i].special_use[0] == '\0')
			continue;
		(void)buf_printf(&j->out, "* %s (", lsub ? "LSUB" : "LIST");
#define ATTR(s) do { (void)buf_printf(&j->out, "%s%s", first ? "" : " ", s); first = false; } while (0)
		if (f[i].id == 0)
			ATTR(lsub ? "\\Noselect" : "\\NonExistent");
		else if (!lsub)
			ATTR(has_children(f, n, i) ? "\\HasChildren" : "\\HasNoChildren");
		if (ret_sub && f[i].subscribed && !lsub)
			ATTR("\\Subscribed");
		if (f[i].special_use[0] && !lsub)
			ATTR(f[i].special_use);
#undef ATTR
		(void)buf_puts(&j->out, ") \"/\" ");
		(void)put_mailbox(&j->out, f[i].name);
		if (childinfo)
			(void)buf_puts(&j->out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		(void)buf_puts(&j->out, "\r\n");
		if ((c->list_return & IMAP_LR_STATUS) && f[i].id != 0) {
			struct store_status st;

			if (store_folder_status(m, j->s->mailbox_id, f[i].name, &st) == STORE_OK)
				put_status(&j->out, f[i].name, &st, c->status_items);
		}
	}
	for (p = 0; p < c->npatterns; p++)
		free(pats[p]);
	free(pats);
	free(f);
	tagged(j, "OK %s completed", lsub ? "LSUB" : "LIST");
	return 0;
}

static const char *
special_use_ok(const char *s)
{
	static const char *const uses[] = { "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive",
	    "\\All", "\\Flagged" };
	size_t i;

	for (i = 0; i < sizeof(uses) / sizeof(uses[0]); i++)
		if (strcasecmp(s, uses[i]) == 0)
			return uses[i];
	return NULL;
}

static int
exec_mailbox_cmd(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_cmd *c = &j->cmd;
	char name[STORE_NAME_MAX + 1], to[STORE_NAME_MAX + 1];
	const char *use = NULL;
	int rc = STORE_OK;

	if (!decode_name(c->s1, name, sizeof(name))) {
		tagged(j, "NO [CANNOT] Invalid folder name");
		return 0;
	}
	switch (c->verb) {
	case IMAP_CREATE:
		if (c->s2_given && (use = special_use_ok(c->s2)) == NULL) {
			tagged(j, "NO [USEATTR] Unknown special-use attribute");
			return 0;
		}
		if (strcasecmp(name, "INBOX") == 0)
			rc = STORE_EXISTS;
		else
			rc = store_folder_create(m, s->mailbox_id, name, use);
		break;
	case IMAP_DELETE:
		rc = store_folder_delete(m, s->mailbox_id, name);
		if (rc == STORE_INVALID) {
			tagged(j, "NO [INUSE] The folder has children; delete them first");
			return 0;
		}
		/* Deleting the folder this session has open closes it (no BYE). */
		if (rc == STORE_OK && s->sel && strcmp(s->sel->name, name) == 0) {
			selected_free(s->sel);
			s->sel = NULL;
			s->state = ST_AUTH;
		}
		break;
	case IMAP_RENAME:
		if (!decode_name(c->s2, to, sizeof(to))) {
			tagged(j, "NO [CANNOT] Invalid folder name");
			return 0;
		}
		rc = store_folder_rename(m, s->mailbox_id, name, to);
		break;
	case IMAP_SUBSCRIBE:
	case IMAP_UNSUBSCRIBE:
		rc = store_folder_subscribe(m, s->mailbox_id, name, c->verb == IMAP_SUBSCRIBE);
		break;
	case IMAP_STATUS: {
		struct store_status st;

		if ((rc = store_folder_status(m, s->mailbox_id, name, &st)) == STORE_OK)
			put_status(&j->out, name, &st, c->status_items);
		break;
	}
	default:
		break;
	}
	if (rc != STORE_OK) {
		store_fail(j, rc, c->verb == IMAP_DELETE ? "DELETE" : c->verb == IMAP_RENAME ? "RENAME" : "CREATE");
		return rc == STORE_ERROR ? -1 : 0;
	}
	tagged(j, "OK Completed");
	return 0;
}

static int
exec_append(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_cmd *c = &j->cmd;
	struct store_append_req r = { 0 };
	char name[STORE_NAME_MAX + 1];
	uint32_t uidvalidity, uid;
	int rc;

	if (!decode_name(c->s1, name, sizeof(name))) {
		tagged(j, "NO [TRYCREATE] No such folder");
		return 0;
	}
	r.data = c->literal;
	r.len = c->literal_len;
	r.flags = c->flags.sys & STORE_F_ALL;
	r.keywords = c->flags.keywords;
	r.internal_date = c->date;
	if ((rc = store_append(m, s->mailbox_id, name, &r, &uidvalidity, &uid)) != STORE_OK) {
		if (rc == STORE_NOTFOUND)
			tagged(j, "NO [TRYCREATE] No such folder");
		else
			store_fail(j, rc, "APPEND");
		return rc == STORE_ERROR ? -1 : 0;
	}
	if (s->sel && notify_changes(m, j, true) == -1)
		return -1;
	tagged(j, "OK [APPENDUID %u %u] APPEND completed", uidvalidity, uid);
	return 0;
}

/* Where a section lies in the message, from the part index kept with the
 * row (or, without one, from the text itself: top-level sections only).
 * false when the message has no such part. */
static bool
section_range(const struct store_fetch_row *row, const struct imap_section *sec, const char *data,
    size_t len, size_t *off, size_t *slen)
{
	const char *t = sec->text;
	char name[128];
	size_t h;

	/* HEADER.FIELDS filters the header it names. */
	if (strncmp(t, "HEADER.FIELDS", 13) == 0)
		t = "HEADER";
	if (row->index != NULL) {
		if (snprintf(name, sizeof(name), "%s%s%s", sec->part, *sec->part && *t ? "." : "", t) >=
		    (int)sizeof(name) || mime_index_section(row->index, name, off, slen) == -1)
			return false;
		/* An index that does not fit the file names nothing. */
		return *off <= row->size && *slen <= row->size - *off;
	}
	if (*sec->part != '\0' || data == NULL)
		return false;
	h = imap_header_len(data, len);
	*off = strcmp(t, "TEXT") == 0 ? h : 0;
	*slen = *t == '\0' ? len : strcmp(t, "TEXT") == 0 ? len - h : h;
	return true;
}

static void
put_internaldate(struct buf *b, int64_t t)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
	    "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	(void)buf_printf(b, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, mon[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* One BODY[...] item. With the part index only the section's bytes are
 * read from the body file; without one the whole text is (once per
 * message, into whole). */
static int
put_section(struct buf *out, const struct store_fetch_row *row, const struct imap_section *sec,
    struct buf *whole, bool *loaded)
{
	size_t off = 0, slen = 0;
	bool filter = strncmp(sec->text, "HEADER.FIELDS", 13) == 0;
	struct buf part, filtered;
	const char *p;
	int rc = -1;

	if (sec->rfc822)
		(void)buf_printf(out, "RFC822%s%s ", *sec->text ? "." : "", sec->text);
	else {
		(void)buf_printf(out, "BODY[%s]", sec->spec);
		if (sec->partial)
			(void)buf_printf(out, "<%u>", sec->off);
		(void)buf_puts(out, " ");
	}
	if (row->index == NULL && !*loaded) {
		if (store_read_body(row->path, 0, UINT64_MAX, whole) == -1) {
			log_err("imap: reading %s failed", row->path);
			buf_reset(whole);
		}
		*loaded = true;
	}
	if (!section_range(row, sec, row->index ? NULL : buf_data(whole), buf_len(whole), &off, &slen))
		return buf_puts(out, "NIL");
	/* A partial of unfiltered bytes narrows what is read. */
	if (sec->partial && !filter) {
		if (sec->off >= slen)
			slen = 0;
		else {
			off += sec->off;
			slen -= sec->off;
			if (slen > sec->len)
				slen = sec->len;
		}
	}
	buf_init(&part, 0);
	buf_init(&filtered, 0);
	if (row->index != NULL) {
		if (slen > 0 && store_read_body(row->path, off, slen, &part) == -1) {
			log_err("imap: reading %s failed", row->path);
			buf_reset(&part);
		}
		p = buf_data(&part) ? buf_data(&part) : "";
		slen = buf_len(&part);
	} else
		p = buf_data(whole) ? buf_data(whole) + off : "";
	if (filter) {
		if (imap_header_filter(p, slen, sec->fields, sec->nfields, strcmp(sec->text, "HEADER.FIELDS.NOT") == 0,
		    &filtered) == -1)
			goto out;
		p = buf_data(&filtered);
		slen = buf_len(&filtered);
		if (sec->partial) {
			if (sec->off >= slen)
				slen = 0;
			else {
				p += sec->off;
				slen -= sec->off;
				if (slen > sec->len)
					slen = sec->len;
			}
		}
	}
	rc = buf_printf(out, "{%zu}\r\n", slen);
	if (rc == 0 && slen > 0)
		rc = buf_append(out, p, slen);
out:
	buf_free(&part);
	buf_free(&filtered);
	return rc;
}

static int
exec_fetch(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_selected *sel = s->sel;
	struct imap_cmd *c = &j->cmd;
	struct store_fetch_row *rows = NULL;
	uint32_t *uids = NULL, *unseen = NULL;
	size_t n, nrows = 0, i, k, nunseen = 0;
	bool want_meta = c->fetch_items & (IMAP_FI_ENVELOPE | IMAP_FI_BODY | IMAP_FI_BODYSTRUCTURE);
	bool set_seen = false, modseq;
	int rc;

	/* Sections are found through the part index kept with each row. */
	for (k = 0; k < c->nsections; k++) {
		if (!c->sections[k].peek)
			set_seen = true;
		want_meta = true;
	}
	if (c->changedsince || (c->fetch_items & IMAP_FI_MODSEQ))
		s->condstore = true;
	modseq = s->condstore && (c->fetch_items & (IMAP_FI_FLAGS | IMAP_FI_MODSEQ));
	if (!j->resolved) {
		rc = resolve_set(sel, &c->set, c->uid, &j->uids, &j->nuids);
		if (rc == -1) {
			tagged(j, "BAD Invalid message sequence number");
			return 0;
		}
		if (rc == -2) {
			tagged(j, "NO [SERVERBUG] Out of memory");
			return 0;
		}
		j->resolved = true;
	}
	/* This batch: fewer messages when their text is sent. */
	uids = j->uids + j->next;
	n = j->nuids - j->next;
	if (n > (c->nsections > 0 ? IMAP_FETCH_BATCH_TEXT : IMAP_FETCH_BATCH))
		n = c->nsections > 0 ? IMAP_FETCH_BATCH_TEXT : IMAP_FETCH_BATCH;
	j->next += n;
	j->more = j->next < j->nuids;
	if (n > 0 && (rc = store_fetch_rows(m, s->mailbox_id, sel->folder_id, uids, n, want_meta, &rows,
	    &nrows)) != STORE_OK) {
		j->more = false;
		store_fail(j, rc, "FETCH");
		return -1;
	}
	/* Reading a body marks it \Seen (not BODY.PEEK, not in EXAMINE). */
	if (set_seen && !sel->readonly && nrows > 0 && (unseen = calloc(nrows, sizeof(uint32_t))) != NULL) {
		for (i = 0; i < nrows; i++)
			if (!(rows[i].flags & STORE_F_SEEN))
				unseen[nunseen++] = rows[i].uid;
		if (nunseen > 0) {
			struct store_flag_req fr = { STORE_FLAGS_ADD, STORE_F_SEEN, "", 0, unseen, nunseen };
			struct store_flag_result res;

			if (store_flags(m, s->mailbox_id, sel->folder_id, &fr, &res) == STORE_OK) {
				for (i = 0, k = 0; i < nrows && k < res.n; i++) {
					while (k < res.n && res.msgs[k].uid < rows[i].uid)
						k++;
					if (k < res.n && res.msgs[k].uid == rows[i].uid) {
						rows[i].flags = res.msgs[k].flags;
						rows[i].modseq = res.msgs[k].modseq;
					}
				}
				if (res.highestmodseq == sel->highestmodseq + 1)
					sel->highestmodseq = res.highestmodseq;
				store_flag_result_free(&res);
			}
		}
	}
	for (i = 0; i < nrows; i++) {
		struct store_fetch_row *r = &rows[i];
		ssize_t at = uid_index(sel, r->uid);
		bool sp = false, seen_now = false;
		struct buf data;

		if (at < 0 || (c->changedsince && r->modseq <= c->changedsince))
			continue;
		for (k = 0; k < nunseen; k++)
			if (unseen[k] == r->uid)
				seen_now = true;
		(void)buf_printf(&j->out, "* %zd FETCH (", at + 1);
#define SEP() do { if (sp) (void)buf_puts(&j->out, " "); sp = true; } while (0)
		if (c->uid || (c->fetch_items & IMAP_FI_UID)) {
			SEP();
			(void)buf_printf(&j->out, "UID %u", r->uid);
		}
		if ((c->fetch_items & IMAP_FI_FLAGS) || seen_now) {
			SEP();
			(void)buf_puts(&j->out, "FLAGS ");
			(void)put_flags(&j->out, r->flags, r->keywords, r->uid >= sel->recent_from);
		}
		if (modseq || c->changedsince) {
			SEP();
			(void)buf_printf(&j->out, "MODSEQ (%" PRIu64 ")", r->modseq);
		}
		if (c->fetch_items & IMAP_FI_INTERNALDATE) {
			SEP();
			(void)buf_puts(&j->out, "INTERNALDATE ");
			put_internaldate(&j->out, r->internal_date);
		}
		if (c->fetch_items & IMAP_FI_SIZE) {
			SEP();
			(void)buf_printf(&j->out, "RFC822.SIZE %" PRIu64, r->size);
		}
		if (c->fetch_items & IMAP_FI_ENVELOPE) {
			SEP();
			(void)buf_printf(&j->out, "ENVELOPE %s", r->envelope ? r->envelope : "NIL");
		}
		if (c->fetch_items & IMAP_FI_BODY) {
			SEP();
			(void)buf_printf(&j->out, "BODY %s", r->body ? r->body : "NIL");
		}
		if (c->fetch_items & IMAP_FI_BODYSTRUCTURE) {
			SEP();
			(void)buf_printf(&j->out, "BODYSTRUCTURE %s", r->bodystructure ? r->bodystructure : "NIL");
		}
		if (c->nsections > 0) {
			bool loaded = false;

			buf_init(&data, 0);
			for (k = 0; k < c->nsections; k++) {
				SEP();
				(void)put_section(&j->out, r, &c->sections[k], &data, &loaded);
			}
			buf_free(&data);
		}
#undef SEP
		(void)buf_puts(&j->out, ")\r\n");
	}
	store_fetch_rows_free(rows, nrows);
	free(unseen);
	if (j->more)
		return 0;
	if (c->uid && notify_changes(m, j, true) == -1)
		return -1;
	tagged(j, "OK %sFETCH completed", c->uid ? "UID " : "");
	return 0;
}

static int
exec_store(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_selected *sel = s->sel;
	struct imap_cmd *c = &j->cmd;
	struct store_flag_req fr = { 0 };
	struct store_flag_result res = { 0 };
	uint32_t *uids = NULL;
	size_t n, i;
	int rc;

	if (sel->readonly) {
		tagged(j, "NO [READ-ONLY] The folder is read-only");
		return 0;
	}
	if (c->has_unchangedsince)
		s->condstore = true;
	rc = resolve_set(sel, &c->set, c->uid, &uids, &n);
	if (rc == -1) {
		tagged(j, "BAD Invalid message sequence number");
		return 0;
	}
	if (rc == -2 || (c->flags.keywords && strlen(c->flags.keywords) > STORE_KEYWORDS_MAX)) {
		free(uids);
		tagged(j, "NO [LIMIT] Too many keywords");
		return 0;
	}
	if (c->has_unchangedsince && c->unchangedsince == 0) {
		/* Every message was modified after modseq 0. */
		(void)buf_printf(&j->out, "%s OK [MODIFIED ", c->tag);
		(void)put_set(&j->out, uids, n);
		(void)buf_puts(&j->out, "] Conditional STORE failed\r\n");
		j->tagged = true;
		free(uids);
		return 0;
	}
	fr.op = c->store_op == 0 ? STORE_FLAGS_SET : c->store_op == 1 ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE;
	fr.flags = c->flags.sys & STORE_F_ALL;
	fr.keywords = c->flags.keywords;
	fr.unchangedsince = c->has_unchangedsince ? c->unchangedsince : 0;
	fr.uids = uids;
	fr.n = n;
	if (n > 0 && (rc = store_flags(m, s->mailbox_id, sel->folder_id, &fr, &res)) != STORE_OK) {
		free(uids);
		if (rc == STORE_INVALID) {
			tagged(j, "NO [LIMIT] Too many keywords on a message");
			return 0;
		}
		store_fail(j, rc, "STORE");
		return -1;
	}
	if (res.highestmodseq == sel->highestmodseq + 1)
		sel->highestmodseq = res.highestmodseq;
	for (i = 0; i < res.n; i++) {
		struct store_msg *x = &res.msgs[i];
		ssize_t at = uid_index(sel, x->uid);
		bool failed = false;
		size_t f;

		for (f = 0; f < res.nfailed && !failed; f++)
			failed = res.failed[f] == x->uid;
		if (at < 0 || failed || (c->silent && !c->has_unchangedsince))
			continue;
		(void)buf_printf(&j->out, "* %zd FETCH (", at + 1);
		if (c->uid)
			(void)buf_printf(&j->out, "UID %u ", x->uid);
		if (!c->silent) {
			(void)buf_puts(&j->out, "FLAGS ");
			(void)put_flags(&j->out, x->flags, x->keywords, x->uid >= sel->recent_from);
		}
		if (s->condstore)
			(void)buf_printf(&j->out, "%sMODSEQ (%" PRIu64 ")", c->silent ? "" : " ", x->modseq);
		(void)buf_puts(&j->out, ")\r\n");
	}
	if (c->uid && notify_changes(m, j, true) == -1) {
		store_flag_result_free(&res);
		free(uids);
		return -1;
	}
	if (res.nfailed > 0) {
		(void)buf_printf(&j->out, "%s OK [MODIFIED ", c->tag);
		(void)put_set(&j->out, res.failed, res.nfailed);
		(void)buf_puts(&j->out, "] Conditional STORE failed\r\n");
		j->tagged = true;
	} else
		tagged(j, "OK %sSTORE completed", c->uid ? "UID " : "");
	store_flag_result_free(&res);
	free(uids);
	return 0;
}

static int
exec_copy(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_selected *sel = s->sel;
	struct imap_cmd *c = &j->cmd;
	struct store_copy_result res;
	char name[STORE_NAME_MAX + 1];
	bool move = c->verb == IMAP_MOVE;
	uint32_t *uids = NULL;
	size_t n;
	int rc;

	if (move && sel->readonly) {
		tagged(j, "NO [READ-ONLY] The folder is read-only");
		return 0;
	}
	if (!decode_name(c->s1, name, sizeof(name))) {
		tagged(j, "NO [TRYCREATE] No such folder");
		return 0;
	}
	rc = resolve_set(sel, &c->set, c->uid, &uids, &n);
	if (rc == -1) {
		tagged(j, "BAD Invalid message sequence number");
		return 0;
	}
	if (rc == -2) {
		tagged(j, "NO [SERVERBUG] Out of memory");
		return 0;
	}
	if (n == 0) {
		free(uids);
		tagged(j, "OK No messages");
		return 0;
	}
	rc = store_copy(m, s->mailbox_id, sel->folder_id, name, uids, n, move, &res);
	free(uids);
	if (rc != STORE_OK) {
		if (rc == STORE_NOTFOUND)
			tagged(j, "NO [TRYCREATE] No such folder");
		else
			store_fail(j, rc, move ? "MOVE" : "COPY");
		return rc == STORE_ERROR ? -1 : 0;
	}
	if (res.n == 0) {
		tagged(j, "OK No messages");
		return 0;
	}
	if (move) {
		uint32_t *sorted = malloc(res.n * sizeof(uint32_t));

		(void)buf_printf(&j->out, "* OK [COPYUID %u ", res.dst_uidvalidity);
		(void)put_set(&j->out, res.src_uids, res.n);
		(void)buf_puts(&j->out, " ");
		(void)put_set(&j->out, res.dst_uids, res.n);
		(void)buf_puts(&j->out, "] Moved\r\n");
		if (sorted) {
			memcpy(sorted, res.src_uids, res.n * sizeof(uint32_t));
			qsort(sorted, res.n, sizeof(uint32_t), cmp_u32);
			(void)sel_expunge(sel, sorted, res.n, &j->out);
			free(sorted);
		}
		store_copy_result_free(&res);
		if (notify_changes(m, j, true) == -1)
			return -1;
		tagged(j, "OK %sMOVE completed", c->uid ? "UID " : "");
		return 0;
	}
	if (notify_changes(m, j, true) == -1) {
		store_copy_result_free(&res);
		return -1;
	}
	(void)buf_printf(&j->out, "%s OK [COPYUID %u ", c->tag, res.dst_uidvalidity);
	(void)put_set(&j->out, res.src_uids, res.n);
	(void)buf_puts(&j->out, " ");
	(void)put_set(&j->out, res.dst_uids, res.n);
	(void)buf_printf(&j->out, "] %sCOPY completed\r\n", c->uid ? "UID " : "");
	j->tagged = true;
	store_copy_result_free(&res);
	return 0;
}

static int
exec_expunge(MYSQL *m, struct imap_job *j, bool silent_close)
{
	struct imap_sess *s = j->s;
	struct imap_selected *sel = s->sel;
	struct imap_cmd *c = &j->cmd;
	uint32_t *uids = NULL, *gone = NULL;
	size_t n = 0, ngone = 0;
	int rc;

	if (sel->readonly) {
		if (silent_close)
			return 0;
		tagged(j, "NO [READ-ONLY] The folder is read-only");
		return 0;
	}
	if (c->verb == IMAP_UID_EXPUNGE) {
		rc = resolve_set(sel, &c->set, true, &uids, &n);
		if (rc != 0) {
			tagged(j, "NO [SERVERBUG] Out of memory");
			return 0;
		}
		if (n == 0) {
			free(uids);
			if (notify_changes(m, j, true) == -1)
				return -1;
			tagged(j, "OK UID EXPUNGE completed");
			return 0;
		}
	}
	rc = store_expunge(m, s->mailbox_id, sel->folder_id, uids, n, true, &gone, &ngone);
	free(uids);
	if (rc != STORE_OK) {
		if (!silent_close)
			store_fail(j, rc, "EXPUNGE");
		return -1;
	}
	if (!silent_close) {
		(void)sel_expunge(sel, gone, ngone, &j->out);
		free(gone);
		if (notify_changes(m, j, true) == -1)
			return -1;
		tagged(j, "OK %sEXPUNGE completed", c->verb == IMAP_UID_EXPUNGE ? "UID " : "");
		return 0;
	}
	free(gone);
	return 0;
}

static int
exec_search(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_selected *sel = s->sel;
	struct imap_cmd *c = &j->cmd;
	struct store_fetch_row *rows = NULL;
	struct imap_search_msg *msgs = NULL;
	uint32_t *hits = NULL, *all = NULL, maxuid = sel_max_uid(sel);
	size_t nrows = 0, i, nhits = 0;
	uint64_t maxmodseq = 0;
	bool sort = c->verb == IMAP_SORT, want_modseq = imap_search_has_modseq(c->search);
	int rc;

	if (want_modseq)
		s->condstore = true;
	if (sel->n > 0 && (all = malloc(sel->n * sizeof(uint32_t))) == NULL) {
		tagged(j, "NO [SERVERBUG] Out of memory");
		return 0;
	}
	sel_uids(sel, 0, sel->n, all);
	rc = sel->n > 0 ? store_fetch_rows(m, s->mailbox_id, sel->folder_id, all, sel->n, false, &rows, &nrows) :
	    STORE_OK;
	free(all);
	if (rc != STORE_OK) {
		store_fail(j, rc, "SEARCH");
		return -1;
	}
	if (nrows > 0 && ((msgs = calloc(nrows, sizeof(*msgs))) == NULL ||
	    (hits = calloc(nrows, sizeof(uint32_t))) == NULL)) {
		tagged(j, "NO [SERVERBUG] Out of memory");
		goto out;
	}
	for (i = 0; i < nrows; i++) {
		struct imap_search_msg *x = &msgs[nhits];
		ssize_t at = uid_index(sel, rows[i].uid);

		if (at < 0)
			continue;
		x->seq = (uint32_t)at + 1;
		x->uid = rows[i].uid;
		x->flags = rows[i].flags;
		x->recent = rows[i].uid >= sel->recent_from;
		x->keywords = rows[i].keywords;
		x->size = rows[i].size;
		x->modseq = rows[i].modseq;
		x->internal_date = rows[i].internal_date;
		x->path = rows[i].path;
		x->index = rows[i].index;
		if (imap_search_match(c->search, x, (uint32_t)sel->n, maxuid)) {
			if (x->modseq > maxmodseq)
				maxmodseq = x->modseq;
			if (!sort)
				imap_search_msg_free(x);
			nhits++;
		} else
			imap_search_msg_free(x);
	}
	if (sort && imap_sort_msgs(msgs, nhits, c->sort, c->sort_reverse, c->nsort) == -1) {
		tagged(j, "NO [SERVERBUG] Out of memory");
		goto out;
	}
	for (i = 0; i < nhits; i++)
		hits[i] = c->uid ? msgs[i].uid : msgs[i].seq;
	if (c->esearch) {
		(void)buf_printf(&j->out, "* ESEARCH (TAG \"%s\")%s", c->tag, c->uid ? " UID" : "");
		if ((c->search_return & IMAP_SR_MIN) && nhits > 0)
			(void)buf_printf(&j->out, " MIN %u", hits[0]);
		if ((c->search_return & IMAP_SR_MAX) && nhits > 0)
			(void)buf_printf(&j->out, " MAX %u", hits[nhits - 1]);
		if (c->search_return & IMAP_SR_COUNT)
			(void)buf_printf(&j->out, " COUNT %zu", nhits);
		if ((c->search_return & IMAP_SR_ALL) && nhits > 0) {
			(void)buf_puts(&j->out, " ALL ");
			(void)put_set(&j->out, hits, nhits);
		}
		if (want_modseq && nhits > 0)
			(void)buf_printf(&j->out, " MODSEQ %" PRIu64, maxmodseq);
		(void)buf_puts(&j->out, "\r\n");
	} else {
		(void)buf_puts(&j->out, sort ? "* SORT" : "* SEARCH");
		for (i = 0; i < nhits; i++)
			(void)buf_printf(&j->out, " %u", hits[i]);
		if (want_modseq && nhits > 0)
			(void)buf_printf(&j->out, " (MODSEQ %" PRIu64 ")", maxmodseq);
		(void)buf_puts(&j->out, "\r\n");
	}
	if (c->uid && notify_changes(m, j, true) == -1) {
		rc = -1;
		goto out;
	}
	tagged(j, "OK %s%s completed", c->uid ? "UID " : "", sort ? "SORT" : "SEARCH");
out:
	if (msgs)
		for (i = 0; i < nrows; i++)
			imap_search_msg_free(&msgs[i]);
	free(msgs);
	free(hits);
	store_fetch_rows_free(rows, nrows);
	return 0;
}

static int
exec_quota(MYSQL *m, struct imap_job *j)
{
	struct imap_cmd *c = &j->cmd;
	uint64_t used, limit, count;
	char name[STORE_NAME_MAX + 1];
	int rc;

	if ((rc = store_quota(m, j->s->mailbox_id, &used, &limit, &count)) != STORE_OK) {
		store_fail(j, rc, "GETQUOTA");
		return -1;
	}
	if (c->verb == IMAP_GETQUOTAROOT) {
		struct store_status st;

		if (!decode_name(c->s1, name, sizeof(name)) ||
		    (rc = store_folder_status(m, j->s->mailbox_id, name, &st)) == STORE_NOTFOUND) {
			tagged(j, "NO [NONEXISTENT] No such folder");
			return 0;
		}
		(void)buf_puts(&j->out, "* QUOTAROOT ");
		(void)put_mailbox(&j->out, name);
		(void)buf_puts(&j->out, limit ? " \"\"\r\n" : "\r\n");
	} else if (*c->s1 != '\0' || limit == 0) {
		tagged(j, "NO [NONEXISTENT] No such quota root");
		return 0;
	}
	if (limit)
		(void)buf_printf(&j->out, "* QUOTA \"\" (STORAGE %" PRIu64 " %" PRIu64 ")\r\n",
		    (used + 1023) / 1024, limit / 1024);
	tagged(j, "OK %s completed", c->verb == IMAP_GETQUOTAROOT ? "GETQUOTAROOT" : "GETQUOTA");
	return 0;
}

static int
job_command(MYSQL *m, struct imap_job *j)
{
	struct imap_sess *s = j->s;
	struct imap_cmd *c = &j->cmd;
	int rc;

	switch (c->verb) {
	case IMAP_SELECT:
	case IMAP_EXAMINE:
		return exec_select(m, j);
	case IMAP_LIST:
	case IMAP_LSUB:
		return exec_list(m, j);
	case IMAP_CREATE:
	case IMAP_DELETE:
	case IMAP_RENAME:
	case IMAP_SUBSCRIBE:
	case IMAP_UNSUBSCRIBE:
	case IMAP_STATUS:
		rc = exec_mailbox_cmd(m, j);
		/* The selected folder may have gone (DELETE, RENAME). */
		if (rc == 0 && s->sel && notify_changes(m, j, true) == -1)
			rc = -1;
		return rc;
	case IMAP_APPEND:
		return exec_append(m, j);
	case IMAP_FETCH:
		return exec_fetch(m, j);
	case IMAP_STORE:
		return exec_store(m, j);
	case IMAP_COPY:
	case IMAP_MOVE:
		return exec_copy(m, j);
	case IMAP_EXPUNGE:
	case IMAP_UID_EXPUNGE:
		return exec_expunge(m, j, false);
	case IMAP_CLOSE:
		rc = exec_expunge(m, j, true);
		selected_free(s->sel);
		s->sel = NULL;
		s->state = ST_AUTH;
		tagged(j, "OK CLOSE completed");
		return rc;
	case IMAP_SEARCH:
	case IMAP_SORT:
		return exec_search(m, j);
	case IMAP_GETQUOTA:
	case IMAP_GETQUOTAROOT:
		return exec_quota(m, j);
	case IMAP_NOOP:
	case IMAP_CHECK:
		if (notify_changes(m, j, true) == -1)
			return -1;
		tagged(j, "OK %s completed", c->verb == IMAP_NOOP ? "NOOP" : "CHECK");
		return 0;
	default:
		tagged(j, "BAD Unexpected command");
		return 0;
	}
}

static int
job_run(MYSQL *m, void *arg)
{
	struct imap_job *j = arg;

	switch (j->kind) {
	case JOB_LOGIN:
		lookup_login(m, j->user, j->password, &j->login);
		explicit_bzero(j->password, sizeof(j->password));
		return j->login.tempfail ? -1 : 0;
	case JOB_SCRAM:
		lookup_scram(m, j->user, j->scram, sizeof(j->scram), &j->login);
		return j->login.tempfail ? -1 : 0;
	case JOB_POLL:
		return notify_changes(m, j, true);
	case JOB_COMMAND:
		return job_command(m, j);
	}
	return -1;
}

/* Back on the loop. */

static void
login_delay_done(struct loop_timer *t)
{
	struct imap_sess *s = t->arg;

	if (s->conn == NULL) {
		if (s->pending == 0)
			sess_free(s);
		return;
	}
	reply(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed", s->wait_tag);
	if (s->auth_fails >= IMAP_MAX_AUTH_FAILS) {
		reply(s, "* BYE Too many failed logins");
		sess_close(s);
		return;
	}
	s->in = IN_LINE;
	conn_resume_input(s->conn);
}

static void
close_now(struct loop_timer *t)
{
	struct imap_sess *s = t->arg;

	if (s->conn)
		sess_close(s);
	else if (s->pending == 0)
		sess_free(s);
}

/* End the session once the caller is done with it (a job's completion
 * still uses s after this returns). */
static void
close_soon(struct imap_sess *s)
{
	s->timer.cb = close_now;
	s->timer.arg = s;
	loop_timer_start(loop_current(), &s->timer, 0);
}

/* The one place a login is decided: the password (lookup_login), the
 * account's state, then the tenant's access rules and limits. Returns
 * false when the answer is delayed or the session ends. */
static bool
login_done(struct imap_sess *s, struct imap_job *j, int result)
{
	struct login_result *r = &j->login;
	uint64_t delay;

	if (result == -1) {
		reply(s, "%s NO [UNAVAILABLE] Temporary authentication failure, try again later", j->tag);
		return true;
	}
	if (r->ok && !r->disabled) {
		authguard_succeeded(conn_peer_addr(s->conn), j->user);
		/* The login's tenant: its access rules and limits apply now. */
		switch (conn_attribute(s->conn, r->tenant)) {
		case ACCESS_OK:
			break;
		case ACCESS_DENIED:
			reply(s, "%s NO [NOPERM] Access from your address is refused by your domain", j->tag);
			reply(s, "* BYE Access refused");
			close_soon(s);
			return false;
		case ACCESS_LIMITED:
			reply(s, "%s NO [LIMIT] Too many connections for your domain, try again later", j->tag);
			reply(s, "* BYE Connection limit reached");
			close_soon(s);
			return false;
		}
		s->state = ST_AUTH;
		s->mailbox_id = r->mailbox_id;
		s->tenant_id = r->tenant_id;
		free(s->login);
		s->login = strdup(r->address);
		conn_set_identity(s->conn, r->tenant, r->address);
		sess_log(s, LOG_LVL_INFO, "login %s", r->address);
		reply(s, "%s OK [CAPABILITY %s] Logged in", j->tag, capabilities(s));
		return true;
	}
	if (r->disabled) {
		/* The right password: saying why is safe. */
		sess_log(s, LOG_LVL_INFO, "login refused: %s suspended", r->address);
		reply(s, "%s NO [CONTACTADMIN] Login suspended for this account", j->tag);
		return true;
	}
	s->auth_fails++;
	conn_count_auth_failure(s->conn, r->tenant);
	sess_log(s, LOG_LVL_INFO, "login failed");
	/* The refusal comes after a delay: a second per failure in this
	 * session, or longer when this address (across sessions and
	 * protocols) has been failing. */
	delay = authguard_failed(conn_peer_addr(s->conn), j->user, conn_limits_exempt(s->conn), access_now());
	if (delay < 1000ULL * s->auth_fails)
		delay = 1000ULL * s->auth_fails;
	snprintf(s->wait_tag, sizeof(s->wait_tag), "%s", j->tag);
	s->timer.cb = login_delay_done;
	s->timer.arg = s;
	loop_timer_start(loop_current(), &s->timer, delay);
	return false;
}

static void idle_tick(struct loop_timer *);
static void poll_session(struct imap_sess *);

static struct idle_watch *
idle_watch_here(void)
{
	unsigned id = loop_id(loop_current());

	return id < idle_nwatches ? &idle_watches[id] : NULL;
}

static void
idle_watch_add(struct imap_sess *s)
{
	struct idle_watch *w = idle_watch_here();

	if (w == NULL || s->watched || s->sel == NULL)
		return;
	s->idle_prev = NULL;
	s->idle_next = w->head;
	if (w->head)
		w->head->idle_prev = s;
	w->head = s;
	s->watched = true;
	if (!loop_timer_armed(&w->timer) && !w->busy) {
		w->timer.cb = idle_tick;
		w->timer.arg = w;
		loop_timer_start(loop_current(), &w->timer, IMAP_IDLE_POLL_MS);
	}
}

static void
idle_watch_remove(struct imap_sess *s)
{
	struct idle_watch *w = idle_watch_here();

	if (w == NULL || !s->watched)
		return;
	if (s->idle_prev)
		s->idle_prev->idle_next = s->idle_next;
	else
		w->head = s->idle_next;
	if (s->idle_next)
		s->idle_next->idle_prev = s->idle_prev;
	s->idle_prev = s->idle_next = NULL;
	s->watched = false;
}

static int
idle_job_run(MYSQL *m, void *arg)
{
	struct idle_job *ij = arg;

	return store_folders_state(m, ij->v, ij->n) == STORE_OK ? 0 : -1;
}

static int
cmp_folder_state(const void *a, const void *b)
{
	const struct store_folder_state *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void
idle_job_done(void *arg, int result)
{
	struct idle_job *ij = arg;
	struct idle_watch *w = idle_watch_here();
	struct imap_sess *s, *next;

	if (w == NULL) {
		free(ij->v);
		free(ij);
		return;
	}
	w->busy = false;
	for (s = w->head; s != NULL && result == 0; s = next) {
		struct store_folder_state key, *f;

		next = s->idle_next;
		if (s->pending > 0 || s->sel == NULL)
			continue;
		key.id = s->sel->folder_id;
		f = bsearch(&key, ij->v, ij->n, sizeof(*ij->v), cmp_folder_state);
		if (f == NULL)
			continue;	/* joined after the query left */
		if (f->uidnext == 0 || f->uidnext != s->sel->uidnext || f->highestmodseq != s->sel->highestmodseq)
			poll_session(s);
	}
	free(ij->v);
	free(ij);
	if (w->head != NULL && !loop_timer_armed(&w->timer))
		loop_timer_start(loop_current(), &w->timer, IMAP_IDLE_POLL_MS);
}

static void
idle_tick(struct loop_timer *t)
{
	struct idle_watch *w = t->arg;
	struct idle_job *ij;
	struct imap_sess *s;
	size_t n = 0;

	for (s = w->head; s != NULL; s = s->idle_next)
		n++;
	if (n == 0)
		return;
	if ((ij = calloc(1, sizeof(*ij))) == NULL || (ij->v = calloc(n, sizeof(*ij->v))) == NULL) {
		free(ij);
		loop_timer_start(loop_current(), &w->timer, IMAP_IDLE_POLL_MS);
		return;
	}
	for (s = w->head; s != NULL; s = s->idle_next)
		if (s->pending == 0 && s->sel != NULL)
			ij->v[ij->n++].id = s->sel->folder_id;
	ij->loop = loop_current();
	if (ij->n == 0 || db_submit(idle_job_run, idle_job_done, ij) == -1) {
		free(ij->v);
		free(ij);
		loop_timer_start(loop_current(), &w->timer, IMAP_IDLE_POLL_MS);
		return;
	}
	w->busy = true;
}

static int job_run(MYSQL *, void *);
static void job_done(void *, int);
static void after_scram_lookup(struct imap_sess *, struct imap_job *, int);

/* The client has read most of a FETCH batch: send the next. */
static void
imap_drained(struct conn *conn)
{
	struct imap_sess *s = conn_proto(conn);
	struct imap_job *j;

	if (s == NULL || (j = s->cont) == NULL)
		return;
	s->cont = NULL;
	fetch_continue(s, j);
}

/* Submit the next FETCH batch (the session stays busy meanwhile). */
static void
fetch_continue(struct imap_sess *s, struct imap_job *j)
{
	if (conn_output_pending(s->conn) > IMAP_OUT_HIGH) {
		s->cont = j;
		conn_want_drained(s->conn);
		return;
	}
	if (db_submit(job_run, job_done, j) == -1) {
		s->pending--;
		s->in = IN_LINE;
		reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later", j->cmd.tag);
		job_free(j);
		conn_resume_input(s->conn);
	}
}

static void
job_done(void *arg, int result)
{
	struct imap_job *j = arg;
	struct imap_sess *s = j->s;
	bool resume = true;

	s->pending--;
	if (s->conn == NULL) {
		if (s->pending == 0 && !loop_timer_armed(&s->timer))
			sess_free(s);
		job_free(j);
		return;
	}
	if (buf_len(&j->out) > 0)
		(void)conn_write(s->conn, buf_data(&j->out), buf_len(&j->out));
	switch (j->kind) {
	case JOB_LOGIN:
		s->in = IN_LINE;
		if (!login_done(s, j, result)) {
			s->in = IN_WAIT;
			resume = false;
		}
		break;
	case JOB_SCRAM:
		s->in = IN_LINE;
		after_scram_lookup(s, j, result);
		break;
	case JOB_POLL:
		if (s->in == IN_IDLE) {
			if (s->idle_done) {
				s->idle_done = false;
				s->in = IN_LINE;
				reply(s, "%s OK IDLE terminated", s->wait_tag);
			}
		}
		break;
	case JOB_COMMAND:
		if (j->more && result == 0) {
			/* The next batch once the client has read most of this one. */
			buf_reset(&j->out);
			s->pending++;
			fetch_continue(s, j);
			return;
		}
		s->in = IN_LINE;
		if (!j->tagged)
			reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later", j->cmd.tag);
		if (result == -1)
			sess_log(s, LOG_LVL_WARN, "%s failed: store unavailable", j->cmd.tag);
		break;
	}
	if (j->close_after) {
		sess_close(s);
		resume = false;
	}
	job_free(j);
	if (resume)
		conn_resume_input(s->conn);
}

static void
submit(struct imap_sess *s, struct imap_job *j)
{
	j->s = s;
	if (j->kind != JOB_POLL) {
		s->in = IN_WAIT;
		conn_pause_input(s->conn);
	}
	if (db_submit(job_run, job_done, j) == -1) {
		if (j->kind == JOB_COMMAND)
			reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later", j->cmd.tag);
		else if (j->kind == JOB_LOGIN || j->kind == JOB_SCRAM)
			reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later", j->tag);
		if (j->kind == JOB_SCRAM) {
			sasl_scram_free(s->scram);
			s->scram = NULL;
		}
		if (j->kind != JOB_POLL) {
			s->in = IN_LINE;
			conn_resume_input(s->conn);
		}
		job_free(j);
		return;
	}
	s->pending++;
}

/* Fetch what changed in an IDLE session's folder. */
static void
poll_session(struct imap_sess *s)
{
	struct imap_job *j;

	if (s->conn == NULL || s->in != IN_IDLE || s->pending > 0)
		return;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->kind = JOB_POLL;
	buf_init(&j->out, 0);
	buf_init(&j->text, 0);
	submit(s, j);
}

/* A login job for user (JOB_LOGIN or JOB_SCRAM), unless too many failed
 * logins from this address or for this account say not now: NULL after
 * the reply. */
static struct imap_job *
login_job(struct imap_sess *s, enum job_kind kind, const char *tag, const char *user)
{
	struct imap_job *j;

	switch (authguard_check(conn_peer_addr(s->conn), user, conn_limits_exempt(s->conn), access_now())) {
	case AUTHGUARD_OK:
		break;
	case AUTHGUARD_IP_BLOCKED:
		reply(s, "%s NO [LIMIT] Too many failed logins from your address, try again later", tag);
		return NULL;
	case AUTHGUARD_ACCOUNT_BLOCKED:
		reply(s, "%s NO [LIMIT] Too many failed logins for this account, try again later", tag);
		return NULL;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		reply(s, "%s NO [UNAVAILABLE] Out of memory", tag);
		return NULL;
	}
	buf_init(&j->out, 0);
	buf_init(&j->text, 0);
	j->kind = kind;
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	snprintf(j->user, sizeof(j->user), "%s", user);
	return j;
}

static void
start_login(struct imap_sess *s, const char *tag, const char *user, const char *pass)
{
	struct imap_job *j;

	if ((j = login_job(s, JOB_LOGIN, tag, user)) == NULL)
		return;
	snprintf(j->password, sizeof(j->password), "%s", pass);
	submit(s, j);
}

/* PLAIN: [authzid] NUL authcid NUL password, base64. */
static void
auth_plain(struct imap_sess *s, const char *tag, const char *b64)
{
	gnutls_datum_t src = { (unsigned char *)b64, (unsigned)strlen(b64) }, dst = { NULL, 0 };
	const char *authz, *user, *pass;
	char raw[1400];
	size_t n;

	if (strcmp(b64, "*") == 0) {
		reply(s, "%s BAD Authentication cancelled", tag);
		return;
	}
	if (*b64 == '\0' || strcmp(b64, "=") == 0 || gnutls_base64_decode2(&src, &dst) != 0 ||
	    dst.size >= sizeof(raw)) {
		if (dst.data) {
			explicit_bzero(dst.data, dst.size);
			gnutls_free(dst.data);
		}
		reply(s, "%s BAD Cannot decode the PLAIN response", tag);
		return;
	}
	memcpy(raw, dst.data, dst.size);
	n = dst.size;
	raw[n] = '\0';
	explicit_bzero(dst.data, dst.size);
	gnutls_free(dst.data);
	authz = raw;
	user = memchr(raw, '\0', n);
	pass = user ? memchr(user + 1, '\0', n - (size_t)(user + 1 - raw)) : NULL;
	if (user == NULL || pass == NULL || (*authz && strcmp(authz, user + 1) != 0)) {
		explicit_bzero(raw, sizeof(raw));
		reply(s, "%s BAD Malformed PLAIN response", tag);
		return;
	}
	start_login(s, tag, user + 1, pass + 1);
	explicit_bzero(raw, sizeof(raw));
}

static void
scram_abort(struct imap_sess *s, const char *tag, const char *text)
{
	sasl_scram_free(s->scram);
	s->scram = NULL;
	s->in = IN_LINE;
	reply(s, "%s %s", tag, text);
}

/* The exchange's outcome goes the way a checked password does, so the
 * delays, the account's state and the tenant's rules stay in login_done. */
static void
scram_login(struct imap_sess *s, const char *tag)
{
	struct imap_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		scram_abort(s, tag, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	buf_init(&j->out, 0);
	buf_init(&j->text, 0);
	j->kind = JOB_LOGIN;
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	snprintf(j->user, sizeof(j->user), "%s", sasl_scram_user(s->scram));
	sasl_scram_result(s->scram, &j->login);
	sasl_scram_free(s->scram);
	s->scram = NULL;
	s->in = IN_LINE;
	if (!login_done(s, j, 0)) {
		s->in = IN_WAIT;
		conn_pause_input(s->conn);
	}
	job_free(j);
}

/* A challenge, as a continuation: our signature too, since RFC 3501 has
 * no room for it in the OK. */
static void
scram_challenge(struct imap_sess *s, const char *tag, const struct buf *out)
{
	if (tag != s->wait_tag)	/* the next step's tag is already there */
		snprintf(s->wait_tag, sizeof(s->wait_tag), "%s", tag);
	s->in = IN_AUTH;
	reply(s, "+ %.*s", (int)buf_len(out), buf_data(out));
}

/* The client's next SCRAM response. */
static void
scram_step(struct imap_sess *s, const char *tag, const char *b64)
{
	struct imap_job *j;
	struct buf out;

	buf_init(&out, 0);
	switch (sasl_scram_step(s->scram, b64, strlen(b64), &out)) {
	case SASL_SCRAM_MALFORMED:
		scram_abort(s, tag, "BAD Malformed SCRAM message");
		break;
	case SASL_SCRAM_CANCELLED:
		scram_abort(s, tag, "BAD Authentication cancelled");
		break;
	case SASL_SCRAM_LOOKUP:
		if ((j = login_job(s, JOB_SCRAM, tag, sasl_scram_user(s->scram))) == NULL) {
			sasl_scram_free(s->scram);
			s->scram = NULL;
		} else
			submit(s, j);
		break;
	case SASL_SCRAM_CHALLENGE:
		scram_challenge(s, tag, &out);
		break;
	case SASL_SCRAM_DONE:
		scram_login(s, tag);
		break;
	}
	buf_free(&out);
}

/* The keys, or none: an unknown user goes on and fails at the proof. */
static void
after_scram_lookup(struct imap_sess *s, struct imap_job *j, int result)
{
	struct buf out;

	buf_init(&out, 0);
	if (result == -1 || sasl_scram_keys(s->scram, j->scram, &j->login, &out) == -1)
		scram_abort(s, j->tag, "NO [UNAVAILABLE] Temporary authentication failure, try again later");
	else
		scram_challenge(s, j->tag, &out);
	buf_free(&out);
}

static bool
allowed_in_state(struct imap_sess *s, enum imap_verb v)
{
	switch (v) {
	case IMAP_CAPABILITY: case IMAP_NOOP: case IMAP_LOGOUT: case IMAP_ID:
		return true;
	case IMAP_STARTTLS: case IMAP_AUTHENTICATE: case IMAP_LOGIN:
		return s->state == ST_NOAUTH;
	case IMAP_CHECK: case IMAP_CLOSE: case IMAP_EXPUNGE: case IMAP_UID_EXPUNGE: case IMAP_SEARCH:
	case IMAP_FETCH: case IMAP_STORE: case IMAP_COPY: case IMAP_MOVE: case IMAP_UNSELECT: case IMAP_SORT:
		return s->state == ST_SELECTED;
	default:
		return s->state != ST_NOAUTH;
	}
}

static void
bad(struct imap_sess *s, const char *tag, const char *why)
{
	reply(s, "%s BAD %s", tag && *tag ? tag : "*", why);
	if (++s->errors >= IMAP_MAX_ERRORS) {
		reply(s, "* BYE Too many errors");
		sess_close(s);
	}
}

/* A complete command in s->cmd. */
static void
command(struct imap_sess *s)
{
	struct imap_job *j;
	struct imap_cmd *c;
	char err[256];

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		buf_free(&s->cmd);
		reply(s, "* BYE Out of memory");
		sess_close(s);
		return;
	}
	j->kind = JOB_COMMAND;
	j->text = s->cmd;		/* the job owns the text now */
	buf_init(&s->cmd, 0);
	buf_init(&j->out, 0);
	c = &j->cmd;
	if (imap_parse_command(buf_data(&j->text) ? buf_data(&j->text) : "", buf_len(&j->text), c, err,
	    sizeof(err)) == -1) {
		/* An unknown charset is a refusal, not a syntax error (RFC 3501 6.4.4). */
		if (strncmp(err, "[BADCHARSET", 11) == 0)
			reply(s, "%s NO %s", c->tag, err);
		else
			bad(s, c->tag, err);
		job_free(j);
		return;
	}
	if (!allowed_in_state(s, c->verb)) {
		bad(s, c->tag, s->state == ST_NOAUTH ? "Log in first" :
		    s->state == ST_AUTH ? (c->verb == IMAP_LOGIN || c->verb == IMAP_AUTHENTICATE ||
		    c->verb == IMAP_STARTTLS ? "Already logged in" : "Select a folder first") :
		    "Already logged in");
		job_free(j);
		return;
	}
	switch (c->verb) {
	case IMAP_CAPABILITY:
		reply(s, "* CAPABILITY %s", capabilities(s));
		reply(s, "%s OK CAPABILITY completed", c->tag);
		break;
	case IMAP_NOOP:
	case IMAP_CHECK:
		if (s->sel) {
			submit(s, j);
			return;
		}
		reply(s, "%s OK %s completed", c->tag, c->verb == IMAP_NOOP ? "NOOP" : "CHECK");
		break;
	case IMAP_LOGOUT:
		reply(s, "* BYE Logging out");
		reply(s, "%s OK LOGOUT completed", c->tag);
		sess_close(s);
		break;
	case IMAP_ID:
		reply(s, "* ID (\"name\" \"mailnode\")");
		reply(s, "%s OK ID completed", c->tag);
		break;
	case IMAP_STARTTLS:
		if (conn_tls_active(s->conn) || !conn_tls_available(s->conn)) {
			bad(s, c->tag, "TLS is already active or not available");
			break;
		}
		reply(s, "%s OK Begin TLS negotiation now", c->tag);
		(void)conn_starttls(s->conn);
		break;
	case IMAP_LOGIN:
		if (!plaintext_ok(s)) {
			reply(s, "%s NO [PRIVACYREQUIRED] Use STARTTLS before logging in", c->tag);
			break;
		}
		start_login(s, c->tag, c->s1, c->s2);
		explicit_bzero(c->s2, strlen(c->s2));
		break;
	case IMAP_AUTHENTICATE: {
		bool scram = strcasecmp(c->s1, "SCRAM-SHA-256") == 0;

		if (!scram && strcasecmp(c->s1, "PLAIN") != 0) {
			reply(s, "%s NO [CANNOT] Unsupported authentication mechanism", c->tag);
			break;
		}
		/* SCRAM sends no password, but the mail after the login would
		 * go in clear: the same rule as PLAIN. */
		if (!plaintext_ok(s)) {
			reply(s, "%s NO [PRIVACYREQUIRED] Use STARTTLS before logging in", c->tag);
			break;
		}
		if (scram && (s->scram = sasl_scram_new()) == NULL) {
			reply(s, "%s NO [UNAVAILABLE] Out of memory", c->tag);
			break;
		}
		if (c->s2_given) {
			if (scram)
				scram_step(s, c->tag, c->s2);
			else
				auth_plain(s, c->tag, c->s2);
			explicit_bzero(c->s2, strlen(c->s2));
			break;
		}
		snprintf(s->wait_tag, sizeof(s->wait_tag), "%s", c->tag);
		s->in = IN_AUTH;
		reply(s, "+ ");
		break;
	}
	case IMAP_ENABLE: {
		size_t i;
		bool cs = false;

		for (i = 0; i < c->natoms; i++)
			if (strcasecmp(c->atoms[i], "CONDSTORE") == 0)
				cs = true;
		if (cs)
			s->condstore = true;
		reply(s, "* ENABLED%s", cs ? " CONDSTORE" : "");
		reply(s, "%s OK ENABLE completed", c->tag);
		break;
	}
	case IMAP_NAMESPACE:
		reply(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
		reply(s, "%s OK NAMESPACE completed", c->tag);
		break;
	case IMAP_UNSELECT:
		selected_free(s->sel);
		s->sel = NULL;
		s->state = ST_AUTH;
		reply(s, "%s OK UNSELECT completed", c->tag);
		break;
	case IMAP_SETQUOTA:
		reply(s, "%s NO [NOPERM] Quotas are set by the provider", c->tag);
		break;
	case IMAP_IDLE:
		snprintf(s->wait_tag, sizeof(s->wait_tag), "%s", c->tag);
		s->in = IN_IDLE;
		s->idle_done = false;
		reply(s, "+ idling");
		idle_watch_add(s);
		break;
	default:
		submit(s, j);
		return;
	}
	job_free(j);
}

/* The tag of a command being assembled, for replies before it is parsed. */
static void
pending_tag(struct imap_sess *s, char *tag, size_t len)
{
	const char *p = buf_data(&s->cmd);
	size_t n = 0;

	while (p && n < buf_len(&s->cmd) && n + 1 < len && imap_is_atom_char((unsigned char)p[n]))
		n++;
	if (n == 0) {
		snprintf(tag, len, "*");
		return;
	}
	memcpy(tag, p, n);
	tag[n] = '\0';
}

static bool
is_append(const struct buf *cmd)
{
	const char *p = buf_data(cmd), *sp;
	size_t len = buf_len(cmd);

	if (p == NULL || (sp = memchr(p, ' ', len)) == NULL)
		return false;
	len -= (size_t)(sp + 1 - p);
	return len > 7 && strncasecmp(sp + 1, "APPEND ", 7) == 0;
}

static void
auth_line(struct imap_sess *s, const char *line)
{
	s->in = IN_LINE;
	if (s->scram)
		scram_step(s, s->wait_tag, line);
	else
		auth_plain(s, s->wait_tag, line);
}

static void
idle_line(struct imap_sess *s, const char *line)
{
	idle_watch_remove(s);
	if (strcasecmp(line, "DONE") != 0) {
		s->in = IN_LINE;
		bad(s, s->wait_tag, "Expected DONE");
		return;
	}
	if (s->pending > 0) {
		s->idle_done = true;	/* answered when the poll in flight returns */
		return;
	}
	s->in = IN_LINE;
	reply(s, "%s OK IDLE terminated", s->wait_tag);
}

static void
imap_input(struct conn *conn)
{
	struct imap_sess *s = conn_proto(conn);
	struct buf *in = conn_input(conn);
	size_t eol, len;

	while (s->conn != NULL && !s->closing) {
		if (s->in == IN_WAIT || (s->in == IN_IDLE && s->idle_done))
			return;
		if (s->in == IN_LITERAL) {
			size_t take = buf_len(in) < s->literal_left ? buf_len(in) : (size_t)s->literal_left;

			if (take == 0)
				return;
			if (!s->literal_discard && buf_append(&s->cmd, buf_data(in), take) == -1) {
				s->literal_discard = true;
				s->cmd_too_big = true;
			}
			buf_consume(in, take);
			s->literal_left -= take;
			if (s->literal_left > 0)
				return;
			s->in = IN_LINE;
			continue;
		}
		len = buf_line(in, &eol);
		if (eol == 0) {
			if (buf_len(in) >= in->max) {
				buf_consume(in, buf_len(in));
				if (!s->skip_line)
					bad(s, "*", "[TOOBIG] Command line too long");
				s->skip_line = true;
				buf_free(&s->cmd);
				buf_init(&s->cmd, 0);
			}
			return;
		}
		if (s->skip_line) {
			s->skip_line = false;
			buf_consume(in, eol);
			continue;
		}
		if (s->in == IN_AUTH || s->in == IN_IDLE) {
			char line[IMAP_AUTH_LINE_MAX];

			if (len >= sizeof(line)) {
				buf_consume(in, eol);
				if (s->in == IN_AUTH) {
					s->in = IN_LINE;
					sasl_scram_free(s->scram);
					s->scram = NULL;
					bad(s, s->wait_tag, "Response too long");
				} else
					idle_line(s, "");
				continue;
			}
			memcpy(line, buf_data(in), len);
			line[len] = '\0';
			buf_consume(in, eol);
			if (s->in == IN_AUTH)
				auth_line(s, line);
			else
				idle_line(s, line);
			explicit_bzero(line, sizeof(line));
			continue;
		}
		/* One job at a time: the next command waits for the one in flight. */
		if (s->pending > 0 && buf_len(&s->cmd) == 0)
			return;
		/* A command line, or the rest of one after a literal. */
		{
			uint64_t n = 0;
			bool nonsync = false;
			int lit;
			size_t limit;

			if (!s->cmd_too_big && (buf_len(&s->cmd) + len > IMAP_APPEND_MAX + IMAP_LINE_MAX ||
			    buf_append(&s->cmd, buf_data(in), len) == -1))
				s->cmd_too_big = true;
			lit = imap_literal_announced(buf_data(in), len, &n, &nonsync);
			buf_consume(in, eol);
			if (lit != 0) {
				limit = is_append(&s->cmd) ? IMAP_APPEND_MAX : IMAP_LITERAL_MAX;
				/* Many literals in one command add up: bounded too. */
				if (!is_append(&s->cmd) && buf_len(&s->cmd) + n > IMAP_COMMAND_MAX)
					s->cmd_too_big = true;
				if (lit == -1 || n > limit || s->cmd_too_big) {
					char tag[IMAP_TAG_MAX + 1];

					pending_tag(s, tag, sizeof(tag));
					if (!nonsync) {
						/* The client waits for "+": it sends nothing more. */
						buf_free(&s->cmd);
						buf_init(&s->cmd, 0);
						s->cmd_too_big = false;
						reply(s, "%s NO [TOOBIG] Literal too large", tag);
						continue;
					}
					if (lit == -1) {
						reply(s, "* BYE [TOOBIG] Literal too large");
						sess_close(s);
						return;
					}
					s->cmd_too_big = true;
					s->literal_discard = true;
				} else if (buf_append(&s->cmd, "\r\n", 2) == -1) {
					s->cmd_too_big = true;
					s->literal_discard = true;
				} else if (!nonsync)
					reply(s, "+ Ready for literal data");
				s->literal_left = n;
				s->in = IN_LITERAL;
				continue;
			}
			if (s->cmd_too_big) {
				char tag[IMAP_TAG_MAX + 1];

				pending_tag(s, tag, sizeof(tag));
				buf_free(&s->cmd);
				buf_init(&s->cmd, 0);
				s->cmd_too_big = false;
				s->literal_discard = false;
				reply(s, "%s NO [TOOBIG] Command too large", tag);
				continue;
			}
			s->literal_discard = false;
			command(s);
		}
	}
}

static int
imap_open(struct conn *conn)
{
	struct imap_sess *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		(void)conn_printf(conn, "* BYE Service not available\r\n");
		return -1;
	}
	s->conn = conn;
	s->state = ST_NOAUTH;
	s->in = IN_LINE;
	buf_init(&s->cmd, 0);
	conn_set_proto(conn, s);
	return conn_printf(conn, "* OK [CAPABILITY %s] mailnode IMAP ready\r\n", capabilities(s));
}

static void
imap_tls_ready(struct conn *conn)
{
	(void)conn;
}

static void
imap_goodbye(struct conn *conn, bool idle)
{
	if (idle)
		(void)conn_printf(conn, "* BYE Autologout; idle for too long\r\n");
	else
		(void)conn_printf(conn, "* BYE Server shutting down\r\n");
}

static void
imap_close(struct conn *conn)
{
	struct imap_sess *s = conn_proto(conn);

	if (s == NULL)
		return;
	s->conn = NULL;
	idle_watch_remove(s);
	if (loop_timer_armed(&s->timer))
		loop_timer_stop(loop_current(), &s->timer);
	if (s->cont) {
		/* A FETCH waiting for the client to read: it never will. */
		job_free(s->cont);
		s->cont = NULL;
		s->pending--;
	}
	/* A job still holds it: it is freed when the job answers. */
	if (s->pending == 0)
		sess_free(s);
}

static const struct conn_ops imap_ops = {
	.open = imap_open,
	.input = imap_input,
	.tls_ready = imap_tls_ready,
	.goodbye = imap_goodbye,
	.close = imap_close,
	.drained = imap_drained,
	.busy_reply = "* BYE Too many connections, try again later\r\n",
	.deny_reply = "* BYE [NOPERM] Access from your address is refused\r\n",
	.limit_reply = "* BYE [LIMIT] Too many connections from your address, try again later\r\n",
	.max_input = IMAP_LINE_MAX + 2,
};

static int
imap_start(struct service *s, char *err, size_t errlen)
{
	bool implicit = s->def->tls == SERVICE_TLS_IMPLICIT;

	if (implicit && imap_tls == NULL) {
		snprintf(err, errlen, "no TLS certificate for %s", s->def->name);
		return -1;
	}
	/* Kept for the node's life (both services share it). */
	if (idle_watches == NULL) {
		if ((idle_watches = calloc(loops_count(), sizeof(*idle_watches))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		idle_nwatches = loops_count();
	}
	s->impl = conn_listen(s, &imap_ops, imap_tls, implicit, err, errlen);
	return s->impl ? 0 : -1;
}

static void
imap_stop(struct service *s, bool drain)
{
	conn_listener_stop(s->impl, drain);
	s->impl = NULL;
}

const struct service_handler imap_service = {
	.start = imap_start,
	.stop = imap_stop,
	.reconfigure = NULL,
};
