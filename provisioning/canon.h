/* canon: the checks behind the provisioning schema's own formats (size,
 * duration, rate, email, domain, address-pattern, ...) and the canonical
 * JSON form of a document's spec: what is stored, what apply diffs against
 * and what get returns, so "25MiB" and 26214400 are the same quota. */
#ifndef MAILNODE_CANON_H
#define MAILNODE_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ydoc.h"

/* The schema's format callback (schema_format_fn). */
int	 canon_format(void *ctx, const char *format, const struct ydoc_node *value,
	    const char *key, char *why, size_t whylen);

int	 canon_size(const struct ydoc_node *, uint64_t *bytes, char *why, size_t whylen);
int	 canon_duration(const struct ydoc_node *, uint64_t *seconds, char *why, size_t whylen);
/* "500/h" -> 500 per 3600 seconds. */
int	 canon_rate(const char *, uint32_t *count, uint32_t *per_seconds, char *why, size_t whylen);
int	 canon_email_check(const char *, char *why, size_t whylen);
int	 canon_domain_check(const char *, char *why, size_t whylen);
/* Lower-cased copy of s into out (domains and addresses). */
int	 canon_lower(const char *s, char *out, size_t outlen);

/* Canonical JSON of a validated spec of kind (keys sorted, sizes and
 * durations in their largest exact unit, addresses lower case, address
 * patterns in canonical form). Secrets (password, passwordHash, tls.key)
 * are left out: they live in their own columns. */
int	 canon_spec_json(const char *kind, const struct ydoc_node *spec, struct buf *out,
	    char *err, size_t errlen);
/* Canonical JSON of any node at path (e.g. "access") of a kind's spec. */
int	 canon_node_json(const char *kind, const struct ydoc_node *, const char *path,
	    struct buf *out);
/* JSON string literal of s (quotes and escapes). */
int	 canon_json_string(struct buf *out, const char *s);
/* Leaf paths where two canonical specs differ, "spec.quota, spec.state";
 * empty when equal. */
int	 canon_diff(const struct ydoc_node *old_spec, const struct ydoc_node *new_spec,
	    struct buf *out);

#endif
