/* delivery: the `spool` service, the queue runner. It takes queued
 * recipients whose time has come and delivers the local ones into their
 * mailbox's INBOX, exactly once: the body file is linked into the mail root,
 * then one transaction allocates the UID, adds the message, accounts the
 * quota and marks the recipient delivered. Stopping the service stops
 * delivery attempts; accepted mail stays queued. */
#ifndef MAILNODE_DELIVERY_H
#define MAILNODE_DELIVERY_H

#include <stddef.h>

#include "db.h"
#include "remote.h"
#include "service.h"

extern const struct service_handler delivery_runner;

/* Where the spool keeps bodies and where mailboxes keep theirs. */
int	 delivery_init(const char *spool_dir, const char *mail_root, const struct db_conf *,
	    const struct remote_conf *, char *err, size_t errlen);
void	 delivery_fini(void);
/* New mail was queued: look now rather than at the next poll. */
void	 delivery_kick(void);

#endif
