/* test_ydoc: unit tests for node/ydoc.c (YAML streams read into trees that
 * keep line and column, refusing anchors, aliases, duplicate and non-scalar
 * keys and deep nesting) and node/yamlw.c (YAML written so that it reads
 * back as written: strings that look typed stay quoted strings). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "yamlw.h"
#include "ydoc.h"

static struct ydoc_stream *
parse_len(const char *text, size_t len)
{
	struct ydoc_stream *s = NULL;
	char err[256];

	err[0] = '\0';
	if (ydoc_parse(text, len, &s, err, sizeof(err)) != 0)
		fail_msg("parse failed: %s\n--- input:\n%s", err, text);
	assert_non_null(s);
	return s;
}

static struct ydoc_stream *
parse(const char *text)
{
	return parse_len(text, strlen(text));
}

/* text must be refused with an error that begins "line L, column C: " and
 * contains want. */
static void
refused(const char *text, unsigned line, unsigned col, const char *want)
{
	struct ydoc_stream *s = (struct ydoc_stream *)1;
	char err[256], prefix[64];

	memset(err, 'x', sizeof(err));
	if (ydoc_parse(text, strlen(text), &s, err, sizeof(err)) != -1)
		fail_msg("accepted:\n%s", text);
	assert_null(s);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	snprintf(prefix, sizeof(prefix), "line %u, column %u: ", line, col);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error '%s' does not start with '%s' for:\n%s", err, prefix, text);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' lacks '%s' for:\n%s", err, want, text);
}

static void
assert_at(const struct ydoc_node *n, unsigned line, unsigned col)
{
	assert_non_null(n);
	if (n->line != line || n->col != col)
		fail_msg("node at %u:%u, expected %u:%u", n->line, n->col, line, col);
}

static void
test_empty(void **state)
{
	struct ydoc_stream *s;

	(void)state;
	s = parse("");
	assert_int_equal(s->ndocs, 0);
	ydoc_free(s);
	s = parse_len("a: 1", 0);	/* the length is what counts */
	assert_int_equal(s->ndocs, 0);
	ydoc_free(s);
	s = parse("# nothing here\n\n   \n# at all\n");
	assert_int_equal(s->ndocs, 0);
	ydoc_free(s);
	ydoc_free(NULL);
}

static void
test_multi_document(void **state)
{
	struct ydoc_stream *s;

	(void)state;
	s = parse("kind: Tenant\nname: a\n---\nkind: Domain\nname: a.example\n"
	    "--- plain\n...\n---\n- 1\n");
	assert_int_equal(s->ndocs, 4);
	assert_int_equal(s->docs[0]->type, YDOC_MAP);
	assert_string_equal(ydoc_str(ydoc_get(s->docs[0], "kind")), "Tenant");
	assert_string_equal(ydoc_str(ydoc_get(s->docs[1], "kind")), "Domain");
	assert_string_equal(ydoc_str(ydoc_get(s->docs[1], "name")), "a.example");
	assert_at(s->docs[1], 4, 1);
	assert_string_equal(ydoc_str(s->docs[2]), "plain");
	assert_int_equal(s->docs[3]->type, YDOC_SEQ);
	assert_at(s->docs[3], 9, 1);
	ydoc_free(s);

	/* an empty explicit document is one empty plain scalar */
	s = parse("---\n---\na: 1\n");
	assert_int_equal(s->ndocs, 2);
	assert_int_equal(s->docs[0]->type, YDOC_SCALAR);
	assert_string_equal(ydoc_str(s->docs[0]), "");
	assert_true(s->docs[0]->plain);
	ydoc_free(s);
}

static void
test_nested(void **state)
{
	static const char doc[] =
	    "tenant:\n"				/* 1 */
	    "  name: acme\n"			/* 2 */
	    "  limits: {mailboxes: 10, storage: 5G}\n"	/* 3 */
	    "  domains:\n"			/* 4 */
	    "    - name: acme.example\n"	/* 5 */
	    "      aliases: [a, b]\n"		/* 6 */
	    "    - name: acme.test\n"		/* 7 */
	    "      aliases: []\n"		/* 8 */
	    "empty: {}\n";			/* 9 */
	struct ydoc_stream *s;
	struct ydoc_node *root, *t, *doms, *d0, *al;

	(void)state;
	s = parse(doc);
	assert_int_equal(s->ndocs, 1);
	root = s->docs[0];
	assert_int_equal(ydoc_count(root), 2);
	t = ydoc_get(root, "tenant");
	assert_int_equal(t->type, YDOC_MAP);
	assert_int_equal(ydoc_count(t), 3);
	assert_string_equal(ydoc_str(ydoc_get(t, "name")), "acme");
	assert_string_equal(ydoc_str(ydoc_get(ydoc_get(t, "limits"), "storage")), "5G");
	assert_int_equal(ydoc_count(ydoc_get(t, "limits")), 2);
	doms = ydoc_get(t, "domains");
	assert_int_equal(doms->type, YDOC_SEQ);
	assert_int_equal(ydoc_count(doms), 2);
	d0 = doms->items[0];
	assert_string_equal(ydoc_str(ydoc_get(d0, "name")), "acme.example");
	al = ydoc_get(d0, "aliases");
	assert_int_equal(al->type, YDOC_SEQ);
	assert_int_equal(ydoc_count(al), 2);
	assert_string_equal(ydoc_str(al->items[1]), "b");
	assert_int_equal(ydoc_count(ydoc_get(doms->items[1], "aliases")), 0);
	assert_int_equal(ydoc_get(doms->items[1], "aliases")->type, YDOC_SEQ);
	assert_int_equal(ydoc_get(root, "empty")->type, YDOC_MAP);
	assert_int_equal(ydoc_count(ydoc_get(root, "empty")), 0);

	/* map items alternate key and value */
	assert_string_equal(ydoc_str(t->items[0]), "name");
	assert_string_equal(ydoc_str(t->items[1]), "acme");

	/* lines and columns, 1-based, of keys, values and collections */
	assert_at(root, 1, 1);
	assert_at(root->items[0], 1, 1);		/* tenant */
	assert_at(t, 2, 3);
	assert_at(ydoc_get(t, "name"), 2, 9);
	assert_at(ydoc_get(t, "limits"), 3, 11);
	assert_at(ydoc_get(ydoc_get(t, "limits"), "mailboxes"), 3, 23);
	assert_at(doms, 5, 5);
	assert_at(d0, 5, 7);
	assert_at(al, 6, 16);
	assert_at(al->items[0], 6, 17);
	assert_at(al->items[1], 6, 20);
	assert_at(ydoc_get(doms->items[1], "name"), 7, 13);
	assert_at(root->items[2], 9, 1);		/* empty */
	ydoc_free(s);
}

static void
test_scalars(void **state)
{
	static const char doc[] =
	    "plain: 123\n"
	    "single: '123'\n"
	    "double: \"true\"\n"
	    "literal: |\n  two\n  lines\n"
	    "folded: >\n  one\n  line\n"
	    "none:\n"
	    "tilde: ~\n"
	    "spaces: '  x  '\n"
	    "nul: \"a\\0b\"\n"
	    "utf8: \"\\u00e9t\\u00e9\"\n";
	struct ydoc_stream *s;
	struct ydoc_node *m, *n;

	(void)state;
	s = parse(doc);
	m = s->docs[0];
	n = ydoc_get(m, "plain");
	assert_string_equal(n->str, "123");
	assert_true(n->plain);
	n = ydoc_get(m, "single");
	assert_string_equal(n->str, "123");
	assert_false(n->plain);
	n = ydoc_get(m, "double");
	assert_string_equal(n->str, "true");
	assert_false(n->plain);
	n = ydoc_get(m, "literal");
	assert_string_equal(n->str, "two\nlines\n");
	assert_false(n->plain);
	n = ydoc_get(m, "folded");
	assert_string_equal(n->str, "one line\n");
	assert_false(n->plain);
	n = ydoc_get(m, "none");
	assert_string_equal(n->str, "");
	assert_int_equal(n->len, 0);
	assert_true(n->plain);
	n = ydoc_get(m, "tilde");
	assert_string_equal(n->str, "~");
	assert_true(n->plain);
	assert_string_equal(ydoc_str(ydoc_get(m, "spaces")), "  x  ");
	/* an escaped NUL is kept: len counts it, str stays terminated */
	n = ydoc_get(m, "nul");
	assert_int_equal(n->len, 3);
	assert_memory_equal(n->str, "a\0b", 4);
	n = ydoc_get(m, "utf8");
	assert_string_equal(n->str, "\xc3\xa9t\xc3\xa9");
	assert_int_equal(n->len, 5);
	ydoc_free(s);
}

static void
test_accessors(void **state)
{
	struct ydoc_stream *s;
	struct ydoc_node *m, *l;

	(void)state;
	s = parse("a: x\nb: [1, 2, 3]\nc: {d: e}\n'': empty key\n");
	m = s->docs[0];
	l = ydoc_get(m, "b");
	assert_null(ydoc_get(m, "z"));
	assert_null(ydoc_get(m, "A"));
	assert_null(ydoc_get(l, "1"));		/* not a map */
	assert_null(ydoc_get(ydoc_get(m, "a"), "x"));
	assert_null(ydoc_get(NULL, "a"));
	assert_string_equal(ydoc_str(ydoc_get(m, "")), "empty key");
	assert_string_equal(ydoc_str(ydoc_get(m, "a")), "x");
	assert_null(ydoc_str(m));
	assert_null(ydoc_str(l));
	assert_null(ydoc_str(NULL));
	assert_int_equal(ydoc_count(m), 4);
	assert_int_equal(ydoc_count(l), 3);
	assert_int_equal(ydoc_count(ydoc_get(m, "c")), 1);
	assert_int_equal(ydoc_count(ydoc_get(m, "a")), 0);
	assert_int_equal(ydoc_count(NULL), 0);
	assert_string_equal(ydoc_type_name(YDOC_SCALAR), "a scalar");
	assert_string_equal(ydoc_type_name(YDOC_SEQ), "a list");
	assert_string_equal(ydoc_type_name(YDOC_MAP), "a mapping");
	ydoc_free(s);
}

static void
test_duplicate_keys(void **state)
{
	(void)state;
	refused("a: 1\na: 2\n", 2, 1, "duplicate key 'a'");
	refused("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", 5, 3, "duplicate key 'c'");
	/* quoting does not make it another key */
	refused("{name: x, 'name': y}", 1, 11, "duplicate key 'name'");
	/* in a later document, counted from the top of the stream */
	refused("a: 1\n---\nb: 1\nb: 2\n", 4, 1, "duplicate key 'b'");
	/* the same key in two maps is fine */
	ydoc_free(parse("a: {k: 1}\nb: {k: 2}\n"));
}

static void
test_anchors_aliases(void **state)
{
	(void)state;
	refused("a: &x 1\nb: *x\n", 1, 4, "anchors are not accepted");
	refused("base: &b {x: 1}\n", 1, 7, "anchors are not accepted");
	refused("list: &l [1]\n", 1, 7, "anchors are not accepted");
	refused("a: 1\nb: *nothing\n", 2, 4, "aliases are not accepted");
	refused("- *x\n", 1, 3, "aliases are not accepted");
	/* the classic expansion bomb never gets going */
	refused("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", 1, 4, "anchors");
}

static void
test_nonscalar_keys(void **state)
{
	(void)state;
	refused("[a, b]: 1\n", 1, 1, "mapping keys must be plain strings");
	refused("x: 1\n? {a: 1}\n: 2\n", 2, 3, "mapping keys must be plain strings");
	refused("? - a\n: 1\n", 1, 3, "mapping keys must be plain strings");
}

/* n nested flow sequences around a scalar. */
static char *
nested(unsigned n, bool maps)
{
	struct buf b;
	char *s;
	unsigned i;

	buf_init(&b, 0);
	for (i = 0; i < n; i++)
		assert_int_equal(buf_puts(&b, maps ? "{k: " : "["), 0);
	assert_int_equal(buf_puts(&b, "x"), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(buf_puts(&b, maps ? "}" : "]"), 0);
	assert_non_null(s = strdup(buf_cstr(&b)));
	buf_free(&b);
	return s;
}

static void
test_depth_limit(void **state)
{
	struct ydoc_stream *s;
	struct ydoc_node *n;
	char *text, err[256];
	unsigned i;

	(void)state;
	text = nested(YDOC_MAX_DEPTH, false);
	s = parse(text);
	for (i = 0, n = s->docs[0]; n->type == YDOC_SEQ; i++)
		n = n->items[0];
	assert_int_equal(i, YDOC_MAX_DEPTH);
	assert_string_equal(n->str, "x");
	ydoc_free(s);
	free(text);

	text = nested(YDOC_MAX_DEPTH + 1, false);
	assert_int_equal(ydoc_parse(text, strlen(text), &s, err, sizeof(err)), -1);
	assert_null(s);
	assert_string_equal(err, "line 1, column 33: nested too deeply");
	free(text);

	text = nested(YDOC_MAX_DEPTH, true);
	s = parse(text);
	ydoc_free(s);
	free(text);
	text = nested(YDOC_MAX_DEPTH + 1, true);
	assert_int_equal(ydoc_parse(text, strlen(text), &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nested too deeply"));
	free(text);

	/* far deeper than the limit: refused, not a stack overflow */
	text = nested(100000, false);
	assert_int_equal(ydoc_parse(text, strlen(text), &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nested too deeply"));
	free(text);
}

static void
test_malformed(void **state)
{
	struct ydoc_stream *s;
	char err[24];

	(void)state;
	refused("a: \"unterminated", 1, 17, "quoted scalar");
	refused("key: value: x\n", 1, 11, "mapping values are not allowed");
	refused("a: [1, 2\n", 2, 1, "flow sequence");
	refused("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed");
	refused("a:\n\tb: 1\n", 2, 1, "cannot start any token");
	refused("- a\nb: c\n", 2, 1, "expected");
	refused("{a: 1\n", 2, 1, "flow mapping");
	refused("a: 'x\n", 2, 1, "quoted scalar");
	refused("a: \"\\q\"\n", 1, 5, "unknown escape");
	/* a short error buffer is cut, never overrun */
	memset(err, 'x', sizeof(err));
	assert_int_equal(ydoc_parse("a: 1\na: 2\n", 10, &s, err, sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_true(strncmp(err, "line 2, column 1: ", 18) == 0);
}

/* Bytes that are not UTF-8 are refused, and the error points at them like
 * every other error does, not at the top of the document. */
static void
test_bad_utf8_position(void **state)
{
	(void)state;
	refused("ok: 1\nfine: 2\nbad: \xff\n", 3, 6, "UTF-8");
	refused("a: \xc3\n", 1, 4, "UTF-8");
}

/* --- yamlw: write, then read back with ydoc --- */

/* Strings that a plain scalar would turn into something else, or that need
 * quoting for YAML's own syntax, and some that need none. */
static const char *const tricky[] = {
	"123", "true", "", "null", "1.5", "false", "yes", "no", "on", "off",
	"~", "NULL", "True", "-1", "+1", ".5", ".inf", "0x1F", "1e3",
	"2024-01-01", "00123", "-", "a: b", "#x", "x #y", " lead", "trail ",
	"multi\nline", "tab\there", "\xc3\xbc\xc3\xb1\xc3\xad", "- a", "'q'",
	"\"dq\"", "[x]", "{x}", "&a", "*a", "!t", "%x", "@x", "`x", "|", "> x",
	"?", ":x", "a:b", "---", "...", "\001ctl", "back\\slash", "hello",
};

/* Strings that read as another type when plain must come back quoted. */
static const char *const typed[] = {
	"123", "true", "", "null", "1.5", "false", "yes", "no", "on", "off",
	"~", "NULL", "True", "-1", "+1", ".5", ".inf", "0x1F", "1e3", "2024-01-01",
};

static bool
in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static void
test_yamlw_roundtrip(void **state)
{
	const size_t ntricky = sizeof(tricky) / sizeof(tricky[0]);
	struct ydoc_stream *s;
	struct ydoc_node *m, *n, *l;
	struct yamlw w;
	struct buf out;
	size_t i;

	(void)state;
	buf_init(&out, 0);
	yamlw_begin(&w, &out);
	yamlw_doc(&w);
	yamlw_map(&w);
	yamlw_str(&w, "values");
	yamlw_seq(&w);
	for (i = 0; i < ntricky; i++)
		yamlw_str(&w, tricky[i]);
	yamlw_seq_end(&w);
	yamlw_str(&w, "keys");
	yamlw_map(&w);
	for (i = 0; i < ntricky; i++)
		yamlw_kstr(&w, tricky[i], tricky[i]);
	yamlw_map_end(&w);
	yamlw_ku64(&w, "max", UINT64_MAX);
	yamlw_ku64(&w, "zero", 0);
	yamlw_kbool(&w, "yes", true);
	yamlw_kbool(&w, "no", false);
	yamlw_str(&w, "nothing");
	yamlw_null(&w);
	yamlw_str(&w, "nullstr");
	yamlw_str(&w, NULL);
	yamlw_ktime(&w, "when", 86400 + 3661);
	yamlw_str(&w, "nest");
	yamlw_seq(&w);
	yamlw_map(&w);
	yamlw_kstr(&w, "name", "a");
	yamlw_str(&w, "inner");
	yamlw_seq(&w);
	yamlw_seq_end(&w);
	yamlw_map_end(&w);
	yamlw_map(&w);
	yamlw_map_end(&w);
	yamlw_seq_end(&w);
	yamlw_map_end(&w);
	yamlw_doc(&w);
	yamlw_str(&w, "second");
	assert_int_equal(yamlw_end(&w), 0);

	s = parse(buf_cstr(&out));
	assert_int_equal(s->ndocs, 2);
	m = s->docs[0];
	assert_int_equal(m->type, YDOC_MAP);

	l = ydoc_get(m, "values");
	assert_int_equal(ydoc_count(l), ntricky);
	for (i = 0; i < ntricky; i++) {
		n = l->items[i];
		assert_int_equal(n->type, YDOC_SCALAR);
		if (strcmp(n->str, tricky[i]) != 0)
			fail_msg("'%s' came back as '%s'", tricky[i], n->str);
		if (in_list(tricky[i], typed, sizeof(typed) / sizeof(typed[0])) && n->plain)
			fail_msg("'%s' came back as a plain scalar", tricky[i]);
	}
	/* the same strings as keys, each mapped to itself */
	l = ydoc_get(m, "keys");
	assert_int_equal(ydoc_count(l), ntricky);
	for (i = 0; i < ntricky; i++) {
		n = ydoc_get(l, tricky[i]);
		if (n == NULL)
			fail_msg("key '%s' missing after the round trip", tricky[i]);
		assert_string_equal(n->str, tricky[i]);
		assert_string_equal(l->items[2 * i]->str, tricky[i]);
		if (in_list(tricky[i], typed, sizeof(typed) / sizeof(typed[0])))
			assert_false(l->items[2 * i]->plain);
	}

	n = ydoc_get(m, "max");
	assert_string_equal(n->str, "18446744073709551615");
	assert_true(n->plain);
	assert_string_equal(ydoc_str(ydoc_get(m, "zero")), "0");
	assert_true(ydoc_get(m, "zero")->plain);
	n = ydoc_get(m, "yes");
	assert_string_equal(n->str, "true");
	assert_true(n->plain);
	n = ydoc_get(m, "no");
	assert_string_equal(n->str, "false");
	assert_true(n->plain);
	n = ydoc_get(m, "nothing");
	assert_string_equal(n->str, "null");
	assert_true(n->plain);
	assert_true(ydoc_get(m, "nullstr")->plain);
	n = ydoc_get(m, "when");
	assert_string_equal(n->str, "1970-01-02T01:01:01Z");
	assert_false(n->plain);

	l = ydoc_get(m, "nest");
	assert_int_equal(l->type, YDOC_SEQ);
	assert_int_equal(ydoc_count(l), 2);
	assert_string_equal(ydoc_str(ydoc_get(l->items[0], "name")), "a");
	assert_int_equal(ydoc_get(l->items[0], "inner")->type, YDOC_SEQ);
	assert_int_equal(ydoc_count(ydoc_get(l->items[0], "inner")), 0);
	assert_int_equal(l->items[1]->type, YDOC_MAP);
	assert_int_equal(ydoc_count(l->items[1]), 0);

	assert_string_equal(ydoc_str(s->docs[1]), "second");
	ydoc_free(s);
	buf_free(&out);
}

static void
test_yamlw_output_full(void **state)
{
	struct yamlw w;
	struct buf out;
	size_t i;

	(void)state;
	/* output that does not fit the buffer's max is a failure, not a
	 * silently cut document */
	buf_init(&out, 64);
	yamlw_begin(&w, &out);
	yamlw_doc(&w);
	yamlw_seq(&w);
	for (i = 0; i < 100; i++)
		yamlw_str(&w, "a string that takes room");
	yamlw_seq_end(&w);
	assert_int_equal(yamlw_end(&w), -1);
	buf_free(&out);

	/* an empty stream writes nothing and is fine */
	buf_init(&out, 0);
	yamlw_begin(&w, &out);
	assert_int_equal(yamlw_end(&w), 0);
	assert_int_equal(buf_len(&out), 0);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_multi_document),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_anchors_aliases),
		cmocka_unit_test(test_nonscalar_keys),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_bad_utf8_position),
		cmocka_unit_test(test_yamlw_roundtrip),
		cmocka_unit_test(test_yamlw_output_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
