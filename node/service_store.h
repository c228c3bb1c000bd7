/* service_store: services' settings and desired state in MariaDB: loaded at
 * start (rows created from the defaults for new services), and the desired
 * state written back when a service is started or stopped at run time. */
#ifndef MAILNODE_SERVICE_STORE_H
#define MAILNODE_SERVICE_STORE_H

#include <stddef.h>
#include <mysql.h>

struct service;

/* Blocking; at start-up only. */
int	 service_store_load(MYSQL *, char *err, size_t errlen);
/* Record the desired state (running/stopped) without blocking the loop. */
void	 service_store_save_state(struct service *);

#endif
