/* test_scram: SCRAM-SHA-256 (node/scram.c) against the exchange of RFC 7677
 * section 3, key storage round trips, wrong proofs, unknown users and
 * malformed messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>

#include "scram.h"

/* RFC 7677: user "user", password "pencil". */
#define C_FIRST		"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define C_FIRST_BARE	"n=user,r=rOprNGfwEbeRWgbNEkqO"	/* without the GS2 header */
#define SALT_B64	"W22ZaJ0SNY7soEsUEjb6gQ=="
#define C_FINAL		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define S_FINAL		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* The RFC's server nonce is fixed; ours is random. Build the keys from the
 * RFC's salt, then redo the client's computation for our nonce. */
static void
keys_for(const char *password, struct scram_keys *k)
{
	char stored[SCRAM_STORED_MAX], err[128];

	assert_int_equal(scram_keys_make(password, stored, sizeof(stored), err, sizeof(err)), 0);
	assert_int_equal(scram_keys_parse(stored, k), 0);
}

static void
client_final(const char *password, const struct scram_keys *k, const char *client_first_bare,
    const char *server_first, const char *nonce, char *out, size_t outlen)
{
	uint8_t salted[32], ck[32], sk[32], sig[32], proof[32];
	char without[1024], auth[2048];
	gnutls_datum_t pw = { (unsigned char *)password, (unsigned)strlen(password) };
	gnutls_datum_t salt = { (unsigned char *)k->salt, (unsigned)k->salt_len };
	gnutls_datum_t raw = { proof, 32 }, b64 = { NULL, 0 };
	size_t i;

	assert_int_equal(gnutls_pbkdf2(GNUTLS_MAC_SHA256, &pw, &salt, k->iterations, salted, 32), 0);
	gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, 32, "Client Key", 10, ck);
	gnutls_hash_fast(GNUTLS_DIG_SHA256, ck, 32, sk);
	snprintf(without, sizeof(without), "c=biws,r=%s", nonce);
	snprintf(auth, sizeof(auth), "%s,%s,%s", client_first_bare, server_first, without);
	gnutls_hmac_fast(GNUTLS_MAC_SHA256, sk, 32, auth, strlen(auth), sig);
	for (i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	assert_int_equal(gnutls_base64_encode2(&raw, &b64), 0);
	snprintf(out, outlen, "%s,p=%.*s", without, (int)b64.size, b64.data);
	gnutls_free(b64.data);
}

static void
test_rfc7677_keys(void **state)
{
	/* The RFC's salted password gives these keys; the server final of the
	 * RFC's conversation must come out as printed there. */
	struct scram_keys k;
	struct scram_server *s = scram_server_new();
	struct buf out;
	char user[64], err[128], stored[SCRAM_STORED_MAX];
	uint8_t salted[32], ck[32];
	gnutls_datum_t pw = { (unsigned char *)"pencil", 6 }, salt;
	size_t i;

	(void)state;
	memset(&k, 0, sizeof(k));
	{
		gnutls_datum_t in = { (unsigned char *)SALT_B64, strlen(SALT_B64) }, res;

		assert_int_equal(gnutls_base64_decode2(&in, &res), 0);
		memcpy(k.salt, res.data, res.size);
		k.salt_len = res.size;
		gnutls_free(res.data);
	}
	k.iterations = 4096;
	salt.data = k.salt;
	salt.size = (unsigned)k.salt_len;
	assert_int_equal(gnutls_pbkdf2(GNUTLS_MAC_SHA256, &pw, &salt, 4096, salted, 32), 0);
	gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, 32, "Client Key", 10, ck);
	gnutls_hash_fast(GNUTLS_DIG_SHA256, ck, 32, k.stored_key);
	gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, 32, "Server Key", 10, k.server_key);
	/* Drive the server with the RFC's messages, forcing its nonce. */
	buf_init(&out, 0);
	assert_int_equal(scram_server_client_first(s, C_FIRST, strlen(C_FIRST), user, sizeof(user), err,
	    sizeof(err)), 0);
	assert_string_equal(user, "user");
	assert_int_equal(scram_server_first_nonce(s, &k, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &out), 0);
	assert_string_equal(buf_cstr(&out), "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=" SALT_B64 ",i=4096");
	assert_int_equal(scram_server_client_final(s, C_FINAL, strlen(C_FINAL), &out, err, sizeof(err)), 1);
	assert_string_equal(buf_cstr(&out), S_FINAL);
	scram_server_free(s);
	/* A proof of another conversation fails (nonce differs). */
	s = scram_server_new();
	assert_int_equal(scram_server_client_first(s, C_FIRST, strlen(C_FIRST), user, sizeof(user), err,
	    sizeof(err)), 0);
	assert_int_equal(scram_server_first(s, &k, &out), 0);
	assert_int_equal(scram_server_client_final(s, C_FINAL, strlen(C_FINAL), &out, err, sizeof(err)), -1);
	scram_server_free(s);
	/* The stored form round-trips. */
	for (i = 0; i < 1; i++) {
		struct scram_keys back;
		char salt_b64[64], *p;

		(void)salt_b64;
		assert_int_equal(scram_keys_make("pencil", stored, sizeof(stored), err, sizeof(err)), 0);
		assert_int_equal(strncmp(stored, "{SCRAM-SHA-256}4096,", 20), 0);
		assert_int_equal(scram_keys_parse(stored, &back), 0);
		assert_int_equal(back.iterations, 4096);
		assert_int_equal(back.salt_len, 16);
		p = strrchr(stored, ',');
		p[1] = '!';
		assert_int_equal(scram_keys_parse(stored, &back), -1);
	}
	buf_free(&out);
}

static void
run_exchange(const char *stored_pw, const char *client_pw, bool known, int expect)
{
	struct scram_keys k;
	struct scram_server *s = scram_server_new();
	struct buf out;
	char user[64], err[128], sf[700], final[1200], nonce[700], *r;
	int rc;

	buf_init(&out, 0);
	keys_for(stored_pw, &k);
	assert_int_equal(scram_server_client_first(s, C_FIRST, strlen(C_FIRST), user, sizeof(user), err,
	    sizeof(err)), 0);
	assert_int_equal(scram_server_first(s, known ? &k : NULL, &out), 0);
	snprintf(sf, sizeof(sf), "%s", buf_cstr(&out));
	assert_int_equal(strncmp(sf, "r=rOprNGfwEbeRWgbNEkqO", 22), 0);
	snprintf(nonce, sizeof(nonce), "%s", sf + 2);
	r = strchr(nonce, ',');
	*r = '\0';
	if (!known) {	/* the client computes with the salt it was sent */
		struct scram_keys fake = k;
		char *sp = strstr(sf, ",s=") + 3, *se = strstr(sp, ",i=");
		gnutls_datum_t in = { (unsigned char *)sp, (unsigned)(se - sp) }, res;

		assert_int_equal(gnutls_base64_decode2(&in, &res), 0);
		memcpy(fake.salt, res.data, res.size);
		fake.salt_len = res.size;
		gnutls_free(res.data);
		k = fake;
	}
	client_final(client_pw, &k, C_FIRST_BARE, sf, nonce, final, sizeof(final));
	rc = scram_server_client_final(s, final, strlen(final), &out, err, sizeof(err));
	assert_int_equal(rc, expect);
	if (rc == 1)
		assert_int_equal(strncmp(buf_cstr(&out), "v=", 2), 0);
	scram_server_free(s);
	buf_free(&out);
}

static void
test_exchange(void **state)
{
	(void)state;
	run_exchange("pencil", "pencil", true, 1);
	run_exchange("pencil", "crayon", true, 0);
	run_exchange("pencil", "pencil", false, 0);	/* unknown user: never */
}

static void
test_malformed(void **state)
{
	static const char *bad_first[] = {
		"", "x,,n=user,r=abc", "p=tls-unique,,n=user,r=abc", "n,,r=abc", "n,,n=,r=abc",
		"n,,n=us=er,r=abc", "n,,n=user", "n,,n=user,r=", "n,,n=user,r=a b",
		"n,,n=user,r=abc,m=ext", "n,x=1,n=user,r=abc",
	};
	struct scram_server *s;
	char user[64], err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++) {
		s = scram_server_new();
		if (scram_server_client_first(s, bad_first[i], strlen(bad_first[i]), user, sizeof(user), err,
		    sizeof(err)) != -1)
			fail_msg("accepted: %s", bad_first[i]);
		scram_server_free(s);
	}
	s = scram_server_new();
	assert_int_equal(scram_server_client_first(s, "y,a=admin,n=a=2Cb=3Dc,r=xyz", 27, user, sizeof(user), err,
	    sizeof(err)), 0);
	assert_string_equal(user, "a,b=c");
	scram_server_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_keys),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
