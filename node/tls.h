/* tls: GnuTLS sessions over non-blocking sockets for the protocol services
 * (STARTTLS and implicit TLS), server credentials with SNI, and the dev CA. */
#ifndef MAILNODE_TLS_H
#define MAILNODE_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct tls_creds;
struct tls_conn;

enum tls_status {
	TLS_DONE = 0,		/* finished (handshake complete, bytes moved) */
	TLS_WANT_READ = 1,	/* wait for the fd to become readable, call again */
	TLS_WANT_WRITE = 2,	/* wait for the fd to become writable, call again */
	TLS_CLOSED = 3,		/* peer closed (close_notify or EOF) */
	TLS_FAILED = -1		/* fatal; tls_conn_error() says why */
};

/* Server credentials from PEM files (chain first, then key). */
struct tls_creds *tls_creds_load(const char *certfile, const char *keyfile,
		    char *err, size_t errlen);
/* Extra certificate chosen when the client's SNI name matches one of the
 * names in the certificate (per-domain certificates). PEM in memory. Adds
 * to the installed set in place: only before any session uses the creds. */
int		 tls_creds_add_sni(struct tls_creds *, const char *cert_pem,
		    const char *key_pem, char *err, size_t errlen);
void		 tls_creds_free(struct tls_creds *);

/* A set of per-domain certificates, built aside and then installed whole
 * while sessions run on other threads. A handshake holds a reference to
 * the set it chose from until its session ends, so a replaced set is freed
 * only when the last session using one of its certificates is gone. */
struct tls_sni_set;
struct tls_sni_set *tls_sni_set_new(void);
/* Parse the pair; -1 (err says why) when either does not parse or the key
 * is not the certificate's. */
int		 tls_sni_set_add(struct tls_sni_set *, const char *cert_pem,
		    const char *key_pem, char *err, size_t errlen);
size_t		 tls_sni_set_count(const struct tls_sni_set *);
/* Drop the caller's reference (a set never installed is freed). */
void		 tls_sni_set_unref(struct tls_sni_set *);
/* Install set (NULL: none) for the next handshakes; takes the caller's
 * reference. Safe while other threads run handshakes with creds. */
void		 tls_creds_set_sni(struct tls_creds *, struct tls_sni_set *);
/* Whether the certificate and key parse and belong together (apply). */
int		 tls_pair_check(const char *cert_pem, const char *key_pem,
		    char *err, size_t errlen);

struct tls_conn	*tls_conn_server(int fd, struct tls_creds *);
/* Client side (remote delivery, tests): verifies against cafile when given,
 * otherwise opportunistic (no verification). */
struct tls_conn	*tls_conn_client(int fd, const char *servername, const char *cafile);
enum tls_status	 tls_conn_handshake(struct tls_conn *);
/* Decrypt what is available into in (bounded by in->max). */
enum tls_status	 tls_conn_read(struct tls_conn *, struct buf *in);
/* Encrypt and send out's content; consumes what was sent. */
enum tls_status	 tls_conn_write(struct tls_conn *, struct buf *out);
/* Send close_notify; may need to be called again on TLS_WANT_WRITE. */
enum tls_status	 tls_conn_bye(struct tls_conn *);
const char	*tls_conn_sni(const struct tls_conn *);	/* NULL if none */
const char	*tls_conn_error(const struct tls_conn *);
/* e.g. "TLS1.3/AES-256-GCM" for session listings and Received: headers. */
const char	*tls_conn_describe(const struct tls_conn *, char *, size_t);
void		 tls_conn_free(struct tls_conn *);	/* does not close fd */

/* Make sure dir holds ca.pem, ca-key.pem, server.pem and server-key.pem,
 * generating a dev CA and a server certificate for localhost, 127.0.0.1,
 * ::1 and the host name when missing. Keys are written mode 0600. */
int		 tls_dev_certs_ensure(const char *dir, char *err, size_t errlen);

#endif
