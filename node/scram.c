/* scram: the exchange is three messages; the server keeps the bare client
 * first message and its own first message to sign the whole conversation
 * (the AuthMessage) and compares in constant time. */
#include "scram.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NONCE_MAX	256

struct scram_server {
	int		 step;			/* 0: expects client first; 1: final; 2: done */
	char		 gs2[300];		/* the GS2 header, for c= */
	char		 client_first_bare[512];
	char		 server_first[640];
	char		 nonce[2 * NONCE_MAX];	/* client nonce + ours */
	struct scram_keys keys;
	bool		 known;			/* the user exists */
};

static int
b64_encode(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	gnutls_datum_t in = { (unsigned char *)p, (unsigned)n }, res = { NULL, 0 };
	int rc = -1;

	if (gnutls_base64_encode2(&in, &res) != 0)
		return -1;
	if (res.size < outlen) {
		memcpy(out, res.data, res.size);
		out[res.size] = '\0';
		rc = 0;
	}
	gnutls_free(res.data);
	return rc;
}

static int
b64_decode(const char *s, size_t n, uint8_t *out, size_t outlen, size_t *got)
{
	gnutls_datum_t in = { (unsigned char *)s, (unsigned)n }, res = { NULL, 0 };
	int rc = -1;

	if (n == 0 || gnutls_base64_decode2(&in, &res) != 0)
		return -1;
	if (res.size <= outlen) {
		memcpy(out, res.data, res.size);
		*got = res.size;
		rc = 0;
	}
	gnutls_free(res.data);
	return rc;
}

static int
hmac(const uint8_t *key, size_t keylen, const void *msg, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, msg, len, out) == 0 ? 0 : -1;
}

static int
sha256(const uint8_t *p, size_t n, uint8_t out[SCRAM_KEY_LEN])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, out) == 0 ? 0 : -1;
}

/* StoredKey and ServerKey from a password, salt and iteration count. */
static int
derive(const char *password, struct scram_keys *k)
{
	uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	gnutls_datum_t pw = { (unsigned char *)password, (unsigned)strlen(password) };
	gnutls_datum_t salt = { k->salt, (unsigned)k->salt_len };
	int rc = -1;

	if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &pw, &salt, k->iterations, salted, sizeof(salted)) != 0)
		goto done;
	if (hmac(salted, sizeof(salted), "Client Key", 10, client_key) == -1 ||
	    sha256(client_key, sizeof(client_key), k->stored_key) == -1 ||
	    hmac(salted, sizeof(salted), "Server Key", 10, k->server_key) == -1)
		goto done;
	rc = 0;
done:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	return rc;
}

static int
keys_format(const struct scram_keys *k, char *out, size_t outlen)
{
	char salt[96], stored[64], server[64];

	if (b64_encode(k->salt, k->salt_len, salt, sizeof(salt)) == -1 ||
	    b64_encode(k->stored_key, SCRAM_KEY_LEN, stored, sizeof(stored)) == -1 ||
	    b64_encode(k->server_key, SCRAM_KEY_LEN, server, sizeof(server)) == -1)
		return -1;
	return snprintf(out, outlen, "{SCRAM-SHA-256}%u,%s,%s,%s", k->iterations, salt, stored, server) <
	    (int)outlen ? 0 : -1;
}

int
scram_keys_make(const char *password, char *out, size_t outlen, char *err, size_t errlen)
{
	struct scram_keys k;
	int rc = -1;

	memset(&k, 0, sizeof(k));
	k.iterations = SCRAM_ITERATIONS;
	k.salt_len = 16;
	if (gnutls_rnd(GNUTLS_RND_NONCE, k.salt, k.salt_len) != 0) {
		snprintf(err, errlen, "no randomness for the salt");
		goto done;
	}
	if (derive(password, &k) == -1 || keys_format(&k, out, outlen) == -1) {
		snprintf(err, errlen, "cannot derive SCRAM keys");
		goto done;
	}
	rc = 0;
done:
	explicit_bzero(&k, sizeof(k));
	return rc;
}

int
scram_keys_parse(const char *stored, struct scram_keys *k)
{
	const char *p = stored, *c1, *c2, *c3;
	char *end;
	unsigned long it;
	size_t got;

	memset(k, 0, sizeof(*k));
	if (strncasecmp(p, "{SCRAM-SHA-256}", 15) != 0)
		return -1;
	p += 15;
	it = strtoul(p, &end, 10);
	if (end == p || *end != ',' || it < 1 || it > 1000000)
		return -1;
	k->iterations = (uint32_t)it;
	c1 = end + 1;
	if ((c2 = strchr(c1, ',')) == NULL || (c3 = strchr(c2 + 1, ',')) == NULL)
		return -1;
	if (b64_decode(c1, (size_t)(c2 - c1), k->salt, sizeof(k->salt), &k->salt_len) == -1 ||
	    b64_decode(c2 + 1, (size_t)(c3 - c2 - 1), k->stored_key, SCRAM_KEY_LEN, &got) == -1 ||
	    got != SCRAM_KEY_LEN ||
	    b64_decode(c3 + 1, strlen(c3 + 1), k->server_key, SCRAM_KEY_LEN, &got) == -1 ||
	    got != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

struct scram_server *
scram_server_new(void)
{
	return calloc(1, sizeof(struct scram_server));
}

void
scram_server_free(struct scram_server *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, sizeof(*s));
	free(s);
}

/* saslname: "=2C" is ',' and "=3D" is '='; any other '=' is malformed. */
static int
unescape_name(const char *p, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char ch = p[i];

		if (ch == '=') {
			if (n - i < 3)
				return -1;
			if (memcmp(p + i, "=2C", 3) == 0)
				ch = ',';
			else if (memcmp(p + i, "=3D", 3) == 0)
				ch = '=';
			else
				return -1;
			i += 2;
		} else if (ch == '\0')
			return -1;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = ch;
	}
	out[o] = '\0';
	return o > 0 ? 0 : -1;
}

static bool
printable_nonce(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return n > 0;
}

int
scram_server_client_first(struct scram_server *s, const char *msg, size_t len,
    char *user, size_t userlen, char *err, size_t errlen)
{
	const char *bare, *end = msg + len, *n, *r, *comma;

	if (s->step != 0 || len == 0 || len >= sizeof(s->client_first_bare) || memchr(msg, '\0', len)) {
		snprintf(err, errlen, "unexpected or over-long message");
		return -1;
	}
	/* gs2 header: "n," or "y," (no channel binding here), an optional
	 * authzid "a=...", then ",". */
	if (msg[0] == 'p') {
		snprintf(err, errlen, "channel binding is not offered");
		return -1;
	}
	if ((msg[0] != 'n' && msg[0] != 'y') || len < 3 || msg[1] != ',') {
		snprintf(err, errlen, "bad GS2 header");
		return -1;
	}
	if ((comma = memchr(msg + 2, ',', len - 2)) == NULL) {
		snprintf(err, errlen, "bad GS2 header");
		return -1;
	}
	if (comma != msg + 2 && strncmp(msg + 2, "a=", 2) != 0) {
		snprintf(err, errlen, "bad authorization identity");
		return -1;
	}
	bare = comma + 1;
	if ((size_t)(bare - msg) >= sizeof(s->gs2)) {
		snprintf(err, errlen, "bad authorization identity");
		return -1;
	}
	memcpy(s->gs2, msg, (size_t)(bare - msg));
	s->gs2[bare - msg] = '\0';
	if (end - bare < 2 || strncmp(bare, "n=", 2) != 0) {
		snprintf(err, errlen, "no user name");
		return -1;
	}
	n = bare + 2;
	if ((comma = memchr(n, ',', (size_t)(end - n))) == NULL ||
	    unescape_name(n, (size_t)(comma - n), user, userlen) == -1) {
		snprintf(err, errlen, "bad user name");
		return -1;
	}
	r = comma + 1;
	if (end - r < 2 || strncmp(r, "r=", 2) != 0) {
		snprintf(err, errlen, "no nonce");
		return -1;
	}
	r += 2;
	comma = memchr(r, ',', (size_t)(end - r));	/* extensions may follow */
	if (comma && comma + 1 < end && comma[1] == 'm') {
		snprintf(err, errlen, "mandatory extension not supported");
		return -1;
	}
	if (!printable_nonce(r, (size_t)((comma ? comma : end) - r)) ||
	    (size_t)((comma ? comma : end) - r) >= NONCE_MAX) {
		snprintf(err, errlen, "bad nonce");
		return -1;
	}
	memcpy(s->nonce, r, (size_t)((comma ? comma : end) - r));
	s->nonce[(comma ? comma : end) - r] = '\0';
	memcpy(s->client_first_bare, bare, (size_t)(end - bare));
	s->client_first_bare[end - bare] = '\0';
	s->step = 1;
	return 0;
}

int
scram_server_first(struct scram_server *s, const struct scram_keys *k, struct buf *out)
{
	uint8_t rnd[18];
	char ours[32];

	if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) != 0 ||
	    b64_encode(rnd, sizeof(rnd), ours, sizeof(ours)) == -1)
		return -1;
	return scram_server_first_nonce(s, k, ours, out);
}

int
scram_server_first_nonce(struct scram_server *s, const struct scram_keys *k, const char *ours,
    struct buf *out)
{
	char salt[96];

	if (s->step != 1 || !printable_nonce(ours, strlen(ours)))
		return -1;
	if (k) {
		s->keys = *k;
		s->known = true;
	} else {
		/* An unknown user gets a salt that looks like any other and keys
		 * nothing matches. */
		memset(&s->keys, 0, sizeof(s->keys));
		s->keys.iterations = SCRAM_ITERATIONS;
		s->keys.salt_len = 16;
		if (gnutls_rnd(GNUTLS_RND_NONCE, s->keys.salt, s->keys.salt_len) != 0 ||
		    gnutls_rnd(GNUTLS_RND_NONCE, s->keys.stored_key, SCRAM_KEY_LEN) != 0)
			return -1;
		s->known = false;
	}
	if (b64_encode(s->keys.salt, s->keys.salt_len, salt, sizeof(salt)) == -1 ||
	    strlen(s->nonce) + strlen(ours) >= sizeof(s->nonce))
		return -1;
	memcpy(s->nonce + strlen(s->nonce), ours, strlen(ours) + 1);
	if (snprintf(s->server_first, sizeof(s->server_first), "r=%s,s=%s,i=%u", s->nonce, salt,
	    s->keys.iterations) >= (int)sizeof(s->server_first))
		return -1;
	s->step = 2;
	buf_reset(out);
	return buf_puts(out, s->server_first);
}

int
scram_server_client_final(struct scram_server *s, const char *msg, size_t len, struct buf *out,
    char *err, size_t errlen)
{
	const char *end = msg + len, *r, *p, *comma;
	uint8_t proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN],
	    check[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	char v[512];
	struct buf auth;
	size_t got, i, without_proof;
	unsigned diff = 0;
	int rc = -1;

	buf_init(&auth, 4096);
	if (s->step != 2 || len == 0 || memchr(msg, '\0', len)) {
		snprintf(err, errlen, "unexpected message");
		goto done;
	}
	s->step = 3;
	/* c= must be the GS2 header of the first message, in base64 ("biws"
	 * for "n,,"): nothing else binds the two messages together. */
	if (b64_encode((const uint8_t *)s->gs2, strlen(s->gs2), v, sizeof(v)) == -1 ||
	    len < 2 || strncmp(msg, "c=", 2) != 0 || (comma = memchr(msg, ',', len)) == NULL ||
	    (size_t)(comma - msg - 2) != strlen(v) || memcmp(msg + 2, v, strlen(v)) != 0) {
		snprintf(err, errlen, "channel binding data does not match");
		goto done;
	}
	r = comma + 1;
	if (end - r < 2 || strncmp(r, "r=", 2) != 0 ||
	    (comma = memchr(r, ',', (size_t)(end - r))) == NULL ||
	    (size_t)(comma - r - 2) != strlen(s->nonce) || memcmp(r + 2, s->nonce, strlen(s->nonce)) != 0) {
		snprintf(err, errlen, "nonce mismatch");
		goto done;
	}
	/* The proof is the last attribute. */
	for (p = comma; p && p < end; p = memchr(p + 1, ',', (size_t)(end - p - 1)))
		if (end - p > 3 && strncmp(p, ",p=", 3) == 0)
			break;
	if (p == NULL || p >= end ||
	    b64_decode(p + 3, (size_t)(end - p - 3), proof, sizeof(proof), &got) == -1 || got != sizeof(proof)) {
		snprintf(err, errlen, "bad proof");
		goto done;
	}
	without_proof = (size_t)(p - msg);
	if (buf_printf(&auth, "%s,%s,", s->client_first_bare, s->server_first) == -1 ||
	    buf_append(&auth, msg, without_proof) == -1) {
		snprintf(err, errlen, "message too long");
		goto done;
	}
	if (hmac(s->keys.stored_key, SCRAM_KEY_LEN, buf_data(&auth), buf_len(&auth), sig) == -1)
		goto done;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ sig[i];
	if (sha256(client_key, sizeof(client_key), check) == -1)
		goto done;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		diff |= check[i] ^ s->keys.stored_key[i];
	if (diff != 0 || !s->known) {
		rc = 0;
		goto done;
	}
	if (hmac(s->keys.server_key, SCRAM_KEY_LEN, buf_data(&auth), buf_len(&auth), server_sig) == -1 ||
	    b64_encode(server_sig, sizeof(server_sig), v, sizeof(v)) == -1)
		goto done;
	buf_reset(out);
	rc = buf_printf(out, "v=%s", v) == 0 ? 1 : -1;
done:
	explicit_bzero(client_key, sizeof(client_key));
	buf_free(&auth);
	return rc;
}
