/* sasl_scram: the account found by the lookup is kept until the proof
 * says it may log in; an unknown user and a wrong password end alike. */
#include "sasl_scram.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scram.h"

enum step { WANT_FIRST, WANT_KEYS, WANT_FINAL, WANT_EMPTY, FINISHED };

struct sasl_scram {
	struct scram_server	*srv;
	enum step		 step;
	char			 user[256];
	struct login_result	 login;		/* the account, if it has keys */
	bool			 proved;
};

struct sasl_scram *
sasl_scram_new(void)
{
	struct sasl_scram *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	if ((x->srv = scram_server_new()) == NULL) {
		free(x);
		return NULL;
	}
	return x;
}

void
sasl_scram_free(struct sasl_scram *x)
{
	if (x == NULL)
		return;
	scram_server_free(x->srv);
	explicit_bzero(x, sizeof(*x));
	free(x);
}

/* Decoded into out (NUL-terminated); -1 when empty, not base64 or too long. */
static int
decode(const char *b64, size_t len, char *out, size_t outlen, size_t *n)
{
	gnutls_datum_t src = { (unsigned char *)b64, (unsigned)len }, dst = { NULL, 0 };
	int rc = -1;

	if (len == 0 || len > SASL_SCRAM_LINE_MAX || gnutls_base64_decode2(&src, &dst) != 0)
		return -1;
	if (dst.size < outlen) {
		memcpy(out, dst.data, dst.size);
		out[dst.size] = '\0';
		*n = dst.size;
		rc = 0;
	}
	explicit_bzero(dst.data, dst.size);
	gnutls_free(dst.data);
	return rc;
}

static int
encode(const struct buf *in, struct buf *out)
{
	gnutls_datum_t src = { (unsigned char *)buf_data(in), (unsigned)buf_len(in) }, dst = { NULL, 0 };
	int rc;

	if (gnutls_base64_encode2(&src, &dst) != 0)
		return -1;
	buf_reset(out);
	rc = buf_append(out, dst.data, dst.size);
	gnutls_free(dst.data);
	return rc;
}

static enum sasl_scram_next
client_first(struct sasl_scram *x, const char *b64, size_t len)
{
	char msg[600], err[128];
	size_t n;

	if (decode(b64, len, msg, sizeof(msg), &n) == -1 ||
	    scram_server_client_first(x->srv, msg, n, x->user, sizeof(x->user), err, sizeof(err)) == -1)
		return SASL_SCRAM_MALFORMED;
	x->step = WANT_KEYS;
	return SASL_SCRAM_LOOKUP;
}

static enum sasl_scram_next
client_final(struct sasl_scram *x, const char *b64, size_t len, struct buf *out)
{
	char msg[800], err[128];
	struct buf plain;
	size_t n;
	int rc;

	if (decode(b64, len, msg, sizeof(msg), &n) == -1)
		return SASL_SCRAM_MALFORMED;
	buf_init(&plain, 0);
	rc = scram_server_client_final(x->srv, msg, n, &plain, err, sizeof(err));
	explicit_bzero(msg, sizeof(msg));
	/* One proof per exchange. */
	scram_server_free(x->srv);
	x->srv = NULL;
	x->step = FINISHED;
	if (rc == 1 && (x->login.ok || x->login.disabled) && encode(&plain, out) == 0) {
		x->step = WANT_EMPTY;
		buf_free(&plain);
		return SASL_SCRAM_CHALLENGE;
	}
	buf_free(&plain);
	return rc == -1 ? SASL_SCRAM_MALFORMED : SASL_SCRAM_DONE;
}

enum sasl_scram_next
sasl_scram_step(struct sasl_scram *x, const char *b64, size_t len, struct buf *out)
{
	if (len == 1 && b64[0] == '*') {
		x->step = FINISHED;
		return SASL_SCRAM_CANCELLED;
	}
	switch (x->step) {
	case WANT_FIRST:
		return client_first(x, b64, len);
	case WANT_FINAL:
		return client_final(x, b64, len, out);
	case WANT_EMPTY:
		x->step = FINISHED;
		if (len != 0)
			return SASL_SCRAM_MALFORMED;
		x->proved = true;
		return SASL_SCRAM_DONE;
	case WANT_KEYS:
	case FINISHED:
		break;
	}
	x->step = FINISHED;
	return SASL_SCRAM_MALFORMED;
}

const char *
sasl_scram_user(const struct sasl_scram *x)
{
	return x->user;
}

int
sasl_scram_keys(struct sasl_scram *x, const char *stored, const struct login_result *r, struct buf *out)
{
	struct scram_keys k;
	bool have;
	struct buf plain;
	int rc = -1;

	if (x->step != WANT_KEYS)
		return -1;
	have = stored[0] && scram_keys_parse(stored, &k) == 0;
	memset(&x->login, 0, sizeof(x->login));
	if (have && (r->ok || r->disabled)) {
		x->login = *r;
		x->login.tempfail = false;
	}
	buf_init(&plain, 0);
	if (scram_server_first(x->srv, have ? &k : NULL, &plain) == 0 && encode(&plain, out) == 0) {
		x->step = WANT_FINAL;
		rc = 0;
	}
	explicit_bzero(&k, sizeof(k));
	buf_free(&plain);
	return rc;
}

void
sasl_scram_result(const struct sasl_scram *x, struct login_result *r)
{
	memset(r, 0, sizeof(*r));
	if (x->proved)
		*r = x->login;
}
