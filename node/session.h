/* session: the registry of live sessions across all loops, for listings
 * (mailnodectl sessions, the admin API, SNMP) and per-session identity. */
#ifndef MAILNODE_SESSION_H
#define MAILNODE_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"

struct service;
struct loop;

struct session {
	uint64_t	 id;
	struct service	*svc;
	char		 peer[ADDR_STRLEN + 8];	/* "192.0.2.1:51234", "[::1]:4000" */
	char		 tenant[64];
	char		 user[256];
	char		 tls[48];		/* "" when in clear */
	time_t		 started;
	atomic_uint_fast64_t bytes_in, bytes_out;
	struct loop	*loop;			/* the loop that runs it */
	/* End the session now, cleanly for its protocol; runs on its loop. */
	void		(*end)(struct session *);
	struct session	*prev, *next;		/* registry links, under its lock */
};

/* Give the session an id and list it; unregister before freeing it. */
void	 session_register(struct session *);
void	 session_unregister(struct session *);

/* Set tenant and user (NULL leaves a field) under the registry's lock, so
 * listings on other threads never read them half-written. */
void	 session_set_identity(struct session *, const char *tenant, const char *user);
void	 session_set_tls(struct session *, const char *desc);

/* A copy of a session's public fields, safe to keep after it ends. */
struct session_view {
	uint64_t	id;
	char		service[32];
	char		peer[ADDR_STRLEN + 8];
	char		tenant[64];
	char		user[256];
	char		tls[48];
	time_t		started;
	uint64_t	bytes_in, bytes_out;
};
/* Snapshot of the sessions of one service and/or tenant (NULL: any);
 * caller frees. */
int	 sessions_snapshot(const char *service, const char *tenant, struct session_view **out, size_t *n);
/* Ask the loop of session id to end it: 0 when asked, -1 (errno ESRCH)
 * when no such session is live. */
int	 session_end(uint64_t id);
size_t	 sessions_count(void);
/* "192.0.2.1:51234" or "[2001:db8::1]:51234" from a socket address. */
void	 session_format_peer(const struct sockaddr *, socklen_t, char *, size_t);

#endif
