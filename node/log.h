/* log: structured logging, one line per event to stderr and syslog, with the
 * service, tenant, session id and peer the event belongs to. */
#ifndef MAILNODE_LOG_H
#define MAILNODE_LOG_H

#include <stdint.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Who an event concerns; any field may be NULL/0. */
struct log_ctx {
	const char	*service;
	const char	*tenant;
	uint64_t	 session;
	const char	*peer;
};

void	log_init(const char *ident, int use_syslog, enum log_level);
void	log_event(enum log_level, const struct log_ctx *, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#define log_err(...)	log_event(LOG_LVL_ERR, NULL, __VA_ARGS__)
#define log_warn(...)	log_event(LOG_LVL_WARN, NULL, __VA_ARGS__)
#define log_info(...)	log_event(LOG_LVL_INFO, NULL, __VA_ARGS__)
#define log_debug(...)	log_event(LOG_LVL_DEBUG, NULL, __VA_ARGS__)

#endif
