/* tls_domains: the per-domain certificates (Domain spec.tls) presented by
 * SNI on every TLS service. Loaded at start and again within a second of a
 * change to the directory; a pair that does not load is logged and
 * skipped, and the other domains keep theirs. */
#ifndef MAILNODE_TLS_DOMAINS_H
#define MAILNODE_TLS_DOMAINS_H

#include <stdbool.h>
#include <stddef.h>

#include "tls.h"

/* Load now, then poll the configuration generation every second; runs on
 * the calling loop (loop 0) with the database pool. creds outlives it. */
void	 tls_domains_start(struct tls_creds *);
void	 tls_domains_stop(void);
/* Load again at once (after an apply by this node). */
void	 tls_domains_reload(void);
/* How many domain certificates are installed (status, tests). */
size_t	 tls_domains_count(void);

#endif
