/* mib_mailnode: MAILNODE-MIB's scalars and tables; mib_std: the rows of
 * NETWORK-SERVICES-MIB and MTA-MIB. */
#ifndef MAILNODE_MIB_MAILNODE_H
#define MAILNODE_MIB_MAILNODE_H

#include <time.h>

int	 mib_mailnode_register(void);
/* started: when the subagent started (TimeStamp values count from it). */
int	 mib_std_register(time_t started);

#endif
