/* tls: GnuTLS sessions over non-blocking sockets for the protocol services
 * (STARTTLS and implicit TLS), server credentials with per-name (SNI)
 * certificates, and the generator of the development CA and server
 * certificate.
 *
 * Ownership: the listener owns a struct tls_creds and must keep it alive
 * while connections made with it exist; each struct tls_conn owns its GnuTLS
 * session (and, on the client side, its trust store) but never the fd.
 *
 * tls_conn_server() and tls_conn_client() return NULL only when memory runs
 * out; any other setup problem (an unreadable cafile, say) makes the first
 * handshake return TLS_FAILED with the reason in tls_conn_error().
 *
 * tls_conn_read() may return TLS_CLOSED with the peer's last bytes in in.
 * It stops with TLS_DONE when in is full; GnuTLS may then hold
 * decrypted bytes that the socket will not signal again, so the caller must
 * call tls_conn_read() once more after consuming, without waiting for poll. */
#include "tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

/* TLS 1.2 and newer only. */
#define TLS_PRIORITIES	"NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"
#define TLS_READ_CHUNK	16384
#define TLS_ERRLEN	256
#define TLS_NAMELEN	256		/* DNS names are at most 253 octets */
#define DEV_CERT_DAYS	825		/* longest life Apple clients accept */

/* GnuTLS's own choice among several certificates in one credentials set
 * compares the SNI name with strcmp: case matters and wildcards never match.
 * So each SNI certificate gets its own credentials, and a post-ClientHello
 * hook switches the session to the first whose certificate matches the name
 * by the RFC 6125 rules (gnutls_x509_crt_check_hostname). */
struct sni_cert {
	gnutls_certificate_credentials_t cred;
	gnutls_x509_crt_t	 leaf;		/* for name matching */
};

struct tls_sni_set {
	atomic_uint		 refs;
	struct sni_cert		*v;
	size_t			 n;
};

/* The SNI set is swapped under lock while sessions on other loops take a
 * reference to it in their ClientHello hook; the default certificate never
 * changes. */
struct tls_creds {
	gnutls_certificate_credentials_t cred;	/* default certificate */
	gnutls_priority_t	 prio;
	pthread_mutex_t		 lock;
	struct tls_sni_set	*sni;		/* NULL: none */
};

struct tls_conn {
	gnutls_session_t	 s;
	struct tls_creds	*creds;		/* server side; not owned */
	struct tls_sni_set	*sni_set;	/* referenced: its cred may be in use */
	gnutls_certificate_credentials_t own_cred;	/* client side only */
	int			 server;
	int			 handshaken;
	int			 failed;	/* fatal error seen; err says why */
	int			 peer_closed;
	size_t			 send_pending;	/* length of a send that got AGAIN */
	char			 sni[TLS_NAMELEN];
	char			 err[TLS_ERRLEN];
};

static void
seterr(char *err, size_t errlen, const char *what, int gerr)
{
	if (err == NULL || errlen == 0)
		return;
	if (gerr != 0)
		snprintf(err, errlen, "%s: %s", what, gnutls_strerror(gerr));
	else
		snprintf(err, errlen, "%s", what);
}

static void
syserr(char *err, size_t errlen, const char *what, const char *path)
{
	if (err == NULL || errlen == 0)
		return;
	snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
}

/* Server credentials with the settings every key pair shares. */
static gnutls_certificate_credentials_t
cred_new(char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred;
	int r;

	if ((r = gnutls_certificate_allocate_credentials(&cred)) < 0) {
		seterr(err, errlen, "credentials", r);
		return NULL;
	}
	/* DHE groups for TLS 1.2 clients that offer neither ECDHE nor FFDHE. */
	if ((r = gnutls_certificate_set_known_dh_params(cred,
	    GNUTLS_SEC_PARAM_MEDIUM)) < 0) {
		seterr(err, errlen, "DH parameters", r);
		gnutls_certificate_free_credentials(cred);
		return NULL;
	}
	return cred;
}

struct tls_creds *
tls_creds_load(const char *certfile, const char *keyfile, char *err,
    size_t errlen)
{
	struct tls_creds *c;
	int r;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		seterr(err, errlen, "out of memory", 0);
		return NULL;
	}
	if ((errno = pthread_mutex_init(&c->lock, NULL)) != 0) {
		syserr(err, errlen, "mutex for", certfile);
		free(c);
		return NULL;
	}
	if ((c->cred = cred_new(err, errlen)) == NULL)
		goto fail;
	r = gnutls_certificate_set_x509_key_file2(c->cred, certfile, keyfile,
	    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s / %s: %s", certfile, keyfile,
			    gnutls_strerror(r));
		goto fail;
	}
	if ((r = gnutls_priority_init(&c->prio, TLS_PRIORITIES, NULL)) < 0) {
		c->prio = NULL;
		seterr(err, errlen, "priorities", r);
		goto fail;
	}
	return c;
fail:
	tls_creds_free(c);
	return NULL;
}

struct tls_sni_set *
tls_sni_set_new(void)
{
	struct tls_sni_set *set;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	atomic_init(&set->refs, 1);
	return set;
}

static int
chain_check(const gnutls_datum_t *pem)
{
	gnutls_x509_crt_t *list = NULL;
	unsigned int n = 0, i;
	int r;

	r = gnutls_x509_crt_list_import2(&list, &n, pem, GNUTLS_X509_FMT_PEM, 0);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);
	return n > 0 ? 0 : GNUTLS_E_NO_CERTIFICATE_FOUND;
}

int
tls_sni_set_add(struct tls_sni_set *set, const char *cert_pem,
    const char *key_pem, char *err, size_t errlen)
{
	struct sni_cert e = { NULL, NULL }, *n;
	gnutls_datum_t cd, kd, der = { NULL, 0 };
	int r;

	cd.data = (unsigned char *)(uintptr_t)cert_pem;
	cd.size = (unsigned int)strlen(cert_pem);
	kd.data = (unsigned char *)(uintptr_t)key_pem;
	kd.size = (unsigned int)strlen(key_pem);
	/* The chain parsed on its own first: GnuTLS 3.7 leaks a certificate
	 * when set_x509_key_mem2 meets one that does not parse. */
	if ((r = chain_check(&cd)) < 0) {
		seterr(err, errlen, "certificate", r);
		goto fail;
	}
	if ((e.cred = cred_new(err, errlen)) == NULL)
		goto fail;
	/* GnuTLS refuses a key that is not the certificate's. */
	r = gnutls_certificate_set_x509_key_mem2(e.cred, &cd, &kd,
	    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		seterr(err, errlen, "certificate and key", r);
		goto fail;
	}
	/* The leaf as GnuTLS loaded it, so matching sees what is sent. */
	if ((r = gnutls_certificate_get_crt_raw(e.cred, 0, 0, &der)) < 0 ||
	    (r = gnutls_x509_crt_init(&e.leaf)) < 0 ||
	    (r = gnutls_x509_crt_import(e.leaf, &der, GNUTLS_X509_FMT_DER)) < 0) {
		seterr(err, errlen, "certificate", r);
		goto fail;
	}
	if ((n = reallocarray(set->v, set->n + 1, sizeof(*n))) == NULL) {
		seterr(err, errlen, "out of memory", 0);
		goto fail;
	}
	set->v = n;
	set->v[set->n++] = e;
	return 0;
fail:
	if (e.leaf != NULL)
		gnutls_x509_crt_deinit(e.leaf);
	if (e.cred != NULL)
		gnutls_certificate_free_credentials(e.cred);
	return -1;
}

size_t
tls_sni_set_count(const struct tls_sni_set *set)
{
	return set != NULL ? set->n : 0;
}

void
tls_sni_set_unref(struct tls_sni_set *set)
{
	size_t i;

	if (set == NULL || atomic_fetch_sub(&set->refs, 1) != 1)
		return;
	for (i = 0; i < set->n; i++) {
		gnutls_x509_crt_deinit(set->v[i].leaf);
		gnutls_certificate_free_credentials(set->v[i].cred);
	}
	free(set->v);
	free(set);
}

void
tls_creds_set_sni(struct tls_creds *c, struct tls_sni_set *set)
{
	struct tls_sni_set *old;

	pthread_mutex_lock(&c->lock);
	old = c->sni;
	c->sni = set;
	pthread_mutex_unlock(&c->lock);
	/* Sessions that chose from the old set keep it alive. */
	tls_sni_set_unref(old);
}

int
tls_pair_check(const char *cert_pem, const char *key_pem, char *err,
    size_t errlen)
{
	struct tls_sni_set *set;
	int r;

	if ((set = tls_sni_set_new()) == NULL) {
		seterr(err, errlen, "out of memory", 0);
		return -1;
	}
	r = tls_sni_set_add(set, cert_pem, key_pem, err, errlen);
	tls_sni_set_unref(set);
	return r;
}

int
tls_creds_add_sni(struct tls_creds *c, const char *cert_pem,
    const char *key_pem, char *err, size_t errlen)
{
	if (c->sni == NULL && (c->sni = tls_sni_set_new()) == NULL) {
		seterr(err, errlen, "out of memory", 0);
		return -1;
	}
	return tls_sni_set_add(c->sni, cert_pem, key_pem, err, errlen);
}

void
tls_creds_free(struct tls_creds *c)
{
	if (c == NULL)
		return;
	tls_sni_set_unref(c->sni);
	if (c->prio != NULL)
		gnutls_priority_deinit(c->prio);
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct tls_conn *
conn_new(int fd, int server)
{
	struct tls_conn *t;
	unsigned int flags;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->server = server;
	/* MSG_NOSIGNAL: a peer that resets must not kill the node with SIGPIPE. */
	flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
	    GNUTLS_NO_SIGNAL;
	if (gnutls_init(&t->s, flags) < 0) {
		free(t);
		return NULL;
	}
	gnutls_transport_set_int(t->s, fd);
	return t;
}

static void
conn_fail(struct tls_conn *t, const char *what, int gerr)
{
	t->failed = 1;
	seterr(t->err, sizeof(t->err), what, gerr);
}

static void
save_sni(struct tls_conn *t)
{
	char name[TLS_NAMELEN];
	size_t i, len = sizeof(name);
	unsigned int type;

	/* Only a DNS name that fits counts; anything else means "no SNI". */
	if (gnutls_server_name_get(t->s, name, &len, &type, 0) != 0 ||
	    type != GNUTLS_NAME_DNS || len == 0 || len >= sizeof(name))
		return;
	name[len] = '\0';
	if (strlen(name) != len)	/* embedded NUL */
		return;
	/* DNS names compare without case; callers match on the lower form. */
	for (i = 0; i <= len; i++)
		t->sni[i] = (char)tolower((unsigned char)name[i]);
}

/* Runs once the ClientHello is parsed, before GnuTLS picks a certificate. */
static int
client_hello(gnutls_session_t s)
{
	struct tls_conn *t = gnutls_session_get_ptr(s);
	struct tls_creds *c = t->creds;
	struct tls_sni_set *set;
	size_t i;

	save_sni(t);
	if (t->sni[0] == '\0')
		return 0;
	/* The session may use a certificate of this set to its end. */
	if (t->sni_set == NULL) {
		pthread_mutex_lock(&c->lock);
		if ((t->sni_set = c->sni) != NULL)
			atomic_fetch_add(&t->sni_set->refs, 1);
		pthread_mutex_unlock(&c->lock);
	}
	if ((set = t->sni_set) == NULL)
		return 0;
	for (i = 0; i < set->n; i++) {
		if (!gnutls_x509_crt_check_hostname2(set->v[i].leaf, t->sni, 0))
			continue;
		if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
		    set->v[i].cred) < 0)
			return GNUTLS_E_INTERNAL_ERROR;
		break;
	}
	return 0;
}

struct tls_conn *
tls_conn_server(int fd, struct tls_creds *c)
{
	struct tls_conn *t;
	const char *what;
	int r;

	if ((t = conn_new(fd, 1)) == NULL)
		return NULL;
	what = "priorities";
	if ((r = gnutls_priority_set(t->s, c->prio)) < 0)
		goto fail;
	what = "credentials";
	if ((r = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE,
	    c->cred)) < 0)
		goto fail;
	gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_IGNORE);
	t->creds = c;
	gnutls_session_set_ptr(t->s, t);
	gnutls_handshake_set_post_client_hello_function(t->s, client_hello);
	return t;
fail:
	/* Reported by the first handshake; see the top of the file. */
	conn_fail(t, what, r);
	return t;
}

/* SNI carries host names only (RFC 6066); IP literals are verified but not sent. */
static int
is_ip_literal(const char *name)
{
	unsigned char a[16];

	return inet_pton(AF_INET, name, a) == 1 ||
	    inet_pton(AF_INET6, name, a) == 1;
}

struct tls_conn *
tls_conn_client(int fd, const char *servername, const char *cafile)
{
	struct tls_conn *t;
	const char *what;
	int r;

	if ((t = conn_new(fd, 0)) == NULL)
		return NULL;
	if (gnutls_certificate_allocate_credentials(&t->own_cred) < 0) {
		t->own_cred = NULL;
		tls_conn_free(t);
		return NULL;
	}
	what = "priorities";
	if ((r = gnutls_priority_set_direct(t->s, TLS_PRIORITIES, NULL)) < 0)
		goto fail;
	what = "credentials";
	if ((r = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE,
	    t->own_cred)) < 0)
		goto fail;
	if (servername != NULL) {
		what = "server name too long";
		r = 0;
		if (strlen(servername) >= sizeof(t->sni))
			goto fail;
		snprintf(t->sni, sizeof(t->sni), "%s", servername);
		what = "server name";
		if (!is_ip_literal(servername) && (r = gnutls_server_name_set(t->s,
		    GNUTLS_NAME_DNS, servername, strlen(servername))) < 0)
			goto fail;
	}
	if (cafile != NULL) {
		what = cafile;
		r = gnutls_certificate_set_x509_trust_file(t->own_cred, cafile,
		    GNUTLS_X509_FMT_PEM);
		if (r == 0)
			r = GNUTLS_E_NO_CERTIFICATE_FOUND;
		if (r < 0)
			goto fail;
		/* The handshake fails unless the chain leads to cafile and the
		 * certificate names servername. */
		gnutls_session_set_verify_cert(t->s, servername, 0);
	}
	return t;
fail:
	/* Reported by the first handshake; see the top of the file. */
	conn_fail(t, what, r);
	return t;
}

/* Map GnuTLS's "try again" to what the caller must wait for. */
static enum tls_status
want(struct tls_conn *t)
{
	return gnutls_record_get_direction(t->s) ? TLS_WANT_WRITE :
	    TLS_WANT_READ;
}

static int
is_again(int r)
{
	return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED;
}

static void
handshake_error(struct tls_conn *t, int r)
{
	gnutls_datum_t out;
	unsigned int status;

	t->failed = 1;
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		status = gnutls_session_get_verify_cert_status(t->s);
		if (gnutls_certificate_verification_status_print(status,
		    GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(t->err, sizeof(t->err), "handshake: %s",
			    (const char *)out.data);
			gnutls_free(out.data);
			return;
		}
	}
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		snprintf(t->err, sizeof(t->err), "handshake: peer sent alert: %s",
		    gnutls_alert_get_name(gnutls_alert_get(t->s)));
		return;
	}
	seterr(t->err, sizeof(t->err), "handshake", r);
}

enum tls_status
tls_conn_handshake(struct tls_conn *t)
{
	int r;

	if (t->failed)
		return TLS_FAILED;
	if (t->handshaken)
		return TLS_DONE;
	for (;;) {
		r = gnutls_handshake(t->s);
		if (r == GNUTLS_E_SUCCESS)
			break;
		if (is_again(r))
			return want(t);
		if (r == GNUTLS_E_PREMATURE_TERMINATION) {
			t->peer_closed = 1;
			seterr(t->err, sizeof(t->err),
			    "peer closed during handshake", 0);
			return TLS_CLOSED;
		}
		if (!gnutls_error_is_fatal(r))
			continue;	/* warning alerts and the like */
		handshake_error(t, r);
		if (r != GNUTLS_E_FATAL_ALERT_RECEIVED &&
		    r != GNUTLS_E_PUSH_ERROR && r != GNUTLS_E_PULL_ERROR) {
			/* Tell the peer why; best effort, the session is over
			 * whether or not the alert gets out. */
			(void)gnutls_alert_send_appropriate(t->s, r);
		}
		return TLS_FAILED;
	}
	t->handshaken = 1;
	return TLS_DONE;
}

/* Read and write drive an unfinished handshake first. */
static enum tls_status
ready(struct tls_conn *t)
{
	if (t->failed)
		return TLS_FAILED;
	if (t->handshaken)
		return TLS_DONE;
	return tls_conn_handshake(t);
}

enum tls_status
tls_conn_read(struct tls_conn *t, struct buf *in)
{
	enum tls_status st;
	size_t room, got = 0;
	ssize_t r;

	if ((st = ready(t)) != TLS_DONE)
		return st;
	if (t->peer_closed)
		return TLS_CLOSED;
	for (;;) {
		room = TLS_READ_CHUNK;
		if (in->max) {
			/* Full: let the caller consume before more is decrypted. */
			if (buf_len(in) >= in->max)
				return TLS_DONE;
			if (room > in->max - buf_len(in))
				room = in->max - buf_len(in);
		}
		if (buf_reserve(in, room) == -1) {
			t->failed = 1;
			snprintf(t->err, sizeof(t->err), "read buffer: %s",
			    strerror(errno));
			return TLS_FAILED;
		}
		r = gnutls_record_recv(t->s, in->data + in->len, room);
		if (r > 0) {
			in->len += (size_t)r;
			got += (size_t)r;
			continue;
		}
		if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) {
			/* The last bytes stay in in; the caller may use them. */
			t->peer_closed = 1;
			return TLS_CLOSED;
		}
		if (is_again((int)r))
			return got > 0 ? TLS_DONE : want(t);
		if (r == GNUTLS_E_REHANDSHAKE) {
			/* No renegotiation: a client may ignore the server's
			 * request (RFC 5246 7.4.1.1); a client asking us would
			 * only wait forever, so end it. An alert is not sent
			 * because a half-sent one would confuse a later write. */
			if (!t->server)
				continue;
			conn_fail(t, "client asked for renegotiation", 0);
			return TLS_FAILED;
		}
		if (!gnutls_error_is_fatal((int)r))
			continue;	/* warning alert, key update */
		if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
			t->failed = 1;
			snprintf(t->err, sizeof(t->err), "peer sent alert: %s",
			    gnutls_alert_get_name(gnutls_alert_get(t->s)));
			return TLS_FAILED;
		}
		conn_fail(t, "read", (int)r);
		return TLS_FAILED;
	}
}

enum tls_status
tls_conn_write(struct tls_conn *t, struct buf *out)
{
	enum tls_status st;
	size_t len;
	ssize_t r;

	if ((st = ready(t)) != TLS_DONE)
		return st;
	while (t->send_pending > 0 || buf_len(out) > 0) {
		/* After AGAIN GnuTLS wants the same call again; it still holds
		 * the record and answers with the length first asked for. */
		len = t->send_pending ? t->send_pending : buf_len(out);
		r = gnutls_record_send(t->s, buf_data(out), len);
		if (r > 0) {
			t->send_pending = 0;
			buf_consume(out, (size_t)r);
			continue;
		}
		if (is_again((int)r)) {
			t->send_pending = len;
			return want(t);
		}
		conn_fail(t, "write", r < 0 ? (int)r : GNUTLS_E_INTERNAL_ERROR);
		return TLS_FAILED;
	}
	return TLS_DONE;
}

enum tls_status
tls_conn_bye(struct tls_conn *t)
{
	int r;

	if (t->failed)
		return TLS_FAILED;
	if (!t->handshaken)
		return TLS_DONE;	/* nothing to close cleanly */
	/* SHUT_WR: send close_notify without waiting for the peer's. */
	r = gnutls_bye(t->s, GNUTLS_SHUT_WR);
	if (r == GNUTLS_E_SUCCESS)
		return TLS_DONE;
	if (is_again(r))
		return want(t);
	conn_fail(t, "close", r);
	return TLS_FAILED;
}

const char *
tls_conn_sni(const struct tls_conn *t)
{
	return t->sni[0] != '\0' ? t->sni : NULL;
}

const char *
tls_conn_error(const struct tls_conn *t)
{
	return t->err;
}

const char *
tls_conn_describe(const struct tls_conn *t, char *out, size_t outlen)
{
	const char *proto, *cipher;

	if (outlen == 0)
		return out;
	if (!t->handshaken) {
		snprintf(out, outlen, "none");
		return out;
	}
	proto = gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	cipher = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
	snprintf(out, outlen, "%s/%s", proto ? proto : "unknown",
	    cipher ? cipher : "unknown");
	return out;
}

void
tls_conn_free(struct tls_conn *t)
{
	if (t == NULL)
		return;
	gnutls_deinit(t->s);
	if (t->own_cred != NULL)
		gnutls_certificate_free_credentials(t->own_cred);
	tls_sni_set_unref(t->sni_set);
	free(t);
}

/*
 * Development certificates.
 */

struct keypair {
	gnutls_x509_privkey_t	 key;
	gnutls_x509_crt_t	 crt;
};

static void
keypair_free(struct keypair *kp)
{
	if (kp->crt != NULL)
		gnutls_x509_crt_deinit(kp->crt);
	if (kp->key != NULL)
		gnutls_x509_privkey_deinit(kp->key);
	kp->crt = NULL;
	kp->key = NULL;
}

static int
path_join(char *out, size_t outlen, const char *dir, const char *name,
    char *err, size_t errlen)
{
	int n;

	n = snprintf(out, outlen, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= outlen) {
		seterr(err, errlen, "certificate directory path too long", 0);
		return -1;
	}
	return 0;
}

static int
is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* mkdir -p, with the last component (the key directory) mode 0700. */
static int
make_dir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	char *p;
	int n;

	n = snprintf(path, sizeof(path), "%s", dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		seterr(err, errlen, "certificate directory path too long", 0);
		return -1;
	}
	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST) {
			syserr(err, errlen, "mkdir", path);
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		syserr(err, errlen, "mkdir", path);
		return -1;
	}
	return 0;
}

/* Write data to dir/name through a temporary file, fsync and rename, so a
 * crash leaves either the old file or the whole new one. */
static int
write_atomic(const char *dir, const char *name, const gnutls_datum_t *d,
    mode_t mode, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX], tname[NAME_MAX];
	size_t off = 0;
	ssize_t w;
	int fd = -1, n;

	n = snprintf(tname, sizeof(tname), ".%s.XXXXXX", name);
	if (n < 0 || (size_t)n >= sizeof(tname) ||
	    path_join(tmp, sizeof(tmp), dir, tname, err, errlen) == -1 ||
	    path_join(path, sizeof(path), dir, name, err, errlen) == -1) {
		seterr(err, errlen, "certificate path too long", 0);
		return -1;
	}
	/* mkstemp creates the file 0600, so a key is never readable by others. */
	if ((fd = mkstemp(tmp)) == -1) {
		syserr(err, errlen, "create", tmp);
		return -1;
	}
	if (fchmod(fd, mode) == -1) {
		syserr(err, errlen, "chmod", tmp);
		goto fail;
	}
	while (off < d->size) {
		w = write(fd, d->data + off, d->size - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			syserr(err, errlen, "write", tmp);
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1) {
		syserr(err, errlen, "fsync", tmp);
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		syserr(err, errlen, "close", tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		syserr(err, errlen, "rename to", path);
		goto fail;
	}
	return 0;
fail:
	/* Already failing: the first error is the one to report. */
	if (fd != -1)
		(void)close(fd);
	(void)unlink(tmp);
	return -1;
}

static int
sync_dir(const char *dir, char *err, size_t errlen)
{
	int fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		syserr(err, errlen, "open", dir);
		return -1;
	}
	if (fsync(fd) == -1) {
		syserr(err, errlen, "fsync", dir);
		(void)close(fd);
		return -1;
	}
	if (close(fd) == -1) {
		syserr(err, errlen, "close", dir);
		return -1;
	}
	return 0;
}

static int
write_crt(const char *dir, const char *name, gnutls_x509_crt_t crt,
    char *err, size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 };
	int r;

	if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d)) < 0) {
		seterr(err, errlen, "export certificate", r);
		return -1;
	}
	r = write_atomic(dir, name, &d, 0644, err, errlen);
	gnutls_free(d.data);
	return r;
}

static int
write_key(const char *dir, const char *name, gnutls_x509_privkey_t key,
    char *err, size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 };
	int r;

	/* Unencrypted PKCS#8 ("PRIVATE KEY"), which every TLS library reads. */
	if ((r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM,
	    NULL, GNUTLS_PKCS_PLAIN, &d)) < 0) {
		seterr(err, errlen, "export key", r);
		return -1;
	}
	r = write_atomic(dir, name, &d, 0600, err, errlen);
	gnutls_memset(d.data, 0, d.size);	/* keys do not linger in freed memory */
	gnutls_free(d.data);
	return r;
}

/* Fields common to the CA and the server certificate. */
static int
crt_common(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *cn,
    char *err, size_t errlen)
{
	unsigned char serial[16], keyid[64];
	size_t idlen = sizeof(keyid);
	time_t now = time(NULL);
	int r;

	if ((r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0) {
		seterr(err, errlen, "random serial", r);
		return -1;
	}
	/* Positive and without a leading zero byte, as RFC 5280 wants. */
	serial[0] = (serial[0] & 0x7f) | 0x40;
	if ((r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
	    0, cn, strlen(cn))) < 0 ||
	    /* An hour back so clocks a little behind still accept it. */
	    (r = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt,
	    now + (time_t)DEV_CERT_DAYS * 24 * 3600)) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (r = gnutls_x509_crt_get_key_id(crt, 0, keyid, &idlen)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_key_id(crt, keyid, idlen)) < 0) {
		seterr(err, errlen, "certificate fields", r);
		return -1;
	}
	return 0;
}

static int
keypair_generate(struct keypair *kp, char *err, size_t errlen)
{
	int r;

	if ((r = gnutls_x509_privkey_init(&kp->key)) < 0) {
		kp->key = NULL;
		seterr(err, errlen, "key", r);
		return -1;
	}
	if ((r = gnutls_x509_privkey_generate(kp->key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0) {
		seterr(err, errlen, "generate key", r);
		return -1;
	}
	if ((r = gnutls_x509_crt_init(&kp->crt)) < 0) {
		kp->crt = NULL;
		seterr(err, errlen, "certificate", r);
		return -1;
	}
	return 0;
}

static int
ca_generate(struct keypair *ca, char *err, size_t errlen)
{
	int r;

	if (keypair_generate(ca, err, errlen) == -1 ||
	    crt_common(ca->crt, ca->key, "mailnode dev CA", err, errlen) == -1)
		return -1;
	if ((r = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, 0)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(ca->crt,
	    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN |
	    GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key,
	    GNUTLS_DIG_SHA256, 0)) < 0) {
		seterr(err, errlen, "CA certificate", r);
		return -1;
	}
	return 0;
}

static int
ca_load(struct keypair *ca, const char *crtpath, const char *keypath,
    char *err, size_t errlen)
{
	gnutls_datum_t cd = { NULL, 0 }, kd = { NULL, 0 };
	int r, ret = -1;

	if ((r = gnutls_load_file(crtpath, &cd)) < 0) {
		cd.data = NULL;
		seterr(err, errlen, crtpath, r);
		goto fail;
	}
	if ((r = gnutls_load_file(keypath, &kd)) < 0) {
		kd.data = NULL;
		seterr(err, errlen, keypath, r);
		goto fail;
	}
	if ((r = gnutls_x509_crt_init(&ca->crt)) < 0) {
		ca->crt = NULL;
		seterr(err, errlen, "certificate", r);
		goto fail;
	}
	if ((r = gnutls_x509_crt_import(ca->crt, &cd, GNUTLS_X509_FMT_PEM)) < 0) {
		seterr(err, errlen, crtpath, r);
		goto fail;
	}
	if ((r = gnutls_x509_privkey_init(&ca->key)) < 0) {
		ca->key = NULL;
		seterr(err, errlen, "key", r);
		goto fail;
	}
	if ((r = gnutls_x509_privkey_import2(ca->key, &kd, GNUTLS_X509_FMT_PEM,
	    NULL, 0)) < 0) {
		seterr(err, errlen, keypath, r);
		goto fail;
	}
	ret = 0;
fail:
	gnutls_free(cd.data);
	if (kd.data != NULL) {
		gnutls_memset(kd.data, 0, kd.size);
		gnutls_free(kd.data);
	}
	return ret;
}

static int
add_san_ip(gnutls_x509_crt_t crt, int af, const char *ip)
{
	unsigned char a[16];

	if (inet_pton(af, ip, a) != 1)
		return GNUTLS_E_INVALID_REQUEST;
	return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS,
	    a, af == AF_INET ? 4 : 16, GNUTLS_FSAN_APPEND);
}

static int
add_san_dns(gnutls_x509_crt_t crt, const char *name)
{
	return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
	    name, strlen(name), GNUTLS_FSAN_APPEND);
}

/* Letters, digits, hyphens and inner dots: what a SAN dNSName may hold. */
static int
is_dns_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return 0;
		if (s[i] == '.' && s[i + 1] == '.')
			return 0;
	}
	return 1;
}

static int
server_generate(struct keypair *srv, struct keypair *ca, char *err,
    size_t errlen)
{
	unsigned char keyid[64];
	size_t idlen = sizeof(keyid);
	char host[TLS_NAMELEN];
	int r;

	if (keypair_generate(srv, err, errlen) == -1 ||
	    crt_common(srv->crt, srv->key, "localhost", err, errlen) == -1)
		return -1;
	if ((r = gnutls_x509_crt_set_basic_constraints(srv->crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(srv->crt,
	    GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_key_purpose_oid(srv->crt,
	    GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (r = add_san_dns(srv->crt, "localhost")) < 0 ||
	    (r = add_san_ip(srv->crt, AF_INET, "127.0.0.1")) < 0 ||
	    (r = add_san_ip(srv->crt, AF_INET6, "::1")) < 0) {
		seterr(err, errlen, "server certificate", r);
		return -1;
	}
	/* The host name is a convenience; a node without one still works. */
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if (is_dns_name(host) && strcmp(host, "localhost") != 0 &&
		    (r = add_san_dns(srv->crt, host)) < 0) {
			seterr(err, errlen, "server certificate host name", r);
			return -1;
		}
	}
	if ((r = gnutls_x509_crt_get_subject_key_id(ca->crt, keyid, &idlen,
	    NULL)) < 0) {
		/* A CA without one (not ours): derive it from its key. */
		idlen = sizeof(keyid);
		r = gnutls_x509_crt_get_key_id(ca->crt, 0, keyid, &idlen);
	}
	if (r < 0 ||
	    (r = gnutls_x509_crt_set_authority_key_id(srv->crt, keyid,
	    idlen)) < 0 ||
	    (r = gnutls_x509_crt_sign2(srv->crt, ca->crt, ca->key,
	    GNUTLS_DIG_SHA256, 0)) < 0) {
		seterr(err, errlen, "sign server certificate", r);
		return -1;
	}
	return 0;
}

int
tls_dev_certs_ensure(const char *dir, char *err, size_t errlen)
{
	char ca_crt[PATH_MAX], ca_key[PATH_MAX], srv_crt[PATH_MAX],
	    srv_key[PATH_MAX];
	struct keypair ca = { NULL, NULL }, srv = { NULL, NULL };
	int have_ca, ret = -1;

	if (path_join(ca_crt, sizeof(ca_crt), dir, "ca.pem", err, errlen) ||
	    path_join(ca_key, sizeof(ca_key), dir, "ca-key.pem", err, errlen) ||
	    path_join(srv_crt, sizeof(srv_crt), dir, "server.pem", err, errlen) ||
	    path_join(srv_key, sizeof(srv_key), dir, "server-key.pem", err,
	    errlen))
		goto fail;
	have_ca = is_file(ca_crt) && is_file(ca_key);
	if (have_ca && is_file(srv_crt) && is_file(srv_key))
		return 0;	/* nothing to do; nothing allocated yet */
	if (make_dir(dir, err, errlen) == -1)
		goto fail;
	/* Keep an existing CA: clients may already trust it. The CA is written
	 * before the server pair, and the key before its certificate, so an
	 * interrupted run is finished by the next one. */
	if (have_ca) {
		if (ca_load(&ca, ca_crt, ca_key, err, errlen) == -1)
			goto fail;
	} else {
		if (ca_generate(&ca, err, errlen) == -1 ||
		    write_key(dir, "ca-key.pem", ca.key, err, errlen) == -1 ||
		    write_crt(dir, "ca.pem", ca.crt, err, errlen) == -1)
			goto fail;
	}
	if (server_generate(&srv, &ca, err, errlen) == -1 ||
	    write_key(dir, "server-key.pem", srv.key, err, errlen) == -1 ||
	    write_crt(dir, "server.pem", srv.crt, err, errlen) == -1 ||
	    sync_dir(dir, err, errlen) == -1)
		goto fail;
	ret = 0;
fail:
	keypair_free(&srv);
	keypair_free(&ca);
	return ret;
}
