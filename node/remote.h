/* remote: delivery of queued mail to other servers by a small pool of
 * worker threads, each with its own MariaDB connection: the destination (a
 * route for the domain, a relay host, or the recipient domain's MX hosts,
 * else the domain itself), the SMTP hand-over, and what each recipient's
 * answer means: delivered, retried later with backoff, or failed and
 * reported to the sender (a bounce, RFC 3464), with one delay warning on
 * the way. A worker claims its recipients with a lease in their rows, so
 * two workers (or two nodes on one database) never hand over the same
 * recipient at once, and at most per_dest workers talk to one destination.
 * DNS goes through resolve.c (c-ares), one channel per worker, each lookup
 * bounded and ended at once by a stop; the pool is what keeps a slow
 * resolver or a black-holed MX from holding up the rest. */
#ifndef MAILNODE_REMOTE_H
#define MAILNODE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <mysql.h>

#include "db.h"
#include "resolve.h"

#define REMOTE_ROUTES_MAX	16
#define REMOTE_WORKERS_MAX	64

/* Mail for one domain goes to this host instead of its MX hosts. */
struct remote_route {
	char		 domain[256];	/* lower case */
	char		 host[256];
	unsigned	 port;
};

struct remote_conf {
	char		 relay_host[256];	/* "" for MX lookups */
	unsigned	 relay_port;
	unsigned	 mx_port;		/* where MX hosts (and the domain without MX) listen: 25 */
	struct resolve_conf dns;		/* name servers, lookup bound */
	unsigned	 lifetime;		/* seconds a message may wait before it bounces */
	unsigned	 retry_min;		/* first retry delay, doubled per attempt */
	unsigned	 retry_max;
	unsigned	 timeout;		/* per SMTP command, seconds */
	unsigned	 delay_warning;		/* seconds deferred before a delay report; 0: none */
	unsigned	 workers;		/* remote delivery threads */
	unsigned	 per_dest;		/* connections at once to one destination */
	struct remote_route routes[REMOTE_ROUTES_MAX];
	size_t		 nroutes;
};

/* node_id names this node in the leases it takes (a host name and a hash of
 * its spool directory): its own are cleared when it starts again. */
void	 remote_init(const struct remote_conf *, const char *spool_msg_dir, const char *node_id);
/* Start the workers; done() is called after each hand-over (the local
 * runner retires finished messages). */
int	 remote_start(const struct db_conf *, void (*done)(void), char *err, size_t errlen);
/* Workers give up what they hold at once (it stays queued, its lease is
 * released) and are joined. */
void	 remote_stop(void);
/* New mail: look now rather than at the next poll. */
void	 remote_kick(void);
/* The retry delay after attempts failed ones (retry_min doubled, capped). */
uint64_t remote_backoff(uint64_t attempts);

#endif
