/* stats_api: figures for monitoring (the SNMP subagent, NOC scripts) through
 * the node's API, for the node's own admin:
 *
 *   GET /v1/stats           NodeStats: configuration generation, queue
 *                           detail, node-wide traffic counters, logins
 *   GET /v1/stats/tenants   TenantStatsList: every tenant with its state,
 *                           limits, holdings and live counters, in id order
 */
#ifndef MAILNODE_STATS_API_H
#define MAILNODE_STATS_API_H

#include <stdbool.h>

#include "api.h"

/* Take the request if it is a /v1/stats route (answered later). */
bool	 stats_api_handle(struct api_request *);

#endif
