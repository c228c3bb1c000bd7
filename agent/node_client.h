/* node_client: one request to mailnoded's control socket (the node's API:
 * "METHOD /path" and a YAML body; the answer is a status code and YAML). */
#ifndef MAILNODE_NODE_CLIENT_H
#define MAILNODE_NODE_CLIENT_H

#include <stddef.h>

#include "buf.h"

/* Where the control socket is (STATE/run/control.sock). */
void	 node_client_init(const char *socket_path, int timeout_ms);
/* The time one request may take from now on (milliseconds). */
void	 node_client_timeout(int timeout_ms);
/* Send and wait for the whole answer; returns the HTTP-like status (200,
 * 400, ...) with the YAML in out, or -1 when the node cannot be reached
 * (err says why). */
int	 node_request(const char *method, const char *path, const char *body, size_t bodylen,
	    struct buf *out, char *err, size_t errlen);

#endif
