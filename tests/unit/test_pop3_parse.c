/* test_pop3_parse: unit tests for node/pop3_parse.c: POP3 command lines,
 * and the transform of a stored message into a multi-line response
 * (CRLF, dot-stuffing, TOP's limit) fed in arbitrary pieces. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/types.h>

#include "pop3_parse.h"

static struct pop3_cmd
ok(const char *line)
{
	struct pop3_cmd c;
	const char *why = NULL;

	if (pop3_parse(line, strlen(line), &c, &why) != 0)
		fail_msg("\"%s\" refused: %s", line, why);
	return c;
}

static void
bad(const char *line, size_t len, const char *want)
{
	struct pop3_cmd c;
	const char *why = NULL;

	if (pop3_parse(line, len, &c, &why) != -1)
		fail_msg("\"%s\" accepted", line);
	assert_string_equal(why, want);
}

static void
test_commands(void **state)
{
	struct pop3_cmd c;

	(void)state;
	c = ok("USER alice@demo.test");
	assert_int_equal(c.verb, POP3_USER);
	assert_int_equal(c.arglen, 15);
	assert_memory_equal(c.arg, "alice@demo.test", 15);
	c = ok("pass  two words ");	/* the password is the rest, spaces and all */
	assert_int_equal(c.verb, POP3_PASS);
	assert_int_equal(c.arglen, 11);
	assert_memory_equal(c.arg, " two words ", 11);
	c = ok("STAT");
	assert_int_equal(c.verb, POP3_STAT);
	c = ok("list");
	assert_int_equal(c.verb, POP3_LIST);
	assert_false(c.has_msg);
	c = ok("LIST 7");
	assert_true(c.has_msg);
	assert_int_equal(c.msg, 7);
	c = ok("UIDL 4294967295");
	assert_int_equal(c.msg, 4294967295u);
	c = ok("TOP 3 18446744073709551615");
	assert_int_equal(c.verb, POP3_TOP);
	assert_int_equal(c.msg, 3);
	assert_true(c.lines == UINT64_MAX);
	c = ok("AUTH");
	assert_null(c.arg);
	c = ok("AUTH PLAIN AGEAYg==");
	assert_int_equal(c.arglen, 5);
	assert_int_equal(c.arg2len, 8);
	assert_memory_equal(c.arg2, "AGEAYg==", 8);
	c = ok("CAPA");
	assert_string_equal(c.name, "CAPA");

	bad("", 0, "Unknown command");
	bad("RETRX 1", 7, "Unknown command");
	bad(" STAT", 5, "Unknown command");
	bad("STAT\0", 5, "NUL in command line");
	bad("USER", 4, "USER needs a name");
	bad("USER a b", 8, "USER takes one name");
	bad("PASS", 4, "PASS needs a password");
	bad("PASS ", 5, "PASS needs a password");
	bad("STAT 1", 6, "No arguments expected");
	bad("RETR", 4, "A message number is needed");
	bad("RETR 0", 6, "Invalid message number");
	bad("RETR -1", 7, "Invalid message number");
	bad("RETR +1", 7, "Invalid message number");
	bad("RETR 1x", 7, "Invalid message number");
	bad("RETR 4294967296", 15, "Invalid message number");
	bad("DELE 1 2", 8, "Too many arguments");
	bad("TOP 1", 5, "TOP needs a message number and a line count");
	bad("TOP 1 x", 7, "Invalid line count");
	bad("TOP 1 18446744073709551616", 26, "Invalid line count");
	bad("AUTH PLAIN a b", 14, "AUTH takes a mechanism and an initial response");
}

/* Feed msg through the transform in pieces of step bytes. */
static void
check_stuff(const char *msg, bool top, uint64_t lines, const char *want)
{
	size_t step;

	for (step = 1; step <= strlen(msg) + 1; step++) {
		struct pop3_stuffer st;
		struct buf out;
		size_t off = 0, n = strlen(msg);

		buf_init(&out, 0);
		pop3_stuff_init(&st, top, lines);
		while (off < n && !st.done) {
			size_t k = n - off < step ? n - off : step;
			ssize_t r = pop3_stuff(&st, msg + off, k, &out);

			assert_true(r >= 0 && (size_t)r <= k);
			if ((size_t)r < k)
				assert_true(st.done);
			off += (size_t)r;
		}
		assert_int_equal(pop3_stuff_end(&st, &out), 0);
		if (strcmp(buf_cstr(&out), want) != 0)
			fail_msg("step %zu: got \"%s\", want \"%s\"", step, buf_cstr(&out), want);
		buf_free(&out);
	}
}

static void
test_retr_transform(void **state)
{
	(void)state;
	check_stuff("A: b\r\n\r\nbody\r\n", false, 0, "A: b\r\n\r\nbody\r\n.\r\n");
	/* lines starting with '.' get one more; bare LF becomes CRLF */
	check_stuff("A: b\n\n.\n..x\nend\n", false, 0, "A: b\r\n\r\n..\r\n...x\r\nend\r\n.\r\n");
	/* no final line break: one is added before the terminator */
	check_stuff("A: b\r\n\r\nlast", false, 0, "A: b\r\n\r\nlast\r\n.\r\n");
	check_stuff("", false, 0, ".\r\n");
	/* a dot inside a line is left alone */
	check_stuff("x.y\r\n", false, 0, "x.y\r\n.\r\n");
}

static void
test_top_transform(void **state)
{
	static const char msg[] = "Subject: s\r\nX: y\r\n\r\none\r\n.two\r\nthree\r\n";

	(void)state;
	check_stuff(msg, true, 0, "Subject: s\r\nX: y\r\n\r\n.\r\n");
	check_stuff(msg, true, 1, "Subject: s\r\nX: y\r\n\r\none\r\n.\r\n");
	check_stuff(msg, true, 2, "Subject: s\r\nX: y\r\n\r\none\r\n..two\r\n.\r\n");
	check_stuff(msg, true, 99, "Subject: s\r\nX: y\r\n\r\none\r\n..two\r\nthree\r\n.\r\n");
	/* a header without body, and LF-only ends */
	check_stuff("Subject: s\n", true, 5, "Subject: s\r\n.\r\n");
	check_stuff("S: s\n\nb1\nb2\n", true, 1, "S: s\r\n\r\nb1\r\n.\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_retr_transform),
		cmocka_unit_test(test_top_transform),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
