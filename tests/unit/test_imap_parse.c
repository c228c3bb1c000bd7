/* test_imap_parse: unit tests for node/imap_parse.c (the IMAP command
 * parser), node/mutf7.c (folder names) and the header helpers of
 * node/imap_search.c: what clients send parses to what the session acts
 * on, and malformed input is refused with a reason, never misread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "imap_parse.h"
#include "imap_search.h"
#include "mutf7.h"

static struct imap_cmd	cmd;
static char		err[256];

static int
parse(const char *s)
{
	imap_cmd_free(&cmd);
	return imap_parse_command(s, strlen(s), &cmd, err, sizeof(err));
}

static void
bad(const char *s)
{
	if (parse(s) != -1)
		fail_msg("accepted: %s", s);
	assert_true(err[0] != '\0');
}

static void
test_simple_commands(void **state)
{
	(void)state;
	assert_int_equal(parse("a1 CAPABILITY"), 0);
	assert_string_equal(cmd.tag, "a1");
	assert_int_equal(cmd.verb, IMAP_CAPABILITY);
	assert_int_equal(parse("x noop"), 0);
	assert_int_equal(cmd.verb, IMAP_NOOP);
	assert_int_equal(parse("A003 LOGIN \"alice@demo.test\" {4}\r\npa s"), 0);
	assert_string_equal(cmd.s1, "alice@demo.test");
	assert_string_equal(cmd.s2, "pa s");
	assert_int_equal(parse("A LOGIN \"q\\\"uo\\\\te\" atom"), 0);
	assert_string_equal(cmd.s1, "q\"uo\\te");
	assert_int_equal(parse("t UID EXPUNGE 1:3,7"), 0);
	assert_int_equal(cmd.verb, IMAP_UID_EXPUNGE);
	assert_int_equal(cmd.set.n, 2);
	assert_int_equal(cmd.set.r[0].lo, 1);
	assert_int_equal(cmd.set.r[0].hi, 3);
	assert_int_equal(parse("t ENABLE CONDSTORE UTF8=ACCEPT"), 0);
	assert_int_equal(cmd.natoms, 2);
	assert_int_equal(parse("t ID (\"name\" \"x\" \"version\" NIL)"), 0);
	assert_int_equal(cmd.natoms, 4);
	assert_null(cmd.atoms[3]);
	assert_int_equal(parse("t ID NIL"), 0);
	assert_int_equal(parse("t AUTHENTICATE PLAIN AGFsaWNlAHB3"), 0);
	assert_true(cmd.s2_given);
	assert_string_equal(cmd.s2, "AGFsaWNlAHB3");
}

static void
test_list_forms(void **state)
{
	(void)state;
	assert_int_equal(parse("t LIST \"\" Projekte*"), 0);
	assert_int_equal(cmd.npatterns, 1);
	assert_string_equal(cmd.patterns[0], "Projekte*");
	assert_int_equal(parse("t LIST \"\" %"), 0);
	assert_string_equal(cmd.patterns[0], "%");
	assert_int_equal(parse("t LIST \"\" \"\""), 0);
	assert_string_equal(cmd.patterns[0], "");
	assert_int_equal(parse("t LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Sent*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))"), 0);
	assert_int_equal(cmd.list_select, IMAP_LS_SUBSCRIBED);
	assert_int_equal(cmd.npatterns, 2);
	assert_true(cmd.list_return & IMAP_LR_STATUS);
	assert_int_equal(cmd.status_items, IMAP_ST_MESSAGES | IMAP_ST_UNSEEN);
	assert_int_equal(parse("t LSUB \"\" *"), 0);
	assert_int_equal(cmd.verb, IMAP_LSUB);
	bad("t LIST (RECURSIVEMATCH) \"\" *");
	bad("t LIST \"\" * garbage");
	bad("t LSUB (SUBSCRIBED) \"\" *");
}

static void
test_fetch_items(void **state)
{
	(void)state;
	assert_int_equal(parse("t FETCH 1:* ALL"), 0);
	assert_int_equal(cmd.set.r[0].hi, IMAP_SEQ_STAR);
	assert_true(cmd.fetch_items & IMAP_FI_ENVELOPE);
	assert_int_equal(parse("t UID FETCH 4,2:3 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100> "
	    "BODY[TEXT] RFC822.SIZE BODYSTRUCTURE) (CHANGEDSINCE 12)"), 0);
	assert_true(cmd.uid);
	assert_int_equal(cmd.nsections, 2);
	assert_true(cmd.sections[0].peek);
	assert_string_equal(cmd.sections[0].part, "1.2");
	assert_string_equal(cmd.sections[0].text, "HEADER.FIELDS");
	assert_int_equal(cmd.sections[0].nfields, 2);
	assert_string_equal(cmd.sections[0].fields[1], "Subject");
	assert_true(cmd.sections[0].partial);
	assert_int_equal(cmd.sections[0].len, 100);
	assert_string_equal(cmd.sections[0].spec, "1.2.HEADER.FIELDS (From Subject)");
	assert_false(cmd.sections[1].peek);
	assert_string_equal(cmd.sections[1].text, "TEXT");
	assert_int_equal(cmd.changedsince, 12);
	assert_int_equal(parse("t FETCH 1 (BODY[] BODY[1] BODY[2.MIME] BODY[HEADER.FIELDS.NOT (X)] RFC822.HEADER)"), 0);
	assert_int_equal(cmd.nsections, 5);
	assert_string_equal(cmd.sections[0].spec, "");
	assert_string_equal(cmd.sections[1].part, "1");
	assert_string_equal(cmd.sections[2].text, "MIME");
	assert_string_equal(cmd.sections[3].text, "HEADER.FIELDS.NOT");
	assert_true(cmd.sections[4].rfc822 && cmd.sections[4].peek);
	assert_int_equal(parse("t FETCH 1 BODY"), 0);
	assert_true(cmd.fetch_items & IMAP_FI_BODY);
	bad("t FETCH 1 (FLAGS");
	bad("t FETCH 0 FLAGS");
	bad("t FETCH 1 BODY[MIME]");
	bad("t FETCH 1 BODY[1.]");
	bad("t FETCH 1 BODY.PEEK");
	bad("t FETCH 1 BODY[]<1.0>");
	bad("t FETCH 1 FLAGS (CHANGEDSINCE 0)");
	bad("t FETCH 4294967296 FLAGS");
	bad("t FETCH 1,,2 FLAGS");
	bad("t FETCH 1 FROB");
}

static void
test_store_and_append(void **state)
{
	(void)state;
	assert_int_equal(parse("t STORE 1:2 +FLAGS.SILENT (\\Seen \\Deleted $Junk)"), 0);
	assert_int_equal(cmd.store_op, 1);
	assert_true(cmd.silent);
	assert_int_equal(cmd.flags.sys, IMAP_FLAG_SEEN | IMAP_FLAG_DELETED);
	assert_string_equal(cmd.flags.keywords, "$Junk");
	assert_int_equal(parse("t STORE 1 (UNCHANGEDSINCE 0) -FLAGS \\Flagged"), 0);
	assert_true(cmd.has_unchangedsince);
	assert_int_equal(cmd.store_op, 2);
	assert_int_equal(cmd.flags.sys, IMAP_FLAG_FLAGGED);
	assert_int_equal(parse("t STORE 1 FLAGS ()"), 0);
	assert_int_equal(cmd.flags.sys, 0);
	bad("t STORE 1 +FLAGS (\\Recent)");
	bad("t STORE 1 +FLAGS (\\Bogus)");
	bad("t STORE 1 FLAGZ (\\Seen)");
	assert_int_equal(parse("t APPEND Sent (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {5+}\r\nhello"), 0);
	assert_string_equal(cmd.s1, "Sent");
	assert_int_equal(cmd.literal_len, 5);
	assert_memory_equal(cmd.literal, "hello", 5);
	assert_int_equal(cmd.date, 837596665);
	assert_int_equal(parse("t APPEND INBOX {0}\r\n"), 0);
	assert_int_equal(cmd.literal_len, 0);
	bad("t APPEND INBOX {5}\r\nhell");
	bad("t APPEND INBOX \"32-Jul-1996 02:44:25 -0700\" {1}\r\nx");
	bad("t APPEND INBOX hello");
}

static void
test_search_and_sort(void **state)
{
	struct imap_search *k;

	(void)state;
	assert_int_equal(parse("t SEARCH CHARSET UTF-8 OR FROM amy (SUBJECT \"a b\" UNSEEN) NOT 2:* "
	    "SINCE 1-Feb-1994 HEADER X-Tag \"\" LARGER 10 UID 5 KEYWORD $Work MODSEQ 7"), 0);
	assert_string_equal(cmd.charset, "UTF-8");
	k = cmd.search;
	assert_int_equal(k->kind, SK_AND);
	assert_int_equal(k->a->kind, SK_OR);
	assert_int_equal(k->a->a->kind, SK_FROM);
	assert_string_equal(k->a->a->str, "amy");
	assert_int_equal(k->a->b->kind, SK_AND);
	assert_int_equal(k->a->next->kind, SK_NOT);
	assert_int_equal(k->a->next->a->kind, SK_SEQSET);
	assert_int_equal(k->a->next->next->kind, SK_SINCE);
	assert_int_equal(k->a->next->next->date, 760060800);
	assert_int_equal(parse("t UID SEARCH RETURN (MIN COUNT) DELETED"), 0);
	assert_true(cmd.esearch);
	assert_int_equal(cmd.search_return, IMAP_SR_MIN | IMAP_SR_COUNT);
	assert_int_equal(parse("t SEARCH RETURN () ALL"), 0);
	assert_int_equal(cmd.search_return, IMAP_SR_ALL);
	assert_int_equal(parse("t SORT (REVERSE DATE SUBJECT) UTF-8 ALL"), 0);
	assert_int_equal(cmd.nsort, 2);
	assert_true(cmd.sort_reverse[0]);
	assert_int_equal(cmd.sort[1], SORT_SUBJECT);
	bad("t SEARCH");
	bad("t SEARCH FROB");
	bad("t SEARCH SINCE 30-Feb-2020");
	bad("t SEARCH CHARSET KOI8-R ALL");
	bad("t SORT DATE UTF-8 ALL");
	bad("t SORT (DATE) ALL");
	bad("t SEARCH ((((((((((((((((((((((((((((((((((ALL))))))))))))))))))))))))))))))))))");
	bad("t SEARCH (ALL");
	bad("t SEARCH OR ALL");
}

static void
test_tags_and_garbage(void **state)
{
	(void)state;
	bad("");
	bad("t");
	bad("t ");
	bad("+tag NOOP");
	bad("t FROB");
	bad("t UID COPY");
	bad("t UID LOGIN a b");
	bad("t NOOP extra");
	bad("t LOGIN \"unterminated");
	bad("t LOGIN \"bad\\escape\" x");
	bad("t LOGIN {5}\r\nab");
	bad("t LOGIN {3}\r\na\0b c");
	bad("t SELECT INBOX (FOO)");
	bad("t CREATE x (USE (Sent))");
	assert_int_equal(parse("t CREATE x (USE (\\Sent))"), 0);
	assert_string_equal(cmd.s2, "\\Sent");
	assert_int_equal(parse("t SELECT INBOX (CONDSTORE)"), 0);
	assert_true(cmd.condstore);
	assert_int_equal(parse("t STATUS \"a b\" (MESSAGES UIDNEXT HIGHESTMODSEQ SIZE)"), 0);
	bad("t STATUS x (FOO)");
}

static void
test_literal_announced(void **state)
{
	uint64_t n;
	bool plus;

	(void)state;
	assert_int_equal(imap_literal_announced("a LOGIN {12}", 12, &n, &plus), 1);
	assert_int_equal(n, 12);
	assert_false(plus);
	assert_int_equal(imap_literal_announced("a APPEND x {7+}", 15, &n, &plus), 1);
	assert_true(plus);
	assert_int_equal(imap_literal_announced("a LOGIN \"x}\"", 12, &n, &plus), 0);
	assert_int_equal(imap_literal_announced("{}", 2, &n, &plus), 0);
	assert_int_equal(imap_literal_announced("a {99999999999}", 15, &n, &plus), -1);
}

static void
check_mutf7(const char *utf8, const char *enc)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mutf7_encode(utf8, &b), 0);
	assert_string_equal(buf_cstr(&b), enc);
	buf_reset(&b);
	assert_int_equal(mutf7_decode(enc, strlen(enc), &b), 0);
	assert_string_equal(buf_cstr(&b), utf8);
	buf_free(&b);
}

static void
mutf7_bad(const char *enc)
{
	struct buf b;

	buf_init(&b, 0);
	if (mutf7_decode(enc, strlen(enc), &b) != -1)
		fail_msg("decoded: %s", enc);
	buf_free(&b);
}

static void
test_mutf7(void **state)
{
	struct buf b;

	(void)state;
	check_mutf7("INBOX", "INBOX");
	check_mutf7("Tom & Jerry", "Tom &- Jerry");
	check_mutf7("B\xc3\xa4r", "B&AOQ-r");
	/* RFC 3501's example */
	check_mutf7("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	check_mutf7("\xf0\x9f\x93\xa7 mail", "&2D3c5w- mail");
	mutf7_bad("&");
	mutf7_bad("&AOQ");
	mutf7_bad("&-&");
	mutf7_bad("&AGE-");		/* "a" encoded: must be sent as itself */
	mutf7_bad("&2D0-");		/* a lone high surrogate */
	mutf7_bad("&AOR-");		/* leftover bits not zero */
	mutf7_bad("a\x01" "b");
	mutf7_bad("\xc3\xa4");
	buf_init(&b, 0);
	assert_int_equal(mutf7_encode("\xc3", &b), -1);
	buf_free(&b);
}

static void
test_headers(void **state)
{
	const char *msg = "From: A <a@x>\r\nSubject: one\r\n two\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody\r\n";
	size_t h = imap_header_len(msg, strlen(msg));
	char *fields[] = { "subject" };
	struct buf b;
	time_t inst, day;

	(void)state;
	assert_int_equal(h, strlen(msg) - 6);
	buf_init(&b, 0);
	assert_int_equal(imap_header_get(msg, h, "SUBJECT", &b), 0);
	assert_string_equal(buf_cstr(&b), "one two");
	assert_int_equal(imap_header_get(msg, h, "x-a", &b), 0);
	assert_string_equal(buf_cstr(&b), "1, 2");
	assert_int_equal(imap_header_get(msg, h, "To", &b), -1);
	buf_reset(&b);
	assert_int_equal(imap_header_filter(msg, h, fields, 1, false, &b), 0);
	assert_string_equal(buf_cstr(&b), "Subject: one\r\n two\r\n\r\n");
	buf_reset(&b);
	assert_int_equal(imap_header_filter(msg, h, fields, 1, true, &b), 0);
	assert_string_equal(buf_cstr(&b), "From: A <a@x>\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
	buf_free(&b);
	assert_int_equal(imap_rfc5322_date("Mon, 2 Nov 2026 23:30:00 -0200", &inst, &day), 0);
	assert_int_equal(day, 1793577600);			/* 2-Nov-2026 */
	assert_int_equal(inst, 1793577600 + 86400 + 5400);	/* 3-Nov 01:30 UTC */
	assert_int_equal(imap_rfc5322_date("garbage", &inst, &day), -1);
	/* Digit runs that do not fit an int are refused, not wrapped (found
	 * by fuzz_imap_parse: a minute field of 20444444420). */
	assert_int_equal(imap_rfc5322_date("Mon, 2 Nov 2026 23:20444444420 -0200", &inst, &day), -1);
	assert_int_equal(imap_rfc5322_date("4294967297 Nov 2026 10:00 +0000", &inst, &day), -1);
	assert_int_equal(imap_rfc5322_date("2 Nov 4294969322 10:00 +0000", &inst, &day), -1);
	assert_int_equal(imap_rfc5322_date("2 Nov 2026 -5:00 +0000", &inst, &day), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_list_forms),
		cmocka_unit_test(test_fetch_items),
		cmocka_unit_test(test_store_and_append),
		cmocka_unit_test(test_search_and_sort),
		cmocka_unit_test(test_tags_and_garbage),
		cmocka_unit_test(test_literal_announced),
		cmocka_unit_test(test_mutf7),
		cmocka_unit_test(test_headers),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	imap_cmd_free(&cmd);
	return rc;
}
