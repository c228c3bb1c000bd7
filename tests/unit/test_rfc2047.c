/* test_rfc2047: unit tests for node/rfc2047.c, the encoded-word decoder
 * behind SEARCH header keys and the SORT base subject. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "rfc2047.h"

static void
decodes(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(rfc2047_decode(in, strlen(in), &b), 0);
	if (strcmp(buf_cstr(&b), want) != 0)
		fail_msg("\"%s\" decoded to \"%s\", want \"%s\"", in, buf_cstr(&b), want);
	buf_free(&b);
}

static void
test_encodings_and_charsets(void **state)
{
	(void)state;
	decodes("=?UTF-8?Q?J=C3=BCrgen?= <j@example.org>", "J\xc3\xbcrgen <j@example.org>");
	decodes("=?utf-8?q?J=c3=bcrgen_M=C3=BCller?=", "J\xc3\xbcrgen M\xc3\xbcller");
	decodes("=?UTF-8?B?SsO8cmdlbg==?=", "J\xc3\xbcrgen");
	decodes("=?utf-8?b?w6Q=?=", "\xc3\xa4");
	decodes("=?ISO-8859-1?Q?Andr=E9?= Pirard", "Andr\xc3\xa9 Pirard");
	decodes("=?iso-8859-1?b?QW5kcuk=?=", "Andr\xc3\xa9");
	decodes("=?US-ASCII?Q?Keith_Moore?=", "Keith Moore");
	decodes("=?UTF-8*de?Q?Gr=C3=BC=C3=9Fe?=", "Gr\xc3\xbc\xc3\x9f" "e");	/* RFC 2231 language */
	decodes("plain text, no words", "plain text, no words");
	decodes("", "");
	decodes("a = b =? c ?=", "a = b =? c ?=");
}

/* RFC 2047 section 8's examples of white space between words. */
static void
test_white_space_between_words(void **state)
{
	(void)state;
	decodes("(=?ISO-8859-1?Q?a?=)", "(a)");
	decodes("(=?ISO-8859-1?Q?a?= b)", "(a b)");
	decodes("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)");
	decodes("(=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=)", "(ab)");
	decodes("(=?ISO-8859-1?Q?a_b?=)", "(a b)");
	decodes("Re: =?UTF-8?Q?caf=C3=A9?= ", "Re: caf\xc3\xa9 ");
	/* A raw word between two decoded ones keeps its spaces. */
	decodes("=?utf-8?q?a?= =?x-unknown?q?b?= =?utf-8?q?c?=", "a =?x-unknown?q?b?= c");
}

/* What cannot be decoded stays as it was. */
static void
test_bad_words_stay_raw(void **state)
{
	(void)state;
	decodes("=?KOI8-R?Q?=F0=D2=C9?=", "=?KOI8-R?Q?=F0=D2=C9?=");	/* charset not known */
	decodes("=?UTF-8?Q?=C3?=", "=?UTF-8?Q?=C3?=");			/* truncated UTF-8 */
	decodes("=?UTF-8?Q?=ZZ?=", "=?UTF-8?Q?=ZZ?=");			/* bad hex */
	decodes("=?UTF-8?Q?a=4?=", "=?UTF-8?Q?a=4?=");			/* short escape */
	decodes("=?UTF-8?B?S$==?=", "=?UTF-8?B?S$==?=");			/* bad base64 */
	decodes("=?UTF-8?B?QQ=a?=", "=?UTF-8?B?QQ=a?=");			/* data after padding */
	decodes("=?UTF-8?B?QR==?=", "=?UTF-8?B?QR==?=");			/* non-zero pad bits */
	decodes("=?UTF-8?X?abc?=", "=?UTF-8?X?abc?=");			/* no such encoding */
	decodes("=?UTF-8?Q?a b?=", "=?UTF-8?Q?a b?=");			/* space inside */
	decodes("=?UTF-8?Q?abc", "=?UTF-8?Q?abc");				/* unterminated */
	decodes("=?US-ASCII?Q?=E9?=", "=?US-ASCII?Q?=E9?=");		/* 8 bit in ASCII */
	decodes("=?ISO-8859-1?Q?=85?=", "=?ISO-8859-1?Q?=85?=");		/* C1 control */
	/* No line breaks or NULs forged into a value. */
	decodes("=?UTF-8?Q?a=0D=0AX-Evil:_1?=", "=?UTF-8?Q?a=0D=0AX-Evil:_1?=");
	decodes("=?UTF-8?B?AA==?=", "=?UTF-8?B?AA==?=");
}

static void
test_overlong_word_is_not_decoded(void **state)
{
	char in[RFC2047_WORD_MAX + 40];
	struct buf b;
	size_t n;

	(void)state;
	memcpy(in, "=?UTF-8?Q?", 10);
	n = 10;
	while (n < RFC2047_WORD_MAX + 10)
		in[n++] = 'a';
	memcpy(in + n, "?=", 3);
	n += 2;
	buf_init(&b, 0);
	assert_int_equal(rfc2047_decode(in, n, &b), 0);
	assert_int_equal(buf_len(&b), n);
	assert_memory_equal(buf_data(&b), in, n);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encodings_and_charsets),
		cmocka_unit_test(test_white_space_between_words),
		cmocka_unit_test(test_bad_words_stay_raw),
		cmocka_unit_test(test_overlong_word_is_not_decoded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
