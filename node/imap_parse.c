/* imap_parse: recursive descent over one assembled command. Every read is
 * bounded by the end of the text; strings are copied into a chunked arena
 * owned by the command, so nothing points into freed memory later. */
#include "imap_parse.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARENA_CHUNK	4096

struct chunk {
	struct chunk	*next;
	size_t		 used, cap;
	/* data follows */
};

struct lex {
	const char	*p, *end;
	struct imap_cmd	*cmd;
	char		*err;
	size_t		 errlen;
	unsigned	 depth;
};

static void *
arena_alloc(struct imap_cmd *cmd, size_t size)
{
	struct chunk *c = (struct chunk *)cmd->arena;
	size_t need = (size + 15) & ~(size_t)15;
	void *p;

	if (c == NULL || c->cap - c->used < need) {
		size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;

		if ((c = malloc(sizeof(*c) + 16 + cap)) == NULL)
			return NULL;
		c->next = (struct chunk *)cmd->arena;
		c->used = 0;
		c->cap = cap;
		cmd->arena = (char *)c;
	}
	p = (char *)(c + 1) + 16 + c->used;
	p = (void *)(((uintptr_t)p) & ~(uintptr_t)15);
	c->used += need;
	memset(p, 0, size);
	return p;
}

void
imap_cmd_free(struct imap_cmd *cmd)
{
	struct chunk *c = (struct chunk *)cmd->arena, *n;

	while (c) {
		n = c->next;
		free(c);
		c = n;
	}
	cmd->arena = NULL;
}

static int
fail(struct lex *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct lex *l, const char *fmt, ...)
{
	va_list ap;

	if (l->err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(l->err, l->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static char *
dupn(struct lex *l, const char *s, size_t n)
{
	char *p = arena_alloc(l->cmd, n + 1);

	if (p == NULL) {
		fail(l, "out of memory");
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* RFC 3501 ATOM-CHAR: any CHAR except atom-specials. */
bool
imap_is_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
	    c != '"' && c != '\\' && c != ']';
}

static bool
at_end(struct lex *l)
{
	return l->p >= l->end;
}

static int
peek(struct lex *l)
{
	return l->p < l->end ? (unsigned char)*l->p : -1;
}

static int
sp(struct lex *l)
{
	if (peek(l) != ' ')
		return fail(l, "expected a space");
	l->p++;
	return 0;
}

static int
expect(struct lex *l, char c)
{
	if (peek(l) != c)
		return fail(l, "expected '%c'", c);
	l->p++;
	return 0;
}

/* Case-insensitive keyword followed by a non-atom character. */
static bool
kw(struct lex *l, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(l->end - l->p) < n || strncasecmp(l->p, word, n) != 0)
		return false;
	if (l->p + n < l->end && imap_is_atom_char((unsigned char)l->p[n]) && l->p[n] != '[')
		return false;
	l->p += n;
	return true;
}

/* An atom (with extra allowed characters, e.g. ']' in list-mailbox or
 * '\\' for flags). Returns its length; 0 if none. */
static size_t
atom_span(struct lex *l, const char *extra)
{
	const char *s = l->p;

	while (s < l->end && (imap_is_atom_char((unsigned char)*s) ||
	    (*s != '\0' && extra && strchr(extra, *s))))
		s++;
	return (size_t)(s - l->p);
}

static char *
atom(struct lex *l, const char *extra)
{
	size_t n = atom_span(l, extra);
	char *r;

	if (n == 0) {
		fail(l, "expected an atom");
		return NULL;
	}
	r = dupn(l, l->p, n);
	l->p += n;
	return r;
}

static int
number64(struct lex *l, uint64_t *out, uint64_t max)
{
	uint64_t v = 0;
	const char *s = l->p;

	if (s >= l->end || !isdigit((unsigned char)*s))
		return fail(l, "expected a number");
	while (s < l->end && isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (max - d) / 10)
			return fail(l, "number too large");
		v = v * 10 + d;
		s++;
	}
	l->p = s;
	*out = v;
	return 0;
}

static int
nz_number(struct lex *l, uint32_t *out)
{
	uint64_t v;

	if (number64(l, &v, UINT32_MAX) == -1)
		return -1;
	if (v == 0)
		return fail(l, "zero is not a valid number here");
	*out = (uint32_t)v;
	return 0;
}

int
imap_literal_announced(const char *line, size_t len, uint64_t *n, bool *nonsync)
{
	size_t i, digits = 0;
	uint64_t v = 0;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	i = len - 1;
	*nonsync = false;
	if (line[i - 1] == '+') {
		*nonsync = true;
		i--;
	}
	while (i > 0 && isdigit((unsigned char)line[i - 1])) {
		i--;
		digits++;
	}
	if (digits == 0 || i == 0 || line[i - 1] != '{')
		return 0;
	if (digits > 10)
		return -1;
	for (; line[i] != '+' && line[i] != '}'; i++)
		v = v * 10 + (uint64_t)(line[i] - '0');
	if (v > UINT32_MAX)
		return -1;
	*n = v;
	return 1;
}

/* {n}CRLF<n bytes> or {n+}CRLF<n bytes>; p at '{'. */
static int
literal(struct lex *l, const char **data, size_t *len)
{
	uint64_t n;

	if (expect(l, '{') == -1 || number64(l, &n, UINT32_MAX) == -1)
		return -1;
	if (peek(l) == '+')
		l->p++;
	if (expect(l, '}') == -1)
		return -1;
	if (l->end - l->p < 2 || l->p[0] != '\r' || l->p[1] != '\n')
		return fail(l, "expected CRLF after a literal's size");
	l->p += 2;
	if ((uint64_t)(l->end - l->p) < n)
		return fail(l, "literal shorter than announced");
	*data = l->p;
	*len = (size_t)n;
	l->p += n;
	return 0;
}

static char *
quoted(struct lex *l)
{
	const char *s;
	char *out, *o;

	if (expect(l, '"') == -1)
		return NULL;
	for (s = l->p; s < l->end && *s != '"'; s++) {
		if (*s == '\\') {
			if (++s >= l->end || (*s != '"' && *s != '\\')) {
				fail(l, "bad escape in a quoted string");
				return NULL;
			}
		} else if (*s == '\r' || *s == '\n' || *s == '\0') {
			fail(l, "bad quoted string");
			return NULL;
		}
	}
	if (s >= l->end) {
		fail(l, "unterminated quoted string");
		return NULL;
	}
	if ((out = arena_alloc(l->cmd, (size_t)(s - l->p) + 1)) == NULL) {
		fail(l, "out of memory");
		return NULL;
	}
	for (o = out; l->p < s; l->p++) {
		if (*l->p == '\\') {
			l->p++;
		}
		*o++ = *l->p;
	}
	*o = '\0';
	l->p++;	/* closing quote */
	return out;
}

/* string = quoted / literal (a literal with a NUL is refused: names and
 * search strings are text). */
static char *
string(struct lex *l)
{
	const char *data;
	size_t len;

	if (peek(l) == '"')
		return quoted(l);
	if (peek(l) == '{') {
		if (literal(l, &data, &len) == -1)
			return NULL;
		if (memchr(data, '\0', len) != NULL) {
			fail(l, "NUL in a string literal");
			return NULL;
		}
		return dupn(l, data, len);
	}
	fail(l, "expected a string");
	return NULL;
}

static char *
astring(struct lex *l)
{
	if (peek(l) == '"' || peek(l) == '{')
		return string(l);
	return atom(l, "]");
}

/* mailbox = "INBOX" / astring; list-mailbox also allows % and *. */
static char *
list_mailbox(struct lex *l)
{
	if (peek(l) == '"' || peek(l) == '{')
		return string(l);
	return atom(l, "]%*");
}

static bool
is_nil(struct lex *l)
{
	return kw(l, "NIL");
}

/* Sequence sets. */

static int
seq_number(struct lex *l, uint32_t *out)
{
	if (peek(l) == '*') {
		l->p++;
		*out = IMAP_SEQ_STAR;
		return 0;
	}
	return nz_number(l, out);
}

static int
seqset(struct lex *l, struct imap_seqset *set)
{
	const char *s;
	size_t count = 1, i = 0;

	for (s = l->p; s < l->end && *s != ' ' && *s != ')'; s++)
		if (*s == ',')
			count++;
	if ((set->r = arena_alloc(l->cmd, count * sizeof(*set->r))) == NULL)
		return fail(l, "out of memory");
	for (;;) {
		uint32_t a = 0, b = 0;

		if (seq_number(l, &a) == -1)
			return fail(l, "bad sequence set");
		b = a;
		if (peek(l) == ':') {
			l->p++;
			if (seq_number(l, &b) == -1)
				return fail(l, "bad sequence set");
		}
		if (i >= count)
			return fail(l, "bad sequence set");
		set->r[i].lo = a < b ? a : b;
		set->r[i].hi = a < b ? b : a;
		i++;
		if (peek(l) != ',')
			break;
		l->p++;
	}
	set->n = i;
	return 0;
}

/* Flags. */

static int
flag_bit(const char *f)
{
	static const struct { const char *name; int bit; } sys[] = {
		{ "\\Seen", IMAP_FLAG_SEEN }, { "\\Answered", IMAP_FLAG_ANSWERED },
		{ "\\Flagged", IMAP_FLAG_FLAGGED }, { "\\Deleted", IMAP_FLAG_DELETED },
		{ "\\Draft", IMAP_FLAG_DRAFT }, { "\\Recent", IMAP_FLAG_RECENT },
	};
	size_t i;

	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if (strcasecmp(f, sys[i].name) == 0)
			return sys[i].bit;
	return 0;
}

/* One flag into fl (keywords appended to a buffer of given capacity). */
static int
one_flag(struct lex *l, struct imap_flags *fl, char *kwbuf, size_t kwcap, size_t *kwlen)
{
	size_t n;

	if (peek(l) == '\\') {
		const char *s = l->p;
		char name[32];
		int bit;

		l->p++;
		n = atom_span(l, NULL);
		if (n == 0 || n >= sizeof(name) - 1)
			return fail(l, "bad flag");
		name[0] = '\\';
		memcpy(name + 1, l->p, n);
		name[n + 1] = '\0';
		l->p += n;
		if ((bit = flag_bit(name)) == 0 || bit == IMAP_FLAG_RECENT) {
			l->p = s;
			return fail(l, "unknown system flag %s", name);
		}
		fl->sys |= (uint8_t)bit;
		return 0;
	}
	n = atom_span(l, NULL);
	if (n == 0)
		return fail(l, "bad flag");
	if (*kwlen + n + 1 >= kwcap)
		return fail(l, "too many keywords");
	if (*kwlen > 0)
		kwbuf[(*kwlen)++] = ' ';
	memcpy(kwbuf + *kwlen, l->p, n);
	*kwlen += n;
	kwbuf[*kwlen] = '\0';
	l->p += n;
	return 0;
}

/* "(" [flag *(SP flag)] ")", or with bare a space separated list to the end
 * or to ')' (STORE allows flags without parentheses). */
static int
flag_list(struct lex *l, struct imap_flags *fl, bool bare_ok)
{
	size_t cap = (size_t)(l->end - l->p) + 1, len = 0;
	bool paren = peek(l) == '(';

	if (!paren && !bare_ok)
		return fail(l, "expected a flag list");
	if ((fl->keywords = arena_alloc(l->cmd, cap)) == NULL)
		return fail(l, "out of memory");
	fl->keywords[0] = '\0';
	fl->sys = 0;
	if (paren) {
		l->p++;
		if (peek(l) == ')') {
			l->p++;
			return 0;
		}
	}
	for (;;) {
		if (one_flag(l, fl, fl->keywords, cap, &len) == -1)
			return -1;
		if (peek(l) != ' ')
			break;
		l->p++;
	}
	if (paren && expect(l, ')') == -1)
		return -1;
	return 0;
}

/* Dates. */

static int
month_of(const char *s)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int i;

	for (i = 0; i < 12; i++)
		if (strncasecmp(s, months[i], 3) == 0)
			return i;
	return -1;
}

static int
digits(const char *s, size_t n, int *out)
{
	size_t i;
	int v = 0;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

static time_t
days_from_civil(int y, int m, int d)
{
	/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12). */
	int era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (time_t)era * 146097 + doe - 719468;
}

/* d-mmm-yyyy with 1 or 2 day digits (a leading space allowed in date-time). */
static int
parse_day(const char *s, size_t len, size_t *used, time_t *out)
{
	size_t dl;
	int day, mon, year;

	if (len >= 1 && s[0] == ' ') {
		dl = 1;
		if (len < 2 || digits(s + 1, 1, &day) == -1)
			return -1;
		dl = 2;
	} else if (len >= 2 && s[1] == '-') {
		if (digits(s, 1, &day) == -1)
			return -1;
		dl = 1;
	} else {
		if (len < 2 || digits(s, 2, &day) == -1)
			return -1;
		dl = 2;
	}
	if (len < dl + 9 || s[dl] != '-' || s[dl + 4] != '-')
		return -1;
	if ((mon = month_of(s + dl + 1)) == -1 || digits(s + dl + 5, 4, &year) == -1)
		return -1;
	if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 &&
	    !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)))
		return -1;
	*out = days_from_civil(year, mon + 1, day) * 86400;
	*used = dl + 9;
	return 0;
}

int
imap_parse_date(const char *s, size_t len, time_t *out)
{
	size_t used;

	if (len > 0 && s[0] == ' ')
		return -1;
	if (parse_day(s, len, &used, out) == -1 || used != len)
		return -1;
	return 0;
}

int
imap_parse_datetime(const char *s, size_t len, time_t *out)
{
	size_t used;
	int hh, mm, ss, zh, zm;
	time_t day;

	if (parse_day(s, len, &used, &day) == -1 || len - used != 15)
		return -1;
	s += used;
	if (s[0] != ' ' || s[3] != ':' || s[6] != ':' || s[9] != ' ' || (s[10] != '+' && s[10] != '-'))
		return -1;
	if (digits(s + 1, 2, &hh) == -1 || digits(s + 4, 2, &mm) == -1 || digits(s + 7, 2, &ss) == -1 ||
	    digits(s + 11, 2, &zh) == -1 || digits(s + 13, 2, &zm) == -1)
		return -1;
	if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return -1;
	*out = day + hh * 3600 + mm * 60 + ss - (s[10] == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
	return 0;
}

static int
search_date(struct lex *l, time_t *out)
{
	const char *s;
	size_t n;
	char *q = NULL;

	if (peek(l) == '"') {
		if ((q = quoted(l)) == NULL)
			return -1;
		s = q;
		n = strlen(q);
	} else {
		s = l->p;
		n = atom_span(l, NULL);
		l->p += n;
	}
	if (imap_parse_date(s, n, out) == -1)
		return fail(l, "bad date");
	return 0;
}

/* Search keys. */

static struct imap_search *search_key(struct lex *);

static struct imap_search *
node(struct lex *l, enum imap_search_kind k)
{
	struct imap_search *n = arena_alloc(l->cmd, sizeof(*n));

	if (n == NULL)
		fail(l, "out of memory");
	else
		n->kind = k;
	return n;
}

/* key *(SP key) up to ')' or the end, as an AND node. */
static struct imap_search *
search_keys(struct lex *l, bool in_paren)
{
	struct imap_search *and, *k, *last = NULL;

	if ((and = node(l, SK_AND)) == NULL)
		return NULL;
	for (;;) {
		if ((k = search_key(l)) == NULL)
			return NULL;
		if (last)
			last->next = k;
		else
			and->a = k;
		last = k;
		if (in_paren && peek(l) == ')')
			break;
		if (at_end(l))
			break;
		if (sp(l) == -1)
			return NULL;
	}
	return and;
}

static struct imap_search *
search_key(struct lex *l)
{
	static const struct { const char *w; enum imap_search_kind k; } bare[] = {
		{ "ALL", SK_ALL }, { "ANSWERED", SK_ANSWERED }, { "DELETED", SK_DELETED },
		{ "DRAFT", SK_DRAFT }, { "FLAGGED", SK_FLAGGED }, { "NEW", SK_NEW }, { "OLD", SK_OLD },
		{ "RECENT", SK_RECENT }, { "SEEN", SK_SEEN }, { "UNANSWERED", SK_UNANSWERED },
		{ "UNDELETED", SK_UNDELETED }, { "UNDRAFT", SK_UNDRAFT }, { "UNFLAGGED", SK_UNFLAGGED },
		{ "UNSEEN", SK_UNSEEN },
	}, str[] = {
		{ "BCC", SK_BCC }, { "BODY", SK_BODY }, { "CC", SK_CC }, { "FROM", SK_FROM },
		{ "SUBJECT", SK_SUBJECT }, { "TEXT", SK_TEXT }, { "TO", SK_TO },
	}, date[] = {
		{ "BEFORE", SK_BEFORE }, { "ON", SK_ON }, { "SINCE", SK_SINCE },
		{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON }, { "SENTSINCE", SK_SENTSINCE },
	};
	struct imap_search *n = NULL;
	bool un, larger;
	size_t i;

	if (++l->depth > IMAP_SEARCH_DEPTH) {
		fail(l, "search keys nested too deeply");
		return NULL;
	}
	if (peek(l) == '(') {
		l->p++;
		if ((n = search_keys(l, true)) == NULL || expect(l, ')') == -1)
			n = NULL;
		goto out;
	}
	if (peek(l) == '*' || (peek(l) >= '0' && peek(l) <= '9')) {
		if ((n = node(l, SK_SEQSET)) != NULL && seqset(l, &n->set) == -1)
			n = NULL;
		goto out;
	}
	for (i = 0; i < sizeof(bare) / sizeof(bare[0]); i++)
		if (kw(l, bare[i].w)) {
			n = node(l, bare[i].k);
			goto out;
		}
	for (i = 0; i < sizeof(str) / sizeof(str[0]); i++)
		if (kw(l, str[i].w)) {
			if ((n = node(l, str[i].k)) == NULL || sp(l) == -1 || (n->str = astring(l)) == NULL)
				n = NULL;
			goto out;
		}
	for (i = 0; i < sizeof(date) / sizeof(date[0]); i++)
		if (kw(l, date[i].w)) {
			if ((n = node(l, date[i].k)) == NULL || sp(l) == -1 || search_date(l, &n->date) == -1)
				n = NULL;
			goto out;
		}
	if ((un = kw(l, "UNKEYWORD")) || kw(l, "KEYWORD")) {
		if ((n = node(l, un ? SK_UNKEYWORD : SK_KEYWORD)) == NULL || sp(l) == -1 ||
		    (n->str = atom(l, NULL)) == NULL)
			n = NULL;
		goto out;
	}
	if (kw(l, "HEADER")) {
		if ((n = node(l, SK_HEADER)) == NULL || sp(l) == -1 || (n->field = astring(l)) == NULL ||
		    sp(l) == -1 || (n->str = astring(l)) == NULL)
			n = NULL;
		goto out;
	}
	if ((larger = kw(l, "LARGER")) || kw(l, "SMALLER")) {
		if ((n = node(l, larger ? SK_LARGER : SK_SMALLER)) == NULL || sp(l) == -1 ||
		    number64(l, &n->num, UINT32_MAX) == -1)
			n = NULL;
		goto out;
	}
	if (kw(l, "MODSEQ")) {
		/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer */
		if ((n = node(l, SK_MODSEQ)) == NULL || sp(l) == -1) {
			n = NULL;
			goto out;
		}
		if (peek(l) == '"') {
			if (quoted(l) == NULL || sp(l) == -1 ||
			    !(kw(l, "priv") || kw(l, "shared") || kw(l, "all")) || sp(l) == -1) {
				fail(l, "bad MODSEQ entry");
				n = NULL;
				goto out;
			}
		}
		if (number64(l, &n->num, INT64_MAX) == -1)
			n = NULL;
		goto out;
	}
	if (kw(l, "NOT")) {
		if ((n = node(l, SK_NOT)) == NULL || sp(l) == -1 || (n->a = search_key(l)) == NULL)
			n = NULL;
		goto out;
	}
	if (kw(l, "OR")) {
		if ((n = node(l, SK_OR)) == NULL || sp(l) == -1 || (n->a = search_key(l)) == NULL ||
		    sp(l) == -1 || (n->b = search_key(l)) == NULL)
			n = NULL;
		goto out;
	}
	if (kw(l, "UID")) {
		if ((n = node(l, SK_UIDSET)) == NULL || sp(l) == -1 || seqset(l, &n->set) == -1)
			n = NULL;
		goto out;
	}
	fail(l, "unknown search key");
out:
	l->depth--;
	return n;
}

/* [CHARSET astring SP] keys; charset only US-ASCII and UTF-8 are known. */
static int
search_program(struct lex *l, bool charset_required)
{
	struct imap_cmd *c = l->cmd;

	if (charset_required) {
		if ((c->charset = astring(l)) == NULL || sp(l) == -1)
			return -1;
	} else if (kw(l, "CHARSET")) {
		if (sp(l) == -1 || (c->charset = astring(l)) == NULL || sp(l) == -1)
			return -1;
	}
	if (c->charset && strcasecmp(c->charset, "UTF-8") != 0 && strcasecmp(c->charset, "US-ASCII") != 0)
		return fail(l, "[BADCHARSET (UTF-8 US-ASCII)] unknown charset");
	if ((c->search = search_keys(l, false)) == NULL)
		return -1;
	return 0;
}

static int
cmd_search(struct lex *l)
{
	struct imap_cmd *c = l->cmd;

	if (kw(l, "RETURN")) {
		c->esearch = true;
		if (sp(l) == -1 || expect(l, '(') == -1)
			return -1;
		while (peek(l) != ')') {
			if (kw(l, "MIN"))
				c->search_return |= IMAP_SR_MIN;
			else if (kw(l, "MAX"))
				c->search_return |= IMAP_SR_MAX;
			else if (kw(l, "ALL"))
				c->search_return |= IMAP_SR_ALL;
			else if (kw(l, "COUNT"))
				c->search_return |= IMAP_SR_COUNT;
			else
				return fail(l, "unknown SEARCH return option");
			if (peek(l) == ' ')
				l->p++;
			else if (peek(l) != ')')
				return fail(l, "expected ')'");
		}
		l->p++;
		if (c->search_return == 0)
			c->search_return = IMAP_SR_ALL;	/* RFC 4731: () means ALL */
		if (sp(l) == -1)
			return -1;
	}
	return search_program(l, false);
}

static int
cmd_sort(struct lex *l)
{
	static const struct { const char *w; enum imap_sort_key k; } keys[] = {
		{ "ARRIVAL", SORT_ARRIVAL }, { "CC", SORT_CC }, { "DATE", SORT_DATE },
		{ "FROM", SORT_FROM }, { "SIZE", SORT_SIZE }, { "SUBJECT", SORT_SUBJECT }, { "TO", SORT_TO },
	};
	struct imap_cmd *c = l->cmd;
	size_t i;

	if (expect(l, '(') == -1)
		return -1;
	for (;;) {
		bool rev = false, found = false;

		if (kw(l, "REVERSE")) {
			rev = true;
			if (sp(l) == -1)
				return -1;
		}
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (kw(l, keys[i].w)) {
				found = true;
				break;
			}
		if (!found)
			return fail(l, "unknown sort key");
		if (c->nsort >= IMAP_SORT_MAX)
			return fail(l, "too many sort keys");
		c->sort[c->nsort] = keys[i].k;
		c->sort_reverse[c->nsort++] = rev;
		if (peek(l) == ')')
			break;
		if (sp(l) == -1)
			return -1;
	}
	l->p++;
	if (sp(l) == -1)
		return -1;
	return search_program(l, true);
}

/* FETCH items. */

static int
section_spec(struct lex *l, struct imap_section *s)
{
	const char *start = l->p, *part;
	bool not;
	size_t n;

	/* section-part: nz-number *("." nz-number) */
	part = l->p;
	while (peek(l) >= '1' && peek(l) <= '9') {
		uint32_t v;

		if (nz_number(l, &v) == -1)
			return -1;
		if (peek(l) != '.')
			break;
		if (l->p + 1 < l->end && isdigit((unsigned char)l->p[1]))
			l->p++;
		else
			break;
	}
	n = (size_t)(l->p - part);
	if ((s->part = dupn(l, part, n)) == NULL)
		return -1;
	if (n > 0 && peek(l) == '.')
		l->p++;
	else if (n > 0 && peek(l) == ']')
		goto done;
	if (peek(l) == ']') {
		if (n > 0)
			return fail(l, "bad section");
		s->text = dupn(l, "", 0);
		goto done;
	}
	if ((not = kw(l, "HEADER.FIELDS.NOT")) || kw(l, "HEADER.FIELDS")) {
		const char *save;
		size_t cap = 1;

		s->text = dupn(l, not ? "HEADER.FIELDS.NOT" : "HEADER.FIELDS", not ? 17 : 13);
		if (sp(l) == -1 || expect(l, '(') == -1)
			return -1;
		for (save = l->p; save < l->end && *save != ')'; save++)
			if (*save == ' ')
				cap++;
		if ((s->fields = arena_alloc(l->cmd, cap * sizeof(char *))) == NULL)
			return fail(l, "out of memory");
		for (;;) {
			char *f;

			if ((f = astring(l)) == NULL)
				return -1;
			if (s->nfields >= cap)
				return fail(l, "bad header list");
			s->fields[s->nfields++] = f;
			if (peek(l) == ')')
				break;
			if (sp(l) == -1)
				return -1;
		}
		l->p++;
	} else if (kw(l, "HEADER")) {
		s->text = dupn(l, "HEADER", 6);
	} else if (kw(l, "TEXT")) {
		s->text = dupn(l, "TEXT", 4);
	} else if (n > 0 && kw(l, "MIME")) {
		s->text = dupn(l, "MIME", 4);
	} else
		return fail(l, "bad section");
done:
	if (s->text == NULL && (s->text = dupn(l, "", 0)) == NULL)
		return -1;
	if (peek(l) != ']')
		return fail(l, "bad section");
	if ((s->spec = dupn(l, start, (size_t)(l->p - start))) == NULL)
		return -1;
	/* The reply names header fields in upper case, as sent otherwise. */
	l->p++;
	return 0;
}

static int
fetch_att(struct lex *l)
{
	struct imap_cmd *c = l->cmd;
	struct imap_section *s;
	bool peekf;

	if (kw(l, "FLAGS")) { c->fetch_items |= IMAP_FI_FLAGS; return 0; }
	if (kw(l, "UID")) { c->fetch_items |= IMAP_FI_UID; return 0; }
	if (kw(l, "INTERNALDATE")) { c->fetch_items |= IMAP_FI_INTERNALDATE; return 0; }
	if (kw(l, "RFC822.SIZE")) { c->fetch_items |= IMAP_FI_SIZE; return 0; }
	if (kw(l, "ENVELOPE")) { c->fetch_items |= IMAP_FI_ENVELOPE; return 0; }
	if (kw(l, "BODYSTRUCTURE")) { c->fetch_items |= IMAP_FI_BODYSTRUCTURE; return 0; }
	if (kw(l, "MODSEQ")) { c->fetch_items |= IMAP_FI_MODSEQ; return 0; }
	if (kw(l, "RFC822.HEADER") || kw(l, "RFC822.TEXT") || kw(l, "RFC822")) {
		const char *e = l->p;

		if ((s = arena_alloc(c, sizeof(*s))) == NULL)
			return fail(l, "out of memory");
		s->rfc822 = true;
		s->part = dupn(l, "", 0);
		if (e[-1] == 'R' || e[-1] == 'r') {		/* RFC822.HEADER */
			s->text = dupn(l, "HEADER", 6);
			s->peek = true;
		} else if (e[-1] == 'T' || e[-1] == 't')	/* RFC822.TEXT */
			s->text = dupn(l, "TEXT", 4);
		else
			s->text = dupn(l, "", 0);
		s->spec = s->text;
		goto add;
	}
	peekf = false;
	if (kw(l, "BODY.PEEK"))
		peekf = true;
	else if (!kw(l, "BODY"))
		return fail(l, "unknown fetch item");
	if (peek(l) != '[') {
		if (peekf)
			return fail(l, "BODY.PEEK needs a section");
		c->fetch_items |= IMAP_FI_BODY;
		return 0;
	}
	l->p++;
	if ((s = arena_alloc(c, sizeof(*s))) == NULL)
		return fail(l, "out of memory");
	s->peek = peekf;
	if (section_spec(l, s) == -1)
		return -1;
	if (peek(l) == '<') {
		uint64_t off, len;

		l->p++;
		if (number64(l, &off, UINT32_MAX) == -1 || expect(l, '.') == -1 ||
		    number64(l, &len, UINT32_MAX) == -1 || expect(l, '>') == -1)
			return -1;
		if (len == 0)
			return fail(l, "a partial of length 0");
		s->partial = true;
		s->off = (uint32_t)off;
		s->len = (uint32_t)len;
	}
add:
	{
		struct imap_section *v = arena_alloc(c, (c->nsections + 1) * sizeof(*v));

		if (v == NULL)
			return fail(l, "out of memory");
		if (c->nsections)
			memcpy(v, c->sections, c->nsections * sizeof(*v));
		v[c->nsections++] = *s;
		c->sections = v;
	}
	return 0;
}

static int
cmd_fetch(struct lex *l)
{
	struct imap_cmd *c = l->cmd;

	if (seqset(l, &c->set) == -1 || sp(l) == -1)
		return -1;
	if (kw(l, "ALL"))
		c->fetch_items |= IMAP_FI_FLAGS | IMAP_FI_INTERNALDATE | IMAP_FI_SIZE | IMAP_FI_ENVELOPE;
	else if (kw(l, "FAST"))
		c->fetch_items |= IMAP_FI_FLAGS | IMAP_FI_INTERNALDATE | IMAP_FI_SIZE;
	else if (kw(l, "FULL"))
		c->fetch_items |= IMAP_FI_FLAGS | IMAP_FI_INTERNALDATE | IMAP_FI_SIZE | IMAP_FI_ENVELOPE |
		    IMAP_FI_BODY;
	else if (peek(l) == '(') {
		l->p++;
		for (;;) {
			if (fetch_att(l) == -1)
				return -1;
			if (peek(l) == ')')
				break;
			if (sp(l) == -1)
				return -1;
		}
		l->p++;
	} else if (fetch_att(l) == -1)
		return -1;
	if (peek(l) == ' ') {
		/* fetch-modifiers: (CHANGEDSINCE n) */
		l->p++;
		if (expect(l, '(') == -1 || !kw(l, "CHANGEDSINCE"))
			return fail(l, "unknown FETCH modifier");
		if (sp(l) == -1 || number64(l, &c->changedsince, INT64_MAX) == -1 || expect(l, ')') == -1)
			return -1;
		if (c->changedsince == 0)
			return fail(l, "CHANGEDSINCE needs a positive modseq");
		c->fetch_items |= IMAP_FI_MODSEQ;
	}
	return 0;
}

static int
cmd_store(struct lex *l)
{
	struct imap_cmd *c = l->cmd;

	if (seqset(l, &c->set) == -1 || sp(l) == -1)
		return -1;
	if (peek(l) == '(') {
		l->p++;
		if (!kw(l, "UNCHANGEDSINCE"))
			return fail(l, "unknown STORE modifier");
		if (sp(l) == -1 || number64(l, &c->unchangedsince, INT64_MAX) == -1 ||
		    expect(l, ')') == -1 || sp(l) == -1)
			return -1;
		c->has_unchangedsince = true;
	}
	c->store_op = 0;
	if (peek(l) == '+') {
		c->store_op = 1;
		l->p++;
	} else if (peek(l) == '-') {
		c->store_op = 2;
		l->p++;
	}
	if (kw(l, "FLAGS.SILENT"))
		c->silent = true;
	else if (!kw(l, "FLAGS"))
		return fail(l, "expected FLAGS, +FLAGS or -FLAGS");
	if (sp(l) == -1)
		return -1;
	return flag_list(l, &c->flags, true);
}

static int
cmd_append(struct lex *l)
{
	struct imap_cmd *c = l->cmd;

	if ((c->s1 = astring(l)) == NULL || sp(l) == -1)
		return -1;
	if (peek(l) == '(') {
		if (flag_list(l, &c->flags, false) == -1 || sp(l) == -1)
			return -1;
	}
	if (peek(l) == '"') {
		char *d = quoted(l);

		if (d == NULL)
			return -1;
		if (imap_parse_datetime(d, strlen(d), &c->date) == -1)
			return fail(l, "bad date-time");
		if (sp(l) == -1)
			return -1;
	}
	if (peek(l) != '{')
		return fail(l, "expected the message as a literal");
	return literal(l, &c->literal, &c->literal_len);
}

static int
status_items(struct lex *l, unsigned *items)
{
	if (expect(l, '(') == -1)
		return -1;
	for (;;) {
		if (kw(l, "MESSAGES"))
			*items |= IMAP_ST_MESSAGES;
		else if (kw(l, "RECENT"))
			*items |= IMAP_ST_RECENT;
		else if (kw(l, "UIDNEXT"))
			*items |= IMAP_ST_UIDNEXT;
		else if (kw(l, "UIDVALIDITY"))
			*items |= IMAP_ST_UIDVALIDITY;
		else if (kw(l, "UNSEEN"))
			*items |= IMAP_ST_UNSEEN;
		else if (kw(l, "HIGHESTMODSEQ"))
			*items |= IMAP_ST_HIGHESTMODSEQ;
		else if (kw(l, "SIZE"))
			*items |= IMAP_ST_SIZE;
		else
			return fail(l, "unknown status item");
		if (peek(l) == ')')
			break;
		if (sp(l) == -1)
			return -1;
	}
	l->p++;
	return 0;
}

static int
add_pattern(struct lex *l)
{
	struct imap_cmd *c = l->cmd;
	char **v, *p;

	if ((p = list_mailbox(l)) == NULL)
		return -1;
	if ((v = arena_alloc(c, (c->npatterns + 1) * sizeof(char *))) == NULL)
		return fail(l, "out of memory");
	if (c->npatterns)
		memcpy(v, c->patterns, c->npatterns * sizeof(char *));
	v[c->npatterns++] = p;
	c->patterns = v;
	return 0;
}

static int
cmd_list(struct lex *l, bool lsub)
{
	struct imap_cmd *c = l->cmd;

	if (!lsub && peek(l) == '(') {
		/* list-select-opts */
		l->p++;
		while (peek(l) != ')') {
			if (kw(l, "SUBSCRIBED"))
				c->list_select |= IMAP_LS_SUBSCRIBED;
			else if (kw(l, "REMOTE"))
				c->list_select |= IMAP_LS_REMOTE;
			else if (kw(l, "RECURSIVEMATCH"))
				c->list_select |= IMAP_LS_RECURSIVEMATCH;
			else if (kw(l, "SPECIAL-USE"))
				c->list_select |= IMAP_LS_SPECIALUSE;
			else
				return fail(l, "unknown LIST selection option");
			if (peek(l) == ' ')
				l->p++;
			else if (peek(l) != ')')
				return fail(l, "expected ')'");
		}
		l->p++;
		if (sp(l) == -1)
			return -1;
		if ((c->list_select & IMAP_LS_RECURSIVEMATCH) &&
		    !(c->list_select & (IMAP_LS_SUBSCRIBED | IMAP_LS_SPECIALUSE)))
			return fail(l, "RECURSIVEMATCH needs another selection option");
	}
	if ((c->s1 = astring(l)) == NULL || sp(l) == -1)
		return -1;
	if (!lsub && peek(l) == '(') {
		l->p++;
		for (;;) {
			if (add_pattern(l) == -1)
				return -1;
			if (peek(l) == ')')
				break;
			if (sp(l) == -1)
				return -1;
		}
		l->p++;
	} else if (add_pattern(l) == -1)
		return -1;
	if (!lsub && peek(l) == ' ') {
		l->p++;
		if (!kw(l, "RETURN") || sp(l) == -1 || expect(l, '(') == -1)
			return fail(l, "expected RETURN (...)");
		while (peek(l) != ')') {
			if (kw(l, "SUBSCRIBED"))
				c->list_return |= IMAP_LR_SUBSCRIBED;
			else if (kw(l, "CHILDREN"))
				c->list_return |= IMAP_LR_CHILDREN;
			else if (kw(l, "SPECIAL-USE"))
				c->list_return |= IMAP_LR_SPECIALUSE;
			else if (kw(l, "STATUS")) {
				c->list_return |= IMAP_LR_STATUS;
				if (sp(l) == -1 || status_items(l, &c->status_items) == -1)
					return -1;
			} else
				return fail(l, "unknown LIST return option");
			if (peek(l) == ' ')
				l->p++;
			else if (peek(l) != ')')
				return fail(l, "expected ')'");
		}
		l->p++;
	}
	return 0;
}

/* A list of atoms or strings into cmd->atoms. */
static int
add_atom(struct lex *l, char *a)
{
	struct imap_cmd *c = l->cmd;
	char **v;

	if ((v = arena_alloc(c, (c->natoms + 1) * sizeof(char *))) == NULL)
		return fail(l, "out of memory");
	if (c->natoms)
		memcpy(v, c->atoms, c->natoms * sizeof(char *));
	v[c->natoms++] = a;
	c->atoms = v;
	return 0;
}

static int
cmd_id(struct lex *l)
{
	if (is_nil(l))
		return 0;
	if (expect(l, '(') == -1)
		return -1;
	if (peek(l) == ')') {
		l->p++;
		return 0;
	}
	for (;;) {
		char *k, *v = NULL;

		if ((k = string(l)) == NULL || sp(l) == -1)
			return -1;
		if (!is_nil(l) && (v = string(l)) == NULL)
			return -1;
		if (strlen(k) > 30 || (v && strlen(v) > 1024))
			return fail(l, "ID field too long");
		if (l->cmd->natoms >= 60)
			return fail(l, "too many ID fields");
		if (add_atom(l, k) == -1 || add_atom(l, v) == -1)
			return -1;
		if (peek(l) == ')')
			break;
		if (sp(l) == -1)
			return -1;
	}
	l->p++;
	return 0;
}

static const struct {
	const char	*name;
	enum imap_verb	 verb;
} verbs[] = {
	{ "CAPABILITY", IMAP_CAPABILITY }, { "NOOP", IMAP_NOOP }, { "LOGOUT", IMAP_LOGOUT },
	{ "STARTTLS", IMAP_STARTTLS }, { "AUTHENTICATE", IMAP_AUTHENTICATE }, { "LOGIN", IMAP_LOGIN },
	{ "SELECT", IMAP_SELECT }, { "EXAMINE", IMAP_EXAMINE }, { "CREATE", IMAP_CREATE },
	{ "DELETE", IMAP_DELETE }, { "RENAME", IMAP_RENAME }, { "SUBSCRIBE", IMAP_SUBSCRIBE },
	{ "UNSUBSCRIBE", IMAP_UNSUBSCRIBE }, { "LIST", IMAP_LIST }, { "LSUB", IMAP_LSUB },
	{ "STATUS", IMAP_STATUS }, { "APPEND", IMAP_APPEND }, { "CHECK", IMAP_CHECK },
	{ "CLOSE", IMAP_CLOSE }, { "EXPUNGE", IMAP_EXPUNGE }, { "SEARCH", IMAP_SEARCH },
	{ "FETCH", IMAP_FETCH }, { "STORE", IMAP_STORE }, { "COPY", IMAP_COPY }, { "MOVE", IMAP_MOVE },
	{ "IDLE", IMAP_IDLE }, { "NAMESPACE", IMAP_NAMESPACE }, { "ENABLE", IMAP_ENABLE },
	{ "ID", IMAP_ID }, { "UNSELECT", IMAP_UNSELECT }, { "GETQUOTA", IMAP_GETQUOTA },
	{ "GETQUOTAROOT", IMAP_GETQUOTAROOT }, { "SETQUOTA", IMAP_SETQUOTA }, { "SORT", IMAP_SORT },
};

static int
parse_args(struct lex *l)
{
	struct imap_cmd *c = l->cmd;

	switch (c->verb) {
	case IMAP_CAPABILITY: case IMAP_NOOP: case IMAP_LOGOUT: case IMAP_STARTTLS: case IMAP_CHECK:
	case IMAP_CLOSE: case IMAP_EXPUNGE: case IMAP_IDLE: case IMAP_NAMESPACE: case IMAP_UNSELECT:
	case IMAP_NONE:
		return 0;
	case IMAP_UID_EXPUNGE:
		return sp(l) == -1 || seqset(l, &c->set) == -1 ? -1 : 0;
	case IMAP_AUTHENTICATE:
		if (sp(l) == -1 || (c->s1 = atom(l, NULL)) == NULL)
			return -1;
		if (peek(l) == ' ') {
			size_t n;

			l->p++;
			/* initial response: base64 or "=" */
			n = atom_span(l, NULL);
			if (n == 0)
				return fail(l, "bad initial response");
			c->s2 = dupn(l, l->p, n);
			c->s2_given = true;
			l->p += n;
		}
		return 0;
	case IMAP_LOGIN:
		if (sp(l) == -1 || (c->s1 = astring(l)) == NULL || sp(l) == -1 || (c->s2 = astring(l)) == NULL)
			return -1;
		return 0;
	case IMAP_SELECT: case IMAP_EXAMINE:
		if (sp(l) == -1 || (c->s1 = astring(l)) == NULL)
			return -1;
		if (peek(l) == ' ') {
			l->p++;
			if (expect(l, '(') == -1)
				return -1;
			while (peek(l) != ')') {
				if (!kw(l, "CONDSTORE"))
					return fail(l, "unknown SELECT parameter");
				c->condstore = true;
				if (peek(l) == ' ')
					l->p++;
				else if (peek(l) != ')')
					return fail(l, "expected ')'");
			}
			l->p++;
		}
		return 0;
	case IMAP_CREATE:
		if (sp(l) == -1 || (c->s1 = astring(l)) == NULL)
			return -1;
		if (peek(l) == ' ') {
			/* CREATE-SPECIAL-USE: (USE (\Sent)) */
			l->p++;
			if (expect(l, '(') == -1 || !kw(l, "USE") || sp(l) == -1 || expect(l, '(') == -1)
				return fail(l, "expected (USE (...))");
			if (peek(l) != '\\')
				return fail(l, "expected a special-use attribute");
			c->s2 = atom(l, "\\");
			c->s2_given = true;
			if (c->s2 == NULL || expect(l, ')') == -1 || expect(l, ')') == -1)
				return -1;
		}
		return 0;
	case IMAP_DELETE: case IMAP_SUBSCRIBE: case IMAP_UNSUBSCRIBE: case IMAP_GETQUOTAROOT:
	case IMAP_GETQUOTA:
		return sp(l) == -1 || (c->s1 = astring(l)) == NULL ? -1 : 0;
	case IMAP_SETQUOTA:
		/* Parsed loosely: the reply refuses it whatever it says. */
		if (sp(l) == -1 || (c->s1 = astring(l)) == NULL || sp(l) == -1 || expect(l, '(') == -1)
			return -1;
		while (l->p < l->end && *l->p != ')')
			l->p++;
		return expect(l, ')');
	case IMAP_RENAME:
		if (sp(l) == -1 || (c->s1 = astring(l)) == NULL || sp(l) == -1 || (c->s2 = astring(l)) == NULL)
			return -1;
		return 0;
	case IMAP_LIST: case IMAP_LSUB:
		return sp(l) == -1 ? -1 : cmd_list(l, c->verb == IMAP_LSUB);
	case IMAP_STATUS:
		if (sp(l) == -1 || (c->s1 = astring(l)) == NULL || sp(l) == -1)
			return -1;
		return status_items(l, &c->status_items);
	case IMAP_APPEND:
		return sp(l) == -1 ? -1 : cmd_append(l);
	case IMAP_SEARCH:
		return sp(l) == -1 ? -1 : cmd_search(l);
	case IMAP_SORT:
		return sp(l) == -1 ? -1 : cmd_sort(l);
	case IMAP_FETCH:
		return sp(l) == -1 ? -1 : cmd_fetch(l);
	case IMAP_STORE:
		return sp(l) == -1 ? -1 : cmd_store(l);
	case IMAP_COPY: case IMAP_MOVE:
		if (sp(l) == -1 || seqset(l, &c->set) == -1 || sp(l) == -1 || (c->s1 = astring(l)) == NULL)
			return -1;
		return 0;
	case IMAP_ENABLE:
		do {
			char *a;

			if (sp(l) == -1 || (a = atom(l, NULL)) == NULL || add_atom(l, a) == -1)
				return -1;
		} while (peek(l) == ' ');
		return 0;
	case IMAP_ID:
		return sp(l) == -1 ? -1 : cmd_id(l);
	}
	return fail(l, "unknown command");
}

int
imap_parse_command(const char *text, size_t len, struct imap_cmd *cmd, char *err, size_t errlen)
{
	struct lex l = { .p = text, .end = text + len, .cmd = cmd, .err = err, .errlen = errlen };
	size_t n, i;

	memset(cmd, 0, sizeof(*cmd));
	err[0] = '\0';
	/* tag = 1*<any ASTRING-CHAR except "+"> */
	n = atom_span(&l, "]");
	if (n == 0 || memchr(text, '+', n) != NULL)
		return fail(&l, "bad tag");
	if (n > IMAP_TAG_MAX)
		return fail(&l, "tag too long");
	memcpy(cmd->tag, text, n);
	cmd->tag[n] = '\0';
	l.p += n;
	if (sp(&l) == -1)
		return fail(&l, "missing command");
	if (kw(&l, "UID")) {
		cmd->uid = true;
		if (sp(&l) == -1)
			return -1;
	}
	n = atom_span(&l, NULL);
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == n && strncasecmp(l.p, verbs[i].name, n) == 0) {
			cmd->verb = verbs[i].verb;
			break;
		}
	if (cmd->verb == IMAP_NONE)
		return fail(&l, "unknown command");
	l.p += n;
	if (cmd->uid) {
		switch (cmd->verb) {
		case IMAP_FETCH: case IMAP_STORE: case IMAP_COPY: case IMAP_MOVE: case IMAP_SEARCH:
		case IMAP_SORT:
			break;
		case IMAP_EXPUNGE:
			cmd->verb = IMAP_UID_EXPUNGE;
			break;
		default:
			return fail(&l, "unknown UID command");
		}
	}
	if (parse_args(&l) == -1)
		goto bad;
	if (!at_end(&l)) {
		fail(&l, "unexpected text after the command");
		goto bad;
	}
	return 0;
bad:
	imap_cmd_free(cmd);
	return -1;
}
