/* pop3_session: the POP3 state machine (RFC 1939 with CAPA, RESP-CODES,
 * PIPELINING, UIDL, TOP, STLS, SASL PLAIN) behind the pop3 (STLS) and pop3s
 * (implicit TLS) services, over the mailbox store's INBOX. Every store
 * access runs on a database worker; the loop never waits. */
#ifndef MAILNODE_POP3_SESSION_H
#define MAILNODE_POP3_SESSION_H

#include "service.h"
#include "tls.h"

extern const struct service_handler pop3_service;

/* TLS credentials for STLS and implicit TLS (the node keeps them). */
void	 pop3_set_tls(struct tls_creds *);

#endif
