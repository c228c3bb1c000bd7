/* tenant_access: the tenants' access scopes (rules and limits from each
 * tenant's spec) and how a connection is attributed to a tenant: by an
 * address of the node dedicated to it, by the TLS SNI name, or by a login
 * or recipient domain. Reloaded from the directory within a second of any
 * change. Lookups are safe from every loop thread. */
#ifndef MAILNODE_TENANT_ACCESS_H
#define MAILNODE_TENANT_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "access.h"
#include "addr.h"

/* Load now and then poll the configuration generation every second; runs
 * on the calling loop (loop 0) with the database pool. */
void	 tenant_access_start(void);
void	 tenant_access_stop(void);
/* Reload at once (after an apply by this node). */
void	 tenant_access_reload(void);
/* Whether the first load finished (tests and status). */
bool	 tenant_access_loaded(void);

/* The scope of a tenant by name, with a reference for the caller
 * (access_scope_unref); NULL when no such tenant is known. */
struct access_scope *tenant_access_scope(const char *tenant);
/* The tenant owning a host name (an SNI name): the name itself or its
 * closest parent domain. */
bool	 tenant_access_by_host(const char *host, char *tenant, size_t len);
/* The tenant a node address is dedicated to. */
bool	 tenant_access_by_local(const struct addr *, char *tenant, size_t len);

/* Each tenant's counters, in name order (for listings); caller frees. */
struct tenant_access_counts {
	char			name[64];
	struct access_counts	counts;
};
int	 tenant_access_snapshot(struct tenant_access_counts **, size_t *);

#endif
