/* mime: RFC 5322/MIME parser for IMAP FETCH. One pass builds a tree of
 * entities (the message, its parts, embedded messages) holding byte ranges
 * and the header fields ENVELOPE and BODYSTRUCTURE show; both are printed
 * from the tree, and the ranges are kept as a small text index so a FETCH
 * of BODY[1.2] needs neither the tree nor a second parse. */
#include "mime.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_MAX_PARAMS		64	/* Content-Type/-Disposition parameters shown */
#define MIME_BOUNDARY_MAX	200	/* RFC 2046 allows 70; be lenient, not unbounded */
#define MIME_INDEX_VERSION	"1:"
/* What a message may make ENVELOPE and BODYSTRUCTURE hold (they are stored
 * per message): longer fields are cut, and past the total budget only
 * Content-Type and Content-Transfer-Encoding are kept (shortened), as they
 * decide the structure. */
#define MIME_ENV_FIELD_MAX	(64 * 1024)
#define MIME_PART_FIELD_MAX	(8 * 1024)
#define MIME_FIELD_BUDGET	(4 * 1024 * 1024)
#define MIME_FIELD_MIN		256

enum mime_kind { MIME_BASIC, MIME_MULTI, MIME_MESSAGE };

/* Header fields kept for every entity (MIME) and for messages (ENVELOPE). */
enum { F_CTYPE, F_CTE, F_CID, F_CDESC, F_CMD5, F_CDISP, F_CLANG, F_CLOC,
	F_DATE, F_SUBJECT, F_FROM, F_SENDER, F_REPLY_TO, F_TO, F_CC, F_BCC,
	F_IN_REPLY_TO, F_MESSAGE_ID, F_N };
#define F_FIRST_ENV	F_DATE

static const char *const field_names[F_N] = {
	"content-type", "content-transfer-encoding", "content-id", "content-description",
	"content-md5", "content-disposition", "content-language", "content-location",
	"date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
	"in-reply-to", "message-id",
};

struct mime_param {
	char	*name, *value;
};

struct mime_entity {
	size_t			 h0, hlen, blen, lines;
	enum mime_kind		 kind;
	char			*type, *subtype;
	struct mime_param	*params;
	size_t			 nparams;
	char			*disp;
	struct mime_param	*dparams;
	size_t			 ndparams;
	char			*field[F_N];	/* unfolded values; NULL when absent */
	struct mime_entity	**kids;		/* parts, or the one embedded message */
	size_t			 nkids;
};

struct mime_message {
	struct mime_entity	*root;
};

struct parser {
	const char	*d;
	size_t		 len;
	size_t		 nentities;
	size_t		 budget;	/* field bytes left to keep */
	bool		 oom;
};

static char *
xstrndup(struct parser *p, const char *s, size_t n)
{
	char *r = malloc(n + 1);

	if (r == NULL) {
		p->oom = true;
		return NULL;
	}
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* End of the line starting at pos (just past its LF, or end). */
static size_t
line_end(const char *d, size_t pos, size_t end)
{
	const char *nl = memchr(d + pos, '\n', end - pos);

	return nl ? (size_t)(nl - d) + 1 : end;
}

/* Length of the line's content without its CR LF / LF ending. */
static size_t
line_content(const char *d, size_t pos, size_t le)
{
	size_t n = le - pos;

	if (n > 0 && d[pos + n - 1] == '\n')
		n--;
	if (n > 0 && d[pos + n - 1] == '\r')
		n--;
	return n;
}

/* Unfold [s, e): line breaks go, control bytes that cannot be shown (NUL,
 * CR, LF) go, leading and trailing white space go. */
static char *
unfold(struct parser *p, const char *s, size_t n, size_t max)
{
	char *r;
	size_t i, o = 0;

	if ((r = malloc((n < max ? n : max) + 1)) == NULL) {
		p->oom = true;
		return NULL;
	}
	for (i = 0; i < n && o < max; i++) {
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			continue;
		if (o == 0 && is_wsp(s[i]))
			continue;
		r[o++] = s[i];
	}
	while (o > 0 && is_wsp(r[o - 1]))
		o--;
	r[o] = '\0';
	return r;
}

static void
keep_field(struct parser *p, struct mime_entity *e, bool message, const char *name, size_t nlen,
    const char *val, size_t vlen)
{
	size_t max, n;
	int f;

	for (f = 0; f < F_N; f++) {
		if (!message && f >= F_FIRST_ENV)
			break;
		if (strlen(field_names[f]) == nlen && strncasecmp(field_names[f], name, nlen) == 0)
			break;
	}
	if (f >= F_N || (!message && f >= F_FIRST_ENV) || e->field[f] != NULL)
		return;		/* not wanted, or the first occurrence counts */
	max = f >= F_FIRST_ENV ? MIME_ENV_FIELD_MAX : MIME_PART_FIELD_MAX;
	if (max > p->budget) {
		if (f != F_CTYPE && f != F_CTE)
			return;
		max = MIME_FIELD_MIN;
	}
	if ((e->field[f] = unfold(p, val, vlen, max)) != NULL) {
		n = strlen(e->field[f]);
		p->budget -= n < p->budget ? n : p->budget;
	}
}

/* The header block is [h0, body start): it ends with the first empty line
 * (kept in the header, as IMAP's HEADER and MIME sections include it) or
 * at the end of the entity. */
static void
parse_header(struct parser *p, struct mime_entity *e, size_t start, size_t end, bool message)
{
	const char *d = p->d;
	size_t pos = start, fname = 0, fnlen = 0, fval = 0, fvend = 0;
	bool in_field = false;

	e->h0 = start;
	e->hlen = end - start;
	while (pos < end) {
		size_t le = line_end(d, pos, end), n = line_content(d, pos, le);

		if (n == 0 && (le > pos && d[le - 1] == '\n')) {
			e->hlen = le - start;
			break;
		}
		if (is_wsp(d[pos])) {
			if (in_field)
				fvend = pos + n;
		} else {
			const char *colon = memchr(d + pos, ':', n);
			size_t nl;

			if (in_field)
				keep_field(p, e, message, d + fname, fnlen, d + fval, fvend - fval);
			in_field = false;
			if (colon != NULL) {
				nl = (size_t)(colon - (d + pos));
				while (nl > 0 && is_wsp(d[pos + nl - 1]))	/* "Subject :" */
					nl--;
				if (nl > 0) {
					in_field = true;
					fname = pos;
					fnlen = nl;
					fval = (size_t)(colon - d) + 1;
					fvend = pos + n;
				}
			}
		}
		pos = le;
	}
	if (in_field)
		keep_field(p, e, message, d + fname, fnlen, d + fval, fvend - fval);
}

/* RFC 2045 lexical pieces, with RFC 822 comments skipped. */
static void
skip_cfws(const char **sp)
{
	const char *s = *sp;
	int depth;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '(')
			break;
		depth = 0;
		for (; *s; s++) {
			if (*s == '\\' && s[1])
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')' && --depth == 0) {
				s++;
				break;
			}
		}
	}
	*sp = s;
}

static bool
is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static char *
get_token(struct parser *p, const char **sp)
{
	const char *s = *sp, *t = s;

	while (*t && (unsigned char)*t > 0x20 && *t != 0x7f && !is_tspecial(*t))
		t++;
	if (t == s)
		return NULL;
	*sp = t;
	return xstrndup(p, s, (size_t)(t - s));
}

/* A parameter value: quoted-string, or (leniently, as mailers write
 * "boundary=----=_Part_1") anything up to ';' or white space. */
static char *
get_value(struct parser *p, const char **sp)
{
	const char *s = *sp;
	char *r;
	size_t o = 0;

	if (*s == '"') {
		s++;
		if ((r = malloc(strlen(s) + 1)) == NULL) {
			p->oom = true;
			return NULL;
		}
		for (; *s && *s != '"'; s++) {
			if (*s == '\\' && s[1])
				s++;
			r[o++] = *s;
		}
		if (*s == '"')
			s++;
		r[o] = '\0';
		*sp = s;
		return r;
	}
	while (s[o] && s[o] != ';' && !is_wsp(s[o]))
		o++;
	*sp = s + o;
	return xstrndup(p, s, o);
}

static void
free_params(struct mime_param *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

/* ";" attribute "=" value ...; malformed parameters are skipped. */
static void
parse_params(struct parser *p, const char *s, struct mime_param **out, size_t *nout)
{
	struct mime_param *v = NULL;
	size_t n = 0;
	char *name, *value;

	for (;;) {
		skip_cfws(&s);
		if (*s == '\0')
			break;
		if (*s != ';') {
			const char *semi = strchr(s, ';');

			if (semi == NULL)
				break;
			s = semi;
		}
		s++;
		skip_cfws(&s);
		if ((name = get_token(p, &s)) == NULL)
			continue;
		skip_cfws(&s);
		if (*s != '=') {
			free(name);
			continue;
		}
		s++;
		skip_cfws(&s);
		if ((value = get_value(p, &s)) == NULL || n >= MIME_MAX_PARAMS) {
			free(name);
			free(value);
			continue;
		}
		if (v == NULL && (v = calloc(MIME_MAX_PARAMS, sizeof(*v))) == NULL) {
			p->oom = true;
			free(name);
			free(value);
			break;
		}
		v[n].name = name;
		v[n].value = value;
		n++;
	}
	*out = v;
	*nout = n;
}

static const char *
param_get(const struct mime_param *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(v[i].name, name) == 0)
			return v[i].value;
	return NULL;
}

static void
set_type(struct parser *p, struct mime_entity *e, const char *type, const char *subtype,
    const char *charset)
{
	free(e->type);
	free(e->subtype);
	free_params(e->params, e->nparams);
	e->params = NULL;
	e->nparams = 0;
	e->type = xstrndup(p, type, strlen(type));
	e->subtype = xstrndup(p, subtype, strlen(subtype));
	if (charset != NULL) {
		if ((e->params = calloc(1, sizeof(*e->params))) == NULL) {
			p->oom = true;
			return;
		}
		e->params[0].name = xstrndup(p, "charset", 7);
		e->params[0].value = xstrndup(p, charset, strlen(charset));
		e->nparams = 1;
	}
}

/* Content-Type; without one (or with a broken one) the RFC 2045 default,
 * or message/rfc822 inside multipart/digest (RFC 2046 5.1.5). */
static void
parse_content_type(struct parser *p, struct mime_entity *e, bool in_digest)
{
	const char *s = e->field[F_CTYPE];

	if (s != NULL) {
		skip_cfws(&s);
		e->type = get_token(p, &s);
		skip_cfws(&s);
		if (e->type != NULL && *s == '/') {
			s++;
			skip_cfws(&s);
			e->subtype = get_token(p, &s);
		}
		if (e->type != NULL && e->subtype != NULL) {
			parse_params(p, s, &e->params, &e->nparams);
			return;
		}
	}
	if (in_digest && s == NULL)
		set_type(p, e, "message", "rfc822", NULL);
	else
		set_type(p, e, "text", "plain", "us-ascii");
}

static void
parse_disposition(struct parser *p, struct mime_entity *e)
{
	const char *s = e->field[F_CDISP];

	if (s == NULL)
		return;
	skip_cfws(&s);
	if ((e->disp = get_token(p, &s)) == NULL)
		return;
	parse_params(p, s, &e->dparams, &e->ndparams);
}

static size_t
count_lines(const char *d, size_t off, size_t len)
{
	size_t n = 0;
	const char *s = d + off, *e = d + off + len, *nl;

	while (s < e && (nl = memchr(s, '\n', (size_t)(e - s))) != NULL) {
		n++;
		s = nl + 1;
	}
	return s < e ? n + 1 : n;
}

static struct mime_entity *parse_entity(struct parser *, size_t, size_t, unsigned, bool, bool);
static void entity_free(struct mime_entity *);

static int
add_kid(struct parser *p, struct mime_entity *e, struct mime_entity *kid)
{
	struct mime_entity **v;

	if (kid == NULL)
		return -1;
	if ((v = realloc(e->kids, (e->nkids + 1) * sizeof(*v))) == NULL) {
		p->oom = true;
		entity_free(kid);
		return -1;
	}
	e->kids = v;
	e->kids[e->nkids++] = kid;
	return 0;
}

/* Is the line [pos, le) a delimiter "--boundary" or the close
 * "--boundary--" (transport padding allowed after it)? */
static int
delimiter(const char *d, size_t pos, size_t le, const char *b, size_t blen, bool *close)
{
	size_t n = line_content(d, pos, le), i;

	if (n < blen + 2 || d[pos] != '-' || d[pos + 1] != '-' || memcmp(d + pos + 2, b, blen) != 0)
		return 0;
	i = blen + 2;
	*close = n >= i + 2 && d[pos + i] == '-' && d[pos + i + 1] == '-';
	if (*close)
		i += 2;
	for (; i < n; i++)
		if (!is_wsp(d[pos + i]))
			return 0;
	return 1;
}

/* Split a multipart body [b0, end) at its delimiter lines. The line break
 * before a delimiter belongs to the delimiter (RFC 2046 5.1.1). */
static void
split_multipart(struct parser *p, struct mime_entity *e, size_t b0, size_t end, const char *b,
    unsigned depth)
{
	const char *d = p->d;
	bool digest = strcasecmp(e->subtype, "digest") == 0, close = false, open = false;
	size_t blen = strlen(b), pos = b0, start = 0;

	while (pos < end && !p->oom) {
		size_t le = line_end(d, pos, end);

		if (delimiter(d, pos, le, b, blen, &close)) {
			if (open) {
				size_t pend = pos;

				if (pend > start && d[pend - 1] == '\n')
					pend--;
				if (pend > start && d[pend - 1] == '\r')
					pend--;
				if (p->nentities >= MIME_MAX_PARTS ||
				    add_kid(p, e, parse_entity(p, start, pend, depth + 1, false, digest)) == -1)
					return;
			}
			open = !close;
			start = le;
			if (close)
				return;
		}
		pos = le;
	}
	if (open && p->nentities < MIME_MAX_PARTS)	/* no close delimiter: the last part runs to the end */
		(void)add_kid(p, e, parse_entity(p, start, end, depth + 1, false, digest));
}

static struct mime_entity *
parse_entity(struct parser *p, size_t start, size_t end, unsigned depth, bool message, bool in_digest)
{
	struct mime_entity *e;
	size_t b0;
	const char *boundary;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		p->oom = true;
		return NULL;
	}
	p->nentities++;
	parse_header(p, e, start, end, message);
	b0 = e->h0 + e->hlen;
	e->blen = end - b0;
	parse_content_type(p, e, in_digest);
	parse_disposition(p, e);
	if (p->oom)
		goto fail;

	if (strcasecmp(e->type, "multipart") == 0) {
		boundary = param_get(e->params, e->nparams, "boundary");
		if (depth + 1 >= MIME_MAX_DEPTH || p->nentities >= MIME_MAX_PARTS)
			set_type(p, e, "application", "octet-stream", NULL);
		else if (boundary == NULL || *boundary == '\0' || strlen(boundary) > MIME_BOUNDARY_MAX)
			set_type(p, e, "text", "plain", "us-ascii");	/* read it as the text it is */
		else {
			char *b = xstrndup(p, boundary, strlen(boundary));

			if (b == NULL)
				goto fail;
			e->kind = MIME_MULTI;
			split_multipart(p, e, b0, end, b, depth);
			free(b);
			/* IMAP's multipart has at least one part: the body as text */
			if (e->nkids == 0 && !p->oom) {
				struct mime_entity *k = calloc(1, sizeof(*k));

				if (k == NULL) {
					p->oom = true;
					goto fail;
				}
				p->nentities++;
				k->h0 = b0;
				k->blen = e->blen;
				if (add_kid(p, e, k) == 0)
					set_type(p, k, "text", "plain", "us-ascii");
				if (!p->oom)
					k->lines = count_lines(p->d, b0, e->blen);
			}
		}
	} else if (strcasecmp(e->type, "message") == 0 && strcasecmp(e->subtype, "rfc822") == 0) {
		if (depth + 1 >= MIME_MAX_DEPTH || p->nentities >= MIME_MAX_PARTS)
			set_type(p, e, "application", "octet-stream", NULL);
		else {
			e->kind = MIME_MESSAGE;
			(void)add_kid(p, e, parse_entity(p, b0, end, depth + 1, true, false));
		}
	}
	if (p->oom)
		goto fail;
	if (e->kind == MIME_MESSAGE || strcasecmp(e->type, "text") == 0)
		e->lines = count_lines(p->d, b0, e->blen);
	return e;
fail:
	entity_free(e);
	return NULL;
}

int
mime_parse(const char *data, size_t len, struct mime_message **out)
{
	struct parser p = { data, len, 0, MIME_FIELD_BUDGET, false };
	struct mime_message *m;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -1;
	if ((m->root = parse_entity(&p, 0, len, 0, true, false)) == NULL) {
		free(m);
		errno = ENOMEM;
		return -1;
	}
	*out = m;
	return 0;
}

static void
entity_free(struct mime_entity *e)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < e->nkids; i++)
		entity_free(e->kids[i]);
	free(e->kids);
	for (i = 0; i < F_N; i++)
		free(e->field[i]);
	free(e->type);
	free(e->subtype);
	free_params(e->params, e->nparams);
	free(e->disp);
	free_params(e->dparams, e->ndparams);
	free(e);
}

void
mime_free(struct mime_message *m)
{
	if (m == NULL)
		return;
	entity_free(m->root);
	free(m);
}

/* --- IMAP output ------------------------------------------------------ */

/* A string as IMAP wants it: quoted, or a literal when it holds bytes a
 * quoted string cannot (CR, LF, 8-bit). */
static int
put_string(struct buf *out, const char *s, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0' || (unsigned char)s[i] >= 0x80)
			break;
	if (i < n) {
		if (buf_printf(out, "{%zu}\r\n", n) == -1)
			return -1;
		return buf_append(out, s, n);
	}
	rc |= buf_puts(out, "\"");
	for (i = 0; i < n && rc == 0; i++) {
		if (s[i] == '"' || s[i] == '\\')
			rc |= buf_puts(out, "\\");
		rc |= buf_append(out, s + i, 1);
	}
	rc |= buf_puts(out, "\"");
	return rc ? -1 : 0;
}

static int
put_nstring(struct buf *out, const char *s)
{
	return s == NULL ? buf_puts(out, "NIL") : put_string(out, s, strlen(s));
}

static int
put_params(struct buf *out, const struct mime_param *v, size_t n)
{
	size_t i;
	int rc = 0;

	if (n == 0)
		return buf_puts(out, "NIL");
	rc |= buf_puts(out, "(");
	for (i = 0; i < n; i++) {
		if (i > 0)
			rc |= buf_puts(out, " ");
		rc |= put_nstring(out, v[i].name);
		rc |= buf_puts(out, " ");
		rc |= put_nstring(out, v[i].value);
	}
	rc |= buf_puts(out, ")");
	return rc ? -1 : 0;
}

/* --- addresses (RFC 5322 3.4, with the obsolete forms mailers still send) */

enum tok_kind { T_ATOM, T_QSTR, T_DLIT, T_COMMENT, T_SPECIAL };

struct tok {
	enum tok_kind	 kind;
	const char	*s;	/* the text; for T_QSTR and T_COMMENT inside the delimiters */
	size_t		 n;
};

static size_t
lex(const char *s, struct tok *t)
{
	size_t n = 0, i;
	int depth;

	while (*s) {
		if (is_wsp(*s) || *s == '\r' || *s == '\n') {
			s++;
			continue;
		}
		if (*s == '(') {
			t[n].kind = T_COMMENT;
			t[n].s = ++s;
			for (depth = 1, i = 0; s[i]; i++) {
				if (s[i] == '\\' && s[i + 1])
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')' && --depth == 0)
					break;
			}
			t[n++].n = i;
			s += s[i] ? i + 1 : i;
		} else if (*s == '"') {
			t[n].kind = T_QSTR;
			t[n].s = ++s;
			for (i = 0; s[i] && s[i] != '"'; i++)
				if (s[i] == '\\' && s[i + 1])
					i++;
			t[n++].n = i;
			s += s[i] ? i + 1 : i;
		} else if (*s == '[') {
			t[n].kind = T_DLIT;
			t[n].s = s;
			for (i = 1; s[i] && s[i] != ']'; i++)
				;
			if (s[i] == ']')
				i++;
			t[n++].n = i;
			s += i;
		} else if (strchr("<>@,;:.", *s) != NULL) {
			t[n].kind = T_SPECIAL;
			t[n].s = s++;
			t[n++].n = 1;
		} else {
			t[n].kind = T_ATOM;
			t[n].s = s;
			for (i = 1; s[i] && !is_wsp(s[i]) && s[i] != '\r' && s[i] != '\n' &&
			    strchr("()<>[]@,;:.\"", s[i]) == NULL; i++)
				;
			t[n++].n = i;
			s += i;
		}
	}
	return n;
}

static bool
is_sp(const struct tok *t, char c)
{
	return t->kind == T_SPECIAL && t->s[0] == c;
}

/* Append a token's text; quoted strings and comments lose their escapes. */
static int
tok_text(struct buf *b, const struct tok *t)
{
	size_t i;

	if (t->kind != T_QSTR && t->kind != T_COMMENT)
		return buf_append(b, t->s, t->n);
	for (i = 0; i < t->n; i++) {
		if (t->s[i] == '\\' && i + 1 < t->n)
			i++;
		if (buf_append(b, t->s + i, 1) == -1)
			return -1;
	}
	return 0;
}

/* A display name: words joined by single spaces ("John Q. Public"). */
static int
phrase(struct buf *b, const struct tok *t, size_t a, size_t z)
{
	size_t i;
	int rc = 0;

	for (i = a; i < z; i++) {
		if (t[i].kind == T_COMMENT)
			continue;
		if (buf_len(b) > 0 && !is_sp(&t[i], '.'))
			rc |= buf_puts(b, " ");
		rc |= tok_text(b, &t[i]);
	}
	return rc ? -1 : 0;
}

static int
put_buf_nstring(struct buf *out, struct buf *b, bool present)
{
	if (!present)
		return buf_puts(out, "NIL");
	return put_string(out, buf_len(b) ? buf_data(b) : "", buf_len(b));
}

/* One mailbox from tokens [a, z): name-addr or addr-spec. */
static int
put_mailbox(struct buf *out, const struct tok *t, size_t a, size_t z)
{
	struct buf name, adl, local, host;
	size_t i, lt = z, gt = z, at = z, comment = z;
	bool has_name = false, has_adl = false, has_at = false;
	int rc = 0;

	for (i = a; i < z; i++) {
		if (is_sp(&t[i], '<') && lt == z)
			lt = i;
		else if (is_sp(&t[i], '>') && lt != z && gt == z)
			gt = i;
		else if (t[i].kind == T_COMMENT)
			comment = i;
	}
	buf_init(&name, 0);
	buf_init(&adl, 0);
	buf_init(&local, 0);
	buf_init(&host, 0);
	if (lt != z) {
		rc |= phrase(&name, t, a, lt);
		has_name = buf_len(&name) > 0;
		a = lt + 1;
		z = gt;
		/* obsolete source route: "<@a,@b:user@host>" */
		for (i = a; i < z && !is_sp(&t[i], ':'); i++)
			;
		if (i < z && is_sp(&t[a], '@')) {
			for (; a < i; a++)
				rc |= tok_text(&adl, &t[a]);
			has_adl = true;
			a = i + 1;
		}
	}
	for (i = a; i < z; i++)
		if (is_sp(&t[i], '@')) {
			at = i;
			break;
		}
	for (i = a; i < at && i < z; i++)
		if (t[i].kind != T_COMMENT)
			rc |= tok_text(&local, &t[i]);
	if (at < z) {
		has_at = true;
		for (i = at + 1; i < z; i++)
			if (t[i].kind != T_COMMENT)
				rc |= tok_text(&host, &t[i]);
	}
	/* "user@host (Name)": the comment is the only name there is */
	if (!has_name && lt == z && comment != z) {
		rc |= tok_text(&name, &t[comment]);
		has_name = buf_len(&name) > 0;
	}
	if (buf_len(&local) == 0 && !has_at && !has_name)
		goto done;	/* nothing there (",,", "<>") */
	if (!has_at || buf_len(&host) == 0)
		rc |= buf_puts(&host, "MISSING_DOMAIN");
	rc |= buf_puts(out, "(");
	rc |= put_buf_nstring(out, &name, has_name);
	rc |= buf_puts(out, " ");
	rc |= put_buf_nstring(out, &adl, has_adl);
	rc |= buf_puts(out, " ");
	rc |= put_buf_nstring(out, &local, true);
	rc |= buf_puts(out, " ");
	rc |= put_buf_nstring(out, &host, true);
	rc |= buf_puts(out, ")");
done:
	buf_free(&name);
	buf_free(&adl);
	buf_free(&local);
	buf_free(&host);
	return rc ? -1 : 0;
}

/* The end of the address starting at i: the next top-level stop char. */
static size_t
address_end(const struct tok *t, size_t i, size_t n, bool in_group)
{
	bool angle = false;

	for (; i < n; i++) {
		if (is_sp(&t[i], '<'))
			angle = true;
		else if (is_sp(&t[i], '>'))
			angle = false;
		else if (!angle && (is_sp(&t[i], ',') || (in_group && is_sp(&t[i], ';'))))
			break;
	}
	return i;
}

/* An address list as IMAP's list of addresses; groups become the start
 * marker (NIL NIL "name" NIL), their members, and (NIL NIL NIL NIL). */
static int
put_address_list(struct buf *out, const char *s)
{
	struct tok *t;
	size_t n, i = 0, j, e, mark;
	int rc = 0;

	if (s == NULL)
		return buf_puts(out, "NIL");
	if ((t = calloc(strlen(s) + 1, sizeof(*t))) == NULL)
		return -1;
	n = lex(s, t);
	mark = buf_len(out);
	rc |= buf_puts(out, "(");
	while (i < n && rc == 0) {
		if (is_sp(&t[i], ',') || is_sp(&t[i], ';')) {
			i++;
			continue;
		}
		/* a group is a phrase followed by ':' */
		for (j = i; j < n && t[j].kind != T_SPECIAL; j++)
			;
		if (j < n && is_sp(&t[j], ':') && (j > i || (j + 1 < n && !is_sp(&t[j + 1], '@')))) {
			struct buf gname;

			buf_init(&gname, 0);
			rc |= phrase(&gname, t, i, j);
			rc |= buf_puts(out, "(NIL NIL ");
			rc |= put_buf_nstring(out, &gname, true);
			rc |= buf_puts(out, " NIL)");
			buf_free(&gname);
			i = j + 1;
			while (i < n && !is_sp(&t[i], ';') && rc == 0) {
				if (is_sp(&t[i], ',')) {
					i++;
					continue;
				}
				e = address_end(t, i, n, true);
				rc |= put_mailbox(out, t, i, e);
				i = e;
			}
			if (i < n)
				i++;	/* ';' */
			rc |= buf_puts(out, "(NIL NIL NIL NIL)");
			continue;
		}
		e = address_end(t, i, n, false);
		rc |= put_mailbox(out, t, i, e);
		i = e;
	}
	free(t);
	if (rc)
		return -1;
	if (buf_len(out) == mark + 1) {		/* no address in it */
		out->len = out->off + mark;
		return buf_puts(out, "NIL");
	}
	return buf_puts(out, ")");
}

static int
envelope(const struct mime_entity *e, struct buf *out)
{
	const char *from = e->field[F_FROM];
	int rc = 0;

	rc |= buf_puts(out, "(");
	rc |= put_nstring(out, e->field[F_DATE]);
	rc |= buf_puts(out, " ");
	rc |= put_nstring(out, e->field[F_SUBJECT]);
	rc |= buf_puts(out, " ");
	rc |= put_address_list(out, from);
	rc |= buf_puts(out, " ");
	/* RFC 3501 7.4.2: Sender and Reply-To default to From */
	rc |= put_address_list(out, e->field[F_SENDER] ? e->field[F_SENDER] : from);
	rc |= buf_puts(out, " ");
	rc |= put_address_list(out, e->field[F_REPLY_TO] ? e->field[F_REPLY_TO] : from);
	rc |= buf_puts(out, " ");
	rc |= put_address_list(out, e->field[F_TO]);
	rc |= buf_puts(out, " ");
	rc |= put_address_list(out, e->field[F_CC]);
	rc |= buf_puts(out, " ");
	rc |= put_address_list(out, e->field[F_BCC]);
	rc |= buf_puts(out, " ");
	rc |= put_nstring(out, e->field[F_IN_REPLY_TO]);
	rc |= buf_puts(out, " ");
	rc |= put_nstring(out, e->field[F_MESSAGE_ID]);
	rc |= buf_puts(out, ")");
	return rc ? -1 : 0;
}

int
mime_envelope(const struct mime_message *m, struct buf *out)
{
	return envelope(m->root, out);
}

/* Content-Language: one tag as a string, several as a list. */
static int
put_language(struct buf *out, const char *s)
{
	struct buf b;
	size_t n = 0;
	const char *p = s, *t;
	int rc = 0;

	if (s == NULL)
		return buf_puts(out, "NIL");
	buf_init(&b, 0);
	for (;;) {
		skip_cfws(&p);
		if (*p == ',') {
			p++;
			continue;
		}
		for (t = p; *t && *t != ',' && !is_wsp(*t) && *t != '('; t++)
			;
		if (t == p)
			break;
		if (n++ > 0)
			rc |= buf_puts(&b, " ");
		rc |= put_string(&b, p, (size_t)(t - p));
		p = t;
	}
	if (n == 0)
		rc |= buf_puts(out, "NIL");
	else if (n == 1)
		rc |= buf_append(out, buf_data(&b), buf_len(&b));
	else {
		rc |= buf_puts(out, "(");
		rc |= buf_append(out, buf_data(&b), buf_len(&b));
		rc |= buf_puts(out, ")");
	}
	buf_free(&b);
	return rc ? -1 : 0;
}

static int
put_disposition(struct buf *out, const struct mime_entity *e)
{
	int rc = 0;

	if (e->disp == NULL)
		return buf_puts(out, "NIL");
	rc |= buf_puts(out, "(");
	rc |= put_nstring(out, e->disp);
	rc |= buf_puts(out, " ");
	rc |= put_params(out, e->dparams, e->ndparams);
	rc |= buf_puts(out, ")");
	return rc ? -1 : 0;
}

/* The content transfer encoding is the field's first token. */
static int
put_encoding(struct buf *out, const char *s)
{
	const char *p = s, *t;

	if (s == NULL)
		return buf_puts(out, "\"7BIT\"");
	skip_cfws(&p);
	for (t = p; *t && !is_wsp(*t) && *t != '(' && *t != ';'; t++)
		;
	if (t == p)
		return buf_puts(out, "\"7BIT\"");
	return put_string(out, p, (size_t)(t - p));
}

static int
bodystructure(const struct mime_entity *e, bool ext, struct buf *out)
{
	size_t i;
	int rc = 0;

	rc |= buf_puts(out, "(");
	if (e->kind == MIME_MULTI) {
		for (i = 0; i < e->nkids; i++)
			rc |= bodystructure(e->kids[i], ext, out);
		rc |= buf_puts(out, " ");
		rc |= put_nstring(out, e->subtype);
		if (ext) {
			rc |= buf_puts(out, " ");
			rc |= put_params(out, e->params, e->nparams);
		}
	} else {
		rc |= put_nstring(out, e->type);
		rc |= buf_puts(out, " ");
		rc |= put_nstring(out, e->subtype);
		rc |= buf_puts(out, " ");
		rc |= put_params(out, e->params, e->nparams);
		rc |= buf_puts(out, " ");
		rc |= put_nstring(out, e->field[F_CID]);
		rc |= buf_puts(out, " ");
		rc |= put_nstring(out, e->field[F_CDESC]);
		rc |= buf_puts(out, " ");
		rc |= put_encoding(out, e->field[F_CTE]);
		rc |= buf_printf(out, " %zu", e->blen);
		if (e->kind == MIME_MESSAGE && e->nkids == 1) {
			rc |= buf_puts(out, " ");
			rc |= envelope(e->kids[0], out);
			rc |= buf_puts(out, " ");
			rc |= bodystructure(e->kids[0], ext, out);
			rc |= buf_printf(out, " %zu", e->lines);
		} else if (strcasecmp(e->type, "text") == 0)
			rc |= buf_printf(out, " %zu", e->lines);
		if (ext) {
			rc |= buf_puts(out, " ");
			rc |= put_nstring(out, e->field[F_CMD5]);
		}
	}
	if (ext) {
		rc |= buf_puts(out, " ");
		rc |= put_disposition(out, e);
		rc |= buf_puts(out, " ");
		rc |= put_language(out, e->field[F_CLANG]);
		rc |= buf_puts(out, " ");
		rc |= put_nstring(out, e->field[F_CLOC]);
	}
	rc |= buf_puts(out, ")");
	return rc ? -1 : 0;
}

int
mime_bodystructure(const struct mime_message *m, bool extended, struct buf *out)
{
	return bodystructure(m->root, extended, out);
}

/* --- the index: "1:" entity, entity = h0,hlen,blen [M(kids) | R(kid)] -- */

static int
index_entity(const struct mime_entity *e, struct buf *out)
{
	size_t i;
	int rc = 0;

	rc |= buf_printf(out, "%zu,%zu,%zu", e->h0, e->hlen, e->blen);
	if (e->nkids > 0) {
		rc |= buf_puts(out, e->kind == MIME_MULTI ? "M(" : "R(");
		for (i = 0; i < e->nkids; i++) {
			if (i > 0)
				rc |= buf_puts(out, " ");
			rc |= index_entity(e->kids[i], out);
		}
		rc |= buf_puts(out, ")");
	}
	return rc ? -1 : 0;
}

int
mime_index_encode(const struct mime_message *m, struct buf *out)
{
	if (buf_puts(out, MIME_INDEX_VERSION) == -1)
		return -1;
	return index_entity(m->root, out);
}

struct inode {
	size_t	 h0, hlen, blen;
	char	 kind;		/* 'B', 'M' or 'R' */
	int	 first, next;	/* first child, next sibling; -1 for none */
};

static int
get_num(const char **sp, size_t *v)
{
	const char *s = *sp;
	size_t n = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		if (n > (SIZE_MAX - 9) / 10)
			return -1;
		n = n * 10 + (size_t)(*s - '0');
	}
	*sp = s;
	*v = n;
	return 0;
}

/* Read an index into a node array (preorder, node 0 the message). */
static int
index_read(const char *s, struct inode *v, size_t max, size_t *nv)
{
	int stack[MIME_MAX_DEPTH + 1], last[MIME_MAX_DEPTH + 1];
	size_t n = 0, depth = 0;

	if (strncmp(s, MIME_INDEX_VERSION, strlen(MIME_INDEX_VERSION)) != 0)
		return -1;
	s += strlen(MIME_INDEX_VERSION);
	for (;;) {
		struct inode *x;

		if (n >= max)
			return -1;
		x = &v[n];
		if (get_num(&s, &x->h0) == -1 || *s++ != ',' || get_num(&s, &x->hlen) == -1 ||
		    *s++ != ',' || get_num(&s, &x->blen) == -1)
			return -1;
		if (x->hlen > SIZE_MAX - x->h0 || x->blen > SIZE_MAX - x->h0 - x->hlen)
			return -1;
		x->kind = 'B';
		x->first = x->next = -1;
		if (depth > 0) {	/* link under the open parent */
			struct inode *parent = &v[stack[depth - 1]];

			if (last[depth - 1] == -1)
				parent->first = (int)n;
			else
				v[last[depth - 1]].next = (int)n;
			last[depth - 1] = (int)n;
		}
		n++;
		if ((*s == 'M' || *s == 'R') && s[1] == '(') {
			if (depth >= MIME_MAX_DEPTH)
				return -1;
			x->kind = *s;
			stack[depth] = (int)(n - 1);
			last[depth] = -1;
			depth++;
			s += 2;
			continue;
		}
		/* close finished parents, then a sibling or the end */
		while (depth > 0 && *s == ')') {
			s++;
			depth--;
		}
		if (depth == 0) {
			if (*s != '\0')
				return -1;
			break;
		}
		if (*s++ != ' ')
			return -1;
	}
	*nv = n;
	return 0;
}

static int
kid_at(const struct inode *v, int parent, size_t k)
{
	int c = v[parent].first;

	while (c != -1 && k-- > 1)
		c = v[c].next;
	return c;
}

int
mime_index_section(const char *index, const char *section, size_t *off, size_t *len)
{
	struct inode *v;
	size_t nv, num;
	int part = 0, ctx = 0, rc = -1;
	bool numbered = false, ctx_message = true;
	const char *s = section, *t;

	/* each entity has two commas: size the node array from them */
	for (nv = 0, t = index; *t; t++)
		nv += *t == ',';
	nv = nv / 2 + 1;
	if ((v = calloc(nv < MIME_MAX_PARTS ? nv : MIME_MAX_PARTS, sizeof(*v))) == NULL)
		return -1;
	if (index_read(index, v, nv < MIME_MAX_PARTS ? nv : MIME_MAX_PARTS, &nv) == -1)
		goto done;
	/* Walk the numbers: in a message context, part n is the n-th part of a
	 * multipart message, or the message's own body for n = 1. */
	while (isdigit((unsigned char)*s)) {
		if (get_num(&s, &num) == -1 || num == 0)
			goto done;
		if (ctx_message && v[ctx].kind != 'M') {
			if (num != 1)
				goto done;
			part = ctx;
		} else if (v[ctx].kind == 'M') {
			if ((part = kid_at(v, ctx, num)) == -1)
				goto done;
		} else
			goto done;
		numbered = true;
		if (v[part].kind == 'R') {
			ctx = v[part].first;
			ctx_message = true;
			if (ctx == -1)
				goto done;
		} else {
			ctx = part;
			ctx_message = false;
		}
		if (*s == '\0')
			break;
		if (*s++ != '.' || *s == '\0')
			goto done;
		if (!isdigit((unsigned char)*s))
			break;
	}
	if (*s == '\0') {
		if (!numbered) {	/* the whole message */
			*off = v[0].h0;
			*len = v[0].hlen + v[0].blen;
		} else {
			*off = v[part].h0 + v[part].hlen;
			*len = v[part].blen;
		}
		rc = 0;
	} else if (strcasecmp(s, "MIME") == 0) {
		if (!numbered)
			goto done;
		*off = v[part].h0;
		*len = v[part].hlen;
		rc = 0;
	} else if (strcasecmp(s, "HEADER") == 0 || strcasecmp(s, "TEXT") == 0) {
		int m;

		if (!numbered)
			m = 0;
		else if (v[part].kind == 'R')
			m = v[part].first;
		else
			goto done;
		if (toupper((unsigned char)*s) == 'H') {
			*off = v[m].h0;
			*len = v[m].hlen;
		} else {
			*off = v[m].h0 + v[m].hlen;
			*len = v[m].blen;
		}
		rc = 0;
	}
done:
	free(v);
	return rc;
}
