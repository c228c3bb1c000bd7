/* fuzz_imap_parse: libFuzzer target for node/imap_parse.c, node/mutf7.c and
 * the message-header readers of node/imap_search.c (SEARCH and SORT read
 * headers of mail that came from anywhere).
 * Every command a client sends (its line and literals, assembled) goes
 * through imap_parse_command, and every folder name through mutf7, so both
 * must survive any bytes. Checks: the tag of an accepted command is a
 * non-empty atom without '+'; APPEND's message lies inside the input;
 * sequence ranges are ordered; a modified UTF-7 name that decodes encodes
 * back to the same bytes, and encoding valid UTF-8 always decodes back.
 *
 * The bytes are copied to a buffer of exactly their length, without a
 * NUL, so that ASan catches any read past the length given. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_parse.h"
#include "imap_search.h"
#include "mutf7.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static void
check_cmd(const struct imap_cmd *c, const char *in, size_t len)
{
	size_t i;

	check(c->tag[0] != '\0' && strchr(c->tag, '+') == NULL);
	for (i = 0; c->tag[i]; i++)
		check(imap_is_atom_char((unsigned char)c->tag[i]) || c->tag[i] == ']');
	check(c->verb != IMAP_NONE);
	for (i = 0; i < c->set.n; i++)
		check(c->set.r[i].lo <= c->set.r[i].hi && c->set.r[i].lo > 0);
	if (c->verb == IMAP_APPEND) {
		check(c->literal >= in && c->literal + c->literal_len <= in + len);
		check(c->s1 != NULL);
	}
	for (i = 0; i < c->nsections; i++) {
		check(c->sections[i].part != NULL && c->sections[i].text != NULL &&
		    c->sections[i].spec != NULL);
		check(!c->sections[i].partial || c->sections[i].len > 0);
	}
	check(c->nsort <= IMAP_SORT_MAX);
}

static void
fuzz_mutf7(const char *in, size_t len)
{
	struct buf utf8, back, again;

	buf_init(&utf8, 0);
	buf_init(&back, 0);
	buf_init(&again, 0);
	if (mutf7_decode(in, len, &utf8) == 0) {
		/* Decoded text re-encodes to the canonical form, which decodes
		 * to the same text. */
		if (memchr(buf_cstr(&utf8), '\0', buf_len(&utf8)) == NULL) {
			check(mutf7_encode(buf_cstr(&utf8), &back) == 0);
			check(mutf7_decode(buf_data(&back) ? buf_data(&back) : "", buf_len(&back), &again) == 0);
			check(buf_len(&again) == buf_len(&utf8) &&
			    memcmp(buf_cstr(&again), buf_cstr(&utf8), buf_len(&utf8)) == 0);
		}
	}
	buf_free(&utf8);
	buf_free(&back);
	buf_free(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1), *z;
	struct imap_cmd cmd;
	char err[256];
	time_t t;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	if (imap_parse_command(in, size, &cmd, err, sizeof(err)) == 0) {
		check_cmd(&cmd, in, size);
		imap_cmd_free(&cmd);
	} else
		check(err[0] != '\0');
	fuzz_mutf7(in, size);
	(void)imap_parse_date(in, size, &t);
	(void)imap_parse_datetime(in, size, &t);
	{
		uint64_t n;
		bool plus;

		(void)imap_literal_announced(in, size, &n, &plus);
	}
	/* Headers: the header block lies within the input; a field's value
	 * and a filtered header are C strings within bounds. */
	{
		static char *fields[] = { "subject", "From", "x-a" };
		size_t h = imap_header_len(in, size);
		struct buf v;
		time_t inst, day;

		check(h <= size);
		buf_init(&v, 0);
		if (imap_header_get(in, h, "Subject", &v) == 0)
			check(strlen(buf_cstr(&v)) <= buf_len(&v));
		buf_reset(&v);
		check(imap_header_filter(in, h, fields, 3, size % 2 == 0, &v) == 0);
		check(buf_len(&v) <= h + 2);
		buf_free(&v);
		if ((z = malloc(size + 1)) != NULL) {
			memcpy(z, data, size);
			z[size] = '\0';
			(void)imap_rfc5322_date(z, &inst, &day);
			free(z);
		}
	}
	/* Encoding takes a C string: valid UTF-8 round-trips. */
	if ((z = malloc(size + 1)) != NULL) {
		struct buf enc, dec;

		memcpy(z, data, size);
		z[size] = '\0';
		buf_init(&enc, 0);
		buf_init(&dec, 0);
		if (mutf7_encode(z, &enc) == 0) {
			check(mutf7_decode(buf_data(&enc) ? buf_data(&enc) : "", buf_len(&enc), &dec) == 0);
			check(strcmp(buf_cstr(&dec), z) == 0);
		}
		buf_free(&enc);
		buf_free(&dec);
		free(z);
	}
	free(in);
	return 0;
}
