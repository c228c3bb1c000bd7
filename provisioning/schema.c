/* schema: a JSON Schema (draft 2020-12 subset) validator for YAML trees.
 *
 * The schema YAML is compiled once into a graph of struct snode (regexes
 * compiled, refs resolved, cycles refused), owned by struct schema together
 * with the ydoc tree whose strings the nodes point into. Validation walks the
 * document and the graph together; errors are kept sorted by position so
 * that allOf/if branches evaluated later still come out in document order,
 * and identical errors reached through several branches are stored once. */
#include "schema.h"

#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_MAX_DEPTH	64		/* evaluation frames; also load-time chains */
#define SCHEMA_MAX_FILE		(4 * 1024 * 1024)
#define SHOW_VALUE		64		/* bytes of a document value in a message */
#define SHOW_SCHEMA		200		/* bytes of a pattern in a message */
#define PATH_BUF		1024		/* working path; stored paths are shorter */
#define LIST_BUF		320		/* "expected one of" lists */

/* Kinds of values as the schema sees them; also the bits of `type`. */
enum kind {
	K_NULL = 1 << 0,
	K_BOOL = 1 << 1,
	K_INT = 1 << 2,
	K_NUM = 1 << 3,
	K_STR = 1 << 4,
	K_OBJ = 1 << 5,
	K_ARR = 1 << 6,
};

static const struct {
	enum kind	 k;
	const char	*name;		/* in `type` */
	const char	*phrase;	/* in "expected ..." */
} kinds[] = {
	{ K_NULL, "null", "null" },
	{ K_BOOL, "boolean", "a boolean" },
	{ K_INT, "integer", "an integer" },
	{ K_NUM, "number", "a number" },
	{ K_STR, "string", "a string" },
	{ K_OBJ, "object", "a mapping" },
	{ K_ARR, "array", "a list" },
};
#define NKINDS	(sizeof(kinds) / sizeof(kinds[0]))

struct prop {
	const char	*name;
	size_t		 len;
	struct snode	*schema;
};

/* One compiled schema object. Pointers into the schema's ydoc tree stay
 * valid for the life of struct schema. */
struct snode {
	const struct ydoc_node	 *src;		/* where it is written */
	bool			  never;	/* the schema `false` */
	unsigned		  types;	/* enum kind bits; 0 = any */
	const struct ydoc_node	 *ref_node;	/* $ref value */
	struct snode		 *ref;
	const struct ydoc_node	 *cnst;		/* scalar */
	const struct ydoc_node	 *enm;		/* sequence of scalars */
	struct prop		 *props;
	size_t			  nprops;
	const struct ydoc_node	 *required;	/* sequence of scalars */
	bool			  closed;	/* additionalProperties: false */
	struct snode		**allof;
	size_t			  nallof;
	struct snode		 *if_s, *then_s, *else_s;
	struct snode		 *items;
	int64_t			  min_items, max_items, min_len, max_len;	/* -1: unset */
	bool			  unique;
	bool			  has_re;
	regex_t			  re;
	const char		 *pattern;
	bool			  has_min, has_max;
	int64_t			  minimum, maximum;
	const char		 *format;
	int			  mark;		/* cycle check: 0 new, 1 on path, 2 done */
};

struct schema {
	struct ydoc_stream	 *yaml;		/* the schema text as a tree */
	struct snode		 *root;
	struct snode		**nodes;	/* every snode, for freeing */
	size_t			  nnodes, capnodes;
	struct prop		 *defs;		/* top-level $defs */
	size_t			  ndefs;
	schema_format_fn	  fmt;
	void			 *fmt_ctx;
};

/* ---- scalar typing ---- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Optional sign and digits: 1 and *out set when it fits int64, 2 when it is
 * integer syntax but too large, 0 when it is not an integer. */
static int
parse_int(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	uint64_t v = 0, lim = INT64_MAX;
	bool neg = false, over = false;

	if (i < len && (s[i] == '+' || s[i] == '-')) {
		neg = s[i] == '-';
		i++;
	}
	if (i == len)
		return 0;
	if (neg)
		lim = (uint64_t)INT64_MAX + 1;
	for (; i < len; i++) {
		unsigned d;

		if (!is_digit(s[i]))
			return 0;
		d = (unsigned)(s[i] - '0');
		if (over || v > (lim - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	if (over)
		return 2;
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 1;
}

/* YAML 1.2 core float syntax without .inf/.nan: 1.5, .5, 1., -2e3. */
static bool
is_number(const char *s, size_t len)
{
	size_t i = 0, digits = 0, exp = 0;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	while (i < len && is_digit(s[i])) {
		i++;
		digits++;
	}
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && is_digit(s[i])) {
			i++;
			digits++;
		}
	}
	if (digits == 0)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < len && is_digit(s[i])) {
			i++;
			exp++;
		}
		if (exp == 0)
			return false;
	}
	return i == len;
}

static bool
text_is(const struct ydoc_node *v, const char *word)
{
	return v->len == strlen(word) && memcmp(v->str, word, v->len) == 0;
}

/* Kind of any node; *iv gets the value of integers. Only plain scalars are
 * typed: quoting a scalar makes it a string. */
static enum kind
node_kind(const struct ydoc_node *v, int64_t *iv)
{
	int64_t dummy;

	if (iv == NULL)
		iv = &dummy;
	if (v->type == YDOC_MAP)
		return K_OBJ;
	if (v->type == YDOC_SEQ)
		return K_ARR;
	if (!v->plain)
		return K_STR;
	if (v->len == 0 || text_is(v, "~") || text_is(v, "null") || text_is(v, "Null") ||
	    text_is(v, "NULL"))
		return K_NULL;
	if (text_is(v, "true") || text_is(v, "True") || text_is(v, "TRUE") ||
	    text_is(v, "false") || text_is(v, "False") || text_is(v, "FALSE"))
		return K_BOOL;
	switch (parse_int(v->str, v->len, iv)) {
	case 1:
		return K_INT;
	case 2:
		return K_NUM;	/* beyond int64: still a number */
	default:
		break;
	}
	if (is_number(v->str, v->len))
		return K_NUM;
	return K_STR;
}

const char *
schema_scalar_type(const struct ydoc_node *v)
{
	enum kind k;
	size_t i;

	if (v == NULL)
		return "null";
	k = node_kind(v, NULL);
	for (i = 0; i < NKINDS; i++)
		if (kinds[i].k == k)
			return kinds[i].name;
	return "string";
}

static bool
bool_value(const struct ydoc_node *v)
{
	return v->str[0] == 't' || v->str[0] == 'T';
}

/* Equal as values: numbers by value, booleans and nulls by meaning,
 * strings byte for byte. Scalars only. */
static bool
scalar_equal(const struct ydoc_node *a, const struct ydoc_node *b)
{
	int64_t ia = 0, ib = 0;
	enum kind ka, kb;

	if (a->type != YDOC_SCALAR || b->type != YDOC_SCALAR)
		return false;
	ka = node_kind(a, &ia);
	kb = node_kind(b, &ib);
	if ((ka == K_INT || ka == K_NUM) && (kb == K_INT || kb == K_NUM)) {
		if (ka == K_INT && kb == K_INT)
			return ia == ib;
		return strtod(a->str, NULL) == strtod(b->str, NULL);
	}
	if (ka != kb)
		return false;
	switch (ka) {
	case K_NULL:
		return true;
	case K_BOOL:
		return bool_value(a) == bool_value(b);
	default:
		return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
	}
}

/* ---- text for messages ---- */

/* Copy at most max bytes of s for a message: control characters become '?',
 * a cut is marked "..." and never splits a UTF-8 sequence. */
static void
show(char *out, size_t outlen, const char *s, size_t len, size_t max)
{
	size_t i = 0, o = 0;

	if (outlen == 0)
		return;
	if (outlen < 5) {
		out[0] = '\0';
		return;
	}
	while (i < len && i < max && o + 4 < outlen) {
		unsigned char ch = (unsigned char)s[i];

		out[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
		i++;
	}
	if (i < len) {
		while (o > 0 && ((unsigned char)s[i] & 0xc0) == 0x80) {
			o--;
			i--;
		}
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void
show_node(char *out, size_t outlen, const struct ydoc_node *v)
{
	show(out, outlen, v->str, v->len, SHOW_VALUE);
}

/* "the string 'ten'", "the integer 5", "null", "a mapping", ... */
static void
describe(char *out, size_t outlen, const struct ydoc_node *v)
{
	char text[SHOW_VALUE + 8];

	switch (node_kind(v, NULL)) {
	case K_OBJ:
		snprintf(out, outlen, "a mapping");
		return;
	case K_ARR:
		snprintf(out, outlen, "a list");
		return;
	case K_NULL:
		snprintf(out, outlen, "null");
		return;
	default:
		break;
	}
	show_node(text, sizeof(text), v);
	switch (node_kind(v, NULL)) {
	case K_BOOL:
		snprintf(out, outlen, "the boolean %s", text);
		break;
	case K_INT:
		snprintf(out, outlen, "the integer %s", text);
		break;
	case K_NUM:
		snprintf(out, outlen, "the number %s", text);
		break;
	default:
		snprintf(out, outlen, "the string '%s'", text);
		break;
	}
}

/* Append item to a ", "-separated list, ending it with "..." rather than
 * overflowing. */
static void
list_add(char *out, size_t outlen, size_t *used, bool *full, const char *item)
{
	size_t ilen = strlen(item), sep = *used ? 2 : 0;

	if (*full)
		return;
	if (*used + sep + ilen + 5 >= outlen) {
		snprintf(out + *used, outlen - *used, "%s...", sep ? ", " : "");
		*used = strlen(out);
		*full = true;
		return;
	}
	if (sep) {
		memcpy(out + *used, ", ", 2);
		*used += 2;
	}
	memcpy(out + *used, item, ilen);
	*used += ilen;
	out[*used] = '\0';
}

/* ---- loading ---- */

struct loader {
	struct schema	*s;
	const char	*prefix;	/* "file: " or "" */
	char		*err;
	size_t		 errlen;
};

static int load_fail(struct loader *, const struct ydoc_node *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
load_fail(struct loader *l, const struct ydoc_node *at, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->err != NULL && l->errlen > 0)
		snprintf(l->err, l->errlen, "%sline %u, column %u: %s", l->prefix,
		    at->line, at->col, msg);
	return -1;
}

static struct snode *
snode_new(struct loader *l, const struct ydoc_node *src)
{
	struct schema *s = l->s;
	struct snode *sn;

	if (s->nnodes == s->capnodes) {
		size_t ncap = s->capnodes ? s->capnodes * 2 : 32;
		struct snode **p = realloc(s->nodes, ncap * sizeof(*p));

		if (p == NULL)
			goto fail;
		s->nodes = p;
		s->capnodes = ncap;
	}
	if ((sn = calloc(1, sizeof(*sn))) == NULL)
		goto fail;
	sn->src = src;
	sn->min_items = sn->max_items = sn->min_len = sn->max_len = -1;
	s->nodes[s->nnodes++] = sn;
	return sn;
fail:
	load_fail(l, src, "out of memory");
	return NULL;
}

static void
snode_free(struct snode *sn)
{
	if (sn->has_re)
		regfree(&sn->re);
	free(sn->props);
	free(sn->allof);
	free(sn);
}

static bool
is_annotation(const char *k)
{
	static const char *const words[] = {
		"$schema", "$id", "title", "description", "default", "examples", "$comment",
	};
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(k, words[i]) == 0)
			return true;
	return strncmp(k, "x-", 2) == 0;
}

static int
want_count(struct loader *l, const char *kw, const struct ydoc_node *v, int64_t *out)
{
	if (v->type != YDOC_SCALAR || node_kind(v, out) != K_INT || *out < 0)
		return load_fail(l, v, "%s must be a non-negative integer", kw);
	return 0;
}

static int
want_bool(struct loader *l, const char *kw, const struct ydoc_node *v, bool *out)
{
	if (v->type != YDOC_SCALAR || node_kind(v, NULL) != K_BOOL)
		return load_fail(l, v, "%s must be true or false", kw);
	*out = bool_value(v);
	return 0;
}

static int compile(struct loader *, const struct ydoc_node *, bool top, struct snode **);

/* A mapping of names to schemas ($defs, properties). */
static int
compile_map(struct loader *l, const char *kw, const struct ydoc_node *v,
    struct prop **out, size_t *nout)
{
	size_t i;

	if (v->type != YDOC_MAP)
		return load_fail(l, v, "%s must be a mapping of names to schemas", kw);
	if (v->n == 0)
		return 0;
	if ((*out = calloc(v->n, sizeof(**out))) == NULL)
		return load_fail(l, v, "out of memory");
	for (i = 0; i < v->n; i++) {
		const struct ydoc_node *k = v->items[2 * i];

		(*out)[i].name = k->str;
		(*out)[i].len = k->len;
		if (compile(l, v->items[2 * i + 1], false, &(*out)[i].schema) == -1)
			return -1;
		*nout = i + 1;
	}
	return 0;
}

static int
compile_type(struct loader *l, struct snode *sn, const struct ydoc_node *v)
{
	const struct ydoc_node *one = v;
	size_t i, j, count = 1;

	if (v->type == YDOC_SEQ) {
		if (v->n == 0)
			return load_fail(l, v, "type must not be an empty list");
		count = v->n;
	} else if (v->type != YDOC_SCALAR) {
		return load_fail(l, v, "type must be a type name or a list of them");
	}
	for (i = 0; i < count; i++) {
		if (v->type == YDOC_SEQ)
			one = v->items[i];
		if (one->type != YDOC_SCALAR)
			return load_fail(l, one, "type must be a type name or a list of them");
		for (j = 0; j < NKINDS; j++)
			if (strcmp(one->str, kinds[j].name) == 0)
				break;
		if (j == NKINDS) {
			char text[SHOW_VALUE + 8];

			show_node(text, sizeof(text), one);
			return load_fail(l, one, "unknown type '%s' (expected null, boolean, "
			    "integer, number, string, object or array)", text);
		}
		sn->types |= kinds[j].k;
	}
	return 0;
}

static int
compile_list_of_scalars(struct loader *l, const char *kw, const struct ydoc_node *v,
    bool nonempty)
{
	size_t i;

	if (v->type != YDOC_SEQ || (nonempty && v->n == 0))
		return load_fail(l, v, "%s must be a %slist of scalars", kw,
		    nonempty ? "non-empty " : "");
	for (i = 0; i < v->n; i++)
		if (v->items[i]->type != YDOC_SCALAR)
			return load_fail(l, v->items[i], "%s must be a list of scalars", kw);
	return 0;
}

static int
compile_pattern(struct loader *l, struct snode *sn, const struct ydoc_node *v)
{
	char why[200];
	int rc;

	if (v->type != YDOC_SCALAR)
		return load_fail(l, v, "pattern must be a string");
	if (memchr(v->str, '\0', v->len) != NULL)
		return load_fail(l, v, "pattern must not contain NUL");
	if ((rc = regcomp(&sn->re, v->str, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, &sn->re, why, sizeof(why));
		return load_fail(l, v, "bad pattern: %s", why);
	}
	sn->has_re = true;
	sn->pattern = v->str;
	return 0;
}

/* One keyword of a schema object. */
static int
compile_keyword(struct loader *l, struct snode *sn, const struct ydoc_node *key,
    const struct ydoc_node *v, bool top)
{
	const char *k = key->str;
	size_t i;

	if (strcmp(k, "$ref") == 0) {
		if (v->type != YDOC_SCALAR || node_kind(v, NULL) != K_STR)
			return load_fail(l, v, "$ref must be a string (quote it: an unquoted "
			    "# starts a YAML comment)");
		sn->ref_node = v;
	} else if (strcmp(k, "$defs") == 0) {
		/* refs only address "#/$defs/Name", so nested ones could never be used */
		if (!top)
			return load_fail(l, key, "$defs is only supported at the top of the schema");
		return compile_map(l, k, v, &l->s->defs, &l->s->ndefs);
	} else if (strcmp(k, "type") == 0) {
		return compile_type(l, sn, v);
	} else if (strcmp(k, "const") == 0) {
		if (v->type != YDOC_SCALAR)
			return load_fail(l, v, "const must be a scalar");
		sn->cnst = v;
	} else if (strcmp(k, "enum") == 0) {
		if (compile_list_of_scalars(l, k, v, true) == -1)
			return -1;
		sn->enm = v;
	} else if (strcmp(k, "properties") == 0) {
		return compile_map(l, k, v, &sn->props, &sn->nprops);
	} else if (strcmp(k, "required") == 0) {
		if (compile_list_of_scalars(l, k, v, false) == -1)
			return -1;
		sn->required = v;
	} else if (strcmp(k, "additionalProperties") == 0) {
		if (v->type != YDOC_SCALAR || node_kind(v, NULL) != K_BOOL)
			return load_fail(l, v, "additionalProperties must be true or false "
			    "(schemas are not supported here)");
		sn->closed = !bool_value(v);
	} else if (strcmp(k, "allOf") == 0) {
		if (v->type != YDOC_SEQ || v->n == 0)
			return load_fail(l, v, "allOf must be a non-empty list of schemas");
		if ((sn->allof = calloc(v->n, sizeof(*sn->allof))) == NULL)
			return load_fail(l, v, "out of memory");
		for (i = 0; i < v->n; i++) {
			if (compile(l, v->items[i], false, &sn->allof[i]) == -1)
				return -1;
			sn->nallof = i + 1;
		}
	} else if (strcmp(k, "if") == 0) {
		return compile(l, v, false, &sn->if_s);
	} else if (strcmp(k, "then") == 0) {
		return compile(l, v, false, &sn->then_s);
	} else if (strcmp(k, "else") == 0) {
		return compile(l, v, false, &sn->else_s);
	} else if (strcmp(k, "items") == 0) {
		if (v->type == YDOC_SEQ)
			return load_fail(l, v, "items must be one schema (the list form is not supported)");
		return compile(l, v, false, &sn->items);
	} else if (strcmp(k, "minItems") == 0) {
		return want_count(l, k, v, &sn->min_items);
	} else if (strcmp(k, "maxItems") == 0) {
		return want_count(l, k, v, &sn->max_items);
	} else if (strcmp(k, "minLength") == 0) {
		return want_count(l, k, v, &sn->min_len);
	} else if (strcmp(k, "maxLength") == 0) {
		return want_count(l, k, v, &sn->max_len);
	} else if (strcmp(k, "uniqueItems") == 0) {
		return want_bool(l, k, v, &sn->unique);
	} else if (strcmp(k, "pattern") == 0) {
		return compile_pattern(l, sn, v);
	} else if (strcmp(k, "minimum") == 0 || strcmp(k, "maximum") == 0) {
		bool min = k[1] == 'i';

		if (v->type != YDOC_SCALAR ||
		    node_kind(v, min ? &sn->minimum : &sn->maximum) != K_INT)
			return load_fail(l, v, "%s must be an integer", k);
		if (min)
			sn->has_min = true;
		else
			sn->has_max = true;
	} else if (strcmp(k, "format") == 0) {
		if (v->type != YDOC_SCALAR || node_kind(v, NULL) != K_STR)
			return load_fail(l, v, "format must be a string");
		sn->format = v->str;
	} else if (!is_annotation(k)) {
		char text[SHOW_VALUE + 8];

		/* refused so that the schema cannot rely on something left unchecked */
		show_node(text, sizeof(text), key);
		return load_fail(l, key, "unknown keyword '%s' (not supported by this validator)",
		    text);
	}
	return 0;
}

/* Compile the schema written at y into *out (owned by l->s). */
static int
compile(struct loader *l, const struct ydoc_node *y, bool top, struct snode **out)
{
	struct snode *sn;
	size_t i;

	if ((sn = snode_new(l, y)) == NULL)
		return -1;
	*out = sn;
	if (y->type == YDOC_SCALAR && node_kind(y, NULL) == K_BOOL) {
		sn->never = !bool_value(y);
		return 0;
	}
	if (y->type != YDOC_MAP) {
		char what[SHOW_VALUE + 32];

		describe(what, sizeof(what), y);
		return load_fail(l, y, "a schema must be a mapping, true or false; got %s", what);
	}
	for (i = 0; i < y->n; i++)
		if (compile_keyword(l, sn, y->items[2 * i], y->items[2 * i + 1], top) == -1)
			return -1;
	if ((sn->then_s != NULL || sn->else_s != NULL) && sn->if_s == NULL)
		return load_fail(l, y, "then/else without if");
	return 0;
}

/* "#" or "#/$defs/Name" (JSON pointer escapes ~0 ~1 in Name). */
static struct snode *
lookup_ref(const struct schema *s, const char *ref)
{
	char name[256];
	const char *p;
	size_t i, n = 0;

	if (strcmp(ref, "#") == 0)
		return s->root;
	if (strncmp(ref, "#/$defs/", 8) != 0)
		return NULL;
	for (p = ref + 8; *p != '\0'; p++) {
		char c = *p;

		if (c == '/')
			return NULL;	/* deeper pointers are not supported */
		if (c == '~') {
			if (p[1] == '0')
				c = '~';
			else if (p[1] == '1')
				c = '/';
			else
				return NULL;
			p++;
		}
		if (n + 1 >= sizeof(name))
			return NULL;
		name[n++] = c;
	}
	name[n] = '\0';
	for (i = 0; i < s->ndefs; i++)
		if (s->defs[i].len == n && memcmp(s->defs[i].name, name, n) == 0)
			return s->defs[i].schema;
	return NULL;
}

/* Depth-first over the edges that apply a schema to the same document node
 * ($ref, allOf, if, then, else): a cycle there would recurse forever. */
static int
check_chain(struct loader *l, struct snode *sn, unsigned depth, const struct ydoc_node *via)
{
	struct snode *next[5];
	const struct ydoc_node *nvia[5];
	size_t i, nn = 0;

	if (sn->mark == 2)
		return 0;
	if (sn->mark == 1) {
		char text[SHOW_VALUE + 8];

		show_node(text, sizeof(text), via);
		return load_fail(l, via, "$ref cycle through '%s': the schema applies to "
		    "itself without descending into the document", text);
	}
	if (depth >= SCHEMA_MAX_DEPTH)
		return load_fail(l, via, "$ref/allOf/if chain deeper than %d levels",
		    SCHEMA_MAX_DEPTH);
	sn->mark = 1;
	if (sn->ref != NULL) {
		next[nn] = sn->ref;
		nvia[nn++] = sn->ref_node;
	}
	for (i = 0; i < sn->nallof; i++)
		if (check_chain(l, sn->allof[i], depth + 1, via) == -1)
			return -1;
	if (sn->if_s != NULL) {
		next[nn] = sn->if_s;
		nvia[nn++] = via;
	}
	if (sn->then_s != NULL) {
		next[nn] = sn->then_s;
		nvia[nn++] = via;
	}
	if (sn->else_s != NULL) {
		next[nn] = sn->else_s;
		nvia[nn++] = via;
	}
	for (i = 0; i < nn; i++)
		if (check_chain(l, next[i], depth + 1, nvia[i]) == -1)
			return -1;
	sn->mark = 2;
	return 0;
}

static int
link_refs(struct loader *l)
{
	struct schema *s = l->s;
	size_t i;

	for (i = 0; i < s->nnodes; i++) {
		struct snode *sn = s->nodes[i];
		char text[SHOW_VALUE + 8];

		if (sn->ref_node == NULL)
			continue;
		if ((sn->ref = lookup_ref(s, sn->ref_node->str)) != NULL)
			continue;
		show_node(text, sizeof(text), sn->ref_node);
		if (strcmp(sn->ref_node->str, "#") != 0 &&
		    strncmp(sn->ref_node->str, "#/$defs/", 8) == 0)
			return load_fail(l, sn->ref_node, "$ref '%s' names no definition in $defs",
			    text);
		return load_fail(l, sn->ref_node, "$ref '%s' is not supported (only \"#\" and "
		    "\"#/$defs/Name\")", text);
	}
	for (i = 0; i < s->nnodes; i++)
		if (check_chain(l, s->nodes[i], 0, s->nodes[i]->src) == -1)
			return -1;
	return 0;
}

static void set_err(char *, size_t, const char *, ...) __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static struct schema *
load(const char *yaml, size_t len, const char *prefix, char *err, size_t errlen)
{
	struct loader l = { .prefix = prefix, .err = err, .errlen = errlen };
	struct schema *s;
	char yerr[256];

	set_err(err, errlen, "%s", "");
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		set_err(err, errlen, "%sout of memory", prefix);
		return NULL;
	}
	l.s = s;
	if (ydoc_parse(yaml, len, &s->yaml, yerr, sizeof(yerr)) == -1) {
		set_err(err, errlen, "%s%s", prefix, yerr);
		goto fail;
	}
	if (s->yaml->ndocs != 1) {
		if (s->yaml->ndocs > 1) {
			load_fail(&l, s->yaml->docs[1], "the schema must be a single YAML document");
		} else {
			set_err(err, errlen, "%sthe schema is empty", prefix);
		}
		goto fail;
	}
	if (compile(&l, s->yaml->docs[0], true, &s->root) == -1)
		goto fail;
	if (link_refs(&l) == -1)
		goto fail;
	return s;
fail:
	schema_free(s);
	return NULL;
}

struct schema *
schema_load_mem(const char *yaml, size_t len, char *err, size_t errlen)
{
	return load(yaml, len, "", err, errlen);
}

struct schema *
schema_load(const char *path, char *err, size_t errlen)
{
	struct schema *s = NULL;
	char prefix[300], *text = NULL;
	size_t len = 0, cap = 0;
	FILE *f;

	snprintf(prefix, sizeof(prefix), "%.280s: ", path);
	if ((f = fopen(path, "r")) == NULL) {
		set_err(err, errlen, "%s%s", prefix, strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			char *p;

			if (cap >= SCHEMA_MAX_FILE) {
				set_err(err, errlen, "%sfile larger than %d bytes", prefix,
				    SCHEMA_MAX_FILE);
				goto fail;
			}
			cap = cap ? cap * 2 : 16384;
			if ((p = realloc(text, cap)) == NULL) {
				set_err(err, errlen, "%sout of memory", prefix);
				goto fail;
			}
			text = p;
		}
		got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				set_err(err, errlen, "%sread error", prefix);
				goto fail;
			}
			break;
		}
	}
	s = load(text != NULL ? text : "", len, prefix, err, errlen);
fail:
	free(text);
	fclose(f);
	return s;
}

void
schema_free(struct schema *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nnodes; i++)
		snode_free(s->nodes[i]);
	free(s->nodes);
	free(s->defs);
	ydoc_free(s->yaml);
	free(s);
}

void
schema_set_format(struct schema *s, schema_format_fn fn, void *ctx)
{
	s->fmt = fn;
	s->fmt_ctx = ctx;
}

/* ---- validation ---- */

struct vctx {
	const struct schema	*s;
	struct schema_error	*errs;		/* sorted by line:column */
	size_t			 max, n;
	bool			 invalid;	/* an error was found, stored or not */
	bool			 oom;
	unsigned		 silent;	/* inside `if`: nothing is reported */
	const char		*key;		/* property being checked, for formats */
	char			 path[PATH_BUF];
	size_t			 pathlen;
};

static int
pos_cmp(unsigned line, unsigned col, const struct schema_error *e)
{
	if (line != e->line)
		return line < e->line ? -1 : 1;
	if (col != e->col)
		return col < e->col ? -1 : 1;
	return 0;
}

static void
copy_path(struct vctx *c, char *out, size_t outlen)
{
	size_t n = c->pathlen;

	if (n < outlen) {
		memcpy(out, c->path, n + 1);
		return;
	}
	/* keep the start; mark the cut, not inside a UTF-8 sequence */
	n = outlen - 4;
	while (n > 0 && ((unsigned char)c->path[n] & 0xc0) == 0x80)
		n--;
	memcpy(out, c->path, n);
	memcpy(out + n, "...", 4);
}

static void report(struct vctx *, const struct ydoc_node *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Record an error about node at (current path). Kept: the first max distinct
 * errors by position, in the order found among equal positions. */
static void
report(struct vctx *c, const struct ydoc_node *at, const char *fmt, ...)
{
	struct schema_error e;
	va_list ap;
	size_t i, j;

	if (c->silent)
		return;
	c->invalid = true;
	if (c->max == 0)
		return;
	if (c->n == c->max && pos_cmp(at->line, at->col, &c->errs[c->n - 1]) >= 0)
		return;		/* full, and this one comes later */
	memset(&e, 0, sizeof(e));
	e.line = at->line;
	e.col = at->col;
	copy_path(c, e.path, sizeof(e.path));
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	i = c->n;
	while (i > 0 && pos_cmp(e.line, e.col, &c->errs[i - 1]) < 0)
		i--;
	for (j = i; j > 0 && pos_cmp(e.line, e.col, &c->errs[j - 1]) == 0; j--)
		if (strcmp(c->errs[j - 1].path, e.path) == 0 &&
		    strcmp(c->errs[j - 1].message, e.message) == 0)
			return;	/* reached again through another branch */
	if (c->n == c->max)
		c->n--;		/* the last one sorts after e */
	memmove(&c->errs[i + 1], &c->errs[i], (c->n - i) * sizeof(e));
	c->errs[i] = e;
	c->n++;
}

static size_t
path_push(struct vctx *c, const char *fmt, const char *text)
{
	size_t old = c->pathlen, room = sizeof(c->path) - old;
	int w;

	w = snprintf(c->path + old, room, fmt, text);
	if (w < 0)
		c->path[old] = '\0';
	else
		c->pathlen = (size_t)w < room ? old + (size_t)w : sizeof(c->path) - 1;
	return old;
}

static size_t
path_push_key(struct vctx *c, const struct ydoc_node *key)
{
	char text[SHOW_VALUE + 8];

	show_node(text, sizeof(text), key);
	return path_push(c, c->pathlen ? ".%s" : "%s", text);
}

static size_t
path_push_index(struct vctx *c, size_t i)
{
	char text[32];

	snprintf(text, sizeof(text), "%zu", i);
	return path_push(c, "[%s]", text);
}

static void
path_pop(struct vctx *c, size_t old)
{
	c->pathlen = old;
	c->path[old] = '\0';
}

static bool eval(struct vctx *, const struct snode *, const struct ydoc_node *, unsigned);

/* A failed check: remember it, and stop early when only the verdict counts. */
#define FAILED(c, ok)	do { (ok) = false; if ((c)->silent) return false; } while (0)

static void
type_phrase(char *out, size_t outlen, unsigned types)
{
	const char *parts[NKINDS];
	size_t i, n = 0, used = 0;

	for (i = 0; i < NKINDS; i++) {
		/* integers are numbers: "a number" says it all */
		if (kinds[i].k == K_INT && (types & K_NUM))
			continue;
		if (types & kinds[i].k)
			parts[n++] = kinds[i].phrase;
	}
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		int w = snprintf(out + used, outlen - used, "%s%s",
		    i == 0 ? "" : i + 1 == n ? " or " : ", ", parts[i]);

		if (w < 0 || (size_t)w >= outlen - used)
			return;
		used += (size_t)w;
	}
}

static bool
type_ok(unsigned types, enum kind k)
{
	return (types & k) || (k == K_INT && (types & K_NUM));
}

/* Whether v and the schema scalar want are of the same kind (numbers count
 * as one), to choose between "got 'x'" and "got the integer 5". */
static bool
same_kind(const struct ydoc_node *v, const struct ydoc_node *want)
{
	enum kind a = node_kind(v, NULL), b = node_kind(want, NULL);

	if ((a == K_INT || a == K_NUM) && (b == K_INT || b == K_NUM))
		return true;
	return a == b;
}

static bool
check_const(struct vctx *c, const struct snode *sn, const struct ydoc_node *v)
{
	char want[SHOW_VALUE + 32], got[SHOW_VALUE + 32];

	if (scalar_equal(v, sn->cnst))
		return true;
	if (!c->silent) {
		if (v->type == YDOC_SCALAR && same_kind(v, sn->cnst)) {
			show_node(want, sizeof(want), sn->cnst);
			show_node(got, sizeof(got), v);
			report(c, v, "must be %s, got '%s'", want, got);
		} else {
			describe(want, sizeof(want), sn->cnst);
			describe(got, sizeof(got), v);
			report(c, v, "must be %s, got %s", want, got);
		}
	}
	return false;
}

static bool
check_enum(struct vctx *c, const struct snode *sn, const struct ydoc_node *v)
{
	char list[LIST_BUF], got[SHOW_VALUE + 32], item[SHOW_VALUE + 8];
	size_t i, used = 0;
	bool full = false, kindred = false;

	for (i = 0; i < sn->enm->n; i++)
		if (scalar_equal(v, sn->enm->items[i]))
			return true;
	if (c->silent)
		return false;
	list[0] = '\0';
	for (i = 0; i < sn->enm->n; i++) {
		show_node(item, sizeof(item), sn->enm->items[i]);
		list_add(list, sizeof(list), &used, &full, item);
		if (v->type == YDOC_SCALAR && same_kind(v, sn->enm->items[i]))
			kindred = true;
	}
	if (kindred) {
		show_node(item, sizeof(item), v);
		snprintf(got, sizeof(got), "'%s'", item);
	} else {
		describe(got, sizeof(got), v);
	}
	report(c, v, "expected one of: %s; got %s", list, got);
	return false;
}

/* UTF-8 code points: every byte that does not continue a sequence. */
static size_t
utf8_len(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

static bool
check_string(struct vctx *c, const struct snode *sn, const struct ydoc_node *v)
{
	bool ok = true;

	if (sn->min_len >= 0 || sn->max_len >= 0) {
		size_t n = utf8_len(v->str, v->len);

		if (sn->min_len >= 0 && n < (uint64_t)sn->min_len) {
			report(c, v, "must be at least %" PRId64 " character%s", sn->min_len,
			    sn->min_len == 1 ? "" : "s");
			FAILED(c, ok);
		}
		if (sn->max_len >= 0 && n > (uint64_t)sn->max_len) {
			report(c, v, "must be at most %" PRId64 " character%s", sn->max_len,
			    sn->max_len == 1 ? "" : "s");
			FAILED(c, ok);
		}
	}
	/* regexec stops at a NUL, so a string holding one cannot be matched whole */
	if (sn->has_re && (memchr(v->str, '\0', v->len) != NULL ||
	    regexec(&sn->re, v->str, 0, NULL, 0) != 0)) {
		char pat[SHOW_SCHEMA + 8];

		show(pat, sizeof(pat), sn->pattern, strlen(sn->pattern), SHOW_SCHEMA);
		report(c, v, "does not match the pattern %s", pat);
		FAILED(c, ok);
	}
	return ok;
}

static bool
check_range(struct vctx *c, const struct snode *sn, const struct ydoc_node *v,
    enum kind k, int64_t iv)
{
	bool ok = true, below, above;
	double d = k == K_NUM ? strtod(v->str, NULL) : 0;

	below = sn->has_min && (k == K_INT ? iv < sn->minimum : d < (double)sn->minimum);
	above = sn->has_max && (k == K_INT ? iv > sn->maximum : d > (double)sn->maximum);
	if (below) {
		report(c, v, "must be at least %" PRId64, sn->minimum);
		FAILED(c, ok);
	}
	if (above) {
		report(c, v, "must be at most %" PRId64, sn->maximum);
		FAILED(c, ok);
	}
	return ok;
}

static bool
digits2(const char *s, unsigned *out)
{
	if (!is_digit(s[0]) || !is_digit(s[1]))
		return false;
	*out = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
	return true;
}

/* RFC 3339 date-time: 2026-11-23T18:00:00Z, 2026-11-23T18:00:00.5+01:00. */
static bool
is_date_time(const char *s, size_t len)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y1, y2, mon, day, h, min, sec, oh, om, year;
	size_t i = 19;

	if (len < 20 || memchr(s, '\0', len) != NULL)
		return false;
	if (!digits2(s, &y1) || !digits2(s + 2, &y2) || s[4] != '-' ||
	    !digits2(s + 5, &mon) || s[7] != '-' || !digits2(s + 8, &day) ||
	    (s[10] != 'T' && s[10] != 't') || !digits2(s + 11, &h) || s[13] != ':' ||
	    !digits2(s + 14, &min) || s[16] != ':' || !digits2(s + 17, &sec))
		return false;
	year = y1 * 100 + y2;
	if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || h > 23 ||
	    min > 59 || sec > 60)
		return false;
	if (mon == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		return false;
	if (s[i] == '.') {
		size_t start = ++i;

		while (i < len && is_digit(s[i]))
			i++;
		if (i == start)
			return false;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z'))
		return i + 1 == len;
	if (i + 6 != len || (s[i] != '+' && s[i] != '-') || !digits2(s + i + 1, &oh) ||
	    s[i + 3] != ':' || !digits2(s + i + 4, &om))
		return false;
	return oh <= 23 && om <= 59;
}

static bool
check_format(struct vctx *c, const struct snode *sn, const struct ydoc_node *v)
{
	char why[256], text[SHOW_VALUE + 8], fmt[SHOW_VALUE + 8], reason[SHOW_SCHEMA + 8];
	int r = -1;

	why[0] = '\0';
	if (c->s->fmt != NULL)
		r = c->s->fmt(c->s->fmt_ctx, sn->format, v, c->key, why, sizeof(why));
	why[sizeof(why) - 1] = '\0';
	if (r < 0 && strcmp(sn->format, "date-time") == 0) {
		r = is_date_time(v->str, v->len);
		if (r == 0)
			snprintf(why, sizeof(why), "expected RFC 3339 like 2026-11-23T18:00:00Z "
			    "or 2026-11-23T18:00:00+01:00");
	}
	if (r != 0)
		return true;	/* valid, or a format nobody knows */
	if (!c->silent) {
		show_node(text, sizeof(text), v);
		show(fmt, sizeof(fmt), sn->format, strlen(sn->format), SHOW_VALUE);
		show(reason, sizeof(reason), why, strlen(why), SHOW_SCHEMA);
		report(c, v, "'%s' is not a valid %s%s%s", text, fmt, reason[0] ? ": " : "",
		    reason);
	}
	return false;
}

static const struct prop *
find_prop(const struct snode *sn, const struct ydoc_node *key)
{
	size_t i;

	for (i = 0; i < sn->nprops; i++)
		if (sn->props[i].len == key->len &&
		    memcmp(sn->props[i].name, key->str, key->len) == 0)
			return &sn->props[i];
	return NULL;
}

static bool
has_key(const struct ydoc_node *map, const struct ydoc_node *name)
{
	size_t i;

	for (i = 0; i < map->n; i++) {
		const struct ydoc_node *k = map->items[2 * i];

		if (k->len == name->len && memcmp(k->str, name->str, k->len) == 0)
			return true;
	}
	return false;
}

static void
report_unknown(struct vctx *c, const struct snode *sn, const struct ydoc_node *key)
{
	char list[LIST_BUF], name[SHOW_VALUE + 8];
	size_t i, used = 0, old;
	bool full = false;

	list[0] = '\0';
	for (i = 0; i < sn->nprops; i++) {
		show(name, sizeof(name), sn->props[i].name, sn->props[i].len, SHOW_VALUE);
		list_add(list, sizeof(list), &used, &full, name);
	}
	show_node(name, sizeof(name), key);
	old = path_push_key(c, key);
	if (sn->nprops == 0)
		report(c, key, "unknown field '%s' (no fields are allowed here)", name);
	else
		report(c, key, "unknown field '%s' (expected one of: %s)", name, list);
	path_pop(c, old);
}

static bool
check_object(struct vctx *c, const struct snode *sn, const struct ydoc_node *v,
    unsigned depth)
{
	bool ok = true;
	size_t i;

	/* the document's order, so that errors come out in it */
	for (i = 0; i < v->n; i++) {
		const struct ydoc_node *key = v->items[2 * i], *val = v->items[2 * i + 1];
		const struct prop *p = find_prop(sn, key);

		if (p != NULL) {
			const char *oldkey = c->key;
			size_t old = path_push_key(c, key);
			bool good;

			c->key = key->str;
			good = eval(c, p->schema, val, depth + 1);
			c->key = oldkey;
			path_pop(c, old);
			if (!good)
				FAILED(c, ok);
		} else if (sn->closed) {
			report_unknown(c, sn, key);
			FAILED(c, ok);
		}
	}
	if (sn->required != NULL) {
		for (i = 0; i < sn->required->n; i++) {
			const struct ydoc_node *name = sn->required->items[i];
			char text[SHOW_VALUE + 8];

			if (has_key(v, name))
				continue;
			show_node(text, sizeof(text), name);
			report(c, v, "missing required field '%s'", text);
			FAILED(c, ok);
		}
	}
	return ok;
}

struct uitem {
	const struct ydoc_node	*node;
	size_t			 idx;
};

static int
uitem_cmp(const void *a, const void *b)
{
	const struct uitem *x = a, *y = b;
	size_t n = x->node->len < y->node->len ? x->node->len : y->node->len;
	int r = memcmp(x->node->str, y->node->str, n);

	if (r != 0)
		return r;
	if (x->node->len != y->node->len)
		return x->node->len < y->node->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* uniqueItems, scalars compared by text: sort, then flag every later copy. */
static bool
check_unique(struct vctx *c, const struct ydoc_node *v)
{
	struct uitem *u = NULL;
	bool *dup = NULL, ok = true;
	size_t i, m = 0;

	if (v->n < 2)
		return true;
	if ((u = calloc(v->n, sizeof(*u))) == NULL || (dup = calloc(v->n, sizeof(*dup))) == NULL) {
		c->oom = true;
		ok = false;
		goto out;
	}
	for (i = 0; i < v->n; i++)
		if (v->items[i]->type == YDOC_SCALAR) {
			u[m].node = v->items[i];
			u[m++].idx = i;
		}
	qsort(u, m, sizeof(*u), uitem_cmp);
	for (i = 1; i < m; i++)
		if (u[i].node->len == u[i - 1].node->len &&
		    memcmp(u[i].node->str, u[i - 1].node->str, u[i].node->len) == 0)
			dup[u[i].idx] = true;
	for (i = 0; i < v->n; i++) {
		char text[SHOW_VALUE + 8];
		size_t old;

		if (!dup[i])
			continue;
		ok = false;
		if (c->silent)
			break;
		show_node(text, sizeof(text), v->items[i]);
		old = path_push_index(c, i);
		report(c, v->items[i], "duplicate item '%s'", text);
		path_pop(c, old);
	}
out:
	free(u);
	free(dup);
	return ok;
}

static bool
check_array(struct vctx *c, const struct snode *sn, const struct ydoc_node *v,
    unsigned depth)
{
	bool ok = true;
	size_t i;

	if (sn->min_items >= 0 && v->n < (uint64_t)sn->min_items) {
		report(c, v, "at least %" PRId64 " item%s needed", sn->min_items,
		    sn->min_items == 1 ? "" : "s");
		FAILED(c, ok);
	}
	if (sn->max_items >= 0 && v->n > (uint64_t)sn->max_items) {
		report(c, v, "at most %" PRId64 " item%s allowed", sn->max_items,
		    sn->max_items == 1 ? "" : "s");
		FAILED(c, ok);
	}
	if (sn->unique && !check_unique(c, v))
		FAILED(c, ok);
	if (sn->items != NULL) {
		for (i = 0; i < v->n; i++) {
			const char *oldkey = c->key;
			size_t old = path_push_index(c, i);
			bool good;

			c->key = "";
			good = eval(c, sn->items, v->items[i], depth + 1);
			c->key = oldkey;
			path_pop(c, old);
			if (!good)
				FAILED(c, ok);
		}
	}
	return ok;
}

/* Apply schema sn to document node v. Returns whether v is valid; errors go
 * to c unless c->silent. */
static bool
eval(struct vctx *c, const struct snode *sn, const struct ydoc_node *v, unsigned depth)
{
	bool ok = true, typed = true;
	int64_t iv = 0;
	enum kind k;
	size_t i;

	if (c->oom)
		return false;
	if (depth >= SCHEMA_MAX_DEPTH) {
		report(c, v, "nested too deeply: more than %d levels of schema", SCHEMA_MAX_DEPTH);
		return false;
	}
	if (sn->never) {
		report(c, v, "not allowed here");
		return false;
	}
	k = node_kind(v, &iv);
	if (sn->ref != NULL && !eval(c, sn->ref, v, depth + 1))
		FAILED(c, ok);
	if (sn->types != 0 && !type_ok(sn->types, k)) {
		char want[128], got[SHOW_VALUE + 32];

		if (!c->silent) {
			type_phrase(want, sizeof(want), sn->types);
			describe(got, sizeof(got), v);
			report(c, v, "expected %s, got %s", want, got);
		}
		/* the value checks of this schema would only repeat the point */
		typed = false;
		FAILED(c, ok);
	}
	if (typed) {
		if (sn->cnst != NULL && !check_const(c, sn, v))
			FAILED(c, ok);
		if (sn->enm != NULL && !check_enum(c, sn, v))
			FAILED(c, ok);
		if (k == K_STR && !check_string(c, sn, v))
			FAILED(c, ok);
		if ((k == K_INT || k == K_NUM) && !check_range(c, sn, v, k, iv))
			FAILED(c, ok);
		if (sn->format != NULL && (k == K_STR || k == K_INT) && !check_format(c, sn, v))
			FAILED(c, ok);
	}
	if (k == K_OBJ && !check_object(c, sn, v, depth))
		FAILED(c, ok);
	if (k == K_ARR && !check_array(c, sn, v, depth))
		FAILED(c, ok);
	for (i = 0; i < sn->nallof; i++)
		if (!eval(c, sn->allof[i], v, depth + 1))
			FAILED(c, ok);
	if (sn->if_s != NULL) {
		const struct snode *branch;
		bool match;

		c->silent++;
		match = eval(c, sn->if_s, v, depth + 1);
		c->silent--;
		branch = match ? sn->then_s : sn->else_s;
		if (branch != NULL && !eval(c, branch, v, depth + 1))
			FAILED(c, ok);
	}
	return ok && !c->oom;
}

static void
set_reason(struct schema_error *errs, size_t max, const char *what, const char *ref)
{
	char text[SHOW_VALUE + 8];

	if (errs == NULL || max == 0)
		return;
	memset(&errs[0], 0, sizeof(errs[0]));
	if (ref != NULL) {
		show(text, sizeof(text), ref, strlen(ref), SHOW_VALUE);
		snprintf(errs[0].message, sizeof(errs[0].message), "%s '%s'", what, text);
	} else {
		snprintf(errs[0].message, sizeof(errs[0].message), "%s", what);
	}
}

int
schema_validate(const struct schema *s, const char *ref, const struct ydoc_node *doc,
    struct schema_error *errs, size_t max, size_t *n)
{
	struct vctx *c = NULL;
	const struct snode *root;
	int rc = -1;

	if (errs == NULL)
		max = 0;
	if (n != NULL)
		*n = 0;
	if (ref == NULL)
		ref = "#";
	if (s == NULL || doc == NULL || n == NULL) {
		set_reason(errs, max, "schema_validate needs a schema, a document and n", NULL);
		goto fail;
	}
	if ((root = lookup_ref(s, ref)) == NULL) {
		set_reason(errs, max, "no such schema reference", ref);
		goto fail;
	}
	/* on the heap: the path buffer is large and eval recurses */
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		set_reason(errs, max, "out of memory", NULL);
		goto fail;
	}
	c->s = s;
	c->errs = errs;
	c->max = max;
	c->key = "";
	eval(c, root, doc, 0);
	if (c->oom) {
		set_reason(errs, max, "out of memory", NULL);
		goto fail;
	}
	*n = c->n;
	rc = c->invalid ? 1 : 0;
fail:
	free(c);
	return rc;
}
