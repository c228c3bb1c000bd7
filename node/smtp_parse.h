/* smtp_parse: SMTP command lines (RFC 5321 with the ESMTP parameters we
 * offer) and mailbox addresses, parsed strictly. Every refusal comes with
 * the full reply to send, code and enhanced status code included. Pure
 * functions over bytes from the network: fuzzed. */
#ifndef MAILNODE_SMTP_PARSE_H
#define MAILNODE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_LINE_MAX		1000	/* RFC 5321 4.5.3.1.4, CRLF included */
#define SMTP_LOCAL_MAX		64	/* octets; more with SMTPUTF8 is refused too */
#define SMTP_DOMAIN_MAX		255
#define SMTP_PATH_MAX		256

enum smtp_verb {
	SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT, SMTP_RSET,
	SMTP_NOOP, SMTP_QUIT, SMTP_VRFY, SMTP_EXPN, SMTP_HELP, SMTP_STARTTLS, SMTP_AUTH,
	SMTP_UNKNOWN
};

/* A reverse-path or forward-path mailbox. */
struct smtp_addr {
	bool	 null;			/* "<>" (MAIL FROM only) */
	bool	 postmaster;		/* "<Postmaster>" without a domain (RCPT only) */
	char	 local[SMTP_LOCAL_MAX * 4 + 1];	/* as sent, quotes removed from a quoted local part */
	bool	 local_quoted;		/* the local part was a quoted string */
	char	 domain[SMTP_DOMAIN_MAX + 1];	/* lower case; an address literal keeps its brackets */
	bool	 literal;		/* domain is [IPv4] or [IPv6:...] */
	bool	 had_route;		/* an obsolete source route (@a,@b:) was given and dropped */
	bool	 utf8;			/* non-ASCII in local part or domain */
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

struct smtp_cmd {
	enum smtp_verb	 verb;
	char		 arg[SMTP_LINE_MAX];	/* HELO/EHLO domain, AUTH mechanism and
						 * initial response, VRFY/EXPN/HELP text */
	struct smtp_addr addr;			/* MAIL, RCPT */
	/* MAIL parameters */
	uint64_t	 size;			/* SIZE=, 0 if absent */
	enum smtp_body	 body;			/* BODY= */
	bool		 smtputf8;		/* SMTPUTF8 */
	bool		 ret_hdrs;		/* RET=HDRS (else FULL or absent) */
	bool		 ret_set;
	char		 envid[101];		/* ENVID=, xtext decoded */
	char		 auth[SMTP_PATH_MAX + 1];	/* AUTH=<mailbox> or "<>" */
	/* RCPT parameters */
	unsigned	 notify;		/* NOTIFY=: bits below; 0 if absent */
	char		 orcpt[SMTP_PATH_MAX + 8];	/* ORCPT=addr-type;xtext decoded */
	/* BDAT */
	uint64_t	 chunk;
	bool		 last;
};

#define SMTP_NOTIFY_NEVER	1
#define SMTP_NOTIFY_SUCCESS	2
#define SMTP_NOTIFY_FAILURE	4
#define SMTP_NOTIFY_DELAY	8

/* What the session offers; parameters of extensions not offered are refused. */
struct smtp_offer {
	bool	 size, eightbitmime, smtputf8, dsn, chunking, binarymime, auth;
};

/* Parse one command line (without CRLF). Returns 0, or -1 with the reply
 * to send in reply ("500 5.5.2 ...", "501 5.5.4 ...", "501 5.1.7 ...",
 * "555 5.5.4 ...", "504 5.5.4 ..."), CRLF included. */
int	 smtp_parse_command(const char *line, size_t len, const struct smtp_offer *,
	    struct smtp_cmd *, char *reply, size_t replylen);
/* A mailbox as in RFC 5321 4.1.2 (Local-part "@" ( Domain / address-literal )),
 * without the angle brackets. 0, or -1 with a reason. */
int	 smtp_parse_mailbox(const char *s, size_t len, bool utf8_ok, struct smtp_addr *,
	    char *why, size_t whylen);
/* The address as one string: local@domain (the local part re-quoted if it
 * needs quotes), "" for the null path. */
int	 smtp_addr_format(const struct smtp_addr *, char *out, size_t outlen);

/* Received: fields counted in a message header as it streams in, in pieces
 * of any size (loop detection, RFC 5321 6.3). Start from all zeros. */
struct smtp_hops {
	unsigned	 received;	/* Received: fields so far */
	bool		 body;		/* the header ended (an empty line) */
	unsigned	 line_len;	/* octets of this line so far, CR not counted */
	unsigned	 matched;	/* of "received:" at this line's start */
};
void	 smtp_hops_feed(struct smtp_hops *, const char *p, size_t n);

#endif
