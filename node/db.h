/* db: MariaDB access. Connection settings from a DSN, blocking helpers for
 * start-up, and a pool of worker threads so the event loops never wait on
 * the database: jobs run on a worker, completions run back on the loop. */
#ifndef MAILNODE_DB_H
#define MAILNODE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <mysql.h>

#include "buf.h"

struct db_conf {
	char		*host;		/* NULL with socket */
	unsigned	 port;
	char		*socket;
	char		*user;
	char		*password;
	char		*database;
};

/* mysql://user:password@host:port/database
 * mysql://user@localhost/database?socket=/run/mysqld/mysqld.sock */
int	 db_conf_parse(const char *dsn, struct db_conf *, char *err, size_t errlen);
void	 db_conf_free(struct db_conf *);
/* A deep copy (threads keep their own); -1 on allocation failure. */
int	 db_conf_copy(struct db_conf *to, const struct db_conf *from);
/* Connect (blocking), creating the database first when create_db is set. */
MYSQL	*db_connect(const struct db_conf *, bool create_db, char *err, size_t errlen);
/* Append s to b as a quoted SQL string literal, escaped for m's
 * connection; NULL appends NULL. */
int	 db_quote(MYSQL *, struct buf *, const char *s);
/* Run statements that return no rows; -1 with the server's message. */
int	 db_exec(MYSQL *, const char *sql, char *err, size_t errlen);

/* A job runs on a pool thread with a live connection and returns 0, or -1
 * for a failure (the connection is then checked and renewed if needed). */
typedef int	(*db_job_fn)(MYSQL *, void *arg);
typedef void	(*db_done_fn)(void *arg, int result);

int	 db_pool_start(const struct db_conf *, unsigned nthreads);
/* Queue job; done(arg, result) then runs on the calling loop. */
int	 db_submit(db_job_fn, db_done_fn, void *arg);
void	 db_pool_stop(void);
/* Whether the last connection attempt or query succeeded. */
bool	 db_pool_up(void);
/* The embedded server died: report down until a query succeeds again. */
void	 db_pool_mark_down(void);
/* Ping the database every interval from the calling loop, so db_pool_up
 * follows the server even when nothing else asks it anything. */
void	 db_pool_watch(unsigned interval_ms);

#endif
