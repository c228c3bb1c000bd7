/* sendrate: the tenants' limits.sendRate on submission. Counts the messages
 * each tenant's users had accepted in a sliding window, in memory, for the
 * whole node. Safe to call from every loop thread. */
#ifndef MAILNODE_SENDRATE_H
#define MAILNODE_SENDRATE_H

#include <stdbool.h>
#include <stdint.h>

/* Would one more message of tenant fit count per per_s seconds at now_ms
 * (loop_now_ms)? count 0 means no limit. */
bool	 sendrate_allowed(const char *tenant, uint32_t count, uint32_t per_s, uint64_t now_ms);
/* The same, and counts the message when it fits. */
bool	 sendrate_take(const char *tenant, uint32_t count, uint32_t per_s, uint64_t now_ms);
/* Gives back a message taken at taken_ms that was not accepted after all. */
void	 sendrate_give_back(const char *tenant, uint64_t taken_ms);
/* Forget everything (unit tests). */
void	 sendrate_reset(void);

#endif
