/* remote: delivery of queued mail to other servers, on the queue runner's
 * thread: the destination (a relay host, or the recipient domain's MX hosts,
 * else the domain itself), the SMTP hand-over, and what each recipient's
 * answer means: delivered, retried later with backoff, or failed and
 * reported to the sender (a bounce, RFC 3464). */
#ifndef MAILNODE_REMOTE_H
#define MAILNODE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <mysql.h>

struct remote_conf {
	char		 relay_host[256];	/* "" for MX lookups */
	unsigned	 relay_port;
	unsigned	 lifetime;		/* seconds a message may wait before it bounces */
	unsigned	 retry_min;		/* first retry delay, doubled per attempt */
	unsigned	 retry_max;
	unsigned	 timeout;		/* per SMTP command, seconds */
};

void	 remote_init(const struct remote_conf *, const char *spool_msg_dir);
/* Hand over what is due; returns how many recipients were attempted. */
size_t	 remote_deliver_due(MYSQL *);

#endif
