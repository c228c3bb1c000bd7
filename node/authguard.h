/* authguard: throttling of failed logins, per client address and per
 * account, across every protocol and loop: each failure makes the next
 * answer slower, and a burst of failures blocks the address (or the
 * account, for addresses not exempt) for a while. */
#ifndef MAILNODE_AUTHGUARD_H
#define MAILNODE_AUTHGUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"

#define AUTHGUARD_WINDOW_S	600	/* failures count for this long */
#define AUTHGUARD_IP_BLOCK	10	/* failures from one address that block it */
#define AUTHGUARD_ACCOUNT_BLOCK	30	/* failures on one account that block it */
#define AUTHGUARD_BLOCK_S	600	/* how long a block lasts */
#define AUTHGUARD_STEP_MS	250	/* added delay per recent failure */
#define AUTHGUARD_MAX_DELAY_MS	5000

enum authguard_verdict {
	AUTHGUARD_OK,
	AUTHGUARD_IP_BLOCKED,
	AUTHGUARD_ACCOUNT_BLOCKED
};

/* Before checking a password: may this address try this account now?
 * exempt: the address is exempt from the service's or tenant's limits. */
enum authguard_verdict authguard_check(const struct addr *, const char *account, bool exempt,
		    uint64_t now);
/* After a failure: how long to wait before answering (milliseconds). */
uint32_t authguard_failed(const struct addr *, const char *account, bool exempt, uint64_t now);
/* After a success: the account's failures are forgotten. */
void	 authguard_succeeded(const struct addr *, const char *account);
/* Total failures recorded, and blocks imposed, since start. */
void	 authguard_totals(uint64_t *failures, uint64_t *blocks);

#endif
