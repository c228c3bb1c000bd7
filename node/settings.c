/* settings: the per-service setting definitions and their parsing and
 * formatting, shared by the control API, the SNMP agent and the docs. */
#include "settings.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(f)	offsetof(struct service_settings, f)

const struct setting_def settings_defs[] = {
	{ "bind", "bind_addrs", SETTING_ADDRLIST, FIELD(bind), 1, SETTINGS_MAX_BIND, true,
	  "Addresses the service listens on: IPv4 or IPv6 literals, comma separated "
	  "(0.0.0.0 for every IPv4 address, :: for every IPv6 address).", NULL },
	{ "port", "port", SETTING_PORT, FIELD(port), 1, 65535, true,
	  "TCP port of the listener.", NULL },
	{ "maxClients", "max_clients", SETTING_UINT, FIELD(max_clients), 1, 1000000, true,
	  "Most sessions the service holds at once; further connections are refused "
	  "with the protocol's busy reply and counted as rejected.", NULL },
	{ "timeout", "idle_timeout", SETTING_DURATION, FIELD(timeout), 1, 86400, true,
	  "Idle time after which a session is closed (s, m or h suffix).", NULL },
	{ "autoStart", "auto_start", SETTING_BOOL, FIELD(auto_start), 0, 1, false,
	  "Start the service when the node starts.", NULL },
	{ "restartOnChange", "restart_on_change", SETTING_BOOL, FIELD(restart_on_change), 0, 1, false,
	  "Rebind the listener at once when bind or port change; otherwise the "
	  "change waits for the next start.", NULL },
	{ "allowPlaintextAuth", "allow_plaintext_auth", SETTING_BOOL, FIELD(allow_plaintext_auth), 0, 1, true,
	  "Accept passwords (POP3 USER/PASS and AUTH, IMAP LOGIN and AUTHENTICATE) on a "
	  "connection that has not switched to TLS with STLS or STARTTLS. Off by default: "
	  "passwords never travel in clear.",
	  "pop3 imap" },
};
const size_t settings_ndefs = sizeof(settings_defs) / sizeof(settings_defs[0]);

const struct setting_def *
settings_find(const char *key)
{
	size_t i;

	for (i = 0; i < settings_ndefs; i++)
		if (strcmp(settings_defs[i].key, key) == 0)
			return &settings_defs[i];
	return NULL;
}

bool
settings_applies(const struct setting_def *d, const char *service, bool listener)
{
	size_t n = strlen(service);
	const char *p;

	if (d->listener_only && !listener)
		return false;
	if (d->only == NULL)
		return true;
	for (p = d->only; (p = strstr(p, service)) != NULL; p += n)
		if ((p == d->only || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}

const char *
settings_type_name(enum setting_type t)
{
	switch (t) {
	case SETTING_BOOL:	return "boolean";
	case SETTING_UINT:	return "integer";
	case SETTING_PORT:	return "port";
	case SETTING_DURATION:	return "duration";
	case SETTING_ADDRLIST:	return "address list";
	}
	return "?";
}

static int
parse_uint(const char *text, uint64_t mult_default, uint64_t *out, bool duration)
{
	char *end;
	unsigned long long v;
	uint64_t mult = mult_default;

	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0)
		return -1;
	if (duration && *end != '\0') {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		default: return -1;
		}
		end++;
	}
	if (*end != '\0' || v > UINT32_MAX)
		return -1;
	*out = v * mult;
	return 0;
}

static int
parse_addrlist(const struct setting_def *def, const char *text,
    struct service_settings *s, char *err, size_t errlen)
{
	struct addr list[SETTINGS_MAX_BIND];
	unsigned n = 0;
	const char *p = text;

	while (*p) {
		char one[ADDR_STRLEN];
		size_t len;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, ", ");
		if (len >= sizeof(one)) {
			snprintf(err, errlen, "%s: address too long", def->key);
			return -1;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		if (n == SETTINGS_MAX_BIND) {
			snprintf(err, errlen, "%s: at most %u addresses", def->key, SETTINGS_MAX_BIND);
			return -1;
		}
		if (addr_parse(one, &list[n]) == -1) {
			snprintf(err, errlen, "%s: '%s' is not an IPv4 or IPv6 address", def->key, one);
			return -1;
		}
		/* The second bind() of one address would fail at start: say so now. */
		for (unsigned k = 0; k < n; k++)
			if (list[k].family == list[n].family &&
			    memcmp(list[k].bytes, list[n].bytes, sizeof(list[n].bytes)) == 0) {
				snprintf(err, errlen, "%s: '%s' is listed twice", def->key, one);
				return -1;
			}
		n++;
		p += len;
	}
	if (n == 0) {
		snprintf(err, errlen, "%s: at least one address is needed", def->key);
		return -1;
	}
	memcpy(s->bind, list, n * sizeof(list[0]));
	s->nbind = n;
	return 0;
}

int
settings_parse(const struct setting_def *def, const char *text,
    struct service_settings *s, char *err, size_t errlen)
{
	char *field = (char *)s + def->offset;
	uint64_t v;

	switch (def->type) {
	case SETTING_BOOL:
		if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0 ||
		    strcmp(text, "yes") == 0 || strcmp(text, "on") == 0)
			*(bool *)field = true;
		else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0 ||
		    strcmp(text, "no") == 0 || strcmp(text, "off") == 0)
			*(bool *)field = false;
		else {
			snprintf(err, errlen, "%s: expected true or false, got '%.40s'", def->key, text);
			return -1;
		}
		return 0;
	case SETTING_UINT:
	case SETTING_PORT:
	case SETTING_DURATION:
		if (parse_uint(text, 1, &v, def->type == SETTING_DURATION) == -1) {
			snprintf(err, errlen, "%s: expected %s, got '%.40s'", def->key,
			    def->type == SETTING_DURATION ? "a duration such as 300s, 5m or 1h" :
			    "a whole number", text);
			return -1;
		}
		if (v < def->min || v > def->max) {
			snprintf(err, errlen, "%s: %" PRIu64 " is out of range %" PRIu32 "..%" PRIu32 "%s",
			    def->key, v, def->min, def->max,
			    def->type == SETTING_DURATION ? " seconds" : "");
			return -1;
		}
		*(uint32_t *)field = (uint32_t)v;
		return 0;
	case SETTING_ADDRLIST:
		return parse_addrlist(def, text, s, err, errlen);
	}
	snprintf(err, errlen, "%s: unknown setting type", def->key);
	return -1;
}

int
settings_format(const struct setting_def *def, const struct service_settings *s,
    struct buf *out)
{
	const char *field = (const char *)s + def->offset;
	unsigned i;

	switch (def->type) {
	case SETTING_BOOL:
		return buf_puts(out, *(const bool *)field ? "true" : "false");
	case SETTING_UINT:
	case SETTING_PORT:
		return buf_printf(out, "%" PRIu32, *(const uint32_t *)field);
	case SETTING_DURATION:
		return buf_printf(out, "%" PRIu32 "s", *(const uint32_t *)field);
	case SETTING_ADDRLIST:
		for (i = 0; i < s->nbind; i++) {
			char a[ADDR_STRLEN];

			if (addr_format(&s->bind[i], a, sizeof(a)) == -1)
				return -1;
			if (buf_printf(out, "%s%s", i ? "," : "", a) == -1)
				return -1;
		}
		return 0;
	}
	return -1;
}

int
settings_doc_markdown(struct buf *out)
{
	size_t i;

	if (buf_puts(out, "| setting | type | range | applies to | meaning |\n"
	    "|---|---|---|---|---|\n") == -1)
		return -1;
	for (i = 0; i < settings_ndefs; i++) {
		const struct setting_def *d = &settings_defs[i];
		char range[64];

		switch (d->type) {
		case SETTING_BOOL:
			snprintf(range, sizeof(range), "true, false");
			break;
		case SETTING_ADDRLIST:
			snprintf(range, sizeof(range), "%" PRIu32 " to %" PRIu32 " addresses", d->min, d->max);
			break;
		case SETTING_DURATION:
			snprintf(range, sizeof(range), "%" PRIu32 "s to %" PRIu32 "s", d->min, d->max);
			break;
		default:
			snprintf(range, sizeof(range), "%" PRIu32 " to %" PRIu32, d->min, d->max);
			break;
		}
		if (buf_printf(out, "| `%s` | %s | %s | %s | %s |\n", d->key,
		    settings_type_name(d->type), range,
		    d->only ? d->only : d->listener_only ? "listening services" : "all services", d->doc) == -1)
			return -1;
	}
	return 0;
}
