/* test_settings: unit tests for node/settings.c, the single definition of
 * every per-service setting: what each one accepts and refuses (with an error
 * that names the setting), canonical formatting that parses back to the same
 * value, and the markdown reference that docs/settings.md is made from. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "settings.h"

/* Settings with every byte set, so a parse that touches the wrong field or
 * half-writes a failed value shows up. */
static struct service_settings
sentinel(void)
{
	struct service_settings s;

	memset(&s, 0xa5, sizeof(s));
	s.nbind = 1;
	s.auto_start = true;
	s.restart_on_change = true;
	return s;
}

static bool same_settings(const struct service_settings *,
    const struct service_settings *);

static const struct setting_def *
def(const char *key)
{
	const struct setting_def *d = settings_find(key);

	if (d == NULL)
		fail_msg("no setting named %s", key);
	return d;
}

/* text must parse; returns the settings it gave, starting from sentinel(). */
static struct service_settings
ok(const char *key, const char *text)
{
	struct service_settings s = sentinel();
	char err[256];

	err[0] = '\0';
	if (settings_parse(def(key), text, &s, err, sizeof(err)) != 0)
		fail_msg("%s: '%s' was refused: %s", key, text, err);
	return s;
}

/* text must be refused, with a one-line reason that starts with the key and
 * contains want (if not NULL), and the settings must be left alone. */
static void
bad(const char *key, const char *text, const char *want)
{
	struct service_settings s = sentinel(), before = s;
	char err[256], prefix[64];

	memset(err, 'x', sizeof(err));
	if (settings_parse(def(key), text, &s, err, sizeof(err)) != -1)
		fail_msg("%s: '%s' was accepted", key, text);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	snprintf(prefix, sizeof(prefix), "%s: ", key);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("%s: error for '%s' does not name the setting: %s", key, text, err);
	if (want != NULL && strstr(err, want) == NULL)
		fail_msg("%s: error for '%s' lacks '%s': %s", key, text, want, err);
	if (!same_settings(&s, &before))
		fail_msg("%s: refused '%s' still changed the settings", key, text);
}

/* Only the field of d may differ between a and b (compared field by field:
 * struct copies need not keep padding bytes). */
static void
assert_only_field_changed(const struct setting_def *d,
    const struct service_settings *a, const struct service_settings *b)
{
#define SAME_UNLESS(f, cmp)						\
	do {								\
		if (d->offset != offsetof(struct service_settings, f) && !(cmp)) \
			fail_msg("%s: parsing it changed " #f, d->key);	\
	} while (0)

	SAME_UNLESS(bind, memcmp(a->bind, b->bind, sizeof(a->bind)) == 0 &&
	    a->nbind == b->nbind);
	SAME_UNLESS(port, a->port == b->port);
	SAME_UNLESS(max_clients, a->max_clients == b->max_clients);
	SAME_UNLESS(timeout, a->timeout == b->timeout);
	SAME_UNLESS(auto_start, a->auto_start == b->auto_start);
	SAME_UNLESS(restart_on_change, a->restart_on_change == b->restart_on_change);
#undef SAME_UNLESS
}

/* Every field of a and b is equal. */
static bool
same_settings(const struct service_settings *a, const struct service_settings *b)
{
	return memcmp(a->bind, b->bind, sizeof(a->bind)) == 0 &&
	    a->nbind == b->nbind && a->port == b->port &&
	    a->max_clients == b->max_clients && a->timeout == b->timeout &&
	    a->auto_start == b->auto_start &&
	    a->restart_on_change == b->restart_on_change;
}

static void
test_find(void **state)
{
	size_t i;

	(void)state;
	assert_true(settings_ndefs >= 6);
	for (i = 0; i < settings_ndefs; i++) {
		assert_ptr_equal(settings_find(settings_defs[i].key), &settings_defs[i]);
		assert_non_null(settings_defs[i].column);
		assert_true(strlen(settings_defs[i].doc) > 10);
		assert_string_not_equal(settings_type_name(settings_defs[i].type), "?");
	}
	assert_null(settings_find("nosuch"));
	assert_null(settings_find(""));
	assert_null(settings_find("Port"));	/* keys are exact */
	assert_null(settings_find("port "));
	/* the keys the brief and the API name */
	def("bind");
	def("port");
	def("maxClients");
	def("timeout");
	def("autoStart");
	def("restartOnChange");
}

/* Every definition accepts its own bounds and refuses what lies past them
 * and what is not of its type at all, touching only its own field. */
static void
test_every_def(void **state)
{
	static const char *const not_numbers[] = { "", "abc", "-1", "+5", " 5",
	    "5 ", "1.5", "0x10", "5e3", "١٢" };
	static const char *const not_bools[] = { "", "2", "maybe", " true",
	    "true ", "tru", "-1" };
	size_t i, j;

	(void)state;
	for (i = 0; i < settings_ndefs; i++) {
		const struct setting_def *d = &settings_defs[i];
		struct service_settings s, before = sentinel();
		char text[32];

		switch (d->type) {
		case SETTING_BOOL:
			s = ok(d->key, "false");
			assert_false(*(bool *)((char *)&s + d->offset));
			assert_only_field_changed(d, &s, &before);
			for (j = 0; j < sizeof(not_bools) / sizeof(not_bools[0]); j++)
				bad(d->key, not_bools[j], "expected true or false");
			break;
		case SETTING_UINT:
		case SETTING_PORT:
		case SETTING_DURATION:
			snprintf(text, sizeof(text), "%u", d->min);
			s = ok(d->key, text);
			assert_int_equal(*(uint32_t *)((char *)&s + d->offset), d->min);
			assert_only_field_changed(d, &s, &before);
			snprintf(text, sizeof(text), "%u", d->max);
			s = ok(d->key, text);
			assert_int_equal(*(uint32_t *)((char *)&s + d->offset), d->max);
			assert_only_field_changed(d, &s, &before);
			if (d->min > 0) {
				snprintf(text, sizeof(text), "%u", d->min - 1);
				bad(d->key, text, "out of range");
			}
			snprintf(text, sizeof(text), "%llu", (unsigned long long)d->max + 1);
			bad(d->key, text, "out of range");
			for (j = 0; j < sizeof(not_numbers) / sizeof(not_numbers[0]); j++)
				bad(d->key, not_numbers[j], NULL);
			bad(d->key, "99999999999999999999999", NULL);
			bad(d->key, "4294967296", NULL);
			break;
		case SETTING_ADDRLIST:
			s = ok(d->key, "192.0.2.1");
			assert_int_equal(s.nbind, 1);
			assert_only_field_changed(d, &s, &before);
			bad(d->key, "", "at least one");
			bad(d->key, "nonsense", "nonsense");
			break;
		}
	}
}

static void
test_bool_forms(void **state)
{
	static const char *const yes[] = { "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };
	struct service_settings s;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		s = ok("autoStart", no[i]);
		assert_false(s.auto_start);
		assert_true(s.restart_on_change);
		s = ok("restartOnChange", no[i]);
		assert_false(s.restart_on_change);
		assert_true(s.auto_start);

		s = sentinel();
		s.auto_start = false;
		assert_int_equal(settings_parse(def("autoStart"), yes[i], &s, NULL, 0), 0);
		assert_true(s.auto_start);
	}
	bad("autoStart", "enabled", "'enabled'");
}

static uint32_t
duration(const char *text)
{
	return ok("timeout", text).timeout;
}

static void
test_duration(void **state)
{
	(void)state;
	assert_int_equal(duration("90"), 90);
	assert_int_equal(duration("90s"), 90);
	assert_int_equal(duration("5m"), 300);
	assert_int_equal(duration("2h"), 7200);
	assert_int_equal(duration("1s"), 1);
	assert_int_equal(duration("24h"), 86400);
	assert_int_equal(duration("1440m"), 86400);
	assert_int_equal(duration("86400s"), 86400);
	assert_int_equal(duration("86400"), 86400);

	bad("timeout", "0", "out of range");
	bad("timeout", "0s", "out of range");
	bad("timeout", "0m", "out of range");
	bad("timeout", "86401", "out of range");
	bad("timeout", "86401s", "out of range");
	bad("timeout", "1441m", "out of range");
	bad("timeout", "25h", "out of range");
	/* a multiplied value that would wrap 32 bits is still out of range */
	bad("timeout", "4294967295h", "out of range");
	bad("timeout", "1193047h", "out of range");	/* 1904 once cut to 32 bits */

	bad("timeout", "", "duration");
	bad("timeout", "5x", "duration");
	bad("timeout", "5 m", "duration");
	bad("timeout", "m", "duration");
	bad("timeout", "5ms", "duration");
	bad("timeout", "5mm", "duration");
	bad("timeout", "5M", "duration");
	bad("timeout", "1.5h", "duration");
	bad("timeout", "-5m", "duration");
	bad("timeout", "5d", "duration");

	/* the other numbers take no suffix */
	bad("port", "25s", "whole number");
	bad("maxClients", "5m", "whole number");
}

static void
test_port(void **state)
{
	(void)state;
	assert_int_equal(ok("port", "25").port, 25);
	assert_int_equal(ok("port", "2525").port, 2525);
	assert_int_equal(ok("port", "1").port, 1);
	assert_int_equal(ok("port", "65535").port, 65535);
	assert_int_equal(ok("port", "00025").port, 25);
	bad("port", "0", "out of range 1..65535");
	bad("port", "65536", "out of range 1..65535");
	bad("port", "-25", "whole number");
	bad("port", "smtp", "whole number");

	assert_int_equal(ok("maxClients", "1000000").max_clients, 1000000);
	bad("maxClients", "0", "out of range");
	bad("maxClients", "1000001", "out of range");
}

static void
test_bind(void **state)
{
	struct service_settings	 s;
	struct addr		 a;
	char			 many[512];
	size_t			 i, n;

	(void)state;
	s = ok("bind", "127.0.0.1, ::1");
	assert_int_equal(s.nbind, 2);
	assert_int_equal(addr_parse("127.0.0.1", &a), 0);
	assert_int_equal(s.bind[0].family, AF_INET);
	assert_memory_equal(s.bind[0].bytes, a.bytes, 16);
	assert_int_equal(addr_parse("::1", &a), 0);
	assert_int_equal(s.bind[1].family, AF_INET6);
	assert_memory_equal(s.bind[1].bytes, a.bytes, 16);

	s = ok("bind", "0.0.0.0,::");
	assert_int_equal(s.nbind, 2);
	s = ok("bind", " 192.0.2.1 ,, 2001:db8::1 , ");
	assert_int_equal(s.nbind, 2);
	s = ok("bind", "[2001:db8::2]");
	assert_int_equal(s.nbind, 1);
	assert_int_equal(s.bind[0].family, AF_INET6);

	/* eight is the most */
	for (i = 0, n = 0; i < SETTINGS_MAX_BIND; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "%s192.0.2.%zu",
		    i ? "," : "", i + 1);
	s = ok("bind", many);
	assert_int_equal(s.nbind, SETTINGS_MAX_BIND);
	assert_int_equal(s.bind[7].bytes[15], 8);
	snprintf(many + n, sizeof(many) - n, ",192.0.2.99");
	bad("bind", many, "at most 8");

	bad("bind", "", "at least one address");
	bad("bind", " , ,", "at least one address");
	bad("bind", "localhost", "'localhost' is not an IPv4 or IPv6 address");
	bad("bind", "127.0.0.1,garbage", "'garbage'");
	bad("bind", "127.0.0.1;::1", NULL);
	bad("bind", "192.0.2.0/24", NULL);
	bad("bind", "192.0.2.*", NULL);
	bad("bind", "127.0.0.1:25", NULL);
	memset(many, '1', 200);
	many[200] = '\0';
	bad("bind", many, "too long");
}

/* One listener per address: the same address twice can never be bound, so
 * the setting must refuse it rather than let the service fail to start. */
static void
test_bind_duplicate(void **state)
{
	(void)state;
	bad("bind", "127.0.0.1,127.0.0.1", "127.0.0.1");
	bad("bind", "::1, [::1]", NULL);
	bad("bind", "192.0.2.1,::ffff:192.0.2.1", NULL);
}

/* format -> parse gives the same field, and formatting is canonical. */
static void
roundtrip(const char *key, const char *text, const char *canonical)
{
	const struct setting_def *d = def(key);
	struct service_settings a = ok(key, text), b = sentinel();
	struct buf out, again;
	char err[256];

	buf_init(&out, 0);
	buf_init(&again, 0);
	assert_int_equal(settings_format(d, &a, &out), 0);
	assert_string_equal(buf_cstr(&out), canonical);
	if (settings_parse(d, buf_cstr(&out), &b, err, sizeof(err)) != 0)
		fail_msg("%s: formatted '%s' does not parse: %s", key, buf_cstr(&out), err);
	switch (d->type) {
	case SETTING_BOOL:
		assert_int_equal(*(bool *)((char *)&a + d->offset),
		    *(bool *)((char *)&b + d->offset));
		break;
	case SETTING_ADDRLIST:
		assert_int_equal(a.nbind, b.nbind);
		assert_memory_equal(a.bind, b.bind, a.nbind * sizeof(a.bind[0]));
		break;
	default:
		assert_int_equal(*(uint32_t *)((char *)&a + d->offset),
		    *(uint32_t *)((char *)&b + d->offset));
		break;
	}
	assert_int_equal(settings_format(d, &b, &again), 0);
	assert_string_equal(buf_cstr(&again), canonical);
	buf_free(&out);
	buf_free(&again);
}

static void
test_format_roundtrip(void **state)
{
	(void)state;
	roundtrip("autoStart", "yes", "true");
	roundtrip("autoStart", "off", "false");
	roundtrip("restartOnChange", "1", "true");
	roundtrip("port", "02525", "2525");
	roundtrip("maxClients", "1000000", "1000000");
	roundtrip("timeout", "5m", "300s");
	roundtrip("timeout", "2h", "7200s");
	roundtrip("timeout", "45", "45s");
	roundtrip("bind", "127.0.0.1, ::1", "127.0.0.1,::1");
	roundtrip("bind", "0.0.0.0,::", "0.0.0.0,::");
	roundtrip("bind", "[2001:DB8:0::1], ::ffff:192.0.2.1", "2001:db8::1,192.0.2.1");
}

/* The markdown table rows, one per line, for comparison. */
static char *
doc_table(void)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	assert_int_equal(settings_doc_markdown(&b), 0);
	assert_non_null(s = strdup(buf_cstr(&b)));
	buf_free(&b);
	return s;
}

static void
test_doc_markdown(void **state)
{
	char *doc = doc_table(), row[128], *p;
	size_t i, lines = 0;

	(void)state;
	assert_true(strncmp(doc, "| setting | type | range |", 25) == 0);
	for (p = doc; *p; p++)
		if (*p == '\n')
			lines++;
	assert_int_equal(lines, settings_ndefs + 2);	/* header, rule, rows */
	for (i = 0; i < settings_ndefs; i++) {
		const struct setting_def *d = &settings_defs[i];
		char *r;

		snprintf(row, sizeof(row), "\n| `%s` | %s | ", d->key,
		    settings_type_name(d->type));
		if ((r = strstr(doc, row)) == NULL)
			fail_msg("no row for %s in:\n%s", d->key, doc);
		/* the row carries the setting's own explanation */
		if (strstr(r, d->doc) == NULL || strchr(r + 1, '\n') < strstr(r, d->doc))
			fail_msg("row for %s lacks its doc text", d->key);
	}
	assert_non_null(strstr(doc, "| `port` | port | 1 to 65535 | listening services |"));
	assert_non_null(strstr(doc, "| `timeout` | duration | 1s to 86400s |"));
	assert_non_null(strstr(doc, "| `autoStart` | boolean | true, false | all services |"));
	assert_non_null(strstr(doc, "| `bind` | address list | 1 to 8 addresses |"));
	free(doc);
}

/* docs/settings.md carries the table generated from settings_defs: the
 * settings table there (its header line up to the first line that is not a
 * table row) must be exactly what settings_doc_markdown writes now. */
static void
test_doc_file_current(void **state)
{
	const char *src = getenv("MAILNODE_SOURCE_DIR");
	char path[4096], *file, *doc, *at, *end, *nl;
	const char *problem = NULL;
	size_t hlen;
	FILE *f;
	long size;

	(void)state;
	if (src == NULL || *src == '\0') {
		print_message("skipped: MAILNODE_SOURCE_DIR is not set\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/docs/settings.md", src);
	if ((f = fopen(path, "r")) == NULL) {
		print_message("skipped: %s does not exist yet (generate it from "
		    "settings_doc_markdown)\n", path);
		skip();
	}
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((size = ftell(f)) >= 0);
	rewind(f);
	assert_non_null(file = calloc(1, (size_t)size + 1));
	assert_int_equal(fread(file, 1, (size_t)size, f), (size_t)size);
	fclose(f);

	doc = doc_table();
	hlen = (size_t)(strchr(doc, '\n') - doc) + 1;	/* the header line */
	at = file;
	while ((at = strstr(at, "| setting | type |")) != NULL && at != file &&
	    at[-1] != '\n')
		at++;
	if (at == NULL)
		problem = "has no settings table";
	else if (strncmp(at, doc, hlen) != 0)
		problem = "has a settings table with another header";
	else {
		/* the table runs while lines start with '|' */
		for (end = at; *end == '|'; end = nl + 1)
			if ((nl = strchr(end, '\n')) == NULL) {
				end += strlen(end);
				break;
			}
		if ((size_t)(end - at) != strlen(doc) || memcmp(at, doc, strlen(doc)) != 0)
			problem = "has a settings table that differs from settings_doc_markdown";
		else if (strstr(end, "| setting | type |") != NULL)
			problem = "has a second settings table";
	}
	if (problem != NULL)
		print_error("%s %s; regenerate it. The table is:\n%s", path, problem, doc);
	free(doc);
	free(file);
	if (problem != NULL)
		fail_msg("docs/settings.md is stale");
}

/* allowPlaintextAuth is pop3's and imap's alone; listener settings skip the spool. */
static void
test_applies(void **state)
{
	const struct setting_def *pt = settings_find("allowPlaintextAuth"), *port = settings_find("port");

	(void)state;
	assert_non_null(pt);
	assert_true(settings_applies(pt, "pop3", true));
	assert_false(settings_applies(pt, "pop3s", true));
	assert_true(settings_applies(pt, "imap", true));
	assert_false(settings_applies(pt, "imaps", true));
	assert_false(settings_applies(pt, "pop", true));
	assert_false(settings_applies(pt, "http", true));
	assert_false(settings_applies(pt, "pop3", false));
	assert_true(settings_applies(port, "http", true));
	assert_false(settings_applies(port, "spool", false));
	assert_true(settings_applies(settings_find("autoStart"), "spool", false));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_applies),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_every_def),
		cmocka_unit_test(test_bool_forms),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_port),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_bind_duplicate),
		cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test(test_doc_markdown),
		cmocka_unit_test(test_doc_file_current),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
