/* apply: the one control path for desired state. A YAML stream is parsed,
 * every document validated (schema, then against the directory and the
 * tenants' limits), compared with what is stored, and written in one MariaDB
 * transaction, or, on any error or in a dry run, not at all. The answer
 * reports each object as created, updated (with the fields) or unchanged, or
 * every error with its document, field path and line:column. */
#ifndef MAILNODE_APPLY_H
#define MAILNODE_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <mysql.h>

#include "buf.h"
#include "service_store.h"

struct apply_opts {
	bool		 dry_run;
	const char	*scope;		/* tenant a token is limited to; NULL: all */
};

/* A service whose stored settings changed: the node reconciles it. */
struct apply_service {
	char			name[32];
	struct service_row	row;
	bool			rebind;		/* bind or port changed */
};

struct apply_result {
	int			 status;	/* HTTP-style: 200, 400, 403, 409, 503 */
	struct buf		 out;		/* the YAML answer */
	struct apply_service	*services;
	size_t			 nservices;
};

/* Load the document schema once, before any apply. */
int	 apply_init(const char *schema_path, char *err, size_t errlen);
void	 apply_fini(void);
/* Blocking: run on a database worker. */
void	 apply_run(MYSQL *, const char *yaml, size_t len, const struct apply_opts *,
	    struct apply_result *);
void	 apply_result_free(struct apply_result *);

#endif
