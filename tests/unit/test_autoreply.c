/* test_autoreply: the RFC 3834 decisions on the original's header and the
 * envelope sender, the from/until times, and the reply as composed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoreply.h"
#include "buf.h"

static const char *const addrs[] = { "alice@demo.test", "team@demo.test", "alice@alias.test" };

static void
inspect(const char *msg, struct autoreply_original *o)
{
	assert_int_equal(autoreply_inspect(msg, strlen(msg), addrs, 3, o), 0);
}

static void
test_senders(void **state)
{
	(void)state;
	assert_true(autoreply_sender_ok("carol@outside.example"));
	assert_true(autoreply_sender_ok("owner@outside.example"));
	assert_true(autoreply_sender_ok("requests@outside.example"));
	assert_false(autoreply_sender_ok(""));
	assert_false(autoreply_sender_ok(NULL));
	assert_false(autoreply_sender_ok("MAILER-DAEMON@outside.example"));
	assert_false(autoreply_sender_ok("owner-talk@lists.example"));
	assert_false(autoreply_sender_ok("talk-request@lists.example"));
	assert_false(autoreply_sender_ok("talk-bounces@lists.example"));
	assert_false(autoreply_sender_ok("no-reply@shop.example"));
	assert_false(autoreply_sender_ok("nodomain"));
	assert_false(autoreply_sender_ok("a\r\nBcc: x@y@outside.example"));
	assert_false(autoreply_sender_ok("\"quoted\"@outside.example"));
}

static void
test_suppressed(void **state)
{
	static const struct { const char *hdr; bool suppressed; } cases[] = {
		{ "Auto-Submitted: auto-generated\r\n", true },
		{ "Auto-Submitted: auto-replied (vacation)\r\n", true },
		{ "auto-submitted:   No\r\n", false },
		{ "Auto-Submitted: no (a person)\r\n", false },
		{ "Precedence: bulk\r\n", true },
		{ "Precedence: LIST\r\n", true },
		{ "Precedence: junk\r\n", true },
		{ "Precedence: first-class\r\n", false },
		{ "List-Id: Talk <talk.lists.example>\r\n", true },
		{ "List-Unsubscribe: <mailto:u@lists.example>\r\n", true },
		{ "X-Auto-Response-Suppress: OOF, AutoReply\r\n", true },
		{ "X-List-Id: not a list header\r\n", false },
	};
	struct autoreply_original o;
	char msg[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(msg, sizeof(msg), "To: alice@demo.test\r\n%sSubject: x\r\n\r\nbody\r\n",
		    cases[i].hdr);
		inspect(msg, &o);
		if ((o.suppress != NULL) != cases[i].suppressed)
			fail_msg("case %zu (%s): suppress %s", i, cases[i].hdr, o.suppress ? o.suppress : "none");
		assert_true(o.addressed);
		autoreply_original_free(&o);
	}
	/* Only the header counts: the same words in the body do not. */
	inspect("To: alice@demo.test\r\n\r\nPrecedence: bulk\r\n", &o);
	assert_null(o.suppress);
	autoreply_original_free(&o);
}

static void
test_addressed(void **state)
{
	static const struct { const char *hdr; bool addressed; } cases[] = {
		{ "To: alice@demo.test\r\n", true },
		{ "To: Alice <ALICE@Demo.Test>\r\n", true },
		{ "To: \"Smith, Alice\" <alice@demo.test>, bob@demo.test\r\n", true },
		{ "To: bob@demo.test,\r\n alice@demo.test (Alice)\r\n", true },
		{ "To: friends: bob@demo.test, alice@alias.test;\r\n", true },
		{ "To: <@relay.example:alice@demo.test>\r\n", true },
		{ "To: \"alice\"@demo.test\r\n", true },
		{ "To: bob@demo.test\r\nCc: team@demo.test\r\n", true },
		{ "To: bob@demo.test\r\nTo: alice@demo.test\r\n", true },
		{ "To: bob@demo.test\r\n", false },
		{ "To: \"alice@demo.test\" <other@outside.example>\r\n", false },
		{ "To: other@outside.example (alice@demo.test)\r\n", false },
		{ "To: undisclosed-recipients:;\r\n", false },
		{ "To: xalice@demo.test\r\n", false },
		{ "Bcc: alice@demo.test\r\n", false },
		{ "Reply-To: alice@demo.test\r\n", false },
	};
	struct autoreply_original o;
	char msg[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(msg, sizeof(msg), "From: carol@outside.example\r\n%s\r\nbody\r\n", cases[i].hdr);
		inspect(msg, &o);
		if (o.addressed != cases[i].addressed)
			fail_msg("case %zu (%s): addressed %d", i, cases[i].hdr, o.addressed);
		autoreply_original_free(&o);
	}
	/* An address past the bounded header is not seen. */
	{
		size_t n = AUTOREPLY_HEADER_MAX + 100;
		char *big = malloc(n + 64);

		assert_non_null(big);
		memcpy(big, "X-Pad: ", 7);
		memset(big + 7, 'a', n - 7);
		snprintf(big + n, 64, "\r\nTo: alice@demo.test\r\n\r\n");
		assert_int_equal(autoreply_inspect(big, strlen(big), addrs, 3, &o), 0);
		assert_false(o.addressed);
		autoreply_original_free(&o);
		free(big);
	}
}

static void
test_ids(void **state)
{
	struct autoreply_original o;

	(void)state;
	inspect("To: alice@demo.test\r\nMessage-ID: <m1@outside.example>\r\n"
	    "References: <a@x> <b@x>\r\n\t<c@x>\r\n\r\n", &o);
	assert_string_equal(o.message_id, "<m1@outside.example>");
	assert_string_equal(buf_cstr(&o.references), "<a@x> <b@x> <c@x> <m1@outside.example>");
	autoreply_original_free(&o);

	/* Without References, the parent's In-Reply-To; junk ids are dropped. */
	inspect("To: alice@demo.test\r\nMessage-ID: <bad id@x>\r\nIn-Reply-To: <p@x>\r\n\r\n", &o);
	assert_string_equal(o.message_id, "");
	assert_string_equal(buf_cstr(&o.references), "<p@x>");
	autoreply_original_free(&o);

	inspect("To: alice@demo.test\r\n\r\n", &o);
	assert_string_equal(o.message_id, "");
	assert_string_equal(buf_cstr(&o.references), "");
	autoreply_original_free(&o);
}

static void
test_time(void **state)
{
	time_t t;

	(void)state;
	assert_int_equal(autoreply_time("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(autoreply_time("2026-11-23T18:00:00.5+01:00", &t), 0);
	assert_int_equal(t, 1795456800 - 3600);
	assert_int_equal(autoreply_time("2026-11-23T18:00:00-05:30", &t), 0);
	assert_int_equal(t, 1795456800 + 5 * 3600 + 1800);
	assert_int_equal(autoreply_time("2026-11-23", &t), -1);
	assert_int_equal(autoreply_time("2026-13-23T18:00:00Z", &t), -1);
	assert_int_equal(autoreply_time("2026-11-23T18:00:00", &t), -1);
	assert_int_equal(autoreply_time("2026-11-23T18:00:00Zjunk", &t), -1);
}

static void
test_compose(void **state)
{
	struct autoreply_original o;
	struct autoreply_reply r;
	struct buf out;
	const char *m;

	(void)state;
	inspect("To: alice@demo.test\r\nMessage-ID: <m1@outside.example>\r\n\r\n", &o);
	buf_init(&out, 0);
	r = (struct autoreply_reply){ .from = "alice@demo.test", .to = "carol@outside.example",
	    .subject = "Away\r\nBcc: everyone@example.com", .body = "line one\nl\xc3\xa4ne = two \n",
	    .host = "node.test", .orig = &o, .now = 0 };
	assert_int_equal(autoreply_compose(&out, &r), 0);
	m = buf_cstr(&out);
	assert_non_null(strstr(m, "From: <alice@demo.test>\r\nTo: <carol@outside.example>\r\n"));
	/* The subject's line break cannot start a header field of its own. */
	assert_non_null(strstr(m, "Subject: Away  Bcc: everyone@example.com\r\n"));
	assert_null(strstr(m, "\r\nBcc:"));
	assert_non_null(strstr(m, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
	assert_non_null(strstr(m, "In-Reply-To: <m1@outside.example>\r\nReferences: <m1@outside.example>\r\n"));
	assert_non_null(strstr(m, "Auto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(m, ".autoreply@node.test>\r\n"));
	assert_non_null(strstr(m, "\r\n\r\nline one\r\nl=C3=A4ne =3D two=20\r\n"));
	buf_free(&out);

	/* A non-ASCII subject becomes encoded words, a character never split. */
	buf_init(&out, 0);
	r.subject = "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
	    "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
	    "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4";	/* 48 bytes: two words of 44 and 4 */
	assert_int_equal(autoreply_compose(&out, &r), 0);
	m = buf_cstr(&out);
	assert_non_null(strstr(m, "Subject: =?utf-8?B?w6TDpMOkw6TDpMOkw6TDpMOkw6TDpMOkw6TDpMOkw6TDpMOkw6TDpMOkw6Q=?=\r\n"
	    " =?utf-8?B?w6TDpA==?=\r\n"));
	buf_free(&out);
	autoreply_original_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_senders),
		cmocka_unit_test(test_suppressed),
		cmocka_unit_test(test_addressed),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_compose),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
