/* migrate: the schema migration runner. Migrations are numbered SQL files
 * (schemas/NNN_name.sql) applied in order, each exactly once, recorded in
 * the schema_migrations table. */
#ifndef MAILNODE_MIGRATE_H
#define MAILNODE_MIGRATE_H

#include <stddef.h>
#include <mysql.h>

struct migration {
	unsigned	 version;
	char		*name;		/* file name, e.g. 001_init.sql */
	char		*path;
};

/* Where the runner records and applies; MariaDB in the node, memory in tests. */
struct migrate_backend {
	/* Fill versions (caller frees) with what is recorded as applied. */
	int	(*applied)(void *ctx, unsigned **versions, size_t *n, char *err, size_t errlen);
	/* Run sql and record the migration as applied. */
	int	(*apply)(void *ctx, const struct migration *, const char *sql,
		    char *err, size_t errlen);
	void	 *ctx;
};

/* List dir's migrations sorted by version. Rejects names not of the form
 * NNN_name.sql and duplicate versions. */
int	 migrate_scan(const char *dir, struct migration **, size_t *n, char *err, size_t errlen);
void	 migrate_list_free(struct migration *, size_t n);
/* Apply every migration of dir not yet applied; *count says how many ran.
 * Refuses a database that has a version this node does not know. */
int	 migrate_run(const char *dir, const struct migrate_backend *, unsigned *count,
	    char *err, size_t errlen);
/* Backend over a MariaDB connection (takes a named lock so nodes sharing a
 * database migrate one at a time). */
void	 migrate_backend_mariadb(struct migrate_backend *, MYSQL *);

#endif
