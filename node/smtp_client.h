/* smtp_client: hand one message to a remote SMTP server (RFC 5321), with
 * opportunistic STARTTLS. Blocking, with timeouts (and a cancel fd): for the
 * remote workers' threads, never an event loop. */
#ifndef MAILNODE_SMTP_CLIENT_H
#define MAILNODE_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct resolve;

struct smtp_client_rcpt {
	const char	*address;	/* forward-path without brackets */
	unsigned	 notify;	/* DSN NOTIFY bits as in smtp_parse.h (SMTP_NOTIFY_*), 0: none */
	const char	*orcpt;		/* "rfc822;addr" (not xtext-encoded) or "" */
	/* results */
	int		 code;		/* the reply to RCPT, or to DATA for accepted recipients; 0 if never tried */
	char		 enhanced[16];	/* "2.0.0", "5.1.1", "" if the server gave none */
	char		 text[256];	/* reply text (first line), for logs and bounces */
};

struct smtp_client_msg {
	const char	*helo;		/* our name */
	const char	*sender;	/* reverse-path, "" for <> */
	const char	*envid;		/* "" if none (not xtext-encoded) */
	bool		 ret_hdrs;
	bool		 smtputf8;	/* the message needs SMTPUTF8 */
	int		 body_fd;	/* the message file, read from offset 0 to EOF */
	uint64_t	 size;		/* of the file, for SIZE= */
	const char	*return_path_prefix;	/* NULL, or a header block to send before the file (ours) */
	const int	*cancel_fd;	/* NULL, or an fd that turns readable when the node stops:
					 * every wait then ends at once with a temporary failure */
	struct resolve	*resolver;	/* the caller thread's DNS channel; NULL: one for this call */
	struct smtp_client_rcpt *rcpts;
	size_t		 nrcpts;
	/* result */
	bool		 dsn_offered;	/* the server that answered offered DSN (RFC 3461) */
};

enum smtp_client_result { SMTPC_DONE = 0, SMTPC_TEMPFAIL = -1 };

/* command_s: each reply to a command (greeting, EHLO, MAIL, RCPT, DATA,
 * QUIT); data_s: each block of the message sent and the reply to the final
 * "."; connect_s: the TCP connect (per address). RFC 5321 4.5.3.2 values:
 * 30, 300, 600. */
struct smtp_client_timeouts { unsigned connect_s, command_s, data_s; };

/* Connect to host:port (a name, an IP literal, or "[IP]"/"[IPv6:IP]"; each
 * address resolve_host gives is tried until one greets with 2xx), EHLO (HELO
 * when EHLO is refused with 5xx), STARTTLS when offered, MAIL FROM with
 * SIZE/BODY=8BITMIME/SMTPUTF8/RET/ENVID as offered and set, RCPT TO each
 * (NOTIFY/ORCPT when DSN is offered), DATA with dot-stuffing, QUIT.
 *
 * TLS: without cafile it is opportunistic: an unverified certificate is
 * accepted, a server without STARTTLS (or refusing it) gets plain text, and
 * a failed handshake makes one new connection without TLS. With cafile, TLS
 * is required and verified against cafile and host: no STARTTLS, a refusal
 * or a failed verification is a temporary failure, never plain text.
 * tls_desc gets e.g. "TLS1.3/AES-256-GCM", or "none".
 *
 * SMTPC_DONE: every recipient has a verdict in rcpts[i].code (2xx
 * delivered, 4xx try later, 5xx permanent); recipients refused at RCPT keep
 * that reply, accepted ones get the reply to the final ".". When every
 * recipient is refused no DATA is sent.
 *
 * SMTPC_TEMPFAIL, with err: the connection, greeting, EHLO, STARTTLS, MAIL
 * or DATA failed as a whole. *permanent is set when the server answered 5xx
 * to the greeting, MAIL or DATA (or the message is larger than the server's
 * SIZE, or needs SMTPUTF8 that it does not offer); the caller then treats
 * every recipient as 5xx, otherwise as 4xx. No recipient has a 2xx code
 * then: those refused at RCPT keep their 4xx/5xx reply, those the server
 * refused at DATA have that reply, the rest have code 0.
 *
 * Never logs message content; recipients only at debug level. */
int	 smtp_client_send(const char *host, unsigned port, const char *cafile,
	    const struct smtp_client_timeouts *, struct smtp_client_msg *, bool *permanent,
	    char *tls_desc, size_t tls_desc_len, char *err, size_t errlen);

#endif
