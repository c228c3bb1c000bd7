/* test_mime: unit tests for node/mime.c, the message parser behind IMAP's
 * ENVELOPE, BODY, BODYSTRUCTURE and BODY[section] ranges. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

/* A message as it arrives by SMTP: headers folded, an encoded word. */
static const char simple_msg[] =
    "From: \"Joe Q. Public\" <john.q.public@example.com>\r\n"
    "To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n"
    "Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\r\n"
    "Subject: =?UTF-8?B?w6k=?= test\r\n"
    " folded\r\n"
    "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    "Message-ID: <5678.21-Nov-1997@example.com>\r\n"
    "In-Reply-To: <1234@local.machine.example>\r\n"
    "Bcc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Undisclosed recipients:;\r\n"
    "\r\n"
    "Hi.\r\n"
    "bye\r\n";

/* Nested multipart with a forwarded message and an attachment, bare LF
 * line ends (as files written by some MUAs and test tools have). */
static const char nested_msg[] =
    "From: Alice <alice@demo.test>\n"
    "To: bob@demo.test\n"
    "Subject: report\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
    "\n"
    "preamble\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Hello =C3=A9\n"
    "--inner\n"
    "Content-Type: text/html; charset=\"utf-8\"\n"
    "\n"
    "<p>Hello</p>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "Content-Disposition: attachment; filename=\"fwd.eml\"\n"
    "\n"
    "From: Carol <carol@x.test>\n"
    "Subject: fwd\n"
    "Content-Type: text/plain\n"
    "\n"
    "inner body\n"
    "line 2\n"
    "--outer\n"
    "Content-Type: application/pdf; name=\"r.pdf\"\n"
    "Content-Disposition: attachment; filename=r.pdf\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-ID: <id1@x>\n"
    "Content-Description: the report\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Language: en, de\n"
    "Content-Location: http://x.test/r.pdf\n"
    "\n"
    "JVBERi0=\n"
    "--outer--\n"
    "epilogue\n";

static struct mime_message *
parse(const char *s, size_t len)
{
	struct mime_message *m = NULL;

	assert_int_equal(mime_parse(s, len, &m), 0);
	assert_non_null(m);
	return m;
}

static void
check_envelope(const char *msg, size_t len, const char *want)
{
	struct mime_message *m = parse(msg, len);
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mime_envelope(m, &b), 0);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
	mime_free(m);
}

static void
check_body(const char *msg, size_t len, bool ext, const char *want)
{
	struct mime_message *m = parse(msg, len);
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mime_bodystructure(m, ext, &b), 0);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
	mime_free(m);
}

static char *
index_of(const char *msg, size_t len)
{
	struct mime_message *m = parse(msg, len);
	struct buf b;
	char *r;

	buf_init(&b, 0);
	assert_int_equal(mime_index_encode(m, &b), 0);
	r = strdup(buf_cstr(&b));
	assert_non_null(r);
	buf_free(&b);
	mime_free(m);
	return r;
}

/* The bytes of a section must be exactly want. */
static void
check_section(const char *msg, const char *index, const char *section, const char *want)
{
	size_t off = 0, len = 0;

	if (mime_index_section(index, section, &off, &len) != 0)
		fail_msg("section \"%s\" not found", section);
	if (len != strlen(want) || memcmp(msg + off, want, len) != 0)
		fail_msg("section \"%s\" is \"%.*s\", want \"%s\"", section, (int)len, msg + off, want);
}

static void
check_no_section(const char *index, const char *section)
{
	size_t off, len;

	if (mime_index_section(index, section, &off, &len) != -1)
		fail_msg("section \"%s\" found at %zu+%zu", section, off, len);
}

static void
test_envelope_simple(void **state)
{
	(void)state;
	check_envelope(simple_msg, strlen(simple_msg),
	    "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"=?UTF-8?B?w6k=?= test folded\" "
	    "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) "
	    "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) "
	    "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) "
	    "((\"Mary Smith\" NIL \"mary\" \"x.test\")(NIL NIL \"jdoe\" \"example.org\")"
	    "(\"Who?\" NIL \"one\" \"y.test\")) "
	    "((NIL NIL \"boss\" \"nil.test\")(\"Giant; \\\"Big\\\" Box\" NIL \"sysservices\" \"example.net\")) "
	    "((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")"
	    "(\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)"
	    "(NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL)) "
	    "\"<1234@local.machine.example>\" \"<5678.21-Nov-1997@example.com>\")");
}

static void
test_envelope_odd_addresses(void **state)
{
	/* comment as the name, source route, no domain, 8-bit subject as a
	 * literal, explicit Sender and Reply-To, empty Cc */
	static const char msg[] =
	    "From: joe@x.test (Joe Bloggs)\r\n"
	    "Sender: secretary@x.test\r\n"
	    "Reply-To: list@lists.test\r\n"
	    "To: <@relay.test,@r2.test:user@dest.test>, localonly\r\n"
	    "Cc: \r\n"
	    "Subject: caf\xc3\xa9 \"q\" back\\slash\r\n"
	    "\r\n"
	    "x\r\n";

	(void)state;
	check_envelope(msg, strlen(msg),
	    "(NIL {20}\r\ncaf\xc3\xa9 \"q\" back\\slash "
	    "((\"Joe Bloggs\" NIL \"joe\" \"x.test\")) ((NIL NIL \"secretary\" \"x.test\")) "
	    "((NIL NIL \"list\" \"lists.test\")) "
	    "((NIL \"@relay.test,@r2.test\" \"user\" \"dest.test\")(NIL NIL \"localonly\" \"MISSING_DOMAIN\")) "
	    "NIL NIL NIL NIL)");
	/* quotes and backslashes in a quoted string are escaped */
	check_envelope("Subject: say \"hi\" \\o/\n\n", 23,
	    "(NIL \"say \\\"hi\\\" \\\\o/\" NIL NIL NIL NIL NIL NIL NIL NIL)");
}

static void
test_missing_headers(void **state)
{
	static const char empty_env[] = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
	char *idx;

	(void)state;
	/* nothing at all */
	check_envelope("", 0, empty_env);
	check_body("", 0, false, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)");
	idx = index_of("", 0);
	check_section("", idx, "", "");
	check_section("", idx, "HEADER", "");
	check_section("", idx, "TEXT", "");
	free(idx);

	/* a header and no body, no final line break */
	check_envelope("Subject: x", 10, "(NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	idx = index_of("Subject: x", 10);
	check_section("Subject: x", idx, "HEADER", "Subject: x");
	check_section("Subject: x", idx, "TEXT", "");
	free(idx);

	/* no header: the body starts after the empty first line */
	check_body("\r\nabc\r\n", 7, true,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)");
	idx = index_of("\r\nabc\r\n", 7);
	check_section("\r\nabc\r\n", idx, "HEADER", "\r\n");
	check_section("\r\nabc\r\n", idx, "1", "abc\r\n");
	free(idx);
}

static void
test_single_part(void **state)
{
	char *idx;

	(void)state;
	check_body(simple_msg, strlen(simple_msg), false,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 2)");
	check_body(simple_msg, strlen(simple_msg), true,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 2 NIL NIL NIL NIL)");
	idx = index_of(simple_msg, strlen(simple_msg));
	check_section(simple_msg, idx, "", simple_msg);
	check_section(simple_msg, idx, "TEXT", "Hi.\r\nbye\r\n");
	check_section(simple_msg, idx, "1", "Hi.\r\nbye\r\n");
	check_no_section(idx, "2");
	check_no_section(idx, "1.1");
	check_no_section(idx, "1.HEADER");
	check_no_section(idx, "MIME");
	free(idx);
}

static void
test_nested_multipart(void **state)
{
	const char *msg = nested_msg;
	char *idx;

	(void)state;
	check_body(msg, strlen(msg), false,
	    "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 12 1)"
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 12 1) \"alternative\")"
	    "(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 83 "
	    "(NIL \"fwd\" ((\"Carol\" NIL \"carol\" \"x.test\")) ((\"Carol\" NIL \"carol\" \"x.test\")) "
	    "((\"Carol\" NIL \"carol\" \"x.test\")) NIL NIL NIL NIL NIL) "
	    "(\"text\" \"plain\" NIL NIL NIL \"7BIT\" 17 2) 6)"
	    "(\"application\" \"pdf\" (\"name\" \"r.pdf\") \"<id1@x>\" \"the report\" \"base64\" 8) \"mixed\")");
	check_body(msg, strlen(msg), true,
	    "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 12 1 NIL NIL NIL NIL)"
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 12 1 NIL NIL NIL NIL) \"alternative\" "
	    "(\"boundary\" \"inner\") NIL NIL NIL)"
	    "(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 83 "
	    "(NIL \"fwd\" ((\"Carol\" NIL \"carol\" \"x.test\")) ((\"Carol\" NIL \"carol\" \"x.test\")) "
	    "((\"Carol\" NIL \"carol\" \"x.test\")) NIL NIL NIL NIL NIL) "
	    "(\"text\" \"plain\" NIL NIL NIL \"7BIT\" 17 2 NIL NIL NIL NIL) 6 NIL "
	    "(\"attachment\" (\"filename\" \"fwd.eml\")) NIL NIL)"
	    "(\"application\" \"pdf\" (\"name\" \"r.pdf\") \"<id1@x>\" \"the report\" \"base64\" 8 "
	    "\"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"r.pdf\")) (\"en\" \"de\") "
	    "\"http://x.test/r.pdf\") \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)");

	idx = index_of(msg, strlen(msg));
	check_section(msg, idx, "1.1", "Hello =C3=A9");
	check_section(msg, idx, "1.2", "<p>Hello</p>");
	check_section(msg, idx, "1.1.MIME",
	    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n");
	check_section(msg, idx, "2.MIME",
	    "Content-Type: message/rfc822\nContent-Disposition: attachment; filename=\"fwd.eml\"\n\n");
	check_section(msg, idx, "2",
	    "From: Carol <carol@x.test>\nSubject: fwd\nContent-Type: text/plain\n\ninner body\nline 2");
	check_section(msg, idx, "2.HEADER", "From: Carol <carol@x.test>\nSubject: fwd\nContent-Type: text/plain\n\n");
	check_section(msg, idx, "2.header", "From: Carol <carol@x.test>\nSubject: fwd\nContent-Type: text/plain\n\n");
	check_section(msg, idx, "2.TEXT", "inner body\nline 2");
	check_section(msg, idx, "2.1", "inner body\nline 2");
	check_section(msg, idx, "3", "JVBERi0=");
	check_no_section(idx, "4");
	check_no_section(idx, "1.3");
	check_no_section(idx, "3.1");
	check_no_section(idx, "3.HEADER");	/* not a message/rfc822 part */
	check_no_section(idx, "1.TEXT");
	check_no_section(idx, "0");
	check_no_section(idx, "1.");
	check_no_section(idx, "1..2");
	check_no_section(idx, "HEADER.FIELDS (From)");
	check_no_section(idx, "TEXT.1");
	free(idx);
}

/* The same message with CRLF: octet counts follow the bytes, lines do not
 * change. */
static void
test_crlf_and_bare_lf_agree(void **state)
{
	struct buf crlf, a, b;
	const char *s;
	struct mime_message *m1, *m2;

	(void)state;
	buf_init(&crlf, 0);
	for (s = nested_msg; *s; s++) {
		if (*s == '\n')
			assert_int_equal(buf_puts(&crlf, "\r"), 0);
		assert_int_equal(buf_append(&crlf, s, 1), 0);
	}
	buf_init(&a, 0);
	buf_init(&b, 0);
	m1 = parse(nested_msg, strlen(nested_msg));
	m2 = parse(buf_data(&crlf), buf_len(&crlf));
	assert_int_equal(mime_envelope(m1, &a), 0);
	assert_int_equal(mime_envelope(m2, &b), 0);
	assert_string_equal(buf_cstr(&a), buf_cstr(&b));
	buf_reset(&b);
	assert_int_equal(mime_bodystructure(m2, false, &b), 0);
	/* 12 octets + no line break; 17 -> 18 (one CR inside); 83 -> 88 */
	assert_non_null(strstr(buf_cstr(&b), "\"quoted-printable\" 12 1)"));
	assert_non_null(strstr(buf_cstr(&b), "\"7BIT\" 18 2)"));
	assert_non_null(strstr(buf_cstr(&b), "\"7BIT\" 88 (NIL \"fwd\""));
	mime_free(m1);
	mime_free(m2);
	buf_free(&a);
	buf_free(&b);
	buf_free(&crlf);
}

static void
test_multipart_without_boundary(void **state)
{
	static const char nob[] = "Content-Type: multipart/mixed\r\n\r\nbody\r\n";
	static const char noparts[] = "Content-Type: multipart/mixed; boundary=b\r\n\r\nno parts\r\n";
	static const char noclose[] = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n";
	char *idx;

	(void)state;
	/* read as the text it is */
	check_body(nob, strlen(nob), false, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 6 1)");
	/* a multipart has at least one part: its body */
	check_body(noparts, strlen(noparts), false,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 1) \"mixed\")");
	idx = index_of(noparts, strlen(noparts));
	check_section(noparts, idx, "1", "no parts\r\n");
	free(idx);
	/* without the close delimiter the last part runs to the end */
	idx = index_of(noclose, strlen(noclose));
	check_section(noclose, idx, "1", "one");
	check_section(noclose, idx, "2", "two\n");
	free(idx);
}

static void
test_digest_default(void **state)
{
	static const char msg[] =
	    "Content-Type: multipart/digest; boundary=d\n\n"
	    "--d\n\nSubject: one\n\nfirst\n"
	    "--d\nContent-Type: text/plain\n\nnote\n"
	    "--d--\n";
	char *idx;

	(void)state;
	/* parts of a digest default to message/rfc822 (RFC 2046 5.1.5) */
	check_body(msg, strlen(msg), false,
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 19 (NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL) "
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 5 1) 3)"
	    "(\"text\" \"plain\" NIL NIL NIL \"7BIT\" 4 1) \"digest\")");
	idx = index_of(msg, strlen(msg));
	check_section(msg, idx, "1.HEADER", "Subject: one\n\n");
	check_section(msg, idx, "1.1", "first");
	check_section(msg, idx, "2", "note");
	free(idx);
}

/* Nesting past MIME_MAX_DEPTH and more than MIME_MAX_PARTS parts: parsed
 * without blowing up; the excess is opaque. */
static void
test_hostile_limits(void **state)
{
	struct buf msg, out;
	struct mime_message *m;
	char *idx;
	size_t i, depth = 0, parts = 0, off, len;
	const char *s;

	(void)state;
	buf_init(&msg, 0);
	for (i = 0; i < 5000; i++)
		assert_int_equal(buf_printf(&msg, "Content-Type: multipart/mixed; boundary=b%zu\n\n--b%zu\n", i, i), 0);
	m = parse(buf_data(&msg), buf_len(&msg));
	buf_init(&out, 0);
	assert_int_equal(mime_bodystructure(m, true, &out), 0);
	for (s = buf_cstr(&out); *s == '('; s++)
		depth++;
	assert_int_equal(depth, MIME_MAX_DEPTH);
	assert_non_null(strstr(buf_cstr(&out), "\"application\" \"octet-stream\""));
	mime_free(m);
	buf_free(&out);

	buf_reset(&msg);
	assert_int_equal(buf_puts(&msg, "Content-Type: multipart/mixed; boundary=b\n\n"), 0);
	for (i = 0; i < 3 * MIME_MAX_PARTS; i++)
		assert_int_equal(buf_printf(&msg, "--b\n\npart %zu\n", i + 1), 0);
	idx = index_of(buf_data(&msg), buf_len(&msg));
	for (s = idx; *s; s++)
		if (*s == ',')
			parts++;
	assert_int_equal(parts / 2, MIME_MAX_PARTS);
	assert_int_equal(mime_index_section(idx, "999", &off, &len), 0);
	assert_memory_equal(buf_data(&msg) + off, "part 999", len);
	check_no_section(idx, "1000");
	free(idx);
	buf_free(&msg);
}

static void
test_damaged_index(void **state)
{
	size_t off, len;
	static const char *const bad[] = {
		"", "2:0,1,2", "1:", "1:0,1", "1:0,1,2M(", "1:0,1,2M(3,4,5", "1:0,1,2M(3,4,5))",
		"1:0,1,2 3,4,5", "1:0,1,2R()", "1:99999999999999999999999,1,2", "1:0,1,2x",
		"1:18446744073709551615,1,1",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mime_index_section(bad[i], "", &off, &len) != -1)
			fail_msg("index \"%s\" accepted", bad[i]);
	assert_int_equal(mime_index_section("1:0,3,4M(7,1,0)", "1", &off, &len), 0);
	assert_int_equal(off, 8);
	assert_int_equal(len, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_simple),
		cmocka_unit_test(test_envelope_odd_addresses),
		cmocka_unit_test(test_missing_headers),
		cmocka_unit_test(test_single_part),
		cmocka_unit_test(test_nested_multipart),
		cmocka_unit_test(test_crlf_and_bare_lf_agree),
		cmocka_unit_test(test_multipart_without_boundary),
		cmocka_unit_test(test_digest_default),
		cmocka_unit_test(test_hostile_limits),
		cmocka_unit_test(test_damaged_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
