/* schema: validation of provisioning documents (YAML trees from ydoc)
 * against a JSON Schema (draft 2020-12 subset) that is itself written in
 * YAML, schemas/mailnode-v1.schema.yaml. A hosting control panel sends a
 * YAML stream; every error names the field path, the YAML line:column and
 * what was expected, so that the panel's developer can fix the document.
 *
 * Keywords: $ref (local "#" and "#/$defs/Name"), $defs (top level), type,
 * const, enum, properties, required, additionalProperties (true/false),
 * allOf, if/then/else, items, minItems, maxItems, uniqueItems, minLength,
 * maxLength, pattern (POSIX ERE), minimum, maximum, format; annotations
 * ($schema, $id, title, description, default, examples, $comment, x-*) are
 * ignored. Any other keyword is refused at load, as are dangling refs, ref
 * cycles that never descend into the document, and bad regexes.
 *
 * Errors come out sorted by line:column (stable), without duplicates; when
 * more than max are found the first max in document order are kept. On -1
 * from schema_validate, errs[0].message (max >= 1) holds the reason and *n
 * is 0. */
#ifndef MAILNODE_SCHEMA_H
#define MAILNODE_SCHEMA_H

#include <stddef.h>

#include "ydoc.h"

struct schema;
struct schema_error {
	unsigned line, col;		/* of the offending node (1-based) */
	char	 path[256];		/* e.g. "spec.limits.mailboxes", "spec.to[2]", "" for the root */
	char	 message[512];		/* what was expected, e.g. "expected an integer, got the string 'ten'" */
};
/* Custom formats ("size", "email", ...): return 1 if valid, 0 if not (with a
 * one-line reason in why), -1 if the format is unknown to the callback. key
 * is the name of the property being checked ("" inside arrays). */
typedef int (*schema_format_fn)(void *ctx, const char *format, const struct ydoc_node *value,
    const char *key, char *why, size_t whylen);

/* Load a schema from a YAML file; -1/NULL with the reason (line:column for YAML errors). */
struct schema	*schema_load(const char *path, char *err, size_t errlen);
struct schema	*schema_load_mem(const char *yaml, size_t len, char *err, size_t errlen);
void		 schema_free(struct schema *);
void		 schema_set_format(struct schema *, schema_format_fn, void *ctx);
/* Validate doc against the schema at ref ("#" for the root, "#/$defs/Name"
 * for a definition). Fills up to max errors, sets *n to how many were
 * stored; returns 0 when valid, 1 when invalid, -1 on a broken schema or
 * ref (reason in errs[0].message). */
int		 schema_validate(const struct schema *, const char *ref, const struct ydoc_node *doc,
		    struct schema_error *errs, size_t max, size_t *n);
/* Type of a scalar as the schema sees it: "null", "boolean", "integer", "number" or "string". */
const char	*schema_scalar_type(const struct ydoc_node *);

#endif
