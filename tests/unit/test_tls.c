/* test_tls: the TLS layer end to end over socketpairs: dev certificate
 * generation, handshakes driven the non-blocking way, data both ways through
 * struct buf, SNI certificate choice, verification failures, close, and
 * read buffers that must never pass their max. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "buf.h"
#include "tls.h"

#define SNI_NAME	"mail.example.test"
#define SNI_WILD	"*.wild.example.test"
#define MAX_ROUNDS	1000

struct fixture {
	char			 dir[64];
	char			 ca[PATH_MAX];
	char			 ca2[PATH_MAX];	/* the other CA, issuer of SNI_NAME */
	struct tls_creds	*creds;
	gnutls_x509_crt_t	 ca2_crt;	/* kept to issue more SNI pairs */
	gnutls_x509_privkey_t	 ca2_key;
};

struct pair {
	int			 fd[2];		/* [0] server, [1] client */
	struct tls_conn		*srv;
	struct tls_conn		*cli;
};

static void
path_in(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < outlen);
}

/* Whole file in memory; NULL if it cannot be read. */
static char *
slurp(const char *path, size_t *lenp)
{
	gnutls_datum_t d;
	char *p;

	if (gnutls_load_file(path, &d) < 0)
		return NULL;
	if ((p = malloc(d.size + 1)) != NULL) {
		memcpy(p, d.data, d.size);
		p[d.size] = '\0';
		*lenp = d.size;
	}
	gnutls_memset(d.data, 0, d.size);
	gnutls_free(d.data);
	return p;
}

static void
spit(const char *path, const gnutls_datum_t *d)
{
	FILE *f;

	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
	assert_int_equal(fclose(f), 0);
}

static void
rm_tree(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		path_in(path, sizeof(path), dir, de->d_name);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(closedir(d), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* A key and certificate for cn, self-signed (CA) or signed by issuer. */
static void
make_crt(gnutls_x509_crt_t *crtp, gnutls_x509_privkey_t *keyp, const char *cn,
    int is_ca, gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned char serial[8];
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_privkey_init(&key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	memset(serial, 0x11, sizeof(serial));
	serial[7] = is_ca ? 1 : 2;
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial,
	    sizeof(serial)), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt,
	    GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt,
	    now + 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, is_ca, -1),
	    0);
	if (is_ca) {
		assert_int_equal(gnutls_x509_crt_set_key_usage(crt,
		    GNUTLS_KEY_KEY_CERT_SIGN), 0);
		assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key,
		    GNUTLS_DIG_SHA256, 0), 0);
	} else {
		assert_int_equal(gnutls_x509_crt_set_key_usage(crt,
		    GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt,
		    GNUTLS_SAN_DNSNAME, cn, strlen(cn), GNUTLS_FSAN_APPEND), 0);
		assert_int_equal(gnutls_x509_crt_sign2(crt, issuer, issuer_key,
		    GNUTLS_DIG_SHA256, 0), 0);
	}
	*crtp = crt;
	*keyp = key;
}

/* A certificate for name issued by ca and its key, as PEM (caller frees). */
static void
pem_pair(const char *name, gnutls_x509_crt_t ca, gnutls_x509_privkey_t cakey,
    char **crt_pem, char **key_pem)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;

	make_crt(&crt, &key, name, 0, ca, cakey);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
	assert_non_null(*crt_pem = strndup((char *)d.data, d.size));
	gnutls_free(d.data);
	assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM,
	    &d), 0);
	assert_non_null(*key_pem = strndup((char *)d.data, d.size));
	gnutls_free(d.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

/* A certificate for name issued by ca, added to the creds as an SNI pair. */
static void
add_sni(struct fixture *f, const char *name, gnutls_x509_crt_t ca,
    gnutls_x509_privkey_t cakey)
{
	char *crt_pem, *key_pem, err[256] = "";

	pem_pair(name, ca, cakey, &crt_pem, &key_pem);
	if (tls_creds_add_sni(f->creds, crt_pem, key_pem, err,
	    sizeof(err)) == -1)
		fail_msg("tls_creds_add_sni: %s", err);
	free(crt_pem);
	free(key_pem);
}

/* A second CA, in dir/ca2.pem, issues the SNI certificates. */
static void
make_sni_certs(struct fixture *f)
{
	gnutls_x509_privkey_t cakey;
	gnutls_x509_crt_t ca;
	gnutls_datum_t d;

	make_crt(&ca, &cakey, "other test CA", 1, NULL, NULL);
	assert_int_equal(gnutls_x509_crt_export2(ca, GNUTLS_X509_FMT_PEM, &d), 0);
	spit(f->ca2, &d);
	gnutls_free(d.data);
	add_sni(f, SNI_NAME, ca, cakey);
	add_sni(f, SNI_WILD, ca, cakey);
	f->ca2_crt = ca;
	f->ca2_key = cakey;
}

static int
setup(void **state)
{
	char crt[PATH_MAX], key[PATH_MAX], err[256] = "";
	struct fixture *f;

	assert_non_null(f = calloc(1, sizeof(*f)));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path_in(f->ca, sizeof(f->ca), f->dir, "ca.pem");
	path_in(f->ca2, sizeof(f->ca2), f->dir, "ca2.pem");
	path_in(crt, sizeof(crt), f->dir, "server.pem");
	path_in(key, sizeof(key), f->dir, "server-key.pem");
	if (tls_dev_certs_ensure(f->dir, err, sizeof(err)) == -1)
		fail_msg("tls_dev_certs_ensure: %s", err);
	if ((f->creds = tls_creds_load(crt, key, err, sizeof(err))) == NULL)
		fail_msg("tls_creds_load: %s", err);
	make_sni_certs(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tls_creds_free(f->creds);
	gnutls_x509_crt_deinit(f->ca2_crt);
	gnutls_x509_privkey_deinit(f->ca2_key);
	rm_tree(f->dir);
	free(f);
	return 0;
}

static void
pair_open(struct pair *p, struct fixture *f, const char *servername,
    const char *cafile)
{
	int i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(fcntl(p->fd[i], F_SETFL,
		    fcntl(p->fd[i], F_GETFL) | O_NONBLOCK), 0);
	assert_non_null(p->srv = tls_conn_server(p->fd[0], f->creds));
	assert_non_null(p->cli = tls_conn_client(p->fd[1], servername, cafile));
}

static void
pair_close(struct pair *p)
{
	tls_conn_free(p->srv);
	tls_conn_free(p->cli);
	if (p->fd[0] != -1)
		assert_int_equal(close(p->fd[0]), 0);
	if (p->fd[1] != -1)
		assert_int_equal(close(p->fd[1]), 0);
}

static int
pending(enum tls_status st)
{
	return st == TLS_WANT_READ || st == TLS_WANT_WRITE;
}

/* Alternate both handshakes until neither waits. After one side fails the
 * other gets a few more turns to read the alert. */
static void
drive(struct pair *p, enum tls_status *ss, enum tls_status *cs)
{
	int i, after_fail = 0;

	*ss = *cs = TLS_WANT_READ;
	for (i = 0; i < MAX_ROUNDS && (pending(*ss) || pending(*cs)); i++) {
		if (pending(*cs))
			*cs = tls_conn_handshake(p->cli);
		if (pending(*ss))
			*ss = tls_conn_handshake(p->srv);
		if ((*ss == TLS_FAILED || *cs == TLS_FAILED) && ++after_fail > 10)
			break;
	}
}

static void
handshake_ok(struct pair *p)
{
	enum tls_status ss, cs;

	drive(p, &ss, &cs);
	if (ss != TLS_DONE || cs != TLS_DONE)
		fail_msg("handshake: server %d (%s) client %d (%s)", ss,
		    tls_conn_error(p->srv), cs, tls_conn_error(p->cli));
}

/* Read until in holds n bytes or nothing more comes. */
static enum tls_status
read_n(struct tls_conn *t, struct buf *in, size_t n)
{
	enum tls_status st = TLS_WANT_READ;
	int i;

	for (i = 0; i < MAX_ROUNDS && buf_len(in) < n; i++) {
		st = tls_conn_read(t, in);
		if (st != TLS_DONE && !pending(st))
			break;
	}
	return st;
}

static void
send_str(struct tls_conn *t, const char *s)
{
	struct buf out;

	buf_init(&out, 0);
	assert_int_equal(buf_puts(&out, s), 0);
	assert_int_equal(tls_conn_write(t, &out), TLS_DONE);
	assert_int_equal(buf_len(&out), 0);
	buf_free(&out);
}

static void
test_dev_certs(void **state)
{
	static const char *names[] = { "ca.pem", "ca-key.pem", "server.pem",
	    "server-key.pem" };
	struct fixture *f = *state;
	char path[PATH_MAX], err[256] = "", host[256];
	char *before[4], *after;
	size_t blen[4], alen;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	struct stat st;
	int i;

	assert_int_equal(stat(f->dir, &st), 0);
	for (i = 0; i < 4; i++) {
		path_in(path, sizeof(path), f->dir, names[i]);
		assert_non_null(before[i] = slurp(path, &blen[i]));
		assert_int_equal(stat(path, &st), 0);
		if (strstr(names[i], "key") != NULL) {
			assert_int_equal(st.st_mode & 0777, 0600);
			assert_non_null(strstr(before[i], "PRIVATE KEY"));
		} else
			assert_non_null(strstr(before[i], "CERTIFICATE"));
	}

	/* A second call must leave everything alone. */
	assert_int_equal(tls_dev_certs_ensure(f->dir, err, sizeof(err)), 0);
	for (i = 0; i < 4; i++) {
		path_in(path, sizeof(path), f->dir, names[i]);
		assert_non_null(after = slurp(path, &alen));
		assert_int_equal(alen, blen[i]);
		assert_memory_equal(after, before[i], alen);
		free(after);
	}

	/* The server certificate names localhost, both loopbacks and the host. */
	path_in(path, sizeof(path), f->dir, "server.pem");
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	d.data = (unsigned char *)before[2];
	d.size = (unsigned int)blen[2];
	assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
	assert_true(gnutls_x509_crt_check_hostname(crt, "localhost"));
	assert_true(gnutls_x509_crt_check_hostname(crt, "127.0.0.1"));
	assert_true(gnutls_x509_crt_check_hostname(crt, "::1"));
	assert_false(gnutls_x509_crt_check_hostname(crt, SNI_NAME));
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_true(gnutls_x509_crt_check_hostname(crt, host));
	assert_int_equal(gnutls_x509_crt_get_ca_status(crt, NULL), 0);
	gnutls_x509_crt_deinit(crt);

	/* The CA is a CA. */
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	d.data = (unsigned char *)before[0];
	d.size = (unsigned int)blen[0];
	assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
	assert_int_equal(gnutls_x509_crt_get_ca_status(crt, NULL), 1);
	gnutls_x509_crt_deinit(crt);

	for (i = 0; i < 4; i++)
		free(before[i]);
}

/* A missing server pair is made again under the existing CA. */
static void
test_dev_certs_partial(void **state)
{
	struct fixture *f = *state;
	char dir[64], ca[PATH_MAX], cakey[PATH_MAX], srv[PATH_MAX],
	    srvkey[PATH_MAX], err[256] = "";
	char *ca1, *ca2, *k1, *k2;
	size_t l1, l2;

	(void)f;
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(dir));
	path_in(ca, sizeof(ca), dir, "ca.pem");
	path_in(cakey, sizeof(cakey), dir, "ca-key.pem");
	path_in(srv, sizeof(srv), dir, "server.pem");
	path_in(srvkey, sizeof(srvkey), dir, "server-key.pem");
	assert_int_equal(tls_dev_certs_ensure(dir, err, sizeof(err)), 0);
	assert_non_null(ca1 = slurp(ca, &l1));
	assert_non_null(k1 = slurp(srvkey, &l1));
	assert_int_equal(unlink(srv), 0);
	if (tls_dev_certs_ensure(dir, err, sizeof(err)) == -1)
		fail_msg("regenerate: %s", err);
	assert_non_null(ca2 = slurp(ca, &l2));
	assert_string_equal(ca1, ca2);
	assert_non_null(k2 = slurp(srvkey, &l2));
	assert_string_not_equal(k1, k2);
	assert_int_equal(access(srv, R_OK), 0);
	free(ca1);
	free(ca2);
	free(k1);
	free(k2);
	rm_tree(dir);
}

static void
test_errors(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	struct pair p;
	enum tls_status ss, cs;

	assert_null(tls_creds_load("/nonexistent/a.pem", "/nonexistent/k.pem",
	    err, sizeof(err)));
	assert_true(err[0] != '\0');

	err[0] = '\0';
	assert_int_equal(tls_creds_add_sni(f->creds, "not a cert", "nor a key",
	    err, sizeof(err)), -1);
	assert_true(err[0] != '\0');

	err[0] = '\0';
	assert_int_equal(tls_dev_certs_ensure("/proc/nope/certs", err,
	    sizeof(err)), -1);
	assert_true(err[0] != '\0');

	/* An unreadable cafile shows at the handshake, with a reason. */
	pair_open(&p, f, "localhost", "/nonexistent/ca.pem");
	drive(&p, &ss, &cs);
	assert_int_equal(cs, TLS_FAILED);
	assert_true(tls_conn_error(p.cli)[0] != '\0');
	pair_close(&p);
}

static void
test_exchange(void **state)
{
	struct fixture *f = *state;
	struct buf in;
	struct pair p;
	char desc[64];

	pair_open(&p, f, "localhost", f->ca);
	assert_string_equal(tls_conn_describe(p.srv, desc, sizeof(desc)),
	    "none");
	handshake_ok(&p);
	assert_string_equal(tls_conn_sni(p.srv), "localhost");
	assert_non_null(strstr(tls_conn_describe(p.srv, desc, sizeof(desc)),
	    "TLS1."));
	assert_non_null(strchr(desc, '/'));
	assert_non_null(strstr(tls_conn_describe(p.cli, desc, sizeof(desc)),
	    "TLS1."));

	buf_init(&in, 4096);
	/* Nothing sent yet: the reader is told to wait. */
	assert_int_equal(tls_conn_read(p.srv, &in), TLS_WANT_READ);

	send_str(p.cli, "EHLO client.example\r\n");
	assert_int_equal(read_n(p.srv, &in, 21), TLS_DONE);
	assert_int_equal(buf_len(&in), 21);
	assert_memory_equal(buf_data(&in), "EHLO client.example\r\n", 21);
	buf_consume(&in, buf_len(&in));

	send_str(p.srv, "250 hello\r\n");
	assert_int_equal(read_n(p.cli, &in, 11), TLS_DONE);
	assert_string_equal(buf_cstr(&in), "250 hello\r\n");
	buf_consume(&in, buf_len(&in));

	/* Bytes sent before close_notify arrive with TLS_CLOSED. */
	send_str(p.cli, "QUIT\r\n");
	assert_int_equal(tls_conn_bye(p.cli), TLS_DONE);
	assert_int_equal(read_n(p.srv, &in, SIZE_MAX), TLS_CLOSED);
	assert_string_equal(buf_cstr(&in), "QUIT\r\n");
	assert_int_equal(tls_conn_read(p.srv, &in), TLS_CLOSED);

	buf_free(&in);
	pair_close(&p);
}

/* A peer that drops the socket without close_notify is closed too. */
static void
test_eof(void **state)
{
	struct fixture *f = *state;
	struct buf in;
	struct pair p;

	pair_open(&p, f, NULL, NULL);		/* opportunistic, no SNI */
	handshake_ok(&p);
	assert_null(tls_conn_sni(p.srv));
	buf_init(&in, 1024);
	assert_int_equal(close(p.fd[1]), 0);
	p.fd[1] = -1;
	assert_int_equal(read_n(p.srv, &in, SIZE_MAX), TLS_CLOSED);
	assert_int_equal(buf_len(&in), 0);
	buf_free(&in);
	pair_close(&p);
}

/* IP literals are verified against the certificate but not sent as SNI. */
static void
test_ip_literal(void **state)
{
	struct fixture *f = *state;
	struct pair p;

	pair_open(&p, f, "127.0.0.1", f->ca);
	handshake_ok(&p);
	assert_null(tls_conn_sni(p.srv));
	assert_string_equal(tls_conn_sni(p.cli), "127.0.0.1");
	pair_close(&p);
}

static void
test_sni(void **state)
{
	struct fixture *f = *state;
	enum tls_status ss, cs;
	struct pair p;

	/* Verified against the other CA for SNI_NAME: only the added
	 * certificate can pass, so GnuTLS picked it by the name. */
	pair_open(&p, f, SNI_NAME, f->ca2);
	handshake_ok(&p);
	assert_string_equal(tls_conn_sni(p.srv), SNI_NAME);
	pair_close(&p);

	/* Names compare without case. */
	pair_open(&p, f, "MAIL.Example.TEST", f->ca2);
	handshake_ok(&p);
	assert_string_equal(tls_conn_sni(p.srv), SNI_NAME);
	pair_close(&p);

	/* Wildcard certificates match one label. */
	pair_open(&p, f, "imap.wild.example.test", f->ca2);
	handshake_ok(&p);
	assert_string_equal(tls_conn_sni(p.srv), "imap.wild.example.test");
	pair_close(&p);

	pair_open(&p, f, "a.b.wild.example.test", f->ca2);
	drive(&p, &ss, &cs);
	assert_int_equal(cs, TLS_FAILED);
	pair_close(&p);

	/* And it is not the dev CA's certificate that came. */
	pair_open(&p, f, SNI_NAME, f->ca);
	drive(&p, &ss, &cs);
	assert_int_equal(cs, TLS_FAILED);
	pair_close(&p);

	/* An unknown name gets the default certificate. */
	pair_open(&p, f, "unknown.example.test", NULL);
	handshake_ok(&p);
	assert_string_equal(tls_conn_sni(p.srv), "unknown.example.test");
	pair_close(&p);
}

/* A pair is refused when the key is another certificate's, or either
 * does not parse; the error says so without the key. */
static void
test_pair_check(void **state)
{
	struct fixture *f = *state;
	char *c1, *k1, *c2, *k2, err[256] = "";

	pem_pair("one.example.test", f->ca2_crt, f->ca2_key, &c1, &k1);
	pem_pair("two.example.test", f->ca2_crt, f->ca2_key, &c2, &k2);
	assert_int_equal(tls_pair_check(c1, k1, err, sizeof(err)), 0);
	assert_int_equal(tls_pair_check(c1, k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "certificate and key"));
	assert_null(strstr(err, "PRIVATE KEY"));
	assert_int_equal(tls_pair_check("-----BEGIN CERTIFICATE-----\nAAAA\n"
	    "-----END CERTIFICATE-----\n", k1, err, sizeof(err)), -1);
	assert_int_equal(tls_pair_check(c1, "-----BEGIN PRIVATE KEY-----\nAAAA\n"
	    "-----END PRIVATE KEY-----\n", err, sizeof(err)), -1);
	free(c1);
	free(k1);
	free(c2);
	free(k2);
}

/* A new set replaces the old one while a handshake that chose from the old
 * one is half-way: that handshake finishes with its certificate (ASan
 * would see a use after free), and the next handshakes see the new set.
 * Runs last: it changes the fixture's credentials. */
static void
test_sni_swap(void **state)
{
	struct fixture *f = *state;
	struct tls_sni_set *set;
	enum tls_status ss, cs;
	char *crt, *key, err[256] = "";
	struct pair p, q;
	int i;

	pair_open(&p, f, SNI_NAME, f->ca2);
	cs = tls_conn_handshake(p.cli);		/* ClientHello out */
	ss = tls_conn_handshake(p.srv);		/* certificate chosen and sent */
	assert_true(pending(cs) && pending(ss));

	assert_non_null(set = tls_sni_set_new());
	pem_pair("swap.example.test", f->ca2_crt, f->ca2_key, &crt, &key);
	if (tls_sni_set_add(set, crt, key, err, sizeof(err)) == -1)
		fail_msg("tls_sni_set_add: %s", err);
	free(crt);
	free(key);
	assert_int_equal(tls_sni_set_count(set), 1);
	tls_creds_set_sni(f->creds, set);	/* the old set is released here */

	for (i = 0; i < MAX_ROUNDS && (pending(ss) || pending(cs)); i++) {
		if (pending(cs))
			cs = tls_conn_handshake(p.cli);
		if (pending(ss))
			ss = tls_conn_handshake(p.srv);
	}
	assert_int_equal(cs, TLS_DONE);
	assert_int_equal(ss, TLS_DONE);
	send_str(p.srv, "still here");
	pair_close(&p);

	/* SNI_NAME is no longer there: the default (dev) certificate comes. */
	pair_open(&q, f, SNI_NAME, f->ca);
	drive(&q, &ss, &cs);
	assert_int_equal(cs, TLS_FAILED);	/* it names localhost, not SNI_NAME */
	pair_close(&q);
	pair_open(&q, f, "swap.example.test", f->ca2);
	handshake_ok(&q);
	pair_close(&q);

	/* No set at all: every name gets the default certificate. */
	tls_creds_set_sni(f->creds, NULL);
	pair_open(&q, f, "swap.example.test", f->ca2);
	drive(&q, &ss, &cs);
	assert_int_equal(cs, TLS_FAILED);
	pair_close(&q);
}

static void
test_wrong_ca(void **state)
{
	struct fixture *f = *state;
	enum tls_status ss, cs;
	struct buf b;
	struct pair p;

	pair_open(&p, f, "localhost", f->ca2);
	drive(&p, &ss, &cs);
	assert_int_equal(cs, TLS_FAILED);
	assert_true(tls_conn_error(p.cli)[0] != '\0');
	/* The server hears the alert. */
	assert_int_equal(ss, TLS_FAILED);
	assert_true(tls_conn_error(p.srv)[0] != '\0');
	/* A failed connection stays failed. */
	buf_init(&b, 64);
	assert_int_equal(tls_conn_read(p.cli, &b), TLS_FAILED);
	assert_int_equal(tls_conn_write(p.cli, &b), TLS_FAILED);
	buf_free(&b);
	pair_close(&p);
}

/* Much more data than the reader's max: it arrives whole and in order, and
 * the buffer never holds more than max. */
static void
test_bounded_read(void **state)
{
	enum { TOTAL = 300000, MAX = 1000 };
	struct fixture *f = *state;
	struct buf out, in;
	struct pair p;
	enum tls_status ws = TLS_DONE, rs;
	unsigned char *want, *got;
	size_t have = 0, i;
	int rounds, filled = 0, blocked = 0, sndbuf = 4096;

	assert_non_null(want = malloc(TOTAL));
	assert_non_null(got = malloc(TOTAL));
	for (i = 0; i < TOTAL; i++)
		want[i] = (unsigned char)(i * 7 + i / 251);
	pair_open(&p, f, "localhost", f->ca);
	handshake_ok(&p);
	/* A small socket buffer so the writer meets TLS_WANT_WRITE too. */
	assert_int_equal(setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf)), 0);
	buf_init(&out, 0);
	buf_init(&in, MAX);
	assert_int_equal(buf_append(&out, want, TOTAL), 0);
	for (rounds = 0; rounds < 100000 && have < TOTAL; rounds++) {
		if (buf_len(&out) > 0) {
			ws = tls_conn_write(p.srv, &out);
			assert_true(ws == TLS_DONE || ws == TLS_WANT_WRITE);
			blocked += ws == TLS_WANT_WRITE;
		}
		rs = tls_conn_read(p.cli, &in);
		assert_true(rs == TLS_DONE || rs == TLS_WANT_READ);
		assert_true(buf_len(&in) <= MAX);
		if (buf_len(&in) == MAX) {
			filled++;
			/* Full: the next read must not take anything. */
			assert_int_equal(tls_conn_read(p.cli, &in), TLS_DONE);
			assert_int_equal(buf_len(&in), MAX);
		}
		/* Consume in odd-sized bites to move the window around. */
		i = buf_len(&in) < 333 ? buf_len(&in) : 333;
		memcpy(got + have, buf_data(&in), i);
		have += i;
		buf_consume(&in, i);
	}
	assert_int_equal(have, TOTAL);
	assert_int_equal(buf_len(&out), 0);
	assert_memory_equal(got, want, TOTAL);
	assert_true(filled > 0);
	assert_true(blocked > 0);
	buf_free(&out);
	buf_free(&in);
	free(want);
	free(got);
	pair_close(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dev_certs),
		cmocka_unit_test(test_dev_certs_partial),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_ip_literal),
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_wrong_ca),
		cmocka_unit_test(test_bounded_read),
		cmocka_unit_test(test_pair_check),
		cmocka_unit_test(test_sni_swap),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
