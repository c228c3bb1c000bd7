/* test_schema: unit tests for provisioning/schema.c, the JSON Schema subset
 * that checks provisioning documents. Small inline schemas exercise each
 * keyword, its message, the YAML typing rules and the path and line:column
 * of errors; load-time refusals are checked; and the real
 * schemas/mailnode-v1.schema.yaml (found through MAILNODE_SOURCE_DIR, which
 * ctest sets) accepts one valid document of each kind and names the right
 * field and position for typical mistakes of a control panel. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schema.h"
#include "ydoc.h"

#define MAXERR	32

/* ---- helpers ---- */

static struct schema *
load_ok(const char *yaml)
{
	struct schema *s;
	char err[512];

	err[0] = '\0';
	if ((s = schema_load_mem(yaml, strlen(yaml), err, sizeof(err))) == NULL)
		fail_msg("schema refused: %s\n--- schema:\n%s", err, yaml);
	return s;
}

/* yaml must be refused with "line L, column C: " and want in the reason. */
static void
load_refused(const char *yaml, unsigned line, unsigned col, const char *want)
{
	struct schema *s;
	char err[512], prefix[64];

	memset(err, 'x', sizeof(err));
	if ((s = schema_load_mem(yaml, strlen(yaml), err, sizeof(err))) != NULL) {
		schema_free(s);
		fail_msg("schema accepted:\n%s", yaml);
	}
	assert_non_null(memchr(err, '\0', sizeof(err)));
	snprintf(prefix, sizeof(prefix), "line %u, column %u: ", line, col);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("reason '%s' does not start with '%s' for:\n%s", err, prefix, yaml);
	if (strstr(err, want) == NULL)
		fail_msg("reason '%s' lacks '%s' for:\n%s", err, want, yaml);
}

struct result {
	struct ydoc_stream	*doc;
	struct schema_error	 errs[MAXERR];
	size_t			 n;
	int			 rc;
};

static void
print_errors(const struct result *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		print_message("  %u:%u %s: %s\n", r->errs[i].line, r->errs[i].col,
		    r->errs[i].path, r->errs[i].message);
}

/* Validate the first document of text against ref, keeping up to max errors. */
static void
run_max(struct result *r, const struct schema *s, const char *ref, const char *text, size_t max)
{
	char err[256];

	memset(r, 0, sizeof(*r));
	if (ydoc_parse(text, strlen(text), &r->doc, err, sizeof(err)) != 0)
		fail_msg("document does not parse: %s\n%s", err, text);
	assert_true(r->doc->ndocs >= 1);
	r->rc = schema_validate(s, ref, r->doc->docs[0], r->errs, max, &r->n);
}

static void
run(struct result *r, const struct schema *s, const char *text)
{
	run_max(r, s, "#", text, MAXERR);
}

static void
done(struct result *r)
{
	ydoc_free(r->doc);
	r->doc = NULL;
}

static void
expect_valid(const struct schema *s, const char *text)
{
	struct result r;

	run(&r, s, text);
	if (r.rc != 0 || r.n != 0) {
		print_errors(&r);
		fail_msg("rc %d with %zu errors for a valid document:\n%s", r.rc, r.n, text);
	}
	done(&r);
}

static bool
has(const struct result *r, unsigned line, unsigned col, const char *path, const char *msg)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->errs[i].line == line && r->errs[i].col == col &&
		    strcmp(r->errs[i].path, path) == 0 && strcmp(r->errs[i].message, msg) == 0)
			return true;
	return false;
}

/* Exactly one error, this one. */
static void
expect_one(const struct schema *s, const char *text, unsigned line, unsigned col,
    const char *path, const char *msg)
{
	struct result r;

	run(&r, s, text);
	if (r.rc != 1 || r.n != 1 || !has(&r, line, col, path, msg)) {
		print_errors(&r);
		fail_msg("rc %d, %zu errors; wanted only %u:%u '%s': %s\nfor:\n%s", r.rc, r.n,
		    line, col, path, msg, text);
	}
	done(&r);
}

/* Invalid, and this error among the others. */
static void
expect_has(const struct schema *s, const char *text, unsigned line, unsigned col,
    const char *path, const char *msg)
{
	struct result r;

	run(&r, s, text);
	if (r.rc != 1 || !has(&r, line, col, path, msg)) {
		print_errors(&r);
		fail_msg("rc %d; wanted %u:%u '%s': %s\nfor:\n%s", r.rc, line, col, path, msg, text);
	}
	done(&r);
}

static const char *
type_of(const char *yaml)
{
	struct ydoc_stream *d;
	const char *t;
	char err[256];

	if (ydoc_parse(yaml, strlen(yaml), &d, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	t = schema_scalar_type(ydoc_get(d->docs[0], "v"));
	ydoc_free(d);
	return t;
}

/* ---- typing ---- */

static void
test_scalar_types(void **state)
{
	(void)state;
	assert_string_equal(type_of("v: 123"), "integer");
	assert_string_equal(type_of("v: -7"), "integer");
	assert_string_equal(type_of("v: +5"), "integer");
	assert_string_equal(type_of("v: 007"), "integer");
	assert_string_equal(type_of("v: -9223372036854775808"), "integer");
	assert_string_equal(type_of("v: 9223372036854775807"), "integer");
	assert_string_equal(type_of("v: 9223372036854775808"), "number");
	assert_string_equal(type_of("v: 1.5"), "number");
	assert_string_equal(type_of("v: -2e3"), "number");
	assert_string_equal(type_of("v: .5"), "number");
	assert_string_equal(type_of("v: 1e"), "string");
	assert_string_equal(type_of("v: .inf"), "string");
	assert_string_equal(type_of("v: 0x1F"), "string");
	assert_string_equal(type_of("v: 0.0.0.0"), "string");
	assert_string_equal(type_of("v: \"123\""), "string");
	assert_string_equal(type_of("v: '1.5'"), "string");
	assert_string_equal(type_of("v: true"), "boolean");
	assert_string_equal(type_of("v: False"), "boolean");
	assert_string_equal(type_of("v: TRUE"), "boolean");
	assert_string_equal(type_of("v: 'true'"), "string");
	assert_string_equal(type_of("v: yes"), "string");
	assert_string_equal(type_of("v: no"), "string");
	assert_string_equal(type_of("v: on"), "string");
	assert_string_equal(type_of("v: off"), "string");
	assert_string_equal(type_of("v: tRUE"), "string");
	assert_string_equal(type_of("v: ~"), "null");
	assert_string_equal(type_of("v:"), "null");
	assert_string_equal(type_of("v: NULL"), "null");
	assert_string_equal(type_of("v: \"\""), "string");
	assert_string_equal(type_of("v: \"null\""), "string");
	assert_string_equal(type_of("v: {}"), "object");
	assert_string_equal(type_of("v: []"), "array");
	assert_string_equal(schema_scalar_type(NULL), "null");
}

static void
test_type(void **state)
{
	struct schema *s;

	(void)state;
	s = load_ok("properties:\n"
	    "  i: {type: integer}\n"
	    "  n: {type: number}\n"
	    "  b: {type: boolean}\n"
	    "  s: {type: string}\n"
	    "  o: {type: object}\n"
	    "  a: {type: array}\n"
	    "  z: {type: \"null\"}\n"
	    "  is: {type: [integer, string]}\n");
	expect_valid(s, "i: 123\nn: 1\nb: false\ns: hello\no: {x: 1}\na: [1]\nz: ~\nis: 5\n");
	expect_valid(s, "n: -2.5e3\nis: five\ns: \"123\"\n");
	expect_one(s, "i: ten\n", 1, 4, "i", "expected an integer, got the string 'ten'");
	expect_one(s, "i: \"123\"\n", 1, 4, "i", "expected an integer, got the string '123'");
	expect_one(s, "i: 1.5\n", 1, 4, "i", "expected an integer, got the number 1.5");
	expect_one(s, "n: x\n", 1, 4, "n", "expected a number, got the string 'x'");
	expect_one(s, "b: yes\n", 1, 4, "b", "expected a boolean, got the string 'yes'");
	expect_one(s, "s: 123\n", 1, 4, "s", "expected a string, got the integer 123");
	expect_one(s, "s: true\n", 1, 4, "s", "expected a string, got the boolean true");
	/* an empty value sits just after the colon */
	expect_one(s, "s:\n", 1, 3, "s", "expected a string, got null");
	expect_one(s, "o: 5\n", 1, 4, "o", "expected a mapping, got the integer 5");
	expect_one(s, "a: {}\n", 1, 4, "a", "expected a list, got a mapping");
	expect_one(s, "z: 0\n", 1, 4, "z", "expected null, got the integer 0");
	expect_one(s, "is: [1]\n", 1, 5, "is", "expected an integer or a string, got a list");
	schema_free(s);
}

/* ---- keywords ---- */

static void
test_const_enum(void **state)
{
	struct schema *s;

	(void)state;
	s = load_ok("properties:\n"
	    "  apiVersion: {const: mailnode/v1}\n"
	    "  n: {const: 5}\n"
	    "  mode: {enum: [open, deny-listed, allow-listed]}\n"
	    "  level: {enum: [1, 2, 3]}\n");
	expect_valid(s, "apiVersion: mailnode/v1\nn: 5\nmode: open\nlevel: 2\n");
	expect_valid(s, "apiVersion: \"mailnode/v1\"\nmode: 'deny-listed'\n");
	expect_one(s, "apiVersion: v2\n", 1, 13, "apiVersion", "must be mailnode/v1, got 'v2'");
	expect_one(s, "apiVersion: 1\n", 1, 13, "apiVersion",
	    "must be the string 'mailnode/v1', got the integer 1");
	expect_one(s, "n: 6\n", 1, 4, "n", "must be 5, got '6'");
	expect_one(s, "n: \"5\"\n", 1, 4, "n", "must be the integer 5, got the string '5'");
	expect_one(s, "mode: closed\n", 1, 7, "mode",
	    "expected one of: open, deny-listed, allow-listed; got 'closed'");
	expect_one(s, "mode: [open]\n", 1, 7, "mode",
	    "expected one of: open, deny-listed, allow-listed; got a list");
	expect_one(s, "level: \"2\"\n", 1, 8, "level",
	    "expected one of: 1, 2, 3; got the string '2'");
	expect_one(s, "level: 4\n", 1, 8, "level", "expected one of: 1, 2, 3; got '4'");
	schema_free(s);
}

static void
test_properties(void **state)
{
	struct schema *s;

	(void)state;
	s = load_ok("type: object\n"
	    "additionalProperties: false\n"
	    "required: [name]\n"
	    "properties:\n"
	    "  name: {type: string}\n"
	    "  spec:\n"
	    "    type: object\n"
	    "    additionalProperties: false\n"
	    "    properties:\n"
	    "      limits:\n"
	    "        type: object\n"
	    "        properties:\n"
	    "          mailboxes: {type: integer}\n"
	    "      to: {type: array, items: {type: string}}\n"
	    "  open:\n"
	    "    type: object\n");
	expect_valid(s, "name: x\nspec: {limits: {mailboxes: 5, other: 1}, to: [a, b]}\n"
	    "open: {anything: [1, 2]}\n");
	/* the key node, path of the field */
	expect_one(s, "name: x\nspec:\n  limitz: {}\n", 3, 3, "spec.limitz",
	    "unknown field 'limitz' (expected one of: limits, to)");
	expect_one(s, "name: x\nnmae: y\n", 2, 1, "nmae",
	    "unknown field 'nmae' (expected one of: name, spec, open)");
	/* the containing map and its path; the root is "" */
	expect_one(s, "spec: {}\n", 1, 1, "", "missing required field 'name'");
	expect_one(s, "name: x\nspec:\n  limits:\n    mailboxes: ten\n", 4, 16,
	    "spec.limits.mailboxes", "expected an integer, got the string 'ten'");
	expect_one(s, "name: x\nspec:\n  to:\n    - a\n    - b\n    - 3\n", 6, 7, "spec.to[2]",
	    "expected a string, got the integer 3");
	schema_free(s);

	/* additionalProperties: true and absent both allow anything */
	s = load_ok("additionalProperties: true\nproperties: {a: {type: string}}\n");
	expect_valid(s, "a: x\nb: 1\n");
	schema_free(s);
	s = load_ok("additionalProperties: false\n");
	expect_one(s, "b: 1\n", 1, 1, "b", "unknown field 'b' (no fields are allowed here)");
	schema_free(s);
}

static void
test_missing_field_position(void **state)
{
	struct schema *s;

	(void)state;
	s = load_ok("properties:\n"
	    "  metadata:\n"
	    "    required: [name, tenant]\n");
	expect_one(s, "kind: x\nmetadata:\n  name: a\n", 3, 3, "metadata",
	    "missing required field 'tenant'");
	expect_one(s, "metadata: {tenant: t}\n", 1, 11, "metadata",
	    "missing required field 'name'");
	schema_free(s);
}

static void
test_allof_if(void **state)
{
	struct schema *s;
	struct result r;

	(void)state;
	/* the same error through two branches is reported once */
	s = load_ok("allOf:\n  - {type: string}\n  - {type: string}\n  - {$ref: \"#/$defs/S\"}\n"
	    "type: string\n"
	    "$defs:\n  S: {type: string}\n");
	expect_one(s, "5\n", 1, 1, "", "expected a string, got the integer 5");
	schema_free(s);

	s = load_ok("type: object\n"
	    "properties:\n"
	    "  kind: {enum: [A, B]}\n"
	    "allOf:\n"
	    "  - if: {required: [kind], properties: {kind: {const: A}}}\n"
	    "    then: {required: [a]}\n"
	    "    else: {required: [b]}\n");
	expect_valid(s, "kind: A\na: 1\n");
	expect_valid(s, "kind: B\nb: 1\n");
	/* if failed silently: nothing about kind's const, only else's */
	expect_one(s, "kind: B\na: 1\n", 1, 1, "", "missing required field 'b'");
	expect_one(s, "kind: A\nb: 1\n", 1, 1, "", "missing required field 'a'");
	/* if with errors inside it that must not leak out */
	run(&r, s, "kind: C\nb: 1\n");
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.errs[0].message, "expected one of: A, B; got 'C'");
	done(&r);
	schema_free(s);

	/* then applies with no else */
	s = load_ok("if: {type: integer}\nthen: {minimum: 10}\n");
	expect_valid(s, "abc\n");
	expect_valid(s, "10\n");
	expect_one(s, "9\n", 1, 1, "", "must be at least 10");
	schema_free(s);
}

static void
test_arrays(void **state)
{
	struct schema *s;
	struct result r;

	(void)state;
	s = load_ok("properties:\n"
	    "  bind: {type: array, minItems: 1, maxItems: 8, items: {type: string}}\n"
	    "  one: {maxItems: 1}\n"
	    "  two: {minItems: 2}\n"
	    "  u: {uniqueItems: true}\n");
	expect_valid(s, "bind: [a]\nu: [x, y, z, 1, '2']\none: []\n");
	expect_one(s, "bind: []\n", 1, 7, "bind", "at least 1 item needed");
	expect_one(s, "bind: [a, b, c, d, e, f, g, h, i]\n", 1, 7, "bind",
	    "at most 8 items allowed");
	expect_one(s, "one: [1, 2]\n", 1, 6, "one", "at most 1 item allowed");
	expect_one(s, "two: [1]\n", 1, 6, "two", "at least 2 items needed");
	/* the later copies are the duplicates */
	run(&r, s, "u:\n  - x\n  - y\n  - x\n  - \"x\"\n  - y\n");
	assert_int_equal(r.rc, 1);
	if (r.n != 3 || !has(&r, 4, 5, "u[2]", "duplicate item 'x'") ||
	    !has(&r, 5, 5, "u[3]", "duplicate item 'x'") ||
	    !has(&r, 6, 5, "u[4]", "duplicate item 'y'")) {
		print_errors(&r);
		fail_msg("wrong duplicates");
	}
	done(&r);
	schema_free(s);
}

static void
test_strings(void **state)
{
	struct schema *s;

	(void)state;
	s = load_ok("properties:\n"
	    "  name: {type: string, minLength: 1, maxLength: 5}\n"
	    "  long: {maxLength: 254}\n"
	    "  pw: {minLength: 8}\n"
	    "  tenant: {pattern: \"^[a-z0-9][a-z0-9-]{0,62}$\"}\n"
	    "  free: {pattern: b}\n");
	/* code points, not bytes: "héllo" is 5 characters in 6 bytes */
	expect_valid(s, "name: h\xc3\xa9llo\ntenant: acme-1\nfree: abc\n");
	expect_one(s, "name: h\xc3\xa9llo!\n", 1, 7, "name", "must be at most 5 characters");
	expect_one(s, "name: ''\n", 1, 7, "name", "must be at least 1 character");
	expect_one(s, "pw: short\n", 1, 5, "pw", "must be at least 8 characters");
	expect_one(s, "tenant: Acme\n", 1, 9, "tenant",
	    "does not match the pattern ^[a-z0-9][a-z0-9-]{0,62}$");
	/* anchored only as written */
	expect_one(s, "free: xyz\n", 1, 7, "free", "does not match the pattern b");
	/* a NUL cannot hide the rest of the string from the pattern */
	expect_one(s, "tenant: \"acme\\0evil\"\n", 1, 9, "tenant",
	    "does not match the pattern ^[a-z0-9][a-z0-9-]{0,62}$");
	/* length and pattern apply to strings only */
	expect_valid(s, "pw: 5\ntenant: 12345678901234567890\nlong: [1, 2, 3, 4, 5, 6]\n");
	schema_free(s);
}

static void
test_numbers(void **state)
{
	struct schema *s;

	(void)state;
	s = load_ok("properties:\n"
	    "  n: {type: integer, minimum: 0, maximum: 1000000}\n"
	    "  x: {minimum: -5}\n");
	expect_valid(s, "n: 0\nx: -5\n");
	expect_valid(s, "n: 1000000\nx: -4.5\n");
	expect_one(s, "n: -1\n", 1, 4, "n", "must be at least 0");
	expect_one(s, "n: 1000001\n", 1, 4, "n", "must be at most 1000000");
	expect_one(s, "n: 99999999999999999999\n", 1, 4, "n",
	    "expected an integer, got the number 99999999999999999999");
	expect_one(s, "x: -5.5\n", 1, 4, "x", "must be at least -5");
	expect_valid(s, "x: \"-10\"\n");	/* a string is not a number */
	schema_free(s);
}

struct fmt_log {
	unsigned	 calls;
	char		 last_format[32];
	char		 last_key[32];
};

/* Accepts everything but "BAD"; knows every format except "mystery". */
static int
fmt_cb(void *ctx, const char *format, const struct ydoc_node *value, const char *key,
    char *why, size_t whylen)
{
	struct fmt_log *log = ctx;

	if (log != NULL) {
		log->calls++;
		snprintf(log->last_format, sizeof(log->last_format), "%s", format);
		snprintf(log->last_key, sizeof(log->last_key), "%s", key);
	}
	if (strcmp(format, "mystery") == 0 || strcmp(format, "date-time") == 0)
		return -1;
	if (strcmp(value->str, "BAD") == 0) {
		snprintf(why, whylen, "the %s checker said no", format);
		return 0;
	}
	return 1;
}

static void
test_format(void **state)
{
	struct schema *s;
	struct fmt_log log;

	(void)state;
	s = load_ok("properties:\n"
	    "  to: {type: array, items: {type: string, format: email}}\n"
	    "  port: {format: service-setting}\n"
	    "  flag: {format: service-setting}\n"
	    "  m: {format: mystery}\n"
	    "  at: {type: string, format: date-time}\n");
	/* without a callback: custom formats pass, date-time is checked */
	expect_valid(s, "to: [BAD]\nm: BAD\nat: 2026-11-23T18:00:00Z\n");
	expect_one(s, "at: 2026-02-30T18:00:00Z\n", 1, 5, "at",
	    "'2026-02-30T18:00:00Z' is not a valid date-time: expected RFC 3339 like "
	    "2026-11-23T18:00:00Z or 2026-11-23T18:00:00+01:00");

	memset(&log, 0, sizeof(log));
	schema_set_format(s, fmt_cb, &log);
	expect_valid(s, "m: BAD\nto: [a@example.com]\n");
	assert_int_equal(log.calls, 2);
	assert_string_equal(log.last_format, "email");
	assert_string_equal(log.last_key, "");		/* inside an array */
	expect_one(s, "to: [a@b, BAD]\n", 1, 11, "to[1]",
	    "'BAD' is not a valid email: the email checker said no");
	/* integers go to the callback, with the property's name */
	log.calls = 0;
	expect_valid(s, "port: 25\n");
	assert_int_equal(log.calls, 1);
	assert_string_equal(log.last_key, "port");
	/* booleans do not */
	log.calls = 0;
	expect_valid(s, "flag: true\n");
	assert_int_equal(log.calls, 0);
	/* the callback's -1 for date-time falls back to the built-in check */
	expect_valid(s, "at: 2026-11-23T18:00:00+01:00\n");
	expect_valid(s, "at: 2024-02-29t18:00:00.25z\n");
	expect_valid(s, "at: '2026-11-23T23:59:60-05:30'\n");
	expect_has(s, "at: 2026-11-23 18:00:00Z\n", 1, 5, "at",
	    "'2026-11-23 18:00:00Z' is not a valid date-time: expected RFC 3339 like "
	    "2026-11-23T18:00:00Z or 2026-11-23T18:00:00+01:00");
	expect_has(s, "at: 2023-02-29T18:00:00Z\n", 1, 5, "at",
	    "'2023-02-29T18:00:00Z' is not a valid date-time: expected RFC 3339 like "
	    "2026-11-23T18:00:00Z or 2026-11-23T18:00:00+01:00");
	expect_has(s, "at: 2026-11-23T24:00:00Z\n", 1, 5, "at",
	    "'2026-11-23T24:00:00Z' is not a valid date-time: expected RFC 3339 like "
	    "2026-11-23T18:00:00Z or 2026-11-23T18:00:00+01:00");
	expect_has(s, "at: 2026-11-23T18:00:00\n", 1, 5, "at",
	    "'2026-11-23T18:00:00' is not a valid date-time: expected RFC 3339 like "
	    "2026-11-23T18:00:00Z or 2026-11-23T18:00:00+01:00");
	schema_free(s);
}

static void
test_refs(void **state)
{
	struct schema *s;
	struct result r;

	(void)state;
	/* $ref beside other keywords: both apply */
	s = load_ok("$defs:\n"
	    "  Name: {type: string, maxLength: 3}\n"
	    "  Tree:\n"
	    "    type: object\n"
	    "    additionalProperties: false\n"
	    "    properties:\n"
	    "      v: {type: integer}\n"
	    "      kids: {type: array, items: {$ref: \"#/$defs/Tree\"}}\n"
	    "properties:\n"
	    "  n: {$ref: \"#/$defs/Name\", pattern: \"^a\"}\n"
	    "  t: {$ref: \"#/$defs/Tree\"}\n"
	    "  self: {$ref: \"#\"}\n");
	expect_valid(s, "n: abc\nt: {v: 1, kids: [{v: 2}, {kids: []}]}\nself: {n: a}\n");
	run(&r, s, "n: bcde\n");
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 2);
	assert_true(has(&r, 1, 4, "n", "must be at most 3 characters"));
	assert_true(has(&r, 1, 4, "n", "does not match the pattern ^a"));
	done(&r);
	expect_one(s, "t:\n  kids:\n    - v: 1\n    - kids:\n        - v: x\n", 5, 14,
	    "t.kids[1].kids[0].v", "expected an integer, got the string 'x'");
	expect_one(s, "self: {self: {n: abcd}}\n", 1, 18, "self.self.n",
	    "must be at most 3 characters");

	/* validation at a definition */
	run_max(&r, s, "#/$defs/Name", "toolong\n", MAXERR);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.errs[0].message, "must be at most 3 characters");
	done(&r);
	run_max(&r, s, "#/$defs/Nope", "x\n", MAXERR);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.n, 0);
	assert_non_null(strstr(r.errs[0].message, "#/$defs/Nope"));
	done(&r);
	run_max(&r, s, "other.yaml#/x", "x\n", MAXERR);
	assert_int_equal(r.rc, -1);
	done(&r);
	schema_free(s);
}

static void
test_boolean_schemas(void **state)
{
	struct schema *s;

	(void)state;
	s = load_ok("properties:\n  gone: false\n  any: true\n");
	expect_valid(s, "any: [1, {a: b}]\n");
	expect_one(s, "gone: 1\n", 1, 7, "gone", "not allowed here");
	schema_free(s);
}

static void
test_order_and_max(void **state)
{
	struct schema *s;
	struct result r;
	const char *doc = "a: x\nb: y\nc: z\n";

	(void)state;
	/* allOf is evaluated after properties, but errors come in document order */
	s = load_ok("properties:\n"
	    "  c: {type: integer}\n"
	    "allOf:\n"
	    "  - properties: {a: {type: integer}}\n"
	    "  - properties: {b: {type: integer}}\n");
	run(&r, s, doc);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.errs[0].path, "a");
	assert_string_equal(r.errs[1].path, "b");
	assert_string_equal(r.errs[2].path, "c");
	done(&r);
	/* at most max, the first ones in the document */
	run_max(&r, s, "#", doc, 2);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.errs[0].path, "a");
	assert_string_equal(r.errs[1].path, "b");
	done(&r);
	run_max(&r, s, "#", doc, 0);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 0);
	done(&r);
	run_max(&r, s, "#", "a: 1\n", 0);
	assert_int_equal(r.rc, 0);
	done(&r);
	schema_free(s);
}

static void
test_long_path_and_values(void **state)
{
	struct schema *s;
	struct result r;
	char doc[2048], key[201];
	size_t i;

	(void)state;
	s = load_ok("additionalProperties: false\nproperties: {a: {$ref: \"#\"}, s: {type: integer}}\n");
	memset(key, 'k', 200);
	key[200] = '\0';
	/* a long unknown key: message and path are cut, not overflowed */
	snprintf(doc, sizeof(doc), "a:\n  a:\n    %s: 1\n", key);
	run(&r, s, doc);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.errs[0].line, 3);
	assert_int_equal(r.errs[0].col, 5);
	assert_true(strlen(r.errs[0].path) < sizeof(r.errs[0].path));
	assert_non_null(strstr(r.errs[0].path, "..."));
	assert_true(strncmp(r.errs[0].message, "unknown field 'kkkk", 19) == 0);
	done(&r);
	/* control characters are not copied into messages */
	run(&r, s, "s: \"x\\ny\"\n");
	assert_int_equal(r.n, 1);
	assert_string_equal(r.errs[0].message, "expected an integer, got the string 'x?y'");
	done(&r);
	/* a deep path still fits the 256 bytes */
	doc[0] = '\0';
	for (i = 0; i < 30; i++) {
		size_t len = strlen(doc);

		snprintf(doc + len, sizeof(doc) - len, "%*sa:\n", (int)(2 * i), "");
	}
	run(&r, s, doc);
	assert_int_equal(r.rc, 0);
	done(&r);
	schema_free(s);
}

static void
test_depth_limit(void **state)
{
	struct schema *s;
	struct result r;
	char doc[4096];
	size_t i;

	(void)state;
	/* three schema levels per document level: 30 levels exceed 64 */
	s = load_ok("$defs:\n"
	    "  T:\n"
	    "    allOf: [{$ref: \"#/$defs/U\"}]\n"
	    "  U:\n"
	    "    properties: {a: {$ref: \"#/$defs/T\"}}\n"
	    "$ref: \"#/$defs/T\"\n");
	doc[0] = '\0';
	for (i = 0; i < 30; i++) {
		size_t len = strlen(doc);

		snprintf(doc + len, sizeof(doc) - len, "%*sa:\n", (int)(2 * i), "");
	}
	run(&r, s, doc);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.n, 1);
	assert_non_null(strstr(r.errs[0].message, "nested too deeply"));
	done(&r);
	schema_free(s);
}

/* ---- load-time refusals ---- */

static void
test_load_refusals(void **state)
{
	(void)state;
	load_refused("type: object\nproperties:\n  a: {oneOf: [{type: string}]}\n", 3, 7,
	    "unknown keyword 'oneOf'");
	load_refused("minProperties: 1\n", 1, 1, "unknown keyword 'minProperties'");
	load_refused("properties:\n  a: {pattern: \"([a-z\"}\n", 2, 16, "bad pattern");
	load_refused("properties:\n  a: {$ref: \"#/$defs/Nope\"}\n", 2, 13,
	    "$ref '#/$defs/Nope' names no definition in $defs");
	load_refused("$ref: \"http://example.com/s\"\n", 1, 7, "is not supported");
	load_refused("$ref: #/$defs/X\n", 1, 6, "$ref must be a string");
	schema_free(NULL);
}

/* schema_load names the file before line:column. */
static void
test_load_file(void **state)
{
	char path[] = "/tmp/test_schema_XXXXXX", err[512], want[600];
	const char text[] = "type: object\nfoo: 1\n";
	struct schema *s;
	FILE *f;
	int fd;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	assert_int_equal(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
	assert_int_equal(fclose(f), 0);
	s = schema_load(path, err, sizeof(err));
	unlink(path);
	assert_null(s);
	snprintf(want, sizeof(want), "%s: line 2, column 1: unknown keyword 'foo' "
	    "(not supported by this validator)", path);
	assert_string_equal(err, want);
	assert_null(schema_load("/nonexistent/schema.yaml", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/schema.yaml: No such file or directory");
}

static void
test_load_cycles(void **state)
{
	struct schema *s;
	char err[512];
	const char *cyc = "$defs:\n  A: {$ref: \"#/$defs/B\"}\n  B: {allOf: [{$ref: \"#/$defs/A\"}]}\n";

	(void)state;
	s = schema_load_mem(cyc, strlen(cyc), err, sizeof(err));
	assert_null(s);
	if (strstr(err, "$ref cycle") == NULL || strstr(err, "line ") != err)
		fail_msg("bad reason: %s", err);
	load_refused("$ref: \"#\"\n", 1, 7, "$ref cycle through '#'");
	load_refused("$defs:\n  A: {$ref: \"#/$defs/A\"}\n", 2, 13, "$ref cycle through '#/$defs/A'");
	load_refused("$defs:\n  A: {if: {$ref: \"#/$defs/A\"}}\n", 2, 18, "$ref cycle");
	/* progress into the document is not a cycle */
	s = load_ok("properties: {child: {$ref: \"#\"}}\nitems: {$ref: \"#\"}\n");
	schema_free(s);
}

static void
test_load_other_refusals(void **state)
{
	struct schema *s;
	char err[512];

	(void)state;
	load_refused("then: {type: string}\n", 1, 1, "then/else without if");
	load_refused("additionalProperties: {type: string}\n", 1, 23,
	    "additionalProperties must be true or false");
	load_refused("type: strnig\n", 1, 7, "unknown type 'strnig'");
	load_refused("type: []\n", 1, 7, "type must not be an empty list");
	load_refused("minItems: -1\n", 1, 11, "minItems must be a non-negative integer");
	load_refused("maxLength: \"5\"\n", 1, 12, "maxLength must be a non-negative integer");
	load_refused("minimum: 1.5\n", 1, 10, "minimum must be an integer");
	load_refused("enum: []\n", 1, 7, "enum must be a non-empty list of scalars");
	load_refused("enum: [{a: 1}]\n", 1, 8, "enum must be a list of scalars");
	load_refused("const: [1]\n", 1, 8, "const must be a scalar");
	load_refused("items: [{type: string}]\n", 1, 8, "items must be one schema");
	load_refused("properties: {a: 5}\n", 1, 17, "a schema must be a mapping, true or false");
	load_refused("properties:\n  a:\n    $defs: {}\n", 3, 5, "$defs is only supported at the top");
	load_refused("uniqueItems: 1\n", 1, 14, "uniqueItems must be true or false");
	load_refused("a: [\n", 2, 1, "");	/* YAML errors carry line:column */
	load_refused("type: string\n---\ntype: integer\n", 3, 1, "single YAML document");
	/* annotations and x- keys are accepted */
	s = load_ok("$schema: x\n$id: y\ntitle: t\ndescription: d\ndefault: 1\nexamples: [1]\n"
	    "$comment: c\nx-panel-hint: {anything: [1]}\n");
	expect_valid(s, "whatever\n");
	schema_free(s);
	/* empty text and missing files */
	assert_null(schema_load_mem("", 0, err, sizeof(err)));
	assert_non_null(strstr(err, "empty"));
	assert_null(schema_load("/nonexistent/schema.yaml", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/schema.yaml: "));
}

/* ---- the real schema ---- */

struct real {
	struct schema	*s;
	struct fmt_log	 log;
};

static int
real_setup(void **state)
{
	static struct real real;
	const char *dir = getenv("MAILNODE_SOURCE_DIR");
	char path[1024], err[512];

	if (dir == NULL || dir[0] == '\0') {
		print_error("MAILNODE_SOURCE_DIR is not set: ctest sets it; by hand run "
		    "MAILNODE_SOURCE_DIR=/path/to/mailnode %s\n", "test_schema");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/schemas/mailnode-v1.schema.yaml", dir);
	memset(&real, 0, sizeof(real));
	if ((real.s = schema_load(path, err, sizeof(err))) == NULL) {
		print_error("cannot load the real schema: %s\n", err);
		return -1;
	}
	schema_set_format(real.s, fmt_cb, &real.log);
	*state = &real;
	return 0;
}

static int
real_teardown(void **state)
{
	struct real *real = *state;

	if (real != NULL)
		schema_free(real->s);
	return 0;
}

static const char tenant_doc[] =
    "apiVersion: mailnode/v1\n"
    "kind: Tenant\n"
    "metadata:\n"
    "  name: acme\n"
    "spec:\n"
    "  state: active\n"
    "  suspend: {login: false, incoming: false, outgoing: false}\n"
    "  limits:\n"
    "    domains: 10\n"
    "    mailboxes: 100\n"
    "    aliases: 100\n"
    "    storage: 10GiB\n"
    "    messageSize: 26214400\n"
    "    sendRate: 500/h\n"
    "  connections:\n"
    "    maxConcurrent: 50\n"
    "    perIpPerMinute: 20\n"
    "    exempt: [192.0.2.0/24]\n"
    "  access:\n"
    "    mode: deny-listed\n"
    "    addresses: [\"198.51.100.*\", \"2001:db8::/32\"]\n";

static const char domain_doc[] =
    "apiVersion: mailnode/v1\n"
    "kind: Domain\n"
    "metadata:\n"
    "  name: example.com\n"
    "  tenant: acme\n"
    "spec:\n"
    "  catchAll: reject\n"
    "  blockedSenders: [\"*@spam.example\", bad@example.net]\n"
    "  tls:\n"
    "    certificate: |\n"
    "      -----BEGIN CERTIFICATE-----\n"
    "      MIIB\n"
    "      -----END CERTIFICATE-----\n"
    "    key: |\n"
    "      -----BEGIN PRIVATE KEY-----\n"
    "      MIIE\n"
    "      -----END PRIVATE KEY-----\n";

static const char mailbox_doc[] =
    "apiVersion: mailnode/v1\n"
    "kind: Mailbox\n"
    "metadata:\n"
    "  name: alice@example.com\n"
    "  tenant: acme\n"
    "spec:\n"
    "  password: correct horse battery staple\n"
    "  quota: 2GiB\n"
    "  state: active\n"
    "  suspend: {outgoing: true}\n"
    "  forwardTo: [bob@example.net]\n"
    "  keepCopy: true\n"
    "  autoreply:\n"
    "    subject: Away\n"
    "    body: |\n"
    "      Back on Monday.\n"
    "    from: 2026-11-23T18:00:00Z\n"
    "    until: 2026-11-30T08:00:00+01:00\n";

static const char alias_doc[] =
    "apiVersion: mailnode/v1\n"
    "kind: Alias\n"
    "metadata:\n"
    "  name: sales@example.com\n"
    "  tenant: acme\n"
    "spec:\n"
    "  to:\n"
    "    - alice@example.com\n"
    "    - bob@example.net\n";

static const char service_doc[] =
    "apiVersion: mailnode/v1\n"
    "kind: Service\n"
    "metadata:\n"
    "  name: smtp\n"
    "spec:\n"
    "  state: running\n"
    "  bind: [0.0.0.0, \"::\"]\n"
    "  port: 2525\n"
    "  maxClients: 100\n"
    "  timeout: 5m\n"
    "  autoStart: true\n"
    "  restartOnChange: false\n"
    "  access: {mode: allow-listed, addresses: [\"10.0.0.0/8\"]}\n"
    "  connections: {maxConcurrent: 0, perIpPerMinute: 60, exempt: [\"127.0.0.1\"]}\n";

static void
test_real_valid(void **state)
{
	struct real *real = *state;
	const char *docs[] = { tenant_doc, domain_doc, mailbox_doc, alias_doc, service_doc };
	struct result r;
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		expect_valid(real->s, docs[i]);
	/* the spec alone, checked against its definition */
	run_max(&r, real->s, "#/$defs/AliasSpec", "to: [a@example.com]\n", MAXERR);
	assert_int_equal(r.rc, 0);
	done(&r);
	/* the service-setting format is asked with the setting's name */
	real->log.calls = 0;
	expect_valid(real->s, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: imap}\n"
	    "spec: {port: 2143}\n");
	assert_int_equal(real->log.calls, 1);
	assert_string_equal(real->log.last_format, "service-setting");
	assert_string_equal(real->log.last_key, "port");
}

static void
test_real_unknown_field(void **state)
{
	struct real *real = *state;

	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Mailbox\n"
	    "metadata:\n"
	    "  name: alice@example.com\n"
	    "  tenant: acme\n"
	    "spec:\n"
	    "  password: correct horse battery staple\n"
	    "  quotaa: 2GiB\n",
	    8, 3, "spec.quotaa",
	    "unknown field 'quotaa' (expected one of: password, passwordHash, quota, state, "
	    "suspend, forwardTo, keepCopy, autoreply)");
}

static void
test_real_integer(void **state)
{
	struct real *real = *state;

	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Tenant\n"
	    "metadata: {name: acme}\n"
	    "spec:\n"
	    "  limits: {mailboxes: ten}\n",
	    5, 23, "spec.limits.mailboxes", "expected an integer, got the string 'ten'");
	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Tenant\n"
	    "metadata: {name: acme}\n"
	    "spec:\n"
	    "  limits: {mailboxes: -1}\n",
	    5, 23, "spec.limits.mailboxes", "must be at least 0");
}

static void
test_real_kind(void **state)
{
	struct real *real = *state;

	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Tenat\n"
	    "metadata: {name: acme}\n"
	    "spec: {}\n",
	    2, 7, "kind", "expected one of: Tenant, Domain, Mailbox, Alias, Service; got 'Tenat'");
	expect_one(real->s,
	    "apiVersion: mailnode/v2\n"
	    "kind: Tenant\n"
	    "metadata: {name: acme}\n"
	    "spec: {}\n",
	    1, 13, "apiVersion", "must be mailnode/v1, got 'mailnode/v2'");
}

static void
test_real_missing_tenant(void **state)
{
	struct real *real = *state;

	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Domain\n"
	    "metadata:\n"
	    "  name: example.com\n"
	    "spec: {}\n",
	    4, 3, "metadata", "missing required field 'tenant'");
	/* Metadata and DomainName both require name: said once */
	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Domain\n"
	    "metadata:\n"
	    "  tenant: acme\n"
	    "spec: {}\n",
	    4, 3, "metadata", "missing required field 'name'");
}

static void
test_real_service_name(void **state)
{
	struct real *real = *state;

	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Service\n"
	    "metadata: {name: nosuch}\n"
	    "spec: {state: running}\n",
	    3, 18, "metadata.name",
	    "expected one of: smtp, submission, smtps, pop3, pop3s, imap, imaps, http, https, "
	    "admin, ldap, spool, indexing, imap-retrieval, pop-retrieval; got 'nosuch'");
}

static void
test_real_misc(void **state)
{
	struct real *real = *state;
	struct result r;

	/* the callback's verdict, with path into a list */
	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Alias\n"
	    "metadata: {name: sales@example.com, tenant: acme}\n"
	    "spec:\n"
	    "  to: [a@example.com, b@example.com, BAD]\n",
	    5, 38, "spec.to[2]", "'BAD' is not a valid email: the email checker said no");
	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Alias\n"
	    "metadata: {name: sales@example.com, tenant: acme}\n"
	    "spec: {to: []}\n",
	    4, 12, "spec.to", "at least 1 item needed");
	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Service\n"
	    "metadata: {name: smtp}\n"
	    "spec: {bind: [a, b, c, d, e, f, g, h, i]}\n",
	    4, 14, "spec.bind", "at most 8 items allowed");
	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Tenant\n"
	    "metadata: {name: Acme}\n"
	    "spec: {}\n",
	    3, 18, "metadata.name", "does not match the pattern ^[a-z0-9][a-z0-9-]{0,62}$");
	expect_one(real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Mailbox\n"
	    "metadata: {name: a@example.com, tenant: acme}\n"
	    "spec: {keepCopy: yes}\n",
	    4, 18, "spec.keepCopy", "expected a boolean, got the string 'yes'");
	/* several mistakes at once, in document order */
	run(&r, real->s,
	    "apiVersion: mailnode/v1\n"
	    "kind: Mailbox\n"
	    "metadata:\n"
	    "  name: a@example.com\n"
	    "spec:\n"
	    "  password: short\n"
	    "  autoreply: {subject: hi, from: tomorrow}\n");
	assert_int_equal(r.rc, 1);
	if (r.n != 4 ||
	    !has(&r, 4, 3, "metadata", "missing required field 'tenant'") ||
	    !has(&r, 6, 13, "spec.password", "must be at least 8 characters") ||
	    !has(&r, 7, 14, "spec.autoreply", "missing required field 'body'") ||
	    !has(&r, 7, 34, "spec.autoreply.from", "'tomorrow' is not a valid date-time: "
	    "expected RFC 3339 like 2026-11-23T18:00:00Z or 2026-11-23T18:00:00+01:00")) {
		print_errors(&r);
		fail_msg("wrong errors");
	}
	assert_int_equal(r.errs[0].line, 4);
	assert_int_equal(r.errs[3].line, 7);
	assert_int_equal(r.errs[3].col, 34);
	done(&r);
	/* a missing kind is named first */
	run(&r, real->s, "apiVersion: mailnode/v1\nmetadata: {name: x}\nspec: {}\n");
	assert_int_equal(r.rc, 1);
	assert_true(r.n >= 1);
	assert_int_equal(r.errs[0].line, 1);
	assert_int_equal(r.errs[0].col, 1);
	assert_string_equal(r.errs[0].message, "missing required field 'kind'");
	done(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalar_types),
		cmocka_unit_test(test_type),
		cmocka_unit_test(test_const_enum),
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_missing_field_position),
		cmocka_unit_test(test_allof_if),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_boolean_schemas),
		cmocka_unit_test(test_order_and_max),
		cmocka_unit_test(test_long_path_and_values),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_load_refusals),
		cmocka_unit_test(test_load_cycles),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_other_refusals),
	};
	const struct CMUnitTest real_tests[] = {
		cmocka_unit_test(test_real_valid),
		cmocka_unit_test(test_real_unknown_field),
		cmocka_unit_test(test_real_integer),
		cmocka_unit_test(test_real_kind),
		cmocka_unit_test(test_real_missing_tenant),
		cmocka_unit_test(test_real_service_name),
		cmocka_unit_test(test_real_misc),
	};
	int rc;

	rc = cmocka_run_group_tests_name("schema", tests, NULL, NULL);
	rc += cmocka_run_group_tests_name("mailnode-v1.schema.yaml", real_tests, real_setup,
	    real_teardown);
	return rc != 0;
}
