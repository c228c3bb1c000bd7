/* test_api_parse: unit tests for the small parsers at the node's edges:
 * the control API request line and its query string (node/api.c), the
 * Location of the http service's redirect (node/svc_http.c), and the
 * database DSN (node/db.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"
#include "svc_http.h"

/* Bytes made printable for failure messages. */
static const char *
show(const char *p, size_t len, char *out, size_t outlen)
{
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < len && n + 5 < outlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, outlen - n, "\\x%02x", c);
		out[n] = '\0';
	}
	return out;
}

/* --- api_parse_request_line --- */

static struct api_request
req_ok_len(const char *line, size_t len)
{
	struct api_request r;
	char esc[1200];

	memset(&r, 0, sizeof(r));
	if (api_parse_request_line(&r, line, len) != 0)
		fail_msg("request line '%s' was refused", show(line, len, esc, sizeof(esc)));
	return r;
}

static struct api_request
req_ok(const char *line)
{
	return req_ok_len(line, strlen(line));
}

static void
req_bad_len(const char *line, size_t len)
{
	struct api_request r;
	char esc[1200];

	memset(&r, 0, sizeof(r));
	if (api_parse_request_line(&r, line, len) != -1)
		fail_msg("request line '%s' was accepted", show(line, len, esc, sizeof(esc)));
}

static void
req_bad(const char *line)
{
	req_bad_len(line, strlen(line));
}

static void
test_request_line_good(void **state)
{
	struct api_request r;

	(void)state;
	r = req_ok("GET /v1/status");
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.path, "/v1/status");
	assert_string_equal(r.query, "");

	r = req_ok("POST /v1/services/smtp/stop?drain=false&x=1");
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.path, "/v1/services/smtp/stop");
	assert_string_equal(r.query, "drain=false&x=1");

	r = req_ok("GET /");
	assert_string_equal(r.path, "/");
	r = req_ok("GET /?");
	assert_string_equal(r.path, "/");
	assert_string_equal(r.query, "");
	/* only the first '?' starts the query */
	r = req_ok("GET /a?b=?c");
	assert_string_equal(r.path, "/a");
	assert_string_equal(r.query, "b=?c");

	/* the length given is the line, whatever follows it */
	r = req_ok_len("GET /a?q=1\nbody: here\n", 10);
	assert_string_equal(r.path, "/a");
	assert_string_equal(r.query, "q=1");

	/* a previous query does not survive into the next request */
	memset(&r, 0, sizeof(r));
	assert_int_equal(api_parse_request_line(&r, "GET /a?x=1", 10), 0);
	assert_int_equal(api_parse_request_line(&r, "GET /b", 6), 0);
	assert_string_equal(r.query, "");
}

static void
test_request_line_malformed(void **state)
{
	(void)state;
	req_bad("");
	req_bad_len("GET /x", 0);
	req_bad("GET");
	req_bad("GET ");
	req_bad_len("GET /x", 4);
	req_bad("GET status");		/* path without '/' */
	req_bad("GET ?a=1");
	req_bad("GET  /x");		/* two spaces */
	req_bad(" /x");			/* no method */
	req_bad("/x");
}

static void
test_request_line_lengths(void **state)
{
	char line[1024];
	struct api_request r;

	(void)state;
	/* the longest method that fits, and one longer */
	r = req_ok("OPTIONS /");
	assert_string_equal(r.method, "OPTIONS");
	req_bad("PROPFIND /");

	/* a path of 255 bytes fits, 256 does not */
	memcpy(line, "GET /", 5);
	memset(line + 5, 'p', 254);
	line[259] = '\0';
	r = req_ok(line);
	assert_int_equal(strlen(r.path), 255);
	line[259] = 'p';
	line[260] = '\0';
	req_bad(line);

	/* the same for the query */
	memcpy(line, "GET /x?", 7);
	memset(line + 7, 'q', 255);
	line[262] = '\0';
	r = req_ok(line);
	assert_int_equal(strlen(r.query), 255);
	line[262] = 'q';
	line[263] = '\0';
	req_bad(line);

	/* and far longer lines */
	memset(line, 'A', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	req_bad(line);
}

static void
test_request_line_control_path(void **state)
{
	(void)state;
	req_bad("GET /a b");
	req_bad("GET /a\tb");
	req_bad("GET /a\rb");
	req_bad("GET /a\x1b[31m");
	req_bad("GET /a\x7f");
	req_bad("GET /a\r");
}

/* Method and query come from the same untrusted line as the path and end up
 * in replies and logs: control characters are refused there too. A NUL is
 * refused anywhere rather than silently cutting the field short. */
static void
test_request_line_control_method_query(void **state)
{
	(void)state;
	req_bad_len("GET /a\0b", 8);
	req_bad("G\x01T /x");
	req_bad("GE\tT /x");
	req_bad_len("G\0T /x", 6);
	req_bad("GET /x?service=\x1b[2J");
	req_bad("GET /x?a=1\rb=2");
	req_bad("GET /x?a=\x7f");
	req_bad_len("GET /x?a=1\0&b=2", 15);
}

/* --- api_query_get --- */

static void
q_ok(const char *query, const char *key, const char *want)
{
	char out[32];

	memset(out, 'x', sizeof(out));
	if (api_query_get(query, key, out, sizeof(out)) != 0)
		fail_msg("'%s' not found in '%s'", key, query ? query : "(null)");
	assert_string_equal(out, want);
}

static void
q_absent(const char *query, const char *key)
{
	char out[32];

	if (api_query_get(query, key, out, sizeof(out)) != -1)
		fail_msg("'%s' found in '%s'", key, query ? query : "(null)");
}

static void
test_query_get(void **state)
{
	char out[4];

	(void)state;
	q_ok("a=1&b=2", "a", "1");
	q_ok("a=1&b=2", "b", "2");
	q_ok("service=smtp", "service", "smtp");
	q_absent("a=1&b=2", "c");
	q_absent("", "a");
	q_absent(NULL, "a");
	/* a key is the whole name, not a prefix or a suffix of one */
	q_ok("service2=x&service=smtp", "service", "smtp");
	q_absent("services=x", "service");
	q_absent("xservice=1", "service");
	q_absent("serv=1", "service");
	/* empty values, bare keys, the first of repeated keys */
	q_ok("drain=&x=1", "drain", "");
	q_absent("drain&x=1", "drain");
	q_absent("drain", "drain");
	q_ok("a=1&a=2", "a", "1");
	q_ok("&&a=1&", "a", "1");
	q_ok("a=b=c", "a", "b=c");
	q_ok("x=1&drain=false", "drain", "false");

	/* a value that does not fit is absent, and nothing overflows */
	memset(out, 'x', sizeof(out));
	assert_int_equal(api_query_get("a=123", "a", out, sizeof(out)), 0);
	assert_string_equal(out, "123");
	memset(out, 'x', sizeof(out));
	assert_int_equal(api_query_get("a=1234", "a", out, sizeof(out)), -1);
	assert_int_equal(api_query_get("a=1", "a", out, 0), -1);
}

/* --- svc_http_location --- */

static void
loc_ok(const char *host, const char *uri, unsigned port, const char *want)
{
	char out[512];

	memset(out, 'x', sizeof(out));
	if (svc_http_location(host, uri, port, out, sizeof(out)) != 0)
		fail_msg("host '%s' uri '%s' was refused", host ? host : "(null)",
		    uri ? uri : "(null)");
	assert_string_equal(out, want);
}

static void
loc_bad(const char *host, const char *uri)
{
	char out[512];

	if (svc_http_location(host, uri, 2443, out, sizeof(out)) != -1)
		fail_msg("host '%s' uri '%s' was accepted: %s", host ? host : "(null)",
		    uri ? uri : "(null)", out);
}

static void
test_location(void **state)
{
	(void)state;
	loc_ok("mail.example.com", "/inbox", 2443, "https://mail.example.com:2443/inbox");
	/* the port of the Host header is the http port: it is replaced */
	loc_ok("mail.example.com:2080", "/inbox", 2443, "https://mail.example.com:2443/inbox");
	loc_ok("mail.example.com:80", "/", 443, "https://mail.example.com/");
	loc_ok("Mail.Example.COM", "/", 443, "https://Mail.Example.COM/");
	loc_ok("192.0.2.1:80", "/x", 8443, "https://192.0.2.1:8443/x");
	/* IPv6 literals keep their brackets, lose their port */
	loc_ok("[::1]:2080", "/", 2443, "https://[::1]:2443/");
	loc_ok("[2001:db8::1]", "/a", 443, "https://[2001:db8::1]/a");
	loc_ok("[::ffff:192.0.2.1]:80", "/", 443, "https://[::ffff:192.0.2.1]/");
	/* the query is kept */
	loc_ok("h.example", "/search?q=a&page=2", 443, "https://h.example/search?q=a&page=2");
	/* no URI, or one that is not a path, redirects to the root of the same host */
	loc_ok("h.example", NULL, 443, "https://h.example/");
	loc_ok("h.example", "", 443, "https://h.example/");
	loc_ok("h.example", "http://evil.example/x", 443, "https://h.example/");
	loc_ok("h.example", "*", 2443, "https://h.example:2443/");
	loc_ok("h.example", "//evil.example/x", 443, "https://h.example//evil.example/x");
}

static void
test_location_bad(void **state)
{
	char out[64];

	(void)state;
	loc_bad(NULL, "/");
	loc_bad("", "/");
	loc_bad(":2080", "/");
	loc_bad("exa mple.com", "/");
	loc_bad("evil.example/x", "/");
	loc_bad("user@evil.example", "/");
	loc_bad("evil.example\r\nSet-Cookie: a=b", "/");
	loc_bad("a_b.example", "/");
	loc_bad("h.example\x7f", "/");
	loc_bad("\xc3\xa9.example", "/");
	loc_bad("[::1", "/");
	loc_bad("[::1 ]", "/");
	/* too long for a host name */
	{
		char host[300];

		memset(host, 'a', sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		loc_bad(host, "/");
	}
	/* URIs that would break the header */
	loc_bad("h.example", "/a b");
	loc_bad("h.example", "/a\r\nSet-Cookie: a=b");
	loc_bad("h.example", "/a\tb");
	loc_bad("h.example", "/a\x7f");

	/* an answer that does not fit is refused, not cut */
	assert_int_equal(svc_http_location("h.example", "/", 443, out, 18), -1);
	assert_int_equal(svc_http_location("h.example", "/", 443, out, 19), 0);
	assert_string_equal(out, "https://h.example/");
}

/* An IPv6 literal is hex digits and colons (and a dotted tail) between the
 * brackets, and nothing but a port may follow it. */
static void
test_location_bad_v6(void **state)
{
	(void)state;
	loc_bad("[]", "/");
	loc_bad("[]:80", "/");
	loc_bad("[evil.example]", "/");
	loc_bad("[::1]evil.example", "/");
	loc_bad("[::1]@evil", "/");
	loc_bad("[::1]\r\n", "/");
}

/* --- db_conf_parse --- */

static struct db_conf
dsn_ok(const char *dsn)
{
	struct db_conf c;
	char err[256];

	err[0] = '\0';
	if (db_conf_parse(dsn, &c, err, sizeof(err)) != 0)
		fail_msg("DSN '%s' was refused: %s", dsn, err);
	assert_non_null(c.database);
	assert_non_null(c.user);
	return c;
}

static void
dsn_bad(const char *dsn, const char *want)
{
	struct db_conf c;
	char err[256];

	memset(&c, 0x5a, sizeof(c));
	memset(err, 'x', sizeof(err));
	if (db_conf_parse(dsn, &c, err, sizeof(err)) != -1) {
		db_conf_free(&c);
		fail_msg("DSN '%s' was accepted", dsn);
	}
	assert_non_null(memchr(err, '\0', sizeof(err)));
	if (strstr(err, want) == NULL)
		fail_msg("DSN '%s': error '%s' lacks '%s'", dsn, err, want);
	/* nothing is left allocated, and freeing again is harmless */
	assert_null(c.host);
	assert_null(c.socket);
	assert_null(c.user);
	assert_null(c.password);
	assert_null(c.database);
	db_conf_free(&c);
}

static void
test_dsn_good(void **state)
{
	struct db_conf c;

	(void)state;
	c = dsn_ok("mysql://mail:secret@db.example:3307/mailnode");
	assert_string_equal(c.user, "mail");
	assert_string_equal(c.password, "secret");
	assert_string_equal(c.host, "db.example");
	assert_int_equal(c.port, 3307);
	assert_null(c.socket);
	assert_string_equal(c.database, "mailnode");
	db_conf_free(&c);
	assert_null(c.user);
	assert_null(c.password);
	assert_null(c.database);
	assert_int_equal(c.port, 0);

	c = dsn_ok("mariadb://u@localhost/Mail_01");
	assert_string_equal(c.user, "u");
	assert_null(c.password);
	assert_string_equal(c.host, "localhost");
	assert_int_equal(c.port, 0);
	assert_string_equal(c.database, "Mail_01");
	db_conf_free(&c);

	/* passwords may hold '@' and ':' */
	c = dsn_ok("mysql://u:p@ss@w0rd@db.example:3306/mail");
	assert_string_equal(c.user, "u");
	assert_string_equal(c.password, "p@ss@w0rd");
	assert_string_equal(c.host, "db.example");
	assert_int_equal(c.port, 3306);
	db_conf_free(&c);
	c = dsn_ok("mysql://u:a:b@h/mail");
	assert_string_equal(c.user, "u");
	assert_string_equal(c.password, "a:b");
	assert_string_equal(c.host, "h");
	db_conf_free(&c);
	c = dsn_ok("mysql://u:@h/mail");
	assert_string_equal(c.password, "");
	db_conf_free(&c);

	/* a socket, with or without a host */
	c = dsn_ok("mysql://u@localhost/mail?socket=/run/mysqld/mysqld.sock");
	assert_string_equal(c.socket, "/run/mysqld/mysqld.sock");
	assert_string_equal(c.host, "localhost");
	assert_string_equal(c.database, "mail");
	db_conf_free(&c);
	c = dsn_ok("mysql:///mail?socket=/var/lib/mailnode/db.sock");
	assert_null(c.host);
	assert_string_equal(c.socket, "/var/lib/mailnode/db.sock");
	assert_string_equal(c.user, "mailnode");	/* the default user */
	db_conf_free(&c);

	c = dsn_ok("mysql://db.example:1/x");
	assert_string_equal(c.user, "mailnode");
	assert_null(c.password);
	assert_int_equal(c.port, 1);
	db_conf_free(&c);
	c = dsn_ok("mysql://db.example:65535/x");
	assert_int_equal(c.port, 65535);
	db_conf_free(&c);
}

static void
test_dsn_bad(void **state)
{
	(void)state;
	dsn_bad("", "must start with mysql:// or mariadb://");
	dsn_bad("postgres://u@h/db", "must start with");
	dsn_bad("mysql:/u@h/db", "must start with");
	dsn_bad("mysql//u@h/db", "must start with");
	dsn_bad("u@h/db", "must start with");

	dsn_bad("mysql://u@host", "needs a database name");
	dsn_bad("mysql://u@host/", "needs a database name");
	dsn_bad("mysql://u@host/?socket=/x.sock", "needs a database name");
	dsn_bad("mysql://", "needs a database name");

	dsn_bad("mysql://u@host:0/db", "bad port");
	dsn_bad("mysql://u@host:65536/db", "bad port");
	dsn_bad("mysql://u@host:abc/db", "bad port");
	dsn_bad("mysql://u@host:/db", "bad port");
	dsn_bad("mysql://u@host:33o6/db", "bad port");
	dsn_bad("mysql://u@host:-1/db", "bad port");
	dsn_bad("mysql://u@host:99999999999999999999/db", "bad port");
	dsn_bad("mysql://u:pw@host:3306:1/db", "bad port");

	dsn_bad("mysql://u@host/mail-node", "only letters, digits and _");
	dsn_bad("mysql://u@host/mail;DROP", "only letters, digits and _");
	dsn_bad("mysql://u@host/a b", "only letters, digits and _");
	dsn_bad("mysql://u@host/db/extra", "only letters, digits and _");
	dsn_bad("mysql://u@host/`db`", "only letters, digits and _");
	dsn_bad("mysql://u@host/m\xc3\xa4il", "only letters, digits and _");

	dsn_bad("mysql://u@host/db?ssl=1", "the only option is ?socket=PATH");
	dsn_bad("mysql://u@host/db?sock=/x", "the only option");
}

/* A port is digits only: what strtol would also take is still refused. */
static void
test_dsn_port_strict(void **state)
{
	(void)state;
	dsn_bad("mysql://u@host:+3306/db", "bad port");
	dsn_bad("mysql://u@host: 3306/db", "bad port");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_line_good),
		cmocka_unit_test(test_request_line_malformed),
		cmocka_unit_test(test_request_line_lengths),
		cmocka_unit_test(test_request_line_control_path),
		cmocka_unit_test(test_request_line_control_method_query),
		cmocka_unit_test(test_query_get),
		cmocka_unit_test(test_location),
		cmocka_unit_test(test_location_bad),
		cmocka_unit_test(test_location_bad_v6),
		cmocka_unit_test(test_dsn_good),
		cmocka_unit_test(test_dsn_bad),
		cmocka_unit_test(test_dsn_port_strict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
