/* service_store: services' settings and desired state in MariaDB: loaded at
 * start (rows created from the defaults for new services), and the desired
 * state written back when a service is started or stopped at run time. */
#ifndef MAILNODE_SERVICE_STORE_H
#define MAILNODE_SERVICE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <mysql.h>

#include "settings.h"

struct service;

/* Blocking; at start-up only. */
int	 service_store_load(MYSQL *, char *err, size_t errlen);
/* A service's stored row, as the apply engine reads and writes it (worker
 * thread; never touches the live services). */
struct service_row {
	struct service_settings	 settings;
	bool			 running;	/* desired state */
	char			*access;	/* canonical JSON or NULL */
	char			*connections;	/* canonical JSON or NULL */
};
int	 service_store_read(MYSQL *, const char *name, struct service_row *, char *err, size_t errlen);
int	 service_store_write(MYSQL *, const char *name, const struct service_row *, char *err, size_t errlen);
void	 service_row_free(struct service_row *);

/* Record the desired state (running/stopped) without blocking the loop. */
void	 service_store_save_state(struct service *);

#endif
