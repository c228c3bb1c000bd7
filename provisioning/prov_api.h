/* prov_api: the provisioning routes of the node's API (apply, get, delete,
 * mailbox passwords, admin tokens), served through every transport. */
#ifndef MAILNODE_PROV_API_H
#define MAILNODE_PROV_API_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"

/* Take the request if it is a provisioning route (and answer it, maybe
 * later); false leaves it to the other routes. */
bool	 prov_api_handle(struct api_request *);
/* "mn_" + base64url of raw: the form of admin API tokens. */
int	 prov_token_encode(const unsigned char *raw, size_t n, char *out, size_t outlen);
/* Tokens are stored as SHA-256, hex. */
int	 prov_token_hash(const char *token, char hex[65]);

#endif
