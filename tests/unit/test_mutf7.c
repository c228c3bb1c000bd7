/* test_mutf7: unit tests for node/mutf7.c, IMAP's modified UTF-7 for
 * folder names (RFC 3501 5.1.3): each name has exactly one spelling. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "mutf7.h"

/* utf8 encodes to enc and enc decodes to utf8. */
static void
both_ways(const char *utf8, const char *enc)
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
decode_fails(const char *enc, size_t len)
{
	struct buf b;

	buf_init(&b, 0);
	if (mutf7_decode(enc, len, &b) != -1)
		fail_msg("\"%.*s\" decoded to \"%s\"", (int)len, enc, buf_cstr(&b));
	buf_free(&b);
}

static void
encode_fails(const char *utf8)
{
	struct buf b;

	buf_init(&b, 0);
	if (mutf7_encode(utf8, &b) != -1)
		fail_msg("invalid UTF-8 encoded to \"%s\"", buf_cstr(&b));
	buf_free(&b);
}

static void
test_round_trips(void **state)
{
	(void)state;
	both_ways("", "");
	both_ways("INBOX", "INBOX");
	both_ways("Sent Items/2026", "Sent Items/2026");
	both_ways("&", "&-");
	both_ways("Tom & Jerry", "Tom &- Jerry");
	both_ways("B\xc3\xa4r", "B&AOQ-r");
	both_ways("\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-");		/* one run, not three */
	both_ways("\xc3\xa4&", "&AOQ-&-");
	/* RFC 3501's example */
	both_ways("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	/* outside the BMP: a surrogate pair */
	both_ways("\xf0\x9f\x93\xa7 mail", "&2D3c5w- mail");
	/* controls are not printable ASCII: they travel encoded */
	both_ways("a\tb", "a&AAk-b");
	both_ways("\x7f", "&AH8-");
}

static void
test_decode_rejects(void **state)
{
	(void)state;
	decode_fails("&", 1);			/* unterminated shift */
	decode_fails("&AOQ", 4);
	decode_fails("a&AOQ-&", 7);
	decode_fails("&-&", 3);
	decode_fails("&AGE-", 5);		/* "a" encoded: must be sent as itself */
	decode_fails("&ACY-", 5);		/* "&" encoded: must be "&-" */
	decode_fails("&AAA-", 5);		/* NUL */
	decode_fails("&2D0-", 5);		/* lone high surrogate */
	decode_fails("&3DI-", 5);		/* lone low surrogate */
	decode_fails("&2D3YPQ-", 8);		/* high surrogate then another high */
	decode_fails("&AOR-", 5);		/* leftover bits not zero */
	decode_fails("&AOQA-", 6);		/* a whole extra base64 character */
	decode_fails("&AO-", 4);		/* less than one UTF-16 unit */
	decode_fails("&AOQ=-", 6);		/* '=' padding is not modified base64 */
	decode_fails("&AO/Q-", 6);		/* '/' is ',' here */
	decode_fails("&AOQ-&APY-", 10);		/* two runs back to back: one name, two spellings */
	decode_fails("a\x01" "b", 3);		/* raw control */
	decode_fails("\xc3\xa4", 2);		/* raw 8-bit */
	decode_fails("a\0b", 3);		/* NUL inside the length */
}

static void
test_encode_rejects(void **state)
{
	(void)state;
	encode_fails("\xc3");			/* truncated sequence */
	encode_fails("a\xc3(");			/* bad continuation */
	encode_fails("\xc0\xaf");		/* overlong '/' */
	encode_fails("\xe0\x80\xaf");		/* overlong, three bytes */
	encode_fails("\xed\xa0\x80");		/* UTF-16 surrogate written as UTF-8 */
	encode_fails("\xf4\x90\x80\x80");	/* above U+10FFFF */
	encode_fails("\xff");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_encode_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
