/* queue_api: the mail queue through the node's API (list, show, retry,
 * hold, release, delete) and its figures for status (depth, bytes, age of
 * the oldest message), refreshed in the background. */
#ifndef MAILNODE_QUEUE_API_H
#define MAILNODE_QUEUE_API_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"

void	 queue_api_init(const char *spool_dir);
/* Take the request if it is a /v1/queue route. */
bool	 queue_api_handle(struct api_request *);
/* Refresh the figures every interval from the calling loop. */
void	 queue_api_watch(unsigned interval_ms);
/* The last figures; false until the first refresh came back. */
bool	 queue_api_figures(uint64_t *depth, uint64_t *bytes, uint64_t *oldest_age);

#endif
