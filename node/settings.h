/* settings: the one definition of every per-service setting (name, type,
 * default, bounds, meaning). The YAML schema, the control API, the SNMP
 * agent and docs/settings.md are all derived from settings_defs[]. */
#ifndef MAILNODE_SETTINGS_H
#define MAILNODE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"

#define SETTINGS_MAX_BIND	8

enum setting_type {
	SETTING_BOOL,
	SETTING_UINT,		/* unsigned integer within [min, max] */
	SETTING_PORT,		/* 1..65535 */
	SETTING_DURATION,	/* seconds; accepts "90", "90s", "5m", "2h" */
	SETTING_ADDRLIST	/* bind addresses: IPv4/IPv6 literals */
};

/* The values of one service, as stored and as running. */
struct service_settings {
	struct addr	bind[SETTINGS_MAX_BIND];
	unsigned	nbind;
	uint32_t	port;
	uint32_t	max_clients;
	uint32_t	timeout;	/* idle timeout, seconds */
	bool		auto_start;
	bool		restart_on_change;
	bool		allow_plaintext_auth;
};

struct setting_def {
	const char		*key;		/* YAML/API key, docs, SNMP object suffix */
	const char		*column;	/* MariaDB column in `services` */
	enum setting_type	 type;
	size_t			 offset;	/* into struct service_settings */
	uint32_t		 min, max;
	bool			 listener_only;	/* meaningless for services without a port */
	const char		*doc;
	const char		*only;		/* NULL, or the services (space separated) it is for */
};

extern const struct setting_def	settings_defs[];
extern const size_t		settings_ndefs;

const struct setting_def *settings_find(const char *key);
/* Whether def is a setting of the named service (listener: it has a port). */
bool	 settings_applies(const struct setting_def *, const char *service, bool listener);
/* Parse text into the field of s named by def; -1 with a reason in err. */
int	 settings_parse(const struct setting_def *, const char *text,
	    struct service_settings *s, char *err, size_t errlen);
/* Canonical text of the field ("true", "2525", "300s", "0.0.0.0,::"). */
int	 settings_format(const struct setting_def *, const struct service_settings *,
	    struct buf *out);
const char *settings_type_name(enum setting_type);
/* Markdown reference of all settings, for docs/settings.md. */
int	 settings_doc_markdown(struct buf *out);

#endif
