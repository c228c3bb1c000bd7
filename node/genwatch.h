/* genwatch: reload something read from the directory whenever the
 * configuration generation (node_meta.config_generation) moves. Polled
 * every second from the loop that starts it, and at once on request; one
 * reload runs at a time, and a request meanwhile runs one more after it.
 * tenant_access and tls_domains are built on it. */
#ifndef MAILNODE_GENWATCH_H
#define MAILNODE_GENWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <mysql.h>

#include "loop.h"

struct genwatch {
	/* The owner's part, set before genwatch_start. */
	void	*owner;
	/* On the watch's loop: a job for the worker (NULL: try next time). */
	void	*(*job_new)(void *owner);
	/* On a database worker, only when the generation moved, on the first
	 * load and after genwatch_kick: read and build; 0, or -1 to try again
	 * at the next tick. */
	int	 (*load)(MYSQL *, void *job);
	/* On the watch's loop, always, to free the job: result 1 when load
	 * built something to install, 0 when nothing moved, -1 when it failed
	 * or the watch is stopping (install nothing). */
	void	 (*job_done)(void *owner, void *job, int result);

	/* genwatch's own. */
	uint64_t		 gen;
	bool			 loaded, force, inflight, again, started, stopping;
	struct loop		*loop;
	struct loop_timer	 timer;
};

/* Load now, then poll every second, on the calling loop. */
void	 genwatch_start(struct genwatch *);
/* No more loads; one in flight comes back with -1. */
void	 genwatch_stop(struct genwatch *);
/* Load again at once, whatever the generation says (after an apply). */
void	 genwatch_kick(struct genwatch *);
/* Whether a load ever succeeded. */
bool	 genwatch_loaded(const struct genwatch *);

#endif
