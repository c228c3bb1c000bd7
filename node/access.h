/* access: the one enforcement engine for who may connect and how often.
 * A scope (a service, or a tenant) has access rules (open, deny-listed or
 * allow-listed address patterns) and connection limits (concurrent
 * connections and new connections per minute, both per client address,
 * with exempt addresses never limited), and counts what it admitted and
 * refused. Safe to call from every loop thread. */
#ifndef MAILNODE_ACCESS_H
#define MAILNODE_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

enum access_verdict {
	ACCESS_OK,
	ACCESS_DENIED,		/* an access rule refuses the address */
	ACCESS_LIMITED		/* a connection limit is reached */
};

struct access_rules;
struct access_scope;

/* What an admitted connection holds in a scope until access_release. */
struct access_hold {
	struct access_scope	*scope;		/* NULL: nothing held */
	struct addr		 peer;
	bool			 in_table;	/* counted in the per-address table */
};

struct access_counts {
	uint64_t	accepted;
	uint64_t	rejected_access;
	uint64_t	rejected_limit;
	uint64_t	auth_failures;
	uint64_t	current;
};

/* Rules from the canonical JSON of the spec's `access` and `connections`
 * (either may be NULL: open, no limits). NULL with a reason on bad input. */
struct access_rules *access_rules_compile(const char *access_json, const char *connections_json,
		    char *err, size_t errlen);
void		 access_rules_free(struct access_rules *);

struct access_scope *access_scope_new(const char *name);
/* Freed when the last hold on it is released. */
void		 access_scope_unref(struct access_scope *);
void		 access_scope_ref(struct access_scope *);
const char	*access_scope_name(const struct access_scope *);
/* Replace the rules (the scope takes them); connections already admitted
 * keep running, new ones meet the new rules. NULL: open, no limits. */
void		 access_scope_set_rules(struct access_scope *, struct access_rules *);

/* Seconds of a monotonic clock, the time base of the per-minute windows. */
uint64_t	 access_now(void);
/* Admit a new connection from peer at time now: on ACCESS_OK the hold must
 * be released when the connection ends. Refusals are counted. */
enum access_verdict access_admit(struct access_scope *, const struct addr *peer, uint64_t now,
		    struct access_hold *);
/* The access rules alone, counting nothing (a second tenant met in one
 * SMTP session). */
enum access_verdict access_check(struct access_scope *, const struct addr *peer);
void		 access_release(struct access_hold *);
/* Whether the scope's connection limits exempt peer (also spares it
 * authentication throttling). */
bool		 access_exempt(struct access_scope *, const struct addr *peer);
void		 access_count_refusal(struct access_scope *, enum access_verdict);
void		 access_count_auth_failure(struct access_scope *);
void		 access_scope_counts(struct access_scope *, struct access_counts *);

#endif
