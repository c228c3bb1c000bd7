/* fuzz_smtp_parse: libFuzzer target for node/smtp_parse.c. Every SMTP line
 * a client sends goes through smtp_parse_command, so it must survive any
 * bytes; a refusal must be a well-formed reply that is safe to send, and an
 * accepted address must be exactly what the rest of the node expects:
 * lower-case domain, bounded local part, and a formatted form that parses
 * back to the same mailbox.
 *
 * Input: the first byte picks the extensions offered (one bit each), the
 * rest is the command line. The whole input is also tried as a mailbox.
 * The bytes are copied to a buffer of exactly their length, without a
 * NUL, so that ASan catches any read past the length given. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* NUL-terminated within its array */
#define TERMINATED(a)	(memchr((a), '\0', sizeof(a)) != NULL)

/* "DDD X.Y.Z text\r\n", printable ASCII, code class = enhanced class. */
static void
check_reply(const char *r, size_t cap)
{
	size_t	 n, i;

	check(memchr(r, '\0', cap) != NULL);
	n = strlen(r);
	check(n >= 13);
	check(is_digit(r[0]) && is_digit(r[1]) && is_digit(r[2]) && r[3] == ' ');
	check(r[0] == '4' || r[0] == '5');
	check(r[4] == r[0] && r[5] == '.');
	i = 6;
	check(is_digit(r[i]));
	while (is_digit(r[i]))
		i++;
	check(r[i++] == '.');
	check(is_digit(r[i]));
	while (is_digit(r[i]))
		i++;
	check(r[i] == ' ');
	check(r[n - 2] == '\r' && r[n - 1] == '\n');
	for (i = 0; i < n - 2; i++)
		check(r[i] >= 0x20 && r[i] < 0x7f);
	/* at most 64 client bytes in a reply of our own words */
	check(n <= 140);
}

static bool
has_non_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* The invariants of any mailbox the parser accepted. */
static void
check_addr(const struct smtp_addr *a)
{
	struct smtp_addr	 b;
	char			 out[SMTP_PATH_MAX * 3], why[128];
	const char		*d;
	size_t			 ll, dl;

	check(TERMINATED(a->local) && TERMINATED(a->domain));
	ll = strlen(a->local);
	dl = strlen(a->domain);
	check(ll > 0 && ll <= SMTP_LOCAL_MAX);
	check(dl > 0 && dl <= SMTP_DOMAIN_MAX);
	check(!a->null && !a->postmaster);
	if (has_non_ascii(a->local) || has_non_ascii(a->domain))
		check(a->utf8);
	for (d = a->domain; *d != '\0'; d++) {
		check((unsigned char)*d > 0x20 && *d != 0x7f);
		/* lower case, but for the tag of an IPv6 literal */
		if (*d >= 'A' && *d <= 'Z')
			check(a->literal && d >= a->domain + 1 && d < a->domain + 5 &&
			    strncmp(a->domain, "[IPv6:", 6) == 0);
	}
	check(a->literal == (a->domain[0] == '['));
	if (a->literal)
		check(a->domain[dl - 1] == ']' && !has_non_ascii(a->domain));
	for (d = a->local; *d != '\0'; d++)
		check((unsigned char)*d >= 0x20 && *d != 0x7f);

	/* format, then parse back to the same mailbox */
	check(smtp_addr_format(a, out, sizeof(out)) == 0);
	check(strlen(out) <= SMTP_PATH_MAX - 2);
	check(smtp_parse_mailbox(out, strlen(out), a->utf8, &b, why, sizeof(why)) == 0);
	check(strcmp(a->local, b.local) == 0);
	check(strcmp(a->domain, b.domain) == 0);
	check(a->literal == b.literal);
	check(!b.had_route);
	/* a non-ASCII route alone may have set utf8 */
	check(!b.utf8 || a->utf8);
	/* and formats the same way again */
	{
		char	 out2[sizeof(out)];

		check(smtp_addr_format(&b, out2, sizeof(out2)) == 0);
		check(strcmp(out, out2) == 0);
	}
}

static void
fuzz_command(const char *line, size_t len, const struct smtp_offer *o)
{
	struct smtp_cmd	 cmd, again;
	char		 reply[256], reply2[256];
	size_t		 i;
	int		 rc;
	bool		 ctl = false;

	memset(reply, 'x', sizeof(reply));
	rc = smtp_parse_command(line, len, o, &cmd, reply, sizeof(reply));
	check(rc == 0 || rc == -1);

	/* deterministic */
	memset(reply2, 'y', sizeof(reply2));
	check(smtp_parse_command(line, len, o, &again, reply2, sizeof(reply2)) == rc);
	check(memcmp(&cmd, &again, sizeof(cmd)) == 0);
	check(strcmp(reply, reply2) == 0);

	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			ctl = true;
	if (rc == -1) {
		struct smtp_cmd	 zero;

		check_reply(reply, sizeof(reply));
		/* nothing half-parsed is left behind */
		memset(&zero, 0, sizeof(zero));
		zero.verb = cmd.verb;
		check(memcmp(&cmd, &zero, sizeof(cmd)) == 0);
		return;
	}

	check(reply[0] == '\0');
	check(!ctl && len <= SMTP_LINE_MAX - 2);
	check(cmd.verb != SMTP_UNKNOWN);
	check(TERMINATED(cmd.arg) && TERMINATED(cmd.envid) && TERMINATED(cmd.auth) &&
	    TERMINATED(cmd.orcpt));

	/* nothing of an extension that was not offered */
	check(cmd.verb != SMTP_BDAT || o->chunking);
	check(cmd.verb != SMTP_AUTH || o->auth);
	check(cmd.size == 0 || o->size);
	check(cmd.body == SMTP_BODY_NONE || o->eightbitmime || o->binarymime);
	check(cmd.body != SMTP_BODY_8BITMIME || o->eightbitmime);
	check(cmd.body != SMTP_BODY_BINARYMIME || o->binarymime);
	check(!cmd.smtputf8 || o->smtputf8);
	check((!cmd.ret_set && cmd.envid[0] == '\0' && cmd.notify == 0 &&
	    cmd.orcpt[0] == '\0') || o->dsn);
	check(cmd.auth[0] == '\0' || o->auth);
	check(!cmd.ret_hdrs || cmd.ret_set);
	check(strlen(cmd.envid) <= 100);
	for (i = 0; cmd.envid[i] != '\0'; i++)
		check(cmd.envid[i] >= 0x20 && cmd.envid[i] < 0x7f);
	for (i = 0; cmd.auth[i] != '\0'; i++)
		check(cmd.auth[i] >= 0x20 && cmd.auth[i] < 0x7f);
	for (i = 0; cmd.arg[i] != '\0'; i++)
		check((unsigned char)cmd.arg[i] >= 0x20 && cmd.arg[i] != 0x7f);
	check(cmd.notify == 0 || cmd.notify == SMTP_NOTIFY_NEVER ||
	    (cmd.notify & ~(unsigned)(SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE |
	    SMTP_NOTIFY_DELAY)) == 0);
	check(cmd.orcpt[0] == '\0' || strncmp(cmd.orcpt, "rfc822;", 7) == 0 ||
	    strncmp(cmd.orcpt, "utf-8;", 6) == 0);
	check(!cmd.last || cmd.verb == SMTP_BDAT);
	check(cmd.chunk == 0 || cmd.verb == SMTP_BDAT);
	check(cmd.verb == SMTP_MAIL || (cmd.size == 0 && cmd.body == SMTP_BODY_NONE &&
	    !cmd.smtputf8 && !cmd.ret_set && cmd.envid[0] == '\0' && cmd.auth[0] == '\0'));
	check(cmd.verb == SMTP_RCPT || (cmd.notify == 0 && cmd.orcpt[0] == '\0'));
	if (cmd.verb == SMTP_HELO || cmd.verb == SMTP_EHLO)
		check(cmd.arg[0] != '\0' && strchr(cmd.arg, ' ') == NULL &&
		    strlen(cmd.arg) <= SMTP_DOMAIN_MAX);

	if (cmd.verb != SMTP_MAIL && cmd.verb != SMTP_RCPT) {
		static const struct smtp_addr	 zero;

		check(memcmp(&cmd.addr, &zero, sizeof(zero)) == 0);
		return;
	}
	if (cmd.addr.null) {
		check(cmd.verb == SMTP_MAIL);
		check(cmd.addr.local[0] == '\0' && cmd.addr.domain[0] == '\0');
		return;
	}
	if (cmd.addr.postmaster) {
		check(cmd.verb == SMTP_RCPT);
		check(cmd.addr.domain[0] == '\0');
		check(strcasecmp(cmd.addr.local, "postmaster") == 0);
		return;
	}
	/* non-ASCII only where it was declared (MAIL) or allowed (RCPT) */
	if (cmd.addr.utf8)
		check(cmd.verb == SMTP_MAIL ? cmd.smtputf8 : o->smtputf8);
	check_addr(&cmd.addr);
}

static void
fuzz_mailbox(const char *s, size_t len)
{
	struct smtp_addr	 a, b;
	char			 why[128];
	static const struct smtp_addr	 zero;

	memset(why, 'x', sizeof(why));
	if (smtp_parse_mailbox(s, len, false, &a, why, sizeof(why)) == 0) {
		check(!a.utf8);
		check_addr(&a);
		/* allowing UTF-8 changes nothing for an ASCII mailbox */
		check(smtp_parse_mailbox(s, len, true, &b, NULL, 0) == 0);
		check(memcmp(&a, &b, sizeof(a)) == 0);
	} else {
		check(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
		check(memcmp(&a, &zero, sizeof(a)) == 0);
	}
	if (smtp_parse_mailbox(s, len, true, &a, NULL, 0) == 0)
		check_addr(&a);
	else
		check(memcmp(&a, &zero, sizeof(a)) == 0);
}

/* The Received: count of a message header must not depend on how the
 * bytes were cut into pieces (DATA lines, BDAT chunks), and no more fields
 * than lines can be counted. */
static void
fuzz_hops(const char *p, size_t n)
{
	struct smtp_hops whole = { 0 }, parts = { 0 };
	size_t cut = n ? (unsigned char)p[0] % n : 0, i, lines = 0;

	smtp_hops_feed(&whole, p, n);
	smtp_hops_feed(&parts, p, cut);
	smtp_hops_feed(&parts, p + cut, 0);
	for (i = cut; i < n; i++)
		smtp_hops_feed(&parts, p + i, 1);
	check(whole.received == parts.received && whole.body == parts.body);
	for (i = 0; i < n; i++)
		if (p[i] == '\n')
			lines++;
	check(whole.received <= lines + 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_offer	 o;
	char			*buf;

	if (size == 0) {
		fuzz_command(NULL, 0, NULL);
		return 0;
	}
	o.size = data[0] & 1;
	o.eightbitmime = data[0] & 2;
	o.smtputf8 = data[0] & 4;
	o.dsn = data[0] & 8;
	o.chunking = data[0] & 16;
	o.binarymime = data[0] & 32;
	o.auth = data[0] & 64;

	/* exactly size - 1 bytes, no NUL after them */
	buf = malloc(size);
	check(buf != NULL);
	memcpy(buf, data + 1, size - 1);
	fuzz_command(buf, size - 1, &o);
	free(buf);

	buf = malloc(size);
	check(buf != NULL);
	memcpy(buf, data, size);
	fuzz_mailbox(buf, size);
	fuzz_hops(buf, size);
	free(buf);
	return 0;
}
