/* test_resolve: unit tests for node/resolve.c: the order of MX hosts taken
 * from a reply, null MX, the --dns-server parser, and the bound and the
 * cancel fd of a lookup against a name server that never answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "resolve.h"

/* A reply list as c-ares would give it, in answer order. */
static struct ares_mx_reply *
chain(struct ares_mx_reply *r, size_t n, const unsigned short *prio, char **hosts)
{
	size_t i;

	for (i = 0; i < n; i++) {
		r[i].priority = prio[i];
		r[i].host = hosts[i];
		r[i].next = i + 1 < n ? &r[i + 1] : NULL;
	}
	return n > 0 ? r : NULL;
}

static void
test_mx_sorted_by_preference_ties_in_answer_order(void **state)
{
	unsigned short prio[] = { 20, 10, 10, 5 };
	char *hosts[] = { "a.example", "b.example", "c.example", "d.example" };
	struct ares_mx_reply r[4];
	struct resolve_mx out[RESOLVE_MX_MAX];
	bool null_mx = true;

	(void)state;
	assert_int_equal(resolve_mx_order(chain(r, 4, prio, hosts), out, RESOLVE_MX_MAX, &null_mx), 4);
	assert_false(null_mx);
	assert_string_equal(out[0].host, "d.example");
	assert_int_equal(out[0].pref, 5);
	assert_string_equal(out[1].host, "b.example");
	assert_string_equal(out[2].host, "c.example");
	assert_string_equal(out[3].host, "a.example");
	assert_int_equal(out[3].pref, 20);
}

static void
test_mx_full_list_keeps_the_best(void **state)
{
	unsigned short prio[] = { 30, 20, 10, 10, 40 };
	char *hosts[] = { "x", "y", "z", "w", "v" };
	struct ares_mx_reply r[5];
	struct resolve_mx out[2];
	bool null_mx;

	(void)state;
	assert_int_equal(resolve_mx_order(chain(r, 5, prio, hosts), out, 2, &null_mx), 2);
	assert_string_equal(out[0].host, "z");
	assert_string_equal(out[1].host, "w");
}

static void
test_null_mx(void **state)
{
	unsigned short prio[] = { 0, 10 };
	char *root[] = { "" }, *dot[] = { "." }, *two[] = { ".", "mx.example" };
	struct ares_mx_reply r[2];
	struct resolve_mx out[RESOLVE_MX_MAX];
	bool null_mx;

	(void)state;
	assert_int_equal(resolve_mx_order(chain(r, 1, prio, root), out, RESOLVE_MX_MAX, &null_mx), 0);
	assert_true(null_mx);
	assert_int_equal(resolve_mx_order(chain(r, 1, prio, dot), out, RESOLVE_MX_MAX, &null_mx), 0);
	assert_true(null_mx);
	/* Only a lone record means "no mail" (RFC 7505 3). */
	assert_int_equal(resolve_mx_order(chain(r, 2, prio, two), out, RESOLVE_MX_MAX, &null_mx), 2);
	assert_false(null_mx);
	assert_string_equal(out[1].host, "mx.example");
	assert_int_equal(resolve_mx_order(NULL, out, RESOLVE_MX_MAX, &null_mx), 0);
	assert_false(null_mx);
}

static void
test_dns_server_forms(void **state)
{
	struct resolve_conf c;
	char err[128];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(resolve_add_server(&c, "127.0.0.1:5353", err, sizeof(err)), 0);
	assert_int_equal(resolve_add_server(&c, "192.0.2.1", err, sizeof(err)), 0);
	assert_int_equal(resolve_add_server(&c, "[::1]:53000", err, sizeof(err)), 0);
	assert_int_equal(resolve_add_server(&c, "2001:db8::1", err, sizeof(err)), 0);
	assert_string_equal(c.servers, "127.0.0.1:5353,192.0.2.1:53,[::1]:53000,[2001:db8::1]:53");
	assert_int_equal(resolve_add_server(&c, "192.0.2.2", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at most 4"));
	assert_string_equal(c.servers, "127.0.0.1:5353,192.0.2.1:53,[::1]:53000,[2001:db8::1]:53");
}

static void
test_dns_server_refused(void **state)
{
	static const char *bad[] = { "", ":53", "ns.example", "ns.example:53", "127.0.0.1:",
		"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:53x", "127.0.0.1:-1", "127.0.0.1: 53",
		"[127.0.0.1]:53", "[::1", "[::1]53", "[::1]:", "[]:53", "1.2.3.4.5", " 127.0.0.1",
		"fe80::1%eth0", "[::1]:99999999999999999999", "127.0.0.1:+53" };
	struct resolve_conf c;
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		err[0] = '\0';
		if (resolve_add_server(&c, bad[i], err, sizeof(err)) != -1)
			fail_msg("\"%s\" accepted as %s", bad[i], c.servers);
		assert_string_equal(c.servers, "");
		assert_non_null(strstr(err, "IP:PORT"));
	}
}

/* A UDP socket on loopback that reads queries and never answers. */
static int
silent_server(char *spec, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(spec, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

static void
test_lookup_bounded_and_cancelled(void **state)
{
	struct resolve_conf c;
	struct resolve *r;
	struct resolve_mx mx[RESOLVE_MX_MAX];
	struct resolve_addrs addrs;
	char spec[64], err[256];
	int sfd, cancel[2];
	bool permanent = true;
	time_t t0;

	(void)state;
	memset(&c, 0, sizeof(c));
	sfd = silent_server(spec, sizeof(spec));
	assert_int_equal(resolve_add_server(&c, spec, err, sizeof(err)), 0);
	c.timeout_s = 1;
	r = resolve_new(&c, err, sizeof(err));
	assert_non_null(r);
	/* Silence: a temporary failure once the bound has passed. */
	t0 = time(NULL);
	assert_int_equal(resolve_mx(r, "example.test", -1, mx, RESOLVE_MX_MAX, &permanent, err,
	    sizeof(err)), -1);
	assert_false(permanent);
	assert_true(time(NULL) - t0 < 10);
	assert_true(err[0] != '\0');
	/* A stop: the lookup ends without waiting for the bound. */
	assert_int_equal(pipe(cancel), 0);
	assert_int_equal(write(cancel[1], "x", 1), 1);
	assert_int_equal(resolve_mx(r, "example.test", cancel[0], mx, RESOLVE_MX_MAX, &permanent,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "stopped");
	assert_int_equal(resolve_host(r, "mx.example.test", 25, cancel[0], &addrs, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "stopped");
	assert_int_equal(addrs.n, 0);
	/* IP literals need no server at all. */
	if (resolve_host(r, "127.0.0.1", 2525, -1, &addrs, err, sizeof(err)) != 0)
		fail_msg("127.0.0.1: %s", err);
	assert_int_equal(addrs.n, 1);
	assert_int_equal(((struct sockaddr_in *)&addrs.addr[0])->sin_port, htons(2525));
	assert_int_equal(resolve_host(r, "::1", 25, -1, &addrs, err, sizeof(err)), 0);
	assert_int_equal(addrs.n, 1);
	assert_int_equal(addrs.addr[0].ss_family, AF_INET6);
	resolve_free(r);
	close(cancel[0]);
	close(cancel[1]);
	close(sfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_sorted_by_preference_ties_in_answer_order),
		cmocka_unit_test(test_mx_full_list_keeps_the_best),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_dns_server_forms),
		cmocka_unit_test(test_dns_server_refused),
		cmocka_unit_test(test_lookup_bounded_and_cancelled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
