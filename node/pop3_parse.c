/* pop3_parse: POP3 command lines and the multi-line message transform. */
#include "pop3_parse.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

static const struct {
	const char	*name;
	enum pop3_verb	 verb;
} verbs[] = {
	{ "USER", POP3_USER }, { "PASS", POP3_PASS }, { "APOP", POP3_APOP }, { "AUTH", POP3_AUTH },
	{ "STLS", POP3_STLS }, { "CAPA", POP3_CAPA }, { "QUIT", POP3_QUIT }, { "STAT", POP3_STAT },
	{ "LIST", POP3_LIST }, { "RETR", POP3_RETR }, { "DELE", POP3_DELE }, { "NOOP", POP3_NOOP },
	{ "RSET", POP3_RSET }, { "TOP", POP3_TOP }, { "UIDL", POP3_UIDL },
};

/* A decimal number without sign or leading junk, at most max. */
static int
number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Split the arguments at single spaces: at most max of them. */
static int
split(const char *s, size_t n, const char **a, size_t *alen, int max)
{
	int k = 0;
	size_t i = 0, start;

	while (i < n) {
		if (s[i] == ' ') {
			i++;
			continue;
		}
		if (k == max)
			return -1;
		start = i;
		while (i < n && s[i] != ' ')
			i++;
		a[k] = s + start;
		alen[k++] = i - start;
	}
	return k;
}

int
pop3_parse(const char *line, size_t len, struct pop3_cmd *c, const char **why)
{
	const char *a[3], *args;
	size_t alen[3], vlen, i, nargs_len;
	uint64_t v;
	int na;

	memset(c, 0, sizeof(*c));
	if (memchr(line, '\0', len) != NULL) {
		*why = "NUL in command line";
		return -1;
	}
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == vlen && strncasecmp(verbs[i].name, line, vlen) == 0)
			break;
	if (i == sizeof(verbs) / sizeof(verbs[0])) {
		*why = "Unknown command";
		return -1;
	}
	c->verb = verbs[i].verb;
	c->name = verbs[i].name;
	args = line + vlen + (vlen < len);
	nargs_len = len - vlen - (vlen < len);

	switch (c->verb) {
	case POP3_PASS:
		/* the password is the rest of the line, spaces and all */
		if (nargs_len == 0 || nargs_len > POP3_ARG_MAX) {
			*why = nargs_len == 0 ? "PASS needs a password" : "Password too long";
			return -1;
		}
		c->arg = args;
		c->arglen = nargs_len;
		return 0;
	case POP3_USER:
		if ((na = split(args, nargs_len, a, alen, 1)) != 1 || alen[0] > POP3_ARG_MAX) {
			*why = na == 0 ? "USER needs a name" : "USER takes one name";
			return -1;
		}
		c->arg = a[0];
		c->arglen = alen[0];
		return 0;
	case POP3_AUTH:
		if ((na = split(args, nargs_len, a, alen, 2)) == -1 || (na > 0 && alen[0] > POP3_ARG_MAX)) {
			*why = "AUTH takes a mechanism and an initial response";
			return -1;
		}
		if (na > 0) {
			c->arg = a[0];
			c->arglen = alen[0];
		}
		if (na > 1) {
			c->arg2 = a[1];
			c->arg2len = alen[1];
		}
		return 0;
	case POP3_APOP:
		return 0;	/* refused by the session whatever it says */
	case POP3_STLS: case POP3_CAPA: case POP3_QUIT: case POP3_STAT: case POP3_NOOP: case POP3_RSET:
		if (split(args, nargs_len, a, alen, 0) != 0) {
			*why = "No arguments expected";
			return -1;
		}
		return 0;
	case POP3_LIST: case POP3_UIDL: case POP3_RETR: case POP3_DELE: case POP3_TOP:
		break;
	}
	na = split(args, nargs_len, a, alen, c->verb == POP3_TOP ? 2 : 1);
	if (na == -1) {
		*why = "Too many arguments";
		return -1;
	}
	if (na == 0 && (c->verb == POP3_LIST || c->verb == POP3_UIDL))
		return 0;
	if (na < (c->verb == POP3_TOP ? 2 : 1)) {
		*why = c->verb == POP3_TOP ? "TOP needs a message number and a line count" :
		    "A message number is needed";
		return -1;
	}
	if (number(a[0], alen[0], UINT32_MAX, &v) == -1 || v == 0) {
		*why = "Invalid message number";
		return -1;
	}
	c->has_msg = true;
	c->msg = (uint32_t)v;
	if (c->verb == POP3_TOP && number(a[1], alen[1], UINT64_MAX, &c->lines) == -1) {
		*why = "Invalid line count";
		return -1;
	}
	return 0;
}

void
pop3_stuff_init(struct pop3_stuffer *st, bool top, uint64_t body_lines)
{
	memset(st, 0, sizeof(*st));
	st->line_start = true;
	st->in_header = true;
	st->limited = top;
	st->body_lines = body_lines;
}

ssize_t
pop3_stuff(struct pop3_stuffer *st, const char *in, size_t n, struct buf *out)
{
	size_t i;
	char *o;

	/* room for the worst case: every byte a "." line start or a bare LF */
	if (n > (SIZE_MAX - 2) / 2 || buf_reserve(out, 2 * n + 2) == -1)
		return -1;
	o = out->data + out->len;
	for (i = 0; i < n; i++) {
		char c = in[i];

		if (st->limited && !st->in_header && st->body_lines == 0) {
			st->done = true;
			break;
		}
		if (st->line_start && c == '.')
			*o++ = '.';
		if (c == '\n') {
			if (!st->cr)
				*o++ = '\r';
			*o++ = '\n';
			if (st->in_header) {
				if (st->line_len == 0)
					st->in_header = false;	/* the empty line ends the header */
			} else if (st->limited)
				st->body_lines--;
			st->line_start = true;
			st->cr = false;
			st->line_len = 0;
		} else {
			*o++ = c;
			st->line_start = false;
			st->cr = c == '\r';
			if (!st->cr)
				st->line_len++;
		}
	}
	out->len = (size_t)(o - out->data);
	if (st->limited && !st->in_header && st->body_lines == 0)
		st->done = true;
	return (ssize_t)i;
}

int
pop3_stuff_end(struct pop3_stuffer *st, struct buf *out)
{
	if (!st->line_start && buf_puts(out, "\r\n") == -1)
		return -1;
	return buf_puts(out, ".\r\n");
}
