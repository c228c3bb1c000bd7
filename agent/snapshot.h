/* snapshot: the node's state as the subagent last read it through the
 * control socket (status, services, monitoring figures, tenants), kept for
 * about a second so a walk of thousands of rows asks the node a few times,
 * not once per object. */
#ifndef MAILNODE_SNAPSHOT_H
#define MAILNODE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>

#include "snmp_index.h"

/* The index codec works on unsigned long: Net-SNMP's oid must be that. */
_Static_assert(sizeof(oid) == sizeof(unsigned long), "oid is not unsigned long");

enum { ACCESS_MODE_OPEN = 1, ACCESS_MODE_DENY = 2, ACCESS_MODE_ALLOW = 3 };
enum { OPER_STOPPED = 1, OPER_STARTING, OPER_RUNNING, OPER_STOPPING, OPER_FAILED };

struct snap_addrs {
	int	  mode;		/* ACCESS_MODE_* */
	char	**list;
	size_t	  n;
};

struct snap_service {
	unsigned	 index;		/* 1-based position */
	char		 name[32];
	char		 description[256];
	int		 oper;		/* OPER_* */
	bool		 want_running, available, stoppable, listener;
	char		 bind[256];
	uint32_t	 port, max_clients, timeout;
	bool		 auto_start;
	uint64_t	 current, total, rejected;
	time_t		 since;
	struct snap_addrs access;
};

enum tenant_limit { LIMIT_DOMAINS, LIMIT_MAILBOXES, LIMIT_ALIASES, LIMIT_STORAGE,
	LIMIT_MESSAGE_SIZE, LIMIT_COUNT };

struct snap_tenant {
	uint32_t	 id;
	char		 name[64];
	bool		 suspended;
	uint64_t	 limit[LIMIT_COUNT];	/* storage and message size in bytes */
	uint64_t	 msgs_in, msgs_out, bytes_in, bytes_out, rejected, auth_failures;
	uint64_t	 domains, mailboxes, aliases, storage_used, sessions;
	struct snap_addrs access;
};

/* One access rule: an address of a service's or tenant's list, with its
 * table index (type, name, address as length-prefixed strings). */
struct snap_rule {
	oid		 idx[SNMP_INDEX_RULE_MAX];
	size_t		 idxlen;
	int		 type;		/* 1 service, 2 tenant */
	const char	*scope;		/* points into the service or tenant */
	const char	*address;
	int		 mode;
};

struct snapshot {
	bool			 reachable;	/* the last refresh reached the node */
	bool			 loaded;	/* some refresh succeeded once */
	char			 version[64];
	uint64_t		 uptime, sessions, generation;
	bool			 db_up;
	uint64_t		 q_messages, q_bytes, q_oldest, q_held, q_deferred,
				 q_local_rcpts, q_remote_rcpts;
	uint64_t		 msgs_in, bytes_in, rcpts_in, msgs_out, bytes_out, rcpts_out;
	uint64_t		 login_failures;
	struct snap_service	*services;
	size_t			 nservices;
	struct snap_tenant	*tenants;	/* by id */
	size_t			 ntenants;
	struct snap_rule	*rules;		/* by index */
	size_t			 nrules;
};

/* The current snapshot, refreshed first when older than max_age_ms
 * (0: refresh now). Never NULL; empty until the node was reached. */
const struct snapshot *snapshot_get(unsigned max_age_ms);
/* Forget the age: the next snapshot_get reads the node (after a SET). */
void	 snapshot_invalidate(void);
void	 snapshot_free_all(void);

const struct snap_service *snapshot_service_by_index(const struct snapshot *, unsigned);
const struct snap_service *snapshot_service_by_name(const struct snapshot *, const char *);
const struct snap_tenant *snapshot_tenant_by_id(const struct snapshot *, uint32_t);
const struct snap_tenant *snapshot_tenant_by_name(const struct snapshot *, const char *);
/* "open", "deny-listed", "allow-listed" and back. */
const char *snapshot_mode_name(int mode);
int	 snapshot_mode_parse(const char *);
/* Index OID of a rule: type, then name and address as length-prefixed
 * strings; -1 when they do not fit the table's index. */
int	 snapshot_rule_index(int type, const char *scope, const char *address, oid *out, size_t *len);

#endif
