/* imap_session: the IMAP4rev1 state machine (RFC 3501 with IDLE, NAMESPACE,
 * UIDPLUS, MOVE, SPECIAL-USE, LIST-EXTENDED, LIST-STATUS, ENABLE, ID,
 * LITERAL+, SASL-IR, QUOTA, CONDSTORE, ESEARCH, SORT and UNSELECT) behind
 * the imap (STARTTLS) and imaps (implicit TLS) services. Every store access
 * runs on a database worker; the loop never waits. */
#ifndef MAILNODE_IMAP_SESSION_H
#define MAILNODE_IMAP_SESSION_H

#include "service.h"
#include "tls.h"

extern const struct service_handler imap_service;

/* TLS credentials for STARTTLS and implicit TLS (the node keeps them). */
void	 imap_set_tls(struct tls_creds *);

#endif
