/* test_smtp_parse: unit tests for node/smtp_parse.c, the SMTP command line
 * and mailbox parser in front of every SMTP session: verbs, replies with
 * their exact codes, mailbox forms, ESMTP parameters, and the address
 * tricks used to turn mail servers into open relays. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"

static const struct smtp_offer all = {
	.size = true, .eightbitmime = true, .smtputf8 = true, .dsn = true,
	.chunking = true, .binarymime = true, .auth = true,
};
static const struct smtp_offer none;

static struct smtp_cmd	 cmd;
static char		 reply[256];

/* A refusal is "DDD D.D.D text\r\n": printable ASCII, one CRLF at the end. */
static void
check_reply_form(const char *r)
{
	size_t	 n = strlen(r), i;

	assert_true(n >= 13);
	assert_true(r[0] >= '2' && r[0] <= '5');
	assert_true(r[1] >= '0' && r[1] <= '9' && r[2] >= '0' && r[2] <= '9');
	assert_int_equal(r[3], ' ');
	assert_true(r[4] >= '2' && r[4] <= '5' && r[5] == '.');
	assert_memory_equal(r + n - 2, "\r\n", 2);
	for (i = 0; i < n - 2; i++)
		assert_true(r[i] >= 0x20 && r[i] < 0x7f);
}

static int
parse_n(const char *line, size_t len, const struct smtp_offer *o)
{
	memset(reply, 'x', sizeof(reply));
	return smtp_parse_command(line, len, o, &cmd, reply, sizeof(reply));
}

/* The line must parse. */
static void
ok_with(const char *line, const struct smtp_offer *o)
{
	if (parse_n(line, strlen(line), o) != 0)
		fail_msg("\"%s\" refused: %s", line, reply);
	assert_string_equal(reply, "");
}

static void
ok(const char *line)
{
	ok_with(line, &all);
}

/* The line must be refused with a reply that starts with want. */
static void
refused_n(const char *line, size_t len, const struct smtp_offer *o, const char *want)
{
	if (parse_n(line, len, o) != -1)
		fail_msg("\"%.*s\" accepted, want %s", (int)len, line, want);
	check_reply_form(reply);
	if (strncmp(reply, want, strlen(want)) != 0)
		fail_msg("\"%.*s\": got \"%s\", want \"%s\"", (int)len, line, reply, want);
}

static void
refused_with(const char *line, const struct smtp_offer *o, const char *want)
{
	refused_n(line, strlen(line), o, want);
}

static void
refused(const char *line, const char *want)
{
	refused_with(line, &all, want);
}

/* ---- verbs and lines ---- */

static void
test_verbs(void **state)
{
	(void)state;
	ok("HELO client.example");
	assert_int_equal(cmd.verb, SMTP_HELO);
	assert_string_equal(cmd.arg, "client.example");
	ok("ehlo [192.0.2.1]");
	assert_int_equal(cmd.verb, SMTP_EHLO);
	assert_string_equal(cmd.arg, "[192.0.2.1]");
	ok("Mail From:<a@b.example>");
	assert_int_equal(cmd.verb, SMTP_MAIL);
	ok("rcpt to:<a@b.example>");
	assert_int_equal(cmd.verb, SMTP_RCPT);
	ok("DATA");
	assert_int_equal(cmd.verb, SMTP_DATA);
	ok("BDAT 10");
	assert_int_equal(cmd.verb, SMTP_BDAT);
	ok("rset");
	assert_int_equal(cmd.verb, SMTP_RSET);
	ok("NOOP");
	assert_int_equal(cmd.verb, SMTP_NOOP);
	ok("NOOP any text at all");
	assert_int_equal(cmd.verb, SMTP_NOOP);
	ok("QUIT");
	assert_int_equal(cmd.verb, SMTP_QUIT);
	ok("VRFY user");
	assert_int_equal(cmd.verb, SMTP_VRFY);
	assert_string_equal(cmd.arg, "user");
	ok("EXPN staff list");
	assert_int_equal(cmd.verb, SMTP_EXPN);
	assert_string_equal(cmd.arg, "staff list");
	ok("HELP");
	assert_int_equal(cmd.verb, SMTP_HELP);
	assert_string_equal(cmd.arg, "");
	ok("help mail");
	assert_string_equal(cmd.arg, "mail");
	ok("StartTLS");
	assert_int_equal(cmd.verb, SMTP_STARTTLS);
	ok("AUTH PLAIN");
	assert_int_equal(cmd.verb, SMTP_AUTH);
	assert_string_equal(cmd.arg, "PLAIN");
	/* trailing spaces are ignored */
	ok("QUIT   ");
	ok("MAIL FROM:<a@b.example>  ");
}

static void
test_unknown(void **state)
{
	(void)state;
	refused("FOO", "500 5.5.2 Command not recognized\r\n");
	refused("", "500 5.5.2 Command not recognized\r\n");
	refused("   ", "500 5.5.2 Command not recognized\r\n");
	refused(" MAIL FROM:<a@b.example>", "500 5.5.2 Command not recognized\r\n");
	refused("MAILFROM:<a@b.example>", "500 5.5.2 Command not recognized\r\n");
	refused("HELOO x", "500 5.5.2 Command not recognized\r\n");
	refused("STARTTLSX", "500 5.5.2 Command not recognized\r\n");
	refused("ST", "500 5.5.2 Command not recognized\r\n");
	refused("\xc3\x89HLO x", "500 5.5.2 Command not recognized\r\n");
	assert_int_equal(cmd.verb, SMTP_UNKNOWN);
	/* NULL line is an empty line */
	memset(reply, 0, sizeof(reply));
	assert_int_equal(smtp_parse_command(NULL, 5, &all, &cmd, reply, sizeof(reply)), -1);
	assert_string_equal(reply, "500 5.5.2 Command not recognized\r\n");
}

static void
test_bad_characters(void **state)
{
	static const char	 nul[] = "MAIL FROM:<a@b.example>\0 SIZE=1";

	(void)state;
	refused_n(nul, sizeof(nul) - 1, &all, "500 5.5.2 Bad characters in command\r\n");
	refused("MAIL\tFROM:<a@b.example>", "500 5.5.2 Bad characters in command\r\n");
	refused("MAIL FROM:<a@b.example>\tSIZE=1", "500 5.5.2 Bad characters in command\r\n");
	refused("NOOP \r", "500 5.5.2 Bad characters in command\r\n");
	refused("RCPT TO:<a@b.example>\r\nRCPT TO:<x@evil.example>",
	    "500 5.5.2 Bad characters in command\r\n");
	refused("HELP \x7f", "500 5.5.2 Bad characters in command\r\n");
	refused("NOOP \x1b[2J", "500 5.5.2 Bad characters in command\r\n");
}

static void
test_line_length(void **state)
{
	char	 line[SMTP_LINE_MAX + 8];

	(void)state;
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	assert_int_equal(parse_n(line, SMTP_LINE_MAX - 2, &all), 0);
	refused_n(line, SMTP_LINE_MAX - 1, &all, "500 5.5.6 Line too long\r\n");
	refused_n(line, sizeof(line), &all, "500 5.5.6 Line too long\r\n");
}

static void
test_no_argument_verbs(void **state)
{
	(void)state;
	refused("DATA x", "501 5.5.4 Syntax: DATA\r\n");
	assert_int_equal(cmd.verb, SMTP_DATA);
	refused("RSET now", "501 5.5.4 Syntax: RSET\r\n");
	refused("QUIT please", "501 5.5.4 Syntax: QUIT\r\n");
	refused("STARTTLS x", "501 5.5.4 Syntax: STARTTLS\r\n");
	refused("VRFY", "501 5.5.4 Syntax: VRFY address\r\n");
	refused("EXPN", "501 5.5.4 Syntax: EXPN list\r\n");
	refused("VRFY \xff", "501 5.5.4 Syntax: VRFY address\r\n");
	refused("HELP \xc0\xaf", "501 5.5.4 Syntax: HELP [topic]\r\n");
	ok("VRFY \xc3\xa9l\xc3\xa8ve");
}

static void
test_helo(void **state)
{
	char	 line[300];

	(void)state;
	refused("HELO", "501 5.5.4 Syntax: HELO hostname\r\n");
	refused("EHLO", "501 5.5.4 Syntax: EHLO hostname\r\n");
	refused("EHLO a b", "501 5.5.4 Syntax: EHLO hostname\r\n");
	refused("EHLO  a", "501 5.5.4 Syntax: EHLO hostname\r\n");
	refused("HELO h\xc3\xa9", "501 5.5.4 Syntax: HELO hostname\r\n");
	ok("EHLO [IPv6:2001:db8::1]");
	ok("EHLO my_host");
	memcpy(line, "EHLO ", 5);
	memset(line + 5, 'a', 255);
	line[260] = '\0';
	ok(line);
	assert_int_equal(strlen(cmd.arg), 255);
	line[260] = 'a';
	line[261] = '\0';
	refused(line, "501 5.5.4 Syntax: EHLO hostname\r\n");
}

/* ---- MAIL and RCPT ---- */

static void
test_mail_forms(void **state)
{
	(void)state;
	ok("MAIL FROM:<a@b.example>");
	assert_string_equal(cmd.addr.local, "a");
	assert_string_equal(cmd.addr.domain, "b.example");
	assert_false(cmd.addr.null);
	ok("MAIL FROM: <a@b.example>");
	assert_string_equal(cmd.addr.domain, "b.example");
	ok("MAIL FROM:<>");
	assert_true(cmd.addr.null);
	ok("MAIL FROM: <>");
	assert_true(cmd.addr.null);

	refused("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:  <a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL  FROM:<a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM :<a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:a@b.example", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL TO:<a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:<a@b.example>x", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:<a@b.example>SIZE=1", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:<a@b.example", "501 5.1.7 Bad sender address syntax\r\n");
	refused("MAIL FROM:<a>", "501 5.1.7 Bad sender address syntax\r\n");
	refused("MAIL FROM:<Postmaster>", "501 5.1.7 Bad sender address syntax\r\n");
	assert_int_equal(cmd.verb, SMTP_MAIL);

	refused("RCPT", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	refused("RCPT TO:", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	refused("RCPT FROM:<a@b.example>", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	refused("RCPT TO:a@b.example", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	refused("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax\r\n");
	refused("RCPT TO:<a@>", "501 5.1.3 Bad recipient address syntax\r\n");
	ok("RCPT TO: <a@b.example>");
}

static void
test_postmaster(void **state)
{
	(void)state;
	ok("RCPT TO:<Postmaster>");
	assert_true(cmd.addr.postmaster);
	assert_string_equal(cmd.addr.domain, "");
	ok("RCPT TO:<POSTMASTER>");
	assert_true(cmd.addr.postmaster);
	ok("rcpt to:<postmaster>");
	assert_true(cmd.addr.postmaster);
	/* with a domain it is an ordinary mailbox */
	ok("RCPT TO:<Postmaster@Our.Test>");
	assert_false(cmd.addr.postmaster);
	assert_string_equal(cmd.addr.local, "Postmaster");
	assert_string_equal(cmd.addr.domain, "our.test");
	refused("RCPT TO:<Postmaster >", "501 5.1.3 Bad recipient address syntax\r\n");
	refused("RCPT TO:<@a.example:Postmaster>", "501 5.1.3 Bad recipient address syntax\r\n");
}

static void
test_source_route(void **state)
{
	(void)state;
	ok("MAIL FROM:<@a.example,@b.example:user@c.example>");
	assert_true(cmd.addr.had_route);
	assert_string_equal(cmd.addr.local, "user");
	assert_string_equal(cmd.addr.domain, "c.example");
	ok("RCPT TO:<@a.example:user@c.example>");
	assert_true(cmd.addr.had_route);
	assert_string_equal(cmd.addr.domain, "c.example");
	ok("RCPT TO:<user@c.example>");
	assert_false(cmd.addr.had_route);

	refused("RCPT TO:<@:user@c.example>", "501 5.1.3 ");
	refused("RCPT TO:<@a.example,:user@c.example>", "501 5.1.3 ");
	refused("RCPT TO:<@a.example,b.example:user@c.example>", "501 5.1.3 ");
	refused("RCPT TO:<@a.example>", "501 5.1.3 ");
	refused("RCPT TO:<@a.example:>", "501 5.1.3 ");
	refused("RCPT TO:<@[192.0.2.1]:user@c.example>", "501 5.1.3 ");
	refused("RCPT TO:<@a.example:@b.example:user@c.example>", "501 5.1.3 ");
	refused("RCPT TO:<@a.example.:user@c.example>", "501 5.1.3 ");
	refused("MAIL FROM:<@a.example;@b.example:user@c.example>", "501 5.1.7 ");
}

/* A domain of n octets: labels of 63 joined by dots. */
static void
make_domain(char *out, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		out[i] = (i % 64 == 63) ? '.' : 'd';
	if (n > 0 && out[n - 1] == '.')
		out[n - 1] = 'd';
	out[n] = '\0';
}

static void
test_path_length(void **state)
{
	char	 line[400], dom[256];
	size_t	 n;

	(void)state;
	/* "<" + 64 + "@" + 189 + ">" = 256 octets */
	make_domain(dom, 189);
	n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<%064d@%s>", 0, dom);
	assert_int_equal(n, 8 + 256);
	ok(line);
	assert_string_equal(cmd.addr.domain, dom);
	/* one more octet in the domain */
	make_domain(dom, 190);
	n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<%064d@%s>", 0, dom);
	assert_int_equal(n, 8 + 257);
	refused(line, "501 5.1.3 Bad recipient address syntax\r\n");
	/* a source route counts too */
	make_domain(dom, 179);
	n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<@r.example:%064d@%s>", 0, dom);
	assert_int_equal(n, 8 + 257);
	refused(line, "501 5.1.3 Bad recipient address syntax\r\n");
	n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<@r.exampl:%064d@%s>", 0, dom);
	assert_int_equal(n, 8 + 256);
	ok(line);
	assert_true(cmd.addr.had_route);
}

/* ---- mailboxes ---- */

static void
mbox_ok(const char *s, bool utf8_ok, const char *local, const char *domain)
{
	struct smtp_addr	 a;
	char			 why[64] = "";

	if (smtp_parse_mailbox(s, strlen(s), utf8_ok, &a, why, sizeof(why)) != 0)
		fail_msg("mailbox \"%s\" refused: %s", s, why);
	assert_string_equal(a.local, local);
	assert_string_equal(a.domain, domain);
}

static void
mbox_bad(const char *s, bool utf8_ok)
{
	struct smtp_addr	 a;
	char			 why[64] = "";

	if (smtp_parse_mailbox(s, strlen(s), utf8_ok, &a, why, sizeof(why)) == 0)
		fail_msg("mailbox \"%s\" accepted as %s @ %s", s, a.local, a.domain);
	assert_true(why[0] != '\0');
	assert_string_equal(a.local, "");
	assert_string_equal(a.domain, "");
}

static void
test_mailbox_dotstring(void **state)
{
	char	 s[100];

	(void)state;
	mbox_ok("user@example.com", false, "user", "example.com");
	mbox_ok("First.Last@Example.COM", false, "First.Last", "example.com");
	mbox_ok("a!#$%&'*+-/=?^_`{|}~z@x.example", false, "a!#$%&'*+-/=?^_`{|}~z", "x.example");
	mbox_ok("user%other.example@our.example", false, "user%other.example", "our.example");
	mbox_bad(".a@x.example", false);
	mbox_bad("a.@x.example", false);
	mbox_bad("a..b@x.example", false);
	mbox_bad("a b@x.example", false);
	mbox_bad("a\"b@x.example", false);
	mbox_bad("a(b)@x.example", false);
	mbox_bad("a,b@x.example", false);
	mbox_bad("a\\b@x.example", false);
	mbox_bad("a[b]@x.example", false);
	mbox_bad("@x.example", false);
	mbox_bad("", false);
	mbox_bad("user", false);
	mbox_bad("user@", false);
	/* 64 octets, then 65 */
	memset(s, 'l', 64);
	memcpy(s + 64, "@x.example", 11);
	mbox_ok(s, false, "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll", "x.example");
	memset(s, 'l', 65);
	memcpy(s + 65, "@x.example", 11);
	mbox_bad(s, false);
}

static void
test_mailbox_quoted(void **state)
{
	struct smtp_addr	 a;
	char			 s[100];

	(void)state;
	mbox_ok("\"a@b\"@c.example", false, "a@b", "c.example");
	assert_int_equal(smtp_parse_mailbox("\"a@b\"@c.example", 15, false, &a, NULL, 0), 0);
	assert_true(a.local_quoted);
	mbox_ok("\"a\\\"b\"@c.example", false, "a\"b", "c.example");
	mbox_ok("\"a\\\\b\"@c.example", false, "a\\b", "c.example");
	mbox_ok("\"a b\"@c.example", false, "a b", "c.example");
	mbox_ok("\"\\x\"@c.example", false, "x", "c.example");
	mbox_ok("\"a>b\"@c.example", false, "a>b", "c.example");
	mbox_bad("\"\"@c.example", false);
	mbox_bad("\"abc@c.example", false);
	mbox_bad("\"a\"b@c.example", false);
	mbox_bad("\"a\"\"b\"@c.example", false);
	mbox_bad("\"a\\", false);
	mbox_bad("\"a\\\x01\"@c.example", false);
	mbox_bad("\"a\x01\"@c.example", false);
	mbox_bad("\"\xc3\xa9\"@c.example", false);
	mbox_ok("\"\xc3\xa9 x\"@c.example", true, "\xc3\xa9 x", "c.example");
	mbox_bad("\"\\\xc3\xa9\"@c.example", true);	/* quoted-pair is ASCII */
	/* 64 octets quotes included, then 65 */
	s[0] = '"';
	memset(s + 1, 'q', 62);
	memcpy(s + 63, "\"@c.example", 12);
	mbox_ok(s, false, "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "c.example");
	memset(s + 1, 'q', 63);
	memcpy(s + 64, "\"@c.example", 12);
	mbox_bad(s, false);
	/* escapes count as sent */
	s[0] = '"';
	for (size_t i = 0; i < 31; i++)
		memcpy(s + 1 + 2 * i, "\\\"", 2);
	memcpy(s + 63, "\"@c.example", 12);
	assert_int_equal(smtp_parse_mailbox(s, strlen(s), false, &a, NULL, 0), 0);
	assert_int_equal(strlen(a.local), 31);
	memcpy(s + 63, "x\"@c.example", 13);
	mbox_bad(s, false);
}

static void
test_mailbox_domain(void **state)
{
	char	 s[300];

	(void)state;
	mbox_ok("a@X.Example", false, "a", "x.example");
	mbox_ok("a@xn--bcher-kva.example", false, "a", "xn--bcher-kva.example");
	mbox_ok("a@a-b.c-d.example", false, "a", "a-b.c-d.example");
	mbox_ok("a@localhost", false, "a", "localhost");
	mbox_ok("a@1.2.3.4", false, "a", "1.2.3.4");	/* a hostname, not a literal */
	mbox_bad("a@-x.example", false);
	mbox_bad("a@x-.example", false);
	mbox_bad("a@x.example-", false);
	mbox_bad("a@x.example.", false);
	mbox_bad("a@.x.example", false);
	mbox_bad("a@x..example", false);
	mbox_bad("a@under_score.example", false);
	mbox_bad("a@x.example:25", false);
	mbox_bad("a@x example", false);
	mbox_bad("a@b@c.example", false);
	/* labels: 63 octets, then 64 */
	memcpy(s, "a@", 2);
	memset(s + 2, 'd', 63);
	memcpy(s + 65, ".example", 9);
	mbox_ok(s, false, "a",
	    "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.example");
	memset(s + 2, 'd', 64);
	memcpy(s + 66, ".example", 9);
	mbox_bad(s, false);
	/* the whole mailbox fits a 256-octet path: "a@" + 252 */
	memcpy(s, "a@", 2);
	for (size_t i = 0; i < 4; i++) {
		memset(s + 2 + 63 * i, 'e', 62);
		s[2 + 63 * i + 62] = '.';
	}
	s[2 + 252] = '\0';
	assert_int_equal(s[2 + 251], '.');
	s[2 + 251] = 'e';
	assert_int_equal(strlen(s), 254);
	mbox_ok(s, false, "a", s + 2);
	s[254] = 'e';
	s[255] = '\0';
	mbox_bad(s, false);
}

static void
test_mailbox_literal(void **state)
{
	struct smtp_addr	 a;

	(void)state;
	mbox_ok("a@[192.0.2.1]", false, "a", "[192.0.2.1]");
	assert_int_equal(smtp_parse_mailbox("a@[192.0.2.1]", 13, false, &a, NULL, 0), 0);
	assert_true(a.literal);
	mbox_ok("a@[IPv6:2001:db8::1]", false, "a", "[IPv6:2001:db8::1]");
	mbox_ok("a@[ipv6:2001:DB8::1]", false, "a", "[IPv6:2001:db8::1]");
	mbox_ok("a@[IPv6:::1]", false, "a", "[IPv6:::1]");
	mbox_ok("a@[IPv6:::ffff:192.0.2.1]", false, "a", "[IPv6:::ffff:192.0.2.1]");
	mbox_bad("a@[192.0.2]", false);
	mbox_bad("a@[192.0.2.256]", false);
	mbox_bad("a@[192.0.2.01]", false);
	mbox_bad("a@[192.0.2.1", false);
	mbox_bad("a@[192.0.2.1]]", false);
	mbox_bad("a@[192.0.2.1]x", false);
	mbox_bad("a@[]", false);
	mbox_bad("a@[IPv6:]", false);
	mbox_bad("a@[IPv6:2001:db8::g]", false);
	mbox_bad("a@[IPv6:fe80::1%eth0]", false);
	mbox_bad("a@[IPv6:192.0.2.1]", false);
	mbox_bad("a@[2001:db8::1]", false);
	mbox_bad("a@[x-tag:foo]", false);
	mbox_bad("a@[our.test]", false);
	mbox_bad("a@[ 192.0.2.1]", false);
	mbox_bad("a@[IPv6:1:2:3:4:5:6:7:8:9]", false);
	/* NUL inside: inet_pton must not see a valid prefix */
	assert_int_equal(smtp_parse_mailbox("a@[192.0.2.1\0x]", 15, false, &a, NULL, 0), -1);
}

static void
test_mailbox_utf8(void **state)
{
	struct smtp_addr	 a;
	char			 s[200];

	(void)state;
	mbox_ok("\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example", true,
	    "\xce\xb4\xce\xbf\xce\xba", "\xcf\x80\xce\xb1.example");
	assert_int_equal(smtp_parse_mailbox("\xe7\x94\xa8@X.example", 13, true, &a, NULL, 0), 0);
	assert_true(a.utf8);
	assert_string_equal(a.domain, "x.example");
	assert_int_equal(smtp_parse_mailbox("user@x.example", 14, true, &a, NULL, 0), 0);
	assert_false(a.utf8);
	mbox_bad("\xce\xb4@x.example", false);
	mbox_bad("a@\xcf\x80.example", false);
	mbox_ok("\xf0\x9f\x93\xa7@x.example", true, "\xf0\x9f\x93\xa7", "x.example");
	/* malformed */
	mbox_bad("\xc3@x.example", true);		/* truncated */
	mbox_bad("a\xc3", true);
	mbox_bad("\xc0\xaf@x.example", true);		/* overlong 2 */
	mbox_bad("\xe0\x80\xaf@x.example", true);	/* overlong 3 */
	mbox_bad("\xf0\x80\x80\xaf@x.example", true);	/* overlong 4 */
	mbox_bad("\xed\xa0\x80@x.example", true);	/* surrogate */
	mbox_bad("\xf4\x90\x80\x80@x.example", true);	/* above U+10FFFF */
	mbox_bad("\xf5\x80\x80\x80@x.example", true);
	mbox_bad("\xc2\x80@x.example", true);		/* C1 control */
	mbox_bad("\x80@x.example", true);		/* lone continuation */
	mbox_bad("\xff@x.example", true);
	mbox_bad("a@\xe2\x82.example", true);
	/* 64 octets of UTF-8, then 66 */
	for (size_t i = 0; i < 32; i++)
		memcpy(s + 2 * i, "\xc3\xa9", 2);
	memcpy(s + 64, "@x.example", 11);
	assert_int_equal(smtp_parse_mailbox(s, strlen(s), true, &a, NULL, 0), 0);
	memcpy(s + 64, "\xc3\xa9@x.example", 13);
	mbox_bad(s, true);
}

static void
test_mailbox_args(void **state)
{
	struct smtp_addr	 a;
	char			 why[8];

	(void)state;
	/* NULL why and a short why are fine */
	assert_int_equal(smtp_parse_mailbox("a", 1, false, &a, NULL, 0), -1);
	assert_int_equal(smtp_parse_mailbox("a", 1, false, &a, why, sizeof(why)), -1);
	assert_int_equal(strlen(why), sizeof(why) - 1);
	assert_int_equal(smtp_parse_mailbox(NULL, 4, false, &a, why, sizeof(why)), -1);
	/* the length is what counts, not a NUL */
	assert_int_equal(smtp_parse_mailbox("a@b.example.evil", 11, false, &a, NULL, 0), 0);
	assert_string_equal(a.domain, "b.example");
	assert_int_equal(smtp_parse_mailbox("a@b\0c", 5, false, &a, NULL, 0), -1);
}

static void
test_utf8_commands(void **state)
{
	struct smtp_offer	 o = all;

	(void)state;
	ok("MAIL FROM:<\xce\xb4@x.example> SMTPUTF8");
	assert_true(cmd.smtputf8);
	assert_true(cmd.addr.utf8);
	refused("MAIL FROM:<\xce\xb4@x.example>", "553 5.6.7 ");
	refused("MAIL FROM:<a@\xcf\x80.example>", "553 5.6.7 ");
	refused("MAIL FROM:<\xc3@x.example> SMTPUTF8", "501 5.1.7 ");
	refused("MAIL FROM:<@\xcf\x80.example:a@x.example>", "553 5.6.7 ");
	ok("RCPT TO:<\xce\xb4@x.example>");
	assert_true(cmd.addr.utf8);
	o.smtputf8 = false;
	refused_with("RCPT TO:<\xce\xb4@x.example>", &o, "553 5.6.7 ");
	refused_with("MAIL FROM:<\xce\xb4@x.example> SMTPUTF8", &o,
	    "555 5.5.4 Unsupported parameter SMTPUTF8\r\n");
	refused("RCPT TO:<\xed\xa0\x80@x.example>", "501 5.1.3 ");
	ok("MAIL FROM:<> SMTPUTF8");
}

/* ---- parameters ---- */

static void
test_param_size(void **state)
{
	struct smtp_offer	 o = all;

	(void)state;
	ok("MAIL FROM:<a@b.example> SIZE=12345");
	assert_int_equal(cmd.size, 12345);
	ok("MAIL FROM:<a@b.example> size=0");
	assert_int_equal(cmd.size, 0);
	ok("MAIL FROM:<a@b.example> SIZE=18446744073709551615");
	assert_true(cmd.size == UINT64_MAX);
	ok("MAIL FROM:<a@b.example> SIZE=00000000000000000001");
	assert_int_equal(cmd.size, 1);
	refused("MAIL FROM:<a@b.example> SIZE=18446744073709551616",
	    "501 5.5.4 Bad value for SIZE\r\n");
	refused("MAIL FROM:<a@b.example> SIZE=000000000000000000001",
	    "501 5.5.4 Bad value for SIZE\r\n");
	refused("MAIL FROM:<a@b.example> SIZE=-1", "501 5.5.4 Bad value for SIZE\r\n");
	refused("MAIL FROM:<a@b.example> SIZE=+1", "501 5.5.4 Bad value for SIZE\r\n");
	refused("MAIL FROM:<a@b.example> SIZE=1a", "501 5.5.4 Bad value for SIZE\r\n");
	refused("MAIL FROM:<a@b.example> SIZE=", "501 5.5.4 Bad value for SIZE\r\n");
	refused("MAIL FROM:<a@b.example> SIZE", "501 5.5.4 Bad value for SIZE\r\n");
	refused("MAIL FROM:<a@b.example> SIZE=1 SIZE=2",
	    "555 5.5.4 Unsupported parameter SIZE\r\n");
	/* a refusal leaves nothing half-parsed behind */
	assert_int_equal(cmd.verb, SMTP_MAIL);
	assert_int_equal(cmd.size, 0);
	assert_string_equal(cmd.addr.local, "");
	assert_string_equal(cmd.addr.domain, "");
	refused("MAIL FROM:<a@b.example> SIZE=1 size=2",
	    "555 5.5.4 Unsupported parameter size\r\n");
	refused("RCPT TO:<a@b.example> SIZE=1", "555 5.5.4 Unsupported parameter SIZE\r\n");
	o.size = false;
	refused_with("MAIL FROM:<a@b.example> SIZE=1", &o,
	    "555 5.5.4 Unsupported parameter SIZE\r\n");
}

static void
test_param_body(void **state)
{
	struct smtp_offer	 o = all;

	(void)state;
	ok("MAIL FROM:<a@b.example> BODY=7BIT");
	assert_int_equal(cmd.body, SMTP_BODY_7BIT);
	ok("MAIL FROM:<a@b.example> body=8bitmime");
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	ok("MAIL FROM:<a@b.example> BODY=BINARYMIME");
	assert_int_equal(cmd.body, SMTP_BODY_BINARYMIME);
	ok("MAIL FROM:<a@b.example>");
	assert_int_equal(cmd.body, SMTP_BODY_NONE);
	refused("MAIL FROM:<a@b.example> BODY=FOO", "501 5.5.4 Bad value for BODY\r\n");
	refused("MAIL FROM:<a@b.example> BODY=", "501 5.5.4 Bad value for BODY\r\n");
	refused("MAIL FROM:<a@b.example> BODY", "501 5.5.4 Bad value for BODY\r\n");
	refused("MAIL FROM:<a@b.example> BODY=8BIT", "501 5.5.4 Bad value for BODY\r\n");
	o.binarymime = false;
	refused_with("MAIL FROM:<a@b.example> BODY=BINARYMIME", &o, "504 5.5.4 ");
	ok_with("MAIL FROM:<a@b.example> BODY=8BITMIME", &o);
	o.binarymime = true;
	o.eightbitmime = false;
	refused_with("MAIL FROM:<a@b.example> BODY=8BITMIME", &o, "504 5.5.4 ");
	o.binarymime = false;
	refused_with("MAIL FROM:<a@b.example> BODY=7BIT", &o,
	    "555 5.5.4 Unsupported parameter BODY\r\n");
	refused("RCPT TO:<a@b.example> BODY=7BIT", "555 5.5.4 Unsupported parameter BODY\r\n");
}

static void
test_param_smtputf8(void **state)
{
	(void)state;
	ok("MAIL FROM:<a@b.example> SMTPUTF8");
	assert_true(cmd.smtputf8);
	ok("MAIL FROM:<a@b.example> smtputf8");
	refused("MAIL FROM:<a@b.example> SMTPUTF8=yes", "501 5.5.4 Bad value for SMTPUTF8\r\n");
	refused("MAIL FROM:<a@b.example> SMTPUTF8=", "501 5.5.4 Bad value for SMTPUTF8\r\n");
	refused("MAIL FROM:<a@b.example> SMTPUTF8 SMTPUTF8",
	    "555 5.5.4 Unsupported parameter SMTPUTF8\r\n");
	refused_with("MAIL FROM:<a@b.example> SMTPUTF8", &none,
	    "555 5.5.4 Unsupported parameter SMTPUTF8\r\n");
}

static void
test_param_dsn_mail(void **state)
{
	struct smtp_offer	 o = all;
	char			 line[400];

	(void)state;
	ok("MAIL FROM:<a@b.example> RET=FULL ENVID=QQ314159");
	assert_true(cmd.ret_set);
	assert_false(cmd.ret_hdrs);
	assert_string_equal(cmd.envid, "QQ314159");
	ok("MAIL FROM:<a@b.example> ret=hdrs");
	assert_true(cmd.ret_set && cmd.ret_hdrs);
	ok("MAIL FROM:<a@b.example>");
	assert_false(cmd.ret_set);
	refused("MAIL FROM:<a@b.example> RET=X", "501 5.5.4 Bad value for RET\r\n");
	refused("MAIL FROM:<a@b.example> RET", "501 5.5.4 Bad value for RET\r\n");
	refused("MAIL FROM:<a@b.example> RET=FULL RET=HDRS",
	    "555 5.5.4 Unsupported parameter RET\r\n");

	ok("MAIL FROM:<a@b.example> ENVID=a+2Bb+3dc+20d");
	assert_string_equal(cmd.envid, "a+b=c d");
	refused("MAIL FROM:<a@b.example> ENVID=a+2", "501 5.5.4 Bad value for ENVID\r\n");
	refused("MAIL FROM:<a@b.example> ENVID=a+ZZ", "501 5.5.4 Bad value for ENVID\r\n");
	refused("MAIL FROM:<a@b.example> ENVID=a=b", "501 5.5.4 Bad value for ENVID\r\n");
	refused("MAIL FROM:<a@b.example> ENVID=+00", "501 5.5.4 Bad value for ENVID\r\n");
	refused("MAIL FROM:<a@b.example> ENVID=+0D+0A", "501 5.5.4 Bad value for ENVID\r\n");
	refused("MAIL FROM:<a@b.example> ENVID=+C3+A9", "501 5.5.4 Bad value for ENVID\r\n");
	refused("MAIL FROM:<a@b.example> ENVID=\xc3\xa9", "501 5.5.4 Bad value for ENVID\r\n");
	refused("MAIL FROM:<a@b.example> ENVID=", "501 5.5.4 Bad value for ENVID\r\n");
	/* 100 decoded octets, then 101 */
	memcpy(line, "MAIL FROM:<a@b.example> ENVID=", 30);
	for (size_t i = 0; i < 100; i++)
		memcpy(line + 30 + 3 * i, "+41", 3);
	line[330] = '\0';
	ok(line);
	assert_int_equal(strlen(cmd.envid), 100);
	memcpy(line + 330, "x", 2);
	refused(line, "501 5.5.4 Bad value for ENVID\r\n");

	o.dsn = false;
	refused_with("MAIL FROM:<a@b.example> RET=FULL", &o,
	    "555 5.5.4 Unsupported parameter RET\r\n");
	refused_with("MAIL FROM:<a@b.example> ENVID=x", &o,
	    "555 5.5.4 Unsupported parameter ENVID\r\n");
	refused("MAIL FROM:<a@b.example> NOTIFY=NEVER",
	    "555 5.5.4 Unsupported parameter NOTIFY\r\n");
	refused("MAIL FROM:<a@b.example> ORCPT=rfc822;a@b.example",
	    "555 5.5.4 Unsupported parameter ORCPT\r\n");
	refused("RCPT TO:<a@b.example> RET=FULL", "555 5.5.4 Unsupported parameter RET\r\n");
	refused("RCPT TO:<a@b.example> ENVID=x", "555 5.5.4 Unsupported parameter ENVID\r\n");
}

static void
test_param_auth(void **state)
{
	struct smtp_offer	 o = all;

	(void)state;
	ok("MAIL FROM:<a@b.example> AUTH=<>");
	assert_string_equal(cmd.auth, "<>");
	ok("MAIL FROM:<a@b.example> AUTH=e+3Dmc2@example.com");
	assert_string_equal(cmd.auth, "e=mc2@example.com");
	refused("MAIL FROM:<a@b.example> AUTH=", "501 5.5.4 Bad value for AUTH\r\n");
	refused("MAIL FROM:<a@b.example> AUTH", "501 5.5.4 Bad value for AUTH\r\n");
	refused("MAIL FROM:<a@b.example> AUTH=+00", "501 5.5.4 Bad value for AUTH\r\n");
	refused("MAIL FROM:<a@b.example> AUTH=a=b", "501 5.5.4 Bad value for AUTH\r\n");
	refused("RCPT TO:<a@b.example> AUTH=<>", "555 5.5.4 Unsupported parameter AUTH\r\n");
	o.auth = false;
	refused_with("MAIL FROM:<a@b.example> AUTH=<>", &o,
	    "555 5.5.4 Unsupported parameter AUTH\r\n");
}

static void
test_param_notify(void **state)
{
	struct smtp_offer	 o = all;

	(void)state;
	ok("RCPT TO:<a@b.example> NOTIFY=NEVER");
	assert_int_equal(cmd.notify, SMTP_NOTIFY_NEVER);
	ok("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY");
	assert_int_equal(cmd.notify,
	    SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	ok("RCPT TO:<a@b.example> notify=delay,failure");
	assert_int_equal(cmd.notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	ok("RCPT TO:<a@b.example>");
	assert_int_equal(cmd.notify, 0);
	refused("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=SUCCESS,NEVER", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=SUCCESS,", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=,SUCCESS", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=FOO", "501 5.5.4 Bad value for NOTIFY\r\n");
	refused("RCPT TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER",
	    "555 5.5.4 Unsupported parameter NOTIFY\r\n");
	o.dsn = false;
	refused_with("RCPT TO:<a@b.example> NOTIFY=NEVER", &o,
	    "555 5.5.4 Unsupported parameter NOTIFY\r\n");
}

static void
test_param_orcpt(void **state)
{
	struct smtp_offer	 o = all;
	char			 line[700];

	(void)state;
	ok("RCPT TO:<a@b.example> ORCPT=rfc822;user@example.com");
	assert_string_equal(cmd.orcpt, "rfc822;user@example.com");
	ok("RCPT TO:<a@b.example> orcpt=RFC822;a+2Bb@x.example");
	assert_string_equal(cmd.orcpt, "rfc822;a+b@x.example");
	ok("RCPT TO:<a@b.example> ORCPT=UTF-8;\\x{E9}l\\x{e8}ve@x.example");
	assert_string_equal(cmd.orcpt, "utf-8;\xc3\xa9l\xc3\xa8ve@x.example");
	ok("RCPT TO:<a@b.example> ORCPT=utf-8;\xc3\xa9@x.example");
	assert_string_equal(cmd.orcpt, "utf-8;\xc3\xa9@x.example");
	ok("RCPT TO:<a@b.example> ORCPT=utf-8;\\x{1F4E7}@x.example");
	assert_string_equal(cmd.orcpt, "utf-8;\xf0\x9f\x93\xa7@x.example");
	refused("RCPT TO:<a@b.example> ORCPT=rfc822;\xc3\xa9@x.example",
	    "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=x400;foo", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=rfc822", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=rfc822;", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=;a@b.example", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=rfc822;a+0Ab", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;\\x{D800}", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;\\x{110000}", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;\\x{}", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;\\x{41", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;\\x{1}", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;a\\b", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;+C3+A9", "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=utf-8;\xc3", "501 5.5.4 Bad value for ORCPT\r\n");
	/* 256 decoded octets fit, 257 do not */
	memcpy(line, "RCPT TO:<a@b.example> ORCPT=rfc822;", 35);
	memset(line + 35, 'o', 256);
	line[35 + 256] = '\0';
	ok(line);
	assert_int_equal(strlen(cmd.orcpt), 7 + 256);
	memcpy(line + 35 + 256, "o", 2);
	refused(line, "501 5.5.4 Bad value for ORCPT\r\n");
	refused("RCPT TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b",
	    "555 5.5.4 Unsupported parameter ORCPT\r\n");
	o.smtputf8 = false;
	refused_with("RCPT TO:<a@b.example> ORCPT=utf-8;\xc3\xa9@x.example", &o,
	    "501 5.5.4 Bad value for ORCPT\r\n");
	ok_with("RCPT TO:<a@b.example> ORCPT=utf-8;\\x{E9}@x.example", &o);
	o.dsn = false;
	refused_with("RCPT TO:<a@b.example> ORCPT=rfc822;a@b.example", &o,
	    "555 5.5.4 Unsupported parameter ORCPT\r\n");
}

static void
test_param_orcpt_raw_limit(void **state)
{
	char	 line[700];

	(void)state;
	/* "rfc822;" + 493 = 500 raw octets: fine; 501: refused */
	memcpy(line, "RCPT TO:<a@b.example> ORCPT=rfc822;", 35);
	for (size_t i = 0; i < 164; i++)
		memcpy(line + 35 + 3 * i, "+41", 3);
	memcpy(line + 35 + 492, "a", 2);
	assert_int_equal(strlen(line + 28), 500);
	ok(line);
	memcpy(line + 35 + 493, "a", 2);
	refused(line, "501 5.5.4 Bad value for ORCPT\r\n");
}

static void
test_param_syntax(void **state)
{
	char	 line[300];

	(void)state;
	ok("MAIL FROM:<a@b.example>  SIZE=10   BODY=8BITMIME SMTPUTF8");
	assert_int_equal(cmd.size, 10);
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	assert_true(cmd.smtputf8);
	refused("MAIL FROM:<a@b.example> FOO=bar", "555 5.5.4 Unsupported parameter FOO\r\n");
	refused("MAIL FROM:<a@b.example> X-Y", "555 5.5.4 Unsupported parameter X-Y\r\n");
	refused("RCPT TO:<a@b.example> FOO", "555 5.5.4 Unsupported parameter FOO\r\n");
	refused("MAIL FROM:<a@b.example> (comment)", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:<a@b.example> -X=1", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:<a@b.example> =1", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("MAIL FROM:<a@b.example> S\xc3\xa9=1", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	refused("RCPT TO:<a@b.example> <x@evil.example>", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	/* a long unknown name is echoed cut to 64 octets */
	memcpy(line, "MAIL FROM:<a@b.example> ", 24);
	memset(line + 24, 'K', 200);
	line[224] = '\0';
	refused(line, "555 5.5.4 Unsupported parameter KKKK");
	assert_int_equal(strlen(reply), strlen("555 5.5.4 Unsupported parameter ") + 64 + 2);
	/* parameters of extensions not offered at all */
	refused_with("MAIL FROM:<a@b.example> SIZE=1", &none, "555 5.5.4 Unsupported parameter SIZE");
	refused_with("MAIL FROM:<a@b.example> BODY=8BITMIME", &none, "555 5.5.4 Unsupported parameter BODY");
	refused_with("MAIL FROM:<a@b.example> RET=FULL", &none, "555 5.5.4 Unsupported parameter RET");
	refused_with("MAIL FROM:<a@b.example> ENVID=x", &none, "555 5.5.4 Unsupported parameter ENVID");
	refused_with("MAIL FROM:<a@b.example> AUTH=<>", &none, "555 5.5.4 Unsupported parameter AUTH");
	refused_with("RCPT TO:<a@b.example> NOTIFY=NEVER", &none, "555 5.5.4 Unsupported parameter NOTIFY");
	refused_with("RCPT TO:<a@b.example> ORCPT=rfc822;x", &none, "555 5.5.4 Unsupported parameter ORCPT");
	ok_with("MAIL FROM:<a@b.example>", &none);
	ok_with("MAIL FROM:<a@b.example>", NULL);
}

/* ---- BDAT and AUTH ---- */

static void
test_bdat(void **state)
{
	struct smtp_offer	 o = all;

	(void)state;
	ok("BDAT 100");
	assert_true(cmd.chunk == 100 && !cmd.last);
	ok("BDAT 0 LAST");
	assert_true(cmd.chunk == 0 && cmd.last);
	ok("bdat 5 last");
	assert_true(cmd.chunk == 5 && cmd.last);
	ok("BDAT 18446744073709551615");
	assert_true(cmd.chunk == UINT64_MAX);
	refused("BDAT", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT x", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT -1", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT +1", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT 0x10", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT 1 FIRST", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT 1 LAST x", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT 18446744073709551616", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	refused("BDAT  1", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
	o.chunking = false;
	refused_with("BDAT 1 LAST", &o, "502 5.5.1 Command not available on this service\r\n");
	assert_int_equal(cmd.verb, SMTP_BDAT);
}

static void
test_auth(void **state)
{
	struct smtp_offer	 o = all;
	char			 line[64];

	(void)state;
	ok("auth plain dGVzdAB0ZXN0AHRlc3Q=");
	assert_string_equal(cmd.arg, "PLAIN dGVzdAB0ZXN0AHRlc3Q=");
	ok("AUTH PLAIN =");
	assert_string_equal(cmd.arg, "PLAIN =");
	ok("AUTH SCRAM-SHA-256");
	assert_string_equal(cmd.arg, "SCRAM-SHA-256");
	ok("AUTH X_Y ab==");
	refused("AUTH", "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
	refused("AUTH PL@IN", "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
	snprintf(line, sizeof(line), "AUTH %s", "ABCDEFGHIJKLMNOPQRSTU");
	refused(line, "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
	refused("AUTH PLAIN abc", "501 5.5.2 ");
	refused("AUTH PLAIN ab=c", "501 5.5.2 ");
	refused("AUTH PLAIN a===", "501 5.5.2 ");
	refused("AUTH PLAIN  abcd", "501 5.5.2 ");
	refused("AUTH PLAIN ab-d", "501 5.5.2 ");
	assert_string_equal(cmd.arg, "");
	o.auth = false;
	refused_with("AUTH PLAIN", &o, "502 5.5.1 Command not available on this service\r\n");
}

/* ---- replies ---- */

static void
test_reply_buffer(void **state)
{
	char	 small[12];

	(void)state;
	/* a short buffer still gets a CRLF-terminated reply */
	assert_int_equal(smtp_parse_command("FOO", 3, &all, &cmd, small, sizeof(small)), -1);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, "500 5.5.", 8);
	assert_memory_equal(small + sizeof(small) - 3, "\r\n", 2);
	assert_int_equal(smtp_parse_command("FOO", 3, &all, &cmd, NULL, 0), -1);
	assert_int_equal(smtp_parse_command("QUIT", 4, &all, &cmd, small, 2), 0);
	assert_int_equal(small[0], '\0');
}

/* ---- smtp_addr_format ---- */

static void
fmt(const char *mailbox, bool utf8_ok, const char *want)
{
	struct smtp_addr	 a, b;
	char			 out[300];

	if (smtp_parse_mailbox(mailbox, strlen(mailbox), utf8_ok, &a, NULL, 0) != 0)
		fail_msg("mailbox \"%s\" refused", mailbox);
	assert_int_equal(smtp_addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	/* and it parses back to the same mailbox */
	assert_int_equal(smtp_parse_mailbox(out, strlen(out), utf8_ok, &b, NULL, 0), 0);
	assert_string_equal(a.local, b.local);
	assert_string_equal(a.domain, b.domain);
}

static void
test_format(void **state)
{
	struct smtp_addr	 a;
	char			 out[300], tiny[8];

	(void)state;
	fmt("User@Example.COM", false, "User@example.com");
	fmt("\"abc\"@x.example", false, "abc@x.example");
	fmt("\"a b\"@x.example", false, "\"a b\"@x.example");
	fmt("\"a@b\"@x.example", false, "\"a@b\"@x.example");
	fmt("\"a\\\"b\"@x.example", false, "\"a\\\"b\"@x.example");
	fmt("\"a\\\\b\"@x.example", false, "\"a\\\\b\"@x.example");
	fmt("\"\\a\\b\"@x.example", false, "ab@x.example");
	fmt("\".a\"@x.example", false, "\".a\"@x.example");
	fmt("\"a..b\"@x.example", false, "\"a..b\"@x.example");
	fmt("a@[IPv6:2001:DB8::1]", false, "a@[IPv6:2001:db8::1]");
	fmt("\xc3\xa9@x.example", true, "\xc3\xa9@x.example");
	fmt("\"\xc3\xa9 x\"@x.example", true, "\"\xc3\xa9 x\"@x.example");

	ok("MAIL FROM:<>");
	assert_int_equal(smtp_addr_format(&cmd.addr, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	ok("RCPT TO:<postmaster>");
	assert_int_equal(smtp_addr_format(&cmd.addr, out, sizeof(out)), 0);
	assert_string_equal(out, "Postmaster");
	assert_int_equal(smtp_addr_format(&cmd.addr, tiny, 5), -1);

	assert_int_equal(smtp_parse_mailbox("user@x.example", 14, false, &a, NULL, 0), 0);
	errno = 0;
	assert_int_equal(smtp_addr_format(&a, tiny, sizeof(tiny)), -1);
	assert_int_equal(errno, ERANGE);
	assert_string_equal(tiny, "");
	assert_int_equal(smtp_addr_format(&a, out, 15), 0);
	assert_int_equal(smtp_addr_format(&a, out, 14), -1);
	assert_int_equal(smtp_parse_mailbox("\"a b\"@x", 7, false, &a, NULL, 0), 0);
	assert_int_equal(smtp_addr_format(&a, out, 8), 0);
	assert_string_equal(out, "\"a b\"@x");
	assert_int_equal(smtp_addr_format(&a, out, 7), -1);
	assert_int_equal(smtp_addr_format(&a, out, 0), -1);
	/* a struct no parser could have produced */
	memset(&a, 0, sizeof(a));
	assert_int_equal(smtp_addr_format(&a, out, sizeof(out)), -1);
	memcpy(a.local, "a\nb", 4);
	memcpy(a.domain, "x", 2);
	assert_int_equal(smtp_addr_format(&a, out, sizeof(out)), -1);
}

/* ---- open relay tricks ---- */

/* What the parser makes of each address a relay abuser tries: refused
 * (code is the start of the reply), or exactly which local part and
 * domain the session will judge "hosted here?" on. our.test is hosted. */
static const struct relay_case {
	const char	*line;
	const char	*code;		/* NULL: accepted */
	const char	*local;
	const char	*domain;
} relay_cases[] = {
	/* percent hack: % is atext; the domain is our.test, and the local
	 * part is only looked up as a mailbox, never routed */
	{ "RCPT TO:<user%evil.example@our.test>", NULL, "user%evil.example", "our.test" },
	{ "RCPT TO:<evil.example!user%our.test@our.test>", NULL,
	    "evil.example!user%our.test", "our.test" },
	{ "RCPT TO:<user@evil.example@our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<\"user@evil.example\"@our.test>", NULL, "user@evil.example", "our.test" },
	{ "RCPT TO:<\"user\"@evil.example@our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<\"user@evil.example\\\"@our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:@our.test:user@evil.example", "501 5.5.4 ", NULL, NULL },
	/* a source route is dropped: what counts is the final domain */
	{ "RCPT TO:<@our.test:user@evil.example>", NULL, "user", "evil.example" },
	{ "RCPT TO:<@evil.example:user@our.test>", NULL, "user", "our.test" },
	{ "RCPT TO:<@our.test,@evil.example:user@our.test>", NULL, "user", "our.test" },
	/* bang paths: ! is atext, no UUCP routing here */
	{ "RCPT TO:<user!evil.example@our.test>", NULL, "user!evil.example", "our.test" },
	{ "RCPT TO:<evil.example!user@our.test>", NULL, "evil.example!user", "our.test" },
	/* literals are never a hosted domain name */
	{ "RCPT TO:<user@[192.0.2.1]>", NULL, "user", "[192.0.2.1]" },
	{ "RCPT TO:<user@[IPv6:::1]>", NULL, "user", "[IPv6:::1]" },
	{ "RCPT TO:<user@[our.test]>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@[127.0.0.1]@evil.example>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@our.test.>", "501 5.1.3 ", NULL, NULL },
	/* just another domain: not ours unless hosted */
	{ "RCPT TO:<user@evil.example.our.test>", NULL, "user", "evil.example.our.test" },
	{ "RCPT TO:<user@our.test%evil.example>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@evil.example%our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@our.test:25>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@\"our.test\">", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user%evil.example>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@evil.example,our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user\\@evil.example@our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@evil.example\\@our.test>", "501 5.1.3 ", NULL, NULL },
	/* spaces inside the brackets */
	{ "RCPT TO:< user@our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@our.test >", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user @our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@ our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@OUR.TEST>", NULL, "user", "our.test" },
	{ "RCPT TO:<user@our.test@>", "501 5.1.3 ", NULL, NULL },
	/* comments are not SMTP */
	{ "RCPT TO:<user@(comment)our.test>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@our.test (comment)>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@our.test> (comment)", "501 5.5.4 ", NULL, NULL },
	{ "RCPT TO:<(comment)user@our.test>", "501 5.1.3 ", NULL, NULL },
	/* unbalanced and doubled brackets */
	{ "RCPT TO:<user@our.test", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:user@our.test>", "501 5.5.4 ", NULL, NULL },
	{ "RCPT TO:<user@[192.0.2.1>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@192.0.2.1]>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<<user@our.test>>", "501 5.1.3 ", NULL, NULL },
	{ "RCPT TO:<user@our.test>>", "501 5.5.4 ", NULL, NULL },
	/* two recipients in one command */
	{ "RCPT TO:<user@our.test>,<x@evil.example>", "501 5.5.4 ", NULL, NULL },
	{ "RCPT TO:<user@our.test> <x@evil.example>", "501 5.5.4 ", NULL, NULL },
	{ "RCPT TO:<user@our.test,x@evil.example>", "501 5.1.3 ", NULL, NULL },
	/* a second command smuggled in the line */
	{ "RCPT TO:<user@our.test>\rRCPT TO:<x@evil.example>", "500 5.5.2 ", NULL, NULL },
	{ "RCPT TO:<user@our.test\n@evil.example>", "500 5.5.2 ", NULL, NULL },
};

static void
test_relay_tricks(void **state)
{
	size_t	 i;

	(void)state;
	assert_true(sizeof(relay_cases) / sizeof(relay_cases[0]) >= 20);
	for (i = 0; i < sizeof(relay_cases) / sizeof(relay_cases[0]); i++) {
		const struct relay_case	*c = &relay_cases[i];

		if (c->code != NULL) {
			refused(c->line, c->code);
			continue;
		}
		ok(c->line);
		assert_int_equal(cmd.verb, SMTP_RCPT);
		if (strcmp(cmd.addr.local, c->local) != 0 || strcmp(cmd.addr.domain, c->domain) != 0)
			fail_msg("\"%s\": got %s @ %s", c->line, cmd.addr.local, cmd.addr.domain);
		assert_false(cmd.addr.postmaster);
		assert_false(cmd.addr.null);
	}
	/* the sender side uses the same parser */
	refused("MAIL FROM:<user@evil.example@our.test>", "501 5.1.7 ");
	ok("MAIL FROM:<@evil.example:user@our.test>");
	assert_string_equal(cmd.addr.domain, "our.test");
}

/* Received: fields of the header only, in any case, however the bytes come. */
static void
test_hops(void **state)
{
	static const char msg[] =
	    "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "RECEIVED: from c\r\n\tby d\r\n"
	    "X-Received: no\r\n"
	    "Subject: Received: no\r\n"
	    " Received: folded, no\r\n"
	    "received:bare LF\n"
	    "\r\n"
	    "Received: in the body, no\r\n";
	static const char other[] = "Receivedx: a\r\nReceived : b\r\n";
	struct smtp_hops h = { 0 }, k = { 0 };
	size_t i;

	(void)state;
	smtp_hops_feed(&h, msg, sizeof(msg) - 1);
	assert_int_equal(h.received, 3);
	assert_true(h.body);
	for (i = 0; i < sizeof(msg) - 1; i++)
		smtp_hops_feed(&k, msg + i, 1);
	assert_int_equal(k.received, 3);
	/* "Received" without the colon is another field name. */
	memset(&h, 0, sizeof(h));
	smtp_hops_feed(&h, other, sizeof(other) - 1);
	assert_int_equal(h.received, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verbs),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_bad_characters),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_no_argument_verbs),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_mail_forms),
		cmocka_unit_test(test_postmaster),
		cmocka_unit_test(test_source_route),
		cmocka_unit_test(test_path_length),
		cmocka_unit_test(test_mailbox_dotstring),
		cmocka_unit_test(test_mailbox_quoted),
		cmocka_unit_test(test_mailbox_domain),
		cmocka_unit_test(test_mailbox_literal),
		cmocka_unit_test(test_mailbox_utf8),
		cmocka_unit_test(test_mailbox_args),
		cmocka_unit_test(test_utf8_commands),
		cmocka_unit_test(test_param_size),
		cmocka_unit_test(test_param_body),
		cmocka_unit_test(test_param_smtputf8),
		cmocka_unit_test(test_param_dsn_mail),
		cmocka_unit_test(test_param_auth),
		cmocka_unit_test(test_param_notify),
		cmocka_unit_test(test_param_orcpt),
		cmocka_unit_test(test_param_orcpt_raw_limit),
		cmocka_unit_test(test_param_syntax),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_reply_buffer),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_relay_tricks),
		cmocka_unit_test(test_hops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
