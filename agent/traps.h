/* traps: the notifications of MAILNODE-MIB, found by comparing each new
 * snapshot with the last (service state changes, queue backlog, tenant
 * limits, bursts of failed logins), and their thresholds, kept in a state
 * file so they survive restarts. */
#ifndef MAILNODE_TRAPS_H
#define MAILNODE_TRAPS_H

#include <stdint.h>

#include "snapshot.h"

enum traps_threshold {
	THR_QUEUE_BACKLOG,		/* messages; 0 off */
	THR_AUTH_BURST,			/* failed logins per interval; 0 off */
	THR_AUTH_INTERVAL,		/* seconds */
	THR_TENANT_LIMIT_PCT,		/* percent of a limit; 0 off */
	TRAPS_NTHRESHOLDS
};

/* Load the thresholds from path (defaults when it does not exist). */
int	 traps_init(const char *state_path);
uint32_t traps_threshold(unsigned which);
void	 traps_threshold_set(unsigned which, uint32_t value);
int	 traps_thresholds_save(void);
/* Compare s with what was seen last and send what changed. */
void	 traps_check(const struct snapshot *s);

#endif
