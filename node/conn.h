/* conn: the client connections of the protocol services (smtp, imap, pop3,
 * ...). A service's listening sockets are watched by every loop; the loop
 * that accepts a connection runs it to its end. conn owns the socket, the
 * optional TLS session (implicit or STARTTLS), bounded input and output
 * buffers, the idle timeout and the session's registry entry; the protocol
 * sees lines in and replies out through struct conn_ops. */
#ifndef MAILNODE_CONN_H
#define MAILNODE_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "access.h"
#include "buf.h"
#include "service.h"
#include "tls.h"

struct conn;
struct conn_listener;

struct conn_ops {
	/* A new session (after the TLS handshake with implicit TLS): greet.
	 * Return -1 to refuse it (write the reply first, it is flushed). */
	int	(*open)(struct conn *);
	/* New bytes in conn_input(); consume what was handled. */
	void	(*input)(struct conn *);
	/* The STARTTLS handshake finished (not called for implicit TLS). */
	void	(*tls_ready)(struct conn *);
	/* Idle timeout or forced end (service stopped now, node stopping):
	 * queue the protocol's goodbye; the connection closes after it. */
	void	(*goodbye)(struct conn *, bool idle);
	/* The connection is gone: free the protocol state. */
	void	(*close)(struct conn *);
	/* Optional: the queued output fell under CONN_OUT_LOW after
	 * conn_want_drained; a protocol streaming a large reply writes its
	 * next piece here. */
	void	(*drained)(struct conn *);
	/* Written to connections over maxClients before closing them. */
	const char *busy_reply;
	/* Written to connections an access rule refuses, and to those over a
	 * connection limit, before closing them (service rules at accept;
	 * tenant rules when attributed by dedicated address or SNI). */
	const char *deny_reply;
	const char *limit_reply;
	/* Caps of the buffers (a protocol line or literal chunk must fit in). */
	size_t	 max_input;
};

/* Serve s's listening sockets (already bound) with ops, on every loop.
 * creds may be NULL when the service offers no TLS. */
struct conn_listener *conn_listen(struct service *s, const struct conn_ops *ops,
		    struct tls_creds *creds, bool implicit_tls, char *err, size_t errlen);
/* Stop accepting at once (the port is free for a new bind when this
 * returns); with drain, sessions finish on their own, otherwise each gets
 * its goodbye. The listener frees itself when its last session ends. */
void		 conn_listener_stop(struct conn_listener *, bool drain);

struct buf	*conn_input(struct conn *);
int		 conn_write(struct conn *, const void *, size_t);
int		 conn_printf(struct conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
/* Output is bounded by the writer: a long reply goes out in pieces, each
 * written while fewer than CONN_OUT_LOW bytes wait to be sent. */
#define CONN_OUT_LOW	(256 * 1024)
size_t		 conn_output_pending(const struct conn *);
/* Call ops->drained once, from the loop, when the pending output is under
 * CONN_OUT_LOW (on the loop's next turn if it already is). */
void		 conn_want_drained(struct conn *);
/* Process buffered input again (after the protocol paused for an
 * asynchronous answer, e.g. a database lookup, and left input unconsumed).
 * Must run on the connection's loop. */
void		 conn_resume_input(struct conn *);
/* Stop reading input until conn_resume_input (no new events meanwhile). */
void		 conn_pause_input(struct conn *);
/* Close once the queued output is sent. */
void		 conn_close(struct conn *);
/* Switch to TLS once the queued output (the "go ahead" reply) is sent.
 * Input already buffered is discarded, so nothing sent in clear before the
 * handshake is taken as sent under TLS. -1 if the service has no TLS. */
int		 conn_starttls(struct conn *);
bool		 conn_tls_active(const struct conn *);
bool		 conn_tls_available(const struct conn *);
const char	*conn_sni(const struct conn *);
void		*conn_proto(const struct conn *);
void		 conn_set_proto(struct conn *, void *);
struct service	*conn_service(const struct conn *);
const char	*conn_peer(const struct conn *);
uint64_t	 conn_id(const struct conn *);
/* Who the session is, for listings (login, tenant attribution). */
void		 conn_set_identity(struct conn *, const char *tenant, const char *user);
/* Attribute the session to a tenant (its login or recipient domain): the
 * tenant's access rules and limits apply from now on, and the session is
 * listed under it. Returns ACCESS_OK, or the refusal, counted; the
 * protocol answers it. A session met by a second tenant (SMTP) is held
 * by the first and checked against the second's access rules. */
enum access_verdict conn_attribute(struct conn *, const char *tenant);
const struct addr *conn_peer_addr(const struct conn *);
/* Whether the session's service or tenant exempts its address from limits
 * (and from login throttling). */
bool		 conn_limits_exempt(const struct conn *);
/* Count a failed login for the service and for the tenant: the one the
 * connection is attributed to, else the one of the account tried (NULL or
 * "" when the account does not exist). */
void		 conn_count_auth_failure(struct conn *, const char *tenant);

#endif
