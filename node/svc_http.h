/* svc_http: the `http` service. Webmail is served over https only, so the
 * plain-HTTP port answers every request with a permanent redirect to the
 * same path on the https service. */
#ifndef MAILNODE_SVC_HTTP_H
#define MAILNODE_SVC_HTTP_H

#include <stddef.h>

#include "service.h"

extern const struct service_handler svc_http_redirect;

/* The Location for a request: https://HOST[:PORT]PATH. Host comes from the
 * Host header (its port dropped) and is checked; -1 if it is not a valid
 * host name or address literal. */
int	svc_http_location(const char *host_header, const char *uri,
	    unsigned https_port, char *out, size_t outlen);

#endif
