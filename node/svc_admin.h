/* svc_admin: the `admin` service, the provisioning API over HTTPS for
 * hosting control panels. Bearer tokens (stored as SHA-256) are scoped to all
 * tenants or to one; requests then go through the node's one API router. */
#ifndef MAILNODE_SVC_ADMIN_H
#define MAILNODE_SVC_ADMIN_H

#include <stddef.h>

#include "service.h"

extern const struct service_handler svc_admin_api;

/* Server certificate and key (PEM) the admin service presents. */
int	 svc_admin_load_tls(const char *certfile, const char *keyfile, char *err, size_t errlen);
void	 svc_admin_free_tls(void);

#endif
