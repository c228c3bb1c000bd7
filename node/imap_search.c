/* imap_search: key evaluation over a message's row and, when a key needs
 * it, its text (full-text keys scan the message until the indexing
 * service exists). Header values are compared with their RFC 2047 words
 * decoded; comparisons of strings are ASCII case-insensitive. */
#include "imap_search.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "rfc2047.h"
#include "store.h"

size_t
imap_header_len(const char *msg, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (msg[i] != '\n')
			continue;
		if (i + 1 < len && msg[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && msg[i + 1] == '\r' && msg[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

/* The start of each field line; *flen gets the whole field with folds. */
static const char *
next_field(const char *p, const char *end, size_t *flen)
{
	const char *s = p;

	if (p >= end || *p == '\r' || *p == '\n')
		return NULL;
	for (;;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));

		if (nl == NULL) {
			s = end;
			break;
		}
		s = nl + 1;
		if (s >= end || (*s != ' ' && *s != '\t'))
			break;
	}
	*flen = (size_t)(s - p);
	return p;
}

static bool
field_named(const char *f, size_t flen, const char *name, size_t nlen)
{
	size_t i = nlen;

	if (flen <= nlen || strncasecmp(f, name, nlen) != 0)
		return false;
	while (i < flen && (f[i] == ' ' || f[i] == '\t'))
		i++;
	return i < flen && f[i] == ':';
}

int
imap_header_get(const char *hdr, size_t len, const char *name, struct buf *out)
{
	const char *p = hdr, *end = hdr + len, *f;
	size_t flen, nlen = strlen(name);
	bool found = false;

	buf_reset(out);
	while ((f = next_field(p, end, &flen)) != NULL) {
		if (field_named(f, flen, name, nlen)) {
			const char *v = memchr(f, ':', flen) + 1, *e = f + flen;
			bool space = false;

			if (found && buf_puts(out, ", ") == -1)
				return -1;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			for (; v < e; v++) {
				if (*v == '\r' || *v == '\n' || *v == '\t' || *v == ' ') {
					space = true;
					continue;
				}
				if (space && buf_len(out) > 0 && buf_puts(out, " ") == -1)
					return -1;
				space = false;
				if (buf_append(out, v, 1) == -1)
					return -1;
			}
			found = true;
		}
		p = f + flen;
	}
	(void)buf_cstr(out);
	return found ? 0 : -1;
}

int
imap_header_filter(const char *hdr, size_t len, char *const *fields, size_t nfields, bool not,
    struct buf *out)
{
	const char *p = hdr, *end = hdr + len, *f;
	size_t flen, i;

	while ((f = next_field(p, end, &flen)) != NULL) {
		bool in = false;

		for (i = 0; i < nfields && !in; i++)
			in = field_named(f, flen, fields[i], strlen(fields[i]));
		if (in != not && buf_append(out, f, flen) == -1)
			return -1;
		p = f + flen;
	}
	return buf_puts(out, "\r\n");
}

static bool
contains(const char *hay, size_t hlen, const char *needle)
{
	size_t nlen = strlen(needle), i;

	if (nlen == 0)
		return true;
	if (hlen < nlen)
		return false;
	for (i = 0; i + nlen <= hlen; i++)
		if (tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[0]) &&
		    strncasecmp(hay + i, needle, nlen) == 0)
			return true;
	return false;
}

static bool
load(struct imap_search_msg *m)
{
	if (m->loaded && m->header_only)
		imap_search_msg_free(m);	/* now the body is wanted too */
	if (!m->loaded && !m->load_failed) {
		buf_init(&m->text, 0);
		if (store_read_body(m->path, 0, UINT64_MAX, &m->text) == -1)
			m->load_failed = true;
		else
			m->loaded = true;
	}
	return m->loaded;
}

/* The header block, read alone when the part index gives its length. */
static bool
load_header(struct imap_search_msg *m, const char **h, size_t *hlen)
{
	size_t off, len;

	if (!m->loaded && !m->load_failed && m->index != NULL &&
	    mime_index_section(m->index, "HEADER", &off, &len) == 0 && off == 0) {
		buf_init(&m->text, 0);
		if (store_read_body(m->path, 0, len, &m->text) == -1)
			m->load_failed = true;
		else
			m->loaded = m->header_only = true;
	}
	if (!m->header_only && !load(m))
		return false;
	if (!m->loaded)
		return false;
	*h = buf_data(&m->text);
	*hlen = imap_header_len(*h, buf_len(&m->text));
	return true;
}

void
imap_search_msg_free(struct imap_search_msg *m)
{
	if (m->loaded || m->load_failed)
		buf_free(&m->text);
	m->loaded = m->load_failed = m->header_only = false;
}

/* A field's values, unfolded and decoded into out; false when absent. */
static bool
header_value(struct imap_search_msg *m, const char *name, struct buf *out)
{
	struct buf raw;
	const char *h;
	size_t hlen;
	bool r = false;

	if (!load_header(m, &h, &hlen))
		return false;
	buf_init(&raw, 0);
	if (imap_header_get(h, hlen, name, &raw) == 0 &&
	    rfc2047_decode(buf_data(&raw), buf_len(&raw), out) == 0)
		r = true;
	buf_free(&raw);
	return r;
}

static bool
header_has(struct imap_search_msg *m, const char *name, const char *needle)
{
	struct buf v;
	bool r;

	buf_init(&v, 0);
	r = header_value(m, name, &v) && contains(buf_data(&v), buf_len(&v), needle);
	buf_free(&v);
	return r;
}

static bool
in_set(const struct imap_seqset *s, uint32_t v, uint32_t max)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		uint32_t lo = s->r[i].lo == IMAP_SEQ_STAR ? max : s->r[i].lo;
		uint32_t hi = s->r[i].hi == IMAP_SEQ_STAR ? max : s->r[i].hi;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		if (v >= lo && v <= hi)
			return true;
	}
	return false;
}

static bool
has_keyword(const char *list, const char *kw)
{
	size_t n = strlen(kw);
	const char *p = list;

	while (p && *p) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncasecmp(p, kw, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

static time_t
day_of(int64_t t)
{
	int64_t d = t / 86400;

	if (t < 0 && t % 86400)
		d--;
	return (time_t)(d * 86400);
}

static bool
sent_day(struct imap_search_msg *m, time_t *day)
{
	struct buf v;
	time_t instant;
	bool r = false;

	const char *h;
	size_t hlen;

	if (!load_header(m, &h, &hlen))
		return false;
	buf_init(&v, 0);
	if (imap_header_get(h, hlen, "Date", &v) == 0 &&
	    imap_rfc5322_date(buf_cstr(&v), &instant, day) == 0)
		r = true;
	buf_free(&v);
	if (!r)
		*day = day_of(m->internal_date);	/* no usable Date: the arrival day */
	return true;
}

bool
imap_search_match(const struct imap_search *k, struct imap_search_msg *m, uint32_t maxseq,
    uint32_t maxuid)
{
	const struct imap_search *c;
	time_t d;

	switch (k->kind) {
	case SK_ALL:
		return true;
	case SK_AND:
		for (c = k->a; c; c = c->next)
			if (!imap_search_match(c, m, maxseq, maxuid))
				return false;
		return true;
	case SK_OR:
		return imap_search_match(k->a, m, maxseq, maxuid) || imap_search_match(k->b, m, maxseq, maxuid);
	case SK_NOT:
		return !imap_search_match(k->a, m, maxseq, maxuid);
	case SK_SEQSET:
		return in_set(&k->set, m->seq, maxseq);
	case SK_UIDSET:
		return in_set(&k->set, m->uid, maxuid);
	case SK_ANSWERED:
		return m->flags & IMAP_FLAG_ANSWERED;
	case SK_DELETED:
		return m->flags & IMAP_FLAG_DELETED;
	case SK_DRAFT:
		return m->flags & IMAP_FLAG_DRAFT;
	case SK_FLAGGED:
		return m->flags & IMAP_FLAG_FLAGGED;
	case SK_SEEN:
		return m->flags & IMAP_FLAG_SEEN;
	case SK_RECENT:
		return m->recent;
	case SK_NEW:
		return m->recent && !(m->flags & IMAP_FLAG_SEEN);
	case SK_OLD:
		return !m->recent;
	case SK_UNANSWERED:
		return !(m->flags & IMAP_FLAG_ANSWERED);
	case SK_UNDELETED:
		return !(m->flags & IMAP_FLAG_DELETED);
	case SK_UNDRAFT:
		return !(m->flags & IMAP_FLAG_DRAFT);
	case SK_UNFLAGGED:
		return !(m->flags & IMAP_FLAG_FLAGGED);
	case SK_UNSEEN:
		return !(m->flags & IMAP_FLAG_SEEN);
	case SK_KEYWORD:
		return has_keyword(m->keywords, k->str);
	case SK_UNKEYWORD:
		return !has_keyword(m->keywords, k->str);
	case SK_BCC:
		return header_has(m, "Bcc", k->str);
	case SK_CC:
		return header_has(m, "Cc", k->str);
	case SK_FROM:
		return header_has(m, "From", k->str);
	case SK_TO:
		return header_has(m, "To", k->str);
	case SK_SUBJECT:
		return header_has(m, "Subject", k->str);
	case SK_HEADER:
		if (*k->str == '\0') {
			struct buf v;
			bool r;

			/* An empty string matches every message with the field. */
			buf_init(&v, 0);
			r = header_value(m, k->field, &v);
			buf_free(&v);
			return r;
		}
		return header_has(m, k->field, k->str);
	case SK_BODY: {
		size_t h;

		if (!load(m))
			return false;
		h = imap_header_len(buf_data(&m->text), buf_len(&m->text));
		return contains(buf_data(&m->text) + h, buf_len(&m->text) - h, k->str);
	}
	case SK_TEXT:
		return load(m) && contains(buf_data(&m->text), buf_len(&m->text), k->str);
	case SK_BEFORE:
		return day_of(m->internal_date) < k->date;
	case SK_ON:
		return day_of(m->internal_date) == k->date;
	case SK_SINCE:
		return day_of(m->internal_date) >= k->date;
	case SK_SENTBEFORE:
		return sent_day(m, &d) && d < k->date;
	case SK_SENTON:
		return sent_day(m, &d) && d == k->date;
	case SK_SENTSINCE:
		return sent_day(m, &d) && d >= k->date;
	case SK_LARGER:
		return m->size > k->num;
	case SK_SMALLER:
		return m->size < k->num;
	case SK_MODSEQ:
		return m->modseq >= k->num;
	}
	return false;
}

bool
imap_search_has_modseq(const struct imap_search *k)
{
	const struct imap_search *c;

	if (k == NULL)
		return false;
	if (k->kind == SK_MODSEQ)
		return true;
	if (k->kind == SK_AND) {
		for (c = k->a; c; c = c->next)
			if (imap_search_has_modseq(c))
				return true;
		return false;
	}
	return imap_search_has_modseq(k->a) || imap_search_has_modseq(k->b);
}

/* A decimal field of a date: its value, or -1 when it is not in 0..max
 * (a long run of digits must not wrap into a plausible int). */
static int
date_field(const char *p, char **end, long max)
{
	long v = strtol(p, end, 10);

	return *end == p || v < 0 || v > max ? -1 : (int)v;
}

/* RFC 5322 dates: [day-of-week ","] day month year hour ":" min [":" sec] zone. */
int
imap_rfc5322_date(const char *s, time_t *instant, time_t *day)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
	    "sep", "oct", "nov", "dec" };
	int dd, mon = -1, yy, hh = 0, mi = 0, ss = 0, zone = 0, i;
	char mname[4];
	const char *p = s, *comma = strchr(s, ',');
	char *end;
	time_t days;
	char dstr[40];

	if (comma)
		p = comma + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	dd = date_field(p, &end, 31);
	if (dd < 1)
		return -1;
	p = end;
	while (*p == ' ')
		p++;
	if (strlen(p) < 3)
		return -1;
	for (i = 0; i < 3; i++)
		mname[i] = (char)tolower((unsigned char)p[i]);
	mname[3] = '\0';
	for (i = 0; i < 12; i++)
		if (strcmp(mname, months[i]) == 0)
			mon = i;
	if (mon < 0)
		return -1;
	p += 3;
	if ((yy = date_field(p, &end, 9999)) < 0)
		return -1;
	if (end - p <= 2)
		yy += yy < 50 ? 2000 : 1900;
	else if (end - p == 3)
		yy += 1900;
	p = end;
	hh = date_field(p, &end, 99);
	if (end != p && *end == ':') {
		p = end + 1;
		mi = date_field(p, &end, 99);
		p = end;
		if (*p == ':') {
			ss = date_field(p + 1, &end, 99);
			p = end;
		}
		while (*p == ' ')
			p++;
		if (*p == '+' || *p == '-') {
			long z = strtol(p + 1, &end, 10);

			if (end - p == 5)
				zone = (int)((z / 100) * 3600 + (z % 100) * 60) * (*p == '-' ? -1 : 1);
		}
	} else
		hh = 0;
	if (yy < 1000 || yy > 9999 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 60)
		return -1;
	snprintf(dstr, sizeof(dstr), "%d-%.3s-%04d", dd, months[mon], yy);
	if (imap_parse_date(dstr, strlen(dstr), &days) == -1)
		return -1;
	*day = days;
	*instant = days + hh * 3600 + mi * 60 + ss - zone;
	return 0;
}

/* Sorting. */

struct sort_ctx {
	const enum imap_sort_key	*keys;
	const bool			*reverse;
	size_t				 nkeys;
};

struct sort_item {
	struct imap_search_msg	*m;
	char			*str[IMAP_SORT_MAX];
	int64_t			 num[IMAP_SORT_MAX];
};

/* RFC 5256 base subject (of the decoded value), simplified: drop leading Re:/Fw:/Fwd: and
 * [blob] prefixes, trailing "(fwd)", and white space; lower case. */
static char *
base_subject(const char *s)
{
	char *out = strdup(s), *p, *e;
	bool again = true;

	if (out == NULL)
		return NULL;
	p = out;
	while (again) {
		again = false;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "re:", 3) == 0) {
			p += 3;
			again = true;
		} else if (strncasecmp(p, "fwd:", 4) == 0) {
			p += 4;
			again = true;
		} else if (strncasecmp(p, "fw:", 3) == 0) {
			p += 3;
			again = true;
		} else if (*p == '[' && (e = strchr(p, ']')) != NULL && e[1] != '\0') {
			p = e + 1;
			again = true;
		}
	}
	memmove(out, p, strlen(p) + 1);
	e = out + strlen(out);
	while (e > out && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (e - out >= 5 && strcasecmp(e - 5, "(fwd)") == 0)
		e[-5] = '\0';
	for (p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

/* The first address's mailbox part ("local" of local@domain), for FROM,
 * TO and CC (RFC 5256 addr-mailbox). */
static char *
first_mailbox(const char *v)
{
	const char *lt = strchr(v, '<'), *p = lt ? lt + 1 : v, *e;
	char *out;
	size_t n, i;

	while (*p == ' ')
		p++;
	for (e = p; *e && *e != '@' && *e != '>' && *e != ',' && *e != ' '; e++)
		;
	n = (size_t)(e - p);
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[n] = '\0';
	return out;
}

static int
sort_cmp(const void *a, const void *b, void *arg)
{
	const struct sort_item *x = a, *y = b;
	const struct sort_ctx *sort_current = arg;
	size_t i;

	for (i = 0; i < sort_current->nkeys; i++) {
		int c;

		if (x->str[i] || y->str[i])
			c = strcmp(x->str[i] ? x->str[i] : "", y->str[i] ? y->str[i] : "");
		else
			c = x->num[i] < y->num[i] ? -1 : x->num[i] > y->num[i];
		if (c != 0)
			return sort_current->reverse[i] ? -c : c;
	}
	return x->m->seq < y->m->seq ? -1 : x->m->seq > y->m->seq;
}

int
imap_sort_msgs(struct imap_search_msg *msgs, size_t n, const enum imap_sort_key *keys,
    const bool *reverse, size_t nkeys)
{
	struct sort_ctx ctx = { keys, reverse, nkeys };
	struct sort_item *items;
	struct imap_search_msg *copy;
	struct buf v, dec;
	size_t i, k;
	int rc = -1;

	if (n == 0)
		return 0;
	if ((items = calloc(n, sizeof(*items))) == NULL)
		return -1;
	if ((copy = calloc(n, sizeof(*copy))) == NULL) {
		free(items);
		return -1;
	}
	buf_init(&v, 0);
	buf_init(&dec, 0);
	for (i = 0; i < n; i++) {
		struct imap_search_msg *m = &msgs[i];
		const char *hdr = NULL;
		size_t hlen = 0;

		items[i].m = m;
		for (k = 0; k < nkeys; k++) {
			const char *field = NULL;

			switch (keys[k]) {
			case SORT_ARRIVAL:
				items[i].num[k] = m->internal_date;
				continue;
			case SORT_SIZE:
				items[i].num[k] = (int64_t)m->size;
				continue;
			case SORT_DATE:
				field = "Date";
				break;
			case SORT_FROM:
				field = "From";
				break;
			case SORT_TO:
				field = "To";
				break;
			case SORT_CC:
				field = "Cc";
				break;
			case SORT_SUBJECT:
				field = "Subject";
				break;
			}
			if (hdr == NULL && !load_header(m, &hdr, &hlen))
				hdr = NULL;
			if (hdr == NULL || imap_header_get(hdr, hlen, field, &v) == -1) {
				buf_reset(&v);
				(void)buf_cstr(&v);
			}
			/* RFC 5256 compares subjects with their encoded words decoded. */
			if (keys[k] == SORT_SUBJECT) {
				buf_reset(&dec);
				if (rfc2047_decode(buf_data(&v), buf_len(&v), &dec) == -1)
					goto out;
			}
			if (keys[k] == SORT_DATE) {
				time_t inst, day;

				items[i].num[k] = imap_rfc5322_date(buf_cstr(&v), &inst, &day) == 0 ?
				    inst : m->internal_date;
			} else if (keys[k] == SORT_SUBJECT) {
				if ((items[i].str[k] = base_subject(buf_cstr(&dec))) == NULL)
					goto out;
			} else if ((items[i].str[k] = first_mailbox(buf_cstr(&v))) == NULL)
				goto out;
		}
		/* The text is not needed any more once the keys are taken. */
		imap_search_msg_free(m);
	}
	qsort_r(items, n, sizeof(*items), sort_cmp, &ctx);
	for (i = 0; i < n; i++)
		copy[i] = *items[i].m;
	memcpy(msgs, copy, n * sizeof(*msgs));
	rc = 0;
out:
	for (i = 0; i < n; i++)
		for (k = 0; k < nkeys; k++)
			free(items[i].str[k]);
	free(items);
	free(copy);
	buf_free(&v);
	buf_free(&dec);
	return rc;
}
