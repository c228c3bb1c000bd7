/* directory: the tenant directory in MariaDB: tenants, domains, mailboxes
 * and aliases as rows holding their canonical spec (JSON) and their
 * secrets apart. Blocking calls: run them on a database worker. */
#ifndef MAILNODE_DIRECTORY_H
#define MAILNODE_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <mysql.h>

enum dir_kind { DIR_TENANT, DIR_DOMAIN, DIR_MAILBOX, DIR_ALIAS };
#define DIR_NKINDS	4

struct dir_obj {
	enum dir_kind	 kind;
	uint64_t	 id;
	char		 name[256];	/* tenant name, domain, or address */
	char		 tenant[64];	/* owning tenant (the tenant itself for DIR_TENANT) */
	uint64_t	 tenant_id;
	uint64_t	 domain_id;	/* mailboxes and aliases */
	char		*spec;		/* canonical JSON */
	char		*secret;	/* password hash (mailbox) or TLS key (domain); may be NULL */
	char		*scram;		/* mailbox: SCRAM-SHA-256 keys, set with secret; may be NULL */
	uint64_t	 used_bytes, messages;	/* mailboxes: mail held */
};

const char	*dir_kind_name(enum dir_kind);		/* "Tenant" */
const char	*dir_kind_plural(enum dir_kind);	/* "tenants", the API path */
int		 dir_kind_parse(const char *, enum dir_kind *);	/* "Tenant" or "tenants" */

/* Objects of kind named in names (all when names is NULL), only those of
 * tenant when it is given. Appends to *out (caller frees with dir_objs_free). */
int	 dir_load(MYSQL *, enum dir_kind, const char *const *names, size_t n, const char *tenant,
	    struct dir_obj **out, size_t *nout, char *err, size_t errlen);
void	 dir_objs_free(struct dir_obj *, size_t);
/* Objects of kind a tenant holds. */
int	 dir_count(MYSQL *, enum dir_kind, uint64_t tenant_id, uint64_t *count, char *err, size_t errlen);
/* Insert (sets o->id) or update by id; the secret is written only when
 * set_secret (absent secrets keep the stored ones). */
int	 dir_insert(MYSQL *, struct dir_obj *, char *err, size_t errlen);
int	 dir_update(MYSQL *, const struct dir_obj *, bool set_secret, char *err, size_t errlen);
int	 dir_delete(MYSQL *, const struct dir_obj *, char *err, size_t errlen);
/* Mail held by the mailboxes under a tenant or domain (for delete checks). */
int	 dir_mail_held(MYSQL *, const struct dir_obj *, uint64_t *messages, char *err, size_t errlen);
int	 dir_bump_generation(MYSQL *, char *err, size_t errlen);
/* An API token's scope: 1 found (tenant "" for all tenants), 0 unknown. */
int	 dir_token_scope(MYSQL *, const char *token_sha256, char *tenant, size_t tenantlen,
	    char *err, size_t errlen);
int	 dir_token_add(MYSQL *, const char *token_sha256, uint64_t tenant_id, const char *description,
	    char *err, size_t errlen);

#endif
