/* canon: format checks and canonical JSON for provisioning documents. */
#include "canon.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "password.h"
#include "settings.h"

/* Where a spec holds values that have a canonical form other than their text. */
enum norm { NORM_SIZE, NORM_DURATION, NORM_LOWER, NORM_PATTERN };

static const struct {
	const char	*kind;
	const char	*path;		/* "[]" marks every item of a list */
	enum norm	 how;
} norms[] = {
	{ "Tenant", "limits.storage", NORM_SIZE },
	{ "Tenant", "limits.messageSize", NORM_SIZE },
	{ "Tenant", "limits.sendRate", NORM_LOWER },
	{ "Tenant", "access.addresses[]", NORM_PATTERN },
	{ "Tenant", "connections.exempt[]", NORM_PATTERN },
	{ "Domain", "aliasOf", NORM_LOWER },
	{ "Domain", "catchAll", NORM_LOWER },
	{ "Domain", "blockedSenders[]", NORM_LOWER },
	{ "Mailbox", "quota", NORM_SIZE },
	{ "Mailbox", "forwardTo[]", NORM_LOWER },
	{ "Alias", "to[]", NORM_LOWER },
	{ "Service", "timeout", NORM_DURATION },
	{ "Service", "access.addresses[]", NORM_PATTERN },
	{ "Service", "connections.exempt[]", NORM_PATTERN },
};

/* Spec fields that are secrets: stored apart, never in the canonical JSON. */
static const struct {
	const char	*kind;
	const char	*path;
} secrets[] = {
	{ "Mailbox", "password" },
	{ "Mailbox", "passwordHash" },
	{ "Domain", "tls.key" },
};

static bool
plain_uint(const struct ydoc_node *n, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (n->type != YDOC_SCALAR || !n->plain || n->len == 0 || !isdigit((unsigned char)n->str[0]))
		return false;
	errno = 0;
	x = strtoull(n->str, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*v = x;
	return true;
}

/* "<digits><unit>" with unit from units[]; returns the multiplier index. */
static int
number_unit(const char *s, const char *const *units, const uint64_t *mults, size_t nunits,
    uint64_t *out)
{
	char *end;
	unsigned long long x;
	size_t i;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	for (i = 0; i < nunits; i++)
		if (strcmp(end, units[i]) == 0) {
			if (mults[i] != 0 && x > UINT64_MAX / mults[i])
				return -1;
			*out = x * mults[i];
			return 0;
		}
	return -1;
}

static const char *const size_units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
static const uint64_t size_mults[] = { 1, 1ULL << 10, 1ULL << 20, 1ULL << 30, 1ULL << 40 };
static const char *const dur_units[] = { "s", "m", "h", "d" };
static const uint64_t dur_mults[] = { 1, 60, 3600, 86400 };

int
canon_size(const struct ydoc_node *n, uint64_t *bytes, char *why, size_t whylen)
{
	if (plain_uint(n, bytes))
		return 0;
	if (n->type == YDOC_SCALAR && number_unit(n->str, size_units, size_mults, 5, bytes) == 0)
		return 0;
	snprintf(why, whylen, "expected a size such as 512MiB, 2GiB or a number of bytes");
	return -1;
}

int
canon_duration(const struct ydoc_node *n, uint64_t *seconds, char *why, size_t whylen)
{
	if (plain_uint(n, seconds))
		return 0;
	if (n->type == YDOC_SCALAR && number_unit(n->str, dur_units, dur_mults, 4, seconds) == 0)
		return 0;
	snprintf(why, whylen, "expected a duration such as 300s, 5m, 2h or 1d");
	return -1;
}

int
canon_rate(const char *s, uint32_t *count, uint32_t *per, char *why, size_t whylen)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = isdigit((unsigned char)s[0]) ? strtoul(s, &end, 10) : 0;
	if (!isdigit((unsigned char)s[0]) || errno != 0 || v == 0 || v > 100000000 ||
	    end[0] != '/' || end[1] == '\0' || end[2] != '\0' || strchr("smhd", end[1]) == NULL) {
		snprintf(why, whylen, "expected a rate such as 500/h (per s, m, h or d)");
		return -1;
	}
	*count = (uint32_t)v;
	*per = end[1] == 's' ? 1 : end[1] == 'm' ? 60 : end[1] == 'h' ? 3600 : 86400;
	return 0;
}

int
canon_lower(const char *s, char *out, size_t outlen)
{
	size_t i, n = strlen(s);

	if (n >= outlen)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return 0;
}

int
canon_domain_check(const char *s, char *why, size_t whylen)
{
	size_t n = strlen(s), label = 0, i;
	int dots = 0;

	if (n == 0 || n > 253) {
		snprintf(why, whylen, "a domain has 1 to 253 characters");
		return -1;
	}
	for (i = 0; i <= n; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				snprintf(why, whylen, "each label of a domain has 1 to 63 characters");
				return -1;
			}
			if (s[i - 1] == '-' || s[i - label] == '-') {
				snprintf(why, whylen, "a domain label cannot start or end with '-'");
				return -1;
			}
			label = 0;
			if (c == '.')
				dots++;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-') {
			snprintf(why, whylen, "a domain has letters, digits, '-' and '.' only "
			    "(IDNs in their xn-- form)");
			return -1;
		}
		label++;
	}
	if (dots == 0) {
		snprintf(why, whylen, "a hosted domain needs at least two labels (example.com)");
		return -1;
	}
	return 0;
}

int
canon_email_check(const char *s, char *why, size_t whylen)
{
	const char *at = strrchr(s, '@');
	size_t local = at ? (size_t)(at - s) : 0, i;

	if (at == NULL || local == 0 || local > 64 || strlen(s) > 254) {
		snprintf(why, whylen, "expected local@domain (local part of 1 to 64 characters)");
		return -1;
	}
	if (s[0] == '.' || s[local - 1] == '.' || strstr(s, "..") != NULL) {
		snprintf(why, whylen, "the local part cannot start or end with '.' or hold '..'");
		return -1;
	}
	for (i = 0; i < local; i++) {
		unsigned char c = (unsigned char)s[i];

		/* RFC 5322 atext and dots; quoted local parts are not accepted. */
		if (!isalnum(c) && strchr("!#$%&'*+-/=?^_`{|}~.", c) == NULL) {
			snprintf(why, whylen, "the local part has a character not allowed in an address");
			return -1;
		}
	}
	return canon_domain_check(at + 1, why, whylen);
}

static int
check_pem(const char *s, char *why, size_t whylen)
{
	if (strncmp(s, "-----BEGIN ", 11) != 0 || strstr(s, "-----END ") == NULL) {
		snprintf(why, whylen, "expected PEM text (-----BEGIN ... -----END ...)");
		return -1;
	}
	return 0;
}

/* RFC 3339 date-time is checked by the schema module itself. */
int
canon_format(void *ctx, const char *format, const struct ydoc_node *v, const char *key,
    char *why, size_t whylen)
{
	const char *s = v->type == YDOC_SCALAR ? v->str : "";
	uint64_t u;
	uint32_t a, b;

	(void)ctx;
	if (strcmp(format, "size") == 0)
		return canon_size(v, &u, why, whylen) == 0;
	if (strcmp(format, "duration") == 0)
		return canon_duration(v, &u, why, whylen) == 0;
	if (strcmp(format, "rate") == 0)
		return canon_rate(s, &a, &b, why, whylen) == 0;
	if (strcmp(format, "email") == 0)
		return canon_email_check(s, why, whylen) == 0;
	if (strcmp(format, "domain") == 0)
		return canon_domain_check(s, why, whylen) == 0;
	if (strcmp(format, "catch-all") == 0)
		return strcmp(s, "reject") == 0 || canon_email_check(s, why, whylen) == 0;
	if (strcmp(format, "sender-pattern") == 0) {
		if (strncmp(s, "*@", 2) == 0)
			return canon_domain_check(s + 2, why, whylen) == 0;
		return canon_email_check(s, why, whylen) == 0;
	}
	if (strcmp(format, "address-pattern") == 0) {
		struct addr_pattern p;

		return addr_pattern_parse(s, &p, why, whylen) == 0;
	}
	if (strcmp(format, "ip-address") == 0) {
		struct addr ad;

		if (addr_parse(s, &ad) == 0)
			return 1;
		snprintf(why, whylen, "expected an IPv4 or IPv6 address");
		return 0;
	}
	if (strcmp(format, "password-hash") == 0) {
		enum password_scheme scheme;

		return password_hash_check(s, &scheme, why, whylen) == 0;
	}
	if (strcmp(format, "pem") == 0)
		return check_pem(s, why, whylen) == 0;
	if (strcmp(format, "service-setting") == 0) {
		const struct setting_def *d = settings_find(key);
		struct service_settings scratch;

		if (d == NULL) {
			snprintf(why, whylen, "no service setting named '%s'", key);
			return 0;
		}
		memset(&scratch, 0, sizeof(scratch));
		return settings_parse(d, s, &scratch, why, whylen) == 0;
	}
	return -1;
}

/* JSON output. */
int
canon_json_string(struct buf *out, const char *s)
{
	if (buf_puts(out, "\"") == -1)
		return -1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int r;

		if (c == '"')
			r = buf_puts(out, "\\\"");
		else if (c == '\\')
			r = buf_puts(out, "\\\\");
		else if (c == '\n')
			r = buf_puts(out, "\\n");
		else if (c == '\t')
			r = buf_puts(out, "\\t");
		else if (c == '\r')
			r = buf_puts(out, "\\r");
		else if (c < 0x20 || c == 0x7f)
			r = buf_printf(out, "\\u%04x", c);
		else
			r = buf_append(out, s, 1);
		if (r == -1)
			return -1;
	}
	return buf_puts(out, "\"");
}

static int
json_scalar(struct buf *out, const struct ydoc_node *n)
{
	const char *t;

	if (n->plain) {
		/* Plain YAML scalars keep their type: null, booleans, numbers. */
		t = n->str;
		if (n->len == 0 || strcmp(t, "~") == 0 || strcasecmp(t, "null") == 0)
			return buf_puts(out, "null");
		if (strcasecmp(t, "true") == 0)
			return buf_puts(out, "true");
		if (strcasecmp(t, "false") == 0)
			return buf_puts(out, "false");
		{
			char *end;

			errno = 0;
			(void)strtoll(t, &end, 10);
			if (*end == '\0' && errno == 0 && (isdigit((unsigned char)t[0]) ||
			    ((t[0] == '-' || t[0] == '+') && isdigit((unsigned char)t[1]))))
				return buf_printf(out, "%lld", strtoll(t, NULL, 10));
		}
	}
	return canon_json_string(out, n->str);
}

/* Largest exact unit: 26214400 -> "25MiB", 300 -> "5m"; 0 and odd values stay numbers. */
static int
json_unit(struct buf *out, uint64_t v, const char *const *units, const uint64_t *mults, size_t n)
{
	size_t i;

	for (i = n; i-- > 1;)
		if (v != 0 && v % mults[i] == 0)
			return buf_printf(out, "\"%" PRIu64 "%s\"", v / mults[i], units[i]);
	if (units == dur_units)
		return buf_printf(out, "\"%" PRIu64 "s\"", v);
	return buf_printf(out, "%" PRIu64, v);
}

static int
json_normalized(struct buf *out, const struct ydoc_node *n, enum norm how)
{
	char tmp[512], why[160];
	uint64_t v;

	switch (how) {
	case NORM_SIZE:
		if (canon_size(n, &v, why, sizeof(why)) == -1)
			return -1;
		return json_unit(out, v, size_units, size_mults, 5);
	case NORM_DURATION:
		if (canon_duration(n, &v, why, sizeof(why)) == -1)
			return -1;
		return json_unit(out, v, dur_units, dur_mults, 4);
	case NORM_LOWER:
		if (canon_lower(n->str, tmp, sizeof(tmp)) == -1)
			return -1;
		return canon_json_string(out, tmp);
	case NORM_PATTERN: {
		struct addr_pattern p;

		if (addr_pattern_parse(n->str, &p, why, sizeof(why)) == -1 ||
		    addr_pattern_format(&p, tmp, sizeof(tmp)) == -1)
			return -1;
		return canon_json_string(out, tmp);
	}
	}
	return -1;
}

static int
lookup_norm(const char *kind, const char *path, enum norm *how)
{
	size_t i;

	for (i = 0; i < sizeof(norms) / sizeof(norms[0]); i++)
		if (strcmp(norms[i].kind, kind) == 0 && strcmp(norms[i].path, path) == 0) {
			*how = norms[i].how;
			return 0;
		}
	return -1;
}

static bool
is_secret(const char *kind, const char *path)
{
	size_t i;

	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (strcmp(secrets[i].kind, kind) == 0 && strcmp(secrets[i].path, path) == 0)
			return true;
	return false;
}

static int
cmp_keys(const void *a, const void *b)
{
	const struct ydoc_node *const *x = a, *const *y = b;

	return strcmp((*x)->str, (*y)->str);
}

static int
json_node(const char *kind, const struct ydoc_node *n, const char *path, struct buf *out)
{
	char sub[256];
	enum norm how;
	size_t i;

	if (n->type == YDOC_SCALAR) {
		if (lookup_norm(kind, path, &how) == 0 && !(n->plain && strcmp(n->str, "null") == 0))
			return json_normalized(out, n, how);
		return json_scalar(out, n);
	}
	if (n->type == YDOC_SEQ) {
		if (snprintf(sub, sizeof(sub), "%s[]", path) >= (int)sizeof(sub))
			return -1;
		if (buf_puts(out, "[") == -1)
			return -1;
		for (i = 0; i < n->n; i++) {
			if (i && buf_puts(out, ",") == -1)
				return -1;
			if (json_node(kind, n->items[i], sub, out) == -1)
				return -1;
		}
		return buf_puts(out, "]");
	}
	/* Maps: keys in sorted order so equal specs have equal text. */
	{
		const struct ydoc_node **keys = calloc(n->n + 1, sizeof(*keys));
		bool first = true;
		int rc = -1;

		if (keys == NULL)
			return -1;
		for (i = 0; i < n->n; i++)
			keys[i] = n->items[2 * i];
		qsort(keys, n->n, sizeof(*keys), cmp_keys);
		if (buf_puts(out, "{") == -1)
			goto done;
		for (i = 0; i < n->n; i++) {
			const struct ydoc_node *val = ydoc_get(n, keys[i]->str);

			if (snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "",
			    keys[i]->str) >= (int)sizeof(sub))
				goto done;
			if (is_secret(kind, sub))
				continue;
			if ((!first && buf_puts(out, ",") == -1) || canon_json_string(out, keys[i]->str) == -1 ||
			    buf_puts(out, ":") == -1 || json_node(kind, val, sub, out) == -1)
				goto done;
			first = false;
		}
		rc = buf_puts(out, "}");
done:
		free(keys);
		return rc;
	}
}

int
canon_node_json(const char *kind, const struct ydoc_node *n, const char *path, struct buf *out)
{
	return json_node(kind, n, path, out);
}

int
canon_spec_json(const char *kind, const struct ydoc_node *spec, struct buf *out,
    char *err, size_t errlen)
{
	if (spec == NULL)
		return buf_puts(out, "{}");
	if (json_node(kind, spec, "", out) == -1) {
		snprintf(err, errlen, "cannot put the %s spec in canonical form", kind);
		return -1;
	}
	return 0;
}

/* Diff of two canonical trees (both parsed back from canonical JSON). */
static bool
node_equal(const struct ydoc_node *a, const struct ydoc_node *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return a == b;
	if (a->type != b->type || a->n != b->n)
		return false;
	if (a->type == YDOC_SCALAR)
		return a->plain == b->plain && strcmp(a->str, b->str) == 0;
	for (i = 0; i < (a->type == YDOC_MAP ? a->n * 2 : a->n); i++)
		if (!node_equal(a->items[i], b->items[i]))
			return false;
	return true;
}

static int
diff_into(const struct ydoc_node *a, const struct ydoc_node *b, const char *path, struct buf *out)
{
	char sub[256];
	size_t i;

	if (node_equal(a, b))
		return 0;
	if (a && b && a->type == YDOC_MAP && b->type == YDOC_MAP) {
		/* Keys of either side, each once (both are sorted). */
		for (i = 0; i < a->n; i++) {
			const char *k = a->items[2 * i]->str;

			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			if (diff_into(a->items[2 * i + 1], ydoc_get(b, k), sub, out) == -1)
				return -1;
		}
		for (i = 0; i < b->n; i++) {
			const char *k = b->items[2 * i]->str;

			if (ydoc_get(a, k) != NULL)
				continue;
			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			if (diff_into(NULL, b->items[2 * i + 1], sub, out) == -1)
				return -1;
		}
		return 0;
	}
	return buf_printf(out, "%s%s", buf_len(out) ? ", " : "", path);
}

int
canon_diff(const struct ydoc_node *old_spec, const struct ydoc_node *new_spec, struct buf *out)
{
	return diff_into(old_spec, new_spec, "spec", out);
}
