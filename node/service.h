/* service: the node's services as units (smtp, imap, admin, spool, ...):
 * their definitions, settings, listeners, operational state and counters,
 * and start/stop/restart while the node runs. */
#ifndef MAILNODE_SERVICE_H
#define MAILNODE_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "settings.h"

enum service_state {
	SERVICE_STOPPED,
	SERVICE_STARTING,
	SERVICE_RUNNING,
	SERVICE_STOPPING,
	SERVICE_FAILED
};

enum service_tls { SERVICE_TLS_NONE, SERVICE_TLS_STARTTLS, SERVICE_TLS_IMPLICIT };

struct service_def {
	const char	*name;
	const char	*description;
	uint16_t	 port, dev_port;	/* 0: no listener (spool, indexing, ...) */
	uint32_t	 timeout;		/* default idle timeout, seconds */
	uint32_t	 max_clients;
	enum service_tls tls;
	bool		 stoppable;		/* admin is not */
	const char	*handler_issue;		/* what brings its protocol, while it has none */
};

struct service;
struct access_scope;

/* A protocol implementation behind a service; more than one service may
 * share one (smtp, submission and smtps). All calls run on loop 0. */
struct service_handler {
	/* Begin serving on svc->listen_fds (already bound and listening). */
	int	(*start)(struct service *, char *err, size_t errlen);
	/* Stop accepting now (close the listeners). With drain, sessions in
	 * flight finish on their own; otherwise they are ended now. */
	void	(*stop)(struct service *, bool drain);
	/* Running settings changed that need no rebind (timeout, maxClients). */
	void	(*reconfigure)(struct service *);
};

struct service_counters {
	atomic_uint_fast64_t	current;
	atomic_uint_fast64_t	total;
	atomic_uint_fast64_t	rejected;
};

struct service {
	const struct service_def	*def;
	const struct service_handler	*handler;	/* NULL: none in this build */
	struct service_settings		 settings;
	enum service_state		 state;
	char				 reason[256];	/* why failed, or why stopped */
	time_t				 since;		/* last state change */
	int				 listen_fds[SETTINGS_MAX_BIND];
	unsigned			 nlisten;
	struct service_counters		 counters;
	void				*impl;		/* the handler's own state */
	bool				 want_running;	/* desired state: spec.state */
	bool				 save_inflight;	/* a state save is with the database */
	bool				 save_again;	/* the state changed during it */
	char				*access;	/* rules as canonical JSON, NULL: open */
	char				*connections;	/* limits as canonical JSON, NULL: none */
	struct access_scope		*scope;		/* those compiled, and their counters */
};

/* Called after every state change, e.g. to persist it or notify SNMP. */
typedef void (*service_change_fn)(struct service *);

/* Defaults: production ports, or dev ports on loopback; port_offset is
 * added to every default port (tests run beside a dev node). */
void		 services_init(bool dev_ports, unsigned port_offset, service_change_fn);
size_t		 services_count(void);
struct service	*services_at(size_t);
struct service	*service_find(const char *name);
const char	*service_state_name(enum service_state);
void		 service_set_handler(const char *name, const struct service_handler *);
bool		 service_has_listener(const struct service *);

int	 service_start(struct service *, char *err, size_t errlen);
int	 service_stop(struct service *, bool drain, char *err, size_t errlen);
int	 service_restart(struct service *, char *err, size_t errlen);
/* Start every service whose autoStart is set; failures are logged and
 * leave that service failed, the others run. */
void	 services_autostart(void);
void	 services_stop_all(void);

/* Markdown table of the services and their default settings (docs). */
int	 services_doc_markdown(struct buf *);

/* Replace the access rules and/or connection limits (canonical JSON or
 * NULL); set_* says which of the two to replace. */
void	 service_set_rules(struct service *, const char *access, const char *connections,
	    bool keep_access, bool keep_connections);

/* Counting for the handlers. */
void	 service_conn_opened(struct service *);
void	 service_conn_closed(struct service *);
void	 service_conn_rejected(struct service *);

#endif
