/* autoreply: decide from the envelope sender, the mailbox's spec and the
 * original's header whether a reply is due, record it in autoreply_log
 * (the unique key makes two nodes or a replay after a crash agree), then
 * compose it and queue it with the null reverse-path through bounce_send.
 * The record comes first: a crash in between loses one reply rather than
 * sending two, which is what RFC 3834 prefers. */
#include "autoreply.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "bounce.h"
#include "imap_search.h"
#include "log.h"
#include "utf8.h"

#define ADDR_MAX	320		/* RFC 5321 path limits, roughly */
#define MAX_ALIASES	1000
#define MAX_DOMAIN_ALIASES 100
#define MAX_REFS	20		/* ids kept in References */
#define SUBJECT_RAW_MAX	900		/* longer subjects are folded as encoded words */
#define QP_LINE		76

bool
autoreply_sender_ok(const char *sender)
{
	static const char *const never[] = { "mailer-daemon", "noreply", "no-reply", "do-not-reply",
	    "donotreply" };
	char local[ADDR_MAX + 1];
	const char *at, *p;
	size_t n, i;

	if (sender == NULL || *sender == '\0' || strlen(sender) > ADDR_MAX)
		return false;
	/* It goes into To: as is, so nothing that would need quoting there. */
	for (p = sender; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("<>\"\\,;()", *p))
			return false;
	if ((at = strrchr(sender, '@')) == NULL || at == sender || at[1] == '\0')
		return false;
	n = (size_t)(at - sender);
	for (i = 0; i < n; i++)
		local[i] = (char)tolower((unsigned char)sender[i]);
	local[n] = '\0';
	for (i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (strcmp(local, never[i]) == 0)
			return false;
	/* List software's addresses (RFC 3834 2). */
	if (strncmp(local, "owner-", 6) == 0)
		return false;
	if ((n >= 8 && strcmp(local + n - 8, "-request") == 0) ||
	    (n >= 8 && strcmp(local + n - 8, "-bounces") == 0))
		return false;
	return true;
}

static int
digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int
autoreply_time(const char *s, time_t *out)
{
	int y, mo, d, h, mi, se, oh, om;
	struct tm tm;
	const char *p;
	long off = 0;

	if (s == NULL || strnlen(s, 20) < 20)
		return -1;
	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &se))
		return -1;
	p = s + 19;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		off = (long)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else
		return -1;
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	*out = timegm(&tm) - off;
	return 0;
}

static bool
is_one_of(const char *s, const char *const *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

/* Does an address list (RFC 5322 3.4, unfolded) name one of addrs? Each
 * addr-spec is taken without display name, comments, quotes or route,
 * lower case; one longer than ADDR_MAX never matches. */
static bool
list_names(const char *s, size_t len, const char *const *addrs, size_t naddrs)
{
	char cur[ADDR_MAX + 1];
	size_t i, n = 0;
	unsigned depth = 0;
	bool inq = false, angle = false, closed = false, over = false;

	for (i = 0; i <= len; i++) {
		char c = i < len ? s[i] : ',';

		if (inq) {
			if (c == '\\' && i + 1 < len)
				c = s[++i];
			else if (c == '"') {
				inq = false;
				continue;
			}
			goto add;
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			if (i == len)
				break;
			continue;
		}
		switch (c) {
		case '"':
			inq = true;
			continue;
		case '(':
			depth = 1;
			continue;
		case '<':
			/* What came before was a display name. */
			angle = true;
			closed = false;
			n = 0;
			over = false;
			continue;
		case '>':
			angle = false;
			closed = true;
			continue;
		case ':':
			/* A group's name, or the end of a route inside <>. */
			n = 0;
			over = false;
			continue;
		case ',':
			if (angle) {	/* route: <@a,@b:user@host> */
				n = 0;
				continue;
			}
			/* FALLTHROUGH */
		case ';':
			if (n > 0 && !over) {
				cur[n] = '\0';
				if (is_one_of(cur, addrs, naddrs))
					return true;
			}
			n = 0;
			over = closed = angle = false;
			continue;
		case ' ':
		case '\t':
		case '\r':
		case '\n':
		case '\0':
			continue;
		default:
			break;
		}
add:
		if (closed || c == '\0')
			continue;
		if (n >= ADDR_MAX) {
			over = true;
			continue;
		}
		cur[n++] = (char)tolower((unsigned char)c);
	}
	return false;
}

/* The msg-id starting at or after s[*i] ("<left@right>"), into out; false
 * when there is none. Characters outside visible ASCII make it no id. */
static bool
next_msgid(const char *s, size_t len, size_t *i, char *out, size_t outlen)
{
	while (*i < len) {
		const char *lt = memchr(s + *i, '<', len - *i), *gt;
		size_t k, n;
		bool ok = true, at = false;

		if (lt == NULL)
			break;
		gt = memchr(lt, '>', len - (size_t)(lt - s));
		if (gt == NULL)
			break;
		*i = (size_t)(gt - s) + 1;
		n = (size_t)(gt - lt) + 1;
		if (n < 3 || n > AUTOREPLY_MSGID_MAX + 2 || n >= outlen)
			continue;
		for (k = 1; k + 1 < n; k++) {
			unsigned char c = (unsigned char)lt[k];

			if (c <= 0x20 || c >= 0x7f || c == '<' || c == '"' || c == '\\')
				ok = false;
			if (c == '@')
				at = true;
		}
		if (!ok || !at)
			continue;
		memcpy(out, lt, n);
		out[n] = '\0';
		return true;
	}
	return false;
}

/* The first word of a field value, lower case ("auto-replied (x)" -> "auto-replied"). */
static void
first_word(const struct buf *v, char *out, size_t outlen)
{
	const char *s = buf_data(v);
	size_t i, n = 0, len = buf_len(v);

	for (i = 0; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	for (; i < len && n + 1 < outlen; i++) {
		char c = s[i];

		if (c == ';' || c == '(' || c == ' ' || c == '\t' || c == ',')
			break;
		out[n++] = (char)tolower((unsigned char)c);
	}
	out[n] = '\0';
}

static int
references(const char *hdr, size_t hlen, struct buf *v, struct autoreply_original *o)
{
	char id[AUTOREPLY_MSGID_MAX + 3];
	size_t i = 0, count = 0, skip, k = 0;
	bool have = imap_header_get(hdr, hlen, "References", v) == 0;

	if (!have) {
		/* No References: the parent's single In-Reply-To id (RFC 5322 3.6.4). */
		if (imap_header_get(hdr, hlen, "In-Reply-To", v) == 0 &&
		    next_msgid(buf_data(v), buf_len(v), &i, id, sizeof(id)) &&
		    buf_printf(&o->references, "%s", id) == -1)
			return -1;
	} else {
		while (next_msgid(buf_data(v), buf_len(v), &i, id, sizeof(id)))
			count++;
		skip = count > MAX_REFS - 1 ? count - (MAX_REFS - 1) : 0;
		i = 0;
		while (next_msgid(buf_data(v), buf_len(v), &i, id, sizeof(id)))
			if (k++ >= skip && buf_printf(&o->references, "%s%s",
			    buf_len(&o->references) ? " " : "", id) == -1)
				return -1;
	}
	if (o->message_id[0] != '\0' && buf_printf(&o->references, "%s%s",
	    buf_len(&o->references) ? " " : "", o->message_id) == -1)
		return -1;
	return 0;
}

int
autoreply_inspect(const char *msg, size_t len, const char *const *addrs, size_t naddrs,
    struct autoreply_original *o)
{
	static const char *const list_fields[] = { "List-Id", "List-Unsubscribe", "List-Post" };
	struct buf v;
	char word[32];
	size_t hlen, i = 0;
	int rc = -1;

	memset(o, 0, sizeof(*o));
	buf_init(&o->references, 0);
	buf_init(&v, 0);
	if (len > AUTOREPLY_HEADER_MAX)
		len = AUTOREPLY_HEADER_MAX;
	hlen = imap_header_len(msg, len);

	if (imap_header_get(msg, hlen, "Auto-Submitted", &v) == 0) {
		first_word(&v, word, sizeof(word));
		if (strcmp(word, "no") != 0)
			o->suppress = "the message is automatic (Auto-Submitted)";
	}
	if (o->suppress == NULL && imap_header_get(msg, hlen, "Precedence", &v) == 0) {
		first_word(&v, word, sizeof(word));
		if (strcmp(word, "bulk") == 0 || strcmp(word, "list") == 0 || strcmp(word, "junk") == 0)
			o->suppress = "the message is bulk or list mail (Precedence)";
	}
	for (i = 0; o->suppress == NULL && i < sizeof(list_fields) / sizeof(list_fields[0]); i++)
		if (imap_header_get(msg, hlen, list_fields[i], &v) == 0)
			o->suppress = "the message comes from a mailing list";
	/* Microsoft's way of asking for no out-of-office replies. */
	if (o->suppress == NULL && imap_header_get(msg, hlen, "X-Auto-Response-Suppress", &v) == 0 &&
	    (strcasestr(buf_cstr(&v), "all") != NULL || strcasestr(buf_cstr(&v), "oof") != NULL))
		o->suppress = "the sender asked for none (X-Auto-Response-Suppress)";

	if (imap_header_get(msg, hlen, "To", &v) == 0 &&
	    list_names(buf_data(&v), buf_len(&v), addrs, naddrs))
		o->addressed = true;
	if (!o->addressed && imap_header_get(msg, hlen, "Cc", &v) == 0 &&
	    list_names(buf_data(&v), buf_len(&v), addrs, naddrs))
		o->addressed = true;

	i = 0;
	if (imap_header_get(msg, hlen, "Message-ID", &v) == 0 &&
	    !next_msgid(buf_data(&v), buf_len(&v), &i, o->message_id, sizeof(o->message_id)))
		o->message_id[0] = '\0';
	if (references(msg, hlen, &v, o) == -1)
		goto out;
	rc = 0;
out:
	buf_free(&v);
	return rc;
}

void
autoreply_original_free(struct autoreply_original *o)
{
	buf_free(&o->references);
}

static int
base64(struct buf *out, const unsigned char *p, size_t n)
{
	gnutls_datum_t in = { (unsigned char *)p, (unsigned)n }, res = { NULL, 0 };
	int rc;

	if (gnutls_base64_encode2(&in, &res) != 0)
		return -1;
	rc = buf_append(out, res.data, res.size);
	gnutls_free(res.data);
	return rc;
}

/* The subject as header text: as is when it is short printable ASCII,
 * otherwise RFC 2047 encoded words (45 bytes each: 72 columns), never
 * splitting a UTF-8 character, on folded lines. Line breaks and other
 * controls become spaces so that nothing can be injected. */
static int
put_subject(struct buf *out, const char *subject)
{
	unsigned char *s;
	size_t i, n = strlen(subject), start, chunk;
	bool ascii = n <= SUBJECT_RAW_MAX;
	int rc = -1;

	if ((s = (unsigned char *)strdup(subject)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
		if (s[i] >= 0x80)
			ascii = false;
	}
	if (ascii) {
		rc = buf_printf(out, "Subject: %s\r\n", (char *)s);
		goto out;
	}
	if (buf_puts(out, "Subject:") == -1)
		goto out;
	for (start = 0; start < n; start += chunk) {
		chunk = 0;
		while (start + chunk < n) {
			size_t l = utf8_seq(s + start + chunk, n - start - chunk);

			if (l == 0)
				l = 1;	/* not UTF-8: a byte at a time */
			if (chunk + l > 45)
				break;
			chunk += l;
		}
		if (buf_puts(out, start ? "\r\n =?utf-8?B?" : " =?utf-8?B?") == -1 ||
		    base64(out, s + start, chunk) == -1 || buf_puts(out, "?=") == -1)
			goto out;
	}
	rc = buf_puts(out, "\r\n");
out:
	free(s);
	return rc;
}

/* Quoted-printable (RFC 2045 6.7) of UTF-8 text with LF or CRLF lines. */
static int
put_qp(struct buf *out, const char *body)
{
	const unsigned char *p = (const unsigned char *)body;
	size_t col = 0;

	for (; *p; p++) {
		unsigned char c = *p;
		bool eol = p[1] == '\n' || (p[1] == '\r' && p[2] == '\n') || p[1] == '\0';
		bool enc;

		if (c == '\r' && p[1] == '\n')
			continue;
		if (c == '\n') {
			if (buf_puts(out, "\r\n") == -1)
				return -1;
			col = 0;
			continue;
		}
		enc = c == '=' || c > 126 || (c < 32 && c != '\t') || ((c == ' ' || c == '\t') && eol);
		if (col + (enc ? 3 : 1) > QP_LINE - 1) {
			if (buf_puts(out, "=\r\n") == -1)
				return -1;
			col = 0;
		}
		if (enc ? buf_printf(out, "=%02X", c) == -1 : buf_append(out, &c, 1) == -1)
			return -1;
		col += enc ? 3 : 1;
	}
	return col > 0 ? buf_puts(out, "\r\n") : 0;
}

int
autoreply_compose(struct buf *out, const struct autoreply_reply *r)
{
	unsigned char rnd[12];
	char date[64], id[32];
	const char *refs, *sp;
	struct tm tm;
	size_t i, col;

	gmtime_r(&r->now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) < 0)
		return -1;
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, sizeof(id) - 2 * i, "%02x", rnd[i]);
	if (buf_printf(out, "From: <%s>\r\nTo: <%s>\r\n", r->from, r->to) == -1 ||
	    put_subject(out, r->subject) == -1 ||
	    buf_printf(out, "Date: %s\r\nMessage-ID: <%s.autoreply@%s>\r\n", date, id, r->host) == -1)
		return -1;
	if (r->orig->message_id[0] != '\0' &&
	    buf_printf(out, "In-Reply-To: %s\r\n", r->orig->message_id) == -1)
		return -1;
	refs = buf_cstr((struct buf *)&r->orig->references);
	if (*refs != '\0') {
		/* One id per folded line keeps every line short. */
		if (buf_puts(out, "References:") == -1)
			return -1;
		for (col = 0; *refs; refs = *sp ? sp + 1 : sp, col++) {
			sp = strchr(refs, ' ');
			if (sp == NULL)
				sp = refs + strlen(refs);
			if (buf_puts(out, col ? "\r\n " : " ") == -1 ||
			    buf_append(out, refs, (size_t)(sp - refs)) == -1)
				return -1;
		}
		if (buf_puts(out, "\r\n") == -1)
			return -1;
	}
	if (buf_puts(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n") == -1)
		return -1;
	return put_qp(out, r->body);
}

/*
 * The database side, on the queue runner's connection.
 */

static int
q(MYSQL *m, const char *sql)
{
	return mysql_real_query(m, sql, strlen(sql)) == 0 ? 0 : -1;
}

struct box {
	char		*address, *subject, *body, *from, *until, *domain;
	bool		 active;
	uint64_t	 tenant_id;
	char		**addrs;
	size_t		 naddrs;
};

static void
box_free(struct box *b)
{
	size_t i;

	free(b->address);
	free(b->subject);
	free(b->body);
	free(b->from);
	free(b->until);
	free(b->domain);
	for (i = 0; i < b->naddrs; i++)
		free(b->addrs[i]);
	free(b->addrs);
}

static char *
dup_or_null(const char *s, bool *fail)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*fail = true;
	return d;
}

/* The mailbox, if its autoreply is set: 1 found, 0 not, -1 error. */
static int
load_box(MYSQL *m, uint64_t id, struct box *b)
{
	char sql[1200];
	MYSQL_RES *res;
	MYSQL_ROW row;
	bool fail = false;

	snprintf(sql, sizeof(sql), "SELECT m.address, "
	    "JSON_UNQUOTE(JSON_EXTRACT(m.spec, '$.autoreply.subject')), "
	    "JSON_UNQUOTE(JSON_EXTRACT(m.spec, '$.autoreply.body')), "
	    "JSON_VALUE(m.spec, '$.autoreply.from'), JSON_VALUE(m.spec, '$.autoreply.until'), "
	    "m.state = 'active' AND t.state = 'active' "
	    "AND COALESCE(JSON_VALUE(m.spec, '$.suspend.outgoing'), 'false') <> 'true' "
	    "AND COALESCE(JSON_VALUE(t.spec, '$.suspend.outgoing'), 'false') <> 'true', "
	    "m.tenant_id, d.name FROM mailboxes m JOIN tenants t ON t.id = m.tenant_id "
	    "JOIN domains d ON d.id = m.domain_id "
	    "WHERE m.id = %" PRIu64 " AND JSON_EXTRACT(m.spec, '$.autoreply') IS NOT NULL", id);
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return -1;
	if ((row = mysql_fetch_row(res)) == NULL || row[0] == NULL || row[1] == NULL ||
	    row[2] == NULL || row[7] == NULL) {
		mysql_free_result(res);
		return 0;
	}
	b->address = dup_or_null(row[0], &fail);
	b->subject = dup_or_null(row[1], &fail);
	b->body = dup_or_null(row[2], &fail);
	b->from = dup_or_null(row[3], &fail);
	b->until = dup_or_null(row[4], &fail);
	b->active = row[5] != NULL && strcmp(row[5], "1") == 0;
	b->tenant_id = row[6] ? strtoull(row[6], NULL, 10) : 0;
	b->domain = dup_or_null(row[7], &fail);
	mysql_free_result(res);
	return fail ? -1 : 1;
}

static int
add_addr(struct box *b, const char *local, size_t llen, const char *domain)
{
	char *a, **n;
	size_t i;

	if ((n = reallocarray(b->addrs, b->naddrs + 1, sizeof(*n))) == NULL)
		return -1;
	b->addrs = n;
	if (asprintf(&a, "%.*s%s%s", (int)llen, local, domain ? "@" : "", domain ? domain : "") == -1)
		return -1;
	for (i = 0; a[i]; i++)
		a[i] = (char)tolower((unsigned char)a[i]);
	b->addrs[b->naddrs++] = a;
	return 0;
}

/* The addresses mail for the mailbox comes to: its own, the same at each
 * alias domain of its domain, and the aliases that name it. */
static int
load_addresses(MYSQL *m, struct box *b)
{
	char sql[1400], esc[700];
	const char *at = strrchr(b->address, '@');
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = 0;

	if (at == NULL || add_addr(b, b->address, strlen(b->address), NULL) == -1)
		return -1;
	mysql_real_escape_string(m, esc, b->domain, strnlen(b->domain, 300));
	snprintf(sql, sizeof(sql), "SELECT name FROM domains WHERE alias_of = '%s' LIMIT %d", esc,
	    MAX_DOMAIN_ALIASES);
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return -1;
	while (rc == 0 && (row = mysql_fetch_row(res)) != NULL)
		if (row[0] != NULL)
			rc = add_addr(b, b->address, (size_t)(at - b->address), row[0]);
	mysql_free_result(res);
	if (rc == -1)
		return -1;
	mysql_real_escape_string(m, esc, b->address, strnlen(b->address, 300));
	snprintf(sql, sizeof(sql), "SELECT address FROM aliases WHERE tenant_id = %" PRIu64
	    " AND JSON_CONTAINS(JSON_EXTRACT(spec, '$.to'), JSON_QUOTE('%s')) LIMIT %d",
	    b->tenant_id, esc, MAX_ALIASES);
	if (q(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return -1;
	while (rc == 0 && (row = mysql_fetch_row(res)) != NULL)
		if (row[0] != NULL)
			rc = add_addr(b, row[0], strlen(row[0]), NULL);
	mysql_free_result(res);
	return rc;
}

/* At most AUTOREPLY_HEADER_MAX bytes of the message. */
static int
read_head(const char *path, struct buf *out)
{
	char chunk[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return -1;
	while (buf_len(out) < AUTOREPLY_HEADER_MAX &&
	    (n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (buf_append(out, chunk, (size_t)n) == -1) {
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

/* Claim the reply to sender: 1 claimed, 0 one was sent within the
 * interval, -1 error. Two nodes claiming at once: the row lock orders
 * them and the second finds the fresh sent_at. */
static int
claim(MYSQL *m, uint64_t mailbox_id, const char *esc_sender)
{
	char sql[1000];

	snprintf(sql, sizeof(sql), "INSERT IGNORE INTO autoreply_log (mailbox_id, sender, sent_at) "
	    "VALUES (%" PRIu64 ", '%s', NOW())", mailbox_id, esc_sender);
	if (q(m, sql) == -1)
		return -1;
	if (mysql_affected_rows(m) == 1)
		return 1;
	snprintf(sql, sizeof(sql), "UPDATE autoreply_log SET sent_at = NOW() WHERE mailbox_id = %"
	    PRIu64 " AND sender = '%s' AND sent_at <= NOW() - INTERVAL %d DAY", mailbox_id, esc_sender,
	    AUTOREPLY_INTERVAL_DAYS);
	if (q(m, sql) == -1)
		return -1;
	return mysql_affected_rows(m) == 1 ? 1 : 0;
}

static void
unclaim(MYSQL *m, uint64_t mailbox_id, const char *esc_sender)
{
	char sql[1000];

	snprintf(sql, sizeof(sql), "DELETE FROM autoreply_log WHERE mailbox_id = %" PRIu64
	    " AND sender = '%s'", mailbox_id, esc_sender);
	if (q(m, sql) == -1)
		log_warn("autoreply: %s", mysql_error(m));
}

void
autoreply_after_delivery(MYSQL *m, uint64_t mailbox_id, const char *sender, const char *dir,
    const char *file)
{
	const struct log_ctx lc = { .service = "spool" };
	struct autoreply_original orig;
	struct autoreply_reply rep;
	struct box b;
	struct buf head, text;
	char lsender[ADDR_MAX + 1], esc[2 * ADDR_MAX + 1], host[256] = "localhost", err[300];
	char path[PATH_MAX];
	const char *skip = NULL;
	time_t now = time(NULL), t;
	size_t i;
	int r;

	if (!autoreply_sender_ok(sender))
		return;		/* the common null sender: not even a query */
	memset(&b, 0, sizeof(b));
	memset(&orig, 0, sizeof(orig));
	buf_init(&orig.references, 0);
	buf_init(&head, 0);
	buf_init(&text, 0);
	if ((r = load_box(m, mailbox_id, &b)) <= 0) {
		if (r == -1)
			log_event(LOG_LVL_WARN, &lc, "autoreply of mailbox %" PRIu64 ": %s", mailbox_id,
			    mysql_error(m));
		goto out;
	}
	for (i = 0; sender[i]; i++)
		lsender[i] = (char)tolower((unsigned char)sender[i]);
	lsender[i] = '\0';
	if (!b.active)
		skip = "the mailbox may not send";
	else if (b.from != NULL && (autoreply_time(b.from, &t) == -1 || now < t))
		skip = "not on yet";
	else if (b.until != NULL && (autoreply_time(b.until, &t) == -1 || now >= t))
		skip = "over";
	else if (strcmp(lsender, b.address) == 0)
		skip = "the sender is the mailbox";
	if (skip == NULL && load_addresses(m, &b) == -1) {
		log_event(LOG_LVL_WARN, &lc, "autoreply of mailbox %" PRIu64 ": %s", mailbox_id,
		    mysql_error(m));
		goto out;
	}
	if (skip == NULL && snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		skip = "path too long";
	if (skip == NULL && read_head(path, &head) == -1) {
		log_event(LOG_LVL_WARN, &lc, "autoreply of mailbox %" PRIu64 ": reading %s: %s",
		    mailbox_id, path, strerror(errno));
		goto out;
	}
	if (skip == NULL) {
		if (autoreply_inspect(buf_data(&head), buf_len(&head), (const char *const *)b.addrs,
		    b.naddrs, &orig) == -1) {
			log_event(LOG_LVL_WARN, &lc, "autoreply of mailbox %" PRIu64 ": out of memory",
			    mailbox_id);
			goto out;
		}
		if (orig.suppress != NULL)
			skip = orig.suppress;
		else if (!orig.addressed)
			skip = "the mailbox is not in To or Cc";
	}
	mysql_real_escape_string(m, esc, lsender, strlen(lsender));
	if (skip == NULL && (r = claim(m, mailbox_id, esc)) <= 0) {
		if (r == -1) {
			log_event(LOG_LVL_WARN, &lc, "autoreply of mailbox %" PRIu64 ": %s", mailbox_id,
			    mysql_error(m));
			goto out;
		}
		skip = "already sent to this sender lately";
	}
	if (skip != NULL) {
		log_event(LOG_LVL_INFO, &lc, "autoreply of mailbox %" PRIu64 " to %s not sent: %s",
		    mailbox_id, sender, skip);
		goto out;
	}
	if (gethostname(host, sizeof(host) - 1) == -1)
		snprintf(host, sizeof(host), "localhost");
	rep = (struct autoreply_reply){ .from = b.address, .to = sender, .subject = b.subject,
	    .body = b.body, .host = host, .orig = &orig, .now = now };
	if (autoreply_compose(&text, &rep) == -1) {
		snprintf(err, sizeof(err), "out of memory");
		r = -1;
	} else
		r = bounce_send(m, sender, buf_data(&text), buf_len(&text), err, sizeof(err));
	if (r == -1) {
		/* Not sent: let the next message try again. */
		unclaim(m, mailbox_id, esc);
		log_event(LOG_LVL_WARN, &lc, "autoreply of mailbox %" PRIu64 " to %s failed: %s",
		    mailbox_id, sender, err);
	} else if (r == 1)
		log_event(LOG_LVL_INFO, &lc, "autoreply of mailbox %" PRIu64 " queued to %s",
		    mailbox_id, sender);
out:
	autoreply_original_free(&orig);
	buf_free(&head);
	buf_free(&text);
	box_free(&b);
}
