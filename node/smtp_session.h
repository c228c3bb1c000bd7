/* smtp_session: the SMTP state machine (RFC 5321 with PIPELINING, SIZE,
 * 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, DSN, STARTTLS and AUTH)
 * behind the smtp, submission and smtps services. Recipients are checked
 * against the tenant directory while in RCPT; a message is answered 250 only
 * once the spool holds it durably. */
#ifndef MAILNODE_SMTP_SESSION_H
#define MAILNODE_SMTP_SESSION_H

#include "service.h"
#include "tls.h"

/* smtp: MX inbound for hosted domains, never a relay. */
extern const struct service_handler smtp_inbound;
/* submission (STARTTLS before AUTH) and smtps (implicit TLS): AUTH required,
 * relaying for the node's own users. */
extern const struct service_handler smtp_submission;

/* TLS credentials for STARTTLS and implicit TLS (the node keeps them). */
void	 smtp_set_tls(struct tls_creds *);

#endif
