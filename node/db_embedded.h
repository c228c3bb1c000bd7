/* db_embedded: the node's own private MariaDB server, used when no external
 * database is configured: initialized on first start under the state
 * directory, reachable only through a unix socket, supervised, and stopped
 * with the node. */
#ifndef MAILNODE_DB_EMBEDDED_H
#define MAILNODE_DB_EMBEDDED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "db.h"

struct db_embedded;

/* Initialize the datadir if new, start mariadbd and wait until it answers.
 * Fills conf with how to reach it. Blocking: call before the loops run. */
struct db_embedded *db_embedded_start(const char *state_dir, struct db_conf *conf,
		    char *err, size_t errlen);
pid_t		 db_embedded_pid(const struct db_embedded *);
/* The node saw pid exit (SIGCHLD); restart it unless stopping. Returns
 * true if pid was the embedded server. */
bool		 db_embedded_reap(struct db_embedded *, pid_t pid, int status);
/* Stop the server cleanly (SIGTERM, wait, SIGKILL after a grace time). */
void		 db_embedded_stop(struct db_embedded *);

#endif
